/*
 * Unit: the array literals of common/pg.c (pg_array_*), which carry one
 * statement's rows for many events. Any text must come through: quotes,
 * backslashes, commas, braces, the word NULL, empty strings, Chinese; a NULL
 * value is SQL NULL; bytea goes as an escaped \x hex element.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_bytea),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
