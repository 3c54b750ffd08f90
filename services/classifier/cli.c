/*
 * cli: train, eval, cv and bench (see cli.h). Offline tools: they may
 * allocate freely; the live path is classify.c.
 */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "config.h"
#include "dedup.h"
#include "util.h"

#define CLI_DATA_DIR         KESU_SOURCE_DIR "/../shared/data"
#define CLI_DEFAULT_DATA     CLI_DATA_DIR "/teddy2020c-labeled-train.jsonl"
#define CLI_DEFAULT_TAXONOMY CLI_DATA_DIR "/teddy2020c-taxonomy.jsonl"
#define CLI_DEFAULT_UNLABELED                                                                      \
    CLI_DATA_DIR "/teddy2020c-test-unlabeled.jsonl," CLI_DATA_DIR                                  \
                 "/teddy2020c-votes.jsonl," CLI_DATA_DIR "/teddy2020c-replies.jsonl"
#define CLI_DEFAULT_BENCH CLI_DATA_DIR "/teddy2020c-test-unlabeled.jsonl"

static const char *const cli_commands[] = {"train", "eval", "cv", "bench", NULL};

int cli_is_command(int argc, char **argv)
{
    for (int i = 0; argc > 1 && cli_commands[i]; i++)
        if (strcmp(argv[1], cli_commands[i]) == 0)
            return 1;
    return 0;
}

/* ---- options: --name VALUE or --name=VALUE, and positional arguments ---- */

typedef struct cli_opts {
    const char *data, *out, *model, *algo, *taxonomy, *unlabeled, *rules, *domains;
    const char *positional;
    long seed, folds, bits, seconds;
    int seed_set, bits_set;
    /* tuning knobs (negative: the default of model_train_opts_default) */
    double alpha, tax_weight, self_rounds, self_threshold, self_weight, title_weight, epochs, lr,
        idf;
} cli_opts_t;

/* the tuning options, by name, and where they go */
static double *cli_knob(cli_opts_t *o, const char *name)
{
    static const char *const names[] = {"alpha",       "tax-weight",
                                        "self-rounds", "self-threshold",
                                        "self-weight", "title-weight",
                                        "epochs",      "lr",
                                        "idf",         NULL};
    double *const slots[] = {&o->alpha,          &o->tax_weight,  &o->self_rounds,
                             &o->self_threshold, &o->self_weight, &o->title_weight,
                             &o->epochs,         &o->lr,          &o->idf};
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return slots[i];
    return NULL;
}

static int cli_parse(int argc, char **argv, cli_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->alpha = o->tax_weight = o->self_rounds = o->self_threshold = o->self_weight =
        o->title_weight = o->epochs = o->lr = o->idf = -1;
    o->folds = 5;
    o->seconds = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *eq;
        char name[32];
        if (strncmp(a, "--", 2) != 0) {
            if (o->positional) {
                fprintf(stderr, "kesu-classifier %s: one input file only (got %s)\n", argv[1], a);
                return -1;
            }
            o->positional = a;
            continue;
        }
        eq = strchr(a, '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)),
                 a + 2);
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        if (!v) {
            fprintf(stderr, "kesu-classifier %s: --%s needs a value\n", argv[1], name);
            return -1;
        }
        char *end;
        double *knob = cli_knob(o, name);
        if (knob) {
            *knob = strtod(v, &end);
            if (end == v || *end || *knob < 0) {
                fprintf(stderr, "kesu-classifier %s: --%s: not a number >= 0: %s\n", argv[1], name,
                        v);
                return -1;
            }
        } else if (strcmp(name, "data") == 0)
            o->data = v;
        else if (strcmp(name, "out") == 0)
            o->out = v;
        else if (strcmp(name, "model") == 0)
            o->model = v;
        else if (strcmp(name, "algo") == 0)
            o->algo = v;
        else if (strcmp(name, "taxonomy") == 0)
            o->taxonomy = v;
        else if (strcmp(name, "unlabeled") == 0)
            o->unlabeled = v;
        else if (strcmp(name, "rules") == 0)
            o->rules = v;
        else if (strcmp(name, "domains") == 0)
            o->domains = v;
        else if (strcmp(name, "seed") == 0 || strcmp(name, "folds") == 0 ||
                 strcmp(name, "bits") == 0 || strcmp(name, "seconds") == 0) {
            long n = strtol(v, &end, 10);
            if (end == v || *end || n < 0) {
                fprintf(stderr, "kesu-classifier %s: --%s: not a number: %s\n", argv[1], name, v);
                return -1;
            }
            if (name[0] == 's' && name[1] == 'e' && name[2] == 'e') {
                o->seed = n;
                o->seed_set = 1;
            } else if (name[0] == 'f') {
                o->folds = n;
            } else if (name[0] == 'b') {
                o->bits = n;
                o->bits_set = 1;
            } else {
                o->seconds = n;
            }
        } else {
            fprintf(stderr, "kesu-classifier %s: unknown option --%s\n", argv[1], name);
            return -1;
        }
    }
    return 0;
}

