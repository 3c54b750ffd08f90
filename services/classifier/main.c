/*
 * kesu-classifier: consumes kesu.intake.v1, classifies every CaseReceived
 * (domain by the trained model; request type, category, urgency by rules;
 * emergency and sensitive flags by the alert rules), links likely
 * duplicates, raises hotspots, and moves the case received -> classified,
 * publishing CaseClassified on kesu.classifier.v1.
 *
 * SIGHUP reloads the model and the rule files: the new set is loaded and
 * checked completely on the consumer thread between batches and only then
 * replaces the old one; a bad file keeps the old set and logs why.
 *
 * The offline commands (train, eval, cv, bench) are in cli.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "classify_event.h"
#include "cli.h"
#include "log.h"
#include "service.h"

static char *model_path, *rules_path, *alerts_path, *domains_path, *review_threshold;
static int dup_distance, similar_distance, dup_window_min, hotspot_k, hotspot_window_min;

static const config_key_t classifier_keys[] = {
    {"classifier.model", CONFIG_STR, &model_path, CLASSIFY_DEFAULT_MODEL,
     "trained model file (kesu-classifier train; the build trains the shipped one)", 0},
    {"classifier.rules", CONFIG_STR, &rules_path, CLASSIFY_DEFAULT_RULES,
     "keyword rules file (relative: to the working directory, else the source tree)", 0},
    {"classifier.alerts", CONFIG_STR, &alerts_path, CLASSIFY_DEFAULT_ALERTS,
     "emergency and sensitive-case rules file", 0},
    {"classifier.domains", CONFIG_STR, &domains_path, CLASSIFY_DEFAULT_DOMAINS,
     "domain codes and labels file", 0},
    {"classifier.review_threshold", CONFIG_STR, &review_threshold, "0.5",
     "confidence (0..1) below which a case is marked needs_review", 0},
    {"classifier.dup_distance", CONFIG_INT, &dup_distance, "12",
     "SimHash bits (of 64) within which a case duplicates an open case", 0},
    {"classifier.similar_distance", CONFIG_INT, &similar_distance, "18",
     "SimHash bits within which cases count as similar for hotspots", 0},
    {"classifier.dup_window_min", CONFIG_INT, &dup_window_min, "10080",
     "how far back (minutes) duplicates are looked for", 0},
    {"classifier.hotspot_k", CONFIG_INT, &hotspot_k, "5",
     "similar cases in one district within the window that raise a hotspot (0: off)", 0},
    {"classifier.hotspot_window_min", CONFIG_INT, &hotspot_window_min, "60",
     "hotspot window T in minutes", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static volatile sig_atomic_t reload_requested;
static double threshold;
static metrics_counter_t *m_reload_ok, *m_reload_failed;

static void on_sighup(int sig)
{
    reload_requested = 1;
}

static classify_t *load_classifier(char *errstr, size_t errstr_size)
{
    char mp[4096], rp[4096], ap[4096], dp[4096];
    config_resolve_path(model_path, mp, sizeof(mp));
    config_resolve_path(rules_path, rp, sizeof(rp));
    config_resolve_path(alerts_path, ap, sizeof(ap));
    config_resolve_path(domains_path, dp, sizeof(dp));
    classify_paths_t p = {mp, rp, ap, dp};
    return classify_load(&p, threshold, errstr, errstr_size);
}

/* between batches, on the consumer thread: the only user of ctx->cls */
static void classifier_tick(void *opaque, pg_t *pg)
{
    classify_ctx_t *ctx = opaque;
    char errstr[1024];
    if (!reload_requested)
        return;
    reload_requested = 0;
    classify_t *c = load_classifier(errstr, sizeof(errstr));
    if (!c) {
        LOG_ERROR("reload failed, keeping %s: %s", ctx->cls->name, errstr);
        metrics_counter_add(m_reload_failed, 1);
        return;
    }
    LOG_INFO("reloaded: %s replaces %s", c->name, ctx->cls->name);
    classify_ctx_swap(ctx, c);
    metrics_counter_add(m_reload_ok, 1);
}

int main(int argc, char **argv)
{
    service_t svc;
    classify_ctx_t ctx;
    classify_t *cls;
    char errstr[1024], *end;
    const char *const topics[] = {KAFKA_TOPIC_INTAKE, NULL};
    if (cli_is_command(argc, argv))
        return cli_main(argc, argv);
    int rc = service_init(&svc, "classifier",
                          "Classifies new cases (CaseReceived on kesu.intake.v1) and publishes "
                          "CaseClassified on kesu.classifier.v1. Offline: kesu-classifier "
                          "train|eval|cv|bench (see docs/classifier.md).",
                          "127.0.0.1:9102", classifier_keys, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;

    threshold = strtod(review_threshold, &end);
    if (end == review_threshold || *end || threshold < 0 || threshold > 1) {
        LOG_ERROR("classifier.review_threshold \"%s\" is not a number from 0 to 1",
                  review_threshold);
        config_free(&svc.cfg);
        return 2;
    }
    if (dup_distance < 0 || dup_distance > 64 || similar_distance < dup_distance ||
        similar_distance > 64 || dup_window_min < 1 || hotspot_k < 0 || hotspot_window_min < 1) {
        LOG_ERROR("classifier: need 0 <= dup_distance <= similar_distance <= 64, windows >= 1 "
                  "minute, hotspot_k >= 0");
        config_free(&svc.cfg);
        return 2;
    }
    cls = load_classifier(errstr, sizeof(errstr));
    if (!cls) {
        LOG_ERROR("cannot load the classifier: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    LOG_INFO("classifier %s loaded: %u model classes, %zu keywords, %zu alert terms, review "
             "below %.2f",
             cls->name, cls->model->nclasses, cls->rules->nkw, alert_rules_terms(cls->alerts),
             threshold);
    dedup_opts_t dd = {dup_distance, similar_distance, (int64_t)dup_window_min * 60000, hotspot_k,
                       (int64_t)hotspot_window_min * 60000};
    classify_ctx_init(&ctx, cls, &dd);
    m_reload_ok = metrics_counter("kesu_classifier_reloads_total",
                                  "SIGHUP reloads of model and rules", "result=\"ok\"");
    m_reload_failed = metrics_counter("kesu_classifier_reloads_total",
                                      "SIGHUP reloads of model and rules", "result=\"failed\"");

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sighup;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        classify_ctx_free(&ctx);
        return 1;
    }
    svc.batch = classify_batch;
    rc = service_consume(&svc, topics, classify_handle, classify_wants, classifier_tick, 200,
                         &ctx);
    int code = service_stop(&svc);
    classify_ctx_free(&ctx);
    return rc != 0 ? 1 : code;
}
