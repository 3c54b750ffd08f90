/*
 * archive: the archiver's logic, linked by kesu-archiver and the tests.
 *
 * The archiver consumes every stage topic and republishes each case's
 * events on kesu.public.v1 in case_seq order, without gaps and without
 * personal data or free text (docs/decisions/0004-public-feed-order.md):
 *  - archive_order_decide: the pure "publish now / hold / skip" decision;
 *  - archive_scrub_envelope: the privacy filter every public copy passes;
 *  - archive_handle: the consumer handler that feeds events through
 *    public_feed_state / public_feed_pending, and on a published CaseClosed
 *    writes the immutable archive record and appends CaseArchived, which
 *    then takes its turn in the same ordering.
 */
#ifndef KESU_ARCHIVE_H
#define KESU_ARCHIVE_H

#include <stdint.h>

#include "calendar.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "proto.h"

/* the retention pass: complainants per transaction, transactions per tick
 * (1,000 per pass; a backlog goes on at the next tick, archive.scan_ms) */
#define ARCHIVE_RETENTION_LIMIT 100
#define ARCHIVE_RETENTION_ROUNDS 10

/* how often the kept counts of ended database sessions are folded
 * (case_status_counts 0022, case_stats_daily 0023; only housekeeping: the
 * sums are the same) */
#define ARCHIVE_FOLD_MS (10 * 60 * 1000)

/* how often, how far back and how many at most a pass stores the on-time
 * judgement of facts closed before their resolve timer was recorded
 * (kesu_stats_judge_late, 0023) */
#define ARCHIVE_JUDGE_MS (60 * 1000)
#define ARCHIVE_JUDGE_DAYS 30
#define ARCHIVE_JUDGE_LIMIT 1000

/** What to do with an event at history position seq when next_seq is due. */
typedef enum {
    ARCHIVE_ORDER_PUBLISH = 0, /**< seq == next_seq: publish, advance, drain held ones */
    ARCHIVE_ORDER_HOLD = 1,    /**< seq > next_seq: an earlier event is missing, keep it */
    ARCHIVE_ORDER_SKIP = 2,    /**< seq < next_seq: already published */
    ARCHIVE_ORDER_INVALID = 3, /**< seq < 1: not from a case history, cannot be placed */
} archive_order_t;

/** @brief The ordering decision (pure). @returns an archive_order_t. */
archive_order_t archive_order_decide(int64_t seq, int64_t next_seq);

/**
 * @brief Clear personal data and free text from an envelope in place: every
 *        string of the payload that is not on the allow-list of codes and ids
 *        (titles, bodies, addresses, replies, comments, notes, free-text
 *        reasons, error texts), and the coordinates of a location (the
 *        district code stays). Unknown (newly added) string fields are
 *        cleared until someone puts them on the list. Codes that are kept
 *        only if they look like codes are cleared when they hold prose.
 *        The envelope must come from kesu__v1__envelope__unpack with the
 *        default allocator (cleared strings are freed).
 * @returns how many fields were cleared.
 */
int archive_scrub_envelope(Kesu__V1__Envelope *env);

/** The archiver's runtime. */
typedef struct archive {
    int gap_warn_ms;                /**< a gap held open this long is logged */
    const calendar_t *cal;          /**< working calendar for handling time; NULL: wall clock */
    int retention_days;             /**< purge contact data this long after a case ended; 0 = never */
    int retention_scan_ms;          /**< how often the retention purge runs */
    int64_t last_retention_ms;      /**< mono ms of the last retention pass */
    int retention_backlog;          /**< the last pass left complainants due: next tick again */
    int64_t last_fold_ms;           /**< mono ms of the last fold of the kept counts */
    int64_t last_judge_ms;          /**< mono ms of the last late-judgement pass */
    int64_t last_gap_warn_ms;       /**< mono ms of the last gap warning */
    int held_added;                 /**< events held while placing the current one */
    metrics_counter_t *m_published; /**< events put on kesu.public.v1 */
    metrics_counter_t *m_held;      /**< events held for an earlier one */
    metrics_counter_t *m_skipped;   /**< events already published */
    metrics_counter_t *m_archived;  /**< archive records written */
    metrics_gauge_t *m_pending;     /**< rows in public_feed_pending */
    metrics_gauge_t *m_oldest;      /**< age in seconds of the oldest held row */
    /* the statistics rows of a fast batch attempt (received, category,
     * department: the figures of almost every event), written by
     * archive_batch at its end, a statement each (decision 0035); gather is 0
     * outside one (careful re-runs, direct calls): each is written at once.
     * Any other statistics event writes what is gathered first. */
    int stats_gather;
    pg_rows_t stats_rows[3]; /**< made at the first reset */
    /* the events of the open fast attempt that archive_feed_claimed published
     * (sorted, for bsearch): their handler has nothing left to do */
    const rd_kafka_message_t **sent;
    size_t nsent, sent_cap;
    pg_rows_t run_rows; /**< ar_runs' columns, made at the first use */
} archive_t;

