/*
 * open311_services: GET services and service definitions from the dispatch
 * catalogue (see open311_services.h). The catalogue is read with the
 * dispatcher's own loader (dispatch_catalogue_load), so the services offered
 * are checked by the same rules the dispatcher routes by.
 */
#include "open311_services.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dispatch_catalogue.h"
#include "log.h"
#include "util.h"

/* Every service offers the same attributes; open311.c maps them onto a complaint. */
static json_t *attributes_new(void)
{
    json_t *a = json_array();
    json_array_append_new(
        a,
        json_pack("{s:b, s:s, s:s, s:b, s:s, s:i, s:s}", "variable", 1, "code", "title", "datatype",
                  "string", "required", 0, "datatype_description", "1 to 200 characters", "order",
                  1, "description", "Short title of the request; the service name when not given"));
    json_array_append_new(a, json_pack("{s:b, s:s, s:s, s:b, s:s, s:i, s:s}", "variable", 1, "code",
                                       "district_code", "datatype", "string", "required", 0,
                                       "datatype_description",
                                       "administrative division code, e.g. 110105", "order", 2,
                                       "description", "District the request is about"));
    json_array_append_new(
        a, json_pack("{s:b, s:s, s:s, s:b, s:s, s:i, s:s}", "variable", 1, "code", "external_ref",
                     "datatype", "string", "required", 1, "datatype_description",
                     "1 to 128 characters", "order", 3, "description",
                     "Your own id of this request (required for the open311 channel): a second "
                     "POST with the same external_ref answers with the same service_request_id "
                     "instead of making a new one"));
    json_array_append_new(a, json_pack("{s:b, s:s, s:s, s:b, s:s, s:i, s:s}", "variable", 1, "code",
                                       "language", "datatype", "string", "required", 0,
                                       "datatype_description", "BCP 47 tag, zh-CN when not given",
                                       "order", 4, "description", "Language of the description"));
    static const char *const flags[][2] = {
        {"confidential", "Confidential (保密): contact data is hidden even from the handling "
                         "department"},
        {"anonymous", "Anonymous: the request is handled without contact data"},
    };
    for (int i = 0; i < 2; i++)
        json_array_append_new(
            a, json_pack("{s:b, s:s, s:s, s:b, s:s, s:i, s:s, s:[{s:s, s:s}, {s:s, s:s}]}",
                         "variable", 1, "code", flags[i][0], "datatype", "singlevaluelist",
                         "required", 0, "datatype_description", "true or false", "order", 5 + i,
                         "description", flags[i][1], "values", "key", "false", "name", "no", "key",
                         "true", "name", "yes"));
    return a;
}

/* domains.json: code -> label ("城乡建设"). */
static json_t *domain_labels(const char *path, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e), *out = NULL, *d;
    size_t i;
    if (!root) {
        snprintf(errstr, errstr_size, "%s:%d: %s", path, e.line, e.text);
        return NULL;
    }
    json_t *list = json_object_get(root, "domains");
    if (!json_is_array(list)) {
        snprintf(errstr, errstr_size, "%s: \"domains\" must be an array", path);
        goto out;
    }
    out = json_object();
    json_array_foreach(list, i, d)
    {
        const char *code = json_string_value(json_object_get(d, "code"));
        const char *label = json_string_value(json_object_get(d, "label"));
        if (code && label)
            json_object_set_new(out, code, json_string(label));
    }
out:
    json_decref(root);
    return out;
}

static void join(strbuf_t *b, char *const *items, size_t n, const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_append(b, sep, strlen(sep));
        strbuf_append(b, items[i], strlen(items[i]));
    }
}

