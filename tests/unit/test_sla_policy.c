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

#include "calendar.h"
#include "sla_policy.h"

static calendar_t *load_cal(const char *name)
{
    char path[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/config/calendar/%s", src && *src ? src : KESU_SOURCE_DIR,
             name);
    calendar_t *cal = calendar_load(path, err, sizeof(err));
    if (!cal)
        fail_msg("%s refused: %s", name, err);
    return cal;
}

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

/* DESIGN.md 1.8 defaults */
static const struct {
    const char *request_type, *urgency;
    const char *accept, *resolve, *reply, *follow_up, *auto_close, *escalate;
} shipped[] = {
    {"complaint", "normal", "1wd", "15wd", "1wd", "2wd", "7d", "1wd"},
    {"report", "normal", "1wd", "15wd", "1wd", "2wd", "7d", "1wd"},
    {"consultation", "normal", "1wd", "2wd", "1wd", "2wd", "7d", "1wd"},
    {"consultation", "low", "1wd", "2wd", "1wd", "2wd", "7d", "1wd"},
    {"help", "normal", "1wd", "10wd", "1wd", "2wd", "7d", "1wd"},
    {"suggestion", "low", "1wd", "10wd", "1wd", "2wd", "7d", "1wd"},
    {"praise", "low", "1wd", "10wd", "1wd", "2wd", "7d", "1wd"},
    {"complaint", "emergency", "30m", "24h", "2h", "2wd", "7d", "30m"},
    {"consultation", "emergency", "30m", "24h", "2h", "2wd", "7d", "30m"},
    {"help", "emergency", "30m", "24h", "2h", "2wd", "7d", "30m"},
    {"complaint", "urgent", "4wh", "15wd", "1wd", "2wd", "7d", "4wh"},
    {"consultation", "urgent", "4wh", "2wd", "1wd", "2wd", "7d", "4wh"},
    /* unknown or missing values fall through to the "*" entries */
    {NULL, NULL, "1wd", "15wd", "1wd", "2wd", "7d", "1wd"},
    {"", "", "1wd", "15wd", "1wd", "2wd", "7d", "1wd"},
    {"grumble", "normal", "1wd", "15wd", "1wd", "2wd", "7d", "1wd"},
    {"help", "panic", "1wd", "10wd", "1wd", "2wd", "7d", "1wd"},
    {NULL, "emergency", "30m", "24h", "2h", "2wd", "7d", "30m"},
};

