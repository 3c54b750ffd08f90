/*
 * kesu-classifier: consumes kesu.intake.v1, classifies every CaseReceived
 * (domain, request type, category, urgency, flags) and moves the case
 * received -> classified, publishing CaseClassified on kesu.classifier.v1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "classify_event.h"
#include "log.h"
#include "service.h"

static char *rules_path, *domains_path, *review_threshold;

static const config_key_t classifier_keys[] = {
    {"classifier.rules", CONFIG_STR, &rules_path, "deploy/config/classifier_rules.json",
     "keyword rules file (relative: to the working directory, else the source tree)", 0},
    {"classifier.domains", CONFIG_STR, &domains_path, "deploy/config/domains.json",
     "domain codes and labels file", 0},
    {"classifier.review_threshold", CONFIG_STR, &review_threshold, "0.3",
     "confidence (0..1) below which a case is marked needs_review", 0},
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
    classify_ctx_t ctx;
    classify_rules_t *rules = NULL;
    char errstr[1024], rp[4096], dp[4096], *end;
    const char *const topics[] = {KAFKA_TOPIC_INTAKE, NULL};
    int rc = service_init(&svc, "classifier",
                          "Classifies new cases (CaseReceived on kesu.intake.v1) and publishes "
                          "CaseClassified on kesu.classifier.v1.",
                          "127.0.0.1:9102", classifier_keys, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;

    double threshold = strtod(review_threshold, &end);
    if (end == review_threshold || *end || threshold < 0 || threshold > 1) {
        LOG_ERROR("classifier.review_threshold \"%s\" is not a number from 0 to 1",
                  review_threshold);
        config_free(&svc.cfg);
        return 2;
    }
    resolve_path(rules_path, rp, sizeof(rp));
    resolve_path(domains_path, dp, sizeof(dp));
    rules = classify_rules_load(rp, dp, errstr, sizeof(errstr));
    if (!rules) {
        LOG_ERROR("cannot load the classifier rules: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    rules->review_threshold = threshold;
    LOG_INFO("classifier rules %s loaded: %zu domains, review below %.2f", rules->model,
             rules->domains.nsets, threshold);
    classify_ctx_init(&ctx, rules);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        classify_rules_free(rules);
        return 1;
    }
    rc = service_consume(&svc, topics, classify_handle, NULL, 0, &ctx);
    int code = service_stop(&svc);
    classify_rules_free(rules);
    return rc != 0 ? 1 : code;
}
