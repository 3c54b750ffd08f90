/*
 * kesuctl sla recompute [--dry-run] and kesuctl case sla CASE_NO [--json]:
 * the operator's side of the SLA timers. recompute uses the sla-monitor's
 * own policy, calendar and timer code (sla_recompute), so a deadline is
 * computed the same way whoever computes it; case sla prints the timeline
 * that GET /v1/cases/{case_no}/sla returns (common/sla_view.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "config.h"
#include "kesuctl.h"
#include "pg.h"
#include "sla_policy.h"
#include "sla_timers.h"
#include "sla_view.h"
#include "util.h"

static calendar_t *sla_cal(const kesuctl_t *k, char *errstr, size_t errstr_size)
{
    char path[4096];
    config_resolve_path(k->calendar && *k->calendar ? k->calendar
                                                    : "deploy/config/calendar/cn.json",
                        path, sizeof(path));
    return calendar_load(path, errstr, errstr_size);
}

int kesuctl_sla_recompute(kesuctl_t *k)
{
    char errstr[1024], path[4096];
    calendar_t *cal = NULL;
    sla_policy_t *policy = NULL;
    pg_t *pg = NULL;
    sla_ctx_t ctx;
    int rc = 1;

    if (!(cal = sla_cal(k, errstr, sizeof(errstr)))) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    config_resolve_path(k->policy && *k->policy ? k->policy : "deploy/config/sla.json", path,
                        sizeof(path));
    if (!(policy = sla_policy_load(path, errstr, sizeof(errstr)))) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    policy->cal = cal;
    sla_ctx_init(&ctx, policy, NULL, NULL);
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    int n = sla_recompute(pg, &ctx, k->dry_run, stdout, errstr, sizeof(errstr));
    if (n < 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    printf("%d open timers %s (policy %s, calendar %s)\n", n,
           k->dry_run ? "would change (dry run, nothing written)" : "recomputed", path,
           calendar_name(cal));
    rc = 0;
out:
    pg_destroy(pg);
    sla_policy_free(policy);
    calendar_free(cal);
    return rc;
}

int kesuctl_case_sla(kesuctl_t *k)
{
    char errstr[1024];
    const char *case_no = k->cfg.arg_cnt > 2 ? k->cfg.args[2] : NULL;
    calendar_t *cal = NULL;
    pg_t *pg = NULL;
    json_t *view = NULL;
    int rc = 1, found;
    if (!case_no) {
        fprintf(stderr, "usage: kesuctl case sla CASE_NO [--json]\n");
        return 2;
    }
    if (!(cal = sla_cal(k, errstr, sizeof(errstr)))) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    view = sla_view_build(pg, cal, case_no, util_now_ms(), &found, errstr, sizeof(errstr));
    if (!view) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    if (k->json) {
        char *s = json_dumps(view, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    } else {
        sla_view_print(view, stdout);
    }
    rc = 0;
out:
    json_decref(view);
    pg_destroy(pg);
    calendar_free(cal);
    return rc;
}
