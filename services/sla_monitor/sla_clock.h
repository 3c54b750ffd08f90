/*
 * sla_clock: the arithmetic of one SLA timer, without the database.
 *
 * A timer counts in one measure - working time on the calendar or plain
 * calendar time - and keeps its clock as: total (limit + approved
 * extensions), used before the anchor, and the anchor (the start or the
 * last resume; 0 while paused). Its deadline is anchor + (total - used) in
 * that measure, so a pause simply drops the anchor and a resume sets a new
 * one: the deadline moves by exactly the working time spent waiting for the
 * complainant. Warnings fire when used reaches warn_percent of total, the
 * breach at the deadline, the second breach (supervision office) escalate
 * after it. sla_clock_fire() says what a due timer does now and advances
 * it; it is pure, so the scan, the recompute and the tests share it.
 */
#ifndef KESU_SLA_CLOCK_H
#define KESU_SLA_CLOCK_H

#include <stdint.h>

#include "calendar.h"

typedef struct sla_clock {
    int work;            /**< 1: working time on cal, 0: calendar time */
    int64_t total_ms;    /**< limit + extensions, > 0 */
    int64_t used_ms;     /**< used before anchor_ms, >= 0 */
    int64_t anchor_ms;   /**< start or last resume (Unix ms); 0 while paused */
    int64_t escalate_ms; /**< second breach this long after the deadline; 0: never */
    int warned;          /**< warnings fired (0..nwarn) */
    int breach_count;    /**< 0, 1 (department head), 2 (supervision office) */
} sla_clock_t;

typedef enum {
    SLA_FIRE_NONE = 0, /**< nothing (paused, or everything fired) */
    SLA_FIRE_WARN,     /**< SlaWarning at *percent */
    SLA_FIRE_BREACH,   /**< first breach: SlaBreached + CaseEscalated to the department head */
    SLA_FIRE_SECOND,   /**< second breach: SlaBreached + CaseEscalated to the supervision office */
} sla_fire_t;

/** @brief The deadline (Unix ms); INT64_MAX while paused. */
int64_t sla_clock_due(const calendar_t *cal, const sla_clock_t *c);

/** @brief Measure used by instant t (>= anchor); used_ms while paused. */
int64_t sla_clock_used_at(const calendar_t *cal, const sla_clock_t *c, int64_t t);

/**
 * @brief The next thing that fires and when.
 * @returns what fires (NONE: *at = 0); *at its instant; *percent the warning's.
 */
sla_fire_t sla_clock_next(const calendar_t *cal, const sla_clock_t *c, const int *warn_pct,
                          int nwarn, int64_t *at, int *percent);

/**
 * @brief Fire what is due at now and advance c. A warning whose deadline has
 *        already passed (the monitor was down) is not sent: the breach is,
 *        and the skipped warnings count as fired.
 * @returns what to send (NONE if nothing is due at now).
 */
sla_fire_t sla_clock_fire(const calendar_t *cal, sla_clock_t *c, const int *warn_pct, int nwarn,
                          int64_t now, int *percent);

/** @brief Pause at t (no-op if paused). @returns nothing. */
void sla_clock_pause(const calendar_t *cal, sla_clock_t *c, int64_t t);

/** @brief Resume at t (no-op if running). @returns nothing. */
void sla_clock_resume(sla_clock_t *c, int64_t t);

#endif
