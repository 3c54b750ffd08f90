/*
 * dispatch_event: CaseClassified / CaseReturned / CaseReopened ->
 * CaseAssigned, load release, catalogue reload.
 *
 * Lock order is always the case row, then handler rows (dispatch and
 * release alike), so two dispatcher instances cannot deadlock on each other
 * through these statements. The handler pick locks the chosen handler row
 * (FOR UPDATE) before raising its load, so concurrent instances never push
 * a handler over capacity.
 */
#include "dispatch_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "log.h"
#include "util.h"

#define DE_CASE_COLS                                                                              \
    "status, district_code, title, body, COALESCE(domain, '') AS domain, "                        \
    "COALESCE(category, '') AS category, COALESCE(urgency, '') AS urgency, "                      \
    "array_to_string(flags, ',') AS flags, COALESCE(department, '') AS department, "              \
    "COALESCE(handler, '') AS handler, dispatch_attempt "

static const pg_stmt_t de_lock_case = {
    "de_lock_case", "SELECT " DE_CASE_COLS "FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE", 1};

/* the same for the cases a batch dispatches, at once, in id order (dispatch_batch) */
static const pg_stmt_t de_lock_cases = {
    "de_lock_cases",
    "SELECT id::text AS id, " DE_CASE_COLS ", version, event_seq, case_no, trace_id "
    "FROM cases WHERE id = ANY ($1::uuid[]) ORDER BY id FOR NO KEY UPDATE",
    1};

/* The active handlers of the departments $1, each department's in id order:
 * read once per department and attempt, the pick is made from these rows and
 * the loads the attempt has changed (de_pick, decision 0043). A plain read:
 * the batch writes loads only at its end, in one lock order (dispatch_batch),
 * so instances never wait on each other here and never deadlock (decision
 * 0023). Skills are [A-Za-z0-9_.-] or "*": one space separates them. */
static const pg_stmt_t de_read_handlers = {
    "de_read_handlers",
    "SELECT id, department, open_load, capacity, array_to_string(skills, ' ') AS skills "
    "FROM handlers WHERE department = ANY ($1::text[]) AND active ORDER BY department, id",
    1};

/* the batch's handlers, locked in id order: every instance takes them in
 * the same order, so none holds one another waits for while it waits */
static const pg_stmt_t de_lock_loads = {
    "de_lock_loads",
    "SELECT id FROM handlers WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE", 1};

/* over: a load this batch raised went past capacity, because another
 * instance filled the handler after this batch read it */
static const pg_stmt_t de_write_loads = {
    "de_write_loads",
    "UPDATE handlers h SET open_load = GREATEST(h.open_load + p.n, 0) "
    "FROM unnest($1::text[], $2::integer[]) AS p(id, n) WHERE h.id = p.id "
    "RETURNING h.id, (p.n > 0 AND h.open_load > h.capacity) AS over",
    2};

/* the assignment is written by the status change itself (one row version);
 * load_released is true when there is nothing to give back (no handler) */
static const pg_stmt_t de_bump = {
    "de_bump",
    CASESTORE_BUMP_SQL(", department = $6, handler = $7, co_departments = $8::text[], "
                       "assigned_at = now(), dispatch_attempt = $9::integer, "
                       "load_released = ($7::text IS NULL), dispatch_priority = $10::boolean"),
    10};

/* the same for the batch's cases at once (decision 0038); de_bump's values from $5 */
static const pg_stmt_t de_bump_many = {
    "de_bump_many",
    CASESTORE_BUMP_MANY_SQL(", $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]",
                            ", v5, v6, v7, v8, v9",
                            ", department = u.v5, handler = u.v6, co_departments = u.v7::text[], "
                            "assigned_at = now(), dispatch_attempt = u.v8::integer, "
                            "load_released = (u.v6 IS NULL), dispatch_priority = u.v9::boolean"),
    9};

static const pg_stmt_t de_supersede = {
    "de_supersede",
    "UPDATE case_assignments SET state = 'superseded' WHERE case_id = $1::uuid AND state = 'open'",
    1};

static const pg_stmt_t de_add_assignment = {
    "de_add_assignment",
    "INSERT INTO case_assignments (case_id, attempt, role, department, handler, rule, "
    "catalogue_version, priority) VALUES ($1::uuid, $2::integer, $3, $4, $5, $6, "
    "NULLIF($7, '0')::bigint, $8::boolean) ON CONFLICT (case_id, attempt, department) DO NOTHING",
    8};

/* the same for the rows a fast batch gathered (dispatch_batch), in one statement */
static const pg_stmt_t de_add_assignments = {
    "de_add_assignments",
    "INSERT INTO case_assignments (case_id, attempt, role, department, handler, rule, "
    "catalogue_version, priority) SELECT case_id, attempt, role, department, handler, rule, "
    "NULLIF(ver, '0')::bigint, priority FROM unnest($1::uuid[], $2::integer[], $3::text[], "
    "$4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[]) WITH ORDINALITY AS "
    "a(case_id, attempt, role, department, handler, rule, ver, priority, ord) ORDER BY ord "
    "ON CONFLICT (case_id, attempt, department) DO NOTHING",
    8};

