/*
 * Integration test (real PostgreSQL): the classifier's handler on
 * CaseReceived events for cases in one district, with the shipped model
 * and rules.
 *
 * - the first report of a flooded underpass has no master; the next,
 *   nearly identical reports are linked to it (case_duplicates, and
 *   CaseClassified.duplicate_of in the outbox row);
 * - the K-th similar case in the district within T raises one hotspot row
 *   and one HotspotDetected event in the master case's history; the
 *   (K+1)-th raises none (once per window);
 * - the same text in another district is no duplicate; a different text in
 *   the same district is none either; a redelivered case stays classified;
 * - a batch's cases are locked and read at its claim (classify_batch), each
 *   handler takes its case's row, a second event of a case reads its own;
 *   its status changes are kept for one statement (decision 0038) and the
 *   fingerprint is written with the search;
 * - the search looks a candidate's master up per row, never reading all of
 *   case_duplicates (its plan);
 * - a fast batch searches all its cases at the claim in one statement and
 *   writes their fingerprints and links at its end (decision 0046), and
 *   judges every case as the cases one by one are judged: the same masters,
 *   distances and hotspot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casestore.h"
#include "classify_event.h"
#include "itest.h"
#include "kafka.h"
#include "metrics.h"
#include "proto.h"

static pg_t *pg;
static classify_ctx_t ctx;
static char district[32], other_district[32];

static int setup(void **state)
{
    char err[1024], uuid[37];
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    classify_paths_t p = {CLASSIFY_DEFAULT_MODEL, KESU_SOURCE_DIR "/" CLASSIFY_DEFAULT_RULES,
                          KESU_SOURCE_DIR "/" CLASSIFY_DEFAULT_ALERTS,
                          KESU_SOURCE_DIR "/" CLASSIFY_DEFAULT_DOMAINS};
    classify_t *c = classify_load(&p, 0.5, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    dedup_opts_t dd = {12, 18, 7 * 24 * 3600 * 1000LL, 4, 3600 * 1000LL};
    classify_ctx_init(&ctx, c, &dd);
    util_uuid(uuid);
    snprintf(district, sizeof(district), "it-%.8s", uuid + 28);
    snprintf(other_district, sizeof(other_district), "io-%.8s", uuid + 28);
    return 0;
}

static int teardown(void **state)
{
    classify_ctx_free(&ctx);
    pg_destroy(pg);
    metrics_reset_for_tests();
    return 0;
}

/* a CaseReceived envelope as the consumer loop hands it over; kept in place
 * while the message is used (the envelope points into it) */
typedef struct received {
    Kesu__V1__CaseReceived cr;
    Kesu__V1__Location loc;
    proto_env_t pe;
    kc_msg_t m;
} received_t;

static void received_msg(received_t *r, const char *case_id, const char *case_no,
                         const char *title, const char *body, const char *dist)
{
    r->cr = (Kesu__V1__CaseReceived)KESU__V1__CASE_RECEIVED__INIT;
    r->loc = (Kesu__V1__Location)KESU__V1__LOCATION__INIT;
    r->loc.district_code = (char *)dist;
    r->cr.channel = "web";
    r->cr.title = (char *)title;
    r->cr.body = (char *)body;
    r->cr.location = &r->loc;
    proto_env_init(&r->pe, "intake");
    proto_env_set_case(&r->pe, case_id, case_no, "itest-trace");
    proto_env_set_payload(&r->pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED,
                          (const ProtobufCMessage *)&r->cr);
    r->m = (kc_msg_t){NULL, &r->pe.env, KAFKA_TOPIC_INTAKE};
}

/* a case row in status received, and its CaseReceived envelope handled in the
 * open transaction */
static kc_result_t handle_new(const char *title, const char *body, const char *dist,
                              char *case_id, char *err, size_t err_size)
{
    char case_no[40];
    received_t r;
    util_uuid(case_id);
    snprintf(case_no, sizeof(case_no), "IT-%.12s", case_id + 24);
    assert_int_equal(itest_insert_case(pg, case_id, case_no, title, body), 0);
    received_msg(&r, case_id, case_no, title, body, dist);
    return classify_handle(&ctx, pg, &r.m, err, err_size);
}

/* the same in a transaction of its own */
static kc_result_t receive(const char *title, const char *body, const char *dist, char *case_id)
{
    char err[1024];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    kc_result_t rc = handle_new(title, body, dist, case_id, err, sizeof(err));
    if (rc == KC_OK) {
        assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    } else {
        fprintf(stderr, "handler: %d %s\n", rc, err);
        pg_rollback(pg);
    }
    return rc;
}

