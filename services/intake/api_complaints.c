/*
 * api_complaints: complaint submission (see api_complaints.h).
 *
 * A request is checked in full (validate.c) before anything is written;
 * the replay check compares the exact bytes, so same key + same body =
 * same request.
 *
 * Group commit: POST /v1/complaints does not commit on its own. A checked
 * submission is deferred into its worker's group, and a zero-delay timer on
 * the worker's event loop flushes the group once the loop has read what
 * else arrived meanwhile: every waiting submission goes into one
 * transaction (each under its own savepoint, store.c) with one commit, one
 * WAL flush, for all of them. Under load, submissions arrive while the
 * previous flush runs, so groups grow by themselves; alone, a submission
 * waits for nothing but one turn of the loop.
 */
#include "api_complaints.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "crypto.h"
#include "log.h"

/* Most submissions one group commit takes (more wait for the next one). */
#define API_GROUP_MAX 64

/* POST /v1/complaints/batch: most lines, and lines per transaction. */
#define API_BATCH_MAX_LINES 10000
#define API_BATCH_CHUNK     500

/* One deferred submission. */
typedef struct group_item {
    http_req_t *r;                      /**< deferred; replied by the flush */
    int64_t t0;                         /**< arrival, for the latency metric */
    intake_token_t tok;                 /**< its submitter */
    intake_complaint_t c;               /**< checked, owned */
    char idem[INTAKE_IDEM_KEY_MAX + 1]; /**< Idempotency-Key copy ("" none) */
    uint8_t sha[32];                    /**< SHA-256 of the body */
} group_item_t;

struct api_group {
    struct event *flush;                     /**< zero-delay timer, pending while n > 0 */
    int n;                                   /**< items waiting */
    group_item_t items[API_GROUP_MAX];       /**< the waiting submissions */
    intake_create_req_t reqs[API_GROUP_MAX]; /**< scratch for the flush */
};

static void group_flush(evutil_socket_t fd, short what, void *arg);

/* The worker's group, created on first use. NULL if it cannot be (answer at once then). */
static struct api_group *group_get(intake_worker_t *w)
{
    if (w->group || !w->evb)
        return w->group;
    struct api_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->flush = evtimer_new(w->evb, group_flush, w);
    if (!g->flush) {
        free(g);
        return NULL;
    }
    w->group = g;
    return g;
}

static void group_flush(evutil_socket_t fd, short what, void *arg)
{
    intake_worker_t *w = arg;
    struct api_group *g = w->group;
    int n = g->n;
    g->n = 0;
    if (n == 0)
        return;
    int db = intake_worker_db(w);
    for (int i = 0; i < n; i++) {
        group_item_t *it = &g->items[i];
        g->reqs[i] = (intake_create_req_t){
            .tok = &it->tok, .c = &it->c, .idem_key = it->idem[0] ? it->idem : NULL};
        memcpy(g->reqs[i].body_sha, it->sha, 32);
    }
    if (db)
        intake_case_create_group(w, g->reqs, (size_t)n);
    for (int i = 0; i < n; i++) {
        group_item_t *it = &g->items[i];
        intake_result_t *res = &g->reqs[i].res;
        int st;
        if (!db) {
            st = api_fail_db_down(it->r);
        } else {
            api_count_submission(res->status == 422 ? "key_reused" : res->outcome);
            st = api_reply_result(w, it->r, res);
        }
        api_observe(api_complaints_post, st, it->t0);
        intake_complaint_free(&it->c);
        it->r = NULL;
    }
}

void api_complaints_worker_stop(intake_worker_t *w)
{
    struct api_group *g = w->group;
    if (!g)
        return;
    /* the server answers the deferred requests 503 shutting_down; drop our side */
    for (int i = 0; i < g->n; i++)
        intake_complaint_free(&g->items[i].c);
    event_free(g->flush);
    free(g);
    w->group = NULL;
}

