/*
 * sla_timers: SLA timers in PostgreSQL (sla_timers, with every change in
 * sla_timer_log) driven by events, and the scan that fires them.
 *
 * Events (docs/sla.md has the table):
 *   CaseAssigned (kesu.dispatcher.v1)  start accept (cycle = dispatch attempt),
 *                                      and resolve unless one is still open
 *                                      (a return keeps the resolve clock; a
 *                                      reopen, whose resolve stopped, starts a new one)
 *   CaseAccepted / CaseReturned        stop accept
 *   CaseResolved                       stop accept, resolve; start reply
 *   ReplySent (kesu.notifier.v1)       stop reply; start follow_up and auto_close
 *   FeedbackReceived / CaseReopened    stop reply, follow_up, auto_close
 *   InfoRequested                      pause every open timer
 *   SupplementReceived                 resume the paused ones
 *   ExtensionDecided (approved)        the resolve limit grows by extra_minutes
 *   CaseClosed / Withdrawn / Rejected / Merged   stop every timer
 * The topics are not ordered with each other and the monitor may lag, so a
 * timer starts at its event's occurred_at whatever the case's status; one
 * whose step the case already did (case row times, later history events) is
 * stopped at once at that real time (docs/decisions/0016).
 *
 * Scan (the consumer loop's tick): timers whose next_at passed are locked
 * with FOR UPDATE SKIP LOCKED, so any number of instances share the work;
 * what fires (warning, breach + escalation to the department head, second
 * breach + escalation to the supervision office, auto-close) commits with
 * its events' outbox rows and the timer's new next_at in one transaction,
 * so a timer fires once whatever crashes. A timer whose case already did
 * the thing (the stopping event is still on its way) is stopped instead.
 */
#ifndef KESU_SLA_TIMERS_H
#define KESU_SLA_TIMERS_H

#include "calendar.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "sla_clock.h"
#include "sla_policy.h"

#define SLA_PRODUCER   "sla-monitor"
#define SLA_SCAN_BATCH 200

/** cases a batch gathers timer starts for before it writes them (at most a batch's) */
#define ST_START_CASES_MAX 512

typedef struct sla_ctx {
    const sla_policy_t *policy; /**< borrowed, read-only; policy->cal is the calendar */
    void (*wake)(void *arg);    /**< called after a scan committed events (wake the relay) */
    void *wake_arg;             /**< its argument */
    int scan_rounds;            /**< batches of SLA_SCAN_BATCH one tick may take (>= 1) */
    int64_t last_gauge_ms;      /**< when the pending gauges were last refreshed */
    metrics_counter_t *m_started;
    metrics_counter_t *m_stopped;
    metrics_counter_t *m_fired[5]; /**< by sla_fire_t (index 0: auto_close) */
    metrics_counter_t *m_breached; /**< first breaches (the alert's numerator) */
    metrics_counter_t *m_scan_errors;
    metrics_gauge_t *m_pending[SLA__KINDS];
    pg_keyed_t cases; /**< the batch's case rows, read at its claim (sla_batch) */
    /* a fast batch's timer starts, written in one statement at its end (sla_batch) */
    int gather;       /**< gathering (a fast attempt) */
    pg_rows_t starts; /**< the rows of st_start */
    char start_cases[ST_START_CASES_MAX][40]; /**< the cases they are of */
    size_t nstart_cases;
} sla_ctx_t;

/** @brief Fill ctx (policy borrowed; wake may be NULL). */
void sla_ctx_init(sla_ctx_t *ctx, const sla_policy_t *policy, void (*wake)(void *), void *arg);

/**
 * @brief kc_handler_fn for kesu.dispatcher.v1, kesu.intake.v1 and
 *        kesu.notifier.v1 (opaque is an sla_ctx_t).
 * @returns KC_OK, KC_SKIP (other events, nothing to start or stop),
 *          KC_POISON (unknown case) or KC_RETRY (transient database trouble).
 */
kc_result_t sla_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr, size_t errstr_size);

/**
 * @brief kc_batch_fn: at KC_BATCH_CLAIMED the batch's cases are locked in id
 *        order and read in one statement, each event's handler takes its
 *        case's row from there (a later event of the same case reads its
 *        own); forgotten at every other phase.
 * @returns KC_OK, KC_RETRY / KC_POISON (the read failed).
 */
kc_result_t sla_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                      size_t n, char *errstr, size_t errstr_size);

/** @brief Free what the batch step holds. */
void sla_ctx_free(sla_ctx_t *ctx);

/** @brief kc_wants_fn: the event types sla_handle acts on. */
int sla_wants(void *opaque, const Kesu__V1__Envelope *env);

/**
 * @brief One scan in its own transaction at instant now_ms (util_now_ms()
 *        in production): up to limit due timers fired (or stopped if their
 *        case made it).
 * @returns timers handled, or -1 with errstr (rolled back). *fired (may be
 *          NULL) receives the number that sent events.
 */
int sla_scan(pg_t *pg, sla_ctx_t *ctx, int limit, int64_t now_ms, int *fired, char *errstr,
             size_t errstr_size);

/** @brief kc_tick_fn: scan until no due timer is left (at most scan_rounds batches). */
void sla_tick(void *opaque, pg_t *pg);

/**
 * @brief Recompute the deadlines of every open timer with ctx's policy and
 *        calendar (after a change of either), keeping used time, extensions
 *        and fired warnings. Prints one line per changed timer to out (may
 *        be NULL). dry_run: print only, roll back.
 * @returns timers changed (or that would change), or -1 with errstr.
 */
int sla_recompute(pg_t *pg, const sla_ctx_t *ctx, int dry_run, void *out, char *errstr,
                  size_t errstr_size);

#endif
