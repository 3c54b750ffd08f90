/*
 * test_http: an http_server on 127.0.0.1 (port 0) run by a thread, called
 * through httpc (and a raw socket where headers matter): route matching
 * with captures, 404, 405 + Allow, 413, JSON body errors, the automatic
 * 500, query decoding, deferred replies, one socket served by two threads,
 * http_ops (healthz, readyz toggling, metrics) and httpc's own errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"

#define MAX_BODY 1024

/* ------------------------------------------------------------ handlers */

typedef struct server_ctx {
    struct event_base *evb; /* the server's loop, for deferred replies */
} server_ctx_t;

static void h_action_get(http_req_t *r, void *opaque)
{
    http_reply_json(r, 200,
                    json_pack("{s:s,s:s,s:s,s:s?}", "method", http_req_method(r), "path",
                              http_req_path(r), "id", http_req_param(r, 0), "p1",
                              http_req_param(r, 1)));
}

static void h_action_post(http_req_t *r, void *opaque)
{
    char err[256];
    json_t *body = http_req_json(r, err, sizeof(err));
    if (!body) {
        http_reply_error(r, 400, "invalid_json", NULL, "%s", err);
        return;
    }
    http_reply_json(r, 201, json_pack("{s:s,s:o}", "id", http_req_param(r, 0), "body", body));
}

static void h_two(http_req_t *r, void *opaque)
{
    http_reply_json(r, 200, json_pack("{s:s,s:s}", "a", http_req_param(r, 0), "b",
                                      http_req_param(r, 1)));
}

static void h_query(http_req_t *r, void *opaque)
{
    http_reply_json(r, 200,
                    json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "name", http_req_query(r, "name"), "x",
                              http_req_query(r, "x"), "flag", http_req_query(r, "flag"), "dup",
                              http_req_query(r, "dup"), "missing", http_req_query(r, "missing")));
}

static void h_noreply(http_req_t *r, void *opaque)
{
}

static void h_twice(http_req_t *r, void *opaque)
{
    http_reply_json(r, 200, json_pack("{s:b}", "first", 1));
    http_reply_error(r, 500, "internal", NULL, "second");
}

static void h_text(http_req_t *r, void *opaque)
{
    char buf[256];
    const char *t = http_req_header(r, "x-test");
    int n = snprintf(buf, sizeof(buf), "hello %s from %s", t ? t : "-", http_req_peer(r));
    http_reply_header(r, "X-Reply", "yes");
    http_reply_text(r, 200, NULL, buf, (size_t)n);
}

static void h_field_error(http_req_t *r, void *opaque)
{
    http_reply_error(r, 422, "invalid_field", "title", "title must be 1-%d characters", 200);
}

static void h_body(http_req_t *r, void *opaque)
{
    size_t len = 0;
    const char *b = http_req_body(r, &len);
    http_reply_json(r, 200, json_pack("{s:I,s:b}", "len", (json_int_t)len, "nul_terminated",
                                      b[len] == '\0'));
}

static void h_big(http_req_t *r, void *opaque)
{
    size_t n = HTTPC_MAX_BODY + 1;
    char *b = malloc(n);
    memset(b, 'a', n);
    http_reply_text(r, 200, "application/octet-stream", b, n);
    free(b);
}

static void deferred_reply(evutil_socket_t fd, short what, void *arg)
{
    http_reply_json(arg, 202, json_pack("{s:b}", "deferred", 1));
}

static void h_defer(http_req_t *r, void *opaque)
{
    server_ctx_t *ctx = opaque;
    struct timeval tv = {0, 20 * 1000};
    http_req_defer(r);
    event_base_once(ctx->evb, -1, EV_TIMEOUT, deferred_reply, r, &tv);
}

static void h_defer_forever(http_req_t *r, void *opaque)
{
    http_req_defer(r); /* answered by http_server_free */
}

