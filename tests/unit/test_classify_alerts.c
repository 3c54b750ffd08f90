/*
 * Unit tests: emergency and sensitive-case detection with the shipped
 * alert rules (deploy/config/classifier/alerts.json), plus the matcher
 * under them (acmatch) and the checks of a broken rules file.
 *
 * The table holds positive and negative sentences in Chinese and English,
 * with negations ("没有闻到煤气味", "no smell of gas") and near-misses
 * (消防演练, gas station). Emergency recall matters most: every positive of
 * public_safety / self_harm must be found (recall 1.0 asserted); precision
 * over all flags is printed and must stay high.
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

#include "acmatch.h"
#include "alert.h"
#include "classify.h"

static alert_rules_t *rules;

static const char *source_dir(void)
{
    const char *d = getenv("KESU_SOURCE_DIR");
    return d && *d ? d : KESU_SOURCE_DIR;
}

static int setup(void **state)
{
    char p[1024], err[1024];
    snprintf(p, sizeof(p), "%s/" CLASSIFY_DEFAULT_ALERTS, source_dir());
    rules = alert_rules_load(p, err, sizeof(err));
    if (!rules) {
        fprintf(stderr, "cannot load %s: %s\n", p, err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    alert_rules_free(rules);
    return 0;
}

/* flag: the flag expected (NULL: no flag at all); urgency: the level expected at least */
static const struct {
    const char *text, *flag, *urgency;
} table[] = {
    /* public safety, Chinese */
    {"楼道里一股煤气味，燃气泄漏了，请马上派人来", "public_safety", "emergency"},
    {"厨房闻到很浓的煤气味道", "public_safety", "emergency"},
    {"小区天然气泄漏，居民很害怕", "public_safety", "emergency"},
    {"楼下餐馆着火了，浓烟很大", "public_safety", "emergency"},
    {"仓库起火，火势很大", "public_safety", "emergency"},
    {"居民楼发生火灾，有人被困", "public_safety", "emergency"},
    {"工地围墙坍塌，压住了路边的车", "public_safety", "emergency"},
    {"老房子墙体倒塌了", "public_safety", "emergency"},
    {"路面突然塌陷出一个大坑", "public_safety", "emergency"},
    {"山体滑坡堵住了公路", "public_safety", "emergency"},
    {"连日暴雨，小区大面积积水，一楼住户被淹", "public_safety", "emergency"},
    {"地下车库被淹了，水还在涨", "public_safety", "emergency"},
    {"城区内涝严重，车辆被困", "public_safety", "emergency"},
    {"大风过后电线掉落在人行道上，可能漏电", "public_safety", "emergency"},
    {"小区配电箱漏电，有小孩触电", "public_safety", "emergency"},
    {"路边电线断了垂在地上", "public_safety", "emergency"},
    {"电线裸露在外，非常危险", "public_safety", "emergency"},
    {"化工厂发生爆炸，声音很大", "public_safety", "emergency"},
    {"井盖丢失，晚上有人掉进去", "public_safety", "emergency"},
    {"电梯故障，老人困在电梯里", "public_safety", "emergency"},
    {"危房随时可能倒塌，住户还没撤离", "public_safety", "emergency"},
    {"有毒气体泄漏，附近居民头晕", "public_safety", "emergency"},
    {"水库决堤，下游村庄危险", "public_safety", "emergency"},
    {"楼道冒烟，还有电火花", "public_safety", "emergency"},
    {"高压线断了落在田里", "public_safety", "emergency"},
    /* public safety, English */
    {"Strong smell of gas in the hallway, please send someone", "public_safety", "emergency"},
    {"Gas leak in the basement of our building", "public_safety", "emergency"},
    {"I smell gas near the stove", "public_safety", "emergency"},
    {"The apartment next door is on fire", "public_safety", "emergency"},
    {"There is a fire in the dumpster behind the store", "public_safety", "emergency"},
    {"A live wire is down on the sidewalk and sparking", "public_safety", "emergency"},
    {"Downed wires across the road after the storm", "public_safety", "emergency"},
    {"Power line down on Main Street", "public_safety", "emergency"},
    {"Flood in the basement after the water main broke", "public_safety", "emergency"},
    {"The street is flooded and cars are stuck", "public_safety", "emergency"},
    {"Part of the ceiling collapsed in the lobby", "public_safety", "emergency"},
    {"A sinkhole opened in the middle of the road", "public_safety", "emergency"},
    {"Carbon monoxide alarm going off, family feels dizzy", "public_safety", "emergency"},
    {"Loud explosion at the factory", "public_safety", "emergency"},
    {"Exposed wires hanging from the lamp post", "public_safety", "emergency"},
    /* self-harm */
    {"拖欠工资半年，实在活不下去，想自杀", "self_harm", "emergency"},
    {"工地有个农民工站在楼顶要跳楼讨薪", "self_harm", "emergency"},
    {"再不解决我就喝农药", "self_harm", "emergency"},
    {"我真的不想活了", "self_harm", "emergency"},
    {"她说要一死了之", "self_harm", "emergency"},
    {"I want to kill myself", "self_harm", "emergency"},
    {"I lost my job and I want to end my life", "self_harm", "emergency"},
    {"My neighbor says he is suicidal", "self_harm", "emergency"},
    {"I might hurt myself if nothing changes", "self_harm", "emergency"},
    {"He threatened suicide at the office", "self_harm", "emergency"},
    /* mass incidents */
    {"拆迁补偿不到位，上百村民准备集体上访", "mass_incident", "urgent"},
    {"开发商延期交房，业主们在售楼处拉横幅静坐", "mass_incident", "urgent"},
    {"工人罢工围堵厂门", "mass_incident", "urgent"},
    {"村民堵路抗议污染", "mass_incident", "urgent"},
    {"Residents plan a protest at city hall tomorrow", "mass_incident", "urgent"},
    {"A riot broke out near the stadium", "mass_incident", "urgent"},
    /* media */
    {"物业乱收费，再不处理我就找记者曝光", "media", "urgent"},
    {"我已经联系了电视台和报社", "media", "urgent"},
    {"这件事我会发到网上让大家评评理", "media", "urgent"},
    {"I will call a reporter from the newspaper", "media", "urgent"},
    {"I am going to go public on social media", "media", "urgent"},
    /* corruption */
    {"某局长收受开发商贿赂，利用职务之便为其办事", "corruption", "normal"},
    {"村干部贪污扶贫款", "corruption", "normal"},
    {"举报有人挪用公款", "corruption", "normal"},
    {"The inspector asked me for a bribe", "corruption", "normal"},
    {"Officials took kickbacks from the contractor", "corruption", "normal"},
    {"He embezzled public funds", "corruption", "normal"},
    /* negations: nothing happened */
    {"昨天没有闻到煤气味，只是想问一下燃气费", NULL, NULL},
    {"经检查不是燃气泄漏，是下水道的味道", NULL, NULL},
    {"并没有发生火灾，只是烧烤的烟", NULL, NULL},
    {"车库没有被淹，只是排水慢", NULL, NULL},
    {"事故中没有人受伤", NULL, NULL},
    {"并非坍塌，只是墙皮脱落", NULL, NULL},
    {"There is no gas leak, the smell came from the sewer", NULL, NULL},
    {"It was not a fire, just steam from the vent", NULL, NULL},
    {"No sign of flooding in the basement anymore", NULL, NULL},
    {"Nobody was injured and there was no fire", NULL, NULL},
    {"I am not suicidal, just frustrated with the wait", NULL, NULL},
    /* near-misses: a term inside something else */
    {"小区组织消防演练，噪音太大", NULL, NULL},
    {"燃气费涨价太快，希望公开标准", NULL, NULL},
    {"请问燃气开户需要什么材料", NULL, NULL},
    {"火车站附近出租车拒载", NULL, NULL},
    {"楼下火锅店油烟扰民", NULL, NULL},
    {"他上火了，医院开药太贵", NULL, NULL},
    {"抢红包活动是不是诈骗", NULL, NULL},
    {"集体户口怎么迁移", NULL, NULL},
    {"The gas station on 5th sells expired snacks", NULL, NULL},
    {"Gas prices are too high this month", NULL, NULL},
    {"The fire drill alarm was too loud at night", NULL, NULL},
    {"My employer fired me without notice", NULL, NULL},
    {"The fire hydrant is leaking water", NULL, NULL},
    {"Please fix the corrupted file on the city website", NULL, NULL},
    {"The media player at the library is broken", NULL, NULL},
    /* ordinary complaints with one weak hint only */
    {"门口路面有一点积水，走路不方便", NULL, NULL},
    {"请问老旧小区电线改造有没有补贴", NULL, NULL},
    {"燃气公司服务态度差，维修拖了一周", NULL, NULL},
    {"小区墙上有裂缝，希望物业看看", NULL, NULL},
    {"Wires hanging from the pole look ugly", NULL, NULL},
    {"There is smoke from the neighbour's barbecue every weekend", NULL, NULL},
    {"公交车经常晚点，影响上班", NULL, NULL},
    {"学校食堂饭菜质量差", NULL, NULL},
    {"Pothole on the road near my house", NULL, NULL},
    {"Loud music from the bar every night", NULL, NULL},
    {"社保卡补办流程太复杂", NULL, NULL},
    {"景区门票价格一年涨了三次", NULL, NULL},
    {"医院挂号难，排队三个小时", NULL, NULL},
};

