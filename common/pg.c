/*
 * pg: libpq connection management. One pg_t per thread; libpq connections
 * are not shared between threads.
 */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000

pg_t *pg_new(const char *conninfo)
{
    pg_t *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return NULL;
    pg->conninfo = strdup(conninfo ? conninfo : "");
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    return pg;
}

void pg_set_session(pg_t *pg, const char *sql)
{
    free(pg->session);
    pg->session = sql ? strdup(sql) : NULL;
}

/* Every Kesu session runs without JIT compilation (decision 0033): a
 * statement whose estimated cost passes jit_above_cost (the console's
 * department tile, a month of statistics) spent ~0.5 s compiling for a query
 * that runs in 70 ms, on every call; none of Kesu's statements gains from it. */
#define PG_SESSION_FIXED "SET jit = off"

/* the session settings; a connection that refuses them is not used */
static int pg_apply_session(pg_t *pg, char *errstr, size_t errstr_size)
{
    strbuf_t q;
    strbuf_init(&q);
    strbuf_appendf(&q, "%s%s%s", PG_SESSION_FIXED, pg->session ? "; " : "",
                   pg->session ? pg->session : "");
    PGresult *res = PQexec(pg->conn, q.s);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(errstr, errstr_size, "session settings (%s) refused: %s", q.s,
                 PQresultErrorMessage(res));
    PQclear(res);
    strbuf_free(&q);
    return ok ? 0 : -1;
}

void pg_destroy(pg_t *pg)
{
    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    free(pg->session);
    free(pg->conninfo);
    free(pg);
}

static int pg_connect_once(pg_t *pg, char *errstr, size_t errstr_size)
{
    if (pg->conn)
        PQfinish(pg->conn);
    pg->prepared_cnt = 0;
    pg->in_tx = 0;
    pg->begin_pending = 0;
    /* the conninfo as given (keywords or a URI), and unless it names one,
     * the service as application_name: pg_stat_activity and the server log
     * tell the services apart */
    char app[80];
    snprintf(app, sizeof(app), "kesu-%s", log_service_name());
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {pg->conninfo, app, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "cannot connect to PostgreSQL: %s",
                 PQerrorMessage(pg->conn));
        /* strip libpq's trailing newline */
        size_t n = strlen(errstr);
        while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
            errstr[--n] = '\0';
        PQfinish(pg->conn);
        pg->conn = NULL;
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "08006");
        return -1;
    }
    if (pg_apply_session(pg, errstr, errstr_size) != 0) {
        PQfinish(pg->conn);
        pg->conn = NULL;
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "08006");
        return -1;
    }
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    pg->sqlstate[0] = '\0';
    return 0;
}

int pg_connect(pg_t *pg, int wait_ms, char *errstr, size_t errstr_size)
{
    int64_t deadline = util_mono_ms() + wait_ms;
    int delay = PG_BACKOFF_MIN_MS;
    for (;;) {
        if (pg_connect_once(pg, errstr, errstr_size) == 0)
            return 0;
        if (util_mono_ms() + delay > deadline)
            return -1;
        util_sleep_ms(delay);
        delay = delay * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : delay * 2;
    }
}

int pg_ensure(pg_t *pg, char *errstr, size_t errstr_size)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    if (pg->conn) {
        PQreset(pg->conn);
        pg->prepared_cnt = 0;
        pg->in_tx = 0;
        pg->begin_pending = 0;
        if (PQstatus(pg->conn) == CONNECTION_OK &&
            pg_apply_session(pg, errstr, errstr_size) == 0) {
            LOG_INFO("reconnected to PostgreSQL");
            return 0;
        }
    }
    util_sleep_ms(pg->backoff_ms);
    if (pg_connect_once(pg, errstr, errstr_size) == 0) {
        LOG_INFO("reconnected to PostgreSQL");
        return 0;
    }
    pg->backoff_ms = pg->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : pg->backoff_ms * 2;
    return -1;
}

