/*
 * store: intake's use cases over the case store (see store.h).
 *
 * Personal data never reaches a case or an event in clear: free text
 * (title, body, address, reply, comment, notes, reasons) is masked with
 * crypto_mask_text before it is stored, and contact data is encrypted into
 * complainants with a blind index of the phone number. The access code is
 * kept as a SHA-256 (to check it) and encrypted (so an idempotent replay
 * can repeat it).
 *
 * Every transaction here is scoped for row-level security (intake_tx_begin,
 * migration 0005): it runs as role kesu_api with the caller's role and
 * department, so a handler's statements cannot see another department's
 * rows even where a WHERE clause forgot to say so.
 *
 * Race safety of submissions rests on the unique constraints, not on a
 * read-then-write: idempotency_keys.key and cases (channel, external_ref).
 * A concurrent twin blocks on the index until the first transaction ends,
 * then fails with 23505; it rolls back to its savepoint and finds the
 * winner's case.
 */
#include "store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "casefsm.h"
#include "casestore.h"
#include "crypto.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "util.h"

/* RFC 3339 UTC with milliseconds, whatever the session time zone. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * One statement makes the transaction RLS-scoped: the role switch (what
 * SET LOCAL ROLE does, as a parameterless constant) and the settings the
 * policies of migration 0005 read. Local to the transaction, so a
 * connection never carries one request's scope into the next.
 */
static const pg_stmt_t st_scope = {
    "intake_tx_scope",
    "SELECT set_config('role', 'kesu_api', true), set_config('kesu.role', $1, true), "
    "set_config('kesu.department', $2, true), set_config('kesu.access_hash', $3, true)",
    3};

/*
 * The new cases of a group, one statement per table for all of them (also
 * for one). Case numbers count days in China Standard Time (a hotline's day),
 * and the sequence part grows past 7 digits rather than wrapping (lpad would
 * cut); nextval() in the inner SELECT's list runs once per row, in the
 * group's order.
 */
/* each row counts its CaseReceived already (event_seq 1): the event is
 * written by casestore_append_first, which changes no case row */
_Static_assert(CASESTORE_FIRST_SEQ == 1, "intake_case_insert writes event_seq 1");
static const pg_stmt_t st_case_insert = {
    "intake_case_insert",
    "INSERT INTO cases (id, case_no, access_code_hash, access_code_enc, channel, external_ref, "
    "title, body, language, address, district_code, lat, lon, anonymous, confidential, "
    "complainant_id, trace_id, channel_data, attachments, event_seq) "
    "SELECT id, $1 || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || '-' || "
    "lpad(v::text, greatest(7, length(v::text)), '0'), code_hash, code_enc, channel, ext, title, "
    "body, lang, addr, district, lat, lon, anon, conf, cid, trace, cd, att, 1 "
    "FROM (SELECT r.*, nextval('case_no_seq') AS v FROM unnest($2::uuid[], $3::bytea[], "
    "$4::bytea[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
    "$11::text[], $12::double precision[], $13::double precision[], $14::boolean[], "
    "$15::boolean[], $16::uuid[], $17::text[], $18::jsonb[], $19::jsonb[]) WITH ORDINALITY "
    "AS r(id, code_hash, code_enc, channel, ext, title, body, lang, addr, district, lat, lon, "
    "anon, conf, cid, trace, cd, att, ord) ORDER BY r.ord) s "
    "RETURNING id::text AS id, case_no, " TS("created_at") " AS created_at",
    19};

