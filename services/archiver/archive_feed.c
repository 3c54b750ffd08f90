/*
 * archive_feed: the public feed and the archive record, in the consumer's
 * batch transaction.
 *
 * Events of one case arrive from five topics in no particular order, so
 * each carries its case_seq (the gap-free history position). The row of
 * the case in public_feed_state is locked FOR UPDATE while its event is
 * placed, so archiver instances that hold different topics' partitions
 * serialise per case instead of publishing out of order.
 *
 * Publishing is an outbox row for kesu.public.v1 (producer "archiver"),
 * committed with the state change: the feed advances exactly when its
 * message is sure to go out.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "casestore.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

/* The state row of the case: next_seq, and how many of its events are held
 * in public_feed_pending (so the drain looks there only when there are any).
 * The first event of a case creates it; any other finds and locks it; an
 * event that arrives before the case's first creates it too. */
static const pg_stmt_t ar_state_init = {
    "ar_state_init",
    "INSERT INTO public_feed_state (case_id) VALUES ($1::uuid) ON CONFLICT DO NOTHING "
    "RETURNING next_seq, held",
    1};

static const pg_stmt_t ar_state_lock = {
    "ar_state_lock",
    "SELECT next_seq, held FROM public_feed_state WHERE case_id = $1::uuid FOR UPDATE", 1};

static const pg_stmt_t ar_state_set = {
    "ar_state_set",
    "UPDATE public_feed_state SET next_seq = $2::bigint, held = held - $3::int "
    "WHERE case_id = $1::uuid",
    3};

/* hold an event and count it on the (locked) state row */
static const pg_stmt_t ar_hold = {
    "ar_hold",
    "WITH h AS (INSERT INTO public_feed_pending (case_id, seq, envelope) "
    "VALUES ($1::uuid, $2::bigint, $3::bytea) ON CONFLICT DO NOTHING RETURNING 1) "
    "UPDATE public_feed_state SET held = held + (SELECT count(*) FROM h) "
    "WHERE case_id = $1::uuid RETURNING (SELECT count(*) FROM h) AS added",
    3};

/* The common case in one statement: the event is the next of its case and
 * nothing is held, so it is published and the feed moves on (the UPDATE
 * takes the row lock the slow path's SELECT ... FOR UPDATE takes). The first
 * event of a case creates the state row instead. No row: the slow path
 * decides (skip, hold, drain). */
static const pg_stmt_t ar_fast_next = {
    "ar_fast_next",
    "WITH s AS (UPDATE public_feed_state SET next_seq = next_seq + 1 "
    "WHERE case_id = $1::uuid AND next_seq = $2::bigint AND held = 0 RETURNING case_id) "
    "INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "SELECT 'archiver', $3, $1, $4::bytea, $5::jsonb FROM s",
    5};

static const pg_stmt_t ar_fast_first = {
    "ar_fast_first",
    "WITH s AS (INSERT INTO public_feed_state (case_id, next_seq) "
    "SELECT $1::uuid, 2 WHERE $2::bigint = 1 ON CONFLICT DO NOTHING RETURNING case_id) "
    "INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "SELECT 'archiver', $3, $1, $4::bytea, $5::jsonb FROM s",
    5};

/* A batch's runs at once (archive_feed_claimed): the events of each case's
 * run, in history order ($2..$5, text key as the envelope has it); a case
 * whose feed waits for the run's first position with nothing held moves on
 * by the run's length — its first event creates the state row — and the
 * run goes to the outbox in history order. The state rows are locked in
 * case order, so instances that share cases wait for each other instead of
 * deadlocking. Returns the keys of the cases published. */
