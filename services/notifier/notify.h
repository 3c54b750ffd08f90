/*
 * notify: the notifier's logic, linked by kesu-notifier and the tests.
 *
 * Two halves that never overlap:
 *  - the consumer handler (notify_handle) turns an event into notifications
 *    rows (state pending), nothing else: it runs in the consumer's batch
 *    transaction after the inbox claimed the event, so a redelivered event
 *    never makes a second row and never sends twice;
 *  - the tick (notify_tick -> notify_send_due) sends due pending rows, one
 *    transaction per pass, records NotificationSent / NotificationFailed in
 *    the case history and, once the reply reached the complainant, moves
 *    the case resolved -> replied (the notifier owns that transition).
 *
 * Templates: deploy/config/notifier.json lists event type x audience (and
 * routing); the texts are files deploy/config/templates/<lang>/<name>.txt
 * (zh-CN default, en) with {{case_no}}, {{department}}, {{reply}},
 * {{deadline}}, {{status_link}}, rendered by notify_render: a placeholder is
 * substituted once and the substituted text is never scanned again, so text
 * from a complaint cannot smuggle in a placeholder. docs/notifications.md.
 */
#ifndef KESU_NOTIFY_H
#define KESU_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

/** Audience of the complainant; every other audience is staff. */
#define NOTIFY_AUDIENCE_COMPLAINANT "complainant"

/** Channel names as stored in notifications.channel and NotificationSent. */
#define NOTIFY_CHANNEL_LOG     "log"
#define NOTIFY_CHANNEL_WEBHOOK "webhook"
#define NOTIFY_CHANNEL_SMS     "sms"
#define NOTIFY_CHANNEL_EMAIL   "email"
/** ReplySent channel when the complainant cannot be reached (anonymous, no contact). */
#define NOTIFY_CHANNEL_NONE "none"

/** Where a notice for one audience may go, tried in order. */
typedef enum {
    NOTIFY_ROUTE_COMPLAINANT_WEBHOOK = 1, /**< complainants.webhook_url, when set */
    NOTIFY_ROUTE_STAFF_WEBHOOK = 2,       /**< notify.staff_webhook_url, when set */
    NOTIFY_ROUTE_LOG = 3,                 /**< a LOG_INFO line: always available */
    NOTIFY_ROUTE_SMS = 4,   /**< the complainant's phone via notify.sms_url (needs pii.key) */
    NOTIFY_ROUTE_EMAIL = 5, /**< the complainant's e-mail via notify.smtp_url (needs pii.key) */
} notify_route_t;

#define NOTIFY_MAX_ROUTES 6

/** Default of notify.status_url: {{status_link}} is this + the case number. */
#define NOTIFY_STATUS_URL_DEFAULT "https://12345.example.gov.cn/status?case="

/** Default local time offset (Asia/Shanghai, UTC+8, no daylight saving). */
#define NOTIFY_TZ_OFFSET_DEFAULT 480

/** Default of notify.templates. */
#define NOTIFY_TEMPLATES_DEFAULT "deploy/config/notifier.json"

/** Languages a template set may have; the first listed is the default. */
#define NOTIFY_MAX_LANGS 4

/** columns of a notifications row the consumer writes (notify_handle) */
#define NOTIFY_GATHER_COLS 10

/** One template: the notice an event type sends to one audience, per language. */
typedef struct notify_template {
    char *event;    /**< event type ("CaseReceived") */
    char *audience; /**< "complainant", "handler", "department_head", "supervisor" */
    char *name;     /**< template name, recorded in notifications.template and the file name */
    char *text;     /**< default-language text (== texts[0], not separately owned) */
    char *texts[NOTIFY_MAX_LANGS]; /**< text per notify_config_t.langs[i]; NULL: use the default */
    int emergency_only;            /**< "when": "emergency": only for emergency cases */
} notify_template_t;

