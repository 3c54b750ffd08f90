/*
 * http: evhttp with one generic callback that matches the route table,
 * wraps each request in an http_req_t (captures, lazily parsed query and
 * body copy) and makes sure every request is answered exactly once. The
 * ops endpoints are three routes on a server of their own, run by a
 * thread that http_ops_stop wakes with an event and joins.
 */
#include "http.h"

#include "log.h"
#include "metrics.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_MAX_HEADERS_SIZE (64 * 1024)
#define HTTP_IDLE_TIMEOUT_S   60
#define HTTP_LISTEN_BACKLOG   1024

struct http_server {
    struct evhttp *http;        /**< owns the listener (on a dup of the fd) and connections */
    const http_route_t *routes; /**< caller's table, ends with a NULL method */
    void *opaque;               /**< passed to every handler */
    size_t max_body;            /**< bodies above this get a JSON 413 */
    int port;                   /**< local port, -1 if unknown */
    http_req_t *deferred;       /**< deferred, unanswered requests (doubly linked) */
};

typedef struct http_kv {
    char *key;   /**< decoded key */
    char *value; /**< decoded value, "" for "?key" */
} http_kv_t;

struct http_req {
    struct evhttp_request *req; /**< libevent's request; valid until replied */
    http_server_t *srv;         /**< the server it came in on */
    const char *method;         /**< static upper-case name */
    char *path;                 /**< raw path without query, never NULL */
    char *params[HTTP_MAX_PARAMS]; /**< decoded captures */
    int nparams;                /**< used entries of params */
    http_kv_t *query;           /**< parsed query, after query_parsed */
    size_t nquery;              /**< entries of query */
    int query_parsed;           /**< 1 once query was parsed */
    char *body;                 /**< NUL-terminated body copy, made on first use */
    size_t body_len;            /**< bytes of body, known at dispatch */
    char peer[64];              /**< peer address, "" if unknown */
    int replied;                /**< 1 once a reply went out */
    int deferred;               /**< 1 after http_req_defer */
    int in_handler;             /**< 1 while the route handler runs */
    http_req_t *prev, *next;    /**< links in srv->deferred */
};

typedef struct http_span {
    size_t off; /* offset of a capture in the path */
    size_t len; /* its length */
} http_span_t;

/* ------------------------------------------------------------ helpers */

static pthread_once_t http_threads_once = PTHREAD_ONCE_INIT;
static int http_threads_rc = -1;

static void http_threads_do_init(void)
{
    http_threads_rc = evthread_use_pthreads();
}

int http_threads_init(void)
{
    pthread_once(&http_threads_once, http_threads_do_init);
    return http_threads_rc;
}

static const char *http_method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "UNKNOWN";
}

static const struct {
    int status;
    const char *reason;
} http_reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {410, "Gone"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *http_reason(int status)
{
    for (size_t i = 0; i < sizeof(http_reasons) / sizeof(http_reasons[0]); i++)
        if (http_reasons[i].status == status)
            return http_reasons[i].reason;
    return "Status";
}

/* Decode a percent-encoded string of n bytes; NULL if it decodes to a NUL
 * byte or invalid UTF-8 (or on no memory). */
static char *http_decode(const char *s, size_t n, int decode_plus)
{
    char *raw = strndup(s, n);
    char *dec = NULL;
    size_t len = 0;

    if (!raw)
        return NULL;
    dec = evhttp_uridecode(raw, decode_plus, &len);
    free(raw);
    if (dec && (strlen(dec) != len || !util_utf8_valid(dec, len))) {
        free(dec);
        dec = NULL;
    }
    return dec;
}

/* Match path against pattern; fills caps (if not NULL) and *ncaps. */
static int http_match(const char *pattern, const char *path, http_span_t *caps, int *ncaps)
{
    const char *p = pattern, *s = path;
    int n = 0;

    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *e = s;
            while (*e && *e != '/')
                e++;
            if (e == s || n >= HTTP_MAX_PARAMS)
                return 0;
            if (caps) {
                caps[n].off = (size_t)(s - path);
                caps[n].len = (size_t)(e - s);
            }
            n++;
            p += 2;
            s = e;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            return 0;
        }
    }
    if (*p || *s)
        return 0;
    if (ncaps)
        *ncaps = n;
    return 1;
}

