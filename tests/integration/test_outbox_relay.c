/*
 * Integration: the transactional outbox against the real PostgreSQL and
 * Kafka. Rows survive a relay that stops, a relay that dies while holding
 * locks, and rows committed out of id order are never skipped - however late,
 * with no full sweep (the low-water mark, decision 0022); only one relay per
 * producer publishes at a time. kafka_producer_warm finds the Kesu topics
 * that exist (so a relay's first message to each is not held back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"
#include "kafka.h"
#include "outbox.h"
#include "util.h"

static char topic[128], producer[64];
static config_t cfg;
static rd_kafka_t *rk;

static int setup(void **state)
{
    char err[512], uuid[37];
    util_uuid(uuid);
    snprintf(producer, sizeof(producer), "itest-outbox-%.8s", uuid + 28);
    if (itest_topic_create("kesu.itest.outbox", 3, topic, sizeof(topic)) != 0)
        return -1;
    itest_config(&cfg);
    rk = kafka_producer_new(&cfg, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "producer: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    kafka_producer_close(rk, 5000);
    itest_topic_delete(topic);
    config_free(&cfg);
    return 0;
}

static void append_rows(pg_t *pg, int from, int to)
{
    char err[512], payload[32], key[32];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    for (int i = from; i < to; i++) {
        snprintf(payload, sizeof(payload), "msg-%05d", i);
        snprintf(key, sizeof(key), "k%d", i % 7);
        assert_int_equal(outbox_append(pg, producer, topic, key, payload, strlen(payload), NULL,
                                       err, sizeof(err)),
                         0);
    }
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
}

static long long backlog(pg_t *pg)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE producer = '%s'", producer);
    return itest_scalar(pg, sql);
}

typedef struct seen {
    int count[400];
    int other;
} seen_t;

static void on_msg(const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    int i;
    if (m->len == 9 && sscanf((const char *)m->payload, "msg-%05d", &i) == 1 && i >= 0 && i < 400)
        s->count[i]++;
    else
        s->other++;
}

static void test_relay_restart_and_crash(void **state)
{
    char err[512];
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);

    append_rows(pg, 0, 300);
    assert_int_equal(backlog(pg), 300);

    /* relay A publishes one batch of 100 and is stopped */
    outbox_relay_t *a = outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(outbox_relay_once(a, err, sizeof(err)), 100);
    assert_int_equal(outbox_relay_stop(a, 0), 200); /* stop without draining: 200 left */
    assert_int_equal(backlog(pg), 200);

    /* a relay "dies" holding locks on the next 50 rows: another relay skips them */
    pg_t *dying = pg_new(itest_pg());
    assert_int_equal(pg_connect(dying, 5000, err, sizeof(err)), 0);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT id FROM outbox WHERE producer = '%s' ORDER BY id LIMIT 50 "
             "FOR UPDATE SKIP LOCKED",
             producer);
    PQclear(PQexec(dying->conn, sql));

    outbox_relay_t *b = outbox_relay_new(itest_pg(), producer, rk, 1000, 20, err, sizeof(err));
    assert_non_null(b);
    assert_int_equal(outbox_relay_once(b, err, sizeof(err)), 150);
    assert_int_equal(backlog(pg), 50);

    /* its connection drops (crash): the locks go (the server notices the
     * disconnect a moment later), the rows are published */
    pg_destroy(dying);
    int got = 0;
    for (int i = 0; i < 100 && got < 50; i++) {
        int n = outbox_relay_once(b, err, sizeof(err));
        assert_true(n >= 0);
        got += n;
        if (got < 50)
            util_sleep_ms(50);
    }
    assert_int_equal(got, 50);
    assert_int_equal(backlog(pg), 0);
    assert_int_equal(outbox_relay_stop(b, 1000), 0);

    seen_t s;
    memset(&s, 0, sizeof(s));
    int n = itest_consume_all(topic, 3000, on_msg, &s);
    assert_int_equal(n, 300);
    assert_int_equal(s.other, 0);
    for (int i = 0; i < 300; i++)
        if (s.count[i] != 1)
            fail_msg("message %d seen %d times", i, s.count[i]);
    pg_destroy(pg);
}