/* the handler whose load the case gives back (at the batch's end) */
static const pg_stmt_t de_release = {
    "de_release",
    "UPDATE cases SET load_released = true WHERE id = $1::uuid "
    "AND NOT load_released AND handler IS NOT NULL RETURNING handler AS id",
    1};

static const pg_stmt_t de_record_return = {
    "de_record_return",
    "WITH r AS (INSERT INTO case_returns (case_id, event_id, attempt, department, reason, "
    "returned_at) VALUES ($1::uuid, $2::uuid, $3::integer, $4, $5, "
    "to_timestamp($6::double precision / 1000)) ON CONFLICT (event_id) DO NOTHING RETURNING 1) "
    "UPDATE cases SET return_count = return_count + (SELECT count(*) FROM r) "
    "WHERE id = $1::uuid RETURNING return_count, "
    "(SELECT COALESCE(array_agg(DISTINCT department), '{}') FROM case_returns "
    "WHERE case_id = $1::uuid) AS returned_by", /* the earlier returns */
    6};

static const pg_stmt_t de_return_decided = {
    "de_return_decided",
    "UPDATE case_returns SET rerouted_to = $2, decided_by = $3 WHERE event_id = $1::uuid", 3};

static const pg_stmt_t de_catalogue_version = {
    "de_catalogue_version", "SELECT COALESCE(max(version), 0) AS v FROM dispatch_catalogue", 0};

static const pg_stmt_t de_catalogue_doc = {
    "de_catalogue_doc",
    "SELECT version, document::text AS document, source FROM dispatch_catalogue "
    "ORDER BY version DESC LIMIT 1",
    0};

void dispatch_ctx_init(dispatch_ctx_t *ctx, const dispatch_catalogue_t *cat)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cat = cat;
    ctx->max_returns = 2;
    ctx->m_assigned = metrics_counter("kesu_dispatcher_assigned_total", "Cases assigned", NULL);
    ctx->m_emergency = metrics_counter("kesu_dispatcher_emergency_total",
                                       "Cases assigned to the emergency desk", NULL);
    ctx->m_no_handler =
        metrics_counter("kesu_dispatcher_no_handler_total",
                        "Cases assigned to a department with no handler below capacity", NULL);
    ctx->m_released = metrics_counter("kesu_dispatcher_load_released_total",
                                      "Handler loads given back on resolve/close/...", NULL);
    ctx->m_skipped = metrics_counter("kesu_dispatcher_skipped_total",
                                     "Dispatch events for cases that had moved on", NULL);
    ctx->m_reloads = metrics_counter("kesu_dispatcher_catalogue_reloads_total",
                                     "Catalogue versions loaded from PostgreSQL", NULL);
    ctx->m_reruns = metrics_counter("kesu_dispatcher_load_reruns_total",
                                    "Batches dispatched again because another instance filled a "
                                    "handler they picked",
                                    NULL);
}

/* a CaseClassified's route, worked out at the claim (de_handlers_ahead) so
 * that its handler does not match the rules' keywords over the text again */
struct dispatch_routed {
    char event_id[40];
    dispatch_route_t route;
};

/* forget the handlers read and the routes (a new attempt works them out again) */
static void de_handlers_clear(dispatch_ctx_t *ctx)
{
    ctx->nrouted = 0;
    for (size_t i = 0; i < ctx->nhres; i++)
        PQclear(ctx->hres[i]);
    for (size_t i = 0; i < ctx->nhdepts; i++)
        free(ctx->hdepts[i]);
    ctx->nhres = ctx->nhs = ctx->nhdepts = 0;
}

void dispatch_ctx_free(dispatch_ctx_t *ctx)
{
    de_handlers_clear(ctx);
    free(ctx->hres);
    free(ctx->hs);
    free(ctx->hdepts);
    free(ctx->routed);
    ctx->routed = NULL;
    ctx->routed_cap = 0;
    ctx->hres = NULL;
    ctx->hs = NULL;
    ctx->hdepts = NULL;
    ctx->hres_cap = ctx->hs_cap = ctx->hdepts_cap = 0;
    dispatch_catalogue_free(ctx->owned);
    ctx->owned = NULL;
    free(ctx->loads);
    pg_rows_free(&ctx->assign);
    strbuf_free(&ctx->lit_ids);
    strbuf_free(&ctx->lit_deltas);
    ctx->loads = NULL;
    ctx->nloads = ctx->loads_cap = 0;
    pg_keyed_clear(&ctx->cases);
}

/* change handler's load in the open batch by delta, remembered for undo
 * should the event fail (dispatch_handle) */
