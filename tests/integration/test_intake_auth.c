/*
 * Integration: intake's token lookup and the per-thread token cache
 * (decision 0041) against the real PostgreSQL.
 *
 * A valid token found once is trusted from the cache until its time is up,
 * even after it is revoked meanwhile; then the database is asked again and
 * the revocation shows. An unknown or revoked token is never kept: one made
 * valid again is accepted at once. Without a cache (ttl 0, or none) a
 * revocation shows on the next lookup. More tokens than slots: each still
 * gets its own role and department. A handler token keeps its department.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "crypto.h"
#include "itest.h"
#include "util.h"

static pg_t *pg;

/* a new token (id to id, Authorization header value to authz) */
static void make_token(const char *role, const char *dept, char *id, char *authz, size_t n)
{
    char secret[40], hex[65];
    uint8_t sum[32];
    util_random_code(secret, 32, "abcdefghijklmnopqrstuvwxyz0123456789");
    crypto_sha256(secret, strlen(secret), sum);
    util_hex(sum, 32, hex);
    util_uuid(id);
    const char *v[4] = {id, hex, role, dept};
    PGresult *res = itest_qv(pg,
                             "INSERT INTO api_tokens (id, token_hash, role, department, label) "
                             "VALUES ($1::uuid, decode($2, 'hex'), $3, $4, 'test_intake_auth')",
                             4, v);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    snprintf(authz, n, "Bearer %s", secret);
}

static void set_revoked(const char *id, int revoked)
{
    PGresult *res = itest_q(pg,
                            revoked ? "UPDATE api_tokens SET revoked_at = now() WHERE id = $1"
                                    : "UPDATE api_tokens SET revoked_at = NULL WHERE id = $1",
                            id);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* an empty cache that keeps tokens for ttl_ms */
static intake_token_cache_t *new_cache(int ttl_ms)
{
    intake_token_cache_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->ttl_ms = ttl_ms;
    return c;
}

static int lookup(intake_token_cache_t *c, const char *authz, intake_token_t *tok)
{
    char err[256];
    return intake_auth_lookup(pg, c, authz, tok, err, sizeof(err));
}

static void test_kept_until_time_is_up(void **state)
{
    (void)state;
    char id[37], authz[64];
    intake_token_t tok;
    intake_token_cache_t *c = new_cache(400);
    make_token("agent", NULL, id, authz, sizeof(authz));
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_OK);
    assert_string_equal(tok.id, id);
    assert_int_equal(tok.role, INTAKE_ROLE_AGENT);

    int64_t revoked_at = util_mono_ms();
    set_revoked(id, 1);
    /* trusted from the cache meanwhile: the database is not asked */
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_OK);
    assert_string_equal(tok.id, id);
    assert_int_equal(lookup(NULL, authz, &tok), INTAKE_AUTH_INVALID); /* no cache: refused */
    /* the revocation shows once the time is up, and not much later */
    int rc = INTAKE_AUTH_OK;
    while (rc == INTAKE_AUTH_OK && util_mono_ms() - revoked_at < 3000) {
        util_sleep_ms(20);
        rc = lookup(c, authz, &tok);
    }
    assert_int_equal(rc, INTAKE_AUTH_INVALID);
    assert_true(util_mono_ms() - revoked_at >= 300);
    free(c);
}

static void test_refusals_not_kept(void **state)
{
    (void)state;
    char id[37], authz[64];
    intake_token_t tok;
    intake_token_cache_t *c = new_cache(60000);
    make_token("supervisor", NULL, id, authz, sizeof(authz));
    set_revoked(id, 1);
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_INVALID);
    set_revoked(id, 0);
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_OK); /* at once */
    assert_int_equal(tok.role, INTAKE_ROLE_SUPERVISOR);
    assert_int_equal(lookup(c, "Bearer no-such-token", &tok), INTAKE_AUTH_INVALID);
    assert_int_equal(lookup(c, NULL, &tok), INTAKE_AUTH_MISSING);
    assert_int_equal(lookup(c, "Basic abc", &tok), INTAKE_AUTH_INVALID);

    /* ttl 0 keeps nothing */
    c->ttl_ms = 0;
    make_token("agent", NULL, id, authz, sizeof(authz));
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_OK);
    set_revoked(id, 1);
    assert_int_equal(lookup(c, authz, &tok), INTAKE_AUTH_INVALID);
    free(c);
}

/* more tokens than slots, looked up twice round: each answer is its own */
static void test_more_tokens_than_slots(void **state)
{
    (void)state;
    enum { N = INTAKE_TOKEN_CACHE_SLOTS + 8 };
    char(*ids)[37] = calloc(N, sizeof(*ids));
    char(*authz)[64] = calloc(N, sizeof(*authz));
    char dept[N][16];
    intake_token_t tok;
    intake_token_cache_t *c = new_cache(60000);
    assert_non_null(ids);
    assert_non_null(authz);
    for (int i = 0; i < N; i++) {
        snprintf(dept[i], sizeof(dept[i]), "d%02d", i);
        make_token("handler", dept[i], ids[i], authz[i], sizeof(authz[i]));
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            assert_int_equal(lookup(c, authz[i], &tok), INTAKE_AUTH_OK);
            assert_string_equal(tok.id, ids[i]);
            assert_int_equal(tok.role, INTAKE_ROLE_HANDLER);
            assert_string_equal(tok.department, dept[i]);
            assert_string_equal(intake_token_scope(&tok), dept[i]);
        }
    free(ids);
    free(authz);
    free(c);
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQclear(PQexec(pg->conn, "DELETE FROM api_tokens WHERE label = 'test_intake_auth'"));
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_until_time_is_up),
        cmocka_unit_test(test_refusals_not_kept),
        cmocka_unit_test(test_more_tokens_than_slots),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
