/*
 * api_console: the supervisor console (see api_console.h, docs/console.md).
 *
 * The page's three files are read once per process into memory (from
 * KESU_CONSOLE_DIR or deploy/console, like api_sla's calendar), so serving
 * them never touches the disk; changing them needs an intake restart. They
 * go out with a Content-Security-Policy that allows only this origin: the
 * page loads nothing from anywhere else and runs no inline script.
 *
 * The summary is a handful of read-only statements in one transaction under
 * api_tx_begin: row-level security (0005, 0009) scopes cases, timers and
 * statistics to a handler's department whatever the SQL says, and hotspots
 * are joined to their master case so they follow the same visibility. The
 * on-time and satisfaction figures are the statistics facts' (0009) closing
 * days per department, kept beside them by triggers (case_stats_daily, 0023):
 * the figures kesu_stats() gives GET /v1/stats and kesuctl stats, so the
 * console does not disagree with the statistics, read from a few rows a day
 * instead of every fact. The per-status counts are kept the same way
 * (case_status_counts, 0022). The hotspots table (0007) is optional: a
 * database without it gets "hotspots": {"available": false}.
 */
#include "api_console.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "casefsm.h"
#include "config.h"
#include "log.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* statuses from which a case no longer counts as open work */
#define OPEN_CASE "c.status NOT IN ('closed', 'merged', 'rejected', 'withdrawn')"

/* the counts the cases' triggers keep (0022, decision 0031): a few hundred
 * rows whatever the number of cases, and the cases on their way to a
 * department, which are not kept there (received, classified: a handful,
 * normally), from cases_status; row-level security keeps a handler's to its
 * department */
static const pg_stmt_t st_counts = {
    "console_counts",
    "SELECT c.status, sum(c.n) AS n, bool_and(" OPEN_CASE ") AS open FROM "
    "  (SELECT status, n FROM case_status_counts "
    "   UNION ALL SELECT status, count(*) FROM cases "
    "   WHERE status IN ('received', 'classified') GROUP BY status) c "
    "GROUP BY c.status",
    0};

/* A timer is close to its limit once the sla-monitor fired a warning (50 %,
 * 80 % of the working time), and past it when breached or running beyond
 * its due time (the same test as GET /v1/cases?overdue=true). */
static const pg_stmt_t st_sla = {
    "console_sla",
    "WITH t AS (SELECT c.case_no, c.title, c.status, c.department, c.urgency, t.kind, t.state, "
    "  t.warned, t.breach_count, t.due_at, "
    "  CASE WHEN t.state = 'breached' OR (t.state = 'running' AND t.due_at < now()) "
    "       THEN 'breached' WHEN t.warned >= 2 THEN 'warning_80' ELSE 'warning_50' END AS level "
    "  FROM sla_timers t JOIN cases c ON c.id = t.case_id "
    "  WHERE " OPEN_CASE " AND (t.state = 'breached' OR (t.state IN ('running', 'paused') "
    "    AND (t.warned >= 1 OR t.due_at < now())))) "
    "SELECT (SELECT count(*) FROM t WHERE level = 'breached') AS breached, "
    "       (SELECT count(*) FROM t WHERE level <> 'breached') AS warning, "
    "       (SELECT COALESCE(json_agg(x ORDER BY x.level = 'breached' DESC, x.due), '[]') FROM "
    "         (SELECT case_no, title, status, department, urgency, kind, state, level, "
    "          breach_count, due_at AS due, " TS("due_at") " AS due_at "
    "          FROM t ORDER BY level = 'breached' DESC, due_at LIMIT $1::int) x)::text AS items",
    1};

/* today in China time, the statistics' days */
#define CONSOLE_TODAY "(now() AT TIME ZONE 'Asia/Shanghai')::date"

/* open load per department (cases), overdue (timers), and the closes of the
 * last $1 days with their on-time rate, from the closing-day figures kept
 * beside the statistics facts (case_stats_daily, 0023, decision 0032: the
 * figures kesu_stats gives, without reading every fact) */
