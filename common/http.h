/*
 * http: the one HTTP server helper, on libevent's evhttp, and the ops
 * endpoints (/healthz, /readyz, /metrics) every service runs.
 *
 * A server owns a route table: method + pattern, where "{}" stands for one
 * whole, non-empty path segment ("/v1/cases/{}/actions"). The path is
 * matched as received (percent-encoded, without the query string); the
 * captures are handed to the handler URL-decoded. The first route whose
 * pattern and method match wins. An unknown path gets a 404 JSON error, a
 * known path with another method a 405 with an Allow header, a body over
 * max_body a 413, and a capture that decodes to a NUL byte or invalid UTF-8
 * a 400 - all before any handler runs.
 *
 * A handler replies exactly once with one of the http_reply_* calls before
 * it returns (a handler that does not gets an automatic 500 and a
 * LOG_ERROR line), or calls http_req_defer and replies later from the same
 * event loop thread (group commit). Read what you need before replying:
 * once the reply is sent libevent owns its request again, so headers, and
 * a query or body not fetched before, are no longer available (path,
 * captures and strings already returned stay valid until r is freed).
 *
 * Every reply carries Content-Type and X-Content-Type-Options: nosniff;
 * JSON replies also Cache-Control: no-store. Errors are {"error":{"code":"...","field":"...","message":"..."}}.
 *
 * Threads: a server and its requests belong to the thread running its
 * event_base. To serve one port from several threads, create the socket
 * once with http_listen_socket and give it to http_server_new_fd on each
 * thread's own event_base.
 */
#ifndef KESU_HTTP_H
#define KESU_HTTP_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

typedef struct http_req http_req_t;
typedef struct http_server http_server_t;
typedef struct http_ops http_ops_t;

/** A route handler; opaque is the server's opaque pointer. */
typedef void (*http_handler_fn)(http_req_t *r, void *opaque);

/** One route; a table ends with {NULL, NULL, NULL}. */
typedef struct http_route {
    const char *method;  /**< upper case: "GET", "POST", "PUT", "PATCH", "DELETE", ... */
    const char *pattern; /**< "/v1/cases/{}" - "{}" is exactly one whole segment */
    http_handler_fn fn;  /**< called with the request and the server's opaque */
} http_route_t;

/** Most "{}" captures one pattern may have. */
#define HTTP_MAX_PARAMS 8

/** Default max_body when 0 is given (1 MiB). */
#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)

/**
 * @brief Make libevent thread-aware (evthread_use_pthreads), once per
 * process. Call it before creating any event_base that another thread
 * wakes up (event_active, event_base_loopbreak); http_ops_start calls it.
 * @returns 0, or -1 if libevent has no pthreads support.
 */
int http_threads_init(void);

/**
 * @brief Create a bound, listening, non-blocking, close-on-exec TCP socket
 * with SO_REUSEADDR. listen is "host:port", "[v6addr]:port" or ":port"
 * (all interfaces); port 0 picks a free port (see http_socket_port).
 * @returns the socket (caller closes it with evutil_closesocket), or -1
 * with errstr set.
 */
evutil_socket_t http_listen_socket(const char *listen, char *errstr, size_t errstr_size);

/** @brief Local port a socket is bound to. @returns the port, or -1. */
int http_socket_port(evutil_socket_t fd);

/**
 * @brief Create a server on evb listening on listen ("127.0.0.1:8080").
 * routes and opaque must outlive the server. max_body is the largest
 * request body accepted (0 means HTTP_DEFAULT_MAX_BODY); larger bodies get
 * a 413 JSON error. libevent itself stops reading at 2 * max_body + 64 KiB
 * (evhttp_set_max_body_size) and answers beyond that with its own plain
 * 413, so a huge upload is never buffered.
 * @returns the server, or NULL with errstr set.
 */
http_server_t *http_server_new(struct event_base *evb, const char *listen,
                               const http_route_t *routes, void *opaque, size_t max_body,
                               char *errstr, size_t errstr_size);

/**
 * @brief Like http_server_new on a listening socket from
 * http_listen_socket. The server works on its own duplicate of fd, so
 * several servers (one per thread and event_base) can share one fd; the
 * caller still owns and closes fd.
 * @returns the server, or NULL with errstr set.
 */
http_server_t *http_server_new_fd(struct event_base *evb, evutil_socket_t fd,
                                  const http_route_t *routes, void *opaque, size_t max_body,
                                  char *errstr, size_t errstr_size);

/** @brief Port the server listens on (useful with port 0). @returns the port, or -1. */
int http_server_port(const http_server_t *srv);