open311_catalogue_t *open311_catalogue_load(const char *catalogue_path, const char *domains_path,
                                            char *errstr, size_t errstr_size)
{
    char **codes = NULL;
    dispatch_catalogue_t *dc = NULL;
    json_t *labels = NULL;
    open311_catalogue_t *cat = NULL;

    if (!(codes = dispatch_domains_load(domains_path, errstr, errstr_size)) ||
        !(labels = domain_labels(domains_path, errstr, errstr_size)) ||
        !(dc = dispatch_catalogue_load(catalogue_path, (const char *const *)codes, errstr,
                                       errstr_size)))
        goto out;
    cat = calloc(1, sizeof(*cat));
    cat->services = json_array();
    cat->definitions = json_object();
    cat->names = json_object();
    cat->departments = json_object();
    for (size_t i = 0; i < dc->ndepts; i++)
        json_object_set_new(cat->departments, dc->depts[i].code, json_string(dc->depts[i].name));
    /* the catalogue keeps rules in precedence order; offer them in file order */
    for (size_t k = 0; k < dc->nrules; k++) {
        const dispatch_rule_t *rule = NULL;
        for (size_t i = 0; i < dc->nrules; i++)
            if (dc->rules[i].index == k)
                rule = &dc->rules[i];
        if (!rule)
            continue;
        const char *dom = strcmp(rule->domain, "*") == 0 ? "other" : rule->domain;
        const char *group = json_string_value(json_object_get(labels, dom));
        const dispatch_dept_t *lead = dispatch_dept_find(dc, rule->department);
        const char *lead_name = lead ? lead->name : rule->department;
        strbuf_t name, desc, kw;
        strbuf_init(&name);
        strbuf_init(&desc);
        strbuf_init(&kw);
        strbuf_appendf(&name, "%s：%s", group ? group : dom, lead_name);
        if (rule->nkeywords)
            strbuf_appendf(&name, "（%s）", rule->keywords[0]);
        strbuf_appendf(&desc, "Handled by %s", lead_name);
        for (size_t c = 0; c < rule->nco; c++) {
            const dispatch_dept_t *co = dispatch_dept_find(dc, rule->co[c]);
            strbuf_appendf(&desc, "%s%s", c ? ", " : " with ", co ? co->name : rule->co[c]);
        }
        if (rule->nkeywords) {
            strbuf_append(&desc, "; about: ", 9);
            join(&desc, rule->keywords, rule->nkeywords, ", ");
        }
        join(&kw, rule->keywords, rule->nkeywords, ",");
        json_array_append_new(cat->services,
                              json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "service_code",
                                        rule->id, "service_name", name.s, "description", desc.s,
                                        "metadata", 1, "type", "realtime", "keywords", kw.s,
                                        "group", group ? group : dom));
        json_object_set_new(
            cat->definitions, rule->id,
            json_pack("{s:s, s:o}", "service_code", rule->id, "attributes", attributes_new()));
        json_object_set_new(cat->names, rule->id, json_string(name.s));
        strbuf_free(&name);
        strbuf_free(&desc);
        strbuf_free(&kw);
    }
out:
    dispatch_catalogue_free(dc);
    dispatch_codes_free(codes);
    json_decref(labels);
    return cat;
}

void open311_catalogue_free(open311_catalogue_t *cat)
{
    if (!cat)
        return;
    json_decref(cat->services);
    json_decref(cat->definitions);
    json_decref(cat->names);
    json_decref(cat->departments);
    free(cat);
}

json_t *open311_catalogue_definition(const open311_catalogue_t *cat, const char *code)
{
    return json_object_get(cat->definitions, code);
}

const char *open311_catalogue_name(const open311_catalogue_t *cat, const char *code)
{
    return json_string_value(json_object_get(cat->names, code));
}

const char *open311_catalogue_department(const open311_catalogue_t *cat, const char *code)
{
    return code ? json_string_value(json_object_get(cat->departments, code)) : NULL;
}

static pthread_once_t cat_once = PTHREAD_ONCE_INIT;
static open311_catalogue_t *cat_global;

static void cat_load_once(void)
{
    char errstr[512], cpath[1024], dpath[1024];
    const char *c = getenv("KESU_OPEN311_CATALOGUE"), *d = getenv("KESU_OPEN311_DOMAINS");
    c = c && *c ? c : "deploy/config/catalogue.json";
    d = d && *d ? d : "deploy/config/domains.json";
    if (config_resolve_path(c, cpath, sizeof(cpath)) != 0) {
        LOG_ERROR("open311: catalogue %s not found: the services list is unavailable", c);
        return;
    }
    if (config_resolve_path(d, dpath, sizeof(dpath)) != 0) {
        LOG_ERROR("open311: domains %s not found: the services list is unavailable", d);
        return;
    }
    if (!(cat_global = open311_catalogue_load(cpath, dpath, errstr, sizeof(errstr))))
        LOG_ERROR("open311: cannot load the catalogue: %s", errstr);
}

const open311_catalogue_t *open311_catalogue_get(void)
{
    pthread_once(&cat_once, cat_load_once);
    return cat_global;
}
