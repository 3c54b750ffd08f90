/*
 * proto: envelope helpers on top of the generated protobuf-c code. Payload
 * handling goes through the descriptors, so a new event type needs a line in
 * the .proto and nothing here.
 */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void proto_env_init(proto_env_t *pe, const char *producer)
{
    memset(pe, 0, sizeof(*pe));
    kesu__v1__envelope__init(&pe->env);
    util_uuid(pe->event_id);
    snprintf(pe->producer, sizeof(pe->producer), "%s", producer ? producer : "");
    pe->env.event_id = pe->event_id;
    pe->env.event_type = pe->event_type;
    pe->env.case_id = pe->case_id;
    pe->env.case_no = pe->case_no;
    pe->env.trace_id = pe->trace_id;
    pe->env.producer = pe->producer;
    pe->env.occurred_at_ms = util_now_ms();
    pe->env.schema_version = PROTO_SCHEMA_VERSION;
}

void proto_env_set_case(proto_env_t *pe, const char *case_id, const char *case_no,
                        const char *trace_id)
{
    snprintf(pe->case_id, sizeof(pe->case_id), "%s", case_id ? case_id : "");
    snprintf(pe->case_no, sizeof(pe->case_no), "%s", case_no ? case_no : "");
    snprintf(pe->trace_id, sizeof(pe->trace_id), "%s", trace_id ? trace_id : "");
}

static const ProtobufCFieldDescriptor *payload_field(Kesu__V1__Envelope__PayloadCase c)
{
    if (c == KESU__V1__ENVELOPE__PAYLOAD__NOT_SET)
        return NULL;
    return protobuf_c_message_descriptor_get_field(&kesu__v1__envelope__descriptor, (unsigned)c);
}

int proto_env_set_payload(proto_env_t *pe, Kesu__V1__Envelope__PayloadCase c,
                          const ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *f = payload_field(c);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return -1;
    pe->env.payload_case = c;
    *(const ProtobufCMessage **)((char *)&pe->env + f->offset) = msg;
    snprintf(pe->event_type, sizeof(pe->event_type), "%s",
             ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name);
    return 0;
}

const ProtobufCMessage *proto_env_payload(const Kesu__V1__Envelope *env)
{
    const ProtobufCFieldDescriptor *f = payload_field(env->payload_case);
    if (!f)
        return NULL;
    return *(const ProtobufCMessage *const *)((const char *)env + f->offset);
}

const char *proto_payload_name(Kesu__V1__Envelope__PayloadCase c)
{
    const ProtobufCFieldDescriptor *f = payload_field(c);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name;
}

Kesu__V1__Envelope__PayloadCase proto_payload_case(const char *event_type)
{
    const ProtobufCMessageDescriptor *d = &kesu__v1__envelope__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->short_name,
                   event_type) == 0)
            return (Kesu__V1__Envelope__PayloadCase)f->id;
    }
    return KESU__V1__ENVELOPE__PAYLOAD__NOT_SET;
}

uint8_t *proto_env_pack(const Kesu__V1__Envelope *env, size_t *len)
{
    size_t n = kesu__v1__envelope__get_packed_size(env);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    *len = kesu__v1__envelope__pack(env, buf);
    return buf;
}

Kesu__V1__Envelope *proto_env_unpack(const void *buf, size_t len, char *errstr,
                                     size_t errstr_size)
{
    Kesu__V1__Envelope *env = kesu__v1__envelope__unpack(NULL, len, buf);
    const char *name;
    if (!env) {
        snprintf(errstr, errstr_size, "value is not a kesu.v1.Envelope (protobuf decode failed)");
        return NULL;
    }
    if (!util_is_uuid(env->event_id)) {
        snprintf(errstr, errstr_size, "envelope event_id is not a UUID");
        goto err;
    }
    if (!util_is_uuid(env->case_id)) {
        snprintf(errstr, errstr_size, "envelope case_id is not a UUID");
        goto err;
    }
    if (env->schema_version != PROTO_SCHEMA_VERSION) {
        snprintf(errstr, errstr_size, "envelope schema_version %d is not supported (want %d)",
                 env->schema_version, PROTO_SCHEMA_VERSION);
        goto err;
    }
    name = proto_payload_name(env->payload_case);
    if (!name || !proto_env_payload(env)) {
        snprintf(errstr, errstr_size, "envelope has no known payload (event_type \"%s\")",
                 env->event_type);
        goto err;
    }
    if (strcmp(name, env->event_type) != 0) {
        snprintf(errstr, errstr_size, "envelope event_type \"%s\" does not match payload %s",
                 env->event_type, name);
        goto err;
    }
    return env;
err:
    kesu__v1__envelope__free_unpacked(env, NULL);
    return NULL;
}

json_t *proto_env_headers(const Kesu__V1__Envelope *env)
{
    char sv[16];
    snprintf(sv, sizeof(sv), "%d", env->schema_version);
    return json_pack("{s:s, s:s, s:s, s:s}", "event_type", env->event_type, "event_id",
                     env->event_id, "schema_version", sv, "trace_id",
                     env->trace_id ? env->trace_id : "");
}

static json_t *proto_value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return json_integer(*(const int *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *hex = malloc(b->len * 2 + 1);
        json_t *j;
        if (!hex)
            return json_null();
        util_hex(b->data, b->len, hex);
        j = json_string(hex);
        free(hex);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
        return m ? proto_to_json(m) : json_null();
    }
    }
    return json_null();
}

static size_t proto_value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

json_t *proto_to_json(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)msg;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(const char *const *)(base + f->offset);
            if (!n)
                continue;
            json_t *ja = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(ja, proto_value_json(f, arr + k * proto_value_size(f)));
            json_object_set_new(obj, f->name, ja);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        const void *p = base + f->offset;
        /* proto3: omit defaults, as the JSON mapping does */
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const char *s = *(char *const *)p;
                if (!s || !*s)
                    continue;
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (!*(void *const *)p)
                    continue;
            } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                if (!((const ProtobufCBinaryData *)p)->len)
                    continue;
            } else {
                static const char zero[16];
                if (memcmp(p, zero, proto_value_size(f)) == 0)
                    continue;
            }
        }
        json_object_set_new(obj, f->name, proto_value_json(f, p));
    }
    return obj;
}

json_t *proto_env_to_json(const Kesu__V1__Envelope *env)
{
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:i}", "event_id",
                            env->event_id, "event_type", env->event_type, "case_id", env->case_id,
                            "case_no", env->case_no, "case_version", (json_int_t)env->case_version,
                            "case_seq", (json_int_t)env->case_seq, "occurred_at_ms",
                            (json_int_t)env->occurred_at_ms, "producer", env->producer,
                            "trace_id", env->trace_id, "schema_version", env->schema_version);
    const ProtobufCMessage *p = proto_env_payload(env);
    if (obj && p)
        json_object_set_new(obj, "payload", proto_to_json(p));
    return obj;
}
