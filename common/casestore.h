/*
 * casestore: the one way any service changes a case.
 *
 * casestore_apply() runs inside the caller's transaction: it locks the case
 * row, checks the expected status(es), the transition table and the
 * expected version, bumps version and history sequence, appends the
 * case_events row and the outgoing outbox message. The state change, its
 * history and its message therefore commit together or not at all.
 */
#ifndef KESU_CASESTORE_H
#define KESU_CASESTORE_H

#include <stdint.h>

#include "pg.h"
#include "proto.h"

typedef enum {
    CASESTORE_OK = 0,
    CASESTORE_NOT_FOUND = 1, /**< no such case */
    CASESTORE_CONFLICT = 2,  /**< status not one of `from`, or transition not allowed */
    CASESTORE_STALE = 3,     /**< version is not expect_version */
    CASESTORE_ERROR = -1,    /**< database error (see pg->sqlstate) */
} casestore_rc_t;

/*
 * The bump statement, with the caller's own columns set in the same row
 * version: CASESTORE_BUMP_SQL(", domain = $6, urgency = $7") is the statement
 * casestore runs ($1..$5 are casestore's, the caller's values follow from $6).
 * Pass it as casestore_change_t.bump with its values in bump_values.
 */
#define CASESTORE_BUMP_SQL(extra_set)                                                              \
    "WITH old AS (SELECT id, status AS old_status FROM cases WHERE id = $1::uuid "                \
    "FOR NO KEY UPDATE) "                                                                          \
    "UPDATE cases c SET status = COALESCE($2, c.status), version = c.version + $3::int, "         \
    "event_seq = c.event_seq + 1, updated_at = now()" extra_set " FROM old WHERE c.id = old.id " \
    "AND ($4::text[] IS NULL OR old.old_status = ANY($4::text[])) "                               \
    "AND ($5::bigint = 0 OR c.version = $5::bigint) "                                             \
    "RETURNING old.old_status, c.version, c.event_seq, c.status, c.case_no, c.trace_id"

/*
 * The same change for many cases in one statement, the form a batch keeps a
 * stage's changes in until its end (casestore_change_t.bump_many):
 * CASESTORE_BUMP_MANY_SQL(", $5::text[], $6::text[]", ", v5, v6",
 * ", domain = u.v5, flags = u.v6::text[]") — $1..$4 are casestore's (id,
 * status, version and seq as they become, decided in C from the locked row
 * the batch knows), the caller's columns follow from $5, one text[] each, in
 * bump_values order, cast where they are set.
 */
#define CASESTORE_BUMP_MANY_SQL(extra_arrays, extra_names, extra_set)                              \
    "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]"          \
    extra_arrays ") AS u(id, status, version, seq" extra_names ")) "                              \
    "UPDATE cases c SET status = u.status, version = u.version, event_seq = u.seq, "              \
    "updated_at = now()" extra_set " FROM u WHERE c.id = u.id RETURNING c.id"

/** the most values a caller's bump may add */
#define CASESTORE_BUMP_MAX_EXTRA 12

typedef struct casestore_change {
    const char *case_id;      /**< required */
    const char *const *from;  /**< allowed current statuses, NULL-terminated; NULL = any */
    const char *to;           /**< new status, NULL keeps the status */
    int64_t expect_version;   /**< > 0: the current version must equal it (If-Match) */
    int bump_version;         /**< bump the version without a status change */
    const char *producer;     /**< service name (outbox producer, case_events.producer) */
    const char *actor;        /**< token id or service, never a person's name */
    const char *topic;        /**< topic of the event; NULL: history row only, no outbox row */
    /** optional: the bump with the caller's columns (CASESTORE_BUMP_SQL), so that the
     *  case's own fields change in the same row version as its status */
    const pg_stmt_t *bump;
    const char *const *bump_values; /**< its values from $6 on (bump->nparams - 5 of them) */
    /** optional, with bump: the same change for many cases (CASESTORE_BUMP_MANY_SQL, the
     *  same bump_values from $5 on). While a batch gathers, a change of a case it knows
     *  (casestore_defer_know) is decided here and kept for that one statement */
    const pg_stmt_t *bump_many;
} casestore_change_t;

typedef struct casestore_result {
    char status_before[24]; /**< status before the change */
    char status_after[24];  /**< status after */
    int64_t version;        /**< version after */
    int64_t seq;            /**< history seq of the appended event */
} casestore_result_t;

/**
 * @brief Apply a change and append its event (pe: payload set by the caller;
 *        case number, trace id, version and seq are filled in here).
 * @returns a casestore_rc_t; errstr explains anything but OK.
 */
int casestore_apply(pg_t *pg, const casestore_change_t *ch, proto_env_t *pe,
                    casestore_result_t *out, char *errstr, size_t errstr_size);

