/*
 * test_notify_render: the notifier's template renderer (table-driven:
 * substitution, injection attempts, missing placeholders, UTF-8), the
 * loader of notifier.json (the shipped file and broken ones), and the
 * webhook body and signature.
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
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "notify.h"

/* ------------------------------------------------------------- render */

typedef struct render_case {
    const char *name;
    const char *tmpl;
    const char *reply; /* value of {{reply}}; case_no is KS20261201-0000001, department 城管局 */
    const char *want;  /* NULL: must fail */
    const char *errsub; /* part of the error when it fails */
} render_case_t;

static const render_case_t render_cases[] = {
    {"plain text", "您好", "r", "您好", NULL},
    {"empty", "", "r", "", NULL},
    {"one placeholder", "案件{{case_no}}已受理", "r", "案件KS20261201-0000001已受理", NULL},
    {"all three", "{{case_no}}/{{department}}/{{reply}}", "答复", "KS20261201-0000001/城管局/答复",
     NULL},
    {"spaces inside braces", "{{ case_no }}", "r", "KS20261201-0000001", NULL},
    {"placeholder twice", "{{case_no}}{{case_no}}", "r", "KS20261201-0000001KS20261201-0000001",
     NULL},
    {"adjacent to chinese", "编号：{{case_no}}。", "r", "编号：KS20261201-0000001。", NULL},
    {"injection: value names a placeholder", "答复：{{reply}}", "{{case_no}}", "答复：{{case_no}}",
     NULL},
    {"injection: value names an unknown placeholder", "{{reply}}", "{{secret}}", "{{secret}}",
     NULL},
    {"injection: value opens braces before a placeholder", "{{reply}}case_no}}", "{{",
     "{{case_no}}", NULL},
    {"injection: value closes braces", "{{reply}}", "}}{{", "}}{{", NULL},
    {"value with utf-8 and emoji", "{{reply}}", "已处理 ✅ 𠀀", "已处理 ✅ 𠀀", NULL},
    {"missing placeholder fails", "您好{{name}}", "r", NULL, "{{name}}"},
    {"missing placeholder with spaces fails", "{{ phone }}", "r", NULL, "{{phone}}"},
    {"unclosed braces are literal", "a {{case_no", "r", "a {{case_no", NULL},
    {"braces around prose are literal", "{{ not a name }}", "r", "{{ not a name }}", NULL},
    {"empty braces are literal", "{{}}", "r", "{{}}", NULL},
    {"single braces are literal", "{case_no}", "r", "{case_no}", NULL},
    {"triple braces are literal", "{{{case_no}}}", "r", "{{{case_no}}}", NULL},
    {"invalid utf-8 template fails", "\xe4\xbd", "r", NULL, "UTF-8"},
    {"invalid utf-8 value fails", "{{reply}}", "\xff\xfe", NULL, "{{reply}}"},
    {"overlong utf-8 value fails", "{{reply}}", "\xc0\xaf", NULL, "UTF-8"},
};

static void test_render_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++) {
        const render_case_t *c = &render_cases[i];
        notify_var_t vars[] = {
            {"case_no", "KS20261201-0000001"}, {"department", "城管局"}, {"reply", c->reply}};
        strbuf_t out;
        char err[256] = "";
        strbuf_init(&out);
        strbuf_append(&out, "<", 1);
        int rc = notify_render(c->tmpl, vars, 3, &out, err, sizeof(err));
        if (c->want) {
            if (rc != 0 || strcmp(out.s + 1, c->want) != 0)
                fail_msg("%s: got rc %d \"%s\" (%s), want \"%s\"", c->name, rc, out.s + 1, err,
                         c->want);
        } else {
            if (rc == 0)
                fail_msg("%s: rendered \"%s\", want a failure", c->name, out.s + 1);
            if (!strstr(err, c->errsub))
                fail_msg("%s: error \"%s\" does not mention %s", c->name, err, c->errsub);
            if (strcmp(out.s, "<") != 0)
                fail_msg("%s: output changed on failure", c->name);
        }
        strbuf_free(&out);
    }
}

static void test_render_null_value(void **state)
{
    (void)state;
    notify_var_t vars[] = {{"department", NULL}};
    strbuf_t out;
    char err[128];
    strbuf_init(&out);
    assert_int_equal(notify_render("由{{department}}办理", vars, 1, &out, err, sizeof(err)), 0);
    assert_string_equal(out.s, "由办理");
    strbuf_free(&out);
}

/* --------------------------------------------------------------- config */

