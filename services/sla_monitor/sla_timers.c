/*
 * sla_timers: start/stop/pause/resume/extend on events, fire on scan.
 *
 * Every change of a timer goes through st_save(): the clock computed in C
 * (sla_clock.c, on the calendar) is written back with its new deadline and
 * next_at, and one sla_timer_log row records the action, the working time
 * used at that instant and why - the trail that explains a breach.
 *
 * Locks: an event handler locks the case row, then its timers; the scan
 * locks due timers (SKIP LOCKED) and then the case row with NOWAIT, skipping
 * a timer whose case is busy until the next scan, so the two never wait on
 * each other in opposite order.
 */
#include "sla_timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "casestore.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define ST_CASE_COLS "status, request_type, urgency, department, dispatch_attempt "

static const pg_stmt_t st_case = {
    "st_case", "SELECT " ST_CASE_COLS "FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE", 1};

/* the same for a batch's cases at once, in id order (sla_batch) */
static const pg_stmt_t st_case_many = {
    "st_case_many",
    "SELECT id::text AS id, " ST_CASE_COLS "FROM cases WHERE id = ANY ($1::uuid[]) ORDER BY id "
    "FOR NO KEY UPDATE",
    1};

#define ST_TIMER_COLS                                                                              \
    "t.id, t.case_id, t.kind, t.cycle, t.state, t.work, t.total_ms, t.used_ms, "                  \
    "(extract(epoch FROM t.anchor_at) * 1000)::bigint AS anchor_ms, t.escalate_ms, t.warned, "    \
    "t.breach_count, COALESCE(t.paused_state, '') AS paused_state, "                              \
    "COALESCE(t.department, '') AS department, t.limit_spec, "                                    \
    "COALESCE(t.request_type, '') AS request_type, COALESCE(t.urgency, '') AS urgency, "         \
    "(extract(epoch FROM t.due_at) * 1000)::bigint AS due_ms, "                                   \
    "(extract(epoch FROM t.started_at) * 1000)::bigint AS started_ms "

/*
 * Start timers (one row each in $2..$19; the rows of an event, or of a fast
 * batch's events, of one case each) and log each start; $1 is the actor. A
 * timer exists once per case, kind and cycle: a redelivered or repeated
 * CaseAssigned does not restart it. Each timer started now comes back with
 * the instant the case already did what it waits for (done_ms, 0 = not yet):
 * the case row's accepted_at / resolved_at / closed_at at or after the
 * start, or the first history event of the kind's stopping types (stops)
 * after the starting event (its seq; without one, at or after the start) -
 * the monitor may see CaseAssigned (another topic) after the accept and the
 * resolve. A row with `unless_open` starts only if no resolve timer of its
 * case was open at its start (started by then and not stopped before it): a
 * return keeps the clock of the resolve timer open at assignment, a reopen
 * stopped it — judged at the event's time, not now, so the monitor's lag
 * changes nothing. The statement's snapshot is taken before its insert: a
 * timer it starts does not count (and a case's rows come from one event).
 */
#define ST_START_COLS 18
static const pg_stmt_t st_start = {
    "st_start",
    "WITH r AS (SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::text[], "
    "$6::text[], $7::text[], $8::integer[], $9::bigint[], $10::text[], $11::boolean[], "
    "$12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::text[], $17::text[], "
    "$18::boolean[], $19::text[]) WITH ORDINALITY AS r(case_id, start_ms, seq, rt, urg, kind, "
    "cycle, due_ms, spec, work, total_ms, esc_ms, next_ms, dept, note, stops, unless_open, "
    "event_type, ord) "
    "WHERE NOT (r.unless_open AND EXISTS (SELECT 1 FROM sla_timers o WHERE o.case_id = r.case_id "
    "AND o.kind = 'resolve' AND o.started_at <= to_timestamp(r.start_ms::double precision / 1000) "
    "AND (o.state <> 'stopped' OR "
    "o.stopped_at > to_timestamp(r.start_ms::double precision / 1000))))), "
    "t AS (INSERT INTO sla_timers (case_id, kind, cycle, started_at, due_at, limit_spec, work, "
    "total_ms, used_ms, anchor_at, escalate_ms, next_at, department, request_type, urgency) "
    "SELECT r.case_id, r.kind, r.cycle, to_timestamp(r.start_ms::double precision / 1000), "
    "to_timestamp(r.due_ms::double precision / 1000), r.spec, r.work, r.total_ms, 0, "
    "to_timestamp(r.start_ms::double precision / 1000), r.esc_ms, "
    "to_timestamp(r.next_ms::double precision / 1000), NULLIF(r.dept, ''), NULLIF(r.rt, ''), "
    "NULLIF(r.urg, '') FROM r ORDER BY r.ord ON CONFLICT (case_id, kind, cycle) DO NOTHING "
    "RETURNING case_id, kind, cycle, started_at, due_at), "
    "l AS (INSERT INTO sla_timer_log (case_id, kind, cycle, action, at, due_at, used_ms, note, "
    "actor) SELECT t.case_id, t.kind, t.cycle, 'start', t.started_at, t.due_at, 0, r.note, $1 "
    "FROM t JOIN r ON r.case_id = t.case_id AND r.kind = t.kind AND r.cycle = t.cycle "
    "ORDER BY r.ord) "
    "SELECT t.case_id::text AS case_id, t.kind, t.cycle, r.event_type, "
    "COALESCE((extract(epoch FROM LEAST("
    "CASE WHEN t.kind = 'accept' AND c.accepted_at >= t.started_at THEN c.accepted_at END, "
    "CASE WHEN t.kind IN ('accept', 'resolve') AND c.resolved_at >= t.started_at "
    "THEN c.resolved_at END, "
    "CASE WHEN c.closed_at >= t.started_at THEN c.closed_at END, "
    "(SELECT GREATEST(e.occurred_at, t.started_at) FROM case_events e WHERE e.case_id = c.id "
    "AND e.event_type = ANY (r.stops::text[]) AND CASE WHEN r.seq > 0 THEN e.seq > r.seq "
    "ELSE e.occurred_at >= t.started_at END ORDER BY e.seq LIMIT 1))) * 1000)::bigint, "
    "0) AS done_ms FROM t JOIN r ON r.case_id = t.case_id AND r.kind = t.kind "
    "AND r.cycle = t.cycle JOIN cases c ON c.id = t.case_id ORDER BY r.ord",
    19}; /* $1 and the ST_START_COLS arrays (a literal: scripts/scale_audit.py reads it) */
_Static_assert(1 + ST_START_COLS == 19, "st_start: $1 and one array per column");