/* the same into the open batch (no BEGIN/COMMIT) */
static void receive_in(const char *title, const char *body, const char *dist, char *case_id)
{
    char err[1024];
    assert_int_equal(handle_new(title, body, dist, case_id, err, sizeof(err)), KC_OK);
}

static long long scalar1(const char *sql, const char *arg)
{
    const char *v[1] = {arg};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, v, NULL, NULL, 0);
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atoll(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "%s: %s\n", sql, PQresultErrorMessage(res));
    PQclear(res);
    return n;
}

/* duplicate_of of the CaseClassified the outbox holds for the case */
static void classified_duplicate_of(const char *case_id, char *out, size_t n)
{
    const char *v[1] = {case_id};
    char err[256];
    PGresult *res = PQexecParams(
        pg->conn,
        "SELECT payload FROM outbox WHERE msg_key = $1 AND producer = 'classifier' AND "
        "headers->>'event_type' = 'CaseClassified' "
        "ORDER BY id DESC LIMIT 1",
        1, NULL, v, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    Kesu__V1__Envelope *env =
        proto_env_unpack(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err, sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->payload_case, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED);
    snprintf(out, n, "%s",
             env->case_classified->duplicate_of ? env->case_classified->duplicate_of : "");
    kesu__v1__envelope__free_unpacked(env, NULL);
    PQclear(res);
}

static void test_duplicates_and_hotspot(void **state)
{
    static const char *const bodies[] = {
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水！",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人来排水",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆都无法通行，请尽快派人排水",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水。",
    };
    char ids[5][37], dup[40], other[37], far[37];
    for (int i = 0; i < 5; i++)
        assert_int_equal(receive("人民路隧道积水", bodies[i], district, ids[i]), KC_OK);

    /* the first has no master, every later one links to it */
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE case_id = $1", ids[0]), 0);
    classified_duplicate_of(ids[0], dup, sizeof(dup));
    assert_string_equal(dup, "");
    for (int i = 1; i < 5; i++) {
        classified_duplicate_of(ids[i], dup, sizeof(dup));
        assert_string_equal(dup, ids[0]);
    }
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE master_id = $1", ids[0]),
                     4);
    /* K = 4: the fourth raised the hotspot, the fifth did not raise another */
    assert_int_equal(scalar1("SELECT count(*) FROM hotspots WHERE district_code = $1", district),
                     1);
    assert_int_equal(scalar1("SELECT count(*) FROM case_events WHERE case_id = $1 AND "
                             "event_type = 'HotspotDetected'",
                             ids[0]),
                     1);
    assert_int_equal(scalar1("SELECT case_count FROM hotspots WHERE district_code = $1", district),
                     4);
    /* every case moved on to classified, with the flood flagged as an emergency */
    assert_int_equal(scalar1("SELECT count(*) FROM cases WHERE status = 'classified' AND urgency "
                             "= 'emergency' AND 'public_safety' = ANY (flags) AND id = $1",
                             ids[4]),
                     1);

    /* same text elsewhere: no duplicate; other text here: no duplicate */
    assert_int_equal(receive("人民路隧道积水", bodies[0], other_district, other), KC_OK);
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE case_id = $1", other), 0);
    assert_int_equal(receive("学校食堂饭菜质量差",
                             "孩子所在小学的食堂饭菜质量很差，经常有剩饭，希望教育局检查", district,
                             far),
                     KC_OK);
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE case_id = $1", far), 0);
    assert_int_equal(
        scalar1("SELECT count(*) FROM cases WHERE id = $1 AND domain = 'education_culture'", far),
        1);
}

/* a fast batch keeps its duplicate links for one statement at its end
 * (decision 0044); a later case of the batch whose nearest is one of them
 * still links to that one's master, as case_duplicates would have said */
static void test_links_at_batch_end(void **state)
{
    (void)state;
    char err[1024], dist[32], m[37], x[37], y[37], dup[40];
    static const char *const title = "桥下涵洞堵塞";
    static const char *const base = "建设路铁路桥下的涵洞被垃圾堵塞，下雨天积水很深，行人无法通过";
    static const char *const near =
        "建设路铁路桥下的涵洞被垃圾堵塞，下雨天积水很深，行人无法通过，请处理";
    snprintf(dist, sizeof(dist), "il-%.8s", district + 3);
    assert_int_equal(receive(title, base, dist, m), KC_OK); /* the master, committed */

    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    casestore_defer_begin(pg); /* as the consumer loop's fast attempt */
    receive_in(title, near, dist, x); /* a duplicate of m */
    receive_in(title, near, dist, y); /* nearest: x (the same text) */
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE master_id = $1", m), 0);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);

    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE master_id = $1", m), 2);
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE case_id = $1 AND "
                             "distance = 0",
                             y),
                     1);
    classified_duplicate_of(x, dup, sizeof(dup));
    assert_string_equal(dup, m);
    classified_duplicate_of(y, dup, sizeof(dup));
    assert_string_equal(dup, m);

    /* a careful re-run writes each link with its event */
    char z[37];
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(
        classify_batch(&ctx, pg, KC_BATCH_BEGIN_CAREFUL, NULL, 0, err, sizeof(err)), KC_OK);
    receive_in(title, near, dist, z);
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates WHERE case_id = $1", z), 1);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
}

