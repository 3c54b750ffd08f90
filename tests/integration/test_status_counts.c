/*
 * Integration: the per-status counts the cases' triggers keep
 * (case_status_counts, migration 0022, decision 0031) against PostgreSQL.
 *
 * The console reads them instead of counting every case. They must be the
 * count of the cases in every department and status after every kind of
 * change (a status, a department, both, a delete), must not make two
 * sessions changing cases wait for each other, must survive the fold of
 * ended sessions' rows (archive_counts_fold), and a handler must see
 * its own department's only.
 *
 * Other tests change cases in the same database at the same time, so this
 * one counts in departments of its own (a random code per run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "itest.h"
#include "log.h"
#include "util.h"

static pg_t *pg;
static char dept[32], dept2[32], prefix[24];
static int seq;

static PGresult *q2(pg_t *c, const char *sql, const char *a, const char *b)
{
    const char *v[2] = {a, b};
    return itest_qv(c, sql, 2, v);
}

/* a new case of this run (received); its id in id */
static void new_case(char id[37])
{
    char no[64];
    util_uuid(id);
    snprintf(no, sizeof(no), "%s-%d", prefix, ++seq);
    assert_int_equal(itest_insert_case(pg, id, no, "t", "b"), 0);
}

/* status (and department, unless NULL) of a case, on connection c */
static void move(pg_t *c, const char *id, const char *status, const char *department)
{
    const char *v[3] = {id, status, department};
    PQclear(itest_qv(c,
                     "UPDATE cases SET status = $2, department = COALESCE($3, department) "
                     "WHERE id = $1::uuid",
                     3, v));
}

