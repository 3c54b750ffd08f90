/*
 * Integration: casestore_append_many against the real PostgreSQL.
 *
 * Two cases; one event appended alone, then five in one call, interleaved
 * between the cases, one of them without a topic. Checked: each case's seqs
 * go on without a gap or repeat, in array order; every event has its
 * case_events row (type, seq, version, status, summary with quotes,
 * backslashes and Chinese intact); the outbox rows follow array order and
 * decode to the envelopes the caller holds (case number, seq); the row of the
 * event without a topic is not in the outbox. A batch naming a case that does
 * not exist returns CASESTORE_NOT_FOUND naming it, and after rolling back to
 * the savepoint nothing of that batch is left.
 *
 * Gathered appends (casestore_defer_*, the consumer loop's fast path): while
 * gathering, casestore_apply/append bump the case (version, seq) but write no
 * history or outbox row; the flush writes them all, seqs and outbox order as
 * appended; casestore_append_many flushes the gathered ones first (their
 * outbox rows stay ahead); a discard writes nothing.
 *
 * Kept changes (decision 0038): changes of cases made known
 * (casestore_defer_know) are decided from what is known (status before and
 * after, version, seq, case number) and leave the rows as they are until a
 * sync of that case, a later call for it, or the flush writes them in one
 * statement; a change the known state refuses (status, version) is not kept
 * and explains itself; after an append the case stays known; the history
 * rows carry the seqs, versions and statuses decided.
 *
 * First events (casestore_append_first, intake's new cases): history and
 * outbox rows at seq 1, version 1, the case rows not touched (same ctid).
 *
 * Everything runs in one transaction that is rolled back at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "casestore.h"
#include "itest.h"
#include "log.h"

#define TOPIC "kesu.itest.many"

static pg_t *pg;
static char case_a[37], case_b[37];

static long long q(const char *sql, const char *p1)
{
    return itest_scalar1(pg, sql, p1);
}

static void failed_event(proto_env_t *pe, Kesu__V1__NotificationFailed *nf, const char *error)
{
    Kesu__V1__NotificationFailed init = KESU__V1__NOTIFICATION_FAILED__INIT;
    *nf = init;
    nf->channel = "sms";
    nf->audience = "complainant";
    nf->template_ = "ack";
    nf->error = (char *)error;
    nf->attempts = 3;
    proto_env_init(pe, "itest");
    proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED, &nf->base);
}

static void test_many_in_order(void **state)
{
    (void)state;
    char err[512];
    proto_env_t one, pe[5];
    Kesu__V1__NotificationFailed nf1, nf[5];
    casestore_result_t r1;
    static const char *const errors[5] = {
        "gateway said \"no\" \\ twice", "a, b {c}", "短信网关超时", "NULL", "plain"};

    failed_event(&one, &nf1, "first");
    assert_int_equal(casestore_append(pg, case_a, "itest", "itest", TOPIC, &one, &r1, err,
                                      sizeof(err)),
                     CASESTORE_OK);
    int64_t a0 = r1.seq;
    int64_t b0 = q("SELECT event_seq FROM cases WHERE id = $1", case_b);
    long long outbox_before = q("SELECT count(*) FROM outbox WHERE topic = $1", TOPIC);

    /* A, B, A (no topic), B, A */
    const char *ids[5] = {case_a, case_b, case_a, case_b, case_a};
    casestore_event_t ev[5];
    for (int i = 0; i < 5; i++) {
        failed_event(&pe[i], &nf[i], errors[i]);
        ev[i] = (casestore_event_t){.case_id = ids[i], .producer = "itest", .actor = "itest",
                                    .topic = i == 2 ? NULL : TOPIC, .pe = &pe[i]};
    }
    assert_int_equal(casestore_append_many(pg, ev, 5, err, sizeof(err)), CASESTORE_OK);
    int64_t want[5] = {a0 + 1, b0 + 1, a0 + 2, b0 + 2, a0 + 3};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ev[i].out.seq, want[i]);
        assert_int_equal(pe[i].env.case_seq, want[i]);
        assert_string_equal(ev[i].out.status_after, "received");
        assert_string_equal(pe[i].env.case_id, ids[i]);
        assert_true(strncmp(pe[i].env.case_no, "ITM-", 4) == 0);
    }
    assert_int_equal(q("SELECT event_seq FROM cases WHERE id = $1", case_a), a0 + 3);
    assert_int_equal(q("SELECT event_seq FROM cases WHERE id = $1", case_b), b0 + 2);

    /* the history rows, with the summary text intact */
    for (int i = 0; i < 5; i++) {
        char seq[24];
        snprintf(seq, sizeof(seq), "%lld", (long long)want[i]);
        const char *v[2] = {ids[i], seq};
        PGresult *res = PQexecParams(pg->conn,
                                     "SELECT event_type, event_id::text, status, "
                                     "summary->>'error' FROM case_events "
                                     "WHERE case_id = $1 AND seq = $2::bigint",
                                     2, NULL, v, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(res), 1);
        assert_string_equal(PQgetvalue(res, 0, 0), "NotificationFailed");
        assert_string_equal(PQgetvalue(res, 0, 1), pe[i].event_id);
        assert_string_equal(PQgetvalue(res, 0, 2), "received");
        assert_string_equal(PQgetvalue(res, 0, 3), errors[i]);
        PQclear(res);
    }

    /* the outbox rows: array order, the event without a topic left out */
    const char *v[1] = {TOPIC};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT msg_key, payload FROM outbox WHERE topic = $1 "
                                 "ORDER BY id",
                                 1, NULL, v, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), outbox_before + 4);
    int order[4] = {0, 1, 3, 4};
    for (int k = 0; k < 4; k++) {
        int row = (int)outbox_before + k, i = order[k];
        assert_string_equal(PQgetvalue(res, row, 0), ids[i]);
        Kesu__V1__Envelope *env = proto_env_unpack(
            PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1), err, sizeof(err));
        assert_non_null(env);
        assert_string_equal(env->event_id, pe[i].event_id);
        assert_int_equal(env->case_seq, want[i]);
        assert_string_equal(env->case_no, pe[i].env.case_no);
        assert_string_equal(env->notification_failed->error, errors[i]);
        kesu__v1__envelope__free_unpacked(env, NULL);
    }
    PQclear(res);
}

