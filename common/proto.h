/*
 * proto: the Envelope every Kafka value is, and helpers around the
 * generated protobuf-c code: build, pack, unpack with validation, event
 * type names, Kafka headers, and a generic protobuf -> JSON converter
 * (used by the case history, kesuctl events tail and the tests).
 */
#ifndef KESU_PROTO_H
#define KESU_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kesu/v1/envelope.pb-c.h"
#include "kesu/v1/events.pb-c.h"

#define PROTO_SCHEMA_VERSION 1

/** An envelope being built; the strings live inside it, so it needs no frees. */
typedef struct proto_env {
    Kesu__V1__Envelope env; /**< env.event_id etc. point into the buffers below */
    char event_id[37];
    char case_id[37];
    char case_no[40];
    char trace_id[64];
    char producer[32];
    char event_type[48];
} proto_env_t;

/** @brief Init with a fresh event id, now as occurred-at, schema version and producer. */
void proto_env_init(proto_env_t *pe, const char *producer);

/** @brief Set case id, case number and trace id (copied). */
void proto_env_set_case(proto_env_t *pe, const char *case_id, const char *case_no,
                        const char *trace_id);

/**
 * @brief Put a payload in the oneof (msg is borrowed: it must outlive packing)
 *        and set event_type from the payload's message name.
 * @returns 0, or -1 if payload_case is unknown.
 */
int proto_env_set_payload(proto_env_t *pe, Kesu__V1__Envelope__PayloadCase payload_case,
                          const ProtobufCMessage *msg);

/** @brief The payload message of an envelope, or NULL. */
const ProtobufCMessage *proto_env_payload(const Kesu__V1__Envelope *env);

/** @brief Message name of a payload case ("CaseReceived"), or NULL if unknown. */
const char *proto_payload_name(Kesu__V1__Envelope__PayloadCase c);

/** @brief Payload case for an event type name, or NOT_SET. */
Kesu__V1__Envelope__PayloadCase proto_payload_case(const char *event_type);

/** @brief Serialise. @returns malloc'd bytes (caller frees) and their length in *len. */
uint8_t *proto_env_pack(const Kesu__V1__Envelope *env, size_t *len);

/**
 * @brief Decode and validate (event id and case id are UUIDs, a payload is
 *        set, event_type names the payload, schema version known).
 * @returns the message (free with kesu__v1__envelope__free_unpacked(m, NULL))
 *          or NULL with the reason in errstr.
 */
Kesu__V1__Envelope *proto_env_unpack(const void *buf, size_t len, char *errstr,
                                     size_t errstr_size);

/** @brief Kafka headers of an envelope as a JSON object: event_type, event_id, schema_version, trace_id. */
json_t *proto_env_headers(const Kesu__V1__Envelope *env);

/** @brief Any protobuf-c message as a JSON object (field names as in .proto; defaults omitted). */
json_t *proto_to_json(const ProtobufCMessage *msg);

/** @brief The envelope as JSON: its fields plus "payload". */
json_t *proto_env_to_json(const Kesu__V1__Envelope *env);

#endif
