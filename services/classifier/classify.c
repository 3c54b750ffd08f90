/*
 * classify: rules + model + alerts -> one classification (see classify.h).
 *
 * Keyword scoring (request types, categories, the rules' domain): score of
 * a class = sum over its keywords of weight x hits, where hits =
 * title_weight x (occurrences in the title) + (occurrences in the body),
 * each count capped at max_hits so one repeated word cannot drown the rest.
 * Chinese keywords match as substrings, English ones case-insensitively
 * where a word starts ("potholes" matches "pothole", "pirate" not "rat").
 * All keywords are counted in one Aho-Corasick pass per field.
 *
 * Domain: the model's best class when its probability reaches the review
 * threshold; otherwise the rules' domain if their keywords are clearer
 * (confidence = margin x strength, margin = (best - runner-up) / best,
 * strength = best / (best + 4)), which places English messages the model
 * never saw; otherwise the model's guess with needs_review.
 *
 * Urgency: the most severe of the alert rules' levels (a set flag implies
 * one, e.g. public_safety -> emergency) and the rules' keyword levels;
 * when neither says anything, the request type may imply one (a
 * consultation is low), else the default (normal).
 */
#include "classify.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static const char *const cl_request_types[] = {"consultation", "help",   "complaint", "report",
                                               "suggestion",   "praise", NULL};
static const char *const cl_categories[] = {
    "service_quality", "efficiency", "facilities", "staff_attitude", "policy", "other", NULL};
static const char *const cl_urgencies[] = {"low", "normal", "urgent", "emergency", NULL};

/* ---- loading ---- */

static int cl_in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int cl_is_domain(const classify_rules_t *r, const char *code)
{
    for (size_t i = 0; i < r->ndomains; i++)
        if (strcmp(r->domain_list[i].code, code) == 0)
            return 1;
    return 0;
}

static json_t *cl_load_json(const char *path, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        if (e.line > 0)
            snprintf(errstr, errstr_size, "%s:%d:%d: %s", path, e.line, e.column, e.text);
        else
            snprintf(errstr, errstr_size, "%s: %s", path, e.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "%s: the top level must be a JSON object", path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* an integer member within [lo, hi], or def when absent */
static int cl_int(const char *file, const char *path, json_t *obj, const char *key, int def, int lo,
                  int hi, int *out, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(errstr, errstr_size, "%s: %s%s%s: must be an integer from %d to %d", file, path,
                 *path ? "." : "", key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int cl_parse_keywords(const char *file, const char *path, json_t *obj, int ascii,
                             classify_set_t *s, char *errstr, size_t errstr_size)
{
    const char *k;
    json_t *v;
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size, "%s: %s: must be an object of keyword: weight", file, path);
        return -1;
    }
    size_t n = s->nkw + json_object_size(obj);
    classify_kw_t *kw = realloc(s->kw, (n ? n : 1) * sizeof(*kw));
    if (!kw) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    s->kw = kw;
    json_object_foreach(obj, k, v)
    {
        size_t len = strlen(k);
        if (len == 0 || !util_utf8_valid(k, len)) {
            snprintf(errstr, errstr_size, "%s: %s: empty or invalid UTF-8 keyword", file, path);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100) {
            snprintf(errstr, errstr_size, "%s: %s.\"%s\": weight must be an integer from 1 to 100",
                     file, path, k);
            return -1;
        }
        char *text = strdup(k);
        if (!text) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        if (ascii) {
            for (char *p = text; *p; p++) {
                if ((unsigned char)*p >= 0x80) {
                    snprintf(errstr, errstr_size,
                             "%s: %s.\"%s\": an \"en\" keyword must be ASCII (put it under \"zh\")",
                             file, path, k);
                    free(text);
                    return -1;
                }
                *p = (char)tolower((unsigned char)*p);
            }
        }
        s->kw[s->nkw].text = text;
        s->kw[s->nkw].weight = (int)json_integer_value(v);
        s->kw[s->nkw].ascii = ascii;
        s->kw[s->nkw].idx = 0; /* numbered when the automaton is built */
        s->nkw++;
    }
    return 0;
}

static int cl_parse_set(const char *file, const char *path, const char *code, json_t *obj,
                        classify_set_t *s, char *errstr, size_t errstr_size)
{
    const char *k;
    json_t *v;
    char sub[256];
    s->code = strdup(code);
    if (!s->code) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size, "%s: %s: must be an object with \"zh\" and/or \"en\"", file,
                 path);
        return -1;
    }
    if (cl_int(file, path, obj, "min_score", 1, 1, 100000, &s->min_score, errstr, errstr_size))
        return -1;
    json_object_foreach(obj, k, v)
    {
        if (snprintf(sub, sizeof(sub), "%.200s.%.50s", path, k) < 0)
            sub[0] = '\0';
        if (k[0] == '_' || strcmp(k, "min_score") == 0)
            continue;
        if (strcmp(k, "zh") == 0 || strcmp(k, "en") == 0) {
            if (cl_parse_keywords(file, sub, v, strcmp(k, "en") == 0, s, errstr, errstr_size))
                return -1;
            continue;
        }
        snprintf(errstr, errstr_size,
                 "%s: %s: unknown key (expected \"zh\", \"en\" or \"min_score\")", file, sub);
        return -1;
    }
    if (s->nkw == 0) {
        snprintf(errstr, errstr_size, "%s: %s: has no keywords", file, path);
        return -1;
    }
    return 0;
}

