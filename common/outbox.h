/*
 * outbox: the transactional outbox and its relay.
 *
 * outbox_append() writes a row in the caller's open transaction, so the
 * message exists exactly when the state change it describes commits.
 * The relay of each service (producer = service name) repeatedly locks the
 * oldest unsent rows with FOR UPDATE SKIP LOCKED, publishes them with the
 * idempotent producer, waits for the delivery reports, and deletes the
 * delivered rows in the same transaction. A crashed relay's locks vanish
 * with its connection, so its rows are simply taken by the next pass of any
 * instance: the sweep and the relay are one mechanism (see
 * docs/decisions/0002-outbox-relay.md).
 */
#ifndef KESU_OUTBOX_H
#define KESU_OUTBOX_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "pg.h"
#include "proto.h"
#include "util.h"

struct kafka_msg;

/**
 * @brief Add a message to the outbox inside the caller's transaction.
 * @param headers borrowed JSON object of string values, may be NULL
 * @returns 0 or -1 with errstr (pg->sqlstate set).
 */
int outbox_append(pg_t *pg, const char *producer, const char *topic, const char *key,
                  const void *payload, size_t len, json_t *headers, char *errstr,
                  size_t errstr_size);

/**
 * @brief An envelope as an outbox row carries it: packed (buf, len) and its
 *        headers as JSON text (hjson); both to free(). For statements that
 *        write the outbox row themselves (the archiver's fast path).
 * @returns 0, or -1 (out of memory, errstr).
 */
int outbox_env_encode(const Kesu__V1__Envelope *env, uint8_t **buf, size_t *len, char **hjson,
                      char *errstr, size_t errstr_size);

/** @brief Pack an envelope and append it, keyed by case id, with its headers. */
int outbox_append_env(pg_t *pg, const char *producer, const char *topic,
                      const Kesu__V1__Envelope *env, char *errstr, size_t errstr_size);

/**
 * @brief Relay bookkeeping: split row ids by delivery result into two
 *        PostgreSQL array literals ("{1,2}") — delivered rows are deleted,
 *        failed ones stay for the next pass. Undelivered (done == 0) counts as failed.
 */
void outbox_id_lists(const char *const *ids, const struct kafka_msg *msgs, size_t n,
                     strbuf_t *delivered, strbuf_t *failed);

typedef struct outbox_relay outbox_relay_t;

/**
 * @brief A relay for one producer name. rk is borrowed (must outlive the relay).
 * @returns the relay or NULL with errstr (cannot connect to PostgreSQL).
 */
outbox_relay_t *outbox_relay_new(const char *conninfo, const char *producer, rd_kafka_t *rk,
                                 int batch_max, int idle_ms, char *errstr, size_t errstr_size);

/**
 * @brief How often a pass sweeps from the start of the producer's rows
 * (default 15000 ms; and after every failed pass). Other passes start after
 * the low-water mark (decision 0022). Before the first pass.
 */
void outbox_relay_set_full_sweep(outbox_relay_t *r, int full_ms);

/** @brief The low-water mark: the id after which the next ordinary pass starts. */
int64_t outbox_relay_mark(const outbox_relay_t *r);

/**
 * @brief How long the mark has waited for the transactions older than its
 *        next step to end (0 when it moved with the last pass). A transaction
 *        left open anywhere in the database makes this grow
 *        (`kesu_outbox_mark_wait_seconds`): sweeps then walk more dead index
 *        entries, and vacuum is held back too. @returns milliseconds.
 */
int64_t outbox_relay_mark_wait_ms(const outbox_relay_t *r);

/** @brief One pass. @returns rows published (and deleted), or -1 with errstr. */
int outbox_relay_once(outbox_relay_t *r, char *errstr, size_t errstr_size);

/** @brief Start the relay thread. @returns 0 or -1. */
int outbox_relay_start(outbox_relay_t *r);

/** @brief Wake the thread now (after a commit that added rows). Thread-safe. */
void outbox_relay_wake(outbox_relay_t *r);

/** @brief 1 while the last pass could reach both PostgreSQL and Kafka. */
int outbox_relay_healthy(outbox_relay_t *r);

/**
 * @brief Stop the thread after a final drain of up to drain_ms, then free.
 * @returns rows of this producer still in the outbox (0 = all delivered), -1 unknown.
 */
int64_t outbox_relay_stop(outbox_relay_t *r, int drain_ms);

/**
 * @brief Count n outbox rows written in the open transaction by a statement
 *        of the caller's own (the archiver's one-statement publish, casestore's
 *        history writes): after the commit the consumer loop wakes the relay
 *        only when the batch wrote any (pg->outbox_rows). outbox_append and
 *        outbox_append_env count theirs.
 */
static inline void outbox_wrote(pg_t *pg, int n)
{
    pg->outbox_rows += n;
}

#endif