static const pg_stmt_t ar_runs = {
    "ar_runs",
    "WITH e AS (SELECT * FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::jsonb[]) "
    "  AS e(k, seq, payload, headers)), "
    "r AS (SELECT k::uuid AS case_id, min(seq) AS first, count(*) AS n FROM e GROUP BY k), "
    "locked AS (SELECT s.case_id FROM public_feed_state s JOIN r ON r.case_id = s.case_id "
    "  WHERE r.first > 1 ORDER BY s.case_id FOR UPDATE OF s), "
    "up AS (UPDATE public_feed_state s SET next_seq = s.next_seq + r.n FROM locked l, r "
    "  WHERE s.case_id = l.case_id AND r.case_id = l.case_id AND s.next_seq = r.first "
    "  AND s.held = 0 RETURNING s.case_id), "
    "ins AS (INSERT INTO public_feed_state (case_id, next_seq) "
    "  SELECT case_id, 1 + n FROM r WHERE first = 1 ORDER BY case_id "
    "  ON CONFLICT DO NOTHING RETURNING case_id), "
    "done AS (SELECT case_id FROM up UNION ALL SELECT case_id FROM ins), "
    "o AS (INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "  SELECT 'archiver', $1, e.k, e.payload, e.headers FROM e "
    "  WHERE e.k::uuid IN (SELECT case_id FROM done) ORDER BY e.k, e.seq RETURNING 1) "
    "SELECT DISTINCT e.k FROM e JOIN done d ON d.case_id = e.k::uuid",
    5};

static const pg_stmt_t ar_take = {
    "ar_take",
    "DELETE FROM public_feed_pending WHERE case_id = $1::uuid AND seq = $2::bigint "
    "RETURNING envelope",
    2};

/* The record: the case row without encrypted or hashed columns (whatever
 * migrations add later), the whole history, the notifications (without
 * their target: a complainant's webhook address is contact data), the SLA
 * timers and their trail, and the feedback. */
static const pg_stmt_t ar_record = {
    "ar_record",
    "INSERT INTO archive_records (case_id, case_version, case_no, closed_at, record) "
    "SELECT c.id, $2::bigint, c.case_no, "
    "  COALESCE(c.closed_at, to_timestamp($4::double precision / 1000)), "
    "  jsonb_build_object("
    "    'format', 'kesu.archive.v1', "
    "    'case_version', $2::bigint, "
    "    'closed_seq', $3::bigint, "
    "    'case', (SELECT jsonb_object_agg(k, v) FROM jsonb_each(to_jsonb(c)) AS x(k, v) "
    "             WHERE k NOT LIKE '%\\_enc' AND k NOT LIKE '%\\_hash'), "
    "    'history', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "        'seq', e.seq, 'event_id', e.event_id, 'event_type', e.event_type, "
    "        'version', e.version, 'status', e.status, 'producer', e.producer, "
    "        'actor', e.actor, 'occurred_at', e.occurred_at, 'payload', e.summary) "
    "        ORDER BY e.seq) FROM case_events e WHERE e.case_id = c.id), '[]'::jsonb), "
    "    'notifications', COALESCE((SELECT jsonb_agg(to_jsonb(n) - 'target' - 'case_id' "
    "        ORDER BY n.id) FROM notifications n WHERE n.case_id = c.id), '[]'::jsonb), "
    "    'sla_timers', COALESCE((SELECT jsonb_agg(to_jsonb(t) - 'case_id' ORDER BY t.id) "
    "        FROM sla_timers t WHERE t.case_id = c.id), '[]'::jsonb), "
    "    'sla_timer_log', COALESCE((SELECT jsonb_agg(to_jsonb(l) - 'case_id' ORDER BY l.id) "
    "        FROM sla_timer_log l WHERE l.case_id = c.id), '[]'::jsonb), "
    "    'feedback', CASE WHEN c.satisfaction IS NULL THEN NULL ELSE jsonb_build_object("
    "        'satisfaction', c.satisfaction, 'comment', c.feedback_comment) END) "
    "FROM cases c WHERE c.id = $1::uuid "
    "ON CONFLICT (case_id, case_version) DO NOTHING "
    "RETURNING jsonb_array_length(record -> 'history') AS events",
    4};

static const pg_stmt_t ar_pending_stats = {
    "ar_pending_stats",
    "SELECT count(*) AS n, "
    "COALESCE(EXTRACT(EPOCH FROM now() - min(held_at)), 0) AS oldest_s FROM public_feed_pending",
    0};

