/*
 * kesuctl dlq list|replay: the operator's view of kesu.dlq.v1 and the way
 * back out of it.
 *
 * A DLQ entry is the original bytes of a message a consumer gave up on,
 * with headers naming the service, consumer group, source topic, partition,
 * offset, the reason and the attempts (docs/decisions/0006). An entry is
 * named by its own position in the DLQ topic, "PARTITION:OFFSET".
 *
 * replay republishes the original bytes (same key, the original event
 * headers) to the source topic. That is safe to do twice: a DLQ'd event's
 * inbox row was rolled back, so the first replay is applied normally, and
 * every later copy is a duplicate that the consumers' inboxes ignore. A
 * message that is still poison goes back to the DLQ with a fresh entry.
 *
 * kesuctl_topic_scan() (also used by verify) reads a topic from the
 * beginning to the high watermark of every partition as it was at the
 * start, with no consumer group (assign, not subscribe), so a scan is a
 * snapshot that never commits offsets and always ends.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "kesuctl.h"
#include "proto.h"
#include "util.h"

#define DLQ_SCAN_TIMEOUT_MS 10000

int kesuctl_parse_since(const char *s, int64_t *out_ms)
{
    char *end = NULL;
    *out_ms = 0;
    if (!s || !*s)
        return 0;
    double v = strtod(s, &end);
    if (end != s && *end && !end[1] && strchr("smhd", *end)) {
        int64_t unit = *end == 's' ? 1000 : *end == 'm' ? 60000 : *end == 'h' ? 3600000 : 86400000;
        *out_ms = util_now_ms() - (int64_t)(v * (double)unit);
        return 0;
    }
    if (end != s && !*end && v > 1e11) { /* Unix milliseconds */
        *out_ms = (int64_t)v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest)
        return -1;
    int64_t ms = (int64_t)timegm(&tm) * 1000;
    if (*rest == '.') { /* fraction: keep milliseconds */
        rest++;
        int digits = 0, frac = 0;
        while (isdigit((unsigned char)*rest)) {
            if (digits < 3)
                frac = frac * 10 + (*rest - '0'), digits++;
            rest++;
        }
        while (digits++ < 3)
            frac *= 10;
        ms += frac;
    }
    if (*rest && strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return -1; /* only UTC: a silent local-time guess would select the wrong entries */
    *out_ms = ms;
    return 0;
}

