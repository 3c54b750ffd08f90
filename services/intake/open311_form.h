/*
 * open311_form: the pure parsers of the Open311 GeoReport v2 door
 * (open311.c): application/x-www-form-urlencoded bodies, the fields of
 * POST requests, W3C date-times and comma lists. No PostgreSQL, no HTTP:
 * every function takes bytes and gives a result or an error naming the
 * field, so they are table-tested (tests/unit/test_open311_form.c) and
 * safe to fuzz.
 */
#ifndef KESU_INTAKE_OPEN311_FORM_H
#define KESU_INTAKE_OPEN311_FORM_H

#include <stddef.h>
#include <stdint.h>

/** Most fields one form may carry (every attribute[...] counts). */
#define OPEN311_FORM_MAX_FIELDS 64
/** Longest field name, in bytes after decoding. */
#define OPEN311_FORM_MAX_NAME 64
/** Most attribute[...] values one request may carry. */
#define OPEN311_MAX_ATTRS 16
/** Longest service_code (a catalogue rule id). */
#define OPEN311_CODE_MAX 64
/** The spec's window of GET requests and servicerequestupdates: 90 days. */
#define OPEN311_WINDOW_MS (90LL * 24 * 3600 * 1000)
/** The spec's most results of one GET requests answer. */
#define OPEN311_MAX_RESULTS 1000

/** Why an input was refused: field (as the client named it) and a message. */
typedef struct open311_err {
    char field[OPEN311_FORM_MAX_NAME + 16]; /**< "phone", "attribute[title]", "" for the body */
    char message[256];                      /**< one sentence; never echoes a value */
} open311_err_t;

/** One decoded name=value pair; both NUL-terminated valid UTF-8 without NUL bytes. */
typedef struct open311_field {
    char *name;  /**< owned by the form */
    char *value; /**< owned by the form */
} open311_field_t;

/** A decoded form body. */
typedef struct open311_form {
    open311_field_t f[OPEN311_FORM_MAX_FIELDS]; /**< in body order */
    size_t n;                                   /**< used entries */
} open311_form_t;

/**
 * @brief Decode an application/x-www-form-urlencoded body: pairs split on
 *        '&', name and value split on the first '=', '+' is a space, %XX a
 *        byte. Refused (err names the field, or "" for the body): a
 *        malformed %-escape, a decoded NUL byte or invalid UTF-8, an empty
 *        name, a name over OPEN311_FORM_MAX_NAME bytes, a name given twice,
 *        more than OPEN311_FORM_MAX_FIELDS pairs. Empty pairs ("a=1&&b=2")
 *        are skipped. len 0 is an empty form.
 * @returns 0 (free with open311_form_free) or -1 with err filled (nothing to free).
 */
int open311_form_parse(const char *body, size_t len, open311_form_t *form, open311_err_t *err);

/** @brief Free a decoded form (NULL-safe, may be called twice). @returns nothing. */
void open311_form_free(open311_form_t *form);

/** @brief Value of a field, NULL if absent. @returns a string owned by form. */
const char *open311_form_get(const open311_form_t *form, const char *name);

/** One attribute[code]=value of a request. */
typedef struct open311_attr {
    const char *code;  /**< inside the brackets; borrowed from the form */
    const char *value; /**< borrowed from the form */
} open311_attr_t;

/**
 * A checked POST requests body. Strings borrow from the form; NULL means
 * absent (an empty value counts as absent, as HTML forms send blanks).
 */
typedef struct open311_request {
    const char *api_key;        /**< required */
    const char *service_code;   /**< required, 1..64 of [A-Za-z0-9._-] */
    int has_coordinates;        /**< lat and long both given */
    double lat, lon;            /**< valid when has_coordinates (range checked by intake) */
    const char *address_string; /**< free text */
    const char *address_id;     /**< the jurisdiction's address id, 1..128 bytes */
    const char *email;
    const char *device_id;  /**< 1..128 bytes, not stored */
    const char *account_id; /**< 1..128 bytes, not stored */
    const char *first_name;
    const char *last_name;
    const char *phone;
    const char *description;                 /**< required: what the complaint says */
    const char *media_url;                   /**< http(s) URL, 1..2048 bytes */
    const char *jurisdiction_id;             /**< accepted and ignored: one jurisdiction */
    open311_attr_t attrs[OPEN311_MAX_ATTRS]; /**< attribute[...] in body order */
    size_t attr_n;                           /**< used entries */
} open311_request_t;

/**
 * @brief Check a decoded POST requests form: every field is one the spec
 *        (or this server's extensions) knows, api_key, service_code and
 *        description are present, a location is given (lat+long, or
 *        address_string, or address_id), lat/long are decimal numbers given
 *        together, lengths and URL schemes hold. Values are checked further
 *        by intake's complaint rules once mapped (open311.c).
 * @returns 0 with req filled (borrowing from form), or -1 with err naming the field.
 */
int open311_request_parse(const open311_form_t *form, open311_request_t *req, open311_err_t *err);

/** @brief Value of attribute[code] in a parsed request, NULL if absent. @returns a borrowed string.
 */
const char *open311_request_attr(const open311_request_t *req, const char *code);

/**
 * @brief Parse a W3C date-time (a subset of ISO 8601): "YYYY-MM-DD",
 *        "YYYY-MM-DDThh:mm[:ss[.fff]]" followed by "Z" or "+hh:mm"/"-hh:mm"
 *        (a time needs a zone). A date alone is midnight UTC.
 * @returns 0 with *ms_out = Unix milliseconds, or -1.
 */
int open311_parse_datetime(const char *s, int64_t *ms_out);

/**
 * @brief Split a comma list ("a,b , c") into at most max trimmed,
 *        non-empty items written into buf (NUL-separated) and pointed to
 *        by items.
 * @returns the number of items, or -1 if there are more than max, an item
 *          is empty, or buf is too small.
 */
int open311_split_list(const char *s, char *buf, size_t buf_size, const char **items, int max);

#endif