static void test_out_of_order_commit_not_skipped(void **state)
{
    char err[512];
    pg_t *slow = pg_new(itest_pg()), *fast = pg_new(itest_pg()), *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(slow, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(fast, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);

    /* slow takes the lower id but commits last */
    assert_int_equal(pg_begin(slow, err, sizeof(err)), 0);
    assert_int_equal(outbox_append(slow, producer, topic, "k", "msg-00300", 9, NULL, err,
                                   sizeof(err)),
                     0);
    append_rows(fast, 301, 302);

    outbox_relay_t *r = outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1); /* 301 out */
    assert_int_equal(pg_commit(slow, err, sizeof(err)), 0);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1); /* 300 not skipped */
    assert_int_equal(backlog(pg), 0);
    outbox_relay_stop(r, 0);

    seen_t s;
    memset(&s, 0, sizeof(s));
    itest_consume_all(topic, 3000, on_msg, &s);
    assert_int_equal(s.count[300], 1);
    assert_int_equal(s.count[301], 1);
    pg_destroy(slow);
    pg_destroy(fast);
    pg_destroy(pg);
}

/* the low-water mark (decision 0022): a row whose transaction took its id
 * early - as its first write, like a DLQ row - and commits late is published
 * by the first pass after its commit, however late, with no full sweep; the
 * mark never passes it while that transaction runs, and moves on after */
static void test_low_water_mark(void **state)
{
    char err[512], sql[256];
    pg_t *slow = pg_new(itest_pg()), *fast = pg_new(itest_pg()), *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(slow, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(fast, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);

    outbox_relay_t *r = outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    outbox_relay_set_full_sweep(r, 3600 * 1000); /* only the first pass sweeps in full */
    assert_int_equal(pg_begin(slow, err, sizeof(err)), 0);
    assert_int_equal(outbox_append(slow, producer, topic, "k", "msg-00310", 9, NULL, err,
                                   sizeof(err)),
                     0);
    snprintf(sql, sizeof(sql), "SELECT max(id) FROM outbox WHERE producer = '%s'", producer);
    long long slow_id = itest_scalar(slow, sql); /* its own, uncommitted row */
    append_rows(fast, 311, 313);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 2); /* 311, 312 */
    /* rows after it keep coming and going for longer than the old window (2 s) */
    for (int i = 313; i < 323; i++) {
        append_rows(fast, i, i + 1);
        util_sleep_ms(250);
        assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1);
        if (outbox_relay_mark(r) >= slow_id)
            fail_msg("mark %lld passed the running transaction's id %lld",
                     (long long)outbox_relay_mark(r), slow_id);
    }
    /* the open transaction has held the mark since the first pass (10 x 250 ms) */
    assert_true(outbox_relay_mark_wait_ms(r) >= 2000);
    assert_int_equal(pg_commit(slow, err, sizeof(err)), 0);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1); /* 310, at once */
    assert_int_equal(backlog(pg), 0);
    /* and with nothing running any more the mark moves past it */
    for (int i = 323; i < 326; i++) {
        append_rows(fast, i, i + 1);
        assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1);
    }
    assert_true(outbox_relay_mark(r) > slow_id);
    assert_true(outbox_relay_mark_wait_ms(r) < 2000); /* moving again */
    outbox_relay_stop(r, 0);

    seen_t s;
    memset(&s, 0, sizeof(s));
    itest_consume_all(topic, 3000, on_msg, &s);
    for (int i = 310; i < 326; i++)
        if (s.count[i] != 1)
            fail_msg("message %d seen %d times", i, s.count[i]);
    pg_destroy(slow);
    pg_destroy(fast);
    pg_destroy(pg);
}

