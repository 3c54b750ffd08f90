/*
 * Integration: the statistics against a small data set computed by hand.
 *
 * Five cases get their histories written with casestore (event times set
 * by hand) and fed through the archiver's handler in history order, which
 * maintains case_stats; a resolve timer per case decides "on time".
 * kesu_stats() and kesu_stats_csv() (migration 0009) are then checked
 * figure by figure. Local days are Asia/Shanghai (UTC+8).
 *
 *   case  dept  channel  received        resolved (h)     due             feedback  closed
 *   1     A     phone    03-02 09:00     03-02 15:00 (6)  03-03 09:00     5         03-03 10:00
 *   2     A     web      03-02 10:00     03-05 10:00 (72) 03-03 10:00     2,4       03-05 12:00
 *         (returned once; resolved 03-04 10:00, feedback 2 -> reopened, resolved again)
 *   3     A     phone    03-03 08:00     03-03 18:00 (10) 03-04 08:00     -         03-10 09:00
 *   4     B     phone    03-04 09:00     03-04 11:00 (2)  no timer        3         03-04 12:00
 *         (until the last test records one after the close: 03-04 12:00, on time)
 *   5     B     web      03-05 00:30 (= 03-04 16:30 UTC)  open
 *
 * 03-01..03-05 by department:
 *   A: received 3, closed 2 (case 3 closes on 03-10), on time 1 of 2 = 0.5,
 *      handling (6+72)/2 = 39.00, p90 6+0.9*66 = 65.40, evaluated 2,
 *      satisfied 2 (5 and the last feedback 4) = 1.0, follow-up 2/2 = 1.0,
 *      reopened 1/2 = 0.5, returns 1
 *   B: received 2, closed 1, on time 0 of no timed case = NULL, handling 2,
 *      evaluated 1, satisfied 0 = 0.0, follow-up 1.0, reopened 0, returns 0
 * 03-01..03-10, A: closed 3, on time 2/3, handling 29.33, p90 10+0.8*62 = 59.60,
 *      follow-up 2/3, reopen 1/3.
 *
 * Everything runs in one transaction that is rolled back at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "archive.h"
#include "casestore.h"
#include "itest.h"
#include "log.h"

static pg_t *pg;
static archive_t ar;
static char tag[9], dept_a[32], dept_b[32], district[32];
static uint8_t *returned_env; /* the CaseReturned envelope, for the replay test */
static size_t returned_len;

/* 2031-03-01 00:00 Asia/Shanghai */
#define T0   1930060800000LL
#define HOUR 3600000LL
#define DAY  (24 * HOUR)
#define AT(d, h, m) (T0 + ((d) - 1) * DAY + (h) * HOUR + (m) * 60000LL)

typedef struct scase {
    char id[37];
    char no[48];
} scase_t;

