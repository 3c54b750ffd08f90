/*
 * kesuctl migrate: numbered SQL files from deploy/migrations/, each applied
 * once in its own transaction and recorded with its checksum in
 * schema_migrations; an advisory lock makes concurrent runs (several
 * containers starting at once) safe. Afterwards the case_transitions table
 * is refilled from the one transition table in common/casefsm.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casefsm.h"
#include "crypto.h"
#include "kesuctl.h"
#include "pg.h"
#include "util.h"

#define MIGRATE_LOCK_KEY "7316001"

static const pg_stmt_t mig_applied = {
    "mig_applied", "SELECT checksum FROM schema_migrations WHERE version = $1", 1};
static const pg_stmt_t mig_record = {
    "mig_record", "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", 2};
static const pg_stmt_t mig_fsm_clear = {"mig_fsm_clear", "DELETE FROM case_transitions", 0};
static const pg_stmt_t mig_fsm_add = {
    "mig_fsm_add", "INSERT INTO case_transitions (from_status, to_status) VALUES ($1, $2)", 2};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)n + 1);
    if (!buf)
        goto out;
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = (size_t)n;
out:
    fclose(f);
    return buf;
}

static int sync_transitions(pg_t *pg, char *errstr, size_t errstr_size)
{
    size_t n;
    const casefsm_transition_t *t = casefsm_table(&n);
    PGresult *res;
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    res = pg_exec_stmt(pg, &mig_fsm_clear, NULL, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        goto err;
    PQclear(res);
    for (size_t i = 0; i < n; i++) {
        const char *v[2] = {casefsm_name(t[i].from), casefsm_name(t[i].to)};
        res = pg_exec_stmt(pg, &mig_fsm_add, v, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res)
            goto err;
        PQclear(res);
    }
    return pg_commit(pg, errstr, errstr_size);
err:
    pg_rollback(pg);
    return -1;
}

int kesuctl_migrate_dir(const char *conninfo, const char *dir, FILE *out, char *errstr,
                        size_t errstr_size)
{
    pg_t *pg = pg_new(conninfo);
    DIR *d = NULL;
    struct dirent *de;
    char *names[512];
    int nnames = 0, applied = 0, rc = -1, locked = 0;

    if (pg_connect(pg, 10000, errstr, errstr_size) != 0)
        goto out;
    if (pg_command(pg,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
                   "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                   errstr, errstr_size) != 0)
        goto out;
    if (pg_command(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", errstr, errstr_size) != 0)
        goto out;
    locked = 1;

    d = opendir(dir);
    if (!d) {
        snprintf(errstr, errstr_size, "cannot open migrations folder %s: %s (set --migrations)",
                 dir, strerror(errno));
        goto out;
    }
    while ((de = readdir(d)) && nnames < 512) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".sql") == 0)
            names[nnames++] = strdup(de->d_name);
    }
    qsort(names, (size_t)nnames, sizeof(names[0]), name_cmp);

    for (int i = 0; i < nnames; i++) {
        char path[4096], hex[65];
        uint8_t sum[32];
        size_t len = 0;
        char *sql;
        PGresult *res;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        sql = read_file(path, &len);
        if (!sql) {
            snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        crypto_sha256(sql, len, sum);
        util_hex(sum, 32, hex);
        const char *av[1] = {names[i]};
        res = pg_exec_stmt(pg, &mig_applied, av, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res) {
            free(sql);
            goto out;
        }
        if (PQntuples(res) == 1) {
            if (strcmp(pg_get(res, 0, "checksum"), hex) != 0)
                fprintf(out,
                        "warning: %s changed after it was applied; migrations are never "
                        "edited, add a new numbered file instead\n",
                        names[i]);
            PQclear(res);
            free(sql);
            continue;
        }
        PQclear(res);
        fprintf(out, "applying %s\n", names[i]);
        fflush(out);
        if (pg_begin(pg, errstr, errstr_size) != 0 ||
            pg_command(pg, sql, errstr, errstr_size) != 0) {
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s: %s", names[i], errstr);
            snprintf(errstr, errstr_size, "%s", tmp);
            pg_rollback(pg);
            free(sql);
            goto out;
        }
        free(sql);
        const char *rv[2] = {names[i], hex};
        res = pg_exec_stmt(pg, &mig_record, rv, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res) {
            pg_rollback(pg);
            goto out;
        }
        PQclear(res);
        if (pg_commit(pg, errstr, errstr_size) != 0)
            goto out;
        applied++;
    }
    if (sync_transitions(pg, errstr, errstr_size) != 0)
        goto out;
    rc = applied;
out:
    if (locked && pg->conn)
        PQclear(PQexec(pg->conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
    if (d)
        closedir(d);
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    pg_destroy(pg);
    return rc;
}

int kesuctl_migrate(kesuctl_t *k)
{
    char errstr[1024];
    int n = kesuctl_migrate_dir(k->pg, k->migrations, stdout, errstr, sizeof(errstr));
    if (n < 0) {
        fprintf(stderr, "kesuctl migrate: %s\n", errstr);
        return 1;
    }
    printf("database is up to date (%d applied now)\n", n);
    return 0;
}
