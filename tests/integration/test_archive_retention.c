/*
 * Integration: the archiver's contact-data retention pass against PostgreSQL.
 *
 * Complainants whose every case ended more than `days` ago lose their contact
 * data (kesu_complainant_purge). The pass works in rounds of `limit`, each its
 * own transaction, and says when every round was full so the archiver goes on
 * at its next tick instead of ten minutes later: a province makes ~96,000
 * complainants due a day, far more than one round of 100 every ten minutes.
 *
 * This run's rows are 20 years old and the pass is asked for 10 years, so only
 * they (and what an interrupted earlier run of this test left, purged first in
 * setup) can be due. pii_erasures is append-only, so the rows stay behind,
 * purged and never due again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "archive.h"
#include "itest.h"
#include "log.h"
#include "util.h"

#define DAYS 3650 /* this run's cases ended 20 years ago */

static pg_t *pg;

static PGresult *q(const char *sql, const char *p1)
{
    return itest_q(pg, sql, p1);
}

/* A complainant 20 years old with contact data, and (unless status is NULL)
 * one case of theirs in that status (received, or one that ended: withdrawn),
 * last changed `ended` ago. */
static void complainant(char *id, const char *status, const char *ended)
{
    char case_id[37], case_no[48];
    util_uuid(id);
    PQclear(q("INSERT INTO complainants (id, phone_enc, phone_mask, created_at) "
              "VALUES ($1::uuid, '\\x01'::bytea, '138****0000', now() - interval '20 years')",
              id));
    if (!status)
        return;
    util_uuid(case_id);
    snprintf(case_no, sizeof(case_no), "ITR-%.12s", case_id + 24);
    const char *v[4] = {case_id, case_no, id, ended};
    PQclear(itest_qv(pg,
                     "INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, "
                     "trace_id, complainant_id, created_at, updated_at) VALUES ($1::uuid, $2, "
                     "'\\x00'::bytea, 'web', 't', 'b', 'itest', $3::uuid, "
                     "now() - interval '20 years', now() - $4::interval)",
                     4, v));
    if (strcmp(status, "received") == 0)
        return;
    /* a case starts as received; withdrawn is one step from there */
    const char *w[3] = {case_id, status, ended};
    PQclear(itest_qv(pg,
                     "UPDATE cases SET status = $2, updated_at = now() - $3::interval "
                     "WHERE id = $1::uuid",
                     3, w));
}

static int purged(const char *id)
{
    PGresult *res =
        q("SELECT purged_at IS NOT NULL AND phone_enc IS NULL AND phone_mask IS NULL "
          "FROM complainants WHERE id = $1::uuid",
          id);
    int p = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return p;
}

static int run(int limit, int rounds, int *more)
{
    char err[512];
    int n = archive_retention_run(pg, DAYS, limit, rounds, more, err, sizeof(err));
    if (n < 0)
        fail_msg("retention pass: %s", err);
    return n;
}

/* 25 due: two full rounds of 10 leave a backlog; the next pass takes the
 * other 5 and says there is none; an open case, a case withdrawn yesterday and
 * a complainant without cases keep their contact data */
static void test_rounds(void **state)
{
    char due[25][37], open_id[37], recent_id[37], alone_id[37];
    int more = -1;
    (void)state;
    for (int i = 0; i < 25; i++)
        complainant(due[i], "withdrawn", "20 years");
    complainant(open_id, "received", "20 years");
    complainant(recent_id, "withdrawn", "1 day");
    complainant(alone_id, NULL, NULL);

    assert_int_equal(run(10, 2, &more), 20);
    assert_int_equal(more, 1);
    int n = 0;
    for (int i = 0; i < 25; i++)
        n += purged(due[i]);
    assert_int_equal(n, 20);

    assert_int_equal(run(10, 10, &more), 5);
    assert_int_equal(more, 0);
    for (int i = 0; i < 25; i++)
        assert_true(purged(due[i]));
    assert_false(purged(open_id));
    assert_false(purged(recent_id));
    assert_false(purged(alone_id));
    /* each purge is logged once, naming the retention */
    PGresult *res = q("SELECT count(*) FROM pii_erasures WHERE complainant_id = $1::uuid AND "
                      "kind = 'retention' AND actor = 'archiver'",
                      due[24]);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);

    assert_int_equal(run(10, 10, &more), 0);
    assert_int_equal(more, 0);
}

/* The pass reads the complainants not yet purged, not every one there ever
 * was (migration 0020's complainants_unpurged; without it: Seq Scan). */
static void test_plan(void **state)
{
    char plan[8192], id[37];
    int more;
    (void)state;
    PQclear(q("INSERT INTO complainants (id, created_at, purged_at) SELECT gen_random_uuid(), "
              "now() - interval '20 years', now() - interval '19 years' "
              "FROM generate_series(1, 20000)",
              NULL));
    complainant(id, "received", "20 years");
    PQclear(q("ANALYZE complainants", NULL));
    run(10, 1, &more); /* prepares as_retention on this connection */
    itest_plan(pg, "EXECUTE as_retention('3650', '10')", plan, sizeof(plan));
    if (!strstr(plan, "complainants_unpurged") || strstr(plan, "Seq Scan on complainants"))
        fail_msg("the retention pass does not use complainants_unpurged:\n%s", plan);
}

static int setup(void **state)
{
    char err[512];
    int more = 1;
    (void)state;
    log_init("itest", LOG_LVL_WARN);
    pg = pg_new(itest_pg());
    if (pg_connect(pg, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "pg: %s\n", err);
        return -1;
    }
    /* what an interrupted earlier run left due */
    for (int i = 0; i < 100 && more; i++)
        if (archive_retention_run(pg, DAYS, 1000, 10, &more, err, sizeof(err)) < 0) {
            fprintf(stderr, "retention: %s\n", err);
            return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_destroy(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_plan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
