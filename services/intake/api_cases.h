/*
 * api_cases: reading cases - one case (staff or complainant view), its
 * history, and the staff's filtered list.
 */
#ifndef KESU_INTAKE_API_CASES_H
#define KESU_INTAKE_API_CASES_H

#include "http.h"

/** @brief GET /v1/cases/{case_no}. @returns nothing (replies). */
void api_case_get(http_req_t *r, void *opaque);

/** @brief GET /v1/cases (filtered, cursor-paginated list). @returns nothing (replies). */
void api_cases_list(http_req_t *r, void *opaque);

/** @brief GET /v1/cases/{case_no}/history. @returns nothing (replies). */
void api_case_history(http_req_t *r, void *opaque);

#endif
