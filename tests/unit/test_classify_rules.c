/*
 * Unit tests: loading and checking classifier rules. Every broken file is
 * refused at start with a message naming the file and the line (syntax) or
 * the JSON path (content); data-driven: one small document per mistake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"

#define DOMAINS_OK                                                                                 \
    "{\"domains\":[{\"code\":\"transport\",\"label\":\"交通运输\"},"                           \
    "{\"code\":\"other\",\"label\":\"其他\"}]}"

/* a minimal valid rules document; %s slots: domains classes, request type default
 * (flags live in the alert rules: test_classify_alerts.c) */
#define RULES_FMT                                                                                    \
    "{\"model\":\"t1\",\n"                                                                           \
    " \"domains\":{\"default\":\"other\",\"classes\":{%s}},\n"                                       \
    " \"request_types\":{\"default\":\"%s\",\"classes\":{\"consultation\":{\"zh\":{\"请问\":3}}}}" \
    ",\n"                                                                                            \
    " \"categories\":{\"default\":\"other\",\"classes\":{\"policy\":{\"zh\":{\"政策\":3}}}},\n"    \
    " \"urgency\":{\"default\":\"normal\",\"classes\":{\"urgent\":{\"zh\":{\"紧急\":2}}}}}\n"

#define DOM_OK     "\"transport\":{\"zh\":{\"公交\":3},\"en\":{\"Bus\":2}}"
#define FLAG_OK    "\"public_safety\":{\"min_score\":2,\"zh\":{\"火灾\":2}}"
#define BY_FLAG_OK "\"public_safety\":\"emergency\""

static char dir[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/kesu-classify-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/rules.json", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/domains.json", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

/* load rules text with domains text; returns the rules or NULL with err */
static classify_rules_t *load(const char *rules_text, const char *domains_text, char *err, size_t n)
{
    char rp[128], dp[128];
    snprintf(rp, sizeof(rp), "%s/rules.json", dir);
    snprintf(dp, sizeof(dp), "%s/domains.json", dir);
    write_file(rp, rules_text);
    write_file(dp, domains_text);
    return classify_rules_load(rp, dp, err, n);
}

static void test_minimal_valid(void **state)
{
    char text[4096], err[512] = "";
    snprintf(text, sizeof(text), RULES_FMT, DOM_OK, "complaint");
    classify_rules_t *r = load(text, DOMAINS_OK, err, sizeof(err));
    if (!r)
        fail_msg("valid rules refused: %s", err);
    assert_string_equal(r->model, "t1");
    assert_int_equal(r->title_weight, 2);
    classify_result_t res;
    /* "Bus" was stored lower-case; matching ignores ASCII case */
    assert_int_equal(classify_rules_text(r, "BUS late", "the bus is late", &res), 0);
    assert_string_equal(res.domain, "transport");
    assert_string_equal(res.domain_source, "rules");
    assert_int_equal(classify_rules_text(r, "紧急", "十分紧急", &res), 0);
    assert_string_equal(res.urgency, "urgent");
    assert_int_equal(classify_rules_text(r, "请问", "", &res), 0);
    assert_string_equal(res.request_type, "consultation");
    assert_string_equal(classify_domain_code(r, "交通运输"), "transport");
    assert_null(classify_domain_code(r, "不存在"));
    classify_rules_free(r);
}

static const struct {
    const char *what;
    const char *domains_class, *rt_default, *flags, *by_flag;
    const char *domains_json; /* NULL: DOMAINS_OK */
    const char *expect;       /* substring of the error */
} bad[] = {
    {"unknown domain", "\"trains\":{\"zh\":{\"火车\":2}}", "complaint", FLAG_OK, BY_FLAG_OK, NULL,
     "domains.classes.trains: unknown domain (not in domains.json)"},
    {"zero weight", "\"transport\":{\"zh\":{\"公交\":0}}", "complaint", FLAG_OK, BY_FLAG_OK, NULL,
     "domains.classes.transport.zh.\"公交\": weight must be an integer from 1 to 100"},
    {"weight not a number", "\"transport\":{\"zh\":{\"公交\":\"3\"}}", "complaint", FLAG_OK,
     BY_FLAG_OK, NULL, "weight must be an integer"},
    {"non-ASCII en keyword", "\"transport\":{\"en\":{\"公交\":2}}", "complaint", FLAG_OK,
     BY_FLAG_OK, NULL, "domains.classes.transport.en.\"公交\": an \"en\" keyword must be ASCII"},
    {"misspelt language", "\"transport\":{\"zn\":{\"公交\":2}}", "complaint", FLAG_OK, BY_FLAG_OK,
     NULL, "domains.classes.transport.zn: unknown key"},
    {"no keywords", "\"transport\":{\"zh\":{}}", "complaint", FLAG_OK, BY_FLAG_OK, NULL,
     "domains.classes.transport: has no keywords"},
    {"unknown request type default", DOM_OK, "grumble", FLAG_OK, BY_FLAG_OK, NULL,
     "request_types.default: unknown code \"grumble\""},
    {"domains without other", DOM_OK, "complaint", FLAG_OK, BY_FLAG_OK,
     "{\"domains\":[{\"code\":\"transport\",\"label\":\"交通运输\"}]}",
     "domains: needs the fallback domain \"other\""},
    {"domain code twice", DOM_OK, "complaint", FLAG_OK, BY_FLAG_OK,
     "{\"domains\":[{\"code\":\"other\",\"label\":\"a\"},{\"code\":\"other\",\"label\":\"b\"}]}",
     "domains[1].code: \"other\" appears twice"},
    {"domain code with capitals", DOM_OK, "complaint", FLAG_OK, BY_FLAG_OK,
     "{\"domains\":[{\"code\":\"Other\",\"label\":\"a\"}]}", "may use only a-z"},
    {"domain without label", DOM_OK, "complaint", FLAG_OK, BY_FLAG_OK,
     "{\"domains\":[{\"code\":\"other\"}]}", "domains[0]: needs string \"code\" and \"label\""},
    {"duplicate keyword", "\"transport\":{\"zh\":{\"公交\":2,\"公交\":3}}", "complaint", FLAG_OK,
     BY_FLAG_OK, NULL, "rules.json:2:"},
};

static void test_bad_rules(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[4096], err[512] = "";
        snprintf(text, sizeof(text), RULES_FMT, bad[i].domains_class, bad[i].rt_default);
        classify_rules_t *r =
            load(text, bad[i].domains_json ? bad[i].domains_json : DOMAINS_OK, err, sizeof(err));
        if (r) {
            classify_rules_free(r);
            fail_msg("%s: accepted", bad[i].what);
        }
        if (!strstr(err, bad[i].expect))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].what, err, bad[i].expect);
        /* every message names the file it is about */
        if (!strstr(err, dir))
            fail_msg("%s: error \"%s\" does not name the file", bad[i].what, err);
    }
}

static void test_syntax_error_names_line(void **state)
{
    char err[512] = "";
    classify_rules_t *r =
        load("{\"model\": \"x\",\n\"domains\": {,}\n}", DOMAINS_OK, err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "rules.json:2:"));
}

static void test_missing_file(void **state)
{
    char err[512] = "";
    assert_null(classify_rules_load("/nonexistent/rules.json", "/nonexistent/domains.json", err,
                                    sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/domains.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_valid),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
