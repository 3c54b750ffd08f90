/*
 * auth: bearer API tokens. A token's secret is never stored: api_tokens
 * holds its SHA-256, looked up with a prepared statement. Each HTTP thread
 * keeps the tokens it found valid for http.token_cache_ms (decision 0041):
 * a request within that time of its token's last lookup asks the database
 * nothing, so a revocation takes effect within that time; unknown and revoked
 * tokens are never kept. Each token has one role; a handler token also has
 * the department it may see and act on, which the queries put in their WHERE
 * clause.
 */
#ifndef KESU_INTAKE_AUTH_H
#define KESU_INTAKE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "pg.h"

/** Roles as bits, so a route states who may call it as one mask. */
typedef enum {
    INTAKE_ROLE_AGENT = 1 << 0,      /**< hotline / counter staff: submit, read */
    INTAKE_ROLE_HANDLER = 1 << 1,    /**< department staff: own department only */
    INTAKE_ROLE_SUPERVISOR = 1 << 2, /**< supervision office */
    INTAKE_ROLE_AUDITOR = 1 << 3,    /**< read-only */
    INTAKE_ROLE_ADMIN = 1 << 4,      /**< everything */
    INTAKE_ROLE_INTEGRATOR = 1 << 5, /**< other systems: submit only */
} intake_role_t;

/** The staff roles that may read cases and their history. */
#define INTAKE_ROLES_READ                                                                          \
    (INTAKE_ROLE_AGENT | INTAKE_ROLE_HANDLER | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_AUDITOR |      \
     INTAKE_ROLE_ADMIN)

typedef struct intake_token {
    char id[37];          /**< api_tokens.id: the actor recorded in the case history */
    int role;             /**< one intake_role_t bit */
    char role_name[16];   /**< "handler" */
    char department[128]; /**< handler's department, "" for other roles */
} intake_token_t;

typedef enum {
    INTAKE_AUTH_OK = 0,      /**< tok filled */
    INTAKE_AUTH_MISSING = 1, /**< no Authorization header */
    INTAKE_AUTH_INVALID = 2, /**< not "Bearer <token>", unknown or revoked token */
    INTAKE_AUTH_ERROR = -1,  /**< database trouble (pg->sqlstate tells) */
} intake_auth_rc_t;

/** How many tokens a thread keeps (a hotline centre's channels and staff
 *  consoles use a few dozen; more than this only costs lookups). */
#define INTAKE_TOKEN_CACHE_SLOTS 64

/** The tokens one thread found valid lately, by the SHA-256 of the secret. */
typedef struct intake_token_cache {
    struct {
        uint8_t sum[32];
        int64_t until_ms; /**< util_mono_ms() it is trusted until; 0: empty */
        intake_token_t tok;
    } slot[INTAKE_TOKEN_CACHE_SLOTS];
    int ttl_ms; /**< 0: keep nothing, every request asks the database */
} intake_token_cache_t;

/** @brief Role bit for a role name. @returns the bit, or 0 if unknown. */
int intake_role_parse(const char *name);

/**
 * @brief Pick the token out of an Authorization header value: scheme
 *        "Bearer" (any case), one or more spaces, a token of 1..256
 *        visible ASCII characters. @returns 0 with token and len set, or -1.
 */
int intake_auth_bearer(const char *header, const char **token, size_t *len);

/**
 * @brief Authenticate a request by its Authorization header (may be NULL):
 *        from the cache while its entry is fresh, else from api_tokens (a
 *        valid token is then kept for cache->ttl_ms). cache may be NULL.
 * @returns an intake_auth_rc_t; errstr explains INTAKE_AUTH_ERROR.
 */
int intake_auth_lookup(pg_t *pg, intake_token_cache_t *cache, const char *authorization,
                       intake_token_t *tok, char *errstr, size_t errstr_size);

/** @brief The department a query must be scoped to: the handler's, or NULL (all). */
const char *intake_token_scope(const intake_token_t *tok);

#endif
