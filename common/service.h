/*
 * service: the runtime every Kesu binary shares — settings, logging,
 * signals, the PostgreSQL connection, the idempotent producer and its
 * outbox relay thread, the ops HTTP server (/healthz, /readyz, /metrics),
 * and the consumer loop. A service's main.c is: service_init, its own
 * setup, service_consume (or its HTTP loop), service_stop.
 */
#ifndef KESU_SERVICE_H
#define KESU_SERVICE_H

#include <signal.h>
#include <stdatomic.h>

#include "config.h"
#include "http.h"
#include "kafka.h"
#include "outbox.h"
#include "pg.h"

typedef struct service {
    const char *name;       /**< "classifier"; the outbox producer and log service name */
    config_t cfg;           /**< effective settings */
    /* common settings (owned by cfg) */
    char *pg_conninfo;      /**< libpq connection string */
    char *ops_listen;       /**< host:port of the ops server, "" disables */
    char *log_level;        /**< error|warn|info|debug */
    char *group;            /**< consumer group id (default kesu-<name>) */
    char *topics_prefix;    /**< prefix of every topic name, "" in production */
    int pg_wait_ms;         /**< how long to wait for PostgreSQL at start */
    int batch_max;          /**< consumer batch size */
    int batch_ms;           /**< consumer batch wait */
    int relay_batch;        /**< outbox rows per relay pass */
    int relay_idle_ms;      /**< relay idle poll */
    int inbox_retention_days; /**< consumer inbox rows kept this long (0: for ever) */
    kc_batch_fn batch;      /**< the stage's per-batch step (kc_batch_fn), NULL for most */
    /* runtime */
    pg_t *pg;               /**< the main thread's connection */
    rd_kafka_t *producer;   /**< shared by the relay; thread-safe */
    outbox_relay_t *relay;  /**< publishes this service's outbox rows */
    http_ops_t *ops;        /**< ops server thread */
    atomic_int consumer_ready; /**< consumer loop healthy (1 for HTTP-only services) */
} service_t;

/** @brief 1 until SIGTERM/SIGINT; a second signal exits at once. */
extern volatile sig_atomic_t service_running;

/**
 * @brief Parse settings (common table + extra), set up logging and signals.
 * @returns 0 go on, 1 help/print-config shown (exit 0), -1 bad settings (printed).
 */
int service_init(service_t *svc, const char *name, const char *usage, const char *ops_default,
                 const config_key_t *extra, int argc, char **argv);

/**
 * @brief Connect PostgreSQL (waiting up to pg_wait_ms), create the producer,
 *        start the relay and the ops server. Errors are fatal at start-up.
 * @returns 0 or -1 (message logged).
 */
int service_start(service_t *svc);

/** @brief Run the consumer loop on topics until a signal. @returns 0 or -1. */
int service_consume(service_t *svc, const char *const *topics, kc_handler_fn handler,
                    kc_wants_fn wants, kc_tick_fn tick, int tick_ms, void *opaque);

/** @brief Wake the relay (after a commit that wrote outbox rows). */
void service_wake_relay(service_t *svc);

/**
 * @brief Orderly shutdown: relay drain, producer flush, ops stop, PQfinish.
 * @returns the process exit code (0, or 1 if messages were left undelivered).
 */
int service_stop(service_t *svc);

#endif
