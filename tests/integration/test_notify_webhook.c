/*
 * Integration: kesu-notifier as a real process against the real PostgreSQL
 * and Kafka, with a real HTTP sink (test_notify_harness.h) that counts the
 * webhook calls and checks their signature.
 *
 * The notifier reads a fresh topic of its own (notify.topics) in a fresh
 * consumer group, so other engineers' events on kesu.intake.v1 never reach
 * it. Cases are inserted directly; their events are appended with
 * casestore (history + outbox row) and published by an outbox relay, as a
 * stage would. Checked:
 *  - CaseReceived: exactly one signed webhook call with the notification id
 *    as Idempotency-Key, the row sent, NotificationSent in the history; the
 *    same envelope produced again sends nothing new;
 *  - CaseResolved: the first call answered 500 is retried with the same
 *    Idempotency-Key, then the case is resolved -> replied with ReplySent;
 *  - an anonymous complainant's CaseResolved: replied at once, channel none;
 *  - staff notice (CaseAssigned) to the staff webhook with the department's
 *    name, and a complainant without a webhook served by the log channel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_notify_harness.h"

/* ---------------------------------------------------------------- tests */

static void test_receipt_sent_once(void **state)
{
    (void)state;
    tcase_t c;
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    sink_label_t got;
    char *nid;

    make_case(&c, "receipt", 1);
    cr.channel = "web";
    cr.title = "itest";
    cr.body = "itest body";
    cr.has_contact = 1;
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
    uint8_t *buf = emit(&c, &pe, NULL, NULL, &len);

    wait_calls(c.label, 1, 60000);
    wait_sql("SELECT count(*) FROM case_events WHERE case_id = $1 "
             "AND event_type = 'NotificationSent'",
             c.id, 10000);
    sink_calls(c.label, &got);
    assert_int_equal(got.bad_sig, 0);
    nid = qs("SELECT id FROM notifications WHERE case_id = $1 AND state = 'sent'", c.id);
    assert_non_null(nid);
    assert_string_equal(got.idem[0], nid);

    json_t *body = json_loads(got.last_body, 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "notification_id")), nid);
    assert_string_equal(json_string_value(json_object_get(body, "case_no")), c.no);
    assert_string_equal(json_string_value(json_object_get(body, "event_type")), "CaseReceived");
    assert_string_equal(json_string_value(json_object_get(body, "audience")), "complainant");
    assert_string_equal(json_string_value(json_object_get(body, "template")),
                        "case_received.complainant");
    assert_non_null(strstr(json_string_value(json_object_get(body, "text")), c.no));
    assert_non_null(json_string_value(json_object_get(body, "sent_at")));
    json_decref(body);
    free(nid);

    /* NotificationSent names the trigger */
    char *summary = qs("SELECT summary->>'trigger_event_id' FROM case_events WHERE case_id = $1 "
                       "AND event_type = 'NotificationSent'",
                       c.id);
    assert_non_null(summary);
    assert_string_equal(summary, pe.event_id);
    free(summary);

    /* the same envelope again: the inbox makes it a no-op */
    assert_int_equal(itest_produce(topic, c.id, buf, len), 0);
    produced++;
    free(buf);
    wait_consumed();
    util_sleep_ms(1000); /* several ticks */
    assert_int_equal(sink_calls(c.label, NULL), 1);
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1", c.id), 1);
    assert_int_equal(q1("SELECT count(*) FROM case_events WHERE case_id = $1 "
                        "AND event_type = 'NotificationSent'",
                        c.id),
                     1);
}

/* a history line the case store refuses (here: a trigger raising for one
 * case) costs that line only: the notice stays sent and counts as recorded,
 * and the other outcomes of the batch keep theirs */
static void test_refused_history_line(void **state)
{
    (void)state;
    tcase_t a, b;
    proto_env_t pe;
    size_t len;
    char sql[640];
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;

    make_case(&a, "refused", 1);
    make_case(&b, "kept", 1);
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION itest_refuse_%s() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
             "IF NEW.case_id = '%s' AND NEW.event_type = 'NotificationSent' THEN "
             "RAISE EXCEPTION 'itest refuses this line'; END IF; RETURN NEW; END $f$",
             tag, a.id);
    exec_params(sql, 0, NULL);
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER itest_refuse_%s BEFORE INSERT ON case_events FOR EACH ROW "
             "EXECUTE FUNCTION itest_refuse_%s()",
             tag, tag);
    exec_params(sql, 0, NULL);

    cr.channel = "web";
    cr.title = "itest";
    cr.body = "itest body";
    cr.has_contact = 1;
    const tcase_t *both[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        proto_env_init(&pe, producer);
        proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
        free(emit(both[i], &pe, NULL, NULL, &len));
    }
    wait_calls(a.label, 1, 60000);
    wait_calls(b.label, 1, 60000);
    wait_sql("SELECT count(*) FROM case_events WHERE case_id = $1 "
             "AND event_type = 'NotificationSent'",
             b.id, 10000);
    wait_sql("SELECT (count(*) > 0 AND count(*) = count(recorded_at))::int FROM notifications "
             "WHERE case_id = $1",
             a.id, 10000);

    snprintf(sql, sizeof(sql), "DROP TRIGGER itest_refuse_%s ON case_events", tag);
    exec_params(sql, 0, NULL);
    snprintf(sql, sizeof(sql), "DROP FUNCTION itest_refuse_%s()", tag);
    exec_params(sql, 0, NULL);

    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 AND state = 'sent' "
                        "AND recorded_at IS NOT NULL",
                        a.id),
                     1);
    assert_int_equal(q1("SELECT count(*) FROM case_events WHERE case_id = $1 "
                        "AND event_type = 'NotificationSent'",
                        a.id),
                     0);
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 "
                        "AND recorded_at IS NOT NULL",
                        b.id),
                     1);
    /* nothing sent twice */
    util_sleep_ms(500);
    assert_int_equal(sink_calls(a.label, NULL), 1);
    assert_int_equal(sink_calls(b.label, NULL), 1);
}

