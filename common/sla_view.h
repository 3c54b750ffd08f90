/*
 * sla_view: the SLA timeline of one case, as JSON, from PostgreSQL.
 *
 * Used by GET /v1/cases/{case_no}/sla (intake) and `kesuctl case sla`
 * (one builder, so both show the same thing). For every timer of every
 * cycle it gives the limit, the deadline in the calendar's local time,
 * the working time used and left at `now`, warnings fired and breaches;
 * then the whole trail of sla_timer_log in order (start, pause, resume,
 * extend, warn50/warn80, breach, breach2, stop, recompute, auto_close),
 * each with the working time used at that moment - what explains a breach.
 * No personal data: notes are written by the services, never free text.
 */
#ifndef KESU_SLA_VIEW_H
#define KESU_SLA_VIEW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "calendar.h"
#include "pg.h"

/**
 * @brief Build the timeline of the case with that number at instant now_ms,
 *        running its queries on pg (inside the caller's transaction if one
 *        is open, so row-level security applies).
 * @returns a new JSON object (caller json_decref's); NULL with *found = 0
 *          when no such case is visible, NULL with *found = 1 and errstr on a
 *          database error.
 */
json_t *sla_view_build(pg_t *pg, const calendar_t *cal, const char *case_no, int64_t now_ms,
                       int *found, char *errstr, size_t errstr_size);

/**
 * @brief Print a timeline built by sla_view_build for people: one block per
 *        timer, then the trail. @returns nothing.
 */
void sla_view_print(const json_t *view, void *file);

#endif
