/*
 * store: intake's use cases over the case store (see store.h).
 *
 * Personal data never reaches a case or an event in clear: free text
 * (title, body, address, reply, comment) is masked with crypto_mask_text
 * before it is stored, and contact data is encrypted into complainants with
 * a blind index of the phone number. The access code is kept as a SHA-256
 * (to check it) and encrypted (so an idempotent replay can repeat it).
 *
 * Race safety of submissions rests on the unique constraints, not on a
 * read-then-write: idempotency_keys.key and cases (channel, external_ref).
 * A concurrent twin blocks on the index until the first transaction ends,
 * then fails with 23505; it rolls back and finds the winner's case.
 */
#include "store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "crypto.h"
#include "kafka.h"
#include "log.h"
#include "proto.h"
#include "util.h"

/* RFC 3339 UTC with milliseconds, whatever the session time zone. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * Case numbers count days in China Standard Time (a hotline's day), and the
 * sequence part grows past 7 digits rather than wrapping (lpad would cut).
 */
static const pg_stmt_t st_case_insert = {
    "intake_case_insert",
    "WITH n AS (SELECT nextval('case_no_seq') AS v) "
    "INSERT INTO cases (id, case_no, access_code_hash, access_code_enc, channel, external_ref, "
    "title, body, language, address, district_code, lat, lon, anonymous, confidential, "
    "complainant_id, trace_id) "
    "SELECT $1::uuid, $2 || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || '-' || "
    "lpad(n.v::text, greatest(7, length(n.v::text)), '0'), $3::bytea, $4::bytea, $5, $6, $7, $8, "
    "$9, $10, $11, $12::double precision, $13::double precision, $14::boolean, $15::boolean, "
    "$16::uuid, $17 FROM n "
    "RETURNING case_no, " TS("created_at") " AS created_at",
    17};

static const pg_stmt_t st_complainant_insert = {
    "intake_complainant_insert",
    "INSERT INTO complainants (id, name_enc, phone_enc, email_enc, id_no_enc, phone_index, "
    "phone_last4, phone_mask, webhook_url) VALUES ($1::uuid, $2::bytea, $3::bytea, $4::bytea, "
    "$5::bytea, $6::bytea, $7, $8, $9)",
    9};

static const pg_stmt_t st_idem_insert = {
    "intake_idem_insert",
    "INSERT INTO idempotency_keys (key, request_hash, case_id) VALUES ($1, decode($2, 'hex'), "
    "$3::uuid)",
    3};

static const pg_stmt_t st_idem_get = {
    "intake_idem_get",
    "SELECT encode(i.request_hash, 'hex') AS request_hash, c.id, c.case_no, "
    "encode(c.access_code_enc, 'hex') AS access_code_enc, " TS(
        "c.created_at") " AS created_at "
                        "FROM idempotency_keys i JOIN cases c ON c.id = i.case_id WHERE i.key = $1",
    1};

static const pg_stmt_t st_ref_get = {
    "intake_ref_get",
    "SELECT id, case_no, status, version, encode(access_code_enc, 'hex') AS access_code_enc, " TS(
        "created_at") " AS created_at FROM cases WHERE channel = $1 AND external_ref = $2",
    2};

