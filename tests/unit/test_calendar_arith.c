/*
 * Unit tests: working-time arithmetic on the shipped calendar
 * (deploy/config/calendar/cn.json: 09:00-12:00, 13:30-17:30 Asia/Shanghai,
 * the official 2025 and 2026 holidays and make-up days), table-driven
 * across weekends, lunch breaks, overnight, holidays, make-up working days
 * and year ends; the round trip add/between; the 24x7 test calendar; and
 * the refusals of bad calendar files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"

#define MIN 60000LL
#define HOUR (60 * MIN)
#define WDAY (7 * HOUR)

static calendar_t *load(const char *name)
{
    char path[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/config/calendar/%s", src && *src ? src : KESU_SOURCE_DIR,
             name);
    calendar_t *cal = calendar_load(path, err, sizeof(err));
    if (!cal)
        fail_msg("%s refused: %s", name, err);
    return cal;
}

static int64_t at(const calendar_t *cal, const char *local)
{
    int64_t t;
    if (calendar_parse_local(cal, local, &t) != 0)
        fail_msg("bad test time %s", local);
    return t;
}

static const struct {
    const char *start;
    int64_t work; /* working ms to add */
    const char *want;
    const char *why;
} adds[] = {
    {"2026-03-10 10:00", 0, "2026-03-10 10:00", "adding nothing stays put"},
    {"2026-03-10 10:00", 1 * HOUR, "2026-03-10 11:00", "inside the morning"},
    {"2026-03-10 11:30", 1 * HOUR, "2026-03-10 14:00", "over the lunch break"},
    {"2026-03-10 12:45", 30 * MIN, "2026-03-10 14:00", "started in the lunch break"},
    {"2026-03-10 17:00", 1 * HOUR, "2026-03-11 09:30", "overnight"},
    {"2026-03-10 16:30", 1 * HOUR, "2026-03-10 17:30", "ends exactly at closing time"},
    {"2026-03-10 20:00", WDAY, "2026-03-11 17:30", "started at night: the whole next day"},
    {"2026-03-11 03:00", 2 * HOUR, "2026-03-11 11:00", "started before opening"},
    {"2026-03-06 16:30", WDAY, "2026-03-09 16:30", "Friday afternoon over the weekend"},
    {"2026-03-07 10:00", 1 * HOUR, "2026-03-09 10:00", "started on a Saturday"},
    {"2026-03-10 10:00", 5 * WDAY, "2026-03-17 10:00", "five working days = a week"},
    /* 2026 Spring Festival: 02-15..02-23 off, Saturdays 02-14 and 02-28 worked */
    {"2026-02-13 10:00", WDAY, "2026-02-14 10:00", "Friday -> make-up Saturday 02-14"},
    {"2026-02-14 10:00", WDAY, "2026-02-24 10:00", "make-up Saturday -> after the holiday"},
    {"2026-02-27 17:00", 1 * HOUR, "2026-02-28 09:30", "Friday -> make-up Saturday 02-28"},
    /* year ends */
    {"2025-12-31 15:00", WDAY, "2026-01-04 15:00", "New Year 01-01..01-03, Sunday 01-04 worked"},
    {"2025-12-31 17:00", 1 * HOUR, "2026-01-04 09:30", "overnight across the year end"},
    {"2026-12-31 17:00", 1 * HOUR, "2027-01-01 09:30",
     "2027 not in the file: plain Monday-Friday"},
    /* 2025 */
    {"2025-01-24 10:00", 2 * WDAY, "2025-01-27 10:00", "Spring Festival 2025: Sunday 01-26 worked"},
    {"2025-01-27 10:00", WDAY, "2025-02-05 10:00", "01-28..02-04 off"},
    {"2025-09-26 10:00", WDAY, "2025-09-28 10:00", "National Day 2025: Sunday 09-28 worked"},
    {"2025-09-30 10:00", WDAY, "2025-10-09 10:00", "10-01..10-08 off"},
    {"2025-04-25 10:00", WDAY, "2025-04-27 10:00", "Labour Day 2025: Sunday 04-27 worked"},
    {"2025-05-30 16:00", 2 * HOUR, "2025-06-03 09:30", "Dragon Boat 2025: 05-31..06-02 off"},
    /* 15 working days over Labour Day 2026 (05-01..05-05 off, Saturday 05-09 worked) */
    {"2026-04-30 10:00", 15 * WDAY, "2026-05-25 10:00", "complaint limit over Labour Day"},
    {"2026-09-30 10:00", WDAY, "2026-10-08 10:00", "National Day 2026 10-01..10-07, 10-08 works"},
    {"2026-10-08 17:30", 1 * MIN, "2026-10-09 09:01", "the make-up Saturday 10-10 comes later"},
};

