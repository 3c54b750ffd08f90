/*
 * kesuctl verify: reconcile what PostgreSQL says happened with what the
 * topics carry, and report every discrepancy (exit 1 if there is any).
 *
 *   history        every case has a gap-free history (seq 1..n), versions
 *                  never go back, and the case row agrees with its last
 *                  event (status, version, event_seq)
 *   outbox         no row is left (of this topic prefix): relays drained
 *   inbox          every event a consumer group subscribes to (by its
 *                  producer) and wants (the stage's own kc_wants_fn: the
 *                  types it acts on) is in that group's inbox: applied,
 *                  exactly once (the inbox key is (consumer, event id));
 *                  events past the group's inbox retention are not checked
 *                  (inbox_purged, decision 0025)
 *   notifications  at most one per trigger event, channel and audience
 *   feed           kesu.public.v1 carries every history event of every case
 *                  once, in seq order, on one partition, with the history's
 *                  event ids. A republished copy of an event already on the
 *                  feed (the relay is at-least-once, 0001) is counted, not
 *                  failed: integrators drop repeats by event id.
 *   counts         the counts the triggers keep for the console equal what
 *                  they count: case_status_counts the cases per department
 *                  and status (0022), case_stats_daily the closed facts per
 *                  closing day and department (0023). Over the whole
 *                  database (a count has no scope), in one snapshot.
 *
 * --since limits the check to cases created from then on (a test run's own
 * cases in a shared database); --wait S repeats the check until it is clean
 * or S seconds passed, for a system that is still draining.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify_event.h"
#include "dispatch_event.h"
#include "kafka.h"
#include "kesuctl.h"
#include "notify.h"
#include "proto.h"
#include "sla_timers.h"
#include "pg.h"
#include "proto.h"
#include "util.h"

#define VERIFY_SHOW_MAX 20

/* the scope: cases created at or after $1 (Unix ms) */
#define VERIFY_SCOPE "SELECT id, case_no, status, version, event_seq FROM cases " \
                     "WHERE created_at >= to_timestamp($1::bigint / 1000.0)"

static const pg_stmt_t verify_count = {
    "verify_count",
    "WITH s AS (" VERIFY_SCOPE ") SELECT (SELECT count(*) FROM s)::text AS cases, "
    "(SELECT count(*) FROM case_events e JOIN s ON s.id = e.case_id)::text AS events",
    1};

static const pg_stmt_t verify_history = {
    "verify_history",
    "WITH s AS (" VERIFY_SCOPE "), "
    "h AS (SELECT e.case_id, e.seq, e.version, e.status, row_number() OVER w AS rn, "
    "  lag(e.version) OVER w AS prev_version, count(*) OVER (PARTITION BY e.case_id) AS n "
    "  FROM case_events e JOIN s ON s.id = e.case_id "
    "  WINDOW w AS (PARTITION BY e.case_id ORDER BY e.seq)) "
    "SELECT s.case_no, 'seq ' || h.seq || ' at position ' || h.rn || ': the history has a gap' "
    "  AS detail FROM h JOIN s ON s.id = h.case_id WHERE h.seq <> h.rn "
    "UNION ALL SELECT s.case_no, 'version goes back at seq ' || h.seq || ': ' || h.prev_version "
    "  || ' -> ' || h.version FROM h JOIN s ON s.id = h.case_id WHERE h.version < h.prev_version "
    "UNION ALL SELECT s.case_no, 'case is ' || s.status || ' v' || s.version || ' seq ' || "
    "  s.event_seq || ' but its history ends ' || h.status || ' v' || h.version || ' seq ' || h.seq "
    "  FROM h JOIN s ON s.id = h.case_id WHERE h.rn = h.n AND (h.status <> s.status OR "
    "  h.version <> s.version OR h.seq <> s.event_seq) "
    "UNION ALL SELECT s.case_no, 'no history at all' FROM s "
    "  WHERE NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = s.id) "
    "ORDER BY 1, 2",
    1};

static const pg_stmt_t verify_outbox = {
    "verify_outbox",
    "SELECT producer, topic, count(*)::text AS n, max(attempts)::text AS attempts, "
    "coalesce(max(last_error), '') AS last_error FROM outbox "
    "WHERE left(topic, length($1)) = $1 GROUP BY producer, topic ORDER BY producer, topic",
    1};

