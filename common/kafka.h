/*
 * kafka: the one producer setup and the one consumer loop.
 *
 * Producer: idempotent (acks=all), lz4, a few ms linger; kafka_produce_batch
 * waits for every delivery report, so the caller knows exactly which
 * messages the broker has.
 *
 * Consumer loop: takes up to batch_max messages (or batch_ms), applies them
 * in ONE PostgreSQL transaction with a savepoint per message, records each
 * event in the inbox (a redelivery is a no-op), sends poison messages to
 * kesu.dlq.v1 through the outbox in the same transaction, commits, and only
 * then stores the offsets (enable.auto.offset.store=false). A transient
 * failure (database down) rolls back, pauses the partitions and retries the
 * same batch with backoff; readiness is false meanwhile. A rebalance drops
 * a held batch: its offsets were never stored, so it is redelivered.
 */
#ifndef KESU_KAFKA_H
#define KESU_KAFKA_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "pg.h"
#include "proto.h"

/*
 * Topic names. Each macro is the topic's name with the process-wide prefix
 * (setting topics.prefix, env KESU_TOPICS_PREFIX, default none) so that test
 * runs and developers can share one broker without seeing each other's events.
 */
#define KAFKA_TOPIC_INTAKE kafka_topic("kesu.intake.v1")
#define KAFKA_TOPIC_CLASSIFIER kafka_topic("kesu.classifier.v1")
#define KAFKA_TOPIC_DISPATCHER kafka_topic("kesu.dispatcher.v1")
#define KAFKA_TOPIC_SLA kafka_topic("kesu.sla.v1")
#define KAFKA_TOPIC_NOTIFIER kafka_topic("kesu.notifier.v1")
#define KAFKA_TOPIC_PUBLIC kafka_topic("kesu.public.v1")
#define KAFKA_TOPIC_DLQ kafka_topic("kesu.dlq.v1")
#define KAFKA_TOPIC_COUNT 7

/* librdkafka's fetch.wait.max.ms for every consumer (decision 0029). The broker
 * answers a fetch as soon as a message arrives (fetch.min.bytes is 1), so the
 * wait only bounds an idle poll: at 10 ms an idle stack's fetches cost the
 * broker a quarter of a core. */
#define KAFKA_FETCH_WAIT_MS "500"

/** @brief Set the topic prefix; call once at start-up, before any thread uses topics. */
void kafka_topics_set_prefix(const char *prefix);

/** @brief The prefixed name of a Kesu topic (base name unchanged if not a Kesu topic). */
const char *kafka_topic(const char *base);

/** @brief The i-th Kesu topic (prefixed), i < KAFKA_TOPIC_COUNT; NULL past the end. */
const char *kafka_topic_at(int i);

/** One message of a produce batch. */
typedef struct kafka_msg {
    const char *topic;     /**< borrowed */
    const char *key;       /**< borrowed, may be NULL */
    const void *payload;   /**< borrowed */
    size_t len;            /**< payload length */
    json_t *headers;       /**< borrowed object of string values, may be NULL */
    rd_kafka_resp_err_t err; /**< set from the delivery report */
    int done;              /**< 1 once the delivery report arrived */
} kafka_msg_t;

/**
 * @brief A librdkafka conf with the kafka.* pass-through settings of cfg applied.
 * @returns the conf (caller owns) or NULL with errstr.
 */
rd_kafka_conf_t *kafka_conf_new(const config_t *cfg, char *errstr, size_t errstr_size);

/** @brief An idempotent producer (acks=all, lz4, linger.ms=5 unless overridden). */
rd_kafka_t *kafka_producer_new(const config_t *cfg, char *errstr, size_t errstr_size);

/**
 * @brief Look up the Kesu topics' metadata once, so that the first message to
 *        each is not held back: librdkafka looks an unknown topic up only
 *        about once a second, which made a stage's first event after start
 *        ~1 s late (decision 0024). Gives up at timeout_ms (Kafka down: the
 *        first messages simply wait as before).
 * @returns how many of the KAFKA_TOPIC_COUNT topics were found.
 */
int kafka_producer_warm(rd_kafka_t *rk, int timeout_ms);

/**
 * @brief Produce n messages and wait for all their delivery reports (or purge
 *        them after timeout_ms and wait for the purge reports).
 * @returns how many were delivered; each msgs[i].err tells.
 */
size_t kafka_produce_batch(rd_kafka_t *rk, kafka_msg_t *msgs, size_t n, int timeout_ms);

/** @brief Flush for up to timeout_ms and destroy. @returns messages left undelivered. */
int kafka_producer_close(rd_kafka_t *rk, int timeout_ms);