/**
 * @brief Stop listening, close every connection and free the server.
 * Deferred requests still unanswered get a 503 "shutting_down" (a
 * LOG_WARN says how many) and their http_req_t pointers become invalid.
 * Call it on the thread that runs evb, with its loop stopped. NULL-safe.
 * @returns nothing.
 */
void http_server_free(http_server_t *srv);

/* ------------------------------------------------------------ requests */

/** @brief Request method, upper case ("GET"). @returns a static string. */
const char *http_req_method(http_req_t *r);

/** @brief Request path as received, percent-encoded, without the query. @returns a string owned by r. */
const char *http_req_path(http_req_t *r);

/** @brief The i-th "{}" capture (from 0), URL-decoded, valid UTF-8. @returns a string owned by r, or NULL if there is no such capture. */
const char *http_req_param(http_req_t *r, int i);

/**
 * @brief Value of query parameter name (first occurrence), URL-decoded with
 * '+' as space; "?flag" gives "". Parameters whose key or value decodes to
 * a NUL byte or invalid UTF-8 are ignored.
 * @returns a string owned by r, or NULL if absent.
 */
const char *http_req_query(http_req_t *r, const char *name);

/** @brief Request header (case-insensitive name). @returns a string owned by r, or NULL if absent. */
const char *http_req_header(http_req_t *r, const char *name);

/** @brief Request body as a NUL-terminated copy (may contain NULs; use *len). @returns a buffer owned by r ("" for none); len may be NULL. */
const char *http_req_body(http_req_t *r, size_t *len);

/**
 * @brief Parse the body as a JSON object (duplicate keys rejected). The
 * error says what is wrong: "body is empty; expected a JSON object",
 * "body is not valid UTF-8", "body is not valid JSON: <why> at line L
 * column C", "body must be a JSON object".
 * @returns a new reference the caller json_decref's, or NULL with errstr set.
 */
json_t *http_req_json(http_req_t *r, char *errstr, size_t errstr_size);

/** @brief Peer IP address of the connection (no port). @returns a string owned by r ("" if unknown). */
const char *http_req_peer(http_req_t *r);

/**
 * @brief Keep the request open after the handler returns; reply later with
 * one http_reply_* call from the server's event loop thread, which also
 * frees r. No automatic 500 is sent for a deferred request.
 * @returns nothing.
 */
void http_req_defer(http_req_t *r);

/* ------------------------------------------------------------- replies */

/**
 * @brief Add a response header before replying (repeat for several).
 * @returns nothing.
 */
void http_reply_header(http_req_t *r, const char *name, const char *value);

/**
 * @brief Reply with a JSON body (compact). @remark takes ownership of body
 * (json_decref'd here, also when the reply is refused as a second one).
 * body NULL sends an empty body (for 204).
 * @returns nothing.
 */
void http_reply_json(http_req_t *r, int status, json_t *body);

/** @brief Reply with len bytes of body; content_type NULL means "text/plain; charset=utf-8". @returns nothing. */
void http_reply_text(http_req_t *r, int status, const char *content_type, const char *body,
                     size_t len);

/**
 * @brief Reply {"error":{"code":code,"field":field,"message":...}}; "field"
 * is left out when field is NULL. Invalid UTF-8 in the message is shown as '?'.
 * @returns nothing.
 */
void http_reply_error(http_req_t *r, int status, const char *code, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ------------------------------------------------------------------ ops */

/**
 * Readiness check, called on the ops thread for every GET /readyz, so it
 * must be thread-safe and quick (read a flag the service maintains).
 * A predicate, not a 0/-1 call: it answers "is the service ready?".
 * @returns 1 (any value > 0) when ready; 0 (or < 0) when not, with the
 * reason in why.
 */
typedef int (*http_ready_fn)(void *opaque, char *why, size_t why_size);

/**
 * @brief Start the ops endpoints on their own thread and event_base:
 * GET /healthz -> 200 {"status":"ok"}; GET /readyz -> 200
 * {"status":"ready"} or 503 {"status":"not_ready","reason":why}; GET
 * /metrics -> metrics_render() as text/plain; version=0.0.4. ready may be
 * NULL (always ready).
 * @returns the handle, or NULL with errstr set (nothing left running).
 */
http_ops_t *http_ops_start(const char *listen, http_ready_fn ready, void *opaque, char *errstr,
                           size_t errstr_size);

/** @brief Port the ops endpoints listen on. @returns the port, or -1. */
int http_ops_port(const http_ops_t *ops);

/** @brief Stop the ops thread (loopbreak through an event, join) and free everything. NULL-safe. @returns nothing. */
void http_ops_stop(http_ops_t *ops);

#endif
