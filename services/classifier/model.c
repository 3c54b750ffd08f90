/*
 * model: training, prediction and the model file. See model.h.
 *
 * Training works on documents prepared once (sorted unique buckets with
 * counts); every algorithm fills the same dense weight table. The live path
 * (model_predict) only extracts features into the caller's buffer and adds
 * up table rows: no allocation, no sorting.
 */
#include "model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "textfeat.h"
#include "util.h"

#define MODEL_MAGIC  "KESUCLF1"
#define MODEL_FORMAT 1

void model_train_opts_default(model_train_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->algo = MODEL_AP;
    o->bits = 18;
    o->seed = 12345;
    o->title_weight = 2;
    o->alpha = 0.05;
    o->epochs = 15;
    o->lr = 0.5;
    o->l2 = 1e-6;
    o->tax_weight = 3.0;
    o->self_rounds = 2;
    o->self_threshold = 0.9;
    o->self_weight = 0.3;
    o->idf = 1;
}

static const char *const model_algos[] = {"nb", "lr", "ap"};

int model_algo_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, model_algos[i]) == 0)
            return i;
    return -1;
}

const char *model_algo_name(model_algo_t a)
{
    return (unsigned)a < 3 ? model_algos[a] : "?";
}

/* ---- data ---- */

void model_data_init(model_data_t *d)
{
    memset(d, 0, sizeof(*d));
}

void model_data_free(model_data_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->docs[i].ids);
        free(d->docs[i].val);
        free(d->gold[i]);
    }
    free(d->docs);
    free(d->gold);
    free(d->labels);
    memset(d, 0, sizeof(*d));
}

int model_data_label(const model_data_t *d, const char *label)
{
    for (unsigned i = 0; label && i < d->nlabels; i++)
        if (strcmp(d->labels[i], label) == 0)
            return (int)i;
    return -1;
}

static int md_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* features of title (counted tw times) and body, as sorted unique ids with counts */
static int md_make_doc(model_doc_t *doc, const char *title, const char *body, unsigned bits,
                       unsigned tw, uint32_t *buf)
{
    size_t n = 0, nt;
    textfeat_extract(title, bits, buf, &n, MODEL_FEATURE_CAP);
    nt = n;
    textfeat_extract(body, bits, buf, &n, MODEL_FEATURE_CAP);
    /* sort each field's ids, then merge, a title occurrence counting tw times */
    qsort(buf, nt, sizeof(uint32_t), md_cmp_u32);
    qsort(buf + nt, n - nt, sizeof(uint32_t), md_cmp_u32);
    doc->ids = malloc((n ? n : 1) * sizeof(uint32_t));
    doc->val = malloc((n ? n : 1) * sizeof(float));
    if (!doc->ids || !doc->val)
        return -1;
    /* merge the two sorted runs */
    size_t i = 0, j = nt, k = 0;
    doc->len = 0;
    while (i < nt || j < n) {
        uint32_t id;
        float v;
        if (j >= n || (i < nt && buf[i] <= buf[j])) {
            id = buf[i++];
            v = (float)tw;
        } else {
            id = buf[j++];
            v = 1;
        }
        if (k > 0 && doc->ids[k - 1] == id) {
            doc->val[k - 1] += v;
        } else {
            doc->ids[k] = id;
            doc->val[k] = v;
            k++;
        }
        doc->len += v;
    }
    doc->n = (uint32_t)k;
    return 0;
}

static int md_add(model_data_t *d, const char *title, const char *body, int label, const char *gold,
                  unsigned bits, unsigned tw, float weight, uint32_t *buf)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        model_doc_t *docs = realloc(d->docs, cap * sizeof(*docs));
        if (!docs)
            return -1;
        d->docs = docs;
        char **g = realloc(d->gold, cap * sizeof(*g));
        if (!g)
            return -1;
        d->gold = g;
        d->cap = cap;
    }
    model_doc_t *doc = &d->docs[d->n];
    memset(doc, 0, sizeof(*doc));
    d->gold[d->n] = strdup(gold ? gold : "");
    d->n++;
    doc->label = label;
    doc->weight = weight;
    if (!d->gold[d->n - 1])
        return -1;
    return md_make_doc(doc, title, body, bits, tw, buf);
}

