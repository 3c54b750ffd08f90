/*
 * validate: intake's input rules (see validate.h). Pure functions over the
 * request bytes; nothing here touches PostgreSQL, Kafka or the network.
 *
 * The rules are strict on purpose: a bad input gets a clear error naming the
 * field and never a partial case (DESIGN.md section 7). Optional strings
 * that arrive empty ("") or null count as absent, because the forms of the
 * hotline and web channels send blank fields that way.
 */
#include "validate.h"
#include "util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

const char *const intake_channels[] = {"phone",  "web",     "app",    "walk_in",
                                       "letter", "open311", "import", NULL};

const char *const intake_measures[] = {"explanation", "compensation", "process_improvement",
                                       "accountability", NULL};

static const char *const complaint_keys[] = {
    "channel",     "title",     "body",         "external_ref",
    "language",    "anonymous", "confidential", "location",
    "complainant", "call_id",   "agent_id",     "received_date",
    "scan_ref",    "window_id", "attachments",  NULL};
static const char *const attachment_keys[] = {"url",  "name",   "content_type",
                                              "size", "sha256", NULL};
static const char *const location_keys[] = {"address", "district_code", "lat", "lon", NULL};
static const char *const complainant_keys[] = {"name",      "phone",        "email",
                                               "id_number", "callback_url", NULL};
static const char *const feedback_keys[] = {"access_code", "satisfaction", "comment", NULL};
static const char *const supplement_keys[] = {"access_code", "text", "attachments", NULL};

/* Channel details, and the channels that require each (a detail of another channel is refused). */
static const char *const no_fields[] = {NULL};
static const char *const phone_fields[] = {"call_id", "agent_id", NULL};
static const char *const letter_fields[] = {"received_date", "scan_ref", NULL};
static const char *const walk_in_fields[] = {"window_id", NULL};
static const char *const ref_fields[] = {"external_ref", NULL};
static const struct {
    const char *channel;
    const char *const *required;
} channel_rules[] = {
    {"phone", phone_fields},   {"web", no_fields},
    {"app", no_fields},        {"walk_in", walk_in_fields},
    {"letter", letter_fields}, {"open311", ref_fields},
    {"import", ref_fields},    {NULL, NULL},
};
/* The channel-only details (external_ref is allowed on every channel). */
static const char *const channel_detail_keys[] = {"call_id",  "agent_id",  "received_date",
                                                  "scan_ref", "window_id", NULL};

/* Copy at most size-1 bytes of valid UTF-8 without splitting a character. */
static void copy_utf8(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int verr(intake_verr_t *e, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int verr(intake_verr_t *e, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    intake_field_error_t fe;
    snprintf(fe.code, sizeof(fe.code), "%s", code);
    copy_utf8(fe.field, sizeof(fe.field), field ? field : "");
    va_start(ap, fmt);
    vsnprintf(fe.message, sizeof(fe.message), fmt, ap);
    va_end(ap);
    /* a message may quote a (valid UTF-8) field name; vsnprintf may have cut it */
    char tmp[sizeof(fe.message)];
    memcpy(tmp, fe.message, sizeof(tmp));
    copy_utf8(fe.message, sizeof(fe.message), tmp);
    if (e->count == 0) {
        memcpy(e->code, fe.code, sizeof(e->code));
        memcpy(e->field, fe.field, sizeof(e->field));
        memcpy(e->message, fe.message, sizeof(e->message));
    }
    if (e->count < INTAKE_VERR_MAX)
        e->list[e->count] = fe;
    e->count++;
    /* a body that is not JSON is malformed (400); anything else is a field error (422) */
    if (e->status != 400)
        e->status =
            (strcmp(code, "invalid_json") == 0 || strcmp(code, "invalid_utf8") == 0) ? 400 : 422;
    return -1;
}

size_t intake_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* One open container while walking JSON text for intake_json_path_at. */
typedef struct path_frame {
    char type;    /* '{' or '[' */
    char key[48]; /* object: the key whose value we are in ("" before one is read) */
    int idx;      /* array: index of the current element */
} path_frame_t;

void intake_json_path_at(const char *buf, size_t len, size_t at, char *out, size_t out_size)
{
    path_frame_t fr[16];
    int depth = 0, expect_key = 0;
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && buf[j] != '"')
                j += buf[j] == '\\' ? 2 : 1;
            int is_key = depth > 0 && depth <= 16 && fr[depth - 1].type == '{' && expect_key;
            if (at <= j || j >= len) {
                /* inside this string: a key names its parent, a value its key */
                break;
            }
            if (is_key) {
                size_t k = 0;
                for (size_t p = i + 1; p < j && k + 1 < sizeof(fr[0].key); p++) {
                    unsigned char b = (unsigned char)buf[p];
                    fr[depth - 1].key[k++] = (b >= 0x20 && b < 0x7f && b != '\\') ? (char)b : '?';
                }
                fr[depth - 1].key[k] = '\0';
                expect_key = 0;
            }
            i = j + 1;
            continue;
        }
        /* an error just after a ',' is about what follows it, not the field before */
        if (i > at || (i == at && c != ','))
            break;
        if (c == '{' || c == '[') {
            if (depth < 16) {
                fr[depth].type = c;
                fr[depth].key[0] = '\0';
                fr[depth].idx = 0;
            }
            depth++;
            expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
            expect_key = 0;
        } else if (c == ',' && depth > 0 && depth <= 16) {
            if (fr[depth - 1].type == '{') {
                fr[depth - 1].key[0] = '\0';
                expect_key = 1;
            } else {
                fr[depth - 1].idx++;
            }
        }
        i++;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int d = 0; d < depth && d < 16; d++) {
        int n = 0;
        if (fr[d].type == '{' && fr[d].key[0])
            n = snprintf(out + o, out_size - o, "%s%s", o ? "." : "", fr[d].key);
        else if (fr[d].type == '[')
            n = snprintf(out + o, out_size - o, "[%d]", fr[d].idx);
        if (n < 0 || (size_t)n >= out_size - o) {
            out[o] = '\0';
            break;
        }
        o += (size_t)n;
    }
}

