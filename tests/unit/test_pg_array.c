/*
 * Unit: the array literals of common/pg.c (pg_array_*), which carry one
 * statement's rows for many events. Any text must come through: quotes,
 * backslashes, commas, braces, the word NULL, empty strings, Chinese; a NULL
 * value is SQL NULL; bytea goes as an escaped \x hex element, or in the
 * binary array format (pg_bytea_array_*, pg_rows' bytea columns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pg.h"
#include "util.h"

static void test_text(void **state)
{
    (void)state;
    strbuf_t b;
    pg_array_begin(&b);
    pg_array_end(&b);
    assert_string_equal(b.s, "{}");
    strbuf_free(&b);

    pg_array_begin(&b);
    pg_array_add(&b, "plain");
    pg_array_add(&b, "say \"no\"");
    pg_array_add(&b, "back\\slash");
    pg_array_add(&b, "a,b {c}");
    pg_array_add(&b, NULL);
    pg_array_add(&b, "NULL");
    pg_array_add(&b, "");
    pg_array_add(&b, "短信网关");
    pg_array_end(&b);
    assert_string_equal(b.s, "{\"plain\",\"say \\\"no\\\"\",\"back\\\\slash\",\"a,b {c}\",NULL,"
                             "\"NULL\",\"\",\"短信网关\"}");
    strbuf_free(&b);
}

static void test_bytea(void **state)
{
    (void)state;
    strbuf_t b;
    const uint8_t bytes[3] = {0x00, 0xab, 0x7f};
    pg_array_begin(&b);
    pg_array_add_bytea(&b, bytes, 3);
    pg_array_add_bytea(&b, NULL, 0);
    pg_array_add_bytea(&b, bytes, 0);
    pg_array_end(&b);
    assert_string_equal(b.s, "{\"\\\\x00ab7f\",NULL,\"\\\\x\"}");
    strbuf_free(&b);
}

/* PostgreSQL's binary array: ndim 1, has-null flag, element type 17, the
 * length and lower bound 1, then a length (-1: NULL) and the bytes of each */
static void test_bytea_binary(void **state)
{
    (void)state;
    strbuf_t b;
    const uint8_t bytes[3] = {0x00, 0xab, 0x7f};
    pg_bytea_array_begin(&b);
    assert_int_equal(b.len, 20);
    static const char empty[20] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(b.s, empty, 20);
    pg_bytea_array_add(&b, bytes, 3);
    pg_bytea_array_add(&b, NULL, 0);
    pg_bytea_array_add(&b, bytes, 0);
    static const char want[20 + 7 + 4 + 4] = {
        0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 17, 0, 0, 0, 3, 0, 0, 0, 1,
        0, 0, 0, 3, 0x00, (char)0xab, 0x7f, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
        0, 0, 0, 0};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.s, want, sizeof(want));
    strbuf_free(&b);
}

/* a pg_rows column whose first value is bytea is binary, and stays so after
 * a reset; one with text first stays a literal */
static void test_rows_binary_column(void **state)
{
    (void)state;
    pg_rows_t r;
    const uint8_t one = 1;
    memset(&r, 0, sizeof(r));
    assert_int_equal(pg_rows_ready(&r, 3), 0);
    pg_rows_text(&r, 0, "a");
    pg_rows_bytea(&r, 1, &one, 1);
    pg_rows_text(&r, 2, "x");
    pg_rows_bytea(&r, 2, &one, 1); /* after text: an escaped element */
    assert_int_equal(r.bin, 2u);
    assert_int_equal(r.col[1].len, 25);
    pg_rows_reset(&r);
    assert_int_equal(r.bin, 2u);
    assert_int_equal(r.col[1].len, 20);
    assert_int_equal(r.col[0].len, 1);
    pg_rows_free(&r);
    assert_int_equal(r.bin, 0u);
}

/* pg_keyed: rows found by their first column, each taken once */
static void test_keyed(void **state)
{
    (void)state;
    pg_keyed_t k;
    memset(&k, 0, sizeof(k));
    assert_int_equal(pg_keyed_take(&k, "a"), -1); /* empty */
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[2] = {{"id", 0, 0, 0, 25, -1, -1}, {"v", 0, 0, 0, 25, -1, -1}};
    assert_int_equal(PQsetResultAttrs(res, 2, att), 1);
    const char *keys[5] = {"m", "c", "x", "a", "k"};
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(PQsetvalue(res, i, 0, (char *)keys[i], (int)strlen(keys[i])), 1);
        assert_int_equal(PQsetvalue(res, i, 1, v, (int)strlen(v)), 1);
    }
    assert_int_equal(pg_keyed_set(&k, res), 0);
    assert_int_equal(k.n, 5);
    /* a look takes nothing */
    for (int i = 0; i < 5; i++)
        assert_int_equal(pg_keyed_find(&k, keys[i]), i);
    assert_int_equal(pg_keyed_find(&k, "b"), -1);
    for (int i = 4; i >= 0; i--)
        assert_int_equal(pg_keyed_take(&k, keys[i]), i);
    assert_int_equal(pg_keyed_find(&k, "m"), -1); /* taken */
    for (int i = 0; i < 5; i++)
        assert_int_equal(pg_keyed_take(&k, keys[i]), -1); /* taken */
    assert_int_equal(pg_keyed_take(&k, "b"), -1);
    assert_int_equal(pg_keyed_take(&k, "z"), -1);
    pg_keyed_clear(&k);
    assert_null(k.res);
    assert_int_equal(pg_keyed_take(&k, "m"), -1);
    assert_int_equal(pg_keyed_set(&k, NULL), 0);
    assert_int_equal(k.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_bytea),
        cmocka_unit_test(test_bytea_binary),
        cmocka_unit_test(test_rows_binary_column),
        cmocka_unit_test(test_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