static int has_flag(const alert_result_t *r, const char *flag)
{
    for (size_t i = 0; i < r->nflags; i++)
        if (strcmp(r->flags[i], flag) == 0)
            return 1;
    return 0;
}

static void test_table(void **state)
{
    size_t n = sizeof(table) / sizeof(table[0]);
    int emerg_pos = 0, emerg_found = 0, flagged = 0, flagged_right = 0, pos = 0, found = 0;
    int bad = 0, zh = 0, en = 0, negatives = 0;
    for (size_t i = 0; i < n; i++) {
        alert_result_t r;
        assert_int_equal(alert_scan(rules, NULL, table[i].text, &r), 0);
        int is_zh = (unsigned char)table[i].text[0] >= 0x80;
        zh += is_zh;
        en += !is_zh;
        int emergency = table[i].flag && (!strcmp(table[i].flag, "public_safety") ||
                                          !strcmp(table[i].flag, "self_harm"));
        flagged += r.nflags > 0;
        if (table[i].flag) {
            int ok = has_flag(&r, table[i].flag) && r.severity >= alert_severity(table[i].urgency);
            pos++;
            found += ok;
            flagged_right += has_flag(&r, table[i].flag);
            emerg_pos += emergency;
            emerg_found += emergency && ok;
            if (!ok) {
                fprintf(stderr, "missed %zu \"%s\": want %s/%s, got %zu flags severity %d\n", i,
                        table[i].text, table[i].flag, table[i].urgency, r.nflags, r.severity);
                bad++;
            }
        } else {
            negatives++;
            if (r.nflags > 0 || r.severity >= 3) {
                fprintf(stderr, "false alarm %zu \"%s\": %s\n", i, table[i].text,
                        r.nflags ? r.flags[0] : "emergency urgency");
                bad++;
            }
        }
    }
    double precision = flagged ? (double)flagged_right / flagged : 1;
    fprintf(stderr,
            "alert table: %zu sentences (%d zh, %d en; %d positive, %d negative): emergency "
            "recall %d/%d, all-flag recall %d/%d, precision %.3f\n",
            n, zh, en, pos, negatives, emerg_found, emerg_pos, found, pos, precision);
    assert_true(n >= 100);
    assert_true(zh >= 30 && en >= 30);
    assert_int_equal(emerg_found, emerg_pos); /* emergency recall 1.0 */
    assert_true(precision >= 0.95);
    assert_int_equal(bad, 0);
}