static void pg_fail(pg_t *pg, const PGresult *res, const char *what, char *errstr,
                    size_t errstr_size)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = pg->conn ? PQerrorMessage(pg->conn) : "not connected";
    if (state)
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", state);
    else if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK)
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "08006");
    else
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "XX000");
    snprintf(errstr, errstr_size, "%s: %s", what, msg);
    size_t n = strlen(errstr);
    while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
        errstr[--n] = '\0';
}

static int pg_prepare(pg_t *pg, const pg_stmt_t *stmt, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < pg->prepared_cnt; i++)
        if (pg->prepared[i] == stmt)
            return 0;
    if (!pg->conn) {
        pg_fail(pg, NULL, stmt->name, errstr, errstr_size);
        return -1;
    }
    PGresult *res = PQprepare(pg->conn, stmt->name, stmt->sql, stmt->nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_fail(pg, res, stmt->name, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (pg->prepared_cnt < PG_MAX_PREPARED)
        pg->prepared[pg->prepared_cnt++] = stmt;
    return 0;
}

/* a connection whose protocol state we no longer know is dropped: the
 * caller sees a transient failure and pg_ensure connects afresh */
static void pg_drop(pg_t *pg)
{
    PQfinish(pg->conn);
    pg->conn = NULL;
    pg->prepared_cnt = 0;
    pg->in_tx = 0;
    pg->begin_pending = 0;
}

/* the next result of a pipeline and the NULL that ends it */
static PGresult *pg_pipeline_result(PGconn *conn)
{
    PGresult *res = PQgetResult(conn);
    if (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PGresult *end = PQgetResult(conn);
        PQclear(end);
    }
    return res;
}

/*
 * BEGIN and the transaction's first statement in one pipeline (one round
 * trip). Returns the statement's result as PQexecPrepared would; if BEGIN
 * failed, BEGIN's error (the statement was not run).
 */
static PGresult *pg_exec_begin_pipelined(pg_t *pg, const pg_stmt_t *stmt,
                                         const char *const *values, const int *lengths,
                                         const int *formats, int result_format)
{
    PGconn *c = pg->conn;
    PGresult *begin = NULL, *res = NULL, *sync = NULL;
    if (!PQenterPipelineMode(c)) {
        pg_drop(pg);
        return NULL;
    }
    int sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
               PQsendQueryPrepared(c, stmt->name, stmt->nparams, values, lengths, formats,
                                   result_format) &&
               PQpipelineSync(c);
    if (sent) {
        begin = pg_pipeline_result(c);
        res = pg_pipeline_result(c);
        sync = pg_pipeline_result(c);
    }
    int clean = sent && begin && res && sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC &&
                PQexitPipelineMode(c);
    PQclear(sync);
    if (!clean) {
        /* report the first error there is; the connection goes */
        PGresult *err = NULL;
        if (begin && PQresultStatus(begin) != PGRES_COMMAND_OK) {
            err = begin;
            begin = NULL;
        } else {
            err = res;
            res = NULL;
        }
        PQclear(begin);
        PQclear(res);
        pg_drop(pg);
        return err;
    }
    if (PQresultStatus(begin) != PGRES_COMMAND_OK) {
        PQclear(res); /* PGRES_PIPELINE_ABORTED: never ran */
        return begin;
    }
    PQclear(begin);
    return res;
}

PGresult *pg_exec_stmt_bin(pg_t *pg, const pg_stmt_t *stmt, const char *const *values,
                           const int *lengths, const int *formats, int result_format,
                           ExecStatusType expect, char *errstr, size_t errstr_size)
{
    if (pg_prepare(pg, stmt, errstr, errstr_size) != 0)
        return NULL;
    PGresult *res;
    if (pg->begin_pending) {
        pg->begin_pending = 0;
        res = pg_exec_begin_pipelined(pg, stmt, values, lengths, formats, result_format);
    } else {
        res = PQexecPrepared(pg->conn, stmt->name, stmt->nparams, values, lengths, formats,
                             result_format);
    }
    if (PQresultStatus(res) != expect) {
        pg_fail(pg, res, stmt->name, errstr, errstr_size);
        PQclear(res);
        return NULL;
    }
    pg->sqlstate[0] = '\0';
    return res;
}

PGresult *pg_exec_stmt(pg_t *pg, const pg_stmt_t *stmt, const char *const *values,
                       ExecStatusType expect, char *errstr, size_t errstr_size)
{
    return pg_exec_stmt_bin(pg, stmt, values, NULL, NULL, 0, expect, errstr, errstr_size);
}

int pg_exec_stmt_cmd(pg_t *pg, const pg_stmt_t *stmt, const char *const *values, char *errstr,
                     size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, stmt, values, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int pg_command(pg_t *pg, const char *sql, char *errstr, size_t errstr_size)
{
    if (!pg->conn) {
        pg_fail(pg, NULL, sql, errstr, errstr_size);
        return -1;
    }
    PGresult *res;
    if (pg->begin_pending) {
        /* one query string: a BEGIN in it opens a block that outlives it */
        strbuf_t q;
        strbuf_init(&q);
        strbuf_appendf(&q, "BEGIN; %s", sql);
        pg->begin_pending = 0;
        res = PQexec(pg->conn, q.s);
        strbuf_free(&q);
    } else {
        res = PQexec(pg->conn, sql);
    }
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        pg_fail(pg, res, sql, errstr, errstr_size);
    PQclear(res);
    return ok ? 0 : -1;
}

int pg_begin(pg_t *pg, char *errstr, size_t errstr_size)
{
    if (!pg->conn) {
        pg_fail(pg, NULL, "BEGIN", errstr, errstr_size);
        return -1;
    }
    if (!pg->in_tx) {
        pg->begin_pending = 1;
        pg->outbox_rows = 0;
    }
    pg->in_tx = 1;
    return 0;
}

int pg_commit(pg_t *pg, char *errstr, size_t errstr_size)
{
    if (pg->begin_pending) {
        pg->begin_pending = 0; /* nothing ran: nothing to commit */
        pg->in_tx = 0;
        return 0;
    }
    if (!pg->conn) {
        pg_fail(pg, NULL, "COMMIT", errstr, errstr_size);
        return -1;
    }
    PGresult *res = PQexec(pg->conn, "COMMIT");
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    /* COMMIT of an aborted transaction answers ROLLBACK: that is a failure */
    if (ok && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(errstr, errstr_size, "COMMIT: transaction was aborted");
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "25P02");
        ok = 0;
    } else if (!ok) {
        pg_fail(pg, res, "COMMIT", errstr, errstr_size);
    }
    PQclear(res);
    pg->in_tx = 0;
    return ok ? 0 : -1;
}

void pg_rollback(pg_t *pg)
{
    pg->begin_pending = 0;
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK &&
        PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(pg->conn, "ROLLBACK");
        PQclear(res);
    }
    pg->in_tx = 0;
}

