/*
 * sla_clock: deadline, warnings and escalation of one timer.
 */
#include "sla_clock.h"

#include "sla_policy.h"

int64_t sla_clock_due(const calendar_t *cal, const sla_clock_t *c)
{
    if (!c->anchor_ms)
        return INT64_MAX;
    int64_t left = c->total_ms - c->used_ms;
    return left > 0 ? sla_add(cal, c->work, c->anchor_ms, left) : c->anchor_ms;
}

int64_t sla_clock_used_at(const calendar_t *cal, const sla_clock_t *c, int64_t t)
{
    if (!c->anchor_ms)
        return c->used_ms;
    return c->used_ms + sla_between(cal, c->work, c->anchor_ms, t);
}

/* the instant the clock reaches `used` (the anchor if it already has) */
static int64_t sc_when(const calendar_t *cal, const sla_clock_t *c, int64_t used)
{
    return used > c->used_ms ? sla_add(cal, c->work, c->anchor_ms, used - c->used_ms)
                             : c->anchor_ms;
}

sla_fire_t sla_clock_next(const calendar_t *cal, const sla_clock_t *c, const int *warn_pct,
                          int nwarn, int64_t *at, int *percent)
{
    *at = 0;
    *percent = 0;
    if (!c->anchor_ms || c->breach_count >= 2)
        return SLA_FIRE_NONE;
    if (c->breach_count == 1) {
        if (c->escalate_ms <= 0)
            return SLA_FIRE_NONE;
        *at = sc_when(cal, c, c->total_ms + c->escalate_ms);
        return SLA_FIRE_SECOND;
    }
    if (c->warned < nwarn) {
        *percent = warn_pct[c->warned];
        *at = sc_when(cal, c, c->total_ms * warn_pct[c->warned] / 100);
        return SLA_FIRE_WARN;
    }
    *at = sc_when(cal, c, c->total_ms);
    return SLA_FIRE_BREACH;
}

sla_fire_t sla_clock_fire(const calendar_t *cal, sla_clock_t *c, const int *warn_pct, int nwarn,
                          int64_t now, int *percent)
{
    int64_t at;
    sla_fire_t f = sla_clock_next(cal, c, warn_pct, nwarn, &at, percent);
    if (f == SLA_FIRE_NONE || at > now)
        return SLA_FIRE_NONE;
    if (f == SLA_FIRE_WARN) {
        if (sc_when(cal, c, c->total_ms) <= now) {
            c->warned = nwarn; /* late: the breach says it all */
            c->breach_count = 1;
            *percent = 0;
            return SLA_FIRE_BREACH;
        }
        c->warned++;
        return SLA_FIRE_WARN;
    }
    c->warned = nwarn;
    c->breach_count++;
    return f;
}

void sla_clock_pause(const calendar_t *cal, sla_clock_t *c, int64_t t)
{
    if (!c->anchor_ms)
        return;
    c->used_ms = sla_clock_used_at(cal, c, t);
    c->anchor_ms = 0;
}

void sla_clock_resume(sla_clock_t *c, int64_t t)
{
    if (c->anchor_ms)
        return;
    c->anchor_ms = t;
}
