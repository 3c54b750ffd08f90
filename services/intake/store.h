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
} intake_result_t;

/** @brief Release the body of a result that is not replied (NULL-safe). @returns nothing. */
void intake_result_clear(intake_result_t *res);

/**
 * @brief POST /v1/complaints: create the complainant, the case and its
 *        CaseReceived event in one transaction; or answer a replay (same
 *        Idempotency-Key and body: 200, the same response), a reused key
 *        (422 idempotency_key_reused) or a duplicate (same channel +
 *        external_ref: 200 with "duplicate":true). Concurrent identical
 *        submissions make one case: the unique constraints decide, the
 *        loser finds the winner's case.
 * @param idem_key Idempotency-Key header (checked) or NULL
 * @param body_sha SHA-256 of the raw request body
 * @returns 0 (see res).
 */
int intake_case_create(intake_worker_t *w, const intake_token_t *tok, const intake_complaint_t *c,
                       const char *idem_key, const uint8_t body_sha[32], intake_result_t *res);

/**
 * @brief GET /v1/cases/{case_no}: staff view (tok set; a handler only sees
 *        its department's cases) or the complainant's view (tok NULL,
 *        access_code checked; a wrong code is the same 404 as an unknown
 *        case). @returns 0 (see res).
 */
int intake_case_get(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                    const char *access_code, intake_result_t *res);

/** @brief GET /v1/cases/{case_no}/history (staff). @returns 0 (see res). */
int intake_case_history(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                        intake_result_t *res);

/**
 * @brief POST /v1/cases/{case_no}/actions: accept or resolve.
 * @param expect_version > 0 from If-Match, 0 for no check
 * @returns 0 (see res).
 */
int intake_case_action(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                       const intake_action_t *a, int64_t expect_version, intake_result_t *res);

/**
 * @brief POST /v1/cases/{case_no}/feedback: the complainant's rating closes
 *        (3-5) or reopens (1-2) a replied case. @returns 0 (see res).
 */
int intake_case_feedback(intake_worker_t *w, const char *case_no, const intake_feedback_t *f,
                         intake_result_t *res);

#endif
