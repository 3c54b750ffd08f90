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
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "crypto.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "proto.h"

/* how long one pass may keep sending: the tick runs on the consumer thread,
 * so a dead webhook (timing out) must not hold consumption for long */
#define NOTIFY_PASS_BUDGET_MS 2000

static const pg_stmt_t nt_due = {
    "nt_due",
    /* the due rows are picked (and locked) first, on the ordered partial
     * index, and only those are joined: joining every pending row before the
     * LIMIT cost 10 ms a pass with a backlog of a few thousand */
    "WITH due AS (SELECT id FROM notifications WHERE state = 'pending' "
    "AND next_attempt_at <= now() ORDER BY urgent DESC, next_attempt_at, id "
    "LIMIT $1::int FOR UPDATE SKIP LOCKED) "
    "SELECT n.id, n.case_id, n.trigger_event_id, n.event_type, n.channel, n.audience, "
    "n.template, n.target, n.body, n.attempts, n.language, n.urgent, c.case_no, "
    "CASE WHEN n.channel = 'sms' AND p.purged_at IS NULL THEN p.phone_enc END AS phone_enc, "
    "CASE WHEN n.channel = 'email' AND p.purged_at IS NULL THEN p.email_enc END AS email_enc "
    "FROM due JOIN notifications n ON n.id = due.id JOIN cases c ON c.id = n.case_id "
    "LEFT JOIN complainants p ON p.id = c.complainant_id AND n.audience = 'complainant' "
    "ORDER BY n.urgent DESC, n.next_attempt_at, n.id",
    1};

/* outcomes whose history event is not written yet (see notify_record_batch) */
static const pg_stmt_t nt_unrecorded = {
    "nt_unrecorded",
    /* picked in decision order, each with its case row locked here - and a
     * notice whose case another transaction holds (a stage's batch) is left
     * for the next pass - so the appends below never wait on a case lock and
     * the pass is in no deadlock cycle (decision 0020). Returned in case
     * order. */
    "WITH picked AS (SELECT n.id FROM notifications n JOIN cases c ON c.id = n.case_id "
    "WHERE n.state <> 'pending' AND n.recorded_at IS NULL ORDER BY n.id LIMIT $1::int "
    "FOR UPDATE OF n SKIP LOCKED FOR NO KEY UPDATE OF c SKIP LOCKED) "
    "SELECT n.id, n.case_id, n.trigger_event_id, n.event_type, n.channel, n.audience, "
    "n.template, n.state, n.attempts, COALESCE(n.last_error, '') AS last_error, c.case_no, "
    "(p.purged_at IS NOT NULL) AS erased "
    "FROM picked JOIN notifications n ON n.id = picked.id JOIN cases c ON c.id = n.case_id "
    "LEFT JOIN complainants p ON p.id = c.complainant_id "
    "ORDER BY n.case_id, n.id",
    1};

/* outcomes recorded per transaction: one commit for many history events */
#define NOTIFY_RECORD_BATCH "50"

static const pg_stmt_t nt_recorded = {
    "nt_recorded", "UPDATE notifications SET recorded_at = now() WHERE id = ANY($1::bigint[])",
    1};

/* quiet hours: not an attempt, just later */
static const pg_stmt_t nt_hold = {
    "nt_hold",
    "UPDATE notifications SET next_attempt_at = to_timestamp($2::double precision / 1000), "
    "held_at = now() WHERE id = $1::bigint",
    2};

/* every notice of a pass that went out, in one statement; those in $2 had
 * their history events written by the pass too (notify_sent_record) */
static const pg_stmt_t nt_sent = {
    "nt_sent",
    "UPDATE notifications SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
    "last_error = NULL, recorded_at = CASE WHEN id = ANY($2::bigint[]) THEN now() "
    "ELSE recorded_at END WHERE id = ANY($1::bigint[])",
    2};

/* the cases of the pass's delivered notices that no other transaction holds,
 * locked (never waited for: decision 0020) */
