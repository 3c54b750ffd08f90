/*
 * test_archive_scrub: what survives on kesu.public.v1.
 *
 * Generic over every payload type of the Envelope oneof (so a payload or
 * field added to the .proto later is covered without touching this test):
 * every string field filled with prose that carries personal data must come
 * out empty; filled with a code, exactly the allow-listed fields keep it.
 * Then realistic envelopes: a complaint, a classification with mixed flags,
 * free-text and code reasons, and the envelope's own fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "proto.h"

#define PROSE "张三 13812345678 住在幸福路1号，投诉物业不作为"
#define CODE  "ok_code-1"

/* the payload string fields that keep a code: a deliberate copy of the
 * scrubber's allow-list, so widening it is a visible change here too */
static const char *const want_kept[] = {
    "Location.district_code",
    "CaseReceived.channel",
    "CaseReceived.language",
    "CaseClassified.domain",
    "CaseClassified.request_type",
    "CaseClassified.category",
    "CaseClassified.urgency",
    "CaseClassified.flags",
    "CaseClassified.model",
    "CaseAssigned.department",
    "CaseAssigned.handler",
    "CaseAssigned.co_departments",
    "CaseAssigned.rule",
    "CaseAccepted.department",
    "CaseAccepted.handler",
    "CaseReturned.department",
    "CaseResolved.measures",
    "CaseResolved.department",
    "ReplySent.channel",
    "CaseReopened.reason",
    "CaseMerged.into_case_no",
    "CaseClosed.reason",
    "SlaWarning.timer",
    "SlaBreached.timer",
    "CaseEscalated.to",
    "CaseEscalated.timer",
    "NotificationSent.channel",
    "NotificationSent.audience",
    "NotificationSent.template",
    "NotificationSent.trigger_event_id",
    "NotificationFailed.channel",
    "NotificationFailed.audience",
    "NotificationFailed.template",
    "NotificationFailed.trigger_event_id",
    "HotspotDetected.district_code",
    "HotspotDetected.domain",
    "CaseRejected.reason",
    "CaseWithdrawn.reason",
};

static int is_kept(const char *msg, const char *field)
{
    char name[128];
    snprintf(name, sizeof(name), "%s.%s", msg, field);
    for (size_t i = 0; i < sizeof(want_kept) / sizeof(want_kept[0]); i++)
        if (strcmp(want_kept[i], name) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------- generic message filling */

static void *arena[64];
static int narena;
static char *two[2];

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    char *base = (char *)m;
    assert_true(narena < 64);
    arena[narena++] = m;
    d->message_init(m);
    two[0] = two[1] = (char *)text;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        void *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                *(size_t *)(base + f->quantifier_offset) = 2;
                *(char ***)p = two;
            }
            continue;
        }
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
            *(const char **)p = text;
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            *(ProtobufCMessage **)p = fill(f->descriptor, text);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            *(protobuf_c_boolean *)p = 1;
            break;
        case PROTOBUF_C_TYPE_DOUBLE:
            *(double *)p = 31.2304;
            break;
        case PROTOBUF_C_TYPE_INT64:
            *(int64_t *)p = 7;
            break;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_ENUM:
            *(int32_t *)p = 7;
            break;
        default:
            break;
        }
    }
    return m;
}

static void arena_free(void)
{
    while (narena)
        free(arena[--narena]);
}

/* an unpacked (malloc'd) envelope with the payload of case c filled with text */
static Kesu__V1__Envelope *make_env(Kesu__V1__Envelope__PayloadCase c, const char *text)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&kesu__v1__envelope__descriptor, (unsigned)c);
    proto_env_t pe;
    size_t len;
    proto_env_init(&pe, "itest");
    proto_env_set_case(&pe, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f", "KS20261201-0000001",
                       "trace-1");
    pe.env.case_version = 3;
    pe.env.case_seq = 5;
    assert_int_equal(proto_env_set_payload(&pe, c, fill(f->descriptor, text)), 0);
    uint8_t *buf = proto_env_pack(&pe.env, &len);
    arena_free();
    Kesu__V1__Envelope *env = kesu__v1__envelope__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(env);
    return env;
}

typedef struct walk {
    int strings;      /* string values seen (repeated elements count one each) */
    int nonempty;     /* of which still non-empty */
    char bad[2048];   /* which, and why */
    const char *code; /* when set: the value a kept field must still hold */
} walk_t;

