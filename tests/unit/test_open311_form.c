/*
 * Unit tests: the Open311 form parser and its field rules
 * (services/intake/open311_form.c), table-driven: each input with the
 * outcome it must have - the decoded fields, or the field an error names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "open311_form.h"

/* ------------------------------------------------------ form decoding */

static const struct {
    const char *what, *body;
    int ok;
    const char *expect; /* ok: "name=value|name=value" as decoded; else the error's field */
} forms[] = {
    {"empty body", "", 1, ""},
    {"one pair", "a=1", 1, "a=1"},
    {"plus is space, escapes decode", "description=a+b%20c%2B%26", 1, "description=a b c+&"},
    {"name without =", "flag", 1, "flag="},
    {"empty value", "a=", 1, "a="},
    {"empty pairs skipped", "&a=1&&b=2&", 1, "a=1|b=2"},
    {"value keeps later =", "a=x=y", 1, "a=x=y"},
    {"utf-8 value", "description=%E5%81%9C%E6%B0%B4", 1, "description=停水"},
    {"raw utf-8 value", "description=停水", 1, "description=停水"},
    {"attribute name escaped", "attribute%5Btitle%5D=x", 1, "attribute[title]=x"},
    {"bad escape in value", "phone=%G1", 0, "phone"},
    {"truncated escape", "phone=%4", 0, "phone"},
    {"escape at end", "phone=%", 0, "phone"},
    {"NUL byte in value", "description=a%00b", 0, "description"},
    {"invalid UTF-8 in value", "description=%C3%28", 0, "description"},
    {"overlong UTF-8", "description=%C0%AF", 0, "description"},
    {"surrogate in UTF-8", "description=%ED%A0%80", 0, "description"},
    {"bad escape in name", "ph%ZZone=1", 0, "ph%ZZone"},
    {"empty name", "=1", 0, ""},
    {"duplicate name", "a=1&a=2", 0, "a"},
    {"duplicate after decoding", "a=1&%61=2", 0, "a"},
    {"name too long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", 0,
     /* named by its first 64 bytes */
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
};

static void test_form_table(void **state)
{
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        open311_form_t f;
        open311_err_t e = {0};
        int rc = open311_form_parse(forms[i].body, strlen(forms[i].body), &f, &e);
        if (rc != (forms[i].ok ? 0 : -1))
            fail_msg("%s: rc %d (%s: %s)", forms[i].what, rc, e.field, e.message);
        if (forms[i].ok) {
            char got[512] = "";
            for (size_t k = 0; k < f.n; k++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s=%s", k ? "|" : "",
                         f.f[k].name, f.f[k].value);
            if (strcmp(got, forms[i].expect) != 0)
                fail_msg("%s: got \"%s\", want \"%s\"", forms[i].what, got, forms[i].expect);
            open311_form_free(&f);
        } else {
            if (strcmp(e.field, forms[i].expect) != 0)
                fail_msg("%s: field \"%s\", want \"%s\"", forms[i].what, e.field, forms[i].expect);
            assert_true(e.message[0] != '\0');
        }
    }
}

static void test_form_limits(void **state)
{
    char body[4096] = "";
    open311_form_t f;
    open311_err_t e;
    for (int i = 0; i < OPEN311_FORM_MAX_FIELDS; i++)
        snprintf(body + strlen(body), sizeof(body) - strlen(body), "%sf%d=1", i ? "&" : "", i);
    assert_int_equal(open311_form_parse(body, strlen(body), &f, &e), 0);
    assert_int_equal(f.n, OPEN311_FORM_MAX_FIELDS);
    assert_string_equal(open311_form_get(&f, "f63"), "1");
    assert_null(open311_form_get(&f, "f64"));
    open311_form_free(&f);
    open311_form_free(&f); /* twice is fine */
    strcat(body, "&one_more=1");
    assert_int_equal(open311_form_parse(body, strlen(body), &f, &e), -1);
    /* a body is taken by length: bytes after len are not read */
    assert_int_equal(open311_form_parse("a=1&b=2", 3, &f, &e), 0);
    assert_int_equal(f.n, 1);
    open311_form_free(&f);
}

