/*
 * alert: see alert.h. The scan collects the matches of one field (terms,
 * pattern parts, negation cues, near-misses, clause breaks) in a fixed
 * array on the stack, then decides which terms stand: not inside a
 * near-miss, not preceded in the same clause by a negation cue within
 * negation_window characters. Each term and pattern counts once per
 * message, however often and wherever it occurs.
 */
#include "alert.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmatch.h"
#include "util.h"

#define AL_MAX_MATCHES 512
#define AL_MAX_COUNTED 256

enum { AK_TERM, AK_FIRST, AK_THEN, AK_NEG, AK_NEAR, AK_BREAK };

static const char *const al_flags[] = {"public_safety", "self_harm",  "media",
                                       "mass_incident", "corruption", NULL};
static const char *const al_levels[] = {"low", "normal", "urgent", "emergency", NULL};

typedef struct al_entry {
    int kind;   /* AK_* */
    int signal; /* index of the signal (terms, pattern parts, near-misses) */
    int weight; /* terms */
    int pat;    /* pattern index (AK_FIRST / AK_THEN) */
} al_entry_t;

typedef struct al_signal {
    char *code;    /* flag code or urgency level */
    int is_flag;   /* 1: a flag; 0: an urgency level */
    int level;     /* severity this signal implies when it fires (-1: none) */
    int min_score; /* fires from this score on */
} al_signal_t;

typedef struct al_pattern {
    int signal, weight, within;
} al_pattern_t;

struct alert_rules {
    acmatch_t *ac;
    al_entry_t *entries;
    size_t nentries, cap;
    al_signal_t signals[ALERT_MAX_SIGNALS];
    size_t nsignals;
    al_pattern_t *patterns;
    size_t npatterns;
    int negation_window; /* characters between a cue's end and a term's start */
};

int alert_severity(const char *urgency)
{
    for (int i = 0; urgency && al_levels[i]; i++)
        if (strcmp(al_levels[i], urgency) == 0)
            return i;
    return -1;
}

const char *alert_urgency_name(int severity)
{
    return severity >= 0 && severity <= 3 ? al_levels[severity] : "normal";
}

size_t alert_rules_terms(const alert_rules_t *r)
{
    return r->nentries;
}

static int al_add(alert_rules_t *r, const char *text, int en, al_entry_t e, const char *path,
                  char *errstr, size_t errstr_size)
{
    char buf[256];
    size_t len = strlen(text);
    int flags = 0;
    if (len == 0 || len >= sizeof(buf) || !util_utf8_valid(text, len)) {
        snprintf(errstr, errstr_size, "%s: \"%s\": empty, too long or invalid UTF-8", path, text);
        return -1;
    }
    memcpy(buf, text, len + 1);
    if (en) {
        /* English terms are whole words; a trailing '*' makes a prefix ("embezzl*") */
        flags = ACMATCH_WORD_START | ACMATCH_WORD_END;
        if (buf[len - 1] == '*') {
            buf[--len] = '\0';
            flags = ACMATCH_WORD_START;
        }
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)buf[i] >= 0x80) {
                snprintf(errstr, errstr_size, "%s: \"%s\": an \"en\" term must be ASCII", path,
                         text);
                return -1;
            }
        if (len == 0) {
            snprintf(errstr, errstr_size, "%s: \"%s\": empty term", path, text);
            return -1;
        }
    }
    al_entry_t *p = util_grow(r->entries, &r->cap, r->nentries + 1, sizeof(*p), 256);
    if (!p)
        goto oom;
    r->entries = p;
    if (acmatch_add(r->ac, buf, (uint32_t)r->nentries, flags) != 0)
        goto oom;
    r->entries[r->nentries++] = e;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

/* {"zh": [..], "en": [..]}: cue lists (negations, breaks, near-misses) */
static int al_lists(alert_rules_t *r, json_t *obj, const char *path, al_entry_t e, char *errstr,
                    size_t errstr_size)
{
    const char *lang;
    json_t *arr, *v;
    size_t i;
    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size, "%s: must be an object with \"zh\" and/or \"en\" lists",
                 path);
        return -1;
    }
    json_object_foreach(obj, lang, arr)
    {
        if (lang[0] == '_')
            continue;
        if ((strcmp(lang, "zh") != 0 && strcmp(lang, "en") != 0) || !json_is_array(arr)) {
            snprintf(errstr, errstr_size, "%s.%s: expected \"zh\" or \"en\" with a list", path,
                     lang);
            return -1;
        }
        json_array_foreach(arr, i, v)
        {
            if (!json_is_string(v)) {
                snprintf(errstr, errstr_size, "%s.%s[%zu]: must be a string", path, lang, i);
                return -1;
            }
            if (al_add(r, json_string_value(v), lang[0] == 'e', e, path, errstr, errstr_size))
                return -1;
        }
    }
    return 0;
}