static void test_title_and_once(void **state)
{
    alert_result_t r;
    /* a term counts once however often: one weak word repeated is still weak */
    alert_scan(rules, "积水", "积水积水积水", &r);
    assert_int_equal(r.nflags, 0);
    /* title and body together: two weak hints make a flag */
    alert_scan(rules, "积水", "电线泡在水里", &r);
    assert_true(has_flag(&r, "public_safety"));
    /* a negation in another clause does not cancel */
    alert_scan(rules, NULL, "没有人管，现在着火了", &r);
    assert_true(has_flag(&r, "public_safety"));
}

/* ---- the matcher ---- */

typedef struct hits {
    uint32_t id[16];
    size_t start[16], n;
} hits_t;

static int on_hit(void *arg, uint32_t id, size_t start, size_t end)
{
    hits_t *h = arg;
    if (h->n < 16) {
        h->id[h->n] = id;
        h->start[h->n++] = start;
    }
    return 0;
}

static void test_acmatch(void **state)
{
    acmatch_t *ac = acmatch_new();
    assert_non_null(ac);
    assert_int_equal(acmatch_add(ac, "he", 1, 0), 0);
    assert_int_equal(acmatch_add(ac, "she", 2, 0), 0);
    assert_int_equal(acmatch_add(ac, "hers", 3, 0), 0);
    assert_int_equal(acmatch_add(ac, "Rat", 4, ACMATCH_WORD_START | ACMATCH_WORD_END), 0);
    assert_int_equal(acmatch_add(ac, "火灾", 5, 0), 0);
    assert_int_equal(acmatch_add(ac, "", 6, 0), -1);
    assert_int_equal(acmatch_build(ac), 0);
    hits_t h = {0};
    /* overlapping patterns, all reported in end order */
    assert_int_equal(acmatch_scan(ac, "ushers", 6, on_hit, &h), 3);
    assert_int_equal(h.id[0], 2);
    assert_int_equal(h.id[1], 1);
    assert_int_equal(h.id[2], 3);
    assert_int_equal(h.start[2], 2);
    /* word boundaries and case folding */
    memset(&h, 0, sizeof(h));
    assert_int_equal(acmatch_scan(ac, "pirate RATS a RAT.", 18, on_hit, &h), 1);
    assert_int_equal(h.id[0], 4);
    assert_int_equal(h.start[0], 14);
    /* UTF-8: bytes, never half a character */
    memset(&h, 0, sizeof(h));
    assert_int_equal(acmatch_scan(ac, "发生火灾了", strlen("发生火灾了"), on_hit, &h), 1);
    assert_int_equal(h.start[0], 6);
    assert_int_equal(acmatch_add(ac, "late", 7, 0), -1); /* built: closed */
    acmatch_free(ac);
}