static void test_broker_unreachable_keeps_rows(void **state)
{
    /* a producer pointed at a closed port: delivery fails, rows stay, attempts counted */
    char err[512];
    config_t bad;
    config_init(&bad, "itest", "itest");
    config_set(&bad, "kafka.bootstrap.servers", "127.0.0.1:1", "itest", err, sizeof(err));
    config_set(&bad, "kafka.message.timeout.ms", "1500", "itest", err, sizeof(err));
    rd_kafka_t *badrk = kafka_producer_new(&bad, err, sizeof(err));
    assert_non_null(badrk);
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    append_rows(pg, 310, 315);

    outbox_relay_t *r = outbox_relay_new(itest_pg(), producer, badrk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "delivery failed"));
    assert_int_equal(backlog(pg), 5);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT min(attempts) FROM outbox WHERE producer = '%s'", producer);
    assert_int_equal(itest_scalar(pg, sql), 1);
    outbox_relay_stop(r, 0);
    kafka_producer_close(badrk, 100);
    config_free(&bad);

    /* the real broker takes them */
    r = outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err));
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 5);
    assert_int_equal(backlog(pg), 0);
    outbox_relay_stop(r, 0);
    pg_destroy(pg);
}

/* one relay per producer at a time (decision 0001): while another holds the
 * producer's turn, a pass publishes nothing and leaves the rows; then it
 * publishes them (the turn is taken inside the sweep statement) */
static void test_one_relay_per_producer(void **state)
{
    char err[512], sql[256];
    pg_t *pg = pg_new(itest_pg()), *other = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    assert_int_equal(pg_connect(other, 5000, err, sizeof(err)), 0);
    append_rows(pg, 380, 384);

    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT pg_advisory_xact_lock(hashtext('kesu-outbox:' || '%s'))", producer);
    PGresult *res = PQexec(other->conn, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    outbox_relay_t *r = outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 0);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 0);
    assert_int_equal(backlog(pg), 4);

    assert_int_equal(itest_sql(other, "COMMIT"), 0); /* the other relay's pass ends */
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 4);
    assert_int_equal(backlog(pg), 0);
    outbox_relay_stop(r, 0);

    seen_t s;
    memset(&s, 0, sizeof(s));
    itest_consume_all(topic, 3000, on_msg, &s);
    for (int i = 380; i < 384; i++)
        assert_int_equal(s.count[i], 1);
    pg_destroy(other);
    pg_destroy(pg);
}

static void test_producer_warm(void **state)
{
    char pfx[32], uuid[37];
    util_uuid(uuid);
    snprintf(pfx, sizeof(pfx), "itw%.8s.", uuid + 28);
    kafka_topics_set_prefix(pfx);
    assert_int_equal(kafka_producer_warm(rk, 5000), 0); /* none of them exists yet */
    for (int i = 0; i < KAFKA_TOPIC_COUNT - 1; i++)
        assert_int_equal(itest_topic_create_named(kafka_topic_at(i), 1), 0);
    assert_int_equal(kafka_producer_warm(rk, 10000), KAFKA_TOPIC_COUNT - 1);
    assert_int_equal(itest_topic_create_named(kafka_topic_at(KAFKA_TOPIC_COUNT - 1), 1), 0);
    assert_int_equal(kafka_producer_warm(rk, 10000), KAFKA_TOPIC_COUNT);
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        itest_topic_delete(kafka_topic_at(i));
    kafka_topics_set_prefix(getenv("KESU_TOPICS_PREFIX"));
}

typedef struct ordered {
    int idx[64];
    int n;
} ordered_t;

static void on_ordered(const rd_kafka_message_t *m, void *arg)
{
    ordered_t *o = arg;
    int i;
    if (o->n < 64 && m->len == 9 && sscanf((const char *)m->payload, "msg-%05d", &i) == 1)
        o->idx[o->n++] = i;
}

/* one pass whose ids cross a power of ten (…995 to …004): published in the
 * order of the numbers, not of their text ("1000" sorts before "999") */
