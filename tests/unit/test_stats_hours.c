/*
 * test_stats_hours: handling time in working hours, the one function the
 * statistics measure it with (archive_stats_hours): on the shipped
 * mainland calendar (09:00-12:00, 13:30-17:30) nights, lunch, weekends and
 * holidays do not count; without a
 * calendar it is wall-clock hours; an interval that runs backwards is 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "archive.h"
#include "calendar.h"

static calendar_t *cal;

static int64_t at(const char *local)
{
    int64_t t = 0;
    assert_int_equal(calendar_parse_local(cal, local, &t), 0);
    return t;
}

static void hours_is(const char *a, const char *b, double want)
{
    double got = archive_stats_hours(cal, at(a), at(b));
    if (fabs(got - want) > 1e-9)
        fail_msg("%s .. %s: %.4f working hours, want %.4f", a, b, got, want);
}

static void test_working_hours(void **state)
{
    (void)state;
    int64_t day = calendar_day_ms(cal);
    double day_h = (double)day / 3600000.0;
    /* an hour inside one morning */
    hours_is("2026-12-01 09:30", "2026-12-01 10:30", 1.0);
    /* a whole working day, 09:00 to the next 09:00 */
    hours_is("2026-12-01 09:00", "2026-12-02 09:00", day_h);
    /* the night between does not count: 17:00-17:30 and 09:00-10:00 */
    hours_is("2026-12-01 17:00", "2026-12-02 10:00", 1.5);
    /* nor the lunch break: 11:00-12:00 and 13:30-14:00 */
    hours_is("2026-12-01 11:00", "2026-12-01 14:00", 1.5);
    /* Friday evening to Monday morning: nothing but the weekend */
    hours_is("2026-12-04 18:00", "2026-12-07 08:00", 0.0);
    /* wall clock without a calendar */
    assert_true(fabs(archive_stats_hours(NULL, 0, 5400000) - 1.5) < 1e-9);
    /* backwards is zero */
    assert_true(archive_stats_hours(cal, at("2026-12-02 10:00"), at("2026-12-01 10:00")) == 0.0);
    assert_true(archive_stats_hours(NULL, 10, 5) == 0.0);
}

static void test_holiday(void **state)
{
    (void)state;
    /* 2026-10-01 (National Day) is a holiday if the shipped calendar lists 2026 */
    if (!calendar_covers(cal, 2026))
        fail_msg("the shipped calendar does not list 2026");
    assert_int_equal(calendar_is_workday(cal, at("2026-10-01 10:00"), NULL), 0);
    hours_is("2026-10-01 09:00", "2026-10-01 17:00", 0.0);
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    cal = calendar_load(KESU_SOURCE_DIR "/deploy/config/calendar/cn.json", err, sizeof(err));
    if (!cal)
        fprintf(stderr, "%s\n", err);
    return cal ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    calendar_free(cal);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_working_hours),
        cmocka_unit_test(test_holiday),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
