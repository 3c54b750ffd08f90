/*
 * Integration: events a stage does not want (kc_wants_fn) through the
 * consumer loop's batch step, kc_apply_batch, against the real PostgreSQL.
 *   - a batch of only unwanted events is done without the database: it
 *     succeeds on a connection that cannot reach any server;
 *   - in a mixed batch the handler sees the wanted events, in order, and
 *     only they get inbox rows; a redelivery of the batch is a duplicate
 *     for them and still ignored for the others;
 *   - an undecodable message is never "unwanted": it goes to the DLQ;
 *   - the stage's batch step (kc_batch_fn) runs at the start and the end
 *     of every attempt; KC_RETRY at the end runs the batch again at once
 *     (committed once, inbox rows once) and gives up after KC_RERUN_MAX
 *     re-runs with nothing committed; at KC_BATCH_CLAIMED it sees the
 *     attempt's new wanted events (not the unwanted, not duplicates in or
 *     before the batch), in order, and its KC_POISON re-runs the batch
 *     carefully, where it is not called;
 *   - the fast path writes the batch's history rows in one statement at its
 *     end (casestore_defer_*); when that statement is refused (here: an
 *     event id already in the history), the batch runs again event by event
 *     and only the refused event goes to the DLQ;
 *   - a status change of a case the batch locked at its claim is kept for
 *     the batch's one statement (decision 0038) and written before a later
 *     event of the same case is handled: that handler reads the changed row;
 *   - kc_inbox_purge deletes the rows whose event and claim are both past
 *     the retention, in chunks (each one index range, no join), keeps every
 *     other, records the horizon, and a redelivered recent event is still a
 *     duplicate afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "casestore.h"
#include "itest.h"
#include "kafka.h"
#include "proto.h"

static pg_t *pg;
static rd_kafka_t *rk;
static rd_kafka_topic_t *rkt;
static char group[64], service[64];

typedef struct seen {
    int n;
    char ids[8][37];
} seen_t;

static seen_t seen;

static kc_result_t handler(void *opaque, pg_t *p, const kc_msg_t *m, char *errstr, size_t n)
{
    (void)opaque;
    (void)p;
    (void)errstr;
    (void)n;
    if (seen.n < 8)
        snprintf(seen.ids[seen.n++], 37, "%s", m->env->event_id);
    return KC_OK;
}

/* this stage acts on CaseAssigned only */
static int wants(void *opaque, const Kesu__V1__Envelope *env)
{
    (void)opaque;
    return env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED;
}

typedef struct ev {
    rd_kafka_message_t rkm;
    uint8_t *buf;
    char event_id[37];
} ev_t;

/* an event of a case (a new one when case_id is NULL) */
static void make_for(ev_t *e, Kesu__V1__Envelope__PayloadCase pc, const char *case_id,
                     int64_t offset)
{
    proto_env_t pe;
    Kesu__V1__CaseAssigned a = KESU__V1__CASE_ASSIGNED__INIT;
    Kesu__V1__NotificationSent s = KESU__V1__NOTIFICATION_SENT__INIT;
    char fresh[37];
    if (!case_id) {
        util_uuid(fresh);
        case_id = fresh;
    }
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, case_id, "KS-ITEST", "trace");
    assert_int_equal(proto_env_set_payload(&pe, pc,
                                           pc == KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED
                                               ? &a.base
                                               : &s.base),
                     0);
    size_t len = 0;
    memset(e, 0, sizeof(*e));
    e->buf = proto_env_pack(&pe.env, &len);
    snprintf(e->event_id, sizeof(e->event_id), "%s", pe.event_id);
    e->rkm.rkt = rkt;
    e->rkm.payload = e->buf;
    e->rkm.len = len;
    e->rkm.offset = offset;
}

static void make(ev_t *e, Kesu__V1__Envelope__PayloadCase pc, int64_t offset)
{
    make_for(e, pc, NULL, offset);
}

