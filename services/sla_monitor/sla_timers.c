/*
 * sla_timers: start/stop on events, breach on scan.
 */
#include "sla_timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "log.h"
#include "proto.h"
#include "util.h"

static const pg_stmt_t st_case = {
    "st_case", "SELECT status, request_type, urgency FROM cases WHERE id = $1::uuid", 1};

/* a timer exists once per case and kind: a redelivered or repeated
 * CaseAssigned does not restart it */
static const pg_stmt_t st_start = {
    "st_start",
    "WITH t AS (INSERT INTO sla_timers (case_id, kind, started_at, due_at) "
    "VALUES ($1::uuid, $2, to_timestamp($3::double precision / 1000), "
    "to_timestamp($4::double precision / 1000)) ON CONFLICT (case_id, kind) DO NOTHING "
    "RETURNING case_id, kind, started_at, due_at) "
    "INSERT INTO sla_timer_log (case_id, kind, action, at, due_at, note) "
    "SELECT case_id, kind, 'start', started_at, due_at, $5 FROM t",
    5};

/* a breached timer keeps its state but gets its stop time: when the work
 * was finally done is part of the trail */
static const pg_stmt_t st_stop = {
    "st_stop",
    "WITH t AS (UPDATE sla_timers SET stopped_at = to_timestamp($3::double precision / 1000), "
    "state = CASE WHEN state = 'running' THEN 'stopped' ELSE state END "
    "WHERE case_id = $1::uuid AND kind = ANY ($2::text[]) AND stopped_at IS NULL "
    "AND state IN ('running', 'breached') RETURNING case_id, kind, due_at, stopped_at, state) "
    "INSERT INTO sla_timer_log (case_id, kind, action, at, due_at, note) "
    "SELECT case_id, kind, 'stop', stopped_at, due_at, "
    "$4 || CASE WHEN state = 'breached' THEN ' (after breach)' ELSE '' END FROM t",
    4};

static const pg_stmt_t st_due = {
    "st_due",
    "SELECT t.id, t.case_id, t.kind, "
    "(extract(epoch FROM t.due_at) * 1000)::bigint AS due_ms, c.status, "
    "(extract(epoch FROM c.accepted_at) * 1000)::bigint AS accepted_ms, "
    "(extract(epoch FROM c.resolved_at) * 1000)::bigint AS resolved_ms "
    "FROM sla_timers t JOIN cases c ON c.id = t.case_id "
    "WHERE t.state = 'running' AND t.due_at <= now() "
    "ORDER BY t.due_at LIMIT $1::integer FOR UPDATE OF t SKIP LOCKED",
    1};

static const pg_stmt_t st_breach = {
    "st_breach",
    "WITH t AS (UPDATE sla_timers SET state = 'breached', breached_at = now() "
    "WHERE id = $1::bigint AND state = 'running' RETURNING case_id, kind, due_at, breached_at) "
    "INSERT INTO sla_timer_log (case_id, kind, action, at, due_at, note) "
    "SELECT case_id, kind, 'breach', breached_at, due_at, $2 FROM t",
    2};

static const pg_stmt_t st_stop_one = {
    "st_stop_one",
    "WITH t AS (UPDATE sla_timers SET state = 'stopped', "
    "stopped_at = to_timestamp($2::double precision / 1000) "
    "WHERE id = $1::bigint AND state = 'running' RETURNING case_id, kind, due_at, stopped_at) "
    "INSERT INTO sla_timer_log (case_id, kind, action, at, due_at, note) "
    "SELECT case_id, kind, 'stop', stopped_at, due_at, $3 FROM t",
    3};

void sla_ctx_init(sla_ctx_t *ctx, const sla_policy_t *policy, void (*wake)(void *), void *arg)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->policy = policy;
    ctx->wake = wake;
    ctx->wake_arg = arg;
    ctx->scan_rounds = 10;
    ctx->m_started = metrics_counter("kesu_sla_timers_started_total", "SLA timers started", NULL);
    ctx->m_stopped = metrics_counter("kesu_sla_timers_stopped_total", "SLA timers stopped", NULL);
    ctx->m_breached =
        metrics_counter("kesu_sla_timers_breached_total", "SLA timers breached", NULL);
    ctx->m_scan_errors =
        metrics_counter("kesu_sla_scan_errors_total", "Breach scans that failed", NULL);
}

static kc_result_t st_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

