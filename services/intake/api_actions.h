/*
 * api_actions: changing a case - staff actions, the complainant's
 * supplement and feedback.
 */
#ifndef KESU_INTAKE_API_ACTIONS_H
#define KESU_INTAKE_API_ACTIONS_H

#include "http.h"

/** @brief POST /v1/cases/{case_no}/actions. @returns nothing (replies). */
void api_case_actions(http_req_t *r, void *opaque);

/** @brief POST /v1/cases/{case_no}/supplement. @returns nothing (replies). */
void api_case_supplement(http_req_t *r, void *opaque);

/** @brief POST /v1/cases/{case_no}/feedback. @returns nothing (replies). */
void api_case_feedback(http_req_t *r, void *opaque);

#endif