json_t *intake_json_parse(const char *buf, size_t len, intake_verr_t *err)
{
    char path[96];
    json_error_t jerr;
    if (!buf || len == 0) {
        verr(err, "invalid_json", "", "the request body is empty; send a JSON object");
        return NULL;
    }
    size_t bad = util_utf8_bad_offset(buf, len);
    if (bad < len) {
        intake_json_path_at(buf, len, bad, path, sizeof(path));
        verr(err, "invalid_utf8", path, "%s%scontains bytes that are not valid UTF-8 (at byte %zu)",
             path, *path ? " " : "the request body ", bad);
        return NULL;
    }
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        size_t at = jerr.position > 0 ? (size_t)jerr.position - 1 : 0;
        char text[128];
        /* jansson quotes the input near the error; keep only its own words */
        size_t k = 0;
        for (const char *p = jerr.text; *p && k + 1 < sizeof(text); p++) {
            if (strncmp(p, " near ", 6) == 0)
                break;
            text[k++] = ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f) ? *p : '?';
        }
        text[k] = '\0';
        if (strncmp(jerr.text, "duplicate object key", 20) == 0) {
            /* jansson stops on the closing quote of the repeated key: name that key */
            intake_json_path_at(buf, len, at + 1, path, sizeof(path));
            verr(err, "invalid_json", path, "field \"%s\" appears more than once", path);
            return NULL;
        }
        intake_json_path_at(buf, len, at, path, sizeof(path));
        verr(err, "invalid_json", path, "the request body is not valid JSON: %s (line %d)", text,
             jerr.line);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        verr(err, "invalid_json", "", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static void join_path(char *out, size_t n, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(out, n, "%s.%s", prefix, key);
    else
        snprintf(out, n, "%s", key);
}

static int check_unknown(json_t *obj, const char *prefix, const char *const *allowed,
                         intake_verr_t *err)
{
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(obj, key, v)
    {
        if (!in_list(key, allowed)) {
            char path[96];
            join_path(path, sizeof(path), prefix, key);
            rc = verr(err, "unknown_field", path, "unknown field \"%s\"; see the API reference",
                      path);
        }
    }
    return rc;
}

/* Text rules: ctl_ok allows tab, newline and carriage return (multi-line text). */
static int has_control(const char *s, int ctl_ok)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x7f)
            return 1;
        if (*p < 0x20 && !(ctl_ok && (*p == '\t' || *p == '\n' || *p == '\r')))
            return 1;
    }
    return 0;
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/*
 * Fetch obj[key] as a string. Absent, null or (when optional) "" leaves *out
 * NULL; a required one that is absent is an error.
 */
static int get_string(json_t *obj, const char *prefix, const char *key, int required,
                      const char **out, intake_verr_t *err)
{
    char path[96];
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    join_path(path, sizeof(path), prefix, key);
    if (!v || json_is_null(v)) {
        if (required)
            return verr(err, "missing_field", path, "%s is required", path);
        return 0;
    }
    if (!json_is_string(v))
        return verr(err, "invalid_type", path, "%s must be a string", path);
    const char *s = json_string_value(v);
    if (!*s) {
        if (required)
            return verr(err, "invalid_value", path, "%s must not be empty", path);
        return 0;
    }
    *out = s;
    return 0;
}

/* A free-text field: not blank, no stray control characters, at most max_chars. */
static int check_text(const char *s, const char *path, size_t max_chars, int multiline,
                      intake_verr_t *err)
{
    if (is_blank(s))
        return verr(err, "invalid_value", path, "%s must not be blank", path);
    if (has_control(s, multiline))
        return verr(err, "invalid_value", path, "%s contains control characters", path);
    if (intake_utf8_chars(s) > max_chars)
        return verr(err, "too_long", path, "%s is longer than %zu characters", path, max_chars);
    return 0;
}

