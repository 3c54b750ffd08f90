/*
 * kesu-sla-monitor: runs the SLA timers of every case. Consumes
 * kesu.dispatcher.v1 (CaseAssigned starts accept and resolve timers) and
 * kesu.intake.v1 (accept, resolve and the end of a case stop them); every
 * sla.scan_ms it breaches the due timers and publishes SlaBreached on
 * kesu.sla.v1. Timers live in PostgreSQL, so instances share them and a
 * restart loses none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "sla_policy.h"
#include "sla_timers.h"

static char *policy_path, *time_scale;
static int scan_ms;

static const config_key_t sla_keys[] = {
    {"sla.policy", CONFIG_STR, &policy_path, "deploy/config/sla.json",
     "SLA limits per request type x urgency (relative: to the working directory, else the "
     "source tree)",
     0},
    {"sla.time_scale", CONFIG_STR, &time_scale, "1.0",
     "multiplies every limit (0.001 makes a 1440-minute limit last 86.4 s; for tests)", 0},
    {"sla.scan_ms", CONFIG_INT, &scan_ms, "1000", "how often due timers are looked for", 0},
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

static void wake_relay(void *arg)
{
    service_wake_relay(arg);
}

int main(int argc, char **argv)
{
    service_t svc;
    sla_ctx_t ctx;
    sla_policy_t *policy = NULL;
    char errstr[1024], pp[4096], *end;
    const char *const topics[] = {KAFKA_TOPIC_DISPATCHER, KAFKA_TOPIC_INTAKE, NULL};
    int rc = service_init(&svc, "sla-monitor",
                          "Starts, stops and breaches SLA timers; publishes SlaBreached on "
                          "kesu.sla.v1.",
                          "127.0.0.1:9104", sla_keys, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;

    double scale = strtod(time_scale, &end);
    if (end == time_scale || *end || !(scale > 0) || scale > 1000) {
        LOG_ERROR("sla.time_scale \"%s\" is not a number above 0 (and at most 1000)", time_scale);
        config_free(&svc.cfg);
        return 2;
    }
    if (scan_ms < 10 || scan_ms > 600000) {
        LOG_ERROR("sla.scan_ms %d must be between 10 and 600000", scan_ms);
        config_free(&svc.cfg);
        return 2;
    }
    resolve_path(policy_path, pp, sizeof(pp));
    policy = sla_policy_load(pp, errstr, sizeof(errstr));
    if (!policy) {
        LOG_ERROR("cannot load the SLA policy: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    policy->time_scale = scale;
    LOG_INFO("SLA policy loaded: %zu entries, time scale %g, scan every %d ms", policy->nentries,
             scale, scan_ms);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        sla_policy_free(policy);
        return 1;
    }
    sla_ctx_init(&ctx, policy, wake_relay, &svc);
    rc = service_consume(&svc, topics, sla_handle, sla_tick, scan_ms, &ctx);
    int code = service_stop(&svc);
    sla_policy_free(policy);
    return rc != 0 ? 1 : code;
}
