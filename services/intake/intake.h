/*
 * intake: the shared state of the public HTTP door.
 *
 * One intake_app_t per process (settings, PII keys, how to wake the outbox
 * relay); one intake_worker_t per HTTP thread, each with its own PostgreSQL
 * connection, because libpq connections are never shared between threads.
 * A route handler receives its thread's worker as the server's opaque.
 */
#ifndef KESU_INTAKE_H
#define KESU_INTAKE_H

#include <stdint.h>

#include "auth.h"
#include "crypto.h"
#include "pg.h"

/** Producer name of intake's events (outbox rows, case_events.producer). */
#define INTAKE_PRODUCER "intake"

/** Seconds a client is told to wait (Retry-After) while PostgreSQL is unavailable. */
#define INTAKE_RETRY_AFTER_S 5

/** Wrong access codes one case number may take per window before 429. */
#define INTAKE_CODE_FAILURES_MAX 5

/** The access-code throttle window, seconds. */
#define INTAKE_CODE_WINDOW_S 900

/** Least time between two reconnect attempts of one worker while PostgreSQL is down. */
#define INTAKE_RECONNECT_MS 1000

typedef struct intake_app {
    crypto_keys_t keys;   /**< PII keys (pii.key); wiped at exit */
    char case_prefix[16]; /**< case_no.prefix, 1..8 upper-case letters/digits */
    const char *conninfo; /**< libpq conninfo for the workers' connections (borrowed) */
    void (*wake)(
        void *arg); /**< wake the outbox relay after a commit that wrote rows; may be NULL */
    void *wake_arg; /**< its argument (the service) */
    int token_cache_ms; /**< http.token_cache_ms: how long a thread trusts a token it found */
} intake_app_t;

struct event_base;
struct api_group;

typedef struct intake_worker {
    intake_app_t *app;       /**< shared, read-only after start */
    pg_t *pg;                /**< this thread's own connection */
    struct event_base *evb;  /**< this thread's loop (group commit schedules on it) */
    struct api_group *group; /**< submissions waiting for the next group commit, or NULL */
    int64_t next_connect_ms; /**< monotonic ms before which no reconnect is tried */
    int id;                  /**< 0.. http.threads-1, for logs */
    intake_token_cache_t tokens; /**< the tokens this thread found valid lately */
} intake_worker_t;

/**
 * @brief Make sure the worker's connection is usable without blocking the
 *        event loop for long: one immediate reconnect attempt at most every
 *        INTAKE_RECONNECT_MS while PostgreSQL is down.
 * @returns 1 if usable, 0 if not (answer 503 database_unavailable).
 */
int intake_worker_db(intake_worker_t *w);

/**
 * @brief Authenticate a request on the worker (intake_auth_lookup with its
 *        token cache), asking once more after a reconnect when the
 *        connection had dropped.
 * @returns an intake_auth_rc_t; errstr explains INTAKE_AUTH_ERROR.
 */
int intake_worker_auth(intake_worker_t *w, const char *authorization, intake_token_t *tok,
                       char *errstr, size_t errstr_size);

#endif