static int get_bool(json_t *obj, const char *key, int *out, intake_verr_t *err)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return verr(err, "invalid_type", key, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* Optional number in [lo, hi]; *present tells whether it was given. */
static int get_number(json_t *obj, const char *prefix, const char *key, double lo, double hi,
                      double *out, int *present, intake_verr_t *err)
{
    char path[96];
    json_t *v = json_object_get(obj, key);
    join_path(path, sizeof(path), prefix, key);
    *present = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return verr(err, "invalid_type", path, "%s must be a number", path);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return verr(err, "out_of_range", path, "%s must be between %g and %g", path, lo, hi);
    *out = d;
    *present = 1;
    return 0;
}

/* BCP 47-ish: a 2-8 letter primary subtag, then -subtags of 1-8 letters/digits. */
static int language_ok(const char *s)
{
    size_t n = strlen(s), run = 0;
    int first = 1;
    if (n < 2 || n > INTAKE_LANGUAGE_MAX)
        return 0;
    for (const char *p = s;; p++) {
        if (*p == '-' || *p == '\0') {
            if (run < (first ? 2u : 1u) || run > 8)
                return 0;
            if (!*p)
                return 1;
            run = 0;
            first = 0;
            continue;
        }
        if (first ? !isalpha((unsigned char)*p) : !isalnum((unsigned char)*p))
            return 0;
        run++;
    }
}

int intake_district_ok(const char *s)
{
    size_t n = 0;
    int nonzero = 0;
    for (; s[n]; n++) {
        if (!isdigit((unsigned char)s[n]))
            return 0;
        nonzero |= s[n] != '0';
    }
    return n == 6 && nonzero;
}

int intake_date_ok(const char *s)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

int intake_phone_cn_ok(const char *norm)
{
    size_t n = strlen(norm);
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)norm[i]))
            return 0;
    if (n == 11 && norm[0] == '1')
        return norm[1] >= '3' && norm[1] <= '9'; /* mobile */
    if (norm[0] == '0')
        return n >= 10 && n <= 12 && norm[1] != '0'; /* area code 0xx / 0xxx + 7-8 digits */
    if (n == 10 && (strncmp(norm, "400", 3) == 0 || strncmp(norm, "800", 3) == 0))
        return 1;
    if (n == 5 && (norm[0] == '1' || norm[0] == '9'))
        return 1;                                /* 12345, 95598, ... */
    return (n == 7 || n == 8) && norm[0] >= '2'; /* local landline without area code */
}

/* Phone: digits (ASCII or full-width), spaces, + - ( ) and '.' only. */
static int phone_chars_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (isdigit(*p) || *p == ' ' || *p == '+' || *p == '-' || *p == '(' || *p == ')' ||
            *p == '.') {
            p++;
        } else if (p[0] == 0xef && p[1] == 0xbc && p[2] >= 0x90 && p[2] <= 0x99) {
            p += 3; /* full-width ０-９ */
        } else {
            return 0;
        }
    }
    return 1;
}

static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s);
    if (n > INTAKE_EMAIL_MAX || !at || at == s || (size_t)(at - s) > 64 || strchr(at + 1, '@'))
        return 0;
    for (const char *p = s; p < at; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._%+-'!#$&*/=?^`{|}~", *p))
            return 0;
    /* domain: labels of letters, digits and '-', at least two, no empty label */
    const char *d = at + 1;
    int labels = 0;
    size_t run = 0;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (run == 0 || run > 63 || p[-1] == '-' || (p - run)[0] == '-')
                return 0;
            labels++;
            run = 0;
            if (!*p)
                break;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return 0;
        run++;
    }
    return labels >= 2;
}

/* 18-digit resident ID (17 digits + digit/X) or the old 15-digit form. */
static int id_number_ok(const char *s)
{
    size_t n = strlen(s);
    if (n != 15 && n != 18)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)s[i]))
            continue;
        if (i == 17 && (s[i] == 'X' || s[i] == 'x'))
            continue;
        return 0;
    }
    return 1;
}