static const http_route_t routes[] = {
    {"GET", "/v1/cases/{}/actions", h_action_get},
    {"POST", "/v1/cases/{}/actions", h_action_post},
    {"GET", "/v1/a/{}/b/{}", h_two},
    {"GET", "/q", h_query},
    {"GET", "/noreply", h_noreply},
    {"GET", "/twice", h_twice},
    {"GET", "/text", h_text},
    {"POST", "/v1/items", h_field_error},
    {"PUT", "/v1/items", h_field_error},
    {"POST", "/body", h_body},
    {"GET", "/big", h_big},
    {"GET", "/defer", h_defer},
    {"GET", "/defer-forever", h_defer_forever},
    {NULL, NULL, NULL},
};

/* ------------------------------------------------------- server thread */

typedef struct server_thread {
    struct event_base *evb;
    http_server_t *srv;
    struct event *stop_ev;
    pthread_t thr;
    server_ctx_t ctx;
    int port;
} server_thread_t;

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
    server_thread_t *st = arg;
    event_base_dispatch(st->evb);
    return NULL;
}

/* Start a server thread on fd (or on 127.0.0.1:0 when fd < 0). */
static void server_start(server_thread_t *st, evutil_socket_t fd)
{
    char err[256] = "";
    memset(st, 0, sizeof(*st));
    assert_int_equal(http_threads_init(), 0);
    st->evb = event_base_new();
    assert_non_null(st->evb);
    st->ctx.evb = st->evb;
    if (fd < 0)
        st->srv = http_server_new(st->evb, "127.0.0.1:0", routes, &st->ctx, MAX_BODY, err,
                                  sizeof(err));
    else
        st->srv = http_server_new_fd(st->evb, fd, routes, &st->ctx, MAX_BODY, err, sizeof(err));
    if (!st->srv)
        fail_msg("http_server_new: %s", err);
    st->port = http_server_port(st->srv);
    assert_true(st->port > 0);
    st->stop_ev = event_new(st->evb, -1, 0, stop_cb, st->evb);
    assert_int_equal(pthread_create(&st->thr, NULL, server_main, st), 0);
}

static void server_stop(server_thread_t *st)
{
    event_active(st->stop_ev, EV_READ, 0);
    pthread_join(st->thr, NULL);
    http_server_free(st->srv);
    event_free(st->stop_ev);
    event_base_free(st->evb);
}

static server_thread_t the_server;

static int setup_server(void **state)
{
    server_start(&the_server, -1);
    *state = &the_server;
    return 0;
}

static int teardown_server(void **state)
{
    server_stop(&the_server);
    return 0;
}

/* --------------------------------------------------------- client side */

typedef struct reply {
    long status;
    json_t *json; /* parsed body, NULL if not JSON */
    char *body;
} reply_t;

static reply_t call(int port, const char *method, const char *path, const char *body,
                    size_t body_len)
{
    char url[512], err[256] = "";
    httpc_response_t resp;
    reply_t out = {0, NULL, NULL};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    const char *hdrs[] = {"Content-Type: application/json", "X-Test: t1", NULL};
    if (httpc_request(method, url, hdrs, body, body_len, 5000, &resp, err, sizeof(err)) != 0)
        fail_msg("httpc %s %s: %s", method, path, err);
    out.status = resp.status;
    out.body = resp.body;
    out.json = json_loadb(resp.body, resp.body_len, 0, NULL);
    return out;
}

static void reply_free(reply_t *r)
{
    json_decref(r->json);
    free(r->body);
}

