/*
 * Integration: the notifier's consumer side in the real consumer loop
 * (kc_apply_batch with notify_handle, notify_wants and notify_batch) against
 * PostgreSQL, with the shipped templates (decision 0027):
 *  - a fast batch's notices are written at its end by one INSERT, in the
 *    order of their events (a statement-level trigger counts the statements
 *    that insert this test's rows);
 *  - a notice the database refuses (a trigger raising for one event's
 *    notice) sends the batch round again event by event: that event goes to
 *    the DLQ alone, the others' notices are written once each (one INSERT
 *    per notice in the careful run), and a later batch gathers again;
 *  - the cases of a fast batch's events are read at its claim, in one
 *    statement, and their handlers render from those rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "kafka.h"
#include "notify.h"
#include "proto.h"

#define N_EV 4

static pg_t *pg;
static rd_kafka_t *rk;
static rd_kafka_topic_t *rkt;
static char group[64], tag[16];
static notify_t nt;
static pg_t *other; /* a second session holding a case lock (closed in teardown too) */

typedef struct ev {
    rd_kafka_message_t rkm;
    uint8_t *buf;
    char case_id[37], event_id[37];
} ev_t;

/* a case of this test and a CaseAssigned on it (one handler notice, on the log) */
static void make(ev_t *e, int i)
{
    proto_env_t pe;
    Kesu__V1__CaseAssigned a = KESU__V1__CASE_ASSIGNED__INIT;
    char no[48];
    memset(e, 0, sizeof(*e));
    util_uuid(e->case_id);
    snprintf(no, sizeof(no), "NB-%s-%d-%.8s", tag, i, e->case_id + 28);
    assert_int_equal(itest_insert_case(pg, e->case_id, no, "t", "b"), 0);
    a.department = "dept_water";
    a.attempt = 1;
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, e->case_id, no, "trace");
    assert_int_equal(proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &a.base),
                     0);
    size_t len = 0;
    e->buf = proto_env_pack(&pe.env, &len);
    snprintf(e->event_id, sizeof(e->event_id), "%s", pe.event_id);
    e->rkm.rkt = rkt;
    e->rkm.payload = e->buf;
    e->rkm.len = len;
    e->rkm.offset = i;
}

static kafka_consumer_opts_t opts(void)
{
    kafka_consumer_opts_t o = {.service = group, .group = group, .handler = notify_handle,
                               .wants = notify_wants, .batch = notify_batch, .opaque = &nt};
    return o;
}

static long long scalar(const char *fmt, const char *arg)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), fmt, arg);
    return itest_scalar(pg, sql);
}

static long long notices_of(const char *event_id)
{
    return scalar("SELECT count(*) FROM notifications WHERE trigger_event_id = '%s'", event_id);
}

static long long inserts_counted(void)
{
    return scalar("SELECT count(*) FROM nb_stmts_%s", tag);
}

static void run(ev_t *e, int n, kc_outcome_t *out)
{
    rd_kafka_message_t *msgs[N_EV];
    char err[512] = "";
    for (int i = 0; i < n; i++)
        msgs[i] = &e[i].rkm;
    kafka_consumer_opts_t o = opts();
    assert_int_equal(kc_apply_batch(pg, &o, msgs, (size_t)n, out, err, sizeof(err)), 0);
}

