/*
 * test_notify_sink: the real local receivers the notifier's integration
 * tests send to (header-only, one copy per test binary):
 *  - an HTTP sink (common/http.h on a free port, in a thread) that records
 *    the calls per label (/hook/{label}, /sms/{label}), checks the webhook
 *    signature and can answer 500 to the first N calls of a label;
 *  - an SMTP sink (a small RFC 5321 server in a thread: EHLO, MAIL, RCPT,
 *    DATA, RSET, NOOP, QUIT) that records every message it accepts;
 *  - the stage side: cases inserted directly, their events appended with
 *    casestore and published by an outbox relay to a fresh topic that a
 *    kesu-notifier process (forked here, its own consumer group and topic
 *    prefix) reads, and helpers that wait for what it does.
 */
#ifndef KESU_TEST_NOTIFY_SINK_H
#define KESU_TEST_NOTIFY_SINK_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>
#include <sys/wait.h>

#include "casestore.h"
#include "http.h"
#include "itest.h"
#include "kafka.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "util.h"

#define SINK_SECRET     "itest-webhook-secret"
#define SINK_MAX_LABELS 32

typedef struct sink_label {
    char name[48];    /* the {} of /hook/{} or /sms/{} */
    int calls;        /* requests seen */
    int fail_first;   /* answer 500 to this many first */
    int bad_sig;      /* requests whose signature did not match */
    char idem[8][64]; /* Idempotency-Key of each call */
    char auth[128];   /* Authorization header of the last call */
    char last_body[4096];
} sink_label_t;

static struct {
    pthread_mutex_t lock;
    sink_label_t labels[SINK_MAX_LABELS];
    int n;
    struct event_base *evb;
    http_server_t *srv;
    struct event *stop_ev;
    pthread_t thr;
    int port;
} sink = {.lock = PTHREAD_MUTEX_INITIALIZER};

static inline sink_label_t *sink_label(const char *name)
{
    for (int i = 0; i < sink.n; i++)
        if (strcmp(sink.labels[i].name, name) == 0)
            return &sink.labels[i];
    if (sink.n == SINK_MAX_LABELS)
        return &sink.labels[SINK_MAX_LABELS - 1];
    sink_label_t *l = &sink.labels[sink.n++];
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "%s", name);
    return l;
}

static inline void sink_hook(http_req_t *r, void *opaque)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    const char *sig = http_req_header(r, "X-Kesu-Signature");
    const char *idem = http_req_header(r, "Idempotency-Key");
    const char *auth = http_req_header(r, "Authorization");
    char want[72];
    int status;
    int signed_route = opaque == NULL; /* /hook: signed webhooks; /sms: the gateway */
    notify_sign(SINK_SECRET, body, len, want);
    pthread_mutex_lock(&sink.lock);
    sink_label_t *l = sink_label(http_req_param(r, 0));
    if (signed_route && (!sig || strcmp(sig, want) != 0))
        l->bad_sig++;
    if (l->calls < 8)
        snprintf(l->idem[l->calls], sizeof(l->idem[0]), "%s", idem ? idem : "");
    snprintf(l->auth, sizeof(l->auth), "%s", auth ? auth : "");
    snprintf(l->last_body, sizeof(l->last_body), "%.*s", (int)len, body);
    l->calls++;
    status = l->calls <= l->fail_first ? 500 : 200;
    pthread_mutex_unlock(&sink.lock);
    http_reply_json(r, status, json_pack("{s:b}", "ok", status == 200));
}

static inline void sink_sms(http_req_t *r, void *opaque)
{
    sink_hook(r, (void *)1);
}

static const http_route_t sink_routes[] = {
    {"POST", "/hook/{}", sink_hook},
    {"POST", "/sms/{}", sink_sms},
    {NULL, NULL, NULL},
};

static inline void sink_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static inline void *sink_main(void *arg)
{
    event_base_dispatch(sink.evb);
    return NULL;
}

