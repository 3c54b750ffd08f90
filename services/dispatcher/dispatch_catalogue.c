/*
 * dispatch_catalogue: load and check the catalogue, route a case, and
 * mirror departments and handlers into PostgreSQL.
 */
#include "dispatch_catalogue.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static const pg_stmt_t dc_upsert_dept = {
    "dc_upsert_dept",
    "INSERT INTO departments (code, name, parent, head, on_duty, emergency_desk, webhook_url, "
    "supervision) VALUES ($1, $2, $3, $4, $5, $6::boolean, $7, $8::boolean) "
    "ON CONFLICT (code) DO UPDATE SET "
    "name = EXCLUDED.name, parent = EXCLUDED.parent, head = EXCLUDED.head, "
    "on_duty = EXCLUDED.on_duty, emergency_desk = EXCLUDED.emergency_desk, "
    "webhook_url = COALESCE(EXCLUDED.webhook_url, departments.webhook_url), "
    "supervision = EXCLUDED.supervision",
    8};

static const pg_stmt_t dc_clear_desks = {
    "dc_clear_desks",
    "UPDATE departments SET emergency_desk = false WHERE emergency_desk AND code <> $1", 1};

/* open_load is the live count of open cases: a catalogue reload never resets it */
static const pg_stmt_t dc_upsert_handler = {
    "dc_upsert_handler",
    "INSERT INTO handlers (id, department, name, skills, capacity, active) "
    "VALUES ($1, $2, $3, $4::text[], $5::integer, true) ON CONFLICT (id) DO UPDATE SET "
    "department = EXCLUDED.department, name = EXCLUDED.name, skills = EXCLUDED.skills, "
    "capacity = EXCLUDED.capacity, active = true",
    5};

static const pg_stmt_t dc_retire_handlers = {
    "dc_retire_handlers",
    "UPDATE handlers SET active = false WHERE active AND NOT (id = ANY($1::text[]))", 1};

static const char *const dc_categories[] = {
    "service_quality", "efficiency", "facilities", "staff_attitude", "policy", "other", NULL};

/* ---- small checks ---- */

static int dc_in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* department and domain codes: [a-z0-9_]+ */
static int dc_code_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* ids of handlers and rules: [A-Za-z0-9_.-]+ */
static int dc_id_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static char *dc_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/*
 * A string member. required: missing is an error; def: value when absent
 * (may be NULL). Returns 0 and *out (owned copy or NULL), or -1 with errstr.
 */
static int dc_str(const char *file, const char *path, json_t *obj, const char *key, int required,
                  const char *def, char **out, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(errstr, errstr_size, "%s: %s.%s: missing", file, path, key);
            return -1;
        }
        *out = dc_dup(def);
        return 0;
    }
    if (!json_is_string(v) || !*json_string_value(v)) {
        snprintf(errstr, errstr_size, "%s: %s.%s: must be a non-empty string", file, path, key);
        return -1;
    }
    if (!util_utf8_valid(json_string_value(v), json_string_length(v))) {
        snprintf(errstr, errstr_size, "%s: %s.%s: invalid UTF-8", file, path, key);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return 0;
}

/* an array of non-empty strings (absent: empty) */
static int dc_str_array(const char *file, const char *path, json_t *obj, const char *key,
                        char ***out, size_t *n, char *errstr, size_t errstr_size)
{
    json_t *arr = json_object_get(obj, key), *v;
    size_t i;
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr)) {
        snprintf(errstr, errstr_size, "%s: %s.%s: must be an array of strings", file, path, key);
        return -1;
    }
    *out = calloc(json_array_size(arr) + 1, sizeof(char *));
    if (!*out) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || !*json_string_value(v) ||
            !util_utf8_valid(json_string_value(v), json_string_length(v))) {
            snprintf(errstr, errstr_size, "%s: %s.%s[%zu]: must be a non-empty string", file, path,
                     key, i);
            return -1;
        }
        (*out)[(*n)++] = strdup(json_string_value(v));
    }
    return 0;
}

static void dc_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- parsing ---- */

