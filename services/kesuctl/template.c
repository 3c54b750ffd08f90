/*
 * kesuctl template render: preview a notice exactly as the notifier would
 * render it - the same notifier.json, the same template files, the same
 * renderer (notify_render, linked from the notifier's logic) - with sample
 * values, or with a real case's values (--case) read from PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kesuctl.h"
#include "notify.h"
#include "pg.h"
#include "util.h"

/* the values the notifier would use for this case (masked reply, department name, deadline) */
static const pg_stmt_t tpl_case = {
    "tpl_case",
    "SELECT c.case_no, COALESCE(c.reply, '') AS reply, "
    "COALESCE(d.name, c.department, '') AS department, c.language, "
    "COALESCE((SELECT (EXTRACT(EPOCH FROM min(t.due_at)) * 1000)::bigint FROM sla_timers t "
    "  WHERE t.case_id = c.id AND t.state = 'running'), 0) AS due_ms "
    "FROM cases c LEFT JOIN departments d ON d.code = c.department WHERE c.case_no = $1",
    1};

int kesuctl_template_render(kesuctl_t *k)
{
    notify_config_t cfg;
    char errstr[512], path[1024], deadline[32];
    PGresult *res = NULL;
    pg_t *pg = NULL;
    strbuf_t out, link;
    int rc = 1;
    const char *no = "KS20261201-0000001", *dept = "市城市管理局",
               *reply = "已安排人员到现场清运，今后每日清运两次。";
    int64_t due = util_now_ms() + 2LL * 86400000;

    memset(&cfg, 0, sizeof(cfg));
    strbuf_init(&out);
    strbuf_init(&link);
    if (!k->event || !*k->event || !k->audience || !*k->audience) {
        fprintf(stderr, "kesuctl: template render needs --event TYPE --audience AUDIENCE "
                        "[--lang zh-CN|en] [--case CASE_NO]\n");
        rc = 2;
        goto out;
    }
    if (config_resolve_path(k->templates, path, sizeof(path)) != 0) {
        fprintf(stderr, "kesuctl: %s not found\n", k->templates);
        goto out;
    }
    if (notify_config_load(&cfg, path, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    const notify_template_t *t = notify_template_find(&cfg, k->event, k->audience);
    if (!t) {
        fprintf(stderr, "kesuctl: no template for %s / %s; there are:\n", k->event, k->audience);
        for (size_t i = 0; i < cfg.n_templates; i++)
            fprintf(stderr, "  --event %s --audience %s\n", cfg.templates[i].event,
                    cfg.templates[i].audience);
        rc = 2;
        goto out;
    }
    const char *lang = k->lang && *k->lang ? k->lang : cfg.langs[0];
    if (strcmp(notify_lang_pick(&cfg, lang), lang) != 0) {
        fprintf(stderr, "kesuctl: no language %s (the templates have:", lang);
        for (size_t l = 0; l < cfg.n_langs; l++)
            fprintf(stderr, " %s", cfg.langs[l]);
        fprintf(stderr, ")\n");
        rc = 2;
        goto out;
    }
    if (strcmp(lang, "zh-CN") != 0) {
        dept = "City Management Bureau";
        reply = "Staff cleared the site; collection is now twice a day.";
    }
    if (k->case_no && *k->case_no) {
        pg = pg_new(k->pg);
        if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "kesuctl: %s\n", errstr);
            goto out;
        }
        const char *v[1] = {k->case_no};
        res = pg_exec_stmt(pg, &tpl_case, v, PGRES_TUPLES_OK, errstr, sizeof(errstr));
        if (!res || PQntuples(res) == 0) {
            fprintf(stderr, "kesuctl: %s\n", res ? "no such case" : errstr);
            goto out;
        }
        no = pg_get(res, 0, "case_no");
        dept = pg_get(res, 0, "department");
        reply = pg_get(res, 0, "reply");
        due = strtoll(pg_get(res, 0, "due_ms"), NULL, 10);
    }
    notify_fmt_deadline(due, NOTIFY_TZ_OFFSET_DEFAULT, deadline, sizeof(deadline));
    strbuf_appendf(&link, "%s%s", NOTIFY_STATUS_URL_DEFAULT, no);
    notify_var_t vars[NOTIFY_N_VARS];
    size_t n = notify_vars(vars, no, dept, reply, deadline, link.s);
    if (notify_render(notify_template_text(&cfg, t, lang), vars, n, &out, errstr,
                      sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    printf("%s\n", out.s);
    rc = 0;
out:
    PQclear(res);
    pg_destroy(pg);
    strbuf_free(&out);
    strbuf_free(&link);
    notify_config_free(&cfg);
    return rc;
}