/** What a handler decided about one message. */
typedef enum {
    KC_OK = 0,     /**< applied */
    KC_SKIP = 1,   /**< not for this consumer / already reflected: nothing to do */
    KC_POISON = 2, /**< can never be applied: to the DLQ with errstr as reason */
    KC_RETRY = 3,  /**< transient (database): roll back the batch and retry later */
} kc_result_t;

typedef struct kc_msg {
    const rd_kafka_message_t *rkm;   /**< the raw message */
    const Kesu__V1__Envelope *env;   /**< decoded and validated */
    const char *topic;               /**< its topic */
} kc_msg_t;

/** Apply one event inside the open transaction (never COMMIT/ROLLBACK here). */
typedef kc_result_t (*kc_handler_fn)(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                                     size_t errstr_size);

/**
 * Whether the handler acts on an event at all. An event it does not want is
 * neither claimed in the inbox nor handed to the handler, and a batch of only
 * such events opens no transaction: a stage reads whole topics but most of
 * their event types are not its business (the SLA monitor and the
 * notifier's NotificationSent). It must be exact: for every event it
 * rejects, the handler would return KC_SKIP without touching the database
 * (tests/unit/test_consumer_wants.c checks each service). NULL: every event.
 */
typedef int (*kc_wants_fn)(void *opaque, const Kesu__V1__Envelope *env);

/** Housekeeping between polls (timer scans, retries); own transactions allowed. */
typedef void (*kc_tick_fn)(void *opaque, pg_t *pg);

/** Where a batch attempt is, for kc_batch_fn. */
typedef enum {
    KC_BATCH_BEGIN = 0,         /**< a fast attempt opens (one inbox claim, no savepoints): a
                                     stage may gather its writes and make them at END */
    KC_BATCH_END = 1,           /**< every event applied, COMMIT next */
    KC_BATCH_BEGIN_CAREFUL = 2, /**< a careful re-run opens (a savepoint per event): each
                                     handler writes its own rows, so one can be undone alone */
    KC_BATCH_CLAIMED = 3,       /**< a fast attempt's events are claimed, no handler has run:
                                     msgs are the events new to this consumer, in batch order,
                                     for work a stage does for all of them at once */
} kc_batch_phase_t;

/**
 * Called inside each attempt at a batch's transaction (never COMMIT/ROLLBACK
 * here): at KC_BATCH_BEGIN forget what the last attempt gathered, at
 * KC_BATCH_CLAIMED (fast attempts only, msgs/n set; NULL/0 at the other
 * phases) do for the batch's new events in one statement what their handlers
 * would each do (the archiver publishes the events that follow on), keeping
 * what it did for the handlers to find, at
 * KC_BATCH_END write what this one did — what a stage keeps per batch rather
 * than per event. The dispatcher writes its handlers' loads there, in one
 * lock order for every instance (decision 0023); the notifier its queued
 * notices, in one statement. A fast attempt in which a handler refuses an
 * event is undone whole; a stage that gathers in a careful re-run too must
 * drop what it gathered for an event it does not return KC_OK or KC_SKIP
 * for (the dispatcher's undo journal). At END,
 * KC_RETRY means "undo and run the batch again at once" (at most
 * KC_RERUN_MAX times, then a transient failure); KC_POISON after a fast
 * attempt re-runs the batch carefully (the event the database refuses then
 * goes to the DLQ alone), after a careful one it undoes the batch like a
 * failed transaction, as anything else does; KC_BATCH_CLAIMED answers the
 * same way. Anything but KC_OK at the BEGIN phases fails the attempt. NULL:
 * no per-batch step.
 */
typedef kc_result_t (*kc_batch_fn)(void *opaque, pg_t *pg, kc_batch_phase_t phase,
                                   const kc_msg_t *msgs, size_t n, char *errstr,
                                   size_t errstr_size);

/**
 * @brief The case rows of a batch's events in one statement, for a stage's
 *        KC_BATCH_CLAIMED: stmt gets the events' case ids as $1 (uuid[]) and
 *        returns the id as text in its first column (SELECT id::text, ... FROM
 *        cases WHERE id = ANY ($1::uuid[]) ORDER BY id FOR NO KEY UPDATE: the
 *        rows locked in one order by every instance). Each handler then takes
 *        its case's row (pg_keyed_take) or, for a later event of the same
 *        case, reads its own. Rows with the columns version, event_seq,
 *        case_no and trace_id too are made known to casestore
 *        (casestore_defer_know): their changes with a bump_many wait for
 *        the batch's one statement (decision 0038).
 * @returns KC_OK, KC_RETRY / KC_POISON (transient or not, errstr).
 */