static const pg_stmt_t nt_free_cases = {
    "nt_free_cases",
    "SELECT id FROM cases WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
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
    nt->m_held = metrics_counter("kesu_notifications_held_total",
                                 "SMS notices held until quiet hours end", NULL);
    nt->m_replied = metrics_counter("kesu_replies_total",
                                    "Cases moved resolved -> replied by the notifier", NULL);
    nt->m_send = metrics_histogram("kesu_notification_send_seconds",
                                   "Time to deliver one notification", NULL);
}

/* one due row, as locked */
typedef struct notify_row {
    const char *id, *case_id, *trigger_event_id, *event_type, *channel, *audience, *template_name,
        *target, *body, *case_no, *language, *phone_enc, *email_enc;
    int urgent;        /**< emergency: first, never held */
    int attempts;      /**< attempts before this one */
    int tried;         /**< sent in this pass (the pass budget may leave rows for the next) */
    int ok;            /**< this attempt delivered */
    int permanent;     /**< retrying cannot help (contact data erased): fail now */
    int64_t held_until; /**< > 0: quiet hours, not sent, due again then */
    char error[256];   /**< why not (no URL path, no PII) */
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
    r->language = pg_get(res, i, "language");
    r->phone_enc = pg_get(res, i, "phone_enc");
    r->email_enc = pg_get(res, i, "email_enc");
    r->urgent = strcmp(pg_get(res, i, "urgent"), "t") == 0;
    r->attempts = atoi(pg_get(res, i, "attempts"));
}

/* the complainant's contact (phone or e-mail) in clear into *out (caller
 * wipes and frees); the only place the notifier decrypts PII */
static int notify_contact(notify_t *nt, notify_row_t *r, const char *enc_text, char **out)
{
    size_t bin_len = 0, plain_len = 0;
    uint8_t *plain = NULL;
    char why[128];
    *out = NULL;
    if (!*enc_text) {
        snprintf(r->error, sizeof(r->error), "the complainant's contact data is gone (erased)");
        r->permanent = 1;
        return -1;
    }
    if (!nt->keys) {
        snprintf(r->error, sizeof(r->error), "no pii.key: cannot decrypt the contact data");
        return -1;
    }
    unsigned char *bin = PQunescapeBytea((const unsigned char *)enc_text, &bin_len);
    if (!bin || crypto_decrypt(nt->keys, bin, bin_len, &plain, &plain_len, why, sizeof(why)) != 0) {
        snprintf(r->error, sizeof(r->error), "cannot decrypt the contact data: %s",
                 bin ? why : "out of memory");
        r->permanent = bin != NULL; /* a wrong key or damaged data will not heal */
        PQfreemem(bin);
        return -1;
    }
    PQfreemem(bin);
    *out = (char *)plain;
    return 0;
}

static void notify_wipe(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* POST a JSON body with the notice's Idempotency-Key (and one more header,
 * may be NULL); any 2xx delivers it, anything else is r->error */
static void notify_post_json(const notify_t *nt, notify_row_t *r, const char *url,
                             const char *body, const char *extra_header, const char *what)
{
    char idem[96];
    const char *headers[4];
    int h = 0;
    httpc_response_t resp = {0};
    headers[h++] = "Content-Type: application/json; charset=utf-8";
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", r->id);
    headers[h++] = idem;
    if (extra_header)
        headers[h++] = extra_header;
    headers[h] = NULL;
    if (httpc_request("POST", url, headers, body, strlen(body), nt->webhook_timeout_ms, &resp,
                      r->error, sizeof(r->error)) == 0) {
        if (resp.status >= 200 && resp.status < 300)
            r->ok = 1;
        else
            snprintf(r->error, sizeof(r->error), "%s answered HTTP %ld", what, resp.status);
    }
    httpc_response_free(&resp);
}