static void test_missing_case(void **state)
{
    (void)state;
    char err[512], ghost[37];
    proto_env_t pe[2];
    Kesu__V1__NotificationFailed nf[2];
    util_uuid(ghost);
    long long a0 = q("SELECT event_seq FROM cases WHERE id = $1", case_a);
    long long rows0 = q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a);
    assert_int_equal(itest_sql(pg, "SAVEPOINT many"), 0);
    casestore_event_t ev[2] = {
        {.case_id = case_a, .producer = "itest", .actor = "itest", .topic = TOPIC, .pe = &pe[0]},
        {.case_id = ghost, .producer = "itest", .actor = "itest", .topic = TOPIC, .pe = &pe[1]},
    };
    failed_event(&pe[0], &nf[0], "x");
    failed_event(&pe[1], &nf[1], "y");
    assert_int_equal(casestore_append_many(pg, ev, 2, err, sizeof(err)), CASESTORE_NOT_FOUND);
    assert_non_null(strstr(err, ghost));
    assert_int_equal(itest_sql(pg, "ROLLBACK TO SAVEPOINT many"), 0);
    assert_int_equal(q("SELECT event_seq FROM cases WHERE id = $1", case_a), a0);
    assert_int_equal(q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a), rows0);
    /* and an empty batch is nothing to do */
    assert_int_equal(casestore_append_many(pg, ev, 0, err, sizeof(err)), CASESTORE_OK);
}

