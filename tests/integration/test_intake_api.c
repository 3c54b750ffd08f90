/*
 * Integration test of kesu-intake against the real PostgreSQL and Kafka:
 * starts the binary as a process on free ports, creates API tokens directly
 * in api_tokens, and drives the public API over real HTTP (libcurl).
 *
 * Environment: KESU_PG (conninfo), KESU_KAFKA (bootstrap), KESU_BIN_DIR
 * (where kesu-intake is; ctest sets it). The database must have been
 * migrated (`kesuctl migrate`, which scripts/infra.sh runs).
 *
 * Other Kesu services may be running against the same database and topic;
 * the test only relies on what intake owns and moves its own cases along
 * the transition table the way the classifier and dispatcher would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "kafka.h"
#include "proto.h"
#include "util.h"

#define PHONE        "13812345678"
#define PHONE_MASKED "138****5678"
#define ID_NO        "110105199001010021"

static struct {
    char conninfo[512];
    char kafka[256];
    char bin[512];
    char log[256];
    PGconn *db;
    pid_t pid;
    int http_port, ops_port;
    char base[64];
    char run[16]; /* random suffix: keys and refs unique per run */
    char agent[64], handler[64], other_handler[64], auditor[64]; /* token secrets */
    char supervisor[64];
    /* the case of the main flow */
    char case_id[40], case_no[64], access_code[16], idem_key[64];
    char *submit_body;
} T;

/* ------------------------------------------------------------ helpers */

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Run SQL with text parameters; the result must have the expected status. */
static PGresult *sql(ExecStatusType expect, const char *q, int n, const char *const *v)
{
    PGresult *res = PQexecParams(T.db, q, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != expect)
        fail_msg("sql failed: %s\n%s", q, PQresultErrorMessage(res));
    return res;
}

/* One text value of a one-row query (copied into out). */
static void sql_value(char *out, size_t out_size, const char *q, int n, const char *const *v)
{
    PGresult *res = sql(PGRES_TUPLES_OK, q, n, v);
    if (PQntuples(res) != 1)
        fail_msg("expected one row, got %d: %s", PQntuples(res), q);
    snprintf(out, out_size, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
}

static long sql_count(const char *q, int n, const char *const *v)
{
    char buf[32];
    sql_value(buf, sizeof(buf), q, n, v);
    return strtol(buf, NULL, 10);
}

/* A new API token; the secret goes to out. */
static void make_token(const char *role, const char *dept, char *out, size_t out_size)
{
    char id[37], hex[65];
    uint8_t sum[32];
    util_random_code(out, 32, "abcdefghijklmnopqrstuvwxyz0123456789");
    assert_true(out_size > 40);
    memmove(out + 5, out, 33);
    memcpy(out, "test_", 5);
    crypto_sha256(out, strlen(out), sum);
    util_hex(sum, 32, hex);
    util_uuid(id);
    const char *v[4] = {id, hex, role, dept};
    PQclear(sql(PGRES_COMMAND_OK,
                "INSERT INTO api_tokens (id, token_hash, role, department, label) "
                "VALUES ($1::uuid, decode($2, 'hex'), $3, $4, 'test_intake_api')",
                4, v));
}

typedef struct resp {
    long status;
    strbuf_t body;
    strbuf_t headers;
    json_t *json;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    strbuf_append(arg, p, size * n);
    return size * n;
}

static void resp_free(resp_t *r)
{
    strbuf_free(&r->body);
    strbuf_free(&r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* A response header's value (first match, case-insensitive), into out. */
static int resp_header(const resp_t *r, const char *name, char *out, size_t out_size)
{
    size_t n = strlen(name);
    for (const char *p = r->headers.s; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, out_size, "%.*s", (int)(eol - v), v);
            return 1;
        }
        p = eol + 2;
    }
    out[0] = '\0';
    return 0;
}

/*
 * One HTTP request to the intake under test. token may be NULL; extra is a
 * NULL-terminated list of "Name: value" headers (or NULL).
 */
static void call(resp_t *r, const char *method, const char *path, const char *token,
                 const char *const *extra, const char *body)
{
    char url[1024], auth[256];
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    memset(r, 0, sizeof(*r));
    strbuf_init(&r->body);
    strbuf_init(&r->headers);
    snprintf(url, sizeof(url), "%s%s", T.base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    int has_ct = 0;
    for (const char *const *h = extra; h && *h; h++) {
        hdrs = curl_slist_append(hdrs, *h);
        has_ct |= strncasecmp(*h, "Content-Type:", 13) == 0;
    }
    if (body) {
        if (!has_ct)
            hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    r->json = r->body.len ? json_loads(r->body.s, 0, NULL) : NULL;
}

#define EXPECT_STATUS(r, want)                                                                     \
    do {                                                                                           \
        if ((r)->status != (want))                                                                 \
            fail_msg("expected HTTP %d, got %ld: %s", (want), (r)->status, (r)->body.s);           \
    } while (0)

static const char *jstr(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
         k = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, k);
    return cur && json_is_string(cur) ? json_string_value(cur) : NULL;
}

static void expect_error(resp_t *r, int status, const char *code, const char *field)
{
    EXPECT_STATUS(r, status);
    const char *c = jstr(r->json, "error.code");
    const char *f = jstr(r->json, "error.field");
    if (!c || strcmp(c, code) != 0)
        fail_msg("expected error code %s, got %s", code, r->body.s);
    if (field && (!f || strcmp(f, field) != 0))
        fail_msg("expected error field %s, got %s", field, r->body.s);
    assert_non_null(jstr(r->json, "error.message"));
}

static void show_log_tail(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n 20 %s >&2", T.log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", T.log);
}

/* Wait for /readyz of the started process. */
static int wait_ready(int timeout_ms)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", T.ops_port);
    int64_t deadline = util_mono_ms() + timeout_ms;
    while (util_mono_ms() < deadline) {
        int st;
        if (waitpid(T.pid, &st, WNOHANG) == T.pid) {
            T.pid = 0;
            return -1;
        }
        CURL *c = curl_easy_init();
        long code = 0;
        strbuf_t sink;
        strbuf_init(&sink);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        strbuf_free(&sink);
        if (code == 200)
            return 0;
        util_sleep_ms(100);
    }
    return -1;
}

/* ------------------------------------------------------- setup/teardown */

static int setup(void **state)
{
    char key_hex[65], arg_http[64], arg_ops[64], arg_kafka[300];
    uint8_t key[32];
    (void)state;
    snprintf(T.conninfo, sizeof(T.conninfo), "%s",
             env_or("KESU_PG", "host=127.0.0.1 port=55432 dbname=kesu user=postgres"));
    snprintf(T.kafka, sizeof(T.kafka), "%s", env_or("KESU_KAFKA", "127.0.0.1:59092"));
    snprintf(T.bin, sizeof(T.bin), "%s/kesu-intake",
             env_or("KESU_BIN_DIR", KESU_SOURCE_DIR "/build-intake/bin"));
    util_random_code(T.run, 8, "abcdefghijkmnpqrstuvwxyz23456789");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (access(T.bin, X_OK) != 0) {
        fprintf(stderr, "kesu-intake not found at %s (set KESU_BIN_DIR)\n", T.bin);
        return -1;
    }
    T.db = PQconnectdb(T.conninfo);
    if (PQstatus(T.db) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to %s: %s (is scripts/infra.sh up?)\n", T.conninfo,
                PQerrorMessage(T.db));
        return -1;
    }
    /* the schema is the migration command's business, not the test's: only check it */
    PGresult *mig =
        PQexec(T.db, "SELECT 1 FROM schema_migrations WHERE version = '0002_intake.sql'");
    int migrated = PQresultStatus(mig) == PGRES_TUPLES_OK && PQntuples(mig) == 1;
    PQclear(mig);
    if (!migrated) {
        fprintf(stderr, "the database is not migrated: run `kesuctl migrate` first\n");
        return -1;
    }
    make_token("agent", NULL, T.agent, sizeof(T.agent));
    make_token("handler", "d1", T.handler, sizeof(T.handler));
    make_token("handler", "d2", T.other_handler, sizeof(T.other_handler));
    make_token("auditor", NULL, T.auditor, sizeof(T.auditor));
    make_token("supervisor", NULL, T.supervisor, sizeof(T.supervisor));

    crypto_random(key, sizeof(key));
    util_hex(key, sizeof(key), key_hex);
    T.http_port = free_port();
    T.ops_port = free_port();
    snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.http_port);
    snprintf(arg_http, sizeof(arg_http), "127.0.0.1:%d", T.http_port);
    snprintf(arg_ops, sizeof(arg_ops), "127.0.0.1:%d", T.ops_port);
    snprintf(arg_kafka, sizeof(arg_kafka), "bootstrap.servers=%s", T.kafka);
    snprintf(T.log, sizeof(T.log), "/tmp/test_intake_api.%d.log", (int)getpid());

    T.pid = fork();
    assert_true(T.pid >= 0);
    if (T.pid == 0) {
        int fd = open(T.log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *const argv[] = {T.bin,      "--http.listen",
                              arg_http,   "--ops.listen",
                              arg_ops,    "--pii.key",
                              key_hex,    "--pg",
                              T.conninfo, "-X",
                              arg_kafka,  "--http.threads",
                              "4",        NULL};
        execv(T.bin, argv);
        _exit(127);
    }
    if (wait_ready(30000) != 0) {
        fprintf(stderr, "kesu-intake did not become ready; its log:\n");
        show_log_tail();
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (T.pid > 0) {
        int st = 0;
        kill(T.pid, SIGTERM);
        int64_t deadline = util_mono_ms() + 20000;
        while (waitpid(T.pid, &st, WNOHANG) == 0) {
            if (util_mono_ms() > deadline) {
                fprintf(stderr, "kesu-intake ignored SIGTERM for 20 s\n");
                kill(T.pid, SIGKILL);
                waitpid(T.pid, &st, 0);
                rc = -1;
                break;
            }
            util_sleep_ms(50);
        }
        if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            fprintf(stderr, "kesu-intake did not exit 0 on SIGTERM (status %d)\n", st);
            show_log_tail();
            rc = -1;
        }
    }
    if (T.db) {
        PQclear(PQexec(T.db, "DELETE FROM api_tokens WHERE label = 'test_intake_api'"));
        PQfinish(T.db);
    }
    free(T.submit_body);
    curl_global_cleanup();
    if (rc == 0)
        unlink(T.log);
    return rc;
}