/* http(s)://host[...]: printable ASCII without spaces, a non-empty host. */
static int url_ok(const char *s)
{
    const char *rest;
    if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return 0;
    if (strlen(s) > INTAKE_URL_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    size_t host = strcspn(rest, "/?#");
    const char *at = memchr(rest, '@', host);
    if (at) { /* userinfo@host: the host is what follows */
        host -= (size_t)(at + 1 - rest);
        rest = at + 1;
    }
    if (host == 0 || rest[0] == ':')
        return 0;
    return 1;
}

/* The checks below go on after a bad field, so one answer names every bad field. */
static void parse_location(intake_complaint_t *c, json_t *loc, intake_verr_t *err)
{
    const char *P = "location";
    int has_lat = 0, has_lon = 0;
    check_unknown(loc, P, location_keys, err);
    if (get_string(loc, P, "address", 0, &c->address, err) == 0 && c->address &&
        check_text(c->address, "location.address", INTAKE_ADDRESS_MAX_CHARS, 1, err) != 0)
        c->address = NULL;
    if (get_string(loc, P, "district_code", 0, &c->district_code, err) == 0 && c->district_code &&
        !intake_district_ok(c->district_code)) {
        verr(err, "invalid_value", "location.district_code",
             "location.district_code must be a 6-digit administrative division code "
             "(GB/T 2260, e.g. 110105)");
        c->district_code = NULL;
    }
    get_number(loc, P, "lat", -90, 90, &c->lat, &has_lat, err);
    get_number(loc, P, "lon", -180, 180, &c->lon, &has_lon, err);
    if (has_lat != has_lon)
        verr(err, "missing_field", has_lat ? "location.lon" : "location.lat",
             "location.lat and location.lon go together; %s is missing",
             has_lat ? "location.lon" : "location.lat");
    c->has_coordinates = has_lat && has_lon;
}

static void parse_complainant(intake_complaint_t *c, json_t *who, intake_verr_t *err)
{
    const char *P = "complainant";
    check_unknown(who, P, complainant_keys, err);
    if (get_string(who, P, "name", 0, &c->name, err) == 0 && c->name &&
        check_text(c->name, "complainant.name", INTAKE_NAME_MAX_CHARS, 0, err) != 0)
        c->name = NULL;
    int before = err->count;
    if (get_string(who, P, "phone", 0, &c->phone, err) == 0 && c->phone) {
        if (strlen(c->phone) > INTAKE_PHONE_MAX_BYTES || !phone_chars_ok(c->phone))
            verr(err, "invalid_value", "complainant.phone",
                 "complainant.phone may hold only digits, spaces and + - ( ) .");
        else if (crypto_phone_normalize(c->phone, c->phone_norm, sizeof(c->phone_norm)) != 0 ||
                 !intake_phone_cn_ok(c->phone_norm))
            verr(err, "invalid_value", "complainant.phone",
                 "complainant.phone must be a mainland mobile number (13812345678, +86 allowed) "
                 "or a landline (010-88886666)");
        if (err->count != before) {
            c->phone = NULL;
            c->phone_norm[0] = '\0';
        }
    }
    if (get_string(who, P, "email", 0, &c->email, err) == 0 && c->email && !email_ok(c->email))
        verr(err, "invalid_value", "complainant.email",
             "complainant.email is not an e-mail address (name@example.org)");
    if (get_string(who, P, "id_number", 0, &c->id_number, err) == 0 && c->id_number &&
        !id_number_ok(c->id_number))
        verr(err, "invalid_value", "complainant.id_number",
             "complainant.id_number must be 18 characters (17 digits and a digit or X) "
             "or 15 digits");
    if (get_string(who, P, "callback_url", 0, &c->callback_url, err) == 0 && c->callback_url &&
        !url_ok(c->callback_url))
        verr(err, "invalid_value", "complainant.callback_url",
             "complainant.callback_url must be an http:// or https:// URL of at most %d "
             "characters",
             INTAKE_URL_MAX);
    c->has_complainant = c->name || c->phone || c->email || c->id_number || c->callback_url;
}

/* A short identifier of a channel system: printable, no spaces, 1..64 bytes. */
static int ident_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > INTAKE_CHANNEL_ID_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return 0;
    return 1;
}

static int hex64_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return 0;
    return n == 64;
}

/* A MIME type: type/subtype of token characters. */
static int mime_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strlen(s) > 127)
        return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !isalnum((unsigned char)*p) && !strchr("!#$&-^_.+", *p))
            return 0;
    return 1;
}

/* attachments: up to 20 references {url, name?, content_type?, size?, sha256?}; the files stay
 * where they are. */
static json_t *parse_attachments(json_t *v, intake_verr_t *err)
{
    size_t i;
    json_t *a;
    int before = err->count;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_array(v)) {
        verr(err, "invalid_type", "attachments", "attachments must be an array of references");
        return NULL;
    }
    if (json_array_size(v) > INTAKE_ATTACHMENTS_MAX) {
        verr(err, "too_long", "attachments", "attachments may hold at most %d references",
             INTAKE_ATTACHMENTS_MAX);
        return NULL;
    }
    json_array_foreach(v, i, a)
    {
        char P[48], path[96];
        const char *s;
        snprintf(P, sizeof(P), "attachments[%zu]", i);
        if (!json_is_object(a)) {
            verr(err, "invalid_type", P, "%s must be an object with a url", P);
            continue;
        }
        check_unknown(a, P, attachment_keys, err);
        if (get_string(a, P, "url", 1, &s, err) == 0 && !url_ok(s)) {
            snprintf(path, sizeof(path), "%s.url", P);
            verr(err, "invalid_value", path, "%s must be an http:// or https:// URL", path);
        }
        if (get_string(a, P, "name", 0, &s, err) == 0 && s) {
            snprintf(path, sizeof(path), "%s.name", P);
            check_text(s, path, INTAKE_ATTACHMENT_NAME_MAX, 0, err);
        }
        if (get_string(a, P, "content_type", 0, &s, err) == 0 && s && !mime_ok(s)) {
            snprintf(path, sizeof(path), "%s.content_type", P);
            verr(err, "invalid_value", path, "%s must be a media type such as image/jpeg", path);
        }
        if (get_string(a, P, "sha256", 0, &s, err) == 0 && s && !hex64_ok(s)) {
            snprintf(path, sizeof(path), "%s.sha256", P);
            verr(err, "invalid_value", path, "%s must be 64 hexadecimal digits", path);
        }
        json_t *size = json_object_get(a, "size");
        if (size && !json_is_null(size)) {
            snprintf(path, sizeof(path), "%s.size", P);
            if (!json_is_integer(size))
                verr(err, "invalid_type", path, "%s must be an integer (bytes)", path);
            else if (json_integer_value(size) < 0 ||
                     json_integer_value(size) > INTAKE_ATTACHMENT_MAX_BYTES)
                verr(err, "out_of_range", path, "%s must be between 0 and %lld bytes", path,
                     (long long)INTAKE_ATTACHMENT_MAX_BYTES);
        }
    }
    return err->count == before && json_array_size(v) > 0 ? v : NULL;
}