/* codes: the allowed class codes, or NULL for "a domain of domains.json" */
static int cl_parse_group(const classify_rules_t *r, const char *file, json_t *root,
                          const char *name, const char *const *codes, int need_default,
                          classify_group_t *g, char *errstr, size_t errstr_size)
{
    json_t *grp = json_object_get(root, name), *classes, *v;
    const char *k;
    char path[256];
    if (!json_is_object(grp)) {
        snprintf(errstr, errstr_size, "%s: %s: missing or not an object", file, name);
        return -1;
    }
    json_t *def = json_object_get(grp, "default");
    if (need_default || def) {
        if (!json_is_string(def)) {
            snprintf(errstr, errstr_size, "%s: %s.default: missing or not a string", file, name);
            return -1;
        }
        const char *d = json_string_value(def);
        if (codes ? !cl_in_list(codes, d) : !cl_is_domain(r, d)) {
            snprintf(errstr, errstr_size, "%s: %s.default: unknown %s \"%s\"", file, name,
                     codes ? "code" : "domain (not in domains.json)", d);
            return -1;
        }
        g->def = strdup(d);
        if (!g->def) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    classes = json_object_get(grp, "classes");
    if (!json_is_object(classes) || json_object_size(classes) == 0) {
        snprintf(errstr, errstr_size, "%s: %s.classes: missing, empty or not an object", file,
                 name);
        return -1;
    }
    g->sets = calloc(json_object_size(classes), sizeof(*g->sets));
    if (!g->sets) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_object_foreach(classes, k, v)
    {
        snprintf(path, sizeof(path), "%s.classes.%s", name, k);
        if (k[0] == '_')
            continue;
        if (codes ? !cl_in_list(codes, k) : !cl_is_domain(r, k)) {
            snprintf(errstr, errstr_size, "%s: %s: unknown %s", file, path,
                     codes ? "code" : "domain (not in domains.json)");
            return -1;
        }
        classify_set_t *s = &g->sets[g->nsets++];
        if (cl_parse_set(file, path, k, v, s, errstr, errstr_size))
            return -1;
    }
    return 0;
}

/* "by_flag" / "by_request_type": class code -> urgency level */
static int cl_parse_implies(const char *file, json_t *urg, const char *key, classify_group_t *g,
                            char *errstr, size_t errstr_size)
{
    json_t *map = json_object_get(urg, key), *v;
    const char *k;
    if (!map)
        return 0;
    if (!json_is_object(map)) {
        snprintf(errstr, errstr_size, "%s: urgency.%s: must be an object", file, key);
        return -1;
    }
    json_object_foreach(map, k, v)
    {
        classify_set_t *s = NULL;
        for (size_t i = 0; i < g->nsets; i++)
            if (strcmp(g->sets[i].code, k) == 0)
                s = &g->sets[i];
        if (!s) {
            snprintf(errstr, errstr_size, "%s: urgency.%s.%s: not a class of %s", file, key, k,
                     "request_types");
            return -1;
        }
        if (!json_is_string(v) || !cl_in_list(cl_urgencies, json_string_value(v))) {
            snprintf(errstr, errstr_size,
                     "%s: urgency.%s.%s: must be one of low, normal, urgent, emergency", file, key,
                     k);
            return -1;
        }
        s->implies = strdup(json_string_value(v));
        if (!s->implies) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int cl_load_domains(classify_rules_t *r, const char *path, char *errstr, size_t errstr_size)
{
    json_t *root = cl_load_json(path, errstr, errstr_size), *list, *d;
    size_t i;
    int rc = -1, has_other = 0;
    if (!root)
        return -1;
    list = json_object_get(root, "domains");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        snprintf(errstr, errstr_size, "%s: domains: missing, empty or not an array", path);
        goto out;
    }
    r->domain_list = calloc(json_array_size(list), sizeof(*r->domain_list));
    if (!r->domain_list) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    json_array_foreach(list, i, d)
    {
        const char *code = json_string_value(json_object_get(d, "code"));
        const char *label = json_string_value(json_object_get(d, "label"));
        if (!code || !*code || !label || !*label) {
            snprintf(errstr, errstr_size, "%s: domains[%zu]: needs string \"code\" and \"label\"",
                     path, i);
            goto out;
        }
        for (const char *p = code; *p; p++) {
            if (!islower((unsigned char)*p) && *p != '_' && !isdigit((unsigned char)*p)) {
                snprintf(errstr, errstr_size,
                         "%s: domains[%zu].code: \"%s\" may use only a-z, 0-9 and _", path, i,
                         code);
                goto out;
            }
        }
        if (cl_is_domain(r, code)) {
            snprintf(errstr, errstr_size, "%s: domains[%zu].code: \"%s\" appears twice", path, i,
                     code);
            goto out;
        }
        r->domain_list[r->ndomains].code = strdup(code);
        r->domain_list[r->ndomains].label = strdup(label);
        r->ndomains++;
        if (!r->domain_list[r->ndomains - 1].code || !r->domain_list[r->ndomains - 1].label) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        has_other |= strcmp(code, "other") == 0;
    }
    if (!has_other) {
        snprintf(errstr, errstr_size, "%s: domains: needs the fallback domain \"other\"", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* number every keyword and put them all into one automaton */
static int cl_build(classify_rules_t *r, const char *file, char *errstr, size_t errstr_size)
{
    classify_group_t *groups[] = {&r->domains, &r->request_types, &r->categories, &r->urgency};
    r->ac = acmatch_new();
    if (!r->ac)
        goto oom;
    for (size_t g = 0; g < 4; g++)
        for (size_t i = 0; i < groups[g]->nsets; i++)
            for (size_t k = 0; k < groups[g]->sets[i].nkw; k++) {
                classify_kw_t *kw = &groups[g]->sets[i].kw[k];
                if (r->nkw >= CLASSIFY_MAX_KEYWORDS) {
                    snprintf(errstr, errstr_size, "%s: more than %d keywords", file,
                             CLASSIFY_MAX_KEYWORDS);
                    return -1;
                }
                kw->idx = (uint32_t)r->nkw++;
                if (acmatch_add(r->ac, kw->text, kw->idx, kw->ascii ? ACMATCH_WORD_START : 0))
                    goto oom;
            }
    if (acmatch_build(r->ac) != 0)
        goto oom;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

classify_rules_t *classify_rules_load(const char *rules_path, const char *domains_path,
                                      char *errstr, size_t errstr_size)
{
    classify_rules_t *r = calloc(1, sizeof(*r));
    json_t *root = NULL, *v;
    const char *f = rules_path;
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->review_threshold = 0.3;
    if (cl_load_domains(r, domains_path, errstr, errstr_size))
        goto err;
    root = cl_load_json(rules_path, errstr, errstr_size);
    if (!root)
        goto err;

    v = json_object_get(root, "model");
    if (!json_is_string(v) || !*json_string_value(v) ||
        strlen(json_string_value(v)) >= sizeof(r->model)) {
        snprintf(errstr, errstr_size, "%s: model: missing, empty or longer than %zu bytes", f,
                 sizeof(r->model) - 1);
        goto err;
    }
    snprintf(r->model, sizeof(r->model), "%s", json_string_value(v));
    if (cl_int(f, "", root, "title_weight", 2, 1, 100, &r->title_weight, errstr, errstr_size) ||
        cl_int(f, "", root, "max_hits", 3, 1, 1000, &r->max_hits, errstr, errstr_size) ||
        cl_int(f, "", root, "min_domain_score", 1, 1, 100000, &r->min_domain_score, errstr,
               errstr_size))
        goto err;

    if (cl_parse_group(r, f, root, "domains", NULL, 1, &r->domains, errstr, errstr_size) ||
        cl_parse_group(r, f, root, "request_types", cl_request_types, 1, &r->request_types, errstr,
                       errstr_size) ||
        cl_parse_group(r, f, root, "categories", cl_categories, 1, &r->categories, errstr,
                       errstr_size) ||
        cl_parse_group(r, f, root, "urgency", cl_urgencies, 1, &r->urgency, errstr, errstr_size))
        goto err;
    v = json_object_get(root, "urgency");
    if (cl_parse_implies(f, v, "by_request_type", &r->request_types, errstr, errstr_size))
        goto err;
    if (cl_build(r, f, errstr, errstr_size) != 0)
        goto err;
    json_decref(root);
    return r;
err:
    json_decref(root);
    classify_rules_free(r);
    return NULL;
}

static void cl_group_free(classify_group_t *g)
{
    for (size_t i = 0; i < g->nsets; i++) {
        classify_set_t *s = &g->sets[i];
        for (size_t k = 0; k < s->nkw; k++)
            free(s->kw[k].text);
        free(s->kw);
        free(s->code);
        free(s->implies);
    }
    free(g->sets);
    free(g->def);
}

void classify_rules_free(classify_rules_t *r)
{
    if (!r)
        return;
    cl_group_free(&r->domains);
    cl_group_free(&r->request_types);
    cl_group_free(&r->categories);
    cl_group_free(&r->urgency);
    for (size_t i = 0; i < r->ndomains; i++) {
        free(r->domain_list[i].code);
        free(r->domain_list[i].label);
    }
    free(r->domain_list);
    acmatch_free(r->ac);
    free(r);
}

/* ---- scoring ---- */

/* per-thread scratch: keyword hits of the message being classified, and the
 * feature buffer of the model; so the hot path allocates nothing */
typedef struct cl_scratch {
    uint16_t hits[2][CLASSIFY_MAX_KEYWORDS]; /* [0] title, [1] body */
    uint32_t feat[MODEL_FEATURE_CAP];
} cl_scratch_t;

static _Thread_local cl_scratch_t cl_tls;

typedef struct cl_count_arg {
    uint16_t *hits;
} cl_count_arg_t;

static int cl_on_match(void *arg, uint32_t id, size_t start, size_t end)
{
    cl_count_arg_t *a = arg;
    if (a->hits[id] < UINT16_MAX)
        a->hits[id]++;
    return 0;
}

static void cl_count_all(const classify_rules_t *r, const char *title, const char *body)
{
    cl_count_arg_t a;
    memset(cl_tls.hits[0], 0, r->nkw * sizeof(uint16_t));
    memset(cl_tls.hits[1], 0, r->nkw * sizeof(uint16_t));
    a.hits = cl_tls.hits[0];
    if (title)
        acmatch_scan(r->ac, title, strlen(title), cl_on_match, &a);
    a.hits = cl_tls.hits[1];
    if (body)
        acmatch_scan(r->ac, body, strlen(body), cl_on_match, &a);
}

static int cl_cap(int n, int max)
{
    return n < max ? n : max;
}

static int cl_score(const classify_rules_t *r, const classify_set_t *s)
{
    int score = 0;
    for (size_t i = 0; i < s->nkw; i++) {
        uint32_t id = s->kw[i].idx;
        int hits = r->title_weight * cl_cap(cl_tls.hits[0][id], r->max_hits) +
                   cl_cap(cl_tls.hits[1][id], r->max_hits);
        score += s->kw[i].weight * hits;
    }
    return score;
}

/* urgency levels weigh evidence, not emphasis: each keyword counts once */
static int cl_score_distinct(const classify_set_t *s)
{
    int score = 0;
    for (size_t i = 0; i < s->nkw; i++)
        if (cl_tls.hits[0][s->kw[i].idx] || cl_tls.hits[1][s->kw[i].idx])
            score += s->kw[i].weight;
    return score;
}

/* index of the best set reaching its min_score (earlier wins ties), or -1;
 * *best_score is its score, *other_score the best score of any other set */
static int cl_best(const classify_rules_t *r, const classify_group_t *g, int *best_score,
                   int *other_score)
{
    int best = -1, bs = 0, top = 0, second = 0;
    for (size_t i = 0; i < g->nsets; i++) {
        int sc = cl_score(r, &g->sets[i]);
        if (sc > top) {
            second = top;
            top = sc;
        } else if (sc > second) {
            second = sc;
        }
        if (sc >= g->sets[i].min_score && sc > bs) {
            bs = sc;
            best = (int)i;
        }
    }
    if (best_score)
        *best_score = bs;
    if (other_score)
        *other_score = best >= 0 && bs == top ? second : top;
    return best;
}

/* the request type's set (the default's when none won), for its implied urgency */
static const classify_set_t *cl_request_type(const classify_rules_t *r)
{
    int best = cl_best(r, &r->request_types, NULL, NULL);
    if (best >= 0)
        return &r->request_types.sets[best];
    for (size_t i = 0; i < r->request_types.nsets; i++)
        if (strcmp(r->request_types.sets[i].code, r->request_types.def) == 0)
            return &r->request_types.sets[i];
    return NULL;
}

/* rules part of a classification; *sev receives the rules' urgency level (-1: none) */
static void cl_rules(const classify_rules_t *r, const char *title, const char *body,
                     classify_result_t *out, const classify_set_t **rt, int *sev)
{
    int best, bs, ss;
    cl_count_all(r, title, body);
    best = cl_best(r, &r->domains, &bs, &ss);
    out->runner_up_score = ss;
    if (best >= 0 && bs >= r->min_domain_score) {
        out->domain = r->domains.sets[best].code;
        out->domain_score = bs;
        out->confidence = ((double)(bs - ss) / bs) * ((double)bs / (bs + 4.0));
        out->domain_source = "rules";
    } else {
        out->domain = r->domains.def;
        out->runner_up_score = bs > ss ? bs : ss;
        out->confidence = 0.0;
        out->domain_source = "default";
    }
    *rt = cl_request_type(r);
    out->request_type = *rt ? (*rt)->code : r->request_types.def;
    best = cl_best(r, &r->categories, NULL, NULL);
    out->category = best >= 0 ? r->categories.sets[best].code : r->categories.def;
    *sev = -1;
    for (size_t i = 0; i < r->urgency.nsets; i++) {
        const classify_set_t *u = &r->urgency.sets[i];
        int s = alert_severity(u->code);
        if (cl_score_distinct(u) >= u->min_score && s > *sev)
            *sev = s;
    }
}

static void cl_urgency(const classify_rules_t *r, const classify_set_t *rt, int sev,
                       classify_result_t *out)
{
    if (sev >= 0)
        out->urgency = alert_urgency_name(sev);
    else if (rt && rt->implies)
        out->urgency = alert_urgency_name(alert_severity(rt->implies));
    else
        out->urgency = alert_urgency_name(alert_severity(r->urgency.def));
}

int classify_rules_text(const classify_rules_t *r, const char *title, const char *body,
                        classify_result_t *out)
{
    const classify_set_t *rt;
    int sev;
    memset(out, 0, sizeof(*out));
    cl_rules(r, title, body, out, &rt, &sev);
    cl_urgency(r, rt, sev, out);
    out->needs_review = out->confidence < r->review_threshold;
    return 0;
}

/* 1 if text holds a CJK ideograph (UTF-8 lead byte of U+4E00..U+9FFF) */
static int cl_has_han(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++)
        if (*p >= 0xE4 && *p <= 0xE9)
            return 1;
    return 0;
}

int classify_text(const classify_t *c, const char *title, const char *body, classify_result_t *out)
{
    const classify_rules_t *r = c->rules;
    const classify_set_t *rt;
    alert_result_t al;
    float conf;
    int sev;
    memset(out, 0, sizeof(*out));
    cl_rules(r, title, body, out, &rt, &sev);

    float probs[MODEL_MAX_CLASSES];
    int k = model_predict(c->model, title, body, cl_tls.feat, MODEL_FEATURE_CAP, probs, &conf);
    out->model_confidence = conf;
    if (cl_has_han(title) || cl_has_han(body)) {
        /* model and keywords vote: the model's probability of each domain,
         * plus rules_weight x the keywords' confidence for their domain */
        double best = -1;
        int bi = k;
        for (unsigned i = 0; i < c->model->nclasses; i++) {
            double v = probs[i];
            if (out->domain_source[0] == 'r' &&
                strcmp(r->domain_list[c->model_domain[i]].code, out->domain) == 0)
                v += CLASSIFY_RULES_WEIGHT * out->confidence;
            if (v > best) {
                best = v;
                bi = (int)i;
            }
        }
        double rc = strcmp(r->domain_list[c->model_domain[bi]].code, out->domain) == 0
                        ? out->confidence
                        : 0;
        out->domain = r->domain_list[c->model_domain[bi]].code;
        out->domain_source = bi == k ? "model" : "rules";
        /* agreement makes it surer; the confidence stays a probability */
        out->confidence =
            probs[bi] + (1 - probs[bi]) * rc * CLASSIFY_RULES_WEIGHT / (1 + CLASSIFY_RULES_WEIGHT);
    }
    /* else: no Chinese at all, which the model never saw; the keywords decide */
    out->needs_review = out->confidence < c->review_threshold;

    alert_scan(c->alerts, title, body, &al);
    for (size_t i = 0; i < al.nflags && out->nflags < CLASSIFY_MAX_FLAGS; i++)
        out->flags[out->nflags++] = al.flags[i];
    if (al.severity > sev)
        sev = al.severity;
    cl_urgency(r, rt, sev, out);
    return 0;
}

/* ---- the whole classifier ---- */

classify_t *classify_load(const classify_paths_t *p, double review_threshold, char *errstr,
                          size_t errstr_size)
{
    classify_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->review_threshold = review_threshold;
    c->rules = classify_rules_load(p->rules, p->domains, errstr, errstr_size);
    if (!c->rules)
        goto err;
    c->rules->review_threshold = review_threshold;
    c->alerts = alert_rules_load(p->alerts, errstr, errstr_size);
    if (!c->alerts)
        goto err;
    c->model = model_load(p->model, errstr, errstr_size);
    if (!c->model)
        goto err;
    for (unsigned k = 0; k < c->model->nclasses; k++) {
        const char *code = classify_domain_code(c->rules, c->model->labels[k]);
        if (!code) {
            snprintf(errstr, errstr_size, "%s: class \"%s\" is not a label of %s", p->model,
                     c->model->labels[k], p->domains);
            goto err;
        }
        for (size_t i = 0; i < c->rules->ndomains; i++)
            if (c->rules->domain_list[i].code == code)
                c->model_domain[k] = (int)i;
    }
    snprintf(c->name, sizeof(c->name), "%s+%s", c->model->name, c->rules->model);
    return c;
err:
    classify_free(c);
    return NULL;
}

void classify_free(classify_t *c)
{
    if (!c)
        return;
    classify_rules_free(c->rules);
    alert_rules_free(c->alerts);
    model_free(c->model);
    free(c);
}

const char *classify_domain_code(const classify_rules_t *r, const char *label)
{
    for (size_t i = 0; label && i < r->ndomains; i++)
        if (strcmp(r->domain_list[i].label, label) == 0)
            return r->domain_list[i].code;
    return NULL;
}

int classify_has_flag(const classify_result_t *res, const char *flag)
{
    for (size_t i = 0; i < res->nflags; i++)
        if (strcmp(res->flags[i], flag) == 0)
            return 1;
    return 0;
}
