/*
 * validate: intake's input checks, without any infrastructure.
 *
 * Every request body that intake accepts is parsed and checked here, so the
 * rules are unit-testable and the HTTP layer only maps a failure to
 * `400 {"error":{"code","field","message"}}`. A failure always names the
 * field (dotted path, "complainant.phone"); only a body that is not JSON at
 * all has no field (empty string).
 *
 * Parsed results borrow their strings from the JSON document they keep in
 * `root`; free them with the matching *_free function.
 */
#ifndef KESU_INTAKE_VALIDATE_H
#define KESU_INTAKE_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the complaint contract (docs/api/openapi.yaml repeats them). */
#define INTAKE_TITLE_MAX_CHARS       200
#define INTAKE_BODY_MAX_BYTES        20000
#define INTAKE_EXTERNAL_REF_MAX      128
#define INTAKE_LANGUAGE_MAX          35
#define INTAKE_ADDRESS_MAX_CHARS     500
#define INTAKE_DISTRICT_MAX          32
#define INTAKE_NAME_MAX_CHARS        100
#define INTAKE_PHONE_MAX_BYTES       64
#define INTAKE_EMAIL_MAX             254
#define INTAKE_URL_MAX               2048
#define INTAKE_REPLY_MAX_CHARS       5000
#define INTAKE_COMMENT_MAX_CHARS     2000
#define INTAKE_IDEM_KEY_MAX          128
#define INTAKE_ACCESS_CODE_LEN       8
#define INTAKE_CHANNEL_ID_MAX        64 /* call_id, agent_id, scan_ref, window_id */
#define INTAKE_ATTACHMENTS_MAX       20
#define INTAKE_ATTACHMENT_MAX_BYTES  (100LL * 1024 * 1024)
#define INTAKE_ATTACHMENT_NAME_MAX   200
#define INTAKE_NOTE_MAX_CHARS        5000
#define INTAKE_REASON_MAX_CHARS      1000
#define INTAKE_SUPPLEMENT_MAX_CHARS  5000
#define INTAKE_EXTENSION_MAX_MINUTES (60 * 24 * 90)

/** The access-code alphabet: no 0/O, 1/I/L, so codes survive being read aloud. */
#define INTAKE_ACCESS_CODE_ALPHABET "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

/** Most field errors one intake_verr_t lists (count goes on counting). */
#define INTAKE_VERR_MAX 16

/** One refused field. */
typedef struct intake_field_error {
    char code[32];     /**< machine code: missing_field, invalid_type, invalid_value, ... */
    char field[96];    /**< dotted path of the offending field, "" if none; valid UTF-8 */
    char message[256]; /**< one sentence for a human; never echoes personal data */
} intake_field_error_t;

/**
 * Why an input was refused: the first error in code/field/message (what
 * "error" shows), every one of them in list (what "errors" shows). A body
 * that is not a JSON object stops at the first error (status 400); field
 * checks go on and report every bad field (status 422).
 */
typedef struct intake_verr {
    char code[32];                              /**< the first error's code */
    char field[96];                             /**< the first error's field */
    char message[256];                          /**< the first error's message */
    int status;                                 /**< HTTP status: 400 or 422; 0 if no error */
    int count;                                  /**< errors found (list holds the first MAX) */
    intake_field_error_t list[INTAKE_VERR_MAX]; /**< list[0] repeats the first */
} intake_verr_t;

