/*
 * classify: keyword scoring.
 *
 * Score of a class = sum over its keywords of weight x hits, where hits =
 * title_weight x (occurrences in the title) + (occurrences in the body),
 * each count capped at max_hits so one repeated word cannot drown the rest.
 * Chinese keywords match as substrings (UTF-8 is self-synchronising, so a
 * byte search never matches half a character); English keywords match
 * case-insensitively where a word starts, so "potholes" matches "pothole"
 * but "pirate" does not match "rat".
 *
 * Domain: the best-scoring domain if it reaches min_domain_score, else the
 * default ("other"). Confidence = margin x strength, where margin =
 * (best - runner-up) / best says how clearly it won and strength =
 * best / (best + 4) how much evidence there was; a single weak hint gives a
 * low value, several strong unopposed ones come close to 1.
 *
 * Request type and category: the best class reaching its min_score, ties to
 * the earlier class in the file, else the default. Flags: every flag whose
 * score reaches its min_score, where for flags and urgency levels each
 * keyword counts once (its weight) however often and wherever it occurs:
 * they weigh distinct pieces of evidence. Urgency: the most severe of the keyword
 * levels reached and the levels the set flags imply (public_safety ->
 * emergency); when neither says anything, the request type may imply one
 * (a consultation is low), else the default (normal).
 */
#include "classify.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const cl_request_types[] = {"consultation", "help",   "complaint", "report",
                                               "suggestion",   "praise", NULL};
static const char *const cl_categories[] = {
    "service_quality", "efficiency", "facilities", "staff_attitude", "policy", "other", NULL};
static const char *const cl_flags[] = {"public_safety", "self_harm",  "media",
                                       "mass_incident", "corruption", NULL};
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
                     strcmp(key, "by_flag") == 0 ? "flags" : "request_types");
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
        cl_parse_group(r, f, root, "flags", cl_flags, 0, &r->flags, errstr, errstr_size) ||
        cl_parse_group(r, f, root, "urgency", cl_urgencies, 1, &r->urgency, errstr, errstr_size))
        goto err;
    v = json_object_get(root, "urgency");
    if (cl_parse_implies(f, v, "by_flag", &r->flags, errstr, errstr_size) ||
        cl_parse_implies(f, v, "by_request_type", &r->request_types, errstr, errstr_size))
        goto err;
    if (r->flags.nsets > CLASSIFY_MAX_FLAGS) {
        snprintf(errstr, errstr_size, "%s: flags.classes: at most %d flags", f, CLASSIFY_MAX_FLAGS);
        goto err;
    }
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
    cl_group_free(&r->flags);
    cl_group_free(&r->urgency);
    for (size_t i = 0; i < r->ndomains; i++) {
        free(r->domain_list[i].code);
        free(r->domain_list[i].label);
    }
    free(r->domain_list);
    free(r);
}

/* ---- scoring ---- */

/* occurrences of kw in hay (both lower-case for ASCII), capped at max */
static int cl_count(const char *hay, const classify_kw_t *kw, int max)
{
    int n = 0;
    size_t len = strlen(kw->text);
    const char *p = hay;
    while (n < max && (p = strstr(p, kw->text)) != NULL) {
        if (kw->ascii && p > hay && isalnum((unsigned char)p[-1])) {
            p++; /* inside a word: "pirate" is no "rat" */
            continue;
        }
        n++;
        p += len;
    }
    return n;
}

static int cl_score(const classify_rules_t *r, const classify_set_t *s, const char *title,
                    const char *body)
{
    int score = 0;
    for (size_t i = 0; i < s->nkw; i++) {
        int hits = r->title_weight * cl_count(title, &s->kw[i], r->max_hits) +
                   cl_count(body, &s->kw[i], r->max_hits);
        score += s->kw[i].weight * hits;
    }
    return score;
}

/* flags and urgency weigh evidence, not emphasis: each keyword counts once,
 * wherever and however often it occurs, so one weak word repeated in title
 * and body stays one weak hint */
