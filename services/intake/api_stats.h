/*
 * api_stats: GET /v1/stats - the statistics of a date range (kesu_stats(),
 * migration 0009) as JSON or CSV, grouped by any of day, department,
 * category, channel, district; and the date-range parameters the archive
 * export shares.
 */
#ifndef KESU_INTAKE_API_STATS_H
#define KESU_INTAKE_API_STATS_H

#include "http.h"

/** Longest range one request may ask for, in days. */
#define API_STATS_MAX_DAYS 366

/** @brief GET /v1/stats?from=&to=&group_by=&format=json|csv. @returns nothing (replies). */
void api_stats_get(http_req_t *r, void *opaque);

/**
 * @brief Read ?from=YYYY-MM-DD&to=YYYY-MM-DD (local days, both inclusive;
 *        to defaults to from) into from[11] and to[11], checking the format,
 *        from <= to and at most API_STATS_MAX_DAYS days.
 * @returns 0, or the status already replied (400).
 */
int api_date_range(http_req_t *r, char from[11], char to[11]);

/**
 * The first microsecond of a local day, as microseconds since the epoch.
 * @param day "YYYY-MM-DD", as api_date_range gave it
 * @returns the microseconds, or -1 when day is not a date
 */
long long api_day_start_us(const char *day);

#endif