static const pg_stmt_t st_open = {
    "st_open",
    "SELECT " ST_TIMER_COLS "FROM sla_timers t WHERE t.case_id = $1::uuid "
    "AND t.kind = ANY ($2::text[]) AND t.state IN ('running', 'paused', 'breached') "
    "ORDER BY t.id FOR UPDATE",
    2};

/* one timer by its key, locked (after the case row, as everywhere) */
static const pg_stmt_t st_timer = {
    "st_timer",
    "SELECT " ST_TIMER_COLS "FROM sla_timers t WHERE t.case_id = $1::uuid AND t.kind = $2 "
    "AND t.cycle = $3::integer FOR UPDATE",
    3};

static const pg_stmt_t st_due = {
    "st_due",
    "SELECT " ST_TIMER_COLS ", c.status, "
    "COALESCE((extract(epoch FROM c.accepted_at) * 1000)::bigint, 0) AS accepted_ms, "
    "COALESCE((extract(epoch FROM c.resolved_at) * 1000)::bigint, 0) AS resolved_ms "
    "FROM sla_timers t JOIN cases c ON c.id = t.case_id "
    "WHERE t.state IN ('running', 'breached') AND t.next_at <= to_timestamp($2::double "
    "precision / 1000) ORDER BY t.next_at LIMIT $1::integer FOR UPDATE OF t SKIP LOCKED",
    2};

static const pg_stmt_t st_lock_case = {
    "st_lock_case", "SELECT 1 FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE NOWAIT", 1};

/* $12 is the instant of the action; $13 true records it as breached_at */
static const pg_stmt_t st_set = {
    "st_set",
    "WITH t AS (UPDATE sla_timers SET state = $2, total_ms = $3::bigint, used_ms = $4::bigint, "
    "anchor_at = to_timestamp($5::double precision / 1000), "
    "due_at = to_timestamp($6::double precision / 1000), "
    "next_at = to_timestamp($7::double precision / 1000), warned = $8::smallint, "
    "breach_count = $9::smallint, paused_at = to_timestamp($10::double precision / 1000), "
    "paused_state = NULLIF($11, ''), "
    "stopped_at = CASE WHEN $2 = 'stopped' THEN to_timestamp($12::double precision / 1000) "
    "ELSE stopped_at END, "
    "breached_at = CASE WHEN $13::boolean THEN to_timestamp($12::double precision / 1000) "
    "ELSE breached_at END, limit_spec = $17, work = $18::boolean, escalate_ms = $19::bigint "
    "WHERE id = $1::bigint RETURNING case_id, kind, cycle, due_at) "
    "INSERT INTO sla_timer_log (case_id, kind, cycle, action, at, due_at, used_ms, note, actor) "
    "SELECT case_id, kind, cycle, $14, to_timestamp($12::double precision / 1000), due_at, "
    "$4::bigint, $15, $16 FROM t",
    19};

static const pg_stmt_t st_close_case = {
    "st_close_case",
    "UPDATE cases SET closed_at = to_timestamp($2::double precision / 1000), "
    "close_reason = 'no_feedback' WHERE id = $1::uuid",
    2};

static const pg_stmt_t st_pending = {
    "st_pending",
    "SELECT kind, count(*) AS n FROM sla_timers WHERE state IN ('running', 'paused', 'breached') "
    "GROUP BY kind",
    0};

static const pg_stmt_t st_all_open = {
    "st_all_open",
    "SELECT " ST_TIMER_COLS "FROM sla_timers t WHERE t.state IN ('running', 'paused', "
    "'breached') ORDER BY t.id FOR UPDATE",
    0};

static const char *const st_fire_names[5] = {"auto_close", "warning", "breach", "second_breach",
                                             NULL};

void sla_ctx_init(sla_ctx_t *ctx, const sla_policy_t *policy, void (*wake)(void *), void *arg)
{
    char labels[64];
    memset(ctx, 0, sizeof(*ctx));
    ctx->policy = policy;
    ctx->wake = wake;
    ctx->wake_arg = arg;
    ctx->scan_rounds = 10;
    ctx->m_started = metrics_counter("kesu_sla_timers_started_total", "SLA timers started", NULL);
    ctx->m_stopped = metrics_counter("kesu_sla_timers_stopped_total", "SLA timers stopped", NULL);
    for (int i = 0; i < 4; i++) {
        snprintf(labels, sizeof(labels), "what=\"%s\"", st_fire_names[i]);
        ctx->m_fired[i] = metrics_counter("kesu_sla_timers_fired_total",
                                          "SLA timer firings by what fired", labels);
    }
    ctx->m_breached =
        metrics_counter("kesu_sla_timers_breached_total", "SLA timers breached", NULL);
    ctx->m_scan_errors =
        metrics_counter("kesu_sla_scan_errors_total", "Timer scans that failed", NULL);
    for (int k = 0; k < SLA__KINDS; k++) {
        snprintf(labels, sizeof(labels), "kind=\"%s\"", sla_kind_name((sla_kind_t)k));
        ctx->m_pending[k] = metrics_gauge("kesu_sla_timers_pending",
                                          "Open SLA timers (running, paused or breached once)",
                                          labels);
    }
}

static kc_result_t st_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

