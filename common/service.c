/*
 * service: shared runtime of every Kesu binary.
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

volatile sig_atomic_t service_running = 1;

static void service_on_signal(int sig)
{
    if (!service_running)
        _exit(1); /* second signal: exit now */
    service_running = 0;
}

int service_init(service_t *svc, const char *name, const char *usage, const char *ops_default,
                 const config_key_t *extra, int argc, char **argv)
{
    char errstr[512];
    memset(svc, 0, sizeof(*svc));
    svc->name = name;
    /* the table lives in the service struct's storage: one per process */
    static config_key_t common[16];
    config_key_t tmpl[] = {
        {"pg", CONFIG_STR, &svc->pg_conninfo,
         "host=127.0.0.1 port=55432 dbname=kesu user=postgres",
         "PostgreSQL connection string (libpq conninfo or URI)", 1},
        {"ops.listen", CONFIG_STR, &svc->ops_listen, ops_default,
         "ops server host:port for /healthz /readyz /metrics (empty: off)", 0},
        {"log.level", CONFIG_STR, &svc->log_level, "info", "error, warn, info or debug", 0},
        {"group", CONFIG_STR, &svc->group, NULL, "Kafka consumer group (default kesu-<service>)",
         0},
        {"pg.wait_ms", CONFIG_INT, &svc->pg_wait_ms, "30000",
         "how long to wait for PostgreSQL at start-up", 0},
        {"batch.max", CONFIG_INT, &svc->batch_max, "500", "events per consumer transaction", 0},
        {"batch.ms", CONFIG_INT, &svc->batch_ms, "10", "max wait in ms to fill a batch", 0},
        {"relay.batch", CONFIG_INT, &svc->relay_batch, "500", "outbox rows per relay pass", 0},
        {"inbox.retention_days", CONFIG_INT, &svc->inbox_retention_days, "14",
         "consumer inbox rows (the record that an event was applied) are kept this long, then "
         "purged; keep it longer than the topics' retention; 0 keeps them for ever",
         0},
        {"topics.prefix", CONFIG_STR, &svc->topics_prefix, NULL,
         "prefix of every topic name (isolates test runs on a shared broker)", 0},
        {"relay.idle_ms", CONFIG_INT, &svc->relay_idle_ms, "20",
         "relay poll period when idle, doubling to 500 ms while polls find nothing "
         "(it is also woken after each commit that wrote outbox rows)",
         0},
        {NULL, 0, NULL, NULL, NULL, 0},
    };
    memcpy(common, tmpl, sizeof(tmpl));
    config_init(&svc->cfg, name, usage);
    config_add_table(&svc->cfg, common);
    if (extra)
        config_add_table(&svc->cfg, extra);
    config_set(&svc->cfg, "kafka.bootstrap.servers", "127.0.0.1:59092", "default", errstr,
               sizeof(errstr));
    config_set(&svc->cfg, "kafka.client.id", name, "default", errstr, sizeof(errstr));

    int rc = config_load(&svc->cfg, argc, argv, errstr, sizeof(errstr));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", name, errstr);
        return rc;
    }
    int lvl = log_level_parse(svc->log_level);
    if (lvl < 0) {
        fprintf(stderr, "%s: log.level \"%s\" is not one of error, warn, info, debug\n", name,
                svc->log_level);
        return -1;
    }
    if (svc->inbox_retention_days < 0) {
        fprintf(stderr, "%s: inbox.retention_days must be 0 (keep) or more days\n", name);
        return -1;
    }
    if (svc->batch_max < 1 || svc->batch_max > 10000) {
        fprintf(stderr, "%s: batch.max must be between 1 and 10000\n", name);
        return -1;
    }
    log_init(name, (log_level_t)lvl);
    kafka_topics_set_prefix(svc->topics_prefix);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = service_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atomic_store(&svc->consumer_ready, 0);
    return 0;
}