static void test_ids_across_a_digit(void **state)
{
    char err[512], t[128], prod[64], uuid[37], sql[160];
    (void)state;
    util_uuid(uuid);
    snprintf(prod, sizeof(prod), "itest-outdig-%.8s", uuid + 28);
    assert_int_equal(itest_topic_create("kesu.itest.outdig", 1, t, sizeof(t)), 0);
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    long long v = itest_scalar(pg, "SELECT last_value FROM outbox_id_seq"), b = 10;
    while (b <= v + 10)
        b *= 10;
    snprintf(sql, sizeof(sql), "SELECT setval('outbox_id_seq', %lld)", b - 6); /* forward only */
    PQclear(PQexec(pg->conn, sql));
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    for (int i = 0; i < 10; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "msg-%05d", i);
        assert_int_equal(outbox_append(pg, prod, t, "k", payload, strlen(payload), NULL, err,
                                       sizeof(err)),
                         0);
    }
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE producer = '%s' AND id >= %lld",
             prod, b);
    assert_true(itest_scalar(pg, sql) >= 1); /* they do cross it */

    outbox_relay_t *r = outbox_relay_new(itest_pg(), prod, rk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 10);
    outbox_relay_stop(r, 0);
    ordered_t o = {{0}, 0};
    itest_consume_all(t, 3000, on_ordered, &o);
    assert_int_equal(o.n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(o.idx[i], i);
    itest_topic_delete(t);
    pg_destroy(pg);
}

typedef struct exact {
    int n, bytes_ok, key_ok, header_ok;
} exact_t;

static const unsigned char odd_payload[] = {0x00, 0xff, 0x5c, 0x78, 0x00, 'k', 0x80, 0x0a, 0x00};

static void on_exact(const rd_kafka_message_t *m, void *arg)
{
    exact_t *e = arg;
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t vlen = 0;
    e->n++;
    e->bytes_ok = m->len == sizeof(odd_payload) && memcmp(m->payload, odd_payload, m->len) == 0;
    e->key_ok = m->key_len == 5 && memcmp(m->key, "k-\xe8\xaf\x89", 5) == 0;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "trace", &v, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR)
        e->header_ok = vlen == 5 && memcmp(v, "t-\xe5\xae\xa2", 5) == 0;
}

/* the relay reads the payload in binary (not hex-encoded): bytes a text
 * result would mangle (NUL, backslash-x, high bytes) arrive exactly, with
 * the key and the headers */
static void test_payload_bytes_exact(void **state)
{
    char err[512], t[128], prod[64], uuid[37];
    (void)state;
    util_uuid(uuid);
    snprintf(prod, sizeof(prod), "itest-outbin-%.8s", uuid + 28);
    assert_int_equal(itest_topic_create("kesu.itest.outbin", 1, t, sizeof(t)), 0);
    pg_t *pg = pg_new(itest_pg());
    assert_int_equal(pg_connect(pg, 5000, err, sizeof(err)), 0);
    json_t *h = json_pack("{s:s}", "trace", "t-\xe5\xae\xa2");
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(outbox_append(pg, prod, t, "k-\xe8\xaf\x89", odd_payload, sizeof(odd_payload), h,
                                   err, sizeof(err)),
                     0);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    json_decref(h);

    outbox_relay_t *r = outbox_relay_new(itest_pg(), prod, rk, 100, 20, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(outbox_relay_once(r, err, sizeof(err)), 1);
    outbox_relay_stop(r, 0);
    exact_t e = {0};
    itest_consume_all(t, 3000, on_exact, &e);
    assert_int_equal(e.n, 1);
    assert_true(e.bytes_ok);
    assert_true(e.key_ok);
    assert_true(e.header_ok);
    itest_topic_delete(t);
    pg_destroy(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_restart_and_crash),
        cmocka_unit_test(test_out_of_order_commit_not_skipped),
        cmocka_unit_test(test_low_water_mark),
        cmocka_unit_test(test_broker_unreachable_keeps_rows),
        cmocka_unit_test(test_one_relay_per_producer),
        cmocka_unit_test(test_producer_warm),
        cmocka_unit_test(test_payload_bytes_exact),
        cmocka_unit_test(test_ids_across_a_digit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