typedef struct steps {
    int begins, ends, refuse; /* refuse: END answers KC_RETRY this many times */
    int claimed, careful;     /* KC_BATCH_CLAIMED and KC_BATCH_BEGIN_CAREFUL calls */
    int refuse_claimed;       /* CLAIMED answers KC_POISON this many times */
    int nclaimed;             /* the events of the last CLAIMED call */
    char claimed_ids[8][37];
} steps_t;

static steps_t steps;

static kc_result_t batch_step(void *opaque, pg_t *p, kc_batch_phase_t phase, const kc_msg_t *msgs,
                              size_t nmsgs, char *errstr, size_t n)
{
    (void)opaque;
    (void)p;
    if (phase == KC_BATCH_CLAIMED) {
        assert_non_null(msgs);
        steps.claimed++;
        steps.nclaimed = (int)nmsgs;
        for (size_t i = 0; i < nmsgs && i < 8; i++)
            snprintf(steps.claimed_ids[i], 37, "%s", msgs[i].env->event_id);
        if (steps.refuse_claimed-- > 0) {
            snprintf(errstr, n, "refused at claim");
            return KC_POISON;
        }
        return KC_OK;
    }
    assert_null(msgs);
    assert_int_equal(nmsgs, 0);
    if (phase != KC_BATCH_END) {
        steps.begins++;
        steps.careful += phase == KC_BATCH_BEGIN_CAREFUL;
        return KC_OK;
    }
    steps.ends++;
    if (steps.refuse-- > 0) {
        snprintf(errstr, n, "not yet");
        return KC_RETRY;
    }
    return KC_OK;
}

static kafka_consumer_opts_t opts(void)
{
    kafka_consumer_opts_t o = {.service = service, .group = group, .handler = handler,
                               .wants = wants};
    return o;
}

static long long inbox_rows(const char *event_id)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbox WHERE consumer = '%s'%s%s%s", group,
             event_id ? " AND event_id = '" : "", event_id ? event_id : "", event_id ? "'" : "");
    return itest_scalar(pg, sql);
}

static void test_only_unwanted_needs_no_database(void **state)
{
    (void)state;
    ev_t e[3];
    rd_kafka_message_t *msgs[3];
    kc_outcome_t out[3];
    for (int i = 0; i < 3; i++) {
        make(&e[i], KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT, i);
        msgs[i] = &e[i].rkm;
    }
    pg_t *nowhere = pg_new("host=/nonexistent/kesu-itest connect_timeout=1");
    kafka_consumer_opts_t o = opts();
    char err[512] = "";
    seen.n = 0;
    int rc = kc_apply_batch(nowhere, &o, msgs, 3, out, err, sizeof(err));
    pg_destroy(nowhere);
    for (int i = 0; i < 3; i++)
        free(e[i].buf);
    if (rc != 0)
        fail_msg("kc_apply_batch: %s", err);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i], KC_IGNORED);
    assert_int_equal(seen.n, 0);
}

static void test_mixed_batch(void **state)
{
    (void)state;
    /* unwanted, wanted, unwanted, wanted */
    ev_t e[4];
    rd_kafka_message_t *msgs[4];
    kc_outcome_t out[4];
    for (int i = 0; i < 4; i++) {
        make(&e[i], i % 2 ? KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED
                          : KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT,
             10 + i);
        msgs[i] = &e[i].rkm;
    }
    kafka_consumer_opts_t o = opts();
    char err[512] = "";
    seen.n = 0;
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 4, out, err, sizeof(err)), 0);
    assert_int_equal(out[0], KC_IGNORED);
    assert_int_equal(out[1], KC_APPLIED);
    assert_int_equal(out[2], KC_IGNORED);
    assert_int_equal(out[3], KC_APPLIED);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.ids[0], e[1].event_id);
    assert_string_equal(seen.ids[1], e[3].event_id);
    assert_int_equal(inbox_rows(NULL), 2);
    assert_int_equal(inbox_rows(e[1].event_id), 1);
    assert_int_equal(inbox_rows(e[3].event_id), 1);
    assert_int_equal(inbox_rows(e[0].event_id), 0);

    /* redelivered: the wanted ones are duplicates, the others still ignored */
    seen.n = 0;
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 4, out, err, sizeof(err)), 0);
    assert_int_equal(out[0], KC_IGNORED);
    assert_int_equal(out[1], KC_DUPLICATE);
    assert_int_equal(out[2], KC_IGNORED);
    assert_int_equal(out[3], KC_DUPLICATE);
    assert_int_equal(seen.n, 0);
    assert_int_equal(inbox_rows(NULL), 2);
    for (int i = 0; i < 4; i++)
        free(e[i].buf);
}