/* The columns both case views read; the WHERE clause decides who sees what. */
#define CASE_COLUMNS                                                                                                      \
    "SELECT c.id, c.case_no, c.status, c.version, c.channel, c.external_ref, c.title, c.body, "                           \
    "c.language, " TS("c.created_at") " AS created_at, " TS(                                                              \
        "c.updated_at") " AS updated_at, "                                                                                \
                        "c.address, c.district_code, c.lat, c.lon, c.anonymous, c.confidential, "                         \
                        "c.domain, "                                                                                      \
                        "c.request_type, c.category, c.urgency, array_to_json(c.flags) AS flags, "                        \
                        "c.confidence, "                                                                                  \
                        "c.needs_review, c.classified_at IS NOT NULL AS classified, "                                     \
                        "c.department, c.handler, "                                                                       \
                        "array_to_json(c.co_departments) AS co_departments, " TS("c.assigned_at") " AS assigned_at, " TS( \
                            "c.accepted_at") " AS accepted_at, " TS("c.resolved_at") " AS "                               \
                                                                                     "resolved_"                          \
                                                                                     "at, "                               \
                                                                                     "c.measures,"                        \
                                                                                     " "                                  \
                                                                                     "c.reply, "                          \
                                                                                     "c."                                 \
                                                                                     "satisfactio"                        \
                                                                                     "n, "                                \
                                                                                     "c.feedback_"                        \
                                                                                     "comment,"                           \
                                                                                     " " TS(                              \
                                                                                         "c."                             \
                                                                                         "closed_"                        \
                                                                                         "at") " "                        \
                                                                                               "A"                        \
                                                                                               "S"                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "l"                        \
                                                                                               "o"                        \
                                                                                               "s"                        \
                                                                                               "e"                        \
                                                                                               "d"                        \
                                                                                               "_"                        \
                                                                                               "a"                        \
                                                                                               "t"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "."                        \
                                                                                               "c"                        \
                                                                                               "l"                        \
                                                                                               "o"                        \
                                                                                               "s"                        \
                                                                                               "e"                        \
                                                                                               "_"                        \
                                                                                               "r"                        \
                                                                                               "e"                        \
                                                                                               "a"                        \
                                                                                               "s"                        \
                                                                                               "o"                        \
                                                                                               "n"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "."                        \
                                                                                               "r"                        \
                                                                                               "e"                        \
                                                                                               "o"                        \
                                                                                               "p"                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "_"                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "u"                        \
                                                                                               "n"                        \
                                                                                               "t"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "p"                        \
                                                                                               "."                        \
                                                                                               "i"                        \
                                                                                               "d"                        \
                                                                                               " "                        \
                                                                                               "I"                        \
                                                                                               "S"                        \
                                                                                               " "                        \
                                                                                               "N"                        \
                                                                                               "O"                        \
                                                                                               "T"                        \
                                                                                               " "                        \
                                                                                               "N"                        \
                                                                                               "U"                        \
                                                                                               "L"                        \
                                                                                               "L"                        \
                                                                                               " "                        \
                                                                                               "A"                        \
                                                                                               "S"                        \
                                                                                               " "                        \
                                                                                               "h"                        \
                                                                                               "a"                        \
                                                                                               "s"                        \
                                                                                               "_"                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "m"                        \
                                                                                               "p"                        \
                                                                                               "l"                        \
                                                                                               "a"                        \
                                                                                               "i"                        \
                                                                                               "n"                        \
                                                                                               "a"                        \
                                                                                               "n"                        \
                                                                                               "t"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "d"                        \
                                                                                               "e"                        \
                                                                                               "("                        \
                                                                                               "p"                        \
                                                                                               "."                        \
                                                                                               "n"                        \
                                                                                               "a"                        \
                                                                                               "m"                        \
                                                                                               "e"                        \
                                                                                               "_"                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "'"                        \
                                                                                               "h"                        \
                                                                                               "e"                        \
                                                                                               "x"                        \
                                                                                               "'"                        \
                                                                                               ")"                        \
                                                                                               " "                        \
                                                                                               "A"                        \
                                                                                               "S"                        \
                                                                                               " "                        \
                                                                                               "n"                        \
                                                                                               "a"                        \
                                                                                               "m"                        \
                                                                                               "e"                        \
                                                                                               "_"                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "d"                        \
                                                                                               "e"                        \
                                                                                               "("                        \
                                                                                               "p"                        \
                                                                                               "."                        \
                                                                                               "e"                        \
                                                                                               "m"                        \
                                                                                               "a"                        \
                                                                                               "i"                        \
                                                                                               "l"                        \
                                                                                               "_"                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "'"                        \
                                                                                               "h"                        \
                                                                                               "e"                        \
                                                                                               "x"                        \
                                                                                               "'"                        \
                                                                                               ")"                        \
                                                                                               " "                        \
                                                                                               "A"                        \
                                                                                               "S"                        \
                                                                                               " "                        \
                                                                                               "e"                        \
                                                                                               "m"                        \
                                                                                               "a"                        \
                                                                                               "i"                        \
                                                                                               "l"                        \
                                                                                               "_"                        \
                                                                                               "e"                        \
                                                                                               "n"                        \
                                                                                               "c"                        \
                                                                                               ","                        \
                                                                                               " "                        \
                                                                                               "p"                        \
                                                                                               "."                        \
                                                                                               "p"                        \
                                                                                               "h"                        \
                                                                                               "o"                        \
                                                                                               "n"                        \
                                                                                               "e"                        \
                                                                                               "_"                        \
                                                                                               "m"                        \
                                                                                               "a"                        \
                                                                                               "s"                        \
                                                                                               "k"                        \
                                                                                               " "                        \
                                                                                               "F"                        \
                                                                                               "R"                        \
                                                                                               "O"                        \
                                                                                               "M"                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "a"                        \
                                                                                               "s"                        \
                                                                                               "e"                        \
                                                                                               "s"                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               " "                        \
                                                                                               "L"                        \
                                                                                               "E"                        \
                                                                                               "F"                        \
                                                                                               "T"                        \
                                                                                               " "                        \
                                                                                               "J"                        \
                                                                                               "O"                        \
                                                                                               "I"                        \
                                                                                               "N"                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "m"                        \
                                                                                               "p"                        \
                                                                                               "l"                        \
                                                                                               "a"                        \
                                                                                               "i"                        \
                                                                                               "n"                        \
                                                                                               "a"                        \
                                                                                               "n"                        \
                                                                                               "t"                        \
                                                                                               "s"                        \
                                                                                               " "                        \
                                                                                               "p"                        \
                                                                                               " "                        \
                                                                                               "O"                        \
                                                                                               "N"                        \
                                                                                               " "                        \
                                                                                               "p"                        \
                                                                                               "."                        \
                                                                                               "i"                        \
                                                                                               "d"                        \
                                                                                               " "                        \
                                                                                               "="                        \
                                                                                               " "                        \
                                                                                               "c"                        \
                                                                                               "."                        \
                                                                                               "c"                        \
                                                                                               "o"                        \
                                                                                               "m"                        \
                                                                                               "p"                        \
                                                                                               "l"                        \
                                                                                               "a"                        \
                                                                                               "i"                        \
                                                                                               "n"                        \
                                                                                               "a"                        \
                                                                                               "n"                        \
                                                                                               "t"                        \
                                                                                               "_"                        \
                                                                                               "i"                        \
                                                                                               "d"                        \
                                                                                               " "

/* A handler's token carries its department: $2 scopes the query to it (NULL: all). */
static const pg_stmt_t st_case_staff = {
    "intake_case_staff",
    CASE_COLUMNS "WHERE c.case_no = $1 AND ($2::text IS NULL OR c.department = $2::text)", 2};

static const pg_stmt_t st_case_public = {
    "intake_case_public",
    CASE_COLUMNS "WHERE c.case_no = $1 AND c.access_code_hash = decode($2, 'hex')", 2};

static const pg_stmt_t st_history = {
    "intake_history",
    "SELECT c.case_no, e.seq, e.event_id, e.event_type, e.status, e.version, e.producer, "
    "e.actor, " TS("e.occurred_at") " AS occurred_at, e.summary::text AS summary "
                                    "FROM cases c JOIN case_events e ON e.case_id = c.id "
                                    "WHERE c.case_no = $1 AND ($2::text IS NULL OR c.department = "
                                    "$2::text) ORDER BY e.seq",
    2};

static const pg_stmt_t st_action_lock = {
    "intake_action_lock",
    "SELECT id, case_no, status, version, coalesce(department, '') AS department, "
    "coalesce(handler, '') AS handler FROM cases "
    "WHERE case_no = $1 AND ($2::text IS NULL OR department = $2::text) FOR UPDATE",
    2};

static const pg_stmt_t st_accepted = {
    "intake_accepted", "UPDATE cases SET accepted_at = now() WHERE id = $1::uuid", 1};

static const pg_stmt_t st_resolved = {
    "intake_resolved",
    "UPDATE cases SET measures = $2, reply = $3, resolved_at = now() WHERE id = $1::uuid", 3};

