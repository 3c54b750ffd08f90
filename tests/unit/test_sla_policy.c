/*
 * Unit tests: SLA policy lookup (the shipped deploy/config/sla.json and the
 * precedence of entries), deadline computation with time_scale, and policy
 * validation errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sla_policy.h"

#define DAY 1440

static sla_policy_t *load_shipped(void)
{
    char path[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/config/sla.json", src && *src ? src : KESU_SOURCE_DIR);
    sla_policy_t *p = sla_policy_load(path, err, sizeof(err));
    if (!p)
        fail_msg("sla.json refused: %s", err);
    return p;
}

/* DESIGN.md 1.8 defaults, calendar minutes for now */
static const struct {
    const char *request_type, *urgency;
    int64_t accept, resolve;
} shipped[] = {
    {"complaint", "normal", 1 * DAY, 15 * DAY},
    {"report", "normal", 1 * DAY, 15 * DAY},
    {"consultation", "normal", 1 * DAY, 2 * DAY},
    {"consultation", "low", 1 * DAY, 2 * DAY},
    {"help", "normal", 1 * DAY, 10 * DAY},
    {"suggestion", "low", 1 * DAY, 10 * DAY},
    {"praise", "low", 1 * DAY, 10 * DAY},
    {"complaint", "emergency", 30, 1 * DAY},
    {"consultation", "emergency", 30, 1 * DAY},
    {"help", "emergency", 30, 1 * DAY},
    {"complaint", "urgent", 240, 15 * DAY},
    {"consultation", "urgent", 240, 2 * DAY},
    /* unknown or missing values fall through to the "*" entries */
    {NULL, NULL, 1 * DAY, 15 * DAY},
    {"", "", 1 * DAY, 15 * DAY},
    {"grumble", "normal", 1 * DAY, 15 * DAY},
    {"help", "panic", 1 * DAY, 10 * DAY},
    {NULL, "emergency", 30, 1 * DAY},
};

static void test_shipped_policy(void **state)
{
    sla_policy_t *p = load_shipped();
    int bad = 0;
    for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
        sla_limits_t lim;
        assert_int_equal(sla_policy_lookup(p, shipped[i].request_type, shipped[i].urgency, &lim),
                         0);
        if (lim.minutes[SLA_ACCEPT] != shipped[i].accept ||
            lim.minutes[SLA_RESOLVE] != shipped[i].resolve) {
            fprintf(stderr, "%s x %s: accept %lld resolve %lld, want %lld %lld\n",
                    shipped[i].request_type ? shipped[i].request_type : "(null)",
                    shipped[i].urgency ? shipped[i].urgency : "(null)",
                    (long long)lim.minutes[SLA_ACCEPT], (long long)lim.minutes[SLA_RESOLVE],
                    (long long)shipped[i].accept, (long long)shipped[i].resolve);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    sla_policy_free(p);
}

static void test_precedence(void **state)
{
    char err[512];
    /* every level sets a different accept limit, to see which one wins */
    sla_policy_t *p = sla_policy_parse(
        "{\"policies\":["
        "{\"request_type\":\"*\",\"urgency\":\"*\",\"accept_minutes\":1,\"resolve_minutes\":10},"
        "{\"request_type\":\"help\",\"urgency\":\"*\",\"accept_minutes\":2},"
        "{\"request_type\":\"*\",\"urgency\":\"urgent\",\"accept_minutes\":3},"
        "{\"request_type\":\"help\",\"urgency\":\"urgent\",\"accept_minutes\":4,"
        "\"resolve_minutes\":40}]}",
        "p.json", err, sizeof(err));
    if (!p)
        fail_msg("refused: %s", err);
    sla_limits_t lim;
    sla_policy_lookup(p, "help", "urgent", &lim); /* (type, urgency) */
    assert_int_equal(lim.minutes[SLA_ACCEPT], 4);
    assert_int_equal(lim.minutes[SLA_RESOLVE], 40);
    sla_policy_lookup(p, "complaint", "urgent", &lim); /* ("*", urgency) */
    assert_int_equal(lim.minutes[SLA_ACCEPT], 3);
    assert_int_equal(lim.minutes[SLA_RESOLVE], 10);
    sla_policy_lookup(p, "help", "normal", &lim); /* (type, "*") */
    assert_int_equal(lim.minutes[SLA_ACCEPT], 2);
    assert_int_equal(lim.minutes[SLA_RESOLVE], 10);    /* per limit: falls through to default */
    sla_policy_lookup(p, "complaint", "normal", &lim); /* ("*", "*") */
    assert_int_equal(lim.minutes[SLA_ACCEPT], 1);
    sla_policy_free(p);
}

static void test_due_at(void **state)
{
    sla_policy_t *p = load_shipped();
    sla_limits_t lim;
    const int64_t start = 1764576000000; /* 2025-12-01T08:00:00Z */
    sla_policy_lookup(p, "complaint", "normal", &lim);
    assert_true(lim.time_scale == 1.0);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 86400000LL);
    assert_int_equal(sla_due_at(&lim, SLA_RESOLVE, start), start + 15 * 86400000LL);
    sla_policy_lookup(p, "complaint", "emergency", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 30 * 60000LL);

    /* time_scale multiplies: 0.001 turns a day into 86.4 seconds */
    p->time_scale = 0.001;
    sla_policy_lookup(p, "complaint", "normal", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 86400);
    sla_policy_lookup(p, "complaint", "emergency", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 1800);
    p->time_scale = 2.0;
    sla_policy_lookup(p, "consultation", "normal", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_RESOLVE, start), start + 4 * 86400000LL);
    sla_policy_free(p);
}

