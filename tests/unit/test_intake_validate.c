/*
 * Unit tests of intake's input rules (services/intake/validate.c, auth.c's
 * header parsing): table-driven, no infrastructure. Each invalid case names
 * the error code and the field the 400 must report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "validate.h"

typedef struct complaint_case {
    const char *name;  /* what the row checks */
    const char *json;  /* request body (NUL-terminated; may hold invalid UTF-8) */
    const char *code;  /* expected error code, NULL = valid */
    const char *field; /* expected field of the error */
} complaint_case_t;

#define MIN "\"channel\":\"web\",\"title\":\"路灯不亮\",\"body\":\"小区门口路灯坏了一周\""

static char long_title[1024];
static char long_body[21000];
static char max_title[1024];
static char long_ref[256];

static void build_long_inputs(void)
{
    /* 201 characters of 3-byte UTF-8: too long by characters, not bytes */
    size_t o = (size_t)snprintf(long_title, sizeof(long_title),
                                "{\"channel\":\"web\",\"body\":\"b\",\"title\":\"");
    for (int i = 0; i < 201; i++)
        o += (size_t)snprintf(long_title + o, sizeof(long_title) - o, "灯");
    snprintf(long_title + o, sizeof(long_title) - o, "\"}");
    /* exactly 200 characters is fine */
    o = (size_t)snprintf(max_title, sizeof(max_title),
                         "{\"channel\":\"web\",\"body\":\"b\",\"title\":\"");
    for (int i = 0; i < 200; i++)
        o += (size_t)snprintf(max_title + o, sizeof(max_title) - o, "灯");
    snprintf(max_title + o, sizeof(max_title) - o, "\"}");
    /* 20001 bytes of body */
    o = (size_t)snprintf(long_body, sizeof(long_body),
                         "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"");
    memset(long_body + o, 'x', 20001);
    o += 20001;
    snprintf(long_body + o, sizeof(long_body) - o, "\"}");
    o = (size_t)snprintf(long_ref, sizeof(long_ref), "{" MIN ",\"external_ref\":\"");
    memset(long_ref + o, 'r', 129);
    o += 129;
    snprintf(long_ref + o, sizeof(long_ref) - o, "\"}");
}

static const complaint_case_t complaint_cases[] = {
    /* valid */
    {"minimal", "{" MIN "}", NULL, NULL},
    {"full",
     "{" MIN ",\"external_ref\":\"HL-2026-0001\",\"language\":\"zh-CN\",\"anonymous\":false,"
     "\"confidential\":true,\"location\":{\"address\":\"朝阳路1号\",\"district_code\":\"110105\","
     "\"lat\":39.9,\"lon\":116.4},\"complainant\":{\"name\":\"张三\",\"phone\":\"+86 "
     "138-1234-5678\","
     "\"email\":\"zhang.san@qq.com\",\"id_number\":\"11010519900101002X\","
     "\"callback_url\":\"https://notify.example.org/kesu?x=1\"}}",
     NULL, NULL},
    {"nulls and blanks are absent",
     "{" MIN ",\"external_ref\":\"\",\"language\":null,\"location\":null,"
     "\"complainant\":{\"name\":\"\",\"phone\":null}}",
     NULL, NULL},
    {"integer coordinates", "{" MIN ",\"location\":{\"lat\":-90,\"lon\":180}}", NULL, NULL},
    /* every channel with exactly its own details (issue 3) */
    {"channel web", "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"b\"}", NULL, NULL},
    {"channel app", "{\"channel\":\"app\",\"title\":\"t\",\"body\":\"b\"}", NULL, NULL},
    {"channel phone",
     "{\"channel\":\"phone\",\"title\":\"t\",\"body\":\"b\",\"call_id\":\"c1\","
     "\"agent_id\":\"a1\"}",
     NULL, NULL},
    {"channel letter",
     "{\"channel\":\"letter\",\"title\":\"t\",\"body\":\"b\","
     "\"received_date\":\"2024-02-29\",\"scan_ref\":\"SC-1\"}",
     NULL, NULL},
    {"channel walk_in",
     "{\"channel\":\"walk_in\",\"title\":\"t\",\"body\":\"b\",\"window_id\":\"W3\"}", NULL, NULL},
    {"channel open311",
     "{\"channel\":\"open311\",\"title\":\"t\",\"body\":\"b\",\"external_ref\":\"o1\"}", NULL,
     NULL},
    {"channel import",
     "{\"channel\":\"import\",\"title\":\"t\",\"body\":\"b\",\"external_ref\":\"i1\"}", NULL, NULL},
    {"phone without call_id",
     "{\"channel\":\"phone\",\"title\":\"t\",\"body\":\"b\",\"agent_id\":\"a1\"}", "missing_field",
     "call_id"},
    {"phone without agent_id",
     "{\"channel\":\"phone\",\"title\":\"t\",\"body\":\"b\",\"call_id\":\"c1\"}", "missing_field",
     "agent_id"},
    {"letter without received_date",
     "{\"channel\":\"letter\",\"title\":\"t\",\"body\":\"b\","
     "\"scan_ref\":\"SC-1\"}",
     "missing_field", "received_date"},
    {"letter without scan_ref",
     "{\"channel\":\"letter\",\"title\":\"t\",\"body\":\"b\","
     "\"received_date\":\"2024-02-29\"}",
     "missing_field", "scan_ref"},
    {"letter on a day that does not exist",
     "{\"channel\":\"letter\",\"title\":\"t\",\"body\":\"b\","
     "\"received_date\":\"2023-02-29\",\"scan_ref\":\"SC-1\"}",
     "invalid_value", "received_date"},
    {"walk_in without window_id", "{\"channel\":\"walk_in\",\"title\":\"t\",\"body\":\"b\"}",
     "missing_field", "window_id"},
    {"open311 without external_ref", "{\"channel\":\"open311\",\"title\":\"t\",\"body\":\"b\"}",
     "missing_field", "external_ref"},
    {"import without external_ref", "{\"channel\":\"import\",\"title\":\"t\",\"body\":\"b\"}",
     "missing_field", "external_ref"},
    {"another channel's detail", "{" MIN ",\"call_id\":\"c1\"}", "invalid_field", "call_id"},
    {"call_id with a space",
     "{\"channel\":\"phone\",\"title\":\"t\",\"body\":\"b\",\"call_id\":\"c 1\","
     "\"agent_id\":\"a1\"}",
     "invalid_value", "call_id"},
    /* attachments by reference, anonymous */
    {"attachments",
     "{" MIN ",\"attachments\":[{\"url\":\"https://f.example/a.jpg\",\"name\":\"a.jpg\","
     "\"content_type\":\"image/jpeg\",\"size\":1024,\"sha256\":\""
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}",
     NULL, NULL},
    {"attachment without url", "{" MIN ",\"attachments\":[{\"name\":\"a.jpg\"}]}", "missing_field",
     "attachments[0].url"},
    {"attachment size negative",
     "{" MIN ",\"attachments\":[{\"url\":\"https://f.example/a\",\"size\":-1}]}", "out_of_range",
     "attachments[0].size"},
    {"attachments not an array", "{" MIN ",\"attachments\":{}}", "invalid_type", "attachments"},
    {"anonymous with a complainant",
     "{" MIN ",\"anonymous\":true,\"complainant\":{\"name\":\"张三\"}}", "invalid_value",
     "anonymous"},
    {"anonymous", "{" MIN ",\"anonymous\":true}", NULL, NULL},
    /* mainland phone numbers and district codes */
    {"landline with area code", "{" MIN ",\"complainant\":{\"phone\":\"010-8888 6666\"}}", NULL,
     NULL},
    {"landline of a 4-digit area code", "{" MIN ",\"complainant\":{\"phone\":\"0755-2345678\"}}",
     NULL, NULL},
    {"mobile with +86", "{" MIN ",\"complainant\":{\"phone\":\"+86 139 0000 1111\"}}", NULL, NULL},
    {"not a mobile (12x)", "{" MIN ",\"complainant\":{\"phone\":\"12012345678\"}}", "invalid_value",
     "complainant.phone"},
    {"too many digits", "{" MIN ",\"complainant\":{\"phone\":\"138123456789\"}}", "invalid_value",
     "complainant.phone"},
    {"district code of 5 digits", "{" MIN ",\"location\":{\"district_code\":\"11010\"}}",
     "invalid_value", "location.district_code"},
    {"district code of zeros", "{" MIN ",\"location\":{\"district_code\":\"000000\"}}",
     "invalid_value", "location.district_code"},
    {"200 characters of title", max_title, NULL, NULL},
    {"multi-line body", "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"line 1\\nline 2\\tend\"}",
     NULL, NULL},
    /* required fields */
    {"channel missing", "{\"title\":\"t\",\"body\":\"b\"}", "missing_field", "channel"},
    {"title missing", "{\"channel\":\"web\",\"body\":\"b\"}", "missing_field", "title"},
    {"body missing", "{\"channel\":\"web\",\"title\":\"t\"}", "missing_field", "body"},
    {"channel null", "{\"channel\":null,\"title\":\"t\",\"body\":\"b\"}", "missing_field",
     "channel"},
    {"title empty", "{\"channel\":\"web\",\"title\":\"\",\"body\":\"b\"}", "invalid_value",
     "title"},
    {"body blank", "{\"channel\":\"web\",\"title\":\"t\",\"body\":\"  \\n \"}", "invalid_value",
     "body"},
    /* types */
    {"channel a number", "{\"channel\":7,\"title\":\"t\",\"body\":\"b\"}", "invalid_type",
     "channel"},
    {"title an array", "{\"channel\":\"web\",\"title\":[\"t\"],\"body\":\"b\"}", "invalid_type",
     "title"},
    {"anonymous a string", "{" MIN ",\"anonymous\":\"yes\"}", "invalid_type", "anonymous"},
    {"confidential a number", "{" MIN ",\"confidential\":1}", "invalid_type", "confidential"},
    {"location a string", "{" MIN ",\"location\":\"朝阳路\"}", "invalid_type", "location"},
    {"complainant an array", "{" MIN ",\"complainant\":[]}", "invalid_type", "complainant"},
    {"lat a string", "{" MIN ",\"location\":{\"lat\":\"39.9\",\"lon\":116.4}}", "invalid_type",
     "location.lat"},
    {"phone a number", "{" MIN ",\"complainant\":{\"phone\":13812345678}}", "invalid_type",
     "complainant.phone"},
    /* values */
    {"bad channel", "{\"channel\":\"fax\",\"title\":\"t\",\"body\":\"b\"}", "invalid_value",
     "channel"},
    {"title too long", long_title, "too_long", "title"},
    {"body too long", long_body, "too_long", "body"},
    {"external_ref too long", long_ref, "too_long", "external_ref"},
    {"title with a control character",
     "{\"channel\":\"web\",\"title\":\"a\\u0007b\",\"body\":\"b\"}", "invalid_value", "title"},
    {"bad language", "{" MIN ",\"language\":\"chinese please\"}", "invalid_value", "language"},
    {"lat out of range", "{" MIN ",\"location\":{\"lat\":90.5,\"lon\":116.4}}", "out_of_range",
     "location.lat"},
    {"lon out of range", "{" MIN ",\"location\":{\"lat\":39.9,\"lon\":-181}}", "out_of_range",
     "location.lon"},
    {"lat without lon", "{" MIN ",\"location\":{\"lat\":39.9}}", "missing_field", "location.lon"},
    {"bad district code", "{" MIN ",\"location\":{\"district_code\":\"11 01\"}}", "invalid_value",
     "location.district_code"},
    {"phone with letters", "{" MIN ",\"complainant\":{\"phone\":\"call me\"}}", "invalid_value",
     "complainant.phone"},
    {"phone too few digits", "{" MIN ",\"complainant\":{\"phone\":\"12-3\"}}", "invalid_value",
     "complainant.phone"},
    {"bad email", "{" MIN ",\"complainant\":{\"email\":\"zhang@localhost\"}}", "invalid_value",
     "complainant.email"},
    {"bad id number", "{" MIN ",\"complainant\":{\"id_number\":\"1101051990\"}}", "invalid_value",
     "complainant.id_number"},
    {"callback_url ftp", "{" MIN ",\"complainant\":{\"callback_url\":\"ftp://example.org/x\"}}",
     "invalid_value", "complainant.callback_url"},
    {"callback_url without host", "{" MIN ",\"complainant\":{\"callback_url\":\"https:///x\"}}",
     "invalid_value", "complainant.callback_url"},
    {"callback_url with a space",
     "{" MIN ",\"complainant\":{\"callback_url\":\"http://a.example/x y\"}}", "invalid_value",
     "complainant.callback_url"},
    /* unknown fields */
    {"unknown top-level field", "{" MIN ",\"priority\":\"high\"}", "unknown_field", "priority"},
    {"unknown location field", "{" MIN ",\"location\":{\"city\":\"北京\"}}", "unknown_field",
     "location.city"},
    {"unknown complainant field", "{" MIN ",\"complainant\":{\"wechat\":\"zs\"}}", "unknown_field",
     "complainant.wechat"},
    /* encoding and syntax */
    {"bad UTF-8 in title", "{\"channel\":\"web\",\"title\":\"\xe8\xb7\",\"body\":\"b\"}",
     "invalid_utf8", "title"},
    {"bad UTF-8 in a nested field", "{" MIN ",\"complainant\":{\"name\":\"\xff\xfe\"}}",
     "invalid_utf8", "complainant.name"},
    {"overlong UTF-8 encoding", "{\"channel\":\"web\",\"title\":\"\xc0\xaf\",\"body\":\"b\"}",
     "invalid_utf8", "title"},
    {"lone surrogate escape", "{\"channel\":\"web\",\"title\":\"\\ud800\",\"body\":\"b\"}",
     "invalid_json", "title"},
    {"NUL escape", "{\"channel\":\"web\",\"title\":\"a\\u0000b\",\"body\":\"b\"}", "invalid_json",
     "title"},
    {"duplicate key", "{" MIN ",\"title\":\"again\"}", "invalid_json", "title"},
    {"not JSON", "channel=web&title=t", "invalid_json", ""},
    {"truncated JSON", "{\"channel\":\"web\",\"title\":\"t\",", "invalid_json", ""},
    {"array at the top", "[1,2]", "invalid_json", ""},
    {"empty body", "", "invalid_json", ""},
};