static void test_deferred(void **state)
{
    (void)state;
    char err[512];
    proto_env_t pe[4];
    Kesu__V1__NotificationFailed nf[4];
    casestore_result_t r[3];
    long long a0 = q("SELECT event_seq FROM cases WHERE id = $1", case_a);
    long long v0 = q("SELECT version FROM cases WHERE id = $1", case_a);
    long long rows0 = q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a);
    long long out0 = q("SELECT count(*) FROM outbox WHERE topic = $1", TOPIC);

    int wrote0 = pg->outbox_rows;
    casestore_defer_begin(pg);
    failed_event(&pe[0], &nf[0], "d0");
    failed_event(&pe[1], &nf[1], "d1");
    assert_int_equal(casestore_append(pg, case_a, "itest", "itest", TOPIC, &pe[0], &r[0], err,
                                      sizeof(err)),
                     CASESTORE_OK);
    casestore_change_t ch = {.case_id = case_a, .bump_version = 1, .producer = "itest",
                             .actor = "itest", .topic = TOPIC};
    assert_int_equal(casestore_apply(pg, &ch, &pe[1], &r[1], err, sizeof(err)), CASESTORE_OK);
    /* the case row moved on at once; its rows wait for the flush */
    assert_int_equal(r[0].seq, a0 + 1);
    assert_int_equal(r[1].seq, a0 + 2);
    assert_int_equal(r[1].version, v0 + 1);
    assert_int_equal(q("SELECT event_seq FROM cases WHERE id = $1", case_a), a0 + 2);
    assert_int_equal(q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a), rows0);
    assert_int_equal(q("SELECT count(*) FROM outbox WHERE topic = $1", TOPIC), out0);
    assert_int_equal(pg->outbox_rows, wrote0); /* counted when written */

    /* append_many writes the gathered ones first, then its own */
    failed_event(&pe[2], &nf[2], "many");
    casestore_event_t ev = {.case_id = case_b, .producer = "itest", .actor = "itest",
                            .topic = TOPIC, .pe = &pe[2]};
    assert_int_equal(casestore_append_many(pg, &ev, 1, err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a), rows0 + 2);
    const char *v[1] = {TOPIC};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", 1, NULL,
                                 v, NULL, NULL, 1);
    assert_int_equal(PQntuples(res), out0 + 3);
    assert_int_equal(pg->outbox_rows, wrote0 + 3); /* the relay is to be woken for them */
    for (int k = 0; k < 3; k++) {
        Kesu__V1__Envelope *env = proto_env_unpack(PQgetvalue(res, (int)out0 + k, 0),
                                                   (size_t)PQgetlength(res, (int)out0 + k, 0),
                                                   err, sizeof(err));
        assert_non_null(env);
        assert_string_equal(env->event_id, pe[k].event_id);
        kesu__v1__envelope__free_unpacked(env, NULL);
    }
    PQclear(res);
    /* gathering stopped with that flush */
    failed_event(&pe[3], &nf[3], "after");
    assert_int_equal(casestore_append(pg, case_a, "itest", "itest", TOPIC, &pe[3], &r[2], err,
                                      sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(q("SELECT count(*) FROM case_events WHERE case_id = $1", case_a), rows0 + 3);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK); /* nothing */

    /* a discard writes nothing */
    casestore_defer_begin(pg);
    failed_event(&pe[0], &nf[0], "dropped");
    assert_int_equal(casestore_append(pg, case_b, "itest", "itest", TOPIC, &pe[0], &r[0], err,
                                      sizeof(err)),
                     CASESTORE_OK);
    casestore_defer_discard(pg);
    const char *ev_id[1] = {pe[0].event_id};
    assert_int_equal(itest_scalar1(pg, "SELECT count(*) FROM case_events WHERE event_id = $1",
                                   ev_id[0]),
                     0);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK);
}

static int insert_case(const char *id);

static const pg_stmt_t kept_bump = {"itest_kept_bump", CASESTORE_BUMP_SQL(", domain = $6"), 6};
static const pg_stmt_t kept_bump_many = {
    "itest_kept_bump_many", CASESTORE_BUMP_MANY_SQL(", $5::text[]", ", v5", ", domain = u.v5"), 5};

static int kept_apply(const char *id, const char *from, const char *to, int64_t expect,
                      proto_env_t *pe, Kesu__V1__NotificationFailed *nf, casestore_result_t *r,
                      char *err, size_t n)
{
    const char *const fl[2] = {from, NULL};
    const char *bv[1] = {to};
    casestore_change_t ch = {.case_id = id, .from = fl, .to = to, .expect_version = expect,
                             .producer = "itest", .actor = "itest", .topic = TOPIC,
                             .bump = &kept_bump, .bump_values = bv, .bump_many = &kept_bump_many};
    failed_event(pe, nf, to);
    return casestore_apply(pg, &ch, pe, r, err, n);
}

