/*
 * kesu-notifier: tells the complainant and the staff what happened to a case.
 *
 * Consumes kesu.intake.v1, kesu.dispatcher.v1 and kesu.sla.v1; the handler
 * queues notifications rows, the tick sends them (see notify.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "service.h"

static const char notifier_usage[] =
    "usage: kesu-notifier [--config FILE] [--key value ...]\n"
    "\n"
    "Sends the notices of deploy/config/notifier.json (receipt, assignment, reply,\n"
    "SLA breach, closure) on the log and webhook channels, retrying with backoff,\n"
    "and moves a case resolved -> replied once its reply reached the complainant.";

/* a relative path that is not found from here is taken from the source tree */
static const char *notifier_path(const char *path, char *buf, size_t n)
{
    if (path[0] == '/' || access(path, R_OK) == 0)
        return path;
    snprintf(buf, n, "%s/%s", KESU_SOURCE_DIR, path);
    return buf;
}

#define NOTIFIER_MAX_TOPICS 8

/* split "a,b,c" in place into topics[], NULL-terminated */
static int notifier_topics(char *list, const char **topics)
{
    int n = 0;
    if (!list || !*list) {
        /* the stage topics the notifier has templates for (with the topic prefix) */
        topics[0] = KAFKA_TOPIC_INTAKE;
        topics[1] = KAFKA_TOPIC_DISPATCHER;
        topics[2] = KAFKA_TOPIC_SLA;
        topics[3] = NULL;
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
    int timeout_ms = 0, max_attempts = 0, tick_ms = 0, send_batch = 0, base_ms = 0, cap_ms = 0;
    char errstr[512], pathbuf[1024];
    int rc;
    const config_key_t keys[] = {
        {"notify.topics", CONFIG_STR, &topic_list, NULL,
         "topics to consume, comma-separated (empty: the intake, dispatcher and sla topics)", 0},
        {"notify.templates", CONFIG_STR, &templates, "deploy/config/notifier.json",
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
    const char *path = notifier_path(templates, pathbuf, sizeof(pathbuf));
    if (notify_config_load(&nt.cfg, path, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("cannot load the templates: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    if (!secret || !*secret)
        LOG_WARN("notify.webhook_secret is empty: webhooks go out without X-Kesu-Signature");
    nt.webhook_secret = secret;
    nt.staff_webhook_url = staff_url;
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
        config_free(&svc.cfg);
        return 2;
    }
    LOG_INFO("%zu templates loaded from %s", nt.cfg.n_templates, path);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        notify_config_free(&nt.cfg);
        return 1;
    }
    rc = service_consume(&svc, topics, notify_handle, notify_tick, tick_ms, &nt);
    int code = service_stop(&svc);
    notify_config_free(&nt.cfg);
    return rc != 0 ? 1 : code;
}