static void test_gathered(void **state)
{
    (void)state;
    ev_t e[N_EV];
    kc_outcome_t out[N_EV];
    for (int i = 0; i < N_EV; i++)
        make(&e[i], i);
    long long before = inserts_counted();
    run(e, N_EV, out);
    for (int i = 0; i < N_EV; i++) {
        assert_int_equal(out[i], KC_APPLIED);
        assert_int_equal(notices_of(e[i].event_id), 1);
    }
    /* one statement wrote the four */
    assert_int_equal(inserts_counted(), before + 1);
    /* queued in event order: ids ascend with the events */
    char sql[2048];
    int at = snprintf(sql, sizeof(sql),
                      "SELECT (array_agg(trigger_event_id::text ORDER BY id) = ARRAY['%s'",
                      e[0].event_id);
    for (int i = 1; i < N_EV; i++)
        at += snprintf(sql + at, sizeof(sql) - (size_t)at, ",'%s'", e[i].event_id);
    snprintf(sql + at, sizeof(sql) - (size_t)at,
             "])::int FROM notifications WHERE case_id IN (SELECT id FROM cases WHERE case_no "
             "LIKE 'NB-%s-%%')",
             tag);
    assert_int_equal(itest_scalar(pg, sql), 1);
    /* the text was rendered for the handler, on the log channel */
    assert_int_equal(scalar("SELECT count(*) FROM notifications WHERE trigger_event_id = '%s' "
                            "AND audience = 'handler' AND channel = 'log' AND state = 'pending' "
                            "AND template = 'case_assigned.handler' AND body <> ''",
                            e[2].event_id),
                     1);
    /* a redelivery queues nothing: the inbox has the events */
    run(e, N_EV, out);
    for (int i = 0; i < N_EV; i++) {
        assert_int_equal(out[i], KC_DUPLICATE);
        assert_int_equal(notices_of(e[i].event_id), 1);
    }
    for (int i = 0; i < N_EV; i++)
        free(e[i].buf);
}

/* KC_BATCH_CLAIMED reads the cases of the claimed events in one statement and
 * their handlers render from those rows: a case number changed after the
 * claim does not reach their notices; an event that was not claimed with the
 * batch reads its case itself and sees the change */
static void test_cases_read_at_claim(void **state)
{
    (void)state;
    ev_t e[3];
    kc_msg_t m[3];
    char err[512] = "", sql[512];
    for (int i = 0; i < 3; i++) {
        make(&e[i], 20 + i);
        m[i] = (kc_msg_t){&e[i].rkm, proto_env_unpack(e[i].buf, e[i].rkm.len, err, sizeof(err)),
                          "kesu.itest"};
        assert_non_null(m[i].env);
    }
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(notify_batch(&nt, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(notify_batch(&nt, pg, KC_BATCH_CLAIMED, m, 2, err, sizeof(err)), KC_OK);
    assert_int_equal(nt.cases.n, 2);
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof(sql), "UPDATE cases SET case_no = case_no || '-X' WHERE id = '%s'",
                 e[i].case_id);
        PQclear(PQexec(pg->conn, sql));
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(notify_handle(&nt, pg, &m[i], err, sizeof(err)), KC_OK);
    assert_int_equal(notify_batch(&nt, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_null(nt.cases.res);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        long long changed = scalar("SELECT count(*) FROM notifications WHERE trigger_event_id = "
                                   "'%s' AND body LIKE '%%-X%%'",
                                   e[i].event_id);
        assert_int_equal(notices_of(e[i].event_id), 1);
        assert_int_equal(changed, i == 2 ? 1 : 0);
    }
    for (int i = 0; i < 3; i++) {
        kesu__v1__envelope__free_unpacked((Kesu__V1__Envelope *)m[i].env, NULL);
        free(e[i].buf);
    }
}

static void test_refused_notice(void **state)
{
    (void)state;
    ev_t e[3];
    kc_outcome_t out[3];
    char sql[1024];
    for (int i = 0; i < 3; i++)
        make(&e[i], 10 + i);
    /* the database refuses the notice of the middle event */
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION nb_refuse_%s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.trigger_event_id = '%s' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
             "RETURN NEW; END $$",
             tag, e[1].event_id);
    assert_int_equal(itest_sql(pg, sql), 0);
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER nb_refuse_%s BEFORE INSERT ON notifications FOR EACH ROW "
             "EXECUTE FUNCTION nb_refuse_%s()",
             tag, tag);
    assert_int_equal(itest_sql(pg, sql), 0);
    long long before = inserts_counted();
    long long dlq0 = scalar("SELECT count(*) FROM outbox WHERE producer = '%s'", group);
    run(e, 3, out);
    snprintf(sql, sizeof(sql), "DROP TRIGGER nb_refuse_%s ON notifications", tag);
    assert_int_equal(itest_sql(pg, sql), 0);
    snprintf(sql, sizeof(sql), "DROP FUNCTION nb_refuse_%s()", tag);
    assert_int_equal(itest_sql(pg, sql), 0);

    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_DEAD);
    assert_int_equal(out[2], KC_APPLIED);
    assert_int_equal(notices_of(e[0].event_id), 1);
    assert_int_equal(notices_of(e[1].event_id), 0);
    assert_int_equal(notices_of(e[2].event_id), 1);
    /* the refused gathered INSERT rolled back; then one INSERT per written notice */
    assert_int_equal(inserts_counted(), before + 2);
    /* the refused event is in the DLQ (through the outbox), and not claimed */
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE producer = '%s'", group), dlq0 + 1);
    assert_int_equal(scalar("SELECT count(*) FROM inbox WHERE event_id = '%s'", e[1].event_id), 0);
    assert_int_equal(scalar("SELECT count(*) FROM inbox WHERE event_id = '%s'", e[0].event_id), 1);

    /* the next batch gathers again: one statement for two notices */
    ev_t f[2];
    for (int i = 0; i < 2; i++)
        make(&f[i], 20 + i);
    before = inserts_counted();
    run(f, 2, out);
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_APPLIED);
    assert_int_equal(inserts_counted(), before + 1);
    for (int i = 0; i < 3; i++)
        free(e[i].buf);
    for (int i = 0; i < 2; i++)
        free(f[i].buf);
}