static int de_load_add(dispatch_ctx_t *ctx, const char *handler, int delta)
{
    size_t i;
    for (i = 0; i < ctx->nloads && strcmp(ctx->loads[i].id, handler) != 0; i++)
        ;
    if (i == ctx->nloads) {
        if (strlen(handler) >= sizeof(ctx->loads[0].id))
            return -1;
        dispatch_load_t *l =
            util_grow(ctx->loads, &ctx->loads_cap, ctx->nloads + 1, sizeof(*l), 16);
        if (!l)
            return -1;
        ctx->loads = l;
        snprintf(ctx->loads[i].id, sizeof(ctx->loads[i].id), "%s", handler);
        ctx->loads[i].delta = 0;
        ctx->nloads++;
    }
    if (ctx->nundo == sizeof(ctx->undo) / sizeof(ctx->undo[0]))
        return -1;
    ctx->loads[i].delta += delta;
    ctx->undo[ctx->nundo].slot = i;
    ctx->undo[ctx->nundo++].delta = delta;
    return 0;
}

static int de_handlers_known(const dispatch_ctx_t *ctx, const char *dept)
{
    for (size_t i = 0; i < ctx->nhdepts; i++)
        if (strcmp(ctx->hdepts[i], dept) == 0)
            return 1;
    return 0;
}

/* drop the last n departments noted as read (their read failed) */
static void de_handlers_forget(dispatch_ctx_t *ctx, size_t n)
{
    for (; n > 0 && ctx->nhdepts > 0; n--)
        free(ctx->hdepts[--ctx->nhdepts]);
}

/* read the handlers of the n departments not read yet in this attempt, in one
 * statement. -1: errstr (a database failure: pg tells), or out of memory */
