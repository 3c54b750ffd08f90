/*
 * routes: intake's route table, one line per route in routes.c. A route
 * file declares its api_* handlers in its own header; routes.c includes it
 * and adds one line per route.
 */
#ifndef KESU_INTAKE_ROUTES_H
#define KESU_INTAKE_ROUTES_H

#include "http.h"

/** @brief The route table, ending with {NULL, NULL, NULL}. */
extern const http_route_t intake_routes[];

#endif