static int dc_parse_depts(dispatch_catalogue_t *cat, const char *file, json_t *root, char *errstr,
                          size_t errstr_size)
{
    json_t *arr = json_object_get(root, "departments"), *d;
    char path[64];
    size_t i;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(errstr, errstr_size, "%s: departments: missing, empty or not an array", file);
        return -1;
    }
    cat->depts = calloc(json_array_size(arr), sizeof(*cat->depts));
    if (!cat->depts) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_array_foreach(arr, i, d)
    {
        dispatch_dept_t *dp = &cat->depts[cat->ndepts++];
        snprintf(path, sizeof(path), "departments[%zu]", i);
        if (!json_is_object(d)) {
            snprintf(errstr, errstr_size, "%s: %s: must be an object", file, path);
            return -1;
        }
        if (dc_str(file, path, d, "code", 1, NULL, &dp->code, errstr, errstr_size) ||
            dc_str(file, path, d, "name", 1, NULL, &dp->name, errstr, errstr_size) ||
            dc_str(file, path, d, "parent", 0, NULL, &dp->parent, errstr, errstr_size) ||
            dc_str(file, path, d, "head", 0, NULL, &dp->head, errstr, errstr_size) ||
            dc_str(file, path, d, "on_duty", 0, NULL, &dp->on_duty, errstr, errstr_size) ||
            dc_str(file, path, d, "webhook_url", 0, NULL, &dp->webhook_url, errstr, errstr_size))
            return -1;
        if (!dc_code_ok(dp->code)) {
            snprintf(errstr, errstr_size, "%s: %s.code: \"%s\" may use only a-z, 0-9 and _", file,
                     path, dp->code);
            return -1;
        }
        for (size_t k = 0; k + 1 < cat->ndepts; k++) {
            if (strcmp(cat->depts[k].code, dp->code) == 0) {
                snprintf(errstr, errstr_size,
                         "%s: %s.code: duplicate department \"%s\" (also departments[%zu])", file,
                         path, dp->code, k);
                return -1;
            }
        }
        json_t *desk = json_object_get(d, "emergency_desk");
        if (desk && !json_is_boolean(desk)) {
            snprintf(errstr, errstr_size, "%s: %s.emergency_desk: must be true or false", file,
                     path);
            return -1;
        }
        dp->emergency_desk = json_is_true(desk);
        if (dp->emergency_desk) {
            if (cat->emergency_desk) {
                snprintf(errstr, errstr_size,
                         "%s: %s.emergency_desk: a second emergency desk (\"%s\" is one already)",
                         file, path, cat->emergency_desk->code);
                return -1;
            }
            cat->emergency_desk = dp;
        }
        json_t *sup = json_object_get(d, "supervision");
        if (sup && !json_is_boolean(sup)) {
            snprintf(errstr, errstr_size, "%s: %s.supervision: must be true or false", file, path);
            return -1;
        }
        dp->supervision = json_is_true(sup);
        if (dp->supervision) {
            if (cat->supervision) {
                snprintf(errstr, errstr_size,
                         "%s: %s.supervision: a second supervision office (\"%s\" is one already)",
                         file, path, cat->supervision->code);
                return -1;
            }
            cat->supervision = dp;
        }
    }
    for (i = 0; i < cat->ndepts; i++) {
        const char *p = cat->depts[i].parent;
        if (!p)
            continue;
        if (strcmp(p, cat->depts[i].code) == 0 || !dispatch_dept_find(cat, p)) {
            snprintf(errstr, errstr_size, "%s: departments[%zu].parent: unknown department \"%s\"",
                     file, i, p);
            return -1;
        }
    }
    if (!cat->emergency_desk) {
        snprintf(errstr, errstr_size,
                 "%s: departments: none has \"emergency_desk\": true (emergencies need a desk)",
                 file);
        return -1;
    }
    return 0;
}

