/*
 * classify_event: the classifier's consumer handler. On CaseReceived it
 * classifies the masked text, writes the classification columns, links a
 * likely duplicate to its master, and moves the case received -> classified
 * with a CaseClassified event; when the case completes a hotspot it appends
 * HotspotDetected to the master case's history. All in the consumer loop's
 * open transaction. The classifier in use can be swapped between messages
 * (SIGHUP reload): classify_ctx_swap, called on the consumer thread.
 */
#ifndef KESU_CLASSIFY_EVENT_H
#define KESU_CLASSIFY_EVENT_H

#include "classify.h"
#include "dedup.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"

#define CLASSIFY_PRODUCER "classifier"

/** What the handler needs; set up once in main.c. */
typedef struct classify_ctx {
    classify_t *cls;                 /**< owned: the classifier in use (swapped on reload) */
    dedup_opts_t dedup;              /**< duplicate / hotspot settings */
    metrics_counter_t *m_classified; /**< cases classified */
    metrics_counter_t *m_review;     /**< of which flagged needs_review */
    metrics_counter_t *m_skipped;    /**< CaseReceived for a case no longer received */
    metrics_counter_t *m_duplicates; /**< cases linked to a master */
    metrics_counter_t *m_hotspots;   /**< hotspots raised */
    metrics_counter_t *m_emergency;  /**< cases classified as emergencies */
    pg_keyed_t cases;                /**< the batch's case rows, read at its claim */
    dedup_batch_t dd;                /**< a fast attempt's duplicate search, kept for its end */
} classify_ctx_t;

/** @brief Set up ctx with a loaded classifier (ctx takes ownership) and metric handles. */
void classify_ctx_init(classify_ctx_t *ctx, classify_t *cls, const dedup_opts_t *dedup);

/** @brief Put a newly loaded classifier in use (takes ownership) and free the old one. */
void classify_ctx_swap(classify_ctx_t *ctx, classify_t *cls);

/** @brief Free the classifier in use. */
void classify_ctx_free(classify_ctx_t *ctx);

/**
 * @brief kc_handler_fn for kesu.intake.v1: CaseReceived -> classified;
 *        other event types are KC_SKIP. opaque is a classify_ctx_t.
 * @returns KC_OK, KC_SKIP (not a CaseReceived, or the case moved on, e.g.
 *          withdrawn), KC_POISON (unknown case, refused write) or KC_RETRY
 *          (transient database trouble).
 */
kc_result_t classify_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size);

/**
 * @brief kc_batch_fn: at KC_BATCH_CLAIMED the batch's cases are locked in id
 *        order and their status read in one statement; the handler of a
 *        case's first event takes its row from there. The received ones are
 *        then searched for duplicates in one statement (dedup_batch_search),
 *        their fingerprints and links written at KC_BATCH_END. Forgotten at
 *        every other phase. @returns KC_OK, KC_RETRY / KC_POISON (a statement
 *        failed).
 */
kc_result_t classify_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                           size_t n, char *errstr, size_t errstr_size);

/** @brief kc_wants_fn: CaseReceived only (the handler's first test). */
int classify_wants(void *opaque, const Kesu__V1__Envelope *env);

#endif
