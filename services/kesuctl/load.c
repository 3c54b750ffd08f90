/*
 * kesuctl load: the load generator.
 *
 * Submits real citizen messages (JSONL files with title/body, by default the
 * shared TeddyCup and NYC 311 sets) to intake over many keep-alive
 * connections, at a target rate or as fast as possible, and follows every
 * submitted case on kesu.public.v1 to measure end-to-end latency from the
 * events' own timestamps: submitted -> classified, -> assigned, ->
 * acknowledgement sent (the NotificationSent triggered by its CaseReceived).
 * A case is complete when it is assigned and acknowledged. Progress goes to
 * stderr; the summary is one JSON line on stdout.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kesuctl.h"
#include "proto.h"
#include "util.h"
#include "validate.h"

#define LOAD_MAX_CONN 512

typedef struct load_case {
    char id[37];           /**< case id, "" = free slot */
    char received_event[37]; /**< event id of its CaseReceived (from the feed) */
    int64_t submit_ms;     /**< wall clock when the request was sent */
    int64_t classified_ms; /**< occurred-at of CaseClassified, 0 until seen */
    int64_t assigned_ms;   /**< occurred-at of CaseAssigned */
    int64_t ack_ms;        /**< occurred-at of the acknowledgement NotificationSent */
    int measured;          /**< submitted after the warm-up */
} load_case_t;

typedef struct load_msg {
    char *json; /**< request body */
    size_t len;
} load_msg_t;

typedef struct load {
    kesuctl_t *k;
    struct event_base *evb;
    char host[128];
    int port;
    const char *token;
    load_msg_t *msgs;
    size_t nmsgs, next_msg;
    /* requests */
    int64_t sent, ok, failed, target;
    int64_t started_ms, warm_until_ms, stop_send_ms, last_submit_ms;
    double rate;           /**< per second, 0 = as fast as possible */
    double tokens;         /**< token bucket for the rate */
    int64_t last_refill_ms;
    int inflight;
    double *intake_ms;     /**< latencies of measured requests */
    int64_t nintake, capintake;
    /* cases */
    pthread_mutex_t lock;
    load_case_t *cases;    /**< open-addressing table */
    size_t cap, used;      /**< slots, slots taken */
    volatile int follow_ready; /**< 1: positioned at the feed's end; -1: failed */
    int64_t complete, complete_measured;
    int64_t first_measured_submit, last_complete_ms;
    volatile int stop;
    struct evhttp_connection *conns[LOAD_MAX_CONN];
    int idle[LOAD_MAX_CONN];
    int nconn;
    struct event *tick;
    char errors[8][192];
    int nerrors;
} load_t;

static volatile sig_atomic_t load_interrupted;

static void load_on_signal(int sig)
{
    load_interrupted = 1;
}