static const pg_stmt_t st_feedback_lock = {
    "intake_feedback_lock",
    "SELECT id, case_no, status, version FROM cases "
    "WHERE case_no = $1 AND access_code_hash = decode($2, 'hex') FOR UPDATE",
    2};

static const pg_stmt_t st_feedback_set = {
    "intake_feedback_set",
    "UPDATE cases SET satisfaction = $2::smallint, feedback_comment = $3 WHERE id = $1::uuid", 3};

static const pg_stmt_t st_closed = {
    "intake_closed", "UPDATE cases SET closed_at = now(), close_reason = $2 WHERE id = $1::uuid",
    2};

static const pg_stmt_t st_reopen_count = {
    "intake_reopen_count",
    "UPDATE cases SET reopen_count = reopen_count + 1 WHERE id = $1::uuid RETURNING reopen_count",
    1};

static const char *const from_assigned[] = {"assigned", NULL};
static const char *const from_accepted[] = {"accepted", "in_progress", NULL};
static const char *const from_replied[] = {"replied", NULL};

void intake_result_clear(intake_result_t *res)
{
    if (!res)
        return;
    json_decref(res->body);
    res->body = NULL;
}

static int res_error(intake_result_t *res, int status, const char *code, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int res_error(intake_result_t *res, int status, const char *code, const char *field,
                     const char *fmt, ...)
{
    va_list ap;
    intake_result_clear(res);
    res->status = status;
    res->code = code;
    res->field = field;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    return 0;
}

/*
 * A failed statement: roll back and answer 503 when PostgreSQL is away (the
 * client retries), 500 otherwise. Only the first line of the server's
 * message is logged: DETAIL lines can quote row values.
 */
static int res_db(intake_worker_t *w, intake_result_t *res, const char *what, const char *errstr)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", errstr ? errstr : "");
    line[strcspn(line, "\n")] = '\0';
    pg_rollback(w->pg);
    if (pg_failure_transient(w->pg)) {
        LOG_WARN("%s: database unavailable (sqlstate %s): %s", what, w->pg->sqlstate, line);
        return res_error(res, 503, "database_unavailable", NULL,
                         "the case store is unavailable; retry in %d seconds",
                         INTAKE_RETRY_AFTER_S);
    }
    LOG_ERROR("%s failed (sqlstate %s): %s", what, w->pg->sqlstate, line);
    return res_error(res, 500, "internal", NULL, "internal error; it has been logged");
}

static void res_etag(intake_result_t *res, int64_t version)
{
    snprintf(res->etag, sizeof(res->etag), "\"%" PRId64 "\"", version);
}

/* Decrypt a hex-encoded ciphertext column; NULL if absent or undecryptable. */
static char *decrypt_hex(const intake_app_t *app, const char *hex)
{
    char errstr[128];
    size_t n = strlen(hex), out_len = 0;
    uint8_t *bin = NULL, *plain = NULL;
    if (n == 0 || n % 2)
        return NULL;
    bin = malloc(n / 2);
    if (!bin)
        return NULL;
    int len = util_unhex(hex, bin, n / 2);
    if (len > 0 && crypto_decrypt(&app->keys, bin, (size_t)len, &plain, &out_len, errstr,
                                  sizeof(errstr)) != 0) {
        LOG_WARN("cannot decrypt a stored value: %s (was pii.key changed?)", errstr);
        plain = NULL;
    }
    free(bin);
    return (char *)plain;
}

/* The submission answer: 201 for a new case, 200 for a replay or duplicate. */
static void create_answer(intake_result_t *res, int status, const char *case_id,
                          const char *case_no, const char *access_code, const char *case_status,
                          int64_t version, const char *created_at, int duplicate)
{
    intake_result_clear(res);
    res->status = status;
    res->body = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:s}", "case_id", case_id, "case_no", case_no,
                          "access_code", access_code, "status", case_status, "version",
                          (json_int_t)version, "created_at", created_at);
    if (res->body && duplicate)
        json_object_set_new(res->body, "duplicate", json_true());
    snprintf(res->location, sizeof(res->location), "/v1/cases/%s", case_no);
    res_etag(res, version);
}

/*
 * Is this submission one we already have? 1: answered (replay, reused key
 * or duplicate), 0: new, -1: database error (res filled).
 */
static int create_lookup(intake_worker_t *w, const intake_complaint_t *c, const char *idem_key,
                         const char *body_hex, intake_result_t *res)
{
    char errstr[512];
    PGresult *pr = NULL;
    int rc = 0;
    char *code = NULL;

    if (idem_key) {
        const char *v[1] = {idem_key};
        pr = pg_exec_stmt(w->pg, &st_idem_get, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!pr) {
            res_db(w, res, "idempotency key lookup", errstr);
            return -1;
        }
        if (PQntuples(pr) == 1) {
            if (strcmp(pg_get(pr, 0, "request_hash"), body_hex) != 0) {
                res_error(res, 422, "idempotency_key_reused", "Idempotency-Key",
                          "this Idempotency-Key was already used for a different request body; "
                          "use a new key for a new submission");
            } else {
                /* the same request again: the same answer, as first given */
                code = decrypt_hex(w->app, pg_get(pr, 0, "access_code_enc"));
                create_answer(res, 200, pg_get(pr, 0, "id"), pg_get(pr, 0, "case_no"), code,
                              "received", 1, pg_get(pr, 0, "created_at"), 0);
                res->outcome = "replayed";
            }
            rc = 1;
            goto out;
        }
        PQclear(pr);
        pr = NULL;
    }
    if (c->external_ref) {
        const char *v[2] = {c->channel, c->external_ref};
        pr = pg_exec_stmt(w->pg, &st_ref_get, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!pr) {
            res_db(w, res, "external_ref lookup", errstr);
            return -1;
        }
        if (PQntuples(pr) == 1) {
            code = decrypt_hex(w->app, pg_get(pr, 0, "access_code_enc"));
            create_answer(res, 200, pg_get(pr, 0, "id"), pg_get(pr, 0, "case_no"), code,
                          pg_get(pr, 0, "status"), strtoll(pg_get(pr, 0, "version"), NULL, 10),
                          pg_get(pr, 0, "created_at"), 1);
            res->outcome = "duplicate";
            rc = 1;
        }
    }
out:
    free(code);
    PQclear(pr);
    return rc;
}