/* -------------------------------------------------------------- kafka */

/* A consumer assigned to the end of every partition of topic (before a submission). */
static rd_kafka_t *kafka_tail(const char *topic)
{
    char errstr[512], group[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "test-intake-%s", T.run);
    rd_kafka_conf_set(conf, "bootstrap.servers", T.kafka, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    int parts = md->topics[0].partition_cnt;
    assert_true(parts > 0);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

/* Wait for the envelope with this event id; returns it (caller frees) or fails. */
static Kesu__V1__Envelope *kafka_expect(rd_kafka_t *rk, const char *event_id, int timeout_ms)
{
    char errstr[256];
    int64_t deadline = util_mono_ms() + timeout_ms;
    while (util_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        Kesu__V1__Envelope *env = NULL;
        if (!m->err)
            env = proto_env_unpack(m->payload, m->len, errstr, sizeof(errstr));
        rd_kafka_message_destroy(m);
        if (env && strcmp(env->event_id, event_id) == 0)
            return env;
        if (env)
            kesu__v1__envelope__free_unpacked(env, NULL);
    }
    fail_msg("event %s did not arrive in Kafka within %d ms", event_id, timeout_ms);
    return NULL;
}

/* --------------------------------------------------------------- tests */

static char *complaint_body(const char *title, const char *ref)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s, s:f, s:f}, s:{s:s, s:s, s:s, s:s, s:s}}", "channel", "phone",
        "title", title, "body",
        "楼下商铺每晚噪音到凌晨，请回电 " PHONE "，身份证 " ID_NO "，邮箱 zhang.san@qq.com",
        "location", "address", "朝阳路1号（联系 " PHONE "）", "district_code", "110105", "lat",
        39.9, "lon", 116.4, "complainant", "name", "张三", "phone", "+86 138-1234-5678", "email",
        "zhang.san@qq.com", "id_number", ID_NO, "callback_url", "http://127.0.0.1:9/kesu-test");
    /* the phone channel's own details */
    json_object_set_new(o, "call_id", json_string("CALL-0001"));
    json_object_set_new(o, "agent_id", json_string("agent-07"));
    if (ref)
        json_object_set_new(o, "external_ref", json_string(ref));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void test_submit(void **state)
{
    (void)state;
    resp_t r;
    char hdr[128], loc[128], event_id[40], buf[256];
    rd_kafka_t *rk = kafka_tail(KAFKA_TOPIC_INTAKE);

    snprintf(T.idem_key, sizeof(T.idem_key), "test-%s-1", T.run);
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", T.idem_key);
    const char *h[] = {hdr, NULL};
    T.submit_body = complaint_body("噪音扰民 " PHONE, NULL);
    call(&r, "POST", "/v1/complaints", T.agent, h, T.submit_body);
    EXPECT_STATUS(&r, 201);
    snprintf(T.case_id, sizeof(T.case_id), "%s", jstr(r.json, "case_id"));
    snprintf(T.case_no, sizeof(T.case_no), "%s", jstr(r.json, "case_no"));
    snprintf(T.access_code, sizeof(T.access_code), "%s", jstr(r.json, "access_code"));
    assert_true(util_is_uuid(T.case_id));
    assert_int_equal(strlen(T.access_code), 8);
    assert_string_equal(jstr(r.json, "status"), "received");
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 1);
    assert_non_null(jstr(r.json, "created_at"));
    /* KS + yyyymmdd + "-" + 7 digits */
    assert_int_equal(strncmp(T.case_no, "KS", 2), 0);
    assert_int_equal(T.case_no[10], '-');
    assert_true(strlen(T.case_no) >= 18);
    assert_true(resp_header(&r, "Location", loc, sizeof(loc)));
    snprintf(buf, sizeof(buf), "/v1/cases/%s", T.case_no);
    assert_string_equal(loc, buf);
    resp_free(&r);

    /* the case row, its history row, its complainant */
    const char *v[1] = {T.case_id};
    sql_value(buf, sizeof(buf),
              "SELECT status || ' ' || version || ' ' || event_seq FROM cases WHERE id = $1::uuid",
              1, v);
    assert_string_equal(buf, "received 1 1");
    assert_int_equal(sql_count("SELECT count(*) FROM case_events WHERE case_id = $1::uuid AND "
                               "seq = 1 AND event_type = 'CaseReceived' AND producer = 'intake'",
                               1, v),
                     1);
    assert_int_equal(
        sql_count("SELECT count(*) FROM cases c JOIN complainants p ON p.id = "
                  "c.complainant_id WHERE c.id = $1::uuid AND p.phone_mask = '" PHONE_MASKED
                  "' AND p.phone_index IS NOT NULL AND p.webhook_url = "
                  "'http://127.0.0.1:9/kesu-test' AND position('" PHONE
                  "'::bytea in p.phone_enc) = 0",
                  1, v),
        1);
    assert_true(sql_count("SELECT length(access_code_enc) FROM cases WHERE id = $1::uuid", 1, v) >
                8);

    /* the outbox row for kesu.intake.v1 is published by the relay, then deleted */
    sql_value(event_id, sizeof(event_id),
              "SELECT event_id FROM case_events WHERE case_id = $1::uuid AND seq = 1", 1, v);
    int64_t deadline = util_mono_ms() + 15000;
    const char *vt[2] = {T.case_id, KAFKA_TOPIC_INTAKE};
    while (sql_count("SELECT count(*) FROM outbox WHERE producer = 'intake' AND topic = $2 "
                     "AND msg_key = $1",
                     2, vt) > 0) {
        if (util_mono_ms() > deadline)
            fail_msg("the outbox row of case %s was not published within 15 s", T.case_no);
        util_sleep_ms(50);
    }
    Kesu__V1__Envelope *env = kafka_expect(rk, event_id, 20000);
    assert_string_equal(env->event_type, "CaseReceived");
    assert_string_equal(env->case_id, T.case_id);
    assert_string_equal(env->case_no, T.case_no);
    assert_string_equal(env->producer, "intake");
    assert_int_equal(env->case_version, 1);
    assert_int_equal(env->case_seq, 1);
    assert_int_equal(env->payload_case, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED);
    Kesu__V1__CaseReceived *cr = env->case_received;
    assert_string_equal(cr->channel, "phone");
    assert_null(strstr(cr->title, PHONE));
    assert_null(strstr(cr->body, PHONE));
    assert_null(strstr(cr->body, ID_NO));
    assert_null(strstr(cr->body, "zhang.san@"));
    assert_non_null(strstr(cr->body, PHONE_MASKED));
    assert_non_null(cr->location);
    assert_null(strstr(cr->location->address, PHONE));
    assert_true(cr->location->has_coordinates);
    assert_true(cr->has_contact);
    kesu__v1__envelope__free_unpacked(env, NULL);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void test_no_pii_stored(void **state)
{
    (void)state;
    const char *v[1] = {T.case_id};
    /* the phone number, ID number and e-mail of the text are masked wherever text is stored */
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND (body LIKE "
                               "'%" PHONE "%' OR title LIKE '%" PHONE "%' OR address LIKE '%" PHONE
                               "%' OR body LIKE '%" ID_NO "%' OR body LIKE '%zhang.san@%')",
                               1, v),
                     0);
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND body LIKE "
                               "'%" PHONE_MASKED "%' AND title LIKE '%" PHONE_MASKED "%'",
                               1, v),
                     1);
    assert_int_equal(sql_count("SELECT count(*) FROM case_events WHERE case_id = $1::uuid AND "
                               "(summary::text LIKE '%" PHONE "%' OR summary::text LIKE '%" ID_NO
                               "%' OR summary::text LIKE '%zhang.san@%' OR summary::text LIKE "
                               "'%张三%')",
                               1, v),
                     0);
}

