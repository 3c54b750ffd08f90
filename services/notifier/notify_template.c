/*
 * notify_template: notifier.json (templates and routing) and the renderer.
 *
 * The renderer is deliberately small: one pass over the template, each
 * {{name}} replaced by its value, values copied as they are. Because the
 * output is never scanned again, a complaint whose text contains "{{reply}}"
 * shows those characters literally instead of pulling in other data.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify.h"
#include "proto.h"
#include "util.h"

/* a template file larger than this is a mistake, not a notice */
#define NOTIFY_TEMPLATE_MAX 16384

size_t notify_vars(notify_var_t *vars, const char *case_no, const char *department,
                   const char *reply, const char *deadline, const char *status_link)
{
    vars[0] = (notify_var_t){"case_no", case_no};
    vars[1] = (notify_var_t){"department", department};
    vars[2] = (notify_var_t){"reply", reply};
    vars[3] = (notify_var_t){"deadline", deadline};
    vars[4] = (notify_var_t){"status_link", status_link};
    return NOTIFY_N_VARS;
}

void notify_fmt_deadline(int64_t due_ms, int tz_offset_min, char *out, size_t out_size)
{
    struct tm tm;
    time_t t;
    if (due_ms <= 0) {
        snprintf(out, out_size, "-");
        return;
    }
    t = (time_t)(due_ms / 1000) + (time_t)tz_offset_min * 60;
    gmtime_r(&t, &tm);
    snprintf(out, out_size, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* the whole file as a string without its final newline; NULL if absent */
static char *notify_read_text(const char *path, char *errstr, size_t errstr_size, int *missing)
{
    FILE *f = fopen(path, "rb");
    strbuf_t b;
    char buf[4096];
    size_t n;
    *missing = 0;
    if (!f) {
        *missing = 1;
        return NULL;
    }
    strbuf_init(&b);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && b.len <= NOTIFY_TEMPLATE_MAX)
        strbuf_append(&b, buf, n);
    fclose(f);
    if (b.len > NOTIFY_TEMPLATE_MAX) {
        snprintf(errstr, errstr_size, "%.200s: larger than %d bytes", path, NOTIFY_TEMPLATE_MAX);
        strbuf_free(&b);
        return NULL;
    }
    while (b.len > 0 && (b.s[b.len - 1] == '\n' || b.s[b.len - 1] == '\r'))
        b.s[--b.len] = '\0';
    return b.s;
}

/* templates_dir relative to the folder of notifier.json */
static void notify_templates_dir(const char *json_path, const char *dir, char *out, size_t n)
{
    const char *slash = strrchr(json_path, '/');
    if (dir[0] == '/' || !slash)
        snprintf(out, n, "%s", dir);
    else
        snprintf(out, n, "%.*s/%s", (int)(slash - json_path), json_path, dir);
}

/* the placeholders a template may name; notify_vars supplies all of them */
static const char *const notify_known_vars[] = {"case_no", "department", "reply", "deadline",
                                                "status_link"};
#define NOTIFY_KNOWN_VARS (sizeof(notify_known_vars) / sizeof(notify_known_vars[0]))

static int notify_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* "{{ name }}" at p: on success name and name_len hold the trimmed name and
 * *end just past "}}". Anything else is not a placeholder. */
static int notify_placeholder_at(const char *p, const char **name, size_t *name_len,
                                 const char **end)
{
    const char *q = p + 2, *close = strstr(q, "}}");
    if (!close)
        return 0;
    while (q < close && *q == ' ')
        q++;
    const char *e = close;
    while (e > q && e[-1] == ' ')
        e--;
    if (e == q)
        return 0;
    for (const char *c = q; c < e; c++)
        if (!notify_is_name_char(*c))
            return 0;
    *name = q;
    *name_len = (size_t)(e - q);
    *end = close + 2;
    return 1;
}

int notify_render(const char *tmpl, const notify_var_t *vars, size_t n_vars, strbuf_t *out,
                  char *errstr, size_t errstr_size)
{
    strbuf_t b;
    const char *p = tmpl;
    if (!util_utf8_valid(tmpl, strlen(tmpl))) {
        snprintf(errstr, errstr_size, "template is not valid UTF-8");
        return -1;
    }
    strbuf_init(&b);
    while (*p) {
        const char *open = strstr(p, "{{"), *name, *end;
        size_t name_len;
        if (!open) {
            strbuf_append(&b, p, strlen(p));
            break;
        }
        strbuf_append(&b, p, (size_t)(open - p));
        if (!notify_placeholder_at(open, &name, &name_len, &end)) {
            strbuf_append(&b, "{{", 2); /* literal braces */
            p = open + 2;
            continue;
        }
        const notify_var_t *v = NULL;
        for (size_t i = 0; i < n_vars; i++) {
            if (strlen(vars[i].name) == name_len && memcmp(vars[i].name, name, name_len) == 0) {
                v = &vars[i];
                break;
            }
        }
        if (!v) {
            snprintf(errstr, errstr_size, "template names an unknown placeholder {{%.*s}}",
                     (int)(name_len > 64 ? 64 : name_len), name);
            goto err;
        }
        if (v->value) {
            size_t n = strlen(v->value);
            if (!util_utf8_valid(v->value, n)) {
                snprintf(errstr, errstr_size, "value of {{%s}} is not valid UTF-8", v->name);
                goto err;
            }
            strbuf_append(&b, v->value, n);
        }
        p = end;
    }
    strbuf_append(out, b.s, b.len);
    strbuf_free(&b);
    return 0;
err:
    strbuf_free(&b);
    return -1;
}

static int notify_route_parse(const char *s, notify_route_t *r)
{
    if (strcmp(s, "complainant_webhook") == 0)
        *r = NOTIFY_ROUTE_COMPLAINANT_WEBHOOK;
    else if (strcmp(s, "staff_webhook") == 0)
        *r = NOTIFY_ROUTE_STAFF_WEBHOOK;
    else if (strcmp(s, "log") == 0)
        *r = NOTIFY_ROUTE_LOG;
    else if (strcmp(s, "sms") == 0)
        *r = NOTIFY_ROUTE_SMS;
    else if (strcmp(s, "email") == 0)
        *r = NOTIFY_ROUTE_EMAIL;
    else
        return -1;
    return 0;
}

static char *notify_strdup_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) && json_string_length(v) > 0 ? strdup(json_string_value(v)) : NULL;
}