static const char *jstr(json_t *root, const char *path1, const char *path2)
{
    json_t *v = json_object_get(root, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

/* Raw HTTP/1.1 exchange with Connection: close; the whole response in out. */
static size_t raw_http(int port, const char *request, char *out, size_t out_size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    size_t got = 0;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t len = strlen(request);
    assert_int_equal(write(fd, request, len), (ssize_t)len);
    for (;;) {
        ssize_t n = read(fd, out + got, out_size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
    return got;
}

/* Value of a response header in a raw response ("" if absent). */
static void raw_header(const char *resp, const char *name, char *val, size_t val_size)
{
    size_t nl = strlen(name);
    val[0] = '\0';
    for (const char *p = strstr(resp, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            snprintf(val, val_size, "%.*s", (int)(e - v), v);
            return;
        }
    }
}

/* --------------------------------------------------------------- tests */

static void test_route_captures(void **state)
{
    server_thread_t *st = *state;
    reply_t r = call(st->port, "GET", "/v1/cases/abc%20def/actions", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_string_equal(jstr(r.json, "method", NULL), "GET");
    assert_string_equal(jstr(r.json, "path", NULL), "/v1/cases/abc%20def/actions");
    assert_string_equal(jstr(r.json, "id", NULL), "abc def");
    assert_null(json_string_value(json_object_get(r.json, "p1")));
    reply_free(&r);

    r = call(st->port, "GET", "/v1/cases/%E5%BC%A0%E4%B8%89/actions?x=1", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "id", NULL), "张三");
    assert_string_equal(jstr(r.json, "path", NULL), "/v1/cases/%E5%BC%A0%E4%B8%89/actions");
    reply_free(&r);

    r = call(st->port, "GET", "/v1/a/one/b/two%2Fthree", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "a", NULL), "one");
    assert_string_equal(jstr(r.json, "b", NULL), "two/three"); /* %2F stays in one segment */
    reply_free(&r);

    const char *body = "{\"action\":\"accept\"}";
    r = call(st->port, "POST", "/v1/cases/c-1/actions", body, strlen(body));
    assert_int_equal(r.status, 201);
    assert_string_equal(jstr(r.json, "id", NULL), "c-1");
    assert_string_equal(jstr(r.json, "body", "action"), "accept");
    reply_free(&r);
}

static void test_not_found(void **state)
{
    server_thread_t *st = *state;
    static const char *const paths[] = {"/nope", "/v1/cases/x/actions/", "/v1/cases//actions",
                                        "/v1/cases/x", "/", "/v1/a/1/b/2/c"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        reply_t r = call(st->port, "GET", paths[i], NULL, 0);
        if (r.status != 404)
            fail_msg("GET %s: want 404, got %ld", paths[i], r.status);
        assert_string_equal(jstr(r.json, "error", "code"), "not_found");
        assert_non_null(jstr(r.json, "error", "message"));
        assert_null(json_object_get(json_object_get(r.json, "error"), "field"));
        reply_free(&r);
    }
}

static void test_method_not_allowed(void **state)
{
    server_thread_t *st = *state;
    char resp[4096], allow[128], ctype[128];
    reply_t r = call(st->port, "DELETE", "/v1/cases/x/actions", NULL, 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(jstr(r.json, "error", "code"), "method_not_allowed");
    reply_free(&r);

    raw_http(st->port, "DELETE /v1/cases/x/actions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             resp, sizeof(resp));
    assert_memory_equal(resp, "HTTP/1.1 405 ", 13);
    raw_header(resp, "Allow", allow, sizeof(allow));
    assert_string_equal(allow, "GET, POST");
    raw_header(resp, "Content-Type", ctype, sizeof(ctype));
    assert_string_equal(ctype, "application/json");

    raw_http(st->port, "GET /v1/items HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", resp,
             sizeof(resp));
    raw_header(resp, "Allow", allow, sizeof(allow));
    assert_string_equal(allow, "POST, PUT");
}

static void test_payload_too_large(void **state)
{
    server_thread_t *st = *state;
    char *big = malloc(MAX_BODY + 1);
    memset(big, 'x', MAX_BODY + 1);

    reply_t r = call(st->port, "POST", "/body", big, MAX_BODY);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "len")), MAX_BODY);
    assert_true(json_is_true(json_object_get(r.json, "nul_terminated")));
    reply_free(&r);

    r = call(st->port, "POST", "/body", big, MAX_BODY + 1);
    assert_int_equal(r.status, 413);
    assert_string_equal(jstr(r.json, "error", "code"), "payload_too_large");
    assert_non_null(strstr(jstr(r.json, "error", "message"), "limit is 1024 bytes"));
    reply_free(&r);

    /* also on an unknown path: the limit comes first */
    r = call(st->port, "POST", "/nope", big, MAX_BODY + 1);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    free(big);

    /* far over the limit: libevent refuses on Content-Length alone */
    char resp[4096];
    raw_http(st->port,
             "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n"
             "Connection: close\r\n\r\n",
             resp, sizeof(resp));
    assert_memory_equal(resp, "HTTP/1.1 413 ", 13);
}

typedef struct json_case {
    const char *body;
    size_t len;
    const char *want; /* substring of the error message, NULL for success */
} json_case_t;

static void test_json_errors(void **state)
{
    server_thread_t *st = *state;
    static const json_case_t cases[] = {
        {"", 0, "body is empty; expected a JSON object"},
        {"{", 1, "body is not valid JSON: "},
        {"{\"a\" 1}", 7, "at line 1 column 6"},
        {"[1,2]", 5, "body must be a JSON object"},
        {"\"str\"", 5, "body must be a JSON object"},
        {"{\"a\":\"\xff\"}", 9, "body is not valid UTF-8"},
        {"{\"a\":1}\0", 8, "body is not valid UTF-8"},
        {"{\"a\":1,\"a\":2}", 13, "duplicate object key"},
        {"{\"a\":\"\xe5\xbc\xa0\"}", 11, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reply_t r = call(st->port, "POST", "/v1/cases/c/actions", cases[i].body, cases[i].len);
        if (!cases[i].want) {
            assert_int_equal(r.status, 201);
            assert_string_equal(jstr(r.json, "body", "a"), "张");
        } else {
            if (r.status != 400)
                fail_msg("json case %zu: want 400, got %ld", i, r.status);
            const char *msg = jstr(r.json, "error", "message");
            if (!msg || !strstr(msg, cases[i].want))
                fail_msg("json case %zu: want \"%s\" in \"%s\"", i, cases[i].want,
                         msg ? msg : "(null)");
            assert_string_equal(jstr(r.json, "error", "code"), "invalid_json");
        }
        reply_free(&r);
    }
}

static void test_auto_500_and_twice(void **state)
{
    server_thread_t *st = *state;
    reply_t r = call(st->port, "GET", "/noreply", NULL, 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(jstr(r.json, "error", "code"), "internal");
    reply_free(&r);

    r = call(st->port, "GET", "/twice", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "first")));
    reply_free(&r);

    /* the server is still fine */
    r = call(st->port, "GET", "/v1/a/1/b/2", NULL, 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void test_query(void **state)
{
    server_thread_t *st = *state;
    reply_t r = call(st->port, "GET", "/q?name=%E5%BC%A0%E4%B8%89&x=a+b%2Bc&flag&dup=1&dup=2&=z",
                     NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "name", NULL), "张三");
    assert_string_equal(jstr(r.json, "x", NULL), "a b+c");
    assert_string_equal(jstr(r.json, "flag", NULL), "");
    assert_string_equal(jstr(r.json, "dup", NULL), "1");
    assert_true(json_is_null(json_object_get(r.json, "missing")));
    reply_free(&r);

    /* NUL and invalid UTF-8 values are dropped */
    r = call(st->port, "GET", "/q?name=a%00b&x=%FF&flag=ok", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "name")));
    assert_true(json_is_null(json_object_get(r.json, "x")));
    assert_string_equal(jstr(r.json, "flag", NULL), "ok");
    reply_free(&r);

    r = call(st->port, "GET", "/q", NULL, 0);
    assert_true(json_is_null(json_object_get(r.json, "name")));
    reply_free(&r);
}

static void test_bad_capture(void **state)
{
    server_thread_t *st = *state;
    static const char *const paths[] = {"/v1/cases/a%00b/actions", "/v1/cases/%FF/actions"};
    for (size_t i = 0; i < 2; i++) {
        reply_t r = call(st->port, "GET", paths[i], NULL, 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(jstr(r.json, "error", "code"), "invalid_path");
        reply_free(&r);
    }
}

static void test_headers_and_text(void **state)
{
    server_thread_t *st = *state;
    char resp[4096], v[256];

    raw_http(st->port, "GET /text HTTP/1.1\r\nHost: t\r\nX-Test: abc\r\nConnection: close\r\n\r\n",
             resp, sizeof(resp));
    assert_memory_equal(resp, "HTTP/1.1 200 OK\r\n", 17);
    raw_header(resp, "Content-Type", v, sizeof(v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    raw_header(resp, "X-Reply", v, sizeof(v));
    assert_string_equal(v, "yes");
    raw_header(resp, "Cache-Control", v, sizeof(v));
    assert_string_equal(v, "");
    raw_header(resp, "X-Content-Type-Options", v, sizeof(v));
    assert_string_equal(v, "nosniff");
    assert_non_null(strstr(resp, "\r\n\r\nhello abc from 127.0.0.1"));

    raw_http(st->port, "POST /v1/items HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n",
             resp, sizeof(resp));
    assert_memory_equal(resp, "HTTP/1.1 422 Unprocessable Entity\r\n", 35);
    raw_header(resp, "Content-Type", v, sizeof(v));
    assert_string_equal(v, "application/json");
    raw_header(resp, "Cache-Control", v, sizeof(v));
    assert_string_equal(v, "no-store");
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    assert_string_equal(b + 4, "{\"error\":{\"code\":\"invalid_field\",\"field\":\"title\","
                               "\"message\":\"title must be 1-200 characters\"}}");
}

static void test_defer(void **state)
{
    server_thread_t *st = *state;
    reply_t r = call(st->port, "GET", "/defer", NULL, 0);
    assert_int_equal(r.status, 202);
    assert_true(json_is_true(json_object_get(r.json, "deferred")));
    reply_free(&r);
}

typedef struct forever_arg {
    int port;
    long status;
} forever_arg_t;

static void *forever_client(void *arg)
{
    forever_arg_t *fa = arg;
    char url[128], err[256];
    httpc_response_t resp;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/defer-forever", fa->port);
    if (httpc_request("GET", url, NULL, NULL, 0, 5000, &resp, err, sizeof(err)) == 0)
        fa->status = resp.status;
    else
        fa->status = -1;
    httpc_response_free(&resp);
    return NULL;
}

static void test_defer_answered_on_free(void **state)
{
    server_thread_t st;
    pthread_t thr;
    server_start(&st, -1);
    forever_arg_t fa = {st.port, 0};
    assert_int_equal(pthread_create(&thr, NULL, forever_client, &fa), 0);
    usleep(200 * 1000); /* let the request arrive and be deferred */
    server_stop(&st);   /* answers it with 503 and frees it (ASan checks the rest) */
    pthread_join(thr, NULL);
    assert_true(fa.status == 503 || fa.status == -1);
}

static void test_httpc_errors(void **state)
{
    server_thread_t *st = *state;
    char url[128], err[512] = "";
    httpc_response_t resp;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", st->port);
    assert_int_equal(httpc_request("GET", url, NULL, NULL, 0, 5000, &resp, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds 1048576 bytes"));
    assert_non_null(strstr(err, "127.0.0.1"));
    httpc_response_free(&resp);

    /* a port nobody listens on: take a free one and close it */
    evutil_socket_t fd = http_listen_socket("127.0.0.1:0", err, sizeof(err));
    int port = http_socket_port(fd);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/secret-path?token=abc", port);
    assert_int_equal(httpc_request("POST", url, NULL, "{}", 2, 2000, &resp, err, sizeof(err)), -1);
    char want[64];
    snprintf(want, sizeof(want), "POST 127.0.0.1:%d: ", port);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "onnect"));
    assert_null(strstr(err, "secret-path"));
    assert_null(strstr(err, "token"));
    assert_null(resp.body);
    httpc_response_free(&resp);

    assert_int_equal(httpc_request("GET", "ftp://127.0.0.1/x", NULL, NULL, 0, 2000, &resp, err,
                                   sizeof(err)),
                     -1);
    httpc_response_free(&resp);
}

static void test_listen_errors(void **state)
{
    char err[256] = "";
    assert_int_equal(http_listen_socket("nonsense", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad listen address \"nonsense\""));
    assert_int_equal(http_listen_socket("127.0.0.1:99999", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad port"));
    assert_int_equal(http_listen_socket("", err, sizeof(err)), -1);

    evutil_socket_t fd = http_listen_socket("127.0.0.1:0", err, sizeof(err));
    assert_true(fd >= 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_socket_port(fd));
    assert_int_equal(http_listen_socket(addr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Address already in use"));
    close(fd);

    fd = http_listen_socket("[::1]:0", err, sizeof(err));
    if (fd >= 0) /* IPv6 may be disabled in the sandbox */
        close(fd);
}

static void test_shared_socket(void **state)
{
    char err[256] = "";
    evutil_socket_t fd = http_listen_socket("127.0.0.1:0", err, sizeof(err));
    assert_true(fd >= 0);
    server_thread_t a, b;
    server_start(&a, fd);
    server_start(&b, fd);
    close(fd); /* each server has its own duplicate */
    assert_int_equal(a.port, b.port);
    for (int i = 0; i < 20; i++) {
        reply_t r = call(a.port, "GET", "/v1/a/x/b/y", NULL, 0);
        assert_int_equal(r.status, 200);
        reply_free(&r);
    }
    server_stop(&a);
    /* b still serves after a is gone */
    reply_t r = call(b.port, "GET", "/v1/a/x/b/y", NULL, 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    server_stop(&b);
}

/* ------------------------------------------------------------------ ops */

static atomic_int ops_ready;

static int ready_fn(void *opaque, char *why, size_t n)
{
    assert_ptr_equal(opaque, &ops_ready);
    if (atomic_load(&ops_ready))
        return 1;
    snprintf(why, n, "database unreachable");
    return 0;
}

static void test_ops(void **state)
{
    char err[256] = "";
    metrics_reset_for_tests();
    metrics_counter_add(metrics_counter("kesu_test_total", "Test counter.", "k=\"v\""), 5);

    http_ops_t *ops = http_ops_start("127.0.0.1:0", ready_fn, &ops_ready, err, sizeof(err));
    if (!ops)
        fail_msg("http_ops_start: %s", err);
    int port = http_ops_port(ops);
    assert_true(port > 0);

    reply_t r = call(port, "GET", "/healthz", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    reply_free(&r);

    atomic_store(&ops_ready, 0);
    r = call(port, "GET", "/readyz", NULL, 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"not_ready\",\"reason\":\"database unreachable\"}");
    reply_free(&r);

    atomic_store(&ops_ready, 1);
    r = call(port, "GET", "/readyz", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    reply_free(&r);

    r = call(port, "GET", "/metrics", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "# HELP kesu_test_total Test counter.\n"
                                "# TYPE kesu_test_total counter\n"
                                "kesu_test_total{k=\"v\"} 5\n");
    reply_free(&r);

    char resp[4096], v[128];
    raw_http(port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", resp,
             sizeof(resp));
    raw_header(resp, "Content-Type", v, sizeof(v));
    assert_string_equal(v, "text/plain; version=0.0.4; charset=utf-8");

    r = call(port, "GET", "/other", NULL, 0);
    assert_int_equal(r.status, 404);
    reply_free(&r);
    r = call(port, "POST", "/healthz", "{}", 2);
    assert_int_equal(r.status, 405);
    reply_free(&r);

    http_ops_stop(ops);
    metrics_reset_for_tests();

    /* start failure leaves nothing behind */
    evutil_socket_t fd = http_listen_socket("127.0.0.1:0", err, sizeof(err));
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_socket_port(fd));
    assert_null(http_ops_start(addr, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "Address already in use"));
    close(fd);
    http_ops_stop(NULL);
}

int main(void)
{
    log_init("test_http", LOG_LVL_WARN);
    assert_int_equal(httpc_global_init(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_captures),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_payload_too_large),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_auto_500_and_twice),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_bad_capture),
        cmocka_unit_test(test_headers_and_text),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_httpc_errors),
    };
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_defer_answered_on_free),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_shared_socket),
        cmocka_unit_test(test_ops),
    };
    int failed = cmocka_run_group_tests_name("http_server", tests, setup_server, teardown_server);
    failed += cmocka_run_group_tests_name("http_misc", standalone, NULL, NULL);
    return failed;
}