/* the district's fingerprints can be read from the index alone (migration
 * 0024): which plan a table this small gets is the planner's choice, so the
 * other ways of reading it are turned off for the question */
static void fingerprints_from_index(const char *what)
{
    char plan[8192];
    PQclear(PQexec(pg->conn, "VACUUM case_fingerprints"));
    PQclear(PQexec(pg->conn, "SET enable_seqscan = off"));
    PQclear(PQexec(pg->conn, "SET enable_bitmapscan = off"));
    itest_plan(pg, what, plan, sizeof(plan));
    PQclear(PQexec(pg->conn, "RESET enable_seqscan"));
    PQclear(PQexec(pg->conn, "RESET enable_bitmapscan"));
    if (!strstr(plan, "Index Only Scan Backward using case_fingerprints_district_time"))
        fail_msg("the fingerprint scan needs more than the index holds:\n%s", plan);
}

/* a candidate's master is looked up by its key for the rows near enough: the search
 * must not join (and so read) all of case_duplicates, which grows with every duplicate */
static void test_candidates_plan(void **state)
{
    (void)state;
    char plan[8192], what[256], id[37];
    util_uuid(id);
    snprintf(what, sizeof(what), "EXECUTE dd_candidates('%s', '%s', 0, 86400000, 18, 'x')", id,
             district);
    itest_plan(pg, what, plan, sizeof(plan));
    const char *sub = strstr(plan, "SubPlan"), *dup = strstr(plan, "case_duplicates");
    if (!sub || !dup || dup < sub)
        fail_msg("case_duplicates outside a per-row lookup:\n%s", plan);

    fingerprints_from_index(what);
}

/* the cases of a batch locked and read at its claim (classify_batch): both
 * rows are locked before any handler runs, each handler takes its case's
 * row, and a second event of a case reads its own (now classified: skipped) */
static void test_batch_claimed_cases(void **state)
{
    (void)state;
    char err[1024], ids[2][37], nos[2][40];
    received_t rm[2];
    kc_msg_t m[2];
    for (int i = 0; i < 2; i++) {
        util_uuid(ids[i]);
        snprintf(nos[i], sizeof(nos[i]), "IB-%.12s", ids[i] + 24);
        assert_int_equal(itest_insert_case(pg, ids[i], nos[i], "路灯不亮", "小区门口路灯坏了"), 0);
        received_msg(&rm[i], ids[i], nos[i], i ? "路灯不亮" : "噪音扰民",
                     i ? "小区门口路灯坏了三天" : "楼下工地夜间施工", other_district);
        m[i] = rm[i].m;
    }
    pg_t *other = itest_pg_connect();
    assert_non_null(other);

    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    casestore_defer_begin(pg); /* as the consumer loop's fast attempt */
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_CLAIMED, m, 2, err, sizeof(err)), KC_OK);
    assert_int_equal(ctx.cases.n, 2);
    for (int i = 0; i < 2; i++)
        assert_true(itest_case_locked(other, ids[i])); /* locked by the claim */
    for (int i = 0; i < 2; i++)
        assert_int_equal(classify_handle(&ctx, pg, &m[i], err, sizeof(err)), KC_OK);
    /* the changes are kept for the batch's one statement (decision 0038) ... */
    for (int i = 0; i < 2; i++)
        assert_int_equal(scalar1("SELECT count(*) FROM cases WHERE id = $1 AND status = "
                                 "'received' AND domain IS NULL",
                                 ids[i]),
                         1);
    /* ... written before a later event of the case is handled (the loop does this) */
    assert_int_equal(casestore_defer_sync(pg, ids[0], err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(classify_handle(&ctx, pg, &m[0], err, sizeof(err)), KC_SKIP);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_null(ctx.cases.res);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(scalar1("SELECT count(*) FROM cases WHERE id = $1 AND status = "
                                 "'classified'",
                                 ids[i]),
                         1);
        assert_int_equal(scalar1("SELECT count(*) FROM case_events WHERE case_id = $1 AND "
                                 "event_type = 'CaseClassified' AND seq = 1 AND version = 2",
                                 ids[i]),
                         1);
        /* the fingerprint written at the batch's end, its domain the classification's */
        const char *fp[2] = {ids[i], other_district};
        assert_int_equal(itest_scalarv(pg,
                                       "SELECT count(*) FROM case_fingerprints f JOIN cases c ON "
                                       "c.id = f.case_id WHERE f.case_id = $1 AND "
                                       "f.domain = c.domain AND f.district_code = $2",
                                       2, fp),
                         1);
        /* every column of ce_bump_many where it belongs: as the event says */
        PGresult *r = itest_q(pg,
                              "SELECT c.domain = e.summary->>'domain' AND c.request_type = "
                              "e.summary->>'request_type' AND c.category = e.summary->>'category' "
                              "AND c.urgency = e.summary->>'urgency' AND c.flags::text = "
                              "translate(COALESCE(e.summary->'flags', '[]')::text, '[]\" ', '{}') "
                              "AND abs(c.confidence - (e.summary->>'confidence')::float8) < 1e-4 "
                              "AND c.needs_review = COALESCE((e.summary->>'needs_review')::bool, "
                              "false) AND c.classified_at IS NOT NULL AND c.version = 2 "
                              "AND c.event_seq = 1 FROM cases c JOIN case_events e ON "
                              "e.case_id = c.id WHERE c.id = $1",
                              ids[i]);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
    }
    pg_destroy(other);
}