static const pg_stmt_t st_departments = {
    "console_departments",
    "WITH open AS (SELECT c.department AS code, count(*) AS open, "
    "    count(*) FILTER (WHERE c.urgency = 'emergency') AS emergencies, "
    "    count(*) FILTER (WHERE EXISTS (SELECT 1 FROM sla_timers t WHERE t.case_id = c.id "
    "      AND (t.state = 'breached' OR (t.state = 'running' AND t.due_at < now())))) AS overdue "
    "    FROM cases c WHERE " OPEN_CASE " AND c.department IS NOT NULL GROUP BY c.department), "
    "  st AS (SELECT s.department AS code, sum(s.closed) AS closed, sum(s.on_time) AS on_time, "
    "    round(sum(s.on_time)::numeric / NULLIF(sum(s.timed), 0), 4) AS on_time_rate "
    "    FROM case_stats_daily s WHERE s.day >= " CONSOLE_TODAY " - ($1::int - 1) "
    "    AND s.day <= " CONSOLE_TODAY " AND s.department <> '' "
    "    GROUP BY s.department HAVING sum(s.closed) <> 0) "
    "SELECT COALESCE(json_agg(x ORDER BY x.open DESC, x.code), '[]')::text AS rows FROM "
    "  (SELECT COALESCE(o.code, st.code) AS code, d.name, COALESCE(o.open, 0) AS open, "
    "   COALESCE(o.overdue, 0) AS overdue, COALESCE(o.emergencies, 0) AS emergencies, "
    "   COALESCE(st.closed, 0) AS closed, COALESCE(st.on_time, 0) AS on_time, st.on_time_rate "
    "   FROM open o FULL JOIN st ON st.code = o.code "
    "   LEFT JOIN departments d ON d.code = COALESCE(o.code, st.code)) x",
    1};

/* open emergencies: urgency emergency or the public-safety flag (应急): the
 * oldest $1 listed, and how many are open in all (the tile's number) */
#define EMERGENCY "(c.urgency = 'emergency' OR 'public_safety' = ANY (c.flags))"
static const pg_stmt_t st_emergencies = {
    "console_emergencies",
    "SELECT COALESCE(json_agg(x ORDER BY x.created), '[]')::text AS rows, "
    "  (SELECT count(*) FROM cases c WHERE " OPEN_CASE " AND " EMERGENCY ") AS total FROM "
    "  (SELECT c.case_no, c.title, c.status, c.department, c.urgency, c.flags, "
    "   c.district_code, c.created_at AS created, " TS("c.created_at") " AS created_at "
    "   FROM cases c WHERE " OPEN_CASE " AND " EMERGENCY " ORDER BY c.created_at "
    "   LIMIT $1::int) x",
    1};

static const pg_stmt_t st_satisfaction = {
    "console_satisfaction",
    "SELECT COALESCE(json_agg(json_build_object('day', d::date, 'closed', COALESCE(s.closed, 0), "
    "  'evaluated', COALESCE(s.evaluated, 0), 'satisfied', COALESCE(s.satisfied, 0), "
    "  'satisfaction_rate', round(s.satisfied::numeric / NULLIF(s.evaluated, 0), 4)) "
    "  ORDER BY d), '[]')::text AS rows "
    "FROM generate_series(" CONSOLE_TODAY " - ($1::int - 1), " CONSOLE_TODAY ", "
    "                     interval '1 day') d "
    "LEFT JOIN (SELECT day, sum(closed) AS closed, sum(evaluated) AS evaluated, "
    "  sum(satisfied) AS satisfied FROM case_stats_daily "
    "  WHERE day >= " CONSOLE_TODAY " - ($1::int - 1) AND day <= " CONSOLE_TODAY " "
    "  GROUP BY day) s ON s.day = d::date",
    1};

static const pg_stmt_t st_has_hotspots = {
    "console_has_hotspots", "SELECT to_regclass('hotspots') IS NOT NULL AS present", 0};

/* only prepared once the table is known to exist (a missing table fails the prepare) */
static const pg_stmt_t st_hotspots = {
    "console_hotspots",
    "SELECT COALESCE(json_agg(x ORDER BY x.detected DESC), '[]')::text AS rows FROM "
    "  (SELECT h.district_code, h.domain, h.case_count, h.window_ms / 60000 AS window_minutes, "
    "   c.case_no AS master_case_no, c.title AS master_title, h.detected_at AS detected, "
    "   " TS("h.detected_at") " AS detected_at "
    "   FROM hotspots h JOIN cases c ON c.id = h.master_id "
    "   WHERE h.detected_at > now() - make_interval(days => $1::int) "
    "   ORDER BY h.detected_at DESC LIMIT $2::int) x",
    2};

/* ------------------------------------------------------------- the page */

typedef struct console_file {
    const char *name;         /**< as in the URL and in deploy/console/ */
    const char *content_type; /**< sent as Content-Type */
    char *body;               /**< the whole file, NULL when it could not be read */
    size_t len;               /**< bytes in body */
} console_file_t;

