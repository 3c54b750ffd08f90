/*
 * sla_policy: load, check and look up SLA limits.
 */
#include "sla_policy.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sp_kinds[SLA__KINDS] = {"accept", "resolve"};
static const char *const sp_request_types[] = {"consultation", "help",   "complaint", "report",
                                               "suggestion",   "praise", "*",         NULL};
static const char *const sp_urgencies[] = {"emergency", "urgent", "normal", "low", "*", NULL};

/* limits above a year are a typo, not a policy */
#define SP_MAX_MINUTES (366 * 24 * 60)

const char *sla_kind_name(sla_kind_t kind)
{
    return (int)kind >= 0 && kind < SLA__KINDS ? sp_kinds[kind] : NULL;
}

int sla_kind_parse(const char *name)
{
    for (int i = 0; name && i < SLA__KINDS; i++)
        if (strcmp(sp_kinds[i], name) == 0)
            return i;
    return -1;
}

static int sp_in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static sla_policy_t *sp_from_json(json_t *root, const char *file, char *errstr, size_t errstr_size)
{
    sla_policy_t *p = calloc(1, sizeof(*p));
    json_t *list, *e;
    size_t i;
    int have_default = 0;
    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->time_scale = 1.0;
    list = json_is_object(root) ? json_object_get(root, "policies") : NULL;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        snprintf(errstr, errstr_size, "%s: policies: missing, empty or not an array", file);
        goto err;
    }
    p->entries = calloc(json_array_size(list), sizeof(*p->entries));
    if (!p->entries) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    json_array_foreach(list, i, e)
    {
        sla_entry_t *en = &p->entries[p->nentries++];
        const char *rt = json_string_value(json_object_get(e, "request_type"));
        const char *urg = json_string_value(json_object_get(e, "urgency"));
        int set = 0;
        if (!json_is_object(e)) {
            snprintf(errstr, errstr_size, "%s: policies[%zu]: must be an object", file, i);
            goto err;
        }
        if (!rt || !sp_in_list(sp_request_types, rt)) {
            snprintf(errstr, errstr_size,
                     "%s: policies[%zu].request_type: missing or unknown (consultation, help, "
                     "complaint, report, suggestion, praise or \"*\")",
                     file, i);
            goto err;
        }
        if (!urg || !sp_in_list(sp_urgencies, urg)) {
            snprintf(errstr, errstr_size,
                     "%s: policies[%zu].urgency: missing or unknown (emergency, urgent, normal, "
                     "low or \"*\")",
                     file, i);
            goto err;
        }
        en->request_type = strdup(rt);
        en->urgency = strdup(urg);
        if (!en->request_type || !en->urgency) {
            snprintf(errstr, errstr_size, "out of memory");
            goto err;
        }
        for (size_t k = 0; k + 1 < p->nentries; k++) {
            if (strcmp(p->entries[k].request_type, rt) == 0 &&
                strcmp(p->entries[k].urgency, urg) == 0) {
                snprintf(errstr, errstr_size,
                         "%s: policies[%zu]: request_type \"%s\" x urgency \"%s\" is already "
                         "policies[%zu]",
                         file, i, rt, urg, k);
                goto err;
            }
        }
        for (int k = 0; k < SLA__KINDS; k++) {
            char key[32];
            snprintf(key, sizeof(key), "%s_minutes", sp_kinds[k]);
            json_t *v = json_object_get(e, key);
            if (!v)
                continue;
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > SP_MAX_MINUTES) {
                snprintf(errstr, errstr_size,
                         "%s: policies[%zu].%s: must be an integer from 1 to %d", file, i, key,
                         SP_MAX_MINUTES);
                goto err;
            }
            en->minutes[k] = json_integer_value(v);
            set++;
        }
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
        {
            if (key[0] != '_' && strcmp(key, "request_type") && strcmp(key, "urgency") &&
                strcmp(key, "accept_minutes") && strcmp(key, "resolve_minutes")) {
                snprintf(errstr, errstr_size,
                         "%s: policies[%zu].%s: unknown key (request_type, urgency, "
                         "accept_minutes, resolve_minutes)",
                         file, i, key);
                goto err;
            }
        }
        if (!set) {
            snprintf(errstr, errstr_size, "%s: policies[%zu]: sets no limit", file, i);
            goto err;
        }
        if (strcmp(rt, "*") == 0 && strcmp(urg, "*") == 0) {
            for (int k = 0; k < SLA__KINDS; k++) {
                if (!en->minutes[k]) {
                    snprintf(errstr, errstr_size,
                             "%s: policies[%zu]: the default entry (\"*\" x \"*\") must set "
                             "%s_minutes",
                             file, i, sp_kinds[k]);
                    goto err;
                }
            }
            have_default = 1;
        }
    }
    if (!have_default) {
        snprintf(errstr, errstr_size,
                 "%s: policies: no default entry (request_type \"*\", urgency \"*\")", file);
        goto err;
    }
    return p;
err:
    sla_policy_free(p);
    return NULL;
}

static void sp_json_error(const char *file, const json_error_t *e, char *errstr, size_t errstr_size)
{
    if (e->line > 0)
        snprintf(errstr, errstr_size, "%s:%d:%d: %s", file, e->line, e->column, e->text);
    else
        snprintf(errstr, errstr_size, "%s: %s", file, e->text);
}

sla_policy_t *sla_policy_load(const char *path, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        sp_json_error(path, &e, errstr, errstr_size);
        return NULL;
    }
    sla_policy_t *p = sp_from_json(root, path, errstr, errstr_size);
    json_decref(root);
    return p;
}

sla_policy_t *sla_policy_parse(const char *text, const char *name, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        sp_json_error(name, &e, errstr, errstr_size);
        return NULL;
    }
    sla_policy_t *p = sp_from_json(root, name, errstr, errstr_size);
    json_decref(root);
    return p;
}

void sla_policy_free(sla_policy_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nentries; i++) {
        free(p->entries[i].request_type);
        free(p->entries[i].urgency);
    }
    free(p->entries);
    free(p);
}

static const sla_entry_t *sp_find(const sla_policy_t *p, const char *rt, const char *urg)
{
    for (size_t i = 0; i < p->nentries; i++)
        if (strcmp(p->entries[i].request_type, rt) == 0 && strcmp(p->entries[i].urgency, urg) == 0)
            return &p->entries[i];
    return NULL;
}

int sla_policy_lookup(const sla_policy_t *p, const char *request_type, const char *urgency,
                      sla_limits_t *out)
{
    const char *rt = request_type && *request_type ? request_type : "*";
    const char *urg = urgency && *urgency ? urgency : "*";
    /* most specific first; unknown values simply find no entry of their own */
    const sla_entry_t *order[4] = {sp_find(p, rt, urg), sp_find(p, "*", urg), sp_find(p, rt, "*"),
                                   sp_find(p, "*", "*")};
    memset(out, 0, sizeof(*out));
    out->time_scale = p->time_scale;
    for (int k = 0; k < SLA__KINDS; k++)
        for (int i = 0; i < 4 && !out->minutes[k]; i++)
            if (order[i])
                out->minutes[k] = order[i]->minutes[k];
    return 0;
}

int64_t sla_due_at(const sla_limits_t *policy, sla_kind_t kind, int64_t start_ms)
{
    /* calendar minutes; the working-day calendar plugs in here */
    double ms = (double)policy->minutes[kind] * 60000.0 * policy->time_scale;
    return start_ms + (int64_t)llround(ms);
}
