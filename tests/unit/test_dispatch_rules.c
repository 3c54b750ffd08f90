/*
 * Unit tests: dispatch routing, table-driven — the precedence of rules on a
 * small catalogue built for it, and the shipped city catalogue
 * (deploy/config/catalogue.json) on typical cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_catalogue.h"

/* rules deliberately out of precedence order: the loader sorts them */
static const char *precedence_catalogue =
    "{\"departments\":["
    "{\"code\":\"general\",\"name\":\"综合办\"},"
    "{\"code\":\"desk\",\"name\":\"应急值守台\",\"emergency_desk\":true},"
    "{\"code\":\"a\",\"name\":\"A\"},{\"code\":\"b\",\"name\":\"B\"},"
    "{\"code\":\"c\",\"name\":\"C\"},{\"code\":\"d\",\"name\":\"D\"},"
    "{\"code\":\"e\",\"name\":\"E\"},{\"code\":\"f\",\"name\":\"F\"}],"
    "\"rules\":["
    "{\"id\":\"default\",\"department\":\"general\"},"
    "{\"id\":\"dom\",\"domain\":\"transport\",\"department\":\"a\",\"co_departments\":[\"f\"]},"
    "{\"id\":\"cat\",\"category\":\"staff_attitude\",\"department\":\"b\"},"
    "{\"id\":\"domcat\",\"domain\":\"transport\",\"category\":\"facilities\",\"department\":\"e\"},"
    "{\"id\":\"dist\",\"district\":\"430102\",\"department\":\"c\"},"
    "{\"id\":\"kw\",\"keywords\":[\"地铁\",\"Subway\"],\"department\":\"d\"},"
    "{\"id\":\"kw2\",\"keywords\":[\"地铁站\"],\"department\":\"e\"}"
    "]}";

typedef struct route_case {
    const char *what;
    const char *domain, *category, *urgency, *flag, *district, *title, *body;
    const char *rule, *department;
    const char *co; /* comma-joined, "" for none */
    int emergency;
} route_case_t;

static const route_case_t precedence_cases[] = {
    {"domain rule", "transport", "other", "normal", NULL, "", "公交晚点", "", "dom", "a", "f", 0},
    {"category beats domain", "transport", "staff_attitude", "normal", NULL, "", "", "", "cat", "b",
     "", 0},
    {"domain+category beats category alone", "transport", "facilities", "normal", NULL, NULL, "",
     "", "domcat", "e", "", 0},
    {"district beats domain+category", "transport", "facilities", "normal", NULL, "430102", "", "",
     "dist", "c", "", 0},
    {"keywords beat district", "transport", "facilities", "normal", NULL, "430102", "",
     "地铁口的扶梯坏了", "kw", "d", "", 0},
    {"equal specificity: earlier in file", "environment", "other", "normal", NULL, "", "地铁站噪音",
     "", "kw", "d", "", 0},
    {"no keyword, no district: default", "environment", "other", "normal", NULL, "", "", "",
     "default", "general", "", 0},
    {"ASCII keywords ignore case", "other", "other", "normal", NULL, "", "SUBWAY delays", "", "kw",
     "d", "", 0},
    {"district of another case does not match", "environment", "other", "normal", NULL, "430103",
     "", "", "default", "general", "", 0},
    {"nothing specific: default", "education_culture", "policy", "low", NULL, "", "", "", "default",
     "general", "", 0},
    {"NULL fields: default", NULL, NULL, NULL, NULL, NULL, NULL, NULL, "default", "general", "", 0},
    {"emergency urgency: desk leads, rule department and its co handle with it", "transport",
     "other", "emergency", NULL, "", "", "", "emergency", "desk", "a,f", 1},
    {"public_safety flag is an emergency whatever the urgency", "environment", "other", "normal",
     "public_safety", "", "", "", "emergency", "desk", "general", 1},
    {"other flags are not", "environment", "other", "urgent", "media", "", "", "", "default",
     "general", "", 0},
};

