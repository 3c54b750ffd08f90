/*
 * notify_send: the tick that delivers pending notifications.
 *
 * One pass is one transaction: lock up to send_batch due rows with
 * FOR UPDATE SKIP LOCKED (so any number of notifier instances share the
 * work without sending a row twice), send them all, then record every
 * outcome and its history event, commit. The sends come before the writes
 * on purpose: casestore locks the case row, and holding case locks while
 * waiting on a slow webhook would stall intake's staff actions on the case.
 *
 * Delivery is at least once: a crash between a send and the commit sends
 * that notice again on the next pass. The webhook carries the same
 * Idempotency-Key (the notification id) every time so the receiver can
 * drop the repeat.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "crypto.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "proto.h"

/* how long one pass may keep sending: the tick runs on the consumer thread,
 * so a dead webhook (timing out) must not hold consumption for long */
#define NOTIFY_PASS_BUDGET_MS 2000

static const pg_stmt_t nt_due = {
    "nt_due",
    "SELECT n.id, n.case_id, n.trigger_event_id, n.event_type, n.channel, n.audience, "
    "n.template, n.target, n.body, n.attempts, c.case_no "
    "FROM notifications n JOIN cases c ON c.id = n.case_id "
    "WHERE n.state = 'pending' AND n.next_attempt_at <= now() "
    "ORDER BY n.next_attempt_at, n.id LIMIT $1::int FOR UPDATE OF n SKIP LOCKED",
    1};

static const pg_stmt_t nt_sent = {
    "nt_sent",
    "UPDATE notifications SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
    "last_error = NULL WHERE id = $1::bigint",
    1};

static const pg_stmt_t nt_retry = {
    "nt_retry",
    "UPDATE notifications SET attempts = attempts + 1, last_error = $2, "
    "next_attempt_at = now() + $3::bigint * interval '1 millisecond' WHERE id = $1::bigint",
    3};

static const pg_stmt_t nt_failed = {
    "nt_failed",
    "UPDATE notifications SET state = 'failed', attempts = attempts + 1, last_error = $2 "
    "WHERE id = $1::bigint",
    2};

