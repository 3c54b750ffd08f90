/*
 * Integration: the closing-day figures kept beside the statistics facts
 * (case_stats_daily, migration 0023, decision 0032) against PostgreSQL.
 *
 * The console reads them instead of running kesu_stats() over every fact of
 * 14 days, so after every kind of change of a fact (a close, a feedback, a
 * department change, a reopen closed again on another day, a delete) they
 * must give what kesu_stats() gives for the same days and department: closed,
 * on time, the on-time rate, evaluated, satisfied. A fact closed before its
 * resolve timer was recorded is judged by kesu_stats() when it reads; the
 * archiver's late-judgement pass (archive_stats_judge_late) stores that
 * judgement, after which the two agree again.
 *
 * Other tests write facts at the same time: this one's are in a department
 * of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "archive.h"
#include "itest.h"
#include "log.h"
#include "util.h"

static pg_t *pg;
static char dept[32], dept2[32], prefix[24];

/* a fact of this run: received two days ago, resolved and closed `closed`
 * ago (NULL: open), with that judgement ("t", "f" or NULL) */
static void fact(char id[37], const char *closed, const char *on_time)
{
    util_uuid(id);
    const char *v[4] = {id, dept, closed, on_time};
    PQclear(itest_qv(pg,
                     "INSERT INTO case_stats (case_id, received_at, channel, department, "
                     "resolved_at, closed_at, on_time) VALUES ($1::uuid, now() - interval '2 days', "
                     "'web', $2, now() - $3::interval - interval '1 hour', now() - $3::interval, "
                     "$4::boolean)",
                     4, v));
}

static void set(const char *id, const char *assignment)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE case_stats SET %s WHERE case_id = $1::uuid", assignment);
    PQclear(itest_q(pg, sql, id));
}

/* the kept figures and kesu_stats() agree for this run's departments over the
 * last three days (the differences are the failure message) */
