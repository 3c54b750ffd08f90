/*
 * kesuctl catalogue load|check [FILE]: check a dispatch catalogue with the
 * dispatcher's own loader and, for load, store it in PostgreSQL as a new
 * version together with its departments and handlers (one transaction).
 * Running dispatchers pick the version up on their next tick: no restart.
 * Errors name the file, the line and the JSON path of the mistake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "dispatch_catalogue.h"
#include "kesuctl.h"
#include "pg.h"
#include "util.h"

static const pg_stmt_t cat_insert = {
    "cat_insert",
    "INSERT INTO dispatch_catalogue (document, source, sha256, rules) "
    "VALUES ($1::jsonb, $2, $3, $4::integer) RETURNING version",
    4};

/* "FILE: rules[3].department: ..." -> "FILE:LINE: rules[3].department: ..." */
static void cat_print_error(const char *file, const char *text, const char *err)
{
    size_t flen = strlen(file);
    if (text && strncmp(err, file, flen) == 0 && strncmp(err + flen, ": ", 2) == 0) {
        const char *path = err + flen + 2;
        char p[256];
        size_t n = strcspn(path, ": ");
        snprintf(p, sizeof(p), "%.*s", (int)(n < sizeof(p) ? n : sizeof(p) - 1), path);
        int line = dispatch_json_line(text, p);
        if (line > 0) {
            fprintf(stderr, "kesuctl: %s:%d: %s\n", file, line, path);
            return;
        }
    }
    fprintf(stderr, "kesuctl: %s\n", err);
}

static char *cat_read(const char *path, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot open", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < 64 * 1024 * 1024 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
        snprintf(errstr, errstr_size, "%s: cannot read", path);
    }
    fclose(f);
    return buf;
}

int kesuctl_catalogue(kesuctl_t *k, int load)
{
    char errstr[1024], file[4096], dpath[4096], sum_hex[65], nrules[16];
    const char *arg = k->cfg.arg_cnt > 2 ? k->cfg.args[2] : "deploy/config/catalogue.json";
    char **domains = NULL, *text = NULL;
    dispatch_catalogue_t *cat = NULL;
    pg_t *pg = NULL;
    PGresult *res = NULL;
    size_t len = 0;
    uint8_t sum[32];
    int rc = 1;

    config_resolve_path(arg, file, sizeof(file));
    config_resolve_path(k->domains && *k->domains ? k->domains : "deploy/config/domains.json",
                        dpath, sizeof(dpath));
    if (!(domains = dispatch_domains_load(dpath, errstr, sizeof(errstr)))) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    if (!(text = cat_read(file, &len, errstr, sizeof(errstr)))) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    cat = dispatch_catalogue_parse(text, file, (const char *const *)domains, errstr,
                                   sizeof(errstr));
    if (!cat) {
        cat_print_error(file, text, errstr);
        goto out;
    }
    printf("%s: ok: %zu departments, %zu handlers, %zu rules, emergency desk %s, supervision "
           "%s\n",
           file, cat->ndepts, cat->nhandlers, cat->nrules, cat->emergency_desk->code,
           cat->supervision ? cat->supervision->code : "(default rule's department)");
    if (!load) {
        rc = 0;
        goto out;
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0 ||
        pg_begin(pg, errstr, sizeof(errstr)) != 0 ||
        dispatch_catalogue_write(pg, cat, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    crypto_sha256(text, len, sum);
    util_hex(sum, 32, sum_hex);
    snprintf(nrules, sizeof(nrules), "%zu", cat->nrules);
    const char *v[4] = {text, file, sum_hex, nrules};
    res = pg_exec_stmt(pg, &cat_insert, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res || pg_commit(pg, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    printf("catalogue version %s loaded; dispatchers switch on their next tick\n",
           pg_get(res, 0, "version"));
    rc = 0;
out:
    PQclear(res);
    if (pg)
        pg_rollback(pg);
    pg_destroy(pg);
    dispatch_catalogue_free(cat);
    dispatch_codes_free(domains);
    free(text);
    return rc;
}
