/*
 * sla_policy: time limits per request type x urgency
 * (deploy/config/sla.json) and the computation of deadlines on the
 * working calendar (common/calendar.h).
 *
 * A policy file is a list of entries {request_type, urgency, accept,
 * resolve, reply, follow_up, auto_close, escalate_after}; request_type and
 * urgency may be "*", and an entry may set only some limits. Each limit of
 * a case comes from the most specific entry that sets it, in this order:
 * (type, urgency), ("*", urgency), (type, "*"), ("*", "*"). So {"*",
 * "emergency", accept "30m", resolve "24h"} shortens every emergency
 * whatever its type, while a type's own resolve limit still applies to
 * normal cases. The ("*", "*") entry must set every limit, so a lookup
 * always finds one.
 *
 * A limit is a duration with a unit: "30m", "24h", "7d" count calendar
 * time (emergencies do not wait for Monday); "90wm", "4wh", "15wd" count
 * working time on the calendar (a working day is the calendar's working
 * hours of one day). escalate_after is how long after a breach the case
 * breaches a second time and goes to the supervision office (督办).
 * Warnings fire at warn_percent (default 50 and 80) of each limit except
 * auto_close.
 */
#ifndef KESU_SLA_POLICY_H
#define KESU_SLA_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "calendar.h"

/** Timer kinds (sla_timers.kind). */
typedef enum {
    SLA_ACCEPT = 0, /**< assigned -> accepted (签收); restarts per dispatch */
    SLA_RESOLVE,    /**< assigned -> resolved (办结); restarts on a reopen */
    SLA_REPLY,      /**< resolved -> reply sent (答复) */
    SLA_FOLLOW_UP,  /**< reply sent -> feedback recorded (回访) */
    SLA_AUTO_CLOSE, /**< reply sent, no feedback: closed with reason no_feedback */
    SLA__KINDS
} sla_kind_t;

/** A limit: value x unit. */
typedef struct sla_limit {
    int64_t value; /**< > 0 when set */
    char unit;     /**< 'm' 'h' 'd' calendar; 'M' 'H' 'D' working (wm, wh, wd); 0 unset */
} sla_limit_t;

#define SLA_MAX_WARN 4

typedef struct sla_entry {
    char *request_type;          /**< owned: a request type or "*" */
    char *urgency;               /**< owned: an urgency or "*" */
    sla_limit_t limit[SLA__KINDS]; /**< per kind, unit 0 = not set by this entry */
    sla_limit_t escalate_after;  /**< unit 0 = not set */
} sla_entry_t;

typedef struct sla_policy {
    sla_entry_t *entries;         /**< owned, file order */
    size_t nentries;
    int warn_percent[SLA_MAX_WARN]; /**< ascending, 1..99 */
    int nwarn;                    /**< 0..SLA_MAX_WARN */
    double time_scale;            /**< multiplies every limit (tests: 0.001); > 0 */
    const calendar_t *cal;        /**< borrowed; working-time units need it */
} sla_policy_t;

/** The limits that apply to one case. */
typedef struct sla_limits {
    sla_limit_t limit[SLA__KINDS]; /**< every kind set */
    sla_limit_t escalate_after;    /**< set */
    double time_scale;             /**< copied from the policy */
    const calendar_t *cal;         /**< copied from the policy */
} sla_limits_t;

/** @brief "accept", "resolve", "reply", "follow_up", "auto_close", or NULL. */
const char *sla_kind_name(sla_kind_t kind);

/** @brief Kind of a name, or -1. */
int sla_kind_parse(const char *name);

/**
 * @brief Parse "30m", "24h", "7d", "90wm", "4wh", "15wd" (value 1..999999).
 * @returns 0, or -1 if malformed.
 */
int sla_limit_parse(const char *s, sla_limit_t *out);

/** @brief Write a limit back as text ("15wd"). @returns nothing. */
void sla_limit_fmt(const sla_limit_t *l, char *out, size_t out_size);

/** @brief 1 if the limit counts working time. */
int sla_limit_is_work(const sla_limit_t *l);

/**
 * @brief The limit's length in ms of its own measure (working ms for
 *        working units, taking a working day from cal), times scale.
 * @returns the length (>= 1 for a set limit).
 */
int64_t sla_limit_ms(const sla_limit_t *l, const calendar_t *cal, double scale);

/** @brief t moved forward by ms of working time (work) or calendar time. @returns the instant. */
int64_t sla_add(const calendar_t *cal, int work, int64_t t, int64_t ms);

/** @brief Time in [a, b) counted as working time (work) or calendar time. @returns ms. */
int64_t sla_between(const calendar_t *cal, int work, int64_t a, int64_t b);

/**
 * @brief Load and check a policy file (time_scale starts at 1.0, cal NULL:
 *        the caller sets both).
 * @returns the policy (free with sla_policy_free) or NULL with errstr naming
 *          the file and the line or JSON path.
 */
sla_policy_t *sla_policy_load(const char *path, char *errstr, size_t errstr_size);

/** @brief Same from text; name stands for the file in messages. */
sla_policy_t *sla_policy_parse(const char *text, const char *name, char *errstr,
                               size_t errstr_size);

/** @brief Free (NULL is fine). */
void sla_policy_free(sla_policy_t *p);

/**
 * @brief The limits for a request type and urgency (NULL or unknown values
 *        fall through to the "*" entries).
 * @returns 0 (the checked policy always has a complete "*" x "*" entry).
 */
int sla_policy_lookup(const sla_policy_t *p, const char *request_type, const char *urgency,
                      sla_limits_t *out);

/**
 * @brief The deadline of a timer of that kind started at start_ms (Unix ms)
 *        with nothing paused: start + limit x time_scale in the limit's measure.
 * @returns the deadline in Unix ms.
 */
int64_t sla_due_at(const sla_limits_t *lim, sla_kind_t kind, int64_t start_ms);

#endif