static void assert_agree(void)
{
    const char *v[2] = {dept, dept2};
    PGresult *res = itest_qv(
        pg,
        "WITH days AS (SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date AS hi), "
        "k AS (SELECT day, department, sum(closed) AS closed, sum(on_time) AS on_time, "
        "  round(sum(on_time)::numeric / NULLIF(sum(timed), 0), 4) AS rate, "
        "  sum(evaluated) AS evaluated, sum(satisfied) AS satisfied "
        "  FROM case_stats_daily, days WHERE day BETWEEN hi - 3 AND hi "
        "  AND department IN ($1, $2) GROUP BY 1, 2 HAVING sum(closed) <> 0), "
        "s AS (SELECT s.day, s.department, s.closed, s.on_time, s.on_time_rate AS rate, "
        "  s.evaluated, s.satisfied FROM days, kesu_stats(hi - 3, hi, '{day,department}') s "
        "  WHERE s.department IN ($1, $2) AND s.closed <> 0) "
        "SELECT string_agg(format('%s %s: kept %s stats %s', COALESCE(k.day, s.day), "
        "  COALESCE(k.department, s.department), "
        "  (k.closed, k.on_time, k.rate, k.evaluated, k.satisfied), "
        "  (s.closed, s.on_time, s.rate, s.evaluated, s.satisfied)), '; ') "
        "FROM k FULL JOIN s ON s.day = k.day AND s.department = k.department "
        "WHERE (k.closed, k.on_time, k.rate, k.evaluated, k.satisfied) IS DISTINCT FROM "
        "      (s.closed, s.on_time, s.rate, s.evaluated, s.satisfied)",
        2, v);
    if (!PQgetisnull(res, 0, 0))
        fail_msg("kept figures differ from kesu_stats: %s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* the kept number of closes of a department on the day `ago` before now */
static long long closed_on(const char *d, const char *ago)
{
    const char *v[2] = {d, ago};
    PGresult *res = itest_qv(pg,
                             "SELECT COALESCE(sum(closed), 0) FROM case_stats_daily "
                             "WHERE department = $1 "
                             "AND day = ((now() - $2::interval) AT TIME ZONE 'Asia/Shanghai')::date",
                             2, v);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static void test_figures_follow_facts(void **state)
{
    char a[37], b[37], c[37], d[37], e[37];
    (void)state;
    fact(a, "1 minute", "t");
    fact(b, "1 minute", "f");
    fact(c, "1 day", "t");
    fact(d, "1 day", NULL); /* no timer: untimed */
    assert_int_equal(closed_on(dept, "1 minute"), 2);
    assert_int_equal(closed_on(dept, "1 day"), 2);
    assert_agree();
    /* an open fact does not count; its close does */
    util_uuid(e);
    PQclear(itest_qv(pg,
                     "INSERT INTO case_stats (case_id, received_at, department) "
                     "VALUES ($1::uuid, now(), $2)",
                     2, (const char *const[]){e, dept}));
    assert_int_equal(closed_on(dept, "1 minute"), 2);
    set(e, "resolved_at = now(), closed_at = now(), on_time = true");
    assert_int_equal(closed_on(dept, "1 minute"), 3);
    /* feedback after the close */
    set(a, "satisfaction = 5");
    set(b, "satisfaction = 2");
    set(c, "satisfaction = 4");
    assert_agree();
    /* the department changes after the close */
    PQclear(itest_qv(pg, "UPDATE case_stats SET department = $2 WHERE case_id = $1::uuid", 2,
                     (const char *const[]){b, dept2}));
    assert_int_equal(closed_on(dept2, "1 minute"), 1);
    assert_agree();
    /* reopened yesterday's case closed again today: it moves to today */
    set(c, "reopens = reopens + 1, closed_at = now(), on_time = false, satisfaction = NULL");
    assert_int_equal(closed_on(dept, "1 day"), 1);
    assert_agree();
    /* a change that is not a figure's (returns) and a delete */
    set(a, "returns = returns + 1");
    PQclear(itest_q(pg, "DELETE FROM case_stats WHERE case_id = $1::uuid", e));
    assert_agree();
    /* a rolled-back close leaves nothing */
    assert_int_equal(itest_sql(pg, "BEGIN"), 0);
    set(d, "closed_at = now()");
    assert_int_equal(itest_sql(pg, "ROLLBACK"), 0);
    assert_int_equal(closed_on(dept, "1 day"), 1);
    assert_agree();
}

/* Closed before its resolve timer was recorded: kesu_stats judges it from the
 * timer when it reads, the kept figures once the late-judgement pass ran. A
 * fact that never gets a timer, closed before it, must not hold the pass up:
 * passes of one fact each go on until this one is judged. */
static void test_late_judgement(void **state)
{
    char id[37], no[48], err[512], none[37];
    (void)state;
    fact(none, "2 hours", NULL); /* never gets a timer */
    util_uuid(id);
    snprintf(no, sizeof(no), "%s-late", prefix);
    assert_int_equal(itest_insert_case(pg, id, no, "t", "b"), 0);
    PQclear(itest_qv(pg,
                     "INSERT INTO case_stats (case_id, received_at, department, resolved_at, "
                     "closed_at) VALUES ($1::uuid, now() - interval '1 day', $2, "
                     "now() - interval '90 minutes', now() - interval '1 hour')",
                     2, (const char *const[]){id, dept2}));
    /* the resolve timer arrives after the close, due before the resolution */
    PQclear(itest_q(pg,
                    "INSERT INTO sla_timers (case_id, kind, started_at, due_at, state) "
                    "VALUES ($1::uuid, 'resolve', now() - interval '1 day', "
                    "now() - interval '3 hours', 'stopped')",
                    id));
    const char *judged =
        "SELECT (on_time IS NOT NULL)::int FROM case_stats WHERE case_id = $1::uuid";
    for (int pass = 0; pass < 100; pass++) {
        long long n = archive_stats_judge_late(pg, 30, 1, err, sizeof(err));
        if (n < 0)
            fail_msg("judge: %s", err);
        if (n == 0 || itest_scalar1(pg, judged, id) == 1)
            break;
    }
    PGresult *res = itest_q(pg, "SELECT on_time FROM case_stats WHERE case_id = $1::uuid", id);
    if (PQgetisnull(res, 0, 0))
        fail_msg("the late fact was not judged (a fact without a timer held the passes up)");
    assert_string_equal(PQgetvalue(res, 0, 0), "f"); /* resolved after it was due */
    PQclear(res);
    assert_agree();
    /* the one without a timer stays unjudged, and in both untimed */
    res = itest_q(pg, "SELECT on_time IS NULL FROM case_stats WHERE case_id = $1::uuid", none);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    assert_agree();
}

/* A handler reads its own department's figures only. */
static void test_handler_sees_own_department(void **state)
{
    char a[37];
    (void)state;
    fact(a, "5 minutes", "t");
    pg_t *api = itest_pg_api("handler", dept);
    assert_non_null(api);
    PGresult *res = itest_q(api,
                            "SELECT count(*) FILTER (WHERE department <> $1), "
                            "count(*) FILTER (WHERE department = $1) FROM case_stats_daily",
                            dept);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    assert_true(atoi(PQgetvalue(res, 0, 1)) > 0);
    PQclear(res);
    pg_destroy(api);
}

static int setup(void **state)
{
    (void)state;
    log_init("itest", LOG_LVL_WARN);
    itest_run_names("itsd", dept, dept2, prefix);
    pg = itest_pg_connect();
    return pg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *v[3] = {dept, dept2, prefix};
    PQclear(PQexecParams(pg->conn,
                         "WITH c AS (SELECT id FROM cases WHERE case_no LIKE $3 || '-%'), "
                         "t AS (DELETE FROM sla_timers WHERE case_id IN (SELECT id FROM c)), "
                         "s AS (DELETE FROM case_stats WHERE department IN ($1, $2)) "
                         "SELECT 1",
                         3, NULL, v, NULL, NULL, 0));
    PQclear(PQexecParams(pg->conn, "DELETE FROM cases WHERE case_no LIKE $1 || '-%'", 1, NULL,
                         (const char *const[]){prefix}, NULL, NULL, 0));
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures_follow_facts),
        cmocka_unit_test(test_late_judgement),
        cmocka_unit_test(test_handler_sees_own_department),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