static int dc_parse_handlers(dispatch_catalogue_t *cat, const char *file, json_t *root,
                             const char *const *domains, char *errstr, size_t errstr_size)
{
    json_t *arr = json_object_get(root, "handlers"), *h;
    char path[64];
    size_t i;
    if (!arr)
        return 0; /* a catalogue may route to departments only */
    if (!json_is_array(arr)) {
        snprintf(errstr, errstr_size, "%s: handlers: must be an array", file);
        return -1;
    }
    cat->handlers = calloc(json_array_size(arr) + 1, sizeof(*cat->handlers));
    if (!cat->handlers) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_array_foreach(arr, i, h)
    {
        dispatch_handler_t *hp = &cat->handlers[cat->nhandlers++];
        snprintf(path, sizeof(path), "handlers[%zu]", i);
        if (!json_is_object(h)) {
            snprintf(errstr, errstr_size, "%s: %s: must be an object", file, path);
            return -1;
        }
        if (dc_str(file, path, h, "id", 1, NULL, &hp->id, errstr, errstr_size) ||
            dc_str(file, path, h, "department", 1, NULL, &hp->department, errstr, errstr_size) ||
            dc_str(file, path, h, "name", 1, NULL, &hp->name, errstr, errstr_size) ||
            dc_str_array(file, path, h, "skills", &hp->skills, &hp->nskills, errstr, errstr_size))
            return -1;
        if (!dc_id_ok(hp->id)) {
            snprintf(errstr, errstr_size, "%s: %s.id: \"%s\" may use only A-Z a-z 0-9 _ . -", file,
                     path, hp->id);
            return -1;
        }
        for (size_t k = 0; k + 1 < cat->nhandlers; k++) {
            if (strcmp(cat->handlers[k].id, hp->id) == 0) {
                snprintf(errstr, errstr_size,
                         "%s: %s.id: duplicate handler \"%s\" (also handlers[%zu])", file, path,
                         hp->id, k);
                return -1;
            }
        }
        if (!dispatch_dept_find(cat, hp->department)) {
            snprintf(errstr, errstr_size, "%s: %s.department: unknown department \"%s\"", file,
                     path, hp->department);
            return -1;
        }
        if (hp->nskills == 0) {
            snprintf(errstr, errstr_size,
                     "%s: %s.skills: needs at least one domain code (or \"*\" for any)", file,
                     path);
            return -1;
        }
        for (size_t k = 0; k < hp->nskills; k++) {
            const char *s = hp->skills[k];
            if (strcmp(s, "*") != 0 && (!dc_code_ok(s) || (domains && !dc_in_list(domains, s)))) {
                snprintf(errstr, errstr_size, "%s: %s.skills[%zu]: unknown domain \"%s\"", file,
                         path, k, s);
                return -1;
            }
        }
        json_t *cap = json_object_get(h, "capacity");
        if (cap && (!json_is_integer(cap) || json_integer_value(cap) < 1 ||
                    json_integer_value(cap) > 1000000)) {
            snprintf(errstr, errstr_size, "%s: %s.capacity: must be an integer >= 1", file, path);
            return -1;
        }
        hp->capacity = cap ? (int)json_integer_value(cap) : 50;
    }
    return 0;
}

