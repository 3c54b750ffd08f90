/*
 * Unit tests: the whole classifier with the shipped files (the model the
 * build trained, deploy/config/classifier/rules.json and alerts.json,
 * deploy/config/domains.json).
 *
 * - domain accuracy of the model on the real labeled hotline messages it
 *   was trained on (Teddy Cup 2020 C, KESU_DATA_DIR, default ../shared/data
 *   beside the repository): a sanity check of training and loading (the
 *   honest figure is the cross-validated one, test_classify_model.c);
 * - a table of sentences for urgency and flags, Chinese and English;
 * - request types, categories and the confidence / needs_review rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"

static classify_t *cls;

static const char *source_dir(void)
{
    const char *d = getenv("KESU_SOURCE_DIR");
    return d && *d ? d : KESU_SOURCE_DIR;
}

static int setup(void **state)
{
    char rp[1024], ap[1024], dp[1024], err[1024];
    snprintf(rp, sizeof(rp), "%s/" CLASSIFY_DEFAULT_RULES, source_dir());
    snprintf(ap, sizeof(ap), "%s/" CLASSIFY_DEFAULT_ALERTS, source_dir());
    snprintf(dp, sizeof(dp), "%s/" CLASSIFY_DEFAULT_DOMAINS, source_dir());
    classify_paths_t p = {CLASSIFY_DEFAULT_MODEL, rp, ap, dp};
    cls = classify_load(&p, 0.5, err, sizeof(err));
    if (!cls) {
        fprintf(stderr, "cannot load the classifier: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    classify_free(cls);
    cls = NULL;
    return 0;
}

static void test_accuracy_on_labeled_messages(void **state)
{
    /* the shared data sits beside the repository (../shared/data), or KESU_DATA_DIR */
    char path[4096];
    const char *dir = getenv("KESU_DATA_DIR");
    snprintf(path, sizeof(path), "%s/teddy2020c-labeled-train.jsonl",
             dir && *dir ? dir : KESU_SOURCE_DIR "/../shared/data");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s not readable (set KESU_DATA_DIR to the shared data folder)", path);
    char *line = NULL;
    size_t cap = 0;
    int total = 0, right = 0, review = 0, review_wrong = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *row = json_loads(line, 0, &e);
        assert_non_null(row);
        const char *want =
            classify_domain_code(cls->rules, json_string_value(json_object_get(row, "label")));
        assert_non_null(want);
        classify_result_t res;
        assert_int_equal(classify_text(cls, json_string_value(json_object_get(row, "title")),
                                       json_string_value(json_object_get(row, "body")), &res),
                         0);
        int ok = strcmp(res.domain, want) == 0;
        total++;
        right += ok;
        review += res.needs_review;
        review_wrong += res.needs_review && !ok;
        json_decref(row);
    }
    free(line);
    fclose(f);
    double acc = total ? (double)right / total : 0;
    fprintf(stderr,
            "domain accuracy %.3f (%d/%d); needs_review %d, of which %d wrong; wrong and not "
            "flagged %d\n",
            acc, right, total, review, review_wrong, (total - right) - review_wrong);
    assert_true(total >= 100);
    assert_true(acc > 0.95);
    /* a review flag should find errors more often than chance */
    assert_true(review == 0 || (double)review_wrong / review > 1.0 - acc);
}

static const struct {
    const char *title, *body;
    const char *urgency;
    const char *flag; /* expected flag, NULL: none at all */
} urgency_cases[] = {
    {"小区燃气泄漏", "楼道里一股煤气味，燃气泄漏了，请马上派人来", "emergency", "public_safety"},
    {"楼下餐馆着火", "楼下餐馆着火了，浓烟很大", "emergency", "public_safety"},
    {"工地围墙坍塌", "施工工地围墙坍塌，压住了路边的车", "emergency", "public_safety"},
    {"小区严重积水", "连日暴雨，小区大面积积水，一楼住户被淹", "emergency", "public_safety"},
    {"路边电线掉落", "大风过后电线掉落在人行道上，可能漏电", "emergency", "public_safety"},
    {"配电箱漏电", "小区配电箱漏电，有小孩触电", "emergency", "public_safety"},
    {"我不想活了", "拖欠工资半年，实在活不下去，想自杀", "emergency", "self_harm"},
    {"有人要跳楼", "工地有个农民工站在楼顶要跳楼讨薪", "emergency", "self_harm"},
    {"Gas leak in building", "Strong smell of gas in the hallway, please send someone", "emergency",
     "public_safety"},
    {"Downed wire", "A live wire is down on the sidewalk and sparking", "emergency",
     "public_safety"},
    {"Basement flood", "Flood in the basement after the water main broke", "emergency",
     "public_safety"},
    {"I want to kill myself", "I lost my job and I want to end my life", "emergency", "self_harm"},
    {"村民集体上访", "拆迁补偿不到位，上百村民准备集体上访", "urgent", "mass_incident"},
    {"业主拉横幅维权", "开发商延期交房，业主们在售楼处拉横幅静坐", "urgent", "mass_incident"},
    {"我要找媒体曝光", "物业乱收费，再不处理我就找记者曝光", "urgent", "media"},
    {"举报局长受贿", "某局长收受开发商贿赂，利用职务之便为其办事", "normal", "corruption"},
    {"路面一点积水", "门口路面有一点积水，走路不方便", "normal", NULL},
    {"家里电线老化", "请问老旧小区电线改造有没有补贴", "low", NULL},
    {"咨询社保缴费", "请问灵活就业人员社保怎么缴费", "low", NULL},
    {"建议增加公交线路", "建议在新区增加一条公交线路", "low", NULL},
    {"表扬社区工作人员", "感谢社区工作人员耐心帮助老人办理手续，特此表扬", "low", NULL},
    {"停水三天急需解决", "小区停水三天了，老人孩子没水喝，请紧急处理", "urgent", NULL},
    {"No heat in apartment", "No heat and no hot water for three days, elderly tenant", "urgent",
     NULL},
    {"Pothole", "There is a pothole on the road near my house", "normal", NULL},
    {"Loud music", "Neighbors play loud music every night", "normal", NULL},
    {"Question about recycling", "How do I request a recycling bin?", "low", NULL},
};