static void test_shipped_policy(void **state)
{
    sla_policy_t *p = load_shipped();
    int bad = 0;
    assert_int_equal(p->nwarn, 2);
    assert_int_equal(p->warn_percent[0], 50);
    assert_int_equal(p->warn_percent[1], 80);
    for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
        sla_limits_t lim;
        char got[6][16];
        assert_int_equal(sla_policy_lookup(p, shipped[i].request_type, shipped[i].urgency, &lim),
                         0);
        for (int k = 0; k < SLA__KINDS; k++)
            sla_limit_fmt(&lim.limit[k], got[k], sizeof(got[k]));
        sla_limit_fmt(&lim.escalate_after, got[5], sizeof(got[5]));
        const char *want[6] = {shipped[i].accept,    shipped[i].resolve,    shipped[i].reply,
                               shipped[i].follow_up, shipped[i].auto_close, shipped[i].escalate};
        for (int k = 0; k < 6; k++) {
            if (strcmp(got[k], want[k]) != 0) {
                fprintf(stderr, "%s x %s: limit %d is %s, want %s\n",
                        shipped[i].request_type ? shipped[i].request_type : "(null)",
                        shipped[i].urgency ? shipped[i].urgency : "(null)", k, got[k], want[k]);
                bad++;
            }
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
        "{\"request_type\":\"*\",\"urgency\":\"*\",\"accept\":\"1m\",\"resolve\":\"10m\","
        "\"reply\":\"1m\",\"follow_up\":\"1m\",\"auto_close\":\"1m\",\"escalate_after\":\"1m\"},"
        "{\"request_type\":\"help\",\"urgency\":\"*\",\"accept\":\"2m\"},"
        "{\"request_type\":\"*\",\"urgency\":\"urgent\",\"accept\":\"3m\"},"
        "{\"request_type\":\"help\",\"urgency\":\"urgent\",\"accept\":\"4m\","
        "\"resolve\":\"40m\"}]}",
        "p.json", err, sizeof(err));
    if (!p)
        fail_msg("refused: %s", err);
    sla_limits_t lim;
    sla_policy_lookup(p, "help", "urgent", &lim); /* (type, urgency) */
    assert_int_equal(lim.limit[SLA_ACCEPT].value, 4);
    assert_int_equal(lim.limit[SLA_RESOLVE].value, 40);
    sla_policy_lookup(p, "complaint", "urgent", &lim); /* ("*", urgency) */
    assert_int_equal(lim.limit[SLA_ACCEPT].value, 3);
    assert_int_equal(lim.limit[SLA_RESOLVE].value, 10);
    sla_policy_lookup(p, "help", "normal", &lim); /* (type, "*") */
    assert_int_equal(lim.limit[SLA_ACCEPT].value, 2);
    assert_int_equal(lim.limit[SLA_RESOLVE].value, 10); /* per limit: falls through to default */
    sla_policy_lookup(p, "complaint", "normal", &lim);  /* ("*", "*") */
    assert_int_equal(lim.limit[SLA_ACCEPT].value, 1);
    sla_policy_free(p);
}

static void test_due_at(void **state)
{
    sla_policy_t *p = load_shipped();
    calendar_t *cal = load_cal("cn.json");
    sla_limits_t lim;
    int64_t start, want;
    p->cal = cal;
    /* Friday 2026-02-13 10:00 Shanghai: accept within 1 working day lands on the
     * make-up Saturday; 15 working days cross the whole Spring Festival */
    assert_int_equal(calendar_parse_local(cal, "2026-02-13 10:00", &start), 0);
    sla_policy_lookup(p, "complaint", "normal", &lim);
    assert_true(lim.time_scale == 1.0);
    calendar_parse_local(cal, "2026-02-14 10:00", &want);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), want);
    /* working days after 02-13: 02-14(1), 02-24..27(5), 02-28(6), 03-02..06(11), 03-09..12(15) */
    calendar_parse_local(cal, "2026-03-12 10:00", &want);
    assert_int_equal(sla_due_at(&lim, SLA_RESOLVE, start), want);
    /* auto-close counts calendar days */
    assert_int_equal(sla_due_at(&lim, SLA_AUTO_CLOSE, start), start + 7 * 86400000LL);
    /* emergencies count calendar time, holidays included */
    sla_policy_lookup(p, "complaint", "emergency", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 30 * 60000LL);
    assert_int_equal(sla_due_at(&lim, SLA_RESOLVE, start), start + 24 * 3600000LL);

    /* time_scale multiplies the limit in its own measure */
    p->time_scale = 0.001;
    sla_policy_lookup(p, "complaint", "emergency", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 1800);
    sla_policy_lookup(p, "complaint", "normal", &lim);
    assert_int_equal(sla_due_at(&lim, SLA_ACCEPT, start), start + 25200); /* 7 h x 0.001 */
    sla_policy_free(p);
    calendar_free(cal);
}