static void notify_deliver_sms(notify_t *nt, notify_row_t *r)
{
    char *phone = NULL, *body = NULL, auth[600];
    int64_t until;
    if (!r->urgent && (until = notify_quiet_until(util_now_ms(), nt->quiet_start_min,
                                                  nt->quiet_end_min, nt->tz_offset_min)) > 0) {
        r->held_until = until;
        return;
    }
    if (notify_contact(nt, r, r->phone_enc, &phone) != 0)
        return;
    body = notify_sms_body(r->id, phone, r->body);
    notify_wipe(phone);
    if (!body) {
        snprintf(r->error, sizeof(r->error), "out of memory building the sms body");
        return;
    }
    if (nt->sms_token && *nt->sms_token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", nt->sms_token);
    notify_post_json(nt, r, nt->sms_url, body, nt->sms_token && *nt->sms_token ? auth : NULL,
                     "sms gateway");
    OPENSSL_cleanse(body, strlen(body));
    free(body);
}

static void notify_deliver_email(notify_t *nt, notify_row_t *r)
{
    char *to = NULL, *msg = NULL;
    strbuf_t subject;
    const char *st = NULL;
    for (size_t l = 0; l < nt->cfg.n_langs; l++)
        if (strcmp(nt->cfg.langs[l], r->language) == 0)
            st = nt->cfg.subjects[l];
    if (!st)
        st = nt->cfg.subjects[0] ? nt->cfg.subjects[0] : "{{case_no}}";
    strbuf_init(&subject);
    if (notify_contact(nt, r, r->email_enc, &to) != 0)
        goto out;
    {
        notify_var_t vars[NOTIFY_N_VARS];
        size_t n = notify_vars(vars, r->case_no, "", "", "-", "");
        if (notify_render(st, vars, n, &subject, r->error, sizeof(r->error)) != 0)
            goto out;
    }
    msg = notify_email_message(nt->smtp_from, to, subject.s, r->body, r->id, util_now_ms(),
                               r->error, sizeof(r->error));
    if (!msg) {
        r->permanent = strstr(r->error, "recipient") != NULL; /* a bad address stays bad */
        goto out;
    }
    if (notify_email_send(nt, to, msg, r->error, sizeof(r->error)) == 0)
        r->ok = 1;
out:
    notify_wipe(to);
    notify_wipe(msg);
    strbuf_free(&subject);
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
        char sig[72], sig_hdr[96];
        char *body = notify_webhook_body(r->id, r->case_no, r->event_type, r->audience,
                                         r->template_name, r->body, util_now_ms());
        int signed_body = nt->webhook_secret && *nt->webhook_secret;
        if (!body) {
            snprintf(r->error, sizeof(r->error), "out of memory building the webhook body");
            return;
        }
        if (signed_body) {
            notify_sign(nt->webhook_secret, body, strlen(body), sig);
            snprintf(sig_hdr, sizeof(sig_hdr), "X-Kesu-Signature: %s", sig);
        }
        if (!*r->target) {
            /* only an erasure removes a queued target: retrying cannot help */
            snprintf(r->error, sizeof(r->error), "webhook notification without a target");
            r->permanent = 1;
        } else {
            notify_post_json(nt, r, r->target, body, signed_body ? sig_hdr : NULL, "webhook");
        }
        free(body);
    } else if (strcmp(r->channel, NOTIFY_CHANNEL_SMS) == 0) {
        notify_deliver_sms(nt, r);
    } else if (strcmp(r->channel, NOTIFY_CHANNEL_EMAIL) == 0) {
        notify_deliver_email(nt, r);
    } else {
        snprintf(r->error, sizeof(r->error), "unknown channel %s", r->channel);
    }
    metrics_histogram_observe(nt->m_send, (double)(util_mono_ms() - t0) / 1000.0);
}

/*
 * A given-up notice also goes to kesu.dlq.v1 (with the headers of 0006 plus
 * dlq_notification_id), so the operator's one place for "could not be
 * processed" shows it; the value is the NotificationFailed envelope. To send
 * it again: set the notifications row back to pending (docs/notifications.md).
 */
static int notify_dead_letter(pg_t *pg, const notify_row_t *r, const Kesu__V1__Envelope *env,
                              char *errstr, size_t errstr_size)
{
    size_t len;
    char att[16];
    uint8_t *buf = proto_env_pack(env, &len);
    json_t *h;
    int rc;
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory packing NotificationFailed");
        return -1;
    }
    snprintf(att, sizeof(att), "%d", r->attempts + 1);
    h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "dlq_service", "notifier",
                  "dlq_consumer", "notifier-send", "dlq_source_topic", "notifications",
                  "dlq_error", r->error, "dlq_attempts", att, "dlq_notification_id", r->id,
                  "event_type", env->event_type, "event_id", env->event_id, "schema_version", "1");
    rc = outbox_append(pg, "notifier", KAFKA_TOPIC_DLQ, r->case_id, buf, len, h, errstr,
                       errstr_size);
    json_decref(h);
    free(buf);
    return rc;
}

