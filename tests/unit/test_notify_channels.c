/*
 * test_notify_channels: what the notifier's SMS and e-mail channels put on
 * the wire, and quiet hours - table-driven, no infrastructure:
 *  - notify_quiet_until over a window that spans midnight (22:00-08:00)
 *    and one that does not, at the edges, in Asia/Shanghai (UTC+8);
 *  - notify_quiet_parse, good and bad windows;
 *  - the SMS body, the RFC 5322 message (headers, base64 subject and body
 *    that decode back to the text, no header injection through the text),
 *    the address check, the deadline format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"

/* 2026-12-01 00:00 Asia/Shanghai = 2026-11-30T16:00:00Z */
#define SH_MIDNIGHT 1796054400000LL
#define MIN         60000LL

typedef struct quiet_case {
    const char *name;
    int64_t now;   /* UTC ms */
    int start, end;
    int64_t want;  /* 0 = not quiet */
} quiet_case_t;

static const quiet_case_t quiet_cases[] = {
    {"21:59 is not quiet", SH_MIDNIGHT - 121 * MIN, 22 * 60, 8 * 60, 0},
    {"22:00 is quiet until 08:00 next day", SH_MIDNIGHT - 120 * MIN, 22 * 60, 8 * 60,
     SH_MIDNIGHT + 8 * 60 * MIN},
    {"23:30 is quiet until 08:00 next day", SH_MIDNIGHT - 30 * MIN, 22 * 60, 8 * 60,
     SH_MIDNIGHT + 8 * 60 * MIN},
    {"00:00 is quiet until 08:00", SH_MIDNIGHT, 22 * 60, 8 * 60, SH_MIDNIGHT + 8 * 60 * MIN},
    {"07:59 is quiet until 08:00", SH_MIDNIGHT + (8 * 60 - 1) * MIN, 22 * 60, 8 * 60,
     SH_MIDNIGHT + 8 * 60 * MIN},
    {"08:00 is not quiet", SH_MIDNIGHT + 8 * 60 * MIN, 22 * 60, 8 * 60, 0},
    {"noon is not quiet", SH_MIDNIGHT + 12 * 60 * MIN, 22 * 60, 8 * 60, 0},
    {"lunch window inside a day", SH_MIDNIGHT + 12 * 60 * MIN + 5 * MIN, 12 * 60, 14 * 60,
     SH_MIDNIGHT + 14 * 60 * MIN},
    {"before a lunch window", SH_MIDNIGHT + 11 * 60 * MIN, 12 * 60, 14 * 60, 0},
    {"end of a lunch window", SH_MIDNIGHT + 14 * 60 * MIN, 12 * 60, 14 * 60, 0},
    {"start == end: never quiet", SH_MIDNIGHT + 60 * MIN, 0, 0, 0},
    {"seconds into 22:00 still quiet", SH_MIDNIGHT - 120 * MIN + 59999, 22 * 60, 8 * 60,
     SH_MIDNIGHT + 8 * 60 * MIN},
};

static void test_quiet_until(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(quiet_cases) / sizeof(quiet_cases[0]); i++) {
        const quiet_case_t *c = &quiet_cases[i];
        int64_t got = notify_quiet_until(c->now, c->start, c->end, 480);
        if (got != c->want)
            fail_msg("%s: got %lld, want %lld", c->name, (long long)got, (long long)c->want);
    }
    /* the same instant in UTC (offset 0) is 16:00: not quiet */
    assert_int_equal(notify_quiet_until(SH_MIDNIGHT, 22 * 60, 8 * 60, 0), 0);
}

static void test_quiet_parse(void **state)
{
    (void)state;
    int s = -1, e = -1;
    assert_int_equal(notify_quiet_parse("22:00-08:00", &s, &e), 0);
    assert_int_equal(s, 22 * 60);
    assert_int_equal(e, 8 * 60);
    assert_int_equal(notify_quiet_parse("00:00-23:59", &s, &e), 0);
    assert_int_equal(e, 23 * 60 + 59);
    assert_int_equal(notify_quiet_parse("", &s, &e), 0);
    assert_int_equal(s, e);
    static const char *const bad[] = {"22-08", "24:00-08:00", "22:60-08:00", "22:00_08:00",
                                      "2200-0800", "22:00-08:00 ", "ab:cd-ef:gh", "22:00-8:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (notify_quiet_parse(bad[i], &s, &e) == 0)
            fail_msg("\"%s\" parsed", bad[i]);
}

static void test_sms_body(void **state)
{
    (void)state;
    char *s = notify_sms_body("7", "13812345678", "您的案件\"KS1\"已受理");
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 3);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "7");
    assert_string_equal(json_string_value(json_object_get(o, "to")), "13812345678");
    assert_string_equal(json_string_value(json_object_get(o, "text")), "您的案件\"KS1\"已受理");
    json_decref(o);
    free(s);
}