static size_t hash_id(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* find or insert (insert when create) — caller holds the lock */
static load_case_t *load_case(load_t *l, const char *id, int create)
{
    size_t i = hash_id(id) & (l->cap - 1);
    for (size_t n = 0; n < l->cap; n++, i = (i + 1) & (l->cap - 1)) {
        load_case_t *c = &l->cases[i];
        if (!c->id[0]) {
            /* create 2: only while the table is less than half full (the
             * feed's cases that are not ours must not crowd ours out) */
            if (!create || (create == 2 && l->used * 2 >= l->cap))
                return NULL;
            snprintf(c->id, sizeof(c->id), "%s", id);
            l->used++;
            return c;
        }
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

static void load_mark_complete(load_t *l, load_case_t *c)
{
    if (c->assigned_ms && c->ack_ms) {
        l->complete++;
        if (c->measured) {
            l->complete_measured++;
            int64_t done = c->assigned_ms > c->ack_ms ? c->assigned_ms : c->ack_ms;
            if (done > l->last_complete_ms)
                l->last_complete_ms = done;
        }
    }
}

/* ---- the feed follower ---- */

static void *load_follow(void *arg)
{
    load_t *l = arg;
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf_new(&l->k->cfg, errstr, sizeof(errstr));
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md = NULL;
    const char *topic = kafka_topic("kesu.public.v1");
    if (!conf) {
        fprintf(stderr, "kesuctl load: consumer: %s\n", errstr);
        l->follow_ready = -1;
        return NULL;
    }
    rd_kafka_conf_set(conf, "group.id", "kesuctl-load", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", KAFKA_FETCH_WAIT_MS, errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kesuctl load: consumer: %s\n", errstr);
        l->follow_ready = -1;
        return NULL;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "kesuctl load: no metadata for %s (is Kafka up and the topic created?)\n",
                topic);
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        l->follow_ready = -1;
        return NULL;
    }
    /* start at each partition's end as it is now, asked explicitly: with
     * OFFSET_END the position is resolved lazily, and what was published
     * before that happened (the first cases of the run) was not seen */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e;
        /* a topic created a moment ago may not have its leader yet: retry ~30 s */
        for (int tries = 0;; tries++) {
            e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR || tries >= 30 ||
                (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                 e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                 e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                 e != RD_KAFKA_RESP_ERR__TIMED_OUT && e != RD_KAFKA_RESP_ERR__TRANSPORT))
                break;
            util_sleep_ms(1000);
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kesuctl load: cannot read the end of %s [%d]: %s\n", topic, p,
                    rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(parts);
            rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(rkt);
            rd_kafka_destroy(rk);
            l->follow_ready = -1;
            return NULL;
        }
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    l->follow_ready = 1;

    while (!l->stop) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);
        if (!rkm)
            continue;
        if (rkm->err) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        Kesu__V1__Envelope *env = proto_env_unpack(rkm->payload, rkm->len, errstr,
                                                   sizeof(errstr));
        if (env) {
            pthread_mutex_lock(&l->lock);
            load_case_t *c = load_case(l, env->case_id, 2);
            if (c) {
                int64_t at = env->occurred_at_ms;
                int was = c->assigned_ms && c->ack_ms;
                switch (env->payload_case) {
                case KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED:
                    snprintf(c->received_event, sizeof(c->received_event), "%s", env->event_id);
                    break;
                case KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED:
                    if (!c->classified_ms)
                        c->classified_ms = at;
                    break;
                case KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED:
                    if (!c->assigned_ms)
                        c->assigned_ms = at;
                    break;
                case KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT:
                    /* the feed is in case order: CaseReceived came first */
                    if (!c->ack_ms &&
                        strcmp(env->notification_sent->trigger_event_id, c->received_event) == 0)
                        c->ack_ms = at;
                    break;
                default:
                    break;
                }
                if (!was && c->submit_ms)
                    load_mark_complete(l, c);
            }
            pthread_mutex_unlock(&l->lock);
            kesu__v1__envelope__free_unpacked(env, NULL);
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

/* ---- the HTTP side ---- */

static void load_send(load_t *l, int ci);

typedef struct load_req {
    load_t *l;
    int ci;
    int64_t t0;
} load_req_t;

static void load_done(struct evhttp_request *req, void *arg)
{
    load_req_t *r = arg;
    load_t *l = r->l;
    int64_t now = util_now_ms();
    int status = req ? evhttp_request_get_response_code(req) : 0;
    l->inflight--;
    if (status == 201 || status == 200) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        char *body = malloc(n + 1);
        evbuffer_copyout(b, body, n);
        body[n] = '\0';
        json_t *js = json_loads(body, 0, NULL);
        const char *id = js ? json_string_value(json_object_get(js, "case_id")) : NULL;
        if (id) {
            l->ok++;
            int measured = r->t0 >= l->warm_until_ms;
            pthread_mutex_lock(&l->lock);
            load_case_t *c = load_case(l, id, 1);
            if (c) {
                int was = c->assigned_ms && c->ack_ms;
                c->submit_ms = r->t0;
                c->measured = measured;
                if (was)
                    load_mark_complete(l, c); /* the feed was faster than our answer */
            }
            pthread_mutex_unlock(&l->lock);
            if (measured) {
                if (!l->first_measured_submit)
                    l->first_measured_submit = r->t0;
                if (l->nintake == l->capintake) {
                    l->capintake = l->capintake ? l->capintake * 2 : 4096;
                    l->intake_ms = realloc(l->intake_ms, (size_t)l->capintake * sizeof(double));
                }
                l->intake_ms[l->nintake++] = (double)(now - r->t0);
            }
            l->last_submit_ms = now;
        } else {
            l->failed++;
        }
        json_decref(js);
        free(body);
    } else {
        l->failed++;
        if (l->nerrors < 8) {
            /* the status and the start of intake's answer (it names the field) */
            char answer[128] = "";
            if (req) {
                struct evbuffer *b = evhttp_request_get_input_buffer(req);
                size_t n = evbuffer_get_length(b);
                if (n >= sizeof(answer))
                    n = sizeof(answer) - 1;
                evbuffer_copyout(b, answer, n);
                answer[n] = '\0';
            }
            snprintf(l->errors[l->nerrors++], sizeof(l->errors[0]), "HTTP %d %s", status,
                     status ? answer : "(no answer: connection failed)");
        }
    }
    /* a failed connection (req NULL) is re-established by libevent on the next request */
    l->idle[r->ci] = 1;
    free(r);
}