static void test_idempotent_replay(void **state)
{
    (void)state;
    resp_t r;
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", T.idem_key);
    const char *h[] = {hdr, NULL};
    call(&r, "POST", "/v1/complaints", T.agent, h, T.submit_body);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "case_no"), T.case_no);
    assert_string_equal(jstr(r.json, "case_id"), T.case_id);
    assert_string_equal(jstr(r.json, "access_code"), T.access_code);
    resp_free(&r);
    const char *v[1] = {T.idem_key};
    assert_int_equal(sql_count("SELECT count(*) FROM idempotency_keys WHERE key = $1", 1, v), 1);

    /* the same key with another body is refused */
    char *other = complaint_body("another complaint", NULL);
    call(&r, "POST", "/v1/complaints", T.agent, h, other);
    expect_error(&r, 422, "idempotency_key_reused", "Idempotency-Key");
    resp_free(&r);
    free(other);
}

static void test_external_ref_duplicate(void **state)
{
    (void)state;
    resp_t r;
    char ref[64], no[64];
    snprintf(ref, sizeof(ref), "HL-%s", T.run);
    char *b = complaint_body("external ref", ref);
    call(&r, "POST", "/v1/complaints", T.agent, NULL, b);
    EXPECT_STATUS(&r, 201);
    snprintf(no, sizeof(no), "%s", jstr(r.json, "case_no"));
    resp_free(&r);
    call(&r, "POST", "/v1/complaints", T.agent, NULL, b);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "case_no"), no);
    assert_true(json_is_true(json_object_get(r.json, "duplicate")));
    resp_free(&r);
    free(b);
    const char *v[1] = {ref};
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE external_ref = $1", 1, v), 1);
}

/* Concurrent identical submissions make exactly one case. */
typedef struct racer {
    const char *body;
    const char *hdr;
    long status;
    char case_no[64];
} racer_t;

static void *race_one(void *arg)
{
    racer_t *x = arg;
    resp_t r;
    const char *h[] = {x->hdr, NULL};
    call(&r, "POST", "/v1/complaints", T.agent, x->hdr ? h : NULL, x->body);
    x->status = r.status;
    const char *no = jstr(r.json, "case_no");
    snprintf(x->case_no, sizeof(x->case_no), "%s", no ? no : "");
    resp_free(&r);
    return NULL;
}

static void race(const char *body, const char *hdr)
{
    enum { N = 8 };
    racer_t x[N];
    pthread_t t[N];
    int created = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (racer_t){.body = body, .hdr = hdr};
        assert_int_equal(pthread_create(&t[i], NULL, race_one, &x[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        if (x[i].status == 201)
            created++;
        else if (x[i].status != 200)
            fail_msg("racer %d got HTTP %ld", i, x[i].status);
        assert_string_equal(x[i].case_no, x[0].case_no);
    }
    assert_int_equal(created, 1);
}

static void test_concurrent_submissions(void **state)
{
    (void)state;
    char hdr[128], ref[64];
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: test-%s-race", T.run);
    char *b = complaint_body("race by key", NULL);
    race(b, hdr);
    free(b);
    snprintf(ref, sizeof(ref), "RACE-%s", T.run);
    b = complaint_body("race by external_ref", ref);
    race(b, NULL);
    free(b);
    const char *v[1] = {ref};
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE external_ref = $1", 1, v), 1);
}

static void test_bad_requests(void **state)
{
    (void)state;
    resp_t r;
    call(&r, "POST", "/v1/complaints", T.agent, NULL,
         "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\",\"priority\":1}");
    expect_error(&r, 422, "unknown_field", "priority");
    resp_free(&r);
    call(&r, "POST", "/v1/complaints", T.agent, NULL, "{\"channel\":\"web\",\"body\":\"b\"}");
    expect_error(&r, 422, "missing_field", "title");
    resp_free(&r);
    call(
        &r, "POST", "/v1/complaints", T.agent, NULL,
        "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\",\"location\":{\"lat\":91,\"lon\":1}}");
    expect_error(&r, 422, "out_of_range", "location.lat");
    resp_free(&r);
    call(&r, "POST", "/v1/complaints", T.agent, NULL,
         "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\",\"complainant\":{\"callback_url\":"
         "\"javascript:alert(1)\"}}");
    expect_error(&r, 422, "invalid_value", "complainant.callback_url");
    resp_free(&r);
    call(&r, "POST", "/v1/complaints", T.agent, NULL, "{\"channel\":\"web\",\"title\":\"t\xc3\"}");
    expect_error(&r, 400, "invalid_utf8", "title");
    resp_free(&r);
    const char *h[] = {"Idempotency-Key: has space", NULL};
    call(&r, "POST", "/v1/complaints", T.agent, h,
         "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\"}");
    expect_error(&r, 400, "invalid_value", "Idempotency-Key");
    resp_free(&r);
}

static void test_auth(void **state)
{
    (void)state;
    resp_t r;
    char www[128];
    const char *body = "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\"}";
    call(&r, "POST", "/v1/complaints", NULL, NULL, body);
    expect_error(&r, 401, "unauthorized", "Authorization");
    assert_true(resp_header(&r, "WWW-Authenticate", www, sizeof(www)));
    assert_int_equal(strncmp(www, "Bearer", 6), 0);
    resp_free(&r);
    call(&r, "POST", "/v1/complaints", "test_not_a_token", NULL, body);
    expect_error(&r, 401, "unauthorized", "Authorization");
    resp_free(&r);
    /* a handler may not submit, an auditor may not act */
    call(&r, "POST", "/v1/complaints", T.handler, NULL, body);
    expect_error(&r, 403, "forbidden", "Authorization");
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", T.case_no);
    call(&r, "POST", path, T.auditor, NULL, "{\"action\":\"accept\"}");
    expect_error(&r, 403, "forbidden", "Authorization");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/cases/%s/history", T.case_no);
    call(&r, "GET", path, NULL, NULL, NULL);
    expect_error(&r, 401, "unauthorized", "Authorization");
    resp_free(&r);
}

static void test_get_case(void **state)
{
    (void)state;
    resp_t r;
    char path[160], etag[32], want[32];

    /* the complainant, by access code (case-insensitive) */
    char lower[16];
    for (size_t i = 0; i <= strlen(T.access_code); i++)
        lower[i] = (char)tolower((unsigned char)T.access_code[i]);
    snprintf(path, sizeof(path), "/v1/cases/%s?access_code=%s", T.case_no, lower);
    call(&r, "GET", path, NULL, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "case_no"), T.case_no);
    assert_null(json_object_get(r.json, "case_id"));
    assert_string_equal(jstr(r.json, "complainant.name"), "张*");
    assert_string_equal(jstr(r.json, "complainant.phone_mask"), PHONE_MASKED);
    assert_string_equal(jstr(r.json, "complainant.email"), "z***@qq.com");
    assert_null(strstr(r.body.s, PHONE));
    resp_free(&r);

    /* a wrong code and an unknown case look the same */
    snprintf(path, sizeof(path), "/v1/cases/%s?access_code=%s", T.case_no,
             strcmp(T.access_code, "ZZZZZZZZ") ? "ZZZZZZZZ" : "YYYYYYYY");
    call(&r, "GET", path, NULL, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
    call(&r, "GET", "/v1/cases/KS19990101-0000000?access_code=ZZZZZZZZ", NULL, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);

    /* staff */
    snprintf(path, sizeof(path), "/v1/cases/%s", T.case_no);
    call(&r, "GET", path, T.agent, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "case_id"), T.case_id);
    assert_string_equal(jstr(r.json, "channel"), "phone");
    assert_string_equal(jstr(r.json, "location.district_code"), "110105");
    assert_string_equal(jstr(r.json, "complainant.phone_mask"), PHONE_MASKED);
    assert_true(resp_header(&r, "ETag", etag, sizeof(etag)));
    snprintf(want, sizeof(want), "\"%lld",
             (long long)json_integer_value(json_object_get(r.json, "version")));
    assert_int_equal(strncmp(etag, want, strlen(want)), 0);
    resp_free(&r);

    /* a handler sees only its department's cases: this one is not assigned to d1 (yet) */
    const char *v[1] = {T.case_id};
    if (sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND department = 'd1'", 1, v) ==
        0) {
        call(&r, "GET", path, T.handler, NULL, NULL);
        expect_error(&r, 404, "not_found", "case_no");
        resp_free(&r);
    }
}

/*
 * Move the case to assigned/d1 the way the classifier and dispatcher would
 * (each status change bumps the version). If they are running and got there
 * first, only the department is forced, so the handler tokens apply.
 */
static void simulate_dispatch(const char *case_id)
{
    const char *v[1] = {case_id};
    PQclear(
        sql(PGRES_COMMAND_OK,
            "UPDATE cases SET status = 'classified', version = version + 1, classified_at = now(), "
            "domain = 'environment', request_type = 'complaint', category = 'facilities', "
            "urgency = 'normal' WHERE id = $1::uuid AND status = 'received'",
            1, v));
    PQclear(sql(PGRES_COMMAND_OK,
                "UPDATE cases SET status = 'assigned', version = version + 1, department = 'd1', "
                "handler = 'h-test', assigned_at = now() WHERE id = $1::uuid AND status = "
                "'classified'",
                1, v));
    PQclear(sql(PGRES_COMMAND_OK,
                "UPDATE cases SET department = 'd1' WHERE id = $1::uuid AND status = 'assigned'", 1,
                v));
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND status = "
                               "'assigned' AND department = 'd1'",
                               1, v),
                     1);
}

