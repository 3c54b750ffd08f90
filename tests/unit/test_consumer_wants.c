/*
 * test_consumer_wants: each stage's kc_wants_fn is exact. The consumer loop
 * commits an event the stage does not want without an inbox row and without
 * calling the handler (common/kafka.c), which is only right if the handler
 * would have done nothing with it. For every payload type of the envelope:
 * when wants() says no, the handler - given a connection that cannot reach
 * any database - returns KC_SKIP (a handler that reads or writes anything
 * gets an error from pg_exec_stmt and answers something else). And each
 * stage still wants the events its work starts from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify_event.h"
#include "dispatch_event.h"
#include "notify.h"
#include "proto.h"
#include "sla_timers.h"

typedef struct stage {
    const char *name;
    kc_handler_fn handle;
    kc_wants_fn wants;
    void *ctx;
    const Kesu__V1__Envelope__PayloadCase *must; /* wanted for sure; NOT_SET ends */
} stage_t;

static classify_ctx_t cctx;
static dispatch_ctx_t dctx;
static sla_ctx_t sctx;
static notify_t nt;

static const Kesu__V1__Envelope__PayloadCase must_classify[] = {
    KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, KESU__V1__ENVELOPE__PAYLOAD__NOT_SET};
static const Kesu__V1__Envelope__PayloadCase must_dispatch[] = {
    KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED, KESU__V1__ENVELOPE__PAYLOAD_CASE_RETURNED,
    KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, KESU__V1__ENVELOPE__PAYLOAD__NOT_SET};
static const Kesu__V1__Envelope__PayloadCase must_sla[] = {
    KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED, KESU__V1__ENVELOPE__PAYLOAD_CASE_ACCEPTED,
    KESU__V1__ENVELOPE__PAYLOAD_REPLY_SENT, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLOSED,
    KESU__V1__ENVELOPE__PAYLOAD__NOT_SET};
/* with the shipped deploy/config/notifier.json */
static const Kesu__V1__Envelope__PayloadCase must_notify[] = {
    KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED, KESU__V1__ENVELOPE__PAYLOAD_CASE_ASSIGNED,
    KESU__V1__ENVELOPE__PAYLOAD_CASE_RESOLVED, KESU__V1__ENVELOPE__PAYLOAD__NOT_SET};

/* an envelope carrying an empty message of payload field f (free *msg after) */
static void payload_env(proto_env_t *pe, const ProtobufCFieldDescriptor *f, ProtobufCMessage **msg)
{
    const ProtobufCMessageDescriptor *md = f->descriptor;
    *msg = calloc(1, md->sizeof_message);
    assert_non_null(*msg);
    md->message_init(*msg);
    proto_env_init(pe, "test");
    proto_env_set_case(pe, "00000000-0000-4000-8000-000000000001", "KS-TEST", "trace");
    assert_int_equal(proto_env_set_payload(pe, (Kesu__V1__Envelope__PayloadCase)f->id, *msg), 0);
}

/* every payload type of the envelope's oneof, with an empty message in it */
static void each_payload(void (*fn)(const Kesu__V1__Envelope *env, void *arg), void *arg)
{
    const ProtobufCMessageDescriptor *d = &kesu__v1__envelope__descriptor;
    int seen = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        proto_env_t pe;
        ProtobufCMessage *msg;
        payload_env(&pe, f, &msg);
        fn(&pe.env, arg);
        free(msg);
        seen++;
    }
    assert_true(seen >= 20); /* the envelope carries every history event type */
}

typedef struct run {
    const stage_t *st;
    pg_t *pg;
    int wanted, skipped;
} run_t;

static void check_one(const Kesu__V1__Envelope *env, void *arg)
{
    run_t *r = arg;
    if (r->st->wants(r->st->ctx, env)) {
        r->wanted++;
        return;
    }
    char err[512] = "";
    rd_kafka_message_t rkm;
    memset(&rkm, 0, sizeof(rkm));
    kc_msg_t m = {&rkm, env, "kesu.test.v1"};
    kc_result_t got = r->st->handle(r->st->ctx, r->pg, &m, err, sizeof(err));
    if (got != KC_SKIP)
        fail_msg("%s does not want %s, but its handler answered %d (%s)", r->st->name,
                 env->event_type, (int)got, err);
    r->skipped++;
}

static void check_stage(const stage_t *st)
{
    pg_t *pg = pg_new("host=/nonexistent/kesu-test"); /* never connected */
    run_t r = {st, pg, 0, 0};
    each_payload(check_one, &r);
    pg_destroy(pg);
    assert_true(r.skipped > 0); /* every stage ignores something */
    for (const Kesu__V1__Envelope__PayloadCase *c = st->must;
         *c != KESU__V1__ENVELOPE__PAYLOAD__NOT_SET; c++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(&kesu__v1__envelope__descriptor, (unsigned)*c);
        assert_non_null(f);
        proto_env_t pe;
        ProtobufCMessage *msg;
        payload_env(&pe, f, &msg);
        if (!st->wants(st->ctx, &pe.env))
            fail_msg("%s must want %s", st->name, pe.env.event_type);
        free(msg);
    }
}

static void test_classifier(void **state)
{
    (void)state;
    stage_t st = {"classifier", classify_handle, classify_wants, &cctx, must_classify};
    check_stage(&st);
}

static void test_dispatcher(void **state)
{
    (void)state;
    stage_t st = {"dispatcher", dispatch_handle, dispatch_wants, &dctx, must_dispatch};
    check_stage(&st);
}

static void test_sla_monitor(void **state)
{
    (void)state;
    stage_t st = {"sla-monitor", sla_handle, sla_wants, &sctx, must_sla};
    check_stage(&st);
}

static void test_notifier(void **state)
{
    (void)state;
    stage_t st = {"notifier", notify_handle, notify_wants, &nt, must_notify};
    check_stage(&st);
}

/* the notifier's wants follows its templates, not a list in the code */
static void test_notifier_follows_templates(void **state)
{
    (void)state;
    proto_env_t pe;
    Kesu__V1__CaseWithdrawn w = KESU__V1__CASE_WITHDRAWN__INIT;
    proto_env_init(&pe, "test");
    assert_int_equal(proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_WITHDRAWN,
                                           &w.base),
                     0);
    int before = notify_wants(&nt, &pe.env);
    size_t n = nt.cfg.n_templates;
    nt.cfg.n_templates = 0;
    int none = notify_wants(&nt, &pe.env);
    nt.cfg.n_templates = n;
    assert_int_equal(none, 0);
    /* and with the shipped templates: wanted exactly if one names it */
    int named = 0;
    for (size_t i = 0; i < n; i++)
        named |= strcmp(nt.cfg.templates[i].event, "CaseWithdrawn") == 0;
    assert_int_equal(before, named);
}

static int setup(void **state)
{
    (void)state;
    char path[1024], err[512];
    const char *src = getenv("KESU_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/config/notifier.json",
             src && *src ? src : KESU_SOURCE_DIR);
    if (notify_config_load(&nt.cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    notify_config_free(&nt.cfg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_dispatcher),
        cmocka_unit_test(test_sla_monitor),
        cmocka_unit_test(test_notifier),
        cmocka_unit_test(test_notifier_follows_templates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