static void test_kind_names(void **state)
{
    assert_string_equal(sla_kind_name(SLA_ACCEPT), "accept");
    assert_string_equal(sla_kind_name(SLA_RESOLVE), "resolve");
    assert_null(sla_kind_name(SLA__KINDS));
    assert_int_equal(sla_kind_parse("resolve"), SLA_RESOLVE);
    assert_int_equal(sla_kind_parse("reply"), -1);
    assert_int_equal(sla_kind_parse(NULL), -1);
}

#define DEF "{\"request_type\":\"*\",\"urgency\":\"*\",\"accept_minutes\":1,\"resolve_minutes\":2}"

static const struct {
    const char *what, *json, *expect;
} bad[] = {
    {"no default entry",
     "{\"policies\":[{\"request_type\":\"help\",\"urgency\":\"*\",\"accept_minutes\":1}]}",
     "p.json: policies: no default entry"},
    {"incomplete default",
     "{\"policies\":[{\"request_type\":\"*\",\"urgency\":\"*\",\"accept_minutes\":1}]}",
     "policies[0]: the default entry (\"*\" x \"*\") must set resolve_minutes"},
    {"unknown request type",
     "{\"policies\":[" DEF ",{\"request_type\":\"grumble\",\"urgency\":\"*\","
     "\"accept_minutes\":1}]}",
     "policies[1].request_type: missing or unknown"},
    {"unknown urgency",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"asap\","
     "\"accept_minutes\":1}]}",
     "policies[1].urgency: missing or unknown"},
    {"duplicate pair",
     "{\"policies\":[" DEF ",{\"request_type\":\"*\",\"urgency\":\"*\",\"accept_minutes\":5}]}",
     "policies[1]: request_type \"*\" x urgency \"*\" is already policies[0]"},
    {"zero minutes",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve_minutes\":0}]}",
     "policies[1].resolve_minutes: must be an integer from 1 to"},
    {"minutes as text",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve_minutes\":\"10\"}]}",
     "policies[1].resolve_minutes: must be an integer"},
    {"misspelt key",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve_minute\":10}]}",
     "policies[1].resolve_minute: unknown key"},
    {"entry without limits",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\"}]}",
     "policies[1]: sets no limit"},
    {"no policies", "{}", "p.json: policies: missing, empty or not an array"},
    {"syntax error", "{\"policies\":[\n" DEF ",\n]}", "p.json:3:"},
};

static void test_bad_policies(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        sla_policy_t *p = sla_policy_parse(bad[i].json, "p.json", err, sizeof(err));
        if (p) {
            sla_policy_free(p);
            fail_msg("%s: accepted", bad[i].what);
        }
        if (!strstr(err, bad[i].expect))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].what, err, bad[i].expect);
    }
    char err[512];
    assert_null(sla_policy_load("/nonexistent/sla.json", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/sla.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_policy), cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_due_at),         cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_bad_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
