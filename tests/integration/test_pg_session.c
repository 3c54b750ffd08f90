/*
 * Integration: what every connection of common/pg.c carries.
 *  - application_name is kesu-<service> unless the conninfo names one
 *    (pg_stat_activity and the server log tell the services apart);
 *  - pg_set_session's settings (the relay's PG_SESSION_QUEUE) are in force
 *    after the first connect and again after the server dropped the
 *    connection and pg_ensure made a new one;
 *  - every session runs without JIT (decision 0033: ~0.5 s of compiling on
 *    a 70 ms console statement), with or without settings of its own.
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

static void setting(pg_t *pg, const char *name, char *out, size_t n)
{
    const char *v[1] = {name};
    PGresult *res = PQexecParams(pg->conn, "SELECT current_setting($1)", 1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void test_application_name(void **state)
{
    (void)state;
    char err[256], v[128], conninfo[512];
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    setting(pg, "application_name", v, sizeof(v));
    assert_string_equal(v, "kesu-itest");
    setting(pg, "jit", v, sizeof(v));
    assert_string_equal(v, "off");
    pg_destroy(pg);

    snprintf(conninfo, sizeof(conninfo), "%s application_name=ops-console", itest_pg());
    pg = pg_new(conninfo);
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    setting(pg, "application_name", v, sizeof(v));
    assert_string_equal(v, "ops-console");
    pg_destroy(pg);
}

static void test_session_survives_reconnect(void **state)
{
    (void)state;
    char err[256], v[64], pid[16];
    pg_t *pg = pg_new(itest_pg()), *admin = pg_new(itest_pg());
    pg_set_session(pg, PG_SESSION_QUEUE);
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(admin, 5000, err, sizeof(err)), 0);
    setting(pg, "plan_cache_mode", v, sizeof(v));
    assert_string_equal(v, "force_custom_plan");

    /* the server drops the connection */
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(pg->conn));
    const char *pv[1] = {pid};
    PQclear(PQexecParams(admin->conn, "SELECT pg_terminate_backend($1::int)", 1, NULL, pv, NULL,
                         NULL, 0));
    PQclear(PQexec(pg->conn, "SELECT 1")); /* notices it is gone */
    assert_int_not_equal(PQstatus(pg->conn), CONNECTION_OK);
    assert_int_equal(pg_ensure(pg, err, sizeof(err)), 0);
    assert_int_not_equal(PQbackendPID(pg->conn), atoi(pid));
    setting(pg, "plan_cache_mode", v, sizeof(v));
    assert_string_equal(v, "force_custom_plan");
    setting(pg, "jit", v, sizeof(v));
    assert_string_equal(v, "off");

    /* a setting the server refuses: the connection is not used */
    pg_t *bad = pg_new(itest_pg());
    pg_set_session(bad, "SET no_such_setting_at_all = 1");
    assert_int_not_equal(pg_connect(bad, 0, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "session settings"));
    pg_destroy(bad);
    pg_destroy(pg);
    pg_destroy(admin);
}

int main(void)
{
    log_init("itest", LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_application_name),
        cmocka_unit_test(test_session_survives_reconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