static int md_new_label(model_data_t *d, const char *label)
{
    int i = model_data_label(d, label);
    if (i >= 0)
        return i;
    if (d->nlabels >= MODEL_MAX_CLASSES || strlen(label) >= MODEL_MAX_LABEL)
        return -1;
    char(*l)[MODEL_MAX_LABEL] = realloc(d->labels, (d->nlabels + 1) * sizeof(*l));
    if (!l)
        return -1;
    d->labels = l;
    snprintf(d->labels[d->nlabels], MODEL_MAX_LABEL, "%s", label);
    return (int)d->nlabels++;
}

long model_data_load(model_data_t *d, const char *path, const char *kind, unsigned bits,
                     unsigned title_weight, float weight, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, text[1024];
    size_t cap = 0;
    long lineno = 0, added = 0, rc = -1;
    uint32_t *buf = malloc(MODEL_FEATURE_CAP * sizeof(uint32_t));
    int labeled = strcmp(kind, "labeled") == 0, tax = strcmp(kind, "taxonomy") == 0;
    if (!f || !buf) {
        snprintf(errstr, errstr_size, "%s: %s", path, f ? "out of memory" : strerror(errno));
        goto out;
    }
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        json_t *row = json_loads(line, 0, &e);
        if (!json_is_object(row)) {
            snprintf(errstr, errstr_size, "%s:%ld: not a JSON object (%s)", path, lineno, e.text);
            json_decref(row);
            goto out;
        }
        const char *title = json_string_value(json_object_get(row, "title"));
        const char *body = json_string_value(json_object_get(row, "body"));
        const char *label = json_string_value(json_object_get(row, "label"));
        int li = -1, ok = 0;
        if (tax) {
            const char *l1 = json_string_value(json_object_get(row, "level1"));
            li = model_data_label(d, l1);
            snprintf(text, sizeof(text), "%s，%s",
                     json_string_value(json_object_get(row, "level2")) ?: "",
                     json_string_value(json_object_get(row, "level3")) ?: "");
            ok = li < 0 || md_add(d, NULL, text, li, l1, bits, title_weight, weight, buf) == 0;
            added += li >= 0;
        } else {
            if (labeled) {
                if (!label || !*label) {
                    snprintf(errstr, errstr_size, "%s:%ld: no \"label\"", path, lineno);
                    json_decref(row);
                    goto out;
                }
                li = md_new_label(d, label);
                if (li < 0) {
                    snprintf(errstr, errstr_size, "%s:%ld: too many labels or label too long", path,
                             lineno);
                    json_decref(row);
                    goto out;
                }
            }
            ok = md_add(d, title, body, li, labeled ? label : NULL, bits, title_weight, weight,
                        buf) == 0;
            added++;
        }
        json_decref(row);
        if (!ok) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
    }
    rc = added;
out:
    free(line);
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

/* ---- training ---- */

/* one training item: a document with the label and weight it is trained with */
typedef struct md_item {
    const model_doc_t *d;
    int label;
    float weight;
} md_item_t;

/* xorshift64*: the one random source of training, seeded by the options */
static uint64_t md_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

