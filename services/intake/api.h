/*
 * api: what every route file of intake uses (routes.c lists the routes,
 * docs/api/openapi.yaml describes them).
 *
 * A route file (api_cases.c, open311.c, api_sla.c, ...) exports its
 * handlers, prefix api_, declared in its own header and listed one line
 * each in routes.c. A handler is written with API_HANDLER, which times it
 * and counts its status in the per-route metrics:
 *
 *     API_HANDLER(api_sla_get)          // in api_sla.c; api_sla.h declares
 *     {                                 // void api_sla_get(http_req_t *, void *);
 *         intake_token_t tok;
 *         int st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok);
 *         if (st)
 *             return st;                // already replied (401/403/503/500)
 *         if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
 *             return api_fail_db(w, r, "sla", errstr);
 *         ... queries on w->pg, RLS-scoped to tok's department ...
 *         http_reply_json(r, 200, body);
 *         return 200;                   // the status replied
 *     }
 *
 * Inside the body, w is the thread's intake_worker_t and r the request.
 * Every api_fail* and api_reply* call replies and returns the status it
 * replied, so `return api_fail(...)` is the usual last line. A handler that
 * defers its reply (http_req_defer, group commit) returns API_DEFERRED and
 * calls api_observe itself when it replies.
 *
 * Privacy: staff reads and writes run inside api_tx_begin, which switches
 * the transaction to the non-superuser role kesu_api and sets
 * kesu.role / kesu.department, so PostgreSQL row-level security (migration
 * 0005) limits a handler to its department whatever the query says.
 */
#ifndef KESU_INTAKE_API_H
#define KESU_INTAKE_API_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "http.h"
#include "intake.h"
#include "store.h"
#include "util.h"
#include "validate.h"

/** What a handler returns when it deferred its reply (it observes it later). */
#define API_DEFERRED 0

/** Longest case number looked up; anything longer cannot exist. */
#define API_CASE_NO_MAX 64

/**
 * Define an exported route handler `void name(http_req_t *r, void *opaque)`
 * whose body (following the macro) sees `intake_worker_t *w` and
 * `http_req_t *r` and returns the status it replied, or API_DEFERRED.
 */
#define API_HANDLER(name)                                                                          \
    static int name##_body(intake_worker_t *w, http_req_t *r);                                     \
    void name(http_req_t *r, void *opaque)                                                         \
    {                                                                                              \
        int64_t t0_ = util_mono_ms();                                                              \
        int st_ = name##_body((intake_worker_t *)opaque, r);                                       \
        if (st_ != API_DEFERRED)                                                                   \
            api_observe(name, st_, t0_);                                                           \
    }                                                                                              \
    static int name##_body(intake_worker_t *w, http_req_t *r)

/** @brief Register the per-route metrics once, before the HTTP threads start. @returns nothing. */
void intake_metrics_init(void);

/**
 * @brief Count one answered request of the route whose handler is fn
 *        (latency since t0 = util_mono_ms() at arrival, status class).
 *        Lock-free; a handler not in intake_routes is ignored.
 * @returns nothing.
 */
void api_observe(http_handler_fn fn, int status, int64_t t0);

/**
 * @brief Count a complaint submission by what became of it ("created",
 *        "replayed", "duplicate", "key_reused"); others are ignored.
 * @returns nothing.
 */
void api_count_submission(const char *outcome);

/**
 * @brief Authenticate the request's bearer token and check its role is in
 *        roles (a mask of intake_role_t). Reconnects a dropped connection
 *        once.
 * @returns 0 with tok filled when the request may go on, otherwise the
 *          status already replied (401, 403, 503, 500).
 */
int api_authenticate(intake_worker_t *w, http_req_t *r, int roles, intake_token_t *tok);

/**
 * @brief Begin a transaction on w->pg as role kesu_api with kesu.role and
 *        kesu.department set from tok, so row-level security scopes every
 *        statement until commit/rollback: a handler sees its department's
 *        cases (and their history, complainants, timers) only; an auditor
 *        may read but not change. tok NULL is the anonymous public reader
 *        (no token): it sees Open311 requests only (channel open311), and
 *        the route must show only their public columns.
 * @returns 0, or -1 with errstr set (pg->sqlstate tells transient trouble).
 */
int api_tx_begin(intake_worker_t *w, const intake_token_t *tok, char *errstr, size_t errstr_size);

/**
 * @brief Like api_tx_begin for a complainant without a token: only the
 *        case whose access_code_hash is access_hash_hex (SHA-256 of the
 *        normalised code, hex) is visible.
 * @returns 0, or -1 with errstr set.
 */
int api_tx_begin_public(intake_worker_t *w, const char *access_hash_hex, char *errstr,
                        size_t errstr_size);

/**
 * @brief Reply with an error {"error":{"code","field","message"}}; 503
 *        adds Retry-After. field may be NULL.
 * @returns status.
 */
int api_fail(http_req_t *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/**
 * @brief Reply 400 (or e->status when set) with every field error of e:
 *        the first in "error", all of them in "errors".
 * @returns the status.
 */
int api_fail_verr(http_req_t *r, const intake_verr_t *e);

/** Largest JSON body of a single request (the server's http.max_body is sized for batches). */
#define API_JSON_MAX_BODY (256 * 1024)

/**
 * @brief Check the request carries a body of the given media type
 *        ("application/json"; parameters such as charset=utf-8 allowed)
 *        of at most max bytes, and return it.
 * @returns the body (owned by r, *len set), or NULL after replying 415
 *          unsupported_media_type or 413 payload_too_large (*status set).
 */
const char *api_body(http_req_t *r, const char *media_type, size_t max, size_t *len, int *status);

/** @brief Reply 503 database_unavailable with Retry-After. @returns 503. */
int api_fail_db_down(http_req_t *r);

/**
 * @brief Reply for a failed database call: 503 when transient (rolls back
 *        first), else 500 with a LOG_ERROR naming what failed (no PII).
 * @returns the status.
 */
int api_fail_db(intake_worker_t *w, http_req_t *r, const char *what, const char *errstr);

/**
 * @brief Reply with a use case's outcome (store.h), taking its body; wakes
 *        the relay when it wrote outbox rows.
 * @returns the status.
 */
int api_reply_result(intake_worker_t *w, http_req_t *r, intake_result_t *res);

/** @brief Wake the outbox relay after a commit that wrote outbox rows. @returns nothing. */
void api_wake_relay(intake_worker_t *w);

/**
 * @brief The {case_no} capture (capture 0).
 * @returns it, or NULL after replying 404 (*status set) when it cannot be a case number.
 */
const char *api_case_no_param(http_req_t *r, int *status);

#endif
