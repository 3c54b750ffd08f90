/*
 * metrics: one registry of families (name, help, type), each a list of
 * series (label string + atomic values). Registration and rendering hold
 * metrics_lock; updates never do. Doubles are kept as their bit pattern in
 * an _Atomic uint64_t so adds can use compare-and-swap.
 */
#include "metrics.h"

#include "log.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    METRICS_TYPE_COUNTER,
    METRICS_TYPE_GAUGE,
    METRICS_TYPE_HISTOGRAM,
} metrics_type_t;

struct metrics_counter {
    _Atomic uint64_t value; /**< total so far, wraps at 2^64 */
};

struct metrics_gauge {
    _Atomic uint64_t bits; /**< bit pattern of the current double */
};

struct metrics_histogram {
    _Atomic uint64_t buckets[METRICS_HISTOGRAM_BUCKETS + 1]; /**< per bucket, not cumulative;
                                                                  last is (10, +Inf) */
    _Atomic uint64_t sum_bits; /**< bit pattern of the double sum of observations */
};

typedef struct metrics_series {
    struct metrics_series *next; /**< next series of the family, registration order */
    char *labels;                /**< label string without braces, "" for none */
    union {
        struct metrics_counter c;
        struct metrics_gauge g;
        struct metrics_histogram h;
    } u; /**< the member matching the family's type */
} metrics_series_t;

typedef struct metrics_family {
    struct metrics_family *next; /**< next family, registration order */
    char *name;                  /**< valid Prometheus metric name */
    char *help;                  /**< help text as first given */
    metrics_type_t type;         /**< fixed at first registration */
    metrics_series_t *series;    /**< first series */
    metrics_series_t **tail;     /**< where the next series is linked */
} metrics_family_t;

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_family_t *metrics_families;
static metrics_family_t **metrics_tail = &metrics_families;

static const double metrics_bounds[METRICS_HISTOGRAM_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const char *const metrics_bound_text[METRICS_HISTOGRAM_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};
static const char *const metrics_type_names[] = {"counter", "gauge", "histogram"};

static uint64_t metrics_d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double metrics_u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static int metrics_name_valid(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != name && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Find or create the series; NULL on a bad name, type clash or no memory. */
static metrics_series_t *metrics_get(metrics_type_t type, const char *name, const char *help,
                                     const char *labels)
{
    metrics_series_t *s = NULL;
    metrics_family_t *f;

    if (!labels)
        labels = "";
    if (!metrics_name_valid(name)) {
        LOG_ERROR("invalid metric name \"%s\"", name ? name : "(null)");
        return NULL;
    }
    if (strchr(labels, '\n')) {
        LOG_ERROR("metric %s: labels must not contain a newline", name);
        return NULL;
    }
    pthread_mutex_lock(&metrics_lock);
    for (f = metrics_families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f && f->type != type) {
        LOG_ERROR("metric %s is already registered as a %s, not a %s", name,
                  metrics_type_names[f->type], metrics_type_names[type]);
        goto out;
    }
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f)
            goto out;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            free(f);
            goto out;
        }
        f->type = type;
        f->tail = &f->series;
        *metrics_tail = f;
        metrics_tail = &f->next;
    }
    for (s = f->series; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            goto out;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        s = NULL;
        goto out;
    }
    if (type == METRICS_TYPE_GAUGE)
        atomic_init(&s->u.g.bits, metrics_d2u(0.0));
    if (type == METRICS_TYPE_HISTOGRAM)
        atomic_init(&s->u.h.sum_bits, metrics_d2u(0.0));
    *f->tail = s;
    f->tail = &s->next;
out:
    pthread_mutex_unlock(&metrics_lock);
    return s;
}

metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels)
{
    metrics_series_t *s = metrics_get(METRICS_TYPE_COUNTER, name, help, labels);
    return s ? &s->u.c : NULL;
}

void metrics_counter_add(metrics_counter_t *c, uint64_t v)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, v, memory_order_relaxed);
}

metrics_gauge_t *metrics_gauge(const char *name, const char *help, const char *labels)
{
    metrics_series_t *s = metrics_get(METRICS_TYPE_GAUGE, name, help, labels);
    return s ? &s->u.g : NULL;
}

void metrics_gauge_set(metrics_gauge_t *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, metrics_d2u(v), memory_order_relaxed);
}

