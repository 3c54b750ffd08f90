/*
 * archive_stats: the statistics facts (case_stats, 0009) and the retention
 * purge of contact data.
 *
 * The archiver publishes each case's events exactly once and in history
 * order (0004), so updating one fact row per case at that moment keeps the
 * statistics exact without re-reading the history: a replayed event is
 * skipped by the ordering before it gets here. Times are the events'
 * occurred_at, not the archiver's clock, so a backlog replayed late still
 * lands on the right day. The aggregation is kesu_stats() in SQL, shared by
 * GET /v1/stats and kesuctl stats.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "log.h"

/* the three figures of (almost) every case, a batch's at once: the fact row
 * made at CaseReceived, its category and department set by the later events
 * (the last of a case's in the batch counts, as if written one by one) */
enum { AS_RECEIVED = 0, AS_CATEGORY = 1, AS_DEPARTMENT = 2 };
static const int as_cols[3] = {4, 2, 2};

static const pg_stmt_t as_gathered[3] = {
    {"as_received",
     "INSERT INTO case_stats (case_id, received_at, channel, district) "
     "SELECT id, to_timestamp(ms / 1000), channel, district FROM unnest($1::uuid[], "
     "$2::double precision[], $3::text[], $4::text[]) AS r(id, ms, channel, district) "
     "ON CONFLICT (case_id) DO NOTHING",
     4},
    {"as_category",
     "UPDATE case_stats s SET category = u.v FROM (SELECT DISTINCT ON (id) id, v FROM "
     "unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS r(id, v, ord) ORDER BY id, ord DESC) u "
     "WHERE s.case_id = u.id",
     2},
    {"as_department",
     "UPDATE case_stats s SET department = u.v FROM (SELECT DISTINCT ON (id) id, v FROM "
     "unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS r(id, v, ord) ORDER BY id, ord DESC) u "
     "WHERE s.case_id = u.id",
     2},
};

static const pg_stmt_t as_returned = {
    "as_returned", "UPDATE case_stats SET returns = returns + 1 WHERE case_id = $1::uuid", 1};

static const pg_stmt_t as_reopened = {
    "as_reopened", "UPDATE case_stats SET reopens = reopens + 1 WHERE case_id = $1::uuid", 1};

static const pg_stmt_t as_feedback = {
    "as_feedback", "UPDATE case_stats SET satisfaction = $2::smallint WHERE case_id = $1::uuid",
    2};

static const pg_stmt_t as_received_at = {
    "as_received_at",
    "SELECT (EXTRACT(EPOCH FROM received_at) * 1000)::bigint AS ms FROM case_stats "
    "WHERE case_id = $1::uuid",
    1};

static const pg_stmt_t as_resolved = {
    "as_resolved",
    "UPDATE case_stats SET resolved_at = to_timestamp($2::double precision / 1000), "
    "handling_hours = $3::double precision, "
    "department = CASE WHEN $4 = '' THEN department ELSE $4 END WHERE case_id = $1::uuid",
    4};

/* on time = resolved no later than the resolve timer's due (按时办结);
 * kesu_resolve_due (migration 0014) picks the timer that judges the last
 * resolution. Without a timer yet (the SLA monitor reads CaseAssigned from
 * another topic and may be behind) on_time stays NULL and kesu_stats judges
 * the case when it reads, from the timer recorded since */
static const pg_stmt_t as_closed = {
    "as_closed",
    "UPDATE case_stats s SET closed_at = to_timestamp($2::double precision / 1000), "
    "resolve_due_at = t.due_at, on_time = s.resolved_at <= t.due_at "
    "FROM (SELECT kesu_resolve_due($1::uuid) AS due_at) t WHERE s.case_id = $1::uuid",
    2};

