/*
 * Integration: the archiver's feed logic against the real PostgreSQL.
 *
 * A case's history is written with casestore, then its envelopes are fed
 * to archive_handle / archive_feed in a scrambled order with a repeat.
 * Checked: the kesu.public.v1 outbox rows come out in case_seq order with
 * no gap and no free text; held rows drain; the published CaseClosed writes
 * one archive record (no encrypted or hashed columns) and appends
 * CaseArchived, which is published in its turn; a reopened-and-closed case
 * archives a second time; an envelope without case_seq is poison. A batch
 * step (KC_BATCH_CLAIMED) publishes each case's run of consecutive
 * positions at once and leaves the rest to the handlers, in order still.
 *
 * Everything runs in one transaction that is rolled back at the end, so no
 * relay ever sees the outbox rows and nothing reaches the real topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "archive.h"
#include "casestore.h"
#include "itest.h"
#include "log.h"

static pg_t *pg;
static archive_t ar;
static char case_id[37], case_no[48];

#define MAXEV 16
static uint8_t *packed[MAXEV + 1]; /* by seq */
static size_t packed_len[MAXEV + 1];

static void exec1(const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

static long long q1(const char *sql)
{
    return itest_scalar1(pg, sql, case_id);
}

static void set_status(const char *status)
{
    const char *v[2] = {case_id, status};
    PGresult *res = PQexecParams(pg->conn,
                                 "UPDATE cases SET status = $2, version = version + 1 "
                                 "WHERE id = $1",
                                 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("status %s: %s", status, PQresultErrorMessage(res));
    PQclear(res);
}

/* append one event to the history (no outbox row) and keep its envelope */
static int64_t append(Kesu__V1__Envelope__PayloadCase pc, const ProtobufCMessage *msg)
{
    char err[512];
    proto_env_t pe;
    casestore_result_t res;
    proto_env_init(&pe, "itest");
    proto_env_set_payload(&pe, pc, msg);
    if (casestore_append(pg, case_id, "itest", "itest", NULL, &pe, &res, err, sizeof(err)) !=
        CASESTORE_OK)
        fail_msg("append: %s", err);
    assert_true(res.seq >= 1 && res.seq <= MAXEV);
    packed[res.seq] = proto_env_pack(&pe.env, &packed_len[res.seq]);
    return res.seq;
}

static kc_result_t feed(int64_t seq)
{
    char err[512] = "";
    rd_kafka_message_t rkm;
    memset(&rkm, 0, sizeof(rkm));
    rkm.payload = packed[seq];
    rkm.len = packed_len[seq];
    Kesu__V1__Envelope *env = proto_env_unpack(packed[seq], packed_len[seq], err, sizeof(err));
    assert_non_null(env);
    kc_msg_t m = {&rkm, env, "kesu.itest"};
    kc_result_t r = archive_handle(&ar, pg, &m, err, sizeof(err));
    if (r == KC_RETRY || r == KC_POISON)
        fprintf(stderr, "feed %lld: %s\n", (long long)seq, err);
    kesu__v1__envelope__free_unpacked(env, NULL);
    return r;
}

/* the public outbox rows of the case, decoded in publish order */
static int published(int64_t *seqs, char types[][32], int max)
{
    const char *v[2] = {case_id, KAFKA_TOPIC_PUBLIC};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT payload FROM outbox WHERE producer = 'archiver' AND "
                                 "topic = $2 AND msg_key = $1 ORDER BY id",
                                 2, NULL, v, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int n = PQntuples(res);
    assert_true(n <= max);
    for (int i = 0; i < n; i++) {
        char err[256];
        Kesu__V1__Envelope *env = proto_env_unpack(
            PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0), err, sizeof(err));
        assert_non_null(env);
        seqs[i] = env->case_seq;
        snprintf(types[i], 32, "%s", env->event_type);
        if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED) {
            /* the public copy has no free text */
            assert_string_equal(env->case_received->title, "");
            assert_string_equal(env->case_received->body, "");
            assert_string_equal(env->case_received->location->address, "");
            assert_string_equal(env->case_received->location->district_code, "310104");
            assert_string_equal(env->case_received->channel, "web");
        }
        if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED) {
            assert_string_equal(env->case_resolved->reply, "");
            assert_string_equal(env->case_resolved->department, "d-itest");
        }
        kesu__v1__envelope__free_unpacked(env, NULL);
    }
    PQclear(res);
    return n;
}

