/*
 * classify_event: the classifier's consumer handler. On CaseReceived it
 * classifies the masked text, writes the classification columns and moves
 * the case received -> classified with a CaseClassified event, all in the
 * consumer loop's open transaction.
 */
#ifndef KESU_CLASSIFY_EVENT_H
#define KESU_CLASSIFY_EVENT_H

#include "classify.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"

#define CLASSIFY_PRODUCER "classifier"

/** What the handler needs; set up once in main.c. */
typedef struct classify_ctx {
    const classify_rules_t *rules;   /**< borrowed, read-only */
    metrics_counter_t *m_classified; /**< cases classified */
    metrics_counter_t *m_review;     /**< of which flagged needs_review */
    metrics_counter_t *m_skipped;    /**< CaseReceived for a case no longer received */
} classify_ctx_t;

/** @brief Fill the metric handles of ctx (call once after setting rules). */
void classify_ctx_init(classify_ctx_t *ctx, const classify_rules_t *rules);

/**
 * @brief kc_handler_fn for kesu.intake.v1: CaseReceived -> classified;
 *        other event types are KC_SKIP. opaque is a classify_ctx_t.
 * @returns KC_OK, KC_SKIP (not a CaseReceived, or the case moved on, e.g.
 *          withdrawn), KC_POISON (unknown case, refused write) or KC_RETRY
 *          (transient database trouble).
 */
kc_result_t classify_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size);

#endif
