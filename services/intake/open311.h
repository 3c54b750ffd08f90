/*
 * open311: the Open311 GeoReport v2 door of intake, under /open311/v2/
 * (docs/api/open311.md). Every resource answers in .json or .xml, errors
 * in the spec's format ([{"code":400,"description":"..."}] /
 * <errors><error>...</error></errors>) with 400, 403 or 404.
 *
 * A POST requests becomes an ordinary case through intake_case_create
 * (channel open311), exactly as POST /v1/complaints does; the form is
 * mapped onto a complaint and checked by the same rules.
 */
#ifndef KESU_INTAKE_OPEN311_H
#define KESU_INTAKE_OPEN311_H

#include "http.h"

/** @brief GET /open311/v2/services.{json,xml}. @returns nothing (replies). */
void api_open311_services(http_req_t *r, void *opaque);
/** @brief GET /open311/v2/services/{code}.{fmt}: the service definition. @returns nothing. */
void api_open311_service_definition(http_req_t *r, void *opaque);
/** @brief POST /open311/v2/requests.{fmt}: submit (form-encoded, api_key). @returns nothing. */
void api_open311_requests_post(http_req_t *r, void *opaque);
/** @brief GET /open311/v2/requests.{fmt}: query with the spec's filters. @returns nothing. */
void api_open311_requests_get(http_req_t *r, void *opaque);
/** @brief GET /open311/v2/requests/{id}.{fmt}. @returns nothing. */
void api_open311_request_get(http_req_t *r, void *opaque);
/** @brief GET /open311/v2/tokens/{token}.{fmt}. @returns nothing. */
void api_open311_token_get(http_req_t *r, void *opaque);
/** @brief GET /open311/v2/servicerequestupdates.{fmt} (FixMyStreet). @returns nothing. */
void api_open311_updates(http_req_t *r, void *opaque);
/** @brief Any other /open311/v2/{} path: the spec's 404. @returns nothing. */
void api_open311_not_found(http_req_t *r, void *opaque);

#endif
