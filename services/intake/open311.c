/*
 * open311: the GeoReport v2 routes (see open311.h, docs/api/open311.md).
 *
 * Who sees what (docs/decisions/0007-open311-visibility.md): the service
 * list is public. Reads of requests and updates list the cases that came
 * in over Open311; without an api_key (the spec lets clients read without
 * one) or for another integrator's requests a row shows only what the
 * public feed shows - id, status, service, department, times - while the
 * integrator that submitted a request, and staff within their scope, also
 * see its description, address, coordinates and media URL. Contact data is
 * never shown by this door.
 *
 * A read with an api_key runs in api_tx_begin, so PostgreSQL's row-level
 * security scopes it like any other staff read; the public read selects
 * the public columns only (st_o311_requests_public).
 */
#include "open311.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "crypto.h"
#include "log.h"
#include "open311_form.h"
#include "open311_render.h"
#include "open311_services.h"

/* RFC 3339 UTC, whatever the session time zone (the spec's W3C format). */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Whether a row is shown in full to this caller: parameters t (token id), m (mode), d (department).
 */
#define FULL_VIEW(t, m, d)                                                                         \
    "(o.token_id = " t " OR " m " = 'all' OR (" m " = 'department' AND c.department = " d          \
    ")) AS full_view"

static const pg_stmt_t st_o311_insert = {
    "open311_insert",
    "INSERT INTO open311_requests (case_id, service_code, token_id, media_url, address_id) "
    "VALUES ($1::uuid, $2, $3, $4, $5) ON CONFLICT (case_id) DO NOTHING",
    5};

/*
 * GET requests: $1 ids (override the rest), $2..$3 requested window, $4
 * service codes, $5 statuses; arrays as literals, NULL for no filter.
 */
#define REQUESTS_FROM                                                                              \
    "FROM open311_requests o JOIN cases c ON c.id = o.case_id "                                    \
    "WHERE CASE WHEN $1::text[] IS NOT NULL THEN c.case_no = ANY($1::text[]) "                     \
    "ELSE c.created_at >= $2::timestamptz AND c.created_at < $3::timestamptz END "                 \
    "AND ($4::text[] IS NULL OR o.service_code = ANY($4::text[])) "                                \
    "AND ($5::text[] IS NULL OR c.status = ANY($5::text[])) "                                      \
    "ORDER BY c.created_at DESC, c.case_no LIMIT 1000"
#define REQUESTS_PUBLIC_COLUMNS                                                                    \
    "SELECT c.case_no, c.status, o.service_code, coalesce(c.department, '') AS department, " TS(   \
        "c.created_at") " AS requested, " TS("c.updated_at") " AS updated "

/* With an api_key, inside api_tx_begin: row-level security scopes it like any staff read. */
static const pg_stmt_t st_o311_requests = {
    "open311_requests",
    REQUESTS_PUBLIC_COLUMNS
    ", c.body, c.address, o.address_id, c.lat, c.lon, o.media_url, " FULL_VIEW(
        "$6", "$7", "$8") " " REQUESTS_FROM,
    8};

/*
 * Without an api_key: the public columns only, the same rows for everyone.
 * It runs as the connection's own role (outside api_tx_begin, whose
 * "public" role is the complainant with an access code) and cannot leak
 * text, place or contact data because it never selects them.
 */
static const pg_stmt_t st_o311_requests_public = {
    "open311_requests_public", REQUESTS_PUBLIC_COLUMNS ", false AS full_view " REQUESTS_FROM, 5};

/* A token is the case id, known only to the submitter; it tells the case number, nothing else. */
static const pg_stmt_t st_o311_token = {
    "open311_token",
    "SELECT c.case_no FROM open311_requests o JOIN cases c ON c.id = o.case_id "
    "WHERE o.case_id = $1::uuid",
    1};

/*
 * Every status change of the Open311 cases in the window $1..$2: an event
 * whose status differs from the one before it in the case's history. The
 * history positions have no gaps, so "before it" is seq - 1, found by the
 * primary key (it was lag() over each such case's whole history: a scan of
 * case_events that grew with the table, docs/performance.md).
 */