/* Encrypted copy of s (NULL if s is NULL); *len gets its size. -1 on failure. */
static int encrypt_opt(const intake_app_t *app, const char *s, uint8_t **out, int *len,
                       char *errstr, size_t errstr_size)
{
    size_t n = 0;
    *out = NULL;
    *len = 0;
    if (!s)
        return 0;
    if (crypto_encrypt(&app->keys, (const uint8_t *)s, strlen(s), out, &n, errstr, errstr_size) !=
        0)
        return -1;
    *len = (int)n;
    return 0;
}

/* Everything one new case needs that is computed before the transaction. */
typedef struct create_data {
    char case_id[37], complainant_id[37], trace_id[37];
    char access_code[INTAKE_ACCESS_CODE_LEN + 1];
    uint8_t code_hash[32];
    uint8_t *code_enc;
    int code_enc_len;
    char *title, *body, *address; /* masked */
    uint8_t *name_enc, *phone_enc, *email_enc, *id_enc;
    int name_len, phone_len, email_len, id_len;
    uint8_t phone_index[32];
    char last4[8], phone_mask[32];
    char lat[32], lon[32];
} create_data_t;

static void create_data_free(create_data_t *d)
{
    free(d->code_enc);
    free(d->title);
    free(d->body);
    free(d->address);
    free(d->name_enc);
    free(d->phone_enc);
    free(d->email_enc);
    free(d->id_enc);
    memset(d->access_code, 0, sizeof(d->access_code));
}

static int create_prepare(const intake_app_t *app, const intake_complaint_t *c, create_data_t *d,
                          char *errstr, size_t errstr_size)
{
    memset(d, 0, sizeof(*d));
    util_uuid(d->case_id);
    util_uuid(d->trace_id);
    util_random_code(d->access_code, INTAKE_ACCESS_CODE_LEN, INTAKE_ACCESS_CODE_ALPHABET);
    crypto_sha256(d->access_code, INTAKE_ACCESS_CODE_LEN, d->code_hash);
    if (encrypt_opt(app, d->access_code, &d->code_enc, &d->code_enc_len, errstr, errstr_size) != 0)
        return -1;
    d->title = crypto_mask_text(c->title);
    d->body = crypto_mask_text(c->body);
    d->address = c->address ? crypto_mask_text(c->address) : NULL;
    if (!d->title || !d->body || (c->address && !d->address)) {
        snprintf(errstr, errstr_size, "out of memory masking text");
        return -1;
    }
    if (c->has_coordinates) {
        snprintf(d->lat, sizeof(d->lat), "%.17g", c->lat);
        snprintf(d->lon, sizeof(d->lon), "%.17g", c->lon);
    }
    if (!c->has_complainant)
        return 0;
    util_uuid(d->complainant_id);
    if (encrypt_opt(app, c->name, &d->name_enc, &d->name_len, errstr, errstr_size) != 0 ||
        encrypt_opt(app, c->phone_norm[0] ? c->phone_norm : NULL, &d->phone_enc, &d->phone_len,
                    errstr, errstr_size) != 0 ||
        encrypt_opt(app, c->email, &d->email_enc, &d->email_len, errstr, errstr_size) != 0 ||
        encrypt_opt(app, c->id_number, &d->id_enc, &d->id_len, errstr, errstr_size) != 0)
        return -1;
    if (c->phone_norm[0]) {
        size_t n = strlen(c->phone_norm);
        crypto_blind_index(&app->keys, c->phone_norm, d->phone_index);
        snprintf(d->last4, sizeof(d->last4), "%s", c->phone_norm + (n > 4 ? n - 4 : 0));
        crypto_mask_phone(c->phone_norm, d->phone_mask, sizeof(d->phone_mask));
    }
    return 0;
}

/*
 * The insert transaction. 0: created (res filled), 1: a unique constraint
 * said someone else got there first (rolled back; look again), -1: error.
 */
