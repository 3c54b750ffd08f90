/*
 * api_sla: the SLA timeline route. Staff roles only; it runs under the API
 * role (api_tx_begin), so a handler sees the timeline of its own
 * department's cases only - another's is the same 404 as an unknown case.
 * The working calendar is loaded once per process, from KESU_SLA_CALENDAR
 * or deploy/config/calendar/cn.json (the sla-monitor's default), so the
 * working time shown is counted the way the deadlines were.
 */
#include "api_sla.h"

#include <pthread.h>
#include <stdlib.h>

#include "api.h"
#include "calendar.h"
#include "config.h"
#include "log.h"
#include "sla_view.h"

static pthread_once_t api_sla_once = PTHREAD_ONCE_INIT;
static calendar_t *api_sla_cal;

static void api_sla_load_calendar(void)
{
    char path[4096], errstr[512];
    const char *p = getenv("KESU_SLA_CALENDAR");
    config_resolve_path(p && *p ? p : "deploy/config/calendar/cn.json", path, sizeof(path));
    api_sla_cal = calendar_load(path, errstr, sizeof(errstr));
    if (!api_sla_cal)
        LOG_ERROR("GET /v1/cases/{no}/sla disabled: %s", errstr);
}

API_HANDLER(api_sla_get)
{
    intake_token_t tok;
    char errstr[512];
    int st = 0, found = 0;
    const char *no = api_case_no_param(r, &st);
    if (!no)
        return st;
    if ((st = api_authenticate(w, r, INTAKE_ROLES_READ, &tok)) != 0)
        return st;
    pthread_once(&api_sla_once, api_sla_load_calendar);
    if (!api_sla_cal)
        return api_fail(r, 503, "unavailable", NULL, "the working calendar could not be loaded");
    if (api_tx_begin(w, &tok, errstr, sizeof(errstr)) != 0)
        return api_fail_db(w, r, "sla", errstr);
    json_t *view = sla_view_build(w->pg, api_sla_cal, no, util_now_ms(), &found, errstr,
                                  sizeof(errstr));
    if (!view && found)
        return api_fail_db(w, r, "sla", errstr);
    pg_rollback(w->pg); /* read only */
    if (!view)
        return api_fail(r, 404, "not_found", NULL, "no case %s", no);
    http_reply_json(r, 200, view);
    return 200;
}