static int cli_train_opts(const cli_opts_t *o, model_train_opts_t *t)
{
    model_train_opts_default(t);
    if (o->algo) {
        int a = model_algo_parse(o->algo);
        if (a < 0) {
            fprintf(stderr, "kesu-classifier: --algo must be nb, lr or ap (got %s)\n", o->algo);
            return -1;
        }
        t->algo = (model_algo_t)a;
    }
    if (o->seed_set)
        t->seed = (uint64_t)o->seed;
    if (o->bits_set)
        t->bits = (unsigned)o->bits;
    if (o->alpha > 0)
        t->alpha = o->alpha;
    if (o->tax_weight >= 0)
        t->tax_weight = o->tax_weight;
    if (o->self_rounds >= 0)
        t->self_rounds = (int)o->self_rounds;
    if (o->self_threshold >= 0)
        t->self_threshold = o->self_threshold;
    if (o->self_weight >= 0)
        t->self_weight = o->self_weight;
    if (o->title_weight >= 1)
        t->title_weight = (unsigned)o->title_weight;
    if (o->epochs >= 1)
        t->epochs = (int)o->epochs;
    if (o->lr > 0)
        t->lr = o->lr;
    if (o->idf >= 0)
        t->idf = o->idf > 0;
    return 0;
}

/* labeled data, taxonomy and unlabeled pool, as training reads them */
static int cli_load_training(const cli_opts_t *o, const model_train_opts_t *t, model_data_t *lab,
                             model_data_t *tax, model_data_t *unl)
{
    char err[512];
    const char *data = o->data ? o->data : CLI_DEFAULT_DATA;
    const char *tx = o->taxonomy ? o->taxonomy : CLI_DEFAULT_TAXONOMY;
    const char *ul = o->unlabeled ? o->unlabeled : CLI_DEFAULT_UNLABELED;
    model_data_init(lab);
    model_data_init(tax);
    model_data_init(unl);
    if (model_data_load(lab, data, "labeled", t->bits, t->title_weight, 1.0f, err, sizeof(err)) < 0)
        goto err;
    /* the taxonomy and the pool share the labeled set's label names */
    tax->labels = calloc(lab->nlabels, MODEL_MAX_LABEL);
    if (!tax->labels)
        goto err;
    memcpy(tax->labels, lab->labels, (size_t)lab->nlabels * MODEL_MAX_LABEL);
    tax->nlabels = lab->nlabels;
    if (strcmp(tx, "none") != 0 && model_data_load(tax, tx, "taxonomy", t->bits, t->title_weight,
                                                   (float)t->tax_weight, err, sizeof(err)) < 0)
        goto err;
    if (strcmp(ul, "none") != 0) {
        char *list = strdup(ul), *save = NULL;
        for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            if (model_data_load(unl, p, "unlabeled", t->bits, t->title_weight, 1.0f, err,
                                sizeof(err)) < 0) {
                free(list);
                goto err;
            }
        }
        free(list);
    }
    return 0;