void model_shuffle(size_t *order, size_t n, uint64_t *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(md_rand(rng) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

static model_t *md_model_new(const model_data_t *lab, const model_train_opts_t *o)
{
    model_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->algo = o->algo;
    m->bits = o->bits;
    m->nclasses = lab->nlabels;
    m->title_weight = o->title_weight;
    m->temperature = 1.0f;
    for (unsigned c = 0; c < m->nclasses; c++)
        snprintf(m->labels[c], MODEL_MAX_LABEL, "%s", lab->labels[c]);
    m->w = calloc((size_t)1 << o->bits, m->nclasses * sizeof(float));
    if (!m->w) {
        free(m);
        return NULL;
    }
    snprintf(m->name, sizeof(m->name), "%s-untrained", model_algo_name(o->algo));
    return m;
}

/* a feature's value: its count, times its IDF while training (afterwards
 * the IDF is folded into the weights, so prediction uses plain counts) */
static inline double md_val(const model_t *m, const model_doc_t *d, uint32_t k)
{
    return m->idf ? d->val[k] * m->idf[d->ids[k]] : d->val[k];
}

static void md_fit_nb(model_t *m, const md_item_t *it, size_t n, const model_train_opts_t *o)
{
    size_t nb = (size_t)1 << m->bits, C = m->nclasses;
    double tot[MODEL_MAX_CLASSES] = {0}, prior[MODEL_MAX_CLASSES] = {0};
    /* counts accumulate in the weight table itself, then become log ratios */
    for (size_t i = 0; i < n; i++) {
        const model_doc_t *d = it[i].d;
        for (uint32_t k = 0; k < d->n; k++)
            m->w[(size_t)d->ids[k] * C + it[i].label] += (float)(it[i].weight * md_val(m, d, k));
        for (uint32_t k = 0; k < d->n; k++)
            tot[it[i].label] += it[i].weight * md_val(m, d, k);
        prior[it[i].label] += it[i].weight;
    }
    for (size_t b = 0; b < nb * C; b++)
        if (m->w[b] != 0)
            m->w[b] = (float)log1p(m->w[b] / o->alpha);
    /* uniform class prior: macro-F1 rewards the small domains as much as the large ones */
    for (size_t c = 0; c < C; c++) {
        m->bias[c] = 0;
        m->len_coef[c] = (float)-log(tot[c] + o->alpha * (double)nb);
    }
    (void)prior;
}

/* scores of a prepared document, before the softmax */
static void md_scores(const model_t *m, const model_doc_t *d, double *z)
{
    size_t C = m->nclasses;
    for (size_t c = 0; c < C; c++)
        z[c] = 0;
    for (uint32_t k = 0; k < d->n; k++) {
        const float *row = m->w + (size_t)d->ids[k] * C;
        double v = md_val(m, d, k);
        for (size_t c = 0; c < C; c++)
            z[c] += v * row[c];
    }
    double s = m->algo == MODEL_NB ? 1.0 : (d->len > 0 ? 1.0 / sqrt(d->len) : 0);
    for (size_t c = 0; c < C; c++)
        z[c] = m->bias[c] + m->len_coef[c] * d->len + s * z[c];
}

/* softmax of the scores at the model's temperature; NB scores grow with the
 * length of a message, so they are taken per sqrt(L) first */
static int md_softmax(const model_t *m, double *z, double len, float *probs, float *confidence)
{
    size_t C = m->nclasses;
    int best = 0;
    double norm = m->algo == MODEL_NB && len > 0 ? 1.0 / sqrt(len) : 1.0, sum = 0;
    for (size_t c = 1; c < C; c++)
        if (z[c] > z[best])
            best = (int)c;
    double top = z[best];
    for (size_t c = 0; c < C; c++) {
        z[c] = exp((z[c] - top) * norm * m->temperature);
        sum += z[c];
    }
    for (size_t c = 0; c < C; c++)
        if (probs)
            probs[c] = (float)(z[c] / sum);
    *confidence = (float)(1.0 / sum);
    return best;
}

static void md_fit_lr(model_t *m, const md_item_t *it, size_t n, const model_train_opts_t *o,
                      uint64_t *rng)
{
    size_t C = m->nclasses, *order = malloc((n ? n : 1) * sizeof(size_t));
    double z[MODEL_MAX_CLASSES];
    if (!order)
        return;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (int ep = 0; ep < o->epochs; ep++) {
        double eta = o->lr / (1.0 + ep);
        model_shuffle(order, n, rng);
        for (size_t oi = 0; oi < n; oi++) {
            const md_item_t *x = &it[order[oi]];
            const model_doc_t *d = x->d;
            double s = d->len > 0 ? 1.0 / sqrt(d->len) : 0, sum = 0, top;
            md_scores(m, d, z);
            top = z[0];
            for (size_t c = 1; c < C; c++)
                top = z[c] > top ? z[c] : top;
            for (size_t c = 0; c < C; c++)
                sum += (z[c] = exp(z[c] - top));
            for (size_t c = 0; c < C; c++) {
                double g = eta * x->weight * (z[c] / sum - ((int)c == x->label));
                m->bias[c] -= (float)g;
                for (uint32_t k = 0; k < d->n; k++) {
                    float *wp = &m->w[(size_t)d->ids[k] * C + c];
                    *wp -= (float)(g * s * md_val(m, d, k) + eta * o->l2 * *wp);
                }
            }
        }
    }
    free(order);
}

static void md_fit_ap(model_t *m, const md_item_t *it, size_t n, const model_train_opts_t *o,
                      uint64_t *rng)
{
    size_t C = m->nclasses, nw = ((size_t)1 << m->bits) * C;
    size_t *order = malloc((n ? n : 1) * sizeof(size_t));
    float *u = calloc(nw, sizeof(float)); /* sum of step x update, for the average */
    float ub[MODEL_MAX_CLASSES] = {0};
    double z[MODEL_MAX_CLASSES], step = 1;
    if (!order || !u)
        goto out;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (int ep = 0; ep < o->epochs; ep++) {
        model_shuffle(order, n, rng);
        for (size_t oi = 0; oi < n; oi++, step++) {
            const md_item_t *x = &it[order[oi]];
            const model_doc_t *d = x->d;
            size_t best = 0;
            md_scores(m, d, z);
            for (size_t c = 1; c < C; c++)
                if (z[c] > z[best])
                    best = c;
            if ((int)best == x->label)
                continue;
            double s = d->len > 0 ? 1.0 / sqrt(d->len) : 0;
            for (uint32_t k = 0; k < d->n; k++) {
                size_t row = (size_t)d->ids[k] * C;
                float v = (float)(x->weight * s * md_val(m, d, k));
                m->w[row + x->label] += v;
                m->w[row + best] -= v;
                u[row + x->label] += (float)step * v;
                u[row + best] -= (float)step * v;
            }
            m->bias[x->label] += x->weight;
            m->bias[best] -= x->weight;
            ub[x->label] += (float)step * x->weight;
            ub[best] -= (float)step * x->weight;
        }
    }
    /* averaged weights: w - u / steps */
    for (size_t i = 0; i < nw; i++)
        m->w[i] -= (float)(u[i] / step);
    for (size_t c = 0; c < C; c++)
        m->bias[c] -= (float)(ub[c] / step);
out:
    free(order);
    free(u);
}

static model_t *md_fit(const model_data_t *lab, const md_item_t *it, size_t n,
                       const model_train_opts_t *o, float *idf, uint64_t *rng)
{
    model_t *m = md_model_new(lab, o);
    if (!m)
        return NULL;
    m->idf = idf;
    if (o->algo == MODEL_NB)
        md_fit_nb(m, it, n, o);
    else if (o->algo == MODEL_LR)
        md_fit_lr(m, it, n, o, rng);
    else
        md_fit_ap(m, it, n, o, rng);
    /* a temperature that keeps the confidences of all three in one range */
    m->temperature = o->algo == MODEL_NB ? 1.0f : o->algo == MODEL_LR ? 1.0f : 0.5f;
    /* fold the IDF into the weights: prediction then needs only counts */
    if (idf) {
        size_t nb = (size_t)1 << m->bits;
        for (size_t b = 0; b < nb; b++)
            for (size_t c = 0; c < m->nclasses; c++)
                m->w[b * m->nclasses + c] *= idf[b];
    }
    m->idf = NULL;
    return m;
}

model_t *model_train(const model_data_t *lab, const size_t *idx, size_t nidx,
                     const model_data_t *tax, const model_data_t *unl, const model_train_opts_t *o,
                     char *errstr, size_t errstr_size)
{
    size_t nl = idx ? nidx : lab->n, nt = tax ? tax->n : 0, nu = unl ? unl->n : 0, n = 0;
    md_item_t *it = malloc((nl + nt + nu + 1) * sizeof(*it));
    model_t *m = NULL;
    float *idf = NULL;
    uint64_t rng = o->seed ? o->seed : 1;
    if (lab->nlabels < 2) {
        snprintf(errstr, errstr_size, "training needs at least 2 labels (have %u)", lab->nlabels);
        goto out;
    }
    if (o->bits < TEXTFEAT_MIN_BITS || o->bits > TEXTFEAT_MAX_BITS) {
        snprintf(errstr, errstr_size, "bits must be from %d to %d", TEXTFEAT_MIN_BITS,
                 TEXTFEAT_MAX_BITS);
        goto out;
    }
    if (!it)
        goto oom;
    for (size_t i = 0; i < nl; i++) {
        const model_doc_t *d = &lab->docs[idx ? idx[i] : i];
        if (d->label >= 0)
            it[n++] = (md_item_t){d, d->label, d->weight};
    }
    for (size_t i = 0; i < nt; i++)
        if (tax->docs[i].label >= 0)
            it[n++] = (md_item_t){&tax->docs[i], tax->docs[i].label, tax->docs[i].weight};
    size_t base = n;
    if (o->idf && o->algo != MODEL_NB) { /* NB's own counts already weigh rare n-grams */
        /* document frequency over every message training sees, labeled or not */
        size_t nb = (size_t)1 << o->bits, ndocs = 0;
        idf = calloc(nb, sizeof(float));
        if (!idf)
            goto oom;
        for (size_t i = 0; i < n + nu; i++) {
            const model_doc_t *d = i < n ? it[i].d : &unl->docs[i - n];
            for (uint32_t k = 0; k < d->n; k++)
                idf[d->ids[k]] += 1;
            ndocs++;
        }
        for (size_t b = 0; b < nb; b++)
            idf[b] = (float)log((ndocs + 1.0) / (idf[b] + 1.0));
    }
    m = md_fit(lab, it, n, o, idf, &rng);
    if (!m)
        goto oom;
    for (int r = 0; r < o->self_rounds && nu > 0; r++) {
        n = base;
        for (size_t i = 0; i < nu; i++) {
            float conf;
            int c = model_predict_doc(m, &unl->docs[i], NULL, &conf);
            if (conf >= o->self_threshold)
                it[n++] = (md_item_t){&unl->docs[i], c, (float)o->self_weight};
        }
        model_free(m);
        m = md_fit(lab, it, n, o, idf, &rng);
        if (!m)
            goto oom;
    }
    goto out;
oom:
    snprintf(errstr, errstr_size, "out of memory");
out:
    free(idf);
    free(it);
    return m;
}

/* ---- prediction ---- */

int model_predict_doc(const model_t *m, const model_doc_t *d, float *probs, float *confidence)
{
    double z[MODEL_MAX_CLASSES];
    md_scores(m, d, z);
    return md_softmax(m, z, d->len, probs, confidence);
}

int model_predict(const model_t *m, const char *title, const char *body, uint32_t *buf, size_t cap,
                  float *probs, float *confidence)
{
    size_t n = 0, nt, C = m->nclasses;
    double z[MODEL_MAX_CLASSES] = {0}, len;
    textfeat_extract(title, m->bits, buf, &n, cap);
    nt = n;
    textfeat_extract(body, m->bits, buf, &n, cap);
    for (size_t i = 0; i < n; i++) {
        const float *row = m->w + (size_t)buf[i] * C;
        double v = i < nt ? m->title_weight : 1;
        for (size_t c = 0; c < C; c++)
            z[c] += v * row[c];
    }
    len = (double)nt * m->title_weight + (double)(n - nt);
    double s = m->algo == MODEL_NB ? 1.0 : (len > 0 ? 1.0 / sqrt(len) : 0);
    for (size_t c = 0; c < C; c++)
        z[c] = m->bias[c] + m->len_coef[c] * len + s * z[c];
    return md_softmax(m, z, len, probs, confidence);
}

/* ---- file ---- */

static void md_put(strbuf_t *b, const void *p, size_t n)
{
    strbuf_append(b, p, n);
}

static void md_put_u32(strbuf_t *b, uint32_t v)
{
    unsigned char x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
    md_put(b, x, 4);
}

static void md_put_f32(strbuf_t *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    md_put_u32(b, v);
}

static void md_set_name(model_t *m, const uint8_t sha[32])
{
    char hex[65];
    util_hex(sha, 32, hex);
    snprintf(m->name, sizeof(m->name), "%s-%.8s", model_algo_name(m->algo), hex);
}

int model_save(model_t *m, const char *path, char *errstr, size_t errstr_size)
{
    strbuf_t b;
    size_t nb = (size_t)1 << m->bits, C = m->nclasses, nz = 0;
    uint8_t sha[32];
    char tmp[4096];
    int rc = -1;
    FILE *f = NULL;
    strbuf_init(&b);
    md_put(&b, MODEL_MAGIC, 8);
    md_put_u32(&b, MODEL_FORMAT);
    md_put_u32(&b, (uint32_t)m->algo);
    md_put_u32(&b, m->bits);
    md_put_u32(&b, m->nclasses);
    md_put_u32(&b, m->title_weight);
    md_put_f32(&b, m->temperature);
    for (size_t c = 0; c < C; c++) {
        uint16_t len = (uint16_t)strlen(m->labels[c]);
        unsigned char l[2] = {len & 0xff, len >> 8};
        md_put(&b, l, 2);
        md_put(&b, m->labels[c], len);
        md_put_f32(&b, m->bias[c]);
        md_put_f32(&b, m->len_coef[c]);
    }
    for (size_t i = 0; i < nb; i++)
        for (size_t c = 0; c < C; c++)
            if (m->w[i * C + c] != 0) {
                nz++;
                break;
            }
    md_put_u32(&b, (uint32_t)nz);
    for (size_t i = 0; i < nb; i++) {
        size_t c;
        for (c = 0; c < C && m->w[i * C + c] == 0; c++)
            ;
        if (c == C)
            continue;
        md_put_u32(&b, (uint32_t)i);
        for (c = 0; c < C; c++)
            md_put_f32(&b, m->w[i * C + c]);
    }
    crypto_sha256(b.s, b.len, sha);
    md_put(&b, sha, 32);
    /* write beside and rename, so a reader (a SIGHUP reload) never sees half a file */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f || fwrite(b.s, 1, b.len, f) != b.len) {
        snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(errstr, errstr_size, "rename to %s: %s", path, strerror(errno));
        goto out;
    }
    md_set_name(m, sha);
    rc = 0;
out:
    if (f)
        fclose(f);
    strbuf_free(&b);
    return rc;
}

/* a bounded reader over the file's bytes */
typedef struct md_rd {
    const unsigned char *p;
    size_t left;
    int bad;
} md_rd_t;

static const unsigned char *md_take(md_rd_t *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint32_t md_u32(md_rd_t *r)
{
    const unsigned char *p = md_take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static float md_f32(md_rd_t *r)
{
    uint32_t v = md_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

model_t *model_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    long size;
    model_t *m = NULL;
    uint8_t sha[32];
    md_rd_t r;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        size > (1L << 30)) {
        snprintf(errstr, errstr_size, "%s: cannot read (or larger than 1 GiB)", path);
        goto err;
    }
    data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        snprintf(errstr, errstr_size, "%s: cannot read", path);
        goto err;
    }
    if (size < 8 + 32 || memcmp(data, MODEL_MAGIC, 8) != 0) {
        snprintf(errstr, errstr_size, "%s: not a Kesu classifier model (bad magic)", path);
        goto err;
    }
    crypto_sha256(data, (size_t)size - 32, sha);
    if (memcmp(sha, data + size - 32, 32) != 0) {
        snprintf(errstr, errstr_size, "%s: checksum mismatch (truncated or damaged file)", path);
        goto err;
    }
    r = (md_rd_t){data + 8, (size_t)size - 8 - 32, 0};
    m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    uint32_t fmt = md_u32(&r), algo = md_u32(&r);
    m->bits = md_u32(&r);
    m->nclasses = md_u32(&r);
    m->title_weight = md_u32(&r);
    m->temperature = md_f32(&r);
    if (r.bad || fmt != MODEL_FORMAT || algo > MODEL_AP || m->bits < TEXTFEAT_MIN_BITS ||
        m->bits > TEXTFEAT_MAX_BITS || m->nclasses < 2 || m->nclasses > MODEL_MAX_CLASSES ||
        m->title_weight < 1 || m->title_weight > 100 || !(m->temperature > 0)) {
        snprintf(errstr, errstr_size, "%s: bad header (format %u, algo %u, bits %u, classes %u)",
                 path, fmt, algo, m->bits, m->nclasses);
        goto err;
    }
    m->algo = (model_algo_t)algo;
    for (unsigned c = 0; c < m->nclasses; c++) {
        const unsigned char *l = md_take(&r, 2);
        size_t len = l ? (size_t)(l[0] | l[1] << 8) : 0;
        const unsigned char *s = len < MODEL_MAX_LABEL ? md_take(&r, len) : NULL;
        if (!s || len == 0 || !util_utf8_valid((const char *)s, len)) {
            snprintf(errstr, errstr_size, "%s: class %u: bad label", path, c);
            goto err;
        }
        memcpy(m->labels[c], s, len);
        m->labels[c][len] = '\0';
        m->bias[c] = md_f32(&r);
        m->len_coef[c] = md_f32(&r);
    }
    size_t nb = (size_t)1 << m->bits, C = m->nclasses;
    uint32_t nz = md_u32(&r);
    if (r.bad || nz > nb || r.left != (size_t)nz * (4 + 4 * C)) {
        snprintf(errstr, errstr_size, "%s: bad weight table size", path);
        goto err;
    }
    m->w = calloc(nb, C * sizeof(float));
    if (!m->w)
        goto oom;
    for (uint32_t i = 0; i < nz; i++) {
        uint32_t b = md_u32(&r);
        if (b >= nb) {
            snprintf(errstr, errstr_size, "%s: bucket %u out of range", path, b);
            goto err;
        }
        for (size_t c = 0; c < C; c++) {
            float v = md_f32(&r);
            if (!isfinite(v)) {
                snprintf(errstr, errstr_size, "%s: bucket %u: weight not finite", path, b);
                goto err;
            }
            m->w[(size_t)b * C + c] = v;
        }
    }
    md_set_name(m, sha);
    free(data);
    fclose(f);
    return m;
oom:
    snprintf(errstr, errstr_size, "out of memory");
err:
    model_free(m);
    free(data);
    fclose(f);
    return NULL;
}

void model_free(model_t *m)
{
    if (!m)
        return;
    free(m->w);
    free(m);
}