const char *const *intake_channel_fields(const char *channel)
{
    for (int i = 0; channel && channel_rules[i].channel; i++)
        if (strcmp(channel_rules[i].channel, channel) == 0)
            return channel_rules[i].required;
    return NULL;
}

/* The channel's own details: required ones present, other channels' absent, each well-formed. */
static void parse_channel_details(intake_complaint_t *c, json_t *root, intake_verr_t *err)
{
    const char *const *required = intake_channel_fields(c->channel);
    const char **slot[] = {&c->call_id, &c->agent_id, &c->received_date, &c->scan_ref,
                           &c->window_id};
    for (int k = 0; channel_detail_keys[k]; k++) {
        const char *key = channel_detail_keys[k];
        int needed = required && in_list(key, required);
        if (get_string(root, "", key, 0, slot[k], err) != 0)
            continue;
        if (!*slot[k]) {
            if (needed)
                verr(err, "missing_field", key, "%s is required for channel %s", key, c->channel);
            continue;
        }
        if (!needed) {
            verr(err, "invalid_field", key, "%s is only taken for channel %s", key,
                 strcmp(key, "window_id") == 0                                   ? "walk_in"
                 : (strcmp(key, "call_id") == 0 || strcmp(key, "agent_id") == 0) ? "phone"
                                                                                 : "letter");
            *slot[k] = NULL;
            continue;
        }
        if (strcmp(key, "received_date") == 0) {
            if (!intake_date_ok(*slot[k])) {
                verr(err, "invalid_value", key, "received_date must be a date YYYY-MM-DD");
                *slot[k] = NULL;
            }
        } else if (!ident_ok(*slot[k])) {
            verr(err, "invalid_value", key,
                 "%s must be 1 to %d printable characters without spaces", key,
                 INTAKE_CHANNEL_ID_MAX);
            *slot[k] = NULL;
        }
    }
    if (required && in_list("external_ref", required) && !c->external_ref &&
        !json_object_get(root, "external_ref"))
        verr(err, "missing_field", "external_ref",
             "external_ref is required for channel %s (the source system's id, which makes a "
             "resubmission a duplicate rather than a second case)",
             c->channel);
}

int intake_complaint_from_json(json_t *root, intake_complaint_t *c, intake_verr_t *err)
{
    json_t *v;
    memset(c, 0, sizeof(*c));
    c->root = root;
    if (!json_is_object(root)) {
        verr(err, "invalid_json", "", "a complaint must be a JSON object");
        goto err;
    }
    check_unknown(root, "", complaint_keys, err);
    if (get_string(root, "", "channel", 1, &c->channel, err) == 0 &&
        !in_list(c->channel, intake_channels)) {
        verr(err, "invalid_value", "channel",
             "channel must be one of phone, web, app, walk_in, letter, open311, import");
        c->channel = NULL;
    }
    if (get_string(root, "", "title", 1, &c->title, err) == 0 &&
        check_text(c->title, "title", INTAKE_TITLE_MAX_CHARS, 0, err) != 0)
        c->title = NULL;
    if (get_string(root, "", "body", 1, &c->body, err) == 0) {
        if (strlen(c->body) > INTAKE_BODY_MAX_BYTES) {
            verr(err, "too_long", "body", "body is longer than %d bytes", INTAKE_BODY_MAX_BYTES);
            c->body = NULL;
        } else if (check_text(c->body, "body", INTAKE_BODY_MAX_BYTES, 1, err) != 0) {
            c->body = NULL;
        }
    }
    if (get_string(root, "", "external_ref", 0, &c->external_ref, err) == 0 && c->external_ref &&
        check_text(c->external_ref, "external_ref", INTAKE_EXTERNAL_REF_MAX, 0, err) != 0)
        c->external_ref = NULL;
    if (get_string(root, "", "language", 0, &c->language, err) == 0) {
        if (!c->language)
            c->language = "zh-CN";
        else if (!language_ok(c->language))
            verr(err, "invalid_value", "language",
                 "language must be a language tag such as zh-CN or en");
    }
    get_bool(root, "anonymous", &c->anonymous, err);
    get_bool(root, "confidential", &c->confidential, err);
    if (c->channel)
        parse_channel_details(c, root, err);
    c->attachments = parse_attachments(json_object_get(root, "attachments"), err);
    v = json_object_get(root, "location");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            verr(err, "invalid_type", "location", "location must be an object");
        else
            parse_location(c, v, err);
    }
    v = json_object_get(root, "complainant");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            verr(err, "invalid_type", "complainant", "complainant must be an object");
        else
            parse_complainant(c, v, err);
    }
    if (c->anonymous && c->has_complainant)
        verr(err, "invalid_value", "anonymous",
             "an anonymous complaint carries no complainant; leave complainant out or set "
             "anonymous to false");
    if (err->count == 0)
        return 0;