static void test_undecodable_goes_to_dlq(void **state)
{
    (void)state;
    ev_t e[2];
    rd_kafka_message_t *msgs[2];
    kc_outcome_t out[2];
    static uint8_t junk[] = {0xff, 0x01, 0x02, 0x03};
    make(&e[0], KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT, 20);
    memset(&e[1], 0, sizeof(e[1]));
    e[1].rkm.rkt = rkt;
    e[1].rkm.payload = junk;
    e[1].rkm.len = sizeof(junk);
    e[1].rkm.offset = 21;
    msgs[0] = &e[0].rkm;
    msgs[1] = &e[1].rkm;
    kafka_consumer_opts_t o = opts();
    char err[512] = "", sql[256];
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 2, out, err, sizeof(err)), 0);
    free(e[0].buf);
    assert_int_equal(out[0], KC_IGNORED);
    assert_int_equal(out[1], KC_DEAD);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE producer = '%s' AND topic = '%s'",
             service, KAFKA_TOPIC_DLQ);
    assert_int_equal(itest_scalar(pg, sql), 1);
}

static void test_batch_step_reruns(void **state)
{
    (void)state;
    ev_t e[2];
    rd_kafka_message_t *msgs[2];
    kc_outcome_t out[2];
    for (int i = 0; i < 2; i++) {
        make(&e[i], KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 30 + i);
        msgs[i] = &e[i].rkm;
    }
    kafka_consumer_opts_t o = opts();
    o.batch = batch_step;
    char err[512] = "";
    long long before = inbox_rows(NULL);

    /* refused twice at the end: run three times, committed once */
    seen.n = 0;
    steps = (steps_t){.refuse = 2};
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 2, out, err, sizeof(err)), 0);
    assert_int_equal(steps.begins, 3);
    assert_int_equal(steps.ends, 3);
    assert_int_equal(seen.n, 6);
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_APPLIED);
    assert_int_equal(inbox_rows(NULL), before + 2);
    assert_int_equal(inbox_rows(e[0].event_id), 1);

    /* refused every time: given up after KC_RERUN_MAX re-runs, nothing committed */
    for (int i = 0; i < 2; i++) {
        free(e[i].buf);
        make(&e[i], KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 40 + i);
    }
    steps = (steps_t){.refuse = 1000};
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 2, out, err, sizeof(err)), -1);
    assert_int_equal(steps.begins, KC_RERUN_MAX + 1);
    assert_non_null(strstr(err, "not yet"));
    assert_int_equal(inbox_rows(e[0].event_id), 0);
    assert_int_equal(inbox_rows(e[1].event_id), 0);
    for (int i = 0; i < 2; i++)
        free(e[i].buf);
}

/* KC_BATCH_CLAIMED sees the fast attempt's new wanted events only, in batch
 * order; KC_POISON there re-runs the batch carefully, where it is not called */
