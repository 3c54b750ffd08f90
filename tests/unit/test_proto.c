/* Unit tests: envelope build / encode / decode / validate / JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

static void build_classified(proto_env_t *pe, Kesu__V1__CaseClassified *cc, char **flags)
{
    kesu__v1__case_classified__init(cc);
    cc->domain = "transport";
    cc->request_type = "complaint";
    cc->urgency = "urgent";
    cc->confidence = 0.75;
    cc->n_flags = 2;
    cc->flags = flags;
    proto_env_init(pe, "classifier");
    proto_env_set_case(pe, "3f1c2a8e-1111-4222-8333-444455556666", "KS20261201-0000001",
                       "trace-1");
    assert_int_equal(proto_env_set_payload(pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED,
                                           &cc->base),
                     0);
    pe->env.case_version = 2;
    pe->env.case_seq = 2;
}

static void test_round_trip(void **state)
{
    proto_env_t pe;
    Kesu__V1__CaseClassified cc;
    char *flags[] = {"public_safety", "media"};
    char err[256];
    size_t len;
    build_classified(&pe, &cc, flags);
    assert_string_equal(pe.env.event_type, "CaseClassified");
    assert_true(util_is_uuid(pe.env.event_id));
    uint8_t *buf = proto_env_pack(&pe.env, &len);
    assert_non_null(buf);
    Kesu__V1__Envelope *env = proto_env_unpack(buf, len, err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env->event_id, pe.event_id);
    assert_string_equal(env->event_type, "CaseClassified");
    assert_string_equal(env->case_no, "KS20261201-0000001");
    assert_int_equal(env->case_version, 2);
    assert_int_equal(env->case_seq, 2);
    assert_int_equal(env->schema_version, PROTO_SCHEMA_VERSION);
    assert_int_equal(env->payload_case, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED);
    assert_string_equal(env->case_classified->domain, "transport");
    assert_int_equal(env->case_classified->n_flags, 2);
    assert_string_equal(env->case_classified->flags[1], "media");
    kesu__v1__envelope__free_unpacked(env, NULL);
    free(buf);
}

static void test_rejects_bad_input(void **state)
{
    char err[256];
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    assert_null(proto_env_unpack(junk, sizeof(junk), err, sizeof(err)));
    assert_non_null(strstr(err, "Envelope"));

    /* no payload */
    proto_env_t pe;
    size_t len;
    proto_env_init(&pe, "x");
    proto_env_set_case(&pe, "3f1c2a8e-1111-4222-8333-444455556666", "KS1", "t");
    uint8_t *buf = proto_env_pack(&pe.env, &len);
    assert_null(proto_env_unpack(buf, len, err, sizeof(err)));
    assert_non_null(strstr(err, "payload"));
    free(buf);

    /* case id not a UUID */
    Kesu__V1__CaseClassified cc;
    char *flags[] = {"a", "b"};
    build_classified(&pe, &cc, flags);
    snprintf(pe.case_id, sizeof(pe.case_id), "not-a-uuid");
    buf = proto_env_pack(&pe.env, &len);
    assert_null(proto_env_unpack(buf, len, err, sizeof(err)));
    assert_non_null(strstr(err, "case_id"));
    free(buf);

    /* event_type lies about the payload */
    build_classified(&pe, &cc, flags);
    snprintf(pe.event_type, sizeof(pe.event_type), "CaseClosed");
    buf = proto_env_pack(&pe.env, &len);
    assert_null(proto_env_unpack(buf, len, err, sizeof(err)));
    assert_non_null(strstr(err, "does not match"));
    free(buf);

    /* unknown schema version */
    build_classified(&pe, &cc, flags);
    pe.env.schema_version = 2;
    buf = proto_env_pack(&pe.env, &len);
    assert_null(proto_env_unpack(buf, len, err, sizeof(err)));
    assert_non_null(strstr(err, "schema_version"));
    free(buf);

    /* empty value */
    assert_null(proto_env_unpack("", 0, err, sizeof(err)));
}

static void test_names(void **state)
{
    assert_string_equal(proto_payload_name(KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED),
                        "CaseReceived");
    assert_string_equal(proto_payload_name(KESU__V1__ENVELOPE__PAYLOAD_SLA_BREACHED),
                        "SlaBreached");
    assert_null(proto_payload_name(KESU__V1__ENVELOPE__PAYLOAD__NOT_SET));
    assert_int_equal(proto_payload_case("CaseClosed"), KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED);
    assert_int_equal(proto_payload_case("NoSuchEvent"), KESU__V1__ENVELOPE__PAYLOAD__NOT_SET);
    /* every payload case maps back and forth */
    for (int c = 20; c <= 45; c++) {
        const char *n = proto_payload_name((Kesu__V1__Envelope__PayloadCase)c);
        assert_non_null(n);
        assert_int_equal(proto_payload_case(n), c);
    }
}

static void test_headers_and_json(void **state)
{
    proto_env_t pe;
    Kesu__V1__CaseClassified cc;
    char *flags[] = {"public_safety", "media"};
    build_classified(&pe, &cc, flags);
    json_t *h = proto_env_headers(&pe.env);
    assert_string_equal(json_string_value(json_object_get(h, "event_type")), "CaseClassified");
    assert_string_equal(json_string_value(json_object_get(h, "event_id")), pe.event_id);
    assert_string_equal(json_string_value(json_object_get(h, "schema_version")), "1");
    json_decref(h);

    json_t *j = proto_env_to_json(&pe.env);
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "domain")), "transport");
    assert_true(json_real_value(json_object_get(p, "confidence")) == 0.75);
    assert_int_equal(json_array_size(json_object_get(p, "flags")), 2);
    assert_null(json_object_get(p, "category")); /* empty string default omitted */
    assert_null(json_object_get(p, "needs_review"));
    assert_int_equal(json_integer_value(json_object_get(j, "case_seq")), 2);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejects_bad_input),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_headers_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