/* a department code as a label value: codes are [a-z0-9_], anything else is "other" */
static void st_dept_label(const char *dept, char *out, size_t n)
{
    const char *d = dept && *dept ? dept : "none";
    for (const char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            d = "other";
    snprintf(out, n, "department=\"%s\"", d);
}

static void st_count_dept(const char *metric, const char *help, const char *dept)
{
    char labels[128];
    st_dept_label(dept, labels, sizeof(labels));
    metrics_counter_add(metrics_counter(metric, help, labels), 1);
}

/* ---- timer rows ---- */

typedef struct st_row {
    char id[24];
    char case_id[37];
    char kind[16];
    char state[12];
    char paused_state[12];
    char department[64];
    char limit_spec[16];
    char request_type[24];
    char urgency[16];
    int cycle;
    int64_t due_ms, started_ms;
    sla_clock_t c;
} st_row_t;

static int64_t st_i64(const PGresult *res, int i, const char *col)
{
    return pg_isnull(res, i, col) ? 0 : strtoll(pg_get(res, i, col), NULL, 10);
}

static void st_row_read(const PGresult *res, int i, st_row_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", pg_get(res, i, "id"));
    snprintf(r->case_id, sizeof(r->case_id), "%s", pg_get(res, i, "case_id"));
    snprintf(r->kind, sizeof(r->kind), "%s", pg_get(res, i, "kind"));
    snprintf(r->state, sizeof(r->state), "%s", pg_get(res, i, "state"));
    snprintf(r->paused_state, sizeof(r->paused_state), "%s", pg_get(res, i, "paused_state"));
    snprintf(r->department, sizeof(r->department), "%s", pg_get(res, i, "department"));
    snprintf(r->limit_spec, sizeof(r->limit_spec), "%s", pg_get(res, i, "limit_spec"));
    snprintf(r->request_type, sizeof(r->request_type), "%s", pg_get(res, i, "request_type"));
    snprintf(r->urgency, sizeof(r->urgency), "%s", pg_get(res, i, "urgency"));
    r->cycle = atoi(pg_get(res, i, "cycle"));
    r->due_ms = st_i64(res, i, "due_ms");
    r->started_ms = st_i64(res, i, "started_ms");
    r->c.work = strcmp(pg_get(res, i, "work"), "t") == 0;
    r->c.total_ms = st_i64(res, i, "total_ms");
    r->c.used_ms = st_i64(res, i, "used_ms");
    r->c.anchor_ms = st_i64(res, i, "anchor_ms");
    r->c.escalate_ms = st_i64(res, i, "escalate_ms");
    r->c.warned = atoi(pg_get(res, i, "warned"));
    r->c.breach_count = atoi(pg_get(res, i, "breach_count"));
}

static int st_nwarn(const sla_ctx_t *ctx, const char *kind)
{
    return strcmp(kind, "auto_close") == 0 ? 0 : ctx->policy->nwarn;
}

/*
 * Write r back (state, clock, deadline, next_at) and log the action at `at`.
 * paused_ms: when state is paused, the pause instant.
 */
static int st_save(pg_t *pg, const sla_ctx_t *ctx, const st_row_t *r, const char *action,
                   int64_t at, int breached, const char *note, const char *actor, char *errstr,
                   size_t errstr_size)
{
    const calendar_t *cal = ctx->policy->cal;
    char s_total[24], s_used[24], s_anchor[24], s_due[24], s_next[24], s_warned[8], s_bc[8],
        s_paused[24], s_at[24], s_esc[24];
    int64_t next = 0;
    int pct;
    int64_t due = r->c.anchor_ms ? sla_clock_due(cal, &r->c) : r->due_ms;
    int running = strcmp(r->state, "running") == 0 || strcmp(r->state, "breached") == 0;
    if (running && sla_clock_next(cal, &r->c, ctx->policy->warn_percent, st_nwarn(ctx, r->kind),
                                  &next, &pct) == SLA_FIRE_NONE)
        next = 0;
    /* a stopped timer records the working time used up to its stop */
    int64_t used = strcmp(r->state, "stopped") == 0 ? sla_clock_used_at(cal, &r->c, at)
                                                     : r->c.used_ms;
    snprintf(s_total, sizeof(s_total), "%" PRId64, r->c.total_ms);
    snprintf(s_used, sizeof(s_used), "%" PRId64, used);
    snprintf(s_anchor, sizeof(s_anchor), "%" PRId64, r->c.anchor_ms);
    snprintf(s_due, sizeof(s_due), "%" PRId64, due);
    snprintf(s_next, sizeof(s_next), "%" PRId64, next);
    snprintf(s_warned, sizeof(s_warned), "%d", r->c.warned);
    snprintf(s_bc, sizeof(s_bc), "%d", r->c.breach_count);
    snprintf(s_paused, sizeof(s_paused), "%" PRId64, at);
    snprintf(s_at, sizeof(s_at), "%" PRId64, at);
    int paused = strcmp(r->state, "paused") == 0;
    snprintf(s_esc, sizeof(s_esc), "%" PRId64, r->c.escalate_ms);
    const char *v[19] = {r->id,
                         r->state,
                         s_total,
                         s_used,
                         r->c.anchor_ms && strcmp(r->state, "stopped") ? s_anchor : NULL,
                         s_due,
                         next ? s_next : NULL,
                         s_warned,
                         s_bc,
                         paused ? s_paused : NULL,
                         paused ? r->paused_state : "",
                         s_at,
                         breached ? "true" : "false",
                         action,
                         note,
                         actor,
                         r->limit_spec,
                         r->c.work ? "true" : "false",
                         s_esc};
    PGresult *res = pg_exec_stmt(pg, &st_set, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static int st_starts_write(pg_t *pg, sla_ctx_t *ctx, char *errstr, size_t errstr_size);

kc_result_t sla_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                      size_t n, char *errstr, size_t errstr_size)
{
    sla_ctx_t *ctx = opaque;
    if (phase == KC_BATCH_END) {
        int w = st_starts_write(pg, ctx, errstr, errstr_size);
        ctx->gather = 0;
        if (w < 0)
            return st_db_failure(pg);
    } else if (phase == KC_BATCH_BEGIN || phase == KC_BATCH_BEGIN_CAREFUL) {
        /* a fast attempt gathers its timer starts for one statement at its end; a
         * careful one writes each event's own, so that a savepoint undoes them */
        ctx->nstart_cases = 0;
        ctx->gather =
            phase == KC_BATCH_BEGIN && pg_rows_ready(&ctx->starts, ST_START_COLS) == 0;
    }
    return kc_cases_step(pg, phase, &st_case_many, msgs, n, &ctx->cases, errstr, errstr_size);
}

void sla_ctx_free(sla_ctx_t *ctx)
{
    pg_keyed_clear(&ctx->cases);
    pg_rows_free(&ctx->starts);
}

/* lock the case (or take its row locked with the batch's claim); *status (>= 24
 * bytes) etc. filled. 0 ok, 1 no such case, -1 error */
static int st_case_read(sla_ctx_t *ctx, pg_t *pg, const char *case_id, char *status, char *rt,
                        char *urg, char *dept, int *attempt, char *errstr, size_t errstr_size)
{
    PGresult *res;
    int row;
    const PGresult *cases =
        kc_case_row(pg, &ctx->cases, &st_case, case_id, &res, &row, errstr, errstr_size);
    if (!cases)
        return -1;
    if (PQntuples(cases) == 0) {
        PQclear(res);
        snprintf(errstr, errstr_size, "case %s not found", case_id);
        return 1;
    }
    snprintf(status, 24, "%s", pg_get(cases, row, "status"));
    snprintf(rt, 24, "%s", pg_get(cases, row, "request_type"));
    snprintf(urg, 16, "%s", pg_get(cases, row, "urgency"));
    snprintf(dept, 64, "%s", pg_get(cases, row, "department"));
    *attempt = atoi(pg_get(cases, row, "dispatch_attempt"));
    PQclear(res);
    return 0;
}

/* open timers of some kinds, locked; caller PQclear()s */
static PGresult *st_open_timers(pg_t *pg, const char *case_id, const char *kinds, char *errstr,
                                size_t errstr_size)
{
    const char *v[2] = {case_id, kinds};
    return pg_exec_stmt(pg, &st_open, v, PGRES_TUPLES_OK, errstr, errstr_size);
}

typedef enum { ST_OP_STOP, ST_OP_PAUSE, ST_OP_RESUME, ST_OP_EXTEND } st_op_t;

/* apply op to the open timers of kinds; returns timers changed or -1 */
static int st_apply(pg_t *pg, sla_ctx_t *ctx, const Kesu__V1__Envelope *env, const char *kinds,
                    st_op_t op, int64_t extra_ms, char *errstr, size_t errstr_size)
{
    PGresult *res = st_open_timers(pg, env->case_id, kinds, errstr, errstr_size);
    int changed = 0;
    if (!res)
        return -1;
    int64_t at = env->occurred_at_ms;
    for (int i = 0; i < PQntuples(res); i++) {
        st_row_t r;
        char note[160];
        const char *action = NULL;
        st_row_read(res, i, &r);
        switch (op) {
        case ST_OP_STOP:
            snprintf(note, sizeof(note), "%s%s", env->event_type,
                     strcmp(r.state, "breached") == 0 ? " (after breach)" : "");
            if (strcmp(r.state, "paused") == 0)
                sla_clock_resume(&r.c, at); /* nothing more is used while stopped */
            snprintf(r.state, sizeof(r.state), "stopped");
            action = "stop";
            break;
        case ST_OP_PAUSE:
            if (strcmp(r.state, "paused") == 0 || strcmp(r.kind, "auto_close") == 0)
                continue;
            snprintf(r.paused_state, sizeof(r.paused_state), "%s", r.state);
            snprintf(r.state, sizeof(r.state), "paused");
            sla_clock_pause(ctx->policy->cal, &r.c, at);
            snprintf(note, sizeof(note), "%s: waiting for the complainant", env->event_type);
            action = "pause";
            break;
        case ST_OP_RESUME:
            if (strcmp(r.state, "paused") != 0)
                continue;
            snprintf(r.state, sizeof(r.state), "%s", *r.paused_state ? r.paused_state : "running");
            r.paused_state[0] = '\0';
            sla_clock_resume(&r.c, at);
            snprintf(note, sizeof(note), "%s", env->event_type);
            action = "resume";
            break;
        case ST_OP_EXTEND:
            r.c.total_ms += extra_ms;
            /* an extension after a breach gives the department a new deadline */
            if (strcmp(r.state, "breached") == 0 && sla_clock_used_at(ctx->policy->cal, &r.c, at) <
                                                        r.c.total_ms) {
                snprintf(r.state, sizeof(r.state), "running");
                r.c.breach_count = 0;
            }
            snprintf(note, sizeof(note), "%s approved: +%" PRId64 " min", env->event_type,
                     env->extension_decided ? env->extension_decided->extra_minutes : 0);
            action = "extend";
            break;
        }
        if (st_save(pg, ctx, &r, action, at, 0, note, env->producer, errstr, errstr_size) != 0) {
            PQclear(res);
            return -1;
        }
        changed++;
    }
    PQclear(res);
    if (op == ST_OP_STOP)
        metrics_counter_add(ctx->m_stopped, (uint64_t)changed);
    return changed;
}

static kc_result_t st_result(int n, pg_t *pg, const char *what, const char *event_type)
{
    if (n < 0)
        return st_db_failure(pg);
    if (n == 0)
        return KC_SKIP;
    LOG_INFO("%d SLA timers %s on %s", n, what, event_type);
    return KC_OK;
}

/* the history events that end a timer of each kind (sla_handle's table, by sla_kind_t) */
#define ST_END "CaseClosed,CaseWithdrawn,CaseRejected,CaseMerged}"
static const char *const st_stopped_by[SLA__KINDS] = {
    "{CaseAccepted,CaseReturned,CaseResolved," ST_END,
    "{CaseResolved," ST_END,
    "{ReplySent,FeedbackReceived,CaseReopened," ST_END,
    "{FeedbackReceived,CaseReopened," ST_END,
    "{FeedbackReceived,CaseReopened," ST_END,
};

/*
 * A timer just started for a step the case had already done at done (ms; the
 * monitor is behind, or the stopping event came first on its own topic): stop
 * it at that real instant, so on-time is judged on real times and no scan
 * fires it. Done after the deadline, the breach is recorded at the deadline
 * first but not sent: the work it would escalate is finished.
 */
static int st_settle(pg_t *pg, sla_ctx_t *ctx, const char *case_id, const char *event_type,
                     const char *kind, const char *cycle, int64_t done, char *errstr,
                     size_t errstr_size)
{
    char note[160];
    const char *tv[3] = {case_id, kind, cycle};
    PGresult *res = pg_exec_stmt(pg, &st_timer, tv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    st_row_t r;
    st_row_read(res, 0, &r);
    PQclear(res);
    int64_t due = sla_clock_due(ctx->policy->cal, &r.c);
    if (done > due) {
        snprintf(r.state, sizeof(r.state), "breached");
        r.c.breach_count = 1;
        r.c.warned = st_nwarn(ctx, r.kind);
        if (st_save(pg, ctx, &r, "breach", due, 1,
                    "done after the deadline, seen late: recorded, not escalated", SLA_PRODUCER,
                    errstr, errstr_size) != 0)
            return -1;
    }
    snprintf(r.state, sizeof(r.state), "stopped");
    snprintf(note, sizeof(note), "already done when %s was processed (%s)", event_type,
             done > due ? "late" : "in time");
    if (st_save(pg, ctx, &r, "stop", done, 0, note, SLA_PRODUCER, errstr, errstr_size) != 0)
        return -1;
    metrics_counter_add(ctx->m_stopped, 1);
    return 1;
}

/* one timer an event starts */
typedef struct st_new {
    sla_kind_t kind;
    int cycle;
    const char *dept;
    const char *why;
    int unless_open; /**< only if no resolve timer was open at the event (st_start) */
} st_new_t;

/*
 * Write the timer starts gathered (one statement), and settle those the case
 * has already done. @returns the timers started, -1 on error.
 */
static int st_starts_write(pg_t *pg, sla_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    ctx->nstart_cases = 0;
    if (ctx->starts.n == 0)
        return 0;
    PGresult *res = pg_rows_exec(pg, &st_start, &ctx->starts, SLA_PRODUCER, PGRES_TUPLES_OK,
                                 errstr, errstr_size);
    if (!res)
        return -1;
    int started = PQntuples(res);
    metrics_counter_add(ctx->m_started, (uint64_t)started);
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t done = st_i64(res, i, "done_ms");
        if (done && st_settle(pg, ctx, pg_get(res, i, "case_id"), pg_get(res, i, "event_type"),
                              pg_get(res, i, "kind"), pg_get(res, i, "cycle"), done, errstr,
                              errstr_size) < 0) {
            started = -1;
            break;
        }
    }
    PQclear(res);
    return started;
}

/* the starts of this case gathered earlier in the batch: written before its
 * next event reads or changes its timers. 0, -1 on error */
static int st_starts_sync(pg_t *pg, sla_ctx_t *ctx, const char *case_id, char *errstr,
                          size_t errstr_size)
{
    for (size_t i = 0; i < ctx->nstart_cases; i++)
        if (strcasecmp(ctx->start_cases[i], case_id) == 0)
            return st_starts_write(pg, ctx, errstr, errstr_size) < 0 ? -1 : 0;
    return 0;
}

/*
 * Start the n timers of one case from the event's own time: in a fast batch
 * gathered for one statement at its end (sla_batch), else written now; those
 * the case has already done are settled then. Returns the timers started
 * now, or gathered (a redelivery starts none when written), -1 on error.
 */
static int st_start_timers(pg_t *pg, sla_ctx_t *ctx, const Kesu__V1__Envelope *env,
                           const st_new_t *nt, int n, const sla_limits_t *lim, const char *rt,
                           const char *urg, char *errstr, size_t errstr_size)
{
    const calendar_t *cal = ctx->policy->cal;
    int64_t start = env->occurred_at_ms;
    char s_start[24], s_seq[24], num[24], note[256], spec[16];
    pg_rows_t *w = &ctx->starts;
    if (!ctx->gather && pg_rows_ready(w, ST_START_COLS) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    snprintf(s_start, sizeof(s_start), "%" PRId64, start);
    snprintf(s_seq, sizeof(s_seq), "%" PRId64, env->case_seq);
    for (int i = 0; i < n; i++) {
        const sla_limit_t *l = &lim->limit[nt[i].kind];
        sla_clock_t c = {.work = sla_limit_is_work(l),
                         .total_ms = sla_limit_ms(l, cal, lim->time_scale),
                         .anchor_ms = start};
        if (nt[i].kind != SLA_AUTO_CLOSE)
            c.escalate_ms = sla_limit_ms(&lim->escalate_after, cal, lim->time_scale);
        int64_t next = 0;
        int pct;
        sla_clock_next(cal, &c, ctx->policy->warn_percent,
                       nt[i].kind == SLA_AUTO_CLOSE ? 0 : ctx->policy->nwarn, &next, &pct);
        sla_limit_fmt(l, spec, sizeof(spec));
        pg_rows_text(w, 0, env->case_id);
        pg_rows_text(w, 1, s_start);
        pg_rows_text(w, 2, s_seq);
        pg_rows_text(w, 3, rt);
        pg_rows_text(w, 4, urg);
        pg_rows_text(w, 5, sla_kind_name(nt[i].kind));
        snprintf(num, sizeof(num), "%d", nt[i].cycle > 0 ? nt[i].cycle : 1);
        pg_rows_text(w, 6, num);
        snprintf(num, sizeof(num), "%" PRId64, sla_clock_due(cal, &c));
        pg_rows_text(w, 7, num);
        pg_rows_text(w, 8, spec);
        pg_rows_text(w, 9, c.work ? "true" : "false");
        snprintf(num, sizeof(num), "%" PRId64, c.total_ms);
        pg_rows_text(w, 10, num);
        snprintf(num, sizeof(num), "%" PRId64, c.escalate_ms);
        pg_rows_text(w, 11, num);
        snprintf(num, sizeof(num), "%" PRId64, next);
        pg_rows_text(w, 12, num);
        pg_rows_text(w, 13, nt[i].dept);
        snprintf(note, sizeof(note), "%s limit=%s request_type=%s urgency=%s scale=%g calendar=%s",
                 nt[i].why, spec, *rt ? rt : "-", *urg ? urg : "-", lim->time_scale,
                 cal ? calendar_name(cal) : "none");
        pg_rows_text(w, 14, note);
        pg_rows_text(w, 15, st_stopped_by[nt[i].kind]);
        pg_rows_text(w, 16, nt[i].unless_open ? "true" : "false");
        pg_rows_text(w, 17, env->event_type);
        w->n++;
    }
    if (!ctx->gather)
        return st_starts_write(pg, ctx, errstr, errstr_size);
    if (n > 0 && ctx->nstart_cases < ST_START_CASES_MAX &&
        strlen(env->case_id) < sizeof(ctx->start_cases[0])) {
        snprintf(ctx->start_cases[ctx->nstart_cases++], sizeof(ctx->start_cases[0]), "%s",
                 env->case_id);
        return n;
    }
    /* no room to remember the case: write what is gathered now */
    return n > 0 ? st_starts_write(pg, ctx, errstr, errstr_size) : 0;
}

/* CaseAssigned, CaseResolved, ReplySent: start the timers from the event's
 * own time (a redelivery starts nothing twice); what the case already did is settled */
static kc_result_t st_on_start(sla_ctx_t *ctx, pg_t *pg, const Kesu__V1__Envelope *env,
                               char *errstr, size_t errstr_size)
{
    char status[24], rt[24], urg[16], dept[64];
    int attempt, started = 0, n;
    sla_limits_t lim;
    int rc =
        st_case_read(ctx, pg, env->case_id, status, rt, urg, dept, &attempt, errstr, errstr_size);
    if (rc < 0)
        return st_db_failure(pg);
    if (rc > 0)
        return KC_POISON;
    sla_policy_lookup(ctx->policy, rt, urg, &lim);

    st_new_t nt[SLA__KINDS];
    int nn = 0;
    switch (env->payload_case) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED: {
        int cycle = env->case_assigned->attempt > 0 ? env->case_assigned->attempt : attempt;
        const char *adept = env->case_assigned->department && *env->case_assigned->department
                                ? env->case_assigned->department
                                : dept;
        nt[nn++] = (st_new_t){SLA_ACCEPT, cycle, adept, "CaseAssigned", 0};
        /* the resolve timer only if none was open at assignment (st_start's unless_open) */
        nt[nn++] = (st_new_t){SLA_RESOLVE, cycle, adept,
                              cycle > 1 ? "CaseAssigned (new cycle)" : "CaseAssigned", 1};
        break;
    }
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
        n = st_apply(pg, ctx, env, "{accept,resolve}", ST_OP_STOP, 0, errstr, errstr_size);
        if (n < 0)
            return st_db_failure(pg);
        started += n;
        nt[nn++] = (st_new_t){SLA_REPLY, attempt, dept, "CaseResolved", 0};
        break;
    case KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT:
        n = st_apply(pg, ctx, env, "{reply}", ST_OP_STOP, 0, errstr, errstr_size);
        if (n < 0)
            return st_db_failure(pg);
        started += n;
        for (int k = SLA_FOLLOW_UP; k <= SLA_AUTO_CLOSE; k++)
            nt[nn++] = (st_new_t){(sla_kind_t)k, attempt, dept, "ReplySent", 0};
        break;
    default:
        return KC_SKIP;
    }
    n = st_start_timers(pg, ctx, env, nt, nn, &lim, rt, urg, errstr, errstr_size);
    if (n < 0)
        return st_db_failure(pg);
    started += n;
    if (!started) {
        LOG_INFO("no SLA timer changed on %s: case is %s", env->event_type, status);
        return KC_SKIP;
    }
    LOG_INFO("SLA timers started/stopped on %s (case %s)", env->event_type, status);
    return KC_OK;
}

/* what an event type does to the timers: start them (st_on_start), or apply
 * op to the open timers of kinds. The one table sla_wants and sla_handle read;
 * 0: the event does nothing here */
typedef struct st_route {
    int start;
    const char *kinds;
    st_op_t op;
} st_route_t;

static int st_route(Kesu__V1__Envelope__PayloadCase pc, st_route_t *rt)
{
    *rt = (st_route_t){0, NULL, ST_OP_STOP};
    switch (pc) {
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED:
    case KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT:
        rt->start = 1;
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED:
        rt->kinds = "{accept}";
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED:
        rt->kinds = "{reply,follow_up,auto_close}";
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_INFO_REQUESTED:
        rt->kinds = "{accept,resolve,reply,follow_up}";
        rt->op = ST_OP_PAUSE;
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_SUPPLEMENT_RECEIVED:
        rt->kinds = "{accept,resolve,reply,follow_up}";
        rt->op = ST_OP_RESUME;
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_DECIDED:
        rt->kinds = "{resolve}";
        rt->op = ST_OP_EXTEND;
        return 1;
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED:
    case KESU__V1__ENVELOPE__PAYLOAD_CASE_MERGED:
        rt->kinds = "{accept,resolve,reply,follow_up,auto_close}";
        return 1;
    default:
        return 0;
    }
}

int sla_wants(void *opaque, const Kesu__V1__Envelope *env)
{
    (void)opaque;
    st_route_t rt;
    return st_route(env->payload_case, &rt);
}

kc_result_t sla_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr, size_t errstr_size)
{
    sla_ctx_t *ctx = opaque;
    const Kesu__V1__Envelope *env = m->env;
    st_route_t rt;
    int64_t extra = 0;
    if (!st_route(env->payload_case, &rt))
        return KC_SKIP;
    /* the case's timers an earlier event of the batch started are there first */
    if (st_starts_sync(pg, ctx, env->case_id, errstr, errstr_size) != 0)
        return st_db_failure(pg);
    if (rt.start)
        return st_on_start(ctx, pg, env, errstr, errstr_size);
    if (rt.op == ST_OP_EXTEND) {
        if (!env->extension_decided->approved || env->extension_decided->extra_minutes <= 0)
            return KC_SKIP;
        extra = (int64_t)((double)env->extension_decided->extra_minutes * 60000.0 *
                          ctx->policy->time_scale);
        if (extra < 1)
            extra = 1;
    }
    /* the case row first, as in every handler: see the lock order above */
    char status[24], req_type[24], urg[16], dept[64];
    int attempt;
    int rc = st_case_read(ctx, pg, env->case_id, status, req_type, urg, dept, &attempt, errstr,
                          errstr_size);
    if (rc < 0)
        return st_db_failure(pg);
    if (rc > 0)
        return KC_POISON;
    static const char *const what[] = {"stopped", "paused", "resumed", "extended"};
    return st_result(st_apply(pg, ctx, env, rt.kinds, rt.op, extra, errstr, errstr_size), pg,
                     what[rt.op], env->event_type);
}

/* ---- scan ---- */

/* the case already did what the timer waits for: when (ms, 0 = now) and why */
static int st_done(const PGresult *res, int row, const st_row_t *r, int64_t *done_ms,
                   const char **why)
{
    const char *status = pg_get(res, row, "status");
    int64_t accepted = st_i64(res, row, "accepted_ms"), resolved = st_i64(res, row, "resolved_ms");
    *done_ms = 0;
    if (strcmp(status, "withdrawn") == 0 || strcmp(status, "rejected") == 0 ||
        strcmp(status, "merged") == 0) {
        *why = "at scan: case is no longer open";
        return 1;
    }
    if (strcmp(r->kind, "accept") == 0) {
        if (accepted >= r->started_ms && accepted <= r->due_ms) {
            *done_ms = accepted;
            *why = "at scan: accepted in time";
            return 1;
        }
        if (strcmp(status, "returned") == 0) {
            *why = "at scan: case was returned";
            return 1;
        }
    } else if (strcmp(r->kind, "resolve") == 0) {
        if (resolved >= r->started_ms && resolved <= r->due_ms) {
            *done_ms = resolved;
            *why = "at scan: resolved in time";
            return 1;
        }
    } else if (strcmp(r->kind, "reply") == 0) {
        if (strcmp(status, "resolved") != 0) {
            *why = "at scan: reply went out";
            return 1;
        }
    } else if (strcmp(status, "replied") != 0) { /* follow_up, auto_close */
        *why = "at scan: case is no longer waiting for feedback";
        return 1;
    }
    return 0;
}

static int st_append(pg_t *pg, const char *case_id, Kesu__V1__Envelope__PayloadCase pc,
                     const ProtobufCMessage *msg, char *errstr, size_t errstr_size)
{
    proto_env_t pe;
    proto_env_init(&pe, SLA_PRODUCER);
    proto_env_set_payload(&pe, pc, msg);
    int rc = casestore_append(pg, case_id, SLA_PRODUCER, SLA_PRODUCER, KAFKA_TOPIC_SLA, &pe, NULL,
                              errstr, errstr_size);
    return rc == CASESTORE_OK ? 0 : -1;
}

/* the events of one firing; 1 = case not replied any more (auto-close stops instead) */
static int st_send(pg_t *pg, sla_ctx_t *ctx, const st_row_t *r, sla_fire_t f, int pct,
                   int64_t due, int64_t now, char *errstr, size_t errstr_size)
{
    if (strcmp(r->kind, "auto_close") == 0) {
        Kesu__V1__CaseClosed cc = KESU__V1__CASE_CLOSED__INIT;
        cc.reason = "no_feedback";
        proto_env_t pe;
        proto_env_init(&pe, SLA_PRODUCER);
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED,
                              (const ProtobufCMessage *)&cc);
        static const char *const from[] = {"replied", NULL};
        casestore_change_t ch = {.case_id = r->case_id,
                                 .from = from,
                                 .to = "closed",
                                 .producer = SLA_PRODUCER,
                                 .actor = SLA_PRODUCER,
                                 .topic = KAFKA_TOPIC_SLA};
        int rc = casestore_apply(pg, &ch, &pe, NULL, errstr, errstr_size);
        if (rc == CASESTORE_CONFLICT || rc == CASESTORE_NOT_FOUND)
            return 1;
        if (rc != CASESTORE_OK)
            return -1;
        char s_now[24];
        snprintf(s_now, sizeof(s_now), "%" PRId64, now);
        const char *v[2] = {r->case_id, s_now};
        PGresult *res = pg_exec_stmt(pg, &st_close_case, v, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res)
            return -1;
        PQclear(res);
        return 0;
    }
    if (f == SLA_FIRE_WARN) {
        Kesu__V1__SlaWarning w = KESU__V1__SLA_WARNING__INIT;
        w.timer = (char *)r->kind;
        w.percent = pct;
        w.due_at_ms = due;
        return st_append(pg, r->case_id, KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING,
                         (const ProtobufCMessage *)&w, errstr, errstr_size);
    }
    Kesu__V1__SlaBreached b = KESU__V1__SLA_BREACHED__INIT;
    b.timer = (char *)r->kind;
    b.due_at_ms = due;
    b.breach_count = f == SLA_FIRE_SECOND ? 2 : 1;
    if (st_append(pg, r->case_id, KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED,
                  (const ProtobufCMessage *)&b, errstr, errstr_size) != 0)
        return -1;
    Kesu__V1__CaseEscalated e = KESU__V1__CASE_ESCALATED__INIT;
    e.to = f == SLA_FIRE_SECOND ? "supervision_office" : "department_head";
    e.timer = (char *)r->kind;
    e.level = b.breach_count;
    (void)ctx;
    return st_append(pg, r->case_id, KESU__V1__ENVELOPE__PAYLOAD_CASE_ESCALATED,
                     (const ProtobufCMessage *)&e, errstr, errstr_size);
}

