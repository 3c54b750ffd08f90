/*
 * Integration: the notifier's SMS and e-mail channels, quiet hours,
 * emergencies, giving up (NotificationFailed + DLQ) and erased contact data,
 * with kesu-notifier as a real process, a real HTTP SMS gateway sink and a
 * real SMTP server (test_notify_harness.h). Contact data is encrypted with
 * the test's own PII key exactly as intake stores it.
 *
 * Quiet hours are set to a window around the current time, so:
 *  - a normal case's receipt SMS is held (no gateway call, next_attempt_at
 *    = the end of the window, held_at set, attempts 0);
 *  - an emergency case's SMS goes out at once with the decrypted phone and
 *    the bearer token; its CaseClassified pages the supervisor (staff
 *    webhook, audience supervisor) while a normal CaseClassified pages nobody;
 *  - e-mail is not held: an English-speaking complainant gets an English
 *    message through SMTP, addressed to the decrypted address;
 *  - a webhook that always fails is given up after max_attempts (2):
 *    state failed, NotificationFailed in the history, and a kesu.dlq.v1
 *    message naming the notification;
 *  - after `kesu_complainant_purge` no notice is queued for the complainant
 *    and the erasure is in pii_erasures; a reply queued before the purge
 *    fails at once (no retries) and the case moves to replied on "none".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "test_notify_harness.h"

#define PII_KEY   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SMS_TOKEN "itest-sms-token"

static crypto_keys_t keys;
static char quiet[16], sms_url[160], smtp_url[96];
static int64_t quiet_end_ms;

/* "\\x..." bytea text of plain encrypted under the test key */
static char *enc_hex(const char *plain)
{
    uint8_t *ct = NULL;
    size_t n = 0;
    char err[128];
    assert_int_equal(
        crypto_encrypt(&keys, (const uint8_t *)plain, strlen(plain), &ct, &n, err, sizeof(err)), 0);
    char *hex = malloc(2 * n + 3);
    memcpy(hex, "\\x", 2);
    util_hex(ct, n, hex + 2);
    free(ct);
    return hex;
}

static void emit_received(const tcase_t *c)
{
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    cr.channel = "phone";
    cr.has_contact = 1;
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
    free(emit(c, &pe, NULL, NULL, &len));
}

static void emit_classified(const tcase_t *c, const char *urgency, const char *flag)
{
    proto_env_t pe;
    size_t len;
    Kesu__V1__CaseClassified cc = KESU__V1__CASE_CLASSIFIED__INIT;
    char *flags[1] = {(char *)flag};
    cc.domain = "sanitation";
    cc.category = "facilities";
    cc.urgency = (char *)urgency;
    cc.n_flags = flag ? 1 : 0;
    cc.flags = flag ? flags : NULL;
    proto_env_init(&pe, producer);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED, &cc.base);
    free(emit(c, &pe, NULL, NULL, &len));
}

static char sms_label[48];

static void test_quiet_hours_hold_normal_sms(void **state)
{
    (void)state;
    tcase_t c;
    char *ph = enc_hex("13800001111");
    tperson_t p = {.phone_hex = ph};
    make_case_as(&c, "quiet", &p);
    emit_received(&c);
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND held_at IS NOT NULL",
             c.id, 60000);
    wait_consumed();
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 AND channel = 'sms' "
                        "AND state = 'pending' AND attempts = 0 AND NOT urgent",
                        c.id),
                     1);
    long long due = q1("SELECT (EXTRACT(EPOCH FROM next_attempt_at) * 1000)::bigint FROM "
                       "notifications WHERE case_id = $1",
                       c.id);
    /* held until the window ends, not retried in a hot loop */
    assert_true(llabs(due - quiet_end_ms) < 1000);
    /* nothing reached the gateway for it */
    sink_label_t got;
    sink_calls(sms_label, &got);
    assert_null(strstr(got.last_body, c.no));
    free(ph);
}

