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
    int scan_ms = 0, gap_warn_ms = 0, rc;
    const config_key_t keys[] = {
        {"archive.scan_ms", CONFIG_INT, &scan_ms, "5000",
         "how often the held-event gauges are refreshed", 0},
        {"archive.gap_warn_ms", CONFIG_INT, &gap_warn_ms, "60000",
         "warn about a case whose feed waits this long for a missing event", 0},
        {NULL, 0, NULL, NULL, NULL, 0},
    };
    const char *const topics[] = {KAFKA_TOPIC_INTAKE,     KAFKA_TOPIC_CLASSIFIER,
                                         KAFKA_TOPIC_DISPATCHER, KAFKA_TOPIC_SLA,
                                         KAFKA_TOPIC_NOTIFIER,   NULL};

    rc = service_init(&svc, "archiver", archiver_usage, "127.0.0.1:9106", keys, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (scan_ms < 1 || gap_warn_ms < 1) {
        LOG_ERROR("archive.scan_ms and archive.gap_warn_ms must be >= 1");
        config_free(&svc.cfg);
        return 2;
    }
    memset(&ar, 0, sizeof(ar));
    ar.gap_warn_ms = gap_warn_ms;
    archive_metrics_init(&ar);

    if (service_start(&svc) != 0) {
        service_stop(&svc);
        return 1;
    }
    rc = service_consume(&svc, topics, archive_handle, archive_tick, scan_ms, &ar);
    int code = service_stop(&svc);
    return rc != 0 ? 1 : code;
}
