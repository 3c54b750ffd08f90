/*
 * auth: bearer token lookup (see auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "util.h"

static const pg_stmt_t auth_token = {
    "intake_auth_token",
    "SELECT id, role, coalesce(department, '') AS department FROM api_tokens "
    "WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL",
    1};

static const struct {
    const char *name;
    int bit;
} auth_roles[] = {
    {"agent", INTAKE_ROLE_AGENT},           {"handler", INTAKE_ROLE_HANDLER},
    {"supervisor", INTAKE_ROLE_SUPERVISOR}, {"auditor", INTAKE_ROLE_AUDITOR},
    {"admin", INTAKE_ROLE_ADMIN},           {"integrator", INTAKE_ROLE_INTEGRATOR},
};

int intake_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof(auth_roles) / sizeof(auth_roles[0]); i++)
        if (strcmp(auth_roles[i].name, name) == 0)
            return auth_roles[i].bit;
    return 0;
}

int intake_auth_bearer(const char *header, const char **token, size_t *len)
{
    const char *p = header;
    size_t n = 0;
    if (!p)
        return -1;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || p[6] != ' ')
        return -1;
    p += 6;
    while (*p == ' ')
        p++;
    while (p[n] > 0x20 && p[n] < 0x7f)
        n++;
    const char *rest = p + n;
    while (*rest == ' ')
        rest++;
    if (n == 0 || n > 256 || *rest)
        return -1;
    *token = p;
    *len = n;
    return 0;
}

/* the fresh entry for this hash, or NULL */
static const intake_token_t *auth_cached(intake_token_cache_t *c, const uint8_t *sum, int64_t now)
{
    for (int i = 0; c && c->ttl_ms > 0 && i < INTAKE_TOKEN_CACHE_SLOTS; i++)
        if (c->slot[i].until_ms > now && memcmp(c->slot[i].sum, sum, 32) == 0)
            return &c->slot[i].tok;
    return NULL;
}

/* keep a token found valid: in an empty or expired slot (its own, if it had
 * one, is expired: it was not found fresh), else the one that expires first */
static void auth_keep(intake_token_cache_t *c, const uint8_t *sum, const intake_token_t *tok,
                      int64_t now)
{
    int at = 0;
    if (!c || c->ttl_ms <= 0)
        return;
    for (int i = 0; i < INTAKE_TOKEN_CACHE_SLOTS; i++) {
        if (c->slot[i].until_ms <= now) {
            at = i;
            break;
        }
        if (c->slot[i].until_ms < c->slot[at].until_ms)
            at = i;
    }
    memcpy(c->slot[at].sum, sum, 32);
    c->slot[at].tok = *tok;
    c->slot[at].until_ms = now + c->ttl_ms;
}

int intake_auth_lookup(pg_t *pg, intake_token_cache_t *cache, const char *authorization,
                       intake_token_t *tok, char *errstr, size_t errstr_size)
{
    const char *secret;
    size_t len;
    uint8_t sum[32];
    char hex[65];
    int rc = INTAKE_AUTH_INVALID;

    memset(tok, 0, sizeof(*tok));
    if (!authorization)
        return INTAKE_AUTH_MISSING;
    if (intake_auth_bearer(authorization, &secret, &len) != 0)
        return INTAKE_AUTH_INVALID;
    crypto_sha256(secret, len, sum);
    int64_t now = util_mono_ms();
    const intake_token_t *kept = auth_cached(cache, sum, now);
    if (kept) {
        *tok = *kept;
        return INTAKE_AUTH_OK;
    }
    util_hex(sum, sizeof(sum), hex);
    const char *v[1] = {hex};
    PGresult *res = pg_exec_stmt(pg, &auth_token, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return INTAKE_AUTH_ERROR;
    if (PQntuples(res) == 1) {
        tok->role = intake_role_parse(pg_get(res, 0, "role"));
        snprintf(tok->id, sizeof(tok->id), "%s", pg_get(res, 0, "id"));
        snprintf(tok->role_name, sizeof(tok->role_name), "%s", pg_get(res, 0, "role"));
        snprintf(tok->department, sizeof(tok->department), "%s", pg_get(res, 0, "department"));
        /* a handler without a department (the table forbids it) may see nothing */
        if (tok->role && !(tok->role == INTAKE_ROLE_HANDLER && !tok->department[0]))
            rc = INTAKE_AUTH_OK;
    }
    if (rc == INTAKE_AUTH_OK)
        auth_keep(cache, sum, tok, now);
    PQclear(res);
    return rc;
}

const char *intake_token_scope(const intake_token_t *tok)
{
    return tok && tok->role == INTAKE_ROLE_HANDLER ? tok->department : NULL;
}
