/*
 * kesu-archiver: the integrators' feed and the archive.
 *
 * Consumes every stage topic, republishes each case's events on
 * kesu.public.v1 in history order without personal data, and writes one
 * immutable archive record per close (see archive.h).
 */
#include <string.h>

#include "archive.h"
#include "log.h"
#include "service.h"

static const char archiver_usage[] =
    "usage: kesu-archiver [--config FILE] [--key value ...]\n"
    "\n"
    "Publishes every lifecycle event of every case on kesu.public.v1, in case_seq\n"
    "order per case and without free text, and archives each closed case with its\n"
    "whole history in archive_records.";

int main(int argc, char **argv)
{
    service_t svc;
    archive_t ar;
    char *calendar_path = NULL, path[1024], errstr[512];
    calendar_t *cal = NULL;
    int scan_ms = 0, gap_warn_ms = 0, retention_days = 0, retention_scan_ms = 0, rc;
    const config_key_t keys[] = {
        {"archive.scan_ms", CONFIG_INT, &scan_ms, "5000",
         "how often the held-event gauges are refreshed", 0},
        {"archive.gap_warn_ms", CONFIG_INT, &gap_warn_ms, "60000",
         "warn about a case whose feed waits this long for a missing event", 0},
        {"archive.calendar", CONFIG_STR, &calendar_path, "deploy/config/calendar/cn.json",
         "working calendar for handling time in the statistics (empty: wall-clock hours)", 0},
        {"archive.contact_retention_days", CONFIG_INT, &retention_days, "180",
         "purge a complainant's contact data this many days after their last case ended "
         "(0: keep)", 0},
        {"archive.retention_scan_ms", CONFIG_INT, &retention_scan_ms, "600000",
         "how often the retention purge runs", 0},
        {NULL, 0, NULL, NULL, NULL, 0},
    };
    const char *const topics[] = {KAFKA_TOPIC_INTAKE,     KAFKA_TOPIC_CLASSIFIER,
                                         KAFKA_TOPIC_DISPATCHER, KAFKA_TOPIC_SLA,
                                         KAFKA_TOPIC_NOTIFIER,   NULL};

    rc = service_init(&svc, "archiver", archiver_usage, "127.0.0.1:9106", keys, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (scan_ms < 1 || gap_warn_ms < 1 || retention_days < 0 || retention_scan_ms < 1) {
        LOG_ERROR("archive.scan_ms, archive.gap_warn_ms and archive.retention_scan_ms must be >= 1 "
                  "and archive.contact_retention_days >= 0");
        config_free(&svc.cfg);
        return 2;
    }
    memset(&ar, 0, sizeof(ar));
    if (calendar_path && *calendar_path) {
        snprintf(errstr, sizeof(errstr), "%s not found", calendar_path);
        if (config_resolve_path(calendar_path, path, sizeof(path)) != 0 ||
            !(cal = calendar_load(path, errstr, sizeof(errstr)))) {
            LOG_ERROR("archive.calendar: %s", errstr);
            config_free(&svc.cfg);
            return 2;
        }
        ar.cal = cal;
    }
    ar.gap_warn_ms = gap_warn_ms;
    ar.retention_days = retention_days;
    ar.retention_scan_ms = retention_scan_ms;
    ar.last_retention_ms = -(int64_t)retention_scan_ms; /* first pass at start */
    ar.last_fold_ms = -(int64_t)ARCHIVE_FOLD_MS;         /* first fold at start */
    ar.last_judge_ms = -(int64_t)ARCHIVE_JUDGE_MS;       /* first judgement at start */
    archive_metrics_init(&ar);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        calendar_free(cal);
        return 1;
    }
    svc.batch = archive_batch;
    rc = service_consume(&svc, topics, archive_handle, NULL, archive_tick, scan_ms, &ar);
    int code = service_stop(&svc);
    archive_stats_free(&ar);
    calendar_free(cal);
    return rc != 0 ? 1 : code;
}
