/*
 * test_notify_backoff: the retry delay of the notifier: exponential from
 * 1 s, capped at 5 min, equal jitter in [d/2, d], no overflow however many
 * attempts failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "notify.h"

#define BASE 1000
#define CAP  300000

typedef struct backoff_case {
    int attempts;
    uint32_t rnd;
    int64_t want;
} backoff_case_t;

static const backoff_case_t cases[] = {
    /* rnd 0 gives the low end d/2, rnd = d/2 the high end d */
    {1, 0, 500},          {1, 500, 1000},         {1, 501, 500}, /* rnd wraps */
    {2, 0, 1000},         {2, 1000, 2000},        {3, 0, 2000},
    {3, 2000, 4000},      {8, 0, 64000},          {8, 64000, 128000},
    {9, 0, 128000},       {9, 128000, 256000},    {10, 0, 150000},
    {10, 150000, 300000}, /* 512 s capped at 300 s */
    {30, 0, 150000},      {1000, 150000, 300000}, {2147483647, 0, 150000},
    {0, 0, 500},          {-5, 500, 1000}, /* nonsense attempts count as the first */
};

static void test_backoff_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = notify_backoff_ms(cases[i].attempts, BASE, CAP, cases[i].rnd);
        if (got != cases[i].want)
            fail_msg("attempts %d rnd %u: got %lld, want %lld", cases[i].attempts, cases[i].rnd,
                     (long long)got, (long long)cases[i].want);
    }
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    uint32_t x = 2463534242u; /* xorshift: many jitter values per attempt */
    for (int a = 1; a <= 40; a++) {
        int64_t d = BASE;
        for (int k = 1; k < a && d < CAP; k++)
            d *= 2;
        if (d > CAP)
            d = CAP;
        int64_t lo = INT64_MAX, hi = 0;
        for (int k = 0; k < 2000; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            int64_t v = notify_backoff_ms(a, BASE, CAP, x);
            assert_true(v >= d / 2 && v <= d);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        /* the jitter really spreads the retries */
        assert_true(hi - lo > d / 4);
    }
}

static void test_backoff_monotone_envelope(void **state)
{
    (void)state;
    /* the shortest delay never shrinks as attempts grow */
    int64_t prev = 0;
    for (int a = 1; a < 64; a++) {
        int64_t v = notify_backoff_ms(a, BASE, CAP, 0);
        assert_true(v >= prev);
        prev = v;
    }
    assert_int_equal(prev, CAP / 2);
}

static void test_backoff_bad_settings(void **state)
{
    (void)state;
    /* cap below base is raised to base; base 0 is 1 ms */
    assert_int_equal(notify_backoff_ms(5, 1000, 10, 0), 500);
    assert_true(notify_backoff_ms(3, 0, 100, 7) <= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_table),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_monotone_envelope),
        cmocka_unit_test(test_backoff_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