err:
    fprintf(stderr, "kesu-classifier: %s\n", err);
    return -1;
}

/* ---- scoring ---- */

static int cli_index(const char **labels, size_t *nl, const char *s)
{
    for (size_t i = 0; i < *nl; i++)
        if (strcmp(labels[i], s) == 0)
            return (int)i;
    labels[*nl] = s;
    return (int)(*nl)++;
}

int cli_score(const char *const *gold, const char *const *pred, size_t n, FILE *out,
              cli_scores_t *s)
{
    const char **labels = calloc(2 * n + 1, sizeof(*labels));
    size_t nl = 0, right = 0;
    int *g = malloc((n + 1) * sizeof(int)), *p = malloc((n + 1) * sizeof(int));
    long *cm = NULL;
    int rc = -1;
    if (!labels || !g || !p)
        goto out;
    for (size_t i = 0; i < n; i++) {
        g[i] = cli_index(labels, &nl, gold[i]);
        p[i] = cli_index(labels, &nl, pred[i]);
    }
    cm = calloc(nl * nl + 1, sizeof(long));
    if (!cm)
        goto out;
    for (size_t i = 0; i < n; i++) {
        cm[(size_t)g[i] * nl + (size_t)p[i]]++;
        right += g[i] == p[i];
    }
    double f1sum = 0;
    size_t nclass = 0;
    if (out)
        fprintf(out, "%-24s %9s %9s %9s %7s\n", "class", "precision", "recall", "f1", "support");
    for (size_t c = 0; c < nl; c++) {
        long tp = cm[c * nl + c], gs = 0, ps = 0;
        for (size_t k = 0; k < nl; k++) {
            gs += cm[c * nl + k];
            ps += cm[k * nl + c];
        }
        if (gs == 0)
            continue; /* a class only ever predicted, never true: no recall to speak of */
        double pr = ps ? (double)tp / ps : 0, re = (double)tp / gs;
        double f1 = pr + re > 0 ? 2 * pr * re / (pr + re) : 0;
        f1sum += f1;
        nclass++;
        if (out)
            fprintf(out, "%-24s %9.3f %9.3f %9.3f %7ld\n", labels[c], pr, re, f1, gs);
    }
    s->n = n;
    s->accuracy = n ? (double)right / n : 0;
    s->macro_f1 = nclass ? f1sum / nclass : 0;
    if (out) {
        fprintf(out, "\nconfusion matrix (rows: true, columns: predicted)\n%4s", "");
        for (size_t c = 0; c < nl; c++)
            fprintf(out, " %5zu", c);
        fprintf(out, "\n");
        for (size_t r = 0; r < nl; r++) {
            fprintf(out, "%4zu", r);
            for (size_t c = 0; c < nl; c++)
                fprintf(out, " %5ld", cm[r * nl + c]);
            fprintf(out, "   %s\n", labels[r]);
        }
        fprintf(out, "\naccuracy %.4f  macro-F1 %.4f  (%zu messages)\n", s->accuracy, s->macro_f1,
                n);
    }
    rc = 0;
out:
    free(labels);
    free(g);
    free(p);
    free(cm);
    return rc;
}

/* ---- commands ---- */

static int cli_train(const cli_opts_t *o)
{
    model_train_opts_t t;
    model_data_t lab, tax, unl;
    char err[512];
    int rc = 1;
    if (!o->out) {
        fprintf(stderr, "kesu-classifier train: --out MODEL is required\n");
        return 2;
    }
    if (cli_train_opts(o, &t) || cli_load_training(o, &t, &lab, &tax, &unl))
        return 2;
    int64_t t0 = util_mono_ms();
    model_t *m = model_train(&lab, NULL, 0, &tax, &unl, &t, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "kesu-classifier train: %s\n", err);
        goto out;
    }
    if (model_save(m, o->out, err, sizeof(err)) != 0) {
        fprintf(stderr, "kesu-classifier train: %s\n", err);
        goto out;
    }
    fprintf(stderr,
            "trained %s on %zu labeled + %zu taxonomy + %zu unlabeled messages in %lld ms\n",
            m->name, lab.n, tax.n, unl.n, (long long)(util_mono_ms() - t0));
    printf("{\"model\":\"%s\",\"algo\":\"%s\",\"classes\":%u,\"labeled\":%zu,\"taxonomy\":%zu,"
           "\"unlabeled\":%zu,\"seed\":%llu,\"out\":\"%s\"}\n",
           m->name, model_algo_name(m->algo), m->nclasses, lab.n, tax.n, unl.n,
           (unsigned long long)t.seed, o->out);
    rc = 0;
