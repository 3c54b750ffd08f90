/*
 * api_sla: GET /v1/cases/{case_no}/sla - the SLA timeline of a case in
 * working time (common/sla_view.c builds it; kesuctl case sla prints it).
 */
#ifndef KESU_INTAKE_API_SLA_H
#define KESU_INTAKE_API_SLA_H

#include "http.h"

/** @brief GET /v1/cases/{case_no}/sla. @returns nothing (replies). */
void api_sla_get(http_req_t *r, void *opaque);

#endif
