/*
 * api: the route handlers (see api.h). A handler never waits on anything
 * but its own thread's PostgreSQL connection; when PostgreSQL is down it
 * answers 503 database_unavailable with Retry-After at once.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "validate.h"

/* Longest case number we look up; anything longer cannot exist. */
#define INTAKE_CASE_NO_MAX 64

typedef enum {
    ROUTE_COMPLAINTS,
    ROUTE_CASE,
    ROUTE_HISTORY,
    ROUTE_ACTIONS,
    ROUTE_FEEDBACK,
    ROUTE__COUNT
} route_id_t;

static const char *const route_names[ROUTE__COUNT] = {"complaints", "case", "history", "actions",
                                                      "feedback"};

/* Looked up once (metrics_* takes a mutex); updates are lock-free. */
static metrics_histogram_t *m_latency[ROUTE__COUNT];
static metrics_counter_t *m_status[ROUTE__COUNT][3]; /* 2xx, 4xx, 5xx */
static metrics_counter_t *m_cases[4];                /* created, replayed, duplicate, reused */

void intake_metrics_init(void)
{
    static const char *const cls[3] = {"2xx", "4xx", "5xx"};
    static const char *const outcomes[4] = {"created", "replayed", "duplicate", "key_reused"};
    char labels[96];
    for (int i = 0; i < ROUTE__COUNT; i++) {
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[i]);
        m_latency[i] = metrics_histogram("kesu_intake_request_seconds",
                                         "Time to answer a public API request", labels);
        for (int k = 0; k < 3; k++) {
            snprintf(labels, sizeof(labels), "route=\"%s\",class=\"%s\"", route_names[i], cls[k]);
            m_status[i][k] =
                metrics_counter("kesu_intake_requests_total",
                                "Public API requests answered, by status class", labels);
        }
    }
    for (int k = 0; k < 4; k++) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcomes[k]);
        m_cases[k] = metrics_counter("kesu_intake_submissions_total",
                                     "Complaint submissions, by what became of them", labels);
    }
}

static void observe(route_id_t route, int status, int64_t t0)
{
    metrics_histogram_observe(m_latency[route], (double)(util_mono_ms() - t0) / 1000.0);
    metrics_counter_add(m_status[route][status >= 500 ? 2 : status >= 400 ? 1 : 0], 1);
}

static int fail(http_req_t *r, int status, const char *code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Reply with an error; @returns the status, for the metrics. */
static int fail(http_req_t *r, int status, const char *code, const char *field, const char *fmt,
                ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status == 503) {
        char ra[8];
        snprintf(ra, sizeof(ra), "%d", INTAKE_RETRY_AFTER_S);
        http_reply_header(r, "Retry-After", ra);
    }
    http_reply_error(r, status, code, field && *field ? field : NULL, "%s", msg);
    return status;
}

static int fail_verr(http_req_t *r, const intake_verr_t *e)
{
    return fail(r, 400, e->code, e->field, "%s", e->message);
}

static int fail_db_down(http_req_t *r)
{
    return fail(r, 503, "database_unavailable", NULL,
                "the case store is unavailable; retry in %d seconds", INTAKE_RETRY_AFTER_S);
}

/* Reply with a use case's outcome (takes its body). @returns the status. */
static int reply_result(intake_worker_t *w, http_req_t *r, intake_result_t *res)
{
    if (res->wrote_outbox && w->app->wake)
        w->app->wake(w->app->wake_arg);
    if (res->status >= 400)
        return fail(r, res->status, res->code, res->field, "%s", res->message);
    if (res->etag[0])
        http_reply_header(r, "ETag", res->etag);
    if (res->location[0])
        http_reply_header(r, "Location", res->location);
    http_reply_json(r, res->status, res->body);
    res->body = NULL;
    return res->status;
}

/*
 * Authenticate and authorise. @returns 0 with tok filled when the request
 * may go on, otherwise the status already replied (401, 403, 503, 500).
 */