static void http_req_free(http_req_t *r)
{
    if (!r)
        return;
    free(r->path);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    for (size_t i = 0; i < r->nquery; i++) {
        free(r->query[i].key);
        free(r->query[i].value);
    }
    free(r->query);
    free(r->body);
    free(r);
}

static void http_unlink_deferred(http_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->srv->deferred == r)
        r->srv->deferred = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* ------------------------------------------------------------- replies */

static void http_send(http_req_t *r, int status, const char *content_type, const char *body,
                      size_t len, int is_json)
{
    struct evbuffer *buf = NULL;
    struct evkeyvalq *hdrs;

    if (r->replied) {
        LOG_ERROR("second reply to %s %s ignored (status %d)", r->method, r->path, status);
        return;
    }
    r->replied = 1;
    hdrs = evhttp_request_get_output_headers(r->req);
    evhttp_remove_header(hdrs, "Content-Type");
    evhttp_add_header(hdrs, "Content-Type", content_type);
    evhttp_remove_header(hdrs, "X-Content-Type-Options");
    evhttp_add_header(hdrs, "X-Content-Type-Options", "nosniff");
    if (is_json) {
        evhttp_remove_header(hdrs, "Cache-Control");
        evhttp_add_header(hdrs, "Cache-Control", "no-store");
    }
    buf = evbuffer_new();
    if (buf && len)
        evbuffer_add(buf, body, len);
    if (buf)
        evhttp_send_reply(r->req, status, http_reason(status), buf);
    else
        evhttp_send_error(r->req, 500, NULL); /* no memory: libevent's plain error page */
    evbuffer_free(buf);
    r->req = NULL; /* libevent frees it once written */

    if (r->deferred && !r->in_handler) {
        http_unlink_deferred(r);
        http_req_free(r);
    }
}

void http_reply_header(http_req_t *r, const char *name, const char *value)
{
    if (r->replied) {
        LOG_ERROR("header %s added after the reply to %s %s", name, r->method, r->path);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

void http_reply_json(http_req_t *r, int status, json_t *body)
{
    char *txt = NULL;

    if (r->replied) {
        json_decref(body);
        http_send(r, status, "application/json", NULL, 0, 1); /* logs the second reply */
        return;
    }
    if (body) {
        txt = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
        if (!txt) {
            LOG_ERROR("cannot serialise the json reply to %s %s", r->method, r->path);
            static const char oops[] =
                "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
            http_send(r, 500, "application/json", oops, sizeof(oops) - 1, 1);
            return;
        }
    }
    http_send(r, status, "application/json", txt, txt ? strlen(txt) : 0, 1);
    free(txt);
}

void http_reply_text(http_req_t *r, int status, const char *content_type, const char *body,
                     size_t len)
{
    http_send(r, status, content_type ? content_type : "text/plain; charset=utf-8", body, len,
              0);
}

void http_reply_error(http_req_t *r, int status, const char *code, const char *field,
                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *root = NULL, *err = NULL;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!util_utf8_valid(msg, strlen(msg))) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    }
    root = json_object();
    err = json_object();
    if (!root || !err) {
        json_decref(root);
        json_decref(err);
        http_reply_json(r, status, NULL);
        return;
    }
    json_object_set_new(err, "code", json_string(code ? code : "error"));
    if (field)
        json_object_set_new(err, "field", json_string(field));
    json_object_set_new(err, "message", json_string(msg));
    json_object_set_new(root, "error", err);
    http_reply_json(r, status, root);
}

