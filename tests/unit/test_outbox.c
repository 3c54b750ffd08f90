/* Unit tests: outbox relay bookkeeping (which rows are deleted, which stay). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kafka.h"
#include "outbox.h"

static void check(const char *const *ids, const kafka_msg_t *m, size_t n, const char *want_ok,
                  const char *want_bad)
{
    strbuf_t ok, bad;
    strbuf_init(&ok);
    strbuf_init(&bad);
    outbox_id_lists(ids, m, n, &ok, &bad);
    assert_string_equal(ok.s, want_ok);
    assert_string_equal(bad.s, want_bad);
    strbuf_free(&ok);
    strbuf_free(&bad);
}

static void test_all_delivered(void **state)
{
    const char *ids[] = {"1", "2", "3"};
    kafka_msg_t m[3] = {{.done = 1}, {.done = 1}, {.done = 1}};
    check(ids, m, 3, "{1,2,3}", "{}");
}

static void test_some_failed(void **state)
{
    const char *ids[] = {"10", "11", "12", "13"};
    kafka_msg_t m[4] = {{.done = 1},
                        {.done = 1, .err = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT},
                        {.done = 1},
                        {.done = 1, .err = RD_KAFKA_RESP_ERR__PURGE_QUEUE}};
    check(ids, m, 4, "{10,12}", "{11,13}");
}

static void test_no_report_counts_as_failed(void **state)
{
    /* a row whose delivery report never came must never be deleted */
    const char *ids[] = {"7", "8"};
    kafka_msg_t m[2] = {{.done = 0}, {.done = 1}};
    check(ids, m, 2, "{8}", "{7}");
}

static void test_empty(void **state)
{
    check(NULL, NULL, 0, "{}", "{}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_delivered),
        cmocka_unit_test(test_some_failed),
        cmocka_unit_test(test_no_report_counts_as_failed),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
