/*
 * Unit tests: dispatch catalogue validation. Each broken catalogue is
 * refused at start with the JSON path of the mistake (data-driven: one
 * small document per mistake).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "dispatch_catalogue.h"

#define DEPTS                                                                                      \
    "\"departments\":[{\"code\":\"general\",\"name\":\"综合办\"},"                              \
    "{\"code\":\"desk\",\"name\":\"应急值守台\",\"emergency_desk\":true},"                    \
    "{\"code\":\"housing\",\"name\":\"住建局\"}]"
#define HANDLERS                                                                                   \
    "\"handlers\":[{\"id\":\"h1\",\"department\":\"housing\",\"name\":\"一科\","                 \
    "\"skills\":[\"urban_construction\"]}]"
#define DEFAULT_RULE "{\"id\":\"default\",\"department\":\"general\"}"

static const char *const domains[] = {"urban_construction", "transport", "other", NULL};

static const struct {
    const char *what, *json, *expect;
} bad[] = {
    {"rule with unknown department",
     "{" DEPTS "," HANDLERS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transport\","
     "\"department\":\"trafic\"}," DEFAULT_RULE "]}",
     "cat.json: rules[0].department: unknown department \"trafic\""},
    {"handler with unknown department",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h1\",\"department\":\"nowhere\",\"name\":\"x\","
     "\"skills\":[\"*\"]}],\"rules\":[" DEFAULT_RULE "]}",
     "cat.json: handlers[0].department: unknown department \"nowhere\""},
    {"unknown co-department",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transport\",\"department\":\"housing\","
     "\"co_departments\":[\"general\",\"ghost\"]}," DEFAULT_RULE "]}",
     "rules[0].co_departments[1]: unknown department \"ghost\""},
    {"co-department is the lead",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transport\",\"department\":\"housing\","
     "\"co_departments\":[\"housing\"]}," DEFAULT_RULE "]}",
     "rules[0].co_departments[0]: \"housing\" is already the lead department"},
    {"missing default rule",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transport\",\"department\":\"housing\"}]}",
     "cat.json: rules: no default rule"},
    {"keyword rule is no default",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"keywords\":[\"水\"],\"department\":\"housing\"}]}",
     "rules: no default rule"},
    {"duplicate department",
     "{\"departments\":[{\"code\":\"general\",\"name\":\"a\",\"emergency_desk\":true},"
     "{\"code\":\"general\",\"name\":\"b\"}],\"rules\":[" DEFAULT_RULE "]}",
     "departments[1].code: duplicate department \"general\" (also departments[0])"},
    {"duplicate handler",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h1\",\"department\":\"housing\",\"name\":\"a\","
     "\"skills\":[\"*\"]},{\"id\":\"h1\",\"department\":\"general\",\"name\":\"b\","
     "\"skills\":[\"*\"]}],\"rules\":[" DEFAULT_RULE "]}",
     "handlers[1].id: duplicate handler \"h1\" (also handlers[0])"},
    {"duplicate rule id",
     "{" DEPTS ",\"rules\":[{\"id\":\"default\",\"domain\":\"transport\",\"department\":"
     "\"housing\"}," DEFAULT_RULE "]}",
     "rules[1].id: duplicate rule \"default\" (also rules[0])"},
    {"rule that can never match",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transport\",\"department\":\"housing\"},"
     "{\"id\":\"r2\",\"domain\":\"transport\",\"department\":\"general\"}," DEFAULT_RULE "]}",
     "rules[1]: never matches: rules[0] (\"r1\") has the same domain, category and district"},
    {"no emergency desk",
     "{\"departments\":[{\"code\":\"general\",\"name\":\"a\"}],\"rules\":[" DEFAULT_RULE "]}",
     "departments: none has \"emergency_desk\": true"},
    {"two emergency desks",
     "{\"departments\":[{\"code\":\"general\",\"name\":\"a\",\"emergency_desk\":true},"
     "{\"code\":\"desk\",\"name\":\"b\",\"emergency_desk\":true}],\"rules\":[" DEFAULT_RULE "]}",
     "departments[1].emergency_desk: a second emergency desk (\"general\" is one already)"},
    {"emergency_desk not a boolean",
     "{\"departments\":[{\"code\":\"general\",\"name\":\"a\",\"emergency_desk\":\"yes\"}],"
     "\"rules\":[" DEFAULT_RULE "]}",
     "departments[0].emergency_desk: must be true or false"},
    {"unknown parent",
     "{\"departments\":[{\"code\":\"general\",\"name\":\"a\",\"emergency_desk\":true,"
     "\"parent\":\"city\"}],\"rules\":[" DEFAULT_RULE "]}",
     "departments[0].parent: unknown department \"city\""},
    {"department without name",
     "{\"departments\":[{\"code\":\"general\",\"emergency_desk\":true}],\"rules\":[" DEFAULT_RULE
     "]}",
     "departments[0].name: missing"},
    {"department code with capitals",
     "{\"departments\":[{\"code\":\"General\",\"name\":\"a\",\"emergency_desk\":true}],"
     "\"rules\":[" DEFAULT_RULE "]}",
     "departments[0].code: \"General\" may use only a-z, 0-9 and _"},
    {"rule with unknown domain",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"domain\":\"transportation\",\"department\":"
     "\"housing\"}," DEFAULT_RULE "]}",
     "rules[0].domain: unknown domain \"transportation\""},
    {"rule with unknown category",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"category\":\"rudeness\",\"department\":\"housing\"}"
               "," DEFAULT_RULE "]}",
     "rules[0].category: unknown category \"rudeness\""},
    {"handler with unknown skill",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h1\",\"department\":\"housing\",\"name\":\"a\","
     "\"skills\":[\"urban_construction\",\"plumbing\"]}],\"rules\":[" DEFAULT_RULE "]}",
     "handlers[0].skills[1]: unknown domain \"plumbing\""},
    {"handler without skills",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h1\",\"department\":\"housing\",\"name\":\"a\"}],"
     "\"rules\":[" DEFAULT_RULE "]}",
     "handlers[0].skills: needs at least one domain code"},
    {"handler capacity zero",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h1\",\"department\":\"housing\",\"name\":\"a\","
     "\"skills\":[\"*\"],\"capacity\":0}],\"rules\":[" DEFAULT_RULE "]}",
     "handlers[0].capacity: must be an integer >= 1"},
    {"handler id with a space",
     "{" DEPTS ",\"handlers\":[{\"id\":\"h 1\",\"department\":\"housing\",\"name\":\"a\","
     "\"skills\":[\"*\"]}],\"rules\":[" DEFAULT_RULE "]}",
     "handlers[0].id: \"h 1\" may use only"},
    {"rule id reserved for emergencies",
     "{" DEPTS ",\"rules\":[{\"id\":\"emergency\",\"domain\":\"transport\",\"department\":"
     "\"housing\"}," DEFAULT_RULE "]}",
     "rules[0].id: \"emergency\""},
    {"keywords not an array",
     "{" DEPTS
     ",\"rules\":[{\"id\":\"r1\",\"keywords\":\"水\",\"department\":\"housing\"}," DEFAULT_RULE
     "]}",
     "rules[0].keywords: must be an array of strings"},
    {"empty keyword",
     "{" DEPTS ",\"rules\":[{\"id\":\"r1\",\"keywords\":[\"水\",\"\"],\"department\":"
     "\"housing\"}," DEFAULT_RULE "]}",
     "rules[0].keywords[1]: must be a non-empty string"},
    {"rules missing", "{" DEPTS "}", "cat.json: rules: missing, empty or not an array"},
    {"departments missing", "{\"rules\":[" DEFAULT_RULE "]}",
     "cat.json: departments: missing, empty or not an array"},
    {"not an object", "[1,2]", "cat.json: the top level must be a JSON object"},
    {"syntax error", "{\n\"departments\": [\n,]}", "cat.json:3:"},
    {"duplicate key", "{\"rules\":[],\n\"rules\":[]}", "cat.json:2:"},
};

static void test_bad_catalogues(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        dispatch_catalogue_t *cat =
            dispatch_catalogue_parse(bad[i].json, "cat.json", domains, err, sizeof(err));
        if (cat) {
            dispatch_catalogue_free(cat);
            fail_msg("%s: accepted", bad[i].what);
        }
        if (!strstr(err, bad[i].expect))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].what, err, bad[i].expect);
    }
}

static void test_good_catalogue(void **state)
{
    char err[512] = "";
    dispatch_catalogue_t *cat =
        dispatch_catalogue_parse("{" DEPTS "," HANDLERS ",\"rules\":[" DEFAULT_RULE "]}",
                                 "cat.json", domains, err, sizeof(err));
    if (!cat)
        fail_msg("refused: %s", err);
    assert_int_equal(cat->ndepts, 3);
    assert_int_equal(cat->nhandlers, 1);
    assert_int_equal(cat->handlers[0].capacity, 50); /* default */
    assert_string_equal(cat->rules[0].domain, "*");
    assert_non_null(dispatch_dept_find(cat, "housing"));
    assert_null(dispatch_dept_find(cat, "nowhere"));
    dispatch_catalogue_free(cat);
}

static void test_missing_file(void **state)
{
    char err[512] = "";
    assert_null(dispatch_catalogue_load("/nonexistent/catalogue.json", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/catalogue.json"));
    assert_null(dispatch_domains_load("/nonexistent/domains.json", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/domains.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_catalogues),
        cmocka_unit_test(test_good_catalogue),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
