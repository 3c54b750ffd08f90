/*
 * kesuctl case show CASE_NO and kesuctl case list [filters]: reading cases
 * through intake's HTTP API with a staff token (--api, --token), so the
 * operator sees exactly what the API shows that token - a handler token
 * only its department's cases, contact data masked - and nothing here
 * needs database credentials. case show prints the case and its history as
 * a timeline in China time (Asia/Shanghai, UTC+8 all year); --json prints
 * the API's documents unchanged.
 *
 * kesuctl_api is the one HTTP call of these subcommands (submit.c uses it
 * too): base URL + path, Bearer token, common/httpc.h underneath.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"
#include "kesuctl.h"
#include "util.h"


/* The longest a single API call may take (a 10,000-line batch included). */
#define KESUCTL_API_TIMEOUT_MS 120000

/* Widest payload summary on a timeline line, in bytes. */
#define CASE_SUMMARY_MAX 110

/* s, or d when s is NULL */
static const char *dflt(const char *s, const char *d)
{
    return s ? s : d;
}

const char *kesuctl_str(const json_t *v, const char *def)
{
    const char *s = json_string_value(v);
    return s ? s : def;
}

int kesuctl_api(const kesuctl_t *k, const char *method, const char *path, const char *ctype,
                const char *idem_key, const char *body, size_t body_len, httpc_response_t *resp,
                char *errstr, size_t errstr_size)
{
    char url[2048], auth[512], ct[128], idem[320];
    const char *headers[5] = {NULL, NULL, NULL, NULL, NULL};
    int nh = 0;
    memset(resp, 0, sizeof(*resp));
    if (!k->load_token || !*k->load_token) {
        snprintf(errstr, errstr_size,
                 "give --token (or KESU_TOKEN): a staff token from kesuctl token create");
        return -1;
    }
    if (strlen(k->load_token) > 300) {
        snprintf(errstr, errstr_size, "--token is too long to be a Kesu token");
        return -1;
    }
    size_t n = strlen(k->load_api);
    while (n > 0 && k->load_api[n - 1] == '/')
        n--;
    if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)n, k->load_api, path) >= sizeof(url)) {
        snprintf(errstr, errstr_size, "the request URL is too long");
        return -1;
    }
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k->load_token);
    headers[nh++] = auth;
    headers[nh++] = "Accept: application/json";
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        headers[nh++] = ct;
    }
    if (idem_key && *idem_key) {
        snprintf(idem, sizeof(idem), "Idempotency-Key: %.290s", idem_key);
        headers[nh++] = idem;
    }
    return httpc_request(method, url, headers, body, body_len, KESUCTL_API_TIMEOUT_MS, resp,
                         errstr, errstr_size);
}

int kesuctl_api_error(const char *what, const httpc_response_t *resp)
{
    json_error_t je;
    json_t *root = json_loads(resp->body ? resp->body : "", 0, &je);
    json_t *err = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *field = json_string_value(json_object_get(err, "field"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (msg)
        fprintf(stderr, "kesuctl %s: HTTP %ld %s%s%s%s: %s\n", what, resp->status,
                code ? code : "error", field ? " (" : "", field ? field : "", field ? ")" : "",
                msg);
    else
        fprintf(stderr, "kesuctl %s: HTTP %ld\n", what, resp->status);
    /* each error, when the API named several fields */
    size_t i;
    json_t *e;
    json_t *errors = json_object_get(root, "errors");
    if (json_array_size(errors) > 1)
        json_array_foreach(errors, i, e) fprintf(
            stderr, "  - %s: %s\n", dflt(json_string_value(json_object_get(e, "field")), "-"),
            dflt(json_string_value(json_object_get(e, "message")), ""));
    json_decref(root);
    return resp->status == 401 || resp->status == 403 ? 3 : resp->status == 404 ? 4 : 1;
}

/* percent-encode a query value (RFC 3986 unreserved characters stay) */
static void url_append(strbuf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            strbuf_append(b, (const char *)p, 1);
        else
            strbuf_appendf(b, "%%%02X", *p);
    }
}

/* "2026-12-01T09:24:22.738Z" -> "2026-12-01 17:24:22" (China time); out[20] */
static const char *cn_time(const char *iso, char *out, size_t n, time_t *t_out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t_out)
        *t_out = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                       &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
        snprintf(out, n, "%s", iso ? iso : "-");
        return out;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) + UTIL_CHINA_TZ_OFFSET_S;
    if (t_out)
        *t_out = t;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
    return out;
}

