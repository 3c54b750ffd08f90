/*
 * dispatch_event: CaseClassified -> CaseAssigned, and load release.
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

static const pg_stmt_t de_lock_case = {
    "de_lock_case",
    "SELECT status, district_code, title, body FROM cases WHERE id = $1::uuid FOR UPDATE", 1};

static const pg_stmt_t de_pick_handler = {
    "de_pick_handler",
    "SELECT id FROM handlers WHERE department = $1 AND active AND open_load < capacity "
    "AND ($2 = ANY (skills) OR '*' = ANY (skills)) ORDER BY open_load, id LIMIT 1 FOR UPDATE",
    2};

static const pg_stmt_t de_take_load = {
    "de_take_load", "UPDATE handlers SET open_load = open_load + 1 WHERE id = $1", 1};

/* load_released is true when there is nothing to give back (no handler) */
static const pg_stmt_t de_assign = {
    "de_assign",
    "UPDATE cases SET department = $2, handler = $3, co_departments = $4::text[], "
    "assigned_at = now(), dispatch_attempt = dispatch_attempt + 1, "
    "load_released = ($3::text IS NULL) WHERE id = $1::uuid RETURNING dispatch_attempt",
    4};

static const pg_stmt_t de_release = {
    "de_release",
    "WITH c AS (UPDATE cases SET load_released = true WHERE id = $1::uuid "
    "AND NOT load_released AND handler IS NOT NULL RETURNING handler) "
    "UPDATE handlers h SET open_load = GREATEST(h.open_load - 1, 0) FROM c "
    "WHERE h.id = c.handler RETURNING h.id",
    1};

void dispatch_ctx_init(dispatch_ctx_t *ctx, const dispatch_catalogue_t *cat)
{
    ctx->cat = cat;
    ctx->m_assigned = metrics_counter("kesu_dispatcher_assigned_total", "Cases assigned", NULL);
    ctx->m_emergency = metrics_counter("kesu_dispatcher_emergency_total",
                                       "Cases assigned to the emergency desk", NULL);
    ctx->m_no_handler =
        metrics_counter("kesu_dispatcher_no_handler_total",
                        "Cases assigned to a department with no handler below capacity", NULL);
    ctx->m_released = metrics_counter("kesu_dispatcher_load_released_total",
                                      "Handler loads given back on resolve/close/...", NULL);
    ctx->m_skipped = metrics_counter("kesu_dispatcher_skipped_total",
                                     "CaseClassified events for cases that had moved on", NULL);
}

static kc_result_t de_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