static const pg_stmt_t verify_inbox = {
    "verify_inbox",
    "WITH s AS (" VERIFY_SCOPE ") "
    "SELECT s.case_no, e.seq::text AS seq, e.event_type, e.producer FROM case_events e "
    "JOIN s ON s.id = e.case_id WHERE e.producer = ANY($3::text[]) AND NOT EXISTS "
    "(SELECT 1 FROM inbox i WHERE i.consumer = $2 AND i.event_id = e.event_id) "
    /* rows past the group's inbox retention may be purged (kc_inbox_purge) */
    "AND e.event_id >= COALESCE((SELECT before_id FROM inbox_purged WHERE consumer = $2), "
    "'00000000-0000-0000-0000-000000000000'::uuid) "
    "ORDER BY s.case_no, e.seq",
    3};

static const pg_stmt_t verify_notifications = {
    "verify_notifications",
    "WITH s AS (" VERIFY_SCOPE ") "
    "SELECT s.case_no, n.trigger_event_id::text AS trigger, n.channel, n.audience, "
    "count(*)::text AS n FROM notifications n JOIN s ON s.id = n.case_id "
    "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1 ORDER BY 1",
    1};

static const pg_stmt_t verify_feed_history = {
    "verify_feed_history",
    "WITH s AS (" VERIFY_SCOPE ") "
    "SELECT e.case_id::text AS case_id, s.case_no, e.seq::text AS seq, e.event_id::text AS "
    "event_id, e.event_type FROM case_events e JOIN s ON s.id = e.case_id "
    "ORDER BY e.case_id::text COLLATE \"C\", e.seq",
    1};

/* every kept count that differs from what it counts (decisions 0031, 0032;
 * the *_counted() functions of migrations 0022, 0023 say what that is) */
static const pg_stmt_t verify_counts = {
    "verify_counts",
    "WITH k AS (SELECT department, status, sum(n) AS n FROM case_status_counts GROUP BY 1, 2), "
    "t AS (SELECT * FROM kesu_status_counts_counted()), "
    "kd AS (SELECT day, department, sum(closed) AS closed, sum(on_time) AS on_time, "
    "  sum(timed) AS timed, sum(evaluated) AS evaluated, sum(satisfied) AS satisfied "
    "  FROM case_stats_daily GROUP BY 1, 2), "
    "td AS (SELECT * FROM kesu_stats_daily_counted()) "
    "SELECT 'case_status_counts' AS kept, COALESCE(NULLIF(department, ''), '(none)') || ' ' || "
    "  status AS key, COALESCE(k.n, 0)::text AS has, COALESCE(t.n, 0)::text AS want "
    "  FROM k FULL JOIN t USING (department, status) WHERE COALESCE(k.n, 0) <> COALESCE(t.n, 0) "
    "UNION ALL SELECT 'case_stats_daily', day || ' ' || COALESCE(NULLIF(department, ''), "
    "  '(none)'), format('%s closed, %s on time, %s timed, %s evaluated, %s satisfied', "
    "  COALESCE(kd.closed, 0), COALESCE(kd.on_time, 0), COALESCE(kd.timed, 0), "
    "  COALESCE(kd.evaluated, 0), COALESCE(kd.satisfied, 0)), "
    "  format('%s closed, %s on time, %s timed, %s evaluated, %s satisfied', "
    "  COALESCE(td.closed, 0), COALESCE(td.on_time, 0), COALESCE(td.timed, 0), "
    "  COALESCE(td.evaluated, 0), COALESCE(td.satisfied, 0)) "
    "  FROM kd FULL JOIN td USING (day, department) "
    "  WHERE (COALESCE(kd.closed, 0), COALESCE(kd.on_time, 0), COALESCE(kd.timed, 0), "
    "    COALESCE(kd.evaluated, 0), COALESCE(kd.satisfied, 0)) IS DISTINCT FROM "
    "    (COALESCE(td.closed, 0), COALESCE(td.on_time, 0), COALESCE(td.timed, 0), "
    "    COALESCE(td.evaluated, 0), COALESCE(td.satisfied, 0)) "
    "ORDER BY 1, 2",
    0};

/* Which producers' events each consumer group reads: the subscriptions in
 * services/<name>/main.c, by the producer that owns each topic; and which of
 * them it acts on, by the function its consumer loop asks (NULL: all). The
 * notifier's depends on its templates (--templates). */
static notify_t verify_nt;