static inline int sink_start(void)
{
    char err[256];
    if (sink.stop_ev)
        return 0; /* already running */
    if (http_threads_init() != 0)
        return -1;
    sink.evb = event_base_new();
    sink.srv = http_server_new(sink.evb, "127.0.0.1:0", sink_routes, NULL, 0, err, sizeof(err));
    if (!sink.srv) {
        fprintf(stderr, "sink: %s\n", err);
        return -1;
    }
    sink.port = http_server_port(sink.srv);
    sink.stop_ev = event_new(sink.evb, -1, 0, sink_stop_cb, sink.evb);
    return pthread_create(&sink.thr, NULL, sink_main, NULL) == 0 ? 0 : -1;
}

static inline void sink_stop(void)
{
    if (!sink.stop_ev)
        return;
    event_active(sink.stop_ev, EV_READ, 0);
    pthread_join(sink.thr, NULL);
    http_server_free(sink.srv);
    event_free(sink.stop_ev);
    event_base_free(sink.evb);
    sink.stop_ev = NULL;
}

static inline int sink_calls(const char *name, sink_label_t *copy)
{
    pthread_mutex_lock(&sink.lock);
    sink_label_t *l = sink_label(name);
    int n = l->calls;
    if (copy)
        *copy = *l;
    pthread_mutex_unlock(&sink.lock);
    return n;
}

static inline void sink_fail_first(const char *name, int n)
{
    pthread_mutex_lock(&sink.lock);
    sink_label(name)->fail_first = n;
    pthread_mutex_unlock(&sink.lock);
}

/* ------------------------------------------------------------ SMTP sink */

#define SMTP_MAX_MSGS 16

typedef struct smtp_msg {
    char from[256];
    char rcpt[256];
    char data[16384];
} smtp_msg_t;

static struct {
    pthread_mutex_t lock;
    smtp_msg_t msgs[SMTP_MAX_MSGS];
    int n;
    int fd;
    int port;
    volatile int stop;
    pthread_t thr;
} smtp = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* one line (without CRLF) into out; 0 on EOF/timeout */
static inline int smtp_line(int c, char *out, size_t n)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {c, POLLIN, 0};
        char ch;
        if (poll(&p, 1, 10000) <= 0 || read(c, &ch, 1) != 1)
            return 0;
        if (ch == '\n') {
            if (len && out[len - 1] == '\r')
                len--;
            out[len] = '\0';
            return 1;
        }
        if (len + 1 < n)
            out[len++] = ch;
    }
}

static inline void smtp_say(int c, const char *s)
{
    if (write(c, s, strlen(s)) < 0)
        return;
}

static inline void smtp_session(int c)
{
    char line[2048];
    smtp_msg_t m;
    memset(&m, 0, sizeof(m));
    smtp_say(c, "220 kesu-itest ESMTP\r\n");
    while (smtp_line(c, line, sizeof(line))) {
        if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
            smtp_say(c, "250-kesu-itest\r\n250 8BITMIME\r\n");
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
            snprintf(m.from, sizeof(m.from), "%.255s", line + 10);
            smtp_say(c, "250 OK\r\n");
        } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
            snprintf(m.rcpt, sizeof(m.rcpt), "%.255s", line + 8);
            smtp_say(c, "250 OK\r\n");
        } else if (strcasecmp(line, "DATA") == 0) {
            strbuf_t d;
            strbuf_init(&d);
            smtp_say(c, "354 end with <CRLF>.<CRLF>\r\n");
            while (smtp_line(c, line, sizeof(line)) && strcmp(line, ".") != 0) {
                const char *l = line[0] == '.' ? line + 1 : line; /* dot-stuffing */
                strbuf_append(&d, l, strlen(l));
                strbuf_append(&d, "\r\n", 2);
            }
            pthread_mutex_lock(&smtp.lock);
            if (smtp.n < SMTP_MAX_MSGS) {
                snprintf(m.data, sizeof(m.data), "%s", d.s);
                smtp.msgs[smtp.n++] = m;
            }
            pthread_mutex_unlock(&smtp.lock);
            strbuf_free(&d);
            smtp_say(c, "250 OK queued\r\n");
        } else if (strcasecmp(line, "QUIT") == 0) {
            smtp_say(c, "221 bye\r\n");
            break;
        } else if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0) {
            smtp_say(c, "250 OK\r\n");
        } else {
            smtp_say(c, "502 not implemented\r\n");
        }
    }
    close(c);
}