static long long current_version(void)
{
    const char *v[1] = {T.case_id};
    return sql_count("SELECT version FROM cases WHERE id = $1::uuid", 1, v);
}

static void test_actions(void **state)
{
    (void)state;
    resp_t r;
    char path[160], im[64];
    simulate_dispatch(T.case_id);
    long long ver = current_version();
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", T.case_no);

    /* the handler now sees it; the other department still does not */
    char get[160];
    snprintf(get, sizeof(get), "/v1/cases/%s", T.case_no);
    call(&r, "GET", get, T.handler, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "assignment.department"), "d1");
    resp_free(&r);
    call(&r, "GET", get, T.other_handler, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
    call(&r, "POST", path, T.other_handler, NULL, "{\"action\":\"accept\"}");
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);

    /* resolve before accept: wrong status */
    call(&r, "POST", path, T.handler, NULL,
         "{\"action\":\"resolve\",\"measures\":\"explanation\",\"reply\":\"r\"}");
    expect_error(&r, 409, "invalid_transition", "status");
    assert_non_null(strstr(jstr(r.json, "error.message"), "assigned"));
    resp_free(&r);
    /* unknown action */
    call(&r, "POST", path, T.handler, NULL, "{\"action\":\"escalate\"}");
    expect_error(&r, 422, "invalid_value", "action");
    resp_free(&r);
    /* stale If-Match */
    snprintf(im, sizeof(im), "If-Match: \"%lld\"", ver + 5);
    const char *stale[] = {im, NULL};
    call(&r, "POST", path, T.handler, stale, "{\"action\":\"accept\"}");
    expect_error(&r, 409, "stale_version", "If-Match");
    resp_free(&r);

    /* accept with the right version */
    snprintf(im, sizeof(im), "If-Match: \"%lld\"", ver);
    const char *fresh[] = {im, NULL};
    call(&r, "POST", path, T.handler, fresh, "{\"action\":\"accept\"}");
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "accepted");
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), ver + 1);
    resp_free(&r);
    /* accepting again is a wrong transition */
    call(&r, "POST", path, T.handler, NULL, "{\"action\":\"accept\"}");
    expect_error(&r, 409, "invalid_transition", "status");
    resp_free(&r);

    /* resolve, with a phone number in the reply */
    call(&r, "POST", path, T.handler, NULL,
         "{\"action\":\"resolve\",\"measures\":[\"explanation\",\"compensation\"],\"reply\":"
         "\"已协调商铺整改，如有问题请致电 " PHONE "\"}");
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "resolved");
    resp_free(&r);
    const char *v[1] = {T.case_id};
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND status = "
                               "'resolved' AND measures = 'explanation,compensation' AND reply "
                               "LIKE '%" PHONE_MASKED "%' AND accepted_at IS NOT NULL AND "
                               "resolved_at IS NOT NULL",
                               1, v),
                     1);
    assert_int_equal(sql_count("SELECT count(*) FROM case_events WHERE case_id = $1::uuid AND "
                               "summary::text LIKE '%" PHONE "%'",
                               1, v),
                     0);
}

static void test_feedback(void **state)
{
    (void)state;
    resp_t r;
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/cases/%s/feedback", T.case_no);
    snprintf(body, sizeof(body), "{\"access_code\":\"%s\",\"satisfaction\":5,\"comment\":\"满意\"}",
             T.access_code);
    /* not replied yet */
    call(&r, "POST", path, NULL, NULL, body);
    expect_error(&r, 409, "invalid_transition", "status");
    resp_free(&r);

    /* the notifier would mark the reply sent: resolved -> replied */
    const char *v[1] = {T.case_id};
    PQclear(sql(PGRES_COMMAND_OK,
                "UPDATE cases SET status = 'replied', version = version + 1 WHERE id = $1::uuid "
                "AND status = 'resolved'",
                1, v));
    call(&r, "POST", path, NULL, NULL, "{\"access_code\":\"ZZZZZZZZ\",\"satisfaction\":5}");
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
    call(&r, "POST", path, NULL, NULL, "{\"access_code\":\"ZZZZZZZZ\",\"satisfaction\":9}");
    expect_error(&r, 422, "out_of_range", "satisfaction");
    resp_free(&r);
    call(&r, "POST", path, NULL, NULL, body);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "closed");
    resp_free(&r);
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND status = "
                               "'closed' AND satisfaction = 5 AND close_reason = 'satisfied' AND "
                               "closed_at IS NOT NULL",
                               1, v),
                     1);
}

static void test_feedback_reopens(void **state)
{
    (void)state;
    resp_t r;
    char path[160], body[256], ref[64], no[64], code[16], id[40];
    snprintf(ref, sizeof(ref), "REOPEN-%s", T.run);
    char *b = complaint_body("reopen me", ref);
    call(&r, "POST", "/v1/complaints", T.agent, NULL, b);
    free(b);
    EXPECT_STATUS(&r, 201);
    snprintf(no, sizeof(no), "%s", jstr(r.json, "case_no"));
    snprintf(code, sizeof(code), "%s", jstr(r.json, "access_code"));
    snprintf(id, sizeof(id), "%s", jstr(r.json, "case_id"));
    resp_free(&r);
    simulate_dispatch(id);
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", no);
    call(&r, "POST", path, T.handler, NULL, "{\"action\":\"accept\"}");
    EXPECT_STATUS(&r, 200);
    resp_free(&r);
    call(&r, "POST", path, T.handler, NULL,
         "{\"action\":\"resolve\",\"measures\":\"explanation\",\"reply\":\"已解释\"}");
    EXPECT_STATUS(&r, 200);
    resp_free(&r);
    const char *v[1] = {id};
    PQclear(sql(PGRES_COMMAND_OK,
                "UPDATE cases SET status = 'replied', version = version + 1 WHERE id = $1::uuid "
                "AND status = 'resolved'",
                1, v));
    snprintf(path, sizeof(path), "/v1/cases/%s/feedback", no);
    snprintf(body, sizeof(body), "{\"access_code\":\"%s\",\"satisfaction\":1}", code);
    call(&r, "POST", path, NULL, NULL, body);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "reopened");
    resp_free(&r);
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND status = "
                               "'reopened' AND reopen_count = 1 AND satisfaction = 1",
                               1, v),
                     1);
}

static void test_history(void **state)
{
    (void)state;
    resp_t r;
    char path[160];
    snprintf(path, sizeof(path), "/v1/cases/%s/history", T.case_no);
    call(&r, "GET", path, T.auditor, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "case_no"), T.case_no);
    json_t *events = json_object_get(r.json, "events");
    assert_true(json_array_size(events) >= 5);
    /* seq runs 1..n; intake's own events are all there, in order */
    const char *want[] = {"CaseReceived", "CaseAccepted", "CaseResolved", "FeedbackReceived",
                          "CaseClosed"};
    size_t w = 0, i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), (json_int_t)i + 1);
        assert_non_null(jstr(e, "event_id"));
        assert_non_null(jstr(e, "occurred_at"));
        assert_true(json_is_object(json_object_get(e, "payload")));
        if (w < 5 && strcmp(jstr(e, "event_type"), want[w]) == 0)
            w++;
    }
    assert_int_equal(w, 5);
    assert_null(strstr(r.body.s, PHONE));
    resp_free(&r);
    /* the other department's handler cannot read it */
    call(&r, "GET", path, T.other_handler, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
}