/* ------------------------------------------------------------ requests */

const char *http_req_method(http_req_t *r)
{
    return r->method;
}

const char *http_req_path(http_req_t *r)
{
    return r->path;
}

const char *http_req_param(http_req_t *r, int i)
{
    return i >= 0 && i < r->nparams ? r->params[i] : NULL;
}

static void http_parse_query(http_req_t *r)
{
    const char *q = NULL;
    const struct evhttp_uri *uri;

    r->query_parsed = 1;
    if (!r->req || !(uri = evhttp_request_get_evhttp_uri(r->req)) ||
        !(q = evhttp_uri_get_query(uri)) || !*q)
        return;
    size_t cap = 1;
    for (const char *p = q; *p; p++)
        cap += *p == '&';
    r->query = calloc(cap, sizeof(*r->query));
    if (!r->query)
        return;
    const char *p = q;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if (kend > p) {
            char *k = http_decode(p, (size_t)(kend - p), 1);
            char *v = eq ? http_decode(eq + 1, (size_t)(end - eq - 1), 1) : strdup("");
            if (k && v && r->nquery < cap) {
                r->query[r->nquery].key = k;
                r->query[r->nquery].value = v;
                r->nquery++;
            } else {
                free(k);
                free(v);
            }
        }
        p = amp ? amp + 1 : end;
    }
}

const char *http_req_query(http_req_t *r, const char *name)
{
    if (!r->query_parsed)
        http_parse_query(r);
    for (size_t i = 0; i < r->nquery; i++)
        if (strcmp(r->query[i].key, name) == 0)
            return r->query[i].value;
    return NULL;
}

const char *http_req_header(http_req_t *r, const char *name)
{
    if (!r->req)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *http_req_body(http_req_t *r, size_t *len)
{
    if (!r->body) {
        struct evbuffer *in = r->req ? evhttp_request_get_input_buffer(r->req) : NULL;
        if (!in)
            r->body_len = 0; /* asked only after the reply: libevent's buffer is gone */
        r->body = malloc(r->body_len + 1);
        if (!r->body) {
            if (len)
                *len = 0;
            return "";
        }
        if (in && r->body_len)
            evbuffer_copyout(in, r->body, r->body_len);
        r->body[r->body_len] = '\0';
    }
    if (len)
        *len = r->body_len;
    return r->body;
}

json_t *http_req_json(http_req_t *r, char *errstr, size_t errstr_size)
{
    json_t *root = NULL;
    json_error_t jerr;
    size_t len = 0;
    const char *b = http_req_body(r, &len);

    if (len == 0) {
        snprintf(errstr, errstr_size, "body is empty; expected a JSON object");
        goto out;
    }
    if (!util_utf8_valid(b, len)) {
        snprintf(errstr, errstr_size, "body is not valid UTF-8");
        goto out;
    }
    root = json_loadb(b, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "body is not valid JSON: %s at line %d column %d",
                 jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "body must be a JSON object");
        json_decref(root);
        root = NULL;
    }
out:
    return root;
}

const char *http_req_peer(http_req_t *r)
{
    return r->peer;
}

void http_req_defer(http_req_t *r)
{
    if (r->replied || r->deferred)
        return;
    r->deferred = 1;
    r->prev = NULL;
    r->next = r->srv->deferred;
    if (r->next)
        r->next->prev = r;
    r->srv->deferred = r;
}

/* ------------------------------------------------------------ dispatch */