static int dc_rule_cmp(const void *a, const void *b)
{
    const dispatch_rule_t *x = a, *y = b;
    if (x->specificity != y->specificity)
        return y->specificity - x->specificity;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int dc_parse_rules(dispatch_catalogue_t *cat, const char *file, json_t *root,
                          const char *const *domains, char *errstr, size_t errstr_size)
{
    json_t *arr = json_object_get(root, "rules"), *r;
    char path[64];
    size_t i;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(errstr, errstr_size, "%s: rules: missing, empty or not an array", file);
        return -1;
    }
    cat->rules = calloc(json_array_size(arr), sizeof(*cat->rules));
    if (!cat->rules) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    json_array_foreach(arr, i, r)
    {
        dispatch_rule_t *rp = &cat->rules[cat->nrules++];
        rp->index = i;
        snprintf(path, sizeof(path), "rules[%zu]", i);
        if (!json_is_object(r)) {
            snprintf(errstr, errstr_size, "%s: %s: must be an object", file, path);
            return -1;
        }
        if (dc_str(file, path, r, "id", 1, NULL, &rp->id, errstr, errstr_size) ||
            dc_str(file, path, r, "domain", 0, "*", &rp->domain, errstr, errstr_size) ||
            dc_str(file, path, r, "category", 0, "*", &rp->category, errstr, errstr_size) ||
            dc_str(file, path, r, "district", 0, "*", &rp->district, errstr, errstr_size) ||
            dc_str(file, path, r, "department", 1, NULL, &rp->department, errstr, errstr_size) ||
            dc_str_array(file, path, r, "keywords", &rp->keywords, &rp->nkeywords, errstr,
                         errstr_size) ||
            dc_str_array(file, path, r, "co_departments", &rp->co, &rp->nco, errstr, errstr_size))
            return -1;
        if (!dc_id_ok(rp->id) || strcmp(rp->id, DISPATCH_RULE_EMERGENCY) == 0) {
            snprintf(errstr, errstr_size,
                     "%s: %s.id: \"%s\" may use only A-Z a-z 0-9 _ . - and is not \"%s\"", file,
                     path, rp->id, DISPATCH_RULE_EMERGENCY);
            return -1;
        }
        for (size_t k = 0; k + 1 < cat->nrules; k++) {
            if (strcmp(cat->rules[k].id, rp->id) == 0) {
                snprintf(errstr, errstr_size, "%s: %s.id: duplicate rule \"%s\" (also rules[%zu])",
                         file, path, rp->id, k);
                return -1;
            }
        }
        if (strcmp(rp->domain, "*") != 0 &&
            (!dc_code_ok(rp->domain) || (domains && !dc_in_list(domains, rp->domain)))) {
            snprintf(errstr, errstr_size, "%s: %s.domain: unknown domain \"%s\"", file, path,
                     rp->domain);
            return -1;
        }
        if (strcmp(rp->category, "*") != 0 && !dc_in_list(dc_categories, rp->category)) {
            snprintf(errstr, errstr_size,
                     "%s: %s.category: unknown category \"%s\" (service_quality, efficiency, "
                     "facilities, staff_attitude, policy, other or \"*\")",
                     file, path, rp->category);
            return -1;
        }
        if (!dispatch_dept_find(cat, rp->department)) {
            snprintf(errstr, errstr_size, "%s: %s.department: unknown department \"%s\"", file,
                     path, rp->department);
            return -1;
        }
        if (rp->nco >= DISPATCH_MAX_CO) {
            snprintf(errstr, errstr_size, "%s: %s.co_departments: at most %d", file, path,
                     DISPATCH_MAX_CO - 1);
            return -1;
        }
        for (size_t k = 0; k < rp->nco; k++) {
            const char *c = rp->co[k];
            if (!dispatch_dept_find(cat, c)) {
                snprintf(errstr, errstr_size,
                         "%s: %s.co_departments[%zu]: unknown department \"%s\"", file, path, k, c);
                return -1;
            }
            if (strcmp(c, rp->department) == 0) {
                snprintf(errstr, errstr_size,
                         "%s: %s.co_departments[%zu]: \"%s\" is already the lead department", file,
                         path, k, c);
                return -1;
            }
            for (size_t j = 0; j < k; j++) {
                if (strcmp(rp->co[j], c) == 0) {
                    snprintf(errstr, errstr_size,
                             "%s: %s.co_departments[%zu]: \"%s\" is listed twice", file, path, k,
                             c);
                    return -1;
                }
            }
        }
        rp->specificity = (rp->nkeywords ? 8 : 0) + (strcmp(rp->district, "*") ? 4 : 0) +
                          (strcmp(rp->category, "*") ? 2 : 0) + (strcmp(rp->domain, "*") ? 1 : 0);
        /* a keyword another rule with the same conditions already has never routes here */
        for (size_t k = 0; k + 1 < cat->nrules && rp->nkeywords; k++) {
            const dispatch_rule_t *o = &cat->rules[k];
            if (!o->nkeywords || strcmp(o->domain, rp->domain) != 0 ||
                strcmp(o->category, rp->category) != 0 || strcmp(o->district, rp->district) != 0)
                continue;
            for (size_t a = 0; a < rp->nkeywords; a++)
                for (size_t b = 0; b < o->nkeywords; b++)
                    if (strcmp(rp->keywords[a], o->keywords[b]) == 0) {
                        snprintf(errstr, errstr_size,
                                 "%s: %s.keywords[%zu]: overlapping rules: \"%s\" is also a "
                                 "keyword of rules[%zu] (\"%s\") with the same domain, category "
                                 "and district",
                                 file, path, a, rp->keywords[a], k, o->id);
                        return -1;
                    }
        }
        /* a keyword-less rule with the same conditions as an earlier one never matches */
        for (size_t k = 0; k + 1 < cat->nrules && !rp->nkeywords; k++) {
            const dispatch_rule_t *o = &cat->rules[k];
            if (!o->nkeywords && strcmp(o->domain, rp->domain) == 0 &&
                strcmp(o->category, rp->category) == 0 && strcmp(o->district, rp->district) == 0) {
                snprintf(errstr, errstr_size,
                         "%s: %s: never matches: rules[%zu] (\"%s\") has the same domain, "
                         "category and district",
                         file, path, k, o->id);
                return -1;
            }
        }
    }
    int has_default = 0;
    for (i = 0; i < cat->nrules; i++)
        has_default |= cat->rules[i].specificity == 0;
    if (!has_default) {
        snprintf(errstr, errstr_size,
                 "%s: rules: no default rule (one with domain, category and district \"*\" and "
                 "no keywords, so every case finds a department)",
                 file);
        return -1;
    }
    qsort(cat->rules, cat->nrules, sizeof(*cat->rules), dc_rule_cmp);
    return 0;
}

