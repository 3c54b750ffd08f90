/*
 * kesu-dispatcher: consumes kesu.classifier.v1 (CaseClassified) and routes
 * each case with the dispatch catalogue to a lead department (the
 * emergency desk for emergencies), co-handling departments and the handler
 * with the least open load, publishing CaseAssigned on kesu.dispatcher.v1.
 * Also consumes kesu.intake.v1 to give a handler's load back when a case
 * is resolved, closed, withdrawn, rejected or merged.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dispatch_catalogue.h"
#include "dispatch_event.h"
#include "log.h"
#include "service.h"

static char *catalogue_path, *domains_path;

static const config_key_t dispatcher_keys[] = {
    {"dispatcher.catalogue", CONFIG_STR, &catalogue_path, "deploy/config/catalogue.json",
     "dispatch catalogue (relative: to the working directory, else the source tree)", 0},
    {"dispatcher.domains", CONFIG_STR, &domains_path, "deploy/config/domains.json",
     "domain codes the catalogue may use", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* a relative path not found from the working directory is taken from the source tree */
static void resolve_path(const char *path, char *out, size_t n)
{
    if (path[0] != '/' && access(path, R_OK) != 0)
        snprintf(out, n, "%s/%s", KESU_SOURCE_DIR, path);
    else
        snprintf(out, n, "%s", path);
}

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

    resolve_path(catalogue_path, cp, sizeof(cp));
    resolve_path(domains_path, dp, sizeof(dp));
    domains = dispatch_domains_load(dp, errstr, sizeof(errstr));
    if (domains)
        cat = dispatch_catalogue_load(cp, (const char *const *)domains, errstr, sizeof(errstr));
    dispatch_codes_free(domains);
    if (!cat) {
        LOG_ERROR("cannot load the dispatch catalogue: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    LOG_INFO("dispatch catalogue loaded: %zu departments, %zu handlers, %zu rules, emergency "
             "desk %s",
             cat->ndepts, cat->nhandlers, cat->nrules, cat->emergency_desk->code);
    dispatch_ctx_init(&ctx, cat);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        dispatch_catalogue_free(cat);
        return 1;
    }
    if (dispatch_catalogue_sync(svc.pg, cat, errstr, sizeof(errstr)) != 0) {
        LOG_ERROR("cannot write departments and handlers to PostgreSQL: %s (did kesuctl "
                  "migrate run?)",
                  errstr);
        service_stop(&svc);
        dispatch_catalogue_free(cat);
        return 1;
    }
    rc = service_consume(&svc, topics, dispatch_handle, NULL, 0, &ctx);
    int code = service_stop(&svc);
    dispatch_catalogue_free(cat);
    return rc != 0 ? 1 : code;
}