int kesuctl_topic_scan(kesuctl_t *k, const char *topic, kesuctl_scan_fn fn, void *opaque,
                       char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = kafka_conf_new(&k->cfg, errstr, errstr_size);
    rd_kafka_t *rk = NULL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *hi = NULL, *lo = NULL;
    int np = 0, left = 0, rc = -1;
    char group[64], uuid[37];

    if (!conf)
        return -1;
    util_uuid(uuid);
    snprintf(group, sizeof(group), "kesuctl-scan-%.8s", uuid + 28);
    if (rd_kafka_conf_set(conf, "group.id", group, errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* taken by rd_kafka_new */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    rd_kafka_topic_destroy(rkt);
    if (!err && md->topic_cnt != 1)
        err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    else if (!err)
        err = md->topics[0].err;
    if (err) {
        snprintf(errstr, errstr_size, "no metadata for %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    np = md->topics[0].partition_cnt;
    hi = calloc((size_t)np + 1, sizeof(*hi));
    lo = calloc((size_t)np + 1, sizeof(*lo));
    parts = rd_kafka_topic_partition_list_new(np ? np : 1);
    if (!hi || !lo) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int p = 0; p < np; p++) {
        int id = md->topics[0].partitions[p].id;
        if (id < 0 || id >= np) {
            snprintf(errstr, errstr_size, "%s: unexpected partition id %d", topic, id);
            goto out;
        }
        err = rd_kafka_query_watermark_offsets(rk, topic, id, &lo[id], &hi[id], 5000);
        if (err) {
            snprintf(errstr, errstr_size, "%s[%d]: watermarks: %s", topic, id,
                     rd_kafka_err2str(err));
            goto out;
        }
        if (hi[id] > lo[id]) {
            rd_kafka_topic_partition_list_add(parts, topic, id)->offset = lo[id];
            left++;
        }
    }
    if (left && (err = rd_kafka_assign(rk, parts))) {
        snprintf(errstr, errstr_size, "assign %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    int64_t idle_since = util_mono_ms();
    while (left > 0) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);
        if (!rkm) {
            if (util_mono_ms() - idle_since > DLQ_SCAN_TIMEOUT_MS) {
                snprintf(errstr, errstr_size, "%s: no progress for %d ms, %d partitions unread",
                         topic, DLQ_SCAN_TIMEOUT_MS, left);
                goto out;
            }
            continue;
        }
        idle_since = util_mono_ms();
        int p = rkm->partition;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "kesuctl: %s: %s\n", topic, rd_kafka_message_errstr(rkm));
            else if (p >= 0 && p < np && hi[p] > lo[p]) {
                hi[p] = lo[p]; /* reached the end: done with it */
                left--;
            }
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (p < 0 || p >= np || rkm->offset >= hi[p]) {
            rd_kafka_message_destroy(rkm); /* newer than the snapshot */
            continue;
        }
        int stop = fn(opaque, rkm);
        if (rkm->offset + 1 >= hi[p]) {
            hi[p] = lo[p];
            left--;
        }
        rd_kafka_message_destroy(rkm);
        if (stop)
            break;
    }
    rc = 0;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(hi);
    free(lo);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- dlq ---- */

typedef struct dlq_entry {
    int partition;
    int64_t offset;
    int64_t ts_ms;       /**< the DLQ message's timestamp */
    json_t *headers;     /**< every header, as strings */
    char *key;           /**< message key ("" if none) */
    void *payload;       /**< original bytes */
    size_t len;
} dlq_entry_t;

typedef struct dlq_scan {
    int64_t since_ms;
    const char *ids;     /**< "P:O,P:O" or NULL for every entry */
    dlq_entry_t *v;
    size_t n, cap;
} dlq_scan_t;

static int dlq_id_selected(const char *ids, int partition, int64_t offset)
{
    char want[48];
    size_t wl;
    if (!ids)
        return 1;
    wl = (size_t)snprintf(want, sizeof(want), "%d:%lld", partition, (long long)offset);
    for (const char *p = ids; (p = strstr(p, want)) != NULL; p += wl)
        if ((p == ids || p[-1] == ',') && (p[wl] == '\0' || p[wl] == ','))
            return 1;
    return 0;
}

static int dlq_collect(void *opaque, const rd_kafka_message_t *rkm)
{
    dlq_scan_t *s = opaque;
    rd_kafka_timestamp_type_t tst;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tst);
    rd_kafka_headers_t *hdrs = NULL;
    if (ts < s->since_ms || !dlq_id_selected(s->ids, rkm->partition, rkm->offset))
        return 0;
    dlq_entry_t *v = util_grow(s->v, &s->cap, s->n + 1, sizeof(*v), 64);
    if (!v)
        return 1;
    s->v = v;
    dlq_entry_t *e = &s->v[s->n];
    memset(e, 0, sizeof(*e));
    e->partition = rkm->partition;
    e->offset = rkm->offset;
    e->ts_ms = ts;
    e->headers = json_object();
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t sz;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &sz) == 0; i++)
            json_object_set_new(e->headers, name,
                                json_stringn_nocheck(val ? val : "", val ? sz : 0));
    }
    /* the key is not NUL-terminated: copy exactly key_len bytes */
    e->key = malloc(rkm->key_len + 1);
    if (e->key) {
        if (rkm->key_len)
            memcpy(e->key, rkm->key, rkm->key_len);
        e->key[rkm->key_len] = '\0';
    }
    e->payload = malloc(rkm->len ? rkm->len : 1);
    if (e->payload && rkm->len)
        memcpy(e->payload, rkm->payload, rkm->len);
    e->len = rkm->len;
    s->n++;
    return 0;
}

static void dlq_scan_free(dlq_scan_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->v[i].headers);
        free(s->v[i].key);
        free(s->v[i].payload);
    }
    free(s->v);
}

static const char *dlq_h(const dlq_entry_t *e, const char *name)
{
    const char *v = json_string_value(json_object_get(e->headers, name));
    return v ? v : "";
}