out:
    model_free(m);
    model_data_free(&lab);
    model_data_free(&tax);
    model_data_free(&unl);
    return rc;
}

static model_t *cli_load_model(const char *path)
{
    char p[4096], err[512];
    config_resolve_path(path ? path : CLASSIFY_DEFAULT_MODEL, p, sizeof(p));
    model_t *m = model_load(p, err, sizeof(err));
    if (!m)
        fprintf(stderr, "kesu-classifier: %s\n", err);
    return m;
}

static int cli_eval(const cli_opts_t *o)
{
    const char *file = o->positional ? o->positional : o->data;
    model_data_t d;
    char err[512];
    int rc = 1;
    uint32_t *buf = NULL;
    const char **pred = NULL;
    if (!file) {
        fprintf(stderr, "kesu-classifier eval: name a JSONL file of title, body, label\n");
        return 2;
    }
    model_t *m = cli_load_model(o->model);
    if (!m)
        return 2;
    model_data_init(&d);
    if (model_data_load(&d, file, "labeled", m->bits, m->title_weight, 1.0f, err, sizeof(err)) <
        0) {
        fprintf(stderr, "kesu-classifier eval: %s\n", err);
        goto out;
    }
    pred = calloc(d.n + 1, sizeof(*pred));
    if (!pred)
        goto out;
    for (size_t i = 0; i < d.n; i++) {
        float conf;
        pred[i] = m->labels[model_predict_doc(m, &d.docs[i], NULL, &conf)];
    }
    cli_scores_t s;
    printf("model %s (%s), %zu messages of %s\n\n", m->name, model_algo_name(m->algo), d.n, file);
    if (cli_score((const char *const *)d.gold, pred, d.n, stdout, &s) != 0)
        goto out;
    printf("{\"accuracy\":%.4f,\"macro_f1\":%.4f,\"n\":%zu,\"model\":\"%s\"}\n", s.accuracy,
           s.macro_f1, s.n, m->name);
    rc = 0;
out:
    free(buf);
    free(pred);
    model_data_free(&d);
    model_free(m);
    return rc;
}

/* stratified folds: each class's messages, shuffled by the seed, dealt round-robin */
static void cli_folds(const model_data_t *d, long k, uint64_t seed, int *fold)
{
    uint64_t s = seed ? seed : 1;
    long next = 0;
    size_t *idx = malloc((d->n + 1) * sizeof(size_t));
    for (unsigned c = 0; c < d->nlabels && idx; c++) {
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++)
            if (d->docs[i].label == (int)c)
                idx[n++] = i;
        model_shuffle(idx, n, &s);
        for (size_t i = 0; i < n; i++)
            fold[idx[i]] = (int)(next++ % k);
    }
    free(idx);
}

