/*
 * sla_policy: time limits per request type x urgency
 * (deploy/config/sla.json) and the computation of a deadline.
 *
 * A policy file is a list of entries {request_type, urgency, accept_minutes,
 * resolve_minutes}; request_type and urgency may be "*", and an entry may
 * set only some limits. Each limit of a case comes from the most specific
 * entry that sets it, in this order: (type, urgency), ("*", urgency),
 * (type, "*"), ("*", "*"). So {"*", "emergency", accept 30, resolve 1440}
 * shortens every emergency whatever its type, while a type's own resolve
 * limit still applies to normal cases. The ("*", "*") entry must set every
 * limit, so a lookup always finds one.
 *
 * Limits are plain calendar minutes for now. sla_due_at() is the one place
 * a deadline is computed: the working-day calendar (public holidays,
 * make-up working days) replaces its body later without touching callers.
 */
#ifndef KESU_SLA_POLICY_H
#define KESU_SLA_POLICY_H

#include <stddef.h>
#include <stdint.h>

/** Timer kinds this stage runs (reply and follow-up come later). */
typedef enum {
    SLA_ACCEPT = 0, /**< assigned -> accepted (签收) */
    SLA_RESOLVE,    /**< assigned -> resolved (办结) */
    SLA__KINDS
} sla_kind_t;

typedef struct sla_entry {
    char *request_type;          /**< owned: a request type or "*" */
    char *urgency;               /**< owned: an urgency or "*" */
    int64_t minutes[SLA__KINDS]; /**< limit per kind, 0 = not set by this entry */
} sla_entry_t;

typedef struct sla_policy {
    sla_entry_t *entries; /**< owned, file order */
    size_t nentries;
    double time_scale; /**< multiplies every limit (tests: 0.001 makes a day 86.4 s); > 0 */
} sla_policy_t;

/** The limits that apply to one case. */
typedef struct sla_limits {
    int64_t minutes[SLA__KINDS]; /**< limit per kind, > 0 */
    double time_scale;           /**< copied from the policy */
} sla_limits_t;

/** @brief "accept" / "resolve" (the sla_timers.kind values), or NULL. */
const char *sla_kind_name(sla_kind_t kind);

/** @brief Kind of a name, or -1. */
int sla_kind_parse(const char *name);

/**
 * @brief Load and check a policy file (time_scale starts at 1.0).
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
 * @brief The deadline of a timer of that kind started at start_ms (Unix ms):
 *        start + limit x time_scale, in calendar time for now.
 * @returns the deadline in Unix ms.
 */
int64_t sla_due_at(const sla_limits_t *policy, sla_kind_t kind, int64_t start_ms);

#endif