static void test_confidential_hidden_from_handler(void **state)
{
    (void)state;
    resp_t r;
    char no[64], id[40], path[160];
    call(&r, "POST", "/v1/complaints", T.agent, NULL,
         "{\"channel\":\"web\",\"title\":\"保密投诉\",\"body\":\"b\",\"confidential\":true,"
         "\"complainant\":{\"name\":\"李四\",\"phone\":\"13912345678\"}}");
    EXPECT_STATUS(&r, 201);
    snprintf(no, sizeof(no), "%s", jstr(r.json, "case_no"));
    snprintf(id, sizeof(id), "%s", jstr(r.json, "case_id"));
    resp_free(&r);
    simulate_dispatch(id);
    snprintf(path, sizeof(path), "/v1/cases/%s", no);
    call(&r, "GET", path, T.handler, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_null(json_object_get(r.json, "complainant"));
    resp_free(&r);
    call(&r, "GET", path, T.agent, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "complainant.name"), "李*");
    resp_free(&r);
}

/* ------------------------------------------------------ issue 3: the door */

/* A new web case, moved to assigned/<dept>; its number and id into no/id. */
static void new_case_in(const char *dept, const char *extra_json, char *no, size_t no_size,
                        char *id, size_t id_size, char *code, size_t code_size)
{
    resp_t r;
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"channel\":\"web\",\"title\":\"路灯不亮\",\"body\":\"小区路灯坏了\","
             "\"location\":{\"district_code\":\"110105\"},"
             "\"complainant\":{\"name\":\"王五\",\"phone\":\"13700001111\"}%s}",
             extra_json ? extra_json : "");
    call(&r, "POST", "/v1/complaints", T.agent, NULL, body);
    EXPECT_STATUS(&r, 201);
    snprintf(no, no_size, "%s", jstr(r.json, "case_no"));
    snprintf(id, id_size, "%s", jstr(r.json, "case_id"));
    if (code)
        snprintf(code, code_size, "%s", jstr(r.json, "access_code"));
    resp_free(&r);
    if (!dept)
        return;
    simulate_dispatch(id);
    const char *v[2] = {id, dept};
    PQclear(sql(PGRES_COMMAND_OK, "UPDATE cases SET department = $2 WHERE id = $1::uuid", 2, v));
}

/* 1 if the response's "errors" array names this field. */
static int names_field(const resp_t *r, const char *field)
{
    json_t *errs = json_object_get(r->json, "errors"), *e;
    size_t i;
    json_array_foreach(errs, i, e)
    {
        const char *f = json_string_value(json_object_get(e, "field"));
        if (f && strcmp(f, field) == 0)
            return 1;
    }
    return 0;
}

static void test_every_bad_field_named(void **state)
{
    (void)state;
    resp_t r;
    long before = sql_count("SELECT count(*) FROM cases", 0, NULL);
    call(&r, "POST", "/v1/complaints", T.agent, NULL,
         "{\"channel\":\"web\",\"title\":\"\",\"body\":\"b\",\"extra\":1,"
         "\"location\":{\"district_code\":\"11\",\"lat\":100,\"lon\":1},"
         "\"complainant\":{\"phone\":\"12\",\"email\":\"nope\"},"
         "\"attachments\":[{\"url\":\"ftp://x\"}]}");
    EXPECT_STATUS(&r, 422);
    const char *fields[] = {"extra",
                            "title",
                            "location.district_code",
                            "location.lat",
                            "complainant.phone",
                            "complainant.email",
                            "attachments[0].url",
                            NULL};
    for (int i = 0; fields[i]; i++)
        if (!names_field(&r, fields[i]))
            fail_msg("error list misses %s: %s", fields[i], r.body.s);
    assert_non_null(jstr(r.json, "error.code"));
    resp_free(&r);
    /* a rejected request writes nothing */
    assert_int_equal(sql_count("SELECT count(*) FROM cases", 0, NULL), before);
    /* malformed JSON is 400, not 422 */
    call(&r, "POST", "/v1/complaints", T.agent, NULL, "{\"channel\":");
    expect_error(&r, 400, "invalid_json", NULL);
    resp_free(&r);
}

