/*
 * open311_render: JSON and XML output and the status vocabulary (see
 * open311_render.h).
 */
#include "open311_render.h"

#include <stdio.h>
#include <string.h>

int open311_split_format(const char *s, open311_fmt_t *fmt)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 5 && strcmp(s + n - 5, ".json") == 0) {
        *fmt = OPEN311_JSON;
        return (int)(n - 5);
    }
    if (n > 4 && strcmp(s + n - 4, ".xml") == 0) {
        *fmt = OPEN311_XML;
        return (int)(n - 4);
    }
    return -1;
}

/* Escape text for an element; drop what XML 1.0 cannot carry (C0 controls but tab, LF, CR). */
static void xml_text(strbuf_t *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            strbuf_append(out, "&amp;", 5);
            break;
        case '<':
            strbuf_append(out, "&lt;", 4);
            break;
        case '>':
            strbuf_append(out, "&gt;", 4);
            break;
        case '"':
            strbuf_append(out, "&quot;", 6);
            break;
        case '\'':
            strbuf_append(out, "&apos;", 6);
            break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                strbuf_append(out, s, 1);
        }
    }
}

/* The element name of one item of a nested array, from the array's key. */
static const char *singular(const char *key)
{
    static const char *const map[][2] = {{"attributes", "attribute"}, {"values", "value"},
                                         {"services", "service"},     {"requests", "request"},
                                         {"errors", "error"},         {NULL, NULL}};
    for (int i = 0; map[i][0]; i++)
        if (strcmp(map[i][0], key) == 0)
            return map[i][1];
    return "item";
}

static void xml_value(strbuf_t *out, const char *name, const json_t *v);

static void xml_object(strbuf_t *out, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) xml_value(out, k, v);
}

static void xml_value(strbuf_t *out, const char *name, const json_t *v)
{
    char num[64];
    size_t i;
    json_t *it;
    strbuf_appendf(out, "<%s>", name);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        xml_object(out, v);
        break;
    case JSON_ARRAY:
        json_array_foreach((json_t *)v, i, it) xml_value(out, singular(name), it);
        break;
    case JSON_STRING:
        xml_text(out, json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        strbuf_append(out, num, strlen(num));
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.*g", OPEN311_REAL_DIGITS, json_real_value(v));
        strbuf_append(out, num, strlen(num));
        break;
    case JSON_TRUE:
        strbuf_append(out, "true", 4);
        break;
    case JSON_FALSE:
        strbuf_append(out, "false", 5);
        break;
    case JSON_NULL:
        break;
    }
    strbuf_appendf(out, "</%s>", name);
}

void open311_xml_render(const json_t *doc, const char *root, const char *item, strbuf_t *out)
{
    size_t i;
    json_t *it;
    strbuf_append(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 39);
    if (json_is_object(doc)) {
        xml_value(out, root, doc);
    } else {
        strbuf_appendf(out, "<%s>", root);
        json_array_foreach((json_t *)doc, i, it) xml_value(out, item, it);
        strbuf_appendf(out, "</%s>", root);
    }
    strbuf_append(out, "\n", 1);
}

/*
 * Resolved and replied count as closed: the department has answered, which
 * is what "closed" means to a GeoReport client; a reopen makes it open again.
 */
static const struct {
    const char *kesu;
    open311_status_t o;
} statuses[] = {
    {"received", {"open", "OPEN", "received"}},
    {"classified", {"open", "OPEN", "classified, waiting for dispatch"}},
    {"assigned", {"open", "ACTION_SCHEDULED", "assigned to the responsible department"}},
    {"accepted", {"open", "INVESTIGATING", "accepted by the responsible department"}},
    {"in_progress", {"open", "IN_PROGRESS", "being handled"}},
    {"resolved", {"closed", "FIXED", "resolved by the department"}},
    {"replied", {"closed", "FIXED", "resolved; the reply has been sent"}},
    {"closed", {"closed", "CLOSED", "closed"}},
    {"returned", {"open", "INTERNAL_REFERRAL", "returned for re-dispatch"}},
    {"reopened", {"open", "OPEN", "reopened after an unsatisfied follow-up"}},
    {"merged", {"closed", "DUPLICATE", "merged into another request"}},
    {"rejected", {"closed", "NO_FURTHER_ACTION", "rejected as invalid"}},
    {"withdrawn", {"closed", "CLOSED", "withdrawn at the complainant's request"}},
};

#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

const open311_status_t *open311_status_of(const char *kesu_status)
{
    for (size_t i = 0; kesu_status && i < N_STATUSES; i++)
        if (strcmp(statuses[i].kesu, kesu_status) == 0)
            return &statuses[i].o;
    return &statuses[0].o;
}

/* Written out rather than derived, so no thread builds them; the unit test checks they agree. */
static const char *const open_statuses[] = {"received",    "classified", "assigned", "accepted",
                                            "in_progress", "returned",   "reopened", NULL};
static const char *const closed_statuses[] = {"resolved", "replied",   "closed", "merged",
                                              "rejected", "withdrawn", NULL};

const char *const *open311_status_filter(const char *open311_status)
{
    if (open311_status && strcmp(open311_status, "open") == 0)
        return open_statuses;
    if (open311_status && strcmp(open311_status, "closed") == 0)
        return closed_statuses;
    return NULL;
}