/* where a master is in a run: its place, -2 the run's seed case, -1 none */
static int place_of(const char *id, const char *seed, char (*ids)[37], int n)
{
    if (!id[0])
        return -1;
    if (strcmp(id, seed) == 0)
        return -2;
    for (int i = 0; i < n; i++)
        if (strcmp(id, ids[i]) == 0)
            return i;
    return -3;
}

/* what the run decided, by place: the master and distance of each case's link,
 * the hotspots' counts and masters */
typedef struct run_outcome {
    int master[12], distance[12];
    int hotspots;
    char hotspot[256];
} run_outcome_t;

static void run_outcome(const char *dist, const char *seed, char (*ids)[37], int n,
                        run_outcome_t *o)
{
    char dup[40];
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < n; i++) {
        classified_duplicate_of(ids[i], dup, sizeof(dup));
        o->master[i] = place_of(dup, seed, ids, n);
        o->distance[i] = (int)scalar1(
            "SELECT COALESCE(max(distance), -1) FROM case_duplicates WHERE case_id = $1", ids[i]);
        /* the link's row and the event agree */
        const char *lv[2] = {ids[i], dup};
        assert_int_equal(itest_scalarv(pg,
                                       "SELECT count(*) FROM case_duplicates WHERE case_id = $1 "
                                       "AND master_id::text = $2",
                                       2, lv),
                         dup[0] ? 1 : 0);
    }
    /* the hotspots (one per domain), each as domain:count:master's place */
    PGresult *r = itest_q(pg,
                          "SELECT domain, case_count, master_id FROM hotspots "
                          "WHERE district_code = $1 ORDER BY domain",
                          dist);
    o->hotspots = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++)
        snprintf(o->hotspot + strlen(o->hotspot), sizeof(o->hotspot) - strlen(o->hotspot),
                 "%s:%s:%d ", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                 place_of(PQgetvalue(r, i, 2), seed, ids, n));
    PQclear(r);
}