static const pg_stmt_t ar_gaps = {
    "ar_gaps",
    "SELECT p.case_id, s.next_seq, min(p.seq) AS first_held, count(*) AS held "
    "FROM public_feed_pending p JOIN public_feed_state s ON s.case_id = p.case_id "
    "GROUP BY p.case_id, s.next_seq "
    "HAVING min(p.held_at) < now() - $1::bigint * interval '1 millisecond' "
    "ORDER BY min(p.held_at) LIMIT 20",
    1};

void archive_metrics_init(archive_t *ar)
{
    ar->m_published =
        metrics_counter("kesu_public_events_total", "Events published on kesu.public.v1", NULL);
    ar->m_held = metrics_counter("kesu_public_held_total",
                                 "Events held until an earlier one of their case arrived", NULL);
    ar->m_skipped = metrics_counter("kesu_public_skipped_total",
                                    "Events whose history position was already published", NULL);
    ar->m_archived = metrics_counter("kesu_archive_records_total", "Archive records written", NULL);
    ar->m_pending =
        metrics_gauge("kesu_public_pending", "Events held in public_feed_pending", NULL);
    ar->m_oldest =
        metrics_gauge("kesu_public_pending_oldest_seconds", "Age of the oldest held event", NULL);
}

static kc_result_t archive_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

static int archive_hold(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                        size_t errstr_size)
{
    size_t len;
    char seq[24];
    uint8_t *buf = proto_env_pack(env, &len);
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory packing an envelope");
        return -1;
    }
    snprintf(seq, sizeof(seq), "%" PRId64, env->case_seq);
    const char *v[3] = {env->case_id, seq, (const char *)buf};
    int lengths[3] = {0, 0, (int)len};
    int formats[3] = {0, 0, 1};
    PGresult *res = pg_exec_stmt_bin(pg, &ar_hold, v, lengths, formats, 0, PGRES_TUPLES_OK, errstr,
                                     errstr_size);
    free(buf);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(errstr, errstr_size, "no feed state row for case %s while holding", env->case_id);
        return -1;
    }
    if (strcmp(pg_get(res, 0, "added"), "1") == 0)
        ar->held_added++;
    else
        LOG_WARN("history position %" PRId64 " of the case is already held", env->case_seq);
    PQclear(res);
    return 0;
}

/* CaseClosed just went out: write the record, append CaseArchived (history
 * only) and hold it, so the drain that is running publishes it in its turn */
static int archive_close(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *closed, char *errstr,
                         size_t errstr_size)
{
    char ver[24], seq[24], at[24];
    PGresult *res;
    snprintf(ver, sizeof(ver), "%" PRId64, closed->case_version);
    snprintf(seq, sizeof(seq), "%" PRId64, closed->case_seq);
    snprintf(at, sizeof(at), "%" PRId64, closed->occurred_at_ms);
    const char *v[4] = {closed->case_id, ver, seq, at};
    res = pg_exec_stmt(pg, &ar_record, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        /* this close (case version) was archived before, CaseArchived with it;
         * or the case row is gone */
        LOG_WARN("no archive record written for case version %s: already archived, or no such "
                 "case",
                 ver);
        PQclear(res);
        return 0;
    }
    int events = atoi(pg_get(res, 0, "events"));
    PQclear(res);

    Kesu__V1__CaseArchived ca = KESU__V1__CASE_ARCHIVED__INIT;
    proto_env_t pe;
    casestore_result_t cr;
    ca.events = events;
    proto_env_init(&pe, "archiver");
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_ARCHIVED, &ca.base);
    /* topic NULL: the history row only; the public copy comes from the feed */
    if (casestore_append(pg, closed->case_id, "archiver", "archiver", NULL, &pe, &cr, errstr,
                         errstr_size) != CASESTORE_OK)
        return -1;
    metrics_counter_add(ar->m_archived, 1);
    LOG_INFO("case %s archived at version %s with %d events", pe.case_no, ver, events);
    return archive_hold(ar, pg, &pe.env, errstr, errstr_size);
}