static void test_add_work(void **state)
{
    calendar_t *cal = load("cn.json");
    int bad = 0;
    for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
        int64_t got = calendar_add_work(cal, at(cal, adds[i].start), adds[i].work);
        int64_t want = at(cal, adds[i].want);
        if (got != want) {
            char g[40];
            calendar_fmt_local(cal, got, g, sizeof(g));
            print_error("add %s + %lld min: got %s, want %s (%s)\n", adds[i].start,
                        (long long)(adds[i].work / MIN), g, adds[i].want, adds[i].why);
            bad++;
        }
    }
    calendar_free(cal);
    assert_int_equal(bad, 0);
}

static const struct {
    const char *a, *b;
    int64_t want;
    const char *why;
} betweens[] = {
    {"2026-03-10 10:00", "2026-03-10 10:00", 0, "empty interval"},
    {"2026-03-10 11:00", "2026-03-10 10:00", 0, "reversed interval"},
    {"2026-03-10 11:00", "2026-03-10 14:00", 90 * MIN, "over lunch"},
    {"2026-03-10 18:00", "2026-03-11 08:00", 0, "night only"},
    {"2026-03-06 16:30", "2026-03-09 16:30", WDAY, "over a weekend"},
    {"2026-03-07 10:00", "2026-03-08 10:00", 0, "inside a weekend"},
    {"2026-02-13 09:00", "2026-02-24 09:00", 2 * WDAY, "Spring Festival with make-up Saturday"},
    {"2025-12-31 12:00", "2026-01-05 12:00", 14 * HOUR, "year end with make-up Sunday"},
    {"2026-04-30 10:00", "2026-05-25 10:00", 15 * WDAY, "15 working days over Labour Day"},
    {"2026-03-01 00:00", "2026-04-01 00:00", 22 * WDAY, "March 2026 has 22 working days"},
    {"2026-10-01 00:00", "2026-11-01 00:00", 18 * WDAY,
     "October 2026: 22 weekdays - 5 off (10-01..10-07) + Saturday 10-10 worked"},
};

static void test_work_between(void **state)
{
    calendar_t *cal = load("cn.json");
    int bad = 0;
    for (size_t i = 0; i < sizeof(betweens) / sizeof(betweens[0]); i++) {
        int64_t got = calendar_work_between(cal, at(cal, betweens[i].a), at(cal, betweens[i].b));
        if (got != betweens[i].want) {
            print_error("between %s and %s: got %lld min, want %lld (%s)\n", betweens[i].a,
                        betweens[i].b, (long long)(got / MIN), (long long)(betweens[i].want / MIN),
                        betweens[i].why);
            bad++;
        }
    }
    calendar_free(cal);
    assert_int_equal(bad, 0);
}

/* what add puts forward, between measures back: every 37 minutes over two years */
static void test_round_trip(void **state)
{
    calendar_t *cal = load("cn.json");
    int64_t t0 = at(cal, "2025-01-01 00:00"), t1 = at(cal, "2026-12-31 00:00");
    static const int64_t amounts[] = {1, 30 * MIN, 3 * HOUR, WDAY, 2 * WDAY, 15 * WDAY + 7 * MIN};
    long checked = 0;
    for (int64_t t = t0; t < t1; t += 37 * MIN) {
        for (size_t k = 0; k < sizeof(amounts) / sizeof(amounts[0]); k++) {
            int64_t end = calendar_add_work(cal, t, amounts[k]);
            assert_true(end > t);
            if (calendar_work_between(cal, t, end) != amounts[k]) {
                char s[40];
                calendar_fmt_local(cal, t, s, sizeof(s));
                fail_msg("round trip from %s + %lld ms", s, (long long)amounts[k]);
            }
            /* the result is the earliest such instant: one ms less is not enough */
            assert_int_equal(calendar_work_between(cal, t, end - 1), amounts[k] - 1);
            checked++;
        }
    }
    assert_true(checked > 100000);
    calendar_free(cal);
}

