/*
 * Integration: the consumer loop locks a batch's cases before any handler
 * runs, in id order (decision 0019), so two stages' batches over the same
 * cases wait for each other instead of deadlocking.
 *
 * kc_apply_batch is run on three events of three cases; while the handler
 * sees the first event, a second connection finds all three case rows taken
 * (FOR NO KEY UPDATE NOWAIT fails with 55P03), yet can still take the key
 * share a foreign-key check needs; after the commit all three are free.
 * A batch whose two events name one case runs without the extra statement's
 * help and is still applied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "proto.h"
#include "util.h"

static pg_t *pg, *other;
static rd_kafka_t *rk;
static rd_kafka_topic_t *rkt;
static char ids[3][37], group[64];
static int seen, locked_while_handling, key_share_ok;

/* from the other connection: 1 if the row is free for an update lock */
static int row_free(const char *id, const char *mode)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM cases WHERE id = $1 FOR %s NOWAIT", mode);
    const char *v[1] = {id};
    PQclear(PQexec(other->conn, "BEGIN"));
    PGresult *res = PQexecParams(other->conn, sql, 1, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (!state || strcmp(state, "55P03") != 0)
            fail_msg("unexpected: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    PQclear(PQexec(other->conn, "ROLLBACK"));
    return ok;
}

static kc_result_t handler(void *opaque, pg_t *conn, const kc_msg_t *m, char *errstr, size_t n)
{
    (void)opaque;
    (void)conn;
    (void)errstr;
    (void)n;
    if (seen++ == 0) {
        locked_while_handling = 0;
        for (int i = 0; i < 3; i++)
            locked_while_handling += !row_free(ids[i], "NO KEY UPDATE");
        key_share_ok = row_free(m->env->case_id, "KEY SHARE");
    }
    return KC_OK;
}

static rd_kafka_message_t *fake_msg(const char *case_id, size_t *len)
{
    proto_env_t pe;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    cr.channel = "web";
    cr.title = "itest";
    cr.body = "itest";
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, case_id, "ITL", "itest");
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
    rd_kafka_message_t *m = calloc(1, sizeof(*m));
    m->rkt = rkt;
    m->payload = proto_env_pack(&pe.env, len);
    m->len = *len;
    return m;
}

static void run_batch(const char *const *case_ids, size_t n)
{
    rd_kafka_message_t *msgs[4];
    kc_outcome_t out[4];
    char err[512];
    size_t len;
    for (size_t i = 0; i < n; i++)
        msgs[i] = fake_msg(case_ids[i], &len);
    kafka_consumer_opts_t o = {.service = "itest", .group = group, .handler = handler};
    assert_int_equal(kc_apply_batch(pg, &o, msgs, n, out, err, sizeof(err)), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i], KC_APPLIED);
        free(msgs[i]->payload);
        free(msgs[i]);
    }
}

static void test_batch_locks_its_cases_first(void **state)
{
    (void)state;
    /* the batch names them in reverse id order: the lock is in id order anyway */
    const char *batch[3] = {ids[2], ids[0], ids[1]};
    seen = 0;
    run_batch(batch, 3);
    assert_int_equal(seen, 3);
    assert_int_equal(locked_while_handling, 3);
    assert_int_equal(key_share_ok, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(row_free(ids[i], "NO KEY UPDATE"), 1);
}

static void test_one_case_batch(void **state)
{
    (void)state;
    const char *batch[2] = {ids[1], ids[1]};
    seen = 0;
    run_batch(batch, 2);
    assert_int_equal(seen, 2);
    assert_int_equal(row_free(ids[1], "NO KEY UPDATE"), 1);
}

static int setup(void **state)
{
    (void)state;
    char err[512], tag[9], no[48];
    log_init("itest", LOG_LVL_WARN);
    util_uuid(no);
    snprintf(tag, sizeof(tag), "%.8s", no);
    snprintf(group, sizeof(group), "itest-locks-%s", tag);
    pg = pg_new(itest_pg());
    other = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0 ||
        pg_connect(other, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        util_uuid(ids[i]);
        snprintf(no, sizeof(no), "ITL-%s-%d", tag, i);
        const char *v[2] = {ids[i], no};
        PGresult *res = PQexecParams(pg->conn,
                                     "INSERT INTO cases (id, case_no, access_code_hash, channel, "
                                     "title, body, trace_id) VALUES ($1, $2, '\\x00'::bytea, "
                                     "'web', 'itest', 'itest', 'itest')",
                                     2, NULL, v, NULL, NULL, 0);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "%s\n", PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return -1;
    }
    /* a topic handle for the messages' topic name; never connects */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    rkt = rk ? rd_kafka_topic_new(rk, "kesu.itest.locks", NULL) : NULL;
    return rkt ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        const char *v[1] = {ids[i]};
        PQclear(PQexecParams(pg->conn, "DELETE FROM cases WHERE id = $1", 1, NULL, v, NULL, NULL,
                             0));
    }
    const char *g[1] = {group};
    PQclear(PQexecParams(pg->conn, "DELETE FROM inbox WHERE consumer = $1", 1, NULL, g, NULL,
                         NULL, 0));
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    pg_destroy(pg);
    pg_destroy(other);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_locks_its_cases_first),
        cmocka_unit_test(test_one_case_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