#define UPDATES_FROM                                                                               \
    "FROM case_events ev JOIN cases c ON c.id = ev.case_id "                                       \
    "JOIN open311_requests o ON o.case_id = ev.case_id "                                           \
    "LEFT JOIN case_events p ON p.case_id = ev.case_id AND p.seq = ev.seq - 1 "                    \
    "WHERE ev.occurred_at >= $1::timestamptz AND ev.occurred_at < $2::timestamptz "                \
    "AND (p.status IS NULL OR p.status <> ev.status) "                                             \
    "ORDER BY ev.occurred_at, c.case_no, ev.seq LIMIT 1000"
#define UPDATES_PUBLIC_COLUMNS                                                                     \
    "SELECT ev.event_id, ev.status, c.case_no, " TS("ev.occurred_at") " AS updated "

static const pg_stmt_t st_o311_updates = {
    "open311_updates",
    UPDATES_PUBLIC_COLUMNS ", coalesce(ev.summary->>'reply', ev.summary->>'note', '') AS text, "
                           "o.media_url, " FULL_VIEW("$3", "$4", "$5") " " UPDATES_FROM,
    5};

/* Without an api_key, as st_o311_requests_public: no text, no media. */
static const pg_stmt_t st_o311_updates_public = {
    "open311_updates_public", UPDATES_PUBLIC_COLUMNS ", false AS full_view " UPDATES_FROM, 2};

/* ------------------------------------------------------------- replies */

/* The format of the request: the extension of its last path segment. */
static open311_fmt_t req_format(http_req_t *r)
{
    open311_fmt_t fmt = OPEN311_JSON;
    const char *p = http_req_path(r);
    const char *last = strrchr(p, '/');
    open311_split_format(last ? last + 1 : p, &fmt);
    return fmt;
}

/* Reply with a document (taken); root/item name the XML elements. @returns status. */
static int o311_reply(http_req_t *r, open311_fmt_t fmt, int status, json_t *doc, const char *root,
                      const char *item)
{
    http_reply_header(r, "Cache-Control", "no-store");
    if (fmt == OPEN311_JSON) {
        /* coordinates as stored (39.91), not as the nearest double prints (39.909999...) */
        char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(OPEN311_REAL_DIGITS));
        json_decref(doc);
        http_reply_text(r, status, "application/json; charset=utf-8", text ? text : "[]",
                        text ? strlen(text) : 2);
        free(text);
        return status;
    }
    strbuf_t b;
    strbuf_init(&b);
    open311_xml_render(doc, root, item, &b);
    json_decref(doc);
    http_reply_text(r, status, "text/xml; charset=utf-8", b.s, b.len);
    strbuf_free(&b);
    return status;
}

static int o311_fail(http_req_t *r, open311_fmt_t fmt, int status, const char *f, ...)
    __attribute__((format(printf, 4, 5)));

/* The spec's error answer: [{"code":status,"description":"..."}]. @returns status. */
static int o311_fail(http_req_t *r, open311_fmt_t fmt, int status, const char *f, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(msg, sizeof(msg), f, ap);
    va_end(ap);
    if (!util_utf8_valid(msg, strlen(msg)))
        snprintf(msg, sizeof(msg), "the request was refused");
    if (status == 503) {
        char ra[8];
        snprintf(ra, sizeof(ra), "%d", INTAKE_RETRY_AFTER_S);
        http_reply_header(r, "Retry-After", ra);
    }
    return o311_reply(r, fmt, status, json_pack("[{s:i, s:s}]", "code", status, "description", msg),
                      "errors", "error");
}

static int o311_fail_db(intake_worker_t *w, http_req_t *r, open311_fmt_t fmt, const char *what,
                        const char *errstr)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", errstr ? errstr : "");
    line[strcspn(line, "\n")] = '\0'; /* DETAIL lines can quote row values */
    pg_rollback(w->pg);
    if (pg_failure_transient(w->pg)) {
        LOG_WARN("open311 %s: database unavailable (sqlstate %s): %s", what, w->pg->sqlstate, line);
        return o311_fail(r, fmt, 503, "the case store is unavailable; retry in %d seconds",
                         INTAKE_RETRY_AFTER_S);
    }
    LOG_ERROR("open311 %s failed (sqlstate %s): %s", what, w->pg->sqlstate, line);
    return o311_fail(r, fmt, 500, "internal error; it has been logged");
}

/* ------------------------------------------------------------- api_key */

/* What a caller may see in full (FULL_VIEW's $6..$8). */
typedef struct o311_viewer {
    intake_token_t tok; /**< filled when has_tok */
    int has_tok;        /**< a valid api_key was given */
    const char *mode;   /**< "none", "own", "department", "all" */
} o311_viewer_t;