/* the history of the case from received to closed (positions 1-5), its
 * status moved along; the texts carry what the public copy must not */
static void history_to_closed(void)
{
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    Kesu__V1__Location loc = KESU__V1__LOCATION__INIT;
    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    Kesu__V1__CaseResolved rs = KESU__V1__CASE_RESOLVED__INIT;
    Kesu__V1__FeedbackReceived fb = KESU__V1__FEEDBACK_RECEIVED__INIT;
    Kesu__V1__CaseClosed cc = KESU__V1__CASE_CLOSED__INIT;

    loc.address = "幸福路1号";
    loc.district_code = "310104";
    cr.channel = "web";
    cr.title = "垃圾无人清运";
    cr.body = "张先生 138****5678";
    cr.location = &loc;
    ca.department = "d-itest";
    rs.measures = "explanation";
    rs.reply = "已安排清运";
    rs.department = "d-itest";
    fb.satisfaction = 5;
    fb.comment = "很满意，谢谢王师傅";
    cc.reason = "satisfied";

    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base), 1);
    set_status("classified");
    set_status("assigned");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca.base), 2);
    set_status("accepted");
    set_status("resolved");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &rs.base), 3);
    set_status("replied");
    exec1("UPDATE cases SET satisfaction = 5, feedback_comment = '很满意' WHERE id = $1", case_id);
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED, &fb.base), 4);
    set_status("closed");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &cc.base), 5);
}

static void test_order_scrub_archive(void **state)
{
    (void)state;
    Kesu__V1__CaseClosed cc = KESU__V1__CASE_CLOSED__INIT;
    int64_t seqs[16];
    char types[16][32];

    cc.reason = "satisfied";
    history_to_closed();

    /* arrival order 3 1 5 2 2 4 */
    assert_int_equal(feed(3), KC_OK); /* held */
    assert_int_equal(q1("SELECT count(*) FROM public_feed_pending WHERE case_id = $1"), 1);
    assert_int_equal(feed(1), KC_OK); /* published */
    assert_int_equal(feed(5), KC_OK); /* held */
    assert_int_equal(published(seqs, types, 16), 1);
    assert_int_equal(feed(2), KC_OK); /* 2, then 3 from pending */
    assert_int_equal(feed(2), KC_SKIP);
    assert_int_equal(published(seqs, types, 16), 3);
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1"), 0);
    assert_int_equal(feed(4), KC_OK); /* 4, 5 (CaseClosed: archive), 6 (CaseArchived) */

    int n = published(seqs, types, 16);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_string_equal(types[4], "CaseClosed");
    assert_string_equal(types[5], "CaseArchived");
    assert_int_equal(q1("SELECT next_seq FROM public_feed_state WHERE case_id = $1"), 7);
    assert_int_equal(q1("SELECT count(*) FROM public_feed_pending WHERE case_id = $1"), 0);

    /* the record: history of 5 at archive time, case row without secrets */
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1"), 1);
    assert_int_equal(q1("SELECT jsonb_array_length(record->'history') FROM archive_records "
                        "WHERE case_id = $1"),
                     5);
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1 AND "
                        "record->'case' ? 'access_code_hash'"),
                     0);
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1 AND "
                        "record->'case' ? 'access_code_enc'"),
                     0);
    assert_int_equal(q1("SELECT (record->'case'->>'version')::int FROM archive_records "
                        "WHERE case_id = $1"),
                     q1("SELECT case_version FROM archive_records WHERE case_id = $1"));
    assert_int_equal(q1("SELECT (record->'feedback'->>'satisfaction')::int FROM "
                        "archive_records WHERE case_id = $1"),
                     5);
    assert_int_equal(q1("SELECT (record->'history'->4->'payload'->>'reason' = 'satisfied')::int "
                        "FROM archive_records WHERE case_id = $1"),
                     1);
    /* CaseArchived is in the history, not on a stage topic */
    assert_int_equal(q1("SELECT (summary->>'events')::int FROM case_events WHERE case_id = $1 "
                        "AND event_type = 'CaseArchived'"),
                     5);
    /* nothing but the public feed: (topic of the prefix in use) */
    char only_public[256];
    snprintf(only_public, sizeof(only_public),
             "SELECT count(*) FROM outbox WHERE msg_key = $1 AND topic <> '%s'",
             KAFKA_TOPIC_PUBLIC);
    assert_int_equal(q1(only_public), 0);

    /* records are immutable */
    PQclear(PQexec(pg->conn, "SAVEPOINT imm"));
    PGresult *res =
        PQexecParams(pg->conn, "UPDATE archive_records SET record = '{}' WHERE case_id = $1", 1,
                     NULL, (const char *const[]){case_id}, NULL, NULL, 0);
    assert_int_not_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQclear(PQexec(pg->conn, "ROLLBACK TO SAVEPOINT imm"));

    /* 重办: reopened, closed again -> a second record, a second CaseArchived */
    Kesu__V1__CaseReopened ro = KESU__V1__CASE_REOPENED__INIT;
    ro.reason = "unsatisfied";
    ro.reopen_count = 1;
    set_status("reopened");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, &ro.base), 7);
    set_status("assigned");
    set_status("accepted");
    set_status("resolved");
    set_status("replied");
    set_status("closed");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &cc.base), 8);
    assert_int_equal(feed(8), KC_OK);
    assert_int_equal(feed(7), KC_OK);
    n = published(seqs, types, 16);
    assert_int_equal(n, 9);
    for (int i = 0; i < n; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_string_equal(types[8], "CaseArchived");
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1"), 2);
    assert_int_equal(q1("SELECT max(jsonb_array_length(record->'history')) FROM "
                        "archive_records WHERE case_id = $1"),
                     8);
}

