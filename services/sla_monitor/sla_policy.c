/*
 * sla_policy: load, check and look up SLA limits.
 */
#include "sla_policy.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const sp_kinds[SLA__KINDS] = {"accept", "resolve", "reply", "follow_up",
                                                 "auto_close"};
static const char *const sp_request_types[] = {"consultation", "help",   "complaint", "report",
                                               "suggestion",   "praise", "*",         NULL};
static const char *const sp_urgencies[] = {"emergency", "urgent", "normal", "low", "*", NULL};

/* limits above a year are a typo, not a policy */
#define SP_MAX_MS (366LL * 24 * 3600 * 1000)

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

int sla_limit_parse(const char *s, sla_limit_t *out)
{
    char *end;
    memset(out, 0, sizeof(*out));
    if (!s || *s < '1' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (v < 1 || v > 999999)
        return -1;
    if (strcmp(end, "m") == 0 || strcmp(end, "h") == 0 || strcmp(end, "d") == 0)
        out->unit = *end;
    else if (strcmp(end, "wm") == 0)
        out->unit = 'M';
    else if (strcmp(end, "wh") == 0)
        out->unit = 'H';
    else if (strcmp(end, "wd") == 0)
        out->unit = 'D';
    else
        return -1;
    out->value = v;
    return 0;
}

void sla_limit_fmt(const sla_limit_t *l, char *out, size_t out_size)
{
    const char *u = "";
    switch (l->unit) {
    case 'm': u = "m"; break;
    case 'h': u = "h"; break;
    case 'd': u = "d"; break;
    case 'M': u = "wm"; break;
    case 'H': u = "wh"; break;
    case 'D': u = "wd"; break;
    default: break;
    }
    snprintf(out, out_size, "%lld%s", (long long)l->value, u);
}

int sla_limit_is_work(const sla_limit_t *l)
{
    return l->unit == 'M' || l->unit == 'H' || l->unit == 'D';
}

int64_t sla_limit_ms(const sla_limit_t *l, const calendar_t *cal, double scale)
{
    int64_t unit_ms;
    switch (l->unit) {
    case 'm': case 'M': unit_ms = 60000; break;
    case 'h': case 'H': unit_ms = 3600000; break;
    case 'd': unit_ms = 86400000; break;
    case 'D': unit_ms = cal ? calendar_day_ms(cal) : 8 * 3600000LL; break;
    default: return 0;
    }
    int64_t ms = (int64_t)llround((double)l->value * (double)unit_ms * scale);
    return ms > 0 ? ms : 1;
}

int64_t sla_add(const calendar_t *cal, int work, int64_t t, int64_t ms)
{
    return work && cal ? calendar_add_work(cal, t, ms) : t + ms;
}

int64_t sla_between(const calendar_t *cal, int work, int64_t a, int64_t b)
{
    if (b <= a)
        return 0;
    return work && cal ? calendar_work_between(cal, a, b) : b - a;
}

/* a limit member: absent is fine (unit stays 0) */
static int sp_limit(json_t *e, const char *key, sla_limit_t *out, const char *file, size_t i,
                    char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(e, key);
    memset(out, 0, sizeof(*out));
    if (!v)
        return 0;
    if (sla_limit_parse(json_string_value(v), out) != 0 ||
        sla_limit_ms(out, NULL, 1.0) > SP_MAX_MS) {
        snprintf(errstr, errstr_size,
                 "%s: policies[%zu].%s: must be a duration like \"30m\", \"24h\", \"7d\" "
                 "(calendar) or \"90wm\", \"4wh\", \"15wd\" (working time), at most a year",
                 file, i, key);
        return -1;
    }
    return 1;
}

static int sp_warn(sla_policy_t *p, json_t *root, const char *file, char *errstr,
                   size_t errstr_size)
{
    json_t *w = json_object_get(root, "warn_percent"), *v;
    size_t i;
    if (!w) {
        p->warn_percent[0] = 50;
        p->warn_percent[1] = 80;
        p->nwarn = 2;
        return 0;
    }
    if (!json_is_array(w) || json_array_size(w) > SLA_MAX_WARN) {
        snprintf(errstr, errstr_size, "%s: warn_percent: must be a list of up to %d percentages",
                 file, SLA_MAX_WARN);
        return -1;
    }
    json_array_foreach(w, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 99 ||
            (i > 0 && json_integer_value(v) <= p->warn_percent[i - 1])) {
            snprintf(errstr, errstr_size,
                     "%s: warn_percent[%zu]: must be an integer 1..99, ascending", file, i);
            return -1;
        }
        p->warn_percent[p->nwarn++] = (int)json_integer_value(v);
    }
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
    if (json_is_object(root) && sp_warn(p, root, file, errstr, errstr_size) != 0)
        goto err;
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
            int r = sp_limit(e, sp_kinds[k], &en->limit[k], file, i, errstr, errstr_size);
            if (r < 0)
                goto err;
            set += r;
        }
        int r = sp_limit(e, "escalate_after", &en->escalate_after, file, i, errstr, errstr_size);
        if (r < 0)
            goto err;
        set += r;
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
        {
            if (key[0] != '_' && strcmp(key, "request_type") && strcmp(key, "urgency") &&
                strcmp(key, "escalate_after") && sla_kind_parse(key) < 0) {
                snprintf(errstr, errstr_size,
                         "%s: policies[%zu].%s: unknown key (request_type, urgency, accept, "
                         "resolve, reply, follow_up, auto_close, escalate_after)",
                         file, i, key);
                goto err;
            }
        }
        if (!set) {
            snprintf(errstr, errstr_size, "%s: policies[%zu]: sets no limit", file, i);
            goto err;
        }
        if (strcmp(rt, "*") == 0 && strcmp(urg, "*") == 0) {
            for (int k = 0; k <= SLA__KINDS; k++) {
                if (k < SLA__KINDS ? !en->limit[k].unit : !en->escalate_after.unit) {
                    snprintf(errstr, errstr_size,
                             "%s: policies[%zu]: the default entry (\"*\" x \"*\") must set %s",
                             file, i, k < SLA__KINDS ? sp_kinds[k] : "escalate_after");
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

sla_policy_t *sla_policy_load(const char *path, char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(path, NULL, errstr, errstr_size);
    sla_policy_t *x = root ? sp_from_json(root, path, errstr, errstr_size) : NULL;
    json_decref(root);
    return x;
}

sla_policy_t *sla_policy_parse(const char *text, const char *name, char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(name, text, errstr, errstr_size);
    sla_policy_t *x = root ? sp_from_json(root, name, errstr, errstr_size) : NULL;
    json_decref(root);
    return x;
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
    out->cal = p->cal;
    for (int k = 0; k < SLA__KINDS; k++)
        for (int i = 0; i < 4 && !out->limit[k].unit; i++)
            if (order[i])
                out->limit[k] = order[i]->limit[k];
    for (int i = 0; i < 4 && !out->escalate_after.unit; i++)
        if (order[i])
            out->escalate_after = order[i]->escalate_after;
    return 0;
}

int64_t sla_due_at(const sla_limits_t *lim, sla_kind_t kind, int64_t start_ms)
{
    const sla_limit_t *l = &lim->limit[kind];
    return sla_add(lim->cal, sla_limit_is_work(l), start_ms,
                   sla_limit_ms(l, lim->cal, lim->time_scale));
}