int pg_failure_transient(const pg_t *pg)
{
    const char *s = pg->sqlstate;
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK)
        return 1;
    return strncmp(s, "08", 2) == 0 ||   /* connection exception */
           strcmp(s, "40001") == 0 ||    /* serialization failure */
           strcmp(s, "40P01") == 0 ||    /* deadlock */
           strncmp(s, "53", 2) == 0 ||   /* insufficient resources */
           strncmp(s, "57P", 3) == 0 ||  /* operator intervention: shutdown */
           strcmp(s, "55P03") == 0;      /* lock not available */
}

const char *pg_get(const PGresult *res, int row, const char *column)
{
    int col = PQfnumber(res, column);
    if (col < 0 || row >= PQntuples(res) || PQgetisnull(res, row, col))
        return "";
    return PQgetvalue(res, row, col);
}

int pg_isnull(const PGresult *res, int row, const char *column)
{
    int col = PQfnumber(res, column);
    return col < 0 || row >= PQntuples(res) || PQgetisnull(res, row, col);
}

void pg_array_begin(strbuf_t *b)
{
    strbuf_init(b);
    strbuf_append(b, "{", 1);
}

static void pg_array_sep(strbuf_t *b)
{
    if (b->len > 1)
        strbuf_append(b, ",", 1);
}