/* "+3s", "+4m 05s", "+2h 10m", "+3d 4h" */
static void elapsed(time_t dt, char *out, size_t n)
{
    if (dt < 60)
        snprintf(out, n, "+%lds", (long)dt);
    else if (dt < 3600)
        snprintf(out, n, "+%ldm %02lds", (long)dt / 60, (long)dt % 60);
    else if (dt < 86400)
        snprintf(out, n, "+%ldh %02ldm", (long)dt / 3600, (long)dt % 3600 / 60);
    else
        snprintf(out, n, "+%ldd %ldh", (long)dt / 86400, (long)dt % 86400 / 3600);
}

/* the payload's scalar fields as "k=v k=v", one line, at most CASE_SUMMARY_MAX bytes */
static void payload_summary(json_t *payload, char *out, size_t n)
{
    strbuf_t b;
    const char *key;
    json_t *v;
    strbuf_init(&b);
    json_object_foreach(payload, key, v)
    {
        char *s = NULL;
        /* the title and text are in the case's head already */
        if (json_is_object(v) || strcmp(key, "title") == 0 || strcmp(key, "body") == 0)
            continue;
        if (json_is_string(v)) {
            /* one line: free text can carry newlines */
            s = strdup(json_string_value(v));
            for (char *p = s; p && *p; p++)
                if (*p == '\n' || *p == '\r' || *p == '\t')
                    *p = ' ';
        } else if (json_is_array(v)) {
            size_t i;
            json_t *it;
            strbuf_t a;
            strbuf_init(&a);
            json_array_foreach(v, i, it)
            {
                char *e = json_is_string(it) ? strdup(json_string_value(it))
                                             : json_dumps(it, JSON_COMPACT | JSON_ENCODE_ANY);
                strbuf_appendf(&a, "%s%s", i ? "," : "", e ? e : "");
                free(e);
            }
            s = a.s;
        } else {
            s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        }
        strbuf_appendf(&b, "%s%s=%s", b.len ? " " : "", key, s ? s : "");
        free(s);
    }
    if (b.len > CASE_SUMMARY_MAX) {
        /* cut on a UTF-8 character boundary */
        size_t cut = CASE_SUMMARY_MAX - 3;
        while (cut > 0 && ((unsigned char)b.s[cut] & 0xC0) == 0x80)
            cut--;
        snprintf(out, n, "%.*s...", (int)cut, b.s);
    } else {
        snprintf(out, n, "%s", b.s);
    }
    strbuf_free(&b);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : NULL;
}

