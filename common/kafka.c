/*
 * kafka: producer setup, batch produce with delivery reports, and the
 * consumer loop every consuming service runs.
 */
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef KESU_FAULT_INJECTION
#include <unistd.h>
#endif

#include "casestore.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "util.h"

static const char *const kafka_topic_bases[KAFKA_TOPIC_COUNT] = {
    "kesu.intake.v1",   "kesu.classifier.v1", "kesu.dispatcher.v1", "kesu.sla.v1",
    "kesu.notifier.v1", "kesu.public.v1",     "kesu.dlq.v1"};
static char kafka_topic_names[KAFKA_TOPIC_COUNT][160];
static int kafka_topic_ready;

void kafka_topics_set_prefix(const char *prefix)
{
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        snprintf(kafka_topic_names[i], sizeof(kafka_topic_names[i]), "%.64s%s",
                 prefix ? prefix : "", kafka_topic_bases[i]);
    kafka_topic_ready = 1;
}

const char *kafka_topic(const char *base)
{
    if (!kafka_topic_ready) {
        const char *env = getenv("KESU_TOPICS_PREFIX");
        kafka_topics_set_prefix(env);
    }
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        if (strcmp(base, kafka_topic_bases[i]) == 0)
            return kafka_topic_names[i];
    return base;
}

const char *kafka_topic_at(int i)
{
    if (i < 0 || i >= KAFKA_TOPIC_COUNT)
        return NULL;
    return kafka_topic(kafka_topic_bases[i]);
}