/** A checked complaint submission. Strings borrow from root (NULL = absent). */
typedef struct intake_complaint {
    json_t *root;              /**< the parsed body, owned */
    const char *channel;       /**< one of intake_channels */
    const char *title;         /**< 1..200 characters, not yet masked */
    const char *body;          /**< 1..20000 bytes, not yet masked */
    const char *external_ref;  /**< NULL or 1..128 characters */
    const char *language;      /**< "zh-CN" unless given */
    int anonymous;             /**< 0/1 */
    int confidential;          /**< 0/1 */
    const char *address;       /**< location.address, not yet masked */
    const char *district_code; /**< location.district_code */
    int has_coordinates;       /**< 1 when lat and lon were both given */
    double lat, lon;           /**< valid when has_coordinates */
    int has_complainant;       /**< 1 when any complainant field was given */
    const char *name;          /**< complainant.name */
    const char *phone;         /**< complainant.phone as typed */
    char phone_norm[32];       /**< normalised phone ("" if none), see crypto_phone_normalize */
    const char *email;         /**< complainant.email */
    const char *id_number;     /**< complainant.id_number */
    const char *callback_url;  /**< complainant.callback_url (http or https) */
    /* channel details: which are required depends on the channel (intake_channel_fields) */
    const char *call_id;       /**< phone: the telephony system's call id */
    const char *agent_id;      /**< phone: the hotline agent who took the call */
    const char *received_date; /**< letter: YYYY-MM-DD the letter arrived */
    const char *scan_ref;      /**< letter: reference of the scanned letter */
    const char *window_id;     /**< walk_in: the service window */
    json_t *attachments;       /**< checked array of references (borrowed), NULL if none */
} intake_complaint_t;

/** Staff actions on a case (actions.c says who may do what from which status). */
typedef enum {
    INTAKE_ACTION_ACCEPT = 1,        /**< assigned -> accepted (签收) */
    INTAKE_ACTION_RESOLVE,           /**< accepted / in_progress -> resolved */
    INTAKE_ACTION_NOTE,              /**< progress note; accepted -> in_progress */
    INTAKE_ACTION_REQUEST_INFO,      /**< ask the complainant; pauses the clock */
    INTAKE_ACTION_EXTENSION_REQUEST, /**< 延期: ask for more time */
    INTAKE_ACTION_EXTENSION_DECIDE,  /**< supervisor approves or refuses it */
    INTAKE_ACTION_RETURN,            /**< 退单: back to dispatch */
    INTAKE_ACTION_SUPERVISE,         /**< 督办 */
    INTAKE_ACTION_MERGE,             /**< 并单 into another open case */
    INTAKE_ACTION_REJECT,            /**< invalid / spam */
    INTAKE_ACTION_WITHDRAW,          /**< on the complainant's request */
} intake_action_kind_t;

typedef struct intake_action {
    json_t *root;              /**< the parsed body, owned */
    intake_action_kind_t kind; /**< what to do */
    const char *name;          /**< the action's name ("accept"), static */
    char measures[128];        /**< resolve: comma-joined known measures, in canonical order */
    const char *reply;         /**< resolve: 1..5000 characters, not yet masked */
    const char *text;          /**< note / question / reason / supervise note, not yet masked */
    int64_t extra_minutes;     /**< extension_request / extension_decide (approved) */
    int approved;              /**< extension_decide */
    int level;                 /**< supervise: 1 department head, 2 supervision office */
    const char *into_case_no;  /**< merge: the case that stays */
} intake_action_t;

/** A complainant's supplement to an open case. */
typedef struct intake_supplement {
    json_t *root;         /**< the parsed body, owned */
    char access_code[16]; /**< upper-cased; may be malformed (then it matches nothing) */
    const char *text;     /**< 1..5000 characters, not yet masked */
    json_t *attachments;  /**< checked array (borrowed) or NULL */
} intake_supplement_t;

typedef struct intake_feedback {
    json_t *root;         /**< the parsed body, owned */
    char access_code[16]; /**< upper-cased; may be malformed (then it simply matches nothing) */
    int satisfaction;     /**< 1..5 */
    const char *comment;  /**< NULL or 1..2000 characters, not yet masked */
} intake_feedback_t;

/** @brief Channels a complaint may come from, NULL-terminated. */
extern const char *const intake_channels[];

/** @brief Resolution measures, NULL-terminated, in canonical order. */
extern const char *const intake_measures[];

/**
 * @brief Parse a JSON object body: valid UTF-8, well-formed, no duplicate
 *        keys, an object at the top. On failure err names where it broke.
 * @returns the document (caller json_decref()s) or NULL with err filled.
 */
json_t *intake_json_parse(const char *buf, size_t len, intake_verr_t *err);

/**
 * @brief Parse and check a POST /v1/complaints body.
 * @returns 0 (c filled; free with intake_complaint_free) or -1 with err filled.
 */
int intake_complaint_parse(const char *buf, size_t len, intake_complaint_t *c, intake_verr_t *err);