/* a fast batch attempt as the consumer loop makes it, in the test's
 * transaction: BEGIN, CLAIMED with the events, each event's handler, END.
 * Returns how many of the case's events were public after CLAIMED. */
static int batch(const int64_t *seqs, int n, kc_result_t *rcs)
{
    char err[512] = "";
    rd_kafka_message_t rkm[8];
    kc_msg_t m[8];
    int64_t got[16];
    char types[16][32];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        memset(&rkm[i], 0, sizeof(rkm[i]));
        rkm[i].payload = packed[seqs[i]];
        rkm[i].len = packed_len[seqs[i]];
        m[i] = (kc_msg_t){&rkm[i], proto_env_unpack(packed[seqs[i]], packed_len[seqs[i]], err,
                                                    sizeof(err)),
                          "kesu.itest"};
        assert_non_null(m[i].env);
    }
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_CLAIMED, m, (size_t)n, err, sizeof(err)),
                     KC_OK);
    int after = published(got, types, 16);
    for (int i = 0; i < n; i++) {
        rcs[i] = archive_handle(&ar, pg, &m[i], err, sizeof(err));
        kesu__v1__envelope__free_unpacked((Kesu__V1__Envelope *)m[i].env, NULL);
    }
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    return after;
}

/* KC_BATCH_CLAIMED: a case's run of consecutive positions is published in
 * one statement before the handlers, which then do nothing for it; what
 * does not follow on (a gap, a CaseClosed, a feed with held events) is left
 * to the handlers, and the feed comes out in order all the same */
