/*
 * httpc: a thin blocking wrapper around one curl easy handle per request.
 * CURLOPT_NOSIGNAL keeps libcurl from using signals for DNS timeouts so it
 * is safe in threads; "Expect:" is sent empty so bodies go out at once
 * instead of after a 100-continue round trip.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;
static CURLcode httpc_init_rc = CURLE_FAILED_INIT;

typedef struct httpc_sink {
    char *buf;      /* collected body, NUL-terminated */
    size_t len;     /* bytes in buf */
    size_t cap;     /* bytes allocated */
    int too_large;  /* set when the body passed HTTPC_MAX_BODY */
    int oom;        /* set when realloc failed */
} httpc_sink_t;

static void httpc_do_init(void)
{
    httpc_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int httpc_global_init(void)
{
    pthread_once(&httpc_once, httpc_do_init);
    return httpc_init_rc == CURLE_OK ? 0 : -1;
}

static size_t httpc_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    httpc_sink_t *s = arg;
    size_t n = size * nmemb;

    if (s->len + n > HTTPC_MAX_BODY) {
        s->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            s->oom = 1;
            return 0;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

/* "host:port" of url for error messages, or "(invalid url)". */
static void httpc_url_host(const char *url, char *out, size_t out_size)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;

    snprintf(out, out_size, "(invalid url)");
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        snprintf(out, out_size, "%s:%s", host, port);
    else
        snprintf(out, out_size, "%s", host);
out:
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

int httpc_request(const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, int timeout_ms, httpc_response_t *resp,
                  char *errstr, size_t errstr_size)
{
    int rc = -1;
    CURL *curl = NULL;
    struct curl_slist *hdrs = NULL, *tmp;
    httpc_sink_t sink = {NULL, 0, 0, 0, 0};
    char curl_err[CURL_ERROR_SIZE] = "";
    char host[300];
    CURLcode res;
    int oom = 0;

    memset(resp, 0, sizeof(*resp));
    if (!method || !*method)
        method = "GET";
    if (!url) {
        snprintf(errstr, errstr_size, "%s: no url given", method);
        goto out;
    }
    httpc_url_host(url, host, sizeof(host));
    if (httpc_global_init() != 0) {
        snprintf(errstr, errstr_size, "%s %s: curl_global_init failed", method, host);
        goto out;
    }
    curl = curl_easy_init();
    if (!curl) {
        snprintf(errstr, errstr_size, "%s %s: curl_easy_init failed", method, host);
        goto out;
    }
    for (size_t i = 0; !oom && headers && headers[i]; i++) {
        tmp = curl_slist_append(hdrs, headers[i]);
        oom = !tmp;
        hdrs = tmp ? tmp : hdrs;
    }
    tmp = oom ? NULL : curl_slist_append(hdrs, "Expect:");
    if (!tmp) {
        snprintf(errstr, errstr_size, "%s %s: out of memory", method, host);
        goto out;
    }
    hdrs = tmp;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 30000));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, httpc_write_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTPC_MAX_BODY);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }

    res = curl_easy_perform(curl);
    if (sink.too_large || res == CURLE_FILESIZE_EXCEEDED) {
        snprintf(errstr, errstr_size, "%s %s: response body exceeds %d bytes", method, host,
                 HTTPC_MAX_BODY);
        goto out;
    }
    if (sink.oom) {
        snprintf(errstr, errstr_size, "%s %s: out of memory reading the response", method, host);
        goto out;
    }
    if (res != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s %s: %s%s%s%s", method, host, curl_easy_strerror(res),
                 curl_err[0] ? " (" : "", curl_err, curl_err[0] ? ")" : "");
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!sink.buf && !(sink.buf = calloc(1, 1))) {
        snprintf(errstr, errstr_size, "%s %s: out of memory", method, host);
        goto out;
    }
    resp->body = sink.buf;
    resp->body_len = sink.len;
    sink.buf = NULL;
    rc = 0;
out:
    free(sink.buf);
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}

void httpc_response_free(httpc_response_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = 0;
}
