/*
 * kesu-notifier: tells the complainant and the staff what happened to a case.
 *
 * Consumes kesu.intake.v1, kesu.dispatcher.v1 and kesu.sla.v1; the handler
 * queues notifications rows, the tick sends them (see notify.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "service.h"

static const char notifier_usage[] =
    "usage: kesu-notifier [--config FILE] [--key value ...]\n"
    "\n"
    "Sends the notices of deploy/config/notifier.json and deploy/config/templates/\n"
    "(receipt, assignment, reply, SLA warnings and breaches, closure, emergencies) on\n"
    "the webhook, SMS, e-mail and log channels, retrying with backoff, holding\n"
    "non-urgent SMS in quiet hours, and moves a case resolved -> replied once its\n"
    "reply reached the complainant. See docs/notifications.md.";

#define NOTIFIER_MAX_TOPICS 8

#define KESU_STR_(x) #x
#define KESU_STR(x)  KESU_STR_(x)

/* split "a,b,c" in place into topics[], NULL-terminated */
static int notifier_topics(char *list, const char **topics)
{
    int n = 0;
    if (!list || !*list) {
        /* the stage topics the notifier has templates for (with the topic prefix) */
        topics[0] = KAFKA_TOPIC_INTAKE;
        topics[1] = KAFKA_TOPIC_CLASSIFIER; /* CaseClassified: emergencies page the supervisor */
        topics[2] = KAFKA_TOPIC_DISPATCHER;
        topics[3] = KAFKA_TOPIC_SLA;
        topics[4] = NULL;
        return 0;
    }
    for (char *save = NULL, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (n == NOTIFIER_MAX_TOPICS)
            return -1;
        topics[n++] = t;
    }
    topics[n] = NULL;
    return n ? 0 : -1;
}

static void notifier_wake(void *arg)
{
    service_wake_relay(arg);
}