/* ---------------------------------------------------- request fields */

#define BASE "api_key=k&service_code=water-supply&description=no+water&"

static const struct {
    const char *what, *body;
    const char *field; /* NULL: accepted */
} requests[] = {
    {"lat/long", BASE "lat=39.9&long=116.4", NULL},
    {"address_string only", BASE "address_string=Chaoyang+Rd+1", NULL},
    {"address_id only", BASE "address_id=A-17", NULL},
    {"negative coordinates", BASE "lat=-33.8&long=-151.2", NULL},
    {"every field",
     BASE "lat=39.9&long=116.4&address_string=x&email=a@b.cn&device_id=d"
          "&account_id=u&first_name=San&last_name=Zhang&phone=13812345678"
          "&media_url=https://x.cn/p.jpg&jurisdiction_id=city"
          "&attribute[title]=t&attribute[district_code]=110105",
     NULL},
    {"blank optional fields count as absent", BASE "address_string=x&email=&phone=", NULL},
    {"no api_key", "service_code=s&description=d&lat=1&long=2", "api_key"},
    {"blank api_key", "api_key=&service_code=s&description=d&lat=1&long=2", "api_key"},
    {"no service_code", "api_key=k&description=d&lat=1&long=2", "service_code"},
    {"service_code with a space", "api_key=k&service_code=a+b&description=d&lat=1&long=2",
     "service_code"},
    {"no description", "api_key=k&service_code=s&lat=1&long=2", "description"},
    {"no location", BASE "email=a@b.cn", "lat"},
    {"lat without long", BASE "lat=39.9", "long"},
    {"long without lat", BASE "long=116.4", "lat"},
    {"lat not a number", BASE "lat=north&long=116.4", "lat"},
    {"lat in exponent form", BASE "lat=3e1&long=116.4", "lat"},
    {"long not a number", BASE "lat=39.9&long=0x10", "long"},
    {"lat just a dot", BASE "lat=.&long=1", "lat"},
    {"unknown field", BASE "lat=1&long=2&colour=red", "colour"},
    {"attribute without brackets", BASE "lat=1&long=2&attribute=1", "attribute"},
    {"attribute not closed", BASE "lat=1&long=2&attribute[x=1", "attribute[x"},
    {"attribute empty code", BASE "lat=1&long=2&attribute[]=1", "attribute[]"},
    {"attribute nested", BASE "lat=1&long=2&attribute[a][b]=1", "attribute[a][b]"},
    {"media_url not http", BASE "lat=1&long=2&media_url=ftp://x/y", "media_url"},
    {"media_url with space", BASE "lat=1&long=2&media_url=http://x/a+b", "media_url"},
    {"address_id too long",
     BASE "address_id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "address_id"},
};

static void test_request_table(void **state)
{
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        open311_form_t f;
        open311_request_t q;
        open311_err_t e = {0};
        if (open311_form_parse(requests[i].body, strlen(requests[i].body), &f, &e) != 0)
            fail_msg("%s: form refused (%s: %s)", requests[i].what, e.field, e.message);
        int rc = open311_request_parse(&f, &q, &e);
        if (requests[i].field == NULL && rc != 0)
            fail_msg("%s: refused (%s: %s)", requests[i].what, e.field, e.message);
        if (requests[i].field && (rc == 0 || strcmp(e.field, requests[i].field) != 0))
            fail_msg("%s: rc %d field \"%s\", want \"%s\"", requests[i].what, rc, e.field,
                     requests[i].field);
        open311_form_free(&f);
    }
}