/* one due timer, inside a savepoint. 1 fired, 0 stopped/nothing, 2 busy, -1 error */
static int st_fire_one(pg_t *pg, sla_ctx_t *ctx, const PGresult *due, int i, int64_t now,
                       char *errstr, size_t errstr_size)
{
    st_row_t r;
    int64_t done_ms;
    const char *why;
    char note[160];
    st_row_read(due, i, &r);
    log_ctx_set(r.case_id, NULL, NULL, -1, -1);

    const char *lv[1] = {r.case_id};
    PGresult *res = pg_exec_stmt(pg, &st_lock_case, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return strcmp(pg->sqlstate, "55P03") == 0 ? 2 : -1;
    PQclear(res);

    if (st_done(due, i, &r, &done_ms, &why)) {
        snprintf(r.state, sizeof(r.state), "stopped");
        if (st_save(pg, ctx, &r, "stop", done_ms ? done_ms : now, 0, why, SLA_PRODUCER, errstr,
                    errstr_size) != 0)
            return -1;
        metrics_counter_add(ctx->m_stopped, 1);
        LOG_INFO("SLA %s timer stopped (%s)", r.kind, why);
        return 0;
    }
    int pct = 0;
    int64_t due_ms = sla_clock_due(ctx->policy->cal, &r.c);
    sla_fire_t f = sla_clock_fire(ctx->policy->cal, &r.c, ctx->policy->warn_percent,
                                  st_nwarn(ctx, r.kind), now, &pct);
    if (f == SLA_FIRE_NONE) {
        /* next_at was stale (recompute, extension): just store the new one */
        return st_save(pg, ctx, &r, "reschedule", now, 0, "next_at recomputed", SLA_PRODUCER,
                       errstr, errstr_size) != 0
                   ? -1
                   : 0;
    }
    int sent = st_send(pg, ctx, &r, f, pct, due_ms, now, errstr, errstr_size);
    if (sent < 0)
        return -1;
    const char *action;
    int is_close = strcmp(r.kind, "auto_close") == 0;
    if (is_close) {
        snprintf(r.state, sizeof(r.state), "stopped");
        action = sent == 1 ? "stop" : "auto_close";
        snprintf(note, sizeof(note), "%s",
                 sent == 1 ? "at scan: case is no longer waiting for feedback"
                           : "closed: no feedback in time (CaseClosed no_feedback)");
    } else if (f == SLA_FIRE_WARN) {
        action = pct >= 80 ? "warn80" : pct >= 50 ? "warn50" : "warn";
        snprintf(note, sizeof(note), "SlaWarning %d%%", pct);
    } else {
        snprintf(r.state, sizeof(r.state), "breached");
        action = f == SLA_FIRE_SECOND ? "breach2" : "breach";
        snprintf(note, sizeof(note), "SlaBreached + CaseEscalated to %s",
                 f == SLA_FIRE_SECOND ? "supervision_office" : "department_head");
    }
    if (st_save(pg, ctx, &r, action, now, f == SLA_FIRE_BREACH && !is_close, note, SLA_PRODUCER,
                errstr, errstr_size) != 0)
        return -1;
    if (is_close) {
        if (sent == 0) {
            metrics_counter_add(ctx->m_fired[0], 1);
            /* the follow-up call is moot once the case is closed */
            Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
            env.case_id = r.case_id;
            env.occurred_at_ms = now;
            env.event_type = "CaseClosed";
            env.producer = SLA_PRODUCER;
            if (st_apply(pg, ctx, &env, "{follow_up}", ST_OP_STOP, 0, errstr, errstr_size) < 0)
                return -1;
            LOG_INFO("case closed: no feedback in time");
        }
        return sent == 0;
    }
    metrics_counter_add(ctx->m_fired[f], 1);
    if (f == SLA_FIRE_BREACH)
        metrics_counter_add(ctx->m_breached, 1);
    if (f == SLA_FIRE_WARN) {
        st_count_dept("kesu_sla_warnings_total", "SLA warnings by department", r.department);
        LOG_INFO("SLA %s timer at %d%%", r.kind, pct);
    } else {
        st_count_dept("kesu_sla_breaches_total", "SLA breaches by department (second ones too)",
                      r.department);
        LOG_WARN("SLA %s timer breached (count %d, due %" PRId64 ")", r.kind, r.c.breach_count,
                 due_ms);
    }
    return 1;
}

int sla_scan(pg_t *pg, sla_ctx_t *ctx, int limit, int64_t now_ms, int *fired, char *errstr,
             size_t errstr_size)
{
    PGresult *due = NULL;
    char lim_s[16], now_s[24];
    int handled = 0, nfired = 0;
    if (fired)
        *fired = 0;
    if (pg_ensure(pg, errstr, errstr_size) != 0 || pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    snprintf(lim_s, sizeof(lim_s), "%d", limit);
    snprintf(now_s, sizeof(now_s), "%" PRId64, now_ms);
    const char *dv[2] = {lim_s, now_s};
    due = pg_exec_stmt(pg, &st_due, dv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!due)
        goto fail;
    for (int i = 0; i < PQntuples(due); i++) {
        /* one bad case must not hold back every other timer: a savepoint each */
        if (pg_command(pg, "SAVEPOINT sla_fire", errstr, errstr_size) != 0)
            goto fail;
        int rc = st_fire_one(pg, ctx, due, i, now_ms, errstr, errstr_size);
        if (rc < 0 || rc == 2) {
            if (rc < 0 && pg_failure_transient(pg))
                goto fail;
            if (rc < 0) {
                LOG_ERROR("SLA timer %s not fired, retried next scan: %s", pg_get(due, i, "id"),
                          errstr);
                metrics_counter_add(ctx->m_scan_errors, 1);
            }
            if (pg_command(pg, "ROLLBACK TO SAVEPOINT sla_fire", errstr, errstr_size) != 0)
                goto fail;
            continue;
        }
        if (pg_command(pg, "RELEASE SAVEPOINT sla_fire", errstr, errstr_size) != 0)
            goto fail;
        nfired += rc;
        handled++;
    }
    log_ctx_clear();
    PQclear(due);
    due = NULL;
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto fail;
    if (fired)
        *fired = nfired;
    return handled;
fail:
    log_ctx_clear();
    PQclear(due);
    pg_rollback(pg);
    metrics_counter_add(ctx->m_scan_errors, 1);
    return -1;
}

static void st_refresh_gauges(sla_ctx_t *ctx, pg_t *pg)
{
    char errstr[256];
    double n[SLA__KINDS] = {0};
    PGresult *res = pg_exec_stmt(pg, &st_pending, NULL, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        int k = sla_kind_parse(pg_get(res, i, "kind"));
        if (k >= 0)
            n[k] = atof(pg_get(res, i, "n"));
    }
    PQclear(res);
    for (int k = 0; k < SLA__KINDS; k++)
        metrics_gauge_set(ctx->m_pending[k], n[k]);
}

void sla_tick(void *opaque, pg_t *pg)
{
    sla_ctx_t *ctx = opaque;
    char errstr[512];
    int total = 0;
    for (int round = 0; round < (ctx->scan_rounds > 0 ? ctx->scan_rounds : 1); round++) {
        int fired = 0;
        int n = sla_scan(pg, ctx, SLA_SCAN_BATCH, util_now_ms(), &fired, errstr, sizeof(errstr));
        if (n < 0) {
            LOG_WARN("SLA scan failed, retried next tick: %s", errstr);
            break;
        }
        total += fired;
        if (n < SLA_SCAN_BATCH)
            break;
    }
    if (total > 0 && ctx->wake)
        ctx->wake(ctx->wake_arg);
    if (util_mono_ms() - ctx->last_gauge_ms >= 10000) {
        ctx->last_gauge_ms = util_mono_ms();
        st_refresh_gauges(ctx, pg);
    }
}

int sla_recompute(pg_t *pg, const sla_ctx_t *ctx, int dry_run, void *out, char *errstr,
                  size_t errstr_size)
{
    FILE *f = out;
    const calendar_t *cal = ctx->policy->cal;
    int changed = 0;
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    PGresult *res = pg_exec_stmt(pg, &st_all_open, NULL, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto fail;
    for (int i = 0; i < PQntuples(res); i++) {
        st_row_t r;
        sla_limits_t lim;
        char spec[16], old_s[40], new_s[40], note[200];
        st_row_read(res, i, &r);
        int kind = sla_kind_parse(r.kind);
        if (kind < 0)
            continue;
        sla_policy_lookup(ctx->policy, r.request_type, r.urgency, &lim);
        const sla_limit_t *l = &lim.limit[kind];
        sla_limit_fmt(l, spec, sizeof(spec));
        /* the old limit without extensions: total minus what extensions added */
        sla_limit_t old_l;
        char old_spec[16];
        snprintf(old_spec, sizeof(old_spec), "%s", r.limit_spec);
        int64_t old_limit_ms = 0;
        if (sla_limit_parse(r.limit_spec, &old_l) == 0)
            old_limit_ms = sla_limit_ms(&old_l, cal, ctx->policy->time_scale);
        int64_t extensions = old_limit_ms ? r.c.total_ms - old_limit_ms : 0;
        int64_t old_due = r.c.anchor_ms ? sla_clock_due(cal, &r.c) : r.due_ms;
        sla_clock_t nc = r.c;
        nc.work = sla_limit_is_work(l);
        nc.total_ms = sla_limit_ms(l, cal, ctx->policy->time_scale) + (extensions > 0 ? extensions : 0);
        if (kind != SLA_AUTO_CLOSE)
            nc.escalate_ms = sla_limit_ms(&lim.escalate_after, cal, ctx->policy->time_scale);
        int64_t new_due = nc.anchor_ms ? sla_clock_due(cal, &nc) : r.due_ms;
        if (new_due == old_due && nc.total_ms == r.c.total_ms && nc.work == r.c.work &&
            nc.escalate_ms == r.c.escalate_ms)
            continue;
        changed++;
        calendar_fmt_local(cal, old_due, old_s, sizeof(old_s));
        calendar_fmt_local(cal, new_due, new_s, sizeof(new_s));
        if (f)
            fprintf(f, "%s %s cycle %d: limit %s -> %s, due %s -> %s%s\n", r.case_id, r.kind,
                    r.cycle, r.limit_spec, spec, r.c.anchor_ms ? old_s : "(paused)",
                    r.c.anchor_ms ? new_s : "(paused)", dry_run ? " (dry run)" : "");
        if (dry_run)
            continue;
        r.c = nc;
        snprintf(r.limit_spec, sizeof(r.limit_spec), "%s", spec);
        snprintf(note, sizeof(note), "recompute: limit %s -> %s, calendar %s", old_spec, spec,
                 cal ? calendar_name(cal) : "none");
        if (st_save(pg, ctx, &r, "recompute", util_now_ms(), 0, note, "kesuctl", errstr,
                    errstr_size) != 0)
            goto fail;
    }
    PQclear(res);
    res = NULL;
    if (dry_run) {
        pg_rollback(pg);
        return changed;
    }
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto fail;
    return changed;
fail:
    PQclear(res);
    pg_rollback(pg);
    return -1;
}