/** The routing of one audience: candidate routes in order, first usable wins. */
typedef struct notify_routing {
    char *audience;                           /**< audience name */
    notify_route_t routes[NOTIFY_MAX_ROUTES]; /**< candidates, 0-terminated */
} notify_routing_t;

/** deploy/config/notifier.json (+ the template files it names), loaded once at start. */
typedef struct notify_config {
    notify_template_t *templates; /**< n_templates entries */
    size_t n_templates;
    notify_routing_t *routing; /**< n_routing entries; one per audience used */
    size_t n_routing;
    char *langs[NOTIFY_MAX_LANGS];   /**< languages ("zh-CN", "en"); langs[0] is the default */
    size_t n_langs;                  /**< >= 1 */
    char *subjects[NOTIFY_MAX_LANGS]; /**< e-mail subject template per language (may be NULL) */
} notify_config_t;

/** The notifier's runtime: settings (borrowed from the service config) and metrics. */
typedef struct notify {
    notify_config_t cfg;           /**< templates and routing */
    const char *webhook_secret;    /**< HMAC key for X-Kesu-Signature; "" signs nothing */
    const char *staff_webhook_url; /**< staff notices go here when set, else log */
    int webhook_timeout_ms;        /**< per request (webhook, SMS gateway, SMTP), > 0 */
    const char *sms_url;           /**< SMS gateway endpoint; "" disables the sms route */
    const char *sms_token;         /**< bearer token for the gateway; "" sends none */
    const char *smtp_url;          /**< smtp:// or smtps:// server; "" disables the email route */
    const char *smtp_from;         /**< envelope and header From address */
    const char *smtp_user;         /**< SMTP AUTH user; "" for none */
    const char *smtp_password;     /**< SMTP AUTH password */
    const char *status_url;        /**< {{status_link}} = status_url + case number */
    const crypto_keys_t *keys;     /**< PII keys to decrypt contact data; NULL: no sms/email */
    int quiet_start_min;           /**< quiet hours start, minutes after local midnight */
    int quiet_end_min;             /**< quiet hours end; == start: no quiet hours */
    int tz_offset_min;             /**< local time = UTC + this (Asia/Shanghai: 480) */
    int max_attempts;              /**< attempts before a notice is failed, >= 1 */
    int send_batch;                /**< due rows locked per tick pass */
    int backoff_base_ms;           /**< first retry delay */
    int backoff_cap_ms;            /**< longest retry delay */
    void (*wake)(void *arg);       /**< after a commit that wrote outbox rows; may be NULL */
    void *wake_arg;                /**< its argument */
    int64_t last_warn_ms;          /**< mono ms of the last failed-pass warning (rate limit) */
    metrics_counter_t *m_queued;   /**< notifications rows created */
    metrics_counter_t *m_sent;     /**< notices delivered */
    metrics_counter_t *m_retry;    /**< failed attempts that will be retried */
    metrics_counter_t *m_failed;   /**< notices given up after max_attempts */
    metrics_counter_t *m_held;     /**< SMS held by quiet hours */
    metrics_counter_t *m_replied;  /**< resolved -> replied transitions */
    metrics_histogram_t *m_send;   /**< time of one send */
    /* the notices a fast batch attempt queues, written by notify_batch at
     * its end in one statement; gather is 0 outside one (careful re-runs,
     * direct calls), and each notice is then inserted at once */
    int gather;
    pg_rows_t rows; /**< NOTIFY_GATHER_COLS columns; made at the first reset */
    /* the case rows of a fast attempt's events, read for all of them at
     * KC_BATCH_CLAIMED in one statement, found by event id */
    pg_keyed_t cases;
} notify_t;

/* ------------------------------------------------------------ templates */

/** One placeholder value for notify_render; value NULL renders as "". */
typedef struct notify_var {
    const char *name;  /**< placeholder name without braces ("case_no") */
    const char *value; /**< UTF-8 text, substituted verbatim */
} notify_var_t;