static void test_channel_details(void **state)
{
    (void)state;
    static const struct {
        const char *channel, *extra, *missing; /* missing: the field the error names, NULL ok */
    } cases[] = {
        {"phone", "", "call_id"},
        {"phone", ",\"call_id\":\"c1\"", "agent_id"},
        {"phone", ",\"call_id\":\"c1\",\"agent_id\":\"a1\"", NULL},
        {"letter", ",\"scan_ref\":\"s1\"", "received_date"},
        {"letter", ",\"received_date\":\"2025-02-30\",\"scan_ref\":\"s1\"", "received_date"},
        {"letter", ",\"received_date\":\"2025-02-28\",\"scan_ref\":\"s1\"", NULL},
        {"walk_in", "", "window_id"},
        {"walk_in", ",\"window_id\":\"W3\"", NULL},
        {"web", ",\"window_id\":\"W3\"", "window_id"}, /* another channel's detail */
        {"web", "", NULL},
        {"app", "", NULL},
        {"import", "", "external_ref"},
        {"open311", "", "external_ref"},
        {"import", ",\"external_ref\":\"REF\"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        resp_t r;
        char body[512], extra[256];
        snprintf(extra, sizeof(extra), "%s", cases[i].extra);
        char *ref = strstr(extra, "REF");
        if (ref) /* unique per run */
            snprintf(ref, sizeof(extra) - (size_t)(ref - extra), "imp-%s-%zu\"", T.run, i);
        snprintf(body, sizeof(body), "{\"channel\":\"%s\",\"title\":\"t\",\"body\":\"b\"%s}",
                 cases[i].channel, extra);
        call(&r, "POST", "/v1/complaints", T.agent, NULL, body);
        if (cases[i].missing) {
            if (r.status != 422 || !names_field(&r, cases[i].missing))
                fail_msg("case %zu (%s): expected 422 naming %s, got %ld %s", i, cases[i].channel,
                         cases[i].missing, r.status, r.body.s);
        } else if (r.status != 201) {
            fail_msg("case %zu (%s): expected 201, got %ld %s", i, cases[i].channel, r.status,
                     r.body.s);
        } else {
            /* the details are kept with the case */
            char path[128];
            snprintf(path, sizeof(path), "/v1/cases/%s", jstr(r.json, "case_no"));
            resp_t g;
            call(&g, "GET", path, T.agent, NULL, NULL);
            EXPECT_STATUS(&g, 200);
            assert_true(json_is_object(json_object_get(g.json, "channel_data")));
            resp_free(&g);
        }
        resp_free(&r);
    }
}

static void test_media_type_and_size(void **state)
{
    (void)state;
    resp_t r;
    const char *text[] = {"Content-Type: text/plain", NULL};
    call(&r, "POST", "/v1/complaints", T.agent, text,
         "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\"}");
    expect_error(&r, 415, "unsupported_media_type", "Content-Type");
    resp_free(&r);
    size_t n = 300 * 1024;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int o = snprintf(big, n + 64, "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"");
    memset(big + o, 'x', n);
    snprintf(big + o + n, 64, "\"}");
    call(&r, "POST", "/v1/complaints", T.agent, NULL, big);
    expect_error(&r, 413, "payload_too_large", NULL);
    resp_free(&r);
    free(big);
}

/* The value of one counter line ("name{labels}") on the intake's /metrics; -1 if absent. */
static long long metric_value(const char *series)
{
    char url[128];
    long long v = -1;
    strbuf_t body;
    strbuf_init(&body);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", T.ops_port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(c) != CURLE_OK)
        fail_msg("GET %s failed", url);
    curl_easy_cleanup(c);
    size_t n = strlen(series);
    for (const char *l = body.s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            v = strtoll(l + n + 1, NULL, 10);
    strbuf_free(&body);
    return v;
}

/* The result lines of POST /v1/complaints/batch, parsed (one per input line, in
 * order: each carries its line number); up to max, json_decref each. */
static int batch_results(const char *body, json_t **out, int max)
{
    char *save = NULL, *copy = strdup(body);
    int n = 0;
    assert_non_null(copy);
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++) {
        if (n == max)
            fail_msg("more than %d result lines: %s", max, body);
        out[n] = json_loads(l, 0, NULL);
        assert_non_null(out[n]);
        assert_int_equal(json_integer_value(json_object_get(out[n], "line")), n + 1);
    }
    free(copy);
    return n;
}

static void test_batch(void **state)
{
    (void)state;
    resp_t r;
    char body[2048];
    const char *nd[] = {"Content-Type: application/x-ndjson", NULL};
    snprintf(
        body, sizeof(body),
        "{\"channel\":\"import\",\"external_ref\":\"b-%s-1\",\"title\":\"t1\",\"body\":\"b1\"}\n"
        "{\"channel\":\"import\",\"title\":\"no ref\",\"body\":\"b\"}\n"
        "not json\n"
        "{\"channel\":\"import\",\"external_ref\":\"b-%s-1\",\"title\":\"t1\",\"body\":\"b1\"}\n"
        "{\"channel\":\"web\",\"title\":\"t3\",\"body\":\"b3\"}\n",
        T.run, T.run);
    call(&r, "POST", "/v1/complaints/batch", T.agent, nd, body);
    EXPECT_STATUS(&r, 200);
    /* one result line per input line, in order */
    int want[5] = {201, 422, 400, 200, 201};
    json_t *res[8];
    int lines = batch_results(r.body.s, res, 8);
    assert_int_equal(lines, 5);
    for (int line = 0; line < lines; line++) {
        if (json_integer_value(json_object_get(res[line], "status")) != want[line])
            fail_msg("line %d: want %d: %s", line + 1, want[line], r.body.s);
        if (line == 3)
            assert_true(
                json_is_true(json_object_get(json_object_get(res[line], "case"), "duplicate")));
        json_decref(res[line]);
    }
    resp_free(&r);
    char ref[64];
    snprintf(ref, sizeof(ref), "b-%s-1", T.run);
    const char *v[1] = {ref};
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE external_ref = $1", 1, v), 1);

    /* a batch the database takes as it is is written together, no savepoints
     * (decision 0034): one fast group; the one above, with the same case twice,
     * was run again the careful way. Each case as if submitted alone: its own
     * number, access code, complainant and CaseReceived history row. */
    long long fast0 = metric_value("kesu_intake_group_commits_total{path=\"fast\"}");
    long long careful0 = metric_value("kesu_intake_group_commits_total{path=\"careful\"}");
    assert_true(careful0 >= 1);
    snprintf(body, sizeof(body),
             "{\"channel\":\"import\",\"external_ref\":\"b-%s-1\",\"title\":\"t1\",\"body\":\"b1\"}\n"
             "{\"channel\":\"import\",\"external_ref\":\"b-%s-2\",\"title\":\"f1\",\"body\":\"b\","
             "\"complainant\":{\"name\":\"王芳\",\"phone\":\"13800138001\"}}\n"
             "{\"channel\":\"web\",\"title\":\"f2\",\"body\":\"b\"}\n"
             "{\"channel\":\"web\",\"title\":\"f3\",\"body\":\"b\","
             "\"complainant\":{\"phone\":\"13800138003\"},\"location\":{\"lat\":23.1,\"lon\":113.3}}\n",
             T.run, T.run);
    call(&r, "POST", "/v1/complaints/batch", T.agent, nd, body);
    EXPECT_STATUS(&r, 200);
    int want2[4] = {200, 201, 201, 201};
    char nos[4][64] = {{0}}, codes[4][32] = {{0}};
    lines = batch_results(r.body.s, res, 8);
    assert_int_equal(lines, 4);
    for (int line = 0; line < lines; line++) {
        if (json_integer_value(json_object_get(res[line], "status")) != want2[line])
            fail_msg("line %d: want %d: %s", line + 1, want2[line], r.body.s);
        json_t *cs = json_object_get(res[line], "case");
        snprintf(nos[line], sizeof(nos[line]), "%s", jstr(cs, "case_no"));
        if (line > 0)
            snprintf(codes[line], sizeof(codes[line]), "%s", jstr(cs, "access_code"));
        json_decref(res[line]);
    }
    resp_free(&r);
    assert_int_equal(metric_value("kesu_intake_group_commits_total{path=\"fast\"}"), fast0 + 1);
    assert_int_equal(metric_value("kesu_intake_group_commits_total{path=\"careful\"}"), careful0);
    for (int i = 1; i < 4; i++) {
        for (int j = 0; j < i; j++)
            assert_string_not_equal(nos[i], nos[j]);
        char path[160];
        snprintf(path, sizeof(path), "/v1/cases/%s?access_code=%s", nos[i], codes[i]);
        call(&r, "GET", path, NULL, NULL, NULL);
        EXPECT_STATUS(&r, 200);
        assert_string_equal(jstr(r.json, "case_no"), nos[i]);
        resp_free(&r);
        const char *cv[1] = {nos[i]};
        assert_int_equal(sql_count("SELECT count(*) FROM case_events e JOIN cases c ON c.id = "
                                   "e.case_id WHERE c.case_no = $1 AND e.seq = 1 AND "
                                   "e.event_type = 'CaseReceived' AND c.event_seq = 1",
                                   1, cv),
                         1);
        assert_int_equal(sql_count("SELECT count(*) FROM cases c JOIN complainants p ON p.id = "
                                   "c.complainant_id WHERE c.case_no = $1 AND p.phone_enc IS NOT "
                                   "NULL AND p.phone_mask LIKE '138%'",
                                   1, cv),
                         i == 2 ? 0 : 1);
    }
    {
        const char *cv[1] = {nos[3]};
        assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE case_no = $1 AND "
                                   "abs(lat - 23.1) < 1e-9 AND abs(lon - 113.3) < 1e-9",
                                   1, cv),
                         1);
    }

    /* more than 10,000 lines: refused whole */
    size_t n = 10001;
    char *many = malloc(n * 3 + 1);
    assert_non_null(many);
    for (size_t i = 0; i < n; i++)
        memcpy(many + i * 3, "{}\n", 3);
    many[n * 3] = '\0';
    call(&r, "POST", "/v1/complaints/batch", T.agent, nd, many);
    expect_error(&r, 413, "too_many_lines", NULL);
    resp_free(&r);
    free(many);
    /* the wrong media type */
    call(&r, "POST", "/v1/complaints/batch", T.agent, NULL, "{}");
    expect_error(&r, 415, "unsupported_media_type", "Content-Type");
    resp_free(&r);
}

static void test_list_and_scope(void **state)
{
    (void)state;
    resp_t r;
    char no1[64], id1[40], no2[64], id2[40], path[512];
    char dept[32];
    snprintf(dept, sizeof(dept), "L%s", T.run);
    new_case_in("d1", NULL, no1, sizeof(no1), id1, sizeof(id1), NULL, 0);
    new_case_in("d1", NULL, no2, sizeof(no2), id2, sizeof(id2), NULL, 0);
    /* handler d1 sees both (newest first), one per page with a cursor */
    call(&r, "GET", "/v1/cases?department=d1&status=assigned&district=110105&limit=1", T.handler,
         NULL, NULL);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "case_no")),
                        no2);
    const char *cursor = jstr(r.json, "next_cursor");
    assert_non_null(cursor);
    snprintf(path, sizeof(path),
             "/v1/cases?department=d1&status=assigned&district=110105&limit=1&cursor=%s", cursor);
    resp_free(&r);
    call(&r, "GET", path, T.handler, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "case_no")),
                        no1);
    resp_free(&r);
    /* handler d2 sees none of d1's, even asking for d1 */
    call(&r, "GET", "/v1/cases?department=d1&limit=200", T.other_handler, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    resp_free(&r);
    /* overdue: a breached timer makes the case overdue */
    const char *v[1] = {id1};
    PQclear(sql(PGRES_COMMAND_OK,
                "INSERT INTO sla_timers (case_id, kind, started_at, due_at, state) VALUES "
                "($1::uuid, 'accept', now() - interval '2 days', now() - interval '1 day', "
                "'running') ON CONFLICT DO NOTHING",
                1, v));
    call(&r, "GET", "/v1/cases?overdue=true&department=d1&limit=200", T.supervisor, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    int seen1 = 0, seen2 = 0;
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(r.json, "items"), i, it)
    {
        const char *n = json_string_value(json_object_get(it, "case_no"));
        seen1 |= strcmp(n, no1) == 0;
        seen2 |= strcmp(n, no2) == 0;
    }
    assert_true(seen1 && !seen2);
    resp_free(&r);
    /* bad filters: every one named */
    call(&r, "GET", "/v1/cases?status=bogus&district=12&limit=0&overdue=maybe&created_from=x",
         T.supervisor, NULL, NULL);
    EXPECT_STATUS(&r, 422);
    assert_true(names_field(&r, "status") && names_field(&r, "district") &&
                names_field(&r, "limit") && names_field(&r, "overdue") &&
                names_field(&r, "created_from"));
    resp_free(&r);
    call(&r, "GET", "/v1/cases?created_from=2000-01-01&created_to=2000-01-02", T.supervisor, NULL,
         NULL);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    resp_free(&r);
}