err:
    intake_complaint_free(c);
    return -1;
}

int intake_complaint_parse(const char *buf, size_t len, intake_complaint_t *c, intake_verr_t *err)
{
    memset(c, 0, sizeof(*c));
    memset(err, 0, sizeof(*err));
    json_t *root = intake_json_parse(buf, len, err);
    if (!root)
        return -1;
    return intake_complaint_from_json(root, c, err);
}

void intake_complaint_free(intake_complaint_t *c)
{
    if (!c)
        return;
    json_decref(c->root);
    memset(c, 0, sizeof(*c));
}

/* measures: one known measure, or a non-empty array of them; canonical order out. */
static int parse_measures(json_t *v, char *out, size_t out_size, intake_verr_t *err)
{
    int want[8] = {0};
    size_t n_known = 0;
    while (intake_measures[n_known])
        n_known++;
    if (!v || json_is_null(v))
        return verr(err, "missing_field", "measures", "measures is required to resolve a case");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t k;
        for (k = 0; k < n_known && strcmp(s, intake_measures[k]) != 0; k++)
            ;
        if (k == n_known)
            return verr(err, "invalid_value", "measures",
                        "measures must be explanation, compensation, process_improvement or "
                        "accountability (or an array of them)");
        want[k] = 1;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        int rc = 0;
        if (json_array_size(v) == 0)
            return verr(err, "invalid_value", "measures", "measures must not be empty");
        json_array_foreach(v, i, m)
        {
            char path[32];
            size_t k = n_known;
            snprintf(path, sizeof(path), "measures[%zu]", i);
            if (!json_is_string(m)) {
                rc = verr(err, "invalid_type", path, "%s must be a string", path);
                continue;
            }
            for (k = 0; k < n_known && strcmp(json_string_value(m), intake_measures[k]) != 0; k++)
                ;
            if (k == n_known) {
                rc = verr(err, "invalid_value", path,
                          "%s must be explanation, compensation, process_improvement or "
                          "accountability",
                          path);
                continue;
            }
            want[k] = 1;
        }
        if (rc)
            return rc;
    } else {
        return verr(err, "invalid_type", "measures",
                    "measures must be a string or an array of strings");
    }
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n_known; k++)
        if (want[k])
            o += (size_t)snprintf(out + o, out_size - o, "%s%s", o ? "," : "", intake_measures[k]);
    return 0;
}

/* What each action takes: its fields beyond "action", and which free text is required. */
typedef struct action_spec {
    const char *name;
    intake_action_kind_t kind;
    const char *const keys[5]; /* allowed keys besides "action" */
    const char *text_key;      /* the free-text field, NULL if none */
    int text_required;         /* 1: text_key must be given */
    size_t text_max;           /* characters */
} action_spec_t;

static const action_spec_t action_specs[] = {
    {"accept", INTAKE_ACTION_ACCEPT, {NULL}, NULL, 0, 0},
    {"note", INTAKE_ACTION_NOTE, {"note", NULL}, "note", 1, INTAKE_NOTE_MAX_CHARS},
    {"request_info",
     INTAKE_ACTION_REQUEST_INFO,
     {"question", NULL},
     "question",
     1,
     INTAKE_NOTE_MAX_CHARS},
    {"extension_request",
     INTAKE_ACTION_EXTENSION_REQUEST,
     {"extra_minutes", "reason", NULL},
     "reason",
     1,
     INTAKE_REASON_MAX_CHARS},
    {"extension_decide",
     INTAKE_ACTION_EXTENSION_DECIDE,
     {"approved", "extra_minutes", "note", NULL},
     "note",
     0,
     INTAKE_NOTE_MAX_CHARS},
    {"return", INTAKE_ACTION_RETURN, {"reason", NULL}, "reason", 1, INTAKE_REASON_MAX_CHARS},
    {"resolve",
     INTAKE_ACTION_RESOLVE,
     {"measures", "reply", NULL},
     "reply",
     1,
     INTAKE_REPLY_MAX_CHARS},
    {"supervise",
     INTAKE_ACTION_SUPERVISE,
     {"note", "level", NULL},
     "note",
     1,
     INTAKE_NOTE_MAX_CHARS},
    {"merge",
     INTAKE_ACTION_MERGE,
     {"into_case_no", "reason", NULL},
     "reason",
     0,
     INTAKE_REASON_MAX_CHARS},
    {"reject", INTAKE_ACTION_REJECT, {"reason", NULL}, "reason", 1, INTAKE_REASON_MAX_CHARS},
    {"withdraw", INTAKE_ACTION_WITHDRAW, {"reason", NULL}, "reason", 0, INTAKE_REASON_MAX_CHARS},
    {NULL, 0, {NULL}, NULL, 0, 0},
};

