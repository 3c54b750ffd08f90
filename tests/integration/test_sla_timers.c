/*
 * Integration: SLA timers against the real PostgreSQL, on the shipped
 * working calendar (09:00-12:00, 13:30-17:30 Asia/Shanghai).
 *
 * test_lifecycle drives one case through every timer event (assign,
 * warnings, breach + escalation, pause for information, resume,
 * extension, accept, resolve, reply, follow-up breach, auto-close,
 * reopen with a new cycle) and checks the deadlines in working time and
 * that each firing is one history event. test_two_scanners_exactly_once
 * runs two scanners (own connections, own contexts: two sla-monitor
 * instances) at once over 300 due timers, twice (breach, second breach):
 * every timer fires exactly once per step. test_crash_fires_once holds the
 * timers' row locks in a "crashed" scanner's open transaction, checks a
 * second scanner skips them, then drops that connection (the crash) and
 * checks a restarted scanner fires each once, and a further restart none.
 * test_batch_claimed_cases: the cases of a batch read at its claim
 * (sla_batch) are what its handlers use; a case not claimed reads its own.
 *
 * The scan is given "now" and the timers live in March 2037 (the same
 * weekdays as 2026, no holidays listed: plain Monday-Friday), so a real
 * sla-monitor running against the same database never fires them during
 * the test; assertions count each test's own cases' events, since a scan
 * also fires whatever else is due in the database. Each test's cases,
 * timers and outbox rows are deleted at the end.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "calendar.h"
#include "casestore.h"
#include "itest.h"
#include "log.h"
#include "metrics.h"
#include "sla_policy.h"
#include "sla_timers.h"

#define MIN 60000LL

static pg_t *pg;
static calendar_t *cal;
static sla_policy_t *policy;
static sla_ctx_t ctx;

static const char policy_json[] =
    "{\"warn_percent\": [50, 80], \"policies\": [{\"request_type\": \"*\", \"urgency\": \"*\", "
    "\"accept\": \"1wh\", \"resolve\": \"1wd\", \"reply\": \"1wh\", \"follow_up\": \"2wh\", "
    "\"auto_close\": \"7d\", \"escalate_after\": \"1wh\"}]}";

static int64_t at(const char *local)
{
    int64_t t;
    if (calendar_parse_local(cal, local, &t) != 0)
        fail_msg("bad time %s", local);
    return t;
}

static PGresult *q(const char *sql, const char *p1)
{
    return itest_q(pg, sql, p1);
}

static long long q1(const char *sql, const char *p1)
{
    PGresult *res = q(sql, p1);
    long long n = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0))
                                                                 : -1;
    PQclear(res);
    return n;
}

static void new_case(char *id, const char *status)
{
    char no[48];
    util_uuid(id);
    snprintf(no, sizeof(no), "ITS-%.12s", id + 24);
    const char *v[2] = {id, no};
    PGresult *res = PQexecParams(pg->conn,
                                 "INSERT INTO cases (id, case_no, access_code_hash, channel, "
                                 "title, body, trace_id, request_type, urgency) VALUES ($1, $2, "
                                 "'\\x00'::bytea, 'web', 't', 'b', 'itest', 'complaint', 'normal')",
                                 2, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQclear(q("UPDATE cases SET status = 'classified' WHERE id = $1", id));
    PQclear(q("UPDATE cases SET status = 'assigned', department = 'd_sla', "
              "dispatch_attempt = 1 WHERE id = $1",
              id));
    if (strcmp(status, "assigned") != 0) {
        const char *v2[2] = {id, status};
        res = PQexecParams(pg->conn, "UPDATE cases SET status = $2 WHERE id = $1", 2, NULL, v2,
                           NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
    }
}

static void set_status(const char *id, const char *status)
{
    const char *v[2] = {id, status};
    PGresult *res = PQexecParams(pg->conn,
                                 "UPDATE cases SET status = $2, version = version + 1, "
                                 "accepted_at = CASE WHEN $2 = 'accepted' THEN now() ELSE "
                                 "accepted_at END WHERE id = $1",
                                 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("status %s: %s", status, PQresultErrorMessage(res));
    PQclear(res);
}

/* deliver one event (its history position seq, 0: unknown) to the handler in its own
 * transaction */
static kc_result_t feed_seq(const char *case_id, Kesu__V1__Envelope__PayloadCase pc,
                            const ProtobufCMessage *msg, int64_t when, int64_t seq)
{
    char err[512] = "";
    proto_env_t pe;
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, case_id, "ITS", "itest");
    proto_env_set_payload(&pe, pc, msg);
    pe.env.occurred_at_ms = when;
    pe.env.case_seq = seq;
    kc_msg_t m = {NULL, &pe.env, "kesu.itest"};
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    kc_result_t r = sla_handle(&ctx, pg, &m, err, sizeof(err));
    if (r == KC_RETRY || r == KC_POISON) {
        pg_rollback(pg);
        fail_msg("handle %s: %s", pe.env.event_type, err);
    }
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    return r;
}