static void test_urgency_and_flags(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(urgency_cases) / sizeof(urgency_cases[0]); i++) {
        classify_result_t res;
        assert_int_equal(classify_text(cls, urgency_cases[i].title, urgency_cases[i].body, &res),
                         0);
        int ok = strcmp(res.urgency, urgency_cases[i].urgency) == 0;
        if (urgency_cases[i].flag)
            ok &= classify_has_flag(&res, urgency_cases[i].flag);
        else
            ok &= res.nflags == 0;
        if (!ok) {
            fprintf(stderr, "case %zu \"%s\": urgency %s (want %s), %zu flags%s%s\n", i,
                    urgency_cases[i].title, res.urgency, urgency_cases[i].urgency, res.nflags,
                    res.nflags ? ", first " : "", res.nflags ? res.flags[0] : "");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static const struct {
    const char *title, *body, *domain, *request_type, *category;
} type_cases[] = {
    {"咨询公租房申请条件", "请问外地户口能否申请公租房，需要什么材料", "urban_construction",
     "consultation", "policy"},
    {"投诉物业服务差", "物业态度恶劣，保安辱骂业主", "urban_construction", "complaint",
     "staff_attitude"},
    {"举报化工厂偷排污水", "化工厂夜间偷排废水，河道发黑发臭", "environment", "report", "other"},
    {"建议延长公交末班车时间", "希望公交车末班车延迟到晚上十点", "transport", "suggestion",
     "other"},
    {"求助：孩子入学问题", "孩子到了入学年龄，学校不给报名，求助", "education_culture", "help",
     "other"},
    {"公司拖欠工资", "公司拖欠农民工工资三个月，劳动仲裁迟迟没有结果", "labour_social_security",
     "complaint", "efficiency"},
    {"景区门票乱涨价", "景区门票价格一年涨了三次，游客不满", "commerce_tourism", "complaint",
     "other"},
    {"表扬人民医院医生", "感谢人民医院的医生护士，手术很成功", "health_family_planning", "praise",
     "other"},
    {"Street light out", "The street light on my block has been out for weeks, please repair",
     "urban_construction", "complaint", "facilities"},
    {"Rats in the alley", "Rats everywhere in the alley behind the restaurant",
     "health_family_planning", "complaint", "other"},
};

static void test_types_and_categories(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(type_cases) / sizeof(type_cases[0]); i++) {
        classify_result_t res;
        assert_int_equal(classify_text(cls, type_cases[i].title, type_cases[i].body, &res), 0);
        if (strcmp(res.domain, type_cases[i].domain) != 0 ||
            strcmp(res.request_type, type_cases[i].request_type) != 0 ||
            strcmp(res.category, type_cases[i].category) != 0) {
            fprintf(stderr, "case %zu \"%s\": %s/%s/%s, want %s/%s/%s\n", i, type_cases[i].title,
                    res.domain, res.request_type, res.category, type_cases[i].domain,
                    type_cases[i].request_type, type_cases[i].category);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_confidence(void **state)
{
    classify_result_t res;
    /* nothing about any domain: the model's guess is unsure, a human looks */
    assert_int_equal(classify_text(cls, "你好", "一些无关的话", &res), 0);
    assert_true(res.confidence < 0.5);
    assert_true(res.needs_review);
    assert_string_equal(res.domain_source, "model");
    assert_string_equal(res.request_type, "complaint");
    assert_string_equal(res.urgency, "normal");
    /* empty and NULL text are fine: no Chinese, no keyword, the fallback domain */
    assert_int_equal(classify_text(cls, NULL, NULL, &res), 0);
    assert_string_equal(res.domain, "other");
    assert_string_equal(res.domain_source, "default");
    assert_true(res.needs_review);
    /* several strong unopposed hints: confident */
    assert_int_equal(
        classify_text(cls, "医院乱收费", "市人民医院门诊挂号后医生乱开药，患者看病贵", &res), 0);
    assert_string_equal(res.domain, "health_family_planning");
    assert_true(res.confidence > 0.7 && res.confidence <= 1.0);
    assert_false(res.needs_review);
    /* English keywords start a word: "pirate" holds no "rat" */
    assert_int_equal(classify_text(cls, "", "a pirate ship", &res), 0);
    assert_string_equal(res.domain, "other");
    assert_int_equal(classify_text(cls, "", "RATS in the ALLEY", &res), 0);
    assert_string_equal(res.domain, "health_family_planning");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy_on_labeled_messages),
        cmocka_unit_test(test_urgency_and_flags),
        cmocka_unit_test(test_types_and_categories),
        cmocka_unit_test(test_confidence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
