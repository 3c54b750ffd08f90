/*
 * api_cases: reading cases (see api_cases.h). A wrong access code is the
 * same 404 as an unknown case, so codes cannot be probed case by case, and
 * too many wrong codes for one case number answer 429.
 */
#include "api_cases.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "casefsm.h"

/* Most rows one page of GET /v1/cases returns, and the default. */
#define API_LIST_MAX     200
#define API_LIST_DEFAULT 50

API_HANDLER(api_case_get)
{
    intake_token_t tok;
    intake_result_t res = {0};
    int st = 0;
    const char *no = api_case_no_param(r, &st);
    if (!no)
        return st;
    if (http_req_header(r, "Authorization")) {
        if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
            return st;
        /* ?reveal=contact: contact data in clear, for the roles that may, audited */
        const char *reveal = http_req_query(r, "reveal");
        const char *reason = NULL;
        if (reveal) {
            if (strcmp(reveal, "contact") != 0)
                return api_fail(r, 422, "invalid_value", "reveal", "reveal may only be contact");
            if (!(tok.role & (INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN)))
                return api_fail(r, 403, "forbidden", "reveal",
                                "a %s token may not see contact data in clear", tok.role_name);
            reason = http_req_query(r, "reason");
            if (!reason || !*reason || intake_utf8_chars(reason) > 200)
                return api_fail(r, 422, reason && *reason ? "too_long" : "missing_field", "reason",
                                "reason (1 to 200 characters) says why the contact data is "
                                "needed; it goes into the audit log");
        }
        intake_case_get(w, &tok, no, NULL, reason, &res);
        return api_reply_result(w, r, &res);
    }
    const char *code = http_req_query(r, "access_code");
    if (!code) {
        http_reply_header(r, "WWW-Authenticate", "Bearer");
        return api_fail(r, 401, "unauthorized", "access_code",
                        "give the case's access code (?access_code=...) or an API token");
    }
    if (!intake_worker_db(w))
        return api_fail_db_down(r);
    intake_case_get(w, NULL, no, code, NULL, &res);
    return api_reply_result(w, r, &res);
}

API_HANDLER(api_case_history)
{
    intake_token_t tok;
    intake_result_t res = {0};
    int st = 0;
    const char *no = api_case_no_param(r, &st);
    if (!no)
        return st;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    intake_case_history(w, &tok, no, &res);
    return api_reply_result(w, r, &res);
}

/* RFC 3339 with an offset or Z ("2025-03-01T08:00:00Z", fraction allowed), or a date. */
static int when_ok(const char *s)
{
    char date[11];
    size_t n = strlen(s);
    if (n == 10)
        return intake_date_ok(s);
    if (n < 20 || n > 35 || s[10] != 'T')
        return 0;
    memcpy(date, s, 10);
    date[10] = '\0';
    if (!intake_date_ok(date))
        return 0;
    const char *p = s + 11;
    for (int i = 0; i < 8; i++)
        if ((i == 2 || i == 5) ? p[i] != ':' : !isdigit((unsigned char)p[i]))
            return 0;
    if (atoi(p) > 23 || atoi(p + 3) > 59 || atoi(p + 6) > 60)
        return 0;
    p += 8;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && isdigit((unsigned char)p[1]) &&
        isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
        isdigit((unsigned char)p[5]))
        return 1;
    return 0;
}

/* A short filter value: printable, no spaces or array syntax, 1..64 bytes. */
static int token_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || strchr("{},\"\\", *s))
            return 0;
    return 1;
}

/* verr for a query parameter (the same {"error","errors"} shape as bodies) */
static void qerr(intake_verr_t *e, const char *field, const char *code, const char *msg)
{
    if (e->count == 0) {
        snprintf(e->code, sizeof(e->code), "%s", code);
        snprintf(e->field, sizeof(e->field), "%s", field);
        snprintf(e->message, sizeof(e->message), "%s", msg);
    }
    if (e->count < INTAKE_VERR_MAX) {
        intake_field_error_t *fe = &e->list[e->count];
        snprintf(fe->code, sizeof(fe->code), "%s", code);
        snprintf(fe->field, sizeof(fe->field), "%s", field);
        snprintf(fe->message, sizeof(fe->message), "%s", msg);
    }
    e->count++;
    e->status = 422;
}