/**
 * @brief Render a template: every {{name}} (spaces inside the braces allowed)
 *        is replaced by its value, once; the values are copied verbatim and
 *        never scanned for placeholders. A "{{" without a closing "}}" is
 *        literal text.
 * @returns 0 with the text appended to out, or -1 with errstr set: the
 *          template names a placeholder that is not in vars, or the template
 *          or a value is not valid UTF-8 (out is then unchanged).
 */
int notify_render(const char *tmpl, const notify_var_t *vars, size_t n_vars, strbuf_t *out,
                  char *errstr, size_t errstr_size);

/**
 * @brief Load and check notifier.json: every template's text is valid UTF-8
 *        and names only known placeholders, every audience has a routing.
 * @returns 0, or -1 with errstr naming the file and the bad entry.
 */
int notify_config_load(notify_config_t *cfg, const char *path, char *errstr, size_t errstr_size);

/** @brief Free what notify_config_load allocated (zeroed config is fine). */
void notify_config_free(notify_config_t *cfg);

/** @brief The template for event x audience, or NULL. */
const notify_template_t *notify_template_find(const notify_config_t *cfg, const char *event,
                                              const char *audience);

/** @brief The routing of an audience, or NULL. */
const notify_routing_t *notify_routing_find(const notify_config_t *cfg, const char *audience);

/**
 * @brief The text of t in lang, falling back to the default language when
 *        lang is NULL, unknown or has no file for t. @returns the text.
 */
const char *notify_template_text(const notify_config_t *cfg, const notify_template_t *t,
                                 const char *lang);

/** @brief lang if the config has it, else the default language. @returns a string owned by cfg. */
const char *notify_lang_pick(const notify_config_t *cfg, const char *lang);

/**
 * @brief The placeholder values of a case for the templates: case number,
 *        department name, masked reply, deadline (due_ms formatted in local
 *        time "2026-12-03 17:00", "-" when due_ms <= 0), status link.
 *        Strings are borrowed; vars needs NOTIFY_N_VARS entries.
 * @returns NOTIFY_N_VARS.
 */
#define NOTIFY_N_VARS 5
size_t notify_vars(notify_var_t *vars, const char *case_no, const char *department,
                   const char *reply, const char *deadline, const char *status_link);

/** @brief Format due_ms as local time (UTC + tz_offset_min), "-" if <= 0. out needs 24 bytes. */
void notify_fmt_deadline(int64_t due_ms, int tz_offset_min, char *out, size_t out_size);

/**
 * @brief Quiet hours: if now_ms (UTC) falls inside [start_min, end_min) of
 *        local time (UTC + tz_offset_min; the window may span midnight:
 *        22:00-08:00), the instant it ends; else 0. start == end: never quiet.
 *        Pure, for the tests. @returns ms or 0.
 */
int64_t notify_quiet_until(int64_t now_ms, int start_min, int end_min, int tz_offset_min);

/** @brief Parse "22:00-08:00" into minutes. @returns 0, or -1 if malformed. */
int notify_quiet_parse(const char *s, int *start_min, int *end_min);

/* ------------------------------------------------------------- sending */

/**
 * @brief Delay before the next attempt after `attempts` failed ones (>= 1):
 *        base * 2^(attempts-1), capped at cap, with "equal jitter": the
 *        result lies in [d/2, d] where d is that capped delay, picked by rnd.
 *        Pure, so tests can pin rnd.
 * @returns milliseconds.
 */
int64_t notify_backoff_ms(int attempts, int base_ms, int cap_ms, uint32_t rnd);

/**
 * @brief The webhook body {"notification_id","case_no","event_type",
 *        "audience","template","text","sent_at"}.
 * @returns a malloc'd compact JSON string (caller frees) or NULL.
 */
char *notify_webhook_body(const char *notification_id, const char *case_no, const char *event_type,
                          const char *audience, const char *template_name, const char *text,
                          int64_t sent_at_ms);

/**
 * @brief The X-Kesu-Signature value: "sha256=" + hex HMAC-SHA256(secret, body).
 *        out needs 72 bytes.
 */