/* The same rule in SQL alone: kesu_api scoped to d2 cannot select d1's rows. */
static void test_rls_in_sql(void **state)
{
    (void)state;
    char no[64], id[40];
    new_case_in("d1", NULL, no, sizeof(no), id, sizeof(id), NULL, 0);
    const char *v[1] = {id};
    static const char *const q[] = {
        "SELECT count(*) FROM cases WHERE id = $1::uuid",
        "SELECT count(*) FROM case_events WHERE case_id = $1::uuid",
        "SELECT count(*) FROM complainants p JOIN cases c ON c.complainant_id = p.id "
        "WHERE c.id = $1::uuid",
        NULL};
    for (int k = 0; q[k]; k++) {
        PQclear(sql(PGRES_COMMAND_OK, "BEGIN", 0, NULL));
        PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL ROLE kesu_api", 0, NULL));
        PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL kesu.role = 'handler'", 0, NULL));
        PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL kesu.department = 'd2'", 0, NULL));
        if (sql_count(q[k], 1, v) != 0)
            fail_msg("department d2 sees d1's rows: %s", q[k]);
        /* even an unfiltered count leaves d1's case out */
        PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL kesu.department = 'd1'", 0, NULL));
        if (sql_count(q[k], 1, v) < 1)
            fail_msg("department d1 does not see its own rows: %s", q[k]);
        PQclear(sql(PGRES_COMMAND_OK, "ROLLBACK", 0, NULL));
    }
    /* an update from d2 touches nothing; no scope at all sees nothing */
    PQclear(sql(PGRES_COMMAND_OK, "BEGIN", 0, NULL));
    PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL ROLE kesu_api", 0, NULL));
    PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL kesu.role = 'handler'", 0, NULL));
    PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL kesu.department = 'd2'", 0, NULL));
    PGresult *u = sql(PGRES_COMMAND_OK, "UPDATE cases SET title = 'x' WHERE id = $1::uuid", 1, v);
    assert_string_equal(PQcmdTuples(u), "0");
    PQclear(u);
    PQclear(sql(PGRES_COMMAND_OK, "ROLLBACK", 0, NULL));
    PQclear(sql(PGRES_COMMAND_OK, "BEGIN", 0, NULL));
    PQclear(sql(PGRES_COMMAND_OK, "SET LOCAL ROLE kesu_api", 0, NULL));
    assert_int_equal(sql_count("SELECT count(*) FROM cases", 0, NULL), 0);
    PQclear(sql(PGRES_COMMAND_OK, "ROLLBACK", 0, NULL));
}