static const struct {
    const char *group;
    const char *producers;
    kc_wants_fn wants;
    void *ctx;
} verify_groups[] = {
    {"kesu-classifier", "{intake}", classify_wants, NULL},
    {"kesu-dispatcher", "{classifier,intake}", dispatch_wants, NULL},
    {"kesu-sla-monitor", "{dispatcher,intake,notifier}", sla_wants, NULL},
    {"kesu-notifier", "{intake,classifier,dispatcher,sla-monitor}", notify_wants, &verify_nt},
    {"kesu-archiver", "{intake,classifier,dispatcher,sla-monitor,notifier}", NULL, NULL},
};

/* would the group's consumer loop have claimed an event of this type? */
static int verify_wanted(size_t g, const char *event_type)
{
    if (!verify_groups[g].wants)
        return 1;
    Kesu__V1__Envelope env = KESU__V1__ENVELOPE__INIT;
    env.payload_case = proto_payload_case(event_type);
    env.event_type = (char *)event_type;
    return verify_groups[g].wants(verify_groups[g].ctx, &env);
}

typedef struct verify_feed_msg {
    char case_id[37];
    char event_id[37];
    int64_t seq;
    int partition;
    int64_t offset;
} verify_feed_msg_t;

typedef struct verify_feed {
    verify_feed_msg_t *v;
    size_t n, cap;
    size_t undecodable;
} verify_feed_t;

typedef struct verify_report {
    int json;
    long cases, events;
    long history, outbox, inbox, notifications, feed, counts; /* discrepancies by area */
    long outbox_rows, feed_messages, feed_duplicates;
    strbuf_t lines;  /* the discrepancies, printed once at the end */
    long shown;      /* lines in this area so far */
} verify_report_t;