/*
 * Authenticate an api_key with the auth module (the same hashed-token
 * lookup as a bearer token). @returns 0 with tok filled, or the status
 * replied: 403 for a missing, unknown or revoked key or a role not in roles.
 */
static int o311_auth(intake_worker_t *w, http_req_t *r, open311_fmt_t fmt, const char *key,
                     int roles, intake_token_t *tok)
{
    char errstr[512] = "", authz[300];
    if (!key || !*key)
        return o311_fail(r, fmt, 403, "api_key is required: an integrator token of this server");
    if (strlen(key) > 256)
        return o311_fail(r, fmt, 403, "api_key is not valid");
    if (!intake_worker_db(w))
        return o311_fail(r, fmt, 503, "the case store is unavailable; retry in %d seconds",
                         INTAKE_RETRY_AFTER_S);
    snprintf(authz, sizeof(authz), "Bearer %s", key);
    int rc = intake_worker_auth(w, authz, tok, errstr, sizeof(errstr));
    if (rc == INTAKE_AUTH_ERROR)
        return o311_fail_db(w, r, fmt, "api_key lookup", errstr);
    if (rc != INTAKE_AUTH_OK)
        return o311_fail(r, fmt, 403, "api_key is not valid (unknown or revoked)");
    if (!(tok->role & roles))
        return o311_fail(r, fmt, 403, "a %s key may not do this", tok->role_name);
    return 0;
}

/* An optional api_key on a read. @returns 0 with v filled, or the status replied. */
static int o311_viewer(intake_worker_t *w, http_req_t *r, open311_fmt_t fmt, o311_viewer_t *v)
{
    const char *key = http_req_query(r, "api_key");
    memset(v, 0, sizeof(*v));
    v->mode = "none";
    if (!key)
        return intake_worker_db(w)
                   ? 0
                   : o311_fail(r, fmt, 503, "the case store is unavailable; retry in %d seconds",
                               INTAKE_RETRY_AFTER_S);
    int st = o311_auth(w, r, fmt, key, INTAKE_ROLES_READ | INTAKE_ROLE_INTEGRATOR, &v->tok);
    if (st)
        return st;
    v->has_tok = 1;
    if (v->tok.role == INTAKE_ROLE_INTEGRATOR)
        v->mode = "own";
    else if (intake_token_scope(&v->tok))
        v->mode = "department";
    else
        v->mode = "all";
    return 0;
}

/* ---------------------------------------------------------- services */

static const open311_catalogue_t *catalogue_or_fail(http_req_t *r, open311_fmt_t fmt, int *st)
{
    const open311_catalogue_t *cat = open311_catalogue_get();
    if (!cat)
        *st = o311_fail(r, fmt, 503, "the service list is unavailable; it has been logged");
    return cat;
}

API_HANDLER(api_open311_services)
{
    open311_fmt_t fmt = req_format(r);
    int st = 0;
    const open311_catalogue_t *cat = catalogue_or_fail(r, fmt, &st);
    (void)w;
    if (!cat)
        return st;
    return o311_reply(r, fmt, 200, json_deep_copy(cat->services), "services", "service");
}

API_HANDLER(api_open311_service_definition)
{
    open311_fmt_t fmt = req_format(r);
    int st = 0;
    char code[OPEN311_CODE_MAX + 1];
    (void)w;
    const char *p = http_req_param(r, 0);
    int n = open311_split_format(p, &fmt);
    if (n < 0 || n > OPEN311_CODE_MAX)
        return o311_fail(r, fmt, 404,
                         "no such service; a service is /services/{code}.json or .xml");
    snprintf(code, sizeof(code), "%.*s", n, p);
    const open311_catalogue_t *cat = catalogue_or_fail(r, fmt, &st);
    if (!cat)
        return st;
    json_t *def = open311_catalogue_definition(cat, code);
    if (!def)
        return o311_fail(r, fmt, 404, "service_code %s is not offered (see GET services)", code);
    return o311_reply(r, fmt, 200, json_deep_copy(def), "service_definition", NULL);
}

/* -------------------------------------------------------- POST requests */

