/*
 * open311_form: Open311 form bodies, fields, dates and lists (see
 * open311_form.h). Pure functions: the only allocation is the decoded
 * form, freed by open311_form_free.
 */
#include "open311_form.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

/* The fields of POST requests the spec defines; attribute[...] aside. */
static const char *const request_fields[] = {
    "api_key",    "jurisdiction_id", "service_code", "lat",        "long",       "address_string",
    "address_id", "email",           "device_id",    "account_id", "first_name", "last_name",
    "phone",      "description",     "media_url",    NULL};

#define OPEN311_ID_MAX 128

static int ferr(open311_err_t *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ferr(open311_err_t *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    /* names are checked UTF-8 before they get here; cut at a character boundary */
    size_t n = strlen(field);
    if (n >= sizeof(e->field)) {
        n = sizeof(e->field) - 1;
        while (n > 0 && ((unsigned char)field[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(e->field, field, n);
    e->field[n] = '\0';
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode n bytes of one name or value; NULL if an escape is malformed. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    /* a decoded NUL would cut the string short of what the client sent */
    if (!util_utf8_valid(out, o)) {
        free(out);
        return NULL;
    }
    return out;
}

void open311_form_free(open311_form_t *form)
{
    if (!form)
        return;
    for (size_t i = 0; i < form->n; i++) {
        free(form->f[i].name);
        free(form->f[i].value);
    }
    form->n = 0;
}

/* A printable rendering of a name for an error message (never a value). */
static void safe_name(const char *s, size_t n, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < out_size && o < OPEN311_FORM_MAX_NAME; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o] = '\0';
}

int open311_form_parse(const char *body, size_t len, open311_form_t *form, open311_err_t *err)
{
    size_t i = 0;
    memset(form, 0, sizeof(*form));
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(body + i, '=', end - i);
            size_t nlen = eq ? (size_t)(eq - (body + i)) : end - i;
            char shown[OPEN311_FORM_MAX_NAME + 1];
            safe_name(body + i, nlen, shown, sizeof(shown));
            if (form->n == OPEN311_FORM_MAX_FIELDS) {
                ferr(err, "", "the form has more than %d fields", OPEN311_FORM_MAX_FIELDS);
                goto fail;
            }
            if (nlen == 0) {
                ferr(err, "", "a field of the form has no name (\"=value\")");
                goto fail;
            }
            char *name = form_decode(body + i, nlen);
            if (!name) {
                ferr(err, shown,
                     "the field name is not valid form encoding (a bad %%-escape, a NUL byte "
                     "or invalid UTF-8)");
                goto fail;
            }
            if (strlen(name) > OPEN311_FORM_MAX_NAME || !*name) {
                free(name);
                ferr(err, shown, "a field name must be 1 to %d bytes", OPEN311_FORM_MAX_NAME);
                goto fail;
            }
            char *value = eq ? form_decode(eq + 1, (size_t)(body + end - eq - 1)) : strdup("");
            if (!value) {
                ferr(err, name,
                     "the value is not valid form encoding (a bad %%-escape, a NUL byte or "
                     "invalid UTF-8)");
                free(name);
                goto fail;
            }
            if (open311_form_get(form, name)) {
                ferr(err, name, "the field is given more than once");
                free(name);
                free(value);
                goto fail;
            }
            form->f[form->n].name = name;
            form->f[form->n].value = value;
            form->n++;
        }
        i = end + 1;
    }
    return 0;
fail:
    open311_form_free(form);
    return -1;
}

const char *open311_form_get(const open311_form_t *form, const char *name)
{
    for (size_t i = 0; i < form->n; i++)
        if (strcmp(form->f[i].name, name) == 0)
            return form->f[i].value;
    return NULL;
}

/* A present, non-empty value, or NULL. */
static const char *opt(const open311_form_t *form, const char *name)
{
    const char *v = open311_form_get(form, name);
    return v && *v ? v : NULL;
}

/* A decimal number as a client writes it: [+-]digits[.digits], nothing else. */
static int parse_decimal(const char *s, double *out)
{
    const char *p = s;
    int digits = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits || *p || p - s > 32)
        return -1;
    errno = 0;
    *out = strtod(s, NULL);
    return errno || !isfinite(*out) ? -1 : 0;
}

static int code_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OPEN311_CODE_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

/* "attribute[x]" -> x (1..64 of the code alphabet). @returns the code or NULL. */
static const char *attr_code(const char *name)
{
    size_t n = strlen(name);
    static const char pre[] = "attribute[";
    if (n < sizeof(pre) + 1 || strncmp(name, pre, sizeof(pre) - 1) != 0 || name[n - 1] != ']')
        return NULL;
    return name + sizeof(pre) - 1;
}

static int id_check(const char *v, const char *field, open311_err_t *err)
{
    if (v && strlen(v) > OPEN311_ID_MAX)
        return ferr(err, field, "%s must be at most %d bytes", field, OPEN311_ID_MAX);
    return 0;
}

int open311_request_parse(const open311_form_t *form, open311_request_t *req, open311_err_t *err)
{
    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i < form->n; i++) {
        const char *name = form->f[i].name;
        int known = 0;
        for (size_t k = 0; request_fields[k]; k++)
            known |= strcmp(request_fields[k], name) == 0;
        if (known)
            continue;
        if (strncmp(name, "attribute[", 10) == 0) {
            size_t n = strlen(name);
            char code[OPEN311_FORM_MAX_NAME + 1];
            const char *c = attr_code(name);
            if (!c) {
                return ferr(err, name, "an attribute is written attribute[code]");
            }
            snprintf(code, sizeof(code), "%.*s", (int)(n - 11), c);
            if (!code_ok(code))
                return ferr(err, name,
                            "an attribute code is 1 to %d letters, digits, '_', '-' or '.'",
                            OPEN311_CODE_MAX);
            if (req->attr_n == OPEN311_MAX_ATTRS)
                return ferr(err, name, "at most %d attributes may be given", OPEN311_MAX_ATTRS);
            /* the code is the part of the name inside the brackets, without the ']' */
            req->attrs[req->attr_n].code = c;
            req->attrs[req->attr_n].value = form->f[i].value;
            req->attr_n++;
            continue;
        }
        return ferr(err, name,
                    "unknown field; POST requests takes api_key, service_code, lat, long, "
                    "address_string, address_id, email, device_id, account_id, first_name, "
                    "last_name, phone, description, media_url and attribute[code]");
    }
    req->api_key = opt(form, "api_key");
    req->service_code = opt(form, "service_code");
    req->address_string = opt(form, "address_string");
    req->address_id = opt(form, "address_id");
    req->email = opt(form, "email");
    req->device_id = opt(form, "device_id");
    req->account_id = opt(form, "account_id");
    req->first_name = opt(form, "first_name");
    req->last_name = opt(form, "last_name");
    req->phone = opt(form, "phone");
    req->description = opt(form, "description");
    req->media_url = opt(form, "media_url");
    req->jurisdiction_id = opt(form, "jurisdiction_id");

    if (!req->api_key)
        return ferr(err, "api_key", "api_key is required: an integrator token of this server");
    if (!req->service_code)
        return ferr(err, "service_code", "service_code is required (see GET services)");
    if (!code_ok(req->service_code))
        return ferr(err, "service_code", "service_code is 1 to %d letters, digits, '_', '-' or '.'",
                    OPEN311_CODE_MAX);
    const char *lat = opt(form, "lat"), *lon = opt(form, "long");
    if (lat || lon) {
        if (!lat)
            return ferr(err, "lat", "lat is required when long is given");
        if (!lon)
            return ferr(err, "long", "long is required when lat is given");
        if (parse_decimal(lat, &req->lat) != 0)
            return ferr(err, "lat", "lat must be a decimal number of degrees (WGS84)");
        if (parse_decimal(lon, &req->lon) != 0)
            return ferr(err, "long", "long must be a decimal number of degrees (WGS84)");
        req->has_coordinates = 1;
    }
    if (!req->has_coordinates && !req->address_string && !req->address_id)
        return ferr(err, "lat",
                    "a location is required: lat and long, or address_string, or address_id");
    if (id_check(req->address_id, "address_id", err) ||
        id_check(req->device_id, "device_id", err) || id_check(req->account_id, "account_id", err))
        return -1;
    if (!req->description)
        return ferr(err, "description", "description is required: what the request is about");
    if (req->media_url) {
        if (strlen(req->media_url) > 2048)
            return ferr(err, "media_url", "media_url must be at most 2048 bytes");
        if (strncasecmp(req->media_url, "http://", 7) != 0 &&
            strncasecmp(req->media_url, "https://", 8) != 0)
            return ferr(err, "media_url", "media_url must be an http or https URL");
        for (const char *p = req->media_url; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return ferr(err, "media_url", "media_url may not contain spaces or controls");
    }
    return 0;
}

const char *open311_request_attr(const open311_request_t *req, const char *code)
{
    size_t n = strlen(code);
    for (size_t i = 0; i < req->attr_n; i++)
        if (strncmp(req->attrs[i].code, code, n) == 0 && req->attrs[i].code[n] == ']')
            return *req->attrs[i].value ? req->attrs[i].value : NULL;
    return NULL;
}

/* Exactly n digits at s into *v. */
static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

int open311_parse_datetime(const char *s, int64_t *ms_out)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (!s || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return -1;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    const char *p = s + 10;
    if (*p) {
        if (*p != 'T' || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi))
            return -1;
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec))
                return -1;
            p += 3;
            if (*p == '.') {
                int k = 0;
                p++;
                while (isdigit((unsigned char)*p)) {
                    if (k < 3)
                        ms = ms * 10 + (*p - '0');
                    k++;
                    p++;
                }
                if (k == 0)
                    return -1;
                for (; k < 3; k++)
                    ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
                return -1;
            off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return -1; /* a time without a zone is ambiguous */
        }
        if (*p)
            return -1;
    }
    /* libc's timegm (no time zone involved) does the calendar arithmetic */
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm);
    *ms_out = (secs - (int64_t)off * 60) * 1000 + ms;
    return 0;
}

int open311_split_list(const char *s, char *buf, size_t buf_size, const char **items, int max)
{
    size_t n = strlen(s), o = 0;
    int cnt = 0;
    const char *p = s;
    if (n + 1 > buf_size)
        return -1;
    while (1) {
        const char *end = strchr(p, ',');
        if (!end)
            end = s + n;
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b || cnt == max)
            return -1;
        memcpy(buf + o, a, (size_t)(b - a));
        items[cnt++] = buf + o;
        o += (size_t)(b - a);
        buf[o++] = '\0';
        if (!*end)
            break;
        p = end + 1;
    }
    return cnt;
}