static const char *const to_accepted[] = {"classified", "assigned", "accepted", NULL};

static void test_reply_retried_then_replied(void **state)
{
    (void)state;
    tcase_t c;
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseResolved rs = KESU__V1__CASE_RESOLVED__INIT;
    static const char *const from[] = {"accepted", "in_progress", NULL};
    sink_label_t got;

    make_case(&c, "reply", 1);
    move_case(&c, to_accepted);
    const char *v[2] = {c.id, "已安排清运，今后每日清运两次。"};
    exec_params("UPDATE cases SET reply = $2 WHERE id = $1", 2, v);
    sink_fail_first(c.label, 1);
    rs.measures = "explanation";
    rs.reply = "已安排清运，今后每日清运两次。";
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &rs.base);
    free(emit(&c, &pe, from, "resolved", &len));

    wait_calls(c.label, 2, 60000);
    wait_sql("SELECT count(*) FROM cases WHERE id = $1 AND status = 'replied'", c.id, 10000);
    sink_calls(c.label, &got);
    assert_int_equal(got.calls, 2);
    assert_int_equal(got.bad_sig, 0);
    assert_string_equal(got.idem[0], got.idem[1]); /* the retry is the same notice */
    json_t *body = json_loads(got.last_body, 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "event_type")), "CaseResolved");
    assert_non_null(strstr(json_string_value(json_object_get(body, "text")), "每日清运两次"));
    json_decref(body);

    assert_int_equal(q1("SELECT attempts FROM notifications WHERE case_id = $1", c.id), 2);
    char *ch = qs("SELECT summary->>'channel' FROM case_events WHERE case_id = $1 "
                  "AND event_type = 'ReplySent'",
                  c.id);
    assert_non_null(ch);
    assert_string_equal(ch, "webhook");
    free(ch);
    /* history order: CaseResolved, NotificationSent, ReplySent */
    char *order = qs("SELECT string_agg(event_type, ',' ORDER BY seq) FROM case_events "
                     "WHERE case_id = $1",
                     c.id);
    assert_string_equal(order, "CaseResolved,NotificationSent,ReplySent");
    free(order);
}

static void test_anonymous_reply_channel_none(void **state)
{
    (void)state;
    tcase_t c;
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseResolved rs = KESU__V1__CASE_RESOLVED__INIT;
    static const char *const from[] = {"accepted", NULL};

    make_case(&c, "anon", -1);
    move_case(&c, to_accepted);
    rs.measures = "explanation";
    rs.reply = "已处理";
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &rs.base);
    free(emit(&c, &pe, from, "resolved", &len));

    wait_sql("SELECT count(*) FROM cases WHERE id = $1 AND status = 'replied'", c.id, 60000);
    char *ch = qs("SELECT summary->>'channel' FROM case_events WHERE case_id = $1 "
                  "AND event_type = 'ReplySent'",
                  c.id);
    assert_non_null(ch);
    assert_string_equal(ch, "none");
    free(ch);
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1", c.id), 0);
    assert_int_equal(sink_calls(c.label, NULL), 0);
}

static void test_staff_webhook_and_log_channel(void **state)
{
    (void)state;
    tcase_t staff, logc;
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    char label[48];
    sink_label_t got;

    make_case(&staff, "staff", 1);
    ca.department = dept;
    ca.attempt = 1;
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca.base);
    free(emit(&staff, &pe, NULL, NULL, &len));
    snprintf(label, sizeof(label), "staff-%s", tag);
    wait_calls(label, 1, 60000);
    sink_calls(label, &got);
    assert_int_equal(got.bad_sig, 0);
    json_t *body = json_loads(got.last_body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "audience")), "handler");
    assert_string_equal(json_string_value(json_object_get(body, "case_no")), staff.no);
    assert_non_null(strstr(json_string_value(json_object_get(body, "text")), "集成测试局"));
    json_decref(body);
    /* a staff notice never goes to the complainant's webhook */
    assert_int_equal(sink_calls(staff.label, NULL), 0);

    make_case(&logc, "log", 0);
    cr.channel = "phone";
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
    free(emit(&logc, &pe, NULL, NULL, &len));
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND channel = 'log' "
             "AND state = 'sent'",
             logc.id, 60000);
    assert_int_equal(sink_calls(logc.label, NULL), 0);
}

/* ------------------------------------------------------- setup/teardown */

static int setup(void **state)
{
    (void)state;
    return harness_setup(NULL);
}

static int teardown(void **state)
{
    (void)state;
    return harness_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_sent_once),
        cmocka_unit_test(test_refused_history_line),
        cmocka_unit_test(test_reply_retried_then_replied),
        cmocka_unit_test(test_anonymous_reply_channel_none),
        cmocka_unit_test(test_staff_webhook_and_log_channel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
