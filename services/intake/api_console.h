/*
 * api_console: the supervisor console (docs/console.md). GET /console and
 * its assets are the static page under deploy/console/ (no build step);
 * GET /v1/console/summary is the one JSON document the page draws: live
 * counts per status, cases close to or past their SLA limits, per-department
 * load and on-time rate, hotspots, open emergencies and the satisfaction
 * trend. The page sends the staff member's token as Bearer, and the summary
 * runs under api_tx_begin, so a handler sees its own department only.
 */
#ifndef KESU_INTAKE_API_CONSOLE_H
#define KESU_INTAKE_API_CONSOLE_H

#include "http.h"

/** Days of the satisfaction trend and of the on-time rate per department. */
#define API_CONSOLE_DAYS 14

/** Most cases listed under "close to or past their limits" and under emergencies. */
#define API_CONSOLE_LIST_MAX 50

/** @brief GET /console: the page (index.html). @returns nothing (replies). */
void api_console_page(http_req_t *r, void *opaque);

/** @brief GET /console/{file}: app.js, app.css. @returns nothing (replies). */
void api_console_asset(http_req_t *r, void *opaque);

/** @brief GET /v1/console/summary (staff read roles). @returns nothing (replies). */
void api_console_summary(http_req_t *r, void *opaque);

#endif