/* An intake field path as the Open311 client named it. */
static const char *open311_field_name(const char *intake_field)
{
    static const char *const map[][2] = {
        {"body", "description"},
        {"title", "attribute[title]"},
        {"external_ref", "attribute[external_ref]"},
        {"language", "attribute[language]"},
        {"confidential", "attribute[confidential]"},
        {"anonymous", "attribute[anonymous]"},
        {"location.address", "address_string"},
        {"location.district_code", "attribute[district_code]"},
        {"location.lat", "lat"},
        {"location.lon", "long"},
        {"complainant.name", "first_name"},
        {"complainant.phone", "phone"},
        {"complainant.email", "email"},
        {NULL, NULL},
    };
    for (int i = 0; map[i][0]; i++)
        if (strcmp(map[i][0], intake_field) == 0)
            return map[i][1];
    return intake_field;
}

/* An intake message speaks of its own field names; say the client's instead. */
static void verr_message(const intake_verr_t *e, char *out, size_t out_size)
{
    const char *name = open311_field_name(e->field);
    const char *dot = strrchr(e->field, '.');
    const char *shown = dot ? dot + 1 : e->field;
    const char *hit = *e->field ? strstr(e->message, e->field) : NULL;
    size_t flen = strlen(e->field);
    if (!hit && *shown && (hit = strstr(e->message, shown)))
        flen = strlen(shown);
    if (hit)
        snprintf(out, out_size, "%.*s%s%s", (int)(hit - e->message), e->message, name, hit + flen);
    else
        snprintf(out, out_size, "%s: %s", *name ? name : "body", e->message);
}

/* "true"/"false" attribute into a JSON boolean; -1 for another value. */
static int attr_bool(const open311_request_t *q, const char *code, json_t *obj, const char *key)
{
    const char *v = open311_request_attr(q, code);
    if (!v)
        return 0;
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
        return -1;
    json_object_set_new(obj, key, json_boolean(strcmp(v, "true") == 0));
    return 0;
}

static const char *const known_attrs[] = {
    "title", "district_code", "external_ref", "language", "confidential", "anonymous", NULL};

/*
 * The complaint POST /v1/complaints would receive for this request, as the
 * JSON text intake_complaint_parse checks. @returns the text (caller frees)
 * or NULL with *bad_attr naming an attribute that is not offered or not
 * true/false.
 */
static char *complaint_json(const open311_request_t *q, const char *service_name,
                            const char **bad_attr)
{
    json_t *c = json_object(), *loc = json_object(), *who = json_object();
    char *text = NULL, name[512] = "";
    *bad_attr = NULL;
    for (size_t i = 0; i < q->attr_n; i++) {
        int ok = 0;
        for (int k = 0; known_attrs[k]; k++) {
            size_t n = strlen(known_attrs[k]);
            ok |= strncmp(q->attrs[i].code, known_attrs[k], n) == 0 && q->attrs[i].code[n] == ']';
        }
        if (!ok) {
            *bad_attr = "attribute";
            goto out;
        }
    }
    json_object_set_new(c, "channel", json_string("open311"));
    const char *title = open311_request_attr(q, "title");
    json_object_set_new(c, "title", json_string(title ? title : service_name));
    json_object_set_new(c, "body", json_string(q->description));
    if (open311_request_attr(q, "external_ref"))
        json_object_set_new(c, "external_ref",
                            json_string(open311_request_attr(q, "external_ref")));
    if (open311_request_attr(q, "language"))
        json_object_set_new(c, "language", json_string(open311_request_attr(q, "language")));
    if (attr_bool(q, "confidential", c, "confidential") != 0) {
        *bad_attr = "attribute[confidential]";
        goto out;
    }
    if (attr_bool(q, "anonymous", c, "anonymous") != 0) {
        *bad_attr = "attribute[anonymous]";
        goto out;
    }
    if (q->address_string)
        json_object_set_new(loc, "address", json_string(q->address_string));
    if (open311_request_attr(q, "district_code"))
        json_object_set_new(loc, "district_code",
                            json_string(open311_request_attr(q, "district_code")));
    if (q->has_coordinates) {
        json_object_set_new(loc, "lat", json_real(q->lat));
        json_object_set_new(loc, "lon", json_real(q->lon));
    }
    if (json_object_size(loc))
        json_object_set(c, "location", loc);
    /* a Chinese name is family name first; Open311 splits it into first and last */
    if (q->first_name || q->last_name)
        snprintf(name, sizeof(name), "%s%s%s", q->last_name ? q->last_name : "",
                 q->last_name && q->first_name ? " " : "", q->first_name ? q->first_name : "");
    if (*name)
        json_object_set_new(who, "name", json_string(name));
    if (q->phone)
        json_object_set_new(who, "phone", json_string(q->phone));
    if (q->email)
        json_object_set_new(who, "email", json_string(q->email));
    if (json_object_size(who))
        json_object_set(c, "complainant", who);
    text = json_dumps(c, JSON_COMPACT);
out:
    json_decref(c);
    json_decref(loc);
    json_decref(who);
    return text;
}