static const pg_stmt_t st_complainant_insert = {
    "intake_complainant_insert",
    "INSERT INTO complainants (id, name_enc, phone_enc, email_enc, id_no_enc, phone_index, "
    "phone_last4, phone_mask, webhook_url) SELECT * FROM unnest($1::uuid[], $2::bytea[], "
    "$3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[], $8::text[], $9::text[])",
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

static const pg_stmt_t st_savepoint = {"intake_savepoint", "SAVEPOINT intake_one", 0};
static const pg_stmt_t st_release = {"intake_release", "RELEASE SAVEPOINT intake_one", 0};
static const pg_stmt_t st_rollback_to = {"intake_rollback_to", "ROLLBACK TO SAVEPOINT intake_one",
                                         0};

/* The columns both case views read; row-level security decides who sees which row. */
#define CASE_COLUMNS                                                                                                                                              \
    "SELECT c.id, c.case_no, c.status, c.version, c.channel, c.external_ref, c.title, c.body, "                                                                   \
    "c.language, " TS("c.created_at") " AS created_at, " TS(                                                                                                      \
        "c.updated_at") " AS updated_at, "                                                                                                                        \
                        "c.address, c.district_code, c.lat, c.lon, c.anonymous, c.confidential, "                                                                 \
                        "c.domain, "                                                                                                                              \
                        "c.request_type, c.category, c.urgency, array_to_json(c.flags) AS flags, "                                                                \
                        "c.confidence, "                                                                                                                          \
                        "c.needs_review, c.classified_at IS NOT NULL AS classified, "                                                                             \
                        "c.department, c.handler, "                                                                                                               \
                        "array_to_json(c.co_departments) AS co_departments, " TS("c.assigned_at") " AS assigned_at, " TS("c.accepted_at") " AS accepted_at, " TS( \
                            "c.resolved_at") " AS resolved_at, c.measures, "                                                                                      \
                                             "c.reply, c.satisfaction, c.feedback_comment, " TS(                                                                  \
                                                 "c.closed_at") " AS closed_at, "                                                                                 \
                                                                "c.close_reason, c.reopen_count, "                                                                \
                                                                "c.channel_data::text AS "                                                                        \
                                                                "channel_data, "                                                                                  \
                                                                "c.attachments::text AS "                                                                         \
                                                                "attachments, " TS(                                                                               \
                                                                    "c.info_requested_at") " AS "                                                                 \
                                                                                           "info_"                                                                \
                                                                                           "reque"                                                                \
                                                                                           "sted_"                                                                \
                                                                                           "at, "                                                                 \
                                                                                           "c."                                                                   \
                                                                                           "exten"                                                                \
                                                                                           "sion_"                                                                \
                                                                                           "pendi"                                                                \
                                                                                           "ng_"                                                                  \
                                                                                           "minut"                                                                \
                                                                                           "es, "                                                                 \
                                                                                           "c."                                                                   \
                                                                                           "exten"                                                                \
                                                                                           "sion_"                                                                \
                                                                                           "reaso"                                                                \
                                                                                           "n, "                                                                  \
                                                                                           "c."                                                                   \
                                                                                           "statu"                                                                \
                                                                                           "s_"                                                                   \
                                                                                           "reaso"                                                                \
                                                                                           "n, "                                                                  \
                                                                                           "c."                                                                   \
                                                                                           "super"                                                                \
                                                                                           "vise_"                                                                \
                                                                                           "level"                                                                \
                                                                                           ", "                                                                   \
                                                                                           "(SELE"                                                                \
                                                                                           "CT "                                                                  \
                                                                                           "m."                                                                   \
                                                                                           "case_"                                                                \
                                                                                           "no "                                                                  \
                                                                                           "FROM "                                                                \
                                                                                           "cases"                                                                \
                                                                                           " m "                                                                  \
                                                                                           "WHERE"                                                                \
                                                                                           " m."                                                                  \
                                                                                           "id = "                                                                \
                                                                                           "c."                                                                   \
                                                                                           "merge"                                                                \
                                                                                           "d_"                                                                   \
                                                                                           "into)"                                                                \
                                                                                           " AS "                                                                 \
                                                                                           "merge"                                                                \
                                                                                           "d_"                                                                   \
                                                                                           "into,"                                                                \
                                                                                           " "                                                                    \
                                                                                           "p.id "                                                                \
                                                                                           "IS "                                                                  \
                                                                                           "NOT "                                                                 \
                                                                                           "NULL "                                                                \
                                                                                           "AS "                                                                  \
                                                                                           "has_"                                                                 \
                                                                                           "compl"                                                                \
                                                                                           "ainan"                                                                \
                                                                                           "t, "                                                                  \
                                                                                           "encod"                                                                \
                                                                                           "e(p."                                                                 \
                                                                                           "name_"                                                                \
                                                                                           "enc, "                                                                \
                                                                                           "'hex'"                                                                \
                                                                                           ") AS "                                                                \
                                                                                           "name_"                                                                \
                                                                                           "enc, "                                                                \
                                                                                           "encod"                                                                \
                                                                                           "e(p."                                                                 \
                                                                                           "phone"                                                                \
                                                                                           "_enc,"                                                                \
                                                                                           " '"                                                                   \
                                                                                           "hex')"                                                                \
                                                                                           " AS "                                                                 \
                                                                                           "phone"                                                                \
                                                                                           "_enc,"                                                                \
                                                                                           " enco"                                                                \
                                                                                           "de(p."                                                                \
                                                                                           "email"                                                                \
                                                                                           "_enc,"                                                                \
                                                                                           " '"                                                                   \
                                                                                           "hex')"                                                                \
                                                                                           " AS "                                                                 \
                                                                                           "email"                                                                \
                                                                                           "_enc,"                                                                \
                                                                                           " "                                                                    \
                                                                                           "encod"                                                                \
                                                                                           "e(p."                                                                 \
                                                                                           "id_"                                                                  \
                                                                                           "no_"                                                                  \
                                                                                           "enc, "                                                                \
                                                                                           "'hex'"                                                                \
                                                                                           ") AS "                                                                \
                                                                                           "id_"                                                                  \
                                                                                           "no_"                                                                  \
                                                                                           "enc, "                                                                \
                                                                                           "p."                                                                   \
                                                                                           "phone"                                                                \
                                                                                           "_mask"                                                                \
                                                                                           " "                                                                    \
                                                                                           "FROM "                                                                \
                                                                                           "cases"                                                                \
                                                                                           " c "                                                                  \
                                                                                           "LEFT "                                                                \
                                                                                           "JOIN "                                                                \
                                                                                           "compl"                                                                \
                                                                                           "ainan"                                                                \
                                                                                           "ts p "                                                                \
                                                                                           "ON "                                                                  \
                                                                                           "p.id "                                                                \
                                                                                           "= "                                                                   \
                                                                                           "c."                                                                   \
                                                                                           "compl"                                                                \
                                                                                           "ainan"                                                                \
                                                                                           "t_id "

/* Row-level security scopes it; the department test repeats the rule in C's terms. */
static const pg_stmt_t st_case_staff = {
    "intake_case_staff",
    CASE_COLUMNS "WHERE c.case_no = $1 AND ($2::text IS NULL OR c.department = $2::text)", 2};

static const pg_stmt_t st_case_public = {
    "intake_case_public",
    CASE_COLUMNS "WHERE c.case_no = $1 AND c.access_code_hash = decode($2, 'hex')", 2};

static const pg_stmt_t st_reveal_log = {
    "intake_reveal_log",
    "INSERT INTO contact_access_log (token_id, role, case_id, fields, reason) "
    "VALUES ($1::uuid, $2, $3::uuid, $4::text[], $5)",
    5};

static const pg_stmt_t st_history = {
    "intake_history",
    "SELECT c.case_no, e.seq, e.event_id, e.event_type, e.status, e.version, e.producer, "
    "e.actor, " TS("e.occurred_at") " AS occurred_at, e.summary::text AS summary "
                                    "FROM cases c JOIN case_events e ON e.case_id = c.id "
                                    "WHERE c.case_no = $1 AND ($2::text IS NULL OR c.department = "
                                    "$2::text) ORDER BY e.seq",
    2};

/* overdue: a breached timer, or a running one past its due time */
#define CASE_OVERDUE                                                                               \
    "EXISTS (SELECT 1 FROM sla_timers t WHERE t.case_id = c.id AND (t.state = 'breached' OR "      \
    "(t.state = 'running' AND t.due_at < now())))"

/* The page first, then whether each of its cases is overdue: evaluated for
 * every candidate row, the EXISTS became a hashed subplan over every open
 * timer once sla_timers_open (migration 0020) made that look cheap. */
static const pg_stmt_t st_list = {
    "intake_list",
    "SELECT l.id, l.case_no, l.status, l.version, l.channel, l.title, l.department, l.category, "
    "l.urgency, l.district_code, l.created_at, l.updated_at, l.cursor_at, "
    "o.overdue IS NOT NULL AS overdue FROM ("
    "SELECT c.id, c.case_no, c.status, c.version, c.channel, c.title, c.department, c.category, "
    "c.urgency, c.district_code, " TS("c.created_at") " AS created_at, " TS(
        "c.updated_at") " AS updated_at, "
                        "to_char(c.created_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS cursor_at, "
                        "c.created_at AS sort_at FROM cases c "
                        "WHERE ($1::text[] IS NULL OR c.status = ANY ($1::text[])) "
                        "AND ($2::text IS NULL OR c.department = $2) "
                        "AND ($3::text IS NULL OR c.category = $3) "
                        "AND ($4::text IS NULL OR c.channel = $4) "
                        "AND ($5::text IS NULL OR c.district_code = $5) "
                        "AND ($6::boolean IS NULL OR " CASE_OVERDUE " = $6::boolean) "
                        "AND ($7::text IS NULL OR c.created_at >= CASE WHEN length($7) = 10 "
                        "THEN $7::date::timestamp AT TIME ZONE 'Asia/Shanghai' "
                        "ELSE $7::timestamptz END) "
                        "AND ($8::text IS NULL OR c.created_at < CASE WHEN length($8) = 10 "
                        "THEN ($8::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' "
                        "ELSE $8::timestamptz END) "
                        "AND ($9::timestamptz IS NULL OR (c.created_at, c.id) < "
                        "($9::timestamptz, $10::uuid)) "
                        "AND ($11::text IS NULL OR c.department = $11::text) "
                        "ORDER BY c.created_at DESC, c.id DESC LIMIT $12::int) l "
    "LEFT JOIN LATERAL (SELECT true AS overdue FROM sla_timers t WHERE t.case_id = l.id "
    "AND (t.state = 'breached' OR (t.state = 'running' AND t.due_at < now())) LIMIT 1) o ON true "
    "ORDER BY l.sort_at DESC, l.id DESC",
    12};

static const pg_stmt_t st_action_lock = {
    "intake_action_lock",
    "SELECT id, case_no, status, version, coalesce(department, '') AS department, "
    "coalesce(handler, '') AS handler, extension_pending_minutes, "
    "info_requested_at IS NOT NULL AS info_pending FROM cases "
    "WHERE case_no = $1 AND ($2::text IS NULL OR department = $2::text) FOR NO KEY UPDATE",
    2};

static const pg_stmt_t st_merge_target = {
    "intake_merge_target", "SELECT id, case_no, status FROM cases WHERE case_no = $1 FOR SHARE", 1};

static const pg_stmt_t st_accepted = {
    "intake_accepted", "UPDATE cases SET accepted_at = now() WHERE id = $1::uuid", 1};

static const pg_stmt_t st_resolved = {
    "intake_resolved",
    "UPDATE cases SET measures = $2, reply = $3, resolved_at = now(), info_requested_at = NULL "
    "WHERE id = $1::uuid",
    3};

static const pg_stmt_t st_info_requested = {
    "intake_info_requested", "UPDATE cases SET info_requested_at = now() WHERE id = $1::uuid", 1};

static const pg_stmt_t st_extension_asked = {
    "intake_extension_asked",
    "UPDATE cases SET extension_pending_minutes = $2::int, extension_reason = $3 "
    "WHERE id = $1::uuid",
    3};

static const pg_stmt_t st_extension_decided = {
    "intake_extension_decided",
    "UPDATE cases SET extension_pending_minutes = NULL, extension_reason = NULL "
    "WHERE id = $1::uuid",
    1};

static const pg_stmt_t st_status_reason = {
    "intake_status_reason", "UPDATE cases SET status_reason = $2 WHERE id = $1::uuid", 2};

static const pg_stmt_t st_merged = {
    "intake_merged",
    "UPDATE cases SET merged_into = $2::uuid, status_reason = $3 WHERE id = $1::uuid", 3};

static const pg_stmt_t st_supervised = {
    "intake_supervised",
    "UPDATE cases SET supervise_level = greatest(supervise_level, $2::smallint) "
    "WHERE id = $1::uuid",
    2};

static const pg_stmt_t st_complainant_lock = {
    "intake_complainant_lock",
    "SELECT id, case_no, status, version, info_requested_at IS NOT NULL AS info_pending "
    "FROM cases WHERE case_no = $1 AND access_code_hash = decode($2, 'hex') FOR NO KEY UPDATE",
    2};

static const pg_stmt_t st_feedback_set = {
    "intake_feedback_set",
    "UPDATE cases SET satisfaction = $2::smallint, feedback_comment = $3 WHERE id = $1::uuid", 3};

static const pg_stmt_t st_supplement_set = {
    "intake_supplement_set",
    "UPDATE cases SET info_requested_at = NULL, attachments = attachments || $2::jsonb "
    "WHERE id = $1::uuid",
    2};

static const pg_stmt_t st_closed = {
    "intake_closed", "UPDATE cases SET closed_at = now(), close_reason = $2 WHERE id = $1::uuid",
    2};

static const pg_stmt_t st_reopen_count = {
    "intake_reopen_count",
    "UPDATE cases SET reopen_count = reopen_count + 1 WHERE id = $1::uuid RETURNING reopen_count",
    1};

/*
 * The access-code throttle, outside any case transaction (a failure must
 * count even though its transaction rolls back). Keyed by the case number
 * asked for, whether or not it exists, so the throttle itself tells nothing.
 */
static const pg_stmt_t st_throttle_check = {
    "intake_throttle_check",
    "SELECT ceil(extract(epoch FROM window_start + make_interval(secs => $2::int) - now()))::int "
    "AS retry_after FROM access_code_throttle WHERE case_no = $1 AND failures >= $3::int "
    "AND window_start > now() - make_interval(secs => $2::int)",
    3};

static const pg_stmt_t st_throttle_fail = {
    "intake_throttle_fail",
    "INSERT INTO access_code_throttle AS t (case_no, window_start, failures) "
    "VALUES ($1, now(), 1) ON CONFLICT (case_no) DO UPDATE SET "
    "failures = CASE WHEN t.window_start <= now() - make_interval(secs => $2::int) THEN 1 "
    "ELSE t.failures + 1 END, "
    "window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2::int) "
    "THEN now() ELSE t.window_start END",
    2};

static const char *const from_replied[] = {"replied", NULL};
static const char *const from_open[] = {"received",    "classified", "assigned", "accepted",
                                        "in_progress", "resolved",   "replied",  "returned",
                                        "reopened",    NULL};
static const char *const from_assigned[] = {"assigned", NULL};
static const char *const from_handling[] = {"accepted", "in_progress", NULL};
static const char *const from_returnable[] = {"assigned", "accepted", "in_progress", NULL};
static const char *const from_mergeable[] = {"received",    "classified", "assigned", "accepted",
                                             "in_progress", "returned",   NULL};
static const char *const from_rejectable[] = {"received", "classified", "assigned", "returned",
                                              NULL};
static const char *const from_withdrawable[] = {"received",    "classified", "assigned", "accepted",
                                                "in_progress", "returned",   "reopened", NULL};
/* the supplement: anything not yet finished (resolved and later have nothing left to add to) */
static const char *const from_supplementable[] = {
    "received", "classified", "assigned", "accepted", "in_progress", "returned", "reopened", NULL};

#define ROLES_HANDLING (INTAKE_ROLE_HANDLER | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN)
#define ROLES_OFFICE   (INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN)
#define ROLES_DESK     (INTAKE_ROLE_AGENT | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN)

/*
 * The staff actions: who may take each, from which statuses, to which
 * status (NULL: the status stays, the version goes up), and what the
 * action needs to be phrased in an error ("accepted or in_progress").
 */
typedef struct action_rule {
    intake_action_kind_t kind;
    int roles;
    const char *const *from;
    const char *to;
    const char *needs;
} action_rule_t;

static const action_rule_t action_rules[] = {
    {INTAKE_ACTION_ACCEPT, ROLES_HANDLING, from_assigned, "accepted", "assigned"},
    {INTAKE_ACTION_NOTE, ROLES_HANDLING, from_handling, NULL, "accepted or in_progress"},
    {INTAKE_ACTION_REQUEST_INFO, ROLES_HANDLING, from_handling, NULL, "accepted or in_progress"},
    {INTAKE_ACTION_EXTENSION_REQUEST, ROLES_HANDLING, from_handling, NULL,
     "accepted or in_progress"},
    {INTAKE_ACTION_EXTENSION_DECIDE, ROLES_OFFICE, from_handling, NULL, "accepted or in_progress"},
    {INTAKE_ACTION_RETURN, ROLES_HANDLING, from_returnable, "returned",
     "assigned, accepted or in_progress"},
    {INTAKE_ACTION_RESOLVE, ROLES_HANDLING, from_handling, "resolved", "accepted or in_progress"},
    {INTAKE_ACTION_SUPERVISE, ROLES_OFFICE, from_open, NULL, "open (not closed or ended)"},
    {INTAKE_ACTION_MERGE, ROLES_DESK, from_mergeable, "merged", "open and not yet resolved"},
    {INTAKE_ACTION_REJECT, ROLES_DESK, from_rejectable, "rejected",
     "received, classified, assigned or returned"},
    {INTAKE_ACTION_WITHDRAW, ROLES_DESK, from_withdrawable, "withdrawn", "open and not resolved"},
    {0, 0, NULL, NULL, NULL},
};

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
                         const char *body_hex, intake_result_t *res, char *errstr,
                         size_t errstr_size)
{
    PGresult *pr = NULL;
    int rc = 0;
    char *code = NULL;

    if (idem_key) {
        const char *v[1] = {idem_key};
        pr = pg_exec_stmt(w->pg, &st_idem_get, v, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!pr)
            return -1;
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
                if (res->body)
                    json_object_set_new(res->body, "replayed", json_true());
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
        pr = pg_exec_stmt(w->pg, &st_ref_get, v, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!pr)
            return -1;
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
    char *channel_data; /* JSON text of the channel details */
    char *attachments;  /* JSON text of the attachment references */
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
    free(d->channel_data);
    free(d->attachments);
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
    {
        /* channel details are ids and a date, never free text: stored as given */
        json_t *cd = json_object();
        const char *keys[] = {"call_id", "agent_id", "received_date", "scan_ref", "window_id"};
        const char *vals[] = {c->call_id, c->agent_id, c->received_date, c->scan_ref, c->window_id};
        for (int k = 0; k < 5; k++)
            if (vals[k])
                json_object_set_new(cd, keys[k], json_string(vals[k]));
        d->channel_data = json_dumps(cd, JSON_COMPACT);
        json_decref(cd);
        d->attachments = c->attachments ? json_dumps(c->attachments, JSON_COMPACT) : strdup("[]");
        if (!d->channel_data || !d->attachments) {
            snprintf(errstr, errstr_size, "out of memory encoding channel details");
            return -1;
        }
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

int intake_tx_begin(intake_worker_t *w, const char *role, const char *dept, const char *access_hash,
                    char *errstr, size_t errstr_size)
{
    const char *v[3] = {role, dept ? dept : "", access_hash ? access_hash : ""};
    if (pg_begin(w->pg, errstr, errstr_size) != 0)
        return -1;
    PGresult *pr = pg_exec_stmt(w->pg, &st_scope, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!pr) {
        pg_rollback(w->pg);
        return -1;
    }
    PQclear(pr);
    return 0;
}

/* Begin the transaction of a staff request, scoped to its token. */
static int tx_staff(intake_worker_t *w, const intake_token_t *tok, char *errstr, size_t errstr_size)
{
    return intake_tx_begin(w, tok->role_name, tok->department, NULL, errstr, errstr_size);
}

static int exec_cmd(intake_worker_t *w, const pg_stmt_t *st, char *errstr, size_t errstr_size)
{
    PGresult *pr = pg_exec_stmt(w->pg, st, NULL, PGRES_COMMAND_OK, errstr, errstr_size);
    PQclear(pr);
    return pr ? 0 : -1;
}

/* group commits by the way they were written (decision 0034); looked up once */
static metrics_counter_t *m_groups[2];

void intake_store_metrics_init(void)
{
    static const char *const path[2] = {"path=\"fast\"", "path=\"careful\""};
    for (int k = 0; k < 2; k++)
        m_groups[k] = metrics_counter("kesu_intake_group_commits_total",
                                      "Submission group commits, by how their rows were written: "
                                      "together (fast) or each under a savepoint after the "
                                      "database refused a row of the group (careful)",
                                      path[k]);
}

/* one new case of create_insert: its data, its CaseReceived event (the structs
 * must outlive the append) and what the insert returned */
typedef struct create_row {
    create_data_t d;
    Kesu__V1__CaseReceived cr;
    Kesu__V1__Location loc;
    proto_env_t pe;
    char case_no[64], created_at[40];
} create_row_t;

static void create_event(create_row_t *e, const intake_complaint_t *c)
{
    const create_data_t *d = &e->d;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    Kesu__V1__Location loc = KESU__V1__LOCATION__INIT;
    e->cr = cr;
    e->loc = loc;
    e->cr.channel = (char *)c->channel;
    e->cr.external_ref = (char *)(c->external_ref ? c->external_ref : "");
    e->cr.title = d->title;
    e->cr.body = d->body;
    e->cr.language = (char *)c->language;
    e->cr.anonymous = c->anonymous;
    e->cr.confidential = c->confidential;
    e->cr.has_contact = c->phone || c->email || c->callback_url;
    if (d->address || c->district_code || c->has_coordinates) {
        e->loc.address = d->address ? d->address : "";
        e->loc.district_code = (char *)(c->district_code ? c->district_code : "");
        e->loc.has_coordinates = c->has_coordinates;
        e->loc.lat = c->has_coordinates ? c->lat : 0;
        e->loc.lon = c->has_coordinates ? c->lon : 0;
        e->cr.location = &e->loc;
    }
    proto_env_init(&e->pe, INTAKE_PRODUCER);
    proto_env_set_payload(&e->pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &e->cr.base);
}

/*
 * The inserts of k new cases inside the open transaction, a statement per
 * table for all of them (complainants, cases, then their CaseReceived events
 * by one casestore_append_first; idempotency keys one by one, as they are
 * few). 0: created (every q[i]->res filled), -1: a statement failed (errstr
 * and w->pg->sqlstate; 23505: a unique constraint, someone else got there
 * first; no res touched).
 */
static int create_insert(intake_worker_t *w, intake_create_req_t *const *q, size_t k,
                         char *errstr, size_t errstr_size)
{
    create_row_t *row = calloc(k, sizeof(*row));
    casestore_event_t *ev = calloc(k, sizeof(*ev));
    pg_rows_t cc, kc; /* complainant and case rows */
    PGresult *pr = NULL;
    size_t i;
    int rc = -1;

    int cols_ok = pg_rows_init(&cc, 9) == 0;
    cols_ok &= pg_rows_init(&kc, 18) == 0;
    if (!cols_ok || !row || !ev) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (i = 0; i < k; i++) {
        const intake_complaint_t *c = q[i]->c;
        create_data_t *d = &row[i].d;
        if (create_prepare(w->app, c, d, errstr, errstr_size) != 0)
            goto out;
        if (c->has_complainant) {
            int has_phone = c->phone_norm[0] != '\0';
            cc.n++;
            pg_rows_text(&cc, 0, d->complainant_id);
            pg_rows_bytea(&cc, 1, d->name_enc, (size_t)d->name_len);
            pg_rows_bytea(&cc, 2, d->phone_enc, (size_t)d->phone_len);
            pg_rows_bytea(&cc, 3, d->email_enc, (size_t)d->email_len);
            pg_rows_bytea(&cc, 4, d->id_enc, (size_t)d->id_len);
            pg_rows_bytea(&cc, 5, has_phone ? d->phone_index : NULL, 32);
            pg_rows_text(&cc, 6, has_phone ? d->last4 : NULL);
            pg_rows_text(&cc, 7, has_phone ? d->phone_mask : NULL);
            pg_rows_text(&cc, 8, c->callback_url);
        }
        kc.n++;
        pg_rows_text(&kc, 0, d->case_id);
        pg_rows_bytea(&kc, 1, d->code_hash, 32);
        pg_rows_bytea(&kc, 2, d->code_enc, (size_t)d->code_enc_len);
        pg_rows_text(&kc, 3, c->channel);
        pg_rows_text(&kc, 4, c->external_ref);
        pg_rows_text(&kc, 5, d->title);
        pg_rows_text(&kc, 6, d->body);
        pg_rows_text(&kc, 7, c->language);
        pg_rows_text(&kc, 8, d->address);
        pg_rows_text(&kc, 9, c->district_code);
        pg_rows_text(&kc, 10, c->has_coordinates ? d->lat : NULL);
        pg_rows_text(&kc, 11, c->has_coordinates ? d->lon : NULL);
        pg_rows_text(&kc, 12, c->anonymous ? "true" : "false");
        pg_rows_text(&kc, 13, c->confidential ? "true" : "false");
        pg_rows_text(&kc, 14, c->has_complainant ? d->complainant_id : NULL);
        pg_rows_text(&kc, 15, d->trace_id);
        pg_rows_text(&kc, 16, d->channel_data);
        pg_rows_text(&kc, 17, d->attachments);
    }
    if (cc.n) {
        pr = pg_rows_exec(w->pg, &st_complainant_insert, &cc, NULL, PGRES_COMMAND_OK, errstr,
                          errstr_size);
        if (!pr)
            goto out;
        PQclear(pr);
    }
    pr = pg_rows_exec(w->pg, &st_case_insert, &kc, w->app->case_prefix, PGRES_TUPLES_OK, errstr,
                      errstr_size);
    if (!pr)
        goto out;
    for (int r = 0; r < PQntuples(pr); r++)
        for (i = 0; i < k; i++)
            if (strcasecmp(pg_get(pr, r, "id"), row[i].d.case_id) == 0) {
                snprintf(row[i].case_no, sizeof(row[i].case_no), "%s", pg_get(pr, r, "case_no"));
                snprintf(row[i].created_at, sizeof(row[i].created_at), "%s",
                         pg_get(pr, r, "created_at"));
            }
    PQclear(pr);
    pr = NULL;
    for (i = 0; i < k; i++) {
        if (q[i]->idem_key) {
            char body_hex[65];
            util_hex(q[i]->body_sha, 32, body_hex);
            const char *v[3] = {q[i]->idem_key, body_hex, row[i].d.case_id};
            pr = pg_exec_stmt(w->pg, &st_idem_insert, v, PGRES_COMMAND_OK, errstr, errstr_size);
            if (!pr)
                goto out;
            PQclear(pr);
            pr = NULL;
        }
        create_event(&row[i], q[i]->c);
        proto_env_set_case(&row[i].pe, row[i].d.case_id, row[i].case_no, row[i].d.trace_id);
        ev[i] = (casestore_event_t){.case_id = row[i].d.case_id,
                                    .producer = INTAKE_PRODUCER,
                                    .actor = q[i]->tok->id,
                                    .topic = KAFKA_TOPIC_INTAKE,
                                    .pe = &row[i].pe};
    }
    if (casestore_append_first(w->pg, ev, k, errstr, errstr_size) != CASESTORE_OK)
        goto out;
    for (i = 0; i < k; i++) {
        create_answer(&q[i]->res, 201, row[i].d.case_id, row[i].case_no, row[i].d.access_code,
                      CASESTORE_FIRST_STATUS, CASESTORE_FIRST_VERSION, row[i].created_at, 0);
        q[i]->res.outcome = "created";
    }
    rc = 0;
out:
    PQclear(pr);
    pg_rows_free(&cc);
    pg_rows_free(&kc);
    for (i = 0; row && i < k; i++) /* calloc'd: a part not prepared frees nothing */
        create_data_free(&row[i].d);
    free(row);
    free(ev);
    return rc;
}

/*
 * One submission inside the group's transaction, under its own savepoint
 * (the careful way, after the fast one was refused). 0: answered in req->res
 * (created, replay, duplicate, reused key, or a refused row rolled back to
 * the savepoint), -1: the transaction is lost (transient trouble; errstr),
 * the group must fail.
 */
static int create_one(intake_worker_t *w, intake_create_req_t *q, char *errstr, size_t errstr_size)
{
    char body_hex[65];
    util_hex(q->body_sha, 32, body_hex);
    /* a few rounds: look, insert; a unique violation means look again */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (exec_cmd(w, &st_savepoint, errstr, errstr_size) != 0)
            return -1;
        int rc = create_lookup(w, q->c, q->idem_key, body_hex, &q->res, errstr, errstr_size);
        if (rc == 0)
            rc = create_insert(w, &q, 1, errstr, errstr_size) == 0
                     ? 1
                     : (strcmp(w->pg->sqlstate, "23505") == 0 ? 0 : -1);
        if (rc == 1) /* answered: created, replay, duplicate or reused key */
            return exec_cmd(w, &st_release, errstr, errstr_size);
        if (rc == -1 && pg_failure_transient(w->pg))
            return -1;
        /* a unique violation (look again) or a refused row (answer 500, keep the others) */
        char line[512];
        snprintf(line, sizeof(line), "%s", errstr);
        line[strcspn(line, "\n")] = '\0';
        if (exec_cmd(w, &st_rollback_to, errstr, errstr_size) != 0)
            return -1;
        if (rc == -1) {
            LOG_ERROR("case insert failed (sqlstate %s): %s", w->pg->sqlstate, line);
            res_error(&q->res, 500, "internal", NULL, "internal error; it has been logged");
            return 0;
        }
    }
    res_error(&q->res, 409, "concurrent_submission",
              q->idem_key ? "Idempotency-Key" : "external_ref",
              "an identical submission is being processed right now; retry shortly");
    return 0;
}

/*
 * The group the fast way (decision 0034): every lookup, then the new cases
 * of the group written together by create_insert, no savepoints. 0: every
 * submission answered, the transaction open for the commit; 1: the database
 * refused a row (a concurrent or repeated identical submission, or anything
 * else), the transaction rolled back and no answer kept: run the group the
 * careful way; -1: transient trouble (errstr), rolled back.
 */
static int create_group_fast(intake_worker_t *w, intake_create_req_t *reqs, size_t n,
                             char *errstr, size_t errstr_size)
{
    intake_create_req_t **fresh = calloc(n, sizeof(*fresh));
    size_t k = 0;
    int rc = 1;
    if (!fresh) {
        snprintf(errstr, errstr_size, "out of memory");
        pg_rollback(w->pg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char body_hex[65];
        util_hex(reqs[i].body_sha, 32, body_hex);
        int found = create_lookup(w, reqs[i].c, reqs[i].idem_key, body_hex, &reqs[i].res, errstr,
                                  errstr_size);
        if (found < 0)
            goto refused;
        if (found == 0)
            fresh[k++] = &reqs[i];
    }
    if (k > 0 && create_insert(w, fresh, k, errstr, errstr_size) != 0)
        goto refused;
    free(fresh);
    return 0;
refused:
    rc = pg_failure_transient(w->pg) ? -1 : 1;
    pg_rollback(w->pg);
    for (size_t i = 0; i < n; i++) {
        intake_result_clear(&reqs[i].res);
        memset(&reqs[i].res, 0, sizeof(reqs[i].res));
    }
    free(fresh);
    return rc;
}

int intake_case_create_group(intake_worker_t *w, intake_create_req_t *reqs, size_t n)
{
    char errstr[512] = "";
    int created = 0, fast;
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        memset(&reqs[i].res, 0, sizeof(reqs[i].res));
    /* every submitter role sees alike under row-level security: the first token scopes all */
    if (tx_staff(w, reqs[0].tok, errstr, sizeof(errstr)) != 0)
        goto failed;
    fast = create_group_fast(w, reqs, n, errstr, sizeof(errstr));
    if (fast < 0)
        goto failed;
    if (fast == 1) {
        LOG_DEBUG("group of %zu: %s; each submission under its own savepoint", n, errstr);
        if (tx_staff(w, reqs[0].tok, errstr, sizeof(errstr)) != 0)
            goto failed;
        for (i = 0; i < n; i++)
            if (create_one(w, &reqs[i], errstr, sizeof(errstr)) != 0)
                goto failed;
    }
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        goto failed;
    if (m_groups[fast])
        metrics_counter_add(m_groups[fast], 1);
    for (i = 0; i < n; i++) {
        intake_result_t *res = &reqs[i].res;
        if (res->status != 201)
            continue;
        created++;
        res->wrote_outbox = 1;
        log_ctx_set(json_string_value(json_object_get(res->body, "case_id")), NULL, NULL, -1, -1);
        LOG_INFO("case %s received (channel %s)",
                 json_string_value(json_object_get(res->body, "case_no")), reqs[i].c->channel);
        log_ctx_clear();
    }
    if (n > 1)
        LOG_DEBUG("group commit of %zu submissions, %d created", n, created);
    return created;
failed:
    /* nothing of the group was committed: every answer is the database's */
    for (i = 0; i < n; i++) {
        intake_result_clear(&reqs[i].res);
        memset(&reqs[i].res, 0, sizeof(reqs[i].res));
    }
    res_db(w, &reqs[0].res, "case insert", errstr);
    for (i = 1; i < n; i++) {
        intake_result_t *res = &reqs[i].res;
        res->status = reqs[0].res.status;
        res->code = reqs[0].res.code;
        memcpy(res->message, reqs[0].res.message, sizeof(res->message));
    }
    return 0;
}

int intake_case_create(intake_worker_t *w, const intake_token_t *tok, const intake_complaint_t *c,
                       const char *idem_key, const uint8_t body_sha[32], intake_result_t *res)
{
    intake_create_req_t q = {.tok = tok, .c = c, .idem_key = idem_key};
    memcpy(q.body_sha, body_sha, 32);
    intake_case_create_group(w, &q, 1);
    intake_result_clear(res);
    *res = q.res;
    return 0;
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

/* Wipe and free a decrypted value. */
static void wipe_free(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

/*
 * The complainant's contact data: masked, or (reveal) in clear, with the
 * names of the revealed fields appended to revealed (a JSON array) for the
 * audit row. NULL when the case has none.
 */
static json_t *case_complainant(const intake_app_t *app, const PGresult *pr, int reveal,
                                json_t *revealed)
{
    char buf[512];
    if (strcmp(pg_get(pr, 0, "has_complainant"), "t") != 0)
        return json_null();
    json_t *o = json_object();
    char *name = decrypt_hex(app, pg_get(pr, 0, "name_enc"));
    char *email = decrypt_hex(app, pg_get(pr, 0, "email_enc"));
    char *phone = reveal ? decrypt_hex(app, pg_get(pr, 0, "phone_enc")) : NULL;
    char *id_no = reveal ? decrypt_hex(app, pg_get(pr, 0, "id_no_enc")) : NULL;
    if (name && !reveal)
        intake_mask_name(name, buf, sizeof(buf));
    json_object_set_new(o, "name", name ? json_string(reveal ? name : buf) : json_null());
    json_object_set_new(o, "phone_mask", col_str(pr, "phone_mask"));
    if (email && !reveal)
        intake_mask_email(email, buf, sizeof(buf));
    json_object_set_new(o, "email", email ? json_string(reveal ? email : buf) : json_null());
    if (reveal) {
        json_object_set_new(o, "phone", phone ? json_string(phone) : json_null());
        json_object_set_new(o, "id_number", id_no ? json_string(id_no) : json_null());
        const char *names[4] = {"name", "phone", "email", "id_number"};
        const char *vals[4] = {name, phone, email, id_no};
        for (int k = 0; k < 4; k++)
            if (vals[k])
                json_array_append_new(revealed, json_string(names[k]));
    }
    /* decrypted only to be masked or shown once: wipe the clear text now */
    wipe_free(name);
    wipe_free(email);
    wipe_free(phone);
    wipe_free(id_no);
    return o;
}

static json_t *case_json(const intake_app_t *app, const PGresult *pr, case_view_t view, int reveal,
                         json_t *revealed)
{
    int staff = view != VIEW_COMPLAINANT;
    json_t *o = json_object();
    if (staff)
        json_object_set_new(o, "case_id", col_str(pr, "id"));
    json_object_set_new(o, "case_no", col_str(pr, "case_no"));
    json_object_set_new(o, "status", col_str(pr, "status"));
    json_object_set_new(o, "version", col_int(pr, "version"));
    json_object_set_new(o, "channel", col_str(pr, "channel"));
    if (staff) {
        json_object_set_new(o, "external_ref", col_str(pr, "external_ref"));
        json_t *cd = json_loads(pg_get(pr, 0, "channel_data"), 0, NULL);
        json_object_set_new(o, "channel_data", cd ? cd : json_object());
    }
    json_object_set_new(o, "title", col_str(pr, "title"));
    json_object_set_new(o, "body", col_str(pr, "body"));
    json_object_set_new(o, "language", col_str(pr, "language"));
    json_object_set_new(o, "created_at", col_str(pr, "created_at"));
    json_object_set_new(o, "updated_at", col_str(pr, "updated_at"));
    json_object_set_new(o, "attachments", col_json(pr, "attachments"));

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
    json_object_set_new(o, "info_requested_at", col_str(pr, "info_requested_at"));
    json_object_set_new(o, "merged_into", col_str(pr, "merged_into"));
    json_object_set_new(o, "status_reason", col_str(pr, "status_reason"));
    if (staff) {
        json_object_set_new(o, "reopen_count", col_int(pr, "reopen_count"));
        json_object_set_new(o, "supervise_level", col_int(pr, "supervise_level"));
        json_object_set_new(o, "extension_pending",
                            pg_isnull(pr, 0, "extension_pending_minutes")
                                ? json_null()
                                : json_pack("{s:o, s:o}", "extra_minutes",
                                            col_int(pr, "extension_pending_minutes"), "reason",
                                            col_str(pr, "extension_reason")));
    }

    /* 保密: a confidential complainant stays hidden from the handling department */
    int confidential = strcmp(pg_get(pr, 0, "confidential"), "t") == 0;
    if (!(view == VIEW_HANDLER && confidential))
        json_object_set_new(o, "complainant", case_complainant(app, pr, reveal, revealed));
    return o;
}

static int not_found(intake_result_t *res, const char *case_no)
{
    return res_error(res, 404, "not_found", "case_no", "no case %.64s", case_no);
}

/*
 * The access-code throttle. 1: too many wrong codes (429 in res), 0: go
 * on, -1: database trouble (res filled).
 */
static int throttle_check(intake_worker_t *w, const char *case_no, intake_result_t *res)
{
    char errstr[512], win[16], max[16];
    snprintf(win, sizeof(win), "%d", INTAKE_CODE_WINDOW_S);
    snprintf(max, sizeof(max), "%d", INTAKE_CODE_FAILURES_MAX);
    const char *v[3] = {case_no, win, max};
    PGresult *pr =
        pg_exec_stmt(w->pg, &st_throttle_check, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr) {
        res_db(w, res, "access code throttle", errstr);
        return -1;
    }
    int rc = 0;
    if (PQntuples(pr) == 1) {
        int after = atoi(pg_get(pr, 0, "retry_after"));
        res_error(res, 429, "too_many_attempts", "access_code",
                  "too many wrong access codes for this case; try again in %d seconds",
                  after > 0 ? after : 1);
        res->retry_after = after > 0 ? after : 1;
        rc = 1;
    }
    PQclear(pr);
    return rc;
}

/* Count a wrong code (best effort: a failure to count is logged, the answer stays 404). */
static void throttle_fail(intake_worker_t *w, const char *case_no)
{
    char errstr[512], win[16];
    snprintf(win, sizeof(win), "%d", INTAKE_CODE_WINDOW_S);
    const char *v[2] = {case_no, win};
    PGresult *pr =
        pg_exec_stmt(w->pg, &st_throttle_fail, v, PGRES_COMMAND_OK, errstr, sizeof(errstr));
    if (!pr) {
        errstr[strcspn(errstr, "\n")] = '\0';
        LOG_WARN("cannot count a wrong access code: %s", errstr);
    }
    PQclear(pr);
}

/* SHA-256 hex of a normalised access code; -1 if it is malformed (a wrong code). */
static int code_hash_hex(const char *code, char hex[65])
{
    char norm[16];
    uint8_t sum[32];
    if (intake_access_code_normalize(code, norm, sizeof(norm)) != 0)
        return -1;
    crypto_sha256(norm, strlen(norm), sum);
    util_hex(sum, 32, hex);
    return 0;
}

int intake_case_get(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                    const char *access_code, const char *reveal_reason, intake_result_t *res)
{
    char errstr[512], hex[65] = "";
    PGresult *pr = NULL;
    case_view_t view;
    json_t *revealed = NULL;
    int reveal = tok && reveal_reason;

    if (!tok) {
        int t = throttle_check(w, case_no, res);
        if (t != 0)
            return 0;
        /* a malformed code is a wrong code: the same 404, no hint */
        if (code_hash_hex(access_code, hex) != 0) {
            throttle_fail(w, case_no);
            return not_found(res, case_no);
        }
    }
    if ((tok ? tx_staff(w, tok, errstr, sizeof(errstr))
             : intake_tx_begin(w, "complainant", NULL, hex, errstr, sizeof(errstr))) != 0)
        return res_db(w, res, "case read", errstr);
    if (tok) {
        const char *v[2] = {case_no, intake_token_scope(tok)};
        pr = pg_exec_stmt(w->pg, &st_case_staff, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        view = tok->role == INTAKE_ROLE_HANDLER ? VIEW_HANDLER : VIEW_STAFF;
    } else {
        const char *v[2] = {case_no, hex};
        pr = pg_exec_stmt(w->pg, &st_case_public, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        view = VIEW_COMPLAINANT;
    }
    if (!pr)
        return res_db(w, res, "case read", errstr);
    if (PQntuples(pr) != 1) {
        PQclear(pr);
        pg_rollback(w->pg);
        if (!tok)
            throttle_fail(w, case_no);
        return not_found(res, case_no);
    }
    revealed = json_array();
    json_t *body = case_json(w->app, pr, view, reveal, revealed);
    if (reveal && json_array_size(revealed) > 0) {
        /* the unmasking and its audit row commit together, or the reader sees nothing */
        char *fields = NULL, *reason = crypto_mask_text(reveal_reason);
        size_t i;
        json_t *f;
        size_t cap = 64, o = 1;
        fields = malloc(cap);
        if (fields && reason) {
            fields[0] = '{';
            json_array_foreach(revealed, i, f)
            {
                o += (size_t)snprintf(fields + o, cap - o, "%s%s", i ? "," : "",
                                      json_string_value(f));
            }
            snprintf(fields + o, cap - o, "}");
            const char *v[5] = {tok->id, tok->role_name, pg_get(pr, 0, "id"), fields, reason};
            PGresult *lr =
                pg_exec_stmt(w->pg, &st_reveal_log, v, PGRES_COMMAND_OK, errstr, sizeof(errstr));
            if (lr)
                LOG_INFO("contact data of case %s revealed to token %s", case_no, tok->id);
            PQclear(lr);
            free(fields);
            free(reason);
            if (!lr) {
                json_decref(body);
                json_decref(revealed);
                PQclear(pr);
                return res_db(w, res, "contact access log", errstr);
            }
        } else {
            free(fields);
            free(reason);
            json_decref(body);
            json_decref(revealed);
            PQclear(pr);
            pg_rollback(w->pg);
            return res_error(res, 500, "internal", NULL, "internal error: out of memory");
        }
    }
    json_decref(revealed);
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0) {
        json_decref(body);
        PQclear(pr);
        return res_db(w, res, "case read commit", errstr);
    }
    intake_result_clear(res);
    res->status = 200;
    res->body = body;
    res_etag(res, strtoll(pg_get(pr, 0, "version"), NULL, 10));
    PQclear(pr);
    return 0;
}

int intake_case_history(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                        intake_result_t *res)
{
    char errstr[512];
    const char *v[2] = {case_no, intake_token_scope(tok)};
    if (tx_staff(w, tok, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "history read", errstr);
    PGresult *pr = pg_exec_stmt(w->pg, &st_history, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return res_db(w, res, "history read", errstr);
    pg_rollback(w->pg); /* read only */
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

/* One column of row i as JSON: NULL -> null. */
static json_t *row_str(const PGresult *pr, int i, const char *col)
{
    return pg_isnull(pr, i, col) ? json_null() : json_string(pg_get(pr, i, col));
}

int intake_case_list(intake_worker_t *w, const intake_token_t *tok, const intake_list_query_t *q,
                     intake_result_t *res)
{
    char errstr[512], limit[16], cursor[160];
    snprintf(limit, sizeof(limit), "%d", q->limit + 1); /* one more: is there a next page? */
    const char *v[12] = {q->statuses,
                         q->department,
                         q->category,
                         q->channel,
                         q->district,
                         q->overdue < 0 ? NULL
                         : q->overdue   ? "true"
                                        : "false",
                         q->created_from,
                         q->created_to,
                         q->cursor_at,
                         q->cursor_id,
                         intake_token_scope(tok),
                         limit};
    if (tx_staff(w, tok, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "case list", errstr);
    PGresult *pr = pg_exec_stmt(w->pg, &st_list, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return res_db(w, res, "case list", errstr);
    pg_rollback(w->pg); /* read only */
    int n = PQntuples(pr), more = n > q->limit;
    if (more)
        n = q->limit;
    json_t *items = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            items,
            json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "case_no",
                      row_str(pr, i, "case_no"), "status", row_str(pr, i, "status"), "version",
                      (json_int_t)strtoll(pg_get(pr, i, "version"), NULL, 10), "channel",
                      row_str(pr, i, "channel"), "title", row_str(pr, i, "title"), "department",
                      row_str(pr, i, "department"), "category", row_str(pr, i, "category"),
                      "urgency", row_str(pr, i, "urgency"), "district_code",
                      row_str(pr, i, "district_code"), "created_at", row_str(pr, i, "created_at"),
                      "updated_at", row_str(pr, i, "updated_at"), "overdue",
                      strcmp(pg_get(pr, i, "overdue"), "t") == 0));
    json_t *next = json_null();
    if (more && n > 0) {
        /* opaque to clients: hex of "<created_at with microseconds>|<id>" */
        char raw[128];
        int len = snprintf(raw, sizeof(raw), "%s|%s", pg_get(pr, n - 1, "cursor_at"),
                           pg_get(pr, n - 1, "id"));
        if (len > 0 && (size_t)len < sizeof(raw) && (size_t)len * 2 < sizeof(cursor)) {
            util_hex((const uint8_t *)raw, (size_t)len, cursor);
            next = json_string(cursor);
        }
    }
    PQclear(pr);
    intake_result_clear(res);
    res->status = 200;
    res->body = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
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

static const action_rule_t *action_rule(intake_action_kind_t kind)
{
    for (const action_rule_t *ar = action_rules; ar->kind; ar++)
        if (ar->kind == kind)
            return ar;
    return NULL;
}

int intake_action_roles(intake_action_kind_t kind)
{
    const action_rule_t *ar = action_rule(kind);
    return ar ? ar->roles : 0;
}

static int in_set(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(*set, s) == 0)
            return 1;
    return 0;
}

/* What one action writes besides the status and its event; the payloads live in the caller. */
typedef struct action_payloads {
    Kesu__V1__CaseAccepted acc;
    Kesu__V1__CaseResolved resd;
    Kesu__V1__ProgressNoted note;
    Kesu__V1__InfoRequested info;
    Kesu__V1__ExtensionRequested extr;
    Kesu__V1__ExtensionDecided extd;
    Kesu__V1__CaseReturned ret;
    Kesu__V1__CaseSupervised sup;
    Kesu__V1__CaseMerged mer;
    Kesu__V1__CaseRejected rej;
    Kesu__V1__CaseWithdrawn wd;
} action_payloads_t;

/*
 * Put the action's payload into pe. masked is the action's free text,
 * masked (may be NULL). @returns 0.
 */
static int action_payload(const intake_action_t *a, action_payloads_t *p, proto_env_t *pe,
                          const char *dept, const char *handler, char *masked,
                          int64_t pending_minutes, const char *into_no)
{
    char *text = masked ? masked : "";
    switch (a->kind) {
    case INTAKE_ACTION_ACCEPT:
        p->acc = (Kesu__V1__CaseAccepted)KESU__V1__CASE_ACCEPTED__INIT;
        p->acc.department = (char *)dept;
        p->acc.handler = (char *)handler;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED, &p->acc.base);
    case INTAKE_ACTION_RESOLVE:
        p->resd = (Kesu__V1__CaseResolved)KESU__V1__CASE_RESOLVED__INIT;
        p->resd.measures = (char *)a->measures;
        p->resd.reply = text;
        p->resd.department = (char *)dept;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &p->resd.base);
    case INTAKE_ACTION_NOTE:
        p->note = (Kesu__V1__ProgressNoted)KESU__V1__PROGRESS_NOTED__INIT;
        p->note.note = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_PROGRESS_NOTED, &p->note.base);
    case INTAKE_ACTION_REQUEST_INFO:
        p->info = (Kesu__V1__InfoRequested)KESU__V1__INFO_REQUESTED__INIT;
        p->info.question = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_INFO_REQUESTED, &p->info.base);
    case INTAKE_ACTION_EXTENSION_REQUEST:
        p->extr = (Kesu__V1__ExtensionRequested)KESU__V1__EXTENSION_REQUESTED__INIT;
        p->extr.extra_minutes = a->extra_minutes;
        p->extr.reason = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_REQUESTED,
                                     &p->extr.base);
    case INTAKE_ACTION_EXTENSION_DECIDE:
        p->extd = (Kesu__V1__ExtensionDecided)KESU__V1__EXTENSION_DECIDED__INIT;
        p->extd.approved = a->approved;
        /* approving without a figure grants what was asked */
        p->extd.extra_minutes =
            a->approved ? (a->extra_minutes > 0 ? a->extra_minutes : pending_minutes) : 0;
        p->extd.note = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_DECIDED,
                                     &p->extd.base);
    case INTAKE_ACTION_RETURN:
        p->ret = (Kesu__V1__CaseReturned)KESU__V1__CASE_RETURNED__INIT;
        p->ret.department = (char *)dept;
        p->ret.reason = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED, &p->ret.base);
    case INTAKE_ACTION_SUPERVISE:
        p->sup = (Kesu__V1__CaseSupervised)KESU__V1__CASE_SUPERVISED__INIT;
        p->sup.note = text;
        p->sup.level = a->level;
        p->sup.department = (char *)dept;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_SUPERVISED, &p->sup.base);
    case INTAKE_ACTION_MERGE:
        p->mer = (Kesu__V1__CaseMerged)KESU__V1__CASE_MERGED__INIT;
        p->mer.into_case_no = (char *)into_no;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_MERGED, &p->mer.base);
    case INTAKE_ACTION_REJECT:
        p->rej = (Kesu__V1__CaseRejected)KESU__V1__CASE_REJECTED__INIT;
        p->rej.reason = text;
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED, &p->rej.base);
    case INTAKE_ACTION_WITHDRAW:
        p->wd = (Kesu__V1__CaseWithdrawn)KESU__V1__CASE_WITHDRAWN__INIT;
        p->wd.reason = masked ? masked : "complainant_request";
        return proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN, &p->wd.base);
    }
    return -1;
}