static console_file_t console_files[] = {
    {"index.html", "text/html; charset=utf-8", NULL, 0},
    {"app.js", "text/javascript; charset=utf-8", NULL, 0},
    {"app.css", "text/css; charset=utf-8", NULL, 0},
};
#define CONSOLE_NFILES (sizeof(console_files) / sizeof(console_files[0]))

/* Largest console file read (they are a few KiB; this only bounds a mistake). */
#define CONSOLE_FILE_MAX (1024 * 1024)

static pthread_once_t console_once = PTHREAD_ONCE_INIT;

static int console_read(const char *path, console_file_t *f)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;
    int rc = -1;
    if (!fp)
        goto out;
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || n > CONSOLE_FILE_MAX ||
        fseek(fp, 0, SEEK_SET) != 0)
        goto out;
    if (!(buf = malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, fp) != (size_t)n)
        goto out;
    buf[n] = '\0';
    f->body = buf;
    f->len = (size_t)n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fp)
        fclose(fp);
    return rc;
}

static void console_load(void)
{
    const char *dir = getenv("KESU_CONSOLE_DIR");
    for (size_t i = 0; i < CONSOLE_NFILES; i++) {
        char rel[4096], path[4096];
        snprintf(rel, sizeof(rel), "%s/%s", dir && *dir ? dir : "deploy/console",
                 console_files[i].name);
        config_resolve_path(rel, path, sizeof(path));
        if (console_read(path, &console_files[i]) != 0)
            LOG_ERROR("console file %s could not be read; GET /console answers 503", rel);
    }
}

static int console_send(http_req_t *r, const char *name)
{
    pthread_once(&console_once, console_load);
    for (size_t i = 0; i < CONSOLE_NFILES; i++) {
        console_file_t *f = &console_files[i];
        if (strcmp(f->name, name) != 0)
            continue;
        if (!f->body)
            return api_fail(r, 503, "unavailable", NULL,
                            "the console's files are not installed on this server");
        /* the page is public (it holds no data); what it shows needs a token */
        http_reply_header(r, "Content-Security-Policy",
                          "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                          "base-uri 'none'; form-action 'none'");
        http_reply_header(r, "Cache-Control", "no-cache");
        http_reply_header(r, "Referrer-Policy", "no-referrer");
        http_reply_text(r, 200, f->content_type, f->body, f->len);
        return 200;
    }
    return api_fail(r, 404, "not_found", NULL, "no such console file");
}

API_HANDLER(api_console_page)
{
    (void)w;
    return console_send(r, "index.html");
}

API_HANDLER(api_console_asset)
{
    (void)w;
    const char *name = http_req_param(r, 0);
    /* index.html has one address, /console */
    if (!name || strcmp(name, "index.html") == 0)
        return api_fail(r, 404, "not_found", NULL, "no such console file");
    return console_send(r, name);
}

/* ---------------------------------------------------------- the summary */

/* some queries carry a sort key that is not shown */
static void drop_key(json_t *arr, const char *key)
{
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) json_object_del(it, key);
}

/* Run a statement whose one row has a JSON text column col; append it to body as key. */
/* the JSON document in column col of a one-row result, set as body[key] */
static int result_json(const PGresult *res, const pg_stmt_t *stmt, const char *col, json_t *body,
                       const char *key, char *errstr, size_t errstr_size)
{
    json_error_t je;
    json_t *j = PQntuples(res) == 1 ? json_loads(pg_get(res, 0, col), 0, &je) : NULL;
    if (!j) {
        snprintf(errstr, errstr_size, "%s: no JSON in the result", stmt->name);
        return -1;
    }
    json_object_set_new(body, key, j);
    return 0;
}