static int create_insert(intake_worker_t *w, const intake_token_t *tok, const intake_complaint_t *c,
                         const char *idem_key, const char *body_hex, intake_result_t *res)
{
    char errstr[512];
    create_data_t d;
    PGresult *pr = NULL;
    int rc = -1;
    proto_env_t pe;
    casestore_result_t out;
    char case_no[64], created_at[40];

    if (create_prepare(w->app, c, &d, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("cannot prepare a new case: %s", errstr);
        res_error(res, 500, "internal", NULL, "internal error; it has been logged");
        goto out;
    }
    if (pg_begin(w->pg, errstr, sizeof(errstr)) != 0)
        goto db;

    if (c->has_complainant) {
        int has_phone = c->phone_norm[0] != '\0';
        const char *v[9] = {d.complainant_id,
                            (const char *)d.name_enc,
                            (const char *)d.phone_enc,
                            (const char *)d.email_enc,
                            (const char *)d.id_enc,
                            has_phone ? (const char *)d.phone_index : NULL,
                            has_phone ? d.last4 : NULL,
                            has_phone ? d.phone_mask : NULL,
                            c->callback_url};
        const int len[9] = {0, d.name_len, d.phone_len, d.email_len, d.id_len, 32, 0, 0, 0};
        const int fmt[9] = {0, 1, 1, 1, 1, 1, 0, 0, 0};
        pr = pg_exec_stmt_bin(w->pg, &st_complainant_insert, v, len, fmt, 0, PGRES_COMMAND_OK,
                              errstr, sizeof(errstr));
        if (!pr)
            goto db;
        PQclear(pr);
        pr = NULL;
    }
    {
        const char *v[17] = {d.case_id,
                             w->app->case_prefix,
                             (const char *)d.code_hash,
                             (const char *)d.code_enc,
                             c->channel,
                             c->external_ref,
                             d.title,
                             d.body,
                             c->language,
                             d.address,
                             c->district_code,
                             c->has_coordinates ? d.lat : NULL,
                             c->has_coordinates ? d.lon : NULL,
                             c->anonymous ? "true" : "false",
                             c->confidential ? "true" : "false",
                             c->has_complainant ? d.complainant_id : NULL,
                             d.trace_id};
        int len[17] = {0};
        int fmt[17] = {0};
        len[2] = 32;
        fmt[2] = 1;
        len[3] = d.code_enc_len;
        fmt[3] = 1;
        pr = pg_exec_stmt_bin(w->pg, &st_case_insert, v, len, fmt, 0, PGRES_TUPLES_OK, errstr,
                              sizeof(errstr));
        if (!pr)
            goto db;
        snprintf(case_no, sizeof(case_no), "%s", pg_get(pr, 0, "case_no"));
        snprintf(created_at, sizeof(created_at), "%s", pg_get(pr, 0, "created_at"));
        PQclear(pr);
        pr = NULL;
    }
    if (idem_key) {
        const char *v[3] = {idem_key, body_hex, d.case_id};
        pr = pg_exec_stmt(w->pg, &st_idem_insert, v, PGRES_COMMAND_OK, errstr, sizeof(errstr));
        if (!pr)
            goto db;
        PQclear(pr);
        pr = NULL;
    }
    {
        Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
        Kesu__V1__Location loc = KESU__V1__LOCATION__INIT;
        cr.channel = (char *)c->channel;
        cr.external_ref = (char *)(c->external_ref ? c->external_ref : "");
        cr.title = d.title;
        cr.body = d.body;
        cr.language = (char *)c->language;
        cr.anonymous = c->anonymous;
        cr.confidential = c->confidential;
        cr.has_contact = c->phone || c->email || c->callback_url;
        if (d.address || c->district_code || c->has_coordinates) {
            loc.address = d.address ? d.address : "";
            loc.district_code = (char *)(c->district_code ? c->district_code : "");
            loc.has_coordinates = c->has_coordinates;
            loc.lat = c->has_coordinates ? c->lat : 0;
            loc.lon = c->has_coordinates ? c->lon : 0;
            cr.location = &loc;
        }
        proto_env_init(&pe, INTAKE_PRODUCER);
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
        int crc = casestore_append(w->pg, d.case_id, INTAKE_PRODUCER, tok->id, KAFKA_TOPIC_INTAKE,
                                   &pe, &out, errstr, sizeof(errstr));
        if (crc != CASESTORE_OK)
            goto db;
    }
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        goto db;

    log_ctx_set(d.case_id, pe.event_id, NULL, -1, -1);
    LOG_INFO("case %s received (channel %s)", case_no, c->channel);
    log_ctx_clear();
    create_answer(res, 201, d.case_id, case_no, d.access_code, "received", 1, created_at, 0);
    res->outcome = "created";
    res->wrote_outbox = 1;
    rc = 0;
    goto out;
db:
    if (strcmp(w->pg->sqlstate, "23505") == 0) {
        pg_rollback(w->pg);
        rc = 1;
        goto out;
    }
    res_db(w, res, "case insert", errstr);
out:
    PQclear(pr);
    create_data_free(&d);
    return rc;
}

int intake_case_create(intake_worker_t *w, const intake_token_t *tok, const intake_complaint_t *c,
                       const char *idem_key, const uint8_t body_sha[32], intake_result_t *res)
{
    char body_hex[65];
    util_hex(body_sha, 32, body_hex);
    /* a few rounds: look, insert; a unique violation means look again */
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = create_lookup(w, c, idem_key, body_hex, res);
        if (rc != 0)
            return 0;
        rc = create_insert(w, tok, c, idem_key, body_hex, res);
        if (rc != 1)
            return 0;
    }
    return res_error(res, 409, "concurrent_submission",
                     idem_key ? "Idempotency-Key" : "external_ref",
                     "an identical submission is being processed right now; retry shortly");
}

/* ---------------------------------------------------------------- reads */

static json_t *col_str(const PGresult *pr, const char *col)
{
    return pg_isnull(pr, 0, col) ? json_null() : json_string(pg_get(pr, 0, col));
}

static json_t *col_num(const PGresult *pr, const char *col)
{
    return pg_isnull(pr, 0, col) ? json_null() : json_real(strtod(pg_get(pr, 0, col), NULL));
}

static json_t *col_int(const PGresult *pr, const char *col)
{
    return pg_isnull(pr, 0, col) ? json_null()
                                 : json_integer(strtoll(pg_get(pr, 0, col), NULL, 10));
}

static json_t *col_bool(const PGresult *pr, const char *col)
{
    return json_boolean(strcmp(pg_get(pr, 0, col), "t") == 0);
}

static json_t *col_json(const PGresult *pr, const char *col)
{
    json_t *j = pg_isnull(pr, 0, col) ? NULL : json_loads(pg_get(pr, 0, col), 0, NULL);
    return j ? j : json_array();
}

/* "explanation,compensation" -> ["explanation","compensation"], NULL -> null */
static json_t *col_measures(const PGresult *pr)
{
    if (pg_isnull(pr, 0, "measures"))
        return json_null();
    json_t *a = json_array();
    const char *s = pg_get(pr, 0, "measures");
    while (*s) {
        size_t n = strcspn(s, ",");
        json_array_append_new(a, json_stringn(s, n));
        s += n + (s[n] == ',');
    }
    return a;
}

typedef enum { VIEW_STAFF, VIEW_HANDLER, VIEW_COMPLAINANT } case_view_t;

/* The complainant's contact data, masked; NULL when the case has none. */
static json_t *case_complainant(const intake_app_t *app, const PGresult *pr)
{
    char buf[512];
    if (strcmp(pg_get(pr, 0, "has_complainant"), "t") != 0)
        return json_null();
    json_t *o = json_object();
    char *name = decrypt_hex(app, pg_get(pr, 0, "name_enc"));
    char *email = decrypt_hex(app, pg_get(pr, 0, "email_enc"));
    if (name) {
        intake_mask_name(name, buf, sizeof(buf));
        json_object_set_new(o, "name", json_string(buf));
    } else {
        json_object_set_new(o, "name", json_null());
    }
    json_object_set_new(o, "phone_mask", col_str(pr, "phone_mask"));
    if (email) {
        intake_mask_email(email, buf, sizeof(buf));
        json_object_set_new(o, "email", json_string(buf));
    } else {
        json_object_set_new(o, "email", json_null());
    }
    /* decrypted only to be masked: wipe the clear text now */
    if (name)
        memset(name, 0, strlen(name));
    if (email)
        memset(email, 0, strlen(email));
    free(name);
    free(email);
    return o;
}

