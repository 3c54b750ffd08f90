/*
 * notify_handle: the consumer side of the notifier. An event becomes
 * pending notifications rows and nothing is sent here, so the consumer
 * batch never waits on a slow webhook and a redelivered event (a no-op in
 * the inbox) can never send twice.
 *
 * Routing is decided now and stored with the row: the first route of the
 * audience's list (notifier.json) that can reach them - the complainant's own
 * webhook, SMS to their phone, e-mail, the log; staff notices go to
 * notify.staff_webhook_url when it is set, else to the log. The phone and
 * e-mail address are not read here: they stay encrypted until the tick sends.
 * An emergency case (urgency emergency or the public_safety flag) also
 * queues the "when": "emergency" templates (the on-duty supervisor's page),
 * and all its rows are urgent: sent first and never held by quiet hours. A complainant who is anonymous or left no way to
 * be reached gets no notices at all; their reply is "sent" on channel none,
 * which is what moves the case on to replied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "log.h"
#include "notify.h"
#include "proto.h"

/* what a notice needs of its case; DEPT: the department the event names
 * ('' if none: the case's) — its code and name */
#define NT_CASE_COLS(DEPT)                                                                        \
    "c.case_no, c.reply, c.language, "                                                            \
    "(c.urgency = 'emergency' OR 'public_safety' = ANY (c.flags)) AS emergency, "                 \
    "p.webhook_url, (p.phone_enc IS NOT NULL AND p.purged_at IS NULL) AS has_phone, "             \
    "(p.email_enc IS NOT NULL AND p.purged_at IS NULL) AS has_email, "                            \
    "COALESCE((SELECT (EXTRACT(EPOCH FROM min(t.due_at)) * 1000)::bigint FROM sla_timers t "      \
    "  WHERE t.case_id = c.id AND t.state = 'running'), 0) AS due_ms, "                           \
    "(p.id IS NOT NULL AND p.purged_at IS NULL AND NOT c.anonymous AND "                          \
    " (p.phone_enc IS NOT NULL OR p.email_enc IS NOT NULL OR p.webhook_url IS NOT NULL)) "        \
    "AS reachable, "                                                                              \
    "COALESCE(NULLIF(" DEPT ", ''), c.department, '') AS dept_code, "                             \
    "(SELECT d.name FROM departments d WHERE d.code = COALESCE(NULLIF(" DEPT ", ''), "            \
    "c.department)) AS dept_name "

static const pg_stmt_t nt_case = {
    "nt_case",
    "SELECT " NT_CASE_COLS("$2") "FROM cases c LEFT JOIN complainants p ON p.id = c.complainant_id "
    "WHERE c.id = $1::uuid",
    2};

/* the same for a batch's events at once (KC_BATCH_CLAIMED), keyed by event id */
static const pg_stmt_t nt_case_many = {
    "nt_case_many",
    "SELECT r.event_id, " NT_CASE_COLS("r.dept")
    "FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, dept, event_id) "
    "JOIN cases c ON c.id = r.id LEFT JOIN complainants p ON p.id = c.complainant_id",
    3};

/* notices in the order they were queued: a batch's at once (decision 0027), or one */
static const pg_stmt_t nt_insert = {
    "nt_insert",
    "INSERT INTO notifications (case_id, trigger_event_id, event_type, channel, audience, "
    "template, target, body, language, urgent) "
    "SELECT case_id, trigger_event_id, event_type, channel, audience, template, target, body, "
    "language, urgent FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[]) WITH ORDINALITY "
    "AS r(case_id, trigger_event_id, event_type, channel, audience, template, target, body, "
    "language, urgent, ord) ORDER BY ord "
    "ON CONFLICT (trigger_event_id, channel, audience) DO NOTHING",
    10};

static void notify_gather_reset(notify_t *nt)
{
    pg_rows_ready(&nt->rows, NOTIFY_GATHER_COLS);
}

void notify_gather_free(notify_t *nt)
{
    pg_rows_free(&nt->rows);
    nt->gather = 0;
    pg_keyed_clear(&nt->cases);
}

static const char *notify_event_department(const Kesu__V1__Envelope *env);

/* KC_BATCH_CLAIMED: the case rows of all the batch's events in one statement,
 * found by event id (nothing the notifier's handlers write changes what they
 * read of a case); an event whose case is not there reads it itself */