void pg_array_add(strbuf_t *b, const char *value)
{
    pg_array_sep(b);
    if (!value) {
        strbuf_append(b, "NULL", 4);
        return;
    }
    strbuf_append(b, "\"", 1);
    for (const char *p = value; *p;) {
        size_t run = strcspn(p, "\"\\");
        strbuf_append(b, p, run);
        p += run;
        if (*p) {
            strbuf_append(b, "\\", 1);
            strbuf_append(b, p, 1);
            p++;
        }
    }
    strbuf_append(b, "\"", 1);
}

void pg_array_add_bytea(strbuf_t *b, const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    pg_array_sep(b);
    if (!data) {
        strbuf_append(b, "NULL", 4);
        return;
    }
    strbuf_append(b, "\"\\\\x", 4); /* "\\x: an escaped backslash, then x */
    for (size_t i = 0; i < len; i++) {
        char two[2] = {hex[data[i] >> 4], hex[data[i] & 15]};
        strbuf_append(b, two, 2);
    }
    strbuf_append(b, "\"", 1);
}

void pg_array_end(strbuf_t *b)
{
    strbuf_append(b, "}", 1);
}

/* the header: ndim, has-null flag, element type, then the dimension's length
 * and lower bound, all big-endian int32 */
enum { PG_BIN_FLAGS = 4, PG_BIN_DIM = 12, PG_BIN_HEADER = 20 };
#define PG_BYTEA_OID 17

static void pg_put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t pg_get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void pg_bytea_array_begin(strbuf_t *b)
{
    char h[PG_BIN_HEADER];
    pg_put32(h, 1);
    pg_put32(h + PG_BIN_FLAGS, 0);
    pg_put32(h + 8, PG_BYTEA_OID);
    pg_put32(h + PG_BIN_DIM, 0);
    pg_put32(h + 16, 1);
    strbuf_init(b);
    strbuf_append(b, h, sizeof(h));
}

void pg_bytea_array_add(strbuf_t *b, const uint8_t *data, size_t len)
{
    char n[4];
    pg_put32(n, data ? (uint32_t)len : 0xffffffffu);
    strbuf_append(b, n, 4);
    if (data)
        strbuf_append(b, (const char *)data, len);
    else
        pg_put32(b->s + PG_BIN_FLAGS, 1);
    pg_put32(b->s + PG_BIN_DIM, pg_get32(b->s + PG_BIN_DIM) + 1);
}

int pg_rows_init(pg_rows_t *r, int ncols)
{
    r->n = 0;
    r->bin = 0;
    r->ncols = ncols > 0 && ncols <= PG_ROWS_MAX_COLS ? ncols : 0;
    r->col = r->ncols ? calloc((size_t)r->ncols, sizeof(*r->col)) : NULL;
    if (!r->col) {
        r->ncols = 0;
        return -1;
    }
    for (int c = 0; c < r->ncols; c++)
        pg_array_begin(&r->col[c]);
    return 0;
}

void pg_rows_text(pg_rows_t *r, int c, const char *value)
{
    if (c >= 0 && c < r->ncols)
        pg_array_add(&r->col[c], value);
}

void pg_rows_bytea(pg_rows_t *r, int c, const uint8_t *data, size_t len)
{
    if (c < 0 || c >= r->ncols)
        return;
    if (!(r->bin & 1u << c) && r->col[c].len == 1) { /* still "{": the column goes binary */
        strbuf_free(&r->col[c]);
        pg_bytea_array_begin(&r->col[c]);
        r->bin |= 1u << c;
    }
    if (r->bin & 1u << c)
        pg_bytea_array_add(&r->col[c], data, len);
    else
        pg_array_add_bytea(&r->col[c], data, len);
}