static void test_complaint_table(void **state)
{
    (void)state;
    build_long_inputs();
    for (size_t i = 0; i < sizeof(complaint_cases) / sizeof(complaint_cases[0]); i++) {
        const complaint_case_t *t = &complaint_cases[i];
        intake_complaint_t c;
        intake_verr_t e = {0};
        int rc = intake_complaint_parse(t->json, strlen(t->json), &c, &e);
        if (!t->code) {
            if (rc != 0)
                fail_msg("case \"%s\": expected valid, got %s on \"%s\": %s", t->name, e.code,
                         e.field, e.message);
            intake_complaint_free(&c);
            continue;
        }
        if (rc == 0) {
            intake_complaint_free(&c);
            fail_msg("case \"%s\": expected %s on \"%s\", got valid", t->name, t->code, t->field);
        }
        if (strcmp(e.code, t->code) != 0 || strcmp(e.field, t->field) != 0)
            fail_msg("case \"%s\": expected %s on \"%s\", got %s on \"%s\" (%s)", t->name, t->code,
                     t->field, e.code, e.field, e.message);
        assert_true(strlen(e.message) > 0);
        assert_null(c.root); /* nothing left to free after a failure */
    }
}

static void test_complaint_values(void **state)
{
    (void)state;
    const char *full = complaint_cases[1].json;
    intake_complaint_t c;
    intake_verr_t e = {0};
    assert_int_equal(intake_complaint_parse(full, strlen(full), &c, &e), 0);
    assert_string_equal(c.channel, "web");
    assert_string_equal(c.external_ref, "HL-2026-0001");
    assert_int_equal(c.confidential, 1);
    assert_int_equal(c.anonymous, 0);
    assert_int_equal(c.has_coordinates, 1);
    assert_true(c.lat > 39.89 && c.lat < 39.91);
    assert_int_equal(c.has_complainant, 1);
    assert_string_equal(c.phone_norm, "13812345678");
    assert_string_equal(c.id_number, "11010519900101002X");
    intake_complaint_free(&c);

    const char *min = complaint_cases[0].json;
    assert_int_equal(intake_complaint_parse(min, strlen(min), &c, &e), 0);
    assert_string_equal(c.language, "zh-CN"); /* the default */
    assert_null(c.external_ref);
    assert_int_equal(c.has_complainant, 0);
    assert_int_equal(c.has_coordinates, 0);
    intake_complaint_free(&c);

    /* blank optional complainant fields leave no complainant */
    const char *blanks = complaint_cases[2].json;
    assert_int_equal(intake_complaint_parse(blanks, strlen(blanks), &c, &e), 0);
    assert_null(c.external_ref);
    assert_int_equal(c.has_complainant, 0);
    intake_complaint_free(&c);
}