/* An integer field in [lo, hi]; required or not. 0 with *out set (or untouched if absent), -1. */
static int get_int(json_t *obj, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
                   intake_verr_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return required ? verr(err, "missing_field", key, "%s is required", key) : 0;
    if (!json_is_integer(v))
        return verr(err, "invalid_type", key, "%s must be an integer", key);
    if (json_integer_value(v) < lo || json_integer_value(v) > hi)
        return verr(err, "out_of_range", key, "%s must be from %lld to %lld", key, (long long)lo,
                    (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

int intake_action_parse(const char *buf, size_t len, intake_action_t *a, intake_verr_t *err)
{
    const char *action = NULL;
    const action_spec_t *sp;
    memset(a, 0, sizeof(*a));
    memset(err, 0, sizeof(*err));
    a->root = intake_json_parse(buf, len, err);
    if (!a->root)
        return -1;
    if (get_string(a->root, "", "action", 1, &action, err) != 0)
        goto err;
    for (sp = action_specs; sp->name && strcmp(sp->name, action) != 0; sp++)
        ;
    if (!sp->name) {
        verr(err, "invalid_value", "action",
             "action must be one of accept, note, request_info, extension_request, "
             "extension_decide, return, resolve, supervise, merge, reject, withdraw");
        goto err;
    }
    a->kind = sp->kind;
    a->name = sp->name;
    {
        const char *allowed[7] = {"action"};
        int n = 1;
        for (int k = 0; sp->keys[k]; k++)
            allowed[n++] = sp->keys[k];
        allowed[n] = NULL;
        check_unknown(a->root, "", allowed, err);
    }
    if (sp->text_key) {
        const char **dst = a->kind == INTAKE_ACTION_RESOLVE ? &a->reply : &a->text;
        if (get_string(a->root, "", sp->text_key, sp->text_required, dst, err) == 0 && *dst &&
            check_text(*dst, sp->text_key, sp->text_max, 1, err) != 0)
            *dst = NULL;
    }
    switch (a->kind) {
    case INTAKE_ACTION_RESOLVE:
        parse_measures(json_object_get(a->root, "measures"), a->measures, sizeof(a->measures), err);
        break;
    case INTAKE_ACTION_EXTENSION_REQUEST:
        get_int(a->root, "extra_minutes", 1, 1, INTAKE_EXTENSION_MAX_MINUTES, &a->extra_minutes,
                err);
        break;
    case INTAKE_ACTION_EXTENSION_DECIDE: {
        json_t *ap = json_object_get(a->root, "approved");
        if (!ap || json_is_null(ap))
            verr(err, "missing_field", "approved", "approved is required (true or false)");
        else if (!json_is_boolean(ap))
            verr(err, "invalid_type", "approved", "approved must be true or false");
        else
            a->approved = json_is_true(ap);
        /* approving may grant less than asked; 0 means what was asked */
        get_int(a->root, "extra_minutes", 0, 1, INTAKE_EXTENSION_MAX_MINUTES, &a->extra_minutes,
                err);
        break;
    }
    case INTAKE_ACTION_SUPERVISE: {
        int64_t level = 1;
        get_int(a->root, "level", 0, 1, 2, &level, err);
        a->level = (int)level;
        break;
    }
    case INTAKE_ACTION_MERGE:
        if (get_string(a->root, "", "into_case_no", 1, &a->into_case_no, err) == 0 &&
            strlen(a->into_case_no) > 64) {
            verr(err, "invalid_value", "into_case_no", "into_case_no is not a case number");
            a->into_case_no = NULL;
        }
        break;
    default:
        break;
    }
    if (err->count == 0)
        return 0;
err:
    intake_action_free(a);
    return -1;
}

void intake_action_free(intake_action_t *a)
{
    if (!a)
        return;
    json_decref(a->root);
    memset(a, 0, sizeof(*a));
}

int intake_supplement_parse(const char *buf, size_t len, intake_supplement_t *s, intake_verr_t *err)
{
    const char *code = NULL;
    memset(s, 0, sizeof(*s));
    memset(err, 0, sizeof(*err));
    s->root = intake_json_parse(buf, len, err);
    if (!s->root)
        return -1;
    check_unknown(s->root, "", supplement_keys, err);
    /* a malformed code is not an input error: it is a wrong code (404 later) */
    if (get_string(s->root, "", "access_code", 1, &code, err) == 0)
        intake_access_code_normalize(code, s->access_code, sizeof(s->access_code));
    if (get_string(s->root, "", "text", 1, &s->text, err) == 0 &&
        check_text(s->text, "text", INTAKE_SUPPLEMENT_MAX_CHARS, 1, err) != 0)
        s->text = NULL;
    s->attachments = parse_attachments(json_object_get(s->root, "attachments"), err);
    if (err->count == 0)
        return 0;
    intake_supplement_free(s);
    return -1;
}

void intake_supplement_free(intake_supplement_t *s)
{
    if (!s)
        return;
    json_decref(s->root);
    memset(s, 0, sizeof(*s));
}

int intake_feedback_parse(const char *buf, size_t len, intake_feedback_t *f, intake_verr_t *err)
{
    const char *code = NULL;
    memset(f, 0, sizeof(*f));
    memset(err, 0, sizeof(*err));
    f->root = intake_json_parse(buf, len, err);
    if (!f->root)
        return -1;
    if (check_unknown(f->root, "", feedback_keys, err) != 0)
        goto err;
    if (get_string(f->root, "", "access_code", 1, &code, err) != 0)
        goto err;
    /* a malformed code is not an input error: it is a wrong code (404 later) */
    intake_access_code_normalize(code, f->access_code, sizeof(f->access_code));
    json_t *s = json_object_get(f->root, "satisfaction");
    if (!s || json_is_null(s)) {
        verr(err, "missing_field", "satisfaction", "satisfaction is required (1 to 5)");
        goto err;
    }
    if (!json_is_integer(s)) {
        verr(err, "invalid_type", "satisfaction", "satisfaction must be an integer from 1 to 5");
        goto err;
    }
    if (json_integer_value(s) < 1 || json_integer_value(s) > 5) {
        verr(err, "out_of_range", "satisfaction", "satisfaction must be from 1 to 5");
        goto err;
    }
    f->satisfaction = (int)json_integer_value(s);
    if (get_string(f->root, "", "comment", 0, &f->comment, err) != 0)
        goto err;
    if (f->comment && check_text(f->comment, "comment", INTAKE_COMMENT_MAX_CHARS, 1, err) != 0)
        goto err;
    return 0;
err:
    intake_feedback_free(f);
    return -1;
}

void intake_feedback_free(intake_feedback_t *f)
{
    if (!f)
        return;
    json_decref(f->root);
    memset(f, 0, sizeof(*f));
}

int intake_idem_key_check(const char *key, intake_verr_t *err)
{
    size_t n = key ? strlen(key) : 0;
    memset(err, 0, sizeof(*err));
    if (n == 0 || n > INTAKE_IDEM_KEY_MAX) {
        verr(err, "invalid_value", "Idempotency-Key", "Idempotency-Key must be 1 to %d characters",
             INTAKE_IDEM_KEY_MAX);
        err->status = 400;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f) {
            verr(err, "invalid_value", "Idempotency-Key",
                 "Idempotency-Key may hold only printable ASCII without spaces");
            err->status = 400; /* a bad header, not a bad field of the body */
            return -1;
        }
    }
    return 0;
}

int64_t intake_if_match_parse(const char *value, intake_verr_t *err)
{
    memset(err, 0, sizeof(*err));
    const char *p = value ? value : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] == '*' && p[1] == '\0')
        return 0;
    if (strncmp(p, "W/", 2) == 0)
        p += 2;
    int quoted = *p == '"';
    if (quoted)
        p++;
    int64_t v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 18) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (quoted && *p == '"')
        p++;
    else if (quoted)
        digits = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!digits || *p || v <= 0) {
        verr(err, "invalid_value", "If-Match",
             "If-Match must be the case version as an entity tag, e.g. \"3\"");
        err->status = 400;
        return -1;
    }
    return v;
}