static int cl_score_distinct(const classify_set_t *s, const char *title, const char *body)
{
    int score = 0;
    for (size_t i = 0; i < s->nkw; i++)
        if (cl_count(title, &s->kw[i], 1) || cl_count(body, &s->kw[i], 1))
            score += s->kw[i].weight;
    return score;
}

/* index of the best set reaching its min_score (earlier wins ties), or -1;
 * *best_score is its score, *other_score the best score of any other set */
static int cl_best(const classify_rules_t *r, const classify_group_t *g, const char *title,
                   const char *body, int *best_score, int *other_score)
{
    int best = -1, bs = 0, top = 0, second = 0;
    for (size_t i = 0; i < g->nsets; i++) {
        int sc = cl_score(r, &g->sets[i], title, body);
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

static int cl_severity(const char *urgency)
{
    for (int i = 0; cl_urgencies[i]; i++)
        if (strcmp(cl_urgencies[i], urgency) == 0)
            return i;
    return 1; /* normal */
}

static char *cl_lower_dup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        return NULL;
    for (char *p = d; *p; p++)
        if ((unsigned char)*p < 0x80)
            *p = (char)tolower((unsigned char)*p);
    return d;
}

int classify_text(const classify_rules_t *r, const char *title, const char *body,
                  classify_result_t *out)
{
    char *t = cl_lower_dup(title), *b = cl_lower_dup(body);
    int best, bs, ss, sev = -1;
    memset(out, 0, sizeof(*out));
    if (!t || !b) {
        free(t);
        free(b);
        return -1;
    }

    /* domain: a winner needs min_domain_score as well as its own min_score */
    best = cl_best(r, &r->domains, t, b, &bs, &ss);
    out->runner_up_score = ss;
    if (best >= 0 && bs >= r->min_domain_score) {
        out->domain = r->domains.sets[best].code;
        out->domain_score = bs;
        out->confidence = ((double)(bs - ss) / bs) * ((double)bs / (bs + 4.0));
    } else {
        out->domain = r->domains.def;
        out->runner_up_score = bs > ss ? bs : ss;
        out->confidence = 0.0;
    }
    out->needs_review = out->confidence < r->review_threshold;

    best = cl_best(r, &r->request_types, t, b, NULL, NULL);
    const classify_set_t *rt = best >= 0 ? &r->request_types.sets[best] : NULL;
    if (!rt) { /* the default may still imply an urgency */
        for (size_t i = 0; i < r->request_types.nsets; i++)
            if (strcmp(r->request_types.sets[i].code, r->request_types.def) == 0)
                rt = &r->request_types.sets[i];
    }
    out->request_type = rt ? rt->code : r->request_types.def;

    best = cl_best(r, &r->categories, t, b, NULL, NULL);
    out->category = best >= 0 ? r->categories.sets[best].code : r->categories.def;

    for (size_t i = 0; i < r->flags.nsets && out->nflags < CLASSIFY_MAX_FLAGS; i++) {
        const classify_set_t *f = &r->flags.sets[i];
        if (cl_score_distinct(f, t, b) >= f->min_score) {
            out->flags[out->nflags++] = f->code;
            if (f->implies && cl_severity(f->implies) > sev)
                sev = cl_severity(f->implies);
        }
    }
    for (size_t i = 0; i < r->urgency.nsets; i++) {
        const classify_set_t *u = &r->urgency.sets[i];
        if (cl_score_distinct(u, t, b) >= u->min_score && cl_severity(u->code) > sev)
            sev = cl_severity(u->code);
    }
    if (sev >= 0)
        out->urgency = cl_urgencies[sev];
    else if (rt && rt->implies)
        out->urgency = cl_urgencies[cl_severity(rt->implies)];
    else
        out->urgency = cl_urgencies[cl_severity(r->urgency.def)];

    free(t);
    free(b);
    return 0;
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
