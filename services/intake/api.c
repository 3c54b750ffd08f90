/*
 * api: the helpers every route file shares (see api.h). A handler never
 * waits on anything but its own thread's PostgreSQL connection; when
 * PostgreSQL is down it answers 503 database_unavailable with Retry-After
 * at once.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "routes.h"

/* Longest route table the metrics are registered for. */
#define API_ROUTES_MAX 64

/* Looked up once (metrics_* takes a mutex); updates are lock-free. */
static metrics_histogram_t *m_latency[API_ROUTES_MAX];
static metrics_counter_t *m_status[API_ROUTES_MAX][3]; /* 2xx, 4xx, 5xx */
static int m_routes;                                   /* entries of intake_routes covered */

static const char *const submission_outcomes[] = {"created", "replayed", "duplicate", "key_reused",
                                                  NULL};
static metrics_counter_t *m_submissions[4];

void intake_metrics_init(void)
{
    static const char *const cls[3] = {"2xx", "4xx", "5xx"};
    char labels[256];
    int i;
    for (i = 0; intake_routes[i].method && i < API_ROUTES_MAX; i++) {
        const http_route_t *rt = &intake_routes[i];
        snprintf(labels, sizeof(labels), "route=\"%s %s\"", rt->method, rt->pattern);
        m_latency[i] = metrics_histogram("kesu_intake_request_seconds",
                                         "Time to answer a public API request", labels);
        for (int k = 0; k < 3; k++) {
            snprintf(labels, sizeof(labels), "route=\"%s %s\",class=\"%s\"", rt->method,
                     rt->pattern, cls[k]);
            m_status[i][k] =
                metrics_counter("kesu_intake_requests_total",
                                "Public API requests answered, by status class", labels);
        }
    }
    if (intake_routes[i].method)
        LOG_WARN("more than %d routes: the later ones have no metrics", API_ROUTES_MAX);
    m_routes = i;
    for (int k = 0; submission_outcomes[k]; k++) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", submission_outcomes[k]);
        m_submissions[k] = metrics_counter("kesu_intake_submissions_total",
                                           "Complaint submissions, by what became of them", labels);
    }
    intake_store_metrics_init();
}

void api_observe(http_handler_fn fn, int status, int64_t t0)
{
    /* a linear scan of a few dozen pointers: cheaper than any lock */
    for (int i = 0; i < m_routes; i++) {
        if (intake_routes[i].fn != fn)
            continue;
        metrics_histogram_observe(m_latency[i], (double)(util_mono_ms() - t0) / 1000.0);
        metrics_counter_add(m_status[i][status >= 500 ? 2 : status >= 400 ? 1 : 0], 1);
        return;
    }
}

void api_count_submission(const char *outcome)
{
    for (int k = 0; outcome && submission_outcomes[k]; k++)
        if (strcmp(outcome, submission_outcomes[k]) == 0 && m_submissions[k])
            metrics_counter_add(m_submissions[k], 1);
}

int api_fail(http_req_t *r, int status, const char *code, const char *field, const char *fmt, ...)
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

/* {"code","field","message"}; field left out when empty */
static json_t *field_error_json(const char *code, const char *field, const char *message)
{
    json_t *o = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (o && field && *field)
        json_object_set_new(o, "field", json_string(field));
    return o;
}

int api_fail_verr(http_req_t *r, const intake_verr_t *e)
{
    int status = e->status ? e->status : 400;
    json_t *errors = json_array();
    for (int i = 0; i < e->count && i < INTAKE_VERR_MAX; i++)
        json_array_append_new(
            errors, field_error_json(e->list[i].code, e->list[i].field, e->list[i].message));
    json_t *body = json_pack("{s:o, s:o}", "error", field_error_json(e->code, e->field, e->message),
                             "errors", errors);
    if (!body)
        return api_fail(r, status, e->code, e->field, "%s", e->message);
    http_reply_json(r, status, body);
    return status;
}

int api_fail_db_down(http_req_t *r)
{
    return api_fail(r, 503, "database_unavailable", NULL,
                    "the case store is unavailable; retry in %d seconds", INTAKE_RETRY_AFTER_S);
}