static kc_result_t feed(const char *case_id, Kesu__V1__Envelope__PayloadCase pc,
                        const ProtobufCMessage *msg, int64_t when)
{
    return feed_seq(case_id, pc, msg, when, 0);
}

static int scan(sla_ctx_t *c, pg_t *p, int64_t now)
{
    char err[512];
    int fired = 0, total = 0, n;
    do {
        n = sla_scan(p, c, SLA_SCAN_BATCH, now, &fired, err, sizeof(err));
        if (n < 0)
            fail_msg("scan: %s", err);
        total += fired;
    } while (n == SLA_SCAN_BATCH);
    return total;
}

static long long events(const char *id, const char *type)
{
    const char *v[2] = {id, type};
    return itest_scalarv(
        pg, "SELECT count(*) FROM case_events WHERE case_id = $1 AND event_type = $2", 2, v);
}

/* due_at of a timer as local time text */
static void due_of(const char *id, const char *kind, int cycle, char *out, size_t n)
{
    char cyc[8];
    snprintf(cyc, sizeof(cyc), "%d", cycle);
    const char *v[3] = {id, kind, cyc};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT (extract(epoch FROM due_at) * 1000)::bigint, state FROM "
                                 "sla_timers WHERE case_id = $1 AND kind = $2 AND cycle = $3",
                                 3, NULL, v, NULL, NULL, 0);
    if (PQntuples(res) != 1)
        fail_msg("no %s timer cycle %d", kind, cycle);
    calendar_fmt_local(cal, atoll(PQgetvalue(res, 0, 0)), out, n);
    PQclear(res);
}

static const char *state_of(const char *id, const char *kind, int cycle)
{
    static char st[16];
    char cyc[8];
    snprintf(cyc, sizeof(cyc), "%d", cycle);
    const char *v[3] = {id, kind, cyc};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT state FROM sla_timers WHERE case_id = $1 AND kind = $2 "
                                 "AND cycle = $3",
                                 3, NULL, v, NULL, NULL, 0);
    snprintf(st, sizeof(st), "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "none");
    PQclear(res);
    return st;
}

static void cleanup(const char *ids_array)
{
    PQclear(q("DELETE FROM outbox WHERE msg_key = ANY ($1::text[])", ids_array));
    PQclear(q("DELETE FROM sla_timer_log WHERE case_id = ANY ($1::uuid[])", ids_array));
    PQclear(q("DELETE FROM sla_timers WHERE case_id = ANY ($1::uuid[])", ids_array));
    PQclear(q("DELETE FROM case_events WHERE case_id = ANY ($1::uuid[])", ids_array));
    PQclear(q("DELETE FROM cases WHERE id = ANY ($1::uuid[])", ids_array));
}

static void assigned(const char *id, int attempt, int64_t when)
{
    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    ca.department = "d_sla";
    ca.rule = "itest";
    ca.attempt = attempt;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca.base, when);
}

