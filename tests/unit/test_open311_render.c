/*
 * Unit tests: the Open311 output (services/intake/open311_render.c) and the
 * service list built from the real dispatch catalogue
 * (services/intake/open311_services.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "casefsm.h"
#include "open311_render.h"
#include "open311_services.h"

static void test_split_format(void **state)
{
    open311_fmt_t f = OPEN311_XML;
    assert_int_equal(open311_split_format("services.json", &f), 8);
    assert_int_equal(f, OPEN311_JSON);
    assert_int_equal(open311_split_format("KS20260101-0000001.xml", &f), 18);
    assert_int_equal(f, OPEN311_XML);
    assert_int_equal(open311_split_format(".json", &f), -1);
    assert_int_equal(open311_split_format("services.csv", &f), -1);
    assert_int_equal(open311_split_format("services", &f), -1);
    assert_int_equal(open311_split_format(NULL, &f), -1);
}

static void test_xml_array(void **state)
{
    json_t *doc = json_pack("[{s:i, s:s}, {s:b, s:n, s:f}]", "code", 403, "description",
                            "a <b> & \"c\" 'd'\x01", "metadata", 1, "x", "y", 0.5);
    strbuf_t b;
    strbuf_init(&b);
    open311_xml_render(doc, "errors", "error", &b);
    assert_string_equal(b.s,
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<errors><error><code>403</code><description>a &lt;b&gt; &amp; "
                        "&quot;c&quot; &apos;d&apos;</description></error>"
                        "<error><metadata>true</metadata><x></x><y>0.5</y></error></errors>\n");
    strbuf_free(&b);
    json_decref(doc);
}

static void test_xml_nested(void **state)
{
    json_t *doc = json_pack("{s:s, s:[{s:s, s:[{s:s}]}]}", "service_code", "s1", "attributes",
                            "code", "title", "values", "key", "true");
    strbuf_t b;
    strbuf_init(&b);
    open311_xml_render(doc, "service_definition", NULL, &b);
    assert_non_null(strstr(b.s, "<service_definition><service_code>s1</service_code>"
                                "<attributes><attribute><code>title</code><values><value>"
                                "<key>true</key></value></values></attribute></attributes>"
                                "</service_definition>"));
    strbuf_free(&b);
    json_decref(doc);
    /* an empty list is an empty root, still a well-formed document */
    strbuf_init(&b);
    doc = json_array();
    open311_xml_render(doc, "service_requests", "request", &b);
    assert_non_null(strstr(b.s, "<service_requests></service_requests>"));
    strbuf_free(&b);
    json_decref(doc);
}

/* Every Kesu status has an Open311 view, and the open/closed filters cover each exactly once. */
static void test_status_tables(void **state)
{
    const char *const *open = open311_status_filter("open");
    const char *const *closed = open311_status_filter("closed");
    assert_non_null(open);
    assert_non_null(closed);
    assert_null(open311_status_filter("OPEN"));
    assert_null(open311_status_filter(NULL));
    for (int s = 0; s < CASE__COUNT; s++) {
        const char *name = casefsm_name((case_status_t)s);
        const open311_status_t *o = open311_status_of(name);
        int in_open = 0, in_closed = 0;
        for (const char *const *p = open; *p; p++)
            in_open += strcmp(*p, name) == 0;
        for (const char *const *p = closed; *p; p++)
            in_closed += strcmp(*p, name) == 0;
        if (in_open + in_closed != 1)
            fail_msg("%s is in %d open and %d closed lists", name, in_open, in_closed);
        if (strcmp(o->open311, in_open ? "open" : "closed") != 0)
            fail_msg("%s: view says %s", name, o->open311);
        assert_true(o->fms[0] && o->note[0]);
    }
    /* terminal statuses are closed to an Open311 client */
    for (int s = 0; s < CASE__COUNT; s++)
        if (casefsm_terminal((case_status_t)s))
            assert_string_equal(open311_status_of(casefsm_name((case_status_t)s))->open311,
                                "closed");
    assert_string_equal(open311_status_of("in_progress")->fms, "IN_PROGRESS");
    assert_string_equal(open311_status_of("merged")->fms, "DUPLICATE");
}

static void test_catalogue(void **state)
{
    char err[512] = "";
    open311_catalogue_t *cat =
        open311_catalogue_load(KESU_SOURCE_DIR "/deploy/config/catalogue.json",
                               KESU_SOURCE_DIR "/deploy/config/domains.json", err, sizeof(err));
    if (!cat)
        fail_msg("catalogue: %s", err);
    /* one service per catalogue rule, file order, default last */
    json_t *root = json_load_file(KESU_SOURCE_DIR "/deploy/config/catalogue.json", 0, NULL);
    json_t *rules = json_object_get(root, "rules");
    assert_int_equal(json_array_size(cat->services), json_array_size(rules));
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *svc = json_array_get(cat->services, i);
        const char *id = json_string_value(json_object_get(json_array_get(rules, i), "id"));
        assert_string_equal(json_string_value(json_object_get(svc, "service_code")), id);
        assert_true(json_is_true(json_object_get(svc, "metadata")));
        assert_string_equal(json_string_value(json_object_get(svc, "type")), "realtime");
        assert_non_null(json_string_value(json_object_get(svc, "service_name")));
        assert_non_null(json_string_value(json_object_get(svc, "group")));
        json_t *def = open311_catalogue_definition(cat, id);
        assert_non_null(def);
        assert_true(json_array_size(json_object_get(def, "attributes")) >= 4);
    }
    json_t *water = json_array_get(cat->services, 0);
    assert_string_equal(json_string_value(json_object_get(water, "service_code")), "water-supply");
    assert_string_equal(json_string_value(json_object_get(water, "group")), "城乡建设");
    assert_non_null(strstr(json_string_value(json_object_get(water, "keywords")), "停水"));
    assert_non_null(strstr(json_string_value(json_object_get(water, "description")), "水务局"));
    assert_string_equal(open311_catalogue_department(cat, "water_affairs"), "水务局");
    assert_null(open311_catalogue_department(cat, "nowhere"));
    assert_null(open311_catalogue_name(cat, "nowhere"));
    assert_null(open311_catalogue_definition(cat, "nowhere"));
    json_decref(root);
    open311_catalogue_free(cat);

    assert_null(open311_catalogue_load(
        "/nonexistent.json", KESU_SOURCE_DIR "/deploy/config/domains.json", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_format), cmocka_unit_test(test_xml_array),
        cmocka_unit_test(test_xml_nested),   cmocka_unit_test(test_status_tables),
        cmocka_unit_test(test_catalogue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