int api_fail_db(intake_worker_t *w, http_req_t *r, const char *what, const char *errstr)
{
    char line[512];
    /* only the first line: DETAIL lines can quote row values */
    snprintf(line, sizeof(line), "%s", errstr ? errstr : "");
    line[strcspn(line, "\n")] = '\0';
    pg_rollback(w->pg);
    if (pg_failure_transient(w->pg)) {
        LOG_WARN("%s: database unavailable (sqlstate %s): %s", what, w->pg->sqlstate, line);
        return api_fail_db_down(r);
    }
    LOG_ERROR("%s failed (sqlstate %s): %s", what, w->pg->sqlstate, line);
    return api_fail(r, 500, "internal", NULL, "internal error; it has been logged");
}

void api_wake_relay(intake_worker_t *w)
{
    if (w->app->wake)
        w->app->wake(w->app->wake_arg);
}

int api_reply_result(intake_worker_t *w, http_req_t *r, intake_result_t *res)
{
    if (res->wrote_outbox)
        api_wake_relay(w);
    if (res->status >= 400) {
        if (res->retry_after > 0) {
            char ra[16];
            snprintf(ra, sizeof(ra), "%d", res->retry_after);
            http_reply_header(r, "Retry-After", ra);
        }
        return api_fail(r, res->status, res->code, res->field, "%s", res->message);
    }
    if (res->etag[0])
        http_reply_header(r, "ETag", res->etag);
    if (res->location[0])
        http_reply_header(r, "Location", res->location);
    http_reply_json(r, res->status, res->body);
    res->body = NULL;
    return res->status;
}

int api_authenticate(intake_worker_t *w, http_req_t *r, int roles, intake_token_t *tok)
{
    char errstr[512] = "";
    const char *authz = http_req_header(r, "Authorization");
    if (!intake_worker_db(w))
        return api_fail_db_down(r);
    int rc = intake_worker_auth(w, authz, tok, errstr, sizeof(errstr));
    errstr[strcspn(errstr, "\n")] = '\0'; /* libpq's hint lines stay out of the log */
    switch (rc) {
    case INTAKE_AUTH_OK:
        break;
    case INTAKE_AUTH_MISSING:
        http_reply_header(r, "WWW-Authenticate", "Bearer");
        return api_fail(r, 401, "unauthorized", "Authorization",
                        "this endpoint needs an API token: Authorization: Bearer <token>");
    case INTAKE_AUTH_INVALID:
        http_reply_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return api_fail(r, 401, "unauthorized", "Authorization",
                        "the bearer token is malformed, unknown or revoked");
    default:
        if (pg_failure_transient(w->pg)) {
            LOG_WARN("token lookup: database unavailable: %s", errstr);
            return api_fail_db_down(r);
        }
        LOG_ERROR("token lookup failed: %s", errstr);
        return api_fail(r, 500, "internal", NULL, "internal error; it has been logged");
    }
    if (!(tok->role & roles))
        return api_fail(r, 403, "forbidden", "Authorization", "a %s token may not do this",
                        tok->role_name);
    return 0;
}

int api_tx_begin(intake_worker_t *w, const intake_token_t *tok, char *errstr, size_t errstr_size)
{
    if (!tok)
        return intake_tx_begin(w, "anonymous", NULL, NULL, errstr, errstr_size);
    return intake_tx_begin(w, tok->role_name, tok->department, NULL, errstr, errstr_size);
}

int api_tx_begin_public(intake_worker_t *w, const char *access_hash_hex, char *errstr,
                        size_t errstr_size)
{
    return intake_tx_begin(w, "complainant", NULL, access_hash_hex, errstr, errstr_size);
}

const char *api_body(http_req_t *r, const char *media_type, size_t max, size_t *len, int *status)
{
    const char *ct = http_req_header(r, "Content-Type");
    size_t n = strlen(media_type);
    while (ct && (*ct == ' ' || *ct == '\t'))
        ct++;
    if (!ct || strncasecmp(ct, media_type, n) != 0 ||
        (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ')) {
        *status = api_fail(r, 415, "unsupported_media_type", "Content-Type",
                           "send the body as Content-Type: %s", media_type);
        return NULL;
    }
    const char *body = http_req_body(r, len);
    if (*len > max) {
        *status = api_fail(r, 413, "payload_too_large", NULL,
                           "the body is %zu bytes; this route takes at most %zu", *len, max);
        return NULL;
    }
    return body;
}

const char *api_case_no_param(http_req_t *r, int *status)
{
    const char *no = http_req_param(r, 0);
    if (!no || !*no || strlen(no) > API_CASE_NO_MAX) {
        *status = api_fail(r, 404, "not_found", "case_no", "no such case");
        return NULL;
    }
    return no;
}
