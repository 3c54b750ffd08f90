/*
 * pg: one PostgreSQL connection with reconnect, backoff and prepared
 * statements that are re-prepared on every new connection.
 *
 * Statements are declared once as static pg_stmt_t constants at the top of
 * the file that uses them and passed by pointer; pg prepares each lazily on
 * first use on the current connection. Every call checks the result against
 * the one status it expects.
 */
#ifndef KESU_PG_H
#define KESU_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_stmt {
    const char *name; /**< unique statement name */
    const char *sql;  /**< the SQL with $1.. parameters */
    int nparams;      /**< number of parameters */
} pg_stmt_t;

#define PG_MAX_PREPARED 128

typedef struct pg {
    PGconn *conn;                               /**< NULL while disconnected */
    char *conninfo;                             /**< owned */
    const pg_stmt_t *prepared[PG_MAX_PREPARED]; /**< prepared on this connection */
    int prepared_cnt;                           /**< used entries */
    char sqlstate[6];                           /**< SQLSTATE of the last failed call, "" if none */
    int in_tx;                                  /**< 1 between pg_begin and commit/rollback */
    int begin_pending;                          /**< BEGIN goes with the next statement */
    int backoff_ms;                             /**< current reconnect backoff */
    char *session;                              /**< SQL run on every (re)connect, or NULL */
    void *defer; /**< casestore's appends gathered for the open batch (casestore_defer_begin) */
    int outbox_rows; /**< outbox rows the open (or last) transaction wrote: is a relay to wake? */
} pg_t;

/**
 * Settings for a connection that works a queue table (the outbox relay):
 * every statement planned for its parameters and the table's size now. A
 * generic plan made while the table looked empty (vacuum truncates a drained
 * outbox to 0 pages) is a sequential scan, and stays one while a burst grows
 * the table to thousands of pages (decision 0018).
 */
#define PG_SESSION_QUEUE "SET plan_cache_mode = force_custom_plan"

/** @brief Allocate; does not connect. */
pg_t *pg_new(const char *conninfo);

/** @brief SQL to run on every connect and reconnect (a copy is kept); before pg_connect. */
void pg_set_session(pg_t *pg, const char *sql);

/** @brief Close and free (NULL is fine). */
void pg_destroy(pg_t *pg);

/**
 * @brief Connect now, retrying with backoff for up to wait_ms.
 * @returns 0 or -1 with the server's message in errstr.
 */
int pg_connect(pg_t *pg, int wait_ms, char *errstr, size_t errstr_size);

/**
 * @brief Make sure the connection is usable: one reconnect attempt (with the
 *        current backoff delay) if it went bad. @returns 0 or -1.
 */
int pg_ensure(pg_t *pg, char *errstr, size_t errstr_size);

/** @brief Execute a prepared statement; text parameters. */
PGresult *pg_exec_stmt(pg_t *pg, const pg_stmt_t *stmt, const char *const *values,
                       ExecStatusType expect, char *errstr, size_t errstr_size);

/**
 * @brief Execute a prepared statement with explicit lengths and formats
 *        (for bytea parameters). lengths/formats may be NULL.
 * @returns the result (caller PQclear()s) if its status is expect, else NULL
 *          with errstr set and pg->sqlstate filled.
 */
PGresult *pg_exec_stmt_bin(pg_t *pg, const pg_stmt_t *stmt, const char *const *values,
                           const int *lengths, const int *formats, int result_format,
                           ExecStatusType expect, char *errstr, size_t errstr_size);

/**
 * @brief Execute a prepared statement that returns no rows (INSERT, UPDATE,
 *        DELETE without RETURNING) when the caller needs no row count.
 * @returns 0 on PGRES_COMMAND_OK, else -1 with errstr (pg->sqlstate set).
 */
int pg_exec_stmt_cmd(pg_t *pg, const pg_stmt_t *stmt, const char *const *values, char *errstr,
                     size_t errstr_size);

/** @brief Run one parameterless command expecting PGRES_COMMAND_OK. @returns 0 or -1. */
int pg_command(pg_t *pg, const char *sql, char *errstr, size_t errstr_size);

/**
 * @brief Open a transaction. BEGIN does not travel alone: it goes to the
 *        server with the transaction's first statement (one pipeline for a
 *        prepared statement, one query string for pg_command), and a
 *        transaction that ran nothing commits or rolls back without a round
 *        trip. So an error of BEGIN itself (a lost connection) is reported by
 *        that first statement. @returns 0 (or -1 while disconnected).
 */
int pg_begin(pg_t *pg, char *errstr, size_t errstr_size);
int pg_commit(pg_t *pg, char *errstr, size_t errstr_size);
/** @brief Roll back if a transaction is open; never fails loudly. */
void pg_rollback(pg_t *pg);