static dispatch_catalogue_t *dc_from_json(json_t *root, const char *file,
                                          const char *const *domains, char *errstr,
                                          size_t errstr_size)
{
    dispatch_catalogue_t *cat = calloc(1, sizeof(*cat));
    if (!cat) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "%s: the top level must be a JSON object", file);
        goto err;
    }
    if (dc_parse_depts(cat, file, root, errstr, errstr_size) ||
        dc_parse_handlers(cat, file, root, domains, errstr, errstr_size) ||
        dc_parse_rules(cat, file, root, domains, errstr, errstr_size))
        goto err;
    return cat;
err:
    dispatch_catalogue_free(cat);
    return NULL;
}

dispatch_catalogue_t *dispatch_catalogue_load(const char *path, const char *const *domain_codes,
                                              char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(path, NULL, errstr, errstr_size);
    dispatch_catalogue_t *cat =
        root ? dc_from_json(root, path, domain_codes, errstr, errstr_size) : NULL;
    json_decref(root);
    return cat;
}

dispatch_catalogue_t *dispatch_catalogue_parse(const char *text, const char *name,
                                               const char *const *domain_codes, char *errstr,
                                               size_t errstr_size)
{
    json_t *root = config_json_load(name, text, errstr, errstr_size);
    dispatch_catalogue_t *cat =
        root ? dc_from_json(root, name, domain_codes, errstr, errstr_size) : NULL;
    json_decref(root);
    return cat;
}

void dispatch_catalogue_free(dispatch_catalogue_t *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->ndepts; i++) {
        dispatch_dept_t *d = &cat->depts[i];
        free(d->code);
        free(d->name);
        free(d->parent);
        free(d->head);
        free(d->on_duty);
        free(d->webhook_url);
    }
    for (size_t i = 0; i < cat->nhandlers; i++) {
        dispatch_handler_t *h = &cat->handlers[i];
        free(h->id);
        free(h->department);
        free(h->name);
        dc_strv_free(h->skills, h->nskills);
    }
    for (size_t i = 0; i < cat->nrules; i++) {
        dispatch_rule_t *r = &cat->rules[i];
        free(r->id);
        free(r->domain);
        free(r->category);
        free(r->district);
        free(r->department);
        dc_strv_free(r->keywords, r->nkeywords);
        dc_strv_free(r->co, r->nco);
    }
    free(cat->depts);
    free(cat->handlers);
    free(cat->rules);
    free(cat);
}

char **dispatch_domains_load(const char *path, char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(path, NULL, errstr, errstr_size), *list, *d;
    char **codes = NULL;
    size_t i, n = 0;
    if (!root)
        return NULL;
    list = json_object_get(root, "domains");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        snprintf(errstr, errstr_size, "%s: domains: missing, empty or not an array", path);
        goto out;
    }
    codes = calloc(json_array_size(list) + 1, sizeof(char *));
    if (!codes) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    json_array_foreach(list, i, d)
    {
        const char *c = json_string_value(json_object_get(d, "code"));
        if (!c || !dc_code_ok(c)) {
            snprintf(errstr, errstr_size, "%s: domains[%zu].code: missing or not [a-z0-9_]+", path,
                     i);
            dispatch_codes_free(codes);
            codes = NULL;
            goto out;
        }
        codes[n++] = strdup(c);
    }
out:
    json_decref(root);
    return codes;
}

