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
 * Templates come from deploy/config/notifier.json (event type x audience,
 * zh-CN text with {{case_no}}, {{department}}, {{reply}}), rendered by
 * notify_render: a placeholder is substituted once and the substituted text
 * is never scanned again, so text from a complaint cannot smuggle in a
 * placeholder.
 */
#ifndef KESU_NOTIFY_H
#define KESU_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "kafka.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

/** Audience of the complainant; every other audience is staff. */
#define NOTIFY_AUDIENCE_COMPLAINANT "complainant"

/** Channel names as stored in notifications.channel and NotificationSent. */
#define NOTIFY_CHANNEL_LOG     "log"
#define NOTIFY_CHANNEL_WEBHOOK "webhook"
/** ReplySent channel when the complainant cannot be reached (anonymous, no contact). */
#define NOTIFY_CHANNEL_NONE "none"

/** Where a notice for one audience may go, tried in order. */
typedef enum {
    NOTIFY_ROUTE_COMPLAINANT_WEBHOOK = 1, /**< complainants.webhook_url, when set */
    NOTIFY_ROUTE_STAFF_WEBHOOK = 2,       /**< notify.staff_webhook_url, when set */
    NOTIFY_ROUTE_LOG = 3,                 /**< a LOG_INFO line: always available */
} notify_route_t;

#define NOTIFY_MAX_ROUTES 4

/** One template: the notice an event type sends to one audience. */
typedef struct notify_template {
    char *event;    /**< event type ("CaseReceived") */
    char *audience; /**< "complainant", "handler", "department_head", ... */
    char *name;     /**< template name, recorded in notifications.template */
    char *text;     /**< UTF-8 text with {{placeholders}} */
} notify_template_t;

/** The routing of one audience: candidate routes in order, first usable wins. */
typedef struct notify_routing {
    char *audience;                           /**< audience name */
    notify_route_t routes[NOTIFY_MAX_ROUTES]; /**< candidates, 0-terminated */
} notify_routing_t;

/** deploy/config/notifier.json, loaded once at start. */
typedef struct notify_config {
    notify_template_t *templates; /**< n_templates entries */
    size_t n_templates;
    notify_routing_t *routing; /**< n_routing entries; one per audience used */
    size_t n_routing;
} notify_config_t;

/** The notifier's runtime: settings (borrowed from the service config) and metrics. */
typedef struct notify {
    notify_config_t cfg;           /**< templates and routing */
    const char *webhook_secret;    /**< HMAC key for X-Kesu-Signature; "" signs nothing */
    const char *staff_webhook_url; /**< staff notices go here when set, else log */
    int webhook_timeout_ms;        /**< per request, > 0 */
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
    metrics_counter_t *m_replied;  /**< resolved -> replied transitions */
    metrics_histogram_t *m_send;   /**< time of one send */
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
 * @brief One send pass in its own transaction: lock up to send_batch due
 *        pending rows (FOR UPDATE SKIP LOCKED), send each, record the
 *        outcome and its event, commit, wake the relay.
 * @returns rows handled (sent, retried or failed), or -1 with errstr
 *          (rolled back; the rows stay pending).
 */
int notify_send_due(notify_t *nt, pg_t *pg, char *errstr, size_t errstr_size);

/** @brief Tick (kc_tick_fn): notify_send_due until nothing is due, logging failures. */
void notify_tick(void *opaque, pg_t *pg);

#endif