/* Record the Open311 side of a case (idempotent: a replay heals a lost row). */
static int o311_record(intake_worker_t *w, const char *case_id, const open311_request_t *q,
                       const intake_token_t *tok, char *errstr, size_t errstr_size)
{
    const char *v[5] = {case_id, q->service_code, tok->id, q->media_url, q->address_id};
    if (api_tx_begin(w, tok, errstr, errstr_size) != 0)
        return -1;
    PGresult *res = pg_exec_stmt(w->pg, &st_o311_insert, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res) {
        pg_rollback(w->pg);
        return -1;
    }
    PQclear(res);
    return pg_commit(w->pg, errstr, errstr_size);
}

static int is_form(const char *ct)
{
    static const char want[] = "application/x-www-form-urlencoded";
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = sizeof(want) - 1;
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

API_HANDLER(api_open311_requests_post)
{
    open311_fmt_t fmt = req_format(r);
    open311_form_t form = {0};
    open311_request_t q;
    open311_err_t fe = {0};
    intake_token_t tok;
    intake_complaint_t c;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    uint8_t sha[32];
    char errstr[512], msg[512];
    size_t len = 0;
    char *cj = NULL;
    const char *bad = NULL;
    int st;

    if (!is_form(http_req_header(r, "Content-Type")))
        return o311_fail(r, fmt, 415,
                         "POST requests takes Content-Type: application/x-www-form-urlencoded");
    const char *idem = http_req_header(r, "Idempotency-Key");
    if (idem && intake_idem_key_check(idem, &e) != 0)
        return o311_fail(r, fmt, 400, "Idempotency-Key: %s", e.message);
    const char *body = http_req_body(r, &len);
    if (open311_form_parse(body, len, &form, &fe) != 0)
        return o311_fail(r, fmt, 400, "%s%s%s", fe.field, *fe.field ? ": " : "", fe.message);
    /* who asks comes first: a caller without a valid key learns nothing about the form rules */
    if ((st = o311_auth(w, r, fmt, open311_form_get(&form, "api_key"),
                        INTAKE_ROLE_INTEGRATOR | INTAKE_ROLE_AGENT | INTAKE_ROLE_SUPERVISOR |
                            INTAKE_ROLE_ADMIN,
                        &tok)) != 0)
        goto out;
    if (open311_request_parse(&form, &q, &fe) != 0) {
        st = o311_fail(r, fmt, 400, "%s: %s", fe.field, fe.message);
        goto out;
    }
    const open311_catalogue_t *cat = catalogue_or_fail(r, fmt, &st);
    if (!cat)
        goto out;
    const char *service_name = open311_catalogue_name(cat, q.service_code);
    if (!service_name) {
        st = o311_fail(r, fmt, 400, "service_code: %s is not offered (see GET services)",
                       q.service_code);
        goto out;
    }
    if (!(cj = complaint_json(&q, service_name, &bad))) {
        st = o311_fail(r, fmt, 400, "%s: %s", bad,
                       strcmp(bad, "attribute") == 0
                           ? "an attribute this service does not define (see its service "
                             "definition)"
                           : "must be true or false");
        goto out;
    }
    if (intake_complaint_parse(cj, strlen(cj), &c, &e) != 0) {
        verr_message(&e, msg, sizeof(msg));
        st = o311_fail(r, fmt, 400, "%s", msg);
        goto out;
    }
    /* the replay check compares the exact bytes the client sent */
    crypto_sha256(body, len, sha);
    intake_case_create(w, &tok, &c, idem, sha, &res);
    intake_complaint_free(&c);
    api_count_submission(res.status == 422 ? "key_reused" : res.outcome);
    if (res.wrote_outbox)
        api_wake_relay(w);
    if (res.status >= 400) {
        if (res.status == 503 || res.status == 500)
            st = o311_fail(r, fmt, res.status, "%s", res.message);
        else
            st = o311_fail(r, fmt, 400, "%s%s%s", res.field ? res.field : "", res.field ? ": " : "",
                           res.message);
        goto out;
    }
    const char *case_id = json_string_value(json_object_get(res.body, "case_id"));
    const char *case_no = json_string_value(json_object_get(res.body, "case_no"));
    const char *code = json_string_value(json_object_get(res.body, "access_code"));
    if (o311_record(w, case_id, &q, &tok, errstr, sizeof(errstr)) != 0) {
        /* the case exists and is answered; a retry of the same request writes the row */
        errstr[strcspn(errstr, "\n")] = '\0';
        LOG_WARN("open311: case %s created but its service_code was not recorded: %s", case_no,
                 errstr);
        pg_rollback(w->pg);
    }
    json_t *doc = json_pack("[{s:s, s:s, s:s, s:s?, s:n}]", "service_request_id", case_no, "token",
                            case_id, "service_notice",
                            json_is_true(json_object_get(res.body, "duplicate"))
                                ? "already received: this is the request submitted before"
                                : "received; the access code lets the complainant follow it",
                            "access_code", code, "account_id");
    st = o311_reply(r, fmt, res.status, doc, "service_requests", "request");
out:
    intake_result_clear(&res);
    open311_form_free(&form);
    free(cj);
    return st;
}

/* --------------------------------------------------------- GET requests */

/* A PostgreSQL array literal of items, each quoted. */
static void array_literal(strbuf_t *b, const char *const *items, int n)
{
    strbuf_append(b, "{", 1);
    for (int i = 0; i < n; i++) {
        strbuf_append(b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                strbuf_append(b, "\\", 1);
            strbuf_append(b, p, 1);
        }
        strbuf_append(b, "\"", 1);
    }
    strbuf_append(b, "}", 1);
}

/* One request row as the spec's request object. */
static json_t *request_row(const open311_catalogue_t *cat, PGresult *pr, int i)
{
    const char *status = pg_get(pr, i, "status");
    const char *code = pg_get(pr, i, "service_code");
    const char *dept = pg_get(pr, i, "department");
    const open311_status_t *s = open311_status_of(status);
    const char *sname = cat ? open311_catalogue_name(cat, code) : NULL;
    const char *dname = cat ? open311_catalogue_department(cat, dept) : NULL;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:n}", "service_request_id",
                  pg_get(pr, i, "case_no"), "status", s->open311, "status_notes", s->note,
                  "service_name", sname ? sname : code, "service_code", code, "agency_responsible",
                  dname ? dname : dept, "requested_datetime", pg_get(pr, i, "requested"),
                  "updated_datetime", pg_get(pr, i, "updated"), "expected_datetime");
    if (strcmp(pg_get(pr, i, "full_view"), "t") == 0) {
        static const char *const cols[][2] = {{"body", "description"},
                                              {"address", "address"},
                                              {"address_id", "address_id"},
                                              {"media_url", "media_url"}};
        for (int k = 0; k < 4; k++)
            if (!pg_isnull(pr, i, cols[k][0]))
                json_object_set_new(o, cols[k][1], json_string(pg_get(pr, i, cols[k][0])));
        if (!pg_isnull(pr, i, "lat")) {
            json_object_set_new(o, "lat", json_real(strtod(pg_get(pr, i, "lat"), NULL)));
            json_object_set_new(o, "long", json_real(strtod(pg_get(pr, i, "lon"), NULL)));
        }
    }
    return o;
}