/* The row an action writes besides status/version; NULL statement: nothing. */
static PGresult *action_update(intake_worker_t *w, const intake_action_t *a, const char *id,
                               const char *masked, const char *into_id, char *errstr,
                               size_t errstr_size)
{
    char num[24];
    switch (a->kind) {
    case INTAKE_ACTION_ACCEPT: {
        const char *v[1] = {id};
        return pg_exec_stmt(w->pg, &st_accepted, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_RESOLVE: {
        const char *v[3] = {id, a->measures, masked};
        return pg_exec_stmt(w->pg, &st_resolved, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_REQUEST_INFO: {
        const char *v[1] = {id};
        return pg_exec_stmt(w->pg, &st_info_requested, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_EXTENSION_REQUEST: {
        snprintf(num, sizeof(num), "%" PRId64, a->extra_minutes);
        const char *v[3] = {id, num, masked};
        return pg_exec_stmt(w->pg, &st_extension_asked, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_EXTENSION_DECIDE: {
        const char *v[1] = {id};
        return pg_exec_stmt(w->pg, &st_extension_decided, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_SUPERVISE: {
        snprintf(num, sizeof(num), "%d", a->level);
        const char *v[2] = {id, num};
        return pg_exec_stmt(w->pg, &st_supervised, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_MERGE: {
        const char *v[3] = {id, into_id, masked};
        return pg_exec_stmt(w->pg, &st_merged, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_RETURN:
    case INTAKE_ACTION_REJECT:
    case INTAKE_ACTION_WITHDRAW: {
        const char *v[2] = {id, masked};
        return pg_exec_stmt(w->pg, &st_status_reason, v, PGRES_COMMAND_OK, errstr, errstr_size);
    }
    case INTAKE_ACTION_NOTE:
        break;
    }
    return PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
}

int intake_case_action(intake_worker_t *w, const intake_token_t *tok, const char *case_no,
                       const intake_action_t *a, int64_t expect_version, intake_result_t *res)
{
    char errstr[512], id[37], no[64], dept[128], handler[128], status[24];
    char into_id[37] = "", into_no[64] = "";
    PGresult *pr = NULL;
    proto_env_t pe;
    casestore_result_t out;
    action_payloads_t pl;
    int64_t version, pending = 0;
    int info_pending;
    char *masked = NULL;
    const action_rule_t *ar = action_rule(a->kind);

    if (!ar)
        return res_error(res, 400, "invalid_value", "action", "unknown action");
    if (!(ar->roles & tok->role))
        return res_error(res, 403, "forbidden", "action", "a %s token may not %s a case",
                         tok->role_name, a->name);
    if (tx_staff(w, tok, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "action", errstr);
    /* row-level security hides other departments' rows; the WHERE clause says it again */
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
    snprintf(status, sizeof(status), "%s", pg_get(pr, 0, "status"));
    version = strtoll(pg_get(pr, 0, "version"), NULL, 10);
    if (!pg_isnull(pr, 0, "extension_pending_minutes"))
        pending = strtoll(pg_get(pr, 0, "extension_pending_minutes"), NULL, 10);
    info_pending = strcmp(pg_get(pr, 0, "info_pending"), "t") == 0;
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
    if (!in_set(status, ar->from)) {
        pg_rollback(w->pg);
        return res_error(res, 409, "invalid_transition", "status",
                         "case %s is %s; %s needs it to be %s", no, status, a->name, ar->needs);
    }
    /* what the action itself depends on, beyond the status */
    if (a->kind == INTAKE_ACTION_EXTENSION_REQUEST && pending > 0) {
        pg_rollback(w->pg);
        return res_error(res, 409, "extension_pending", "action",
                         "case %s already has an extension request waiting for a decision", no);
    }
    if (a->kind == INTAKE_ACTION_EXTENSION_DECIDE && pending == 0) {
        pg_rollback(w->pg);
        return res_error(res, 409, "no_extension_pending", "action",
                         "case %s has no extension request to decide", no);
    }
    if (a->kind == INTAKE_ACTION_REQUEST_INFO && info_pending) {
        pg_rollback(w->pg);
        return res_error(res, 409, "info_pending", "action",
                         "case %s is already waiting for the complainant's answer", no);
    }
    if (a->kind == INTAKE_ACTION_MERGE) {
        const char *mv[1] = {a->into_case_no};
        if (strcmp(a->into_case_no, no) == 0) {
            pg_rollback(w->pg);
            return res_error(res, 422, "invalid_value", "into_case_no",
                             "a case cannot be merged into itself");
        }
        pr = pg_exec_stmt(w->pg, &st_merge_target, mv, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!pr)
            return res_db(w, res, "merge target", errstr);
        int found = PQntuples(pr) == 1;
        int open = found && casefsm_parse(pg_get(pr, 0, "status")) >= 0 &&
                   !casefsm_terminal((case_status_t)casefsm_parse(pg_get(pr, 0, "status")));
        if (found) {
            snprintf(into_id, sizeof(into_id), "%s", pg_get(pr, 0, "id"));
            snprintf(into_no, sizeof(into_no), "%s", pg_get(pr, 0, "case_no"));
        }
        PQclear(pr);
        pr = NULL;
        if (!open) {
            pg_rollback(w->pg);
            return res_error(res, 422, found ? "invalid_target" : "not_found", "into_case_no",
                             found ? "the case to merge into is no longer open"
                                   : "no open case %.64s to merge into",
                             a->into_case_no);
        }
    }

    const char *text = a->kind == INTAKE_ACTION_RESOLVE ? a->reply : a->text;
    if (text && !(masked = crypto_mask_text(text))) {
        pg_rollback(w->pg);
        return res_error(res, 500, "internal", NULL, "internal error: out of memory");
    }
    /* a progress note on an accepted case starts the work: accepted -> in_progress */
    const char *to = ar->to;
    if (a->kind == INTAKE_ACTION_NOTE && strcmp(status, "accepted") == 0)
        to = "in_progress";
    casestore_change_t ch = {.case_id = id,
                             .from = ar->from,
                             .to = to,
                             .expect_version = expect_version,
                             .bump_version = to == NULL,
                             .producer = INTAKE_PRODUCER,
                             .actor = tok->id,
                             .topic = KAFKA_TOPIC_INTAKE};
    proto_env_init(&pe, INTAKE_PRODUCER);
    action_payload(a, &pl, &pe, dept, handler, masked, pending, into_no);
    int crc = casestore_apply(w->pg, &ch, &pe, &out, errstr, sizeof(errstr));
    switch (crc) {
    case CASESTORE_OK:
        break;
    case CASESTORE_NOT_FOUND:
        pg_rollback(w->pg);
        free(masked);
        return not_found(res, case_no);
    case CASESTORE_CONFLICT:
        pg_rollback(w->pg);
        free(masked);
        return res_error(res, 409, "invalid_transition", "status",
                         "case %s is %s; %s needs it to be %s", no, out.status_before, a->name,
                         ar->needs);
    case CASESTORE_STALE:
        pg_rollback(w->pg);
        free(masked);
        return res_error(res, 409, "stale_version", "If-Match", "%s", errstr);
    default:
        free(masked);
        return res_db(w, res, "action apply", errstr);
    }
    pr = action_update(w, a, id, masked, into_id, errstr, sizeof(errstr));
    free(masked);
    if (!pr)
        return res_db(w, res, "action update", errstr);
    PQclear(pr);
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "action commit", errstr);

    log_ctx_set(id, pe.event_id, NULL, -1, -1);
    LOG_INFO("case %s %s: %s -> %s by token %s", no, a->name, out.status_before, out.status_after,
             tok->id);
    log_ctx_clear();
    change_answer(res, no, &out);
    res->outcome = a->name;
    return 0;
}

/*
 * Open the complainant's transaction and lock their case: throttle, code,
 * row. 0: locked (id/no/status/info_pending filled), 1: answered in res
 * (404, 429, 503, ...).
 */
static int complainant_lock(intake_worker_t *w, const char *case_no, const char *access_code,
                            char id[37], char no[64], char status[24], int *info_pending,
                            intake_result_t *res)
{
    char errstr[512], hex[65];
    uint8_t sum[32];
    if (throttle_check(w, case_no, res) != 0)
        return 1;
    /* the same 404 for an unknown case and a wrong code: codes cannot be probed */
    if (!access_code[0]) {
        throttle_fail(w, case_no);
        not_found(res, case_no);
        return 1;
    }
    crypto_sha256(access_code, strlen(access_code), sum);
    util_hex(sum, 32, hex);
    if (intake_tx_begin(w, "complainant", NULL, hex, errstr, sizeof(errstr)) != 0) {
        res_db(w, res, "complainant", errstr);
        return 1;
    }
    const char *v[2] = {case_no, hex};
    PGresult *pr =
        pg_exec_stmt(w->pg, &st_complainant_lock, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr) {
        res_db(w, res, "complainant lock", errstr);
        return 1;
    }
    if (PQntuples(pr) != 1) {
        PQclear(pr);
        pg_rollback(w->pg);
        throttle_fail(w, case_no);
        not_found(res, case_no);
        return 1;
    }
    snprintf(id, 37, "%s", pg_get(pr, 0, "id"));
    snprintf(no, 64, "%s", pg_get(pr, 0, "case_no"));
    snprintf(status, 24, "%s", pg_get(pr, 0, "status"));
    if (info_pending)
        *info_pending = strcmp(pg_get(pr, 0, "info_pending"), "t") == 0;
    PQclear(pr);
    return 0;
}

int intake_case_supplement(intake_worker_t *w, const char *case_no, const intake_supplement_t *s,
                           intake_result_t *res)
{
    char errstr[512], id[37], no[64], status[24];
    int info_pending = 0;
    proto_env_t pe;
    casestore_result_t out;
    char *text = NULL, *att = NULL;
    PGresult *pr = NULL;

    if (complainant_lock(w, case_no, s->access_code, id, no, status, &info_pending, res) != 0)
        return 0;
    if (!in_set(status, from_supplementable)) {
        pg_rollback(w->pg);
        return res_error(res, 409, "invalid_transition", "status",
                         "case %s is %s; a supplement is taken while the case is still open", no,
                         status);
    }
    text = crypto_mask_text(s->text);
    att = s->attachments ? json_dumps(s->attachments, JSON_COMPACT) : strdup("[]");
    if (!text || !att) {
        free(text);
        free(att);
        pg_rollback(w->pg);
        return res_error(res, 500, "internal", NULL, "internal error: out of memory");
    }
    Kesu__V1__SupplementReceived sr = KESU__V1__SUPPLEMENT_RECEIVED__INIT;
    sr.text = text;
    sr.answers_request = info_pending;
    casestore_change_t ch = {.case_id = id,
                             .from = from_supplementable,
                             .bump_version = 1,
                             .producer = INTAKE_PRODUCER,
                             .actor = "complainant",
                             .topic = KAFKA_TOPIC_INTAKE};
    proto_env_init(&pe, INTAKE_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_SUPPLEMENT_RECEIVED, &sr.base);
    int crc = casestore_apply(w->pg, &ch, &pe, &out, errstr, sizeof(errstr));
    free(text);
    if (crc != CASESTORE_OK) {
        free(att);
        if (crc == CASESTORE_ERROR)
            return res_db(w, res, "supplement apply", errstr);
        pg_rollback(w->pg);
        return res_error(res, 409, "invalid_transition", "status", "case %s: %s", no, errstr);
    }
    const char *uv[2] = {id, att};
    pr = pg_exec_stmt(w->pg, &st_supplement_set, uv, PGRES_COMMAND_OK, errstr, sizeof(errstr));
    free(att);
    if (!pr)
        return res_db(w, res, "supplement", errstr);
    PQclear(pr);
    if (pg_commit(w->pg, errstr, sizeof(errstr)) != 0)
        return res_db(w, res, "supplement commit", errstr);
    log_ctx_set(id, pe.event_id, NULL, -1, -1);
    LOG_INFO("case %s supplement received%s", no, info_pending ? " (answers a request)" : "");
    log_ctx_clear();
    change_answer(res, no, &out);
    res->outcome = "supplement";
    return 0;
}

int intake_case_feedback(intake_worker_t *w, const char *case_no, const intake_feedback_t *f,
                         intake_result_t *res)
{
    char errstr[512], id[37], no[64], status[24], sat[8], count[16];
    PGresult *pr = NULL;
    proto_env_t pe;
    casestore_result_t out;
    char *comment = NULL;

    if (complainant_lock(w, case_no, f->access_code, id, no, status, NULL, res) != 0)
        return 0;
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