API_HANDLER(api_cases_list)
{
    intake_token_t tok;
    intake_result_t res = {0};
    intake_verr_t e = {0};
    intake_list_query_t q = {.overdue = -1, .limit = API_LIST_DEFAULT};
    char statuses[256] = "", cursor_at[64] = "", cursor_id[40] = "";
    int st;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;

    const char *s = http_req_query(r, "status");
    if (s) {
        /* a comma-separated list of statuses becomes an array literal of known names only */
        char buf[256];
        size_t o = 0;
        snprintf(buf, sizeof(buf), "%s", s);
        statuses[o++] = '{';
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (casefsm_parse(t) < 0) {
                qerr(&e, "status", "invalid_value",
                     "status must be case statuses separated by commas (received, assigned, ...)");
                break;
            }
            o += (size_t)snprintf(statuses + o, sizeof(statuses) - o, "%s%s", o > 1 ? "," : "", t);
        }
        if (o < sizeof(statuses) - 1)
            snprintf(statuses + o, sizeof(statuses) - o, "}");
        if (o <= 1 && e.count == 0)
            qerr(&e, "status", "invalid_value", "status must not be empty");
        q.statuses = statuses;
    }
    const char *names[3] = {"department", "category", "channel"};
    const char **dst[3] = {&q.department, &q.category, &q.channel};
    for (int k = 0; k < 3; k++) {
        *dst[k] = http_req_query(r, names[k]);
        if (*dst[k] && !token_ok(*dst[k])) {
            qerr(&e, names[k], "invalid_value", "must be 1 to 64 characters without spaces");
            *dst[k] = NULL;
        }
    }
    if ((q.district = http_req_query(r, "district")) && !intake_district_ok(q.district))
        qerr(&e, "district", "invalid_value", "district must be a 6-digit division code");
    if ((s = http_req_query(r, "overdue"))) {
        if (strcmp(s, "true") == 0)
            q.overdue = 1;
        else if (strcmp(s, "false") == 0)
            q.overdue = 0;
        else
            qerr(&e, "overdue", "invalid_value", "overdue must be true or false");
    }
    if ((q.created_from = http_req_query(r, "created_from")) && !when_ok(q.created_from))
        qerr(&e, "created_from", "invalid_value",
             "created_from must be a date (YYYY-MM-DD) or an RFC 3339 time");
    if ((q.created_to = http_req_query(r, "created_to")) && !when_ok(q.created_to))
        qerr(&e, "created_to", "invalid_value",
             "created_to must be a date (YYYY-MM-DD) or an RFC 3339 time");
    if ((s = http_req_query(r, "limit"))) {
        char *end = NULL;
        long n = strtol(s, &end, 10);
        if (!*s || *end || n < 1 || n > API_LIST_MAX)
            qerr(&e, "limit", "out_of_range", "limit must be from 1 to 200");
        else
            q.limit = (int)n;
    }
    if ((s = http_req_query(r, "cursor"))) {
        /* the cursor is what a previous page said: hex of "<time>|<uuid>" */
        uint8_t raw[128];
        size_t n = strlen(s);
        int len = n % 2 == 0 && n / 2 < sizeof(raw) ? util_unhex(s, raw, n / 2) : -1;
        char *bar = len > 0 ? memchr(raw, '|', (size_t)len) : NULL;
        if (bar) {
            size_t at = (size_t)(bar - (char *)raw);
            snprintf(cursor_at, sizeof(cursor_at), "%.*s", (int)at, (char *)raw);
            snprintf(cursor_id, sizeof(cursor_id), "%.*s", (int)((size_t)len - at - 1), bar + 1);
        }
        if (!bar || !when_ok(cursor_at) || !util_is_uuid(cursor_id))
            qerr(&e, "cursor", "invalid_value", "cursor must be a next_cursor of a previous page");
        else {
            q.cursor_at = cursor_at;
            q.cursor_id = cursor_id;
        }
    }
    if (e.count)
        return api_fail_verr(r, &e);
    intake_case_list(w, &tok, &q, &res);
    return api_reply_result(w, r, &res);
}