static void exec_v(const char *sql, int n, const char *const *v)
{
    PGresult *res = PQexecParams(pg->conn, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

/* a case row; its department column is what the archive record (and RLS) shows */
static void make(scase_t *c, int n, const char *dept)
{
    util_uuid(c->id);
    snprintf(c->no, sizeof(c->no), "ITS-%s-%d", tag, n);
    const char *v[3] = {c->id, c->no, dept};
    exec_v("INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, trace_id, "
           "department) VALUES ($1, $2, '\\x00'::bytea, 'web', 't', 'b', 'itest', $3)",
           3, v);
}

static void resolve_due(const scase_t *c, int64_t due_ms)
{
    char due[24];
    snprintf(due, sizeof(due), "%lld", (long long)due_ms);
    const char *v[2] = {c->id, due};
    exec_v("INSERT INTO sla_timers (case_id, kind, started_at, due_at) VALUES ($1, 'resolve', "
           "now(), to_timestamp($2::double precision / 1000))",
           2, v);
}

/* append an event at time at and feed it to the archiver at once (in order) */
static void ev(const scase_t *c, int64_t at, Kesu__V1__Envelope__PayloadCase pc,
               const ProtobufCMessage *msg)
{
    char err[512] = "";
    proto_env_t pe;
    casestore_result_t res;
    proto_env_init(&pe, "itest");
    proto_env_set_payload(&pe, pc, msg);
    pe.env.occurred_at_ms = at;
    if (casestore_append(pg, c->id, "itest", "itest", NULL, &pe, &res, err, sizeof(err)) !=
        CASESTORE_OK)
        fail_msg("append: %s", err);
    size_t len;
    uint8_t *buf = proto_env_pack(&pe.env, &len);
    rd_kafka_message_t rkm;
    memset(&rkm, 0, sizeof(rkm));
    rkm.payload = buf;
    rkm.len = len;
    kc_msg_t m = {&rkm, &pe.env, "kesu.itest"};
    kc_result_t r = archive_handle(&ar, pg, &m, err, sizeof(err));
    if (r != KC_OK)
        fail_msg("archive_handle %s: %d %s", pe.env.event_type, r, err);
    if (pc == KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED && !returned_env) {
        returned_env = buf;
        returned_len = len;
        return;
    }
    free(buf);
}

static void received(const scase_t *c, int64_t at, const char *channel)
{
    Kesu__V1__CaseReceived m = KESU__V1__CASE_RECEIVED__INIT;
    Kesu__V1__Location loc = KESU__V1__LOCATION__INIT;
    loc.district_code = district;
    m.channel = (char *)channel;
    m.location = &loc;
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &m.base);
}

static void classified(const scase_t *c, int64_t at, const char *category)
{
    Kesu__V1__CaseClassified m = KESU__V1__CASE_CLASSIFIED__INIT;
    m.category = (char *)category;
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED, &m.base);
}

static void assigned(const scase_t *c, int64_t at, const char *dept)
{
    Kesu__V1__CaseAssigned m = KESU__V1__CASE_ASSIGNED__INIT;
    m.department = (char *)dept;
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &m.base);
}

static void resolved(const scase_t *c, int64_t at, const char *dept)
{
    Kesu__V1__CaseResolved m = KESU__V1__CASE_RESOLVED__INIT;
    m.department = (char *)dept;
    m.measures = "explanation";
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &m.base);
}

static void feedback(const scase_t *c, int64_t at, int sat)
{
    Kesu__V1__FeedbackReceived m = KESU__V1__FEEDBACK_RECEIVED__INIT;
    m.satisfaction = sat;
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_FEEDBACK_RECEIVED, &m.base);
}

static void closed(const scase_t *c, int64_t at)
{
    Kesu__V1__CaseClosed m = KESU__V1__CASE_CLOSED__INIT;
    m.reason = "satisfied";
    ev(c, at, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, &m.base);
}

static scase_t set_cases[5];

/* the data set's five cases and their events, numbered from first */
static void build_cases(scase_t *c, int first)
{
    for (int i = 0; i < 5; i++)
        make(&c[i], first + i, i < 3 ? dept_a : dept_b);

    received(&c[0], AT(2, 9, 0), "phone");
    classified(&c[0], AT(2, 9, 1), "facilities");
    assigned(&c[0], AT(2, 9, 2), dept_a);
    resolve_due(&c[0], AT(3, 9, 0));
    resolved(&c[0], AT(2, 15, 0), dept_a);
    feedback(&c[0], AT(3, 9, 30), 5);
    closed(&c[0], AT(3, 10, 0));

    received(&c[1], AT(2, 10, 0), "web");
    classified(&c[1], AT(2, 10, 1), "facilities");
    assigned(&c[1], AT(2, 10, 2), dept_b);
    {
        Kesu__V1__CaseReturned m = KESU__V1__CASE_RETURNED__INIT;
        m.department = dept_b;
        m.reason = "not_ours";
        ev(&c[1], AT(2, 11, 0), KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED, &m.base);
    }
    assigned(&c[1], AT(2, 11, 5), dept_a);
    resolve_due(&c[1], AT(3, 10, 0));
    resolved(&c[1], AT(4, 10, 0), dept_a);
    feedback(&c[1], AT(4, 12, 0), 2);
    {
        Kesu__V1__CaseReopened m = KESU__V1__CASE_REOPENED__INIT;
        m.reason = "unsatisfied";
        m.reopen_count = 1;
        ev(&c[1], AT(4, 12, 1), KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, &m.base);
    }
    resolved(&c[1], AT(5, 10, 0), dept_a);
    feedback(&c[1], AT(5, 11, 0), 4);
    closed(&c[1], AT(5, 12, 0));

    received(&c[2], AT(3, 8, 0), "phone");
    classified(&c[2], AT(3, 8, 1), "efficiency");
    assigned(&c[2], AT(3, 8, 2), dept_a);
    resolve_due(&c[2], AT(4, 8, 0));
    resolved(&c[2], AT(3, 18, 0), dept_a);
    closed(&c[2], AT(10, 9, 0));

    received(&c[3], AT(4, 9, 0), "phone");
    classified(&c[3], AT(4, 9, 1), "facilities");
    assigned(&c[3], AT(4, 9, 2), dept_b);
    resolved(&c[3], AT(4, 11, 0), dept_b);
    feedback(&c[3], AT(4, 11, 30), 3);
    closed(&c[3], AT(4, 12, 0));

    received(&c[4], AT(5, 0, 30), "web");
    assigned(&c[4], AT(5, 0, 31), dept_b);
}