static int summary_json(intake_worker_t *w, const pg_stmt_t *stmt, const char *const *v,
                        const char *col, json_t *body, const char *key, char *errstr,
                        size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(w->pg, stmt, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    int rc = result_json(res, stmt, col, body, key, errstr, errstr_size);
    PQclear(res);
    return rc;
}

/* "emergencies": the oldest API_CONSOLE_LIST_MAX, "emergency_total": all open ones */
static int summary_emergencies(intake_worker_t *w, const char *const *v, json_t *body,
                               char *errstr, size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(w->pg, &st_emergencies, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    int rc = result_json(res, &st_emergencies, "rows", body, "emergencies", errstr, errstr_size);
    if (rc == 0)
        json_object_set_new(body, "emergency_total",
                            json_integer(atoll(pg_get(res, 0, "total"))));
    PQclear(res);
    return rc;
}

/* {"received": n, ...} with every status (0 when none), and the open total (OPEN_CASE) */
static int summary_counts(intake_worker_t *w, json_t *body, char *errstr, size_t errstr_size)
{
    json_int_t open = 0, all = 0;
    PGresult *res = pg_exec_stmt(w->pg, &st_counts, NULL, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    json_t *counts = json_object();
    for (int s = 0; s < CASE__COUNT; s++)
        json_object_set_new(counts, casefsm_name((case_status_t)s), json_integer(0));
    for (int i = 0; i < PQntuples(res); i++) {
        json_int_t n = strtoll(pg_get(res, i, "n"), NULL, 10);
        json_object_set_new(counts, pg_get(res, i, "status"), json_integer(n));
        all += n;
        if (strcmp(pg_get(res, i, "open"), "t") == 0)
            open += n;
    }
    PQclear(res);
    json_object_set_new(body, "status_counts", counts);
    json_object_set_new(body, "open_total", json_integer(open));
    json_object_set_new(body, "total", json_integer(all));
    return 0;
}

static int summary_sla(intake_worker_t *w, const char *limit, json_t *body, char *errstr,
                       size_t errstr_size)
{
    json_error_t je;
    const char *v[1] = {limit};
    PGresult *res = pg_exec_stmt(w->pg, &st_sla, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    json_t *items = json_loads(pg_get(res, 0, "items"), 0, &je);
    json_t *sla = json_pack("{s:I, s:I, s:o}", "breached",
                            (json_int_t)strtoll(pg_get(res, 0, "breached"), NULL, 10), "warning",
                            (json_int_t)strtoll(pg_get(res, 0, "warning"), NULL, 10), "items",
                            items ? items : json_array());
    PQclear(res);
    drop_key(json_object_get(sla, "items"), "due");
    json_object_set_new(body, "sla", sla);
    return 0;
}

static int summary_hotspots(intake_worker_t *w, const char *days, const char *limit,
                            json_t *body, char *errstr, size_t errstr_size)
{
    json_t *hs = json_pack("{s:b}", "available", 0);
    json_object_set_new(body, "hotspots", hs);
    PGresult *res =
        pg_exec_stmt(w->pg, &st_has_hotspots, NULL, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    int present = strcmp(pg_get(res, 0, "present"), "t") == 0;
    PQclear(res);
    if (!present) {
        json_object_set_new(hs, "items", json_array());
        return 0;
    }
    json_object_set_new(hs, "available", json_true());
    const char *v[2] = {days, limit};
    return summary_json(w, &st_hotspots, v, "rows", hs, "items", errstr, errstr_size);
}

API_HANDLER(api_console_summary)
{
    intake_token_t tok;
    char errstr[512], days[16], limit[16], now[40];
    int st;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    snprintf(days, sizeof(days), "%d", API_CONSOLE_DAYS);
    snprintf(limit, sizeof(limit), "%d", API_CONSOLE_LIST_MAX);
    util_fmt_time(util_now_ms(), now, sizeof(now));
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "console", errstr);
    const char *scope = intake_token_scope(&tok);
    json_t *body = json_pack("{s:s, s:i, s:{s:s, s:o}}", "generated_at", now, "days",
                             API_CONSOLE_DAYS, "scope", "role", tok.role_name, "department",
                             scope ? json_string(scope) : json_null());
    const char *vd[1] = {days}, *vl[1] = {limit};
    if (summary_counts(w, body, errstr, sizeof(errstr)) != 0 ||
        summary_sla(w, limit, body, errstr, sizeof(errstr)) != 0 ||
        summary_json(w, &st_departments, vd, "rows", body, "departments", errstr,
                     sizeof(errstr)) != 0 ||
        summary_emergencies(w, vl, body, errstr, sizeof(errstr)) != 0 ||
        summary_json(w, &st_satisfaction, vd, "rows", body, "satisfaction", errstr,
                     sizeof(errstr)) != 0 ||
        summary_hotspots(w, days, limit, body, errstr, sizeof(errstr)) != 0) {
        json_decref(body);
        return api_fail_db(w, r, "console", errstr);
    }
    pg_rollback(w->pg); /* read only: nothing to commit */
    drop_key(json_object_get(body, "emergencies"), "created");
    drop_key(json_object_get(json_object_get(body, "hotspots"), "items"), "detected");
    http_reply_json(r, 200, body);
    return 200;
}