/* A time-window filter: start_date/end_date, the spec's 90-day default and limit. */
static int window(http_req_t *r, open311_fmt_t fmt, char *from, char *to, size_t n, int *st)
{
    const char *s = http_req_query(r, "start_date"), *e = http_req_query(r, "end_date");
    int64_t a = 0, b = 0;
    if (s && open311_parse_datetime(s, &a) != 0) {
        *st = o311_fail(r, fmt, 400, "start_date: not a W3C date-time (2026-01-31T08:00:00Z)");
        return -1;
    }
    if (e && open311_parse_datetime(e, &b) != 0) {
        *st = o311_fail(r, fmt, 400, "end_date: not a W3C date-time (2026-01-31T08:00:00Z)");
        return -1;
    }
    if (!e)
        b = s ? a + OPEN311_WINDOW_MS : util_now_ms() + 1000;
    if (!s)
        a = b - OPEN311_WINDOW_MS;
    if (b < a) {
        *st = o311_fail(r, fmt, 400, "end_date: is before start_date");
        return -1;
    }
    if (b - a > OPEN311_WINDOW_MS) {
        *st = o311_fail(r, fmt, 400, "end_date: start_date to end_date may span at most 90 days");
        return -1;
    }
    util_fmt_time(a, from, n);
    util_fmt_time(b, to, n);
    return 0;
}

