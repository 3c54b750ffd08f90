/*
 * api_stats: the statistics route (see api_stats.h). The figures come from
 * one SQL function, kesu_stats() (0009), which kesuctl stats calls too, so
 * the API, the CSV and the operator's table can never disagree. It runs in
 * api_tx_begin: row-level security on case_stats limits a handler to its
 * own department's figures. docs/statistics.md defines every column.
 */
#include "api_stats.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "util.h"

static const pg_stmt_t st_stats_json = {"api_stats_json",
                                        "SELECT COALESCE(json_agg(s), '[]'::json)::text AS rows "
                                        "FROM kesu_stats($1::date, $2::date, $3::text[]) s",
                                        3};

static const pg_stmt_t st_stats_csv = {
    "api_stats_csv", "SELECT line FROM kesu_stats_csv($1::date, $2::date, $3::text[])", 3};

/* the dimensions a client may group by, in output order */
static const char *const stats_dims[] = {"day", "department", "category", "channel", "district"};
#define STATS_NDIMS (sizeof(stats_dims) / sizeof(stats_dims[0]))

static int date_parse(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    int mon = tm.tm_mon, mday = tm.tm_mday;
    *out = timegm(&tm);
    /* timegm normalises 2026-02-30 to March: refuse what moved */
    return tm.tm_mon == mon && tm.tm_mday == mday ? 0 : -1;
}

long long api_day_start_us(const char *day)
{
    time_t t;
    if (date_parse(day, &t) != 0)
        return -1;
    return ((long long)t - UTIL_CHINA_TZ_OFFSET_S) * 1000000LL;
}

int api_date_range(http_req_t *r, char from[11], char to[11])
{
    const char *f = http_req_query(r, "from"), *t = http_req_query(r, "to");
    time_t a, b;
    if (!f)
        return api_fail(r, 400, "missing", "from", "give the first day: ?from=YYYY-MM-DD");
    if (date_parse(f, &a) != 0)
        return api_fail(r, 400, "invalid", "from", "from must be a date YYYY-MM-DD");
    if (!t)
        t = f;
    if (date_parse(t, &b) != 0)
        return api_fail(r, 400, "invalid", "to", "to must be a date YYYY-MM-DD");
    if (b < a)
        return api_fail(r, 400, "invalid", "to", "to must not be before from");
    if ((b - a) / 86400 + 1 > API_STATS_MAX_DAYS)
        return api_fail(r, 400, "invalid", "to", "a range covers at most %d days",
                        API_STATS_MAX_DAYS);
    memcpy(from, f, 11);
    memcpy(to, t, 11);
    return 0;
}

/* "department,category" -> "{department,category}" (known names only, no repeats) */
static int group_parse(http_req_t *r, char *out, size_t n)
{
    const char *g = http_req_query(r, "group_by");
    char buf[128];
    int seen[STATS_NDIMS] = {0};
    size_t len = 0;
    if (!g)
        g = "day";
    if (strlen(g) >= sizeof(buf))
        return api_fail(r, 400, "invalid", "group_by", "group_by is too long");
    snprintf(buf, sizeof(buf), "%s", g);
    out[len++] = '{';
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t k;
        for (k = 0; k < STATS_NDIMS && strcmp(t, stats_dims[k]) != 0; k++)
            ;
        if (k == STATS_NDIMS || seen[k])
            return api_fail(r, 400, "invalid", "group_by",
                            "group_by lists some of day, department, category, channel, "
                            "district, each once");
        seen[k] = 1;
        len += (size_t)snprintf(out + len, n - len, "%s%s", len > 1 ? "," : "", stats_dims[k]);
    }
    snprintf(out + len, n - len, "}");
    return 0;
}

API_HANDLER(api_stats_get)
{
    intake_token_t tok;
    char from[11], to[11], group[96], errstr[512];
    const char *fmt = http_req_query(r, "format");
    int st, csv;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    if ((st = api_date_range(r, from, to)) != 0 || (st = group_parse(r, group, sizeof(group))) != 0)
        return st;
    if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0)
        return api_fail(r, 400, "invalid", "format", "format is json or csv");
    csv = fmt && strcmp(fmt, "csv") == 0;
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "stats", errstr);
    const char *v[3] = {from, to, group};
    PGresult *res = pg_exec_stmt(w->pg, csv ? &st_stats_csv : &st_stats_json, v, PGRES_TUPLES_OK,
                                 errstr, sizeof(errstr));
    if (!res)
        return api_fail_db(w, r, "stats", errstr);
    pg_rollback(w->pg); /* read only: nothing to commit */
    if (csv) {
        strbuf_t b;
        char disp[96];
        strbuf_init(&b);
        for (int i = 0; i < PQntuples(res); i++) {
            const char *line = pg_get(res, i, "line");
            strbuf_append(&b, line, strlen(line));
            strbuf_append(&b, "\r\n", 2);
        }
        PQclear(res);
        snprintf(disp, sizeof(disp), "attachment; filename=\"kesu-stats-%s-%s.csv\"", from, to);
        http_reply_header(r, "Content-Disposition", disp);
        http_reply_text(r, 200, "text/csv; charset=utf-8", b.s, b.len);
        strbuf_free(&b);
        return 200;
    }
    json_error_t je;
    json_t *rows = json_loads(pg_get(res, 0, "rows"), 0, &je);
    PQclear(res);
    json_t *groups = json_array();
    for (char *p = group + 1; *p && *p != '}';) {
        size_t k = strcspn(p, ",}");
        json_array_append_new(groups, json_stringn(p, k));
        p += k + (p[k] == ',');
    }
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:o, s:o}", "from", from, "to", to, "timezone", "Asia/Shanghai",
                  "group_by", groups, "rows", rows ? rows : json_array());
    http_reply_json(r, 200, body);
    return 200;
}
