/*
 * kesuctl token create|list|revoke: API tokens are random secrets shown
 * once; PostgreSQL keeps only their SHA-256.
 */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "kesuctl.h"
#include "pg.h"
#include "util.h"

static const pg_stmt_t tok_insert = {
    "tok_insert",
    "INSERT INTO api_tokens (id, token_hash, role, department, label) "
    "VALUES ($1::uuid, decode($2, 'hex'), $3, NULLIF($4, ''), NULLIF($5, ''))",
    5};
static const pg_stmt_t tok_list = {
    "tok_list",
    "SELECT id, role, coalesce(department, '') AS department, coalesce(label, '') AS label, "
    "to_char(created_at, 'YYYY-MM-DD HH24:MI') AS created, "
    "coalesce(to_char(revoked_at, 'YYYY-MM-DD HH24:MI'), '') AS revoked "
    "FROM api_tokens ORDER BY created_at",
    0};
static const pg_stmt_t tok_revoke = {
    "tok_revoke", "UPDATE api_tokens SET revoked_at = now() WHERE id = $1::uuid AND revoked_at IS NULL",
    1};

static const char *const token_roles[] = {"agent",   "handler", "supervisor", "auditor",
                                          "admin",   "integrator", NULL};

/** @brief Create a token; the secret goes to out (size >= 64). @returns 0 or -1. */
static int token_create(pg_t *pg, const char *role, const char *dept, const char *label,
                        char *out, size_t out_size, char *id, char *errstr, size_t errstr_size)
{
    char secret[41], hex[65];
    uint8_t sum[32];
    PGresult *res;
    util_random_code(secret, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    snprintf(out, out_size, "kesu_%s", secret);
    crypto_sha256(out, strlen(out), sum);
    util_hex(sum, 32, hex);
    util_uuid(id);
    const char *v[5] = {id, hex, role, dept ? dept : "", label ? label : ""};
    res = pg_exec_stmt(pg, &tok_insert, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int kesuctl_token(kesuctl_t *k, int argi)
{
    char errstr[512];
    const char *sub = argi < k->cfg.arg_cnt ? k->cfg.args[argi] : NULL;
    pg_t *pg = NULL;
    int rc = 1;

    if (!sub) {
        fprintf(stderr, "usage: kesuctl token create --role ROLE [--department D] [--label L]\n"
                        "       kesuctl token list\n"
                        "       kesuctl token revoke TOKEN_ID\n");
        return 2;
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl token: %s\n", errstr);
        goto out;
    }
    if (strcmp(sub, "create") == 0) {
        int ok = 0;
        char token[64], id[37];
        for (const char *const *r = token_roles; *r; r++)
            ok |= k->role && strcmp(*r, k->role) == 0;
        if (!ok) {
            fprintf(stderr, "kesuctl token create: --role must be one of agent, handler, "
                            "supervisor, auditor, admin, integrator\n");
            rc = 2;
            goto out;
        }
        if (strcmp(k->role, "handler") == 0 && (!k->department || !*k->department)) {
            fprintf(stderr, "kesuctl token create: a handler token needs --department CODE\n");
            rc = 2;
            goto out;
        }
        if (token_create(pg, k->role, k->department, k->label, token, sizeof(token), id, errstr,
                         sizeof(errstr)) != 0) {
            fprintf(stderr, "kesuctl token create: %s\n", errstr);
            goto out;
        }
        fprintf(stderr, "token %s created (role %s); it is shown once, keep it safe\n", id,
                k->role);
        printf("%s\n", token);
        rc = 0;
    } else if (strcmp(sub, "list") == 0) {
        PGresult *res = pg_exec_stmt(pg, &tok_list, NULL, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!res) {
            fprintf(stderr, "kesuctl token list: %s\n", errstr);
            goto out;
        }
        printf("%-36s  %-10s  %-16s  %-16s  %-16s  %s\n", "ID", "ROLE", "DEPARTMENT", "CREATED",
               "REVOKED", "LABEL");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%-36s  %-10s  %-16s  %-16s  %-16s  %s\n", pg_get(res, i, "id"),
                   pg_get(res, i, "role"), pg_get(res, i, "department"),
                   pg_get(res, i, "created"), pg_get(res, i, "revoked"), pg_get(res, i, "label"));
        PQclear(res);
        rc = 0;
    } else if (strcmp(sub, "revoke") == 0) {
        const char *id = argi + 1 < k->cfg.arg_cnt ? k->cfg.args[argi + 1] : NULL;
        if (!id || !util_is_uuid(id)) {
            fprintf(stderr, "kesuctl token revoke: give the token id (a UUID from token list)\n");
            rc = 2;
            goto out;
        }
        const char *v[1] = {id};
        PGresult *res = pg_exec_stmt(pg, &tok_revoke, v, PGRES_COMMAND_OK, errstr, sizeof(errstr));
        if (!res) {
            fprintf(stderr, "kesuctl token revoke: %s\n", errstr);
            goto out;
        }
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            fprintf(stderr, "kesuctl token revoke: no active token %s\n", id);
        } else {
            printf("revoked %s\n", id);
            rc = 0;
        }
        PQclear(res);
    } else {
        fprintf(stderr, "kesuctl token: unknown subcommand \"%s\" (create, list, revoke)\n", sub);
        rc = 2;
    }
out:
    pg_destroy(pg);
    return rc;
}