int dispatch_release_load(pg_t *pg, const char *case_id, char *errstr, size_t errstr_size)
{
    const char *v[1] = {case_id};
    PGresult *res = pg_exec_stmt(pg, &de_release, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    int released = PQntuples(res) > 0;
    if (released)
        LOG_DEBUG("load of handler %s released", pg_get(res, 0, "id"));
    PQclear(res);
    return released;
}

static kc_result_t de_assign_case(dispatch_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                                  char *errstr, size_t errstr_size)
{
    const Kesu__V1__CaseClassified *cc = env->case_classified;
    PGresult *res = NULL;
    kc_result_t rc = KC_POISON;
    char handler[128] = "", co[1024], attempt_s[16] = "1";
    int have_handler = 0;
    dispatch_route_t route;

    const char *lv[1] = {env->case_id};
    res = pg_exec_stmt(pg, &de_lock_case, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return de_db_failure(pg);
    if (PQntuples(res) == 0) {
        snprintf(errstr, errstr_size, "case %s not found", env->case_id);
        goto out;
    }
    if (strcmp(pg_get(res, 0, "status"), "classified") != 0) {
        LOG_INFO("case is %s, not classified: not dispatched", pg_get(res, 0, "status"));
        metrics_counter_add(ctx->m_skipped, 1);
        rc = KC_SKIP;
        goto out;
    }
    dispatch_input_t in = {
        .domain = cc->domain,
        .category = cc->category,
        .urgency = cc->urgency,
        .flags = (const char *const *)cc->flags,
        .nflags = cc->n_flags,
        .district = pg_get(res, 0, "district_code"),
        .title = pg_get(res, 0, "title"),
        .body = pg_get(res, 0, "body"),
    };
    if (dispatch_route(ctx->cat, &in, &route) != 0) {
        snprintf(errstr, errstr_size, "no catalogue rule matched (the default rule is missing)");
        goto out;
    }

    /* a re-dispatched case gives its previous handler's load back first */
    if (dispatch_release_load(pg, env->case_id, errstr, errstr_size) < 0) {
        rc = de_db_failure(pg);
        goto out;
    }
    PQclear(res);
    const char *pv[2] = {route.department, cc->domain};
    res = pg_exec_stmt(pg, &de_pick_handler, pv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res) {
        rc = de_db_failure(pg);
        goto out;
    }
    if (PQntuples(res) > 0) {
        snprintf(handler, sizeof(handler), "%s", pg_get(res, 0, "id"));
        have_handler = 1;
        PQclear(res);
        const char *tv[1] = {handler};
        res = pg_exec_stmt(pg, &de_take_load, tv, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res) {
            rc = de_db_failure(pg);
            goto out;
        }
    }
    PQclear(res);
    res = NULL;

    if (dispatch_array_literal(route.co, route.nco, co, sizeof(co)) != 0) {
        snprintf(errstr, errstr_size, "too many co-handling departments");
        goto out;
    }
    const char *av[4] = {env->case_id, route.department, have_handler ? handler : NULL, co};
    res = pg_exec_stmt(pg, &de_assign, av, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res) {
        rc = de_db_failure(pg);
        goto out;
    }
    snprintf(attempt_s, sizeof(attempt_s), "%s", pg_get(res, 0, "dispatch_attempt"));
    PQclear(res);
    res = NULL;

    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    ca.department = (char *)route.department;
    ca.handler = handler;
    ca.co_departments = (char **)route.co;
    ca.n_co_departments = route.nco;
    ca.rule = (char *)route.rule_id;
    ca.emergency_desk = route.emergency;
    ca.attempt = atoi(attempt_s);

    proto_env_t pe;
    proto_env_init(&pe, DISPATCH_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED,
                          (const ProtobufCMessage *)&ca);
    static const char *const from[] = {"classified", NULL};
    casestore_change_t ch = {
        .case_id = env->case_id,
        .from = from,
        .to = "assigned",
        .producer = DISPATCH_PRODUCER,
        .actor = DISPATCH_PRODUCER,
        .topic = KAFKA_TOPIC_DISPATCHER,
    };
    switch (casestore_apply(pg, &ch, &pe, NULL, errstr, errstr_size)) {
    case CASESTORE_OK:
        LOG_INFO("assigned department=%s handler=%s rule=%s attempt=%d%s", route.department,
                 have_handler ? handler : "-", route.rule_id, ca.attempt,
                 route.emergency ? " emergency_desk" : "");
        metrics_counter_add(ctx->m_assigned, 1);
        if (route.emergency)
            metrics_counter_add(ctx->m_emergency, 1);
        if (!have_handler)
            metrics_counter_add(ctx->m_no_handler, 1);
        rc = KC_OK;
        break;
    case CASESTORE_NOT_FOUND:
    case CASESTORE_CONFLICT:
    case CASESTORE_STALE:
        /* we hold the row lock and saw "classified": this cannot move on under us */
        rc = KC_POISON;
        break;
    default:
        rc = de_db_failure(pg);
        break;
    }
out:
    PQclear(res);
    return rc;
}

kc_result_t dispatch_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size)
{
    dispatch_ctx_t *ctx = opaque;
    const Kesu__V1__Envelope *env = m->env;
    int r;

    switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED:
        return de_assign_case(ctx, pg, env, errstr, errstr_size);
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_MERGED:
        r = dispatch_release_load(pg, env->case_id, errstr, errstr_size);
        if (r < 0)
            return de_db_failure(pg);
        if (r == 0)
            return KC_SKIP; /* released already, never assigned, or no handler */
        LOG_INFO("handler load released on %s", env->event_type);
        metrics_counter_add(ctx->m_released, 1);
        return KC_OK;
    default:
        return KC_SKIP;
    }
}