void dispatch_codes_free(char **codes)
{
    for (size_t i = 0; codes && codes[i]; i++)
        free(codes[i]);
    free(codes);
}

/* ---- routing ---- */

const dispatch_dept_t *dispatch_dept_find(const dispatch_catalogue_t *cat, const char *code)
{
    for (size_t i = 0; code && i < cat->ndepts; i++)
        if (cat->depts[i].code && strcmp(cat->depts[i].code, code) == 0)
            return &cat->depts[i];
    return NULL;
}

static int dc_field_match(const char *rule, const char *value)
{
    return strcmp(rule, "*") == 0 || (value && strcmp(rule, value) == 0);
}

const dispatch_rule_t *dispatch_match(const dispatch_catalogue_t *cat, const dispatch_input_t *in)
{
    for (size_t i = 0; i < cat->nrules; i++) {
        const dispatch_rule_t *r = &cat->rules[i];
        if (!dc_field_match(r->domain, in->domain) || !dc_field_match(r->category, in->category) ||
            !dc_field_match(r->district, in->district))
            continue;
        if (r->nkeywords) {
            int hit = 0;
            /* strcasecmp folds ASCII only, so UTF-8 keywords match byte for byte */
            for (size_t k = 0; k < r->nkeywords && !hit; k++)
                hit = (in->title && strcasestr(in->title, r->keywords[k])) ||
                      (in->body && strcasestr(in->body, r->keywords[k]));
            if (!hit)
                continue;
        }
        return r;
    }
    return NULL;
}

int dispatch_is_emergency(const dispatch_input_t *in)
{
    if (in->urgency && strcmp(in->urgency, "emergency") == 0)
        return 1;
    for (size_t i = 0; i < in->nflags; i++)
        if (in->flags[i] && strcmp(in->flags[i], "public_safety") == 0)
            return 1;
    return 0;
}

static void dc_add_co(dispatch_route_t *out, const char *code)
{
    if (strcmp(code, out->department) == 0 || out->nco >= DISPATCH_MAX_CO)
        return;
    for (size_t i = 0; i < out->nco; i++)
        if (strcmp(out->co[i], code) == 0)
            return;
    out->co[out->nco++] = code;
}

int dispatch_route(const dispatch_catalogue_t *cat, const dispatch_input_t *in,
                   dispatch_route_t *out)
{
    memset(out, 0, sizeof(*out));
    out->rule = dispatch_match(cat, in);
    if (!out->rule)
        return -1;
    if (dispatch_is_emergency(in)) {
        /* the desk leads; the department the rules chose handles with it */
        out->emergency = 1;
        out->rule_id = DISPATCH_RULE_EMERGENCY;
        out->department = cat->emergency_desk->code;
        dc_add_co(out, out->rule->department);
    } else {
        out->rule_id = out->rule->id;
        out->department = out->rule->department;
    }
    for (size_t i = 0; i < out->rule->nco; i++)
        dc_add_co(out, out->rule->co[i]);
    return 0;
}

/* ---- PostgreSQL ---- */

int dispatch_array_literal(const char *const *codes, size_t n, char *out, size_t out_size)
{
    size_t off = 0;
    int w = snprintf(out, out_size, "{");
    if (w < 0 || (size_t)w >= out_size)
        return -1;
    off = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        w = snprintf(out + off, out_size - off, "%s\"%s\"", i ? "," : "", codes[i]);
        if (w < 0 || (size_t)w >= out_size - off)
            return -1;
        off += (size_t)w;
    }
    w = snprintf(out + off, out_size - off, "}");
    return w < 0 || (size_t)w >= out_size - off ? -1 : 0;
}