static void test_lifecycle(void **state)
{
    char id[37], due[40], arr[64];
    new_case(id, "assigned");
    snprintf(arr, sizeof(arr), "{%s}", id);

    /* Tuesday 10:00: accept 1 working hour, resolve 1 working day */
    assigned(id, 1, at("2037-03-10 10:00"));
    due_of(id, "accept", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-10 11:00:00+08:00");
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-11 10:00:00+08:00");
    /* both started by one statement: a start row each in the trail, accept first,
     * with the limit that applied */
    assert_int_equal(q1("SELECT (array_agg(kind ORDER BY id) = '{accept,resolve}' AND "
                        "bool_and(note LIKE 'CaseAssigned limit=%'))::int FROM sla_timer_log "
                        "WHERE case_id = $1 AND action = 'start'",
                        id),
                     1);
    /* a second CaseAssigned of the same attempt starts nothing */
    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    ca.attempt = 1;
    assert_int_equal(feed(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca.base,
                          at("2037-03-10 10:01")),
                     KC_SKIP);

    /* 50 % of accept at 10:30: one warning, and only one */
    scan(&ctx, pg, at("2037-03-10 10:29"));
    assert_int_equal(events(id, "SlaWarning"), 0);
    scan(&ctx, pg, at("2037-03-10 10:30"));
    assert_int_equal(events(id, "SlaWarning"), 1);
    scan(&ctx, pg, at("2037-03-10 10:30"));
    assert_int_equal(events(id, "SlaWarning"), 1);
    /* at 11:05 the 80 % warning is moot: the breach goes out, escalated to the head */
    scan(&ctx, pg, at("2037-03-10 11:05"));
    assert_int_equal(events(id, "SlaWarning"), 1);
    assert_int_equal(events(id, "SlaBreached"), 1);
    assert_int_equal(events(id, "CaseEscalated"), 1);
    assert_string_equal(state_of(id, "accept", 1), "breached");

    /* waiting for the complainant from Tuesday 11:10 to Thursday 10:00: the
     * resolve clock had used 70 working minutes, 350 are left from Thursday 10:00 */
    Kesu__V1__InfoRequested ir = KESU__V1__INFO_REQUESTED__INIT;
    assert_int_equal(
        feed(id, KESU__V1__ENVELOPE__PAYLOAD_INFO_REQUESTED, &ir.base, at("2037-03-10 11:10")),
        KC_OK);
    assert_string_equal(state_of(id, "resolve", 1), "paused");
    /* nothing fires while paused, even the accept timer's second breach */
    scan(&ctx, pg, at("2037-03-11 16:00"));
    assert_int_equal(events(id, "SlaBreached"), 1);
    assert_int_equal(events(id, "SlaWarning"), 1);
    Kesu__V1__SupplementReceived sr = KESU__V1__SUPPLEMENT_RECEIVED__INIT;
    sr.answers_request = 1;
    assert_int_equal(feed(id, KESU__V1__ENVELOPE__PAYLOAD_SUPPLEMENT_RECEIVED, &sr.base,
                          at("2037-03-12 10:00")),
                     KC_OK);
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-12 17:20:00+08:00");
    assert_string_equal(state_of(id, "accept", 1), "breached"); /* resumed to what it was */

    /* an approved extension of 60 minutes: 10 more on Thursday, 50 on Friday */
    Kesu__V1__ExtensionDecided ed = KESU__V1__EXTENSION_DECIDED__INIT;
    ed.approved = 1;
    ed.extra_minutes = 60;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_DECIDED, &ed.base, at("2037-03-12 11:00"));
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-13 09:50:00+08:00");
    /* a refused one changes nothing */
    ed.approved = 0;
    assert_int_equal(
        feed(id, KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_DECIDED, &ed.base, at("2037-03-12 11:01")),
        KC_SKIP);

    /* accepted late: the accept timer stops and keeps its breach in the record */
    set_status(id, "accepted");
    Kesu__V1__CaseAccepted acc = KESU__V1__CASE_ACCEPTED__INIT;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED, &acc.base, at("2037-03-12 11:05"));
    assert_string_equal(state_of(id, "accept", 1), "stopped");
    assert_int_equal(q1("SELECT count(*) FROM sla_timers WHERE case_id = $1 AND kind = 'accept' "
                        "AND breached_at IS NOT NULL",
                        id),
                     1);

    /* resolved Friday 09:00 (in time), reply sent 10:00 */
    set_status(id, "resolved");
    Kesu__V1__CaseResolved rs = KESU__V1__CASE_RESOLVED__INIT;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &rs.base, at("2037-03-13 09:00"));
    assert_string_equal(state_of(id, "resolve", 1), "stopped");
    assert_string_equal(state_of(id, "reply", 1), "running");
    set_status(id, "replied");
    Kesu__V1__ReplySent rsent = KESU__V1__REPLY_SENT__INIT;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT, &rsent.base, at("2037-03-13 10:00"));
    assert_string_equal(state_of(id, "reply", 1), "stopped");
    due_of(id, "auto_close", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-20 10:00:00+08:00");

    /* a week without feedback: follow-up breached (once), the case closes itself */
    scan(&ctx, pg, at("2037-03-20 10:01"));
    assert_int_equal(events(id, "CaseClosed"), 1);
    assert_int_equal(events(id, "SlaBreached"), 2); /* accept earlier, follow_up now */
    scan(&ctx, pg, at("2037-03-20 10:02"));
    assert_int_equal(events(id, "CaseClosed"), 1);
    assert_int_equal(q1("SELECT count(*) FROM cases WHERE id = $1 AND status = 'closed' AND "
                        "close_reason = 'no_feedback'",
                        id),
                     1);
    assert_string_equal(state_of(id, "follow_up", 1), "stopped");
    assert_string_equal(state_of(id, "auto_close", 1), "stopped");

    /* reopened (重办) and dispatched again: a new cycle with a fresh resolve limit */
    set_status(id, "reopened");
    Kesu__V1__CaseReopened ro = KESU__V1__CASE_REOPENED__INIT;
    feed(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, &ro.base, at("2037-03-23 09:00"));
    set_status(id, "assigned");
    assigned(id, 2, at("2037-03-23 09:30"));
    assert_string_equal(state_of(id, "resolve", 2), "running");
    due_of(id, "resolve", 2, due, sizeof(due));
    assert_string_equal(due, "2037-03-24 09:30:00+08:00");
    assert_string_equal(state_of(id, "resolve", 1), "stopped");

    /* the trail: every change has a log row, with the working time used */
    assert_true(q1("SELECT count(*) FROM sla_timer_log WHERE case_id = $1", id) >= 18);
    assert_int_equal(q1("SELECT used_ms FROM sla_timer_log WHERE case_id = $1 AND kind = "
                        "'resolve' AND action = 'pause'",
                        id),
                     70 * MIN);
    cleanup(arr);
}

/* ---- many timers, two scanners ---- */

#define NCASES 300

