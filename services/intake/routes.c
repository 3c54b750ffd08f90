/*
 * routes: every public route of intake, one line each (docs/api/openapi.yaml
 * describes them). The first match wins, so a literal segment must come
 * before a "{}" capture at the same place ("/v1/complaints/batch" before
 * any "/v1/complaints/{}"). Handlers are written with API_HANDLER (api.h).
 */
#include "routes.h"

#include "api_actions.h"
#include "api_archive.h"
#include "api_cases.h"
#include "api_complaints.h"
#include "api_console.h"
#include "api_sla.h"
#include "api_stats.h"
#include "open311.h"

const http_route_t intake_routes[] = {
    {"POST", "/v1/complaints", api_complaints_post},
    {"POST", "/v1/complaints/batch", api_complaints_batch},
    {"GET", "/v1/cases", api_cases_list},
    {"GET", "/v1/cases/{}", api_case_get},
    {"GET", "/v1/cases/{}/history", api_case_history},
    {"GET", "/v1/cases/{}/sla", api_sla_get},
    {"POST", "/v1/cases/{}/actions", api_case_actions},
    {"POST", "/v1/cases/{}/feedback", api_case_feedback},
    {"POST", "/v1/cases/{}/supplement", api_case_supplement},
    {"GET", "/v1/archive", api_archive_export},
    {"GET", "/v1/archive/{}", api_archive_get},
    {"GET", "/v1/stats", api_stats_get},
    {"GET", "/v1/console/summary", api_console_summary},
    {"GET", "/console", api_console_page},
    {"GET", "/console/{}", api_console_asset},
    {"GET", "/open311/v2/services.json", api_open311_services},
    {"GET", "/open311/v2/services.xml", api_open311_services},
    {"GET", "/open311/v2/services/{}", api_open311_service_definition},
    {"POST", "/open311/v2/requests.json", api_open311_requests_post},
    {"POST", "/open311/v2/requests.xml", api_open311_requests_post},
    {"GET", "/open311/v2/requests.json", api_open311_requests_get},
    {"GET", "/open311/v2/requests.xml", api_open311_requests_get},
    {"GET", "/open311/v2/requests/{}", api_open311_request_get},
    {"GET", "/open311/v2/tokens/{}", api_open311_token_get},
    {"GET", "/open311/v2/servicerequestupdates.json", api_open311_updates},
    {"GET", "/open311/v2/servicerequestupdates.xml", api_open311_updates},
    {"GET", "/open311/v2/{}", api_open311_not_found},
    {NULL, NULL, NULL},
};
