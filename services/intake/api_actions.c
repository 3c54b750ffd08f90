/*
 * api_actions: changing a case (see api_actions.h). Every change goes
 * through store.c, which applies it with casestore under the transition
 * table, the caller's role and department (also enforced by row-level
 * security) and the If-Match version.
 */
#include "api_actions.h"

#include "api.h"

API_HANDLER(api_case_actions)
{
    intake_token_t tok;
    intake_action_t a;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    int64_t expect = 0;
    size_t len = 0;
    int st = 0;
    const char *no = api_case_no_param(r, &st);
    if (!no)
        return st;
    if ((st = api_authenticate(w, r,
                               INTAKE_ROLE_AGENT | INTAKE_ROLE_HANDLER | INTAKE_ROLE_SUPERVISOR |
                                   INTAKE_ROLE_ADMIN,
                               &tok)) != 0)
        return st;
    const char *if_match = http_req_header(r, "If-Match");
    if (if_match && (expect = intake_if_match_parse(if_match, &e)) < 0)
        return api_fail_verr(r, &e);
    const char *body = api_body(r, "application/json", API_JSON_MAX_BODY, &len, &st);
    if (!body)
        return st;
    if (intake_action_parse(body, len, &a, &e) != 0)
        return api_fail_verr(r, &e);
    /* who may take which action is one table (store.c); say no before touching the case */
    if (!(intake_action_roles(a.kind) & tok.role)) {
        st = api_fail(r, 403, "forbidden", "action", "a %s token may not %s a case", tok.role_name,
                      a.name);
        intake_action_free(&a);
        return st;
    }
    intake_case_action(w, &tok, no, &a, expect, &res);
    intake_action_free(&a);
    return api_reply_result(w, r, &res);
}

/* The complainant's routes: the case number from the path and a JSON body.
 * @returns 0 with *no and *body set, or the status already replied. */
static int complainant_request(http_req_t *r, const char **no, const char **body, size_t *len)
{
    int st = 0;
    *no = api_case_no_param(r, &st);
    if (!*no)
        return st;
    *body = api_body(r, "application/json", API_JSON_MAX_BODY, len, &st);
    if (!*body)
        return st;
    return 0;
}

API_HANDLER(api_case_supplement)
{
    intake_supplement_t s;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    const char *no, *body;
    size_t len = 0;
    int st = complainant_request(r, &no, &body, &len);
    if (st)
        return st;
    if (intake_supplement_parse(body, len, &s, &e) != 0)
        return api_fail_verr(r, &e);
    if (!intake_worker_db(w)) {
        intake_supplement_free(&s);
        return api_fail_db_down(r);
    }
    intake_case_supplement(w, no, &s, &res);
    intake_supplement_free(&s);
    return api_reply_result(w, r, &res);
}

API_HANDLER(api_case_feedback)
{
    intake_feedback_t f;
    intake_verr_t e = {0};
    intake_result_t res = {0};
    const char *no, *body;
    size_t len = 0;
    int st = complainant_request(r, &no, &body, &len);
    if (st)
        return st;
    if (intake_feedback_parse(body, len, &f, &e) != 0)
        return api_fail_verr(r, &e);
    if (!intake_worker_db(w)) {
        intake_feedback_free(&f);
        return api_fail_db_down(r);
    }
    intake_case_feedback(w, no, &f, &res);
    intake_feedback_free(&f);
    return api_reply_result(w, r, &res);
}