/** @brief Look up the metrics series once. */
void archive_metrics_init(archive_t *ar);

/**
 * @brief Feed one scrubbed envelope into the ordering of its case, inside
 *        the caller's transaction (publish / hold / skip, drain, archive on
 *        CaseClosed). env is borrowed.
 * @returns KC_OK, KC_SKIP, KC_POISON (no case_seq) or KC_RETRY (database),
 *          errstr set for the last two.
 */
kc_result_t archive_feed(archive_t *ar, pg_t *pg, Kesu__V1__Envelope *env, char *errstr,
                         size_t errstr_size);

/**
 * @brief The batch's new events that follow on from what their case has
 *        published (KC_BATCH_CLAIMED): for each case the run of consecutive
 *        history positions from its lowest in the batch (up to a CaseClosed,
 *        which archives in the slow path) is published in one statement for
 *        all cases, its statistics applied in history order; the handler of
 *        such an event then returns at once. The others are left to their
 *        handlers (archive_feed).
 * @returns KC_OK, KC_RETRY / KC_POISON when the statement fails (transient or not).
 */
kc_result_t archive_feed_claimed(archive_t *ar, pg_t *pg, const kc_msg_t *msgs, size_t n,
                                 char *errstr, size_t errstr_size);

/** @brief Forget what archive_feed_claimed published (a new attempt). */
void archive_feed_reset(archive_t *ar);

/** @brief Consumer handler (kc_handler_fn): scrub a copy and archive_feed it. */
kc_result_t archive_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                           size_t errstr_size);

/**
 * @brief Update the statistics fact row of the event's case (case_stats) in
 *        the caller's transaction; called once per event as it is published,
 *        in history order. Events that carry no figure are ignored.
 * @returns 0, or -1 with errstr (pg->sqlstate set).
 */
int archive_stats_apply(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                        size_t errstr_size);

/**
 * @brief The consumer loop's batch step (kc_batch_fn): at KC_BATCH_BEGIN
 *        gather the statistics rows of the attempt, at KC_BATCH_CLAIMED
 *        publish the events that follow on (archive_feed_claimed), at
 *        KC_BATCH_BEGIN_CAREFUL write each at once, at KC_BATCH_END write
 *        the gathered ones.
 * @returns KC_OK; KC_RETRY / KC_POISON when the write fails (transient or not).
 */
kc_result_t archive_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                          size_t n, char *errstr, size_t errstr_size);

/** @brief Write the gathered statistics rows now. @returns 0, or -1 with errstr. */
int archive_stats_flush(archive_t *ar, pg_t *pg, char *errstr, size_t errstr_size);

/** @brief Free what archive_batch gathered (at exit). @returns nothing. */
void archive_stats_free(archive_t *ar);

/**
 * @brief Handling time between two instants in working hours on cal (the
 *        SLA's working calendar: weekends, holidays and nights do not count),
 *        or wall-clock hours when cal is NULL. The one place handling time is
 *        measured. @returns hours, 0 when to <= from.
 */
double archive_stats_hours(const calendar_t *cal, int64_t from_ms, int64_t to_ms);

/**
 * @brief Purge (kesu_complainant_purge, audited in pii_erasures) the
 *        contact data of up to limit complainants whose every case ended
 *        more than days ago, in its own transaction. days <= 0 does nothing.
 * @returns complainants purged, or -1 with errstr.
 */
int archive_retention_purge(pg_t *pg, int days, int limit, char *errstr, size_t errstr_size);

/**
 * @brief Up to `rounds` retention passes of `limit` complainants, each its own
 * transaction, until one finds fewer than `limit` due.
 * @param more set to 1 when every round was full (a backlog: run again soon)
 * @returns complainants purged, or -1 when a round failed (errstr says why;
 *          the rounds before it stay purged)
 */
int archive_retention_run(pg_t *pg, int days, int limit, int rounds, int *more, char *errstr,
                          size_t errstr_size);

/**
 * @brief Fold the rows that database sessions which have ended left in the
 *        kept counts into one row per key: case_status_counts
 *        (kesu_status_counts_fold, 0022) and case_stats_daily
 *        (kesu_stats_daily_fold, 0023). The sums stay what they were.
 * @returns rows folded, or -1 with errstr.
 */
long long archive_counts_fold(pg_t *pg, char *errstr, size_t errstr_size);

/**
 * @brief Store the on-time judgement of up to `limit` facts closed in the
 *        last `days` days before their resolve timer was recorded, now that
 *        it is (kesu_stats_judge_late, 0023): what kesu_stats() would judge
 *        when it reads, so the kept closing-day figures agree with it.
 * @returns facts judged, or -1 with errstr.
 */
long long archive_stats_judge_late(pg_t *pg, int days, int limit, char *errstr,
                                   size_t errstr_size);

/** @brief Tick (kc_tick_fn): pending gauges, a warning for gaps held open too long, retention,
 *         late on-time judgements, the kept counts' fold. */
void archive_tick(void *opaque, pg_t *pg);

#endif