static void build_data_set(void)
{
    build_cases(set_cases, 1);
}

/* the kesu_stats row of one department over a range, grouped by groups */
static PGresult *stats(const char *from, const char *to, const char *groups)
{
    const char *v[3] = {from, to, groups};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT * FROM kesu_stats($1::date, $2::date, $3::text[]) "
                                 "WHERE department LIKE 'its-%' ORDER BY day, department",
                                 3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("kesu_stats: %s", PQresultErrorMessage(res));
    return res;
}

static void want(const PGresult *res, int row, const char *col, const char *value)
{
    const char *got = pg_isnull(res, row, col) ? "NULL" : pg_get(res, row, col);
    if (strcmp(got, value) != 0)
        fail_msg("row %d %s: got %s, want %s", row, col, got, value);
}

static void test_by_department(void **state)
{
    (void)state;
    PGresult *res = stats("2031-03-01", "2031-03-05", "{department}");
    assert_int_equal(PQntuples(res), 2);
    want(res, 0, "department", dept_a);
    want(res, 0, "day", "NULL"); /* not grouped by day */
    want(res, 0, "channel", "NULL");
    want(res, 0, "received", "3");
    want(res, 0, "closed", "2");
    want(res, 0, "on_time", "1");
    want(res, 0, "on_time_rate", "0.5000");
    want(res, 0, "avg_handling_hours", "39.00");
    want(res, 0, "p90_handling_hours", "65.40");
    want(res, 0, "evaluated", "2");
    want(res, 0, "satisfied", "2");
    want(res, 0, "satisfaction_rate", "1.0000");
    want(res, 0, "follow_up_rate", "1.0000");
    want(res, 0, "reopened", "1");
    want(res, 0, "reopen_rate", "0.5000");
    want(res, 0, "returns", "1");

    want(res, 1, "department", dept_b);
    want(res, 1, "received", "2");
    want(res, 1, "closed", "1");
    want(res, 1, "on_time", "0");
    want(res, 1, "on_time_rate", "NULL"); /* no timed case: no rate, not 0 */
    want(res, 1, "avg_handling_hours", "2.00");
    want(res, 1, "p90_handling_hours", "2.00");
    want(res, 1, "evaluated", "1");
    want(res, 1, "satisfied", "0");
    want(res, 1, "satisfaction_rate", "0.0000");
    want(res, 1, "follow_up_rate", "1.0000");
    want(res, 1, "reopened", "0");
    want(res, 1, "reopen_rate", "0.0000");
    want(res, 1, "returns", "0");
    PQclear(res);
}

static void test_longer_range(void **state)
{
    (void)state;
    PGresult *res = stats("2031-03-01", "2031-03-10", "{department}");
    assert_int_equal(PQntuples(res), 2);
    want(res, 0, "department", dept_a);
    want(res, 0, "received", "3");
    want(res, 0, "closed", "3");
    want(res, 0, "on_time", "2");
    want(res, 0, "on_time_rate", "0.6667");
    want(res, 0, "avg_handling_hours", "29.33");
    want(res, 0, "p90_handling_hours", "59.60");
    want(res, 0, "follow_up_rate", "0.6667");
    want(res, 0, "reopen_rate", "0.3333");
    PQclear(res);
}