API_HANDLER(api_complaints_post)
{
    intake_token_t tok;
    intake_complaint_t c;
    intake_verr_t e = {0};
    uint8_t sha[32];
    size_t len = 0;
    int st;
    int64_t t0 = util_mono_ms();

    if ((st = api_authenticate(w, r,
                               INTAKE_ROLE_AGENT | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN |
                                   INTAKE_ROLE_INTEGRATOR,
                               &tok)) != 0)
        return st;
    const char *idem = http_req_header(r, "Idempotency-Key");
    if (idem && intake_idem_key_check(idem, &e) != 0)
        return api_fail_verr(r, &e);
    const char *body = api_body(r, "application/json", API_JSON_MAX_BODY, &len, &st);
    if (!body)
        return st;
    if (intake_complaint_parse(body, len, &c, &e) != 0)
        return api_fail_verr(r, &e);
    crypto_sha256(body, len, sha);

    struct api_group *g = group_get(w);
    if (!g) { /* no loop to defer on: commit alone */
        intake_result_t res = {0};
        intake_case_create(w, &tok, &c, idem, sha, &res);
        intake_complaint_free(&c);
        api_count_submission(res.status == 422 ? "key_reused" : res.outcome);
        return api_reply_result(w, r, &res);
    }
    if (g->n == API_GROUP_MAX)
        group_flush(-1, 0, w); /* full: commit what waits, then queue this one */
    group_item_t *it = &g->items[g->n++];
    it->r = r;
    it->t0 = t0;
    it->tok = tok;
    it->c = c;
    snprintf(it->idem, sizeof(it->idem), "%s", idem ? idem : "");
    memcpy(it->sha, sha, 32);
    http_req_defer(r);
    if (!evtimer_pending(g->flush, NULL)) {
        struct timeval now = {0, 0};
        evtimer_add(g->flush, &now);
    }
    return API_DEFERRED;
}

/* ------------------------------------------------ POST /v1/complaints/batch */

/* One input line of a batch. */
typedef struct batch_line {
    int status;           /**< 0: valid (its answer is in the request), else the error status */
    intake_verr_t *err;   /**< when status is 400/422, owned */
    intake_complaint_t c; /**< when valid */
    char idem[INTAKE_IDEM_KEY_MAX + 1]; /**< "<batch key>#<line>" or "" */
    int req;                            /**< index into reqs when valid */
} batch_line_t;

/* {"line":n,"status":<HTTP status>,"case":{...}} or {"line","status","error","errors"}; takes body */
static json_t *batch_result(int line, int status, json_t *body, const intake_verr_t *e,
                            const intake_result_t *res)
{
    json_t *o = json_pack("{s:i, s:i}", "line", line, "status", status);
    if (body)
        json_object_set_new(o, "case", body);
    if (e) {
        json_t *errors = json_array();
        for (int i = 0; i < e->count && i < INTAKE_VERR_MAX; i++) {
            json_t *fe =
                json_pack("{s:s, s:s}", "code", e->list[i].code, "message", e->list[i].message);
            if (e->list[i].field[0])
                json_object_set_new(fe, "field", json_string(e->list[i].field));
            json_array_append_new(errors, fe);
        }
        json_t *first = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
        if (e->field[0])
            json_object_set_new(first, "field", json_string(e->field));
        json_object_set_new(o, "error", first);
        json_object_set_new(o, "errors", errors);
    } else if (res && res->status >= 400) {
        json_t *first = json_pack("{s:s, s:s}", "code", res->code ? res->code : "internal",
                                  "message", res->message);
        if (res->field)
            json_object_set_new(first, "field", json_string(res->field));
        json_object_set_new(o, "error", first);
    }
    return o;
}