static void http_dispatch(struct evhttp_request *req, void *arg)
{
    http_server_t *srv = arg;
    http_req_t *r = NULL;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const http_route_t *route = NULL;
    http_span_t caps[HTTP_MAX_PARAMS];
    int ncaps = 0;

    r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path ? path : ""))) {
        LOG_ERROR("out of memory for an http request");
        free(r);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->req = req;
    r->srv = srv;
    r->method = http_method_name(evhttp_request_get_command(req));
    r->body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &addr, &port);
        snprintf(r->peer, sizeof(r->peer), "%s", addr ? addr : "");
    }

    if (r->body_len > srv->max_body) {
        http_reply_header(r, "Connection", "close");
        http_reply_error(r, 413, "payload_too_large", NULL,
                         "request body is %zu bytes; the limit is %zu bytes", r->body_len,
                         srv->max_body);
        goto out;
    }

    for (const http_route_t *rt = srv->routes; rt && rt->method; rt++) {
        if (strcmp(rt->method, r->method) == 0 && http_match(rt->pattern, r->path, caps, &ncaps)) {
            route = rt;
            break;
        }
    }
    if (!route) {
        char allow[128] = "";
        size_t alen = 0;
        for (const http_route_t *rt = srv->routes; rt && rt->method; rt++) {
            if (!http_match(rt->pattern, r->path, NULL, NULL))
                continue;
            int seen = 0;
            for (const http_route_t *q = srv->routes; q < rt; q++)
                if (strcmp(q->method, rt->method) == 0 && http_match(q->pattern, r->path, NULL, NULL))
                    seen = 1;
            if (!seen && alen + strlen(rt->method) + 3 < sizeof(allow))
                alen += (size_t)snprintf(allow + alen, sizeof(allow) - alen, "%s%s",
                                         alen ? ", " : "", rt->method);
        }
        if (alen) {
            http_reply_header(r, "Allow", allow);
            http_reply_error(r, 405, "method_not_allowed", NULL,
                             "method %s is not allowed here; allowed: %s", r->method, allow);
        } else {
            http_reply_error(r, 404, "not_found", NULL, "no such resource: %s %s", r->method,
                             r->path);
        }
        goto out;
    }
    for (int i = 0; i < ncaps; i++) {
        r->params[i] = http_decode(r->path + caps[i].off, caps[i].len, 0);
        if (!r->params[i]) {
            http_reply_error(r, 400, "invalid_path", NULL,
                             "path segment %d is not valid (bad escape, NUL or not UTF-8)",
                             i + 1);
            goto out;
        }
        r->nparams++;
    }

    r->in_handler = 1;
    route->fn(r, srv->opaque);
    r->in_handler = 0;
    if (!r->replied && !r->deferred) {
        LOG_ERROR("handler for %s %s returned without replying", route->method, route->pattern);
        http_reply_error(r, 500, "internal", NULL, "internal error: no reply");
    }
    if (r->deferred && !r->replied)
        r = NULL; /* lives on until its reply */
    else if (r->deferred)
        http_unlink_deferred(r);
out:
    http_req_free(r);
}

/* ------------------------------------------------------------- servers */