static void test_by_day_and_local_midnight(void **state)
{
    (void)state;
    PGresult *res = stats("2031-03-01", "2031-03-05", "{day,department}");
    /* A: 03-02 (2 received), 03-03 (1 received, 1 closed), 03-05 (1 closed);
     * B: 03-04 (1 received, 1 closed), 03-05 (case 5 at 00:30 local) */
    static const char *const rows[][4] = {
        {"2031-03-02", "a", "2", "0"}, {"2031-03-03", "a", "1", "1"},
        {"2031-03-04", "b", "1", "1"}, {"2031-03-05", "a", "0", "1"},
        {"2031-03-05", "b", "1", "0"},
    };
    assert_int_equal(PQntuples(res), 5);
    for (int i = 0; i < 5; i++) {
        want(res, i, "day", rows[i][0]);
        want(res, i, "department", rows[i][1][0] == 'a' ? dept_a : dept_b);
        want(res, i, "received", rows[i][2]);
        want(res, i, "closed", rows[i][3]);
    }
    PQclear(res);
    /* grouped by channel and category together */
    const char *v[1] = {"{department,channel,category}"};
    res = PQexecParams(pg->conn,
                       "SELECT department, channel, category, received, closed FROM "
                       "kesu_stats('2031-03-01', '2031-03-05', $1::text[]) WHERE department "
                       "LIKE 'its-%' AND channel = 'phone' ORDER BY department, category",
                       1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 3); /* A efficiency, A facilities, B facilities */
    want(res, 0, "category", "efficiency");
    want(res, 0, "received", "1");
    want(res, 0, "closed", "0");
    want(res, 1, "category", "facilities");
    want(res, 1, "closed", "1");
    PQclear(res);
}

static void test_csv(void **state)
{
    (void)state;
    PGresult *res = PQexec(pg->conn, "SELECT line FROM kesu_stats_csv('2031-03-01', "
                                     "'2031-03-05', '{district}') ");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_true(PQntuples(res) >= 2);
    assert_string_equal(PQgetvalue(res, 0, 0),
                        "day,department,category,channel,district,received,closed,on_time,"
                        "on_time_rate,avg_handling_hours,p90_handling_hours,evaluated,satisfied,"
                        "satisfaction_rate,follow_up_rate,reopened,reopen_rate,returns");
    char want_line[256];
    /* all five cases share the test's district: received 5; closed 1, 2, 4:
     * on time 1 of 2 timed, handling (6+72+2)/3, p90 of 2,6,72 = 6+0.8*66,
     * evaluated 3 (5, 4, 3), satisfied 2, reopened 1 of 3, 1 return */
    snprintf(want_line, sizeof(want_line),
             ",,,,%s,5,3,1,0.5000,26.67,58.80,3,2,0.6667,1.0000,1,0.3333,1", district);
    int found = 0;
    for (int i = 1; i < PQntuples(res); i++)
        found += strcmp(PQgetvalue(res, i, 0), want_line) == 0;
    if (found != 1)
        fail_msg("no CSV line %s", want_line);
    PQclear(res);
    /* quoting: a value with a comma or a formula lead */
    res = PQexec(pg->conn, "SELECT kesu_csv_field('a,b'), kesu_csv_field('=1+1'), "
                           "kesu_csv_field('say \"hi\"'), kesu_csv_field('plain'), "
                           "kesu_csv_field(NULL)");
    assert_string_equal(PQgetvalue(res, 0, 0), "\"a,b\"");
    assert_string_equal(PQgetvalue(res, 0, 1), "\"=1+1\"");
    assert_string_equal(PQgetvalue(res, 0, 2), "\"say \"\"hi\"\"\"");
    assert_string_equal(PQgetvalue(res, 0, 3), "plain");
    assert_string_equal(PQgetvalue(res, 0, 4), "");
    PQclear(res);
}

