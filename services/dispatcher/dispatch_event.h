/*
 * dispatch_event: the dispatcher's consumer handler.
 *
 * kesu.classifier.v1 CaseClassified: route the case with the catalogue,
 * pick the handler with the skill and the least open load below capacity,
 * write the assignment and move classified -> assigned (CaseAssigned on
 * kesu.dispatcher.v1). kesu.intake.v1 CaseResolved / CaseClosed /
 * CaseWithdrawn / CaseRejected / CaseMerged: give the handler's load back,
 * once per assignment (cases.load_released, migration 0003).
 */
#ifndef KESU_DISPATCH_EVENT_H
#define KESU_DISPATCH_EVENT_H

#include "dispatch_catalogue.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"

#define DISPATCH_PRODUCER "dispatcher"

/** What the handler needs; set up once in main.c. */
typedef struct dispatch_ctx {
    const dispatch_catalogue_t *cat; /**< borrowed, read-only */
    metrics_counter_t *m_assigned;   /**< cases assigned */
    metrics_counter_t *m_emergency;  /**< of which to the emergency desk */
    metrics_counter_t *m_no_handler; /**< of which no handler had room: department only */
    metrics_counter_t *m_released;   /**< handler loads given back */
    metrics_counter_t *m_skipped;    /**< CaseClassified for a case that had moved on */
} dispatch_ctx_t;

/** @brief Fill the metric handles of ctx. */
void dispatch_ctx_init(dispatch_ctx_t *ctx, const dispatch_catalogue_t *cat);

/**
 * @brief kc_handler_fn for kesu.classifier.v1 and kesu.intake.v1 (opaque is a
 *        dispatch_ctx_t).
 * @returns KC_OK, KC_SKIP (other event types, a case that moved on, nothing
 *          to release), KC_POISON (unknown case, refused write) or KC_RETRY.
 */
kc_result_t dispatch_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size);

/**
 * @brief Give back the open load of a case's handler if not yet done (also
 *        used before a re-dispatch). @returns 1 released, 0 nothing to do, -1 error.
 */
int dispatch_release_load(pg_t *pg, const char *case_id, char *errstr, size_t errstr_size);

#endif