static void test_emergency_sms_at_once_and_supervisor_paged(void **state)
{
    (void)state;
    tcase_t c, normal;
    char *ph = enc_hex("13912345678");
    char staff[48];
    tperson_t p = {.phone_hex = ph, .urgency = "emergency"};
    tperson_t q = {.phone_hex = ph};
    make_case_as(&c, "emergency", &p);
    int before = sink_calls(sms_label, NULL);
    emit_received(&c);
    wait_calls(sms_label, before + 1, 60000);
    sink_label_t got;
    sink_calls(sms_label, &got);
    json_t *b = json_loads(got.last_body, 0, NULL);
    assert_non_null(b);
    /* the gateway gets the decrypted number; nowhere else is it in clear */
    assert_string_equal(json_string_value(json_object_get(b, "to")), "13912345678");
    assert_non_null(strstr(json_string_value(json_object_get(b, "text")), c.no));
    assert_string_equal(got.auth, "Bearer " SMS_TOKEN);
    json_decref(b);
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND state = 'sent' AND urgent "
             "AND channel = 'sms' AND held_at IS NULL",
             c.id, 10000);
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 AND "
                        "(COALESCE(target, '') LIKE '%13912345678%' OR body LIKE '%13912345678%')",
                        c.id),
                     0);

    /* CaseClassified of an emergency pages the supervisor; a normal one does not */
    snprintf(staff, sizeof(staff), "staff-%s", tag);
    int staff_before = sink_calls(staff, NULL);
    make_case_as(&normal, "normal", &q);
    emit_classified(&normal, "normal", NULL);
    emit_classified(&c, "emergency", "public_safety");
    wait_calls(staff, staff_before + 1, 60000);
    sink_calls(staff, &got);
    b = json_loads(got.last_body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "audience")), "supervisor");
    assert_string_equal(json_string_value(json_object_get(b, "case_no")), c.no);
    assert_string_equal(json_string_value(json_object_get(b, "template")), "emergency.supervisor");
    assert_non_null(strstr(json_string_value(json_object_get(b, "text")), "紧急"));
    json_decref(b);
    wait_consumed();
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 AND "
                        "audience = 'supervisor'",
                        normal.id),
                     0);
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1 AND "
                        "audience = 'supervisor' AND urgent",
                        c.id),
                     1);
    free(ph);
}

/* base64 between "=?UTF-8?B?" and "?=" decoded */
static void subject_of(const char *msg, char *out, size_t n)
{
    const char *s = strstr(msg, "Subject: =?UTF-8?B?");
    assert_non_null(s);
    s += strlen("Subject: =?UTF-8?B?");
    const char *e = strstr(s, "?=");
    assert_non_null(e);
    unsigned char buf[512];
    int k = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)(e - s));
    assert_true(k > 0);
    while (e > s && e[-1] == '=') {
        e--;
        k--;
    }
    snprintf(out, n, "%.*s", k, (const char *)buf);
}

static void test_email_in_english(void **state)
{
    (void)state;
    tcase_t c;
    char *em = enc_hex("li.si@example.com");
    tperson_t p = {.email_hex = em, .language = "en"};
    smtp_msg_t m;
    char subject[256];
    make_case_as(&c, "email", &p);
    emit_received(&c);
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND channel = 'email' "
             "AND state = 'sent' AND language = 'en'",
             c.id, 60000);
    assert_true(smtp_find("li.si@example.com", &m));
    assert_non_null(strstr(m.rcpt, "<li.si@example.com>"));
    assert_non_null(strstr(m.from, "<noreply@kesu.example.gov.cn>"));
    assert_non_null(strstr(m.data, "To: <li.si@example.com>"));
    subject_of(m.data, subject, sizeof(subject));
    char want[128];
    snprintf(want, sizeof(want), "12345 hotline: case %s", c.no);
    assert_string_equal(subject, want);
    /* the stored body is the English template, rendered */
    char *body = qs("SELECT body FROM notifications WHERE case_id = $1", c.id);
    assert_non_null(strstr(body, "we have received"));
    assert_non_null(strstr(body, c.no));
    assert_non_null(strstr(body, "https://12345.example.gov.cn/status?case="));
    free(body);
    free(em);
}

