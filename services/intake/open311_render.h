/*
 * open311_render: the two output formats of the Open311 door and the
 * status vocabulary, as pure functions (tests/unit/test_open311_render.c).
 *
 * Every answer is built once as a JSON array of flat objects, exactly what
 * the .json format sends; the .xml format is the same document rendered
 * with the spec's element names: a root element (services, service_requests,
 * errors, ...) holding one element per array item (service, request,
 * error, ...), a child element per key, nested arrays named by their key
 * with singular items (attributes/attribute, values/value).
 */
#ifndef KESU_INTAKE_OPEN311_RENDER_H
#define KESU_INTAKE_OPEN311_RENDER_H

#include <jansson.h>

#include "util.h"

/** Significant digits of numbers (coordinates) in both formats: 12 keep 0.1 mm of latitude. */
#define OPEN311_REAL_DIGITS 12

/** What the client asked for: the extension of the resource. */
typedef enum { OPEN311_JSON = 0, OPEN311_XML = 1 } open311_fmt_t;

/**
 * @brief Split "name.json" / "name.xml" into name and format.
 * @returns the name's length (> 0) with *fmt set, or -1 if the extension is
 *          neither (or the name is empty).
 */
int open311_split_format(const char *s, open311_fmt_t *fmt);

/**
 * @brief Render doc (an array of objects, or an object for a single
 *        element such as service_definition) as UTF-8 XML with the XML
 *        declaration. root names the outer element; item names each array
 *        element (ignored when doc is an object). Strings are escaped,
 *        characters XML 1.0 forbids are dropped, true/false/numbers written
 *        as text, null as an empty element.
 * @returns nothing (out receives the text).
 */
void open311_xml_render(const json_t *doc, const char *root, const char *item, strbuf_t *out);

/** How one Kesu case status looks to an Open311 client. */
typedef struct open311_status {
    const char *open311; /**< GeoReport v2: "open" or "closed" */
    const char *fms;     /**< FixMyStreet extended state: OPEN, IN_PROGRESS, FIXED, ... */
    const char *note;    /**< status_notes / update description, English, no personal data */
} open311_status_t;

/** @brief The Open311 view of a Kesu status name ("in_progress"); unknown names are open. */
const open311_status_t *open311_status_of(const char *kesu_status);

/**
 * @brief Kesu statuses that an Open311 status filter ("open" or "closed")
 *        selects, NULL-terminated. @returns the list, or NULL for another word.
 */
const char *const *open311_status_filter(const char *open311_status);

#endif