static void test_request_values(void **state)
{
    const char *body = BASE "lat=39.90&long=-116.5&first_name=San&attribute[title]=T"
                            "&attribute[district_code]=110105&attribute[x_y.z-1]=";
    open311_form_t f;
    open311_request_t q;
    open311_err_t e;
    assert_int_equal(open311_form_parse(body, strlen(body), &f, &e), 0);
    assert_int_equal(open311_request_parse(&f, &q, &e), 0);
    assert_string_equal(q.api_key, "k");
    assert_string_equal(q.service_code, "water-supply");
    assert_string_equal(q.description, "no water");
    assert_true(q.has_coordinates);
    assert_true(q.lat > 39.899 && q.lat < 39.901);
    assert_true(q.lon < -116.49 && q.lon > -116.51);
    assert_string_equal(q.first_name, "San");
    assert_null(q.last_name);
    assert_int_equal(q.attr_n, 3);
    assert_string_equal(open311_request_attr(&q, "title"), "T");
    assert_string_equal(open311_request_attr(&q, "district_code"), "110105");
    assert_null(open311_request_attr(&q, "x_y.z-1")); /* blank */
    assert_null(open311_request_attr(&q, "titl"));    /* a prefix is not the code */
    assert_null(open311_request_attr(&q, "language"));
    open311_form_free(&f);
}

/* -------------------------------------------------------- date-times */

static const struct {
    const char *s;
    int ok;
    int64_t ms;
} dates[] = {
    {"1970-01-01T00:00:00Z", 1, 0},
    {"2010-01-01T00:00:00Z", 1, 1262304000000LL},
    {"2010-01-01", 1, 1262304000000LL},
    {"2010-01-01T08:00:00+08:00", 1, 1262304000000LL},
    {"2009-12-31T19:00:00-05:00", 1, 1262304000000LL},
    {"2010-01-01T00:00Z", 1, 1262304000000LL},
    {"2010-01-01T00:00:00.5Z", 1, 1262304000500LL},
    {"2010-01-01T00:00:00.123456Z", 1, 1262304000123LL},
    {"2024-02-29T12:00:00Z", 1, 1709208000000LL},
    {"2023-02-29T12:00:00Z", 0, 0},
    {"2010-13-01", 0, 0},
    {"2010-04-31", 0, 0},
    {"2010-01-01T00:00:00", 0, 0}, /* no zone */
    {"2010-01-01T24:00:00Z", 0, 0},
    {"2010-01-01T00:60:00Z", 0, 0},
    {"2010-01-01T00:00:00.Z", 0, 0},
    {"2010-01-01T00:00:00Zjunk", 0, 0},
    {"2010-01-01T00:00:00+0800", 0, 0},
    {"2010-1-1", 0, 0},
    {"01/31/2010", 0, 0},
    {"", 0, 0},
};

static void test_datetime_table(void **state)
{
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        int64_t ms = -1;
        int rc = open311_parse_datetime(dates[i].s, &ms);
        if (rc != (dates[i].ok ? 0 : -1))
            fail_msg("\"%s\": rc %d", dates[i].s, rc);
        if (dates[i].ok && ms != dates[i].ms)
            fail_msg("\"%s\": %lld, want %lld", dates[i].s, (long long)ms, (long long)dates[i].ms);
    }
    assert_int_equal(open311_parse_datetime(NULL, &(int64_t){0}), -1);
}

/* ------------------------------------------------------------- lists */

static void test_split_list(void **state)
{
    char buf[64];
    const char *items[4];
    assert_int_equal(open311_split_list("a", buf, sizeof(buf), items, 4), 1);
    assert_string_equal(items[0], "a");
    assert_int_equal(open311_split_list(" a , b,c ", buf, sizeof(buf), items, 4), 3);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[1], "b");
    assert_string_equal(items[2], "c");
    assert_int_equal(open311_split_list("a,,b", buf, sizeof(buf), items, 4), -1);
    assert_int_equal(open311_split_list("", buf, sizeof(buf), items, 4), -1);
    assert_int_equal(open311_split_list("a,", buf, sizeof(buf), items, 4), -1);
    assert_int_equal(open311_split_list("a,b,c,d,e", buf, sizeof(buf), items, 4), -1);
    assert_int_equal(open311_split_list("abcdefgh", buf, 8, items, 4), -1); /* buf too small */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_table),     cmocka_unit_test(test_form_limits),
        cmocka_unit_test(test_request_table),  cmocka_unit_test(test_request_values),
        cmocka_unit_test(test_datetime_table), cmocka_unit_test(test_split_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