static kc_result_t st_start_timers(sla_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                                   char *errstr, size_t errstr_size)
{
    PGresult *res;
    sla_limits_t lim;
    char status[24], note[160], start_s[24], due_s[24];
    int started = 0;

    const char *cv[1] = {env->case_id};
    res = pg_exec_stmt(pg, &st_case, cv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return st_db_failure(pg);
    if (PQntuples(res) == 0) {
        PQclear(res);
        snprintf(errstr, errstr_size, "case %s not found", env->case_id);
        return KC_POISON;
    }
    snprintf(status, sizeof(status), "%s", pg_get(res, 0, "status"));
    sla_policy_lookup(ctx->policy, pg_get(res, 0, "request_type"), pg_get(res, 0, "urgency"), &lim);
    snprintf(note, sizeof(note), "CaseAssigned request_type=%s urgency=%s",
             pg_get(res, 0, "request_type"), pg_get(res, 0, "urgency"));
    PQclear(res);

    /* the topics are not ordered with each other: the case row says what is
     * still ahead of it */
    int want[SLA__KINDS] = {
        [SLA_ACCEPT] = strcmp(status, "assigned") == 0,
        [SLA_RESOLVE] = strcmp(status, "assigned") == 0 || strcmp(status, "accepted") == 0 ||
                        strcmp(status, "in_progress") == 0,
    };
    int64_t start = env->occurred_at_ms;
    snprintf(start_s, sizeof(start_s), "%" PRId64, start);
    for (int k = 0; k < SLA__KINDS; k++) {
        if (!want[k])
            continue;
        char knote[256];
        snprintf(due_s, sizeof(due_s), "%" PRId64, sla_due_at(&lim, (sla_kind_t)k, start));
        snprintf(knote, sizeof(knote), "%s limit=%" PRId64 "min scale=%g", note, lim.minutes[k],
                 lim.time_scale);
        const char *sv[5] = {env->case_id, sla_kind_name((sla_kind_t)k), start_s, due_s, knote};
        res = pg_exec_stmt(pg, &st_start, sv, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res)
            return st_db_failure(pg);
        started += atoi(PQcmdTuples(res));
        PQclear(res);
    }
    if (!started) {
        LOG_INFO("no timer started: case is %s%s", status,
                 want[SLA_ACCEPT] || want[SLA_RESOLVE] ? " and its timers exist" : "");
        return KC_SKIP;
    }
    LOG_INFO("%d SLA timers started (accept %" PRId64 " min, resolve %" PRId64 " min)", started,
             want[SLA_ACCEPT] ? lim.minutes[SLA_ACCEPT] : 0, lim.minutes[SLA_RESOLVE]);
    metrics_counter_add(ctx->m_started, (uint64_t)started);
    return KC_OK;
}

static kc_result_t st_stop_timers(sla_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                                  const char *kinds, char *errstr, size_t errstr_size)
{
    char at[24];
    snprintf(at, sizeof(at), "%" PRId64, env->occurred_at_ms);
    const char *v[4] = {env->case_id, kinds, at, env->event_type};
    PGresult *res = pg_exec_stmt(pg, &st_stop, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return st_db_failure(pg);
    int n = atoi(PQcmdTuples(res));
    PQclear(res);
    if (!n)
        return KC_SKIP; /* no timer, or stopped already */
    LOG_INFO("%d SLA timers stopped on %s", n, env->event_type);
    metrics_counter_add(ctx->m_stopped, (uint64_t)n);
    return KC_OK;
}

kc_result_t sla_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr, size_t errstr_size)
{
    sla_ctx_t *ctx = opaque;
    const Kesu__V1__Envelope *env = m->env;
    switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED:
        return st_start_timers(ctx, pg, env, errstr, errstr_size);
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED:
        return st_stop_timers(ctx, pg, env, "{accept}", errstr, errstr_size);
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
        /* resolving implies it was accepted */
        return st_stop_timers(ctx, pg, env, "{accept,resolve}", errstr, errstr_size);
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_MERGED:
        return st_stop_timers(ctx, pg, env, "{accept,resolve,reply,follow_up}", errstr,
                              errstr_size);
    default:
        return KC_SKIP;
    }
}

/* ---- scan ---- */

/* what a due timer should become: 0 breach, 1 stop (done in time or case gone) */
static int st_done_in_time(const PGresult *res, int row, sla_kind_t kind, int64_t due_ms,
                           int64_t *done_ms, const char **why)
{
    const char *status = pg_get(res, row, "status");
    const char *col = kind == SLA_ACCEPT ? "accepted_ms" : "resolved_ms";
    if (strcmp(status, "withdrawn") == 0 || strcmp(status, "rejected") == 0 ||
        strcmp(status, "merged") == 0) {
        *done_ms = 0;
        *why = "at scan: case is no longer open";
        return 1;
    }
    if (!pg_isnull(res, row, col)) {
        *done_ms = strtoll(pg_get(res, row, col), NULL, 10);
        if (*done_ms <= due_ms) {
            *why = kind == SLA_ACCEPT ? "at scan: accepted in time" : "at scan: resolved in time";
            return 1;
        }
    }
    return 0;
}