static void test_limits(void **state)
{
    static const struct {
        const char *s;
        int ok;
        int64_t ms;
        int work;
    } t[] = {
        {"30m", 1, 30 * 60000LL, 0},  {"24h", 1, 24 * 3600000LL, 0}, {"7d", 1, 7 * 86400000LL, 0},
        {"90wm", 1, 90 * 60000LL, 1}, {"4wh", 1, 4 * 3600000LL, 1},  {"2wd", 1, 14 * 3600000LL, 1},
        {"0m", 0, 0, 0},              {"m", 0, 0, 0},                {"15", 0, 0, 0},
        {"15wx", 0, 0, 0},            {"-1d", 0, 0, 0},              {"1000000m", 0, 0, 0},
    };
    calendar_t *cal = load_cal("cn.json");
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        sla_limit_t l;
        char back[16];
        int rc = sla_limit_parse(t[i].s, &l);
        if ((rc == 0) != t[i].ok)
            fail_msg("%s: parse %d", t[i].s, rc);
        if (!t[i].ok)
            continue;
        assert_int_equal(sla_limit_ms(&l, cal, 1.0), t[i].ms);
        assert_int_equal(sla_limit_is_work(&l), t[i].work);
        sla_limit_fmt(&l, back, sizeof(back));
        assert_string_equal(back, t[i].s);
    }
    calendar_free(cal);
}

static void test_kind_names(void **state)
{
    assert_string_equal(sla_kind_name(SLA_ACCEPT), "accept");
    assert_string_equal(sla_kind_name(SLA_RESOLVE), "resolve");
    assert_string_equal(sla_kind_name(SLA_FOLLOW_UP), "follow_up");
    assert_string_equal(sla_kind_name(SLA_AUTO_CLOSE), "auto_close");
    assert_null(sla_kind_name(SLA__KINDS));
    assert_int_equal(sla_kind_parse("resolve"), SLA_RESOLVE);
    assert_int_equal(sla_kind_parse("reply"), SLA_REPLY);
    assert_int_equal(sla_kind_parse("later"), -1);
    assert_int_equal(sla_kind_parse(NULL), -1);
}

#define DEF                                                                                        \
    "{\"request_type\":\"*\",\"urgency\":\"*\",\"accept\":\"1m\",\"resolve\":\"2m\",\"reply\":"  \
    "\"1m\",\"follow_up\":\"1m\",\"auto_close\":\"1d\",\"escalate_after\":\"1m\"}"

static const struct {
    const char *what, *json, *expect;
} bad[] = {
    {"no default entry",
     "{\"policies\":[{\"request_type\":\"help\",\"urgency\":\"*\",\"accept\":\"1m\"}]}",
     "p.json: policies: no default entry"},
    {"incomplete default",
     "{\"policies\":[{\"request_type\":\"*\",\"urgency\":\"*\",\"accept\":\"1m\"}]}",
     "policies[0]: the default entry (\"*\" x \"*\") must set resolve"},
    {"unknown request type",
     "{\"policies\":[" DEF ",{\"request_type\":\"grumble\",\"urgency\":\"*\","
     "\"accept\":\"1m\"}]}",
     "policies[1].request_type: missing or unknown"},
    {"unknown urgency",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"asap\","
     "\"accept\":\"1m\"}]}",
     "policies[1].urgency: missing or unknown"},
    {"duplicate pair",
     "{\"policies\":[" DEF ",{\"request_type\":\"*\",\"urgency\":\"*\",\"accept\":\"5m\"}]}",
     "policies[1]: request_type \"*\" x urgency \"*\" is already policies[0]"},
    {"zero minutes",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve\":\"0m\"}]}",
     "policies[1].resolve: must be a duration"},
    {"minutes as text",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve\":10}]}",
     "policies[1].resolve: must be a duration"},
    {"limit over a year",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolve\":\"400d\"}]}",
     "policies[1].resolve: must be a duration"},
    {"bad warn_percent",
     "{\"warn_percent\":[80,50],\"policies\":[" DEF "]}", "warn_percent[1]: must be"},
    {"misspelt key",
     "{\"policies\":[" DEF ",{\"request_type\":\"help\",\"urgency\":\"*\","
     "\"resolved\":\"10m\"}]}",
     "policies[1].resolved: unknown key"},
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
        cmocka_unit_test(test_bad_policies),   cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