static int cli_cv_one(const cli_opts_t *o, model_algo_t algo, model_data_t *lab, model_data_t *tax,
                      model_data_t *unl, cli_scores_t *s, int verbose)
{
    model_train_opts_t t;
    char err[512];
    int *fold = calloc(lab->n + 1, sizeof(int)), rc = -1;
    size_t *train = malloc((lab->n + 1) * sizeof(size_t));
    const char **pred = calloc(lab->n + 1, sizeof(*pred));
    model_t *models[64] = {0};
    if (!fold || !train || !pred || o->folds < 2 || o->folds > 64) {
        fprintf(stderr, "kesu-classifier cv: --folds must be from 2 to 64\n");
        goto out;
    }
    cli_train_opts(o, &t);
    t.algo = algo;
    cli_folds(lab, o->folds, t.seed, fold);
    for (long f = 0; f < o->folds; f++) {
        size_t n = 0;
        for (size_t i = 0; i < lab->n; i++)
            if (fold[i] != f)
                train[n++] = i;
        models[f] = model_train(lab, train, n, tax, unl, &t, err, sizeof(err));
        if (!models[f]) {
            fprintf(stderr, "kesu-classifier cv: %s\n", err);
            goto out;
        }
        for (size_t i = 0; i < lab->n; i++) {
            float conf;
            if (fold[i] == f)
                pred[i] =
                    models[f]->labels[model_predict_doc(models[f], &lab->docs[i], NULL, &conf)];
        }
    }
    if (verbose)
        printf("%s, %ld-fold stratified cross-validation, seed %llu\n\n", model_algo_name(algo),
               o->folds, (unsigned long long)t.seed);
    rc = cli_score((const char *const *)lab->gold, pred, lab->n, verbose ? stdout : NULL, s);
out:
    for (int f = 0; f < 64; f++)
        model_free(models[f]);
    free(fold);
    free(train);
    free(pred);
    return rc;
}

static int cli_cv(const cli_opts_t *o)
{
    model_train_opts_t t;
    model_data_t lab, tax, unl;
    cli_scores_t s[3];
    int all = o->algo && strcmp(o->algo, "all") == 0, rc = 1;
    cli_opts_t oo = *o;
    if (all)
        oo.algo = NULL;
    if (cli_train_opts(&oo, &t) || cli_load_training(&oo, &t, &lab, &tax, &unl))
        return 2;
    if (all) {
        for (int a = 0; a < 3; a++) {
            if (cli_cv_one(&oo, (model_algo_t)a, &lab, &tax, &unl, &s[a], 0) != 0)
                goto out;
            printf("%s: accuracy %.4f macro-F1 %.4f\n", model_algo_name((model_algo_t)a),
                   s[a].accuracy, s[a].macro_f1);
        }
        printf("{\"folds\":%ld,\"nb\":{\"accuracy\":%.4f,\"macro_f1\":%.4f},\"lr\":{\"accuracy\":"
               "%.4f,\"macro_f1\":%.4f},\"ap\":{\"accuracy\":%.4f,\"macro_f1\":%.4f},"
               "\"accuracy\":%.4f,\"macro_f1\":%.4f}\n",
               o->folds, s[0].accuracy, s[0].macro_f1, s[1].accuracy, s[1].macro_f1, s[2].accuracy,
               s[2].macro_f1, s[t.algo].accuracy, s[t.algo].macro_f1);
    } else {
        if (cli_cv_one(&oo, t.algo, &lab, &tax, &unl, &s[0], 1) != 0)
            goto out;
        printf("{\"folds\":%ld,\"algo\":\"%s\",\"accuracy\":%.4f,\"macro_f1\":%.4f,\"n\":%zu}\n",
               o->folds, model_algo_name(t.algo), s[0].accuracy, s[0].macro_f1, s[0].n);
    }
    rc = 0;
out:
    model_data_free(&lab);
    model_data_free(&tax);
    model_data_free(&unl);
    return rc;
}

/* the four shipped files, or what the options name */
static classify_t *cli_load_classifier(const cli_opts_t *o)
{
    char mp[4096], rp[4096], ap[4096], dp[4096], err[1024];
    config_resolve_path(o->model ? o->model : CLASSIFY_DEFAULT_MODEL, mp, sizeof(mp));
    config_resolve_path(o->rules ? o->rules : CLASSIFY_DEFAULT_RULES, rp, sizeof(rp));
    config_resolve_path(CLASSIFY_DEFAULT_ALERTS, ap, sizeof(ap));
    config_resolve_path(o->domains ? o->domains : CLASSIFY_DEFAULT_DOMAINS, dp, sizeof(dp));
    classify_paths_t p = {mp, rp, ap, dp};
    classify_t *c = classify_load(&p, 0.5, err, sizeof(err));
    if (!c)
        fprintf(stderr, "kesu-classifier: %s\n", err);
    return c;
}