typedef struct dlq_find {
    const char *nid;
    int found;
    char error[256];
} dlq_find_t;

static void dlq_cb(const rd_kafka_message_t *m, void *arg)
{
    dlq_find_t *f = arg;
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_header_get_last(h, "dlq_notification_id", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        n == strlen(f->nid) && memcmp(v, f->nid, n) == 0) {
        f->found++;
        if (rd_kafka_header_get_last(h, "dlq_error", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR)
            snprintf(f->error, sizeof(f->error), "%.*s", (int)n, (const char *)v);
    }
}

static void test_given_up_to_dlq(void **state)
{
    (void)state;
    tcase_t c;
    tperson_t p = {.webhook = 1};
    char name[160];
    make_case_as(&c, "dead", &p);
    sink_fail_first(c.label, 1000);
    emit_received(&c);
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND state = 'failed'", c.id,
             60000);
    assert_int_equal(sink_calls(c.label, NULL), 2); /* max_attempts */
    wait_sql("SELECT count(*) FROM case_events WHERE case_id = $1 AND "
             "event_type = 'NotificationFailed'",
             c.id, 10000);
    char *att = qs("SELECT summary->>'attempts' FROM case_events WHERE case_id = $1 AND "
                   "event_type = 'NotificationFailed'",
                   c.id);
    assert_string_equal(att, "2");
    free(att);
    char *nid = qs("SELECT id FROM notifications WHERE case_id = $1", c.id);
    dlq_find_t f = {nid, 0, ""};
    snprintf(name, sizeof(name), "%skesu.dlq.v1", prefix);
    itest_consume_all(name, 3000, dlq_cb, &f);
    assert_int_equal(f.found, 1);
    assert_non_null(strstr(f.error, "HTTP 500"));
    free(nid);
}

static void test_erased_complainant_gets_nothing(void **state)
{
    (void)state;
    tcase_t c;
    char *ph = enc_hex("13700002222");
    tperson_t p = {.phone_hex = ph, .webhook = 1};
    make_case_as(&c, "erased", &p);
    assert_int_equal(q1("SELECT count(*) FROM (SELECT kesu_complainant_purge(complainant_id, "
                        "'request', 'itest', 'on request') AS ok FROM cases WHERE id = $1) x "
                        "WHERE ok",
                        c.id),
                     1);
    /* a second purge finds nothing left to do */
    assert_int_equal(q1("SELECT count(*) FROM (SELECT kesu_complainant_purge(complainant_id, "
                        "'request', 'itest', 'again') AS ok FROM cases WHERE id = $1) x WHERE ok",
                        c.id),
                     0);
    assert_int_equal(q1("SELECT count(*) FROM complainants p JOIN cases c ON c.complainant_id = "
                        "p.id WHERE c.id = $1 AND p.phone_enc IS NULL AND p.webhook_url IS NULL "
                        "AND p.purged_at IS NOT NULL",
                        c.id),
                     1);
    assert_int_equal(q1("SELECT count(*) FROM pii_erasures e JOIN cases c ON c.complainant_id = "
                        "e.complainant_id WHERE c.id = $1 AND c.case_no = ANY (e.case_nos) AND "
                        "e.kind = 'request'",
                        c.id),
                     1);
    emit_received(&c);
    wait_consumed();
    assert_int_equal(q1("SELECT count(*) FROM notifications WHERE case_id = $1", c.id), 0);
    assert_int_equal(sink_calls(c.label, NULL), 0);
    free(ph);
}