static int authenticate(intake_worker_t *w, http_req_t *r, int roles, intake_token_t *tok)
{
    char errstr[512] = "";
    const char *authz = http_req_header(r, "Authorization");
    if (!intake_worker_db(w))
        return fail_db_down(r);
    int rc = intake_auth_lookup(w->pg, authz, tok, errstr, sizeof(errstr));
    /*
     * The first query of a request is where a dropped idle connection (server
     * restart, idle timeout) shows; reconnect and ask once more rather than
     * answer 503 for a database that is actually there.
     */
    if (rc == INTAKE_AUTH_ERROR && PQstatus(w->pg->conn) != CONNECTION_OK && intake_worker_db(w))
        rc = intake_auth_lookup(w->pg, authz, tok, errstr, sizeof(errstr));
    errstr[strcspn(errstr, "\n")] = '\0'; /* libpq's hint lines stay out of the log */
    switch (rc) {
    case INTAKE_AUTH_OK:
        break;
    case INTAKE_AUTH_MISSING:
        http_reply_header(r, "WWW-Authenticate", "Bearer");
        return fail(r, 401, "unauthorized", "Authorization",
                    "this endpoint needs an API token: Authorization: Bearer <token>");
    case INTAKE_AUTH_INVALID:
        http_reply_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return fail(r, 401, "unauthorized", "Authorization",
                    "the bearer token is malformed, unknown or revoked");
    default:
        if (pg_failure_transient(w->pg)) {
            LOG_WARN("token lookup: database unavailable: %s", errstr);
            return fail_db_down(r);
        }
        LOG_ERROR("token lookup failed: %s", errstr);
        return fail(r, 500, "internal", NULL, "internal error; it has been logged");
    }
    if (!(tok->role & roles))
        return fail(r, 403, "forbidden", "Authorization", "a %s token may not do this",
                    tok->role_name);
    return 0;
}

/* The {case_no} capture; NULL (404 replied, *status set) if it cannot be a case number. */
static const char *case_no_param(http_req_t *r, int *status)
{
    const char *no = http_req_param(r, 0);
    if (!no || !*no || strlen(no) > INTAKE_CASE_NO_MAX) {
        *status = fail(r, 404, "not_found", "case_no", "no such case");
        return NULL;
    }
    return no;
}

/* ------------------------------------------------------ POST /v1/complaints */

static int do_complaints(intake_worker_t *w, http_req_t *r)
{
    intake_token_t tok;
    intake_complaint_t c;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    uint8_t sha[32];
    size_t len = 0;
    int st;

    if ((st = authenticate(w, r,
                           INTAKE_ROLE_AGENT | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN |
                               INTAKE_ROLE_INTEGRATOR,
                           &tok)) != 0)
        return st;
    const char *idem = http_req_header(r, "Idempotency-Key");
    if (idem && intake_idem_key_check(idem, &e) != 0)
        return fail_verr(r, &e);
    const char *body = http_req_body(r, &len);
    if (intake_complaint_parse(body, len, &c, &e) != 0)
        return fail_verr(r, &e);
    /* the replay check compares the exact bytes: same key + same body = same request */
    crypto_sha256(body, len, sha);
    intake_case_create(w, &tok, &c, idem, sha, &res);
    intake_complaint_free(&c);
    if (res.outcome && strcmp(res.outcome, "created") == 0)
        metrics_counter_add(m_cases[0], 1);
    else if (res.outcome && strcmp(res.outcome, "replayed") == 0)
        metrics_counter_add(m_cases[1], 1);
    else if (res.outcome && strcmp(res.outcome, "duplicate") == 0)
        metrics_counter_add(m_cases[2], 1);
    else if (res.status == 422)
        metrics_counter_add(m_cases[3], 1);
    return reply_result(w, r, &res);
}

/* ----------------------------------------------------- GET /v1/cases/{no} */

