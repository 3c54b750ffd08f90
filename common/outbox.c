/*
 * outbox: append + relay. See outbox.h for the model.
 */
#include "outbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

static const pg_stmt_t outbox_insert = {
    "outbox_insert",
    "INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "VALUES ($1, $2, $3, $4::bytea, $5::jsonb)",
    5};

/* The sweep starts after $3, the relay's low-water mark (outbox_relay_advance).
 * One relay per producer at a time keeps each case's events in commit order
 * on its topic (decision 0001): the rows come only with the producer's
 * transaction-level advisory lock (taken once, before the scan); an instance
 * that does not get it finds nothing this pass; rows another session holds
 * are skipped, not waited for (decision 0021). The statement's snapshot (the
 * one the rows are seen in) comes with the rows. Every column is text but the
 * payload, and the result is asked for in binary: the payload arrives as its
 * bytes, not hex-encoded by the server and decoded here (decision 0036). */
static const pg_stmt_t outbox_lock = {
    "outbox_lock",
    "SELECT o.id::text AS id, o.topic, o.msg_key, o.payload, o.headers::text AS headers, "
    "(SELECT pg_snapshot_xmin(pg_current_snapshot()))::text AS snap_xmin, "
    "(SELECT pg_snapshot_xmax(pg_current_snapshot()))::text AS snap_xmax "
    "FROM outbox o WHERE o.producer = $1 AND o.id > $3::bigint "
    "AND (SELECT pg_try_advisory_xact_lock(hashtext('kesu-outbox:' || $1))) "
    /* o.id, the number: a bare `id` would name the text output column */
    "ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED",
    3};

/* a full sweep (from the start of the producer's rows) this often, and after
 * any failed pass: rows another session held locked when a pass skipped them */
#define OUTBOX_FULL_SWEEP_MS 15000

/* by the primary key (producer, id): the outbox's one index (migration 0019) */
static const pg_stmt_t outbox_delete = {
    "outbox_delete", "DELETE FROM outbox WHERE producer = $2 AND id = ANY($1::bigint[])", 2};

static const pg_stmt_t outbox_failed = {
    "outbox_failed",
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 "
    "WHERE producer = $3 AND id = ANY($1::bigint[])",
    3};

static const pg_stmt_t outbox_count = {
    "outbox_count", "SELECT count(*) AS n FROM outbox WHERE producer = $1", 1};