static json_t *case_json(const intake_app_t *app, const PGresult *pr, case_view_t view)
{
    int staff = view != VIEW_COMPLAINANT;
    json_t *o = json_object();
    if (staff)
        json_object_set_new(o, "case_id", col_str(pr, "id"));
    json_object_set_new(o, "case_no", col_str(pr, "case_no"));
    json_object_set_new(o, "status", col_str(pr, "status"));
    json_object_set_new(o, "version", col_int(pr, "version"));
    json_object_set_new(o, "channel", col_str(pr, "channel"));
    if (staff)
        json_object_set_new(o, "external_ref", col_str(pr, "external_ref"));
    json_object_set_new(o, "title", col_str(pr, "title"));
    json_object_set_new(o, "body", col_str(pr, "body"));
    json_object_set_new(o, "language", col_str(pr, "language"));
    json_object_set_new(o, "created_at", col_str(pr, "created_at"));
    json_object_set_new(o, "updated_at", col_str(pr, "updated_at"));

    if (pg_isnull(pr, 0, "address") && pg_isnull(pr, 0, "district_code") &&
        pg_isnull(pr, 0, "lat")) {
        json_object_set_new(o, "location", json_null());
    } else {
        json_object_set_new(o, "location",
                            json_pack("{s:o, s:o, s:o, s:o}", "address", col_str(pr, "address"),
                                      "district_code", col_str(pr, "district_code"), "lat",
                                      col_num(pr, "lat"), "lon", col_num(pr, "lon")));
    }
    json_object_set_new(o, "anonymous", col_bool(pr, "anonymous"));
    json_object_set_new(o, "confidential", col_bool(pr, "confidential"));

    if (strcmp(pg_get(pr, 0, "classified"), "t") != 0) {
        json_object_set_new(o, "classification", json_null());
    } else if (staff) {
        json_object_set_new(
            o, "classification",
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "domain", col_str(pr, "domain"),
                      "request_type", col_str(pr, "request_type"), "category",
                      col_str(pr, "category"), "urgency", col_str(pr, "urgency"), "flags",
                      col_json(pr, "flags"), "confidence", col_num(pr, "confidence"),
                      "needs_review", col_bool(pr, "needs_review")));
    } else {
        /* flags (self-harm, corruption, ...) and model internals are staff-only */
        json_object_set_new(o, "classification",
                            json_pack("{s:o, s:o}", "request_type", col_str(pr, "request_type"),
                                      "category", col_str(pr, "category")));
    }

    if (pg_isnull(pr, 0, "department")) {
        json_object_set_new(o, "assignment", json_null());
    } else if (staff) {
        json_object_set_new(o, "assignment",
                            json_pack("{s:o, s:o, s:o, s:o}", "department",
                                      col_str(pr, "department"), "handler", col_str(pr, "handler"),
                                      "co_departments", col_json(pr, "co_departments"),
                                      "assigned_at", col_str(pr, "assigned_at")));
    } else {
        json_object_set_new(o, "assignment",
                            json_pack("{s:o, s:o, s:o}", "department", col_str(pr, "department"),
                                      "co_departments", col_json(pr, "co_departments"),
                                      "assigned_at", col_str(pr, "assigned_at")));
    }
    json_object_set_new(o, "accepted_at", col_str(pr, "accepted_at"));
    json_object_set_new(o, "resolved_at", col_str(pr, "resolved_at"));
    json_object_set_new(o, "measures", col_measures(pr));
    json_object_set_new(o, "reply", col_str(pr, "reply"));
    json_object_set_new(o, "satisfaction", col_int(pr, "satisfaction"));
    json_object_set_new(o, "feedback_comment", col_str(pr, "feedback_comment"));
    json_object_set_new(o, "closed_at", col_str(pr, "closed_at"));
    json_object_set_new(o, "close_reason", col_str(pr, "close_reason"));
    if (staff)
        json_object_set_new(o, "reopen_count", col_int(pr, "reopen_count"));

    /* 保密: a confidential complainant stays hidden from the handling department */
    int confidential = strcmp(pg_get(pr, 0, "confidential"), "t") == 0;
    if (!(view == VIEW_HANDLER && confidential))
        json_object_set_new(o, "complainant", case_complainant(app, pr));
    return o;
}

static int not_found(intake_result_t *res, const char *case_no)
{
    return res_error(res, 404, "not_found", "case_no", "no case %.64s", case_no);
}

