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

/* one page of a local-date range of closes, oldest first; one row more than
 * asked tells whether another page follows */
static const pg_stmt_t st_archive_range = {
    "api_archive_range",
    "SELECT jsonb_build_object('case_no', case_no, 'case_version', case_version, "
    "  'closed_at', closed_at, 'archived_at', archived_at, 'record', record)::text AS line "
    "FROM archive_records "
    "WHERE closed_at >= ($1::date)::timestamp AT TIME ZONE 'Asia/Shanghai' "
    "  AND closed_at < ($2::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' "
    "ORDER BY closed_at, case_no, case_version LIMIT $3::int + 1 OFFSET $4::int",
    4};

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
    char from[11], to[11], errstr[512], lim[16], next[24];
    const char *limit = http_req_query(r, "limit"), *offset = http_req_query(r, "offset");
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
    lim_n = limit ? atoi(limit) : API_ARCHIVE_MAX_LIMIT;
    snprintf(lim, sizeof(lim), "%d", lim_n);
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "archive export", errstr);
    const char *v[4] = {from, to, lim, offset ? offset : "0"};
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
    PQclear(res);
    if (n > lim_n) {
        /* more follow: the client asks again from here */
        snprintf(next, sizeof(next), "%d", (offset ? atoi(offset) : 0) + lim_n);
        http_reply_header(r, "X-Next-Offset", next);
    }
    http_reply_text(r, 200, "application/x-ndjson; charset=utf-8", b.s, b.len);
    strbuf_free(&b);
    return 200;
}