static void check_cases(const dispatch_catalogue_t *cat, const route_case_t *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const route_case_t *c = &cases[i];
        const char *flags[1] = {c->flag};
        dispatch_input_t in = {.domain = c->domain,
                               .category = c->category,
                               .urgency = c->urgency,
                               .flags = flags,
                               .nflags = c->flag ? 1 : 0,
                               .district = c->district,
                               .title = c->title,
                               .body = c->body};
        dispatch_route_t r;
        if (dispatch_route(cat, &in, &r) != 0) {
            fprintf(stderr, "%s: no route\n", c->what);
            bad++;
            continue;
        }
        char co[256] = "";
        for (size_t k = 0; k < r.nco; k++)
            snprintf(co + strlen(co), sizeof(co) - strlen(co), "%s%s", k ? "," : "", r.co[k]);
        if (strcmp(r.rule_id, c->rule) || strcmp(r.department, c->department) ||
            strcmp(co, c->co) || r.emergency != c->emergency) {
            fprintf(stderr, "%s: got rule=%s dept=%s co=%s emergency=%d, want %s %s %s %d\n",
                    c->what, r.rule_id, r.department, co, r.emergency, c->rule, c->department,
                    c->co, c->emergency);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_precedence(void **state)
{
    char err[512];
    dispatch_catalogue_t *cat =
        dispatch_catalogue_parse(precedence_catalogue, "precedence.json", NULL, err, sizeof(err));
    if (!cat)
        fail_msg("catalogue refused: %s", err);
    /* sorted: keywords first, default last */
    assert_string_equal(cat->rules[0].id, "kw");
    assert_string_equal(cat->rules[1].id, "kw2");
    assert_string_equal(cat->rules[cat->nrules - 1].id, "default");
    assert_string_equal(cat->emergency_desk->code, "desk");
    check_cases(cat, precedence_cases, sizeof(precedence_cases) / sizeof(precedence_cases[0]));
    dispatch_catalogue_free(cat);
}

static const route_case_t city_cases[] = {
    {"water cut", "urban_construction", "facilities", "urgent", NULL, "", "小区停水三天", "",
     "water-supply", "water_affairs", "", 0},
    {"property management", "urban_construction", "service_quality", "normal", NULL, "",
     "物业乱收费", "物业公司每月多收停车费", "tx-urban-construction-09", "housing", "", 0},
    {"illegal structure", "urban_construction", "other", "normal", NULL, "", "楼顶违建",
     "邻居在楼顶私搭乱建", "city-management", "urban_management", "", 0},
    {"pothole-free trash case in English", "urban_construction", "facilities", "normal", NULL, "",
     "Missed trash pickup", "Garbage not collected", "city-management", "urban_management", "", 0},
    {"night construction noise", "environment", "other", "normal", NULL, "", "夜间施工扰民",
     "工地夜间施工噪音很大", "construction-noise", "ecology", "urban_management", 0},
    {"factory pollution", "environment", "other", "normal", NULL, "", "化工厂偷排废水", "",
     "environment", "ecology", "", 0},
    {"taxi", "transport", "service_quality", "normal", NULL, "", "出租车拒载", "",
     "tx-transport-01", "transport", "", 0},
    {"plain transport", "transport", "service_quality", "normal", NULL, "", "司机态度差", "",
     "transport", "transport", "", 0},
    {"courier (taxonomy rule)", "transport", "service_quality", "normal", NULL, "",
     "快递丢件没人管", "", "tx-transport-05", "postal", "", 0},
    {"demolition (taxonomy rule, co-handled)", "urban_construction", "other", "normal", NULL, "",
     "房屋拆迁安置补偿不到位", "", "tx-urban-construction-06", "housing", "planning", 0},
    {"school fees", "education_culture", "policy", "normal", NULL, "", "学校乱收费", "",
     "tx-education-culture-03", "education", "", 0},
    {"museum", "education_culture", "other", "normal", NULL, "", "博物馆周一闭馆", "",
     "culture-sports", "culture_tourism", "", 0},
    {"unpaid wages", "labour_social_security", "other", "urgent", NULL, "", "拖欠工资",
     "工地拖欠农民工工资半年", "wage-arrears", "hrss", "housing", 0},
    {"pension", "labour_social_security", "policy", "low", NULL, "", "养老保险怎么转移", "",
     "labour-social-security", "hrss", "", 0},
    {"pyramid scheme", "commerce_tourism", "other", "normal", NULL, "", "小区有人搞传销", "",
     "market-order", "market_regulation", "", 0},
    {"tourist trap", "commerce_tourism", "service_quality", "normal", NULL, "", "景区强制消费", "",
     "tourism", "culture_tourism", "market_regulation", 0},
    {"foreign trade", "commerce_tourism", "policy", "low", NULL, "", "出口退税政策", "",
     "commerce-tourism", "commerce", "", 0},
    {"food poisoning", "health_family_planning", "other", "urgent", NULL, "", "餐馆食物中毒", "",
     "food-drug-safety", "market_regulation", "health", 0},
    {"hospital", "health_family_planning", "staff_attitude", "normal", NULL, "", "医生态度差", "",
     "health-family-planning", "health", "", 0},
    {"unclassifiable", "other", "other", "normal", NULL, "", "你好", "", "default",
     "general_office", "", 0},
    {"gas leak", "urban_construction", "facilities", "emergency", "public_safety", "", "燃气泄漏",
     "", "emergency", "emergency_desk", "housing", 1},
    {"flooded underpass with water cut", "urban_construction", "facilities", "emergency",
     "public_safety", "", "下穿隧道积水，供水管爆裂", "", "emergency", "emergency_desk",
     "water_affairs", 1},
};

static void test_city_catalogue(void **state)
{
    char path[1024], dpath[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    if (!src || !*src)
        src = KESU_SOURCE_DIR;
    snprintf(path, sizeof(path), "%s/deploy/config/catalogue.json", src);
    snprintf(dpath, sizeof(dpath), "%s/deploy/config/domains.json", src);
    char **domains = dispatch_domains_load(dpath, err, sizeof(err));
    if (!domains)
        fail_msg("domains: %s", err);
    dispatch_catalogue_t *cat =
        dispatch_catalogue_load(path, (const char *const *)domains, err, sizeof(err));
    dispatch_codes_free(domains);
    if (!cat)
        fail_msg("catalogue refused: %s", err);
    /* every department has a handler, every domain a domain rule with skilled handlers */
    for (size_t i = 0; i < cat->ndepts; i++) {
        int n = 0;
        for (size_t k = 0; k < cat->nhandlers; k++)
            n += strcmp(cat->handlers[k].department, cat->depts[i].code) == 0;
        if (n < 2)
            fail_msg("department %s has %d handlers", cat->depts[i].code, n);
    }
    check_cases(cat, city_cases, sizeof(city_cases) / sizeof(city_cases[0]));
    dispatch_catalogue_free(cat);
}

static void test_array_literal(void **state)
{
    char out[64];
    const char *codes[] = {"a", "b_c"};
    assert_int_equal(dispatch_array_literal(codes, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "{\"a\",\"b_c\"}");
    assert_int_equal(dispatch_array_literal(codes, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "{}");
    assert_int_equal(dispatch_array_literal(codes, 2, out, 6), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_city_catalogue),
        cmocka_unit_test(test_array_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
