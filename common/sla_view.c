/*
 * sla_view: read sla_timers and sla_timer_log of one case and lay them out
 * in working time.
 */
#include "sla_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t sv_case = {
    "sv_case",
    "SELECT id, case_no, status, COALESCE(request_type, '') AS request_type, "
    "COALESCE(urgency, '') AS urgency, COALESCE(department, '') AS department "
    "FROM cases WHERE case_no = $1",
    1};

static const pg_stmt_t sv_timers = {
    "sv_timers",
    "SELECT kind, cycle, state, limit_spec, work, total_ms, used_ms, escalate_ms, warned, "
    "breach_count, COALESCE(department, '') AS department, "
    "(extract(epoch FROM started_at) * 1000)::bigint AS started_ms, "
    "(extract(epoch FROM due_at) * 1000)::bigint AS due_ms, "
    "COALESCE((extract(epoch FROM anchor_at) * 1000)::bigint, 0) AS anchor_ms, "
    "COALESCE((extract(epoch FROM stopped_at) * 1000)::bigint, 0) AS stopped_ms, "
    "COALESCE((extract(epoch FROM breached_at) * 1000)::bigint, 0) AS breached_ms "
    "FROM sla_timers WHERE case_id = $1::uuid ORDER BY cycle, id",
    1};

static const pg_stmt_t sv_log = {
    "sv_log",
    "SELECT kind, COALESCE(cycle, 1) AS cycle, action, COALESCE(note, '') AS note, "
    "COALESCE(actor, '') AS actor, COALESCE(used_ms, -1) AS used_ms, "
    "(extract(epoch FROM at) * 1000)::bigint AS at_ms, "
    "COALESCE((extract(epoch FROM due_at) * 1000)::bigint, 0) AS due_ms "
    "FROM sla_timer_log WHERE case_id = $1::uuid ORDER BY at, id",
    1};

static int64_t sv_i64(const PGresult *res, int i, const char *col)
{
    return strtoll(pg_get(res, i, col), NULL, 10);
}

/* a duration in the timer's measure: working days of the calendar, or 24 h days */
static void sv_fmt_dur(const calendar_t *cal, int work, int64_t ms, char *out, size_t n)
{
    if (work) {
        calendar_fmt_work(cal, ms, out, n);
        return;
    }
    int64_t v = ms < 0 ? -ms : ms;
    long long d = (long long)(v / 86400000), h = (long long)(v / 3600000 % 24),
              m = (long long)(v / 60000 % 60);
    if (d)
        snprintf(out, n, "%s%lldd %lldh %lldm", ms < 0 ? "-" : "", d, h, m);
    else if (h)
        snprintf(out, n, "%s%lldh %lldm", ms < 0 ? "-" : "", h, m);
    else
        snprintf(out, n, "%s%lldm", ms < 0 ? "-" : "", m);
}

static json_t *sv_time(const calendar_t *cal, int64_t ms)
{
    char buf[40];
    if (ms <= 0)
        return json_null();
    calendar_fmt_local(cal, ms, buf, sizeof(buf));
    return json_string(buf);
}