/* GET requests and GET requests/{id}: one query, one rendering. */
static int requests_query(intake_worker_t *w, http_req_t *r, open311_fmt_t fmt, const char *one_id)
{
    o311_viewer_t v;
    char errstr[512], from[40] = "", to[40] = "";
    char idbuf[8192], codebuf[2048];
    const char *ids[OPEN311_MAX_RESULTS], *codes[64], *statuses[32];
    strbuf_t a_ids, a_codes, a_status;
    int nid = 0, ncode = 0, nstatus = 0, st;
    PGresult *pr = NULL;
    json_t *doc = NULL;

    strbuf_init(&a_ids);
    strbuf_init(&a_codes);
    strbuf_init(&a_status);
    if ((st = o311_viewer(w, r, fmt, &v)) != 0)
        goto out;
    const char *p_ids = one_id ? one_id : http_req_query(r, "service_request_id");
    if (p_ids &&
        (nid = open311_split_list(p_ids, idbuf, sizeof(idbuf), ids, OPEN311_MAX_RESULTS)) < 0) {
        st =
            o311_fail(r, fmt, 400, "service_request_id: a comma list of at most %d ids, none empty",
                      OPEN311_MAX_RESULTS);
        goto out;
    }
    if (nid == 0) {
        const char *p_codes = http_req_query(r, "service_code");
        const char *p_status = http_req_query(r, "status");
        char sbuf[64];
        const char *words[4];
        if (p_codes &&
            (ncode = open311_split_list(p_codes, codebuf, sizeof(codebuf), codes, 64)) < 0) {
            st = o311_fail(r, fmt, 400, "service_code: a comma list of at most 64 codes");
            goto out;
        }
        if (p_status) {
            int nw = open311_split_list(p_status, sbuf, sizeof(sbuf), words, 4);
            for (int k = 0; k < nw; k++) {
                const char *const *list = open311_status_filter(words[k]);
                if (!list) {
                    nw = -1;
                    break;
                }
                for (; *list && nstatus < 32; list++)
                    statuses[nstatus++] = *list;
            }
            if (nw < 0) {
                st = o311_fail(r, fmt, 400, "status: open, closed or open,closed");
                goto out;
            }
        }
        if (window(r, fmt, from, to, sizeof(from), &st) != 0)
            goto out;
        if (ncode)
            array_literal(&a_codes, codes, ncode);
        if (nstatus)
            array_literal(&a_status, statuses, nstatus);
    } else {
        array_literal(&a_ids, ids, nid);
    }
    const char *vals[8] = {nid ? a_ids.s : NULL,
                           nid ? NULL : from,
                           nid ? NULL : to,
                           ncode ? a_codes.s : NULL,
                           nstatus ? a_status.s : NULL,
                           v.has_tok ? v.tok.id : "",
                           v.mode,
                           v.has_tok ? v.tok.department : ""};
    if (v.has_tok && api_tx_begin(w, &v.tok, errstr, sizeof(errstr)) != 0) {
        st = o311_fail_db(w, r, fmt, "requests", errstr);
        goto out;
    }
    pr = pg_exec_stmt(w->pg, v.has_tok ? &st_o311_requests : &st_o311_requests_public, vals,
                      PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr) {
        st = o311_fail_db(w, r, fmt, "requests", errstr);
        goto out;
    }
    pg_rollback(w->pg); /* read only: nothing to commit (a no-op outside a transaction) */
    if (one_id && PQntuples(pr) == 0) {
        st = o311_fail(r, fmt, 404, "no such service request");
        goto out;
    }
    const open311_catalogue_t *cat = open311_catalogue_get();
    doc = json_array();
    for (int i = 0; i < PQntuples(pr); i++)
        json_array_append_new(doc, request_row(cat, pr, i));
    st = o311_reply(r, fmt, 200, doc, "service_requests", "request");
    doc = NULL;
out:
    PQclear(pr);
    json_decref(doc);
    strbuf_free(&a_ids);
    strbuf_free(&a_codes);
    strbuf_free(&a_status);
    return st;
}

API_HANDLER(api_open311_requests_get)
{
    return requests_query(w, r, req_format(r), NULL);
}