static void verify_line(verify_report_t *r, long *area, const char *what, const char *case_no,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void verify_line(verify_report_t *r, long *area, const char *what, const char *case_no,
                        const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    (*area)++;
    if (*area > VERIFY_SHOW_MAX) {
        if (*area == VERIFY_SHOW_MAX + 1)
            strbuf_appendf(&r->lines, "%-13s ... (more; only the first %d are shown)\n", what,
                           VERIFY_SHOW_MAX);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    strbuf_appendf(&r->lines, "%-13s %-22s %s\n", what, case_no, detail);
}

static int verify_feed_collect(void *opaque, const rd_kafka_message_t *rkm)
{
    verify_feed_t *f = opaque;
    char errstr[256];
    Kesu__V1__Envelope *env = proto_env_unpack(rkm->payload, rkm->len, errstr, sizeof(errstr));
    if (!env) {
        f->undecodable++;
        return 0;
    }
    verify_feed_msg_t *v = util_grow(f->v, &f->cap, f->n + 1, sizeof(*v), 1024);
    if (!v) {
        kesu__v1__envelope__free_unpacked(env, NULL);
        return 1;
    }
    f->v = v;
    verify_feed_msg_t *m = &f->v[f->n++];
    snprintf(m->case_id, sizeof(m->case_id), "%s", env->case_id);
    snprintf(m->event_id, sizeof(m->event_id), "%s", env->event_id);
    m->seq = env->case_seq;
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    kesu__v1__envelope__free_unpacked(env, NULL);
    return 0;
}

static int verify_feed_cmp(const void *a, const void *b)
{
    const verify_feed_msg_t *x = a, *y = b;
    int c = strcmp(x->case_id, y->case_id);
    if (c)
        return c;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* first feed message of case_id in the sorted array, or f->n */
static size_t verify_feed_find(const verify_feed_t *f, const char *case_id)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f->v[mid].case_id, case_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Compare one case's history rows [r0, r1) of res with its feed messages. */
static void verify_feed_case(verify_report_t *r, const verify_feed_t *f, PGresult *res, int r0,
                             int r1)
{
    const char *case_id = pg_get(res, r0, "case_id");
    const char *case_no = pg_get(res, r0, "case_no");
    int nh = r1 - r0;
    size_t i = verify_feed_find(f, case_id), first = i;
    int64_t expect = 1;
    int partition = -1, misordered = 0;
    for (; i < f->n && strcmp(f->v[i].case_id, case_id) == 0; i++) {
        const verify_feed_msg_t *m = &f->v[i];
        int dup = 0;
        for (size_t j = first; j < i && !dup; j++)
            dup = strcmp(f->v[j].event_id, m->event_id) == 0;
        if (dup) {
            r->feed_duplicates++;
            continue;
        }
        if (partition < 0)
            partition = m->partition;
        else if (partition != m->partition)
            verify_line(r, &r->feed, "feed", case_no, "events on partitions %d and %d",
                        partition, m->partition);
        if (m->seq < 1 || m->seq > nh) {
            verify_line(r, &r->feed, "feed", case_no, "seq %lld is not in its history of %d",
                        (long long)m->seq, nh);
            continue;
        }
        if (strcmp(pg_get(res, r0 + (int)m->seq - 1, "event_id"), m->event_id) != 0)
            verify_line(r, &r->feed, "feed", case_no, "seq %lld carries event %s, history has %s",
                        (long long)m->seq, m->event_id, pg_get(res, r0 + (int)m->seq - 1,
                                                               "event_id"));
        if (m->seq != expect && !misordered) {
            misordered = 1;
            verify_line(r, &r->feed, "feed", case_no,
                        "seq %lld arrived where seq %lld was due (offset %d:%lld)",
                        (long long)m->seq, (long long)expect, m->partition,
                        (long long)m->offset);
        }
        if (m->seq >= expect)
            expect = m->seq + 1;
    }
    if (expect <= nh)
        verify_line(r, &r->feed, "feed", case_no, "not published: seq %lld..%d (%s...)",
                    (long long)expect, nh, pg_get(res, r0 + (int)expect - 1, "event_type"));
}

static int verify_once(kesuctl_t *k, pg_t *pg, int64_t since_ms, verify_report_t *r,
                       char *errstr, size_t errstr_size)
{
    char since[32];
    const char *prefix = getenv("KESU_TOPICS_PREFIX");
    PGresult *res = NULL;
    verify_feed_t feed = {0};
    int rc = -1;

    if (!prefix)
        prefix = "";
    snprintf(since, sizeof(since), "%lld", (long long)since_ms);
    const char *v1[1] = {since};

    if (!(res = pg_exec_stmt(pg, &verify_count, v1, PGRES_TUPLES_OK, errstr, errstr_size)))
        goto out;
    r->cases = atol(pg_get(res, 0, "cases"));
    r->events = atol(pg_get(res, 0, "events"));
    PQclear(res);

    if (!(res = pg_exec_stmt(pg, &verify_history, v1, PGRES_TUPLES_OK, errstr, errstr_size)))
        goto out;
    for (int i = 0; i < PQntuples(res); i++)
        verify_line(r, &r->history, "history", pg_get(res, i, "case_no"), "%s",
                    pg_get(res, i, "detail"));
    PQclear(res);

    const char *vp[1] = {prefix};
    if (!(res = pg_exec_stmt(pg, &verify_outbox, vp, PGRES_TUPLES_OK, errstr, errstr_size)))
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        r->outbox_rows += atol(pg_get(res, i, "n"));
        verify_line(r, &r->outbox, "outbox", pg_get(res, i, "producer"),
                    "%s rows for %s not published (attempts up to %s%s%s)", pg_get(res, i, "n"),
                    pg_get(res, i, "topic"), pg_get(res, i, "attempts"),
                    *pg_get(res, i, "last_error") ? "; " : "", pg_get(res, i, "last_error"));
    }
    PQclear(res);

    for (size_t g = 0; g < sizeof(verify_groups) / sizeof(verify_groups[0]); g++) {
        const char *vi[3] = {since, verify_groups[g].group, verify_groups[g].producers};
        if (!(res = pg_exec_stmt(pg, &verify_inbox, vi, PGRES_TUPLES_OK, errstr, errstr_size)))
            goto out;
        for (int i = 0; i < PQntuples(res); i++)
            if (verify_wanted(g, pg_get(res, i, "event_type")))
                verify_line(r, &r->inbox, "inbox", pg_get(res, i, "case_no"),
                            "%s never applied: seq %s %s (from %s)", verify_groups[g].group,
                            pg_get(res, i, "seq"), pg_get(res, i, "event_type"),
                            pg_get(res, i, "producer"));
        PQclear(res);
    }

    if (!(res = pg_exec_stmt(pg, &verify_notifications, v1, PGRES_TUPLES_OK, errstr,
                             errstr_size)))
        goto out;
    for (int i = 0; i < PQntuples(res); i++)
        verify_line(r, &r->notifications, "notifications", pg_get(res, i, "case_no"),
                    "%s notices for trigger %s on %s to %s", pg_get(res, i, "n"),
                    pg_get(res, i, "trigger"), pg_get(res, i, "channel"),
                    pg_get(res, i, "audience"));
    PQclear(res);

    if (!(res = pg_exec_stmt(pg, &verify_counts, NULL, PGRES_TUPLES_OK, errstr, errstr_size)))
        goto out;
    for (int i = 0; i < PQntuples(res); i++)
        verify_line(r, &r->counts, "counts", pg_get(res, i, "key"), "%s has %s, counted %s",
                    pg_get(res, i, "kept"), pg_get(res, i, "has"), pg_get(res, i, "want"));
    PQclear(res);
    res = NULL;

    if (kesuctl_topic_scan(k, KAFKA_TOPIC_PUBLIC, verify_feed_collect, &feed, errstr,
                           errstr_size) != 0)
        goto out;
    r->feed_messages = (long)feed.n;
    if (feed.undecodable)
        verify_line(r, &r->feed, "feed", "-", "%zu undecodable messages", feed.undecodable);
    qsort(feed.v, feed.n, sizeof(*feed.v), verify_feed_cmp);
    if (!(res = pg_exec_stmt(pg, &verify_feed_history, v1, PGRES_TUPLES_OK, errstr,
                             errstr_size)))
        goto out;
    for (int i = 0, nr = PQntuples(res); i < nr;) {
        int j = i + 1;
        while (j < nr && strcmp(pg_get(res, j, "case_id"), pg_get(res, i, "case_id")) == 0)
            j++;
        verify_feed_case(r, &feed, res, i, j);
        i = j;
    }
    rc = 0;
out:
    if (res)
        PQclear(res);
    free(feed.v);
    return rc;
}

static long verify_total(const verify_report_t *r)
{
    return r->history + r->outbox + r->inbox + r->notifications + r->feed + r->counts;
}

static void verify_reset(verify_report_t *r)
{
    int json = r->json;
    strbuf_free(&r->lines);
    memset(r, 0, sizeof(*r));
    r->json = json;
    strbuf_init(&r->lines);
}

int kesuctl_verify(kesuctl_t *k)
{
    char errstr[512];
    int64_t since_ms = 0, deadline = util_mono_ms() + (int64_t)k->wait_s * 1000;
    verify_report_t r;
    pg_t *pg = NULL;
    int rc = 2, attempt = 0;

    memset(&r, 0, sizeof(r));
    r.json = k->json;
    strbuf_init(&r.lines);
    if (kesuctl_parse_since(k->since, &since_ms) != 0) {
        fprintf(stderr, "kesuctl verify: --since wants 30m, 2h, 1d, Unix ms or an RFC 3339 UTC "
                        "time, not \"%s\"\n", k->since);
        goto out;
    }
    char path[1024];
    if (config_resolve_path(k->templates, path, sizeof(path)) != 0) {
        fprintf(stderr, "kesuctl verify: the notifier's templates %s not found (--templates)\n",
                k->templates);
        goto out;
    }
    if (notify_config_load(&verify_nt.cfg, path, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl verify: %s (--templates)\n", errstr);
        goto out;
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl verify: %s\n", errstr);
        goto out;
    }
    for (;;) {
        verify_reset(&r);
        if (verify_once(k, pg, since_ms, &r, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "kesuctl verify: %s\n", errstr);
            goto out;
        }
        attempt++;
        if (verify_total(&r) == 0 || util_mono_ms() >= deadline)
            break;
        fprintf(stderr, "kesuctl verify: %ld discrepancies (pass %d), checking again\n",
                verify_total(&r), attempt);
        util_sleep_ms(2000);
    }
    if (r.json) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, "
                              "s:i}",
                              "cases", (json_int_t)r.cases, "events", (json_int_t)r.events,
                              "discrepancies", (json_int_t)verify_total(&r), "by_area",
                              "history", (json_int_t)r.history, "outbox", (json_int_t)r.outbox,
                              "inbox", (json_int_t)r.inbox, "notifications",
                              (json_int_t)r.notifications, "feed", (json_int_t)r.feed,
                              "counts", (json_int_t)r.counts,
                              "outbox_rows", (json_int_t)r.outbox_rows, "feed_messages",
                              (json_int_t)r.feed_messages, "feed_republished",
                              (json_int_t)r.feed_duplicates, "passes", attempt);
        char *s = json_dumps(o, JSON_COMPACT);
        fputs(r.lines.s, stderr);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fputs(r.lines.s, stdout);
        printf("verified %ld cases, %ld history events, %ld feed messages "
               "(%ld republished copies): %ld discrepancies\n",
               r.cases, r.events, r.feed_messages, r.feed_duplicates, verify_total(&r));
    }
    rc = verify_total(&r) ? 1 : 0;
out:
    notify_config_free(&verify_nt.cfg);
    strbuf_free(&r.lines);
    pg_destroy(pg);
    return rc;
}