static int do_case(intake_worker_t *w, http_req_t *r)
{
    intake_token_t tok;
    intake_result_t res = {0};
    int st = 0;
    const char *no = case_no_param(r, &st);
    if (!no)
        return st;
    if (http_req_header(r, "Authorization")) {
        if ((st = authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
            return st;
        intake_case_get(w, &tok, no, NULL, &res);
        return reply_result(w, r, &res);
    }
    const char *code = http_req_query(r, "access_code");
    if (!code) {
        http_reply_header(r, "WWW-Authenticate", "Bearer");
        return fail(r, 401, "unauthorized", "access_code",
                    "give the case's access code (?access_code=...) or an API token");
    }
    if (!intake_worker_db(w))
        return fail_db_down(r);
    intake_case_get(w, NULL, no, code, &res);
    return reply_result(w, r, &res);
}

/* --------------------------------------------- GET /v1/cases/{no}/history */

static int do_history(intake_worker_t *w, http_req_t *r)
{
    intake_token_t tok;
    intake_result_t res = {0};
    int st = 0;
    const char *no = case_no_param(r, &st);
    if (!no)
        return st;
    if ((st = authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    intake_case_history(w, &tok, no, &res);
    return reply_result(w, r, &res);
}

/* -------------------------------------------- POST /v1/cases/{no}/actions */

static int do_actions(intake_worker_t *w, http_req_t *r)
{
    intake_token_t tok;
    intake_action_t a;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    int64_t expect = 0;
    size_t len = 0;
    int st = 0;
    const char *no = case_no_param(r, &st);
    if (!no)
        return st;
    if ((st = authenticate(w, r, INTAKE_ROLE_HANDLER | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN,
                           &tok)) != 0)
        return st;
    const char *if_match = http_req_header(r, "If-Match");
    if (if_match && (expect = intake_if_match_parse(if_match, &e)) < 0)
        return fail_verr(r, &e);
    const char *body = http_req_body(r, &len);
    if (intake_action_parse(body, len, &a, &e) != 0)
        return fail_verr(r, &e);
    intake_case_action(w, &tok, no, &a, expect, &res);
    intake_action_free(&a);
    return reply_result(w, r, &res);
}

/* ------------------------------------------- POST /v1/cases/{no}/feedback */

static int do_feedback(intake_worker_t *w, http_req_t *r)
{
    intake_feedback_t f;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    size_t len = 0;
    int st = 0;
    const char *no = case_no_param(r, &st);
    if (!no)
        return st;
    const char *body = http_req_body(r, &len);
    if (intake_feedback_parse(body, len, &f, &e) != 0)
        return fail_verr(r, &e);
    if (!intake_worker_db(w)) {
        intake_feedback_free(&f);
        return fail_db_down(r);
    }
    intake_case_feedback(w, no, &f, &res);
    intake_feedback_free(&f);
    return reply_result(w, r, &res);
}

/* ------------------------------------------------------------- the table */

#define INTAKE_HANDLER(fn, route)                                                                  \
    static void h_##fn(http_req_t *r, void *opaque)                                                \
    {                                                                                              \
        int64_t t0 = util_mono_ms();                                                               \
        observe(route, do_##fn(opaque, r), t0);                                                    \
    }

INTAKE_HANDLER(complaints, ROUTE_COMPLAINTS)
INTAKE_HANDLER(case, ROUTE_CASE)
INTAKE_HANDLER(history, ROUTE_HISTORY)
INTAKE_HANDLER(actions, ROUTE_ACTIONS)
INTAKE_HANDLER(feedback, ROUTE_FEEDBACK)

const http_route_t intake_routes[] = {
    {"POST", "/v1/complaints", h_complaints},      {"GET", "/v1/cases/{}", h_case},
    {"GET", "/v1/cases/{}/history", h_history},    {"POST", "/v1/cases/{}/actions", h_actions},
    {"POST", "/v1/cases/{}/feedback", h_feedback}, {NULL, NULL, NULL},
};