API_HANDLER(api_open311_request_get)
{
    open311_fmt_t fmt = req_format(r);
    char id[API_CASE_NO_MAX + 1];
    const char *p = http_req_param(r, 0);
    int n = open311_split_format(p, &fmt);
    /* one id, so a comma inside it cannot turn the lookup into a list */
    if (n < 0 || n > API_CASE_NO_MAX || memchr(p, ',', (size_t)n))
        return o311_fail(r, fmt, 404, "no such service request");
    snprintf(id, sizeof(id), "%.*s", n, p);
    return requests_query(w, r, fmt, id);
}

/* ------------------------------------------------------------- tokens */

API_HANDLER(api_open311_token_get)
{
    open311_fmt_t fmt = req_format(r);
    char token[40], errstr[512];
    const char *p = http_req_param(r, 0);
    int n = open311_split_format(p, &fmt);
    if (n != 36)
        return o311_fail(r, fmt, 404, "no such token");
    snprintf(token, sizeof(token), "%.*s", n, p);
    if (!util_is_uuid(token))
        return o311_fail(r, fmt, 404, "no such token");
    if (!intake_worker_db(w))
        return o311_fail(r, fmt, 503, "the case store is unavailable; retry in %d seconds",
                         INTAKE_RETRY_AFTER_S);
    const char *v[1] = {token};
    PGresult *pr = pg_exec_stmt(w->pg, &st_o311_token, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return o311_fail_db(w, r, fmt, "token", errstr);
    int st;
    if (PQntuples(pr) == 0)
        st = o311_fail(r, fmt, 404, "no such token");
    else
        st = o311_reply(r, fmt, 200,
                        json_pack("[{s:s, s:s}]", "service_request_id", pg_get(pr, 0, "case_no"),
                                  "token", token),
                        "service_requests", "request");
    PQclear(pr);
    return st;
}

/* ------------------------------------------------- servicerequestupdates */

API_HANDLER(api_open311_updates)
{
    open311_fmt_t fmt = req_format(r);
    o311_viewer_t v;
    char errstr[512], from[40], to[40];
    int st;
    if ((st = o311_viewer(w, r, fmt, &v)) != 0)
        return st;
    if (window(r, fmt, from, to, sizeof(from), &st) != 0)
        return st;
    const char *vals[5] = {from, to, v.has_tok ? v.tok.id : "", v.mode,
                           v.has_tok ? v.tok.department : ""};
    if (v.has_tok ? api_tx_begin(w, &v.tok, errstr, sizeof(errstr))
                  : pg_begin(w->pg, errstr, sizeof(errstr)))
        return o311_fail_db(w, r, fmt, "updates", errstr);
    /* The window's bounds decide the plan: a custom plan walks the window's
     * events in time order and stops at the LIMIT; the plan cache's generic
     * one (chosen after five runs, its range estimate a guess) joined every
     * event of the window first: 678 ms and 2.4 million buffers for 90 days
     * at 2 million cases, against 44 ms (docs/performance.md). */
    if (pg_command(w->pg, "SET LOCAL plan_cache_mode = force_custom_plan", errstr,
                   sizeof(errstr)) != 0)
        return o311_fail_db(w, r, fmt, "updates", errstr);
    PGresult *pr = pg_exec_stmt(w->pg, v.has_tok ? &st_o311_updates : &st_o311_updates_public, vals,
                                PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!pr)
        return o311_fail_db(w, r, fmt, "updates", errstr);
    pg_rollback(w->pg);
    json_t *doc = json_array();
    for (int i = 0; i < PQntuples(pr); i++) {
        const char *status = pg_get(pr, i, "status");
        const open311_status_t *s = open311_status_of(status);
        int full = strcmp(pg_get(pr, i, "full_view"), "t") == 0;
        const char *text = pg_get(pr, i, "text");
        json_array_append_new(doc, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "update_id",
                                             pg_get(pr, i, "event_id"), "service_request_id",
                                             pg_get(pr, i, "case_no"), "status", s->fms,
                                             "updated_datetime", pg_get(pr, i, "updated"),
                                             "description", full && *text ? text : s->note,
                                             "media_url", full ? pg_get(pr, i, "media_url") : "",
                                             "external_status_code", status));
    }
    PQclear(pr);
    return o311_reply(r, fmt, 200, doc, "service_request_updates", "request_update");
}

API_HANDLER(api_open311_not_found)
{
    (void)w;
    return o311_fail(r, req_format(r), 404,
                     "no such resource; see docs/api/open311.md for the Open311 routes");
}