static void show_case(json_t *c)
{
    char t1[32];
    json_t *cl = json_object_get(c, "classification");
    json_t *as = json_object_get(c, "assignment");
    json_t *loc = json_object_get(c, "location");
    json_t *who = json_object_get(c, "complainant");
    printf("%s  %s  (version %lld)\n", dflt(jstr(c, "case_no"), "?"), dflt(jstr(c, "status"), "?"),
           (long long)json_integer_value(json_object_get(c, "version")));
    printf("  title        %s\n", dflt(jstr(c, "title"), ""));
    printf("  channel      %s%s%s\n", dflt(jstr(c, "channel"), ""),
           jstr(c, "external_ref") ? "  ref " : "", dflt(jstr(c, "external_ref"), ""));
    printf("  received     %s (China time)\n",
           cn_time(jstr(c, "created_at"), t1, sizeof(t1), NULL));
    if (jstr(loc, "address") || jstr(loc, "district_code")) {
        const char *a = jstr(loc, "address"), *d = jstr(loc, "district_code");
        printf("  location     %s%s%s%s\n", dflt(a, ""), a && d ? ", " : "", d ? "district " : "",
               dflt(d, ""));
    }
    if (json_is_object(cl)) {
        json_t *flags = json_object_get(cl, "flags");
        printf("  class        %s / %s / %s, urgency %s", dflt(jstr(cl, "request_type"), "-"),
               dflt(jstr(cl, "category"), "-"), dflt(jstr(cl, "domain"), "-"), dflt(jstr(cl, "urgency"), "-"));
        size_t i;
        json_t *f;
        json_array_foreach(flags, i, f) printf("%s%s", i ? "," : ", flags ", json_string_value(f));
        if (json_is_true(json_object_get(cl, "needs_review")))
            printf(" (needs review)");
        printf("\n");
    }
    if (json_is_object(as)) {
        json_t *co = json_object_get(as, "co_departments");
        printf("  department   %s", dflt(jstr(as, "department"), "-"));
        if (jstr(as, "handler"))
            printf(", handler %s", jstr(as, "handler"));
        size_t i;
        json_t *d;
        json_array_foreach(co, i, d) printf("%s%s", i ? "," : ", with ", json_string_value(d));
        printf("\n");
    }
    if (json_is_object(who) && (jstr(who, "name") || jstr(who, "phone_mask")))
        printf("  complainant  %s %s\n", dflt(jstr(who, "name"), ""), dflt(jstr(who, "phone_mask"), ""));
    if (json_is_true(json_object_get(c, "confidential")))
        printf("  confidential yes (保密)\n");
    if (json_integer_value(json_object_get(c, "satisfaction")))
        printf("  satisfaction %lld/5\n",
               (long long)json_integer_value(json_object_get(c, "satisfaction")));
    if (jstr(c, "close_reason"))
        printf("  closed       %s (%s)\n", cn_time(jstr(c, "closed_at"), t1, sizeof(t1), NULL),
               jstr(c, "close_reason"));
}

static void show_history(json_t *h)
{
    size_t i;
    json_t *e;
    time_t first = 0, prev = 0;
    printf("\nHistory (China time)\n");
    json_array_foreach(json_object_get(h, "events"), i, e)
    {
        char when[32], gap[24] = "", sum[CASE_SUMMARY_MAX + 8];
        time_t t;
        cn_time(jstr(e, "occurred_at"), when, sizeof(when), &t);
        if (i == 0)
            first = t;
        else if (t && prev)
            elapsed(t - prev, gap, sizeof(gap));
        prev = t;
        payload_summary(json_object_get(e, "payload"), sum, sizeof(sum));
        printf("  %3lld  %s %-9s %-12s %-20s %-11s %s\n",
               (long long)json_integer_value(json_object_get(e, "seq")), when, gap,
               dflt(jstr(e, "status"), ""), dflt(jstr(e, "event_type"), ""), dflt(jstr(e, "producer"), ""),
               sum);
    }
    if (prev && first && prev > first) {
        char total[24];
        elapsed(prev - first, total, sizeof(total));
        printf("  %zu events over %s\n", json_array_size(json_object_get(h, "events")),
               total + 1);
    }
}