/* the kept count of a department and status ('' department: not assigned) */
static long long kept(const char *d, const char *status)
{
    PGresult *res = q2(pg,
                       "SELECT COALESCE(sum(n), 0) FROM case_status_counts "
                       "WHERE department = $1 AND status = $2",
                       d, status);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* every kept count of this run's departments is the count of their cases */
static void assert_counts_true(void)
{
    const char *v[2] = {dept, dept2};
    PGresult *res = itest_qv(
        pg,
        "WITH k AS (SELECT department, status, sum(n) AS n FROM case_status_counts "
        "  WHERE department IN ($1, $2) GROUP BY 1, 2 HAVING sum(n) <> 0), "
        "t AS (SELECT department, status, count(*) AS n FROM cases "
        "  WHERE department IN ($1, $2) AND status NOT IN ('received', 'classified') "
        "  GROUP BY 1, 2) "
        "SELECT string_agg(format('%s/%s kept %s counted %s', COALESCE(k.department, "
        "t.department), COALESCE(k.status, t.status), k.n, t.n), '; ') "
        "FROM k FULL JOIN t ON t.department = k.department AND t.status = k.status "
        "WHERE k.n IS DISTINCT FROM t.n",
        2, v);
    if (!PQgetisnull(res, 0, 0))
        fail_msg("counts differ: %s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* every kind of change keeps the counts true; 'received' and 'classified'
 * (on the way to a department) are not kept */
static void test_counts_follow_cases(void **state)
{
    char a[37], b[37], c[37], d[37], e[37];
    (void)state;
    long long unassigned = kept("", "rejected");
    new_case(a);
    new_case(b);
    new_case(c);
    new_case(d);
    new_case(e);
    move(pg, a, "classified", NULL);
    move(pg, b, "classified", NULL);
    move(pg, c, "classified", NULL);
    assert_int_equal(kept("", "received"), 0); /* not kept: counted from cases */
    assert_int_equal(kept("", "classified"), 0);
    move(pg, a, "assigned", dept);
    move(pg, b, "assigned", dept);
    move(pg, c, "assigned", dept);
    assert_int_equal(kept(dept, "assigned"), 3);
    /* ended before it had a department */
    move(pg, e, "rejected", NULL);
    assert_int_equal(kept("", "rejected"), unassigned + 1);
    /* no department to an empty one is the same key: it nets out */
    move(pg, e, "rejected", "");
    assert_int_equal(kept("", "rejected"), unassigned + 1);
    /* a department changes and the status stays */
    move(pg, c, "assigned", dept2);
    assert_int_equal(kept(dept, "assigned"), 2);
    assert_int_equal(kept(dept2, "assigned"), 1);
    move(pg, b, "withdrawn", NULL);
    assert_int_equal(kept(dept, "withdrawn"), 1);
    /* a change of neither (version only) leaves them */
    PQclear(itest_q(pg, "UPDATE cases SET version = version + 1 WHERE id = $1::uuid", a));
    assert_counts_true();
    /* deletes: an ended case counts down, a received one was never counted */
    PQclear(itest_q(pg, "DELETE FROM cases WHERE id = $1::uuid", b));
    PQclear(itest_q(pg, "DELETE FROM cases WHERE id = $1::uuid", d));
    PQclear(itest_q(pg, "DELETE FROM cases WHERE id = $1::uuid", e));
    assert_int_equal(kept(dept, "withdrawn"), 0);
    assert_int_equal(kept("", "rejected"), unassigned);
    assert_counts_true();
    /* a rolled-back change leaves no trace */
    assert_int_equal(itest_sql(pg, "BEGIN"), 0);
    move(pg, a, "accepted", NULL);
    assert_int_equal(kept(dept, "accepted"), 1);
    assert_int_equal(itest_sql(pg, "ROLLBACK"), 0);
    assert_int_equal(kept(dept, "accepted"), 0);
    assert_counts_true();
}

/* Two sessions moving cases of the same department into the same status at
 * the same time: the second does not wait for the first to commit (one
 * counter row for everyone would hold it on the first's lock). */
static void test_writers_do_not_wait(void **state)
{
    char a[37], b[37];
    (void)state;
    pg_t *other = itest_pg_connect();
    assert_non_null(other);
    new_case(a);
    new_case(b);
    move(pg, a, "classified", NULL);
    move(pg, b, "classified", NULL);
    long long before = kept(dept, "assigned");
    assert_int_equal(itest_sql(pg, "BEGIN"), 0);
    move(pg, a, "assigned", dept);
    assert_int_equal(itest_sql(other, "SET lock_timeout = '2s'"), 0);
    assert_int_equal(itest_sql(other, "BEGIN"), 0);
    const char *v[2] = {b, dept};
    PGresult *res = PQexecParams(other->conn,
                                 "UPDATE cases SET status = 'assigned', department = $2 "
                                 "WHERE id = $1::uuid",
                                 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("the second session waited on the first: %s", PQresultErrorMessage(res));
    PQclear(res);
    assert_int_equal(itest_sql(other, "COMMIT"), 0);
    assert_int_equal(itest_sql(pg, "COMMIT"), 0);
    assert_int_equal(kept(dept, "assigned"), before + 2);
    assert_counts_true();
    pg_destroy(other);
}

/* The rows of a session that ended are folded into writer 0; the sums stay. */
static void test_fold(void **state)
{
    char a[37], pid[16];
    (void)state;
    pg_t *gone = itest_pg_connect();
    assert_non_null(gone);
    snprintf(pid, sizeof(pid), "%lld", itest_scalar(gone, "SELECT pg_backend_pid()"));
    new_case(a);
    move(gone, a, "classified", NULL);
    move(gone, a, "assigned", dept2);
    long long before = kept(dept2, "assigned");
    pg_destroy(gone);
    /* the backend goes a moment after its client */
    for (int i = 0; i < 100 && itest_scalar1(pg,
                                             "SELECT count(*) FROM pg_stat_activity "
                                             "WHERE pid = $1::int",
                                             pid) != 0;
         i++)
        usleep(50 * 1000);
    assert_true(itest_scalar1(pg, "SELECT count(*) FROM case_status_counts WHERE writer = $1::int",
                              pid) > 0);
    char err[512];
    long long n = archive_counts_fold(pg, err, sizeof(err));
    if (n < 0)
        fail_msg("fold: %s", err);
    assert_true(n >= 1);
    assert_int_equal(itest_scalar1(pg,
                                   "SELECT count(*) FROM case_status_counts WHERE writer = $1::int",
                                   pid),
                     0);
    assert_int_equal(kept(dept2, "assigned"), before);
    /* this session is alive: its rows stay where they are */
    assert_true(itest_scalar(pg, "SELECT count(*) FROM case_status_counts "
                                 "WHERE writer = pg_backend_pid()") > 0);
    assert_counts_true();
}

/* A handler counts its own department's cases; a complainant none. */
static void test_handler_sees_own_department(void **state)
{
    char a[37];
    (void)state;
    new_case(a);
    move(pg, a, "classified", NULL);
    move(pg, a, "assigned", dept2);
    pg_t *api = itest_pg_api("handler", dept);
    assert_non_null(api);
    PGresult *res = itest_q(api, "SELECT count(*) FILTER (WHERE department <> $1), "
                                 "COALESCE(sum(n) FILTER (WHERE department = $1), 0) "
                                 "FROM case_status_counts",
                            dept);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    char want[24];
    snprintf(want, sizeof(want), "%lld",
             itest_scalar1(pg,
                           "SELECT count(*) FROM cases WHERE department = $1 "
                           "AND status NOT IN ('received', 'classified')",
                           dept));
    assert_string_equal(PQgetvalue(res, 0, 1), want);
    PQclear(res);
    assert_int_equal(itest_sql(api, "SET kesu.role = 'complainant'"), 0);
    assert_int_equal(itest_scalar(api, "SELECT count(*) FROM case_status_counts"), 0);
    pg_destroy(api);
}

static int setup(void **state)
{
    (void)state;
    log_init("itest", LOG_LVL_WARN);
    itest_run_names("itsc", dept, dept2, prefix);
    pg = itest_pg_connect();
    return pg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    /* this run's cases; their counts go back to zero with them */
    PQclear(PQexecParams(pg->conn, "DELETE FROM cases WHERE case_no LIKE $1 || '-%'", 1, NULL,
                         (const char *const[]){prefix}, NULL, NULL, 0));
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_follow_cases),
        cmocka_unit_test(test_writers_do_not_wait),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_handler_sees_own_department),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