static int archive_publish(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                           size_t errstr_size)
{
    if (outbox_append_env(pg, "archiver", KAFKA_TOPIC_PUBLIC, env, errstr, errstr_size) != 0)
        return -1;
    metrics_counter_add(ar->m_published, 1);
    if (archive_stats_apply(ar, pg, env, errstr, errstr_size) != 0)
        return -1;
    if (env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED)
        return archive_close(ar, pg, env, errstr, errstr_size);
    return 0;
}

/* the fast path: 1 published (the statistics applied too), 0 the slow path
 * must decide, -1 database failure */
static int archive_fast(archive_t *ar, pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                        size_t errstr_size)
{
    size_t len;
    char seq[24];
    int rc = -1;
    char *hjson;
    uint8_t *buf;
    if (outbox_env_encode(env, &buf, &len, &hjson, errstr, errstr_size) != 0)
        return -1;
    snprintf(seq, sizeof(seq), "%" PRId64, env->case_seq);
    const char *v[5] = {env->case_id, seq, KAFKA_TOPIC_PUBLIC, (const char *)buf, hjson};
    int lengths[5] = {0, 0, 0, (int)len, 0};
    int formats[5] = {0, 0, 0, 1, 0};
    PGresult *res = pg_exec_stmt_bin(pg, env->case_seq == 1 ? &ar_fast_first : &ar_fast_next, v,
                                     lengths, formats, 0, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        goto out;
    rc = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (rc == 1) {
        outbox_wrote(pg, 1);
        metrics_counter_add(ar->m_published, 1);
        if (archive_stats_apply(ar, pg, env, errstr, errstr_size) != 0)
            rc = -1;
    }
out:
    free(hjson);
    free(buf);
    return rc;
}

/* an event of a batch, for archive_feed_claimed */
typedef struct ar_cand {
    const rd_kafka_message_t *rkm;
    Kesu__V1__Envelope *env; /* scrubbed copy */
    int run;                 /* in its case's run */
} ar_cand_t;

static int ar_cand_cmp(const void *a, const void *b)
{
    const ar_cand_t *x = a, *y = b;
    int c = strcmp(x->env->case_id, y->env->case_id);
    return c ? c : (x->env->case_seq > y->env->case_seq) - (x->env->case_seq < y->env->case_seq);
}

static int ar_ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const void *const *)a, y = (uintptr_t) * (const void *const *)b;
    return (x > y) - (x < y);
}

void archive_feed_reset(archive_t *ar)
{
    ar->nsent = 0;
}

/* mark the run [from, to) published: the handlers skip it; its statistics
 * applied in history order */