int intake_access_code_normalize(const char *in, char *out, size_t out_size)
{
    char buf[INTAKE_ACCESS_CODE_LEN + 1];
    size_t n = 0;
    out[0] = '\0';
    if (!in)
        return -1;
    while (isspace((unsigned char)*in))
        in++;
    for (; *in && !isspace((unsigned char)*in); in++) {
        char ch = (char)toupper((unsigned char)*in);
        if (n == INTAKE_ACCESS_CODE_LEN || !strchr(INTAKE_ACCESS_CODE_ALPHABET, ch))
            return -1;
        buf[n++] = ch;
    }
    while (isspace((unsigned char)*in))
        in++;
    if (*in || n != INTAKE_ACCESS_CODE_LEN || out_size <= n)
        return -1;
    buf[n] = '\0';
    memcpy(out, buf, n + 1);
    return 0;
}

void intake_mask_name(const char *name, char *out, size_t out_size)
{
    size_t o = 0, chars = 0;
    const unsigned char *p = (const unsigned char *)(name ? name : "");
    out[0] = '\0';
    if (out_size < 2)
        return;
    /* the first character, whole */
    if (*p) {
        size_t len = 1;
        while (p[len] && (p[len] & 0xc0) == 0x80)
            len++;
        if (len + 1 < out_size) {
            memcpy(out, p, len);
            o = len;
        }
        p += len;
    }
    for (; *p; p++)
        chars += (*p & 0xc0) != 0x80;
    if (chars == 0)
        chars = 1;
    while (chars-- && o + 1 < out_size)
        out[o++] = '*';
    out[o] = '\0';
}

void intake_mask_email(const char *email, char *out, size_t out_size)
{
    const char *at = email ? strrchr(email, '@') : NULL;
    if (!at || at == email) {
        snprintf(out, out_size, "***");
        return;
    }
    char first[8];
    size_t len = 1;
    while (email[len] && ((unsigned char)email[len] & 0xc0) == 0x80 && len < sizeof(first) - 1)
        len++;
    memcpy(first, email, len);
    first[len] = '\0';
    snprintf(out, out_size, "%s***@", first);
    copy_utf8(out + strlen(out), out_size - strlen(out), at + 1);
}