evutil_socket_t http_listen_socket(const char *listen_addr, char *errstr, size_t errstr_size)
{
    evutil_socket_t fd = -1;
    struct addrinfo hints, *res = NULL;
    char host[256] = "", port[16] = "";
    const char *colon;
    int gai, err = 0;

    if (!listen_addr || !*listen_addr) {
        snprintf(errstr, errstr_size, "no listen address given (expected host:port)");
        goto out;
    }
    if (listen_addr[0] == '[') {
        const char *rb = strchr(listen_addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - listen_addr - 1) >= sizeof(host)) {
            snprintf(errstr, errstr_size, "bad listen address \"%s\" (expected [addr]:port)",
                     listen_addr);
            goto out;
        }
        memcpy(host, listen_addr + 1, (size_t)(rb - listen_addr - 1));
        host[rb - listen_addr - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(listen_addr, ':');
        if (!colon || (size_t)(colon - listen_addr) >= sizeof(host)) {
            snprintf(errstr, errstr_size, "bad listen address \"%s\" (expected host:port)",
                     listen_addr);
            goto out;
        }
        memcpy(host, listen_addr, (size_t)(colon - listen_addr));
        host[colon - listen_addr] = '\0';
    }
    snprintf(port, sizeof(port), "%s", colon + 1);
    char *end = NULL;
    long pn = strtol(port, &end, 10);
    if (!port[0] || *end || pn < 0 || pn > 65535) {
        snprintf(errstr, errstr_size, "bad port in listen address \"%s\"", listen_addr);
        goto out;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        snprintf(errstr, errstr_size, "cannot resolve listen address \"%s\": %s", listen_addr,
                 gai_strerror(gai));
        goto out;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, HTTP_LISTEN_BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        snprintf(errstr, errstr_size, "cannot listen on %s: %s", listen_addr, strerror(err));
out:
    if (res)
        freeaddrinfo(res);
    return fd;
}

int http_socket_port(evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

http_server_t *http_server_new_fd(struct event_base *evb, evutil_socket_t fd,
                                  const http_route_t *routes, void *opaque, size_t max_body,
                                  char *errstr, size_t errstr_size)
{
    http_server_t *srv = NULL;
    evutil_socket_t dupfd = -1;

    if (!evb || fd < 0 || !routes) {
        snprintf(errstr, errstr_size, "http server needs an event base, a socket and routes");
        goto err;
    }
    srv = calloc(1, sizeof(*srv));
    if (!srv || !(srv->http = evhttp_new(evb))) {
        snprintf(errstr, errstr_size, "out of memory creating the http server");
        goto err;
    }
    srv->routes = routes;
    srv->opaque = opaque;
    srv->max_body = max_body ? max_body : HTTP_DEFAULT_MAX_BODY;
    srv->port = http_socket_port(fd);

    /* libevent's own limit is a backstop: it answers with a plain-text 413
     * that we cannot shape, so ours (JSON) must trigger first */
    size_t hard = srv->max_body <= ((size_t)EV_SSIZE_MAX - 65536) / 2
                      ? srv->max_body * 2 + 65536
                      : (size_t)EV_SSIZE_MAX;
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)hard);
    evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS_SIZE);
    evhttp_set_timeout(srv->http, HTTP_IDLE_TIMEOUT_S);
    evhttp_set_default_content_type(srv->http, "application/json");
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, http_dispatch, srv);

    dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
        snprintf(errstr, errstr_size, "cannot duplicate the listening socket: %s",
                 strerror(errno));
        goto err;
    }
    if (!evhttp_accept_socket_with_handle(srv->http, dupfd)) {
        snprintf(errstr, errstr_size, "cannot accept on the listening socket (port %d)",
                 srv->port);
        goto err;
    }
    return srv;
err:
    if (dupfd >= 0)
        close(dupfd);
    if (srv && srv->http)
        evhttp_free(srv->http);
    free(srv);
    return NULL;
}

http_server_t *http_server_new(struct event_base *evb, const char *listen_addr,
                               const http_route_t *routes, void *opaque, size_t max_body,
                               char *errstr, size_t errstr_size)
{
    http_server_t *srv = NULL;
    evutil_socket_t fd = http_listen_socket(listen_addr, errstr, errstr_size);

    if (fd < 0)
        goto out;
    srv = http_server_new_fd(evb, fd, routes, opaque, max_body, errstr, errstr_size);
out:
    if (fd >= 0)
        close(fd); /* the server listens on its own duplicate */
    return srv;
}

int http_server_port(const http_server_t *srv)
{
    return srv ? srv->port : -1;
}

void http_server_free(http_server_t *srv)
{
    int dropped = 0;

    if (!srv)
        return;
    /* answering also frees requests whose client is gone: libevent keeps
     * those alive, detached from any connection, until they are answered */
    while (srv->deferred) {
        http_reply_error(srv->deferred, 503, "shutting_down", NULL, "server is shutting down");
        dropped++;
    }
    if (dropped)
        LOG_WARN("http server freed with %d deferred requests unanswered", dropped);
    evhttp_free(srv->http);
    free(srv);
}

