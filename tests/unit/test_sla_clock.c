/*
 * Unit tests: the clock of one SLA timer on the shipped calendar - the
 * order of warnings, breach and second breach; a late scan sending the
 * breach instead of stale warnings; a pause over a weekend moving the
 * deadline by exactly the working time waited; calendar-time timers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "calendar.h"
#include "sla_clock.h"

#define MIN 60000LL

static calendar_t *cal;
static const int warn[2] = {50, 80};

static int64_t at(const char *s)
{
    int64_t t;
    if (calendar_parse_local(cal, s, &t) != 0)
        fail_msg("bad time %s", s);
    return t;
}

static void test_order(void **state)
{
    /* 1 working hour from Tuesday 11:30: 30 min before lunch, 30 after */
    sla_clock_t c = {.work = 1, .total_ms = 60 * MIN, .anchor_ms = at("2026-03-10 11:30"),
                     .escalate_ms = 60 * MIN};
    static const struct {
        const char *when;
        sla_fire_t f;
        int pct;
    } steps[] = {
        {"2026-03-10 11:59", SLA_FIRE_NONE, 0},   {"2026-03-10 12:00", SLA_FIRE_WARN, 50},
        {"2026-03-10 13:30", SLA_FIRE_NONE, 0},   {"2026-03-10 13:48", SLA_FIRE_WARN, 80},
        {"2026-03-10 14:00", SLA_FIRE_BREACH, 0}, {"2026-03-10 14:59", SLA_FIRE_NONE, 0},
        {"2026-03-10 15:00", SLA_FIRE_SECOND, 0}, {"2026-03-20 15:00", SLA_FIRE_NONE, 0},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int pct = -1;
        sla_fire_t f = sla_clock_fire(cal, &c, warn, 2, at(steps[i].when), &pct);
        if (f != steps[i].f || (f == SLA_FIRE_WARN && pct != steps[i].pct))
            fail_msg("at %s: fired %d (%d%%), want %d (%d%%)", steps[i].when, f, pct, steps[i].f,
                     steps[i].pct);
    }
    assert_int_equal(c.breach_count, 2);
}

static void test_late_scan(void **state)
{
    sla_clock_t c = {.work = 1, .total_ms = 60 * MIN, .anchor_ms = at("2026-03-10 10:00")};
    int pct;
    /* the monitor was down until after the deadline: breach, no stale warnings */
    assert_int_equal(sla_clock_fire(cal, &c, warn, 2, at("2026-03-10 11:30"), &pct),
                     SLA_FIRE_BREACH);
    assert_int_equal(c.warned, 2);
    /* no escalation configured: nothing more */
    assert_int_equal(sla_clock_fire(cal, &c, warn, 2, at("2026-03-30 11:30"), &pct),
                     SLA_FIRE_NONE);
}

static void test_pause_over_weekend(void **state)
{
    char buf[40];
    /* 1 working day from Thursday 10:00 is due Friday 10:00 */
    sla_clock_t c = {.work = 1, .total_ms = 7 * 60 * MIN, .anchor_ms = at("2026-03-12 10:00")};
    calendar_fmt_local(cal, sla_clock_due(cal, &c), buf, sizeof(buf));
    assert_string_equal(buf, "2026-03-13 10:00:00+08:00");
    /* waiting for the complainant from Thursday 16:00 to Monday 11:00 */
    sla_clock_pause(cal, &c, at("2026-03-12 16:00"));
    assert_int_equal(c.used_ms, 4 * 60 * MIN + 30 * MIN); /* 10-12, 13:30-16:00 */
    assert_int_equal(sla_clock_due(cal, &c), INT64_MAX);
    int pct;
    assert_int_equal(sla_clock_fire(cal, &c, warn, 2, at("2026-03-16 10:00"), &pct),
                     SLA_FIRE_NONE);
    sla_clock_resume(&c, at("2026-03-16 11:00"));
    /* 2 h 30 left: 11:00-12:00, 13:30-15:00 */
    calendar_fmt_local(cal, sla_clock_due(cal, &c), buf, sizeof(buf));
    assert_string_equal(buf, "2026-03-16 15:00:00+08:00");
    /* 50 % (3 h 30) was passed before the pause: it fires at once on resume */
    assert_int_equal(sla_clock_fire(cal, &c, warn, 2, at("2026-03-16 11:00"), &pct),
                     SLA_FIRE_WARN);
    assert_int_equal(pct, 50);
}

static void test_calendar_time(void **state)
{
    /* an emergency: 30 calendar minutes on a Sunday night during Spring Festival */
    sla_clock_t c = {.work = 0, .total_ms = 30 * MIN, .anchor_ms = at("2026-02-15 23:50")};
    assert_int_equal(sla_clock_due(cal, &c), at("2026-02-16 00:20"));
    assert_int_equal(sla_clock_used_at(cal, &c, at("2026-02-16 00:05")), 15 * MIN);
}

static int setup(void **state)
{
    char path[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/config/calendar/cn.json",
             src && *src ? src : KESU_SOURCE_DIR);
    cal = calendar_load(path, err, sizeof(err));
    return cal ? 0 : -1;
}

static int teardown(void **state)
{
    calendar_free(cal);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_late_scan),
        cmocka_unit_test(test_pause_over_weekend),
        cmocka_unit_test(test_calendar_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