static void test_batch_runs(void **state)
{
    (void)state;
    Kesu__V1__CaseReopened ro = KESU__V1__CASE_REOPENED__INIT;
    int64_t seqs[16];
    char types[16][32];
    kc_result_t rcs[8];

    /* a second case of its own */
    for (int i = 0; i <= MAXEV; i++) {
        free(packed[i]);
        packed[i] = NULL;
    }
    util_uuid(case_id);
    snprintf(case_no, sizeof(case_no), "ITB-%.8s", case_id + 28);
    assert_int_equal(itest_insert_case(pg, case_id, case_no, "路灯不亮", "李女士"), 0);
    ro.reason = "unsatisfied";
    ro.reopen_count = 1;
    history_to_closed();

    /* 3 1 5 2: the run 1-3 at once (its first creates the feed state); 5 is
     * after a gap and a CaseClosed: its handler holds it */
    const int64_t b1[4] = {3, 1, 5, 2};
    assert_int_equal(batch(b1, 4, rcs), 3);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rcs[i], KC_OK);
    assert_int_equal(published(seqs, types, 16), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_int_equal(q1("SELECT next_seq FROM public_feed_state WHERE case_id = $1"), 4);
    assert_int_equal(q1("SELECT held FROM public_feed_state WHERE case_id = $1"), 1);
    /* the statistics of the run, written at the batch's end */
    assert_int_equal(q1("SELECT count(*) FROM case_stats WHERE case_id = $1 AND "
                        "department = 'd-itest' AND channel = 'web'"),
                     1);

    /* 4: its feed holds 5, so the handler publishes it and drains 5 and CaseArchived */
    const int64_t b2[1] = {4};
    assert_int_equal(batch(b2, 1, rcs), 3);
    assert_int_equal(rcs[0], KC_OK);
    assert_int_equal(published(seqs, types, 16), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_string_equal(types[5], "CaseArchived");
    assert_int_equal(q1("SELECT count(*) FROM archive_records WHERE case_id = $1"), 1);

    /* reopened: 7 follows on from a feed with nothing held, at once */
    set_status("reopened");
    assert_int_equal(append(KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, &ro.base), 7);
    const int64_t b3[1] = {7};
    assert_int_equal(batch(b3, 1, rcs), 7);
    assert_int_equal(rcs[0], KC_OK);
    /* a position already published: nothing at once, its handler skips it */
    const int64_t b4[1] = {2};
    assert_int_equal(batch(b4, 1, rcs), 7);
    assert_int_equal(rcs[0], KC_SKIP);
    assert_int_equal(published(seqs, types, 16), 7);
    assert_string_equal(types[6], "CaseReopened");
    assert_int_equal(q1("SELECT next_seq FROM public_feed_state WHERE case_id = $1"), 8);
    assert_int_equal(q1("SELECT reopens FROM case_stats WHERE case_id = $1"), 1);
}

static void test_no_seq_is_poison(void **state)
{
    (void)state;
    char err[256] = "";
    Kesu__V1__CaseClosed cc = KESU__V1__CASE_CLOSED__INIT;
    proto_env_t pe;
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, case_id, case_no, "t");
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &cc.base);
    pe.env.case_seq = 0;
    assert_int_equal(archive_feed(&ar, pg, &pe.env, err, sizeof(err)), KC_POISON);
    assert_non_null(strstr(err, "case_seq"));
}

static void test_tick_gauges(void **state)
{
    (void)state;
    /* the tick reads the pending table; it must not fail inside our transaction */
    archive_tick(&ar, pg);
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    if (itest_scalar(pg, "SELECT count(*) FROM information_schema.columns WHERE "
                         "table_name = 'archive_records' AND column_name = 'case_version'") != 1) {
        fprintf(stderr, "the database lacks 0004_tail.sql: run kesuctl migrate\n");
        return -1;
    }
    memset(&ar, 0, sizeof(ar));
    ar.gap_warn_ms = 60000;
    archive_metrics_init(&ar);
    util_uuid(case_id);
    snprintf(case_no, sizeof(case_no), "ITA-%.8s", case_id + 28);
    if (pg_begin(pg, err, sizeof(err)) != 0)
        return -1;
    return itest_insert_case(pg, case_id, case_no, "垃圾无人清运", "张先生 138****5678");
}

static int teardown(void **state)
{
    (void)state;
    pg_rollback(pg); /* nothing of this test stays */
    pg_destroy(pg);
    archive_stats_free(&ar);
    for (int i = 0; i <= MAXEV; i++)
        free(packed[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_scrub_archive),
        cmocka_unit_test(test_batch_runs),
        cmocka_unit_test(test_no_seq_is_poison),
        cmocka_unit_test(test_tick_gauges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
