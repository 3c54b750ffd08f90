/*
 * Integration: the consumer loop against the real Kafka and PostgreSQL.
 * A redelivered event is applied once (inbox), poison goes to the DLQ
 * through the outbox with its reason, offsets are stored only after commit
 * (a restarted consumer re-applies nothing), and a handler asking for a
 * retry gets the same event again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "itest.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"

static char topic[128], group[64], table[64];
static config_t cfg;

typedef struct ctx {
    int retry_first;             /* answer KC_RETRY once for event "retry" */
    int retried;                 /* how many retries were asked */
    volatile sig_atomic_t run;   /* loop flag */
    pg_t *pg;                    /* the loop's connection */
    atomic_int ready;
    int parts;                   /* kesu_consumer_partitions of the group, just before the stop */
    int wakes;                   /* after_commit calls: batches that wrote outbox rows */
} ctx_t;

static void on_commit(void *arg)
{
    ((ctx_t *)arg)->wakes++;
}

static pg_stmt_t bump = {"itest_bump", NULL, 1};
static char bump_sql[256];

static kc_result_t handler(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr, size_t n)
{
    ctx_t *c = opaque;
    char err[512];
    if (strcmp(m->env->case_no, "poison") == 0) {
        snprintf(errstr, n, "impossible transition for test");
        return KC_POISON;
    }
    if (strcmp(m->env->case_no, "retry") == 0 && c->retry_first) {
        c->retry_first = 0;
        c->retried++;
        snprintf(errstr, n, "try again");
        return KC_RETRY;
    }
    const char *v[1] = {m->env->case_no};
    PGresult *res = pg_exec_stmt(pg, &bump, v, PGRES_COMMAND_OK, err, sizeof(err));
    if (!res) {
        snprintf(errstr, n, "%s", err);
        return KC_RETRY;
    }
    PQclear(res);
    return KC_OK;
}

static void *run_loop(void *arg)
{
    ctx_t *c = arg;
    char err[512];
    const char *topics[] = {topic, NULL};
    kafka_consumer_opts_t o = {.service = "itest",
                               .group = group,
                               .topics = topics,
                               .batch_max = 50,
                               .batch_ms = 20,
                               .handler = handler,
                               .opaque = c,
                               .after_commit = on_commit,
                               .after_commit_arg = c,
                               .run = &c->run,
                               .ready = &c->ready};
    if (kafka_consumer_run(&cfg, c->pg, &o, err, sizeof(err)) != 0)
        fprintf(stderr, "consumer: %s\n", err);
    return NULL;
}

static void produce_env(const char *event_id, const char *case_no)
{
    proto_env_t pe;
    Kesu__V1__CaseClosed cc;
    size_t len;
    kesu__v1__case_closed__init(&cc);
    cc.reason = "test";
    proto_env_init(&pe, "itest");
    if (event_id)
        snprintf(pe.event_id, sizeof(pe.event_id), "%s", event_id);
    proto_env_set_case(&pe, "3f1c2a8e-1111-4222-8333-444455556666", case_no, "t");
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &cc.base);
    uint8_t *buf = proto_env_pack(&pe.env, &len);
    assert_int_equal(itest_produce(topic, pe.case_id, buf, len), 0);
    free(buf);
}

static long long count_of(pg_t *pg, const char *key)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(n), 0) FROM %s WHERE k = '%s'", table, key);
    return itest_scalar(pg, sql);
}

static void run_for(ctx_t *c, int ms)
{
    pthread_t t;
    char err[512];
    c->pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(c->pg, 5000, err, sizeof(err)), 0);
    c->run = 1;
    pthread_create(&t, NULL, run_loop, c);
    util_sleep_ms(ms);
    char line[200], *m = metrics_render(), *at;
    snprintf(line, sizeof(line), "kesu_consumer_partitions{group=\"%s\"} ", group);
    at = m ? strstr(m, line) : NULL;
    c->parts = at ? atoi(at + strlen(line)) : -1;
    free(m);
    c->run = 0;
    pthread_join(t, NULL);
    pg_destroy(c->pg);
}

