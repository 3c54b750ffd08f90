/*
 * server: the HTTP threads (see server.h) and each worker's connection care.
 */
#include "server.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_complaints.h"
#include "routes.h"
#include "http.h"
#include "log.h"
#include "util.h"

/** One HTTP thread: its loop, its server, its worker (and connection). */
typedef struct intake_thread {
    intake_worker_t worker;     /**< handed to the handlers as opaque */
    struct event_base *evb;     /**< this thread's loop */
    http_server_t *srv;         /**< its server on the shared socket */
    struct event *tick;         /**< 100 ms run-flag check */
    volatile sig_atomic_t *run; /**< the process's run flag */
    pthread_t tid;              /**< valid when started */
    int started;                /**< 1 once pthread_create succeeded */
} intake_thread_t;

int intake_worker_db(intake_worker_t *w)
{
    char errstr[512];
    if (w->pg->conn && PQstatus(w->pg->conn) == CONNECTION_OK)
        return 1;
    /* never sleep in the event loop: one immediate attempt, then wait our turn */
    int64_t now = util_mono_ms();
    if (now < w->next_connect_ms)
        return 0;
    if (pg_connect(w->pg, 0, errstr, sizeof(errstr)) == 0) {
        LOG_INFO("http thread %d reconnected to PostgreSQL", w->id);
        w->next_connect_ms = 0;
        return 1;
    }
    LOG_WARN("http thread %d: %s; answering 503 for %d ms", w->id, errstr, INTAKE_RECONNECT_MS);
    w->next_connect_ms = now + INTAKE_RECONNECT_MS;
    return 0;
}

int intake_worker_auth(intake_worker_t *w, const char *authorization, intake_token_t *tok,
                       char *errstr, size_t errstr_size)
{
    int rc = intake_auth_lookup(w->pg, &w->tokens, authorization, tok, errstr, errstr_size);
    /* the first query of a request is where a dropped idle connection (server
     * restart, idle timeout) shows: reconnect and ask once more rather than
     * answer 503 for a database that is actually there */
    if (rc == INTAKE_AUTH_ERROR && PQstatus(w->pg->conn) != CONNECTION_OK && intake_worker_db(w))
        rc = intake_auth_lookup(w->pg, &w->tokens, authorization, tok, errstr, errstr_size);
    return rc;
}

static void server_tick(evutil_socket_t fd, short what, void *arg)
{
    intake_thread_t *t = arg;
    if (!*t->run)
        event_base_loopexit(t->evb, NULL);
}

static void *server_main(void *arg)
{
    intake_thread_t *t = arg;
    event_base_dispatch(t->evb);
    return NULL;
}

static void server_free(intake_thread_t *ts, int n)
{
    for (int i = 0; i < n; i++) {
        intake_thread_t *t = &ts[i];
        api_complaints_worker_stop(&t->worker); /* before the server answers its requests 503 */
        http_server_free(t->srv);
        if (t->tick)
            event_free(t->tick);
        if (t->evb)
            event_base_free(t->evb);
        pg_destroy(t->worker.pg);
    }
    free(ts);
}

int intake_server_run(intake_app_t *app, evutil_socket_t fd, int threads, size_t max_body,
                      volatile sig_atomic_t *run, void (*ready)(void *arg), void *ready_arg,
                      char *errstr, size_t errstr_size)
{
    char why[512];
    int rc = -1;
    intake_thread_t *ts = calloc((size_t)threads, sizeof(*ts));
    if (!ts) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    /* everything is built here so a failure is reported before anything serves */
    for (int i = 0; i < threads; i++) {
        intake_thread_t *t = &ts[i];
        struct timeval tv = {0, 100 * 1000};
        t->run = run;
        t->worker.app = app;
        t->worker.id = i;
        t->worker.tokens.ttl_ms = app->token_cache_ms;
        t->worker.pg = pg_new(app->conninfo);
        if (!t->worker.pg) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        /* PostgreSQL was reachable a moment ago (service_start); if not now, connect lazily */
        if (pg_connect(t->worker.pg, 0, why, sizeof(why)) != 0)
            LOG_WARN("http thread %d: %s; will retry on the first request", i, why);
        t->evb = event_base_new();
        t->worker.evb = t->evb;
        if (!t->evb) {
            snprintf(errstr, errstr_size, "cannot create an event base");
            goto out;
        }
        t->srv =
            http_server_new_fd(t->evb, fd, intake_routes, &t->worker, max_body, why, sizeof(why));
        if (!t->srv) {
            snprintf(errstr, errstr_size, "cannot start the http server: %s", why);
            goto out;
        }
        t->tick = event_new(t->evb, -1, EV_PERSIST, server_tick, t);
        if (!t->tick || event_add(t->tick, &tv) != 0) {
            snprintf(errstr, errstr_size, "cannot add the shutdown timer");
            goto out;
        }
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ts[i].tid, NULL, server_main, &ts[i]) != 0) {
            snprintf(errstr, errstr_size, "cannot start http thread %d", i);
            *run = 0; /* the started ones see it within 100 ms */
            goto join;
        }
        ts[i].started = 1;
    }
    if (ready)
        ready(ready_arg);
    LOG_INFO("serving http on port %d with %d threads", http_socket_port(fd), threads);
    rc = 0;
join:
    for (int i = 0; i < threads; i++)
        if (ts[i].started)
            pthread_join(ts[i].tid, NULL);
out:
    server_free(ts, threads);
    return rc;
}