/* classifications per second of the whole live path (model, rules, alerts)
 * over real messages, on this one thread */
static int cli_bench(const cli_opts_t *o)
{
    const char *file = o->data ? o->data : (o->positional ? o->positional : CLI_DEFAULT_BENCH);
    FILE *f = fopen(file, "r");
    char *line = NULL;
    size_t cap = 0, n = 0, ncap = 0, chars = 0;
    char **titles = NULL, **bodies = NULL;
    int rc = 1;
    classify_t *c = NULL;
    if (!f) {
        fprintf(stderr, "kesu-classifier bench: cannot open %s\n", file);
        return 2;
    }
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *row = json_loads(line, 0, &e);
        const char *t = json_string_value(json_object_get(row, "title"));
        const char *b = json_string_value(json_object_get(row, "body"));
        if (t && b) {
            if (n == ncap) {
                ncap = ncap ? 2 * ncap : 1024;
                titles = realloc(titles, ncap * sizeof(char *));
                bodies = realloc(bodies, ncap * sizeof(char *));
            }
            titles[n] = strdup(t);
            bodies[n] = strdup(b);
            chars += strlen(t) + strlen(b);
            n++;
        }
        json_decref(row);
    }
    free(line);
    fclose(f);
    c = cli_load_classifier(o);
    if (!c || n == 0)
        goto out;
    long done = 0, review = 0, flagged = 0;
    int64_t t0 = util_mono_ms(), limit = (o->seconds > 0 ? o->seconds : 2) * 1000, el;
    do {
        for (size_t i = 0; i < n; i++) {
            classify_result_t res;
            classify_text(c, titles[i], bodies[i], &res);
            review += res.needs_review;
            flagged += res.nflags > 0;
        }
        done += (long)n;
        el = util_mono_ms() - t0;
    } while (el < limit);
    double per_s = el > 0 ? done * 1000.0 / el : 0;
    printf("%ld classifications in %lld ms on one thread over %zu real messages (%zu bytes "
           "average): %.0f per second; needs_review %.1f %%, flagged %.1f %%\n",
           done, (long long)el, n, chars / n, per_s, 100.0 * review / done, 100.0 * flagged / done);
    /* the duplicate search's fingerprint of the same messages (not in the figure above) */
    long hashed = 0;
    uint64_t mix = 0;
    int64_t h0 = util_mono_ms(), hel;
    do {
        for (size_t i = 0; i < n; i++)
            mix ^= dedup_simhash(titles[i], bodies[i]);
        hashed += (long)n;
        hel = util_mono_ms() - h0;
    } while (hel < limit);
    double simhash_per_s = hel > 0 ? hashed * 1000.0 / hel : 0;
    printf("%ld fingerprints in %lld ms on one thread: %.0f per second (xor %016llx)\n", hashed,
           (long long)hel, simhash_per_s, (unsigned long long)mix);
    printf("{\"classifier_per_s\":%.0f,\"simhash_per_s\":%.0f,\"messages\":%zu,"
           "\"avg_bytes\":%zu,\"model\":\"%s\"}\n",
           per_s, simhash_per_s, n, chars / n, c->name);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(titles[i]);
        free(bodies[i]);
    }
    free(titles);
    free(bodies);
    classify_free(c);
    return rc;
}

int cli_main(int argc, char **argv)
{
    cli_opts_t o;
    if (cli_parse(argc, argv, &o) != 0)
        return 2;
    if (strcmp(argv[1], "train") == 0)
        return cli_train(&o);
    if (strcmp(argv[1], "eval") == 0)
        return cli_eval(&o);
    if (strcmp(argv[1], "cv") == 0)
        return cli_cv(&o);
    return cli_bench(&o);
}
