/*
 * Integration: kesu-notifier as a real process against the real PostgreSQL
 * and Kafka, with a real HTTP sink (common/http.h on a free port, in a
 * thread) that counts the webhook calls and checks their signature.
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

#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "casestore.h"
#include "http.h"
#include "itest.h"
#include "kafka.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"

#define SECRET     "itest-webhook-secret"
#define MAX_LABELS 16

static char topic[128], group[96], producer[64], tag[9], dept[48];
static pg_t *pg;
static config_t cfg;
static rd_kafka_t *rk;
static outbox_relay_t *relay;
static pid_t notifier_pid = -1;
static int produced; /* messages on the test topic */

/* ------------------------------------------------------------ the sink */

typedef struct sink_label {
    char name[40];    /* the {} of /hook/{} */
    int calls;        /* requests seen */
    int fail_first;   /* answer 500 to this many first */
    int bad_sig;      /* requests whose signature did not match */
    char idem[8][64]; /* Idempotency-Key of each call */
    char last_body[4096];
} sink_label_t;

static struct {
    pthread_mutex_t lock;
    sink_label_t labels[MAX_LABELS];
    int n;
    struct event_base *evb;
    http_server_t *srv;
    struct event *stop_ev;
    pthread_t thr;
    int port;
} sink = {.lock = PTHREAD_MUTEX_INITIALIZER};

static sink_label_t *sink_label(const char *name)
{
    for (int i = 0; i < sink.n; i++)
        if (strcmp(sink.labels[i].name, name) == 0)
            return &sink.labels[i];
    assert_true(sink.n < MAX_LABELS);
    sink_label_t *l = &sink.labels[sink.n++];
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "%s", name);
    return l;
}

static void sink_hook(http_req_t *r, void *opaque)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    const char *sig = http_req_header(r, "X-Kesu-Signature");
    const char *idem = http_req_header(r, "Idempotency-Key");
    char want[72];
    int status;
    notify_sign(SECRET, body, len, want);
    pthread_mutex_lock(&sink.lock);
    sink_label_t *l = sink_label(http_req_param(r, 0));
    if (!sig || strcmp(sig, want) != 0)
        l->bad_sig++;
    if (l->calls < 8)
        snprintf(l->idem[l->calls], sizeof(l->idem[0]), "%s", idem ? idem : "");
    snprintf(l->last_body, sizeof(l->last_body), "%.*s", (int)len, body);
    l->calls++;
    status = l->calls <= l->fail_first ? 500 : 200;
    pthread_mutex_unlock(&sink.lock);
    http_reply_json(r, status, json_pack("{s:b}", "ok", status == 200));
}

static const http_route_t sink_routes[] = {
    {"POST", "/hook/{}", sink_hook},
    {NULL, NULL, NULL},
};

static void sink_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void *sink_main(void *arg)
{
    event_base_dispatch(sink.evb);
    return NULL;
}

static int sink_calls(const char *name, sink_label_t *copy)
{
    pthread_mutex_lock(&sink.lock);
    sink_label_t *l = sink_label(name);
    int n = l->calls;
    if (copy)
        *copy = *l;
    pthread_mutex_unlock(&sink.lock);
    return n;
}

static void sink_fail_first(const char *name, int n)
{
    pthread_mutex_lock(&sink.lock);
    sink_label(name)->fail_first = n;
    pthread_mutex_unlock(&sink.lock);
}

/* ------------------------------------------------------------- helpers */

static int wait_for(int (*cond)(const void *), const void *arg, int timeout_ms)
{
    int64_t end = util_mono_ms() + timeout_ms;
    while (util_mono_ms() < end) {
        if (cond(arg))
            return 1;
        util_sleep_ms(50);
    }
    return cond(arg);
}

static long long q1(const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, v, NULL, NULL, 0);
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atoll(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "query failed: %s: %s\n", sql, PQresultErrorMessage(res));
    PQclear(res);
    return n;
}

static char *qs(const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, v, NULL, NULL, 0);
    char *s = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

