/*
 * api: intake's public HTTP routes (docs/api/openapi.yaml describes them).
 *
 * Each handler authenticates, parses and checks the request (validate.c),
 * runs one use case of store.c on its thread's worker, wakes the outbox
 * relay after a commit that wrote events, and replies. The server's opaque
 * is the thread's intake_worker_t.
 */
#ifndef KESU_INTAKE_API_H
#define KESU_INTAKE_API_H

#include "http.h"
#include "intake.h"

/** @brief The route table, ending with {NULL, NULL, NULL}. */
extern const http_route_t intake_routes[];

/** @brief Register intake's metrics once, before the HTTP threads start. @returns nothing. */
void intake_metrics_init(void);

#endif