static void test_inbox_dlq_offsets(void **state)
{
    char err[512], uuid[37], sql[512];
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);

    util_uuid(uuid);
    snprintf(group, sizeof(group), "itest-group-%.8s", uuid + 28);
    snprintf(table, sizeof(table), "itest_counter_%.8s", uuid + 28);
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (k text PRIMARY KEY, n int NOT NULL)", table);
    assert_int_equal(itest_sql(pg, sql), 0);
    snprintf(bump_sql, sizeof(bump_sql),
             "INSERT INTO %s (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = %s.n + 1",
             table, table);
    bump.sql = bump_sql;

    char dup_id[37];
    util_uuid(dup_id);
    produce_env(dup_id, "dup");     /* the same event ... */
    produce_env(dup_id, "dup");     /* ... delivered twice */
    produce_env(NULL, "once");
    produce_env(NULL, "poison");    /* refused by the handler */
    assert_int_equal(itest_produce(topic, "x", "\x01\x02garbage", 9), 0); /* undecodable */
    produce_env(NULL, "retry");     /* transient failure once */

    ctx_t c = {.retry_first = 1};
    run_for(&c, 12000);
    assert_int_equal(c.parts, 2); /* the topic's two partitions, both to this instance */
    assert_true(c.wakes >= 1);    /* the DLQ rows are outbox rows: the relay is woken */

    assert_int_equal(count_of(pg, "dup"), 1);
    assert_int_equal(count_of(pg, "once"), 1);
    assert_int_equal(count_of(pg, "retry"), 1);
    assert_int_equal(c.retried, 1);
    assert_int_equal(count_of(pg, "poison"), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE producer = 'itest' AND topic = '%s' "
             "AND headers->>'dlq_consumer' = '%s'",
             KAFKA_TOPIC_DLQ, group);
    assert_int_equal(itest_scalar(pg, sql), 2);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE producer = 'itest' AND headers->>'dlq_consumer' "
             "= '%s' AND headers->>'dlq_error' LIKE '%%impossible transition%%' "
             "AND headers->>'dlq_source_topic' = '%s'",
             group, topic);
    assert_int_equal(itest_scalar(pg, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE producer = 'itest' AND headers->>'dlq_consumer' "
             "= '%s' AND headers->>'dlq_error' LIKE '%%not a kesu.v1.Envelope%%'",
             group);
    assert_int_equal(itest_scalar(pg, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbox WHERE consumer = '%s'", group);
    assert_int_equal(itest_scalar(pg, sql), 3); /* dup (once), once, retry */

    /* a restart of the same group re-applies nothing: offsets were stored after commit */
    produce_env(NULL, "after-restart");
    ctx_t c2 = {0};
    run_for(&c2, 8000);
    assert_int_equal(count_of(pg, "dup"), 1);
    assert_int_equal(count_of(pg, "once"), 1);
    assert_int_equal(count_of(pg, "after-restart"), 1);
    assert_int_equal(c2.wakes, 0); /* a batch that wrote no outbox row wakes no relay */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE producer = 'itest' AND headers->>'dlq_consumer' "
             "= '%s'",
             group);
    assert_int_equal(itest_scalar(pg, sql), 2); /* poison not dead-lettered twice */

    snprintf(sql, sizeof(sql), "DELETE FROM outbox WHERE producer = 'itest'");
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    itest_sql(pg, sql);
    pg_destroy(pg);
}

static int setup(void **state)
{
    log_init("itest", getenv("KESU_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    itest_config(&cfg);
    return itest_topic_create("kesu.itest.consumer", 2, topic, sizeof(topic));
}

static int teardown(void **state)
{
    itest_topic_delete(topic);
    config_free(&cfg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbox_dlq_offsets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
