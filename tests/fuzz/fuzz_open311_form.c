/*
 * fuzz_open311_form: an Open311 POST requests body
 * (application/x-www-form-urlencoded) through open311_form_parse and
 * open311_request_parse, plus the two value parsers the GET side feeds with
 * query strings (date-times and comma lists), all on the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "open311_form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    open311_form_t form;
    open311_request_t req;
    open311_err_t err;

    if (open311_form_parse((const char *)data, size, &form, &err) == 0) {
        /* decoded pairs are promised to be NUL-free C strings */
        for (size_t i = 0; i < form.n; i++)
            if (!form.f[i].name || !form.f[i].value || form.f[i].name[0] == '\0')
                __builtin_trap();
        if (open311_request_parse(&form, &req, &err) == 0)
            (void)open311_request_attr(&req, "title");
        (void)open311_form_get(&form, "service_code");
        open311_form_free(&form);
        open311_form_free(&form); /* documented as safe twice */
    }

    /* the same bytes as a query-string value: a date-time and a comma list */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    (void)open311_parse_datetime(s, &ms);
    char buf[256];
    const char *items[8];
    int n = open311_split_list(s, buf, sizeof(buf), items, 8);
    for (int i = 0; i < n; i++)
        if (items[i] < buf || items[i] >= buf + sizeof(buf))
            __builtin_trap();
    free(s);
    return 0;
}
