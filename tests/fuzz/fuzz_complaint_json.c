/*
 * fuzz_complaint_json: a POST /v1/complaints body as it arrives, through
 * the very parser the route uses (intake_complaint_parse), then the
 * error-path helper that names the broken field. Any input must give a
 * complaint or an error naming a valid-UTF-8 field, never a crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    intake_complaint_t c;
    intake_verr_t err;
    char path[96];

    if (intake_complaint_parse((const char *)data, size, &c, &err) == 0) {
        /* the parsed strings are what intake stores: they must be readable */
        if (c.title)
            (void)intake_utf8_chars(c.title);
        intake_complaint_free(&c);
    } else {
        /* a refusal names a field that is a C string of its buffer */
        if (memchr(err.field, '\0', sizeof(err.field)) == NULL)
            __builtin_trap();
    }
    /* the route names the field of a JSON syntax error from a byte offset */
    intake_json_path_at((const char *)data, size, size / 2, path, sizeof(path));
    if (memchr(path, '\0', sizeof(path)) == NULL)
        __builtin_trap();
    return 0;
}