static void load_send(load_t *l, int ci)
{
    load_msg_t *m = &l->msgs[l->next_msg++ % l->nmsgs];
    load_req_t *r = calloc(1, sizeof(*r));
    struct evhttp_request *req;
    char auth[256];
    r->l = l;
    r->ci = ci;
    r->t0 = util_now_ms();
    req = evhttp_request_new(load_done, r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    snprintf(auth, sizeof(auth), "Bearer %s", l->token);
    evhttp_add_header(h, "Host", l->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Authorization", auth);
    evbuffer_add(evhttp_request_get_output_buffer(req), m->json, m->len);
    l->idle[ci] = 0;
    l->inflight++;
    l->sent++;
    if (evhttp_make_request(l->conns[ci], req, EVHTTP_REQ_POST, "/v1/complaints") != 0) {
        l->inflight--;
        l->failed++;
        l->idle[ci] = 1;
    }
}

static void load_tick(evutil_socket_t fd, short what, void *arg)
{
    load_t *l = arg;
    int64_t now = util_now_ms();
    int sending = !load_interrupted && now < l->stop_send_ms &&
                  (l->target == 0 || l->sent < l->target);
    if (l->rate > 0) {
        l->tokens += l->rate * (double)(now - l->last_refill_ms) / 1000.0;
        if (l->tokens > l->rate / 10 + l->nconn)
            l->tokens = l->rate / 10 + l->nconn;
    }
    l->last_refill_ms = now;
    for (int i = 0; sending && i < l->nconn; i++) {
        if (!l->idle[i])
            continue;
        if (l->rate > 0) {
            if (l->tokens < 1)
                break;
            l->tokens -= 1;
        }
        load_send(l, i);
        if (l->target && l->sent >= l->target)
            break;
    }
    if (!sending && l->inflight == 0)
        event_base_loopbreak(l->evb);
}

static int load_messages(load_t *l, const char *files, char *errstr, size_t n)
{
    char *list = strdup(files), *save = NULL;
    size_t cap = 0, skipped = 0;
    const char *channels[8];
    int nch = 0;
    char *chl = strdup(l->k->load_channels && *l->k->load_channels ? l->k->load_channels
                                                                    : "web,app,phone,letter,walk_in");
    for (char *sv = NULL, *c = strtok_r(chl, ",", &sv); c && nch < 8; c = strtok_r(NULL, ",", &sv))
        channels[nch++] = c;
    if (!nch) {
        snprintf(errstr, n, "--channels names no channel");
        free(chl);
        free(list);
        return -1;
    }
    for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        FILE *fp = fopen(f, "r");
        char *line = NULL;
        size_t lcap = 0;
        if (!fp) {
            snprintf(errstr, n, "cannot open %.400s", f);
            free(list);
            free(chl);
            return -1;
        }
        while (getline(&line, &lcap, fp) > 0) {
            json_t *row = json_loads(line, 0, NULL);
            const char *title = json_string_value(json_object_get(row, "title"));
            const char *body = json_string_value(json_object_get(row, "body"));
            if (!title) /* NYC 311 rows */
                title = json_string_value(json_object_get(row, "complaint_type"));
            if (!body)
                body = json_string_value(json_object_get(row, "descriptor"));
            if (body && strlen(body) > INTAKE_BODY_MAX_BYTES) {
                skipped++; /* intake would answer 422 too_long: not a load */
            } else if (title && body && *title && *body) {
                char t[600], ph[16];
                snprintf(t, sizeof(t), "%.180s", title);
                /* keep UTF-8 whole: cut back to a character start */
                size_t tl = strlen(t);
                while (tl && ((unsigned char)t[tl - 1] & 0xc0) == 0x80)
                    t[--tl] = '\0';
                if (tl && (unsigned char)t[tl - 1] >= 0xc0)
                    t[--tl] = '\0';
                snprintf(ph, sizeof(ph), "139%08zu", l->nmsgs % 100000000);
                const char *ch = channels[l->nmsgs % (size_t)nch];
                json_t *req = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "channel", ch, "title",
                                        t, "body", body, "complainant", "name", "测试", "phone",
                                        ph);
                if (l->k->load_districts > 0) { /* 110101, 110102, ... in turn */
                    char dc[16];
                    snprintf(dc, sizeof(dc), "%d",
                             110101 + (int)(l->nmsgs % (size_t)l->k->load_districts));
                    json_object_set_new(req, "location", json_pack("{s:s}", "district_code", dc));
                }
                /* each channel's own required fields (docs/api/openapi.yaml) */
                if (strcmp(ch, "phone") == 0) {
                    json_object_set_new(req, "call_id", json_string("load-call"));
                    json_object_set_new(req, "agent_id", json_string("load-agent"));
                } else if (strcmp(ch, "letter") == 0) {
                    json_object_set_new(req, "received_date", json_string("2026-12-01"));
                    json_object_set_new(req, "scan_ref", json_string("load-scan"));
                } else if (strcmp(ch, "walk_in") == 0) {
                    json_object_set_new(req, "window_id", json_string("W1"));
                }
                if (l->nmsgs == cap) {
                    cap = cap ? cap * 2 : 1024;
                    l->msgs = realloc(l->msgs, cap * sizeof(*l->msgs));
                }
                l->msgs[l->nmsgs].json = json_dumps(req, JSON_COMPACT);
                l->msgs[l->nmsgs].len = strlen(l->msgs[l->nmsgs].json);
                l->nmsgs++;
                json_decref(req);
            }
            json_decref(row);
        }
        free(line);
        fclose(fp);
    }
    free(list);
    free(chl);
    if (skipped)
        fprintf(stderr, "kesuctl load: %zu messages left out: body longer than intake's %d bytes\n",
                skipped, INTAKE_BODY_MAX_BYTES);
    if (!l->nmsgs) {
        snprintf(errstr, n, "no messages with title and body in %.400s", files);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int64_t n, double p)
{
    if (n <= 0)
        return -1;
    int64_t i = (int64_t)ceil(p * (double)n) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

int kesuctl_load(kesuctl_t *k)
{
    load_t l;
    char errstr[512], files[4096];
    pthread_t follower;
    int rc = 1;
    memset(&l, 0, sizeof(l));
    l.k = k;
    pthread_mutex_init(&l.lock, NULL);

    if (!k->load_token || !*k->load_token) {
        fprintf(stderr, "kesuctl load: give --token (kesuctl token create --role agent)\n");
        return 2;
    }
    if (sscanf(k->load_api, "http://%127[^:/]:%d", l.host, &l.port) != 2) {
        fprintf(stderr, "kesuctl load: --api must look like http://127.0.0.1:8080\n");
        return 2;
    }
    if (k->load_connections < 1 || k->load_connections > LOAD_MAX_CONN) {
        fprintf(stderr, "kesuctl load: --connections must be 1..%d\n", LOAD_MAX_CONN);
        return 2;
    }
    if (k->load_districts < 0 || k->load_districts > 99) {
        fprintf(stderr, "kesuctl load: --districts must be 0..99 (codes 110101..110199)\n");
        return 2;
    }
    l.token = k->load_token;
    l.rate = (double)k->load_rate;
    l.target = k->load_count;
    if (k->load_data && *k->load_data)
        snprintf(files, sizeof(files), "%s", k->load_data);
    else
        snprintf(files, sizeof(files), "%s/teddy2020c-test-unlabeled.jsonl,%s/nyc311.jsonl",
                 k->data_dir, k->data_dir);
    if (load_messages(&l, files, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl load: %s\n", errstr);
        return 1;
    }
    /* room for our cases twice over, and for other cases on the feed */
    size_t expect = k->load_count > 0 ? (size_t)k->load_count
                    : k->load_rate > 0 && k->load_duration_s > 0
                        ? (size_t)k->load_rate * (size_t)(k->load_duration_s + k->load_warmup_s)
                        : 1000000;
    l.cap = 1;
    while (l.cap < expect * 4 || l.cap < 65536)
        l.cap <<= 1;
    l.cases = calloc(l.cap, sizeof(*l.cases));
    if (!l.cases) {
        fprintf(stderr, "kesuctl load: out of memory\n");
        return 1;
    }
    if (pthread_create(&follower, NULL, load_follow, &l) != 0)
        return 1;
    /* the follower must be at the end of the feed before the first submit */
    for (int waited = 0; !l.follow_ready && waited < 90000; waited += 20)
        util_sleep_ms(20);
    if (l.follow_ready != 1) {
        fprintf(stderr, "kesuctl load: cannot follow the public feed (see above); is Kafka up?\n");
        l.stop = 1;
        pthread_join(follower, NULL);
        return 1;
    }

    signal(SIGINT, load_on_signal);
    l.evb = event_base_new();
    l.nconn = k->load_connections;
    for (int i = 0; i < l.nconn; i++) {
        l.conns[i] = evhttp_connection_base_new(l.evb, NULL, l.host, (uint16_t)l.port);
        evhttp_connection_set_timeout(l.conns[i], 30);
        l.idle[i] = 1;
    }
    l.started_ms = util_now_ms();
    l.warm_until_ms = l.started_ms + (int64_t)k->load_warmup_s * 1000;
    l.stop_send_ms = k->load_duration_s > 0
                         ? l.warm_until_ms + (int64_t)k->load_duration_s * 1000
                         : INT64_MAX;
    l.last_refill_ms = l.started_ms;
    struct timeval tv = {0, 2000};
    l.tick = event_new(l.evb, -1, EV_PERSIST, load_tick, &l);
    event_add(l.tick, &tv);

    /* progress once a second on stderr while the HTTP loop runs */
    int64_t last_print = 0;
    while (event_base_loop(l.evb, EVLOOP_ONCE) == 0) {
        if (event_base_got_break(l.evb))
            break;
        int64_t now = util_now_ms();
        if (now - last_print >= 1000) {
            last_print = now;
            pthread_mutex_lock(&l.lock);
            int64_t done = l.complete;
            pthread_mutex_unlock(&l.lock);
            fprintf(stderr, "\r  %5.0fs  sent %-8lld ok %-8lld failed %-6lld complete %-8lld",
                    (double)(now - l.started_ms) / 1000.0, (long long)l.sent, (long long)l.ok,
                    (long long)l.failed, (long long)done);
        }
    }
    /* wait for the pipeline to finish what was submitted */
    int64_t drain_until = util_now_ms() + (int64_t)k->load_drain_s * 1000;
    for (;;) {
        pthread_mutex_lock(&l.lock);
        int64_t done = l.complete;
        pthread_mutex_unlock(&l.lock);
        fprintf(stderr, "\r  draining: complete %lld of %lld               ", (long long)done,
                (long long)l.ok);
        if (done >= l.ok || util_now_ms() > drain_until || load_interrupted)
            break;
        util_sleep_ms(200);
    }
    fprintf(stderr, "\n");
    l.stop = 1;
    pthread_join(follower, NULL);

    /* the figures */
    double *cls = malloc(sizeof(double) * (l.cap > 0 ? (size_t)l.ok + 1 : 1));
    double *asg = malloc(sizeof(double) * ((size_t)l.ok + 1));
    double *ack = malloc(sizeof(double) * ((size_t)l.ok + 1));
    int64_t ncls = 0, nasg = 0, nack = 0, measured = 0;
    for (size_t i = 0; i < l.cap; i++) {
        load_case_t *c = &l.cases[i];
        if (!c->id[0] || !c->submit_ms || !c->measured)
            continue;
        measured++;
        if (c->classified_ms)
            cls[ncls++] = (double)(c->classified_ms - c->submit_ms);
        if (c->assigned_ms)
            asg[nasg++] = (double)(c->assigned_ms - c->submit_ms);
        if (c->ack_ms)
            ack[nack++] = (double)(c->ack_ms - c->submit_ms);
    }
    qsort(l.intake_ms, (size_t)l.nintake, sizeof(double), cmp_double);
    qsort(cls, (size_t)ncls, sizeof(double), cmp_double);
    qsort(asg, (size_t)nasg, sizeof(double), cmp_double);
    qsort(ack, (size_t)nack, sizeof(double), cmp_double);
    double span = (double)(l.last_complete_ms - l.first_measured_submit) / 1000.0;
    double e2e = span > 0 ? (double)l.complete_measured / span : 0;
    json_t *out = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
        "submitted", (json_int_t)l.sent, "accepted", (json_int_t)l.ok, "failed",
        (json_int_t)l.failed, "measured_cases", (json_int_t)measured, "complete_measured",
        (json_int_t)l.complete_measured, "e2e_cases_per_s", round(e2e * 10) / 10,
        "intake_p50_ms", pct(l.intake_ms, l.nintake, 0.5), "intake_p99_ms",
        pct(l.intake_ms, l.nintake, 0.99), "classify_p50_ms", pct(cls, ncls, 0.5),
        "classify_p99_ms", pct(cls, ncls, 0.99), "assign_p50_ms", pct(asg, nasg, 0.5),
        "assign_p99_ms", pct(asg, nasg, 0.99), "ack_p50_ms", pct(ack, nack, 0.5), "ack_p99_ms",
        pct(ack, nack, 0.99), "target_rate", l.rate, "measured_seconds", span);
    if (l.nerrors) {
        json_t *errs = json_array();
        for (int i = 0; i < l.nerrors; i++)
            json_array_append_new(errs, json_string(l.errors[i]));
        json_object_set_new(out, "sample_errors", errs);
    }
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(out);
    rc = (l.failed == 0 && l.complete_measured == measured) ? 0 : 1;
    if (rc)
        fprintf(stderr, "kesuctl load: %lld failed requests, %lld of %lld cases incomplete\n",
                (long long)l.failed, (long long)(measured - l.complete_measured),
                (long long)measured);

    free(cls);
    free(asg);
    free(ack);
    for (int i = 0; i < l.nconn; i++)
        evhttp_connection_free(l.conns[i]);
    event_free(l.tick);
    event_base_free(l.evb);
    for (size_t i = 0; i < l.nmsgs; i++)
        free(l.msgs[i].json);
    free(l.msgs);
    free(l.intake_ms);
    free(l.cases);
    pthread_mutex_destroy(&l.lock);
    return rc;
}
