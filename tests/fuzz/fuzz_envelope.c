/*
 * fuzz_envelope: bytes off a Kafka topic through proto_env_unpack (what
 * every consumer does before its handler) and, when they decode, through
 * proto_env_to_json and proto_env_headers (what kesuctl events tail, the
 * DLQ and the archive feed print). Poison must be refused, never crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[256];
    Kesu__V1__Envelope *env = proto_env_unpack(data, size, errstr, sizeof(errstr));
    if (!env)
        return 0;
    json_t *j = proto_env_to_json(env);
    json_t *h = proto_env_headers(env);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    /* what is printed must re-read as JSON: no raw invalid UTF-8 slips out */
    if (s) {
        json_error_t jerr;
        json_t *back = json_loads(s, 0, &jerr);
        if (!back)
            __builtin_trap();
        json_decref(back);
    }
    free(s);
    json_decref(h);
    json_decref(j);
    kesu__v1__envelope__free_unpacked(env, NULL);
    return 0;
}
