/*
 * api_archive: the archive (归档) - one closed case's immutable record, and
 * a date range of records exported as JSON lines.
 */
#ifndef KESU_INTAKE_API_ARCHIVE_H
#define KESU_INTAKE_API_ARCHIVE_H

#include "http.h"

/** @brief GET /v1/archive/{case_no}[?version=N]. @returns nothing (replies). */
void api_archive_get(http_req_t *r, void *opaque);

/** @brief GET /v1/archive?from=&to=[&limit=&offset=] as application/x-ndjson. @returns nothing. */
void api_archive_export(http_req_t *r, void *opaque);

#endif