static char tmpdir[] = "/tmp/kesu-notify-XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config_shipped(void **state)
{
    (void)state;
    notify_config_t cfg;
    char err[512], path[1024];
    snprintf(path, sizeof(path), "%s/deploy/config/notifier.json", KESU_SOURCE_DIR);
    if (notify_config_load(&cfg, path, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    /* the spine notices and the ones issue 6 added */
    assert_non_null(notify_template_find(&cfg, "CaseReceived", "complainant"));
    assert_non_null(notify_template_find(&cfg, "InfoRequested", "complainant"));
    assert_non_null(notify_template_find(&cfg, "SlaWarning", "handler"));
    assert_non_null(notify_template_find(&cfg, "CaseEscalated", "supervisor"));
    assert_true(notify_template_find(&cfg, "CaseClassified", "supervisor")->emergency_only);
    assert_false(notify_template_find(&cfg, "CaseReceived", "complainant")->emergency_only);
    assert_non_null(notify_template_find(&cfg, "CaseAssigned", "handler"));
    assert_non_null(notify_template_find(&cfg, "CaseResolved", "complainant"));
    assert_non_null(notify_template_find(&cfg, "SlaBreached", "department_head"));
    assert_non_null(notify_template_find(&cfg, "CaseClosed", "complainant"));
    assert_null(notify_template_find(&cfg, "CaseResolved", "handler"));
    assert_non_null(
        strstr(notify_template_find(&cfg, "CaseResolved", "complainant")->text, "{{reply}}"));
    const notify_routing_t *r = notify_routing_find(&cfg, "complainant");
    assert_non_null(r);
    assert_int_equal(r->routes[0], NOTIFY_ROUTE_COMPLAINANT_WEBHOOK);
    assert_int_equal(r->routes[1], NOTIFY_ROUTE_SMS);
    assert_int_equal(r->routes[2], NOTIFY_ROUTE_EMAIL);
    assert_int_equal(r->routes[3], NOTIFY_ROUTE_LOG);
    assert_int_equal(r->routes[4], 0);
    assert_non_null(notify_routing_find(&cfg, "supervisor"));
    /* zh-CN is the default, every template has its own English file */
    assert_int_equal(cfg.n_langs, 2);
    assert_string_equal(cfg.langs[0], "zh-CN");
    assert_string_equal(cfg.langs[1], "en");
    assert_non_null(cfg.subjects[0]);
    assert_non_null(cfg.subjects[1]);
    for (size_t i = 0; i < cfg.n_templates; i++) {
        const notify_template_t *t = &cfg.templates[i];
        assert_non_null(t->texts[0]);
        if (!t->texts[1])
            fail_msg("template %s has no English text", t->name);
        assert_string_not_equal(t->texts[0], t->texts[1]);
        assert_ptr_equal(notify_template_text(&cfg, t, "en"), t->texts[1]);
        assert_ptr_equal(notify_template_text(&cfg, t, "zh-CN"), t->texts[0]);
        /* an unknown language falls back to the default */
        assert_ptr_equal(notify_template_text(&cfg, t, "fr"), t->texts[0]);
        assert_ptr_equal(notify_template_text(&cfg, t, NULL), t->texts[0]);
        /* the file's final newline is not part of the text */
        assert_int_not_equal(t->texts[0][strlen(t->texts[0]) - 1], '\n');
    }
    assert_string_equal(notify_lang_pick(&cfg, "en"), "en");
    assert_string_equal(notify_lang_pick(&cfg, "de"), "zh-CN");
    assert_non_null(strstr(notify_template_text(&cfg,
                                                notify_template_find(&cfg, "CaseReceived",
                                                                     "complainant"),
                                                "en"),
                           "{{status_link}}"));
    notify_config_free(&cfg);
}

typedef struct config_case {
    const char *name;
    const char *json;
    const char *errsub;
} config_case_t;

#define ROUTING "\"routing\":{\"complainant\":[\"complainant_webhook\",\"log\"]}"
#define REPLY                                                                                      \
    "{\"event\":\"CaseResolved\",\"audience\":\"complainant\",\"name\":\"r\",\"text\":\"{{reply}}" \
    "\"}"

static const config_case_t config_cases[] = {
    {"not json", "{", "bad.json:1:"},
    {"no routing", "{\"templates\":[" REPLY "]}", "routing"},
    {"no templates", "{" ROUTING "}", "templates"},
    {"unknown placeholder",
     "{" ROUTING ",\"templates\":[" REPLY ",{\"event\":\"CaseClosed\",\"audience\":\"complainant\","
                                          "\"name\":\"c\",\"text\":\"{{phone}}\"}]}",
     "{{phone}}"},
    {"unknown event",
     "{" ROUTING ",\"templates\":[" REPLY
     ",{\"event\":\"CaseExploded\",\"audience\":\"complainant\",\"name\":\"c\",\"text\":\"x\"}]}",
     "CaseExploded"},
    {"audience without routing",
     "{" ROUTING ",\"templates\":[" REPLY
     ",{\"event\":\"CaseClosed\",\"audience\":\"mayor\",\"name\":\"c\",\"text\":\"x\"}]}",
     "mayor"},
    {"unknown route", "{\"routing\":{\"complainant\":[\"pigeon\"]},\"templates\":[" REPLY "]}",
     "pigeon"},
    {"complainant webhook for staff",
     "{\"routing\":{\"complainant\":[\"log\"],\"handler\":[\"complainant_webhook\"]},"
     "\"templates\":[" REPLY "]}",
     "only for the complainant"},
    {"duplicate template", "{" ROUTING ",\"templates\":[" REPLY "," REPLY "]}", "second"},
    {"missing text",
     "{" ROUTING ",\"templates\":[{\"event\":\"CaseResolved\","
     "\"audience\":\"complainant\",\"name\":\"r\"}]}",
     "text"},
    {"no reply template",
     "{" ROUTING ",\"templates\":[{\"event\":\"CaseClosed\","
     "\"audience\":\"complainant\",\"name\":\"c\",\"text\":\"x\"}]}",
     "CaseResolved"},
    {"duplicate keys", "{" ROUTING "," ROUTING ",\"templates\":[" REPLY "]}", "duplicate"},
    {"sms for staff",
     "{\"routing\":{\"complainant\":[\"log\"],\"handler\":[\"sms\"]},\"templates\":[" REPLY "]}",
     "only for the complainant"},
    {"bad when",
     "{" ROUTING ",\"templates\":[" REPLY ",{\"event\":\"CaseClosed\",\"audience\":\"complainant\","
     "\"name\":\"c\",\"text\":\"x\",\"when\":\"always\"}]}",
     "emergency"},
    {"name escapes the folder",
     "{" ROUTING ",\"templates\":[{\"event\":\"CaseResolved\",\"audience\":\"complainant\","
     "\"name\":\"../../etc/passwd\",\"text\":\"x\"}]}",
     "name"},
    {"bad language tag", "{" ROUTING ",\"languages\":[\"../x\"],\"templates\":[" REPLY "]}",
     "languages[0]"},
    {"unknown placeholder in an english file",
     "{" ROUTING ",\"languages\":[\"zh-CN\",\"en\"],\"templates_dir\":\"tdir\",\"templates\":["
     "{\"event\":\"CaseResolved\",\"audience\":\"complainant\",\"name\":\"r\",\"text\":\"x\"}]}",
     "{{phone}}"},
};

static void test_config_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(config_cases) / sizeof(config_cases[0]); i++) {
        const config_case_t *c = &config_cases[i];
        notify_config_t cfg;
        char err[512] = "";
        const char *path = write_tmp("bad.json", c->json);
        if (notify_config_load(&cfg, path, err, sizeof(err)) == 0) {
            notify_config_free(&cfg);
            fail_msg("%s: loaded, want an error", c->name);
        }
        if (!strstr(err, c->errsub) || !strstr(err, "bad.json"))
            fail_msg("%s: error \"%s\" does not name the file and %s", c->name, err, c->errsub);
    }
}