/* ---- broken rules files ---- */

static const struct {
    const char *text, *expect;
} bad_files[] = {
    {"{\"signals\":{}}", "signals: missing, empty"},
    {"{\"signals\":{\"gossip\":{\"flag\":true,\"zh\":{\"八卦\":2}}}}", "unknown flag"},
    {"{\"signals\":{\"media\":{\"flag\":true,\"zh\":{\"记者\":0}}}}", "weight must be 1..100"},
    {"{\"signals\":{\"media\":{\"zh\":{\"记者\":2}}}}",
     "needs either \"flag\": true or \"urgency\""},
    {"{\"signals\":{\"media\":{\"flag\":true,\"implies\":\"panic\",\"zh\":{\"记者\":2}}}}",
     "must be low, normal, urgent or emergency"},
    {"{\"signals\":{\"media\":{\"flag\":true,\"en\":{\"记者\":2}}}}", "must be ASCII"},
    {"{\"signals\":{\"media\":{\"flag\":true,\"patterns\":[{\"first\":\"a\"}]}}}",
     "needs \"first\", \"then\""},
    {"{\"negation_window\":99,\"signals\":{\"media\":{\"flag\":true,\"zh\":{\"记者\":2}}}}",
     "negation_window"},
    {"{\"signals\":{\"media\":{\"flag\":true,\"zh\":{\"记者\":2},\"colour\":1}}}", "unknown key"},
    {"{\"signals\":", "alerts.json:1:"},
};

static void test_bad_files(void **state)
{
    char dir[] = "/tmp/kesu-alerts-XXXXXX", path[128], err[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/alerts.json", dir);
    for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad_files[i].text, f);
        fclose(f);
        err[0] = '\0';
        alert_rules_t *r = alert_rules_load(path, err, sizeof(err));
        if (r) {
            alert_rules_free(r);
            fail_msg("accepted: %s", bad_files[i].text);
        }
        if (!strstr(err, bad_files[i].expect) || !strstr(err, dir))
            fail_msg("%s: error \"%s\" lacks \"%s\" or the file name", bad_files[i].text, err,
                     bad_files[i].expect);
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_title_and_once),
        cmocka_unit_test(test_acmatch),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
