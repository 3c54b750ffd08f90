/*
 * server: intake's HTTP threads. One listening socket, http.threads
 * threads, each with its own event_base, its own server on that socket and
 * its own PostgreSQL connection (intake_worker_t). A 100 ms timer per base
 * watches the run flag and ends the loop on shutdown.
 */
#ifndef KESU_INTAKE_SERVER_H
#define KESU_INTAKE_SERVER_H

#include <event2/util.h>
#include <signal.h>
#include <stddef.h>

#include "intake.h"

/**
 * @brief Serve fd on `threads` threads until *run becomes 0, then stop the
 *        loops, join the threads and free everything. Call ready (may be
 *        NULL) once every thread serves.
 * @returns 0 after a clean stop, -1 with errstr if the threads could not be
 *          set up (nothing left running).
 */
int intake_server_run(intake_app_t *app, evutil_socket_t fd, int threads, size_t max_body,
                      volatile sig_atomic_t *run, void (*ready)(void *arg), void *ready_arg,
                      char *errstr, size_t errstr_size);

#endif
