/*
 * httpc: the one outgoing HTTP client (libcurl), for webhooks, SMS and
 * e-mail gateways and the tests. One blocking request per call on its own
 * easy handle, so it is safe from any thread; never call it from an event
 * loop thread that must stay responsive. TLS peers and host names are
 * always verified, redirects are never followed, only http and https are
 * allowed, and a response body larger than HTTPC_MAX_BODY is an error.
 */
#ifndef KESU_HTTPC_H
#define KESU_HTTPC_H

#include <stddef.h>

/** Largest response body httpc_request accepts (1 MiB). */
#define HTTPC_MAX_BODY (1024 * 1024)

typedef struct httpc_response {
    long status;     /**< HTTP status code, 0 until a response arrived */
    char *body;      /**< malloc'd, always NUL-terminated (also when empty) */
    size_t body_len; /**< bytes in body, not counting the NUL */
} httpc_response_t;

/**
 * @brief Initialise libcurl once for the process. Call it from main
 * before starting threads; httpc_request also calls it (once) itself.
 * @returns 0, or -1 if curl_global_init failed.
 */
int httpc_global_init(void);

/**
 * @brief Send one request and wait for the whole response.
 * @param method "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", ...
 * @param headers NULL-terminated array of "Name: value" strings, or NULL
 * @param body request body (sent with Content-Length) or NULL for none
 * @param timeout_ms total time limit, connect included (> 0)
 * @param resp zeroed and filled; free with httpc_response_free (also
 * after a failure)
 * @returns 0 when an HTTP response arrived, whatever its status; -1 on a
 * transport error (DNS, connect, TLS, timeout, body over 1 MiB), with
 * errstr naming the method, the URL's host:port and the curl error - never
 * the path or query, which may carry tokens.
 */
int httpc_request(const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, int timeout_ms, httpc_response_t *resp,
                  char *errstr, size_t errstr_size);

/** @brief Free a response's body and zero it (NULL-safe). @returns nothing. */
void httpc_response_free(httpc_response_t *resp);

#endif