/* how the notice of event_id stands: 's' sent and recorded by its pass (one
 * UPDATE: recorded_at = sent_at), 'l' recorded later, 'u' sent, not recorded */
static char notice_record(const char *event_id)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT CASE WHEN recorded_at IS NULL THEN 0 WHEN recorded_at = sent_at THEN 1 "
             "ELSE 2 END FROM notifications WHERE trigger_event_id = '%s' AND state = 'sent'",
             event_id);
    return "usl"[itest_scalar(pg, sql)];
}

static long long sent_events(const char *case_id)
{
    return scalar("SELECT count(*) FROM case_events WHERE case_id = '%s' AND event_type = "
                  "'NotificationSent'",
                  case_id);
}

static void test_send_records(void **state)
{
    (void)state;
    ev_t e[3];
    kc_outcome_t out[3];
    char err[512] = "", sql[256];
    for (int i = 0; i < 3; i++)
        make(&e[i], 30 + i);
    run(e, 3, out);
    /* a stage's batch holds the second case while the pass sends */
    other = itest_pg_connect();
    assert_non_null(other);
    assert_int_equal(itest_sql(other, "BEGIN"), 0);
    snprintf(sql, sizeof(sql), "SELECT 1 FROM cases WHERE id = '%s' FOR NO KEY UPDATE",
             e[1].case_id);
    assert_int_equal(itest_sql(other, sql), 0);
    assert_true(notify_send_due(&nt, pg, err, sizeof(err)) >= 3);
    /* delivered and recorded by the pass's own UPDATE; the held case's waits */
    assert_int_equal(notice_record(e[0].event_id), 's');
    assert_int_equal(notice_record(e[1].event_id), 'u');
    assert_int_equal(notice_record(e[2].event_id), 's');
    assert_int_equal(sent_events(e[0].case_id), 1);
    assert_int_equal(sent_events(e[1].case_id), 0);
    assert_int_equal(sent_events(e[2].case_id), 1);
    /* the case is free again: the recording pass writes the rest */
    assert_int_equal(itest_sql(other, "ROLLBACK"), 0);
    pg_destroy(other);
    other = NULL;
    assert_true(notify_record_due(&nt, pg, err, sizeof(err)) >= 1);
    assert_int_equal(notice_record(e[1].event_id), 'l');
    for (int i = 0; i < 3; i++)
        assert_int_equal(sent_events(e[i].case_id), 1);
    /* nothing twice: another pass finds nothing of these to send or record */
    notify_send_due(&nt, pg, err, sizeof(err));
    for (int i = 0; i < 3; i++)
        assert_int_equal(sent_events(e[i].case_id), 1);
    for (int i = 0; i < 3; i++)
        free(e[i].buf);
}

