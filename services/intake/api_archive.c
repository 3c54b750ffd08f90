/*
 * api_archive: the archive routes (see api_archive.h). Records are written
 * by the archiver when a case closes and never change (0004); a case closed
 * twice has two, by case version. Both routes run in api_tx_begin, so
 * row-level security on archive_records (0009) limits a handler to its
 * department's cases. The record holds no contact data (the archiver leaves
 * out every *_enc / *_hash column and notification targets).
 */
#include "api_archive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_stats.h"

/* most records one export page returns */
#define API_ARCHIVE_MAX_LIMIT 1000

/* the latest record (or the one of version $2), with every version there is */
static const pg_stmt_t st_archive_get = {
    "api_archive_get",
    "SELECT jsonb_build_object('case_no', a.case_no, 'case_version', a.case_version, "
    "  'closed_at', a.closed_at, 'archived_at', a.archived_at, "
    "  'versions', (SELECT jsonb_agg(b.case_version ORDER BY b.case_version) "
    "               FROM archive_records b WHERE b.case_no = a.case_no), "
    "  'record', a.record)::text AS doc "
    "FROM archive_records a WHERE a.case_no = $1 "
    "AND ($2 = '' OR a.case_version = NULLIF($2, '')::bigint) "
    "ORDER BY a.case_version DESC LIMIT 1",
    2};

/* One page of a local-date range of closes, oldest first, in the order of
 * archive_records_closed. A page starts after the cursor ($5 µs since the
 * epoch, $6 case number, $7 version: the last record of the page before;
 * the range's first microsecond, '', 0 for the first page) and skips $4 more
 * (the older offset paging). The row comparison is a bound of the index range
 * in either plan mode, so the thousandth page costs what the first does (its
 * parameters are plain values: with a COALESCE in it PostgreSQL counts it as
 * leaky under row-level security and filters every row instead, measured).
 * One row more than asked tells whether another page follows; "cursor" is
 * the row's own, the next page's start. */
static const pg_stmt_t st_archive_range = {
    "api_archive_range",
    "SELECT jsonb_build_object('case_no', case_no, 'case_version', case_version, "
    "  'closed_at', closed_at, 'archived_at', archived_at, 'record', record)::text AS line, "
    "  (extract(epoch FROM closed_at) * 1000000)::bigint || '.' || case_version || '.' || "
    "  case_no AS cursor "
    "FROM archive_records "
    "WHERE closed_at >= ($1::date)::timestamp AT TIME ZONE 'Asia/Shanghai' "
    "  AND closed_at < ($2::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' "
    "  AND (closed_at, case_no, case_version) > "
    "    ('epoch'::timestamptz + $5::bigint * interval '1 microsecond', $6, $7::bigint) "
    "ORDER BY closed_at, case_no, case_version LIMIT $3::int + 1 OFFSET $4::int",
    7};

/* the longest cursor accepted: "µs.version.case_no" */
#define API_ARCHIVE_CURSOR_MAX 96

/* Split a cursor this route gave ("1764563062123456.3.KS20261201-0000009")
 * into its three parts, in place; 0 when it is one, -1 when not. */
static int archive_cursor(char *s, const char **us, const char **ver, const char **no)
{
    char *dot1 = strchr(s, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2 || dot1 == s || dot2 == dot1 + 1 || !dot2[1])
        return -1;
    *dot1 = *dot2 = '\0';
    if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 16 ||
        strspn(dot1 + 1, "0123456789") != strlen(dot1 + 1) || strlen(dot1 + 1) > 18)
        return -1;
    /* the case number is the rest, as it was (a bind parameter: printable ASCII is all it
     * has to be) */
    for (const char *p = dot2 + 1; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return -1;
    *us = s;
    *ver = dot1 + 1;
    *no = dot2 + 1;
    return 0;
}

static int digits_only(const char *s)
{
    return s && *s && strlen(s) <= 9 && strspn(s, "0123456789") == strlen(s);
}