static void exec_params(const char *sql, int n, const char *const *v)
{
    PGresult *res = PQexecParams(pg->conn, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

typedef struct tcase {
    char id[37];
    char no[40];
    char label[40];
} tcase_t;

/* a case (status received) whose complainant has the sink as webhook
 * (webhook=1), only a phone (webhook=0), or who is anonymous (webhook=-1) */
static void make_case(tcase_t *c, const char *label, int webhook)
{
    char cid[37], url[128];
    util_uuid(c->id);
    util_uuid(cid);
    snprintf(c->no, sizeof(c->no), "ITN-%s-%s", tag, label);
    snprintf(c->label, sizeof(c->label), "%s-%s", tag, label);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/%s", sink.port, c->label);
    if (webhook >= 0) {
        const char *v[2] = {cid, webhook ? url : NULL};
        exec_params("INSERT INTO complainants (id, phone_enc, webhook_url) "
                    "VALUES ($1, '\\x01'::bytea, $2)",
                    2, v);
    }
    const char *v[4] = {c->id, c->no, webhook >= 0 ? cid : NULL, webhook < 0 ? "t" : "f"};
    exec_params("INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, "
                "trace_id, complainant_id, anonymous) VALUES ($1, $2, '\\x00'::bytea, 'web', "
                "'itest', 'itest body', 'itest-trace', $3, $4::boolean)",
                4, v);
}

/* walk the case along the transition table to status */
static void move_case(const tcase_t *c, const char *const *statuses)
{
    for (const char *const *s = statuses; *s; s++) {
        const char *v[2] = {c->id, *s};
        exec_params("UPDATE cases SET status = $2, version = version + 1 WHERE id = $1", 2, v);
    }
}

/* publish everything the test producer has in the outbox */
static void relay_all(void)
{
    char err[512];
    for (int i = 0; i < 50; i++) {
        int n = outbox_relay_once(relay, err, sizeof(err));
        if (n < 0)
            fail_msg("relay: %s", err);
        if (n == 0)
            return;
        produced += n;
    }
}

/* append an event through casestore (status change when to != NULL), publish
 * it, and return its packed envelope for a later redelivery */
static uint8_t *emit(const tcase_t *c, proto_env_t *pe, const char *const *from, const char *to,
                     size_t *len)
{
    char err[512];
    casestore_result_t res;
    casestore_change_t ch = {.case_id = c->id,
                             .from = from,
                             .to = to,
                             .producer = producer,
                             .actor = "itest",
                             .topic = topic};
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    int rc = to ? casestore_apply(pg, &ch, pe, &res, err, sizeof(err))
                : casestore_append(pg, c->id, producer, "itest", topic, pe, &res, err, sizeof(err));
    if (rc != CASESTORE_OK)
        fail_msg("casestore: %s", err);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    relay_all();
    return proto_env_pack(&pe->env, len);
}

static int64_t committed_offset(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0);
    int64_t off = -1;
    if (rd_kafka_committed(c, parts, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        off = parts->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(c);
    return off;
}

typedef struct calls_arg {
    const char *label;
    int n;
} calls_arg_t;

static int cond_calls(const void *arg)
{
    const calls_arg_t *a = arg;
    return sink_calls(a->label, NULL) >= a->n;
}

static void wait_calls(const char *label, int n, int timeout_ms)
{
    calls_arg_t a = {label, n};
    if (!wait_for(cond_calls, &a, timeout_ms))
        fail_msg("sink %s: %d calls after %d ms, want %d", label, sink_calls(label, NULL),
                 timeout_ms, n);
}

static int cond_sql_true(const void *arg)
{
    const char *const *a = arg;
    return q1(a[0], a[1]) > 0;
}

static void wait_sql(const char *sql, const char *param, int timeout_ms)
{
    const char *a[2] = {sql, param};
    if (!wait_for(cond_sql_true, a, timeout_ms))
        fail_msg("not true after %d ms: %s [%s]", timeout_ms, sql, param);
}

static int cond_committed(const void *arg)
{
    return committed_offset() >= *(const int *)arg;
}

/* the notifier consumed (and committed) everything produced so far */
static void wait_consumed(void)
{
    if (!wait_for(cond_committed, &produced, 30000))
        fail_msg("notifier did not commit offset %d (at %lld)", produced,
                 (long long)committed_offset());
}

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
    char err[512], uuid[37], port[16], url[160];
    const char *bin_dir = getenv("KESU_BIN_DIR");
    char bin[512];

    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    if (itest_scalar(pg, "SELECT count(*) FROM information_schema.columns WHERE "
                         "table_name = 'notifications' AND column_name = 'event_type'") != 1) {
        fprintf(stderr, "the database lacks 0004_tail.sql: run kesuctl migrate\n");
        return -1;
    }
    util_uuid(uuid);
    snprintf(tag, sizeof(tag), "%.8s", uuid);
    snprintf(group, sizeof(group), "kesu-notifier-itest-%s", tag);
    snprintf(producer, sizeof(producer), "itest-notify-%s", tag);
    snprintf(dept, sizeof(dept), "itest-dept-%s", tag);
    if (itest_topic_create("kesu.itest.notify", 1, topic, sizeof(topic)) != 0)
        return -1;

    /* the sink */
    assert_int_equal(http_threads_init(), 0);
    sink.evb = event_base_new();
    sink.srv = http_server_new(sink.evb, "127.0.0.1:0", sink_routes, NULL, 0, err, sizeof(err));
    if (!sink.srv) {
        fprintf(stderr, "sink: %s\n", err);
        return -1;
    }
    sink.port = http_server_port(sink.srv);
    sink.stop_ev = event_new(sink.evb, -1, 0, sink_stop_cb, sink.evb);
    pthread_create(&sink.thr, NULL, sink_main, NULL);

    const char *dv[2] = {dept, "集成测试局"};
    exec_params("INSERT INTO departments (code, name) VALUES ($1, $2)", 2, dv);

    /* the stage side: a producer and a relay for the test's outbox rows */
    itest_config(&cfg);
    rk = kafka_producer_new(&cfg, err, sizeof(err));
    relay = rk ? outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err)) : NULL;
    if (!relay) {
        fprintf(stderr, "relay: %s\n", err);
        return -1;
    }

    /* the notifier */
    snprintf(bin, sizeof(bin), "%s/kesu-notifier",
             bin_dir && *bin_dir ? bin_dir : KESU_SOURCE_DIR "/build/bin");
    snprintf(port, sizeof(port), "%d", sink.port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/staff-%s", sink.port, tag);
    char kafka[256];
    snprintf(kafka, sizeof(kafka), "bootstrap.servers=%s", itest_kafka());
    char *const argv[] = {bin,
                          "--pg",
                          (char *)itest_pg(),
                          "--ops.listen",
                          "",
                          "--group",
                          group,
                          "--notify.topics",
                          topic,
                          "--notify.webhook_secret",
                          SECRET,
                          "--notify.staff_webhook_url",
                          url,
                          "--notify.tick_ms",
                          "50",
                          "--notify.backoff_base_ms",
                          "200",
                          "--notify.backoff_cap_ms",
                          "1000",
                          "-X",
                          kafka,
                          NULL};
    notifier_pid = fork();
    if (notifier_pid == 0) {
        execv(bin, argv);
        fprintf(stderr, "cannot run %s\n", bin);
        _exit(127);
    }
    return notifier_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int status = -1, code = 0;
    if (notifier_pid > 0) {
        kill(notifier_pid, SIGTERM);
        for (int i = 0; i < 300; i++) {
            if (waitpid(notifier_pid, &status, WNOHANG) == notifier_pid)
                break;
            util_sleep_ms(100);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "kesu-notifier did not exit cleanly (status %d)\n", status);
            kill(notifier_pid, SIGKILL);
            waitpid(notifier_pid, &status, 0);
            code = -1;
        }
    }
    if (relay)
        outbox_relay_stop(relay, 2000);
    if (rk)
        kafka_producer_close(rk, 2000);
    if (sink.stop_ev) {
        event_active(sink.stop_ev, EV_READ, 0);
        pthread_join(sink.thr, NULL);
        http_server_free(sink.srv);
        event_free(sink.stop_ev);
        event_base_free(sink.evb);
    }
    if (pg && pg->conn) {
        /* leave no test cases behind in a shared database (best effort) */
        char like[64];
        snprintf(like, sizeof(like), "ITN-%s-%%", tag);
        const char *v[1] = {like};
        static const char *const cleanup[] = {
            "DELETE FROM notifications WHERE case_id IN (SELECT id FROM cases WHERE case_no LIKE "
            "$1)",
            "DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE case_no LIKE $1)",
            "DELETE FROM public_feed_pending WHERE case_id IN (SELECT id FROM cases WHERE case_no "
            "LIKE $1)",
            "DELETE FROM public_feed_state WHERE case_id IN (SELECT id FROM cases WHERE case_no "
            "LIKE $1)",
            "WITH d AS (DELETE FROM cases WHERE case_no LIKE $1 RETURNING complainant_id) "
            "DELETE FROM complainants WHERE id IN (SELECT complainant_id FROM d)",
        };
        for (size_t i = 0; i < sizeof(cleanup) / sizeof(cleanup[0]); i++) {
            PGresult *res = PQexecParams(pg->conn, cleanup[i], 1, NULL, v, NULL, NULL, 0);
            PQclear(res);
        }
        const char *dv[1] = {dept};
        PQclear(PQexecParams(pg->conn, "DELETE FROM departments WHERE code = $1", 1, NULL, dv, NULL,
                             NULL, 0));
        const char *gv[1] = {group};
        PQclear(PQexecParams(pg->conn, "DELETE FROM inbox WHERE consumer = $1", 1, NULL, gv, NULL,
                             NULL, 0));
    }
    pg_destroy(pg);
    if (topic[0])
        itest_topic_delete(topic);
    config_free(&cfg);
    return code;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_sent_once),
        cmocka_unit_test(test_reply_retried_then_replied),
        cmocka_unit_test(test_anonymous_reply_channel_none),
        cmocka_unit_test(test_staff_webhook_and_log_channel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