int main(int argc, char **argv)
{
    service_t svc;
    notify_t nt;
    char *templates = NULL, *secret = NULL, *staff_url = NULL, *topic_list = NULL;
    char *sms_url = NULL, *sms_token = NULL, *smtp_url = NULL, *smtp_from = NULL,
         *smtp_user = NULL, *smtp_password = NULL, *status_url = NULL, *quiet = NULL,
         *pii_key = NULL;
    int timeout_ms = 0, max_attempts = 0, tick_ms = 0, send_batch = 0, base_ms = 0, cap_ms = 0;
    int tz_offset = 0;
    crypto_keys_t pii;
    char errstr[512], pathbuf[1024];
    int rc;
    const config_key_t keys[] = {
        {"notify.topics", CONFIG_STR, &topic_list, NULL,
         "topics to consume, comma-separated (empty: the intake, classifier, dispatcher and "
         "sla topics)",
         0},
        {"notify.templates", CONFIG_STR, &templates, NOTIFY_TEMPLATES_DEFAULT,
         "templates and routing (JSON); relative paths also tried under the source tree", 0},
        {"notify.webhook_secret", CONFIG_STR, &secret, NULL,
         "HMAC-SHA256 key for the X-Kesu-Signature header of webhooks (empty: unsigned)", 1},
        {"notify.webhook_timeout_ms", CONFIG_INT, &timeout_ms, "5000",
         "time limit of one webhook request", 0},
        {"notify.staff_webhook_url", CONFIG_STR, &staff_url, NULL,
         "where staff notices are posted (empty: the log channel)", 0},
        {"notify.max_attempts", CONFIG_INT, &max_attempts, "8",
         "delivery attempts before a notice is given up (NotificationFailed)", 0},
        {"notify.tick_ms", CONFIG_INT, &tick_ms, "100", "how often due notices are sent", 0},
        {"notify.send_batch", CONFIG_INT, &send_batch, "20", "due notices locked per pass", 0},
        {"notify.backoff_base_ms", CONFIG_INT, &base_ms, "1000", "first retry delay", 0},
        {"notify.backoff_cap_ms", CONFIG_INT, &cap_ms, "300000", "longest retry delay", 0},
        {"notify.sms_url", CONFIG_STR, &sms_url, NULL,
         "SMS gateway: POST {\"id\",\"to\",\"text\"} (empty: no sms channel)", 0},
        {"notify.sms_token", CONFIG_STR, &sms_token, NULL,
         "bearer token for the SMS gateway (empty: none)", 1},
        {"notify.smtp_url", CONFIG_STR, &smtp_url, NULL,
         "SMTP server, smtp://host:port or smtps://host:port (empty: no email channel)", 0},
        {"notify.smtp_from", CONFIG_STR, &smtp_from, "noreply@kesu.example.gov.cn",
         "sender address of e-mail notices", 0},
        {"notify.smtp_user", CONFIG_STR, &smtp_user, NULL, "SMTP AUTH user (empty: none)", 0},
        {"notify.smtp_password", CONFIG_STR, &smtp_password, NULL, "SMTP AUTH password", 1},
        {"notify.status_url", CONFIG_STR, &status_url, NOTIFY_STATUS_URL_DEFAULT,
         "{{status_link}} is this followed by the case number", 0},
        {"notify.quiet_hours", CONFIG_STR, &quiet, "22:00-08:00",
         "local time window in which non-urgent SMS wait (empty: none)", 0},
        {"notify.tz_offset_min", CONFIG_INT, &tz_offset, KESU_STR(NOTIFY_TZ_OFFSET_DEFAULT),
         "local time = UTC + this many minutes (Asia/Shanghai: 480, no DST)", 0},
        {"pii.key", CONFIG_STR, &pii_key, NULL,
         "PII key (64 hex or file:PATH) to decrypt phone and e-mail for sms/email "
         "(empty: those channels are off)",
         1},
        {NULL, 0, NULL, NULL, NULL, 0},
    };
    const char *topics[NOTIFIER_MAX_TOPICS + 1];

    rc = service_init(&svc, "notifier", notifier_usage, "127.0.0.1:9105", keys, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    memset(&nt, 0, sizeof(nt));
    if (timeout_ms < 1 || max_attempts < 1 || tick_ms < 1 || send_batch < 1 || base_ms < 1 ||
        cap_ms < base_ms) {
        LOG_ERROR("notify.webhook_timeout_ms, max_attempts, tick_ms, send_batch and "
                  "backoff_base_ms must be >= 1 and backoff_cap_ms >= backoff_base_ms");
        config_free(&svc.cfg);
        return 2;
    }
    if (notifier_topics(topic_list, topics) != 0) {
        LOG_ERROR("notify.topics must name 1-%d topics, comma-separated", NOTIFIER_MAX_TOPICS);
        config_free(&svc.cfg);
        return 2;
    }
    if (notify_quiet_parse(quiet, &nt.quiet_start_min, &nt.quiet_end_min) != 0 ||
        tz_offset < -14 * 60 || tz_offset > 14 * 60) {
        LOG_ERROR("notify.quiet_hours must look like 22:00-08:00 (or be empty) and "
                  "notify.tz_offset_min lie within +-840");
        config_free(&svc.cfg);
        return 2;
    }
    memset(&pii, 0, sizeof(pii));
    if (pii_key && *pii_key) {
        if (crypto_keys_load(&pii, pii_key, errstr, sizeof(errstr)) != 0) {
            LOG_ERROR("pii.key: %s", errstr);
            config_free(&svc.cfg);
            return 2;
        }
        nt.keys = &pii;
    } else if ((sms_url && *sms_url) || (smtp_url && *smtp_url)) {
        LOG_WARN("no pii.key: the sms and email channels cannot read contact data and stay off");
    }
    if (config_resolve_path(templates, pathbuf, sizeof(pathbuf)) != 0) {
        LOG_ERROR("notify.templates: %s not found", templates);
        crypto_keys_wipe(&pii);
        config_free(&svc.cfg);
        return 2;
    }
    const char *path = pathbuf;
    if (notify_config_load(&nt.cfg, path, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("cannot load the templates: %s", errstr);
        crypto_keys_wipe(&pii);
        config_free(&svc.cfg);
        return 2;
    }
    if (!secret || !*secret)
        LOG_WARN("notify.webhook_secret is empty: webhooks go out without X-Kesu-Signature");
    nt.webhook_secret = secret;
    nt.staff_webhook_url = staff_url;
    nt.sms_url = sms_url;
    nt.sms_token = sms_token;
    nt.smtp_url = smtp_url;
    nt.smtp_from = smtp_from;
    nt.smtp_user = smtp_user;
    nt.smtp_password = smtp_password;
    nt.status_url = status_url;
    nt.tz_offset_min = tz_offset;
    nt.webhook_timeout_ms = timeout_ms;
    nt.max_attempts = max_attempts;
    nt.send_batch = send_batch;
    nt.backoff_base_ms = base_ms;
    nt.backoff_cap_ms = cap_ms;
    nt.wake = notifier_wake;
    nt.wake_arg = &svc;
    notify_metrics_init(&nt);
    if (httpc_global_init() != 0) {
        LOG_ERROR("cannot initialise libcurl");
        notify_config_free(&nt.cfg);
        crypto_keys_wipe(&pii);
        config_free(&svc.cfg);
        return 2;
    }
    LOG_INFO("%zu templates loaded from %s", nt.cfg.n_templates, path);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        notify_config_free(&nt.cfg);
        crypto_keys_wipe(&pii);
        return 1;
    }
    svc.batch = notify_batch;
    rc = service_consume(&svc, topics, notify_handle, notify_wants, notify_tick, tick_ms, &nt);
    int code = service_stop(&svc);
    notify_gather_free(&nt);
    notify_config_free(&nt.cfg);
    crypto_keys_wipe(&pii);
    return rc != 0 ? 1 : code;
}