static long long returns_total(void)
{
    return itest_scalar(pg, "SELECT sum(s.returns) FROM case_stats s JOIN cases c ON "
                            "c.id = s.case_id WHERE c.case_no LIKE 'ITS-%'");
}

static void test_replay_changes_nothing(void **state)
{
    (void)state;
    /* the facts are updated where the feed publishes: an event delivered to
     * the archiver again is skipped by the ordering and counts once */
    char err[512] = "";
    long long before = returns_total();
    assert_true(before >= 1);
    Kesu__V1__Envelope *env = proto_env_unpack(returned_env, returned_len, err, sizeof(err));
    assert_non_null(env);
    rd_kafka_message_t rkm;
    memset(&rkm, 0, sizeof(rkm));
    rkm.payload = returned_env;
    rkm.len = returned_len;
    kc_msg_t m = {&rkm, env, "kesu.itest"};
    assert_int_equal(archive_handle(&ar, pg, &m, err, sizeof(err)), KC_SKIP);
    kesu__v1__envelope__free_unpacked(env, NULL);
    assert_int_equal(returns_total(), before);
}

static void test_handler_sees_own_department(void **state)
{
    (void)state;
    char sql[256];
    /* as intake runs a handler's request (api_tx_begin): role kesu_api, RLS */
    assert_int_equal(itest_sql(pg, "SAVEPOINT rls"), 0);
    snprintf(sql, sizeof(sql),
             "SET LOCAL ROLE kesu_api; SET LOCAL kesu.role = 'handler'; "
             "SET LOCAL kesu.department = '%s'",
             dept_b);
    assert_int_equal(itest_sql(pg, sql), 0);
    PGresult *res = stats("2031-03-01", "2031-03-05", "{department}");
    int n = PQntuples(res);
    const char *d = n == 1 ? pg_get(res, 0, "department") : "";
    char seen[64];
    snprintf(seen, sizeof(seen), "%s", d);
    PQclear(res);
    long long archived = itest_scalar(pg, "SELECT count(*) FROM archive_records WHERE case_no "
                                          "LIKE 'ITS-%'");
    assert_int_equal(itest_sql(pg, "ROLLBACK TO SAVEPOINT rls"), 0);
    assert_int_equal(n, 1);
    assert_string_equal(seen, dept_b);
    /* B closed one case (4); A's three archive records stay invisible */
    assert_int_equal(archived, 1);
}

/* the SLA monitor records case 4's resolve timer after the archiver closed
 * the case (it was behind on the dispatcher's topic): kesu_stats judges the
 * case from that timer when it reads; the stored judgement stays NULL */
static void test_timer_recorded_after_close(void **state)
{
    (void)state;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_stats WHERE case_id = '%s' "
             "AND closed_at IS NOT NULL AND on_time IS NULL", set_cases[3].id);
    assert_int_equal(itest_scalar(pg, sql), 1);
    resolve_due(&set_cases[3], AT(4, 12, 0));
    PGresult *res = stats("2031-03-01", "2031-03-05", "{department}");
    assert_int_equal(PQntuples(res), 2);
    want(res, 1, "department", dept_b);
    want(res, 1, "closed", "1");
    want(res, 1, "on_time", "1");
    want(res, 1, "on_time_rate", "1.0000");
    want(res, 0, "on_time_rate", "0.5000"); /* A's stored judgements unchanged */
    PQclear(res);
    /* a timer due before the resolution judges it late */
    snprintf(sql, sizeof(sql), "UPDATE sla_timers SET due_at = due_at - interval '2 hours' "
             "WHERE case_id = '%s'", set_cases[3].id);
    assert_int_equal(itest_sql(pg, sql), 0);
    res = stats("2031-03-01", "2031-03-05", "{department}");
    want(res, 1, "on_time", "0");
    want(res, 1, "on_time_rate", "0.0000");
    PQclear(res);
}