static kc_result_t notify_cases_read(notify_t *nt, pg_t *pg, const kc_msg_t *msgs, size_t n,
                                     char *errstr, size_t errstr_size)
{
    strbuf_t a[3];
    pg_keyed_clear(&nt->cases);
    for (int k = 0; k < 3; k++)
        pg_array_begin(&a[k]);
    for (size_t i = 0; i < n; i++) {
        pg_array_add(&a[0], msgs[i].env->case_id);
        pg_array_add(&a[1], notify_event_department(msgs[i].env));
        pg_array_add(&a[2], msgs[i].env->event_id);
    }
    for (int k = 0; k < 3; k++)
        pg_array_end(&a[k]);
    const char *v[3] = {a[0].s, a[1].s, a[2].s};
    PGresult *res = pg_exec_stmt(pg, &nt_case_many, v, PGRES_TUPLES_OK, errstr, errstr_size);
    for (int k = 0; k < 3; k++)
        strbuf_free(&a[k]);
    if (!res)
        return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
    if (pg_keyed_set(&nt->cases, res) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return KC_RETRY;
    }
    return KC_OK;
}

/* write what is gathered, with one statement; 0 or -1 (errstr) */
static int notify_flush(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size)
{
    if (nt->rows.n == 0)
        return 0;
    size_t n = nt->rows.n;
    PGresult *res = pg_rows_exec(pg, &nt_insert, &nt->rows, NULL, PGRES_COMMAND_OK, errstr,
                                 errstr_size);
    if (!res)
        return -1;
    metrics_counter_add(nt->m_queued, strtoull(PQcmdTuples(res), NULL, 10));
    LOG_DEBUG("%zu notices queued, %s new", n, PQcmdTuples(res));
    PQclear(res);
    return 0;
}

kc_result_t notify_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                         size_t nmsgs, char *errstr, size_t errstr_size)
{
    notify_t *nt = opaque;
    if (phase == KC_BATCH_CLAIMED)
        return notify_cases_read(nt, pg, msgs, nmsgs, errstr, errstr_size);
    pg_keyed_clear(&nt->cases);
    if (phase != KC_BATCH_END) {
        notify_gather_reset(nt);
        nt->gather = phase == KC_BATCH_BEGIN;
        return KC_OK;
    }
    nt->gather = 0;
    if (notify_flush(nt, pg, errstr, errstr_size) != 0)
        return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
    return KC_OK;
}

/* queue one notice: gathered for the batch's end, or written now on its own.
 * An event refused in a fast attempt undoes the whole attempt (the careful
 * re-run gathers nothing), so what was gathered never needs dropping per event. */
static int notify_queue(notify_t *nt, pg_t *pg, const char *const v[NOTIFY_GATHER_COLS],
                        char *errstr, size_t errstr_size)
{
    if (!nt->gather)
        notify_gather_reset(nt);
    /* column 6 is the target: "" is NULL */
    if (nt->rows.ncols != NOTIFY_GATHER_COLS) {
        snprintf(errstr, errstr_size, "out of memory gathering notices");
        return -1;
    }
    for (int c = 0; c < NOTIFY_GATHER_COLS; c++)
        pg_rows_text(&nt->rows, c, c == 6 && !*v[c] ? NULL : v[c]);
    nt->rows.n++;
    return nt->gather ? 0 : notify_flush(nt, pg, errstr, errstr_size);
}

/* an emergency (DESIGN.md 9): by the classifier's verdict in the event, or on the case */
static int notify_is_emergency(const Kesu__V1__Envelope *env, int case_emergency)
{
    const Kesu__V1__CaseClassified *cc = env->case_classified;
    if (case_emergency)
        return 1;
    if (env->payload_case != KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED || !cc)
        return 0;
    if (cc->urgency && strcmp(cc->urgency, "emergency") == 0)
        return 1;
    for (size_t i = 0; i < cc->n_flags; i++)
        if (strcmp(cc->flags[i], "public_safety") == 0)
            return 1;
    return 0;
}

/* the deadline a notice names: the SLA event's own, else the case's nearest running timer */
static int64_t notify_event_due(const Kesu__V1__Envelope *env, int64_t case_due)
{
    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_SLA_WARNING && env->sla_warning)
        return env->sla_warning->due_at_ms;
    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED && env->sla_breached)
        return env->sla_breached->due_at_ms;
    return case_due;
}

