/*
 * calendar: working-time arithmetic on a working calendar.
 *
 * A calendar (deploy/config/calendar/cn.json) says which days are working
 * days - Monday to Friday unless a public holiday, plus the make-up working
 * days (调休) that fall on a weekend - and which hours of a working day are
 * working time ("09:00-12:00, 13:30-17:30"), in one fixed time zone
 * (Asia/Shanghai = UTC+08:00; China has no daylight saving time, so a fixed
 * offset is exact and needs no tz database). Instants are Unix milliseconds.
 *
 * SLA limits count working time: calendar_add_work() finds the instant a
 * given amount of working time after a start, calendar_work_between() the
 * working time inside an interval. Both are exact to the millisecond and
 * pure (no clock, no I/O), so they are table-tested. A limit of N working
 * days is N times the working time of one working day: started inside
 * working hours it ends at the same time of day N working days later;
 * started outside, at the end of the Nth working day.
 *
 * A calendar is read-only after load and safe to share between threads.
 */
#ifndef KESU_CALENDAR_H
#define KESU_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct calendar calendar_t;

/** Most working periods one day may have. */
#define CALENDAR_MAX_PERIODS 8

/**
 * @brief Load and check a calendar file (JSON, see docs/sla.md): bad dates,
 *        overlapping or unordered working hours, a holiday that is also a
 *        make-up day, a date outside its year are refused.
 * @returns the calendar (free with calendar_free) or NULL with errstr
 *          naming the file and the line:column or JSON path.
 */
calendar_t *calendar_load(const char *path, char *errstr, size_t errstr_size);

/** @brief Same from text; name stands for the file in messages. */
calendar_t *calendar_parse(const char *text, const char *name, char *errstr, size_t errstr_size);

/** @brief Free (NULL is fine). @returns nothing. */
void calendar_free(calendar_t *cal);

/** @brief The calendar's name ("cn-mainland"). @returns a string owned by cal. */
const char *calendar_name(const calendar_t *cal);

/** @brief The time zone label ("Asia/Shanghai"). @returns a string owned by cal. */
const char *calendar_tz(const calendar_t *cal);

/** @brief Offset of local time from UTC in minutes (+480). @returns the offset. */
int calendar_utc_offset_min(const calendar_t *cal);

/** @brief Working time of one ordinary working day in ms (7 h = 25200000). @returns it. */
int64_t calendar_day_ms(const calendar_t *cal);

/** @brief 1 if the file lists holidays for that year, else 0. */
int calendar_covers(const calendar_t *cal, int year);

/**
 * @brief Whether the local day containing t is a working day.
 * @returns 1 working day, 0 not; *name (may be NULL) gets the holiday or
 *          make-up day's name, or NULL for an ordinary day.
 */
int calendar_is_workday(const calendar_t *cal, int64_t t, const char **name);

/**
 * @brief The instant that lies work_ms of working time after t. work_ms <= 0
 *        returns t unchanged. A result that falls exactly at the end of a
 *        working period is that end (17:30), not the next morning.
 * @returns the instant (Unix ms), or INT64_MAX if the calendar has no
 *          working time within ten years of t.
 */
int64_t calendar_add_work(const calendar_t *cal, int64_t t, int64_t work_ms);

/** @brief calendar_add_work of n working days (n x calendar_day_ms). @returns the instant. */
int64_t calendar_add_work_days(const calendar_t *cal, int64_t t, int n);

/** @brief Working time inside [a, b) in ms (0 when b <= a). @returns it. */
int64_t calendar_work_between(const calendar_t *cal, int64_t a, int64_t b);

/**
 * @brief Format t as local time "2026-02-13 17:30:00+08:00".
 * @returns nothing (out is always NUL-terminated).
 */
void calendar_fmt_local(const calendar_t *cal, int64_t t, char *out, size_t out_size);

/**
 * @brief Parse a local date-time "YYYY-MM-DD HH:MM[:SS]" (or with 'T') in
 *        the calendar's zone, for tests and operators.
 * @returns 0 and *out (Unix ms), or -1 if malformed.
 */
int calendar_parse_local(const calendar_t *cal, const char *s, int64_t *out);

/**
 * @brief Format a working-time duration for people: "2d 3h 15m" where a day
 *        is one working day of cal ("0m" for 0; a leading '-' if negative).
 * @returns nothing.
 */
void calendar_fmt_work(const calendar_t *cal, int64_t work_ms, char *out, size_t out_size);

#endif