int intake_case_get(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                    const char *access_code, intake_result_t *res)
{
    char errstr[512];
    PGresult *pr;
    case_view_t view;
    if (tok) {
        const char *v[2] = {case_no, intake_token_scope(tok)};
        pr = pg_exec_stmt(w->pg, &st_case_staff, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        view = tok->role == INTAKE_ROLE_HANDLER ? VIEW_HANDLER : VIEW_STAFF;
    } else {
        char code[16], hex[65];
        uint8_t sum[32];
        /* a malformed code is a wrong code: the same 404, no hint */
        if (intake_access_code_normalize(access_code, code, sizeof(code)) != 0)
            return not_found(res, case_no);
        crypto_sha256(code, strlen(code), sum);
        util_hex(sum, 32, hex);
        const char *v[2] = {case_no, hex};
        pr = pg_exec_stmt(w->pg, &st_case_public, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        view = VIEW_COMPLAINANT;
    }
    if (!pr)
        return res_db(w, res, "case read", errstr);
    if (PQntuples(pr) != 1) {
        PQclear(pr);
        return not_found(res, case_no);
    }
    intake_result_clear(res);
    res->status = 200;
    res->body = case_json(w->app, pr, view);
    res_etag(res, strtoll(pg_get(pr, 0, "version"), NULL, 10));
    PQclear(pr);
    return 0;
}

int intake_case_history(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                        intake_result_t *res)
{
    char errstr[512];
    const char *v[2] = {case_no, intake_token_scope(tok)};
    PGresult *pr = pg_exec_stmt(w->pg, &st_history, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return res_db(w, res, "history read", errstr);
    int n = PQntuples(pr);
    if (n == 0) {
        PQclear(pr);
        return not_found(res, case_no);
    }
    json_t *events = json_array();
    for (int i = 0; i < n; i++) {
        json_t *payload = json_loads(pg_get(pr, i, "summary"), 0, NULL);
        json_array_append_new(
            events,
            json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s?, s:s, s:o}", "seq",
                      (json_int_t)strtoll(pg_get(pr, i, "seq"), NULL, 10), "event_id",
                      pg_get(pr, i, "event_id"), "event_type", pg_get(pr, i, "event_type"),
                      "status", pg_get(pr, i, "status"), "version",
                      (json_int_t)strtoll(pg_get(pr, i, "version"), NULL, 10), "producer",
                      pg_get(pr, i, "producer"), "actor",
                      pg_isnull(pr, i, "actor") ? NULL : pg_get(pr, i, "actor"), "occurred_at",
                      pg_get(pr, i, "occurred_at"), "payload", payload ? payload : json_object()));
    }
    intake_result_clear(res);
    res->status = 200;
    res->body = json_pack("{s:s, s:o}", "case_no", pg_get(pr, 0, "case_no"), "events", events);
    PQclear(pr);
    return 0;
}

/* --------------------------------------------------------------- changes */

/* 200 {"case_no","status","version"} after a committed change. */
static void change_answer(intake_result_t *res, const char *case_no, const casestore_result_t *out)
{
    intake_result_clear(res);
    res->status = 200;
    res->body = json_pack("{s:s, s:s, s:I}", "case_no", case_no, "status", out->status_after,
                          "version", (json_int_t)out->version);
    res_etag(res, out->version);
    res->wrote_outbox = 1;
}

int intake_case_action(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                       const intake_action_t *a, int64_t expect_version, intake_result_t *res)
{
    char errstr[512], id[37], no[64], dept[128], handler[128];
    PGresult *pr = NULL;
    proto_env_t pe;
    casestore_result_t out;
    int64_t version;
    char *reply = NULL;
    const char *verb = a->kind == INTAKE_ACTION_ACCEPT ? "accept" : "resolve";
    const char *needs = a->kind == INTAKE_ACTION_ACCEPT ? "assigned" : "accepted or in_progress";

    if (pg_begin(w->pg, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "action", errstr);
    /* the handler's department is part of the WHERE clause: no row, no action */
    const char *v[2] = {case_no, intake_token_scope(tok)};
    pr = pg_exec_stmt(w->pg, &st_action_lock, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return res_db(w, res, "action lock", errstr);
    if (PQntuples(pr) != 1) {
        PQclear(pr);
        pg_rollback(w->pg);
        return not_found(res, case_no);
    }
    snprintf(id, sizeof(id), "%s", pg_get(pr, 0, "id"));
    snprintf(no, sizeof(no), "%s", pg_get(pr, 0, "case_no"));
    snprintf(dept, sizeof(dept), "%s", pg_get(pr, 0, "department"));
    snprintf(handler, sizeof(handler), "%s", pg_get(pr, 0, "handler"));
    version = strtoll(pg_get(pr, 0, "version"), NULL, 10);
    PQclear(pr);
    pr = NULL;
    /* a stale view loses before anything else is judged */
    if (expect_version > 0 && expect_version != version) {
        pg_rollback(w->pg);
        return res_error(res, 409, "stale_version", "If-Match",
                         "case %s is at version %" PRId64 ", not %" PRId64
                         "; reload it and try again",
                         no, version, expect_version);
    }

    Kesu__V1__CaseAccepted acc = KESU__V1__CASE_ACCEPTED__INIT;
    Kesu__V1__CaseResolved resd = KESU__V1__CASE_RESOLVED__INIT;
    casestore_change_t ch = {.case_id = id,
                             .expect_version = expect_version,
                             .producer = INTAKE_PRODUCER,
                             .actor = tok->id,
                             .topic = KAFKA_TOPIC_INTAKE};
    proto_env_init(&pe, INTAKE_PRODUCER);
    if (a->kind == INTAKE_ACTION_ACCEPT) {
        acc.department = dept;
        acc.handler = handler;
        ch.from = from_assigned;
        ch.to = "accepted";
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED, &acc.base);
    } else {
        reply = crypto_mask_text(a->reply);
        if (!reply) {
            pg_rollback(w->pg);
            return res_error(res, 500, "internal", NULL, "internal error: out of memory");
        }
        resd.measures = (char *)a->measures;
        resd.reply = reply;
        resd.department = dept;
        ch.from = from_accepted;
        ch.to = "resolved";
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &resd.base);
    }
    int crc = casestore_apply(w->pg, &ch, &pe, &out, errstr, sizeof(errstr));
    switch (crc) {
    case CASESTORE_OK:
        break;
    case CASESTORE_NOT_FOUND:
        pg_rollback(w->pg);
        free(reply);
        return not_found(res, case_no);
    case CASESTORE_CONFLICT:
        pg_rollback(w->pg);
        free(reply);
        return res_error(res, 409, "invalid_transition", "status",
                         "case %s is %s; %s needs it to be %s", no, out.status_before, verb, needs);
    case CASESTORE_STALE:
        pg_rollback(w->pg);
        free(reply);
        return res_error(res, 409, "stale_version", "If-Match", "%s", errstr);
    default:
        free(reply);
        return res_db(w, res, "action apply", errstr);
    }

    if (a->kind == INTAKE_ACTION_ACCEPT) {
        const char *uv[1] = {id};
        pr = pg_exec_stmt(w->pg, &st_accepted, uv, PGRES_COMMAND_OK, errstr, sizeof(errstr));
    } else {
        const char *uv[3] = {id, a->measures, reply};
        pr = pg_exec_stmt(w->pg, &st_resolved, uv, PGRES_COMMAND_OK, errstr, sizeof(errstr));
    }
    free(reply);
    if (!pr)
        return res_db(w, res, "action update", errstr);
    PQclear(pr);
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "action commit", errstr);

    log_ctx_set(id, pe.event_id, NULL, -1, -1);
    LOG_INFO("case %s %s -> %s by token %s", no, out.status_before, out.status_after, tok->id);
    log_ctx_clear();
    change_answer(res, no, &out);
    res->outcome = verb;
    return 0;
}