/**
 * @brief 1 if the last failure was transient (connection lost, server
 *        shutting down, serialization failure, deadlock, too many connections):
 *        retry later rather than treat the input as bad.
 */
int pg_failure_transient(const pg_t *pg);

/*
 * Array parameters: a text array literal for one statement over many rows
 * (`unnest($1::uuid[], $2::text[], ...)`). Start with pg_array_begin, add
 * every element (NULL value: SQL NULL), close with pg_array_end. Elements are
 * quoted and escaped, so any text is safe.
 */
struct strbuf;
void pg_array_begin(struct strbuf *b);
void pg_array_add(struct strbuf *b, const char *value);
/** @brief A bytea element (hex form); NULL data: SQL NULL. */
void pg_array_add_bytea(struct strbuf *b, const uint8_t *data, size_t len);
void pg_array_end(struct strbuf *b);

/*
 * A bytea[] parameter in PostgreSQL's binary array format (sent with format
 * 1): the bytes go as they are. As a text literal each would be hex, quoted
 * in the array syntax and parsed twice by the server — for a batch of
 * envelopes that parsing cost more than the rows' own writing (decision 0036).
 */
void pg_bytea_array_begin(struct strbuf *b);
/** @brief Add one element (data NULL: a NULL element). */
void pg_bytea_array_add(struct strbuf *b, const uint8_t *data, size_t len);

/*
 * Rows gathered for one statement over all of them: an array per column,
 * the statement reading them with unnest($k::type[], ...). Text columns are
 * array literals (pg_array_*); a column filled with pg_rows_bytea is a binary
 * bytea[] (pg_bytea_array_*). The way a stage writes a batch's rows at once
 * (intake's new cases, the history and outbox rows of a consumer batch, the
 * notifier's notices, the archiver's runs and statistics rows). The caller
 * adds every column of a row and counts the rows in n.
 */
#define PG_ROWS_MAX_COLS 24
typedef struct pg_rows {
    struct strbuf *col; /**< ncols arrays */
    int ncols;
    unsigned bin; /**< bit c: column c is a binary bytea[] (its first value was one) */
    size_t n;     /**< rows added (the caller counts) */
} pg_rows_t;

/*
 * A result's rows found by the text of their first column: the case rows a
 * stage reads for a whole batch at once (KC_BATCH_CLAIMED), each taken by the
 * first event of its case; a later event of the same case reads its own, as
 * that first one may have changed the row.
 */
typedef struct pg_keyed {
    PGresult *res; /**< owned; NULL when empty */
    int *rows;     /**< row numbers sorted by key; a taken one as -row - 2 */
    int n;
} pg_keyed_t;

/** @brief Own res (NULL: empty) and sort its rows by column 0. @returns 0, -1 out of memory (k empty). */
int pg_keyed_set(pg_keyed_t *k, PGresult *res);
/** @brief The row whose column 0 is key, marked taken, or -1 (none, or taken already). */
int pg_keyed_take(pg_keyed_t *k, const char *key);
/** @brief The same row without taking it: a look ahead. */
int pg_keyed_find(const pg_keyed_t *k, const char *key);
/** @brief Clear the result and the rows. */
void pg_keyed_clear(pg_keyed_t *k);

/** @brief Start empty with ncols columns (<= PG_ROWS_MAX_COLS). @returns 0, -1 out of memory. */
int pg_rows_init(pg_rows_t *r, int ncols);
/** @brief A text (or NULL) value of column c of the row being added. */
void pg_rows_text(pg_rows_t *r, int c, const char *value);
/** @brief A bytea (or NULL) value of column c of the row being added. */
void pg_rows_bytea(pg_rows_t *r, int c, const uint8_t *data, size_t len);
/**
 * @brief Run stmt with `first` (if not NULL) as $1 and the columns as the
 *        next parameters, then empty the rows (whatever the outcome).
 * @returns the result (PQclear it), or NULL with errstr.
 */
PGresult *pg_rows_exec(pg_t *pg, const pg_stmt_t *stmt, pg_rows_t *r, const char *first,
                       ExecStatusType expect, char *errstr, size_t errstr_size);
/** @brief Forget the rows added, keep the columns. @returns nothing. */
void pg_rows_reset(pg_rows_t *r);
/**
 * @brief Empty rows of ncols columns: made at the first call (r zeroed, as in a
 *        memset struct), emptied at the later ones.
 * @returns 0, -1 out of memory (r has no columns then).
 */
int pg_rows_ready(pg_rows_t *r, int ncols);
/** @brief Free the columns (NULL-safe inside). @returns nothing. */
void pg_rows_free(pg_rows_t *r);

/** @brief Read a column of row 0..n by name; "" for NULL. */
const char *pg_get(const PGresult *res, int row, const char *column);

/** @brief 1 if the named column is NULL in that row (or missing). */
int pg_isnull(const PGresult *res, int row, const char *column);

#endif