#define KC_RETRY_MIN_MS 200
#define KC_RETRY_MAX_MS 10000
#define KC_RETRY_POISON_AFTER 5 /* non-transient handler retries before DLQ */

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        LOG_ERROR("librdkafka %s: %s", fac, buf);
    else if (level <= 5)
        LOG_WARN("librdkafka %s: %s", fac, buf);
    else
        LOG_DEBUG("librdkafka %s: %s", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    LOG_WARN("kafka error %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

rd_kafka_conf_t *kafka_conf_new(const config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    for (size_t i = 0; cfg && i < cfg->kafka_cnt; i++) {
        if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, errstr,
                              errstr_size) != RD_KAFKA_CONF_OK) {
            char tmp[512];
            snprintf(tmp, sizeof(tmp), "kafka.%s: %s", cfg->kafka[i].key, errstr);
            snprintf(errstr, errstr_size, "%s", tmp);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

/* a setting the operator did not give gets our default */
static int conf_default(rd_kafka_conf_t *conf, const config_t *cfg, const char *key,
                        const char *value, char *errstr, size_t errstr_size)
{
    if (cfg && config_kafka_get(cfg, key))
        return 0;
    return rd_kafka_conf_set(conf, key, value, errstr, errstr_size) == RD_KAFKA_CONF_OK ? 0 : -1;
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    kafka_msg_t *m = rkm->_private;
    if (!m)
        return;
    m->err = rkm->err;
    m->done = 1;
}

rd_kafka_t *kafka_producer_new(const config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, errstr, errstr_size);
    rd_kafka_t *rk;
    if (!conf)
        return NULL;
    /* durability is not negotiable: the operator may not turn these off */
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        conf_default(conf, cfg, "compression.codec", "lz4", errstr, errstr_size) ||
        conf_default(conf, cfg, "linger.ms", "5", errstr, errstr_size) ||
        conf_default(conf, cfg, "message.timeout.ms", "30000", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk; /* rd_kafka_new took the conf */
}

int kafka_producer_warm(rd_kafka_t *rk, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    int found = 0;
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++) {
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            break;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, kafka_topic_at(i), NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (!rkt)
            continue;
        if (rd_kafka_metadata(rk, 0, rkt, &md, (int)left) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            found += md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
    }
    return found;
}

size_t kafka_produce_batch(rd_kafka_t *rk, kafka_msg_t *msgs, size_t n, int timeout_ms)
{
    size_t pending = 0, ok = 0;
    int64_t deadline = util_mono_ms() + timeout_ms;
    int purged = 0;

    for (size_t i = 0; i < n; i++) {
        kafka_msg_t *m = &msgs[i];
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_resp_err_t err;
        m->done = 0;
        m->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (m->headers) {
            const char *k;
            json_t *v;
            hdrs = rd_kafka_headers_new(json_object_size(m->headers));
            json_object_foreach(m->headers, k, v)
            {
                if (json_is_string(v))
                    rd_kafka_header_add(hdrs, k, -1, json_string_value(v), -1);
            }
        }
        for (;;) {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_KEY(m->key, m->key ? strlen(m->key) : 0),
                RD_KAFKA_V_VALUE((void *)m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(rk, 10);
        }
        if (err) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs); /* not taken on failure */
            m->err = err;
            m->done = 1;
        } else {
            pending++;
        }
    }
    /* every queued message gets exactly one report: wait for all of them,
     * since their opaque points into the caller's array */
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !msgs[i].done;
        if (!left)
            break;
        if (!purged && util_mono_ms() > deadline) {
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = 1;
        }
        rd_kafka_poll(rk, 5);
    }
    for (size_t i = 0; i < n; i++)
        ok += msgs[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    (void)pending;
    return ok;
}

int kafka_producer_close(rd_kafka_t *rk, int timeout_ms)
{
    int left;
    if (!rk)
        return 0;
    rd_kafka_flush(rk, timeout_ms);
    left = rd_kafka_outq_len(rk);
    if (left > 0)
        LOG_ERROR("%d messages left undelivered in the producer queue", left);
    rd_kafka_destroy(rk);
    return left;
}

/* ---- consumer loop ---- */

static const pg_stmt_t kc_inbox_claim_all = {
    "kc_inbox_claim_all",
    "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[]) "
    "ON CONFLICT DO NOTHING RETURNING event_id::text",
    2};

static const pg_stmt_t kc_inbox_claim = {
    "kc_inbox_claim",
    "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2};

/* $2: the smallest id an event of the cut-off time can have (UUID v7). A chunk
 * is the range up to the $4-th purgeable id, deleted by one index range scan:
 * "event_id IN (SELECT ... LIMIT $4)" let the planner, with statistics that
 * had not seen a burst of new rows yet, run the subquery once per row of the
 * consumer (12,000 rows: 25 s instead of 20 ms) */
#define KC_PURGEABLE                                                                             \
    "consumer = $1 AND event_id < $2::uuid AND applied_at < now() - make_interval(days => "    \
    "$3::int)"
static const pg_stmt_t kc_inbox_purge_chunk = {
    "kc_inbox_purge_chunk",
    "DELETE FROM inbox WHERE " KC_PURGEABLE " AND event_id <= (SELECT s.event_id FROM "
    "(SELECT event_id FROM inbox WHERE " KC_PURGEABLE " ORDER BY event_id LIMIT $4::int) s "
    "ORDER BY s.event_id DESC LIMIT 1)",
    4};

static const pg_stmt_t kc_inbox_horizon = {
    "kc_inbox_horizon",
    "INSERT INTO inbox_purged (consumer, before_id) VALUES ($1, $2::uuid) "
    "ON CONFLICT (consumer) DO UPDATE SET before_id = GREATEST(inbox_purged.before_id, "
    "EXCLUDED.before_id), purged_at = now()",
    2};

long kc_inbox_purge(pg_t *pg, const char *group, int retention_days, char *errstr,
                    size_t errstr_size)
{
    char cut[40], days[16], chunk[16];
    long total = 0;
    if (retention_days <= 0)
        return 0;
    int64_t ms = util_now_ms() - (int64_t)retention_days * 86400000LL;
    snprintf(cut, sizeof(cut), "%08llx-%04llx-0000-0000-000000000000",
             (unsigned long long)(ms >> 16), (unsigned long long)(ms & 0xffff));
    snprintf(days, sizeof(days), "%d", retention_days);
    snprintf(chunk, sizeof(chunk), "%d", KC_PURGE_CHUNK);
    const char *hv[2] = {group, cut};
    PGresult *res = pg_exec_stmt(pg, &kc_inbox_horizon, hv, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    for (int round = 0; round < KC_PURGE_ROUNDS; round++) {
        const char *v[4] = {group, cut, days, chunk};
        res = pg_exec_stmt(pg, &kc_inbox_purge_chunk, v, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!res)
            return -1;
        long n = atol(PQcmdTuples(res));
        PQclear(res);
        total += n;
        if (n < KC_PURGE_CHUNK)
            break;
    }
    return total;
}

typedef struct kc_state {
    rd_kafka_t *rk;
    int revoked; /**< set when partitions were revoked; the loop drops work taken before */
    metrics_gauge_t *m_parts; /**< partitions assigned to this instance */
} kc_state_t;

static int kc_dead_letter(pg_t *pg, const kafka_consumer_opts_t *o, const rd_kafka_message_t *rkm,
                          const Kesu__V1__Envelope *env, const char *reason, int attempts,
                          char *errstr, size_t errstr_size)
{
    char part[16], off[32], att[16];
    char key[256] = "";
    json_t *h;
    int rc;
    snprintf(part, sizeof(part), "%d", rkm->partition);
    snprintf(off, sizeof(off), "%lld", (long long)rkm->offset);
    snprintf(att, sizeof(att), "%d", attempts);
    if (rkm->key && rkm->key_len)
        snprintf(key, sizeof(key), "%.*s", (int)(rkm->key_len < 255 ? rkm->key_len : 255),
                 (const char *)rkm->key);
    h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "dlq_service", o->service,
                  "dlq_consumer", o->group, "dlq_source_topic", rd_kafka_topic_name(rkm->rkt),
                  "dlq_source_partition", part, "dlq_source_offset", off, "dlq_error", reason,
                  "dlq_attempts", att);
    if (env) {
        json_object_set_new(h, "event_type", json_string(env->event_type));
        json_object_set_new(h, "event_id", json_string(env->event_id));
    }
    rc = outbox_append(pg, o->service, KAFKA_TOPIC_DLQ, key, rkm->payload, rkm->len, h, errstr,
                       errstr_size);
    json_decref(h);
    if (rc == 0) {
        LOG_WARN("message sent to %s: %s", KAFKA_TOPIC_DLQ, reason);
        metrics_counter_add(metrics_counter("kesu_dlq_messages_total",
                                            "Messages this service sent to the DLQ", NULL),
                            1);
    }
    return rc;
}

/* Mark which messages are new to this consumer: one INSERT for the batch.
 * fresh[i] = 1 for the first occurrence of an event id the inbox did not have. */
static int kc_claim_all(pg_t *pg, const kafka_consumer_opts_t *o, Kesu__V1__Envelope **envs,
                        size_t n, int *fresh, char *errstr, size_t errstr_size)
{
    strbuf_t ids;
    PGresult *res;
    size_t cnt = 0;
    strbuf_init(&ids);
    strbuf_append(&ids, "{", 1);
    for (size_t i = 0; i < n; i++) {
        fresh[i] = 0;
        if (!envs[i])
            continue;
        if (cnt++)
            strbuf_append(&ids, ",", 1);
        strbuf_append(&ids, envs[i]->event_id, strlen(envs[i]->event_id));
    }
    strbuf_append(&ids, "}", 1);
    if (!cnt) {
        strbuf_free(&ids);
        return 0;
    }
    const char *v[2] = {o->group, ids.s};
    res = pg_exec_stmt(pg, &kc_inbox_claim_all, v, PGRES_TUPLES_OK, errstr, errstr_size);
    strbuf_free(&ids);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        for (size_t i = 0; i < n; i++) {
            if (envs[i] && !fresh[i] && strcmp(envs[i]->event_id, id) == 0) {
                fresh[i] = 1;
                break;
            }
        }
    }
    PQclear(res);
    return 0;
}

/* the stage's per-batch step (kc_batch_fn); 0 go on, 1 refused (run carefully),
 * 2 run again, -1 fail */
static int kc_batch_step(pg_t *pg, const kafka_consumer_opts_t *o, kc_batch_phase_t phase,
                         const kc_msg_t *msgs, size_t n, char *errstr, size_t errstr_size)
{
    char why[1024] = "";
    if (!o->batch)
        return 0;
    kc_result_t r = o->batch(o->opaque, pg, phase, msgs, n, why, sizeof(why));
    if (r == KC_OK)
        return 0;
    snprintf(errstr, errstr_size, "%s", why[0] ? why : "the batch step refused the batch");
    if (phase != KC_BATCH_END && phase != KC_BATCH_CLAIMED)
        return -1;
    return r == KC_RETRY ? 2 : r == KC_POISON ? 1 : -1;
}

kc_result_t kc_cases_read(pg_t *pg, const pg_stmt_t *stmt, const kc_msg_t *msgs, size_t n,
                          pg_keyed_t *out, char *errstr, size_t errstr_size)
{
    strbuf_t ids;
    pg_keyed_clear(out);
    pg_array_begin(&ids);
    for (size_t i = 0; i < n; i++)
        pg_array_add(&ids, msgs[i].env->case_id);
    pg_array_end(&ids);
    const char *v[1] = {ids.s};
    PGresult *res = pg_exec_stmt(pg, stmt, v, PGRES_TUPLES_OK, errstr, errstr_size);
    strbuf_free(&ids);
    if (!res)
        return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
    if (pg_keyed_set(out, res) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return KC_RETRY;
    }
    /* locked now: their changes may wait for the batch's one statement, and
     * casestore keeps what each becomes from here on */
    for (int r = 0; r < PQntuples(res); r++)
        casestore_defer_know(pg, res, r);
    return KC_OK;
}

kc_result_t kc_cases_step(pg_t *pg, kc_batch_phase_t phase, const pg_stmt_t *stmt,
                          const kc_msg_t *msgs, size_t n, pg_keyed_t *out, char *errstr,
                          size_t errstr_size)
{
    if (phase == KC_BATCH_CLAIMED)
        return kc_cases_read(pg, stmt, msgs, n, out, errstr, errstr_size);
    pg_keyed_clear(out);
    return KC_OK;
}

const PGresult *kc_case_row(pg_t *pg, pg_keyed_t *claimed, const pg_stmt_t *one,
                            const char *case_id, PGresult **own, int *row, char *errstr,
                            size_t errstr_size)
{
    *own = NULL;
    *row = pg_keyed_take(claimed, case_id);
    if (*row >= 0)
        return claimed->res;
    const char *v[1] = {case_id};
    *own = pg_exec_stmt(pg, one, v, PGRES_TUPLES_OK, errstr, errstr_size);
    *row = 0;
    return *own;
}

/* KC_BATCH_CLAIMED: the stage's step for the batch's new events; as kc_batch_step */
static int kc_claimed(pg_t *pg, const kafka_consumer_opts_t *o, rd_kafka_message_t **msgs,
                      Kesu__V1__Envelope **envs, const int *fresh, size_t n, char *errstr,
                      size_t errstr_size)
{
    kc_msg_t *m = calloc(n ? n : 1, sizeof(*m));
    size_t k = 0;
    if (!m) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (fresh[i])
            m[k++] = (kc_msg_t){msgs[i], envs[i], rd_kafka_topic_name(msgs[i]->rkt)};
    int step = k ? kc_batch_step(pg, o, KC_BATCH_CLAIMED, m, k, errstr, errstr_size) : 0;
    free(m);
    return step;
}

/*
 * One attempt at a batch. careful = 0 is the fast path: one inbox INSERT for
 * the whole batch and no savepoints; if a handler refuses an event it returns
 * 1 so the caller re-runs the batch carefully: a savepoint per message, so
 * the refused one goes to the DLQ without its partial effects.
 * @returns 0 committed, 1 re-run carefully, 2 re-run as it was (the batch
 *          step asked), -1 rolled back (errstr).
 */
static int kc_apply(pg_t *pg, const kafka_consumer_opts_t *o, rd_kafka_message_t **msgs,
                    Kesu__V1__Envelope **envs, const char *const *whys, size_t n, int careful,
                    kc_outcome_t *outcomes, char *errstr, size_t errstr_size)
{
    char why[1024];
    int *fresh = NULL;
    int step, undo = -1;
    if (pg_begin(pg, errstr, errstr_size) != 0)
        return -1;
    if (kc_batch_step(pg, o, careful ? KC_BATCH_BEGIN_CAREFUL : KC_BATCH_BEGIN, NULL, 0, errstr,
                      errstr_size) != 0)
        goto fail;
    if (!careful) {
        casestore_defer_begin(pg); /* the batch's history rows in one statement at its end */
        fresh = calloc(n ? n : 1, sizeof(*fresh));
        if (!fresh) {
            snprintf(errstr, errstr_size, "out of memory");
            goto fail;
        }
        if (kc_claim_all(pg, o, envs, n, fresh, errstr, errstr_size) != 0)
            goto fail;
        if (o->batch && (step = kc_claimed(pg, o, msgs, envs, fresh, n, errstr, errstr_size))) {
            undo = step == 2 ? 2 : step == 1 ? 1 : -1;
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *rkm = msgs[i];
        const char *topic = rd_kafka_topic_name(rkm->rkt);
        Kesu__V1__Envelope *env = envs[i];
        kc_result_t r;

        log_ctx_set(env ? env->case_id : NULL, env ? env->event_id : NULL, topic, rkm->partition,
                    rkm->offset);
        if (!env) {
            if (kc_dead_letter(pg, o, rkm, NULL, whys[i], 1, errstr, errstr_size) != 0)
                goto fail;
            outcomes[i] = KC_DEAD;
            continue;
        }
        if (careful) {
            if (pg_command(pg, "SAVEPOINT kc_msg", errstr, errstr_size) != 0)
                goto fail;
            const char *claim[2] = {o->group, env->event_id};
            PGresult *res =
                pg_exec_stmt(pg, &kc_inbox_claim, claim, PGRES_COMMAND_OK, errstr, errstr_size);
            if (!res)
                goto fail;
            int is_new = strcmp(PQcmdTuples(res), "1") == 0;
            PQclear(res);
            if (!is_new) {
                outcomes[i] = KC_DUPLICATE;
                if (pg_command(pg, "RELEASE SAVEPOINT kc_msg", errstr, errstr_size) != 0)
                    goto fail;
                continue;
            }
        } else if (!fresh[i]) {
            outcomes[i] = KC_DUPLICATE;
            LOG_DEBUG("duplicate event ignored");
            continue;
        }

        /* an earlier event's kept change of this case is in its row before this one reads it */
        if (casestore_defer_sync(pg, env->case_id, errstr, errstr_size) != CASESTORE_OK) {
            undo = pg_failure_transient(pg) ? -1 : 1;
            goto fail;
        }
        kc_msg_t m = {rkm, env, topic};
        why[0] = '\0';
        r = o->handler(o->opaque, pg, &m, why, sizeof(why));
        if (r == KC_OK || r == KC_SKIP) {
            if (careful && pg_command(pg, "RELEASE SAVEPOINT kc_msg", errstr, errstr_size) != 0)
                goto fail;
            outcomes[i] = r == KC_OK ? KC_APPLIED : KC_SKIPPED;
        } else if (r == KC_POISON) {
            if (!careful) {
                undo = 1; /* redo the batch with a savepoint per message */
                goto fail;
            }
            if (pg_command(pg, "ROLLBACK TO SAVEPOINT kc_msg", errstr, errstr_size) != 0)
                goto fail;
            if (kc_dead_letter(pg, o, rkm, env, why[0] ? why : "handler refused the event", 1,
                               errstr, errstr_size) != 0)
                goto fail;
            outcomes[i] = KC_DEAD;
        } else {
            snprintf(errstr, errstr_size, "%s", why[0] ? why : "handler asked for a retry");
            goto fail;
        }
    }
    log_ctx_clear();
    if (casestore_defer_flush(pg, errstr, errstr_size) != CASESTORE_OK) {
        if (pg_failure_transient(pg))
            goto fail;
        /* a row refused: find its event the careful way, one at a time */
        LOG_WARN("batch's history rows refused, the batch runs again event by event: %s",
                 errstr);
        undo = 1;
        goto fail;
    }
    step = kc_batch_step(pg, o, KC_BATCH_END, NULL, 0, errstr, errstr_size);
    if (step != 0) {
        /* refused: the careful re-run finds the event, or it was careful already */
        undo = step == 2 ? 2 : step == 1 && !careful ? 1 : -1;
        if (undo == 1)
            LOG_WARN("the batch's own step refused it, the batch runs again event by event: %s",
                     errstr);
        goto fail;
    }
    free(fresh);
    if (pg_commit(pg, errstr, errstr_size) != 0)
        return -1;
    return 0;
fail: /* undo the attempt; undo says what next */
    log_ctx_clear();
    casestore_defer_discard(pg);
    free(fresh);
    pg_rollback(pg);
    return undo;
}

int kc_apply_batch(pg_t *pg, const kafka_consumer_opts_t *o, rd_kafka_message_t **msgs, size_t n,
                   kc_outcome_t *outcomes, char *errstr, size_t errstr_size)
{
    /* the wanted events (and the undecodable, for the DLQ) are applied;
     * at[j] is where the j-th of them sits in the batch */
    Kesu__V1__Envelope **envs = calloc(n ? n : 1, sizeof(*envs));
    char **whys = calloc(n ? n : 1, sizeof(*whys));
    size_t *at = calloc(n ? n : 1, sizeof(*at));
    rd_kafka_message_t **keep = calloc(n ? n : 1, sizeof(*keep));
    kc_outcome_t *kept = calloc(n ? n : 1, sizeof(*kept));
    size_t k = 0;
    int rc = -1;
    if (!envs || !whys || !at || !keep || !kept) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char why[512];
        Kesu__V1__Envelope *env =
            proto_env_unpack(msgs[i]->payload, msgs[i]->len, why, sizeof(why));
        if (env && o->wants && !o->wants(o->opaque, env)) {
            kesu__v1__envelope__free_unpacked(env, NULL);
            outcomes[i] = KC_IGNORED;
            continue;
        }
        envs[k] = env;
        whys[k] = env ? NULL : strdup(why);
        keep[k] = msgs[i];
        at[k++] = i;
    }
    rc = 0;
    if (!k)
        goto out; /* nothing for this stage: no transaction */
    if (pg_ensure(pg, errstr, errstr_size) != 0) {
        rc = -1;
        goto out;
    }
    int careful = 0, reruns = 0;
    for (;;) {
        rc = kc_apply(pg, o, keep, envs, (const char *const *)whys, k, careful, kept, errstr,
                      errstr_size);
        if (rc == 1 && !careful)
            careful = 1;
        else if (rc == 2 && reruns < KC_RERUN_MAX && ++reruns)
            LOG_INFO("batch of %zu run again at once: %s", k, errstr);
        else
            break;
    }
    if (rc == 2) {
        LOG_WARN("batch run again %d times and still refused: %s", reruns, errstr);
        rc = -1;
    }
    for (size_t j = 0; j < k; j++)
        outcomes[at[j]] = kept[j];
out:
    for (size_t i = 0; envs && whys && i < k; i++) {
        if (envs[i])
            kesu__v1__envelope__free_unpacked(envs[i], NULL);
        free(whys[i]);
    }
    free(envs);
    free(whys);
    free(at);
    free(keep);
    free(kept);
    return rc;
}

#ifdef KESU_FAULT_INJECTION
/*
 * Test builds only (-DKESU_FAULT_INJECTION=ON): KESU_FAULT_CRASH_AFTER_COMMIT=N
 * kills the process right after its Nth committed batch and before the
 * offsets are stored: the worst moment for a consumer, since the batch's
 * effects are in PostgreSQL but Kafka will deliver it again. The inbox must
 * make that redelivery a no-op (tests/fault/test_crash.py).
 */
static void kc_fault_after_commit(void)
{
    static long crash_at = -1, commits;
    if (crash_at < 0) {
        const char *s = getenv("KESU_FAULT_CRASH_AFTER_COMMIT");
        crash_at = s ? atol(s) : 0;
    }
    if (crash_at > 0 && ++commits == crash_at) {
        LOG_ERROR("fault injection: exiting after commit %ld before the offset store", commits);
        _exit(137);
    }
}
#endif

static void kc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kc_state_t *st = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        LOG_INFO("partitions assigned: %d", parts->cnt);
        rd_kafka_assign(rk, parts);
        metrics_gauge_set(st->m_parts, parts->cnt);
    } else {
        LOG_INFO("partitions revoked: %d", parts->cnt);
        st->revoked = 1;
        rd_kafka_assign(rk, NULL);
        metrics_gauge_set(st->m_parts, 0);
    }
}

