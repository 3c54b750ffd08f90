/*
 * kesu-dispatcher: consumes kesu.classifier.v1 (CaseClassified) and routes
 * each case with the dispatch catalogue to a lead department (the
 * emergency desk for emergencies), co-handling departments and the handler
 * with the least open load, publishing CaseAssigned on kesu.dispatcher.v1.
 * Also consumes kesu.intake.v1: returned cases (退单) are re-routed (改派),
 * reopened ones (重办) go back with priority, and a handler's load is given
 * back when a case is resolved, closed, withdrawn, rejected or merged.
 * The catalogue file is used until `kesuctl catalogue load` puts a version
 * into PostgreSQL; from then on the newest version there is used, picked up
 * every dispatcher.reload_ms without a restart.
 */
#include <stdio.h>
#include <string.h>

#include "dispatch_catalogue.h"
#include "dispatch_event.h"
#include "log.h"
#include "service.h"

static char *catalogue_path, *domains_path;
static int max_returns, reload_ms;

static const config_key_t dispatcher_keys[] = {
    {"dispatcher.catalogue", CONFIG_STR, &catalogue_path, "deploy/config/catalogue.json",
     "dispatch catalogue (relative: to the working directory, else the source tree)", 0},
    {"dispatcher.domains", CONFIG_STR, &domains_path, "deploy/config/domains.json",
     "domain codes the catalogue may use", 0},
    {"dispatcher.max_returns", CONFIG_INT, &max_returns, "2",
     "returns (退单) after which the supervision office decides where a case goes", 0},
    {"dispatcher.reload_ms", CONFIG_INT, &reload_ms, "2000",
     "how often a newer catalogue version in PostgreSQL is looked for", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    service_t svc;
    dispatch_ctx_t ctx;
    dispatch_catalogue_t *cat = NULL;
    char **domains = NULL;
    char errstr[1024], cp[4096], dp[4096];
    const char *const topics[] = {KAFKA_TOPIC_CLASSIFIER, KAFKA_TOPIC_INTAKE, NULL};
    int rc = service_init(&svc, "dispatcher",
                          "Routes classified cases (kesu.classifier.v1) to departments and "
                          "handlers and publishes CaseAssigned on kesu.dispatcher.v1.",
                          "127.0.0.1:9103", dispatcher_keys, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;

    if (max_returns < 1 || max_returns > 100 || reload_ms < 100) {
        LOG_ERROR("dispatcher.max_returns must be 1..100 and dispatcher.reload_ms >= 100");
        config_free(&svc.cfg);
        return 2;
    }
    config_resolve_path(catalogue_path, cp, sizeof(cp));
    config_resolve_path(domains_path, dp, sizeof(dp));
    domains = dispatch_domains_load(dp, errstr, sizeof(errstr));
    if (domains)
        cat = dispatch_catalogue_load(cp, (const char *const *)domains, errstr, sizeof(errstr));
    if (!cat) {
        LOG_ERROR("cannot load the dispatch catalogue: %s", errstr);
        dispatch_codes_free(domains);
        config_free(&svc.cfg);
        return 2;
    }
    LOG_INFO("dispatch catalogue loaded: %zu departments, %zu handlers, %zu rules, emergency "
             "desk %s",
             cat->ndepts, cat->nhandlers, cat->nrules, cat->emergency_desk->code);
    dispatch_ctx_init(&ctx, cat);
    ctx.domains = (const char *const *)domains;
    ctx.max_returns = max_returns;

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        dispatch_catalogue_free(cat);
        dispatch_codes_free(domains);
        return 1;
    }
    /* a loaded version in PostgreSQL wins over the file (kesuctl wrote its departments) */
    if (dispatch_reload(&ctx, svc.pg, errstr, sizeof(errstr)) < 0)
        LOG_WARN("catalogue in PostgreSQL not usable, the file is used: %s", errstr);
    if (!ctx.owned &&
        dispatch_catalogue_sync(svc.pg, cat, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("cannot write departments and handlers to PostgreSQL: %s (did kesuctl "
                  "migrate run?)",
                  errstr);
        service_stop(&svc);
        dispatch_catalogue_free(cat);
        dispatch_codes_free(domains);
        return 1;
    }
    svc.batch = dispatch_batch;
    rc = service_consume(&svc, topics, dispatch_handle, dispatch_wants, dispatch_tick, reload_ms,
                         &ctx);
    int code = service_stop(&svc);
    dispatch_ctx_free(&ctx);
    dispatch_catalogue_free(cat);
    dispatch_codes_free(domains);
    return rc != 0 ? 1 : code;
}
