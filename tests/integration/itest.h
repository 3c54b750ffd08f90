/*
 * itest: helpers for integration tests against the real PostgreSQL and
 * Kafka that scripts/infra.sh starts (KESU_PG, KESU_KAFKA). Header-only so
 * each test stays one file.
 */
#ifndef KESU_ITEST_H
#define KESU_ITEST_H

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pg.h"
#include "util.h"

static inline const char *itest_pg(void)
{
    const char *s = getenv("KESU_PG");
    return s && *s ? s : "host=127.0.0.1 port=55432 dbname=kesu user=postgres";
}

static inline const char *itest_kafka(void)
{
    const char *s = getenv("KESU_KAFKA");
    return s && *s ? s : "127.0.0.1:59092";
}

/* a config_t whose kafka pass-through points at the test broker */
static inline void itest_config(config_t *cfg)
{
    char err[256];
    config_init(cfg, "itest", "itest");
    config_set(cfg, "kafka.bootstrap.servers", itest_kafka(), "itest", err, sizeof(err));
}

static inline int itest_sql(pg_t *pg, const char *sql)
{
    char err[512];
    if (pg_command(pg, sql, err, sizeof(err)) != 0) {
        fprintf(stderr, "itest sql failed: %s\n", err);
        return -1;
    }
    return 0;
}

/* one integer from a query */
static inline long long itest_scalar(pg_t *pg, const char *sql)
{
    PGresult *res = PQexec(pg->conn, sql);
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = atoll(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "itest scalar failed: %s: %s\n", sql, PQresultErrorMessage(res));
    PQclear(res);
    return v;
}

/* one integer from a query with n text parameters ($1..$n), -1 if none */
static inline long long itest_scalarv(pg_t *pg, const char *sql, int nv, const char *const *v)
{
    PGresult *res = PQexecParams(pg->conn, sql, nv, NULL, v, NULL, NULL, 0);
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        n = atoll(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "itest scalar failed: %s: %s\n", sql, PQresultErrorMessage(res));
    PQclear(res);
    return n;
}

/* the same with one parameter ($1) */
static inline long long itest_scalar1(pg_t *pg, const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    return itest_scalarv(pg, sql, 1, v);
}