/* ------------------------------------------------------------------ ops */

struct http_ops {
    struct event_base *evb; /**< the ops thread's own base (thread-aware) */
    http_server_t *srv;     /**< /healthz, /readyz, /metrics */
    struct event *stop_ev;  /**< activated by http_ops_stop to break the loop */
    pthread_t thr;          /**< runs event_base_dispatch(evb) */
    int started;            /**< 1 once thr was created */
    http_ready_fn ready;    /**< NULL means always ready */
    void *opaque;           /**< passed to ready */
};

static void http_ops_healthz(http_req_t *r, void *opaque)
{
    http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void http_ops_readyz(http_req_t *r, void *opaque)
{
    http_ops_t *ops = opaque;
    char why[256] = "";

    if (!ops->ready || ops->ready(ops->opaque, why, sizeof(why)) > 0) {
        http_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
        return;
    }
    if (!why[0] || !util_utf8_valid(why, strlen(why)))
        snprintf(why, sizeof(why), "not ready");
    http_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "not_ready", "reason", why));
}

static void http_ops_metrics(http_req_t *r, void *opaque)
{
    char *txt = metrics_render();

    if (!txt) {
        http_reply_error(r, 500, "internal", NULL, "cannot render metrics");
        return;
    }
    http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", txt, strlen(txt));
    free(txt);
}

static const http_route_t http_ops_routes[] = {
    {"GET", "/healthz", http_ops_healthz},
    {"GET", "/readyz", http_ops_readyz},
    {"GET", "/metrics", http_ops_metrics},
    {NULL, NULL, NULL},
};

static void http_ops_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    http_ops_t *ops = arg;
    event_base_loopbreak(ops->evb);
}

static void *http_ops_main(void *arg)
{
    http_ops_t *ops = arg;
    if (event_base_dispatch(ops->evb) < 0)
        LOG_ERROR("ops event loop failed");
    return NULL;
}

http_ops_t *http_ops_start(const char *listen_addr, http_ready_fn ready, void *opaque,
                           char *errstr, size_t errstr_size)
{
    http_ops_t *ops = NULL;

    if (http_threads_init() != 0) {
        snprintf(errstr, errstr_size, "libevent has no pthreads support (evthread_use_pthreads)");
        goto err;
    }
    ops = calloc(1, sizeof(*ops));
    if (!ops || !(ops->evb = event_base_new())) {
        snprintf(errstr, errstr_size, "cannot create the ops event base");
        goto err;
    }
    ops->ready = ready;
    ops->opaque = opaque;
    ops->stop_ev = event_new(ops->evb, -1, 0, http_ops_stop_cb, ops);
    if (!ops->stop_ev) {
        snprintf(errstr, errstr_size, "cannot create the ops stop event");
        goto err;
    }
    ops->srv = http_server_new(ops->evb, listen_addr, http_ops_routes, ops, 4096, errstr,
                               errstr_size);
    if (!ops->srv)
        goto err;
    int e = pthread_create(&ops->thr, NULL, http_ops_main, ops);
    if (e != 0) {
        snprintf(errstr, errstr_size, "cannot start the ops thread: %s", strerror(e));
        goto err;
    }
    ops->started = 1;
    LOG_INFO("ops endpoints listening on port %d", http_server_port(ops->srv));
    return ops;
err:
    http_ops_stop(ops);
    return NULL;
}

int http_ops_port(const http_ops_t *ops)
{
    return ops ? http_server_port(ops->srv) : -1;
}

void http_ops_stop(http_ops_t *ops)
{
    if (!ops)
        return;
    if (ops->started) {
        event_active(ops->stop_ev, EV_READ, 0);
        pthread_join(ops->thr, NULL);
    }
    http_server_free(ops->srv);
    if (ops->stop_ev)
        event_free(ops->stop_ev);
    if (ops->evb)
        event_base_free(ops->evb);
    free(ops);
}