static int al_weight(json_t *v, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100)
        return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

static int al_signal(alert_rules_t *r, const char *code, json_t *s, char *errstr,
                     size_t errstr_size)
{
    char path[160];
    const char *k;
    json_t *v;
    int idx = (int)r->nsignals;
    al_signal_t *sig = &r->signals[r->nsignals];
    snprintf(path, sizeof(path), "signals.%.60s", code);
    if (r->nsignals >= ALERT_MAX_SIGNALS || !json_is_object(s)) {
        snprintf(errstr, errstr_size, "%s: too many signals or not an object", path);
        return -1;
    }
    memset(sig, 0, sizeof(*sig));
    sig->code = strdup(code);
    r->nsignals++;
    if (!sig->code) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_t *urg = json_object_get(s, "urgency"), *imp = json_object_get(s, "implies");
    sig->is_flag = json_is_true(json_object_get(s, "flag"));
    if (sig->is_flag == !!urg) {
        snprintf(errstr, errstr_size, "%s: needs either \"flag\": true or \"urgency\"", path);
        return -1;
    }
    if (sig->is_flag) {
        int known = 0;
        for (int i = 0; al_flags[i]; i++)
            known |= strcmp(al_flags[i], code) == 0;
        if (!known) {
            snprintf(errstr, errstr_size,
                     "%s: unknown flag (public_safety, self_harm, media, mass_incident, "
                     "corruption)",
                     path);
            return -1;
        }
    }
    json_t *lv = sig->is_flag ? imp : urg;
    sig->level = lv ? alert_severity(json_string_value(lv)) : -1;
    if (lv && sig->level < 0) {
        snprintf(errstr, errstr_size, "%s.%s: must be low, normal, urgent or emergency", path,
                 sig->is_flag ? "implies" : "urgency");
        return -1;
    }
    v = json_object_get(s, "min_score");
    sig->min_score = 2;
    if (v && al_weight(v, &sig->min_score)) {
        snprintf(errstr, errstr_size, "%s.min_score: must be an integer from 1 to 100", path);
        return -1;
    }
    size_t before = r->nentries;
    json_object_foreach(s, k, v)
    {
        char sub[200];
        snprintf(sub, sizeof(sub), "%s.%s", path, k);
        if (k[0] == '_' || !strcmp(k, "flag") || !strcmp(k, "urgency") || !strcmp(k, "implies") ||
            !strcmp(k, "min_score"))
            continue;
        if (!strcmp(k, "zh") || !strcmp(k, "en")) {
            const char *t;
            json_t *w;
            if (!json_is_object(v)) {
                snprintf(errstr, errstr_size, "%s: must be an object of term: weight", sub);
                return -1;
            }
            json_object_foreach(v, t, w)
            {
                al_entry_t e = {AK_TERM, idx, 0, -1};
                if (al_weight(w, &e.weight)) {
                    snprintf(errstr, errstr_size, "%s.\"%s\": weight must be 1..100", sub, t);
                    return -1;
                }
                if (al_add(r, t, k[0] == 'e', e, sub, errstr, errstr_size))
                    return -1;
            }
        } else if (!strcmp(k, "near_misses")) {
            if (al_lists(r, v, sub, (al_entry_t){AK_NEAR, idx, 0, -1}, errstr, errstr_size))
                return -1;
        } else if (!strcmp(k, "patterns")) {
            size_t i;
            json_t *p;
            if (!json_is_array(v)) {
                snprintf(errstr, errstr_size, "%s: must be a list", sub);
                return -1;
            }
            json_array_foreach(v, i, p)
            {
                const char *a = json_string_value(json_object_get(p, "first"));
                const char *b = json_string_value(json_object_get(p, "then"));
                json_t *wi = json_object_get(p, "within");
                al_pattern_t pt = {idx, 0, 0};
                if (!a || !b || al_weight(json_object_get(p, "weight"), &pt.weight) ||
                    !json_is_integer(wi) || json_integer_value(wi) < 0 ||
                    json_integer_value(wi) > 100) {
                    snprintf(errstr, errstr_size,
                             "%s[%zu]: needs \"first\", \"then\" (strings), \"within\" (0..100 "
                             "characters) and \"weight\" (1..100)",
                             sub, i);
                    return -1;
                }
                pt.within = (int)json_integer_value(wi);
                al_pattern_t *np = realloc(r->patterns, (r->npatterns + 1) * sizeof(*np));
                if (!np) {
                    snprintf(errstr, errstr_size, "out of memory");
                    return -1;
                }
                r->patterns = np;
                int pi = (int)r->npatterns++;
                r->patterns[pi] = pt;
                int en = (unsigned char)a[0] < 0x80;
                if (al_add(r, a, en, (al_entry_t){AK_FIRST, idx, 0, pi}, sub, errstr,
                           errstr_size) ||
                    al_add(r, b, (unsigned char)b[0] < 0x80, (al_entry_t){AK_THEN, idx, 0, pi}, sub,
                           errstr, errstr_size))
                    return -1;
            }
        } else {
            snprintf(errstr, errstr_size,
                     "%s: unknown key (zh, en, patterns, near_misses, flag, urgency, implies, "
                     "min_score)",
                     sub);
            return -1;
        }
    }
    if (r->nentries == before) {
        snprintf(errstr, errstr_size, "%s: has no terms", path);
        return -1;
    }
    return 0;
}