kc_result_t kc_cases_read(pg_t *pg, const pg_stmt_t *stmt, const kc_msg_t *msgs, size_t n,
                          pg_keyed_t *out, char *errstr, size_t errstr_size);

/**
 * @brief kc_cases_read at KC_BATCH_CLAIMED, the rows forgotten at every other
 *        phase: the whole kc_batch_fn of a stage that keeps nothing else per batch.
 * @returns as kc_cases_read; KC_OK at the other phases.
 */
kc_result_t kc_cases_step(pg_t *pg, kc_batch_phase_t phase, const pg_stmt_t *stmt,
                          const kc_msg_t *msgs, size_t n, pg_keyed_t *out, char *errstr,
                          size_t errstr_size);

/**
 * @brief An event's case row: taken from the rows kc_cases_read locked at the
 *        batch's claim, or locked and read now with `one` ($1 the case id, the
 *        same columns) — a later event of the same case, a careful re-run.
 * @returns the result that holds it, the row in *row (no rows: no such case),
 *          or NULL (errstr, pg's failure); *own is the result the caller
 *          PQclears (NULL when the row was claimed).
 */
const PGresult *kc_case_row(pg_t *pg, pg_keyed_t *claimed, const pg_stmt_t *one,
                            const char *case_id, PGresult **own, int *row, char *errstr,
                            size_t errstr_size);

/** How often a batch is run again at once for kc_batch_fn's KC_RETRY. */
#define KC_RERUN_MAX 4

typedef struct kafka_consumer_opts {
    const char *service;          /**< producer name for DLQ rows, log context */
    const char *group;            /**< consumer group id, also the inbox consumer name */
    const char *const *topics;    /**< NULL-terminated */
    int batch_max;                /**< messages per transaction */
    int batch_ms;                 /**< max wait to fill a batch */
    kc_handler_fn handler;        /**< required */
    kc_wants_fn wants;            /**< the events handler acts on; NULL: all */
    kc_tick_fn tick;              /**< may be NULL */
    int tick_ms;                  /**< tick period */
    kc_batch_fn batch;            /**< around each batch attempt; may be NULL */
    int inbox_retention_days;     /**< purge older inbox rows (kc_inbox_purge); 0 keeps them */
    void *opaque;                 /**< passed to handler and tick */
    void (*after_commit)(void *arg); /**< after a batch that wrote outbox rows: wake the relay; may be NULL */
    void *after_commit_arg;       /**< its argument */
    volatile sig_atomic_t *run;   /**< loop while *run */
    atomic_int *ready;            /**< set to 1/0 as the loop is healthy/retrying; may be NULL */
} kafka_consumer_opts_t;

/** Per-message outcome of kc_apply_batch. */
typedef enum {
    KC_APPLIED = 0,
    KC_DUPLICATE = 1,
    KC_SKIPPED = 2,
    KC_DEAD = 3,
    KC_IGNORED = 4, /**< not wanted (kc_wants_fn): no inbox row, no handler */
} kc_outcome_t;

/**
 * @brief Apply a batch in one transaction (the heart of the loop, callable
 *        without a broker). outcomes[i] receives what happened to msgs[i].
 * @returns 0 committed, -1 rolled back (retry later; errstr says why).
 */
int kc_apply_batch(pg_t *pg, const kafka_consumer_opts_t *o, rd_kafka_message_t **msgs, size_t n,
                   kc_outcome_t *outcomes, char *errstr, size_t errstr_size);

/** Inbox rows deleted per statement, and statements per kc_inbox_purge call. */
#define KC_PURGE_CHUNK 5000
#define KC_PURGE_ROUNDS 4

/**
 * @brief Delete the group's inbox rows whose event and claim are both older
 *        than retention_days (event ids are time-ordered, so the event's age
 *        is a range of the inbox key: no extra index), at most
 *        KC_PURGE_CHUNK * KC_PURGE_ROUNDS rows, each chunk its own short
 *        transaction, and record the horizon in inbox_purged for `kesuctl
 *        verify`. The loop calls it every KC_PURGE_EVERY_MS. The retention
 *        must outlast the topics' (a redelivery or replay older than it would
 *        be applied again). @returns rows deleted, or -1 (errstr).
 */
long kc_inbox_purge(pg_t *pg, const char *group, int retention_days, char *errstr,
                    size_t errstr_size);

#define KC_PURGE_EVERY_MS 60000

/**
 * @brief Run the consumer loop until *o->run becomes 0, then close the
 *        consumer (committing stored offsets).
 * @returns 0 on clean shutdown, -1 on a fatal setup error.
 */
int kafka_consumer_run(const config_t *cfg, pg_t *pg, const kafka_consumer_opts_t *o,
                       char *errstr, size_t errstr_size);

#endif