void notify_sign(const char *secret, const char *body, size_t len, char out[72]);

/**
 * @brief The SMS gateway body {"id","to","text"}.
 * @returns a malloc'd compact JSON string (caller frees) or NULL.
 */
char *notify_sms_body(const char *notification_id, const char *to, const char *text);

/**
 * @brief An RFC 5322 message for SMTP: From, To, Subject (RFC 2047 UTF-8
 *        base64), Date, Message-ID <notification_id.kesu@host-of-from>,
 *        MIME-Version, text/plain UTF-8 body in base64 (so no line of the
 *        body can end the DATA phase or be too long). Addresses must be
 *        plain addr-specs without CR, LF, '<', '>' or spaces.
 * @returns a malloc'd message (caller frees) or NULL with errstr.
 */
char *notify_email_message(const char *from, const char *to, const char *subject,
                           const char *text, const char *notification_id, int64_t now_ms,
                           char *errstr, size_t errstr_size);

/** @brief 1 if s is a plausible addr-spec (local@domain, printable ASCII, no specials). */
int notify_email_valid(const char *s);

/**
 * @brief Send one message over SMTP with libcurl (STARTTLS when the server
 *        offers it on smtp://, implicit TLS on smtps://, peer verified).
 * @returns 0 when the server accepted it, -1 with errstr (never the address).
 */
int notify_email_send(const notify_t *nt, const char *to, const char *message, char *errstr,
                      size_t errstr_size);

/**
 * @brief Move the case resolved -> replied with a ReplySent(channel) event,
 *        in the caller's transaction. A case that is no longer resolved
 *        (CONFLICT) or gone (NOT_FOUND) is logged and left alone.
 * @returns the casestore_rc_t; only CASESTORE_ERROR is a failure.
 */
int notify_mark_replied(notify_t *nt, pg_t *pg, const char *case_id, const char *channel,
                        char *errstr, size_t errstr_size);

/** @brief Look up the metrics series once (NULL-safe to skip: updates accept NULL). */
void notify_metrics_init(notify_t *nt);

/**
 * @brief Consumer handler (kc_handler_fn): for each template of the event's
 *        type, insert a pending notifications row routed to its channel. For
 *        CaseResolved with a complainant that cannot be reached, apply
 *        resolved -> replied (ReplySent, channel "none") at once.
 */
kc_result_t notify_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                          size_t errstr_size);

/**
 * @brief kc_batch_fn: a fast attempt's notices are gathered by notify_handle
 *        and written here at the batch's end with one INSERT; a careful
 *        re-run inserts each at once. A refused INSERT asks for the careful
 *        re-run, where the event the database refuses goes to the DLQ alone.
 */
kc_result_t notify_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                         size_t nmsgs, char *errstr,
                         size_t errstr_size);

/** @brief Free what notify_batch gathered (at shutdown). */
void notify_gather_free(notify_t *nt);

/** @brief kc_wants_fn: events with at least one template (opaque is a notify_t). */
int notify_wants(void *opaque, const Kesu__V1__Envelope *env);

/**
 * @brief Write the history events (NotificationSent, NotificationFailed +
 *        its DLQ entry, ReplySent) of outcomes already committed, one row
 *        per transaction (each locks one case row only, so it cannot
 *        deadlock with a stage), until none is left or about 2 s passed.
 * @returns events recorded, or -1 with errstr (the rest wait).
 */
int notify_record_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size);

/**
 * @brief One send pass in its own transaction: lock up to send_batch due
 *        pending rows (FOR UPDATE SKIP LOCKED), send each, store the
 *        outcome on the notifications rows only (sent, retry, failed,
 *        held), commit; then notify_record_due writes the history events.
 * @returns rows handled (sent, retried or failed), or -1 with errstr
 *          (rolled back; the rows stay pending).
 */
int notify_send_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size);

/** @brief Tick (kc_tick_fn): notify_send_due until nothing is due, logging failures. */
void notify_tick(void *opaque, pg_t *pg);

#endif