/* Messages behind the end of the assigned partitions, from librdkafka's
 * cached watermarks and our position: no broker round trip. */
static int64_t kc_lag(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t lag = 0;
    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return -1;
    rd_kafka_position(rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &lo, &hi) != 0 || hi < 0)
            continue;
        int64_t pos = p->offset >= 0 ? p->offset : lo;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

static void kc_batch_free(rd_kafka_message_t **batch, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        rd_kafka_message_destroy(batch[i]);
    *n = 0;
}

static void kc_pause(rd_kafka_t *rk, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(rk, parts);
    else
        rd_kafka_resume_partitions(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

int kafka_consumer_run(const config_t *cfg, pg_t *pg, const kafka_consumer_opts_t *o,
                       char *errstr, size_t errstr_size)
{
    kc_state_t st = {0};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, errstr, errstr_size);
    rd_kafka_topic_partition_list_t *subs = NULL;
    rd_kafka_message_t **batch = NULL;
    kc_outcome_t *outcomes = NULL;
    size_t nbatch = 0;
    int held = 0, retry_delay = KC_RETRY_MIN_MS, attempts = 0, rc = -1;
    int64_t retry_at = 0, last_tick = 0, last_purge = util_mono_ms();
    metrics_counter_t *m_in = metrics_counter("kesu_events_in_total", "Events consumed", NULL);
    metrics_counter_t *m_dup =
        metrics_counter("kesu_events_duplicate_total", "Redelivered events ignored", NULL);
    metrics_counter_t *m_ign = metrics_counter(
        "kesu_events_ignored_total", "Events of types this stage does not act on", NULL);
    metrics_counter_t *m_err =
        metrics_counter("kesu_batch_failures_total", "Batches rolled back for a retry", NULL);
    metrics_histogram_t *m_lat = metrics_histogram(
        "kesu_batch_apply_seconds", "Time to apply one consumer batch in PostgreSQL", NULL);
    char glabel[160];
    snprintf(glabel, sizeof(glabel), "group=\"%s\"", o->group);
    metrics_gauge_t *m_lag = metrics_gauge(
        "kesu_consumer_lag", "Messages not yet consumed on the assigned partitions", glabel);
    /* 0 after start until the group has given this instance its share, and
     * for good when there are more instances than partitions */
    st.m_parts = metrics_gauge("kesu_consumer_partitions",
                               "Partitions assigned to this instance", glabel);
    int64_t last_lag = 0;

    if (!conf)
        return -1;
    if (rd_kafka_conf_set(conf, "group.id", o->group, errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) ||
        conf_default(conf, cfg, "auto.offset.reset", "earliest", errstr, errstr_size) ||
        conf_default(conf, cfg, "auto.commit.interval.ms", "1000", errstr, errstr_size) ||
        conf_default(conf, cfg, "session.timeout.ms", "10000", errstr, errstr_size) ||
        conf_default(conf, cfg, "heartbeat.interval.ms", "1000", errstr, errstr_size) ||
        conf_default(conf, cfg, "fetch.wait.max.ms", KAFKA_FETCH_WAIT_MS, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, kc_rebalance_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    st.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!st.rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* taken by rd_kafka_new */
    rd_kafka_poll_set_consumer(st.rk);

    subs = rd_kafka_topic_partition_list_new(8);
    for (const char *const *t = o->topics; *t; t++)
        rd_kafka_topic_partition_list_add(subs, *t, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(st.rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe failed: %s", rd_kafka_err2str(err));
        goto out;
    }

    /* twice batch_max: room for a message that slips in while paused */
    batch = calloc((size_t)o->batch_max * 2, sizeof(*batch));
    outcomes = calloc((size_t)o->batch_max * 2, sizeof(*outcomes));
    if (!batch || !outcomes) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (o->ready)
        atomic_store(o->ready, 1);
    LOG_INFO("consumer group %s started", o->group);

    while (*o->run) {
        int64_t now = util_mono_ms();
        if (now - last_lag >= 2000) {
            last_lag = now;
            int64_t lag = kc_lag(st.rk);
            if (lag >= 0)
                metrics_gauge_set(m_lag, (double)lag);
        }
        if (o->tick && now - last_tick >= o->tick_ms && !held) {
            last_tick = now;
            o->tick(o->opaque, pg);
        }
        if (o->inbox_retention_days > 0 && now - last_purge >= KC_PURGE_EVERY_MS && !held) {
            char why[512];
            last_purge = now;
            long n = kc_inbox_purge(pg, o->group, o->inbox_retention_days, why, sizeof(why));
            if (n < 0)
                LOG_WARN("inbox rows older than %d days not purged (next try in %d s): %s",
                         o->inbox_retention_days, KC_PURGE_EVERY_MS / 1000, why);
            else if (n > 0)
                LOG_INFO("%ld inbox rows older than %d days purged", n, o->inbox_retention_days);
        }
        if (!held) {
            /* fill a batch: wait up to 100 ms for the first message, then
             * up to batch_ms for the rest */
            int64_t first_at = 0;
            while (nbatch < (size_t)o->batch_max && *o->run) {
                int timeout = 100;
                if (nbatch) {
                    int64_t left = first_at + o->batch_ms - util_mono_ms();
                    if (left <= 0)
                        break;
                    timeout = (int)left;
                }
                st.revoked = 0;
                rd_kafka_message_t *rkm = rd_kafka_consumer_poll(st.rk, timeout);
                if (st.revoked && nbatch) {
                    /* taken before the revoke: never stored, so redelivered to
                     * whoever owns the partitions now (possibly us again) */
                    LOG_INFO("partitions revoked while filling a batch: dropping %zu messages "
                             "for redelivery",
                             nbatch);
                    kc_batch_free(batch, &nbatch);
                }
                if (!rkm) {
                    if (nbatch || o->tick)
                        break;
                    continue;
                }
                if (rkm->err) {
                    if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        LOG_WARN("consumer error: %s", rd_kafka_message_errstr(rkm));
                    rd_kafka_message_destroy(rkm);
                    continue;
                }
                if (!nbatch)
                    first_at = util_mono_ms();
                batch[nbatch++] = rkm;
            }
            if (!nbatch)
                continue;
        } else {
            rd_kafka_message_t *rkm;
            st.revoked = 0;
            rkm = rd_kafka_consumer_poll(st.rk, 100);
            if (rkm) {
                /* paused partitions should deliver nothing; keep order if one slips in */
                if (!rkm->err && nbatch < (size_t)o->batch_max * 2) {
                    batch[nbatch++] = rkm;
                } else {
                    if (!rkm->err)
                        LOG_ERROR("message at offset %lld arrived while paused with no room; "
                                  "it is redelivered after a restart",
                                  (long long)rkm->offset);
                    rd_kafka_message_destroy(rkm);
                    rkm = NULL;
                }
            }
            if (st.revoked) {
                if (rkm && nbatch && batch[nbatch - 1] == rkm)
                    nbatch--; /* from the new assignment: keep it out of the drop */
                else
                    rkm = NULL;
                LOG_INFO("rebalance during retry: dropping %zu held messages for redelivery",
                         nbatch);
                kc_batch_free(batch, &nbatch);
                if (rkm && !rkm->err)
                    batch[nbatch++] = rkm;
                held = 0;
                attempts = 0;
                retry_delay = KC_RETRY_MIN_MS;
                continue;
            }
            if (util_mono_ms() < retry_at)
                continue;
        }

        int64_t t0 = util_mono_ms();
        attempts++;
        if (kc_apply_batch(pg, o, batch, nbatch, outcomes, errstr, errstr_size) != 0) {
            metrics_counter_add(m_err, 1);
            if (!pg_failure_transient(pg) && attempts >= KC_RETRY_POISON_AFTER && nbatch == 1) {
                /* a single event that keeps failing without the database being down */
                LOG_ERROR("event keeps failing (%s): sending it to the DLQ", errstr);
                char e2[512];
                if (pg_begin(pg, e2, sizeof(e2)) == 0 &&
                    kc_dead_letter(pg, o, batch[0], NULL, errstr, attempts, e2, sizeof(e2)) == 0 &&
                    pg_commit(pg, e2, sizeof(e2)) == 0) {
                    outcomes[0] = KC_DEAD;
                    goto committed;
                }
                pg_rollback(pg);
            }
            if (o->ready)
                atomic_store(o->ready, 0);
            if (!held) {
                LOG_WARN("batch of %zu rolled back, pausing and retrying: %s", nbatch, errstr);
                kc_pause(st.rk, 1);
                held = 1;
            } else {
                LOG_WARN("retry %d failed: %s", attempts, errstr);
            }
            /* a batch that keeps failing is retried one message at a time so
             * that one bad event cannot hold back the others */
            if (attempts >= 2 && nbatch > 1 && !pg_failure_transient(pg)) {
                LOG_INFO("splitting batch of %zu to find the failing event", nbatch);
                /* hold the first message only; the rest are redelivered after
                 * the partitions are resumed (their offsets were never stored) */
                for (size_t i = 1; i < nbatch; i++)
                    rd_kafka_message_destroy(batch[i]);
                nbatch = 1;
                /* rewind the consumer to the held message's successor */
                rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(pos, rd_kafka_topic_name(batch[0]->rkt),
                                                  batch[0]->partition)
                    ->offset = batch[0]->offset + 1;
                rd_kafka_seek_partitions(st.rk, pos, 5000);
                rd_kafka_topic_partition_list_destroy(pos);
            }
            retry_at = util_mono_ms() + retry_delay + (rand() % (retry_delay / 2 + 1));
            retry_delay = retry_delay * 2 > KC_RETRY_MAX_MS ? KC_RETRY_MAX_MS : retry_delay * 2;
            continue;
        }
    committed:;
        size_t ignored = 0;
        for (size_t i = 0; i < nbatch; i++)
            ignored += outcomes[i] == KC_IGNORED;
        int wrote = ignored < nbatch; /* 0: no transaction was opened */
#ifdef KESU_FAULT_INJECTION
        if (wrote)
            kc_fault_after_commit();
#endif
        if (wrote)
            metrics_histogram_observe(m_lat, (double)(util_mono_ms() - t0) / 1000.0);
        metrics_counter_add(m_ign, ignored);
        for (size_t i = 0; i < nbatch; i++) {
            rd_kafka_offset_store(batch[i]->rkt, batch[i]->partition, batch[i]->offset);
            if (outcomes[i] == KC_DUPLICATE)
                metrics_counter_add(m_dup, 1);
        }
        metrics_counter_add(m_in, nbatch);
        kc_batch_free(batch, &nbatch);
        if (held) {
            LOG_INFO("retry succeeded after %d attempts, resuming", attempts);
            kc_pause(st.rk, 0);
            held = 0;
        }
        attempts = 0;
        retry_delay = KC_RETRY_MIN_MS;
        if (o->ready)
            atomic_store(o->ready, 1);
        /* the relay has nothing to do after a batch that wrote no outbox row */
        if (o->after_commit && wrote && pg->outbox_rows > 0)
            o->after_commit(o->after_commit_arg);
    }
    rc = 0;
out:
    if (o->ready)
        atomic_store(o->ready, 0);
    kc_batch_free(batch, &nbatch);
    free(batch);
    free(outcomes);
    LOG_INFO("closing consumer group %s", o->group);
    rd_kafka_consumer_close(st.rk);
    rd_kafka_destroy(st.rk);
    return rc;
}