/* a case's fact row as text (every figure the archiver writes) */
static void fact(const scase_t *c, char *out, size_t size)
{
    PGresult *res = itest_q(pg,
                            "SELECT row(received_at, channel, district, category, department, "
                            "resolved_at, resolve_due_at, closed_at, on_time, handling_hours, "
                            "satisfaction, reopens, returns)::text FROM case_stats "
                            "WHERE case_id = $1",
                            c->id);
    if (PQntuples(res) != 1)
        fail_msg("no fact row of %s", c->no);
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* the consumer loop's fast batch (archive_batch, decision 0035): the fact rows'
 * received, category and department figures are gathered and written at the
 * batch's end, any other figure writes them first; the facts come out as
 * written event by event */
static void test_gathered_batch_same_facts(void **state)
{
    (void)state;
    char err[512] = "", sql[256], a[512], b[512];
    scase_t g[5];
    scase_t twice;
    make(&twice, 22, dept_a);
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    build_cases(g, 11);
    /* a case assigned twice in one batch (a redispatch): the later department counts */
    received(&twice, AT(6, 8, 0), "web");
    classified(&twice, AT(6, 8, 1), "efficiency");
    classified(&twice, AT(6, 8, 2), "facilities");
    assigned(&twice, AT(6, 8, 3), dept_a);
    assigned(&twice, AT(6, 8, 4), dept_b);
    /* case 5 had only received and assigned: nothing of it written yet */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_stats WHERE case_id = '%s'", g[4].id);
    assert_int_equal(itest_scalar(pg, sql), 0);
    /* case 1 was resolved and closed in the batch: written before those figures */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_stats WHERE case_id = '%s' AND "
             "category = 'facilities' AND closed_at IS NOT NULL", g[0].id);
    assert_int_equal(itest_scalar(pg, sql), 1);
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    const char *tv[3] = {twice.id, dept_b, "facilities"};
    PGresult *tr = itest_qv(pg,
                            "SELECT count(*) FROM case_stats WHERE case_id = $1 AND "
                            "department = $2 AND category = $3",
                            3, tv);
    assert_string_equal(PQgetvalue(tr, 0, 0), "1");
    PQclear(tr);
    for (int i = 0; i < 5; i++) {
        fact(&set_cases[i], a, sizeof(a));
        fact(&g[i], b, sizeof(b));
        if (strcmp(a, b) != 0)
            fail_msg("case %d: event by event %s, gathered %s", i + 1, a, b);
    }
    /* the careful re-run writes each at once */
    scase_t h;
    make(&h, 21, dept_b);
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_BEGIN_CAREFUL, NULL, 0, err, sizeof(err)), KC_OK);
    received(&h, AT(6, 9, 0), "web");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_stats WHERE case_id = '%s'", h.id);
    assert_int_equal(itest_scalar(pg, sql), 1);
    assert_int_equal(archive_batch(&ar, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
}

static int setup(void **state)
{
    (void)state;
    char err[512], uuid[37];
    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "PostgreSQL: %s\n", err);
        return -1;
    }
    if (itest_scalar(pg, "SELECT count(*) FROM pg_proc WHERE proname = 'kesu_stats'") < 1) {
        fprintf(stderr, "the database lacks 0009_tail_stats.sql: run kesuctl migrate\n");
        return -1;
    }
    util_uuid(uuid);
    snprintf(tag, sizeof(tag), "%.8s", uuid + 28);
    snprintf(dept_a, sizeof(dept_a), "its-%s-a", tag);
    snprintf(dept_b, sizeof(dept_b), "its-%s-b", tag);
    snprintf(district, sizeof(district), "9%.7s", tag);
    archive_metrics_init(&ar);
    if (pg_begin(pg, err, sizeof(err)) != 0)
        return -1;
    /* an unrelated kesu_stats reader elsewhere sees none of this: rolled back */
    build_data_set();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_rollback(pg);
    pg_destroy(pg);
    archive_stats_free(&ar);
    free(returned_env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_department),
        cmocka_unit_test(test_longer_range),
        cmocka_unit_test(test_by_day_and_local_midnight),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_replay_changes_nothing),
        cmocka_unit_test(test_handler_sees_own_department),
        cmocka_unit_test(test_timer_recorded_after_close), /* adds a timer */
        cmocka_unit_test(test_gathered_batch_same_facts),  /* last: adds cases */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