static int service_ready(void *opaque, char *why, size_t n)
{
    service_t *svc = opaque;
    if (!service_running) {
        snprintf(why, n, "shutting down");
        return 0;
    }
    if (!atomic_load(&svc->consumer_ready)) {
        snprintf(why, n, "not consuming (starting, or PostgreSQL unavailable)");
        return 0;
    }
    if (svc->relay && !outbox_relay_healthy(svc->relay)) {
        snprintf(why, n, "outbox relay cannot reach PostgreSQL or Kafka");
        return 0;
    }
    return 1;
}

int service_start(service_t *svc)
{
    char errstr[512];
    svc->pg = pg_new(svc->pg_conninfo);
    LOG_INFO("connecting to PostgreSQL");
    if (pg_connect(svc->pg, svc->pg_wait_ms, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("%s (is PostgreSQL running? start it with scripts/infra.sh up, or set "
                  "KESU_PG)",
                  errstr);
        return -1;
    }
    svc->producer = kafka_producer_new(&svc->cfg, errstr, sizeof(errstr));
    if (!svc->producer) {
        LOG_ERROR("cannot create the Kafka producer: %s", errstr);
        return -1;
    }
    svc->relay = outbox_relay_new(svc->pg_conninfo, svc->name, svc->producer, svc->relay_batch,
                                  svc->relay_idle_ms, errstr, sizeof(errstr));
    if (!svc->relay || outbox_relay_start(svc->relay) != 0) {
        LOG_ERROR("cannot start the outbox relay: %s", errstr);
        return -1;
    }
    if (svc->ops_listen && *svc->ops_listen) {
        svc->ops = http_ops_start(svc->ops_listen, service_ready, svc, errstr, sizeof(errstr));
        if (!svc->ops) {
            LOG_ERROR("cannot start the ops server on %s: %s", svc->ops_listen, errstr);
            return -1;
        }
    }
    LOG_INFO("started (ops %s)", svc->ops_listen && *svc->ops_listen ? svc->ops_listen : "off");
    return 0;
}

static void service_after_commit(void *opaque)
{
    service_wake_relay(opaque);
}

int service_consume(service_t *svc, const char *const *topics, kc_handler_fn handler,
                    kc_wants_fn wants, kc_tick_fn tick, int tick_ms, void *opaque)
{
    char errstr[512], group[128];
    if (svc->group && *svc->group)
        snprintf(group, sizeof(group), "%s", svc->group);
    else
        snprintf(group, sizeof(group), "kesu-%s", svc->name);
    kafka_consumer_opts_t o = {
        .service = svc->name,
        .group = group,
        .topics = topics,
        .batch_max = svc->batch_max,
        .batch_ms = svc->batch_ms,
        .handler = handler,
        .wants = wants,
        .tick = tick,
        .tick_ms = tick_ms > 0 ? tick_ms : 1000,
        .batch = svc->batch,
        .inbox_retention_days = svc->inbox_retention_days,
        .opaque = opaque,
        .after_commit = service_after_commit,
        .after_commit_arg = svc,
        .run = &service_running,
        .ready = &svc->consumer_ready,
    };
    if (kafka_consumer_run(&svc->cfg, svc->pg, &o, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("consumer failed: %s", errstr);
        return -1;
    }
    return 0;
}

void service_wake_relay(service_t *svc)
{
    outbox_relay_wake(svc->relay);
}

int service_stop(service_t *svc)
{
    int code = 0;
    service_running = 0;
    atomic_store(&svc->consumer_ready, 0);
    if (svc->relay) {
        int64_t left = outbox_relay_stop(svc->relay, 10000);
        svc->relay = NULL;
        if (left > 0) {
            LOG_WARN("%lld outbox rows not yet published; they stay in PostgreSQL and go out "
                     "on the next start",
                     (long long)left);
        }
    }
    if (svc->producer) {
        if (kafka_producer_close(svc->producer, 10000) > 0)
            code = 1;
        svc->producer = NULL;
    }
    if (svc->ops) {
        http_ops_stop(svc->ops);
        svc->ops = NULL;
    }
    pg_destroy(svc->pg);
    svc->pg = NULL;
    LOG_INFO("stopped");
    config_free(&svc->cfg);
    return code;
}
