/*
 * notify_channels: what the SMS and e-mail channels put on the wire, and the
 * quiet-hours rule. The formats are pure functions (table-tested); only
 * notify_email_send talks to a server (SMTP through libcurl — httpc is the
 * HTTP client, SMTP is not HTTP). The SMS gateway is plain HTTP and goes
 * through httpc in notify_send.c.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify.h"

int64_t notify_quiet_until(int64_t now_ms, int start_min, int end_min, int tz_offset_min)
{
    const int64_t day = 24 * 60;
    int64_t local_min, minute_of_day, day_start_ms, end;
    if (start_min == end_min)
        return 0;
    local_min = now_ms / 60000 + tz_offset_min;
    minute_of_day = ((local_min % day) + day) % day;
    /* local midnight of today, as a UTC instant */
    day_start_ms = (local_min - minute_of_day - tz_offset_min) * 60000;
    if (start_min < end_min) {
        /* e.g. 12:00-14:00 within one day */
        if (minute_of_day < start_min || minute_of_day >= end_min)
            return 0;
        end = day_start_ms + (int64_t)end_min * 60000;
    } else {
        /* spans midnight: 22:00-08:00 */
        if (minute_of_day >= start_min)
            end = day_start_ms + (day + end_min) * 60000;
        else if (minute_of_day < end_min)
            end = day_start_ms + (int64_t)end_min * 60000;
        else
            return 0;
    }
    return end;
}

static int notify_hhmm(const char *s, int *min)
{
    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
        s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23)
        return -1;
    *min = h * 60 + m;
    return 0;
}

int notify_quiet_parse(const char *s, int *start_min, int *end_min)
{
    char a[6], b[6];
    if (!s || !*s) {
        *start_min = *end_min = 0; /* none */
        return 0;
    }
    if (strlen(s) != 11 || s[5] != '-')
        return -1;
    memcpy(a, s, 5);
    a[5] = '\0';
    memcpy(b, s + 6, 5);
    b[5] = '\0';
    return notify_hhmm(a, start_min) == 0 && notify_hhmm(b, end_min) == 0 ? 0 : -1;
}

char *notify_sms_body(const char *notification_id, const char *to, const char *text)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", notification_id, "to", to, "text", text);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int notify_email_valid(const char *s)
{
    const char *at;
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > 254)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("<>()[]\\,;:\"", *p))
            return 0;
    at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && strchr(at + 1, '.');
}

/* base64 of n bytes, lines of 76 characters joined by CRLF */
static void notify_b64(strbuf_t *b, const char *in, size_t n, int wrap)
{
    unsigned char out[4 * 57 / 3 + 4];
    for (size_t i = 0; i < n; i += 57) {
        size_t k = n - i < 57 ? n - i : 57;
        int m = EVP_EncodeBlock(out, (const unsigned char *)in + i, (int)k);
        strbuf_append(b, (const char *)out, (size_t)m);
        if (wrap)
            strbuf_append(b, "\r\n", 2);
    }
}

char *notify_email_message(const char *from, const char *to, const char *subject,
                           const char *text, const char *notification_id, int64_t now_ms,
                           char *errstr, size_t errstr_size)
{
    strbuf_t b;
    char date[64];
    struct tm tm;
    time_t t = (time_t)(now_ms / 1000);
    if (!notify_email_valid(from) || !notify_email_valid(to)) {
        snprintf(errstr, errstr_size, "%s address is not a plain e-mail address",
                 notify_email_valid(from) ? "recipient" : "sender");
        return NULL;
    }
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    strbuf_init(&b);
    strbuf_appendf(&b, "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n", date, from, to);
    /* the subject holds the case number and fixed text, but encode it
     * anyway: no byte of it can start a new header line */
    strbuf_append(&b, "Subject: =?UTF-8?B?", 19);
    notify_b64(&b, subject, strlen(subject), 0);
    strbuf_appendf(&b, "?=\r\nMessage-ID: <%s.kesu@%s>\r\n", notification_id, strchr(from, '@') + 1);
    strbuf_append(&b,
                  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                  "Content-Transfer-Encoding: base64\r\nAuto-Submitted: auto-generated\r\n\r\n",
                  strlen("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                         "Content-Transfer-Encoding: base64\r\nAuto-Submitted: "
                         "auto-generated\r\n\r\n"));
    notify_b64(&b, text, strlen(text), 1);
    return b.s;
}

typedef struct notify_upload {
    const char *p; /**< next byte to send */
    size_t left;   /**< bytes left */
} notify_upload_t;

static size_t notify_upload_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    notify_upload_t *u = arg;
    size_t n = size * nitems < u->left ? size * nitems : u->left;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

int notify_email_send(const notify_t *nt, const char *to, const char *message, char *errstr,
                      size_t errstr_size)
{
    CURL *c = NULL;
    struct curl_slist *rcpt = NULL;
    char from[300], rcpt_addr[300];
    notify_upload_t up = {message, strlen(message)};
    CURLcode cc;
    int rc = -1;

    if (!nt->smtp_url || !*nt->smtp_url || !nt->smtp_from || !*nt->smtp_from) {
        snprintf(errstr, errstr_size, "e-mail channel not configured (notify.smtp_url/smtp_from)");
        return -1;
    }
    c = curl_easy_init();
    if (!c) {
        snprintf(errstr, errstr_size, "cannot create a curl handle");
        return -1;
    }
    snprintf(from, sizeof(from), "<%s>", nt->smtp_from);
    snprintf(rcpt_addr, sizeof(rcpt_addr), "<%s>", to);
    rcpt = curl_slist_append(NULL, rcpt_addr);
    curl_easy_setopt(c, CURLOPT_URL, nt->smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, notify_upload_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)nt->webhook_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)nt->webhook_timeout_ms);
    if (nt->smtp_user && *nt->smtp_user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, nt->smtp_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, nt->smtp_password ? nt->smtp_password : "");
    }
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        /* curl's message names the server, never the recipient */
        snprintf(errstr, errstr_size, "smtp: %s (reply %ld)", curl_easy_strerror(cc), code);
        goto out;
    }
    rc = 0;
out:
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    return rc;
}
