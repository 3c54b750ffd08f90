/*
 * test_uuid: util_uuid makes version 7 UUIDs (RFC 9562): the right version
 * and variant bits, the current Unix milliseconds in the first 48 bits, ids
 * that sort by creation time (as text, which is how PostgreSQL's uuid
 * ordering compares them), and no repeats among many made in the same
 * milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void test_version_variant_time(void **state)
{
    (void)state;
    char id[37];
    int64_t before = util_now_ms();
    util_uuid(id);
    int64_t after = util_now_ms();
    assert_true(util_is_uuid(id));
    assert_int_equal(id[14], '7');                   /* version */
    assert_non_null(strchr("89ab", id[19]));         /* variant 10xx */
    int64_t ms = util_uuid_ms(id);
    assert_true(ms >= before && ms <= after);
    assert_int_equal(util_uuid_ms("6f1c2b1e-0c1a-4d2e-8f3a-1b2c3d4e5f60"), -1); /* a v4 */
    assert_int_equal(util_uuid_ms("not-a-uuid"), -1);
}

static int cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_time_ordered_and_unique(void **state)
{
    (void)state;
    enum { N = 20000 };
    char (*ids)[37] = calloc(N, sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        util_uuid(ids[i]);
        if (i && (i % 5000) == 0)
            util_sleep_ms(2);
    }
    /* later milliseconds sort later */
    for (int i = 1; i < N; i++)
        assert_true(util_uuid_ms(ids[i]) >= util_uuid_ms(ids[i - 1]));
    assert_true(strcmp(ids[N - 1], ids[0]) > 0);
    qsort(ids, N, sizeof(*ids), cmp);
    for (int i = 1; i < N; i++)
        assert_true(strcmp(ids[i], ids[i - 1]) != 0);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_variant_time),
        cmocka_unit_test(test_time_ordered_and_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