int notify_mark_replied(notify_t *nt, pg_t *pg, const char *case_id, const char *channel,
                        char *errstr, size_t errstr_size)
{
    static const char *const from[] = {"resolved", NULL};
    Kesu__V1__ReplySent rs = KESU__V1__REPLY_SENT__INIT;
    proto_env_t pe;
    casestore_result_t res;
    casestore_change_t ch = {
        .case_id = case_id,
        .from = from,
        .to = "replied",
        .producer = "notifier",
        .actor = "notifier",
        .topic = KAFKA_TOPIC_NOTIFIER,
    };
    rs.channel = (char *)channel;
    proto_env_init(&pe, "notifier");
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT, &rs.base);
    int rc = casestore_apply(pg, &ch, &pe, &res, errstr, errstr_size);
    if (rc == CASESTORE_OK) {
        metrics_counter_add(nt->m_replied, 1);
        LOG_INFO("reply delivered on %s: case %s is replied (version %lld)", channel, pe.case_no,
                 (long long)res.version);
    } else if (rc == CASESTORE_CONFLICT || rc == CASESTORE_NOT_FOUND) {
        /* the case moved on meanwhile (withdrawn, reopened, ...): the reply
         * still went out, there is just no transition left to make */
        LOG_INFO("reply delivered on %s, case not moved to replied: %s", channel, errstr);
    }
    return rc;
}

/* the department an event names itself ("" if none: the case's is used) */
static const char *notify_event_department(const Kesu__V1__Envelope *env)
{
    const char *d = NULL;
    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED && env->case_assigned)
        d = env->case_assigned->department;
    else if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED && env->case_resolved)
        d = env->case_resolved->department;
    return d ? d : "";
}

static kc_result_t notify_db_failure(pg_t *pg, const char *what, char *errstr, size_t errstr_size)
{
    if (pg_failure_transient(pg))
        return KC_RETRY;
    /* a statement the database refuses for this event will refuse it again */
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s: %s", what, errstr);
    snprintf(errstr, errstr_size, "%s", tmp);
    return KC_POISON;
}

int notify_wants(void *opaque, const Kesu__V1__Envelope *env)
{
    const notify_t *nt = opaque;
    for (size_t i = 0; i < nt->cfg.n_templates; i++)
        if (strcmp(nt->cfg.templates[i].event, env->event_type) == 0)
            return 1;
    return 0;
}