int64_t notify_backoff_ms(int attempts, int base_ms, int cap_ms, uint32_t rnd)
{
    int64_t d, half;
    if (attempts < 1)
        attempts = 1;
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    d = base_ms;
    for (int i = 1; i < attempts && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    /* equal jitter: never less than half the delay (no hot retry loop), and
     * instances that failed together do not retry together */
    half = d / 2;
    return half + (int64_t)(rnd % (uint32_t)(d - half + 1));
}

char *notify_webhook_body(const char *notification_id, const char *case_no, const char *event_type,
                          const char *audience, const char *template_name, const char *text,
                          int64_t sent_at_ms)
{
    char at[40];
    util_fmt_time(sent_at_ms, at, sizeof(at));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "notification_id", notification_id,
                          "case_no", case_no, "event_type", event_type, "audience", audience,
                          "template", template_name, "text", text, "sent_at", at);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void notify_sign(const char *secret, const char *body, size_t len, char out[72])
{
    uint8_t mac[32];
    crypto_hmac_sha256((const uint8_t *)secret, strlen(secret), body, len, mac);
    memcpy(out, "sha256=", 7);
    util_hex(mac, sizeof(mac), out + 7);
}

void notify_metrics_init(notify_t *nt)
{
    nt->m_queued = metrics_counter("kesu_notifications_queued_total",
                                   "Notifications created from events", NULL);
    nt->m_sent = metrics_counter("kesu_notifications_sent_total", "Notifications delivered", NULL);
    nt->m_retry = metrics_counter("kesu_notification_retries_total",
                                  "Failed delivery attempts that will be retried", NULL);
    nt->m_failed = metrics_counter("kesu_notifications_failed_total",
                                   "Notifications given up after the last attempt", NULL);
    nt->m_replied = metrics_counter("kesu_replies_total",
                                    "Cases moved resolved -> replied by the notifier", NULL);
    nt->m_send = metrics_histogram("kesu_notification_send_seconds",
                                   "Time to deliver one notification", NULL);
}

/* one due row, as locked */
typedef struct notify_row {
    const char *id, *case_id, *trigger_event_id, *event_type, *channel, *audience, *template_name,
        *target, *body, *case_no;
    int attempts;    /**< attempts before this one */
    int tried;       /**< sent in this pass (the pass budget may leave rows for the next) */
    int ok;          /**< this attempt delivered */
    char error[256]; /**< why not (no URL path, no PII) */
} notify_row_t;

static void notify_row_read(const PGresult *res, int i, notify_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = pg_get(res, i, "id");
    r->case_id = pg_get(res, i, "case_id");
    r->trigger_event_id = pg_get(res, i, "trigger_event_id");
    r->event_type = pg_get(res, i, "event_type");
    r->channel = pg_get(res, i, "channel");
    r->audience = pg_get(res, i, "audience");
    r->template_name = pg_get(res, i, "template");
    r->target = pg_get(res, i, "target");
    r->body = pg_get(res, i, "body");
    r->case_no = pg_get(res, i, "case_no");
    r->attempts = atoi(pg_get(res, i, "attempts"));
}

static void notify_deliver(notify_t *nt, notify_row_t *r)
{
    int64_t t0 = util_mono_ms();
    if (strcmp(r->channel, NOTIFY_CHANNEL_LOG) == 0) {
        /* the text stays in PostgreSQL: {{reply}} is free text, the log is not its place */
        LOG_INFO("notice %s for the %s of case %s (notification %s, %zu bytes) sent on the log "
                 "channel",
                 r->template_name, r->audience, r->case_no, r->id, strlen(r->body));
        r->ok = 1;
    } else if (strcmp(r->channel, NOTIFY_CHANNEL_WEBHOOK) == 0) {
        char sig[72], sig_hdr[96], idem[96];
        httpc_response_t resp = {0};
        char *body = notify_webhook_body(r->id, r->case_no, r->event_type, r->audience,
                                         r->template_name, r->body, util_now_ms());
        const char *headers[5];
        int h = 0;
        if (!body) {
            snprintf(r->error, sizeof(r->error), "out of memory building the webhook body");
            return;
        }
        headers[h++] = "Content-Type: application/json; charset=utf-8";
        snprintf(idem, sizeof(idem), "Idempotency-Key: %s", r->id);
        headers[h++] = idem;
        if (nt->webhook_secret && *nt->webhook_secret) {
            notify_sign(nt->webhook_secret, body, strlen(body), sig);
            snprintf(sig_hdr, sizeof(sig_hdr), "X-Kesu-Signature: %s", sig);
            headers[h++] = sig_hdr;
        }
        headers[h] = NULL;
        if (!*r->target) {
            snprintf(r->error, sizeof(r->error), "webhook notification without a target");
        } else if (httpc_request("POST", r->target, headers, body, strlen(body),
                                 nt->webhook_timeout_ms, &resp, r->error, sizeof(r->error)) == 0) {
            if (resp.status >= 200 && resp.status < 300)
                r->ok = 1;
            else
                snprintf(r->error, sizeof(r->error), "webhook answered HTTP %ld", resp.status);
        }
        httpc_response_free(&resp);
        free(body);
    } else {
        snprintf(r->error, sizeof(r->error), "unknown channel %s", r->channel);
    }
    metrics_histogram_observe(nt->m_send, (double)(util_mono_ms() - t0) / 1000.0);
}

static int notify_exec(pg_t *pg, const pg_stmt_t *st, const char *const *v, char *errstr,
                       size_t errstr_size)
{
    PGresult *res = pg_exec_stmt(pg, st, v, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* the outcome of one row and its history event; -1 leaves the savepoint to roll back */
static int notify_record(notify_t *nt, pg_t *pg, const notify_row_t *r, int *wrote_outbox,
                         char *errstr, size_t errstr_size)
{
    proto_env_t pe;
    proto_env_init(&pe, "notifier");
    if (r->ok) {
        Kesu__V1__NotificationSent ns = KESU__V1__NOTIFICATION_SENT__INIT;
        const char *v[1] = {r->id};
        ns.channel = (char *)r->channel;
        ns.audience = (char *)r->audience;
        ns.template_ = (char *)r->template_name;
        ns.trigger_event_id = (char *)r->trigger_event_id;
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT, &ns.base);
        if (notify_exec(pg, &nt_sent, v, errstr, errstr_size) != 0)
            return -1;
        if (casestore_append(pg, r->case_id, "notifier", "notifier", KAFKA_TOPIC_NOTIFIER, &pe,
                             NULL, errstr, errstr_size) != CASESTORE_OK)
            return -1;
        *wrote_outbox = 1;
        metrics_counter_add(nt->m_sent, 1);
        if (strcmp(r->event_type, "CaseResolved") == 0 &&
            strcmp(r->audience, NOTIFY_AUDIENCE_COMPLAINANT) == 0 &&
            notify_mark_replied(nt, pg, r->case_id, r->channel, errstr, errstr_size) ==
                CASESTORE_ERROR)
            return -1;
        return 0;
    }
    if (r->attempts + 1 >= nt->max_attempts) {
        Kesu__V1__NotificationFailed nf = KESU__V1__NOTIFICATION_FAILED__INIT;
        const char *v[2] = {r->id, r->error};
        nf.channel = (char *)r->channel;
        nf.audience = (char *)r->audience;
        nf.template_ = (char *)r->template_name;
        nf.trigger_event_id = (char *)r->trigger_event_id;
        nf.error = (char *)r->error;
        nf.attempts = r->attempts + 1;
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED, &nf.base);
        if (notify_exec(pg, &nt_failed, v, errstr, errstr_size) != 0)
            return -1;
        if (casestore_append(pg, r->case_id, "notifier", "notifier", KAFKA_TOPIC_NOTIFIER, &pe,
                             NULL, errstr, errstr_size) != CASESTORE_OK)
            return -1;
        *wrote_outbox = 1;
        metrics_counter_add(nt->m_failed, 1);
        LOG_WARN("notice %s for the %s of case %s given up after %d attempts: %s", r->template_name,
                 r->audience, r->case_no, r->attempts + 1, r->error);
        return 0;
    }
    uint32_t rnd;
    char delay[24];
    crypto_random((uint8_t *)&rnd, sizeof(rnd));
    int64_t ms = notify_backoff_ms(r->attempts + 1, nt->backoff_base_ms, nt->backoff_cap_ms, rnd);
    snprintf(delay, sizeof(delay), "%" PRId64, ms);
    const char *v[3] = {r->id, r->error, delay};
    if (notify_exec(pg, &nt_retry, v, errstr, errstr_size) != 0)
        return -1;
    metrics_counter_add(nt->m_retry, 1);
    LOG_INFO("notice %s for the %s of case %s failed (attempt %d), retry in %" PRId64 " ms: %s",
             r->template_name, r->audience, r->case_no, r->attempts + 1, ms, r->error);
    return 0;
}

int notify_send_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    notify_row_t *rows = NULL;
    int n = 0, rc = -1, wrote_outbox = 0;
    int64_t t0 = util_mono_ms();
    char limit[16];

    if (pg_ensure(pg, errstr, errstr_size) != 0)
        return -1;
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    snprintf(limit, sizeof(limit), "%d", nt->send_batch > 0 ? nt->send_batch : 20);
    const char *lv[1] = {limit};
    res = pg_exec_stmt(pg, &nt_due, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    n = PQntuples(res);
    if (n == 0) {
        rc = 0;
        goto out;
    }
    rows = calloc((size_t)n, sizeof(*rows));
    if (!rows) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        notify_row_read(res, i, &rows[i]);
        /* the consumer waits while we send: past the budget the rest stay
         * pending, untouched, for the next pass */
        if (i > 0 && util_mono_ms() - t0 > NOTIFY_PASS_BUDGET_MS)
            continue;
        log_ctx_set(rows[i].case_id, rows[i].trigger_event_id, NULL, -1, -1);
        notify_deliver(nt, &rows[i]);
        rows[i].tried = 1;
    }
    for (int i = 0; i < n; i++) {
        const notify_row_t *r = &rows[i];
        if (!r->tried)
            continue;
        log_ctx_set(r->case_id, r->trigger_event_id, NULL, -1, -1);
        if (pg_command(pg, "SAVEPOINT nt_row", errstr, errstr_size) != 0)
            goto out;
        if (notify_record(nt, pg, r, &wrote_outbox, errstr, errstr_size) == 0) {
            if (pg_command(pg, "RELEASE SAVEPOINT nt_row", errstr, errstr_size) != 0)
                goto out;
            continue;
        }
        if (pg_failure_transient(pg))
            goto out; /* the whole pass again later; the rows stay pending */
        /* the database refuses this row's outcome: keep the row pending with
         * the reason so one bad row cannot block the others */
        LOG_ERROR("cannot record notification %s: %s", r->id, errstr);
        char why[256], delay[24];
        snprintf(why, sizeof(why), "recording the outcome failed: %s", errstr);
        snprintf(delay, sizeof(delay), "%d", nt->backoff_cap_ms);
        const char *v[3] = {r->id, why, delay};
        /* past the last attempt it stops here, failed without its event */
        const pg_stmt_t *st = r->attempts + 1 >= nt->max_attempts ? &nt_failed : &nt_retry;
        if (pg_command(pg, "ROLLBACK TO SAVEPOINT nt_row", errstr, errstr_size) != 0 ||
            notify_exec(pg, st, v, errstr, errstr_size) != 0 ||
            pg_command(pg, "RELEASE SAVEPOINT nt_row", errstr, errstr_size) != 0)
            goto out;
    }
    log_ctx_clear();
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto out;
    if (wrote_outbox && nt->wake)
        nt->wake(nt->wake_arg);
    rc = 0;
    for (int i = 0; i < n; i++)
        rc += rows[i].tried;
out:
    log_ctx_clear();
    if (pg->in_tx)
        pg_rollback(pg);
    free(rows);
    PQclear(res);
    return rc;
}

void notify_tick(void *opaque, pg_t *pg)
{
    notify_t *nt = opaque;
    char errstr[512];
    int64_t deadline = util_mono_ms() + 1000;
    /* drain what is due, but give the consumer its turn after about a second */
    for (;;) {
        int n = notify_send_due(nt, pg, errstr, sizeof(errstr));
        if (n < 0) {
            /* the tick comes every notify.tick_ms: one line per 10 s is enough */
            if (util_mono_ms() - nt->last_warn_ms > 10000) {
                nt->last_warn_ms = util_mono_ms();
                LOG_WARN("notification pass failed, will retry: %s", errstr);
            }
            return;
        }
        if (n < nt->send_batch || util_mono_ms() > deadline)
            return;
    }
}