static void walk(const ProtobufCMessage *m, walk_t *w)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        int kept = is_kept(d->short_name, f->name);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED) {
            if (*(ProtobufCMessage *const *)p)
                walk(*(ProtobufCMessage *const *)p, w);
            continue;
        }
        if (f->type != PROTOBUF_C_TYPE_STRING)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            char *const *arr = *(char *const *const *)p;
            w->strings += 2;
            w->nonempty += (int)n;
            if ((w->code && kept) ? n != 2 : n != 0)
                snprintf(w->bad + strlen(w->bad), sizeof(w->bad) - strlen(w->bad), " %s.%s[%zu]",
                         d->short_name, f->name, n);
            for (size_t k = 0; k < n; k++)
                if (strcmp(arr[k], w->code ? w->code : "") != 0)
                    snprintf(w->bad + strlen(w->bad), sizeof(w->bad) - strlen(w->bad), " %s.%s=%s",
                             d->short_name, f->name, arr[k]);
            continue;
        }
        const char *s = *(char *const *)p;
        w->strings++;
        if (s && *s)
            w->nonempty++;
        const char *want = (w->code && kept) ? w->code : "";
        if (strcmp(s ? s : "", want) != 0)
            snprintf(w->bad + strlen(w->bad), sizeof(w->bad) - strlen(w->bad), " %s.%s=\"%s\"",
                     d->short_name, f->name, s ? s : "(null)");
    }
}

static void for_each_payload(void (*fn)(Kesu__V1__Envelope__PayloadCase, const char *))
{
    const ProtobufCMessageDescriptor *d = &kesu__v1__envelope__descriptor;
    int n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            fn((Kesu__V1__Envelope__PayloadCase)f->id,
               ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name);
            n++;
        }
    }
    assert_true(n >= 23); /* every event type of events.proto at the time of writing */
}

static int total_strings;