/** @brief Release a parsed complaint (NULL-safe). @returns nothing. */
void intake_complaint_free(intake_complaint_t *c);

/** @brief Parse and check a POST /v1/cases/{no}/actions body. @returns 0 or -1 with err. */
int intake_action_parse(const char *buf, size_t len, intake_action_t *a, intake_verr_t *err);

/** @brief Release a parsed action (NULL-safe). @returns nothing. */
void intake_action_free(intake_action_t *a);

/** @brief Parse and check a POST /v1/cases/{no}/feedback body. @returns 0 or -1 with err. */
int intake_feedback_parse(const char *buf, size_t len, intake_feedback_t *f, intake_verr_t *err);

/** @brief Release a parsed feedback (NULL-safe). @returns nothing. */
void intake_feedback_free(intake_feedback_t *f);

/** @brief Parse and check a POST /v1/cases/{no}/supplement body. @returns 0 or -1 with err. */
int intake_supplement_parse(const char *buf, size_t len, intake_supplement_t *s,
                            intake_verr_t *err);

/** @brief Release a parsed supplement (NULL-safe). @returns nothing. */
void intake_supplement_free(intake_supplement_t *s);

/**
 * @brief The channel details a channel requires, NULL-terminated ("call_id",
 *        "agent_id" for phone); an empty list for web and app.
 * @returns the list, or NULL for an unknown channel.
 */
const char *const *intake_channel_fields(const char *channel);

/**
 * @brief Is this normalised phone number (crypto_phone_normalize) a
 *        mainland China number: a mobile (1[3-9] + 9 digits), a landline
 *        with area code (0 + 9..11 digits) or without (7-8 digits, not
 *        starting with 0 or 1), a 400/800 number, or a 5-digit service
 *        number (12345, 95598)? @returns 1 or 0.
 */
int intake_phone_cn_ok(const char *norm);

/** @brief A district code: 6 digits (GB/T 2260), not all zero. @returns 1 or 0. */
int intake_district_ok(const char *s);

/** @brief A calendar date YYYY-MM-DD (1900..2199). @returns 1 or 0. */
int intake_date_ok(const char *s);

/**
 * @brief Check one complaint object already parsed from JSON (the batch
 *        route parses NDJSON lines itself). Takes a reference to obj.
 * @returns 0 (c filled) or -1 with err filled.
 */
int intake_complaint_from_json(json_t *obj, intake_complaint_t *c, intake_verr_t *err);

/**
 * @brief Check an Idempotency-Key header value: 1..128 printable ASCII
 *        characters. @returns 0 or -1 with err (field "Idempotency-Key").
 */
int intake_idem_key_check(const char *key, intake_verr_t *err);

/**
 * @brief Parse an If-Match header: "\"7\"", W/"7" or 7.
 * @returns the version (> 0), or -1 with err (field "If-Match").
 */
int64_t intake_if_match_parse(const char *value, intake_verr_t *err);

/**
 * @brief Normalise an access code for comparison: trimmed, upper-cased.
 * @returns 0 if it has the shape of a code (8 characters of the alphabet),
 *          -1 otherwise (out is then "").
 */
int intake_access_code_normalize(const char *in, char *out, size_t out_size);

/**
 * @brief Mask a person's name for display: the first character, then one
 *        '*' per further character (at least one): "张三" -> "张*".
 * @returns nothing (out truncated to out_size at a character boundary).
 */
void intake_mask_name(const char *name, char *out, size_t out_size);

/**
 * @brief Mask an e-mail address for display: first character of the local
 *        part, "***@", the domain ("zhang.san@qq.com" -> "z***@qq.com");
 *        "***" if it has no '@'. @returns nothing (out truncated to fit).
 */
void intake_mask_email(const char *email, char *out, size_t out_size);

/** @brief Number of UTF-8 characters (code points) in a valid UTF-8 string. */
size_t intake_utf8_chars(const char *s);

/**
 * @brief Where in a JSON text byte offset `at` lies, as a dotted field path
 *        ("complainant.phone", "measures[1]"); "" at the top level. Works on
 *        text that is not valid JSON, to name the field of a parse error.
 * @returns nothing.
 */
void intake_json_path_at(const char *buf, size_t len, size_t at, char *out, size_t out_size);

#endif
