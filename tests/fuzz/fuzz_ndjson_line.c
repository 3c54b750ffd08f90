/*
 * fuzz_ndjson_line: a POST /v1/complaints/batch body, each line through
 * the same two steps api_complaints.c takes (split on '\n', drop a trailing
 * '\r', intake_json_parse then intake_complaint_from_json). A line is
 * checked on its own, so one bad line must never disturb the next.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t n_trim = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
        intake_complaint_t c;
        intake_verr_t e;

        memset(&e, 0, sizeof(e));
        json_t *root = intake_json_parse(p, n_trim, &e);
        /* intake_complaint_from_json owns root from here on, success or not */
        if (root && intake_complaint_from_json(root, &c, &e) == 0)
            intake_complaint_free(&c);
        p = nl ? nl + 1 : end;
    }
    return 0;
}