static void test_batch_claimed(void **state)
{
    (void)state;
    ev_t a, u, b, c;
    kc_outcome_t out[5];
    make(&a, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 50);
    make(&u, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SENT, 51);
    make(&b, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 52);
    make(&c, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 53);
    kafka_consumer_opts_t o = opts();
    o.batch = batch_step;
    char err[512] = "";

    /* c is claimed by an earlier batch */
    rd_kafka_message_t *first[1] = {&c.rkm};
    steps = (steps_t){0};
    assert_int_equal(kc_apply_batch(pg, &o, first, 1, out, err, sizeof(err)), 0);
    assert_int_equal(steps.claimed, 1);
    assert_int_equal(steps.nclaimed, 1);
    assert_string_equal(steps.claimed_ids[0], c.event_id);

    /* a, unwanted u, b, a again, c again: a and b */
    rd_kafka_message_t *msgs[5] = {&a.rkm, &u.rkm, &b.rkm, &a.rkm, &c.rkm};
    steps = (steps_t){0};
    seen.n = 0;
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 5, out, err, sizeof(err)), 0);
    assert_int_equal(steps.claimed, 1);
    assert_int_equal(steps.nclaimed, 2);
    assert_string_equal(steps.claimed_ids[0], a.event_id);
    assert_string_equal(steps.claimed_ids[1], b.event_id);
    assert_int_equal(steps.careful, 0);
    assert_int_equal(seen.n, 2);
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_IGNORED);
    assert_int_equal(out[2], KC_APPLIED);
    assert_int_equal(out[3], KC_DUPLICATE);
    assert_int_equal(out[4], KC_DUPLICATE);

    /* refused at the claim: the careful re-run applies both, CLAIMED not called again */
    free(a.buf);
    free(b.buf);
    make(&a, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 60);
    make(&b, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 61);
    rd_kafka_message_t *again[2] = {&a.rkm, &b.rkm};
    steps = (steps_t){.refuse_claimed = 1};
    seen.n = 0;
    assert_int_equal(kc_apply_batch(pg, &o, again, 2, out, err, sizeof(err)), 0);
    assert_int_equal(steps.claimed, 1);
    assert_int_equal(steps.careful, 1);
    assert_int_equal(steps.begins, 2);
    assert_int_equal(steps.ends, 1);
    assert_int_equal(seen.n, 2);
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_APPLIED);
    assert_int_equal(inbox_rows(a.event_id), 1);
    assert_int_equal(inbox_rows(b.event_id), 1);
    free(a.buf);
    free(u.buf);
    free(b.buf);
    free(c.buf);
}

/* a handler that appends a history row to hist_case per event; the event
 * clash_trigger gets the id clash_id, which the history already has */
static char hist_case[37], clash_trigger[37], clash_id[37];

/* a history event to append (nf must outlive pe) */
static void failed_env(proto_env_t *pe, Kesu__V1__NotificationFailed *nf)
{
    Kesu__V1__NotificationFailed init = KESU__V1__NOTIFICATION_FAILED__INIT;
    *nf = init;
    nf->channel = "sms";
    nf->audience = "complainant";
    nf->template_ = "ack";
    nf->error = "itest";
    proto_env_init(pe, "itest");
    proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED, &nf->base);
}

static kc_result_t append_handler(void *opaque, pg_t *p, const kc_msg_t *m, char *errstr,
                                  size_t n)
{
    (void)opaque;
    proto_env_t pe;
    Kesu__V1__NotificationFailed nf;
    failed_env(&pe, &nf);
    if (strcmp(m->env->event_id, clash_trigger) == 0)
        snprintf(pe.event_id, sizeof(pe.event_id), "%s", clash_id);
    if (seen.n < 8)
        snprintf(seen.ids[seen.n++], 37, "%s", m->env->event_id);
    if (casestore_append(p, hist_case, "itest", "itest", NULL, &pe, NULL, errstr, n) ==
        CASESTORE_OK)
        return KC_OK;
    return pg_failure_transient(p) ? KC_RETRY : KC_POISON;
}

/* a test's case and its history, gone */
static void drop_case(const char *id)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "DELETE FROM case_events WHERE case_id = '%s'", id);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM cases WHERE id = '%s'", id);
    itest_sql(pg, sql);
}