/* complainants whose every case ended more than $1 days ago */
static const pg_stmt_t as_retention = {
    "as_retention",
    "SELECT count(*) FILTER (WHERE kesu_complainant_purge(p.id, 'retention', 'archiver', "
    "'contact data retention of ' || $1::text || ' days')) AS n "
    "FROM (SELECT p.id FROM complainants p WHERE p.purged_at IS NULL "
    /* implied by the NOT EXISTS (a case ends after it was made, and it was made
     * after its complainant), but it lets complainants_unpurged (migration
     * 0020) skip the ones that cannot be due yet */
    "  AND p.created_at < now() - $1::int * interval '1 day' "
    "  AND EXISTS (SELECT 1 FROM cases c WHERE c.complainant_id = p.id) "
    "  AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.complainant_id = p.id AND "
    "    (c.status NOT IN ('closed', 'rejected', 'withdrawn', 'merged') OR "
    "     COALESCE(c.closed_at, c.updated_at) > now() - $1::int * interval '1 day')) "
    "  ORDER BY p.created_at LIMIT $2::int FOR UPDATE OF p SKIP LOCKED) p",
    2};

double archive_stats_hours(const calendar_t *cal, int64_t from_ms, int64_t to_ms)
{
    if (to_ms <= from_ms)
        return 0.0;
    /* the same calendar the SLA limits count on, so "handling hours" and
     * "within the limit" measure the same time */
    if (cal)
        return (double)calendar_work_between(cal, from_ms, to_ms) / 3600000.0;
    return (double)(to_ms - from_ms) / 3600000.0;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static void as_reset(archive_t *ar)
{
    for (int k = 0; k < 3; k++)
        pg_rows_ready(&ar->stats_rows[k], as_cols[k]);
}

void archive_stats_free(archive_t *ar)
{
    for (int k = 0; k < 3; k++)
        pg_rows_free(&ar->stats_rows[k]);
    ar->stats_gather = 0;
    pg_rows_free(&ar->run_rows);
    free(ar->sent);
    ar->sent = NULL;
    ar->nsent = ar->sent_cap = 0;
}

int archive_stats_flush(archive_t *ar, pg_t *pg, char *errstr, size_t errstr_size)
{
    /* in this order: a case's fact row exists before its category and department */
    for (int k = 0; k < 3; k++) {
        if (ar->stats_rows[k].n == 0)
            continue;
        PGresult *res = pg_rows_exec(pg, &as_gathered[k], &ar->stats_rows[k], NULL,
                                     PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res) {
            as_reset(ar); /* the attempt is undone: nothing gathered stays */
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

kc_result_t archive_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                          size_t n, char *errstr, size_t errstr_size)
{
    archive_t *ar = opaque;
    if (phase == KC_BATCH_CLAIMED)
        return archive_feed_claimed(ar, pg, msgs, n, errstr, errstr_size);
    archive_feed_reset(ar);
    if (phase != KC_BATCH_END) {
        as_reset(ar);
        ar->stats_gather = phase == KC_BATCH_BEGIN;
        return KC_OK;
    }
    ar->stats_gather = 0;
    if (archive_stats_flush(ar, pg, errstr, errstr_size) != 0)
        return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
    return KC_OK;
}

/* one row of a gathered statement: kept for the batch's end, or written now */
static int as_gather(archive_t *ar, pg_t *pg, int k, const char *const *v, char *errstr,
                     size_t errstr_size)
{
    if (!ar->stats_gather)
        as_reset(ar);
    pg_rows_t *r = &ar->stats_rows[k];
    if (r->ncols != as_cols[k]) {
        snprintf(errstr, errstr_size, "out of memory gathering statistics rows");
        return -1;
    }
    for (int c = 0; c < as_cols[k]; c++)
        pg_rows_text(r, c, v[c]);
    r->n++;
    return ar->stats_gather ? 0 : archive_stats_flush(ar, pg, errstr, errstr_size);
}

int archive_stats_apply(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                        size_t errstr_size)
{
    char at[24], num[24];
    const char *id = env->case_id;
    snprintf(at, sizeof(at), "%" PRId64, env->occurred_at_ms);
    switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED: {
        const Kesu__V1__CaseReceived *p = env->case_received;
        const char *v[4] = {id, at, nz(p->channel),
                            p->location ? nz(p->location->district_code) : ""};
        return as_gather(ar, pg, AS_RECEIVED, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED: {
        const char *v[2] = {id, nz(env->case_classified->category)};
        return as_gather(ar, pg, AS_CATEGORY, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED: {
        const char *v[2] = {id, nz(env->case_assigned->department)};
        return as_gather(ar, pg, AS_DEPARTMENT, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED:
    case KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED:
        /* these read or change the fact row as it is now: what is gathered
         * goes first, so the row is as if each event had been written alone */
        if (ar->stats_gather && archive_stats_flush(ar, pg, errstr, errstr_size) != 0)
            return -1;
        break;
    default:
        return 0; /* no figure */
    }
    switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED: {
        const char *v[1] = {id};
        return pg_exec_stmt_cmd(pg, &as_returned, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED: {
        const char *v[1] = {id};
        return pg_exec_stmt_cmd(pg, &as_reopened, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED: {
        snprintf(num, sizeof(num), "%d", env->feedback_received->satisfaction);
        const char *v[2] = {id, num};
        return pg_exec_stmt_cmd(pg, &as_feedback, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED: {
        const char *v1[1] = {id};
        PGresult *res =
            pg_exec_stmt(pg, &as_received_at, v1, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res)
            return -1;
        if (PQntuples(res) == 0) {
            /* received before statistics existed: nothing to measure from */
            PQclear(res);
            return 0;
        }
        int64_t received = strtoll(pg_get(res, 0, "ms"), NULL, 10);
        PQclear(res);
        snprintf(num, sizeof(num), "%.6f", archive_stats_hours(ar->cal, received, env->occurred_at_ms));
        const char *v[4] = {id, at, num, nz(env->case_resolved->department)};
        return pg_exec_stmt_cmd(pg, &as_resolved, v, errstr, errstr_size);
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED: {
        const char *v[2] = {id, at};
        return pg_exec_stmt_cmd(pg, &as_closed, v, errstr, errstr_size);
    }
    default:
        return 0;
    }
}

static const pg_stmt_t as_counts_fold = {
    "as_counts_fold", "SELECT kesu_status_counts_fold() + kesu_stats_daily_fold() AS n", 0};

static const pg_stmt_t as_judge_late = {
    "as_judge_late", "SELECT kesu_stats_judge_late($1::int, $2::int) AS n", 2};

/* the one number a housekeeping statement returns, or -1 */
static long long as_number(pg_t *pg, const pg_stmt_t *stmt, const char *const *v, char *errstr,
                           size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, stmt, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    long long n = atoll(pg_get(res, 0, "n"));
    PQclear(res);
    return n;
}

long long archive_counts_fold(pg_t *pg, char *errstr, size_t errstr_size)
{
    return as_number(pg, &as_counts_fold, NULL, errstr, errstr_size);
}

long long archive_stats_judge_late(pg_t *pg, int days, int limit, char *errstr,
                                   size_t errstr_size)
{
    char d[16], l[16];
    snprintf(d, sizeof(d), "%d", days);
    snprintf(l, sizeof(l), "%d", limit);
    const char *v[2] = {d, l};
    long long n = as_number(pg, &as_judge_late, v, errstr, errstr_size);
    if (n > 0)
        LOG_INFO("on-time judgement stored for %lld cases closed before their resolve timer "
                 "was recorded",
                 n);
    return n;
}

int archive_retention_run(pg_t *pg, int days, int limit, int rounds, int *more, char *errstr,
                          size_t errstr_size)
{
    int total = 0;
    *more = 0;
    for (int round = 0; round < rounds; round++) {
        int n = archive_retention_purge(pg, days, limit, errstr, errstr_size);
        if (n < 0)
            return -1; /* the rounds before stay purged (and logged) */
        total += n;
        if (n < limit)
            return total;
    }
    *more = 1; /* every round was full: more are due */
    return total;
}

int archive_retention_purge(pg_t *pg, int days, int limit, char *errstr, size_t errstr_size)
{
    char d[16], l[16];
    int n;
    if (days <= 0)
        return 0;
    snprintf(d, sizeof(d), "%d", days);
    snprintf(l, sizeof(l), "%d", limit > 0 ? limit : 100);
    const char *v[2] = {d, l};
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    PGresult *res = pg_exec_stmt(pg, &as_retention, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res) {
        pg_rollback(pg);
        return -1;
    }
    n = atoi(pg_get(res, 0, "n"));
    PQclear(res);
    if (pg_commit(pg, errstr, errstr_size) != 0)
        return -1;
    if (n > 0)
        LOG_INFO("contact data of %d complainants purged after %d days (pii_erasures)", n, days);
    return n;
}