static int setup(void **state)
{
    (void)state;
    char err[512], path[1024], sql[1024];
    snprintf(tag, sizeof(tag), "%08x", (unsigned)util_mono_ms() ^ (unsigned)getpid());
    snprintf(group, sizeof(group), "itest-notify-batch-%s", tag);
    if (!(pg = itest_pg_connect()) ||
        !(rkt = itest_offline_topic(&rk, "kesu.itest.notify-batch")))
        return -1;
    memset(&nt, 0, sizeof(nt));
    snprintf(path, sizeof(path), "%s/" NOTIFY_TEMPLATES_DEFAULT,
             getenv("KESU_SOURCE_DIR") ? getenv("KESU_SOURCE_DIR") : ".");
    if (notify_config_load(&nt.cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    nt.tz_offset_min = NOTIFY_TZ_OFFSET_DEFAULT;
    nt.max_attempts = 3;
    nt.send_batch = 20;
    notify_metrics_init(&nt);
    /* counts the statements that insert notices of this test's cases */
    snprintf(sql, sizeof(sql), "CREATE TABLE nb_stmts_%s (at timestamptz DEFAULT now())", tag);
    if (itest_sql(pg, sql) != 0)
        return -1;
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION nb_count_%s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF EXISTS (SELECT 1 FROM nt JOIN cases c ON c.id = nt.case_id "
             "WHERE c.case_no LIKE 'NB-%s-%%') THEN INSERT INTO nb_stmts_%s DEFAULT VALUES; "
             "END IF; RETURN NULL; END $$",
             tag, tag, tag);
    if (itest_sql(pg, sql) != 0)
        return -1;
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER nb_count_%s AFTER INSERT ON notifications REFERENCING NEW TABLE "
             "AS nt FOR EACH STATEMENT EXECUTE FUNCTION nb_count_%s()",
             tag, tag);
    return itest_sql(pg, sql) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char sql[512];
    if (other) /* a failed test_send_records: let its lock go */
        pg_destroy(other);
    snprintf(sql, sizeof(sql), "DROP TRIGGER IF EXISTS nb_count_%s ON notifications", tag);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DROP FUNCTION IF EXISTS nb_count_%s()", tag);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS nb_stmts_%s", tag);
    itest_sql(pg, sql);
    /* nothing of this test is left for a notifier of another test to send */
    snprintf(sql, sizeof(sql),
             "DELETE FROM notifications WHERE case_id IN (SELECT id FROM cases WHERE case_no "
             "LIKE 'NB-%s-%%')",
             tag);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql),
             "DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE case_no "
             "LIKE 'NB-%s-%%')",
             tag);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM inbox WHERE consumer = '%s'", group);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM outbox WHERE producer = '%s' OR producer = "
             "'notifier' AND msg_key IN (SELECT id::text FROM cases WHERE case_no LIKE 'NB-%s-%%')",
             group, tag);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM cases WHERE case_no LIKE 'NB-%s-%%'", tag);
    itest_sql(pg, sql);
    notify_gather_free(&nt);
    notify_config_free(&nt.cfg);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gathered),
        cmocka_unit_test(test_cases_read_at_claim),
        cmocka_unit_test(test_refused_notice),
        cmocka_unit_test(test_send_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
