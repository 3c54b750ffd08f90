/*
 * dispatch_event: the dispatcher's consumer handler and tick.
 *
 * kesu.classifier.v1 CaseClassified: route the case with the catalogue,
 * pick the handler with the skill and the least open load below capacity,
 * write the assignment (and its lead and co-handling rows in
 * case_assignments) and move classified -> assigned (CaseAssigned on
 * kesu.dispatcher.v1).
 *
 * kesu.intake.v1 CaseReturned (退单): record the dispute in case_returns and
 * re-route (改派) returned -> assigned to a department that has not
 * returned the case yet; after max_returns returns the supervision office
 * decides instead. CaseReopened (重办): back to the department that
 * handled it, to its previous handler if it has room, marked priority.
 * Both are a new CaseAssigned with attempt + 1.
 *
 * CaseResolved / CaseClosed / CaseWithdrawn / CaseRejected / CaseMerged:
 * give the handler's load back, once per assignment (cases.load_released).
 *
 * The tick polls dispatch_catalogue (migration 0008) and swaps in a newer
 * version that `kesuctl catalogue load` wrote, without a restart.
 */
#ifndef KESU_DISPATCH_EVENT_H
#define KESU_DISPATCH_EVENT_H

#include <stdint.h>

#include "dispatch_catalogue.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

#define DISPATCH_PRODUCER "dispatcher"

/** A handler's load change gathered in the open batch, written at its end. */
typedef struct dispatch_load {
    char id[128]; /**< handler id */
    int delta;    /**< assignments taken minus given back */
} dispatch_load_t;

/** A handler as the open attempt read it (de_handlers_read; pointers into
 *  the result that holds the row). */
typedef struct dispatch_staff {
    const char *id;
    const char *department;
    const char *skills; /**< domain codes or "*", separated by one space */
    int load;           /**< open_load when read */
    int capacity;
} dispatch_staff_t;

/** What the handler needs; set up once in main.c. */
typedef struct dispatch_ctx {
    const dispatch_catalogue_t *cat; /**< the catalogue in use (the file's or owned) */
    dispatch_catalogue_t *owned;     /**< loaded from PostgreSQL by the tick, freed on swap */
    int64_t cat_version;             /**< dispatch_catalogue.version in use, 0 = the file */
    const char *const *domains;      /**< borrowed domain codes for checking a new version */
    int max_returns;                 /**< returns after which the supervision office decides */
    pg_keyed_t cases;                /**< the batch's dispatched cases, read at its claim */
    metrics_counter_t *m_assigned;   /**< cases assigned */
    metrics_counter_t *m_emergency;  /**< of which to the emergency desk */
    metrics_counter_t *m_no_handler; /**< of which no handler had room: department only */
    metrics_counter_t *m_released;   /**< handler loads given back */
    metrics_counter_t *m_skipped;    /**< events for a case that had moved on */
    metrics_counter_t *m_reloads;    /**< catalogue versions swapped in */
    metrics_counter_t *m_reruns;     /**< batches run again: a handler filled up meanwhile */
    /* the open batch (dispatch_batch) */
    dispatch_load_t *loads;          /**< load changes, one per handler */
    size_t nloads, loads_cap;
    struct {
        size_t slot;
        int delta;
    } undo[4];                       /**< the current event's changes, undone if it fails */
    size_t nundo;
    strbuf_t lit_ids, lit_deltas;    /**< loads as array literals for the statements */
    int gather;                      /**< a fast attempt: assignment rows wait for its end */
    pg_rows_t assign;                /**< those rows (de_add_assignments' 8 columns) */
    /* the handlers of the departments the open attempt picks in, each
     * department read once (decision 0043) */
    PGresult **hres;                 /**< the reads' results (owned) */
    size_t nhres, hres_cap;
    dispatch_staff_t *hs;            /**< their rows: by department, then id */
    size_t nhs, hs_cap;
    char **hdepts;                   /**< the departments read, with or without handlers */
    size_t nhdepts, hdepts_cap;
    struct dispatch_routed *routed;  /**< routes worked out at the claim, by event id */
    size_t nrouted, routed_cap;
} dispatch_ctx_t;

/** @brief Fill the metric handles of ctx (max_returns 2, version 0). */
void dispatch_ctx_init(dispatch_ctx_t *ctx, const dispatch_catalogue_t *cat);

/** @brief Free a catalogue the tick loaded (the file's stays the caller's). @returns nothing. */
void dispatch_ctx_free(dispatch_ctx_t *ctx);

/**
 * @brief kc_handler_fn for kesu.classifier.v1 and kesu.intake.v1 (opaque is a
 *        dispatch_ctx_t).
 * @returns KC_OK, KC_SKIP (other event types, a case that moved on, nothing
 *          to release), KC_POISON (unknown case, refused write) or KC_RETRY.
 */
kc_result_t dispatch_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size);

/**
 * @brief kc_batch_fn: at the batch's end, write the assignment rows a fast
 *        attempt gathered (one statement; a careful re-run writes each event's
 *        own) and the handler loads its events
 *        took and gave back — every instance locks them in id order, so
 *        instances never deadlock on handlers. KC_RETRY when a handler went
 *        past capacity because another instance filled it meanwhile: the
 *        consumer loop runs the batch again, which then sees it full.
 */
kc_result_t dispatch_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                           size_t nmsgs, char *errstr,
                           size_t errstr_size);

/** @brief kc_wants_fn: the event types dispatch_handle acts on. */
int dispatch_wants(void *opaque, const Kesu__V1__Envelope *env);

/**
 * @brief Swap in the newest catalogue version of PostgreSQL if it is newer
 *        than the one in use (checked again before use; a bad one is logged
 *        and ignored). @returns 1 swapped, 0 nothing new, -1 error (errstr).
 */
int dispatch_reload(dispatch_ctx_t *ctx, pg_t *pg, char *errstr, size_t errstr_size);

/** @brief kc_tick_fn: dispatch_reload, logging failures. */
void dispatch_tick(void *opaque, pg_t *pg);

/**
 * @brief Give back the open load of a case's handler if not yet done (also
 *        used before a re-dispatch), as a change of the open batch.
 * @returns 1 released, 0 nothing to do, -1 error.
 */
int dispatch_release_load(dispatch_ctx_t *ctx, pg_t *pg, const char *case_id, char *errstr,
                          size_t errstr_size);

#endif