static void test_batch_search_as_one_by_one(void **state)
{
    (void)state;
    static const char *const title = "人民路隧道积水";
    static const char *const texts[] = {
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水！",
        "孩子所在小学的食堂饭菜质量很差，经常有剩饭，希望教育局检查",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人来排水",
        "孩子所在小学的食堂饭菜质量很差，经常有剩饭，希望教育局检查一下",
        "小区门口的路灯坏了三天了，晚上很黑，老人出门不安全",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆都无法通行，请尽快派人排水",
        "孩子所在小学的食堂饭菜质量很差，经常有剩饭，希望教育局尽快检查",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水。",
        "楼下工地夜间施工噪音很大，凌晨两点还在打桩，无法休息",
        "人民路下穿隧道暴雨后积水严重，水深过膝，车辆无法通行，请尽快派人排水",
    };
    enum { N = sizeof(texts) / sizeof(texts[0]) };
    static const char *const seed_text =
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水";
    char err[1024], one[32], many[32], seed1[37], seed2[37], ids1[N][37], ids2[N][37];
    char nos[N][40];
    snprintf(one, sizeof(one), "i1-%.8s", district + 3);
    snprintf(many, sizeof(many), "i2-%.8s", district + 3);

    /* one by one: each case in a transaction of its own, after a committed seed */
    assert_int_equal(receive(title, seed_text, one, seed1), KC_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(receive(title, texts[i], one, ids1[i]), KC_OK);

    /* the same cases as one fast batch */
    assert_int_equal(receive(title, seed_text, many, seed2), KC_OK);
    received_t rm[N];
    kc_msg_t m[N];
    for (int i = 0; i < N; i++) {
        util_uuid(ids2[i]);
        snprintf(nos[i], sizeof(nos[i]), "IS-%.12s", ids2[i] + 24);
        assert_int_equal(itest_insert_case(pg, ids2[i], nos[i], title, texts[i]), 0);
        received_msg(&rm[i], ids2[i], nos[i], title, texts[i], many);
        m[i] = rm[i].m;
    }
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    casestore_defer_begin(pg); /* as the consumer loop's fast attempt */
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_CLAIMED, m, N, err, sizeof(err)), KC_OK);
    assert_int_equal((int)ctx.dd.nj, N); /* every case searched at the claim */
    for (int i = 0; i < N; i++)
        assert_int_equal(classify_handle(&ctx, pg, &m[i], err, sizeof(err)), KC_OK);
    /* fingerprints and links kept for the batch's end */
    assert_int_equal(scalar1("SELECT count(*) FROM case_fingerprints WHERE district_code = $1",
                             many),
                     1);
    assert_int_equal(scalar1("SELECT count(*) FROM case_duplicates d JOIN case_fingerprints f "
                             "ON f.case_id = d.master_id WHERE f.district_code = $1",
                             many),
                     0);
    assert_int_equal(casestore_defer_flush(pg, err, sizeof(err)), CASESTORE_OK);
    assert_int_equal(classify_batch(&ctx, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    assert_int_equal(scalar1("SELECT count(*) FROM case_fingerprints f JOIN cases c ON "
                             "c.id = f.case_id WHERE f.district_code = $1 AND f.domain = c.domain",
                             many),
                     N + 1);

    run_outcome_t a, b;
    run_outcome(one, seed1, ids1, N, &a);
    run_outcome(many, seed2, ids2, N, &b);
    for (int i = 0; i < N; i++) {
        if (a.master[i] != b.master[i] || a.distance[i] != b.distance[i])
            fail_msg("case %d: one by one master %d distance %d, in a batch master %d "
                     "distance %d",
                     i, a.master[i], a.distance[i], b.master[i], b.distance[i]);
    }
    /* the floods link to the seed, the later canteen reports to the first one, the
     * others to nothing */
    static const int want[N] = {-2, -1, -2, 1, -1, -2, 1, -2, -1, -1};
    for (int i = 0; i < N; i++)
        if (a.master[i] != want[i])
            fail_msg("case %d: master %d, want %d", i, a.master[i], want[i]);
    /* a hotspot each: the floods' (the seed its master) and the canteen's */
    assert_int_equal(a.hotspots, 2);
    assert_string_equal(a.hotspot, b.hotspot);
    assert_non_null(strstr(a.hotspot, ":-2 "));

    /* the batch's search (prepared by the claim above): a district's newest
     * fingerprints per case from the index alone, a candidate's master by its key */
    char plan[8192], what[256];
    snprintf(what, sizeof(what),
             "EXECUTE dd_candidates_many('{%s,%s}', '{%s,%s}', '{0,1}', 86400000, 18)", ids2[0],
             ids2[1], many, one);
    /* the candidates' status by their key, in the generic plan made on this small
     * database too: a join hashed all of cases (read in full for every batch as
     * the table grew) */
    PQclear(PQexec(pg->conn, "SET plan_cache_mode = force_generic_plan"));
    itest_plan(pg, what, plan, sizeof(plan));
    PQclear(PQexec(pg->conn, "RESET plan_cache_mode"));
    const char *sub = strstr(plan, "SubPlan"), *cs = strstr(plan, " on cases c");
    if (!sub || !cs || cs < sub || strstr(plan, "Seq Scan on cases"))
        fail_msg("the batch's search reads cases other than by key per row:\n%s", plan);
    const char *dup = strstr(plan, "case_duplicates");
    if (!dup || dup < sub)
        fail_msg("case_duplicates outside a per-row lookup:\n%s", plan);
    fingerprints_from_index(what);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicates_and_hotspot),
        cmocka_unit_test(test_candidates_plan),
        cmocka_unit_test(test_batch_claimed_cases),
        cmocka_unit_test(test_links_at_batch_end),
        cmocka_unit_test(test_batch_search_as_one_by_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