/* the row itself; hjson NULL: no headers */
static int outbox_insert_row(pg_t *pg, const char *producer, const char *topic, const char *key,
                             const void *payload, size_t len, const char *hjson, char *errstr,
                             size_t errstr_size)
{
    const char *values[5] = {producer, topic, key ? key : "", payload, hjson ? hjson : "{}"};
    int lengths[5] = {0, 0, 0, (int)len, 0};
    int formats[5] = {0, 0, 0, 1, 0};
    PGresult *res = pg_exec_stmt_bin(pg, &outbox_insert, values, lengths, formats, 0,
                                     PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    outbox_wrote(pg, 1);
    return 0;
}

int outbox_append(pg_t *pg, const char *producer, const char *topic, const char *key,
                  const void *payload, size_t len, json_t *headers, char *errstr,
                  size_t errstr_size)
{
    char *hjson = headers ? json_dumps(headers, JSON_COMPACT) : NULL;
    int rc = outbox_insert_row(pg, producer, topic, key, payload, len, hjson, errstr, errstr_size);
    free(hjson);
    return rc;
}

int outbox_env_encode(const Kesu__V1__Envelope *env, uint8_t **buf, size_t *len, char **hjson,
                      char *errstr, size_t errstr_size)
{
    json_t *h = proto_env_headers(env);
    *buf = proto_env_pack(env, len);
    *hjson = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (!*buf || !*hjson) {
        free(*buf);
        free(*hjson);
        *buf = NULL;
        *hjson = NULL;
        snprintf(errstr, errstr_size, "out of memory packing an envelope");
        return -1;
    }
    return 0;
}

int outbox_append_env(pg_t *pg, const char *producer, const char *topic,
                      const Kesu__V1__Envelope *env, char *errstr, size_t errstr_size)
{
    size_t len;
    uint8_t *buf;
    char *hjson;
    if (outbox_env_encode(env, &buf, &len, &hjson, errstr, errstr_size) != 0)
        return -1;
    int rc = outbox_insert_row(pg, producer, topic, env->case_id, buf, len, hjson, errstr,
                               errstr_size);
    free(hjson);
    free(buf);
    return rc;
}

struct outbox_relay {
    pg_t *pg;                  /**< the relay thread's own connection */
    char *producer;            /**< whose rows it publishes */
    rd_kafka_t *rk;            /**< borrowed idempotent producer */
    int batch_max;             /**< rows per pass */
    int idle_ms;               /**< poll period when idle */
    pthread_t thread;          /**< valid while started */
    int started;               /**< thread running */
    atomic_int stop;           /**< ask the thread to finish */
    atomic_int healthy;        /**< last pass reached PG and Kafka */
    pthread_mutex_t lock;      /**< guards wake */
    pthread_cond_t cond;       /**< signalled by outbox_relay_wake */
    int wake;                  /**< pending wake-up */
    metrics_counter_t *m_out;  /**< published rows */
    metrics_counter_t *m_fail; /**< failed deliveries */
    metrics_gauge_t *m_backlog; /**< rows waiting */
    int64_t seen;              /**< highest id seen by a pass */
    int64_t mark;              /**< low-water mark: sweeps start after it */
    int64_t pend_seen;         /**< the mark to be, once ... */
    uint64_t pend_xmax;        /**< ... every transaction below this xid has ended */
    int pend;                  /**< pend_seen / pend_xmax are set */
    int64_t pend_since;        /**< when they were (monotonic ms) */
    metrics_gauge_t *m_mark_wait; /**< how long the mark has waited for older transactions */
    int64_t full_ms;           /**< when the last full sweep began */
    int full_sweep_ms;         /**< OUTBOX_FULL_SWEEP_MS unless set */
};

void outbox_relay_set_full_sweep(outbox_relay_t *r, int full_ms)
{
    r->full_sweep_ms = full_ms;
}

int64_t outbox_relay_mark(const outbox_relay_t *r)
{
    return r->mark;
}

/* the id the next pass starts after (0: a full sweep) */
static int64_t outbox_relay_from(outbox_relay_t *r)
{
    int64_t now = util_mono_ms();
    if (now - r->full_ms >= r->full_sweep_ms) {
        r->full_ms = now;
        return 0;
    }
    return r->mark;
}

/*
 * The low-water mark (decision 0022). Published rows are deleted, but their
 * index entries stay until vacuum, so a sweep from the start of the range
 * walks all of them; the sweep starts after the mark instead. The mark may
 * only pass ids whose transactions have all ended: a row committed later
 * below it would be published late, after later rows of its case.
 * An outbox row takes its id after its transaction took its xid (migration
 * 0016), so every row with an id up to `seen` belongs to a transaction older
 * than the xmax of the snapshot that saw `seen`. Once a later pass's snapshot
 * has an xmin at or above that xmax, those transactions have all ended, each
 * row of theirs that committed was visible to that pass, and the pass visited
 * every visible row above the old mark (up to `last` when its batch was
 * full): the mark moves there. Rows skipped because another session held
 * them locked are left to the full sweep.
 */
static void outbox_relay_advance(outbox_relay_t *r, uint64_t xmin, uint64_t xmax, int64_t last,
                                 int full)
{
    if (r->pend && xmin >= r->pend_xmax) {
        int64_t to = full && last < r->pend_seen ? last : r->pend_seen;
        if (to > r->mark)
            r->mark = to;
        r->pend = 0;
    }
    if (!r->pend) {
        r->pend_seen = r->seen;
        r->pend_xmax = xmax;
        r->pend = 1;
        r->pend_since = util_mono_ms();
    }
}

int64_t outbox_relay_mark_wait_ms(const outbox_relay_t *r)
{
    return r->pend ? util_mono_ms() - r->pend_since : 0;
}

outbox_relay_t *outbox_relay_new(const char *conninfo, const char *producer, rd_kafka_t *rk,
                                 int batch_max, int idle_ms, char *errstr, size_t errstr_size)
{
    outbox_relay_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->pg = pg_new(conninfo);
    pg_set_session(r->pg, PG_SESSION_QUEUE);
    r->producer = strdup(producer);
    r->rk = rk;
    r->batch_max = batch_max > 0 ? batch_max : 500;
    r->idle_ms = idle_ms > 0 ? idle_ms : 20;
    r->full_sweep_ms = OUTBOX_FULL_SWEEP_MS;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    char labels[128];
    snprintf(labels, sizeof(labels), "producer=\"%s\"", producer);
    r->m_out = metrics_counter("kesu_outbox_published_total", "Outbox rows published", labels);
    r->m_fail = metrics_counter("kesu_outbox_delivery_failures_total",
                                "Outbox rows whose delivery failed (retried)", labels);
    r->m_backlog =
        metrics_gauge("kesu_outbox_backlog", "Outbox rows waiting to be published", labels);
    r->m_mark_wait = metrics_gauge("kesu_outbox_mark_wait_seconds",
                                   "How long the relay's low-water mark has waited for older "
                                   "transactions to end (a long one holds it)",
                                   labels);
    if (pg_connect(r->pg, 0, errstr, errstr_size) != 0) {
        pg_destroy(r->pg);
        free(r->producer);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
        return NULL;
    }
    atomic_store(&r->healthy, 1);
    return r;
}

void outbox_id_lists(const char *const *ids, const kafka_msg_t *msgs, size_t n,
                     strbuf_t *delivered, strbuf_t *failed)
{
    int first_ok = 1, first_bad = 1;
    strbuf_append(delivered, "{", 1);
    strbuf_append(failed, "{", 1);
    for (size_t i = 0; i < n; i++) {
        int ok = msgs[i].done && msgs[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
        strbuf_t *b = ok ? delivered : failed;
        int *first = ok ? &first_ok : &first_bad;
        if (!*first)
            strbuf_append(b, ",", 1);
        strbuf_append(b, ids[i], strlen(ids[i]));
        *first = 0;
    }
    strbuf_append(delivered, "}", 1);
    strbuf_append(failed, "}", 1);
}

int outbox_relay_once(outbox_relay_t *r, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    kafka_msg_t *msgs = NULL;
    json_t **headers = NULL;
    int n = 0, rc = -1;
    char limit[16];
    size_t delivered;

    if (pg_ensure(r->pg, errstr, errstr_size) != 0)
        return -1;
    if (pg_begin(r->pg, errstr, errstr_size) != 0)
        return -1;
    snprintf(limit, sizeof(limit), "%d", r->batch_max);
    char after[24];
    snprintf(after, sizeof(after), "%lld", (long long)outbox_relay_from(r));
    const char *lv[3] = {r->producer, limit, after};
    res = pg_exec_stmt_bin(r->pg, &outbox_lock, lv, NULL, NULL, 1, PGRES_TUPLES_OK, errstr,
                           errstr_size);
    if (!res)
        goto out;
    n = PQntuples(res);
    if (n > 0) {
        int64_t last = strtoll(pg_get(res, n - 1, "id"), NULL, 10);
        if (last > r->seen)
            r->seen = last;
        outbox_relay_advance(r, strtoull(pg_get(res, 0, "snap_xmin"), NULL, 10),
                             strtoull(pg_get(res, 0, "snap_xmax"), NULL, 10), last,
                             n == r->batch_max);
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    msgs = calloc((size_t)n, sizeof(*msgs));
    headers = calloc((size_t)n, sizeof(*headers));
    if (!msgs || !headers) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    int pcol = PQfnumber(res, "payload");
    for (int i = 0; i < n; i++) {
        /* binary result: text columns are their bytes (libpq ends each with a NUL) */
        headers[i] = json_loads(pg_get(res, i, "headers"), 0, NULL);
        msgs[i].topic = pg_get(res, i, "topic");
        msgs[i].key = pg_get(res, i, "msg_key");
        if (!msgs[i].key[0])
            msgs[i].key = NULL;
        msgs[i].payload = PQgetvalue(res, i, pcol);
        msgs[i].len = (size_t)PQgetlength(res, i, pcol);
        msgs[i].headers = headers[i];
    }
    delivered = kafka_produce_batch(r->rk, msgs, (size_t)n, 20000);
    {
        strbuf_t ok_ids, bad_ids;
        const char **ids = calloc((size_t)n, sizeof(*ids));
        PGresult *d = NULL, *f = NULL;
        int dbfail = 0;
        if (!ids) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        for (int i = 0; i < n; i++)
            ids[i] = pg_get(res, i, "id");
        strbuf_init(&ok_ids);
        strbuf_init(&bad_ids);
        outbox_id_lists(ids, msgs, (size_t)n, &ok_ids, &bad_ids);
        free(ids);
        if (delivered) {
            const char *dv[2] = {ok_ids.s, r->producer};
            d = pg_exec_stmt(r->pg, &outbox_delete, dv, PGRES_COMMAND_OK, errstr, errstr_size);
            dbfail |= !d;
        }
        if (!dbfail && delivered < (size_t)n) {
            const char *why = "delivery failed";
            for (int i = 0; i < n; i++)
                if (msgs[i].err) {
                    why = rd_kafka_err2str(msgs[i].err);
                    break;
                }
            const char *fv[3] = {bad_ids.s, why, r->producer};
            f = pg_exec_stmt(r->pg, &outbox_failed, fv, PGRES_COMMAND_OK, errstr, errstr_size);
            dbfail |= !f;
            if (f) {
                metrics_counter_add(r->m_fail, (uint64_t)n - delivered);
                LOG_WARN("%zu of %d outbox messages not delivered, will retry: %s",
                         (size_t)n - delivered, n, why);
            }
        }
        PQclear(d);
        PQclear(f);
        strbuf_free(&ok_ids);
        strbuf_free(&bad_ids);
        if (dbfail)
            goto out;
    }
    if (pg_commit(r->pg, errstr, errstr_size) != 0)
        goto out_noroll;
    metrics_counter_add(r->m_out, delivered);
    if (delivered < (size_t)n) {
        snprintf(errstr, errstr_size, "kafka delivery failed for %zu messages",
                 (size_t)n - delivered);
        rc = -1;
    } else {
        rc = (int)delivered;
    }
    goto out_noroll;
out:
    pg_rollback(r->pg);
out_noroll:
    for (int i = 0; headers && i < n; i++)
        json_decref(headers[i]);
    free(headers);
    free(msgs);
    PQclear(res);
    if (rc == 0 && r->pg->in_tx)
        pg_rollback(r->pg);
    if (rc < 0)
        r->full_ms = 0; /* rows left behind: the next pass sweeps them all */
    return rc;
}

static int64_t outbox_backlog(outbox_relay_t *r)
{
    char errstr[256];
    const char *v[1] = {r->producer};
    PGresult *res = pg_exec_stmt(r->pg, &outbox_count, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    int64_t n = -1;
    if (res) {
        n = atoll(pg_get(res, 0, "n"));
        PQclear(res);
    }
    return n;
}

/* the longest poll period while idle polls find nothing */
#define OUTBOX_IDLE_MAX_MS 500

static void *outbox_relay_main(void *arg)
{
    outbox_relay_t *r = arg;
    char errstr[512];
    int delay = r->idle_ms, woke = 1;
    int64_t last_count = 0;
    int found = kafka_producer_warm(r->rk, 3000);
    if (found < KAFKA_TOPIC_COUNT)
        LOG_WARN("%d of %d topics found in Kafka at start (kesuctl topics create?); the first "
                 "messages to the others may be late",
                 found, KAFKA_TOPIC_COUNT);
    while (!atomic_load(&r->stop)) {
        int n = outbox_relay_once(r, errstr, sizeof(errstr));
        if (n < 0) {
            if (atomic_exchange(&r->healthy, 0))
                LOG_WARN("outbox relay failing, will retry: %s", errstr);
            delay = delay * 2 > 2000 ? 2000 : delay * 2;
        } else {
            if (!atomic_exchange(&r->healthy, 1))
                LOG_INFO("outbox relay recovered");
            /* the service wakes us after each commit; the poll is for rows
             * written by others (kesuctl, a crashed pass): while polls find
             * nothing it slows down, to OUTBOX_IDLE_MAX_MS */
            if (n == 0 && !woke)
                delay = delay * 2 > OUTBOX_IDLE_MAX_MS ? OUTBOX_IDLE_MAX_MS : delay * 2;
            else
                delay = r->idle_ms;
        }
        if (util_mono_ms() - last_count > 2000) {
            last_count = util_mono_ms();
            int64_t b = outbox_backlog(r);
            if (b >= 0)
                metrics_gauge_set(r->m_backlog, (double)b);
            metrics_gauge_set(r->m_mark_wait, (double)outbox_relay_mark_wait_ms(r) / 1000.0);
        }
        if (n == r->batch_max)
            continue; /* more waiting: go on at once */
        pthread_mutex_lock(&r->lock);
        if (!r->wake && !atomic_load(&r->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)delay * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        woke = r->wake;
        r->wake = 0;
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

int outbox_relay_start(outbox_relay_t *r)
{
    if (pthread_create(&r->thread, NULL, outbox_relay_main, r) != 0)
        return -1;
    r->started = 1;
    return 0;
}

void outbox_relay_wake(outbox_relay_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->wake = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

int outbox_relay_healthy(outbox_relay_t *r)
{
    return r ? atomic_load(&r->healthy) : 0;
}

int64_t outbox_relay_stop(outbox_relay_t *r, int drain_ms)
{
    char errstr[512];
    int64_t left = -1;
    if (!r)
        return 0;
    if (r->started) {
        atomic_store(&r->stop, 1);
        outbox_relay_wake(r);
        pthread_join(r->thread, NULL);
    }
    /* final drain: everything committed before shutdown goes out now */
    int64_t deadline = util_mono_ms() + drain_ms;
    while (util_mono_ms() < deadline) {
        int n = outbox_relay_once(r, errstr, sizeof(errstr));
        if (n == 0)
            break;
        if (n < 0)
            util_sleep_ms(100);
    }
    left = outbox_backlog(r);
    pg_destroy(r->pg);
    free(r->producer);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
    return left;
}
