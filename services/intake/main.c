/*
 * kesu-intake: the only public door. Complaints come in over HTTP, become
 * cases in PostgreSQL and CaseReceived events in kesu.intake.v1 (through the
 * outbox); staff act on cases and complainants give feedback here too.
 *
 * main: settings, PII keys, the listening socket, the shared runtime
 * (relay + ops server), then the HTTP threads until SIGTERM.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "http.h"
#include "intake.h"
#include "log.h"
#include "server.h"
#include "service.h"

static const char usage[] =
    "kesu-intake: the public HTTP API of Kesu (complaint submission, case queries, staff\n"
    "actions, complainant feedback). Needs PostgreSQL (migrated with `kesuctl migrate`) and\n"
    "Kafka, and a PII key: create one with `openssl rand -hex 32 > key` and pass\n"
    "--pii.key file:key (or KESU_PII_KEY=<64 hex>).";

static struct {
    char *listen;
    int threads;
    int max_body;
    char *pii_key;
    char *prefix;
    int token_cache_ms;
} opt;

static const config_key_t intake_keys[] = {
    {"http.listen", CONFIG_STR, &opt.listen, "127.0.0.1:8080", "public API host:port", 0},
    {"http.threads", CONFIG_INT, &opt.threads, "4",
     "HTTP threads, each with its own PostgreSQL connection", 0},
    {"http.max_body", CONFIG_INT, &opt.max_body, "16777216",
     "largest request body in bytes (a batch; single JSON bodies stop at 256 KiB)", 0},
    {"pii.key", CONFIG_STR, &opt.pii_key, NULL,
     "REQUIRED: AES-256 key for personal data, 64 hex chars or file:PATH "
     "(create: openssl rand -hex 32 > key)",
     1},
    {"case_no.prefix", CONFIG_STR, &opt.prefix, "KS",
     "case number prefix (1-8 upper-case letters or digits)", 0},
    {"http.token_cache_ms", CONFIG_INT, &opt.token_cache_ms, "1000",
     "how long a thread trusts an API token it found valid before asking the database again "
     "(a revocation takes effect within this; 0: ask on every request)",
     0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* Present once migration 0002_intake.sql is applied. */
static const pg_stmt_t st_schema = {
    "intake_schema",
    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'cases' AND column_name = 'access_code_enc'",
    0};

static service_t svc;

static void wake_relay(void *arg)
{
    service_wake_relay(arg);
}

static void serving(void *arg)
{
    atomic_store(&((service_t *)arg)->consumer_ready, 1); /* no consumer: ready when serving */
}

static int check_settings(intake_app_t *app)
{
    char errstr[512];
    size_t n = strlen(opt.prefix);
    if (n < 1 || n > 8) {
        LOG_ERROR("case_no.prefix must be 1 to 8 characters");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!isupper((unsigned char)opt.prefix[i]) && !isdigit((unsigned char)opt.prefix[i])) {
            LOG_ERROR("case_no.prefix may hold only upper-case letters and digits");
            return -1;
        }
    snprintf(app->case_prefix, sizeof(app->case_prefix), "%s", opt.prefix);
    if (opt.threads < 1 || opt.threads > 64) {
        LOG_ERROR("http.threads must be between 1 and 64");
        return -1;
    }
    if (opt.token_cache_ms < 0 || opt.token_cache_ms > 60000) {
        LOG_ERROR("http.token_cache_ms must be between 0 and 60000");
        return -1;
    }
    app->token_cache_ms = opt.token_cache_ms;
    if (opt.max_body < 1024 || opt.max_body > 64 * 1024 * 1024) {
        LOG_ERROR("http.max_body must be between 1024 and 67108864 bytes");
        return -1;
    }
    if (!opt.pii_key || !*opt.pii_key) {
        LOG_ERROR("pii.key is required: create a key with `openssl rand -hex 32 > key` and start "
                  "with --pii.key file:key (or set KESU_PII_KEY to the 64 hex characters)");
        return -1;
    }
    if (crypto_keys_load(&app->keys, opt.pii_key, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("pii.key: %s (create one with `openssl rand -hex 32 > key`)", errstr);
        return -1;
    }
    return 0;
}

/* Refuse to serve on a schema without this service's migration. */
static int check_schema(pg_t *pg)
{
    char errstr[512];
    PGresult *res = pg_exec_stmt(pg, &st_schema, NULL, PGRES_TUPLES_OK, errstr, sizeof(errstr));
    int ok = res && PQntuples(res) == 1;
    if (!res)
        LOG_ERROR("cannot check the database schema: %s", errstr);
    else if (!ok)
        LOG_ERROR("the database is not migrated (cases.access_code_enc is missing): run "
                  "`kesuctl migrate`");
    PQclear(res);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    char errstr[512];
    intake_app_t app;
    evutil_socket_t fd = -1;
    int rc = service_init(&svc, "intake", usage, "127.0.0.1:9101", intake_keys, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    memset(&app, 0, sizeof(app));
    if (check_settings(&app) != 0) {
        config_free(&svc.cfg);
        return 2;
    }
    /* bind before anything starts, so a taken port fails fast */
    fd = http_listen_socket(opt.listen, errstr, sizeof(errstr));
    if (fd < 0) {
        LOG_ERROR("cannot listen on %s: %s", opt.listen, errstr);
        crypto_keys_wipe(&app.keys);
        config_free(&svc.cfg);
        return 1;
    }
    if (service_start(&svc) != 0 || check_schema(svc.pg) != 0) {
        evutil_closesocket(fd);
        crypto_keys_wipe(&app.keys);
        service_stop(&svc);
        return 1;
    }
    app.conninfo = svc.pg_conninfo;
    app.wake = wake_relay;
    app.wake_arg = &svc;
    intake_metrics_init();

    rc = intake_server_run(&app, fd, opt.threads, (size_t)opt.max_body, &service_running, serving,
                           &svc, errstr, sizeof(errstr));
    if (rc != 0)
        LOG_ERROR("%s", errstr);
    evutil_closesocket(fd);
    crypto_keys_wipe(&app.keys);
    int code = service_stop(&svc);
    return rc != 0 ? 1 : code;
}