void pg_rows_reset(pg_rows_t *r)
{
    for (int c = 0; c < r->ncols; c++) {
        strbuf_free(&r->col[c]);
        if (r->bin & 1u << c)
            pg_bytea_array_begin(&r->col[c]);
        else
            pg_array_begin(&r->col[c]);
    }
    r->n = 0;
}

int pg_rows_ready(pg_rows_t *r, int ncols)
{
    if (!r->col)
        return pg_rows_init(r, ncols);
    pg_rows_reset(r);
    return 0;
}

PGresult *pg_rows_exec(pg_t *pg, const pg_stmt_t *stmt, pg_rows_t *r, const char *first,
                       ExecStatusType expect, char *errstr, size_t errstr_size)
{
    const char *v[PG_ROWS_MAX_COLS + 1];
    int len[PG_ROWS_MAX_COLS + 1] = {0}, fmt[PG_ROWS_MAX_COLS + 1] = {0};
    int o = 0;
    if (first)
        v[o++] = first;
    for (int c = 0; c < r->ncols; c++) {
        if (r->bin & 1u << c) {
            len[o + c] = (int)r->col[c].len;
            fmt[o + c] = 1;
        } else {
            pg_array_end(&r->col[c]);
        }
        v[o + c] = r->col[c].s;
    }
    PGresult *res = pg_exec_stmt_bin(pg, stmt, v, len, fmt, 0, expect, errstr, errstr_size);
    pg_rows_reset(r);
    return res;
}

void pg_rows_free(pg_rows_t *r)
{
    for (int c = 0; c < r->ncols; c++)
        strbuf_free(&r->col[c]);
    free(r->col);
    r->col = NULL;
    r->ncols = 0;
    r->bin = 0;
    r->n = 0;
}

/* the sort's result: qsort has no argument for it, and one thread sorts at a time per process
 * (each service's consumer loop is its thread's own; the comparison only reads) */
static __thread const PGresult *pg_keyed_sorting;

static int pg_keyed_cmp(const void *a, const void *b)
{
    return strcmp(PQgetvalue(pg_keyed_sorting, *(const int *)a, 0),
                  PQgetvalue(pg_keyed_sorting, *(const int *)b, 0));
}

int pg_keyed_set(pg_keyed_t *k, PGresult *res)
{
    pg_keyed_clear(k);
    if (!res)
        return 0;
    int n = PQntuples(res);
    k->rows = malloc((size_t)(n ? n : 1) * sizeof(*k->rows));
    if (!k->rows) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < n; i++)
        k->rows[i] = i;
    pg_keyed_sorting = res;
    qsort(k->rows, (size_t)n, sizeof(*k->rows), pg_keyed_cmp);
    pg_keyed_sorting = NULL;
    k->res = res;
    k->n = n;
    return 0;
}

/* the place in k->rows of key's row (taken or not), or -1 */
static int pg_keyed_slot(const pg_keyed_t *k, const char *key)
{
    int lo = 0, hi = k->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int r = k->rows[mid];
        /* a taken row keeps its place: its key is still in the result */
        int c = strcmp(PQgetvalue(k->res, r < 0 ? -r - 2 : r, 0), key);
        if (c < 0)
            lo = mid + 1;
        else if (c > 0)
            hi = mid;
        else
            return mid;
    }
    return -1;
}

int pg_keyed_take(pg_keyed_t *k, const char *key)
{
    int at = pg_keyed_slot(k, key);
    int r = at < 0 ? -1 : k->rows[at];
    if (r < 0)
        return -1;
    k->rows[at] = -r - 2;
    return r;
}

int pg_keyed_find(const pg_keyed_t *k, const char *key)
{
    int at = pg_keyed_slot(k, key);
    return at < 0 || k->rows[at] < 0 ? -1 : k->rows[at];
}

void pg_keyed_clear(pg_keyed_t *k)
{
    PQclear(k->res);
    free(k->rows);
    k->res = NULL;
    k->rows = NULL;
    k->n = 0;
}