/**
 * @brief Append an event to a case's history without changing its status or
 *        version (SLA events, notifications). Same guarantees as apply.
 */
int casestore_append(pg_t *pg, const char *case_id, const char *producer, const char *actor,
                     const char *topic, proto_env_t *pe, casestore_result_t *out, char *errstr,
                     size_t errstr_size);

/** One event of casestore_append_many. */
typedef struct casestore_event {
    const char *case_id;      /**< required */
    const char *producer;     /**< service name */
    const char *actor;        /**< token id or service */
    const char *topic;        /**< NULL: history row only */
    proto_env_t *pe;          /**< payload set by the caller; filled like append's */
    casestore_result_t out;   /**< filled on CASESTORE_OK */
} casestore_event_t;

/**
 * @brief Append n events that change no status, in two statements for all of
 *        them (one UPDATE locks and bumps every case named, in id order, one
 *        INSERT writes the history and outbox rows). Events of one case get
 *        consecutive seqs in array order; outbox rows follow array order.
 *        Same guarantees as casestore_append for each event.
 * @returns CASESTORE_OK; CASESTORE_NOT_FOUND (errstr names the case; the
 *          other cases may already be bumped: roll back to before the call,
 *          then append the events one by one to place the others), or
 *          CASESTORE_ERROR.
 */
int casestore_append_many(pg_t *pg, casestore_event_t *ev, size_t n, char *errstr,
                          size_t errstr_size);

/** A new case as its insert writes it: the status the schema allows first
 *  (cases_check_initial), the version the column starts at, and the number
 *  of events its row counts (event_seq) with its first event written. */
#define CASESTORE_FIRST_STATUS "received"
#define CASESTORE_FIRST_VERSION 1
#define CASESTORE_FIRST_SEQ 1

/**
 * @brief The first event of each of n cases this transaction has just
 *        inserted with event_seq = CASESTORE_FIRST_SEQ (intake): the case
 *        rows already count the events, so none is read, locked or changed
 *        (casestore_append_many would bump each one: a second version of a
 *        new row) - one INSERT writes the history and outbox rows. Each
 *        ev[i].pe carries its case already (proto_env_set_case: id, number,
 *        trace); one event per case; out is filled as append's.
 * @returns CASESTORE_OK or CASESTORE_ERROR.
 */
int casestore_append_first(pg_t *pg, casestore_event_t *ev, size_t n, char *errstr,
                           size_t errstr_size);

/**
 * Gathering a batch's appends (decision 0026). Between casestore_defer_begin
 * and casestore_defer_flush, casestore_apply and casestore_append on pg change
 * the case row at once (its lock, version, seq and status: everything a later
 * event of the batch reads) but keep the history and outbox rows, and the
 * flush writes all of them with one statement — a statement per event costs
 * twice as much per row. The consumer loop does this on its fast path
 * (common/kafka.c); its careful re-run writes every event at once, so that a
 * savepoint undoes exactly one event. Nothing may read a batch's own
 * case_events rows before the flush; casestore_append_many flushes first.
 */
void casestore_defer_begin(pg_t *pg);

/**
 * Kept status changes (decision 0038). A stage that locked its batch's case
 * rows at the claim makes each one known with casestore_defer_know (the
 * consumer loop does, in kc_case_row); casestore_apply with a bump_many then
 * checks the expected status, the transition and the version against what it
 * knows, decides the new version and seq, and keeps the change: one
 * statement writes every kept change, before the history rows, at the flush.
 * A kept change is written earlier when anything is to read or change that
 * case's row: a later casestore call for the case does it itself, the
 * consumer loop calls casestore_defer_sync before each event's handler. A
 * refused change is not kept: it runs at once and explains itself as it
 * would without a batch.
 */

/**
 * @brief Make a locked case known to the gathering batch: row of res with the
 *        columns id, status, version, event_seq, case_no and trace_id.
 * @returns 0, -1 not known (no gathering, a column missing, a value too long):
 *          its changes then run at once.
 */
int casestore_defer_know(pg_t *pg, const PGresult *res, int row);

/**
 * @brief Write the kept changes now if case_id (NULL: any case) has one, so
 *        that a statement about to read or change that case sees them.
 * @returns CASESTORE_OK, CASESTORE_ERROR (pg's failure) or CASESTORE_CONFLICT
 *          (a case did not take its change: run the batch carefully).
 */
int casestore_defer_sync(pg_t *pg, const char *case_id, char *errstr, size_t errstr_size);

/** @brief Write the kept changes and the gathered rows, and stop gathering.
 *  @returns CASESTORE_OK, CASESTORE_ERROR or CASESTORE_CONFLICT (as casestore_defer_sync). */
int casestore_defer_flush(pg_t *pg, char *errstr, size_t errstr_size);

/** @brief Drop the gathered rows (the batch is rolled back) and stop gathering. */
void casestore_defer_discard(pg_t *pg);

#endif