/* the base64 body of a message, decoded */
static char *body_of(const char *msg)
{
    const char *p = strstr(msg, "\r\n\r\n");
    strbuf_t b64;
    assert_non_null(p);
    strbuf_init(&b64);
    for (p += 4; *p; p++)
        if (*p != '\r' && *p != '\n')
            strbuf_append(&b64, p, 1);
    char *out = calloc(1, b64.len + 4);
    int n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64.s, (int)b64.len);
    assert_true(n >= 0);
    /* EVP_DecodeBlock counts the padding bytes as zeros */
    while (b64.len && b64.s[b64.len - 1] == '=') {
        b64.len--;
        n--;
    }
    out[n] = '\0';
    strbuf_free(&b64);
    return out;
}

static void test_email_message(void **state)
{
    (void)state;
    char err[256];
    /* a long text with lines that would end DATA or forge headers if sent raw */
    const char *text = "答复：已处理。\r\n.\r\nBcc: victim@example.com\r\n\r\n"
                       "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六";
    char *m = notify_email_message("noreply@kesu.example.gov.cn", "zhang.san@example.com",
                                   "【12345热线】案件KS1", text, "42", 1796112000123LL, err,
                                   sizeof(err));
    assert_non_null(m);
    assert_non_null(strstr(m, "Date: Tue, 01 Dec 2026 08:00:00 +0000\r\n"));
    assert_non_null(strstr(m, "From: <noreply@kesu.example.gov.cn>\r\n"));
    assert_non_null(strstr(m, "To: <zhang.san@example.com>\r\n"));
    assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(m, "Message-ID: <42.kesu@kesu.example.gov.cn>\r\n"));
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=UTF-8\r\n"));
    assert_non_null(strstr(m, "Content-Transfer-Encoding: base64\r\n"));
    /* nothing of the text appears raw: no injected header, no lone dot line */
    assert_null(strstr(m, "Bcc:"));
    assert_null(strstr(m, "\r\n.\r\n"));
    const char *hdr_end = strstr(m, "\r\n\r\n");
    for (const char *p = hdr_end + 4; *p; p++) {
        /* body lines are base64, at most 76 characters */
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 76);
        p = e + 1;
    }
    char *body = body_of(m);
    assert_string_equal(body, text);
    free(body);
    free(m);

    /* addresses that could inject headers or commands are refused */
    assert_null(notify_email_message("noreply@x.cn", "a@b.cn\r\nBcc: c@d.cn", "s", "t", "1", 0,
                                     err, sizeof(err)));
    assert_non_null(strstr(err, "recipient"));
    assert_null(notify_email_message("bad", "a@b.cn", "s", "t", "1", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "sender"));
}

static void test_email_valid(void **state)
{
    (void)state;
    static const char *const good[] = {"a@b.cn", "zhang.san+tag@mail.example.com", "x_y@q-q.org"};
    static const char *const bad[] = {"",          "a",         "@b.cn",        "a@",
                                      "a@b",       "a@@b.cn",   "a b@c.cn",     "a@b.cn>",
                                      "<a@b.cn",   "a@b.cn\n",  "a,b@c.cn",     "张@b.cn",
                                      "a@b.cn;c@d.cn"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!notify_email_valid(good[i]))
            fail_msg("%s refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (notify_email_valid(bad[i]))
            fail_msg("\"%s\" accepted", bad[i]);
}

static void test_deadline_and_vars(void **state)
{
    (void)state;
    char d[32];
    notify_fmt_deadline(SH_MIDNIGHT + (17 * 60 + 30) * MIN, 480, d, sizeof(d));
    assert_string_equal(d, "2026-12-01 17:30");
    notify_fmt_deadline(0, 480, d, sizeof(d));
    assert_string_equal(d, "-");

    notify_var_t vars[NOTIFY_N_VARS];
    strbuf_t out;
    char err[128];
    size_t n = notify_vars(vars, "KS1", "城管局", "{{deadline}}", "2026-12-01 17:30",
                           "https://x/status?case=KS1");
    assert_int_equal(n, NOTIFY_N_VARS);
    strbuf_init(&out);
    assert_int_equal(notify_render("{{case_no}}|{{department}}|{{reply}}|{{deadline}}|"
                                   "{{status_link}}",
                                   vars, n, &out, err, sizeof(err)),
                     0);
    /* the reply names a placeholder: it stays literal */
    assert_string_equal(out.s, "KS1|城管局|{{deadline}}|2026-12-01 17:30|https://x/status?case=KS1");
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_until),   cmocka_unit_test(test_quiet_parse),
        cmocka_unit_test(test_sms_body),      cmocka_unit_test(test_email_message),
        cmocka_unit_test(test_email_valid),   cmocka_unit_test(test_deadline_and_vars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