static void test_erased_after_queueing(void **state)
{
    (void)state;
    tcase_t c;
    tperson_t p = {.webhook = 1};
    static const char *const to_resolved[] = {"classified", "assigned", "accepted", "resolved",
                                              NULL};
    char url[160], trig[37];
    make_case_as(&c, "erased-late", &p);
    move_case(&c, to_resolved);
    /* the reply notice as the handler queues it, due a moment later */
    util_uuid(trig);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/%s", sink.port, c.label);
    const char *v[3] = {c.id, trig, url};
    exec_params("INSERT INTO notifications (case_id, trigger_event_id, event_type, channel, "
                "audience, template, target, body, next_attempt_at) VALUES ($1, $2, "
                "'CaseResolved', 'webhook', 'complainant', 'case_resolved.reply', $3, 'x', "
                "now() + interval '1 second')",
                3, v);
    assert_int_equal(q1("SELECT count(*) FROM (SELECT kesu_complainant_purge(complainant_id, "
                        "'request', 'itest', 'on request') AS ok FROM cases WHERE id = $1) x "
                        "WHERE ok",
                        c.id),
                     1);
    /* failed at the first attempt (no retries), and the case moves on */
    wait_sql("SELECT count(*) FROM notifications WHERE case_id = $1 AND state = 'failed' AND "
             "attempts = 1 AND target IS NULL",
             c.id, 30000);
    wait_sql("SELECT count(*) FROM cases WHERE id = $1 AND status = 'replied'", c.id, 10000);
    char *ch = qs("SELECT summary->>'channel' FROM case_events WHERE case_id = $1 AND "
                  "event_type = 'ReplySent'",
                  c.id);
    assert_non_null(ch);
    assert_string_equal(ch, "none");
    free(ch);
    assert_int_equal(sink_calls(c.label, NULL), 0);
}

static int setup(void **state)
{
    (void)state;
    char err[128];
    if (crypto_keys_load(&keys, PII_KEY, err, sizeof(err)) != 0)
        return -1;
    /* a quiet window of two hours around now, in Asia/Shanghai */
    int64_t now = util_now_ms();
    int m = (int)(((now / 60000 + 480) % 1440 + 1440) % 1440);
    int s = (m + 1440 - 60) % 1440, e = (m + 60) % 1440;
    snprintf(quiet, sizeof(quiet), "%02d:%02d-%02d:%02d", s / 60, s % 60, e / 60, e % 60);
    quiet_end_ms = notify_quiet_until(now, s, e, 480);
    if (quiet_end_ms <= now)
        return -1;
    /* the sink and SMTP ports are known only after they start: start them
     * first and give the notifier their URLs */
    if (sink_start() != 0 || smtp_start() != 0)
        return -1;
    return 0;
}

static int harness_with_channels(void)
{
    snprintf(sms_url, sizeof(sms_url), "http://127.0.0.1:%d/sms/gw", sink.port);
    snprintf(sms_label, sizeof(sms_label), "gw");
    snprintf(smtp_url, sizeof(smtp_url), "smtp://127.0.0.1:%d", smtp.port);
    const char *extra[] = {"--pii.key",          PII_KEY,     "--notify.sms_url",
                           sms_url,              "--notify.sms_token", SMS_TOKEN,
                           "--notify.smtp_url",  smtp_url,    "--notify.quiet_hours",
                           quiet,                "--notify.max_attempts", "2",
                           NULL};
    return harness_setup(extra);
}

static int group_setup(void **state)
{
    if (setup(state) != 0)
        return -1;
    return harness_with_channels();
}

static int group_teardown(void **state)
{
    (void)state;
    crypto_keys_wipe(&keys);
    return harness_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_hours_hold_normal_sms),
        cmocka_unit_test(test_emergency_sms_at_once_and_supervisor_paged),
        cmocka_unit_test(test_email_in_english),
        cmocka_unit_test(test_given_up_to_dlq),
        cmocka_unit_test(test_erased_complainant_gets_nothing),
        cmocka_unit_test(test_erased_after_queueing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