typedef struct scanner {
    pg_t *pg;
    sla_ctx_t ctx;
    int64_t now;
    int fired;
} scanner_t;

static void *scanner_run(void *arg)
{
    scanner_t *s = arg;
    char err[512];
    int fired, n;
    s->fired = 0;
    do {
        n = sla_scan(s->pg, &s->ctx, 25, s->now, &fired, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "scanner: %s\n", err);
            break;
        }
        s->fired += fired;
    } while (n > 0);
    return NULL;
}

static char (*make_cases(int n, strbuf_t *arr))[37]
{
    char (*ids)[37] = calloc((size_t)n, sizeof(*ids));
    strbuf_init(arr);
    strbuf_append(arr, "{", 1);
    for (int i = 0; i < n; i++) {
        new_case(ids[i], "assigned");
        assigned(ids[i], 1, at("2037-03-10 10:00"));
        strbuf_appendf(arr, "%s%s", i ? "," : "", ids[i]);
    }
    strbuf_append(arr, "}", 1);
    return ids;
}

static long long count_events_ids(const char *ids_array, const char *type)
{
    const char *v[2] = {ids_array, type};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT count(*) FROM case_events WHERE case_id = ANY ($1::uuid[]) "
                                 "AND event_type = $2",
                                 2, NULL, v, NULL, NULL, 0);
    long long c = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return c;
}

static long long count_events(const strbuf_t *arr, const char *type)
{
    return count_events_ids(arr->s, type);
}

