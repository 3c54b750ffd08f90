/*
 * sla_timers: SLA timers in PostgreSQL (sla_timers, with every change in
 * sla_timer_log) driven by events, and the breach scan.
 *
 * Events: CaseAssigned (kesu.dispatcher.v1) starts an accept and a resolve
 * timer; CaseAccepted stops accept, CaseResolved stops accept and resolve,
 * CaseClosed / CaseWithdrawn / CaseRejected / CaseMerged stop every timer
 * (all on kesu.intake.v1). The two topics are not ordered with each other,
 * so timer creation reads the case's status: a case already accepted gets
 * no accept timer, one already resolved or finished gets none.
 *
 * Scan (the consumer loop's tick): due running timers are locked with FOR
 * UPDATE SKIP LOCKED, so any number of instances share the work and none
 * breaches a timer twice; each breach commits with its SlaBreached outbox
 * row. A timer whose case already did the thing in time (the stopping event
 * is still on its way) or is gone (withdrawn, rejected, merged) is stopped
 * instead of breached.
 */
#ifndef KESU_SLA_TIMERS_H
#define KESU_SLA_TIMERS_H

#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "sla_policy.h"

#define SLA_PRODUCER   "sla-monitor"
#define SLA_SCAN_BATCH 200

typedef struct sla_ctx {
    const sla_policy_t *policy; /**< borrowed, read-only */
    void (*wake)(void *arg);    /**< called after a scan committed breaches (wake the relay) */
    void *wake_arg;             /**< its argument */
    int scan_rounds;            /**< batches of SLA_SCAN_BATCH one tick may take (>= 1) */
    metrics_counter_t *m_started;
    metrics_counter_t *m_stopped;
    metrics_counter_t *m_breached;
    metrics_counter_t *m_scan_errors;
} sla_ctx_t;

/** @brief Fill ctx (policy borrowed; wake may be NULL). */
void sla_ctx_init(sla_ctx_t *ctx, const sla_policy_t *policy, void (*wake)(void *), void *arg);

/**
 * @brief kc_handler_fn for kesu.dispatcher.v1 and kesu.intake.v1 (opaque is
 *        an sla_ctx_t).
 * @returns KC_OK, KC_SKIP (other events, nothing to start or stop),
 *          KC_POISON (unknown case) or KC_RETRY (transient database trouble).
 */
kc_result_t sla_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr, size_t errstr_size);

/**
 * @brief One scan in its own transaction: up to limit due timers breached
 *        (or stopped if their case made it), SlaBreached appended for each.
 * @returns timers handled (breached + stopped), or -1 with errstr (rolled back).
 *          *breached (may be NULL) receives the number breached.
 */
int sla_scan(pg_t *pg, sla_ctx_t *ctx, int limit, int *breached, char *errstr, size_t errstr_size);

/** @brief kc_tick_fn: scan until no due timer is left (at most scan_rounds batches). */
void sla_tick(void *opaque, pg_t *pg);

#endif