static long long kept_at(const char *id, const char *status)
{
    const char *v[2] = {id, status};
    return itest_scalarv(pg,
                         "SELECT count(*) FROM cases WHERE id = $1 AND status = $2 AND "
                         "domain IS NOT DISTINCT FROM NULLIF($2, 'received')",
                         2, v);
}

/* changes of known cases kept for one statement (decision 0038) */
static void test_kept(void **state)
{
    (void)state;
    char err[512], c[2][37];
    proto_env_t pe[6];
    Kesu__V1__NotificationFailed nf[6];
    casestore_result_t r[6];
    for (int i = 0; i < 2; i++) {
        util_uuid(c[i]);
        assert_int_equal(insert_case(c[i]), 0);
    }
    casestore_defer_begin(pg);
    const char *both[2] = {c[0], c[1]};
    PGresult *rows = itest_qv(pg,
                              "SELECT id::text AS id, status, version, event_seq, case_no, "
                              "trace_id FROM cases WHERE id IN ($1, $2) ORDER BY id "
                              "FOR NO KEY UPDATE",
                              2, both);
    assert_int_equal(PQntuples(rows), 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(casestore_defer_know(pg, rows, i), 0);
    PQclear(rows);
    PGresult *partial = itest_q(pg, "SELECT id::text AS id, status FROM cases WHERE id = $1", c[0]);
    assert_int_equal(casestore_defer_know(pg, partial, 0), -1); /* columns missing */
    PQclear(partial);

    /* both kept: decided here, the rows not changed yet */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kept_apply(c[i], "received", "classified", 0, &pe[i], &nf[i], &r[i], err,
                                    sizeof(err)),
                         CASESTORE_OK);
        assert_string_equal(r[i].status_before, "received");
        assert_string_equal(r[i].status_after, "classified");
        assert_int_equal(r[i].version, 2);
        assert_int_equal(r[i].seq, 1);
        assert_int_equal(pe[i].env.case_seq, 1);
        assert_int_equal(pe[i].env.case_version, 2);
        char no[48];
        snprintf(no, sizeof(no), "ITM-%.8s", c[i] + 28);
        assert_string_equal(pe[i].env.case_no, no); /* from what is known */
        assert_int_equal(kept_at(c[i], "received"), 1);
    }
    /* refused against what is known: not kept, explained as without a batch */
    assert_int_equal(kept_apply(c[0], "received", "classified", 0, &pe[2], &nf[2], &r[2], err,
                                sizeof(err)),
                     CASESTORE_CONFLICT);
    assert_non_null(strstr(err, "is classified"));
    /* a stale version: not kept either */
    assert_int_equal(kept_apply(c[1], "classified", "assigned", 1, &pe[2], &nf[2], &r[2], err,
                                sizeof(err)),
                     CASESTORE_STALE);
    /* that refusal wrote the kept changes first: the rows hold them */
    for (int i = 0; i < 2; i++)
        assert_int_equal(kept_at(c[i], "classified"), 1);

    /* kept again, then an append to the case: written first, the seq follows on */
    assert_int_equal(kept_apply(c[0], "classified", "assigned", 2, &pe[3], &nf[3], &r[3], err,
                                sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(r[3].seq, 2);
    assert_int_equal(kept_at(c[0], "classified"), 1);
    assert_int_equal(casestore_defer_sync(pg, c[1], err, sizeof(err)), CASESTORE_OK); /* not c[0] */
    assert_int_equal(kept_at(c[0], "classified"), 1);
    failed_event(&pe[4], &nf[4], "append");
    assert_int_equal(casestore_append(pg, c[0], "itest", "itest", TOPIC, &pe[4], &r[4], err,
                                      sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(r[4].seq, 3);
    assert_int_equal(kept_at(c[0], "assigned"), 1);
    /* known after the append too: the next change is kept with seq 4 */
    assert_int_equal(kept_apply(c[0], "assigned", "accepted", 0, &pe[5], &nf[5], &r[5], err,
                                sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(r[5].seq, 4);
    assert_int_equal(r[5].version, 4);
    assert_int_equal(kept_at(c[0], "assigned"), 1);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(kept_at(c[0], "accepted"), 1);
    assert_int_equal(q("SELECT event_seq FROM cases WHERE id = $1", c[0]), 4);
    assert_int_equal(q("SELECT version FROM cases WHERE id = $1", c[0]), 4);

    /* the history as decided: seq, version, status of every event */
    static const char *const hist = "SELECT string_agg(seq || ':' || version || ':' || status, "
                                    "' ' ORDER BY seq) FROM case_events WHERE case_id = $1";
    PGresult *h = itest_q(pg, hist, c[0]);
    assert_string_equal(PQgetvalue(h, 0, 0),
                        "1:2:classified 2:3:assigned 3:3:assigned 4:4:accepted");
    PQclear(h);
    h = itest_q(pg, hist, c[1]);
    assert_string_equal(PQgetvalue(h, 0, 0), "1:2:classified");
    PQclear(h);
}

static void ctid_of(const char *id, char *out, size_t n)
{
    PGresult *res = itest_q(pg, "SELECT ctid::text FROM cases WHERE id = $1", id);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* the first events of new cases (intake): written without touching the case
 * rows, which count them already; the next append goes on from there */
static void test_first(void **state)
{
    (void)state;
    char err[512], c[2][37], before[2][32], after[32];
    proto_env_t pe[2], next;
    Kesu__V1__NotificationFailed nf[2], nf2;
    casestore_event_t ev[2];
    casestore_result_t r;
    long long outbox_before = q("SELECT count(*) FROM outbox WHERE topic = $1", TOPIC);
    for (int i = 0; i < 2; i++) {
        util_uuid(c[i]);
        assert_int_equal(insert_case(c[i]), 0);
        assert_int_equal(q("UPDATE cases SET event_seq = 1 WHERE id = $1 RETURNING 1", c[i]), 1);
        ctid_of(c[i], before[i], sizeof(before[i]));
        failed_event(&pe[i], &nf[i], i ? "second" : "first");
        proto_env_set_case(&pe[i], c[i], i ? "ITF-2" : "ITF-1", "itest-trace");
        ev[i] = (casestore_event_t){.case_id = c[i], .producer = "itest", .actor = "itest",
                                    .topic = i ? NULL : TOPIC, .pe = &pe[i]};
    }
    assert_int_equal(casestore_append_first(pg, ev, 2, err, sizeof(err)), CASESTORE_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ev[i].out.seq, 1);
        assert_int_equal(ev[i].out.version, 1);
        assert_string_equal(ev[i].out.status_after, "received");
        assert_int_equal(pe[i].env.case_seq, 1);
        assert_int_equal(pe[i].env.case_version, 1);
        ctid_of(c[i], after, sizeof(after));
        assert_string_equal(after, before[i]); /* the case row is as it was */
        PGresult *h = itest_q(pg,
                              "SELECT seq || ':' || version || ':' || status || ':' || "
                              "event_type || ':' || event_id FROM case_events WHERE case_id = $1",
                              c[i]);
        assert_int_equal(PQntuples(h), 1);
        char want[128];
        snprintf(want, sizeof(want), "1:1:received:NotificationFailed:%s", pe[i].event_id);
        assert_string_equal(PQgetvalue(h, 0, 0), want);
        PQclear(h);
    }
    /* one outbox row, for the event with a topic, carrying its case */
    assert_int_equal(q("SELECT count(*) FROM outbox WHERE topic = $1", TOPIC), outbox_before + 1);
    assert_int_equal(q("SELECT count(*) FROM outbox WHERE msg_key = $1", c[0]), 1);
    assert_int_equal(q("SELECT count(*) FROM outbox WHERE msg_key = $1", c[1]), 0);
    failed_event(&next, &nf2, "later");
    assert_int_equal(casestore_append(pg, c[0], "itest", "itest", NULL, &next, &r, err,
                                      sizeof(err)),
                     CASESTORE_OK);
    assert_int_equal(r.seq, 2);
}

static int insert_case(const char *id)
{
    char no[48];
    snprintf(no, sizeof(no), "ITM-%.8s", id + 28);
    return itest_insert_case(pg, id, no, "路灯不亮", "路灯坏了三天");
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    util_uuid(case_a);
    util_uuid(case_b);
    if (pg_begin(pg, err, sizeof(err)) != 0)
        return -1;
    return insert_case(case_a) || insert_case(case_b) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_rollback(pg); /* nothing of this test stays */
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_in_order),
        cmocka_unit_test(test_missing_case),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_kept),
        cmocka_unit_test(test_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