static inline void *smtp_main(void *arg)
{
    while (!smtp.stop) {
        struct pollfd p = {smtp.fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(smtp.fd, NULL, NULL);
        if (c >= 0)
            smtp_session(c);
    }
    return NULL;
}

static inline int smtp_start(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int one = 1;
    if (smtp.fd >= 0)
        return 0; /* already running */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    smtp.fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(smtp.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (smtp.fd < 0 || bind(smtp.fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(smtp.fd, 8) != 0 || getsockname(smtp.fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    smtp.port = ntohs(a.sin_port);
    return pthread_create(&smtp.thr, NULL, smtp_main, NULL) == 0 ? 0 : -1;
}

static inline void smtp_stop(void)
{
    if (smtp.fd < 0)
        return;
    smtp.stop = 1;
    pthread_join(smtp.thr, NULL);
    close(smtp.fd);
    smtp.fd = -1;
}

/* copy of the first message whose RCPT contains rcpt; 0 if none yet */
static inline int smtp_find(const char *rcpt, smtp_msg_t *out)
{
    int found = 0;
    pthread_mutex_lock(&smtp.lock);
    for (int i = 0; i < smtp.n && !found; i++)
        if (strstr(smtp.msgs[i].rcpt, rcpt)) {
            *out = smtp.msgs[i];
            found = 1;
        }
    pthread_mutex_unlock(&smtp.lock);
    return found;
}


/* ------------------------------------------------------------ the stage */

static char topic[128], group[96], producer[64], tag[9], dept[48], prefix[48];
static pg_t *pg;
static config_t cfg;
static rd_kafka_t *rk;
static outbox_relay_t *relay;
static pid_t notifier_pid = -1;
static int produced; /* messages on the test topic */

static inline int wait_for(int (*cond)(const void *), const void *arg, int timeout_ms)
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
    return itest_scalar1(pg, sql, p1);
}

static inline char *qs(const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, v, NULL, NULL, 0);
    char *s = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

static inline void exec_params(const char *sql, int n, const char *const *v)
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
    char complainant[37];
} tcase_t;

/* who the complainant of a test case is */
typedef struct tperson {
    int anonymous;           /* no complainant row at all */
    int webhook;             /* webhook_url = the sink's /hook/{label} */
    const char *phone_hex;   /* phone_enc as \\x... bytea text, or NULL */
    const char *email_hex;   /* email_enc, or NULL */
    const char *language;    /* cases.language, NULL = zh-CN */
    const char *urgency;     /* cases.urgency, NULL = none */
} tperson_t;

/* a case (status received) of the test's tag */
static inline void make_case_as(tcase_t *c, const char *label, const tperson_t *p)
{
    char url[128];
    util_uuid(c->id);
    util_uuid(c->complainant);
    snprintf(c->no, sizeof(c->no), "ITN-%s-%s", tag, label);
    snprintf(c->label, sizeof(c->label), "%s-%s", tag, label);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/%s", sink.port, c->label);
    if (!p->anonymous) {
        const char *v[4] = {c->complainant, p->webhook ? url : NULL, p->phone_hex, p->email_hex};
        exec_params("INSERT INTO complainants (id, webhook_url, phone_enc, email_enc) "
                    "VALUES ($1, $2, $3::bytea, $4::bytea)",
                    4, v);
    }
    const char *v[6] = {c->id,
                        c->no,
                        p->anonymous ? NULL : c->complainant,
                        p->anonymous ? "t" : "f",
                        p->language ? p->language : "zh-CN",
                        p->urgency};
    exec_params("INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, "
                "trace_id, complainant_id, anonymous, language, urgency) VALUES ($1, $2, "
                "'\\x00'::bytea, 'web', 'itest', 'itest body', 'itest-trace', $3, $4::boolean, $5, "
                "$6)",
                6, v);
}

/* the spine's helper: webhook=1 sink webhook + a phone, 0 phone only, -1 anonymous */
static inline void make_case(tcase_t *c, const char *label, int webhook)
{
    tperson_t p = {.anonymous = webhook < 0, .webhook = webhook > 0, .phone_hex = "\\x01"};
    make_case_as(c, label, &p);
}

/* walk the case along the transition table to status */
static inline void move_case(const tcase_t *c, const char *const *statuses)
{
    for (const char *const *s = statuses; *s; s++) {
        const char *v[2] = {c->id, *s};
        exec_params("UPDATE cases SET status = $2, version = version + 1 WHERE id = $1", 2, v);
    }
}

/* publish everything the test producer has in the outbox */
static inline void relay_all(void)
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
static inline uint8_t *emit(const tcase_t *c, proto_env_t *pe, const char *const *from, const char *to,
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

static inline int64_t committed_offset(void)
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

static inline int cond_calls(const void *arg)
{
    const calls_arg_t *a = arg;
    return sink_calls(a->label, NULL) >= a->n;
}

static inline void wait_calls(const char *label, int n, int timeout_ms)
{
    calls_arg_t a = {label, n};
    if (!wait_for(cond_calls, &a, timeout_ms))
        fail_msg("sink %s: %d calls after %d ms, want %d", label, sink_calls(label, NULL),
                 timeout_ms, n);
}

static inline int cond_sql_true(const void *arg)
{
    const char *const *a = arg;
    return q1(a[0], a[1]) > 0;
}

static inline void wait_sql(const char *sql, const char *param, int timeout_ms)
{
    const char *a[2] = {sql, param};
    if (!wait_for(cond_sql_true, a, timeout_ms))
        fail_msg("not true after %d ms: %s [%s]", timeout_ms, sql, param);
}

static inline int cond_committed(const void *arg)
{
    return committed_offset() >= *(const int *)arg;
}

/* the notifier consumed (and committed) everything produced so far */
static inline void wait_consumed(void)
{
    if (!wait_for(cond_committed, &produced, 30000))
        fail_msg("notifier did not commit offset %d (at %lld)", produced,
                 (long long)committed_offset());
}

/* the topics the notifier writes under its own prefix */
static const char *const harness_out_topics[] = {"kesu.notifier.v1", "kesu.dlq.v1"};

/*
 * Everything a notifier test needs: database, sinks, a topic, a relay and
 * the kesu-notifier process (common arguments + extra, NULL-terminated).
 */
static inline int harness_setup(const char *const *extra)
{
    char err[512], uuid[37], url[160], bin[512], kafka[256], name[160];
    const char *bin_dir = getenv("KESU_BIN_DIR");
    char *argv[64];
    int a = 0;

    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    /* a notifier sends every due row of the database, so two notifier
     * tests running at once (ctest -j) would take each other's notices:
     * they take turns, until this connection closes in teardown */
    if (itest_scalar(pg, "SELECT count(*) FROM (SELECT pg_advisory_lock("
                         "hashtext('kesu-itest-notifier'))) x") != 1)
        return -1;
    if (itest_scalar(pg, "SELECT count(*) FROM information_schema.columns WHERE "
                         "table_name = 'notifications' AND column_name = 'urgent'") != 1) {
        fprintf(stderr, "the database lacks 0009_tail_stats.sql: run kesuctl migrate\n");
        return -1;
    }
    util_uuid(uuid);
    snprintf(tag, sizeof(tag), "%.8s", uuid + 28);
    snprintf(group, sizeof(group), "kesu-notifier-itest-%s", tag);
    snprintf(producer, sizeof(producer), "itest-notify-%s", tag);
    snprintf(dept, sizeof(dept), "itest-dept-%s", tag);
    snprintf(prefix, sizeof(prefix), "itest-%s.", tag);
    if (itest_topic_create("kesu.itest.notify", 1, topic, sizeof(topic)) != 0)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        /* itest_topic_create adds a random suffix; these need exact names */
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka(), err, sizeof(err));
        rd_kafka_t *adm = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        snprintf(name, sizeof(name), "%s%s", prefix, harness_out_topics[i]);
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, 1, 1, err, sizeof(err));
        rd_kafka_queue_t *q = rd_kafka_queue_new(adm);
        rd_kafka_CreateTopics(adm, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_destroy(adm);
    }
    if (sink_start() != 0 || smtp_start() != 0)
        return -1;

    const char *dv[2] = {dept, "集成测试局"};
    exec_params("INSERT INTO departments (code, name) VALUES ($1, $2)", 2, dv);

    itest_config(&cfg);
    rk = kafka_producer_new(&cfg, err, sizeof(err));
    relay = rk ? outbox_relay_new(itest_pg(), producer, rk, 100, 20, err, sizeof(err)) : NULL;
    if (!relay) {
        fprintf(stderr, "relay: %s\n", err);
        return -1;
    }

    snprintf(bin, sizeof(bin), "%s/kesu-notifier",
             bin_dir && *bin_dir ? bin_dir : KESU_SOURCE_DIR "/build/bin");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/staff-%s", sink.port, tag);
    snprintf(kafka, sizeof(kafka), "bootstrap.servers=%s", itest_kafka());
    static const char *const common[] = {"--ops.listen", "", "--notify.tick_ms", "50",
                                         "--notify.backoff_base_ms", "200",
                                         "--notify.backoff_cap_ms", "1000", NULL};
    argv[a++] = bin;
    argv[a++] = "--pg";
    argv[a++] = (char *)itest_pg();
    argv[a++] = "--group";
    argv[a++] = group;
    argv[a++] = "--notify.topics";
    argv[a++] = topic;
    argv[a++] = "--topics.prefix";
    argv[a++] = prefix;
    argv[a++] = "--notify.webhook_secret";
    argv[a++] = SINK_SECRET;
    argv[a++] = "--notify.staff_webhook_url";
    argv[a++] = url;
    argv[a++] = "-X";
    argv[a++] = kafka;
    for (const char *const *c = common; *c; c++)
        argv[a++] = (char *)*c;
    for (const char *const *e = extra; e && *e && a < 62; e++)
        argv[a++] = (char *)*e;
    argv[a] = NULL;
    notifier_pid = fork();
    if (notifier_pid == 0) {
        execv(bin, argv);
        fprintf(stderr, "cannot run %s\n", bin);
        _exit(127);
    }
    return notifier_pid > 0 ? 0 : -1;
}

static inline int harness_teardown(void)
{
    int status = -1, code = 0;
    char name[160];
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
    sink_stop();
    smtp_stop();
    if (pg && pg->conn) {
        /* leave no test cases behind in a shared database (best effort) */
        char like[64];
        snprintf(like, sizeof(like), "ITN-%s-%%", tag);
        const char *v[1] = {like};
        static const char *const cleanup[] = {
            "DELETE FROM notifications WHERE case_id IN (SELECT id FROM cases WHERE case_no LIKE "
            "$1)",
            "DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE case_no LIKE $1)",
            "DELETE FROM outbox WHERE msg_key IN (SELECT id::text FROM cases WHERE case_no LIKE "
            "$1)",
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
    for (size_t i = 0; i < 2 && prefix[0]; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, harness_out_topics[i]);
        itest_topic_delete(name);
    }
    config_free(&cfg);
    return code;
}

#endif
