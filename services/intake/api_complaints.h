/*
 * api_complaints: complaint submission, one at a time and in batches.
 */
#ifndef KESU_INTAKE_API_COMPLAINTS_H
#define KESU_INTAKE_API_COMPLAINTS_H

#include "http.h"

#include "intake.h"

/** @brief POST /v1/complaints (group commit). @returns nothing (replies, maybe later). */
void api_complaints_post(http_req_t *r, void *opaque);

/** @brief POST /v1/complaints/batch (NDJSON). @returns nothing (replies). */
void api_complaints_batch(http_req_t *r, void *opaque);

/**
 * @brief Drop the worker's waiting group (at shutdown, before its server is
 *        freed, which answers the deferred requests 503). @returns nothing.
 */
void api_complaints_worker_stop(intake_worker_t *w);

#endif