static void prose_one(Kesu__V1__Envelope__PayloadCase c, const char *name)
{
    Kesu__V1__Envelope *env = make_env(c, PROSE);
    walk_t w = {0};
    archive_scrub_envelope(env);
    walk(proto_env_payload(env), &w);
    if (w.bad[0])
        fail_msg("%s: prose survived in%s", name, w.bad);
    total_strings += w.strings;
    /* the envelope itself is not touched */
    assert_string_equal(env->case_no, "KS20261201-0000001");
    assert_string_equal(env->case_id, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f");
    assert_int_equal(env->case_seq, 5);
    assert_int_equal(env->case_version, 3);
    assert_string_equal(env->event_type, name);
    /* a second pass has nothing left to do */
    assert_int_equal(archive_scrub_envelope(env), 0);
    kesu__v1__envelope__free_unpacked(env, NULL);
}

static void test_no_prose_survives(void **state)
{
    (void)state;
    total_strings = 0;
    for_each_payload(prose_one);
    assert_true(total_strings > 40);
}

static void code_one(Kesu__V1__Envelope__PayloadCase c, const char *name)
{
    Kesu__V1__Envelope *env = make_env(c, CODE);
    walk_t w = {.code = CODE};
    archive_scrub_envelope(env);
    walk(proto_env_payload(env), &w);
    if (w.bad[0])
        fail_msg("%s: wrong fields kept or cleared:%s", name, w.bad);
    kesu__v1__envelope__free_unpacked(env, NULL);
}

static void test_codes_kept_exactly_on_list(void **state)
{
    (void)state;
    for_each_payload(code_one);
}

/* ------------------------------------------------------ realistic cases */

static Kesu__V1__Envelope *roundtrip(proto_env_t *pe)
{
    size_t len;
    uint8_t *buf = proto_env_pack(&pe->env, &len);
    Kesu__V1__Envelope *env = kesu__v1__envelope__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(env);
    return env;
}

static void test_complaint(void **state)
{
    (void)state;
    Kesu__V1__CaseReceived cr = KESU__V1__CASE_RECEIVED__INIT;
    Kesu__V1__Location loc = KESU__V1__LOCATION__INIT;
    proto_env_t pe;
    proto_env_init(&pe, "intake");
    proto_env_set_case(&pe, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f", "KS1", "t");
    loc.address = "幸福路1号3单元";
    loc.district_code = "310104";
    loc.lat = 31.18;
    loc.lon = 121.43;
    loc.has_coordinates = 1;
    cr.channel = "web";
    cr.external_ref = "138****5678";
    cr.title = "小区垃圾无人清运";
    cr.body = "联系电话138****5678，张先生";
    cr.location = &loc;
    cr.anonymous = 0;
    cr.confidential = 1;
    cr.has_contact = 1;
    cr.language = "zh-CN";
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, &cr.base);
    Kesu__V1__Envelope *env = roundtrip(&pe);

    /* title, body, external_ref, address, lat, lon, has_coordinates */
    assert_int_equal(archive_scrub_envelope(env), 7);
    Kesu__V1__CaseReceived *o = env->case_received;
    assert_string_equal(o->channel, "web");
    assert_string_equal(o->title, "");
    assert_string_equal(o->body, "");
    assert_string_equal(o->external_ref, "");
    assert_string_equal(o->language, "zh-CN");
    assert_true(o->confidential && o->has_contact && !o->anonymous);
    assert_string_equal(o->location->address, "");
    assert_string_equal(o->location->district_code, "310104");
    assert_true(o->location->lat == 0 && o->location->lon == 0 && !o->location->has_coordinates);
    kesu__v1__envelope__free_unpacked(env, NULL);
}

static void test_classification_flags(void **state)
{
    (void)state;
    Kesu__V1__CaseClassified cc = KESU__V1__CASE_CLASSIFIED__INIT;
    char *flags[] = {"media", "有人要跳楼", "self_harm"};
    proto_env_t pe;
    proto_env_init(&pe, "classifier");
    proto_env_set_case(&pe, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f", "KS1", "t");
    cc.domain = "urban_management";
    cc.request_type = "complaint";
    cc.category = "facilities";
    cc.urgency = "urgent";
    cc.n_flags = 3;
    cc.flags = flags;
    cc.confidence = 0.83;
    cc.model = "rules-v1.2";
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED, &cc.base);
    Kesu__V1__Envelope *env = roundtrip(&pe);
    assert_int_equal(archive_scrub_envelope(env), 1);
    Kesu__V1__CaseClassified *o = env->case_classified;
    assert_int_equal(o->n_flags, 2);
    assert_string_equal(o->flags[0], "media");
    assert_string_equal(o->flags[1], "self_harm");
    assert_string_equal(o->domain, "urban_management");
    assert_string_equal(o->model, "rules-v1.2");
    assert_true(o->confidence > 0.82 && o->confidence < 0.84);
    kesu__v1__envelope__free_unpacked(env, NULL);
}

typedef struct reason_case {
    const char *name;
    Kesu__V1__Envelope__PayloadCase pc;
    const char *reason;
    int kept;
} reason_case_t;

static void test_reasons(void **state)
{
    (void)state;
    static const reason_case_t cases[] = {
        {"close code", KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, "satisfied", 1},
        {"close code no_feedback", KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, "no_feedback", 1},
        {"close prose", KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, "群众已满意", 0},
        {"close long code-like", KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED,
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
        {"close with spaces", KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED, "no answer given", 0},
        {"reopen code", KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, "unsatisfied", 1},
        {"reopen prose", KESU__V1__ENVELOPE__PAYLOAD_CASE_REOPENED, "问题根本没解决，敷衍了事", 0},
        {"return reason always cleared", KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED, "not_ours", 0},
        {"extension reason always cleared", KESU__V1__ENVELOPE__PAYLOAD_EXTENSION_REQUESTED,
         "need_time", 0},
        {"reject code", KESU__V1__ENVELOPE__PAYLOAD_CASE_REJECTED, "spam", 1},
        {"withdraw prose", KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN, "我不想投诉了", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const reason_case_t *c = &cases[i];
        /* every one of these payloads has a "reason" string field */
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
            &kesu__v1__envelope__descriptor, (unsigned)c->pc);
        const ProtobufCMessageDescriptor *md = f->descriptor;
        const ProtobufCFieldDescriptor *rf =
            protobuf_c_message_descriptor_get_field_by_name(md, "reason");
        assert_non_null(rf);
        ProtobufCMessage *m = calloc(1, md->sizeof_message);
        md->message_init(m);
        *(const char **)((char *)m + rf->offset) = c->reason;
        proto_env_t pe;
        proto_env_init(&pe, "intake");
        proto_env_set_case(&pe, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f", "KS1", "t");
        proto_env_set_payload(&pe, c->pc, m);
        Kesu__V1__Envelope *env = roundtrip(&pe);
        free(m);
        archive_scrub_envelope(env);
        const ProtobufCMessage *out = proto_env_payload(env);
        const char *got = *(char *const *)((const char *)out + rf->offset);
        if (strcmp(got, c->kept ? c->reason : "") != 0)
            fail_msg("%s: reason became \"%s\"", c->name, got);
        kesu__v1__envelope__free_unpacked(env, NULL);
    }
}

static void test_notification_failed_error(void **state)
{
    (void)state;
    Kesu__V1__NotificationFailed nf = KESU__V1__NOTIFICATION_FAILED__INIT;
    proto_env_t pe;
    proto_env_init(&pe, "notifier");
    proto_env_set_case(&pe, "0b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f", "KS1", "t");
    nf.channel = "webhook";
    nf.audience = "complainant";
    nf.template_ = "case_received.complainant";
    nf.trigger_event_id = "9b3f6c2e-9d1a-4f5e-8c7b-1a2b3c4d5e6f";
    nf.error = "POST hooks.example.com:443: timeout";
    nf.attempts = 8;
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED, &nf.base);
    Kesu__V1__Envelope *env = roundtrip(&pe);
    assert_int_equal(archive_scrub_envelope(env), 1);
    assert_string_equal(env->notification_failed->error, "");
    assert_string_equal(env->notification_failed->template_, "case_received.complainant");
    assert_int_equal(env->notification_failed->attempts, 8);
    kesu__v1__envelope__free_unpacked(env, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_prose_survives), cmocka_unit_test(test_codes_kept_exactly_on_list),
        cmocka_unit_test(test_complaint),         cmocka_unit_test(test_classification_flags),
        cmocka_unit_test(test_reasons),           cmocka_unit_test(test_notification_failed_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