static int de_handlers_read(dispatch_ctx_t *ctx, pg_t *pg, const char *const *depts, size_t n,
                            char *errstr, size_t errstr_size)
{
    strbuf_t lit;
    size_t want = 0;
    pg_array_begin(&lit);
    for (size_t i = 0; i < n; i++) {
        if (de_handlers_known(ctx, depts[i]))
            continue;
        int again = 0; /* named twice in depts */
        for (size_t j = 0; j < i && !again; j++)
            again = strcmp(depts[j], depts[i]) == 0;
        if (again)
            continue;
        char **d = util_grow(ctx->hdepts, &ctx->hdepts_cap, ctx->nhdepts + 1,
                             sizeof(*ctx->hdepts), 16);
        char *copy = d ? strdup(depts[i]) : NULL;
        if (d)
            ctx->hdepts = d;
        if (!copy) {
            strbuf_free(&lit);
            de_handlers_forget(ctx, want);
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        ctx->hdepts[ctx->nhdepts++] = copy;
        pg_array_add(&lit, depts[i]);
        want++;
    }
    pg_array_end(&lit);
    if (want == 0) {
        strbuf_free(&lit);
        return 0;
    }
    const char *v[1] = {lit.s};
    PGresult *res = pg_exec_stmt(pg, &de_read_handlers, v, PGRES_TUPLES_OK, errstr, errstr_size);
    strbuf_free(&lit);
    if (!res) {
        de_handlers_forget(ctx, want); /* not read after all */
        return -1;
    }
    int rows = PQntuples(res);
    PGresult **r = util_grow(ctx->hres, &ctx->hres_cap, ctx->nhres + 1, sizeof(*r), 8);
    dispatch_staff_t *h =
        r ? util_grow(ctx->hs, &ctx->hs_cap, ctx->nhs + (size_t)rows, sizeof(*h), 64) : NULL;
    if (r)
        ctx->hres = r;
    if (!h) {
        PQclear(res);
        de_handlers_forget(ctx, want);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    ctx->hs = h;
    ctx->hres[ctx->nhres++] = res;
    for (int i = 0; i < rows; i++)
        ctx->hs[ctx->nhs++] = (dispatch_staff_t){
            .id = pg_get(res, i, "id"),
            .department = pg_get(res, i, "department"),
            .skills = pg_get(res, i, "skills"),
            .load = atoi(pg_get(res, i, "open_load")),
            .capacity = atoi(pg_get(res, i, "capacity")),
        };
    return 0;
}

/* whether a space-separated skill list names the domain, or "*" */
static int de_skilled(const char *skills, const char *domain)
{
    size_t dl = strlen(domain);
    for (const char *p = skills; *p;) {
        size_t l = strcspn(p, " ");
        if ((l == 1 && *p == '*') || (l == dl && dl > 0 && memcmp(p, domain, l) == 0))
            return 1;
        p += l;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* the load the open attempt has changed a handler's by */
static int de_load_delta(const dispatch_ctx_t *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->nloads; i++)
        if (strcmp(ctx->loads[i].id, id) == 0)
            return ctx->loads[i].delta;
    return 0;
}

/* The handler for a case of dept and domain (prefer: a reopened case's
 * previous one, may be NULL): one of the department's active handlers with
 * the domain among its skills (or "*") and room below capacity counting the
 * attempt's own changes; the preferred one if it qualifies, else the least
 * loaded, then the first by id. NULL: none has room (or a read failed:
 * *failed set, errstr) */
static const char *de_pick(dispatch_ctx_t *ctx, pg_t *pg, const char *dept, const char *domain,
                           const char *prefer, int *failed, char *errstr, size_t errstr_size)
{
    const dispatch_staff_t *best = NULL;
    int best_load = 0;
    *failed = 0;
    if (!de_handlers_known(ctx, dept) &&
        de_handlers_read(ctx, pg, &dept, 1, errstr, errstr_size) != 0) {
        *failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < ctx->nhs; i++) {
        const dispatch_staff_t *h = &ctx->hs[i];
        if (strcmp(h->department, dept) != 0 || !de_skilled(h->skills, domain ? domain : ""))
            continue;
        int load = h->load + de_load_delta(ctx, h->id);
        if (load >= h->capacity)
            continue;
        if (prefer && strcmp(h->id, prefer) == 0)
            return h->id;
        if (!best || load < best_load) { /* rows are in id order: the first of equals stays */
            best = h;
            best_load = load;
        }
    }
    return best ? best->id : NULL;
}

/* the batch's load changes as two array literals (ctx->lit_ids, lit_deltas);
 * changes that cancel out are left out. @returns how many are left */
static size_t de_load_literals(dispatch_ctx_t *ctx)
{
    size_t n = 0;
    char d[16];
    strbuf_free(&ctx->lit_ids);
    strbuf_free(&ctx->lit_deltas);
    pg_array_begin(&ctx->lit_ids);
    pg_array_begin(&ctx->lit_deltas);
    for (size_t i = 0; i < ctx->nloads; i++) {
        if (!ctx->loads[i].delta)
            continue;
        snprintf(d, sizeof(d), "%d", ctx->loads[i].delta);
        pg_array_add(&ctx->lit_ids, ctx->loads[i].id);
        pg_array_add(&ctx->lit_deltas, d);
        n++;
    }
    pg_array_end(&ctx->lit_ids);
    pg_array_end(&ctx->lit_deltas);
    return n;
}

/* what the dispatcher does with an event type (de_route) */
typedef enum { DE_NONE, DE_DISPATCH, DE_RELEASE } de_route_t;
static de_route_t de_route(Kesu__V1__Envelope__PayloadCase pc);

static kc_result_t de_db_failure(pg_t *pg);
static int de_handlers_ahead(dispatch_ctx_t *ctx, pg_t *pg, const kc_msg_t *msgs, size_t n,
                             char *errstr, size_t errstr_size);

/* KC_BATCH_CLAIMED: the cases of the batch's dispatches locked and read at once
 * (the releases read none), and the handlers of where they go */
static kc_result_t de_cases_read(dispatch_ctx_t *ctx, pg_t *pg, const kc_msg_t *msgs, size_t n,
                                 char *errstr, size_t errstr_size)
{
    kc_msg_t *d = calloc(n ? n : 1, sizeof(*d));
    size_t k = 0;
    if (!d) {
        snprintf(errstr, errstr_size, "out of memory");
        return KC_RETRY;
    }
    for (size_t i = 0; i < n; i++)
        if (de_route(msgs[i].env->payload_case) == DE_DISPATCH)
            d[k++] = msgs[i];
    kc_result_t rc = KC_OK;
    if (k)
        rc = kc_cases_read(pg, &de_lock_cases, d, k, &ctx->cases, errstr, errstr_size);
    else
        pg_keyed_clear(&ctx->cases);
    if (rc == KC_OK && k && de_handlers_ahead(ctx, pg, d, k, errstr, errstr_size) != 0)
        rc = pg->sqlstate[0] ? de_db_failure(pg) : KC_RETRY;
    free(d);
    return rc;
}

/* the assignment rows gathered so far, written (a re-dispatch's supersede
 * and the batch's end) */
static int de_assignments_write(dispatch_ctx_t *ctx, pg_t *pg, char *errstr, size_t errstr_size)
{
    if (!ctx->gather || ctx->assign.n == 0)
        return 0;
    PGresult *res = pg_rows_exec(pg, &de_add_assignments, &ctx->assign, NULL, PGRES_COMMAND_OK,
                                 errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

kc_result_t dispatch_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                           size_t nmsgs, char *errstr, size_t errstr_size)
{
    dispatch_ctx_t *ctx = opaque;
    kc_result_t rc = KC_OK;
    if (phase == KC_BATCH_CLAIMED)
        return de_cases_read(ctx, pg, msgs, nmsgs, errstr, errstr_size);
    pg_keyed_clear(&ctx->cases);
    if (phase != KC_BATCH_END) {
        ctx->nloads = 0;
        de_handlers_clear(ctx);
        /* a fast attempt gathers its assignment rows for one statement at its end; a
         * careful one writes each event's own, so that a savepoint undoes them */
        ctx->gather = phase == KC_BATCH_BEGIN && pg_rows_ready(&ctx->assign, 8) == 0;
        return KC_OK;
    }
    if (de_assignments_write(ctx, pg, errstr, errstr_size) != 0)
        return de_db_failure(pg);
    ctx->gather = 0;
    de_handlers_clear(ctx);
    size_t n = de_load_literals(ctx);
    ctx->nloads = 0;
    if (n == 0)
        return KC_OK;
    const char *v[2] = {ctx->lit_ids.s, ctx->lit_deltas.s};
    PGresult *res = pg_exec_stmt(pg, &de_lock_loads, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return KC_RETRY;
    PQclear(res);
    res = pg_exec_stmt(pg, &de_write_loads, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return KC_RETRY;
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(pg_get(res, i, "over"), "t") == 0) {
            snprintf(errstr, errstr_size,
                     "handler %s filled up under another instance during this batch: the "
                     "batch is dispatched again",
                     pg_get(res, i, "id"));
            metrics_counter_add(ctx->m_reruns, 1);
            rc = KC_RETRY;
            break;
        }
    }
    PQclear(res);
    return rc;
}

static kc_result_t de_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

/* rule ids and department codes are [A-Za-z0-9_.-]: safe as label values */
static void de_count(const char *metric, const char *help, const char *key, const char *value)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "%s=\"%s\"", key, value && *value ? value : "none");
    metrics_counter_add(metrics_counter(metric, help, labels), 1);
}

int dispatch_release_load(dispatch_ctx_t *ctx, pg_t *pg, const char *case_id, char *errstr,
                          size_t errstr_size)
{
    const char *v[1] = {case_id};
    PGresult *res = pg_exec_stmt(pg, &de_release, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    int released = PQntuples(res) > 0;
    if (released && de_load_add(ctx, pg_get(res, 0, "id"), -1) != 0) {
        snprintf(errstr, errstr_size, "handler id too long or out of memory");
        released = -1;
    } else if (released) {
        LOG_DEBUG("load of handler %s released", pg_get(res, 0, "id"));
    }
    PQclear(res);
    return released;
}

/* what one dispatch decided */
typedef struct de_decision {
    const char *department;
    const char *co[DISPATCH_MAX_CO];
    size_t nco;
    const char *rule_id;
    int emergency;
    int priority;
    const char *prefer_handler; /**< may be NULL */
    const char *from;           /**< status the case is in */
    int attempt;                /**< dispatch_attempt before this one (0: never dispatched) */
} de_decision_t;

static int de_exec(pg_t *pg, const pg_stmt_t *st, const char *const *v, char *errstr,
                   size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, st, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* pick the handler, write the assignment rows, move the case to assigned */
static kc_result_t de_commit(dispatch_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                             const de_decision_t *d, const char *domain, char *errstr,
                             size_t errstr_size)
{
    char handler[128] = "", co[1024], attempt_s[16] = "1", ver[24];
    int have_handler = 0;
    kc_result_t rc = KC_POISON;

    /* a re-dispatched case gives its previous handler's load back first (a
     * first dispatch has no handler, no load and no assignment rows yet) */
    if (d->attempt > 0 && dispatch_release_load(ctx, pg, env->case_id, errstr, errstr_size) < 0)
        return de_db_failure(pg);
    int failed;
    const char *picked =
        de_pick(ctx, pg, d->department, domain, d->prefer_handler, &failed, errstr, errstr_size);
    if (failed)
        return pg->sqlstate[0] ? de_db_failure(pg) : KC_RETRY;
    if (picked) {
        snprintf(handler, sizeof(handler), "%s", picked);
        have_handler = 1;
    }
    if (have_handler && de_load_add(ctx, handler, 1) != 0) {
        snprintf(errstr, errstr_size, "handler id too long or out of memory");
        return KC_RETRY;
    }

    if (dispatch_array_literal(d->co, d->nco, co, sizeof(co)) != 0) {
        snprintf(errstr, errstr_size, "too many co-handling departments");
        return KC_POISON;
    }
    snprintf(attempt_s, sizeof(attempt_s), "%d", d->attempt + 1);
    const char *bv[5] = {d->department, have_handler ? handler : NULL, co, attempt_s,
                         d->priority ? "true" : "false"};

    /* 主办 and 协办 rows of this attempt; the earlier attempt's are superseded */
    snprintf(ver, sizeof(ver), "%lld", (long long)ctx->cat_version);
    const char *sv[1] = {env->case_id};
    if (d->attempt > 0 && (de_assignments_write(ctx, pg, errstr, errstr_size) != 0 ||
                           de_exec(pg, &de_supersede, sv, errstr, errstr_size) != 0))
        return de_db_failure(pg);
    for (size_t i = 0; i <= d->nco; i++) {
        const char *dept = i == 0 ? d->department : d->co[i - 1];
        const char *iv[8] = {env->case_id, attempt_s,  i == 0 ? "lead" : "co", dept,
                             i == 0 && have_handler ? handler : NULL, d->rule_id, ver,
                             d->priority ? "true" : "false"};
        if (ctx->gather) { /* written at the batch's end (de_assignments_write) */
            for (int c = 0; c < 8; c++)
                pg_rows_text(&ctx->assign, c, iv[c]);
            ctx->assign.n++;
        } else if (de_exec(pg, &de_add_assignment, iv, errstr, errstr_size) != 0) {
            return de_db_failure(pg);
        }
    }

    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    ca.department = (char *)d->department;
    ca.handler = handler;
    ca.co_departments = (char **)d->co;
    ca.n_co_departments = d->nco;
    ca.rule = (char *)d->rule_id;
    ca.emergency_desk = d->emergency;
    ca.attempt = atoi(attempt_s);

    proto_env_t pe;
    proto_env_init(&pe, DISPATCH_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED,
                          (const ProtobufCMessage *)&ca);
    const char *from[] = {d->from, NULL};
    casestore_change_t ch = {
        .case_id = env->case_id,
        .from = from,
        .to = "assigned",
        .producer = DISPATCH_PRODUCER,
        .actor = DISPATCH_PRODUCER,
        .topic = KAFKA_TOPIC_DISPATCHER,
        .bump = &de_bump,
        .bump_values = bv,
        .bump_many = &de_bump_many,
    };
    switch (casestore_apply(pg, &ch, &pe, NULL, errstr, errstr_size)) {
    case CASESTORE_OK:
        LOG_INFO("assigned department=%s handler=%s rule=%s attempt=%d%s%s", d->department,
                 have_handler ? handler : "-", d->rule_id, ca.attempt,
                 d->emergency ? " emergency_desk" : "", d->priority ? " priority" : "");
        metrics_counter_add(ctx->m_assigned, 1);
        de_count("kesu_dispatcher_decisions_total", "Dispatch decisions by catalogue rule", "rule",
                 d->rule_id);
        if (d->emergency)
            metrics_counter_add(ctx->m_emergency, 1);
        if (!have_handler)
            metrics_counter_add(ctx->m_no_handler, 1);
        rc = KC_OK;
        break;
    case CASESTORE_NOT_FOUND:
    case CASESTORE_CONFLICT:
    case CASESTORE_STALE:
        /* we hold the row lock and saw the status: this cannot move on under us */
        rc = KC_POISON;
        break;
    default:
        rc = de_db_failure(pg);
        break;
    }
    return rc;
}

static int de_split_flags(char *flags, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(flags, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return (int)n;
}

/* the department of the default rule (least specific: the last in precedence order) */
static const char *de_default_dept(const dispatch_catalogue_t *cat)
{
    return cat->rules[cat->nrules - 1].department;
}

static int de_in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* parse a PostgreSQL text[] of codes ("{a,b}") into out (pointers into buf) */
static size_t de_parse_array(char *buf, const char **out, size_t max)
{
    size_t n = 0;
    char *p = buf;
    if (*p == '{')
        p++;
    p[strcspn(p, "}")] = '\0';
    for (char *tok = strtok(p, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

/* what the catalogue routes a case on: its row, with the classification of
 * a CaseClassified event (the row has it only once the event is applied),
 * else the row's own; flags split into flags[16] from a copy in flagbuf */
static void de_input(const Kesu__V1__Envelope *env, const PGresult *crow, int row,
                     dispatch_input_t *in, char *flagbuf, size_t flagbuf_size, const char **flags)
{
    *in = (dispatch_input_t){
        .district = pg_get(crow, row, "district_code"),
        .title = pg_get(crow, row, "title"),
        .body = pg_get(crow, row, "body"),
    };
    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED) {
        const Kesu__V1__CaseClassified *cc = env->case_classified;
        in->domain = cc->domain;
        in->category = cc->category;
        in->urgency = cc->urgency;
        in->flags = (const char *const *)cc->flags;
        in->nflags = cc->n_flags;
    } else {
        in->domain = pg_get(crow, row, "domain");
        in->category = pg_get(crow, row, "category");
        in->urgency = pg_get(crow, row, "urgency");
        snprintf(flagbuf, flagbuf_size, "%s", pg_get(crow, row, "flags"));
        in->nflags = (size_t)de_split_flags(flagbuf, flags, 16);
        in->flags = flags;
    }
}

/* KC_BATCH_CLAIMED, after the case rows: the departments the batch's
 * CaseClassified events route to, their handlers read in one statement (a
 * return's or a reopen's department is read at its pick, if not among them) */
static int de_handlers_ahead(dispatch_ctx_t *ctx, pg_t *pg, const kc_msg_t *msgs, size_t n,
                             char *errstr, size_t errstr_size)
{
    const char **depts = calloc(n ? n : 1, sizeof(*depts));
    size_t k = 0;
    if (!depts) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const Kesu__V1__Envelope *env = msgs[i].env;
        int row = env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED
                      ? pg_keyed_find(&ctx->cases, env->case_id)
                      : -1;
        dispatch_input_t in;
        dispatch_route_t route;
        if (row < 0)
            continue;
        de_input(env, ctx->cases.res, row, &in, NULL, 0, NULL);
        if (dispatch_route(ctx->cat, &in, &route) != 0)
            continue;
        struct dispatch_routed *r = util_grow(ctx->routed, &ctx->routed_cap, ctx->nrouted + 1,
                                              sizeof(*r), 16);
        if (r) { /* else the handler works it out itself */
            ctx->routed = r;
            snprintf(r[ctx->nrouted].event_id, sizeof(r[0].event_id), "%s", env->event_id);
            r[ctx->nrouted++].route = route;
        }
        if (route.department)
            depts[k++] = route.department;
    }
    int rc = de_handlers_read(ctx, pg, depts, k, errstr, errstr_size);
    free(depts);
    return rc;
}

/* the route the claim worked out for this event, if it did (one event, one use) */
static int de_routed(dispatch_ctx_t *ctx, const Kesu__V1__Envelope *env, dispatch_route_t *out)
{
    for (size_t i = 0; i < ctx->nrouted; i++)
        if (ctx->routed[i].event_id[0] && strcmp(ctx->routed[i].event_id, env->event_id) == 0) {
            *out = ctx->routed[i].route;
            ctx->routed[i].event_id[0] = '\0';
            return 1;
        }
    return 0;
}

static kc_result_t de_dispatch(dispatch_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                               char *errstr, size_t errstr_size)
{
    PGresult *res = NULL, *rr = NULL;
    kc_result_t rc = KC_POISON;
    const char *want = env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED
                           ? "classified"
                       : env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED ? "returned"
                                                                                       : "reopened";
    char flagbuf[512], returned_by[2048], prev_dept[64], prev_handler[128], domain[64];
    const char *flags[16], *excluded[64];
    size_t nexcluded = 0;
    de_decision_t d;
    dispatch_route_t route;
    memset(&d, 0, sizeof(d));
    d.from = want;

    /* locked and read with the batch's claim (dispatch_batch), or now */
    int row;
    const PGresult *crow =
        kc_case_row(pg, &ctx->cases, &de_lock_case, env->case_id, &res, &row, errstr, errstr_size);
    if (!crow)
        return de_db_failure(pg);
    if (PQntuples(crow) == 0) {
        snprintf(errstr, errstr_size, "case %s not found", env->case_id);
        goto out;
    }
    if (strcmp(pg_get(crow, row, "status"), want) != 0) {
        LOG_INFO("case is %s, not %s: not dispatched", pg_get(crow, row, "status"), want);
        metrics_counter_add(ctx->m_skipped, 1);
        rc = KC_SKIP;
        goto out;
    }
    d.attempt = atoi(pg_get(crow, row, "dispatch_attempt"));
    snprintf(prev_dept, sizeof(prev_dept), "%s", pg_get(crow, row, "department"));
    snprintf(prev_handler, sizeof(prev_handler), "%s", pg_get(crow, row, "handler"));
    dispatch_input_t in;
    de_input(env, crow, row, &in, flagbuf, sizeof(flagbuf), flags);
    snprintf(domain, sizeof(domain), "%s", in.domain ? in.domain : "");
    if (!de_routed(ctx, env, &route) && dispatch_route(ctx->cat, &in, &route) != 0) {
        snprintf(errstr, errstr_size, "no catalogue rule matched (the default rule is missing)");
        goto out;
    }
    d.department = route.department;
    memcpy(d.co, route.co, sizeof(d.co));
    d.nco = route.nco;
    d.rule_id = route.rule_id;
    d.emergency = route.emergency;

    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED) {
        const Kesu__V1__CaseReturned *cr = env->case_returned;
        char when[24];
        const char *by = cr->department && *cr->department ? cr->department : prev_dept;
        snprintf(when, sizeof(when), "%lld", (long long)env->occurred_at_ms);
        const char *rv[6] = {env->case_id, env->event_id, pg_get(crow, row, "dispatch_attempt"),
                             by, cr->reason ? cr->reason : "", when};
        rr = pg_exec_stmt(pg, &de_record_return, rv, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!rr) {
            rc = de_db_failure(pg);
            goto out;
        }
        int returns = atoi(pg_get(rr, 0, "return_count"));
        snprintf(returned_by, sizeof(returned_by), "%s", pg_get(rr, 0, "returned_by"));
        nexcluded = de_parse_array(returned_by, excluded, 63);
        /* the statement's snapshot does not see its own insert: add this return */
        excluded[nexcluded++] = by;
        de_count("kesu_dispatcher_returns_total", "Cases returned (退单) by department",
                 "department", by);
        const dispatch_dept_t *sup = ctx->cat->supervision;
        const char *sup_code = sup ? sup->code : de_default_dept(ctx->cat);
        d.nco = 0;
        d.emergency = 0;
        if (returns >= ctx->max_returns) {
            d.department = sup_code; /* 改派 is the supervision office's decision now */
            d.rule_id = "return-supervisor";
        } else {
            d.rule_id = "return-reroute";
            d.department = NULL;
            /* the rule's lead, else a co-handler, else the default: one not yet tried */
            if (!de_in(excluded, nexcluded, route.department))
                d.department = route.department;
            for (size_t i = 0; !d.department && i < route.nco; i++)
                if (!de_in(excluded, nexcluded, route.co[i]))
                    d.department = route.co[i];
            if (!d.department && !de_in(excluded, nexcluded, de_default_dept(ctx->cat)))
                d.department = de_default_dept(ctx->cat);
            if (!d.department) {
                d.department = sup_code;
                d.rule_id = "return-supervisor";
            }
        }
        const char *dv[3] = {env->event_id, d.department,
                             strcmp(d.rule_id, "return-supervisor") == 0 ? "supervisor"
                                                                         : "dispatcher"};
        PGresult *x = pg_exec_stmt(pg, &de_return_decided, dv, PGRES_COMMAND_OK, errstr,
                                   errstr_size);
        if (!x) {
            rc = de_db_failure(pg);
            goto out;
        }
        PQclear(x);
        LOG_INFO("returned by %s (%d returns): re-routed to %s (%s)", by, returns, d.department,
                 d.rule_id);
    } else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED) {
        /* 重办: the department that handled it does it again, first in line */
        if (*prev_dept && dispatch_dept_find(ctx->cat, prev_dept)) {
            d.department = dispatch_dept_find(ctx->cat, prev_dept)->code;
            d.nco = 0;
            d.emergency = 0;
        }
        d.rule_id = "reopen";
        d.priority = 1;
        d.prefer_handler = *prev_handler ? prev_handler : NULL;
    }
    rc = de_commit(ctx, pg, env, &d, domain, errstr, errstr_size);
out:
    PQclear(rr);
    PQclear(res);
    return rc;
}

/* what the dispatcher does with an event type: the one list both
 * dispatch_wants and dispatch_handle read */

static de_route_t de_route(Kesu__V1__Envelope__PayloadCase pc)
{
    switch (pc) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED:
        return DE_DISPATCH;
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_MERGED:
        return DE_RELEASE;
    default:
        return DE_NONE;
    }
}

int dispatch_wants(void *opaque, const Kesu__V1__Envelope *env)
{
    (void)opaque;
    return de_route(env->payload_case) != DE_NONE;
}

kc_result_t dispatch_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size)
{
    dispatch_ctx_t *ctx = opaque;
    const Kesu__V1__Envelope *env = m->env;
    kc_result_t rc = KC_SKIP;
    int r;

    ctx->nundo = 0;
    switch (de_route(env->payload_case)) {
    case DE_DISPATCH:
        rc = de_dispatch(ctx, pg, env, errstr, errstr_size);
        break;
    case DE_RELEASE:
        r = dispatch_release_load(ctx, pg, env->case_id, errstr, errstr_size);
        if (r < 0) {
            rc = de_db_failure(pg);
        } else if (r > 0) {
            LOG_INFO("handler load released on %s", env->event_type);
            metrics_counter_add(ctx->m_released, 1);
            rc = KC_OK;
        } /* else released already, never assigned, or no handler */
        break;
    case DE_NONE:
        break;
    }
    /* an event that is not applied leaves the batch's loads as they were */
    while (rc != KC_OK && ctx->nundo > 0) {
        ctx->nundo--;
        ctx->loads[ctx->undo[ctx->nundo].slot].delta -= ctx->undo[ctx->nundo].delta;
    }
    return rc;
}

int dispatch_reload(dispatch_ctx_t *ctx, pg_t *pg, char *errstr, size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, &de_catalogue_version, NULL, PGRES_TUPLES_OK, errstr,
                                 errstr_size);
    if (!res)
        return -1;
    long long v = atoll(pg_get(res, 0, "v"));
    PQclear(res);
    if (v <= ctx->cat_version)
        return 0;
    res = pg_exec_stmt(pg, &de_catalogue_doc, NULL, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    char name[64];
    v = atoll(pg_get(res, 0, "version"));
    snprintf(name, sizeof(name), "catalogue version %lld", v);
    dispatch_catalogue_t *cat =
        dispatch_catalogue_parse(pg_get(res, 0, "document"), name, ctx->domains, errstr,
                                 errstr_size);
    PQclear(res);
    /* never retried: a version kesuctl checked should not fail here, and a bad one must
     * not stop dispatching with the catalogue in use */
    ctx->cat_version = v;
    if (!cat)
        return -1;
    dispatch_catalogue_free(ctx->owned);
    ctx->owned = cat;
    ctx->cat = cat;
    metrics_counter_add(ctx->m_reloads, 1);
    LOG_INFO("dispatch catalogue version %lld in use: %zu departments, %zu handlers, %zu rules", v,
             cat->ndepts, cat->nhandlers, cat->nrules);
    return 1;
}

void dispatch_tick(void *opaque, pg_t *pg)
{
    char errstr[1024];
    if (dispatch_reload(opaque, pg, errstr, sizeof(errstr)) < 0)
        LOG_ERROR("dispatch catalogue not reloaded, the one in use stays: %s", errstr);
}