alert_rules_t *alert_rules_load(const char *path, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e), *sigs, *v;
    alert_rules_t *r = calloc(1, sizeof(*r));
    const char *k;
    char pre[4200];
    if (!r || !root) {
        if (!root)
            snprintf(errstr, errstr_size, "%s:%d:%d: %s", path, e.line, e.column, e.text);
        else
            snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    /* errors below name the file first */
    snprintf(pre, sizeof(pre), "%s", path);
    r->ac = acmatch_new();
    if (!r->ac || !json_is_object(root)) {
        snprintf(errstr, errstr_size, "%s: the top level must be a JSON object", path);
        goto err;
    }
    v = json_object_get(root, "negation_window");
    r->negation_window = 6;
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 50)) {
        snprintf(errstr, errstr_size, "%s: negation_window: must be an integer from 0 to 50", path);
        goto err;
    }
    if (v)
        r->negation_window = (int)json_integer_value(v);
    char sub[512];
    if (al_lists(r, json_object_get(root, "negations"), "negations",
                 (al_entry_t){AK_NEG, -1, 0, -1}, sub, sizeof(sub)) ||
        al_lists(r, json_object_get(root, "breaks"), "breaks", (al_entry_t){AK_BREAK, -1, 0, -1},
                 sub, sizeof(sub)))
        goto err_sub;
    sigs = json_object_get(root, "signals");
    if (!json_is_object(sigs) || json_object_size(sigs) == 0) {
        snprintf(errstr, errstr_size, "%s: signals: missing, empty or not an object", path);
        goto err;
    }
    json_object_foreach(sigs, k, v)
    {
        if (k[0] == '_')
            continue;
        if (al_signal(r, k, v, sub, sizeof(sub)))
            goto err_sub;
    }
    if (acmatch_build(r->ac) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    json_decref(root);
    return r;
err_sub:
    snprintf(errstr, errstr_size, "%s: %s", pre, sub);
err:
    json_decref(root);
    alert_rules_free(r);
    return NULL;
}

void alert_rules_free(alert_rules_t *r)
{
    if (!r)
        return;
    acmatch_free(r->ac);
    for (size_t i = 0; i < r->nsignals; i++)
        free(r->signals[i].code);
    free(r->entries);
    free(r->patterns);
    free(r);
}

/* ---- scanning ---- */

typedef struct al_match {
    uint32_t id, start, end;
} al_match_t;

typedef struct al_scan {
    al_match_t m[AL_MAX_MATCHES];
    size_t n;
} al_scan_t;