static int dlq_load(kesuctl_t *k, dlq_scan_t *s, const char *ids, const char *what)
{
    char errstr[512];
    memset(s, 0, sizeof(*s));
    s->ids = ids && *ids ? ids : NULL;
    if (kesuctl_parse_since(k->since, &s->since_ms) != 0) {
        fprintf(stderr, "kesuctl dlq %s: --since wants 30m, 2h, 1d, Unix ms or an RFC 3339 UTC "
                        "time, not \"%s\"\n", what, k->since);
        return -1;
    }
    if (kesuctl_topic_scan(k, KAFKA_TOPIC_DLQ, dlq_collect, s, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl dlq %s: %s\n", what, errstr);
        dlq_scan_free(s);
        return -1;
    }
    return 0;
}

int kesuctl_dlq_list(kesuctl_t *k)
{
    dlq_scan_t s;
    if (dlq_load(k, &s, NULL, "list") != 0)
        return 1;
    if (!k->json)
        printf("%-12s %-24s %-12s %-20s %-26s %s\n", "ID", "AT", "SERVICE", "EVENT", "SOURCE",
               "ERROR");
    for (size_t i = 0; i < s.n; i++) {
        dlq_entry_t *e = &s.v[i];
        char id[48], at[40], src[200];
        snprintf(id, sizeof(id), "%d:%lld", e->partition, (long long)e->offset);
        util_fmt_time(e->ts_ms, at, sizeof(at));
        snprintf(src, sizeof(src), "%s[%s]@%s", dlq_h(e, "dlq_source_topic"),
                 dlq_h(e, "dlq_source_partition"), dlq_h(e, "dlq_source_offset"));
        if (k->json) {
            json_t *line = json_pack("{s:s, s:s, s:s, s:I, s:O}", "id", id, "at", at, "key",
                                     e->key ? e->key : "", "bytes", (json_int_t)e->len,
                                     "headers", e->headers);
            char *out = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
            printf("%s\n", out);
            free(out);
            json_decref(line);
        } else {
            printf("%-12s %-24s %-12s %-20s %-26s %s\n", id, at, dlq_h(e, "dlq_service"),
                   *dlq_h(e, "event_type") ? dlq_h(e, "event_type") : "(undecodable)", src,
                   dlq_h(e, "dlq_error"));
        }
    }
    if (!k->json)
        fprintf(stderr, "%zu DLQ entries\n", s.n);
    dlq_scan_free(&s);
    return 0;
}

int kesuctl_dlq_replay(kesuctl_t *k)
{
    char errstr[512];
    dlq_scan_t s;
    rd_kafka_t *rk = NULL;
    kafka_msg_t *msgs = NULL;
    size_t n = 0, delivered = 0;
    int rc = 1;

    if ((!k->dlq_ids || !*k->dlq_ids) && !k->all) {
        fprintf(stderr, "kesuctl dlq replay: give --id P:O[,P:O...] or --all (with --since)\n");
        return 2;
    }
    if (dlq_load(k, &s, k->all ? NULL : k->dlq_ids, "replay") != 0)
        return 1;
    msgs = calloc(s.n ? s.n : 1, sizeof(*msgs));
    if (!msgs) {
        fprintf(stderr, "kesuctl dlq replay: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < s.n; i++) {
        dlq_entry_t *e = &s.v[i];
        const char *src = dlq_h(e, "dlq_source_topic");
        if (!*src || !e->payload) {
            fprintf(stderr, "kesuctl dlq replay: %d:%lld names no source topic; left alone\n",
                    e->partition, (long long)e->offset);
            continue;
        }
        /* the original event headers go back, the dlq_* bookkeeping does not */
        json_t *h = json_object();
        const char *name;
        json_t *v;
        json_object_foreach(e->headers, name, v)
        {
            if (strncmp(name, "dlq_", 4) != 0)
                json_object_set(h, name, v);
        }
        char from[48];
        snprintf(from, sizeof(from), "%d:%lld", e->partition, (long long)e->offset);
        json_object_set_new(h, "replayed_from_dlq", json_string(from));
        msgs[n] = (kafka_msg_t){src, e->key && *e->key ? e->key : NULL, e->payload, e->len, h,
                                0, 0};
        fprintf(stderr, "%s %s -> %s (%s, %s)\n", k->dry_run ? "would replay" : "replay", from,
                src, *dlq_h(e, "event_type") ? dlq_h(e, "event_type") : "undecodable",
                dlq_h(e, "dlq_error"));
        n++;
    }
    if (k->dry_run || n == 0) {
        fprintf(stderr, "%zu of %zu DLQ entries %s\n", n, s.n,
                k->dry_run ? "would be replayed (dry run)" : "to replay");
        rc = 0;
        goto out;
    }
    rk = kafka_producer_new(&k->cfg, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kesuctl dlq replay: %s\n", errstr);
        goto out;
    }
    /* in slices, so a long replay shows its progress */
    for (size_t off = 0; off < n; off += 100) {
        size_t m = n - off < 100 ? n - off : 100;
        delivered += kafka_produce_batch(rk, msgs + off, m, 30000);
        fprintf(stderr, "replayed %zu of %zu\n", delivered, n);
    }
    for (size_t i = 0; i < n; i++)
        if (msgs[i].err)
            fprintf(stderr, "kesuctl dlq replay: %s: %s\n", msgs[i].topic,
                    rd_kafka_err2str(msgs[i].err));
    printf("{\"replayed\":%zu,\"failed\":%zu}\n", delivered, n - delivered);
    rc = delivered == n ? 0 : 1;
out:
    if (rk)
        kafka_producer_close(rk, 10000);
    for (size_t i = 0; msgs && i < n; i++)
        json_decref(msgs[i].headers);
    free(msgs);
    dlq_scan_free(&s);
    return rc;
}
