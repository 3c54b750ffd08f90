/*
 * Integration: pg_rows against the real PostgreSQL. A column filled with
 * pg_rows_bytea goes as a binary bytea[] parameter next to text array
 * literals in the same statement: every byte comes back as it was (zero
 * bytes, 0xff, an empty value, a NULL, a value of 64 KB), in row order, and
 * the rows can be gathered and sent again after the reset.
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
#include "util.h"

static pg_t *pg;

static const pg_stmt_t st_rows = {
    "itest_rows",
    "SELECT r.ord::int AS ord, r.label, r.b IS NULL AS isnull, length(r.b) AS len, "
    "md5(r.b) AS md5, $1 AS first FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY "
    "AS r(label, b, ord) ORDER BY r.ord",
    3};

static void test_binary_bytea_round_trip(void **state)
{
    (void)state;
    pg_rows_t r;
    char err[512];
    size_t big = 65536;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7);
    const uint8_t odd[4] = {0x00, 0xff, 0x00, 0x5c};
    char want_odd[33], want_big[33];
    PGresult *w = PQexec(pg->conn,
                         "SELECT md5('\\x00ff005c'::bytea), md5(string_agg(set_byte("
                         "'\\x00'::bytea, 0, (i * 7) % 256), ''::bytea ORDER BY i)) "
                         "FROM generate_series(0, 65535) i");
    assert_int_equal(PQresultStatus(w), PGRES_TUPLES_OK);
    snprintf(want_odd, sizeof(want_odd), "%s", PQgetvalue(w, 0, 0));
    snprintf(want_big, sizeof(want_big), "%s", PQgetvalue(w, 0, 1));
    PQclear(w);
    memset(&r, 0, sizeof(r));
    for (int round = 0; round < 2; round++) {
        assert_int_equal(pg_rows_ready(&r, 2), 0);
        pg_rows_text(&r, 0, "odd \"quoted\"");
        pg_rows_bytea(&r, 1, odd, 4);
        pg_rows_text(&r, 0, "null");
        pg_rows_bytea(&r, 1, NULL, 0);
        pg_rows_text(&r, 0, "empty");
        pg_rows_bytea(&r, 1, odd, 0);
        pg_rows_text(&r, 0, "big");
        pg_rows_bytea(&r, 1, data, big);
        r.n = 4;
        assert_int_equal(r.bin, 2u);
        PGresult *res = pg_rows_exec(pg, &st_rows, &r, "first", PGRES_TUPLES_OK, err, sizeof(err));
        if (!res)
            fail_msg("%s", err);
        assert_int_equal(PQntuples(res), 4);
        assert_string_equal(pg_get(res, 0, "label"), "odd \"quoted\"");
        assert_string_equal(pg_get(res, 0, "len"), "4");
        /* the bytes as the server has them from literals of its own */
        assert_string_equal(pg_get(res, 0, "md5"), want_odd);
        assert_string_equal(pg_get(res, 3, "md5"), want_big);
        assert_string_equal(pg_get(res, 1, "label"), "null");
        assert_string_equal(pg_get(res, 1, "isnull"), "t");
        assert_string_equal(pg_get(res, 2, "isnull"), "f");
        assert_string_equal(pg_get(res, 2, "len"), "0");
        assert_string_equal(pg_get(res, 3, "len"), "65536");
        assert_string_equal(pg_get(res, 3, "first"), "first");
        PQclear(res);
        assert_int_equal(r.n, 0);
    }
    pg_rows_free(&r);
    free(data);
}

static int setup(void **state)
{
    (void)state;
    log_init("itest", LOG_LVL_WARN);
    pg = itest_pg_connect();
    return pg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_bytea_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