API_HANDLER(api_complaints_batch)
{
    intake_token_t tok;
    intake_verr_t e = {0};
    size_t len = 0, nlines = 0, nreq = 0, i;
    int st;
    batch_line_t *lines = NULL;
    intake_create_req_t *reqs = NULL;
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    int created = 0;

    if ((st = api_authenticate(w, r,
                               INTAKE_ROLE_AGENT | INTAKE_ROLE_SUPERVISOR | INTAKE_ROLE_ADMIN |
                                   INTAKE_ROLE_INTEGRATOR,
                               &tok)) != 0)
        return st;
    const char *idem = http_req_header(r, "Idempotency-Key");
    if (idem && (intake_idem_key_check(idem, &e) != 0 || strlen(idem) > INTAKE_IDEM_KEY_MAX - 8)) {
        if (!e.count)
            return api_fail(r, 400, "invalid_value", "Idempotency-Key",
                            "a batch's Idempotency-Key may be at most %d characters (each line "
                            "adds #<line>)",
                            INTAKE_IDEM_KEY_MAX - 8);
        return api_fail_verr(r, &e);
    }
    const char *body = api_body(r, "application/x-ndjson", (size_t)-1, &len, &st);
    if (!body)
        return st;
    /* count first: a batch over the limit is refused whole, before anything is written */
    for (i = 0; i < len; i++)
        nlines += body[i] == '\n';
    if (len > 0 && body[len - 1] != '\n')
        nlines++;
    if (nlines == 0)
        return api_fail(r, 400, "invalid_value", NULL,
                        "the batch is empty; send one complaint as JSON per line");
    if (nlines > API_BATCH_MAX_LINES)
        return api_fail(r, 413, "too_many_lines", NULL,
                        "the batch has %zu lines; at most %d are taken per request", nlines,
                        API_BATCH_MAX_LINES);
    lines = calloc(nlines, sizeof(*lines));
    reqs = calloc(nlines, sizeof(*reqs));
    if (!lines || !reqs) {
        st = api_fail(r, 500, "internal", NULL, "internal error: out of memory");
        goto out;
    }

    /* 1. check every line on its own: one bad line never blocks the others */
    const char *p = body, *end = body + len;
    for (i = 0; i < nlines; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t n_trim = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
        batch_line_t *bl = &lines[i];
        memset(&e, 0, sizeof(e));
        json_t *root = intake_json_parse(p, n_trim, &e);
        if (!root || intake_complaint_from_json(root, &bl->c, &e) != 0) {
            bl->status = e.status ? e.status : 400;
            bl->err = malloc(sizeof(*bl->err));
            if (!bl->err) {
                st = api_fail(r, 500, "internal", NULL, "internal error: out of memory");
                goto out;
            }
            *bl->err = e;
        } else {
            if (idem)
                snprintf(bl->idem, sizeof(bl->idem), "%s#%zu", idem, i + 1);
            bl->req = (int)nreq;
            reqs[nreq] = (intake_create_req_t){
                .tok = &tok, .c = &bl->c, .idem_key = bl->idem[0] ? bl->idem : NULL};
            crypto_sha256(p, n_trim, reqs[nreq].body_sha);
            nreq++;
        }
        p = nl ? nl + 1 : end;
    }

    /* 2. the valid lines, a chunk per transaction */
    if (nreq > 0 && !intake_worker_db(w)) {
        st = api_fail_db_down(r);
        goto out;
    }
    for (i = 0; i < nreq; i += API_BATCH_CHUNK) {
        size_t n = nreq - i < API_BATCH_CHUNK ? nreq - i : API_BATCH_CHUNK;
        created += intake_case_create_group(w, reqs + i, n);
    }
    if (created > 0)
        api_wake_relay(w);

    /* 3. one result line per input line, in order */
    for (i = 0; i < nlines; i++) {
        batch_line_t *bl = &lines[i];
        json_t *o;
        if (bl->status) {
            o = batch_result((int)i + 1, bl->status, NULL, bl->err, NULL);
        } else {
            intake_result_t *res = &reqs[bl->req].res;
            api_count_submission(res->status == 422 ? "key_reused" : res->outcome);
            o = batch_result((int)i + 1, res->status, res->body, NULL, res);
            res->body = NULL;
        }
        char *line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        size_t ln = line ? strlen(line) : 0;
        if (out_len + ln + 2 > out_cap) {
            size_t cap = out_cap ? out_cap * 2 : 4096;
            while (cap < out_len + ln + 2)
                cap *= 2;
            char *nb = realloc(out, cap);
            if (!nb) {
                free(line);
                st = api_fail(r, 500, "internal", NULL, "internal error: out of memory");
                goto out;
            }
            out = nb;
            out_cap = cap;
        }
        memcpy(out + out_len, line ? line : "", ln);
        out_len += ln;
        out[out_len++] = '\n';
        free(line);
    }
    LOG_INFO("batch of %zu lines: %zu valid, %d created", nlines, nreq, created);
    http_reply_text(r, 200, "application/x-ndjson", out, out_len);
    st = 200;
out:
    for (i = 0; lines && i < nlines; i++) {
        intake_complaint_free(&lines[i].c);
        free(lines[i].err);
    }
    for (i = 0; reqs && i < nreq; i++)
        intake_result_clear(&reqs[i].res);
    free(lines);
    free(reqs);
    free(out);
    return st;
}