API_HANDLER(api_archive_get)
{
    intake_token_t tok;
    char errstr[512];
    int st = 0;
    const char *no = api_case_no_param(r, &st);
    const char *ver = http_req_query(r, "version");
    if (!no)
        return st;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    if (ver && !digits_only(ver))
        return api_fail(r, 400, "invalid", "version", "version is a case version number");
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "archive", errstr);
    const char *v[2] = {no, ver ? ver : ""};
    PGresult *res =
        pg_exec_stmt(w->pg, &st_archive_get, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res)
        return api_fail_db(w, r, "archive", errstr);
    pg_rollback(w->pg); /* read only */
    if (PQntuples(res) == 0) {
        PQclear(res);
        /* not closed yet, not visible to this token, or no such case: one answer */
        return api_fail(r, 404, "not_found", "case_no", "no archive record for this case");
    }
    const char *doc = pg_get(res, 0, "doc");
    http_reply_text(r, 200, "application/json; charset=utf-8", doc, strlen(doc));
    PQclear(res);
    return 200;
}

API_HANDLER(api_archive_export)
{
    intake_token_t tok;
    char from[11], to[11], errstr[512], lim[16], next[24], cur[API_ARCHIVE_CURSOR_MAX + 1];
    const char *limit = http_req_query(r, "limit"), *offset = http_req_query(r, "offset");
    const char *cursor = http_req_query(r, "cursor");
    const char *us = NULL, *ver = NULL, *no = NULL;
    char start[24];
    int st, n, lim_n;
    strbuf_t b;
    if ((st = api_authenticate(w, r,
                               INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_AUDITOR | INTAKE_ROLE_ADMIN |
                                   INTAKE_ROLE_HANDLER,
                               &tok)) != 0)
        return st;
    if ((st = api_date_range(r, from, to)) != 0)
        return st;
    if (limit && (!digits_only(limit) || atoi(limit) < 1 || atoi(limit) > API_ARCHIVE_MAX_LIMIT))
        return api_fail(r, 400, "invalid", "limit", "limit is 1..%d", API_ARCHIVE_MAX_LIMIT);
    if (offset && !digits_only(offset))
        return api_fail(r, 400, "invalid", "offset", "offset is a number of records");
    if (cursor && offset)
        return api_fail(r, 400, "invalid", "cursor",
                        "cursor and offset do not go together: page by X-Next-Cursor alone");
    if (cursor) {
        if (strlen(cursor) > API_ARCHIVE_CURSOR_MAX)
            return api_fail(r, 400, "invalid", "cursor", "cursor is not one this route gave");
        snprintf(cur, sizeof(cur), "%s", cursor);
        if (archive_cursor(cur, &us, &ver, &no) != 0)
            return api_fail(r, 400, "invalid", "cursor",
                            "cursor is not one this route gave (pass X-Next-Cursor as it is)");
    }
    /* a page starts no earlier than the range: the index scan starts there */
    snprintf(start, sizeof(start), "%lld", api_day_start_us(from));
    if (!cursor || strtoll(us, NULL, 10) < atoll(start)) {
        us = start;
        ver = "0";
        no = "";
    }
    lim_n = limit ? atoi(limit) : API_ARCHIVE_MAX_LIMIT;
    snprintf(lim, sizeof(lim), "%d", lim_n);
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "archive export", errstr);
    const char *v[7] = {from, to, lim, offset ? offset : "0", us, no, ver};
    PGresult *res =
        pg_exec_stmt(w->pg, &st_archive_range, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res)
        return api_fail_db(w, r, "archive export", errstr);
    pg_rollback(w->pg);
    n = PQntuples(res);
    strbuf_init(&b);
    for (int i = 0; i < n && i < lim_n; i++) {
        const char *line = pg_get(res, i, "line");
        strbuf_append(&b, line, strlen(line));
        strbuf_append(&b, "\n", 1);
    }
    if (n > lim_n) {
        /* more follow: the client asks again from the page's last record (or,
         * paging by offset, from the next offset) */
        http_reply_header(r, "X-Next-Cursor", pg_get(res, lim_n - 1, "cursor"));
        if (!cursor) {
            snprintf(next, sizeof(next), "%d", (offset ? atoi(offset) : 0) + lim_n);
            http_reply_header(r, "X-Next-Offset", next);
        }
    }
    PQclear(res);
    http_reply_text(r, 200, "application/x-ndjson; charset=utf-8", b.s, b.len);
    strbuf_free(&b);
    return 200;
}
