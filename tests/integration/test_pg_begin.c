/*
 * Integration: pg_begin sends BEGIN with the transaction's first statement
 * (common/pg.c), against the real PostgreSQL. Whatever the first statement
 * is - a prepared statement (pipeline), a command (one query string) - the
 * transaction is open after it and everything up to COMMIT or ROLLBACK is in
 * it; a failing first statement leaves an aborted transaction to roll back;
 * a transaction that ran nothing needs no server; a connection the server
 * dropped between BEGIN and the first statement is a transient failure and
 * pg_ensure's new connection works.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "log.h"
#include "pg.h"

static pg_t *pg, *admin;

static const pg_stmt_t st_xid = {"itest_begin_xid", "SELECT txid_current()::text AS x", 0};
static const pg_stmt_t st_ins = {"itest_begin_ins",
                                 "INSERT INTO itest_begin (v) VALUES ($1::int)", 1};
static const pg_stmt_t st_div = {"itest_begin_div", "SELECT 1 / $1::int AS q", 1};

static long long rows(void)
{
    return itest_scalar(admin, "SELECT count(*) FROM itest_begin");
}

static void xid(char *out, size_t n)
{
    char err[256];
    PGresult *res = pg_exec_stmt(pg, &st_xid, NULL, PGRES_TUPLES_OK, err, sizeof(err));
    if (!res)
        fail_msg("txid: %s", err);
    snprintf(out, n, "%s", pg_get(res, 0, "x"));
    PQclear(res);
}

static void test_prepared_first(void **state)
{
    (void)state;
    char err[256], a[32], b[32];
    for (int round = 0; round < 2; round++) { /* before and after the statement is prepared */
        assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
        xid(a, sizeof(a));
        assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_INTRANS);
        const char *v[1] = {"1"};
        assert_int_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
        xid(b, sizeof(b));
        assert_string_equal(a, b); /* one transaction */
        assert_int_equal(rows(), round); /* not visible before the commit */
        assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
        assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_IDLE);
        assert_int_equal(rows(), round + 1);
    }
    /* and a rollback undoes it */
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    const char *v[1] = {"2"};
    assert_int_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
    pg_rollback(pg);
    assert_int_equal(rows(), 2);
    assert_int_equal(itest_sql(admin, "TRUNCATE itest_begin"), 0);
}

static void test_command_first(void **state)
{
    (void)state;
    char err[256], a[32], b[32];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(pg_command(pg, "SAVEPOINT s1", err, sizeof(err)), 0);
    assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_INTRANS);
    xid(a, sizeof(a));
    const char *v[1] = {"3"};
    assert_int_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
    assert_int_equal(pg_command(pg, "ROLLBACK TO SAVEPOINT s1", err, sizeof(err)), 0);
    xid(b, sizeof(b));
    assert_string_equal(a, b);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    assert_int_equal(rows(), 0); /* rolled back to the savepoint */
}

static void test_failing_first_statement(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    const char *v[1] = {"0"};
    assert_null(pg_exec_stmt(pg, &st_div, v, PGRES_TUPLES_OK, err, sizeof(err)));
    assert_non_null(strstr(err, "division by zero"));
    assert_string_equal(pg->sqlstate, "22012");
    assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_INERROR);
    assert_int_equal(PQpipelineStatus(pg->conn), PQ_PIPELINE_OFF);
    pg_rollback(pg);
    assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_IDLE);
    /* a failing command first: the same */
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_not_equal(pg_command(pg, "SELECT no_such_column_x FROM itest_begin", err,
                                    sizeof(err)),
                         0);
    assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_INERROR);
    pg_rollback(pg);
    /* and the connection goes on */
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    const char *one[1] = {"1"};
    PGresult *res = pg_exec_stmt(pg, &st_div, one, PGRES_TUPLES_OK, err, sizeof(err));
    assert_non_null(res);
    assert_string_equal(pg_get(res, 0, "q"), "1");
    PQclear(res);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
}

static void test_empty_transaction_needs_no_server(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    assert_int_equal(pg->in_tx, 0);
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    pg_rollback(pg);
    assert_int_equal(pg->in_tx, 0);
    assert_int_equal(PQtransactionStatus(pg->conn), PQTRANS_IDLE);
    /* a second pg_begin inside a transaction does not nest or reset it */
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    const char *v[1] = {"4"};
    assert_int_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    pg_rollback(pg);
    assert_int_equal(rows(), 0);
}

static void test_connection_lost_before_first_statement(void **state)
{
    (void)state;
    char err[256], pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(pg->conn));
    const char *pv[1] = {pid};
    PQclear(PQexecParams(admin->conn, "SELECT pg_terminate_backend($1::int)", 1, NULL, pv, NULL,
                         NULL, 0));
    util_sleep_ms(200);
    /* a transaction that runs nothing never reaches the server (BEGIN did not travel alone
     * before: it would have failed here) */
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    const char *v[1] = {"5"};
    assert_int_not_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
    assert_int_equal(pg_failure_transient(pg), 1);
    pg_rollback(pg);
    assert_int_equal(pg_ensure(pg, err, sizeof(err)), 0);
    assert_int_not_equal(PQbackendPID(pg->conn), atoi(pid));
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(pg_exec_stmt_cmd(pg, &st_ins, v, err, sizeof(err)), 0);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    assert_int_equal(rows(), 1);
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    pg = pg_new(itest_pg());
    admin = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0 ||
        pg_connect(admin, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return itest_sql(admin, "DROP TABLE IF EXISTS itest_begin; "
                            "CREATE TABLE itest_begin (v int)");
}

static int teardown(void **state)
{
    (void)state;
    itest_sql(admin, "DROP TABLE IF EXISTS itest_begin");
    pg_destroy(pg);
    pg_destroy(admin);
    return 0;
}

int main(void)
{
    log_init("itest", LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepared_first),
        cmocka_unit_test(test_command_first),
        cmocka_unit_test(test_failing_first_statement),
        cmocka_unit_test(test_empty_transaction_needs_no_server),
        cmocka_unit_test(test_connection_lost_before_first_statement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