/* an attempt that delivered the notice now (not held back by quiet hours):
 * the pass marks it sent, and may record it (notify_sent_record) */
static int notify_delivered(const notify_row_t *r)
{
    return r->tried && r->ok && r->held_until <= 0;
}

/*
 * The outcome of one attempt, in the pass's transaction. It touches the
 * notifications row only - no case row lock - so a pass that has already
 * sent can always commit: a deadlock with a stage's batch (which locks case
 * rows in its own order) could otherwise roll the pass back and send its
 * notices a second time. The history event follows in notify_record_due.
 */
static int notify_outcome(notify_t *nt, pg_t *pg, const notify_row_t *r, strbuf_t *sent,
                          char *errstr, size_t errstr_size)
{
    if (r->held_until > 0) {
        char until[24];
        snprintf(until, sizeof(until), "%" PRId64, r->held_until);
        const char *v[2] = {r->id, until};
        if (pg_exec_stmt_cmd(pg, &nt_hold, v, errstr, errstr_size) != 0)
            return -1;
        metrics_counter_add(nt->m_held, 1);
        LOG_INFO("sms notice %s for case %s held by quiet hours", r->template_name, r->case_no);
        return 0;
    }
    if (notify_delivered(r)) {
        pg_array_add(sent, r->id); /* marked by the pass, all in one */
        metrics_counter_add(nt->m_sent, 1);
        return 0;
    }
    if (r->attempts + 1 >= nt->max_attempts || r->permanent) {
        const char *v[2] = {r->id, r->error};
        if (pg_exec_stmt_cmd(pg, &nt_failed, v, errstr, errstr_size) != 0)
            return -1;
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
    if (pg_exec_stmt_cmd(pg, &nt_retry, v, errstr, errstr_size) != 0)
        return -1;
    metrics_counter_add(nt->m_retry, 1);
    LOG_INFO("notice %s for the %s of case %s failed (attempt %d), retry in %" PRId64 " ms: %s",
             r->template_name, r->audience, r->case_no, r->attempts + 1, ms, r->error);
    return 0;
}

/* one outcome to record: the row and the event built from it (the payload
 * and envelope live here until the event is written) */
typedef struct notify_rec {
    notify_row_t r;
    int sent, erased;
    Kesu__V1__NotificationSent ns;
    Kesu__V1__NotificationFailed nf;
    proto_env_t pe;
} notify_rec_t;

/* the event of the outcome in x->r (x->sent: delivered, else given up) */
static void notify_rec_event(notify_rec_t *x)
{
    notify_row_t *r = &x->r;
    proto_env_init(&x->pe, "notifier");
    if (x->sent) {
        Kesu__V1__NotificationSent ns = KESU__V1__NOTIFICATION_SENT__INIT;
        x->ns = ns;
        x->ns.channel = (char *)r->channel;
        x->ns.audience = (char *)r->audience;
        x->ns.template_ = (char *)r->template_name;
        x->ns.trigger_event_id = (char *)r->trigger_event_id;
        proto_env_set_payload(&x->pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT, &x->ns.base);
    } else {
        Kesu__V1__NotificationFailed nf = KESU__V1__NOTIFICATION_FAILED__INIT;
        x->nf = nf;
        x->nf.channel = (char *)r->channel;
        x->nf.audience = (char *)r->audience;
        x->nf.template_ = (char *)r->template_name;
        x->nf.trigger_event_id = (char *)r->trigger_event_id;
        x->nf.error = r->error;
        x->nf.attempts = r->attempts;
        proto_env_set_payload(&x->pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED,
                              &x->nf.base);
    }
}

static void notify_rec_read(const PGresult *res, int i, notify_rec_t *x)
{
    notify_row_t *r = &x->r;
    memset(x, 0, sizeof(*x));
    notify_row_read(res, i, r); /* the columns the pick has; "" for the others */
    snprintf(r->error, sizeof(r->error), "%s", pg_get(res, i, "last_error"));
    x->sent = strcmp(pg_get(res, i, "state"), "sent") == 0;
    x->erased = strcmp(pg_get(res, i, "erased"), "t") == 0;
    notify_rec_event(x);
}

/* after its event is written: a given-up notice to the DLQ, a delivered
 * reply moves the case to replied */
static int notify_rec_after(notify_t *nt, pg_t *pg, const notify_rec_t *x, char *errstr,
                            size_t errstr_size)
{
    const notify_row_t *r = &x->r;
    int reply = strcmp(r->event_type, "CaseResolved") == 0 &&
                strcmp(r->audience, NOTIFY_AUDIENCE_COMPLAINANT) == 0;
    if (!x->sent && notify_dead_letter(pg, r, &x->pe.env, errstr, errstr_size) != 0)
        return CASESTORE_ERROR;
    /* the reply reached the complainant - or never can (erased), like for
     * someone who left no contact: either way the case moves on */
    if (reply && (x->sent || x->erased) &&
        notify_mark_replied(nt, pg, r->case_id, x->sent ? r->channel : NOTIFY_CHANNEL_NONE,
                            errstr, errstr_size) == CASESTORE_ERROR)
        return CASESTORE_ERROR;
    return CASESTORE_OK;
}

/* one outcome on its own (the careful path): its event, then the rest */
static int notify_rec_one(notify_t *nt, pg_t *pg, notify_rec_t *x, char *errstr,
                          size_t errstr_size)
{
    int rc = casestore_append(pg, x->r.case_id, "notifier", "notifier", KAFKA_TOPIC_NOTIFIER,
                              &x->pe, NULL, errstr, errstr_size);
    return rc == CASESTORE_OK ? notify_rec_after(nt, pg, x, errstr, errstr_size) : rc;
}

/*
 * Write the history events of up to NOTIFY_RECORD_BATCH decided outcomes in one
 * transaction. The notices themselves were committed as sent/failed before, so
 * a rollback here only delays the history lines; nothing is sent again. The
 * pick locks the cases too, skipping those a stage's batch holds, so this pass
 * never waits for a case lock (decision 0020). Without `careful` all events
 * are written by one casestore_append_many, and an event the case store
 * refuses gives -2: the caller runs the batch again one event at a time with a
 * savepoint each, so that one refused event does not undo the others (what
 * the consumer loop does for a batch). @returns rows recorded, -1 (transient,
 * errstr) or -2.
 */
static int notify_record_batch(notify_t *nt, pg_t *pg, int careful, char *errstr,
                               size_t errstr_size)
{
    PGresult *res = NULL;
    notify_rec_t *recs = NULL;
    casestore_event_t *ev = NULL;
    int rc = -1, n = 0;
    strbuf_t ids;
    pg_array_begin(&ids);
    if (pg_begin(pg, errstr, errstr_size) != 0) {
        strbuf_free(&ids);
        return -1;
    }
    const char *lv[1] = {NOTIFY_RECORD_BATCH};
    res = pg_exec_stmt(pg, &nt_unrecorded, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    n = PQntuples(res);
    recs = calloc((size_t)n + 1, sizeof(*recs));
    ev = calloc((size_t)n + 1, sizeof(*ev));
    if (!recs || !ev) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        notify_rec_read(res, i, &recs[i]);
        ev[i] = (casestore_event_t){.case_id = recs[i].r.case_id, .producer = "notifier",
                                    .actor = "notifier", .topic = KAFKA_TOPIC_NOTIFIER,
                                    .pe = &recs[i].pe};
    }
    if (!careful) {
        int ev_rc = casestore_append_many(pg, ev, (size_t)n, errstr, errstr_size);
        if (ev_rc == CASESTORE_ERROR && pg_failure_transient(pg))
            goto out;
        if (ev_rc != CASESTORE_OK) {
            rc = -2; /* again, one by one with savepoints */
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        notify_rec_t *x = &recs[i];
        int ev_rc;
        log_ctx_set(x->r.case_id, x->r.trigger_event_id, NULL, -1, -1);
        if (!careful) {
            if (notify_rec_after(nt, pg, x, errstr, errstr_size) != CASESTORE_OK)
                goto out; /* only the database fails here: the pass is retried */
            pg_array_add(&ids, x->r.id);
            continue;
        }
        if (pg_command(pg, "SAVEPOINT nt_rec", errstr, errstr_size) != 0)
            goto out;
        ev_rc = notify_rec_one(nt, pg, x, errstr, errstr_size);
        if (ev_rc == CASESTORE_ERROR && pg_failure_transient(pg))
            goto out;
        if (ev_rc != CASESTORE_OK) {
            /* the case store refuses this event (the case is gone, ...): the
             * notice stands as sent or failed, only its history line is lost */
            LOG_ERROR("notification %s: its %s event cannot be recorded: %s", x->r.id,
                      x->sent ? "NotificationSent" : "NotificationFailed", errstr);
            if (pg_command(pg, "ROLLBACK TO SAVEPOINT nt_rec", errstr, errstr_size) != 0)
                goto out;
        } else if (pg_command(pg, "RELEASE SAVEPOINT nt_rec", errstr, errstr_size) != 0) {
            goto out;
        }
        pg_array_add(&ids, x->r.id);
    }
    pg_array_end(&ids);
    log_ctx_clear();
    if (n > 0) {
        const char *v[1] = {ids.s};
        if (pg_exec_stmt_cmd(pg, &nt_recorded, v, errstr, errstr_size) != 0)
            goto out;
    }
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto out;
    if (pg->outbox_rows > 0 && nt->wake)
        nt->wake(nt->wake_arg); /* the history events (and DLQ entries) are outbox rows */
    rc = n;
out:
    log_ctx_clear();
    if (pg->in_tx)
        pg_rollback(pg);
    free(recs);
    free(ev);
    PQclear(res);
    strbuf_free(&ids);
    return rc;
}

int notify_record_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size)
{
    int n = 0, rc;
    int64_t t0 = util_mono_ms();
    while ((rc = notify_record_batch(nt, pg, 0, errstr, errstr_size)) > 0 ||
           (rc == -2 && (rc = notify_record_batch(nt, pg, 1, errstr, errstr_size)) > 0)) {
        n += rc;
        if (util_mono_ms() - t0 > NOTIFY_PASS_BUDGET_MS)
            break; /* the consumer's turn; the rest next tick */
    }
    return rc < 0 ? -1 : n;
}

/*
 * Mark the pass's delivered notices sent, in one UPDATE, and record in the
 * same transaction what can be recorded at once (decision 0028): for each
 * delivered notice whose case row no other transaction holds, its
 * NotificationSent (and the ReplySent of a delivered reply) is written now
 * and the same UPDATE marks it recorded - one row version per notice instead
 * of two, and no recording pass for it. The pass never waits for a case
 * (SKIP LOCKED), and anything the case store refuses is undone to a
 * savepoint, so the outcomes still commit; what was not recorded here the
 * recording pass writes, as before.
 */
static int notify_sent_record(notify_t *nt, pg_t *pg, const notify_row_t *rows, int n,
                              const char *sent_ids, char *errstr, size_t errstr_size)
{
    strbuf_t cases, done;
    notify_rec_t *recs = calloc((size_t)n + 1, sizeof(*recs));
    casestore_event_t *ev = calloc((size_t)n + 1, sizeof(*ev));
    PGresult *res = NULL;
    int rc = -1, k = 0, inline_ok = 0;
    char why[512];
    pg_array_begin(&cases);
    pg_array_begin(&done);
    if (!recs || !ev) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (notify_delivered(&rows[i]))
            pg_array_add(&cases, rows[i].case_id);
    pg_array_end(&cases);
    if (pg_command(pg, "SAVEPOINT nt_inline", errstr, errstr_size) != 0)
        goto out;
    const char *cv[1] = {cases.s};
    res = pg_exec_stmt(pg, &nt_free_cases, cv, PGRES_TUPLES_OK, why, sizeof(why));
    if (res) {
        for (int i = 0; i < n; i++) {
            const notify_row_t *r = &rows[i];
            int free_case = 0;
            if (!notify_delivered(r))
                continue;
            for (int j = 0; j < PQntuples(res) && !free_case; j++)
                free_case = strcmp(PQgetvalue(res, j, 0), r->case_id) == 0;
            if (!free_case)
                continue;
            recs[k].r = *r;
            recs[k].sent = 1;
            notify_rec_event(&recs[k]);
            ev[k] = (casestore_event_t){.case_id = r->case_id, .producer = "notifier",
                                        .actor = "notifier", .topic = KAFKA_TOPIC_NOTIFIER,
                                        .pe = &recs[k].pe};
            k++;
        }
        inline_ok = k == 0 || casestore_append_many(pg, ev, (size_t)k, why, sizeof(why)) ==
                                  CASESTORE_OK;
        for (int i = 0; inline_ok && i < k; i++)
            inline_ok = notify_rec_after(nt, pg, &recs[i], why, sizeof(why)) == CASESTORE_OK;
    }
    if (!res || !inline_ok) {
        if (pg_failure_transient(pg)) {
            snprintf(errstr, errstr_size, "%s", why);
            goto out;
        }
        /* refused: the outcomes stand, the recording pass writes the events */
        LOG_WARN("delivered notices not recorded with their pass, the recording pass will: %s",
                 why);
        if (pg_command(pg, "ROLLBACK TO SAVEPOINT nt_inline", errstr, errstr_size) != 0)
            goto out;
        k = 0;
    } else if (pg_command(pg, "RELEASE SAVEPOINT nt_inline", errstr, errstr_size) != 0) {
        goto out;
    }
    for (int i = 0; i < k; i++)
        pg_array_add(&done, recs[i].r.id);
    pg_array_end(&done);
    const char *v[2] = {sent_ids, done.s};
    if (pg_exec_stmt_cmd(pg, &nt_sent, v, errstr, errstr_size) != 0)
        goto out;
    rc = 0;
out:
    PQclear(res);
    free(recs);
    free(ev);
    strbuf_free(&cases);
    strbuf_free(&done);
    return rc;
}

int notify_send_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    notify_row_t *rows = NULL;
    int n = 0, rc = -1;
    int64_t t0 = util_mono_ms();
    char limit[16];
    strbuf_t sent;

    if (pg_ensure(pg, errstr, errstr_size) != 0)
        return -1;
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    pg_array_begin(&sent);
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
        if (!rows[i].tried)
            continue;
        log_ctx_set(rows[i].case_id, rows[i].trigger_event_id, NULL, -1, -1);
        /* only the database being unavailable fails here; then the whole
         * pass is retried and its notices go out again (at least once) */
        if (notify_outcome(nt, pg, &rows[i], &sent, errstr, errstr_size) != 0)
            goto out;
    }
    log_ctx_clear();
    pg_array_end(&sent);
    if (sent.len > 2 &&
        notify_sent_record(nt, pg, rows, n, sent.s, errstr, errstr_size) != 0)
        goto out;
    if (pg_commit(pg, errstr, errstr_size) != 0)
        goto out;
    if (pg->outbox_rows > 0 && nt->wake)
        nt->wake(nt->wake_arg); /* the recorded notices' history events are outbox rows */
    rc = 0;
    for (int i = 0; i < n; i++)
        rc += rows[i].tried;
out:
    log_ctx_clear();
    if (pg->in_tx)
        pg_rollback(pg);
    free(rows);
    PQclear(res);
    strbuf_free(&sent);
    if (rc >= 0) {
        /* the history events of what this pass (or a crashed one) decided */
        char why[512];
        if (notify_record_due(nt, pg, why, sizeof(why)) < 0 &&
            util_mono_ms() - nt->last_warn_ms > 10000) {
            nt->last_warn_ms = util_mono_ms();
            LOG_WARN("recording notification events failed, will retry: %s", why);
        }
    }
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