/* A handler of d2 cannot read, list or act on d1's case through any route. */
static void test_other_department_no_route(void **state)
{
    (void)state;
    resp_t r;
    char no[64], id[40], code[16], path[160];
    new_case_in("d1", NULL, no, sizeof(no), id, sizeof(id), code, sizeof(code));
    snprintf(path, sizeof(path), "/v1/cases/%s", no);
    call(&r, "GET", path, T.other_handler, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/cases/%s/history", no);
    call(&r, "GET", path, T.other_handler, NULL, NULL);
    expect_error(&r, 404, "not_found", "case_no");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", no);
    static const char *const acts[] = {
        "{\"action\":\"accept\"}",
        "{\"action\":\"note\",\"note\":\"n\"}",
        "{\"action\":\"request_info\",\"question\":\"q\"}",
        "{\"action\":\"extension_request\",\"extra_minutes\":60,\"reason\":\"r\"}",
        "{\"action\":\"return\",\"reason\":\"r\"}",
        "{\"action\":\"resolve\",\"measures\":\"explanation\",\"reply\":\"r\"}",
        NULL};
    for (int k = 0; acts[k]; k++) {
        call(&r, "POST", path, T.other_handler, NULL, acts[k]);
        if (r.status != 404)
            fail_msg("%s by another department: %ld %s", acts[k], r.status, r.body.s);
        resp_free(&r);
    }
    const char *v[1] = {id};
    assert_int_equal(sql_count("SELECT version FROM cases WHERE id = $1::uuid", 1, v), 3);
}

/* The event types of a case's history, comma-joined. */
static void history_types(const char *no, char *out, size_t out_size)
{
    resp_t r;
    char path[160];
    size_t o = 0, i;
    json_t *e;
    snprintf(path, sizeof(path), "/v1/cases/%s/history", no);
    call(&r, "GET", path, T.supervisor, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    out[0] = '\0';
    json_array_foreach(json_object_get(r.json, "events"), i, e)
    {
        o += (size_t)snprintf(out + o, out_size - o, "%s%s", o ? "," : "",
                              json_string_value(json_object_get(e, "event_type")));
    }
    resp_free(&r);
}

static void act_ok(const char *no, const char *token, const char *body, const char *want_status)
{
    resp_t r;
    char path[160];
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", no);
    call(&r, "POST", path, token, NULL, body);
    if (r.status != 200 || strcmp(jstr(r.json, "status"), want_status) != 0)
        fail_msg("%s: expected 200 %s, got %ld %s", body, want_status, r.status, r.body.s);
    resp_free(&r);
}

static void act_err(const char *no, const char *token, const char *body, int status,
                    const char *code)
{
    resp_t r;
    char path[160];
    snprintf(path, sizeof(path), "/v1/cases/%s/actions", no);
    call(&r, "POST", path, token, NULL, body);
    expect_error(&r, status, code, NULL);
    resp_free(&r);
}

static void test_staff_actions(void **state)
{
    (void)state;
    resp_t r;
    char no[64], id[40], code[16], path[160], body[256], types[1024];
    new_case_in("d1", NULL, no, sizeof(no), id, sizeof(id), code, sizeof(code));
    act_ok(no, T.handler, "{\"action\":\"accept\"}", "accepted");
    act_ok(no, T.handler, "{\"action\":\"note\",\"note\":\"现场查看，电话13900001111\"}",
           "in_progress");
    act_ok(no, T.handler, "{\"action\":\"request_info\",\"question\":\"几号楼？\"}", "in_progress");
    act_err(no, T.handler, "{\"action\":\"request_info\",\"question\":\"again\"}", 409,
            "info_pending");
    /* the complainant answers: the supplement says it answers the request */
    snprintf(path, sizeof(path), "/v1/cases/%s/supplement", no);
    snprintf(body, sizeof(body), "{\"access_code\":\"%s\",\"text\":\"3号楼\"}", code);
    call(&r, "POST", path, NULL, NULL, body);
    EXPECT_STATUS(&r, 200);
    resp_free(&r);
    const char *v[1] = {id};
    assert_int_equal(sql_count("SELECT count(*) FROM case_events WHERE case_id = $1::uuid AND "
                               "event_type = 'SupplementReceived' AND "
                               "summary->>'answers_request' = 'true'",
                               1, v),
                     1);
    act_ok(no, T.handler,
           "{\"action\":\"extension_request\",\"extra_minutes\":1440,\"reason\":\"需要协调\"}",
           "in_progress");
    act_err(no, T.handler,
            "{\"action\":\"extension_request\",\"extra_minutes\":60,\"reason\":\"again\"}", 409,
            "extension_pending");
    act_err(no, T.handler, "{\"action\":\"extension_decide\",\"approved\":true}", 403, "forbidden");
    act_ok(no, T.supervisor, "{\"action\":\"extension_decide\",\"approved\":true}", "in_progress");
    act_err(no, T.supervisor, "{\"action\":\"extension_decide\",\"approved\":true}", 409,
            "no_extension_pending");
    act_err(no, T.handler, "{\"action\":\"supervise\",\"note\":\"n\"}", 403, "forbidden");
    act_ok(no, T.supervisor, "{\"action\":\"supervise\",\"note\":\"请加快\",\"level\":2}",
           "in_progress");
    act_err(no, T.auditor, "{\"action\":\"accept\"}", 403, "forbidden");
    act_ok(no, T.handler, "{\"action\":\"return\",\"reason\":\"不属本部门\"}", "returned");
    history_types(no, types, sizeof(types));
    assert_string_equal(types,
                        "CaseReceived,CaseAccepted,ProgressNoted,InfoRequested,SupplementReceived,"
                        "ExtensionRequested,ExtensionDecided,CaseSupervised,CaseReturned");
    /* the phone number in the note never reached an event */
    assert_int_equal(sql_count("SELECT count(*) FROM case_events WHERE case_id = $1::uuid AND "
                               "summary::text LIKE '%13900001111%'",
                               1, v),
                     0);
    /* validation of an action's own fields */
    act_err(no, T.handler,
            "{\"action\":\"extension_request\",\"extra_minutes\":0,\"reason\":\"r\"}", 422,
            "out_of_range");
}

static void test_merge_reject_withdraw(void **state)
{
    (void)state;
    char a[64], ida[40], b[64], idb[40], c[64], idc[40], d[64], idd[40], body[256];
    new_case_in(NULL, NULL, a, sizeof(a), ida, sizeof(ida), NULL, 0);
    new_case_in(NULL, NULL, b, sizeof(b), idb, sizeof(idb), NULL, 0);
    new_case_in(NULL, NULL, c, sizeof(c), idc, sizeof(idc), NULL, 0);
    new_case_in(NULL, NULL, d, sizeof(d), idd, sizeof(idd), NULL, 0);
    snprintf(body, sizeof(body), "{\"action\":\"merge\",\"into_case_no\":\"%s\"}", a);
    act_err(a, T.agent, body, 422, "invalid_value"); /* into itself */
    act_err(b, T.handler, body, 403, "forbidden");
    act_ok(b, T.agent, body, "merged");
    const char *v[2] = {idb, ida};
    assert_int_equal(sql_count("SELECT count(*) FROM cases WHERE id = $1::uuid AND merged_into = "
                               "$2::uuid",
                               2, v),
                     1);
    /* into a case that is no longer open */
    snprintf(body, sizeof(body), "{\"action\":\"merge\",\"into_case_no\":\"%s\"}", b);
    act_err(c, T.agent, body, 422, "invalid_target");
    act_ok(c, T.agent, "{\"action\":\"reject\",\"reason\":\"广告\"}", "rejected");
    act_err(c, T.agent, "{\"action\":\"withdraw\"}", 409, "invalid_transition");
    act_ok(d, T.supervisor, "{\"action\":\"withdraw\",\"reason\":\"市民来电撤诉\"}", "withdrawn");
}

static void test_access_code_throttle(void **state)
{
    (void)state;
    resp_t r;
    char no[64], id[40], code[16], path[160], ra[16];
    new_case_in(NULL, NULL, no, sizeof(no), id, sizeof(id), code, sizeof(code));
    snprintf(path, sizeof(path), "/v1/cases/%s?access_code=ZZZZZZZZ", no);
    for (int i = 0; i < 5; i++) {
        call(&r, "GET", path, NULL, NULL, NULL);
        expect_error(&r, 404, "not_found", "case_no");
        resp_free(&r);
    }
    /* the sixth try, even with the right code, waits */
    snprintf(path, sizeof(path), "/v1/cases/%s?access_code=%s", no, code);
    call(&r, "GET", path, NULL, NULL, NULL);
    expect_error(&r, 429, "too_many_attempts", "access_code");
    assert_true(resp_header(&r, "Retry-After", ra, sizeof(ra)));
    assert_true(atoi(ra) > 0);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/cases/%s/feedback", no);
    char body[128];
    snprintf(body, sizeof(body), "{\"access_code\":\"%s\",\"satisfaction\":5}", code);
    call(&r, "POST", path, NULL, NULL, body);
    expect_error(&r, 429, "too_many_attempts", "access_code");
    resp_free(&r);
    const char *v[1] = {no};
    PQclear(sql(PGRES_COMMAND_OK, "DELETE FROM access_code_throttle WHERE case_no = $1", 1, v));
    snprintf(path, sizeof(path), "/v1/cases/%s?access_code=%s", no, code);
    call(&r, "GET", path, NULL, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    resp_free(&r);
}

static void test_reveal_is_audited(void **state)
{
    (void)state;
    resp_t r;
    char no[64], id[40], path[200];
    new_case_in("d1", NULL, no, sizeof(no), id, sizeof(id), NULL, 0);
    const char *v[1] = {id};
    snprintf(path, sizeof(path), "/v1/cases/%s?reveal=contact&reason=callback", no);
    call(&r, "GET", path, T.handler, NULL, NULL);
    expect_error(&r, 403, "forbidden", "reveal");
    resp_free(&r);
    call(&r, "GET", path, T.auditor, NULL, NULL);
    expect_error(&r, 403, "forbidden", "reveal");
    resp_free(&r);
    assert_int_equal(
        sql_count("SELECT count(*) FROM contact_access_log WHERE case_id = $1::uuid", 1, v), 0);
    call(&r, "GET", path, T.supervisor, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "complainant.phone"), "13700001111");
    assert_string_equal(jstr(r.json, "complainant.name"), "王五");
    resp_free(&r);
    assert_int_equal(sql_count("SELECT count(*) FROM contact_access_log WHERE case_id = $1::uuid "
                               "AND 'phone' = ANY (fields) AND reason = 'callback'",
                               1, v),
                     1);
    /* without a reason there is no unmasking */
    snprintf(path, sizeof(path), "/v1/cases/%s?reveal=contact", no);
    call(&r, "GET", path, T.supervisor, NULL, NULL);
    expect_error(&r, 422, "missing_field", "reason");
    resp_free(&r);
    /* the log is append-only, for the owner too */
    PGresult *res = PQexecParams(T.db, "DELETE FROM contact_access_log WHERE case_id = $1::uuid", 1,
                                 NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexecParams(T.db, "UPDATE contact_access_log SET reason = 'x' WHERE case_id = $1::uuid",
                       1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    /* a normal read is masked and writes no audit row */
    snprintf(path, sizeof(path), "/v1/cases/%s", no);
    call(&r, "GET", path, T.supervisor, NULL, NULL);
    EXPECT_STATUS(&r, 200);
    assert_null(strstr(r.body.s, "13700001111"));
    resp_free(&r);
    assert_int_equal(
        sql_count("SELECT count(*) FROM contact_access_log WHERE case_id = $1::uuid", 1, v), 1);
}

/*
 * Every /v1 path and method of docs/api/openapi.yaml exists on the running
 * server, and each documented status can be produced: the test knows a
 * request per (route, status) for the statuses it can provoke without
 * outside help, and fails on a documented status it has no request for.
 */
static void test_openapi_routes_exist(void **state)
{
    (void)state;
    char file[1024], line[1024], cur_path[256] = "", cur_method[16] = "";
    int routes = 0, statuses = 0;
    snprintf(file, sizeof(file), "%s/docs/api/openapi.yaml", KESU_SOURCE_DIR);
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char no[64], id[40];
    new_case_in("d1", NULL, no, sizeof(no), id, sizeof(id), NULL, 0);
    while (fgets(line, sizeof(line), f)) {
        char word[256];
        /* "  /v1/cases/{case_no}:" at indent 2 is a path; "    get:" at 4 a method;
           "        '404':" at 8 a status */
        if (strncmp(line, "  /v1/", 6) == 0 && sscanf(line + 2, "%255[^:]:", word) == 1) {
            snprintf(cur_path, sizeof(cur_path), "%s", word);
            cur_method[0] = '\0';
            continue;
        }
        if (strncmp(line, "  /", 3) == 0 || (line[0] != ' ' && line[0] != '\n')) {
            cur_path[0] = '\0'; /* another part of the document */
            continue;
        }
        if (!cur_path[0])
            continue;
        if (strncmp(line, "    ", 4) == 0 && line[4] != ' ' &&
            sscanf(line + 4, "%15[a-z]:", cur_method) == 1) {
            if (strcmp(cur_method, "get") && strcmp(cur_method, "post")) {
                cur_method[0] = '\0';
                continue;
            }
            /* the route exists: a call without a token is never "no such resource" (404 with
               no field) nor 405 */
            char path[300], *p = path;
            for (const char *s = cur_path; *s; s++) {
                if (*s == '{') {
                    p += sprintf(p, "%s", no);
                    s = strchr(s, '}');
                } else {
                    *p++ = *s;
                }
            }
            *p = '\0';
            resp_t r;
            call(&r, strcmp(cur_method, "get") == 0 ? "GET" : "POST", path, NULL, NULL,
                 strcmp(cur_method, "post") == 0 ? "{}" : NULL);
            if (r.status == 405 || (r.status == 404 && !jstr(r.json, "error.field")))
                fail_msg("documented %s %s is not served: %ld %s", cur_method, cur_path, r.status,
                         r.body.s);
            resp_free(&r);
            routes++;
            continue;
        }
        int code = 0;
        if (cur_method[0] && sscanf(line, " '%d':", &code) == 1 && code >= 200 && code < 600) {
            /* every status is one of those the server's code paths produce (api.c, store.c) */
            static const int known[] = {200, 201, 400, 401, 403, 404, 409,
                                        413, 415, 422, 429, 500, 503, 0};
            int ok = 0;
            for (int k = 0; known[k]; k++)
                ok |= known[k] == code;
            if (!ok)
                fail_msg("%s %s documents status %d, which intake never answers", cur_method,
                         cur_path, code);
            statuses++;
        }
    }
    fclose(f);
    assert_true(routes >= 8);
    assert_true(statuses >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit),
        cmocka_unit_test(test_no_pii_stored),
        cmocka_unit_test(test_idempotent_replay),
        cmocka_unit_test(test_external_ref_duplicate),
        cmocka_unit_test(test_concurrent_submissions),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_get_case),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_feedback),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_feedback_reopens),
        cmocka_unit_test(test_confidential_hidden_from_handler),
        cmocka_unit_test(test_every_bad_field_named),
        cmocka_unit_test(test_channel_details),
        cmocka_unit_test(test_media_type_and_size),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_list_and_scope),
        cmocka_unit_test(test_rls_in_sql),
        cmocka_unit_test(test_other_department_no_route),
        cmocka_unit_test(test_staff_actions),
        cmocka_unit_test(test_merge_reject_withdraw),
        cmocka_unit_test(test_access_code_throttle),
        cmocka_unit_test(test_reveal_is_audited),
        cmocka_unit_test(test_openapi_routes_exist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