int intake_case_feedback(intake_worker_t *w, const char *case_no, const intake_feedback_t *f,
                         intake_result_t *res)
{
    char errstr[512], id[37], no[64], status[24], hex[65], sat[8], count[16];
    uint8_t sum[32];
    PGresult *pr = NULL;
    proto_env_t pe;
    casestore_result_t out;
    char *comment = NULL;

    /* the same 404 for an unknown case and a wrong code: codes cannot be probed */
    if (!f->access_code[0])
        return not_found(res, case_no);
    crypto_sha256(f->access_code, strlen(f->access_code), sum);
    util_hex(sum, 32, hex);

    if (pg_begin(w->pg, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "feedback", errstr);
    const char *v[2] = {case_no, hex};
    pr = pg_exec_stmt(w->pg, &st_feedback_lock, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return res_db(w, res, "feedback lock", errstr);
    if (PQntuples(pr) != 1) {
        PQclear(pr);
        pg_rollback(w->pg);
        return not_found(res, case_no);
    }
    snprintf(id, sizeof(id), "%s", pg_get(pr, 0, "id"));
    snprintf(no, sizeof(no), "%s", pg_get(pr, 0, "case_no"));
    snprintf(status, sizeof(status), "%s", pg_get(pr, 0, "status"));
    PQclear(pr);
    pr = NULL;
    if (strcmp(status, "replied") != 0) {
        pg_rollback(w->pg);
        return res_error(res, 409, "invalid_transition", "status",
                         "case %s is %s; feedback is taken once the reply has been sent to you "
                         "(status replied)",
                         no, status);
    }

    /* 1. the rating itself: history + event, version bumped, status kept */
    Kesu__V1__FeedbackReceived fb = KESU__V1__FEEDBACK_RECEIVED__INIT;
    if (f->comment && !(comment = crypto_mask_text(f->comment))) {
        pg_rollback(w->pg);
        return res_error(res, 500, "internal", NULL, "internal error: out of memory");
    }
    fb.satisfaction = f->satisfaction;
    fb.comment = comment ? comment : "";
    casestore_change_t ch = {.case_id = id,
                             .from = from_replied,
                             .bump_version = 1,
                             .producer = INTAKE_PRODUCER,
                             .actor = "complainant",
                             .topic = KAFKA_TOPIC_INTAKE};
    proto_env_init(&pe, INTAKE_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED, &fb.base);
    int crc = casestore_apply(w->pg, &ch, &pe, &out, errstr, sizeof(errstr));
    if (crc != CASESTORE_OK)
        goto apply_failed;
    snprintf(sat, sizeof(sat), "%d", f->satisfaction);
    {
        const char *uv[3] = {id, sat, comment};
        pr = pg_exec_stmt(w->pg, &st_feedback_set, uv, PGRES_COMMAND_OK, errstr, sizeof(errstr));
        if (!pr)
            goto db;
        PQclear(pr);
        pr = NULL;
    }

    /* 2. what the rating decides: satisfied closes, unsatisfied reopens (重办) */
    if (f->satisfaction >= 3) {
        Kesu__V1__CaseClosed cl = KESU__V1__CASE_CLOSED__INIT;
        cl.reason = "satisfied";
        casestore_change_t ch2 = {.case_id = id,
                                  .from = from_replied,
                                  .to = "closed",
                                  .producer = INTAKE_PRODUCER,
                                  .actor = "complainant",
                                  .topic = KAFKA_TOPIC_INTAKE};
        proto_env_init(&pe, INTAKE_PRODUCER);
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &cl.base);
        crc = casestore_apply(w->pg, &ch2, &pe, &out, errstr, sizeof(errstr));
        if (crc != CASESTORE_OK)
            goto apply_failed;
        const char *uv[2] = {id, "satisfied"};
        pr = pg_exec_stmt(w->pg, &st_closed, uv, PGRES_COMMAND_OK, errstr, sizeof(errstr));
        if (!pr)
            goto db;
    } else {
        const char *uv[1] = {id};
        pr = pg_exec_stmt(w->pg, &st_reopen_count, uv, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!pr)
            goto db;
        snprintf(count, sizeof(count), "%s", pg_get(pr, 0, "reopen_count"));
        PQclear(pr);
        pr = NULL;
        Kesu__V1__CaseReopened ro = KESU__V1__CASE_REOPENED__INIT;
        ro.reason = "unsatisfied";
        ro.reopen_count = (int32_t)strtol(count, NULL, 10);
        casestore_change_t ch2 = {.case_id = id,
                                  .from = from_replied,
                                  .to = "reopened",
                                  .producer = INTAKE_PRODUCER,
                                  .actor = "complainant",
                                  .topic = KAFKA_TOPIC_INTAKE};
        proto_env_init(&pe, INTAKE_PRODUCER);
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, &ro.base);
        crc = casestore_apply(w->pg, &ch2, &pe, &out, errstr, sizeof(errstr));
        if (crc != CASESTORE_OK)
            goto apply_failed;
    }
    PQclear(pr);
    pr = NULL;
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        goto db;
    free(comment);

    log_ctx_set(id, pe.event_id, NULL, -1, -1);
    LOG_INFO("case %s feedback %d: %s -> %s", no, f->satisfaction, status, out.status_after);
    log_ctx_clear();
    change_answer(res, no, &out);
    res->outcome = f->satisfaction >= 3 ? "closed" : "reopened";
    return 0;

apply_failed:
    free(comment);
    if (crc == CASESTORE_ERROR)
        return res_db(w, res, "feedback apply", errstr);
    pg_rollback(w->pg);
    /* the row is locked since we read it, so this means the table forbids it */
    return res_error(res, 409, "invalid_transition", "status", "case %s: %s", no, errstr);
db:
    free(comment);
    PQclear(pr);
    return res_db(w, res, "feedback", errstr);
}