static void metrics_double_add(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, metrics_d2u(metrics_u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metrics_gauge_add(metrics_gauge_t *g, double v)
{
    if (g)
        metrics_double_add(&g->bits, v);
}

metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels)
{
    metrics_series_t *s = metrics_get(METRICS_TYPE_HISTOGRAM, name, help, labels);
    return s ? &s->u.h : NULL;
}

void metrics_histogram_observe(metrics_histogram_t *h, double seconds)
{
    int i = 0;

    if (!h || isnan(seconds))
        return;
    while (i < METRICS_HISTOGRAM_BUCKETS && seconds > metrics_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    metrics_double_add(&h->sum_bits, seconds);
}

/* ------------------------------------------------------------- render */

static void metrics_put_double(strbuf_t *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        strbuf_append(b, "NaN", 3);
        return;
    }
    if (isinf(v)) {
        strbuf_appendf(b, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* shortest of %.15g / %.17g that reads back as the same double */
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    strbuf_appendf(b, "%s", tmp);
}

static void metrics_put_help(strbuf_t *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            strbuf_append(b, "\\\\", 2);
        else if (*p == '\n')
            strbuf_append(b, "\\n", 2);
        else
            strbuf_append(b, p, 1);
    }
}

/* name{labels} or name{labels,extra} or name, then a space. */
static void metrics_put_series(strbuf_t *b, const char *name, const char *suffix,
                               const char *labels, const char *extra)
{
    strbuf_appendf(b, "%s%s", name, suffix);
    if (*labels || extra) {
        strbuf_appendf(b, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
    }
    strbuf_append(b, " ", 1);
}

static void metrics_render_histogram(strbuf_t *b, const metrics_family_t *f,
                                     metrics_series_t *s)
{
    uint64_t cum = 0;
    char le[32];

    for (int i = 0; i <= METRICS_HISTOGRAM_BUCKETS; i++) {
        cum += atomic_load_explicit(&s->u.h.buckets[i], memory_order_relaxed);
        snprintf(le, sizeof(le), "le=\"%s\"",
                 i < METRICS_HISTOGRAM_BUCKETS ? metrics_bound_text[i] : "+Inf");
        metrics_put_series(b, f->name, "_bucket", s->labels, le);
        strbuf_appendf(b, "%llu\n", (unsigned long long)cum);
    }
    metrics_put_series(b, f->name, "_sum", s->labels, NULL);
    metrics_put_double(b, metrics_u2d(atomic_load_explicit(&s->u.h.sum_bits, memory_order_relaxed)));
    strbuf_append(b, "\n", 1);
    /* _count is the +Inf bucket as read above, so the two always agree */
    metrics_put_series(b, f->name, "_count", s->labels, NULL);
    strbuf_appendf(b, "%llu\n", (unsigned long long)cum);
}

char *metrics_render(void)
{
    strbuf_t b;

    strbuf_init(&b);
    pthread_mutex_lock(&metrics_lock);
    for (const metrics_family_t *f = metrics_families; f; f = f->next) {
        strbuf_appendf(&b, "# HELP %s ", f->name);
        metrics_put_help(&b, f->help);
        strbuf_appendf(&b, "\n# TYPE %s %s\n", f->name, metrics_type_names[f->type]);
        for (metrics_series_t *s = f->series; s; s = s->next) {
            switch (f->type) {
            case METRICS_TYPE_COUNTER:
                metrics_put_series(&b, f->name, "", s->labels, NULL);
                strbuf_appendf(
                    &b, "%llu\n",
                    (unsigned long long)atomic_load_explicit(&s->u.c.value, memory_order_relaxed));
                break;
            case METRICS_TYPE_GAUGE:
                metrics_put_series(&b, f->name, "", s->labels, NULL);
                metrics_put_double(
                    &b, metrics_u2d(atomic_load_explicit(&s->u.g.bits, memory_order_relaxed)));
                strbuf_append(&b, "\n", 1);
                break;
            case METRICS_TYPE_HISTOGRAM:
                metrics_render_histogram(&b, f, s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&metrics_lock);
    return b.s;
}

void metrics_reset_for_tests(void)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_family_t *f = metrics_families;
    while (f) {
        metrics_family_t *fn = f->next;
        metrics_series_t *s = f->series;
        while (s) {
            metrics_series_t *sn = s->next;
            free(s->labels);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    metrics_families = NULL;
    metrics_tail = &metrics_families;
    pthread_mutex_unlock(&metrics_lock);
}