/* -------------------------------------------------------------- webhook */

static void test_webhook_body(void **state)
{
    (void)state;
    char *s = notify_webhook_body("42", "KS1", "CaseResolved", "complainant", "case_resolved.reply",
                                  "答复\"引号\"", 1796112000123LL);
    json_error_t e;
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 7);
    assert_string_equal(json_string_value(json_object_get(o, "notification_id")), "42");
    assert_string_equal(json_string_value(json_object_get(o, "case_no")), "KS1");
    assert_string_equal(json_string_value(json_object_get(o, "event_type")), "CaseResolved");
    assert_string_equal(json_string_value(json_object_get(o, "audience")), "complainant");
    assert_string_equal(json_string_value(json_object_get(o, "template")), "case_resolved.reply");
    assert_string_equal(json_string_value(json_object_get(o, "text")), "答复\"引号\"");
    assert_string_equal(json_string_value(json_object_get(o, "sent_at")),
                        "2026-12-01T08:00:00.123Z");
    json_decref(o);
    free(s);
}

static void test_sign(void **state)
{
    (void)state;
    /* RFC 4231 test case 2 */
    char sig[72];
    const char *body = "what do ya want for nothing?";
    notify_sign("Jefe", body, strlen(body), sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static int setup(void **state)
{
    (void)state;
    char dir[300];
    if (!mkdtemp(tmpdir))
        return -1;
    /* the English file of one case above names a placeholder nobody supplies */
    snprintf(dir, sizeof(dir), "%s/tdir", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/tdir/en", tmpdir);
    mkdir(dir, 0700);
    write_tmp("tdir/en/r.txt", "Dear {{phone}}\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tdir/en/r.txt", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tdir/en", tmpdir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/tdir", tmpdir);
    rmdir(path);
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_table),   cmocka_unit_test(test_render_null_value),
        cmocka_unit_test(test_config_shipped), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_webhook_body),   cmocka_unit_test(test_sign),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