int kesuctl_case_show(kesuctl_t *k)
{
    char path[256], errstr[512];
    httpc_response_t rc = {0}, rh = {0};
    json_error_t je;
    json_t *c = NULL, *h = NULL;
    int ret = 1;
    const char *no = k->cfg.arg_cnt > 2 ? k->cfg.args[2] : NULL;
    if (!no || !*no || strlen(no) > 64 || strchr(no, '/') || strchr(no, '?')) {
        fprintf(stderr, "kesuctl case show: give a case number: kesuctl case show KS...\n");
        return 2;
    }
    snprintf(path, sizeof(path), "/v1/cases/%s", no);
    if (kesuctl_api(k, "GET", path, NULL, NULL, NULL, 0, &rc, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl case show: %s\n", errstr);
        goto out;
    }
    if (rc.status != 200) {
        ret = kesuctl_api_error("case show", &rc);
        goto out;
    }
    snprintf(path, sizeof(path), "/v1/cases/%s/history", no);
    if (kesuctl_api(k, "GET", path, NULL, NULL, NULL, 0, &rh, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl case show: %s\n", errstr);
        goto out;
    }
    if (rh.status != 200) {
        ret = kesuctl_api_error("case show", &rh);
        goto out;
    }
    if (!(c = json_loads(rc.body, 0, &je)) || !(h = json_loads(rh.body, 0, &je))) {
        fprintf(stderr, "kesuctl case show: the API's answer is not JSON: %s\n", je.text);
        goto out;
    }
    if (k->json) {
        json_t *doc = json_pack("{s:O, s:O}", "case", c, "history", json_object_get(h, "events"));
        json_dumpf(doc, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(doc);
    } else {
        show_case(c);
        show_history(h);
    }
    ret = 0;
out:
    json_decref(c);
    json_decref(h);
    httpc_response_free(&rc);
    httpc_response_free(&rh);
    return ret;
}

/* the list filters: option value -> query parameter of GET /v1/cases */
static void list_query(const kesuctl_t *k, strbuf_t *q, const char *cursor, int limit)
{
    const char *names[] = {"status",  "department", "category",     "channel",
                           "district", "overdue",   "created_from", "created_to"};
    const char *vals[] = {k->status,       k->department, k->category,     k->channel,
                          k->district,     k->overdue,    k->created_from, k->created_to};
    strbuf_appendf(q, "/v1/cases?limit=%d", limit);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!vals[i] || !*vals[i])
            continue;
        strbuf_appendf(q, "&%s=", names[i]);
        url_append(q, vals[i]);
    }
    if (cursor) {
        strbuf_append(q, "&cursor=", 8);
        url_append(q, cursor);
    }
}

/* Rows per page asked of the API (its maximum). */
#define CASE_LIST_PAGE 200

int kesuctl_case_list(kesuctl_t *k)
{
    char errstr[512], cursor[512] = "";
    json_error_t je;
    json_t *all = json_array();
    int ret = 1, limit = k->limit > 0 ? k->limit : 50;
    for (;;) {
        httpc_response_t r = {0};
        strbuf_t q;
        strbuf_init(&q);
        int want = limit - (int)json_array_size(all);
        list_query(k, &q, cursor[0] ? cursor : NULL, want < CASE_LIST_PAGE ? want : CASE_LIST_PAGE);
        int rc = kesuctl_api(k, "GET", q.s, NULL, NULL, NULL, 0, &r, errstr, sizeof(errstr));
        strbuf_free(&q);
        if (rc != 0) {
            fprintf(stderr, "kesuctl case list: %s\n", errstr);
            httpc_response_free(&r);
            goto out;
        }
        if (r.status != 200) {
            ret = kesuctl_api_error("case list", &r);
            httpc_response_free(&r);
            goto out;
        }
        json_t *page = json_loads(r.body, 0, &je);
        httpc_response_free(&r);
        json_array_extend(all, json_object_get(page, "items"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        json_decref(page);
        if (!next || (int)json_array_size(all) >= limit)
            break;
    }
    if (k->json) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        printf("\n");
    } else {
        size_t i;
        json_t *c;
        printf("%-20s %-11s %-8s %-16s %-10s %-7s %-19s %s\n", "CASE", "STATUS", "CHANNEL",
               "DEPARTMENT", "URGENCY", "OVERDUE", "RECEIVED (China)", "TITLE");
        json_array_foreach(all, i, c)
        {
            char when[32];
            printf("%-20s %-11s %-8s %-16s %-10s %-7s %-19s %s\n", dflt(jstr(c, "case_no"), ""),
                   dflt(jstr(c, "status"), ""), dflt(jstr(c, "channel"), ""), dflt(jstr(c, "department"), "-"),
                   dflt(jstr(c, "urgency"), "-"),
                   json_is_true(json_object_get(c, "overdue")) ? "yes" : "",
                   cn_time(jstr(c, "created_at"), when, sizeof(when), NULL),
                   dflt(jstr(c, "title"), ""));
        }
        printf("%zu case%s%s\n", json_array_size(all), json_array_size(all) == 1 ? "" : "s",
               cursor[0] ? " (more: raise --limit)" : "");
    }
    ret = 0;
out:
    json_decref(all);
    return ret;
}