static void test_gathered_history_refused(void **state)
{
    (void)state;
    char err[512] = "", no[32], sql[256];
    util_uuid(hist_case);
    snprintf(no, sizeof(no), "ITG-%.8s", hist_case + 28);
    assert_int_equal(itest_insert_case(pg, hist_case, no, "t", "b"), 0);
    /* the history already has clash_id */
    proto_env_t pe;
    Kesu__V1__NotificationFailed nf;
    failed_env(&pe, &nf);
    snprintf(clash_id, sizeof(clash_id), "%s", pe.event_id);
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(casestore_append(pg, hist_case, "itest", "itest", NULL, &pe, NULL, err,
                                      sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);

    ev_t e[3];
    rd_kafka_message_t *msgs[3];
    kc_outcome_t out[3];
    for (int i = 0; i < 3; i++) {
        make(&e[i], KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 60 + i);
        msgs[i] = &e[i].rkm;
    }
    snprintf(clash_trigger, sizeof(clash_trigger), "%s", e[1].event_id);
    kafka_consumer_opts_t o = opts();
    o.handler = append_handler;
    seen.n = 0;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE producer = '%s' AND topic = "
             "'%s'", service, KAFKA_TOPIC_DLQ);
    long long dlq0 = itest_scalar(pg, sql);
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 3, out, err, sizeof(err)), 0);
    /* fast path: all three handled, refused at the end; then one by one */
    assert_int_equal(seen.n, 6);
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_DEAD);
    assert_int_equal(out[2], KC_APPLIED);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_events WHERE case_id = '%s'", hist_case);
    assert_int_equal(itest_scalar(pg, sql), 3); /* the earlier one and two of the batch */
    snprintf(sql, sizeof(sql), "SELECT event_seq FROM cases WHERE id = '%s'", hist_case);
    assert_int_equal(itest_scalar(pg, sql), 3);
    assert_int_equal(inbox_rows(e[0].event_id), 1);
    assert_int_equal(inbox_rows(e[1].event_id), 0);
    assert_int_equal(inbox_rows(e[2].event_id), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE producer = '%s' AND topic = "
             "'%s'", service, KAFKA_TOPIC_DLQ);
    assert_int_equal(itest_scalar(pg, sql), dlq0 + 1);
    for (int i = 0; i < 3; i++)
        free(e[i].buf);
    drop_case(hist_case);
}

/* kept status changes (decision 0038): the batch step locks and reads its
 * cases at the claim (kc_cases_read makes them known to casestore); the
 * handler reads its case's row and moves a received case to classified, a
 * change kept for the batch's one statement; a later event of the same case
 * reads its own row, which must show that change already */
static const pg_stmt_t kept_claim = {
    "itest_kept_claim",
    "SELECT id::text AS id, status, version, event_seq, case_no, trace_id FROM cases "
    "WHERE id = ANY ($1::uuid[]) ORDER BY id FOR NO KEY UPDATE",
    1};
static const pg_stmt_t kept_one = {
    "itest_kept_one", "SELECT status FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE", 1};
static const pg_stmt_t kept_bump = {"itest_kept_bump", CASESTORE_BUMP_SQL(", domain = $6"), 6};
static const pg_stmt_t kept_bump_many = {
    "itest_kept_bump_many", CASESTORE_BUMP_MANY_SQL(", $5::text[]", ", v5", ", domain = u.v5"), 5};
static pg_keyed_t kept_rows;
static int kept_careful;
static char kept_seen[4][24];
static int kept_nseen;

static kc_result_t kept_step(void *opaque, pg_t *p, kc_batch_phase_t phase, const kc_msg_t *msgs,
                             size_t nmsgs, char *errstr, size_t n)
{
    (void)opaque;
    kept_careful += phase == KC_BATCH_BEGIN_CAREFUL;
    return kc_cases_step(p, phase, &kept_claim, msgs, nmsgs, &kept_rows, errstr, n);
}