json_t *sla_view_build(pg_t *pg, const calendar_t *cal, const char *case_no, int64_t now_ms,
                       int *found, char *errstr, size_t errstr_size)
{
    PGresult *c = NULL, *t = NULL, *l = NULL;
    json_t *root = NULL, *timers, *trail;
    char case_id[40], buf[48];
    *found = 1;
    const char *v[1] = {case_no};
    c = pg_exec_stmt(pg, &sv_case, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!c)
        goto out;
    if (PQntuples(c) == 0) {
        *found = 0;
        snprintf(errstr, errstr_size, "no case %s", case_no);
        goto out;
    }
    snprintf(case_id, sizeof(case_id), "%s", pg_get(c, 0, "id"));
    const char *iv[1] = {case_id};
    if (!(t = pg_exec_stmt(pg, &sv_timers, iv, PGRES_TUPLES_OK, errstr, errstr_size)) ||
        !(l = pg_exec_stmt(pg, &sv_log, iv, PGRES_TUPLES_OK, errstr, errstr_size)))
        goto out;

    root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:I}, s:o}", "case_no",
                     pg_get(c, 0, "case_no"), "status", pg_get(c, 0, "status"), "request_type",
                     pg_get(c, 0, "request_type"), "urgency", pg_get(c, 0, "urgency"),
                     "department", pg_get(c, 0, "department"), "calendar", "name",
                     calendar_name(cal), "time_zone", calendar_tz(cal), "working_day_minutes",
                     (json_int_t)(calendar_day_ms(cal) / 60000), "now", sv_time(cal, now_ms));
    timers = json_array();
    trail = json_array();
    json_object_set_new(root, "timers", timers);
    json_object_set_new(root, "trail", trail);
    for (int i = 0; i < PQntuples(t); i++) {
        int work = strcmp(pg_get(t, i, "work"), "t") == 0;
        const char *state = pg_get(t, i, "state");
        int64_t total = sv_i64(t, i, "total_ms"), used = sv_i64(t, i, "used_ms");
        int64_t anchor = sv_i64(t, i, "anchor_ms"), stopped = sv_i64(t, i, "stopped_ms");
        /* a stopped timer's used_ms was taken at its stop; a running one counts on to now */
        if (anchor && strcmp(state, "stopped") != 0 && strcmp(state, "paused") != 0 &&
            now_ms > anchor)
            used += work ? calendar_work_between(cal, anchor, now_ms) : now_ms - anchor;
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:o, s:o, s:I, s:I, s:I, s:i, s:i}",
                              "kind", pg_get(t, i, "kind"), "cycle", atoi(pg_get(t, i, "cycle")),
                              "state", state, "limit", pg_get(t, i, "limit_spec"), "department",
                              pg_get(t, i, "department"), "working_time", work, "started_at",
                              sv_time(cal, sv_i64(t, i, "started_ms")), "due_at",
                              sv_time(cal, sv_i64(t, i, "due_ms")), "due_at_ms",
                              (json_int_t)sv_i64(t, i, "due_ms"), "limit_ms", (json_int_t)total,
                              "used_ms", (json_int_t)used, "warnings_fired",
                              atoi(pg_get(t, i, "warned")), "breaches",
                              atoi(pg_get(t, i, "breach_count")));
        sv_fmt_dur(cal, work, used, buf, sizeof(buf));
        json_object_set_new(o, "used", json_string(buf));
        sv_fmt_dur(cal, work, total - used, buf, sizeof(buf));
        json_object_set_new(o, "remaining", json_string(buf));
        json_object_set_new(o, "stopped_at", sv_time(cal, stopped));
        json_object_set_new(o, "breached_at", sv_time(cal, sv_i64(t, i, "breached_ms")));
        json_array_append_new(timers, o);
    }
    for (int i = 0; i < PQntuples(l); i++) {
        int64_t used = sv_i64(l, i, "used_ms");
        json_t *o = json_pack("{s:o, s:s, s:i, s:s, s:o, s:s, s:s}", "at",
                              sv_time(cal, sv_i64(l, i, "at_ms")), "kind", pg_get(l, i, "kind"),
                              "cycle", atoi(pg_get(l, i, "cycle")), "action",
                              pg_get(l, i, "action"), "due_at", sv_time(cal, sv_i64(l, i, "due_ms")),
                              "note", pg_get(l, i, "note"), "actor", pg_get(l, i, "actor"));
        if (used >= 0) {
            json_object_set_new(o, "used_ms", json_integer(used));
            calendar_fmt_work(cal, used, buf, sizeof(buf));
            json_object_set_new(o, "used", json_string(buf));
        }
        json_array_append_new(trail, o);
    }
out:
    PQclear(c);
    PQclear(t);
    PQclear(l);
    return root;
}

void sla_view_print(const json_t *view, void *file)
{
    FILE *f = file;
    size_t i;
    json_t *x;
    fprintf(f, "case %s  status %s  %s/%s  department %s\n",
            json_string_value(json_object_get(view, "case_no")),
            json_string_value(json_object_get(view, "status")),
            json_string_value(json_object_get(view, "request_type")),
            json_string_value(json_object_get(view, "urgency")),
            json_string_value(json_object_get(view, "department")));
    json_t *cal = json_object_get(view, "calendar");
    fprintf(f, "calendar %s (%s), working day %lld min, now %s\n\n",
            json_string_value(json_object_get(cal, "name")),
            json_string_value(json_object_get(cal, "time_zone")),
            (long long)json_integer_value(json_object_get(cal, "working_day_minutes")),
            json_string_value(json_object_get(view, "now")));
    fprintf(f, "%-10s %-5s %-9s %-6s %-26s %-14s %-14s %s\n", "timer", "cycle", "state", "limit",
            "due", "used", "remaining", "warn/breach");
    json_array_foreach(json_object_get(view, "timers"), i, x)
    {
        fprintf(f, "%-10s %-5lld %-9s %-6s %-26s %-14s %-14s %lld/%lld\n",
                json_string_value(json_object_get(x, "kind")),
                (long long)json_integer_value(json_object_get(x, "cycle")),
                json_string_value(json_object_get(x, "state")),
                json_string_value(json_object_get(x, "limit")),
                json_string_value(json_object_get(x, "due_at")),
                json_string_value(json_object_get(x, "used")),
                json_string_value(json_object_get(x, "remaining")),
                (long long)json_integer_value(json_object_get(x, "warnings_fired")),
                (long long)json_integer_value(json_object_get(x, "breaches")));
    }
    fprintf(f, "\ntrail:\n");
    json_array_foreach(json_object_get(view, "trail"), i, x)
    {
        const char *used = json_string_value(json_object_get(x, "used"));
        fprintf(f, "  %s  %-10s c%lld %-10s used %-12s %s\n",
                json_string_value(json_object_get(x, "at")),
                json_string_value(json_object_get(x, "kind")),
                (long long)json_integer_value(json_object_get(x, "cycle")),
                json_string_value(json_object_get(x, "action")), used ? used : "-",
                json_string_value(json_object_get(x, "note")));
    }
}