typedef struct action_case {
    const char *name;
    const char *json;
    const char *code; /* NULL = valid */
    const char *field;
    const char *measures; /* expected canonical measures when valid */
} action_case_t;

static const action_case_t action_cases[] = {
    {"accept", "{\"action\":\"accept\"}", NULL, NULL, ""},
    {"resolve with one measure",
     "{\"action\":\"resolve\",\"measures\":\"explanation\",\"reply\":\"已解释\"}", NULL, NULL,
     "explanation"},
    {"resolve with an array, canonical order, duplicates dropped",
     "{\"action\":\"resolve\",\"measures\":[\"accountability\",\"explanation\",\"accountability\"],"
     "\"reply\":\"r\"}",
     NULL, NULL, "explanation,accountability"},
    {"action missing", "{}", "missing_field", "action", NULL},
    {"unknown action", "{\"action\":\"escalate\"}", "invalid_value", "action", NULL},
    {"accept with extra field", "{\"action\":\"accept\",\"reply\":\"x\"}", "unknown_field", "reply",
     NULL},
    {"resolve without measures", "{\"action\":\"resolve\",\"reply\":\"r\"}", "missing_field",
     "measures", NULL},
    {"resolve with a bad measure",
     "{\"action\":\"resolve\",\"measures\":\"apology\",\"reply\":\"r\"}", "invalid_value",
     "measures", NULL},
    {"resolve with a bad array element",
     "{\"action\":\"resolve\",\"measures\":[\"explanation\",3],\"reply\":\"r\"}", "invalid_type",
     "measures[1]", NULL},
    {"resolve with an empty array", "{\"action\":\"resolve\",\"measures\":[],\"reply\":\"r\"}",
     "invalid_value", "measures", NULL},
    {"resolve without reply", "{\"action\":\"resolve\",\"measures\":\"explanation\"}",
     "missing_field", "reply", NULL},
};