static kc_result_t kept_handler(void *opaque, pg_t *p, const kc_msg_t *m, char *errstr, size_t n)
{
    (void)opaque;
    PGresult *own = NULL;
    int row, rc;
    const PGresult *res =
        kc_case_row(p, &kept_rows, &kept_one, m->env->case_id, &own, &row, errstr, n);
    if (!res || PQntuples(res) == 0) {
        PQclear(own);
        return KC_POISON;
    }
    int received = strcmp(pg_get(res, row, "status"), "received") == 0;
    if (kept_nseen < 4)
        snprintf(kept_seen[kept_nseen++], 24, "%s", pg_get(res, row, "status"));
    PQclear(own);
    proto_env_t pe;
    Kesu__V1__NotificationFailed nf;
    failed_env(&pe, &nf);
    if (received) {
        static const char *const from[] = {"received", NULL};
        const char *bv[1] = {"itest_domain"};
        casestore_change_t ch = {.case_id = m->env->case_id, .from = from, .to = "classified",
                                 .producer = "itest", .actor = "itest", .bump = &kept_bump,
                                 .bump_values = bv, .bump_many = &kept_bump_many};
        rc = casestore_apply(p, &ch, &pe, NULL, errstr, n);
    } else {
        rc = casestore_append(p, m->env->case_id, "itest", "itest", NULL, &pe, NULL, errstr, n);
    }
    return rc == CASESTORE_OK ? KC_OK : pg_failure_transient(p) ? KC_RETRY : KC_POISON;
}

static void test_kept_changes(void **state)
{
    (void)state;
    char err[512] = "", id[37], no[32], sql[256];
    util_uuid(id);
    snprintf(no, sizeof(no), "ITK-%.8s", id + 28);
    assert_int_equal(itest_insert_case(pg, id, no, "t", "b"), 0);
    ev_t e[2];
    rd_kafka_message_t *msgs[2];
    kc_outcome_t out[2];
    for (int i = 0; i < 2; i++) {
        make_for(&e[i], KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, id, 70 + i);
        msgs[i] = &e[i].rkm;
    }
    kafka_consumer_opts_t o = opts();
    o.handler = kept_handler;
    o.batch = kept_step;
    kept_careful = kept_nseen = 0;
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 2, out, err, sizeof(err)), 0);
    assert_int_equal(kept_careful, 0); /* the fast attempt committed */
    assert_int_equal(out[0], KC_APPLIED);
    assert_int_equal(out[1], KC_APPLIED);
    assert_int_equal(kept_nseen, 2);
    assert_string_equal(kept_seen[0], "received");
    assert_string_equal(kept_seen[1], "classified"); /* written before its handler read it */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM cases WHERE id = '%s' AND status = 'classified' AND "
             "domain = 'itest_domain' AND version = 2 AND event_seq = 2",
             id);
    assert_int_equal(itest_scalar(pg, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(seq || ':' || version || ':' || status, ' ' ORDER BY seq) "
             "FROM case_events WHERE case_id = '%s'",
             id);
    PGresult *res = PQexec(pg->conn, sql);
    assert_string_equal(PQgetvalue(res, 0, 0), "1:2:classified 2:2:classified");
    PQclear(res);
    for (int i = 0; i < 2; i++)
        free(e[i].buf);
    drop_case(id);
}

static long long count_sql(const char *fmt)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, group);
    return itest_scalar(pg, sql);
}