static int st_breach_one(pg_t *pg, const char *timer_id, const char *case_id, const char *kind,
                         int64_t due_ms, char *errstr, size_t errstr_size)
{
    PGresult *res;
    char note[64];
    snprintf(note, sizeof(note), "due %" PRId64 " passed", due_ms);
    const char *bv[2] = {timer_id, note};
    res = pg_exec_stmt(pg, &st_breach, bv, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);

    Kesu__V1__SlaBreached sb = KESU__V1__SLA_BREACHED__INIT;
    sb.timer = (char *)kind;
    sb.due_at_ms = due_ms;
    sb.breach_count = 1;
    proto_env_t pe;
    proto_env_init(&pe, SLA_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED,
                          (const ProtobufCMessage *)&sb);
    int rc = casestore_append(pg, case_id, SLA_PRODUCER, SLA_PRODUCER, KAFKA_TOPIC_SLA, &pe, NULL,
                              errstr, errstr_size);
    return rc == CASESTORE_OK ? 0 : -1;
}

int sla_scan(pg_t *pg, sla_ctx_t *ctx, int limit, int *breached, char *errstr, size_t errstr_size)
{
    PGresult *due = NULL, *res = NULL;
    char lim_s[16];
    int handled = 0, nbreached = 0, nstopped = 0;
    if (breached)
        *breached = 0;
    if (pg_ensure(pg, errstr, errstr_size) != 0 || pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    snprintf(lim_s, sizeof(lim_s), "%d", limit);
    const char *dv[1] = {lim_s};
    due = pg_exec_stmt(pg, &st_due, dv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!due)
        goto fail;
    for (int i = 0; i < PQntuples(due); i++) {
        const char *id = pg_get(due, i, "id"), *case_id = pg_get(due, i, "case_id");
        const char *kind_s = pg_get(due, i, "kind");
        int kind = sla_kind_parse(kind_s);
        int64_t due_ms = strtoll(pg_get(due, i, "due_ms"), NULL, 10), done_ms = 0;
        const char *why = NULL;
        char at[24];
        log_ctx_set(case_id, NULL, NULL, -1, -1);

        if (kind >= 0 && st_done_in_time(due, i, (sla_kind_t)kind, due_ms, &done_ms, &why)) {
            snprintf(at, sizeof(at), "%" PRId64, done_ms ? done_ms : util_now_ms());
            const char *sv[3] = {id, at, why};
            res = pg_exec_stmt(pg, &st_stop_one, sv, PGRES_COMMAND_OK, errstr, errstr_size);
            if (!res)
                goto fail;
            PQclear(res);
            res = NULL;
            LOG_INFO("SLA %s timer stopped (%s)", kind_s, why);
            nstopped++;
            handled++;
            continue;
        }
        /* one bad case must not hold back every other breach: a savepoint each */
        if (pg_command(pg, "SAVEPOINT sla_breach", errstr, errstr_size) != 0)
            goto fail;
        if (st_breach_one(pg, id, case_id, kind_s, due_ms, errstr, errstr_size) != 0) {
            if (pg_failure_transient(pg))
                goto fail;
            LOG_ERROR("SLA %s timer %s not breached, retried next scan: %s", kind_s, id, errstr);
            metrics_counter_add(ctx->m_scan_errors, 1);
            if (pg_command(pg, "ROLLBACK TO SAVEPOINT sla_breach", errstr, errstr_size) != 0)
                goto fail;
            continue;
        }
        if (pg_command(pg, "RELEASE SAVEPOINT sla_breach", errstr, errstr_size) != 0)
            goto fail;
        LOG_WARN("SLA %s timer breached (due %" PRId64 ")", kind_s, due_ms);
        nbreached++;
        handled++;
    }
    log_ctx_clear();
    PQclear(due);
    due = NULL;
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto fail;
    metrics_counter_add(ctx->m_breached, (uint64_t)nbreached);
    metrics_counter_add(ctx->m_stopped, (uint64_t)nstopped);
    if (breached)
        *breached = nbreached;
    return handled;
fail:
    log_ctx_clear();
    PQclear(due);
    PQclear(res);
    pg_rollback(pg);
    metrics_counter_add(ctx->m_scan_errors, 1);
    return -1;
}

void sla_tick(void *opaque, pg_t *pg)
{
    sla_ctx_t *ctx = opaque;
    char errstr[512];
    int total = 0;
    for (int round = 0; round < (ctx->scan_rounds > 0 ? ctx->scan_rounds : 1); round++) {
        int breached = 0;
        int n = sla_scan(pg, ctx, SLA_SCAN_BATCH, &breached, errstr, sizeof(errstr));
        if (n < 0) {
            LOG_WARN("SLA scan failed, retried next tick: %s", errstr);
            break;
        }
        total += breached;
        if (n < SLA_SCAN_BATCH)
            break;
    }
    if (total > 0 && ctx->wake)
        ctx->wake(ctx->wake_arg);
}