static void scanners_at(scanner_t *s, int64_t now)
{
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        s[i].now = now;
        pthread_create(&th[i], NULL, scanner_run, &s[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
}

static void test_two_scanners_exactly_once(void **state)
{
    strbuf_t arr;
    char err[512];
    char(*ids)[37] = make_cases(NCASES, &arr);
    scanner_t s[2];
    for (int i = 0; i < 2; i++) {
        s[i].pg = pg_new(itest_pg());
        assert_int_equal(pg_connect(s[i].pg, 5000, err, sizeof(err)), 0);
        sla_ctx_init(&s[i].ctx, policy, NULL, NULL);
    }
    /* step 1: every accept timer is past due (warnings moot): one breach each */
    scanners_at(s, at("2037-03-10 11:05"));
    fprintf(stderr, "breach: scanner A fired %d, scanner B %d\n", s[0].fired, s[1].fired);
    assert_true(s[0].fired + s[1].fired >= NCASES);
    assert_int_equal(count_events(&arr, "SlaBreached"), NCASES);
    assert_int_equal(count_events(&arr, "CaseEscalated"), NCASES);
    /* step 2: an hour later, the second breach to the supervision office, once */
    scanners_at(s, at("2037-03-10 12:00"));
    fprintf(stderr, "second: scanner A fired %d, scanner B %d\n", s[0].fired, s[1].fired);
    assert_true(s[0].fired + s[1].fired >= NCASES);
    assert_int_equal(count_events(&arr, "SlaBreached"), 2 * NCASES);
    /* step 3: nothing is left to fire for accept; resolve warns at 50 % (210 working
     * minutes: 10:00-12:00, then 13:30-15:00) */
    scanners_at(s, at("2037-03-10 14:59"));
    assert_int_equal(count_events(&arr, "SlaWarning"), 0);
    assert_int_equal(count_events(&arr, "SlaBreached"), 2 * NCASES);
    scanners_at(s, at("2037-03-10 15:00"));
    assert_int_equal(count_events(&arr, "SlaWarning"), NCASES);
    for (int i = 0; i < 2; i++)
        pg_destroy(s[i].pg);
    cleanup(arr.s);
    strbuf_free(&arr);
    free(ids);
}

static void test_crash_fires_once(void **state)
{
    strbuf_t arr;
    char err[512];
    char(*ids)[37] = make_cases(50, &arr);
    /* the "crashed" instance: took the due timers' locks, never committed */
    pg_t *crashed = pg_new(itest_pg());
    assert_int_equal(pg_connect(crashed, 5000, err, sizeof(err)), 0);
    PGresult *res = PQexec(crashed->conn, "BEGIN");
    PQclear(res);
    const char *v[1] = {arr.s};
    res = PQexecParams(crashed->conn,
                       "SELECT id FROM sla_timers WHERE case_id = ANY ($1::uuid[]) FOR UPDATE",
                       1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 100);
    PQclear(res);
    /* a live instance skips what the other holds */
    sla_ctx_t live;
    sla_ctx_init(&live, policy, NULL, NULL);
    pg_t *p2 = pg_new(itest_pg());
    assert_int_equal(pg_connect(p2, 5000, err, sizeof(err)), 0);
    scan(&live, p2, at("2037-03-10 11:05"));
    assert_int_equal(count_events(&arr, "SlaBreached"), 0);
    /* the crash: its connection goes, its locks with it - once the server has
     * noticed (the backend ends a moment after the socket closes) */
    char gone[96];
    snprintf(gone, sizeof(gone), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d",
             PQbackendPID(crashed->conn));
    pg_destroy(crashed);
    for (int i = 0; i < 100 && itest_scalar(p2, gone) != 0; i++)
        util_sleep_ms(50);
    assert_true(scan(&live, p2, at("2037-03-10 11:05")) >= 50);
    assert_int_equal(count_events(&arr, "SlaBreached"), 50);
    /* a restarted instance (new connection, new context) fires none twice */
    pg_destroy(p2);
    sla_ctx_t restarted;
    sla_ctx_init(&restarted, policy, NULL, NULL);
    pg_t *p3 = pg_new(itest_pg());
    assert_int_equal(pg_connect(p3, 5000, err, sizeof(err)), 0);
    scan(&restarted, p3, at("2037-03-10 11:05"));
    assert_int_equal(count_events(&arr, "SlaBreached"), 50);
    pg_destroy(p3);
    cleanup(arr.s);
    strbuf_free(&arr);
    free(ids);
}


/* ---- the monitor behind the case: the step is done before its timer is recorded ---- */

/* what intake and the notifier already wrote: status, a time column, a history row */
static void case_did(const char *id, const char *status, const char *col, int64_t when)
{
    char ms[24], sql[256];
    snprintf(ms, sizeof(ms), "%lld", (long long)when);
    snprintf(sql, sizeof(sql),
             "UPDATE cases SET status = $2, version = version + 1%s%s%s WHERE id = $1",
             col ? ", " : "", col ? col : "",
             col ? " = to_timestamp($3::double precision / 1000)" : "");
    const char *v[3] = {id, status, ms};
    PGresult *res = PQexecParams(pg->conn, sql, col ? 3 : 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", status, PQresultErrorMessage(res));
    PQclear(res);
}

static void history(const char *id, const char *type, int64_t when)
{
    char ms[24], ev[37];
    snprintf(ms, sizeof(ms), "%lld", (long long)when);
    util_uuid(ev);
    const char *v[4] = {id, ev, type, ms};
    PGresult *res = PQexecParams(
        pg->conn,
        "WITH c AS (UPDATE cases SET event_seq = event_seq + 1 WHERE id = $1::uuid "
        "RETURNING id, event_seq, version, status) INSERT INTO case_events (case_id, seq, "
        "event_id, event_type, version, status, producer, occurred_at, summary) SELECT id, "
        "event_seq, $2::uuid, $3, version, status, 'itest', "
        "to_timestamp($4::double precision / 1000), '{}' FROM c",
        4, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("history %s: %s", type, PQresultErrorMessage(res));
    PQclear(res);
}

/* stopped_at, breached_at (0: none) and due_at of one timer, in ms */
static void timer_times(const char *id, const char *kind, int cycle, long long *stopped,
                        long long *breached, long long *due)
{
    char cyc[8];
    snprintf(cyc, sizeof(cyc), "%d", cycle);
    const char *v[3] = {id, kind, cyc};
    PGresult *res = PQexecParams(
        pg->conn,
        "SELECT COALESCE((extract(epoch FROM stopped_at) * 1000)::bigint, 0), "
        "COALESCE((extract(epoch FROM breached_at) * 1000)::bigint, 0), "
        "(extract(epoch FROM due_at) * 1000)::bigint FROM sla_timers WHERE case_id = $1 AND "
        "kind = $2 AND cycle = $3",
        3, NULL, v, NULL, NULL, 0);
    if (PQntuples(res) != 1)
        fail_msg("no %s timer cycle %d", kind, cycle);
    *stopped = atoll(PQgetvalue(res, 0, 0));
    *breached = atoll(PQgetvalue(res, 0, 1));
    *due = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
}

static long long log_rows(const char *id, const char *kind, const char *action)
{
    const char *v[3] = {id, kind, action};
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT count(*) FROM sla_timer_log WHERE case_id = $1 AND "
                                 "kind = $2 AND action = $3",
                                 3, NULL, v, NULL, NULL, 0);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static void test_assigned_after_done(void **state)
{
    char a[37], b[37], arr[96];
    long long stopped, breached, due;
    new_case(a, "assigned");
    new_case(b, "assigned");
    snprintf(arr, sizeof(arr), "{%s,%s}", a, b);
    int64_t t = at("2037-03-10 10:00"); /* accept due 11:00, resolve due Wed 10:00 */

    /* a: accepted 10:20 and resolved 14:00 (both in time) before CaseAssigned is seen */
    case_did(a, "accepted", "accepted_at", at("2037-03-10 10:20"));
    case_did(a, "resolved", "resolved_at", at("2037-03-10 14:00"));
    assigned(a, 1, t);
    assert_string_equal(state_of(a, "accept", 1), "stopped");
    timer_times(a, "accept", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 10:20"));
    assert_int_equal(breached, 0);
    assert_int_equal(due, at("2037-03-10 11:00"));
    timer_times(a, "resolve", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 14:00"));
    assert_int_equal(breached, 0);
    assert_int_equal(due, at("2037-03-11 10:00"));
    assert_int_equal(log_rows(a, "accept", "start"), 1);
    assert_int_equal(log_rows(a, "accept", "stop"), 1);
    assert_int_equal(log_rows(a, "resolve", "stop"), 1);
    /* the working time used is the real one: 20 min, and 10:00-12:00 + 13:30-14:00 */
    assert_int_equal(q1("SELECT used_ms FROM sla_timer_log WHERE case_id = $1 AND kind = "
                        "'resolve' AND action = 'stop'",
                        a),
                     150 * MIN);

    /* b: accepted 12:00 and resolved Wed 11:00, both late */
    case_did(b, "accepted", "accepted_at", at("2037-03-10 12:00"));
    case_did(b, "resolved", "resolved_at", at("2037-03-11 11:00"));
    assigned(b, 1, t);
    timer_times(b, "accept", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 12:00"));
    assert_int_equal(breached, at("2037-03-10 11:00")); /* late: breached at the deadline */
    timer_times(b, "resolve", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-11 11:00"));
    assert_int_equal(breached, at("2037-03-11 10:00"));
    assert_int_equal(log_rows(b, "resolve", "breach"), 1);
    assert_string_equal(state_of(b, "resolve", 1), "stopped");

    /* the redelivery starts and stops nothing; the late stopping events find nothing open */
    Kesu__V1__CaseAssigned ca = KESU__V1__CASE_ASSIGNED__INIT;
    ca.attempt = 1;
    assert_int_equal(feed(a, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca.base, t), KC_SKIP);
    Kesu__V1__CaseAccepted acc = KESU__V1__CASE_ACCEPTED__INIT;
    assert_int_equal(feed(b, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED, &acc.base,
                          at("2037-03-10 12:00")),
                     KC_SKIP);
    assert_int_equal(log_rows(a, "accept", "stop"), 1);

    /* no scan fires any of them, and nothing was escalated after the fact */
    scan(&ctx, pg, at("2037-03-12 16:00"));
    assert_int_equal(count_events_ids(arr, "SlaWarning"), 0);
    assert_int_equal(count_events_ids(arr, "SlaBreached"), 0);
    assert_int_equal(count_events_ids(arr, "CaseEscalated"), 0);
    assert_int_equal(q1("SELECT count(*) FROM sla_timers WHERE case_id = $1 AND state <> "
                        "'stopped' AND kind IN ('accept', 'resolve')",
                        a),
                     0);
    cleanup(arr);
}

/* the reply and feedback steps, from the history: positions, not clocks, decide "after" */
static void test_reply_after_done(void **state)
{
    char id[37], arr[64];
    long long stopped, breached, due;
    new_case(id, "assigned");
    snprintf(arr, sizeof(arr), "{%s}", id);
    assigned(id, 1, at("2037-03-10 10:00"));
    case_did(id, "accepted", "accepted_at", at("2037-03-10 10:10"));
    case_did(id, "resolved", "resolved_at", at("2037-03-10 11:00"));
    history(id, "CaseResolved", at("2037-03-10 11:00")); /* seq 1 */
    /* the reply went out, then the feedback - the notifier's clock a second behind */
    case_did(id, "replied", NULL, 0);
    history(id, "ReplySent", at("2037-03-10 10:59:59")); /* seq 2 */
    /* follow-up due 14:30 (2 working hours from 10:59:59) */
    case_did(id, "closed", "closed_at", at("2037-03-10 14:00"));
    history(id, "FeedbackReceived", at("2037-03-10 14:00")); /* seq 3 */

    Kesu__V1__CaseResolved rs = KESU__V1__CASE_RESOLVED__INIT;
    assert_int_equal(feed_seq(id, KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, &rs.base,
                              at("2037-03-10 11:00"), 1),
                     KC_OK);
    assert_string_equal(state_of(id, "resolve", 1), "stopped");
    timer_times(id, "reply", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 11:00")); /* not before its own start */
    assert_int_equal(breached, 0);
    Kesu__V1__ReplySent rsent = KESU__V1__REPLY_SENT__INIT;
    assert_int_equal(feed_seq(id, KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT, &rsent.base,
                              at("2037-03-10 10:59:59"), 2),
                     KC_OK);
    timer_times(id, "follow_up", 1, &stopped, &breached, &due);
    assert_int_equal(due, at("2037-03-10 14:29:59"));
    assert_int_equal(stopped, at("2037-03-10 14:00"));
    assert_int_equal(breached, 0);
    assert_string_equal(state_of(id, "auto_close", 1), "stopped");
    scan(&ctx, pg, at("2037-03-30 10:00"));
    assert_int_equal(events(id, "SlaBreached"), 0);
    assert_int_equal(events(id, "CaseClosed"), 0); /* no auto-close of a closed case */
    cleanup(arr);
}

/* returned and dispatched again before the monitor saw either CaseAssigned: cycle 1's
 * accept ends at the return, the resolve clock of cycle 1 runs on (no second one) */
static void test_return_seen_late(void **state)
{
    char id[37], arr[64];
    long long stopped, breached, due;
    new_case(id, "assigned");
    snprintf(arr, sizeof(arr), "{%s}", id);
    case_did(id, "returned", NULL, 0);
    history(id, "CaseReturned", at("2037-03-10 10:30"));
    PQclear(q("UPDATE cases SET status = 'assigned', dispatch_attempt = 2 WHERE id = $1", id));
    case_did(id, "accepted", "accepted_at", at("2037-03-10 14:00"));
    case_did(id, "resolved", "resolved_at", at("2037-03-11 09:30"));

    assigned(id, 1, at("2037-03-10 10:00"));
    timer_times(id, "accept", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 10:30"));
    assert_int_equal(breached, 0);
    timer_times(id, "resolve", 1, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-11 09:30"));
    assert_int_equal(due, at("2037-03-11 10:00"));
    assert_int_equal(breached, 0);
    assigned(id, 2, at("2037-03-10 13:30"));
    timer_times(id, "accept", 2, &stopped, &breached, &due);
    assert_int_equal(stopped, at("2037-03-10 14:00"));
    assert_string_equal(state_of(id, "resolve", 2), "none");
    cleanup(arr);
}

static void test_recompute(void **state)
{
    char id[37], due[40], arr[64], err[512];
    new_case(id, "assigned");
    snprintf(arr, sizeof(arr), "{%s}", id);
    assigned(id, 1, at("2037-03-10 10:00"));
    /* the policy changes: resolve within 2 working days */
    sla_policy_t *p2 = sla_policy_parse(
        "{\"policies\": [{\"request_type\": \"*\", \"urgency\": \"*\", \"accept\": \"1wh\", "
        "\"resolve\": \"2wd\", \"reply\": \"1wh\", \"follow_up\": \"2wh\", \"auto_close\": \"7d\", "
        "\"escalate_after\": \"1wh\"}]}",
        "p2.json", err, sizeof(err));
    assert_non_null(p2);
    p2->cal = cal;
    sla_ctx_t c2;
    sla_ctx_init(&c2, p2, NULL, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int n = sla_recompute(pg, &c2, 1, out, err, sizeof(err));
    fclose(out);
    assert_true(n >= 1);
    assert_non_null(strstr(buf, id));
    assert_non_null(strstr(buf, "limit 1wd -> 2wd"));
    free(buf);
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-11 10:00:00+08:00"); /* dry run: unchanged */
    assert_true(sla_recompute(pg, &c2, 0, NULL, err, sizeof(err)) >= 1);
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-12 10:00:00+08:00");
    assert_int_equal(q1("SELECT count(*) FROM sla_timer_log WHERE case_id = $1 AND action = "
                        "'recompute'",
                        id),
                     1);
    /* with the old policy back, it goes back */
    assert_true(sla_recompute(pg, &ctx, 0, NULL, err, sizeof(err)) >= 1);
    due_of(id, "resolve", 1, due, sizeof(due));
    assert_string_equal(due, "2037-03-11 10:00:00+08:00");
    sla_policy_free(p2);
    cleanup(arr);
}

/* The open-timer gauge (every 10 s) reads the open timers, not every timer
 * ever started: a year of stopped ones beside them must not be scanned
 * (migration 0020's sla_timers_open; without it the plan is a Seq Scan). */
/* a batch's cases are read at its claim (sla_batch): the timers of the
 * claimed cases' CaseAssigned (no department in the event: the case's) take
 * the department their row had then; a case not claimed reads its own. The
 * fast batch's starts are written in one statement at its end, or before a
 * later event of one of their cases (its CaseAccepted stops the accept timer) */
static void test_batch_claimed_cases(void **state)
{
    (void)state;
    char ids[3][37], arr[160], err[512] = "";
    Kesu__V1__CaseAssigned ca[3];
    proto_env_t pe[3];
    kc_msg_t m[3];
    for (int i = 0; i < 3; i++) {
        new_case(ids[i], "assigned");
        ca[i] = (Kesu__V1__CaseAssigned)KESU__V1__CASE_ASSIGNED__INIT;
        ca[i].attempt = 1;
        proto_env_init(&pe[i], "itest");
        proto_env_set_case(&pe[i], ids[i], "ITS", "itest");
        proto_env_set_payload(&pe[i], KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, &ca[i].base);
        pe[i].env.occurred_at_ms = at("2037-03-02 10:00");
        pe[i].env.case_seq = 2;
        m[i] = (kc_msg_t){NULL, &pe[i].env, "kesu.itest"};
    }
    snprintf(arr, sizeof(arr), "{%s,%s,%s}", ids[0], ids[1], ids[2]);
    static const char *const timers_of =
        "SELECT count(*) FROM sla_timers WHERE case_id = ANY ($1::uuid[])";
    assert_int_equal(pg_begin(pg, err, sizeof(err)), 0);
    assert_int_equal(sla_batch(&ctx, pg, KC_BATCH_BEGIN, NULL, 0, err, sizeof(err)), KC_OK);
    assert_int_equal(sla_batch(&ctx, pg, KC_BATCH_CLAIMED, m, 2, err, sizeof(err)), KC_OK);
    assert_int_equal(ctx.cases.n, 2);
    PQclear(q("UPDATE cases SET department = 'd_later' WHERE id = ANY ($1::uuid[])", arr));
    for (int i = 0; i < 3; i++)
        assert_int_equal(sla_handle(&ctx, pg, &m[i], err, sizeof(err)), KC_OK);
    /* a fast batch's timer starts wait for its end ... */
    assert_int_equal(itest_scalar1(pg, timers_of, arr),
                     0);
    /* ... but a later event of one of the cases finds its timers: written before it */
    Kesu__V1__CaseAccepted acc = KESU__V1__CASE_ACCEPTED__INIT;
    proto_env_t pa;
    proto_env_init(&pa, "itest");
    proto_env_set_case(&pa, ids[0], "ITS", "itest");
    proto_env_set_payload(&pa, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED, &acc.base);
    pa.env.occurred_at_ms = at("2037-03-02 10:20");
    kc_msg_t ma = {NULL, &pa.env, "kesu.itest"};
    assert_int_equal(sla_handle(&ctx, pg, &ma, err, sizeof(err)), KC_OK);
    assert_int_equal(itest_scalar1(pg, timers_of, arr),
                     6); /* every start gathered so far was written with it */
    assert_string_equal(state_of(ids[0], "accept", 1), "stopped");
    assert_int_equal(sla_batch(&ctx, pg, KC_BATCH_END, NULL, 0, err, sizeof(err)), KC_OK);
    assert_null(ctx.cases.res);
    assert_int_equal(pg_commit(pg, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(state_of(ids[i], "accept", 1), i ? "running" : "stopped");
        assert_string_equal(state_of(ids[i], "resolve", 1), "running");
    }
    for (int i = 0; i < 3; i++) {
        PGresult *res = q("SELECT department FROM sla_timers WHERE case_id = $1 AND kind = "
                          "'accept'",
                          ids[i]);
        assert_int_equal(PQntuples(res), 1);
        assert_string_equal(PQgetvalue(res, 0, 0), i < 2 ? "d_sla" : "d_later");
        PQclear(res);
    }
    cleanup(arr);
}

static void test_gauge_plan(void **state)
{
    char id[37], ids[64], plan[4096];
    (void)state;
    new_case(id, "assigned");
    snprintf(ids, sizeof(ids), "{%s}", id);
    PQclear(q("INSERT INTO sla_timers (case_id, kind, cycle, started_at, due_at, state, "
              "anchor_at, stopped_at) SELECT $1::uuid, 'resolve', g, now() - interval '300 days', "
              "now() - interval '290 days', 'stopped', now() - interval '300 days', "
              "now() - interval '295 days' FROM generate_series(100, 20099) g",
              id));
    PQclear(q("ANALYZE sla_timers", NULL));
    ctx.last_gauge_ms = util_mono_ms() - 20000; /* due now */
    sla_tick(&ctx, pg);
    assert_true(ctx.last_gauge_ms > util_mono_ms() - 5000); /* the gauge ran (prepared it) */
    itest_plan(pg, "EXECUTE st_pending", plan, sizeof(plan));
    if (!strstr(plan, "sla_timers_open") || strstr(plan, "Seq Scan on sla_timers"))
        fail_msg("the open-timer gauge does not use sla_timers_open:\n%s", plan);
    cleanup(ids);
}

static int setup(void **state)
{
    char err[512], path[1024];
    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "pg: %s\n", err);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/deploy/config/calendar/cn.json", KESU_SOURCE_DIR);
    cal = calendar_load(path, err, sizeof(err));
    policy = sla_policy_parse(policy_json, "itest.json", err, sizeof(err));
    if (!cal || !policy) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    policy->cal = cal;
    sla_ctx_init(&ctx, policy, NULL, NULL);
    /* what an interrupted earlier run left behind would fire in this run's scans */
    PGresult *res = PQexec(pg->conn, "SELECT COALESCE(array_agg(id)::text, '{}') FROM cases "
                                     "WHERE case_no LIKE 'ITS-%'");
    char *ids = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    cleanup(ids);
    free(ids);
    return 0;
}

static int teardown(void **state)
{
    pg_destroy(pg);
    sla_policy_free(policy);
    calendar_free(cal);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_two_scanners_exactly_once),
        cmocka_unit_test(test_crash_fires_once),
        cmocka_unit_test(test_recompute),
        cmocka_unit_test(test_assigned_after_done),
        cmocka_unit_test(test_reply_after_done),
        cmocka_unit_test(test_return_seen_late),
        cmocka_unit_test(test_gauge_plan),
        cmocka_unit_test(test_batch_claimed_cases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