kc_result_t notify_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                          size_t errstr_size)
{
    notify_t *nt = opaque;
    const Kesu__V1__Envelope *env = m->env;
    PGresult *res = NULL, *cases; /* res: read here, cases: where the row is */
    strbuf_t text, link;
    kc_result_t r = KC_SKIP;
    char deadline[32];

    strbuf_init(&text);
    strbuf_init(&link);
    if (!notify_wants(nt, env))
        goto out; /* no notice for this event type */

    /* read with the batch's claim (notify_cases_read), or now */
    int row = pg_keyed_take(&nt->cases, env->event_id);
    if (row >= 0) {
        cases = nt->cases.res;
    } else {
        const char *cv[2] = {env->case_id, notify_event_department(env)};
        cases = res = pg_exec_stmt(pg, &nt_case, cv, PGRES_TUPLES_OK, errstr, errstr_size);
        row = 0;
    }
    if (!cases) {
        r = notify_db_failure(pg, "reading the case", errstr, errstr_size);
        goto out;
    }
    if (PQntuples(cases) == 0) {
        /* the case row commits before its events are published: unknown is final */
        snprintf(errstr, errstr_size, "case %s does not exist", env->case_id);
        r = KC_POISON;
        goto out;
    }
    const char *case_no = pg_get(cases, row, "case_no");
    const char *webhook = pg_get(cases, row, "webhook_url");
    int reachable = strcmp(pg_get(cases, row, "reachable"), "t") == 0;
    const char *reply = pg_get(cases, row, "reply");
    if (!*reply && env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED &&
        env->case_resolved && env->case_resolved->reply)
        reply = env->case_resolved->reply;
    /* the department's name for the text; its code when the table does not know it */
    const char *dept_name = pg_get(cases, row, pg_isnull(cases, row, "dept_name") ? "dept_code"
                                                                         : "dept_name");
    int emergency = notify_is_emergency(env, strcmp(pg_get(cases, row, "emergency"), "t") == 0);
    int has_phone = strcmp(pg_get(cases, row, "has_phone"), "t") == 0 && nt->keys && nt->sms_url &&
                    *nt->sms_url;
    int has_email = strcmp(pg_get(cases, row, "has_email"), "t") == 0 && nt->keys && nt->smtp_url &&
                    *nt->smtp_url;
    const char *case_lang = pg_get(cases, row, "language");
    notify_fmt_deadline(notify_event_due(env, strtoll(pg_get(cases, row, "due_ms"), NULL, 10)),
                        nt->tz_offset_min, deadline, sizeof(deadline));
    strbuf_appendf(&link, "%s%s", nt->status_url ? nt->status_url : "", case_no);
    notify_var_t vars[NOTIFY_N_VARS];
    size_t n_vars = notify_vars(vars, case_no, dept_name ? dept_name : "", reply, deadline, link.s);

    r = KC_OK;
    for (size_t i = 0; i < nt->cfg.n_templates; i++) {
        const notify_template_t *t = &nt->cfg.templates[i];
        const notify_routing_t *rt;
        const char *channel = NULL, *target = "";
        int complainant;
        if (strcmp(t->event, env->event_type) != 0 || (t->emergency_only && !emergency))
            continue;
        complainant = strcmp(t->audience, NOTIFY_AUDIENCE_COMPLAINANT) == 0;
        rt = notify_routing_find(&nt->cfg, t->audience);
        for (int k = 0; rt && k < NOTIFY_MAX_ROUTES && rt->routes[k] && !channel; k++) {
            switch (rt->routes[k]) {
            case NOTIFY_ROUTE_COMPLAINANT_WEBHOOK:
                if (reachable && *webhook) {
                    channel = NOTIFY_CHANNEL_WEBHOOK;
                    target = webhook;
                }
                break;
            case NOTIFY_ROUTE_STAFF_WEBHOOK:
                if (nt->staff_webhook_url && *nt->staff_webhook_url) {
                    channel = NOTIFY_CHANNEL_WEBHOOK;
                    target = nt->staff_webhook_url;
                }
                break;
            case NOTIFY_ROUTE_SMS:
                /* the phone stays encrypted in complainants; the tick decrypts it */
                if (reachable && has_phone)
                    channel = NOTIFY_CHANNEL_SMS;
                break;
            case NOTIFY_ROUTE_EMAIL:
                if (reachable && has_email)
                    channel = NOTIFY_CHANNEL_EMAIL;
                break;
            case NOTIFY_ROUTE_LOG:
                if (!complainant || reachable)
                    channel = NOTIFY_CHANNEL_LOG;
                break;
            }
        }
        if (!channel) {
            LOG_DEBUG("no channel reaches the %s for %s: notice %s not sent", t->audience,
                      env->event_type, t->name);
            if (complainant && env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED) {
                int rc = notify_mark_replied(nt, pg, env->case_id, NOTIFY_CHANNEL_NONE, errstr,
                                             errstr_size);
                if (rc == CASESTORE_ERROR) {
                    r = notify_db_failure(pg, "moving the case to replied", errstr, errstr_size);
                    goto out;
                }
            }
            continue;
        }

        text.len = 0;
        text.s[0] = '\0';
        /* the complainant reads their case's language; staff the default one */
        const char *lang = notify_lang_pick(&nt->cfg, complainant ? case_lang : NULL);
        if (notify_render(notify_template_text(&nt->cfg, t, lang), vars, n_vars, &text, errstr,
                          errstr_size) != 0) {
            /* the templates were checked at start, so this is a value (bad UTF-8) */
            char tmp[512];
            snprintf(tmp, sizeof(tmp), "template %s: %s", t->name, errstr);
            snprintf(errstr, errstr_size, "%s", tmp);
            r = KC_POISON;
            goto out;
        }
        const char *iv[NOTIFY_GATHER_COLS] = {
            env->case_id, env->event_id, env->event_type, channel, t->audience,
            t->name,      target,        text.s,          lang,    emergency ? "t" : "f"};
        if (notify_queue(nt, pg, iv, errstr, errstr_size) != 0) {
            r = notify_db_failure(pg, "queueing a notification", errstr, errstr_size);
            goto out;
        }
        LOG_DEBUG("notice %s for the %s queued on %s", t->name, t->audience, channel);
    }
out:
    strbuf_free(&text);
    strbuf_free(&link);
    PQclear(res);
    return r;
}
