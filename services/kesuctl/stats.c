/*
 * kesuctl stats: the statistics of a date range as a readable table (or
 * CSV / JSON), from the same SQL function GET /v1/stats uses (kesu_stats,
 * migration 0009), so the operator's figures are the API's figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kesuctl.h"
#include "pg.h"
#include "util.h"

static const pg_stmt_t st_table = {
    "kesuctl_stats", "SELECT * FROM kesu_stats($1::date, $2::date, $3::text[])", 3};
static const pg_stmt_t st_csv = {
    "kesuctl_stats_csv", "SELECT line FROM kesu_stats_csv($1::date, $2::date, $3::text[])", 3};
static const pg_stmt_t st_json = {
    "kesuctl_stats_json",
    "SELECT COALESCE(json_agg(s), '[]'::json)::text AS doc "
    "FROM kesu_stats($1::date, $2::date, $3::text[]) s",
    3};

static const char *const stats_dims[] = {"day", "department", "category", "channel", "district",
                                         NULL};

/* columns as a terminal shows them: CJK characters take two cells */
static int stats_width(const char *s)
{
    int w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        w += (*p >= 0xE0) ? 2 : 1;
    }
    return w;
}

/* "department,category" -> "{department,category}"; -1 on an unknown name */
static int stats_group(const char *in, char *out, size_t n)
{
    char buf[128];
    size_t len = 1;
    snprintf(buf, sizeof(buf), "%s", in && *in ? in : "day");
    out[0] = '{';
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k;
        for (k = 0; stats_dims[k] && strcmp(stats_dims[k], t) != 0; k++)
            ;
        if (!stats_dims[k])
            return -1;
        len += (size_t)snprintf(out + len, n - len, "%s%s", len > 1 ? "," : "", t);
        if (len >= n)
            return -1;
    }
    snprintf(out + len, n - len, "}");
    return 0;
}

/* the grouped dimensions and every figure, aligned; a dimension not grouped is left out */
static void stats_print_table(const PGresult *res, const char *group)
{
    int nf = PQnfields(res), nr = PQntuples(res);
    int *w = calloc((size_t)nf, sizeof(int)), *show = calloc((size_t)nf, sizeof(int));
    for (int f = 0; f < nf; f++) {
        const char *name = PQfname(res, f);
        int dim = 0;
        for (int k = 0; stats_dims[k]; k++)
            dim |= strcmp(stats_dims[k], name) == 0;
        show[f] = !dim || strstr(group, name) != NULL;
        w[f] = stats_width(name);
        for (int r = 0; r < nr; r++) {
            int cw = stats_width(PQgetisnull(res, r, f) ? "-" : PQgetvalue(res, r, f));
            if (cw > w[f])
                w[f] = cw;
        }
    }
    int last = 0;
    for (int f = 0; f < nf; f++)
        if (show[f])
            last = f;
    for (int r = -1; r < nr; r++) {
        for (int f = 0; f < nf; f++) {
            if (!show[f])
                continue;
            const char *v = r < 0 ? PQfname(res, f)
                                  : PQgetisnull(res, r, f) ? "-" : PQgetvalue(res, r, f);
            printf("%s%*s", v, f == last ? 0 : w[f] - stats_width(v) + 2, "");
        }
        printf("\n");
    }
    if (nr == 0)
        printf("(no cases in this range)\n");
    free(w);
    free(show);
}

int kesuctl_stats(kesuctl_t *k)
{
    char group[96], errstr[512];
    const char *fmt = k->format && *k->format ? k->format : "table";
    pg_t *pg = NULL;
    PGresult *res = NULL;
    int rc = 1;
    if (!k->from || !*k->from) {
        fprintf(stderr, "kesuctl: stats needs --from YYYY-MM-DD [--to YYYY-MM-DD] "
                        "[--group_by day,department,category,channel,district] "
                        "[--format table|csv|json]\n");
        return 2;
    }
    if (stats_group(k->group_by, group, sizeof(group)) != 0) {
        fprintf(stderr, "kesuctl: --group_by takes day, department, category, channel, "
                        "district (comma-separated)\n");
        return 2;
    }
    if (strcmp(fmt, "table") != 0 && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
        fprintf(stderr, "kesuctl: --format is table, csv or json\n");
        return 2;
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    const char *v[3] = {k->from, k->to && *k->to ? k->to : k->from, group};
    const pg_stmt_t *st = strcmp(fmt, "csv") == 0    ? &st_csv
                          : strcmp(fmt, "json") == 0 ? &st_json
                                                     : &st_table;
    res = pg_exec_stmt(pg, st, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    if (st == &st_table) {
        printf("statistics %s .. %s (Asia/Shanghai), by %.*s\n", v[0], v[1],
               (int)strlen(group) - 2, group + 1);
        stats_print_table(res, group);
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            printf("%s\n", PQgetvalue(res, i, 0));
    }
    rc = 0;
out:
    PQclear(res);
    pg_destroy(pg);
    return rc;
}
