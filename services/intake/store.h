/*
 * store: what intake's routes do to the case store, one function per use
 * case, each in its own PostgreSQL transaction on the worker's connection.
 *
 * A function fills an intake_result_t with the HTTP outcome (status, a body
 * or an error code + field + message, headers) so the HTTP layer only
 * replies; a database failure becomes 503 database_unavailable when it is
 * transient (connection lost, shutdown, deadlock) and 500 otherwise. Every
 * change goes through casestore_apply/casestore_append, so the change, its
 * case_events row and its outbox row commit together.
 */
#ifndef KESU_INTAKE_STORE_H
#define KESU_INTAKE_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "auth.h"
#include "intake.h"
#include "validate.h"

typedef struct intake_result {
    int status;          /**< HTTP status to answer */
    const char *code;    /**< error code (status >= 400), static string */
    const char *field;   /**< field the error is about, static string or NULL */
    char message[512];   /**< error message (status >= 400); no personal data */
    json_t *body;        /**< success body, owned (NULL for errors) */
    char etag[32];       /**< "\"<version>\"" or "" */
    char location[96];   /**< Location header or "" */
    const char *outcome; /**< for metrics and logs: created, replayed, duplicate, ... */
    int wrote_outbox;    /**< 1: a commit added outbox rows, wake the relay */
    int retry_after;     /**< > 0: seconds for a Retry-After header (429, 503) */
} intake_result_t;

/** @brief Release the body of a result that is not replied (NULL-safe). @returns nothing. */
void intake_result_clear(intake_result_t *res);

/**
 * @brief Begin a transaction on w->pg scoped for row-level security
 *        (migration 0005): role kesu_api, kesu.role = role, kesu.department
 *        = dept, kesu.access_hash = access_hash (NULL and "" mean unset).
 *        api_tx_begin / api_tx_begin_public are the usual entry points.
 * @returns 0, or -1 with errstr set.
 */
int intake_tx_begin(intake_worker_t *w, const char *role, const char *dept, const char *access_hash,
                    char *errstr, size_t errstr_size);

/** One submission of a group (POST /v1/complaints group commit, or a batch line). */
typedef struct intake_create_req {
    const intake_token_t *tok;   /**< the submitter (borrowed) */
    const intake_complaint_t *c; /**< checked complaint (borrowed) */
    const char *idem_key;        /**< Idempotency-Key (checked) or NULL */
    uint8_t body_sha[32];        /**< SHA-256 of the request bytes (the replay check) */
    intake_result_t res;         /**< the answer, filled by intake_case_create_group */
} intake_create_req_t;

/**
 * @brief Create several cases in ONE transaction and one commit (group
 *        commit). The new cases of the group are written together, a
 *        statement per table (decision 0034); if the database refuses any
 *        row of them, the group is run again with each submission under its
 *        own savepoint, so a duplicate or a refused row never undoes the
 *        others. Each request gets what
 *        intake_case_create would answer alone: 201 created, 200 replayed
 *        (same Idempotency-Key and body) or duplicate (same channel +
 *        external_ref), 422 idempotency_key_reused; when the commit fails
 *        every created answer becomes 503/500 instead. Concurrent identical
 *        submissions make one case: the unique constraints decide, the
 *        loser rolls back to its savepoint and finds the winner's case.
 *        All tokens of a group must be submitter roles (they see alike).
 * @returns the number of cases created (the caller wakes the relay if > 0).
 */
int intake_case_create_group(intake_worker_t *w, intake_create_req_t *reqs, size_t n);

/** @brief Register the store's metrics (kesu_intake_group_commits_total). @returns nothing. */
void intake_store_metrics_init(void);

/**
 * @brief POST /v1/complaints alone: intake_case_create_group of one.
 * @param idem_key Idempotency-Key header (checked) or NULL
 * @param body_sha SHA-256 of the raw request body
 * @returns 0 (see res).
 */
int intake_case_create(intake_worker_t *w, const intake_token_t *tok, const intake_complaint_t *c,
                       const char *idem_key, const uint8_t body_sha[32], intake_result_t *res);

/**
 * @brief GET /v1/cases/{case_no}: staff view (tok set; row-level security
 *        limits a handler to its department) or the complainant's view
 *        (tok NULL, access_code checked and throttled: a wrong code is the
 *        same 404 as an unknown case, and too many wrong codes for one case
 *        number answer 429 with retry_after). reveal_reason non-NULL asks
 *        for the contact data in clear (supervisor/admin only, checked by
 *        the caller): the unmasking is written to contact_access_log in the
 *        same transaction. @returns 0 (see res).
 */
int intake_case_get(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                    const char *access_code, const char *reveal_reason, intake_result_t *res);

/** @brief GET /v1/cases/{case_no}/history (staff). @returns 0 (see res). */
int intake_case_history(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                        intake_result_t *res);

/** Filters of GET /v1/cases (checked by the caller; NULL = no filter). */
typedef struct intake_list_query {
    const char *statuses;     /**< PostgreSQL array literal "{assigned,accepted}" or NULL */
    const char *department;   /**< exact */
    const char *category;     /**< exact */
    const char *channel;      /**< exact */
    const char *district;     /**< exact 6-digit code */
    int overdue;              /**< -1 any, 0 not overdue, 1 overdue */
    const char *created_from; /**< YYYY-MM-DD (China time) or RFC 3339, inclusive */
    const char *created_to;   /**< YYYY-MM-DD inclusive day, or RFC 3339 exclusive */
    const char *cursor_at;    /**< from the cursor: created_at of the last row seen */
    const char *cursor_id;    /**< from the cursor: its id */
    int limit;                /**< 1..200 */
} intake_list_query_t;

/**
 * @brief GET /v1/cases: newest first, keyset-paginated (the cursor names
 *        the last row returned, so pages never skip or repeat rows that
 *        were already there). @returns 0 (see res).
 */
int intake_case_list(intake_worker_t *w, const intake_token_t *tok, const intake_list_query_t *q,
                     intake_result_t *res);

/**
 * @brief POST /v1/cases/{case_no}/actions: one staff action (validate.h
 *        intake_action_kind_t); checks the role, the department scope, the
 *        transition table and the version, then applies it with its event.
 * @param expect_version > 0 from If-Match, 0 for no check
 * @returns 0 (see res).
 */
int intake_case_action(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                       const intake_action_t *a, int64_t expect_version, intake_result_t *res);

/**
 * @brief Which roles may take an action (a mask of intake_role_t).
 * @returns the mask, 0 for an unknown kind.
 */
int intake_action_roles(intake_action_kind_t kind);

/**
 * @brief POST /v1/cases/{case_no}/feedback: the complainant's rating closes
 *        (3-5) or reopens (1-2) a replied case. Access codes throttled.
 *        @returns 0 (see res).
 */
int intake_case_feedback(intake_worker_t *w, const char *case_no, const intake_feedback_t *f,
                         intake_result_t *res);

/**
 * @brief POST /v1/cases/{case_no}/supplement: the complainant adds text
 *        (and attachment references) to an open case; it answers a pending
 *        request_info (SupplementReceived.answers_request, which resumes the
 *        SLA clock). Access codes throttled. @returns 0 (see res).
 */
int intake_case_supplement(intake_worker_t *w, const char *case_no, const intake_supplement_t *s,
                           intake_result_t *res);

#endif