static int dc_exec(pg_t *pg, const pg_stmt_t *st, const char *const *v, char *errstr,
                   size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, st, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int dispatch_catalogue_sync(pg_t *pg, const dispatch_catalogue_t *cat, char *errstr,
                            size_t errstr_size)
{
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    if (dispatch_catalogue_write(pg, cat, errstr, errstr_size) != 0 ||
        pg_commit(pg, errstr, errstr_size) != 0) {
        pg_rollback(pg);
        return -1;
    }
    return 0;
}

int dispatch_catalogue_write(pg_t *pg, const dispatch_catalogue_t *cat, char *errstr,
                             size_t errstr_size)
{
    char cap[16], *lit = NULL;
    const char **ids = NULL;
    int rc = -1;
    for (size_t i = 0; i < cat->ndepts; i++) {
        const dispatch_dept_t *d = &cat->depts[i];
        const char *v[8] = {d->code,       d->name,    d->parent,
                            d->head,       d->on_duty, d->emergency_desk ? "true" : "false",
                            d->webhook_url, d->supervision ? "true" : "false"};
        if (dc_exec(pg, &dc_upsert_dept, v, errstr, errstr_size))
            goto out;
    }
    const char *desk[1] = {cat->emergency_desk->code};
    if (dc_exec(pg, &dc_clear_desks, desk, errstr, errstr_size))
        goto out;

    /* ids and skills are [A-Za-z0-9_.-] or "*": quoted, they need no escaping */
    size_t lit_size = 64;
    for (size_t i = 0; i < cat->nhandlers; i++) {
        lit_size += strlen(cat->handlers[i].id) + 3;
        for (size_t k = 0; k < cat->handlers[i].nskills; k++)
            lit_size += strlen(cat->handlers[i].skills[k]) + 3;
    }
    lit = malloc(lit_size);
    ids = calloc(cat->nhandlers + 1, sizeof(*ids));
    if (!lit || !ids) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cat->nhandlers; i++) {
        const dispatch_handler_t *h = &cat->handlers[i];
        ids[i] = h->id;
        dispatch_array_literal((const char *const *)h->skills, h->nskills, lit, lit_size);
        snprintf(cap, sizeof(cap), "%d", h->capacity);
        const char *v[5] = {h->id, h->department, h->name, lit, cap};
        if (dc_exec(pg, &dc_upsert_handler, v, errstr, errstr_size))
            goto out;
    }
    dispatch_array_literal(ids, cat->nhandlers, lit, lit_size);
    const char *rv[1] = {lit};
    if (dc_exec(pg, &dc_retire_handlers, rv, errstr, errstr_size))
        goto out;
    rc = 0;
out:
    free(lit);
    free(ids);
    return rc;
}

/* ---- error positions ---- */

/* skip whitespace; returns the pointer, counting newlines */
static const char *dc_ws(const char *p, int *line)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        if (*p == '\n')
            (*line)++;
        p++;
    }
    return p;
}

/* skip one JSON value (already checked valid by the parser) */
static const char *dc_skip(const char *p, int *line)
{
    int depth = 0;
    do {
        p = dc_ws(p, line);
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            depth--;
            p++;
        } else if (*p == ',' || *p == ':') {
            p++;
        } else if (*p) {
            while (*p && !strchr(" \t\r\n,:]}", *p))
                p++;
        }
    } while (*p && depth > 0);
    return p;
}

int dispatch_json_line(const char *text, const char *path)
{
    int line = 1, found = 0;
    const char *p = dc_ws(text, &line), *q = path;
    while (*q && *p) {
        if (*q == '.')
            q++;
        if (*q == '[') {
            long idx = strtol(q + 1, (char **)&q, 10);
            if (*q != ']' || *p != '[')
                break;
            q++;
            p = dc_ws(p + 1, &line);
            for (long i = 0; i < idx && *p && *p != ']'; i++) {
                p = dc_skip(p, &line);
                p = dc_ws(p, &line);
                if (*p == ',')
                    p = dc_ws(p + 1, &line);
            }
            if (*p == ']' || !*p)
                break;
            found = line;
            continue;
        }
        /* an object key up to the next '.', '[' or ':' */
        size_t klen = strcspn(q, ".[:");
        if (*p != '{' || klen == 0)
            break;
        p = dc_ws(p + 1, &line);
        int hit = 0;
        while (*p == '"') {
            const char *k = p + 1;
            p = dc_skip(p, &line);
            size_t len = (size_t)(p - k - 1);
            p = dc_ws(p, &line);
            if (*p == ':')
                p = dc_ws(p + 1, &line);
            if (len == klen && strncmp(k, q, klen) == 0) {
                hit = 1;
                break;
            }
            p = dc_skip(p, &line);
            p = dc_ws(p, &line);
            if (*p == ',')
                p = dc_ws(p + 1, &line);
        }
        if (!hit)
            break;
        found = line;
        q += klen;
    }
    return found;
}