int notify_config_load(notify_config_t *cfg, const char *path, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = NULL, *tmpls, *routing;
    int rc = -1;
    char why[256], dir[1024], file[1536];

    memset(cfg, 0, sizeof(*cfg));
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    routing = json_object_get(root, "routing");
    if (!json_is_object(routing) || json_object_size(routing) == 0) {
        snprintf(errstr, errstr_size, "%s: \"routing\" must be an object of audience -> routes",
                 path);
        goto out;
    }
    cfg->routing = calloc(json_object_size(routing), sizeof(*cfg->routing));
    {
        const char *aud;
        json_t *list;
        json_object_foreach(routing, aud, list)
        {
            notify_routing_t *r = &cfg->routing[cfg->n_routing++];
            r->audience = strdup(aud);
            if (!json_is_array(list) || json_array_size(list) == 0 ||
                json_array_size(list) >= NOTIFY_MAX_ROUTES) {
                snprintf(errstr, errstr_size, "%s: routing.%s must list 1-%d routes", path, aud,
                         NOTIFY_MAX_ROUTES - 1);
                goto out;
            }
            for (size_t i = 0; i < json_array_size(list); i++) {
                json_t *it = json_array_get(list, i);
                if (!json_is_string(it) ||
                    notify_route_parse(json_string_value(it), &r->routes[i]) != 0) {
                    snprintf(errstr, errstr_size,
                             "%s: routing.%s[%zu] \"%.40s\" is not one of complainant_webhook, "
                             "staff_webhook, sms, email, log",
                             path, aud, i, json_is_string(it) ? json_string_value(it) : "");
                    goto out;
                }
                if ((r->routes[i] == NOTIFY_ROUTE_COMPLAINANT_WEBHOOK ||
                     r->routes[i] == NOTIFY_ROUTE_SMS || r->routes[i] == NOTIFY_ROUTE_EMAIL) &&
                    strcmp(aud, NOTIFY_AUDIENCE_COMPLAINANT) != 0) {
                    /* sms and email reach the complainant's own contact data */
                    snprintf(errstr, errstr_size,
                             "%s: routing.%s: complainant_webhook, sms and email are only for "
                             "the complainant",
                             path, aud);
                    goto out;
                }
            }
        }
    }

    {
        json_t *langs = json_object_get(root, "languages"), *subj, *dirv;
        if (!langs) {
            cfg->langs[cfg->n_langs++] = strdup("zh-CN");
        } else if (!json_is_array(langs) || json_array_size(langs) == 0 ||
                   json_array_size(langs) > NOTIFY_MAX_LANGS) {
            snprintf(errstr, errstr_size, "%s: \"languages\" must list 1-%d language tags", path,
                     NOTIFY_MAX_LANGS);
            goto out;
        } else {
            for (size_t i = 0; i < json_array_size(langs); i++) {
                json_t *l = json_array_get(langs, i);
                const char *ls = json_string_value(l);
                /* a tag becomes a folder name: letters, digits and '-' only */
                if (!ls || !*ls || strlen(ls) > 16 || strspn(ls, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "abcdefghijklmnopqrstuvwxyz"
                                                                 "0123456789-") != strlen(ls)) {
                    snprintf(errstr, errstr_size, "%s: languages[%zu] is not a language tag",
                             path, i);
                    goto out;
                }
                cfg->langs[cfg->n_langs++] = strdup(ls);
            }
        }
        subj = json_object_get(root, "email_subject");
        for (size_t i = 0; i < cfg->n_langs; i++) {
            json_t *sv = json_object_get(subj, cfg->langs[i]);
            if (json_is_string(sv))
                cfg->subjects[i] = strdup(json_string_value(sv));
        }
        dirv = json_object_get(root, "templates_dir");
        notify_templates_dir(path, json_is_string(dirv) ? json_string_value(dirv) : "templates",
                             dir, sizeof(dir));
    }

    tmpls = json_object_get(root, "templates");
    if (!json_is_array(tmpls) || json_array_size(tmpls) == 0) {
        snprintf(errstr, errstr_size, "%s: \"templates\" must be a non-empty array", path);
        goto out;
    }
    cfg->templates = calloc(json_array_size(tmpls), sizeof(*cfg->templates));
    for (size_t i = 0; i < json_array_size(tmpls); i++) {
        json_t *t = json_array_get(tmpls, i);
        notify_template_t *nt = &cfg->templates[cfg->n_templates++];
        nt->event = notify_strdup_field(t, "event");
        nt->audience = notify_strdup_field(t, "audience");
        nt->name = notify_strdup_field(t, "name");
        if (!nt->event || !nt->audience || !nt->name) {
            snprintf(errstr, errstr_size,
                     "%s: templates[%zu] needs non-empty strings event, audience, name", path, i);
            goto out;
        }
        if (strspn(nt->name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(nt->name) ||
            nt->name[0] == '.') {
            snprintf(errstr, errstr_size,
                     "%s: templates[%zu]: name \"%.40s\" must be lower-case letters, digits, "
                     "'_', '.', '-' (it names the text files)",
                     path, i, nt->name);
            goto out;
        }
        {
            json_t *when = json_object_get(t, "when");
            if (when && !(json_is_string(when) &&
                          strcmp(json_string_value(when), "emergency") == 0)) {
                snprintf(errstr, errstr_size,
                         "%s: templates[%zu]: \"when\" can only be \"emergency\"", path, i);
                goto out;
            }
            nt->emergency_only = when != NULL;
        }
        /* the text of each language: its file, or (default language only)
         * an inline "text" kept for small configs and tests */
        for (size_t l = 0; l < cfg->n_langs; l++) {
            int missing = 0;
            snprintf(file, sizeof(file), "%s/%s/%s.txt", dir, cfg->langs[l], nt->name);
            why[0] = '\0';
            nt->texts[l] = notify_read_text(file, why, sizeof(why), &missing);
            if (!nt->texts[l] && !missing) {
                snprintf(errstr, errstr_size, "%s: templates[%zu]: %s", path, i, why);
                goto out;
            }
            if (!nt->texts[l] && l == 0)
                nt->texts[0] = notify_strdup_field(t, "text");
            if (!nt->texts[l] && l == 0) {
                snprintf(errstr, errstr_size,
                         "%s: templates[%zu] (%s) has no text: neither \"text\" nor %s", path, i,
                         nt->name, file);
                goto out;
            }
        }
        nt->text = nt->texts[0];
        if (proto_payload_case(nt->event) == KESU__V1__ENVELOPE__PAYLOAD__NOT_SET) {
            snprintf(errstr, errstr_size, "%s: templates[%zu]: \"%s\" is not an event type", path,
                     i, nt->event);
            goto out;
        }
        if (!notify_routing_find(cfg, nt->audience)) {
            snprintf(errstr, errstr_size, "%s: templates[%zu]: audience \"%s\" has no routing",
                     path, i, nt->audience);
            goto out;
        }
        for (size_t k = 0; k + 1 < cfg->n_templates; k++) {
            if (strcmp(cfg->templates[k].event, nt->event) == 0 &&
                strcmp(cfg->templates[k].audience, nt->audience) == 0) {
                snprintf(errstr, errstr_size, "%s: templates[%zu]: a second template for %s/%s",
                         path, i, nt->event, nt->audience);
                goto out;
            }
        }
        /* a dry run proves every text renders with the placeholders we supply */
        notify_var_t vars[NOTIFY_KNOWN_VARS];
        for (size_t k = 0; k < NOTIFY_KNOWN_VARS; k++)
            vars[k] = (notify_var_t){notify_known_vars[k], "x"};
        for (size_t l = 0; l < cfg->n_langs; l++) {
            strbuf_t sb;
            if (!nt->texts[l])
                continue;
            strbuf_init(&sb);
            int r = notify_render(nt->texts[l], vars, NOTIFY_KNOWN_VARS, &sb, why, sizeof(why));
            strbuf_free(&sb);
            if (r != 0) {
                snprintf(errstr, errstr_size, "%s: templates[%zu] (%s, %s): %s", path, i, nt->name,
                         cfg->langs[l], why);
                goto out;
            }
        }
    }
    /* the notifier owns resolved -> replied, and it happens when this notice is sent */
    if (!notify_template_find(cfg, "CaseResolved", NOTIFY_AUDIENCE_COMPLAINANT)) {
        snprintf(errstr, errstr_size,
                 "%s: a template for CaseResolved / complainant (the reply) is required", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        notify_config_free(cfg);
    return rc;
}

void notify_config_free(notify_config_t *cfg)
{
    for (size_t i = 0; cfg->templates && i < cfg->n_templates; i++) {
        free(cfg->templates[i].event);
        free(cfg->templates[i].audience);
        free(cfg->templates[i].name);
        for (size_t l = 0; l < NOTIFY_MAX_LANGS; l++)
            free(cfg->templates[i].texts[l]);
    }
    for (size_t l = 0; l < NOTIFY_MAX_LANGS; l++) {
        free(cfg->langs[l]);
        free(cfg->subjects[l]);
    }
    for (size_t i = 0; cfg->routing && i < cfg->n_routing; i++)
        free(cfg->routing[i].audience);
    free(cfg->templates);
    free(cfg->routing);
    memset(cfg, 0, sizeof(*cfg));
}

const notify_template_t *notify_template_find(const notify_config_t *cfg, const char *event,
                                              const char *audience)
{
    for (size_t i = 0; i < cfg->n_templates; i++)
        if (strcmp(cfg->templates[i].event, event) == 0 &&
            strcmp(cfg->templates[i].audience, audience) == 0)
            return &cfg->templates[i];
    return NULL;
}

const notify_routing_t *notify_routing_find(const notify_config_t *cfg, const char *audience)
{
    for (size_t i = 0; i < cfg->n_routing; i++)
        if (strcmp(cfg->routing[i].audience, audience) == 0)
            return &cfg->routing[i];
    return NULL;
}

const char *notify_lang_pick(const notify_config_t *cfg, const char *lang)
{
    for (size_t l = 0; lang && l < cfg->n_langs; l++)
        if (strcmp(cfg->langs[l], lang) == 0)
            return cfg->langs[l];
    return cfg->n_langs ? cfg->langs[0] : "zh-CN";
}

const char *notify_template_text(const notify_config_t *cfg, const notify_template_t *t,
                                 const char *lang)
{
    for (size_t l = 0; lang && l < cfg->n_langs; l++)
        if (strcmp(cfg->langs[l], lang) == 0 && t->texts[l])
            return t->texts[l];
    return t->text;
}