static void test_days(void **state)
{
    calendar_t *cal = load("cn.json");
    const char *name = NULL;
    assert_int_equal(calendar_day_ms(cal), WDAY);
    assert_string_equal(calendar_tz(cal), "Asia/Shanghai");
    assert_int_equal(calendar_utc_offset_min(cal), 480);
    assert_true(calendar_covers(cal, 2025));
    assert_true(calendar_covers(cal, 2026));
    assert_false(calendar_covers(cal, 2027));
    assert_int_equal(calendar_is_workday(cal, at(cal, "2026-02-14 10:00"), &name), 1);
    assert_string_equal(name, "春节调休上班");
    assert_int_equal(calendar_is_workday(cal, at(cal, "2026-10-01 10:00"), &name), 0);
    assert_string_equal(name, "国庆节");
    assert_int_equal(calendar_is_workday(cal, at(cal, "2026-03-07 10:00"), &name), 0);
    assert_null(name);
    assert_int_equal(calendar_is_workday(cal, at(cal, "2026-03-09 10:00"), &name), 1);
    assert_null(name);
    /* 2026-02-14 00:30 local is 2026-02-13 16:30 UTC: the day is the local one */
    assert_int_equal(calendar_is_workday(cal, at(cal, "2026-02-15 00:30"), NULL), 0);
    assert_int_equal(calendar_add_work_days(cal, at(cal, "2026-02-13 10:00"), 2),
                     at(cal, "2026-02-24 10:00"));

    char buf[48];
    calendar_fmt_local(cal, at(cal, "2026-02-13 17:30"), buf, sizeof(buf));
    assert_string_equal(buf, "2026-02-13 17:30:00+08:00");
    calendar_fmt_work(cal, 2 * WDAY + 3 * HOUR + 15 * MIN, buf, sizeof(buf));
    assert_string_equal(buf, "2d 3h 15m");
    calendar_fmt_work(cal, -90 * MIN, buf, sizeof(buf));
    assert_string_equal(buf, "-1h 30m");
    calendar_fmt_work(cal, 0, buf, sizeof(buf));
    assert_string_equal(buf, "0m");
    calendar_free(cal);
}

static void test_always(void **state)
{
    calendar_t *cal = load("always.json");
    int64_t t = at(cal, "2026-02-15 23:50");
    assert_int_equal(calendar_day_ms(cal), 24 * HOUR);
    assert_int_equal(calendar_add_work(cal, t, 90 * MIN), t + 90 * MIN);
    assert_int_equal(calendar_work_between(cal, t, t + 3 * 24 * HOUR), 3 * 24 * HOUR);
    calendar_free(cal);
}

static const struct {
    const char *json, *err;
} bad_files[] = {
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]],\n \"years\": {,}}",
     "x.json:2:"},
    {"{\"utc_offset\": \"8\", \"work_hours\": [[\"09:00\", \"12:00\"]]}", "utc_offset"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"], [\"11:00\", "
     "\"13:00\"]]}",
     "work_hours[1]: starts before"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"12:00\", \"09:00\"]]}", "work_hours[0]"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"25:00\"]]}", "work_hours[0]"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]], \"weekend\": "
     "[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]}",
     "every day is off"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]], \"years\": "
     "{\"2026\": {\"holidays\": [{\"name\": \"x\", \"from\": \"2026-02-30\", \"to\": "
     "\"2026-03-01\"}]}}}",
     "years.2026.holidays[0]"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]], \"years\": "
     "{\"2026\": {\"holidays\": [{\"name\": \"x\", \"from\": \"2025-12-31\", \"to\": "
     "\"2026-01-01\"}]}}}",
     "is not in 2026"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]], \"years\": "
     "{\"2026\": {\"workdays\": [{\"name\": \"x\", \"date\": \"2026-03-10\"}]}}}",
     "is a working day anyway"},
    {"{\"utc_offset\": \"+08:00\", \"work_hours\": [[\"09:00\", \"12:00\"]], \"years\": "
     "{\"2026\": {\"holidays\": [{\"name\": \"a\", \"from\": \"2026-02-14\", \"to\": "
     "\"2026-02-14\"}], \"workdays\": [{\"name\": \"b\", \"date\": \"2026-02-14\"}]}}}",
     "2026-02-14 is listed twice"},
};

static void test_bad_files(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
        char err[512] = "";
        calendar_t *cal = calendar_parse(bad_files[i].json, "x.json", err, sizeof(err));
        if (cal || !strstr(err, bad_files[i].err)) {
            print_error("bad file %zu: %s; error \"%s\" lacks \"%s\"\n", i,
                        cal ? "accepted" : "refused", err, bad_files[i].err);
            bad++;
        }
        calendar_free(cal);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_work),   cmocka_unit_test(test_work_between),
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_days),
        cmocka_unit_test(test_always),     cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