static int ar_runs_sent(archive_t *ar, pg_t *pg, ar_cand_t *c, size_t from, size_t to,
                        char *errstr, size_t errstr_size)
{
    const rd_kafka_message_t **p =
        util_grow(ar->sent, &ar->sent_cap, ar->nsent + (to - from), sizeof(*p), 256);
    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    ar->sent = p;
    for (size_t i = from; i < to; i++) {
        ar->sent[ar->nsent++] = c[i].rkm;
        if (archive_stats_apply(ar, pg, c[i].env, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

kc_result_t archive_feed_claimed(archive_t *ar, pg_t *pg, const kc_msg_t *msgs, size_t n,
                                 char *errstr, size_t errstr_size)
{
    ar_cand_t *c = calloc(n ? n : 1, sizeof(*c));
    size_t nc = 0, nrun = 0, published = 0;
    kc_result_t rc = KC_RETRY;
    PGresult *res = NULL;
    pg_keyed_t done = {0};
    ar->nsent = 0;
    if (!c || pg_rows_ready(&ar->run_rows, 4) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Kesu__V1__Envelope *env = kesu__v1__envelope__unpack(NULL, msgs[i].rkm->len,
                                                             (const uint8_t *)msgs[i].rkm->payload);
        if (!env)
            continue; /* the handler says why */
        if (env->case_seq < 1) {
            kesu__v1__envelope__free_unpacked(env, NULL);
            continue;
        }
        archive_scrub_envelope(env);
        c[nc++] = (ar_cand_t){msgs[i].rkm, env, 0};
    }
    qsort(c, nc, sizeof(*c), ar_cand_cmp);
    /* each case's run: consecutive positions from its lowest, before any CaseClosed */
    for (size_t i = 0; i < nc; i++) {
        int starts = i == 0 || strcmp(c[i].env->case_id, c[i - 1].env->case_id) != 0;
        int follows = !starts && c[i - 1].run && c[i].env->case_seq == c[i - 1].env->case_seq + 1;
        if ((!starts && !follows) ||
            c[i].env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED)
            continue;
        uint8_t *buf;
        size_t len;
        char *hjson, seq[24];
        if (outbox_env_encode(c[i].env, &buf, &len, &hjson, errstr, errstr_size) != 0)
            goto out;
        snprintf(seq, sizeof(seq), "%" PRId64, c[i].env->case_seq);
        pg_rows_text(&ar->run_rows, 0, c[i].env->case_id);
        pg_rows_text(&ar->run_rows, 1, seq);
        pg_rows_bytea(&ar->run_rows, 2, buf, len);
        pg_rows_text(&ar->run_rows, 3, hjson);
        ar->run_rows.n++;
        free(buf);
        free(hjson);
        c[i].run = 1;
        nrun++;
    }
    rc = KC_OK;
    if (!nrun)
        goto out;
    res = pg_rows_exec(pg, &ar_runs, &ar->run_rows, KAFKA_TOPIC_PUBLIC, PGRES_TUPLES_OK, errstr,
                       errstr_size);
    if (!res) {
        rc = archive_db_failure(pg);
        goto out;
    }
    /* the published cases' runs: each starts at its case's first candidate */
    if (pg_keyed_set(&done, res) != 0) {
        res = NULL; /* cleared by pg_keyed_set */
        snprintf(errstr, errstr_size, "out of memory");
        rc = KC_RETRY;
        goto out;
    }
    res = NULL; /* done owns it */
    for (size_t lo = 0, end; lo < nc; lo = end) {
        for (end = lo + 1; end < nc && c[end].run; end++)
            if (strcmp(c[end].env->case_id, c[lo].env->case_id) != 0)
                break;
        if (!c[lo].run || pg_keyed_take(&done, c[lo].env->case_id) < 0)
            continue;
        if (ar_runs_sent(ar, pg, c, lo, end, errstr, errstr_size) != 0) {
            rc = archive_db_failure(pg);
            goto out;
        }
        published += end - lo;
    }
    qsort(ar->sent, ar->nsent, sizeof(*ar->sent), ar_ptr_cmp);
    outbox_wrote(pg, (int)published);
    metrics_counter_add(ar->m_published, published);
    LOG_DEBUG("%zu of the batch's %zu events published at once", published, n);
out:
    PQclear(res);
    pg_keyed_clear(&done);
    for (size_t i = 0; i < nc; i++)
        kesu__v1__envelope__free_unpacked(c[i].env, NULL);
    free(c);
    if (rc != KC_OK)
        ar->nsent = 0;
    return rc;
}

/* publish the held events that now follow on without a gap; *next advances,
 * *taken counts them. `held` is the state row's count when it was locked;
 * events held meanwhile (CaseArchived after CaseClosed) are in held_added. */
static int archive_drain(archive_t *ar, pg_t *pg, const char *case_id, int held, int64_t *next,
                         int *taken, char *errstr, size_t errstr_size)
{
    while (held + ar->held_added - *taken > 0) {
        char seq[24], why[256];
        size_t len = 0;
        snprintf(seq, sizeof(seq), "%" PRId64, *next);
        const char *v[2] = {case_id, seq};
        PGresult *res = pg_exec_stmt(pg, &ar_take, v, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res)
            return -1;
        if (PQntuples(res) == 0) {
            PQclear(res);
            return 0;
        }
        unsigned char *buf =
            PQunescapeBytea((const unsigned char *)pg_get(res, 0, "envelope"), &len);
        PQclear(res);
        Kesu__V1__Envelope *env = buf ? proto_env_unpack(buf, len, why, sizeof(why)) : NULL;
        PQfreemem(buf);
        if (!env) {
            /* we wrote it ourselves, so this is damage, not a bad producer */
            snprintf(errstr, errstr_size, "held event %s of case %s cannot be decoded", seq,
                     case_id);
            return -1;
        }
        int rc = archive_publish(ar, pg, env, errstr, errstr_size);
        kesu__v1__envelope__free_unpacked(env, NULL);
        if (rc != 0)
            return -1;
        (*next)++;
        (*taken)++;
    }
    return 0;
}

/* lock the case's state row, creating it if this is its first event */
static PGresult *archive_state(pg_t *pg, const Kesu__V1__Envelope *env, char *errstr,
                               size_t errstr_size)
{
    const char *cv[1] = {env->case_id};
    /* the first event usually creates the row; others usually find it */
    int create = env->case_seq == 1;
    for (int tries = 0; tries < 3; tries++, create = !create) {
        PGresult *res = pg_exec_stmt(pg, create ? &ar_state_init : &ar_state_lock, cv,
                                     PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res || PQntuples(res) == 1)
            return res;
        PQclear(res); /* not there yet / created by another instance meanwhile */
    }
    snprintf(errstr, errstr_size, "feed state row of case %s neither found nor created",
             env->case_id);
    return NULL;
}

kc_result_t archive_feed(archive_t *ar, pg_t *pg, Kesu__V1__Envelope *env, char *errstr,
                         size_t errstr_size)
{
    PGresult *res;
    int64_t next;
    int held, taken = 0;
    char nv[24], tv[16];

    if (archive_order_decide(env->case_seq, 1) == ARCHIVE_ORDER_INVALID) {
        snprintf(errstr, errstr_size,
                 "%s has no case_seq: not from a case history, cannot be ordered", env->event_type);
        return KC_POISON;
    }
    ar->held_added = 0;
    /* a CaseClosed also archives: the slow path (archive_publish) does that */
    if (env->payload_case != KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED) {
        int fast = archive_fast(ar, pg, env, errstr, errstr_size);
        if (fast < 0)
            return archive_db_failure(pg);
        if (fast == 1)
            return KC_OK;
    }
    res = archive_state(pg, env, errstr, errstr_size);
    if (!res)
        return archive_db_failure(pg);
    next = strtoll(pg_get(res, 0, "next_seq"), NULL, 10);
    held = atoi(pg_get(res, 0, "held"));
    PQclear(res);

    switch (archive_order_decide(env->case_seq, next)) {
    case ARCHIVE_ORDER_SKIP:
        metrics_counter_add(ar->m_skipped, 1);
        LOG_DEBUG("history position %" PRId64 " already published (next %" PRId64 ")",
                  env->case_seq, next);
        return KC_SKIP;
    case ARCHIVE_ORDER_HOLD:
        if (archive_hold(ar, pg, env, errstr, errstr_size) != 0)
            return archive_db_failure(pg);
        metrics_counter_add(ar->m_held, 1);
        LOG_DEBUG("history position %" PRId64 " held until %" PRId64 " is published", env->case_seq,
                  next);
        return KC_OK;
    case ARCHIVE_ORDER_PUBLISH:
        break;
    case ARCHIVE_ORDER_INVALID:
        return KC_POISON; /* checked above */
    }
    if (archive_publish(ar, pg, env, errstr, errstr_size) != 0)
        return archive_db_failure(pg);
    next++;
    if (archive_drain(ar, pg, env->case_id, held, &next, &taken, errstr, errstr_size) != 0)
        return archive_db_failure(pg);
    snprintf(nv, sizeof(nv), "%" PRId64, next);
    snprintf(tv, sizeof(tv), "%d", taken);
    const char *sv[3] = {env->case_id, nv, tv};
    res = pg_exec_stmt(pg, &ar_state_set, sv, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return archive_db_failure(pg);
    PQclear(res);
    return KC_OK;
}

kc_result_t archive_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                           size_t errstr_size)
{
    archive_t *ar = opaque;
    const rd_kafka_message_t *rkm = m->rkm;
    if (ar->nsent && bsearch(&rkm, ar->sent, ar->nsent, sizeof(*ar->sent), ar_ptr_cmp))
        return KC_OK; /* published with its batch's run (archive_feed_claimed) */
    /* a private copy: the loop's envelope is read-only and the scrub edits */
    Kesu__V1__Envelope *env =
        kesu__v1__envelope__unpack(NULL, m->rkm->len, (const uint8_t *)m->rkm->payload);
    kc_result_t r;
    if (!env) {
        snprintf(errstr, errstr_size, "value is not a kesu.v1.Envelope");
        return KC_POISON;
    }
    archive_scrub_envelope(env);
    r = archive_feed(ar, pg, env, errstr, errstr_size);
    kesu__v1__envelope__free_unpacked(env, NULL);
    return r;
}

void archive_tick(void *opaque, pg_t *pg)
{
    archive_t *ar = opaque;
    char errstr[512], ms[24];
    PGresult *res;
    if (pg_ensure(pg, errstr, sizeof(errstr)) != 0)
        return;
    /* a backlog (every round full) is worked off a tick at a time, each tick's
     * rounds short enough not to hold the events up for long */
    if (ar->retention_days > 0 &&
        (ar->retention_backlog ||
         util_mono_ms() - ar->last_retention_ms >= ar->retention_scan_ms)) {
        ar->last_retention_ms = util_mono_ms();
        if (archive_retention_run(pg, ar->retention_days, ARCHIVE_RETENTION_LIMIT,
                                  ARCHIVE_RETENTION_ROUNDS, &ar->retention_backlog, errstr,
                                  sizeof(errstr)) < 0)
            LOG_WARN("retention purge failed, will retry: %s", errstr);
    }
    if (util_mono_ms() - ar->last_judge_ms >= ARCHIVE_JUDGE_MS) {
        ar->last_judge_ms = util_mono_ms();
        if (archive_stats_judge_late(pg, ARCHIVE_JUDGE_DAYS, ARCHIVE_JUDGE_LIMIT, errstr,
                                     sizeof(errstr)) < 0)
            LOG_WARN("cannot judge late facts, will retry: %s", errstr);
    }
    if (util_mono_ms() - ar->last_fold_ms >= ARCHIVE_FOLD_MS) {
        ar->last_fold_ms = util_mono_ms();
        if (archive_counts_fold(pg, errstr, sizeof(errstr)) < 0)
            LOG_WARN("cannot fold the kept counts, will retry: %s", errstr);
    }
    res = pg_exec_stmt(pg, &ar_pending_stats, NULL, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res) {
        LOG_WARN("cannot count held events: %s", errstr);
        return;
    }
    metrics_gauge_set(ar->m_pending, atof(pg_get(res, 0, "n")));
    metrics_gauge_set(ar->m_oldest, atof(pg_get(res, 0, "oldest_s")));
    int held = atoi(pg_get(res, 0, "n"));
    PQclear(res);
    if (!held || util_mono_ms() - ar->last_gap_warn_ms < ar->gap_warn_ms)
        return;
    /* a gap that stays open means a history event never reached a stage
     * topic (or was produced without its topic): tell the operator which */
    snprintf(ms, sizeof(ms), "%d", ar->gap_warn_ms);
    const char *v[1] = {ms};
    res = pg_exec_stmt(pg, &ar_gaps, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    if (!res) {
        LOG_WARN("cannot list feed gaps: %s", errstr);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        log_ctx_set(pg_get(res, i, "case_id"), NULL, NULL, -1, -1);
        LOG_WARN("public feed of the case waits for history position %s for over %d ms (%s "
                 "later events held, first %s)",
                 pg_get(res, i, "next_seq"), ar->gap_warn_ms, pg_get(res, i, "held"),
                 pg_get(res, i, "first_held"));
    }
    log_ctx_clear();
    if (PQntuples(res))
        ar->last_gap_warn_ms = util_mono_ms();
    PQclear(res);
}