static void test_inbox_purge(void **state)
{
    (void)state;
    char err[512] = "", sql[1024];
    /* 12,000 claims of events 20 days old (time-ordered ids of that time): more
     * than two chunks; one old event claimed yesterday; one claimed 20 days ago
     * whose id is of yesterday (both must stay) */
    snprintf(sql, sizeof(sql),
             "INSERT INTO inbox (consumer, event_id, applied_at) SELECT '%s', "
             "(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 1, 3) || '-8' || "
             "substr(r, 4, 3) || '-' || substr(r, 7, 12))::uuid, now() - interval '20 days' "
             "FROM (SELECT lpad(to_hex((extract(epoch FROM now() - interval '20 days') * 1000)"
             "::bigint + g), 12, '0') AS h, md5(g::text) AS r FROM generate_series(1, 12000) g) s",
             group);
    assert_int_equal(itest_sql(pg, sql), 0);
    snprintf(sql, sizeof(sql),
             "INSERT INTO inbox (consumer, event_id, applied_at) VALUES "
             "('%s', '%s', now() - interval '1 day'), ('%s', '%s', now() - interval '20 days')",
             group, "00000000-0001-7000-8000-000000000001", group,
             "ffffffff-ffff-7000-8000-000000000002");
    assert_int_equal(itest_sql(pg, sql), 0);
    /* and a recent event through the loop */
    ev_t e;
    rd_kafka_message_t *msgs[1];
    kc_outcome_t out[1];
    make(&e, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, 50);
    msgs[0] = &e.rkm;
    kafka_consumer_opts_t o = opts();
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 1, out, err, sizeof(err)), 0);
    long long before = inbox_rows(NULL);

    assert_int_equal(kc_inbox_purge(pg, group, 0, err, sizeof(err)), 0); /* 0 keeps all */
    long n = kc_inbox_purge(pg, group, 14, err, sizeof(err));
    assert_int_equal(n, 12000);
    assert_int_equal(inbox_rows(NULL), before - 12000);
    assert_int_equal(count_sql("SELECT count(*) FROM inbox WHERE consumer = '%s' AND event_id "
                               "IN ('00000000-0001-7000-8000-000000000001', "
                               "'ffffffff-ffff-7000-8000-000000000002')"),
                     2);
    assert_int_equal(inbox_rows(e.event_id), 1);
    /* the horizon: about 14 days back */
    assert_int_equal(count_sql("SELECT count(*) FROM inbox_purged WHERE consumer = '%s' AND "
                               "abs(extract(epoch FROM now() - interval '14 days') * 1000 - "
                               "('x' || lpad(replace(left(before_id::text, 13), '-', ''), 16, "
                               "'0'))::bit(64)::bigint) < 60000"),
                     1);
    assert_int_equal(kc_inbox_purge(pg, group, 14, err, sizeof(err)), 0); /* nothing left */
    /* a chunk is one range scan whatever the statistics say (they have not seen
     * this test's 12,000 rows): no join to run once per row */
    char plan[4096], what[256];
    snprintf(what, sizeof(what),
             "EXECUTE kc_inbox_purge_chunk('%s', 'ffffffff-ffff-7fff-bfff-ffffffffffff', '14', "
             "'5000')",
             group);
    itest_plan(pg, what, plan, sizeof(plan));
    assert_non_null(strstr(plan, "Delete on inbox"));
    assert_null(strstr(plan, "Nested Loop"));
    assert_null(strstr(plan, "Join"));
    seen.n = 0;
    assert_int_equal(kc_apply_batch(pg, &o, msgs, 1, out, err, sizeof(err)), 0);
    assert_int_equal(out[0], KC_DUPLICATE);
    assert_int_equal(seen.n, 0);
    free(e.buf);
}

static int setup(void **state)
{
    (void)state;
    snprintf(group, sizeof(group), "itest-ignored-%08x", (unsigned)util_mono_ms() ^ getpid());
    snprintf(service, sizeof(service), "%s", group);
    if (!(pg = itest_pg_connect()))
        return -1;
    rkt = itest_offline_topic(&rk, "kesu.itest.ignored");
    return rkt ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM inbox WHERE consumer = '%s'", group);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM inbox_purged WHERE consumer = '%s'", group);
    itest_sql(pg, sql);
    snprintf(sql, sizeof(sql), "DELETE FROM outbox WHERE producer = '%s'", service);
    itest_sql(pg, sql);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_unwanted_needs_no_database),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_undecodable_goes_to_dlq),
        cmocka_unit_test(test_batch_step_reruns),
        cmocka_unit_test(test_batch_claimed),
        cmocka_unit_test(test_gathered_history_refused),
        cmocka_unit_test(test_kept_changes),
        cmocka_unit_test(test_inbox_purge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