static int al_collect(void *arg, uint32_t id, size_t start, size_t end)
{
    al_scan_t *s = arg;
    if (s->n < AL_MAX_MATCHES)
        s->m[s->n++] = (al_match_t){id, (uint32_t)start, (uint32_t)end};
    return s->n >= AL_MAX_MATCHES;
}

/* characters (not bytes) in text[a, b) */
static int al_chars(const char *text, uint32_t a, uint32_t b)
{
    int n = 0;
    for (uint32_t i = a; i < b; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

static int al_has_break(const alert_rules_t *r, const al_scan_t *s, uint32_t a, uint32_t b)
{
    for (size_t i = 0; i < s->n; i++)
        if (r->entries[s->m[i].id].kind == AK_BREAK && s->m[i].start >= a && s->m[i].start < b)
            return 1;
    return 0;
}

/* a negation cue starting before pos, ending at most negation_window characters before it, same
 * clause */
static int al_negated(const alert_rules_t *r, const char *text, const al_scan_t *s, uint32_t pos)
{
    for (size_t i = 0; i < s->n; i++) {
        const al_match_t *c = &s->m[i];
        if (r->entries[c->id].kind != AK_NEG || c->start >= pos)
            continue;
        if (c->end <= pos &&
            (al_chars(text, c->end, pos) > r->negation_window || al_has_break(r, s, c->end, pos)))
            continue;
        return 1;
    }
    return 0;
}

static int al_near_miss(const alert_rules_t *r, const al_scan_t *s, const al_match_t *t)
{
    int sig = r->entries[t->id].signal;
    for (size_t i = 0; i < s->n; i++) {
        const al_match_t *c = &s->m[i];
        const al_entry_t *e = &r->entries[c->id];
        if (e->kind == AK_NEAR && (e->signal == sig || sig < 0) && c->start <= t->start &&
            c->end >= t->end)
            return 1;
    }
    return 0;
}

/* count an entry once per message: 1 if it was new */
static int al_once(uint32_t *counted, size_t *nc, uint32_t id)
{
    for (size_t i = 0; i < *nc; i++)
        if (counted[i] == id)
            return 0;
    if (*nc < AL_MAX_COUNTED)
        counted[(*nc)++] = id;
    return 1;
}

static void al_field(const alert_rules_t *r, const char *text, al_scan_t *s, int *scores,
                     uint32_t *counted, size_t *nc)
{
    s->n = 0;
    if (!text || !*text)
        return;
    acmatch_scan(r->ac, text, strlen(text), al_collect, s);
    for (size_t i = 0; i < s->n; i++) {
        const al_match_t *t = &s->m[i];
        const al_entry_t *e = &r->entries[t->id];
        if (e->kind == AK_TERM) {
            if (al_near_miss(r, s, t) || al_negated(r, text, s, t->start))
                continue;
            if (al_once(counted, nc, t->id))
                scores[e->signal] += e->weight;
        } else if (e->kind == AK_THEN) {
            /* the pattern's first term before it, close enough, same clause, not negated */
            const al_pattern_t *p = &r->patterns[e->pat];
            for (size_t j = 0; j < s->n; j++) {
                const al_match_t *a = &s->m[j];
                const al_entry_t *ea = &r->entries[a->id];
                if (ea->kind != AK_FIRST || ea->pat != e->pat || a->end > t->start ||
                    al_chars(text, a->end, t->start) > p->within ||
                    al_has_break(r, s, a->end, t->start) || al_negated(r, text, s, a->start))
                    continue;
                /* the FIRST entry's id stands for the whole pattern in the once-list */
                if (al_once(counted, nc, a->id))
                    scores[p->signal] += p->weight;
                break;
            }
        }
    }
}

int alert_scan(const alert_rules_t *r, const char *title, const char *body, alert_result_t *out)
{
    al_scan_t s;
    uint32_t counted[AL_MAX_COUNTED];
    size_t nc = 0;
    memset(out, 0, sizeof(*out));
    out->severity = -1;
    al_field(r, title, &s, out->scores, counted, &nc);
    al_field(r, body, &s, out->scores, counted, &nc);
    for (size_t i = 0; i < r->nsignals; i++) {
        const al_signal_t *sig = &r->signals[i];
        if (out->scores[i] < sig->min_score)
            continue;
        if (sig->is_flag)
            out->flags[out->nflags++] = sig->code;
        if (sig->level > out->severity)
            out->severity = sig->level;
    }
    return 0;
}