static void test_action_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(action_cases) / sizeof(action_cases[0]); i++) {
        const action_case_t *t = &action_cases[i];
        intake_action_t a;
        intake_verr_t e = {0};
        int rc = intake_action_parse(t->json, strlen(t->json), &a, &e);
        if (!t->code) {
            if (rc != 0)
                fail_msg("case \"%s\": expected valid, got %s on \"%s\"", t->name, e.code, e.field);
            assert_string_equal(a.measures, t->measures);
            intake_action_free(&a);
            continue;
        }
        if (rc == 0) {
            intake_action_free(&a);
            fail_msg("case \"%s\": expected %s, got valid", t->name, t->code);
        }
        if (strcmp(e.code, t->code) != 0 || strcmp(e.field, t->field) != 0)
            fail_msg("case \"%s\": expected %s on \"%s\", got %s on \"%s\"", t->name, t->code,
                     t->field, e.code, e.field);
    }
}

static void test_feedback(void **state)
{
    (void)state;
    intake_feedback_t f;
    intake_verr_t e = {0};
    const char *ok = "{\"access_code\":\" abcd2345 \",\"satisfaction\":4,\"comment\":\"很好\"}";
    assert_int_equal(intake_feedback_parse(ok, strlen(ok), &f, &e), 0);
    assert_string_equal(f.access_code, "ABCD2345");
    assert_int_equal(f.satisfaction, 4);
    assert_string_equal(f.comment, "很好");
    intake_feedback_free(&f);

    /* a malformed code is not a 400 (it would tell the shape is wrong): it matches nothing */
    const char *odd = "{\"access_code\":\"O0O0\",\"satisfaction\":1}";
    assert_int_equal(intake_feedback_parse(odd, strlen(odd), &f, &e), 0);
    assert_string_equal(f.access_code, "");
    intake_feedback_free(&f);

    static const struct {
        const char *json, *code, *field;
    } bad[] = {
        {"{\"satisfaction\":3}", "missing_field", "access_code"},
        {"{\"access_code\":\"ABCD2345\"}", "missing_field", "satisfaction"},
        {"{\"access_code\":\"ABCD2345\",\"satisfaction\":6}", "out_of_range", "satisfaction"},
        {"{\"access_code\":\"ABCD2345\",\"satisfaction\":0}", "out_of_range", "satisfaction"},
        {"{\"access_code\":\"ABCD2345\",\"satisfaction\":4.5}", "invalid_type", "satisfaction"},
        {"{\"access_code\":\"ABCD2345\",\"satisfaction\":\"5\"}", "invalid_type", "satisfaction"},
        {"{\"access_code\":\"ABCD2345\",\"satisfaction\":5,\"stars\":5}", "unknown_field", "stars"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(intake_feedback_parse(bad[i].json, strlen(bad[i].json), &f, &e), -1);
        assert_string_equal(e.code, bad[i].code);
        assert_string_equal(e.field, bad[i].field);
    }
}

static void test_headers(void **state)
{
    (void)state;
    intake_verr_t e = {0};
    assert_int_equal(intake_if_match_parse("\"7\"", &e), 7);
    assert_int_equal(intake_if_match_parse("W/\"12\"", &e), 12);
    assert_int_equal(intake_if_match_parse(" 3 ", &e), 3);
    assert_int_equal(intake_if_match_parse("*", &e), 0);
    assert_int_equal(intake_if_match_parse("\"7", &e), -1);
    assert_string_equal(e.field, "If-Match");
    assert_int_equal(intake_if_match_parse("\"abc\"", &e), -1);
    assert_int_equal(intake_if_match_parse("\"0\"", &e), -1);
    assert_int_equal(intake_if_match_parse("", &e), -1);

    assert_int_equal(intake_idem_key_check("order-42/retry", &e), 0);
    assert_int_equal(intake_idem_key_check("", &e), -1);
    assert_string_equal(e.field, "Idempotency-Key");
    assert_int_equal(intake_idem_key_check("has space", &e), -1);
    char k[200];
    memset(k, 'k', sizeof(k));
    k[129] = '\0';
    assert_int_equal(intake_idem_key_check(k, &e), -1);
    k[128] = '\0';
    assert_int_equal(intake_idem_key_check(k, &e), 0);

    const char *tok;
    size_t len;
    assert_int_equal(intake_auth_bearer("Bearer abc.def", &tok, &len), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(tok, "abc.def", 7);
    assert_int_equal(intake_auth_bearer("bearer   xyz  ", &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(intake_auth_bearer("Basic dXNlcjpwYXNz", &tok, &len), -1);
    assert_int_equal(intake_auth_bearer("Bearer", &tok, &len), -1);
    assert_int_equal(intake_auth_bearer("Bearer a b", &tok, &len), -1);
    assert_int_equal(intake_auth_bearer("Bearerabc", &tok, &len), -1);

    assert_int_equal(intake_role_parse("handler"), INTAKE_ROLE_HANDLER);
    assert_int_equal(intake_role_parse("root"), 0);
    intake_token_t t = {.role = INTAKE_ROLE_HANDLER, .department = "d1"};
    assert_string_equal(intake_token_scope(&t), "d1");
    t.role = INTAKE_ROLE_SUPERVISOR;
    assert_null(intake_token_scope(&t));
}

static void test_codes_and_masks(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(intake_access_code_normalize("k7m2p9qz", out, sizeof(out)), 0);
    assert_string_equal(out, "K7M2P9QZ");
    assert_int_equal(intake_access_code_normalize("K7M2P9Q", out, sizeof(out)), -1);   /* short */
    assert_int_equal(intake_access_code_normalize("K7M2P9QZZ", out, sizeof(out)), -1); /* long */
    assert_int_equal(intake_access_code_normalize("K7M2P9Q0", out, sizeof(out)), -1);  /* 0 */
    assert_string_equal(out, "");

    intake_mask_name("张三", out, sizeof(out));
    assert_string_equal(out, "张*");
    intake_mask_name("欧阳娜娜", out, sizeof(out));
    assert_string_equal(out, "欧***");
    intake_mask_name("李", out, sizeof(out));
    assert_string_equal(out, "李*");
    intake_mask_name("Ann", out, sizeof(out));
    assert_string_equal(out, "A**");
    intake_mask_name("张三", out, 3); /* no room for the whole first character */
    assert_true(strlen(out) < 3);

    intake_mask_email("zhang.san@qq.com", out, sizeof(out));
    assert_string_equal(out, "z***@qq.com");
    intake_mask_email("nobody", out, sizeof(out));
    assert_string_equal(out, "***");

    assert_int_equal(intake_utf8_chars("灯a"), 2);
}

static void test_json_path(void **state)
{
    (void)state;
    char p[96];
    const char *j = "{\"a\":1,\"loc\":{\"x\":[1,2,\"bad\"]},\"b\":\"v\"}";
    intake_json_path_at(j, strlen(j), (size_t)(strstr(j, "bad") - j), p, sizeof(p));
    assert_string_equal(p, "loc.x[2]");
    intake_json_path_at(j, strlen(j), (size_t)(strstr(j, "\"v\"") - j) + 1, p, sizeof(p));
    assert_string_equal(p, "b");
    intake_json_path_at(j, strlen(j), 0, p, sizeof(p));
    assert_string_equal(p, "");
    /* escaped quotes inside strings do not end them */
    const char *q = "{\"t\":\"say \\\"hi\\\" \xff\"}";
    intake_json_path_at(q, strlen(q), (size_t)(strstr(q, "\xff") - q), p, sizeof(p));
    assert_string_equal(p, "t");
}

/* Field errors are all reported (422); a body that is not JSON stops at once (400). */
static void test_every_error_listed(void **state)
{
    (void)state;
    intake_complaint_t c;
    intake_verr_t e;
    const char *bad = "{\"channel\":\"phone\",\"title\":\"\",\"body\":\"b\",\"x\":1,"
                      "\"location\":{\"district_code\":\"1\",\"lat\":91,\"lon\":0},"
                      "\"complainant\":{\"phone\":\"123\",\"email\":\"no\"}}";
    assert_int_equal(intake_complaint_parse(bad, strlen(bad), &c, &e), -1);
    assert_int_equal(e.status, 422);
    static const char *const fields[] = {"x",
                                         "title",
                                         "call_id",
                                         "agent_id",
                                         "location.district_code",
                                         "location.lat",
                                         "complainant.phone",
                                         "complainant.email",
                                         NULL};
    for (int i = 0; fields[i]; i++) {
        int found = 0;
        for (int k = 0; k < e.count && k < INTAKE_VERR_MAX; k++)
            found |= strcmp(e.list[k].field, fields[i]) == 0;
        if (!found)
            fail_msg("%s not listed (%d errors)", fields[i], e.count);
    }
    assert_string_equal(e.field, e.list[0].field);
    assert_int_equal(intake_complaint_parse("{\"a\":", 5, &c, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(e.count, 1);
}

static void test_phone_and_district_rules(void **state)
{
    (void)state;
    static const struct {
        const char *norm;
        int ok;
    } phones[] = {{"13812345678", 1},  {"19912345678", 1}, {"12012345678", 0},
                  {"1381234567", 0},   {"01088886666", 1}, {"07552345678", 1},
                  {"075523456789", 1}, {"0088886666", 0},  {"88886666", 1},
                  {"2345678", 1},      {"12345", 1},       {"95598", 1},
                  {"4008001234", 1},   {"123456", 0},      {"", 0}};
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++)
        if (intake_phone_cn_ok(phones[i].norm) != phones[i].ok)
            fail_msg("phone %s: expected %d", phones[i].norm, phones[i].ok);
    assert_true(intake_district_ok("110105"));
    assert_false(intake_district_ok("11010a"));
    assert_false(intake_district_ok("1101050"));
    assert_true(intake_date_ok("2024-02-29"));
    assert_false(intake_date_ok("2023-02-29"));
    assert_false(intake_date_ok("2024-13-01"));
    assert_false(intake_date_ok("24-01-01"));
    const char *const *f = intake_channel_fields("phone");
    assert_string_equal(f[0], "call_id");
    assert_string_equal(f[1], "agent_id");
    assert_null(f[2]);
    assert_null(intake_channel_fields("web")[0]);
    assert_null(intake_channel_fields("fax"));
}

/* Every staff action: its fields, what it refuses. */
static void test_all_actions(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int kind;          /* 0: refused */
        const char *field; /* the error's field when refused */
    } cases[] = {
        {"{\"action\":\"note\",\"note\":\"n\"}", INTAKE_ACTION_NOTE, NULL},
        {"{\"action\":\"note\"}", 0, "note"},
        {"{\"action\":\"request_info\",\"question\":\"q\"}", INTAKE_ACTION_REQUEST_INFO, NULL},
        {"{\"action\":\"extension_request\",\"extra_minutes\":60,\"reason\":\"r\"}",
         INTAKE_ACTION_EXTENSION_REQUEST, NULL},
        {"{\"action\":\"extension_request\",\"reason\":\"r\"}", 0, "extra_minutes"},
        {"{\"action\":\"extension_request\",\"extra_minutes\":999999,\"reason\":\"r\"}", 0,
         "extra_minutes"},
        {"{\"action\":\"extension_decide\",\"approved\":false}", INTAKE_ACTION_EXTENSION_DECIDE,
         NULL},
        {"{\"action\":\"extension_decide\"}", 0, "approved"},
        {"{\"action\":\"return\",\"reason\":\"r\"}", INTAKE_ACTION_RETURN, NULL},
        {"{\"action\":\"return\"}", 0, "reason"},
        {"{\"action\":\"supervise\",\"note\":\"n\",\"level\":2}", INTAKE_ACTION_SUPERVISE, NULL},
        {"{\"action\":\"supervise\",\"note\":\"n\",\"level\":3}", 0, "level"},
        {"{\"action\":\"merge\",\"into_case_no\":\"KS1\"}", INTAKE_ACTION_MERGE, NULL},
        {"{\"action\":\"merge\"}", 0, "into_case_no"},
        {"{\"action\":\"reject\",\"reason\":\"spam\"}", INTAKE_ACTION_REJECT, NULL},
        {"{\"action\":\"withdraw\"}", INTAKE_ACTION_WITHDRAW, NULL},
        {"{\"action\":\"accept\",\"note\":\"n\"}", 0, "note"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        intake_action_t a;
        intake_verr_t e;
        int rc = intake_action_parse(cases[i].json, strlen(cases[i].json), &a, &e);
        if (cases[i].kind) {
            if (rc != 0 || (int)a.kind != cases[i].kind)
                fail_msg("%s: expected valid, got %s on %s", cases[i].json, e.code, e.field);
            intake_action_free(&a);
        } else if (rc == 0 || strcmp(e.field, cases[i].field) != 0 || e.status != 422) {
            fail_msg("%s: expected an error on %s, got %s", cases[i].json, cases[i].field,
                     rc == 0 ? "valid" : e.field);
        }
    }
    intake_supplement_t s;
    intake_verr_t e;
    const char *ok = "{\"access_code\":\"k7m2p9qz\",\"text\":\"3号楼\"}";
    assert_int_equal(intake_supplement_parse(ok, strlen(ok), &s, &e), 0);
    assert_string_equal(s.access_code, "K7M2P9QZ");
    intake_supplement_free(&s);
    const char *nok = "{\"access_code\":\"x\"}";
    assert_int_equal(intake_supplement_parse(nok, strlen(nok), &s, &e), -1);
    assert_string_equal(e.field, "text");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complaint_table),
        cmocka_unit_test(test_complaint_values),
        cmocka_unit_test(test_action_table),
        cmocka_unit_test(test_feedback),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_codes_and_masks),
        cmocka_unit_test(test_json_path),
        cmocka_unit_test(test_every_error_listed),
        cmocka_unit_test(test_phone_and_district_rules),
        cmocka_unit_test(test_all_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