#ifdef cmocka_unit_test
/* one statement with n text parameters ($1..$n); the test fails on an error */
static inline PGresult *itest_qv(pg_t *pg, const char *sql, int n, const char *const *v)
{
    PGresult *res = PQexecParams(pg->conn, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    return res;
}

/* the same with at most one parameter ($1; NULL: none) */
static inline PGresult *itest_q(pg_t *pg, const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    return itest_qv(pg, sql, p1 ? 1 : 0, v);
}
#endif

/* The plan of a statement a module prepared on this connection, as text
 * (`what` is e.g. "EXECUTE st_pending" or "EXECUTE as_retention('180', '100')"):
 * EXPLAIN only plans, it does not run the statement. Empty on failure. */
static inline void itest_plan(pg_t *pg, const char *what, char *out, size_t n)
{
    char sql[512];
    size_t used = 0;
    out[0] = '\0';
    snprintf(sql, sizeof(sql), "EXPLAIN %s", what);
    PGresult *res = PQexec(pg->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "itest plan failed: %s: %s\n", sql, PQresultErrorMessage(res));
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
        int w = snprintf(out + used, n - used, "%s\n", PQgetvalue(res, i, 0));
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    PQclear(res);
}

/* a bare case row (status received, channel web) with this id, number and text */
static inline int itest_insert_case(pg_t *pg, const char *id, const char *case_no,
                                    const char *title, const char *body)
{
    const char *v[4] = {id, case_no, title, body};
    PGresult *res = PQexecParams(pg->conn,
                                 "INSERT INTO cases (id, case_no, access_code_hash, channel, "
                                 "title, body, trace_id) VALUES ($1, $2, '\\x00'::bytea, 'web', "
                                 "$3, $4, 'itest-trace')",
                                 4, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "insert case: %s\n", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* create a fresh topic (name written to out) */
/* create the topic named out (0, or -1 with the reason printed) */
static inline int itest_topic_create_named(const char *out, int partitions)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(out, partitions, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **r =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rc = (cnt == 1 && !rd_kafka_topic_result_error(r[0])) ? 0 : -1;
        if (rc)
            fprintf(stderr, "create topic %s: %s\n", out,
                    cnt ? rd_kafka_topic_result_error_string(r[0]) : "no result");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return rc;
}

/* a fresh topic "<prefix>.<random>" (its name in out) */
static inline int itest_topic_create(const char *prefix, int partitions, char *out, size_t n)
{
    char uuid[37];
    util_uuid(uuid);
    snprintf(out, n, "%s.%.8s", prefix, uuid + 28);
    return itest_topic_create_named(out, partitions);
}

static inline void itest_topic_delete(const char *topic)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

/* a connection of the test's own; NULL (the reason on stderr) if the database is not there */
static inline pg_t *itest_pg_connect(void)
{
    char err[512];
    pg_t *pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        pg_destroy(pg);
        return NULL;
    }
    return pg;
}

/* 1 if another transaction holds the case row's lock (a NOWAIT lock from
 * this connection fails with 55P03), 0 if it could be taken */
static inline int itest_case_locked(pg_t *pg, const char *case_id)
{
    const char *v[1] = {case_id};
    PGresult *r = PQexecParams(pg->conn,
                               "SELECT 1 FROM cases WHERE id = $1 FOR NO KEY UPDATE NOWAIT", 1,
                               NULL, v, NULL, NULL, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int locked = PQresultStatus(r) != PGRES_TUPLES_OK && state && strcmp(state, "55P03") == 0;
    PQclear(r);
    return locked;
}

/* A connection that reads as intake's staff API does: role kesu_api under
 * row-level security, as `role` of `department` (NULL: none). NULL (the
 * reason on stderr) on failure. */
static inline pg_t *itest_pg_api(const char *role, const char *department)
{
    pg_t *pg = itest_pg_connect();
    if (!pg)
        return NULL;
    const char *v[2] = {role, department ? department : ""};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT set_config('role', 'kesu_api', false), "
                                 "set_config('kesu.role', $1, false), "
                                 "set_config('kesu.department', $2, false)",
                                 2, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "itest api session: %s\n", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok) {
        pg_destroy(pg);
        return NULL;
    }
    return pg;
}

/* A run's own names, so tests sharing the database count only their own:
 * departments "<stem>-<tag>" and "<stem>2-<tag>" and the case-number prefix
 * "<STEM>-<tag>" (a stem of up to 8 letters), tag being 12 random hex digits (the tail of a new UUID: its
 * head is the time, the same for runs a minute apart). */
static inline void itest_run_names(const char *stem, char dept[32], char dept2[32],
                                   char prefix[24])
{
    char id[37], up[9];
    size_t i;
    util_uuid(id);
    for (i = 0; stem[i] && i < sizeof(up) - 1; i++)
        up[i] = (char)(stem[i] >= 'a' && stem[i] <= 'z' ? stem[i] - 'a' + 'A' : stem[i]);
    up[i] = '\0';
    snprintf(dept, 32, "%.8s-%.12s", stem, id + 24);
    snprintf(dept2, 32, "%.8s2-%.12s", stem, id + 24);
    snprintf(prefix, 24, "%.8s-%.12s", up, id + 24);
}

/* a topic handle on a producer that never connects (*rk, destroyed by the
 * caller): what a kc_msg_t built by hand needs to name its topic */
static inline rd_kafka_topic_t *itest_offline_topic(rd_kafka_t **rk, const char *name)
{
    char err[512];
    *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    return *rk ? rd_kafka_topic_new(*rk, name, NULL) : NULL;
}

/* produce raw values (synchronously, idempotent producer) */
static inline int itest_produce(const char *topic, const char *key, const void *val, size_t len)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    int left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    return e || left ? -1 : 0;
}

/*
 * Read every message of a topic from the beginning until idle_ms pass with
 * nothing new; cb gets each message. @returns the count.
 */
static inline int itest_consume_all(const char *topic, int idle_ms,
                                    void (*cb)(const rd_kafka_message_t *, void *), void *arg)
{
    char err[512], group[64], uuid[37];
    util_uuid(uuid);
    snprintf(group, sizeof(group), "itest-read-%.8s", uuid + 28);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *s = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(s, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, s);
    rd_kafka_topic_partition_list_destroy(s);
    int n = 0, got_any = 0;
    int64_t last = util_mono_ms();
    /* the first message can take a while (group join); wait longer for it */
    while (util_mono_ms() - last < (got_any ? idle_ms : idle_ms + 15000)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (cb)
                cb(m, arg);
            n++;
            got_any = 1;
            last = util_mono_ms();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

#endif
