/*
 * kesu-sla-monitor: runs the SLA timers of every case on the working
 * calendar. Consumes kesu.dispatcher.v1 (CaseAssigned), kesu.intake.v1
 * (accept, return, resolve, information requests, extensions, feedback,
 * reopen, the end of a case) and kesu.notifier.v1 (ReplySent); every
 * sla.scan_ms it fires the due timers - SlaWarning, SlaBreached +
 * CaseEscalated, the auto-close CaseClosed - on kesu.sla.v1. Timers live in
 * PostgreSQL, so instances share them and a restart loses none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "log.h"
#include "service.h"
#include "sla_policy.h"
#include "sla_timers.h"

static char *policy_path, *calendar_path, *time_scale;
static int scan_ms;

static const config_key_t sla_keys[] = {
    {"sla.policy", CONFIG_STR, &policy_path, "deploy/config/sla.json",
     "SLA limits per request type x urgency (relative: to the working directory, else the "
     "source tree)",
     0},
    {"sla.calendar", CONFIG_STR, &calendar_path, "deploy/config/calendar/cn.json",
     "working calendar: hours, holidays, make-up days (always.json: 24x7, for tests)", 0},
    {"sla.time_scale", CONFIG_STR, &time_scale, "1.0",
     "multiplies every limit (0.001 makes a 1440-minute limit last 86.4 s; for tests)", 0},
    {"sla.scan_ms", CONFIG_INT, &scan_ms, "1000", "how often due timers are looked for", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static void wake_relay(void *arg)
{
    service_wake_relay(arg);
}

int main(int argc, char **argv)
{
    service_t svc;
    sla_ctx_t ctx;
    sla_policy_t *policy = NULL;
    calendar_t *cal = NULL;
    char errstr[1024], pp[4096], cp[4096], *end;
    const char *const topics[] = {KAFKA_TOPIC_DISPATCHER, KAFKA_TOPIC_INTAKE,
                                  KAFKA_TOPIC_NOTIFIER, NULL};
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
    config_resolve_path(calendar_path, cp, sizeof(cp));
    cal = calendar_load(cp, errstr, sizeof(errstr));
    if (!cal) {
        LOG_ERROR("cannot load the working calendar: %s", errstr);
        config_free(&svc.cfg);
        return 2;
    }
    config_resolve_path(policy_path, pp, sizeof(pp));
    policy = sla_policy_load(pp, errstr, sizeof(errstr));
    if (!policy) {
        LOG_ERROR("cannot load the SLA policy: %s", errstr);
        calendar_free(cal);
        config_free(&svc.cfg);
        return 2;
    }
    policy->time_scale = scale;
    policy->cal = cal;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    for (int y = tm.tm_year + 1900; y <= tm.tm_year + 1901; y++)
        if (strcmp(calendar_name(cal), "always") != 0 && !calendar_covers(cal, y))
            LOG_WARN("calendar %s lists no holidays for %d: that year counts plain Monday-Friday "
                     "until the State Council's schedule is added",
                     calendar_name(cal), y);
    LOG_INFO("SLA policy loaded: %zu entries, calendar %s (%s), time scale %g, scan every %d ms",
             policy->nentries, calendar_name(cal), calendar_tz(cal), scale, scan_ms);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        sla_policy_free(policy);
        calendar_free(cal);
        return 1;
    }
    sla_ctx_init(&ctx, policy, wake_relay, &svc);
    svc.batch = sla_batch;
    rc = service_consume(&svc, topics, sla_handle, sla_wants, sla_tick, scan_ms, &ctx);
    int code = service_stop(&svc);
    sla_ctx_free(&ctx);
    sla_policy_free(policy);
    calendar_free(cal);
    return rc != 0 ? 1 : code;
}
