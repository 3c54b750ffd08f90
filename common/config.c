/*
 * config: defaults -> file -> KESU_* environment -> flags, one table per binary.
 */
#include "config.h"

#include <jansson.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

void config_init(config_t *cfg, const char *program, const char *usage)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->program = program;
    cfg->usage = usage;
}

void config_add_table(config_t *cfg, const config_key_t *table)
{
    for (int i = 0; i < CONFIG_MAX_TABLES; i++) {
        if (!cfg->tables[i]) {
            cfg->tables[i] = table;
            return;
        }
    }
}

static const config_key_t *config_find(const config_t *cfg, const char *key, int *index)
{
    int idx = 0;
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++) {
        for (const config_key_t *k = cfg->tables[t]; k->name; k++, idx++) {
            if (strcmp(k->name, key) == 0) {
                if (index)
                    *index = idx;
                return k;
            }
        }
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int config_set_kafka(config_t *cfg, const char *key, const char *value, char *errstr,
                            size_t errstr_size)
{
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = strdup(value);
            return 0;
        }
    }
    if (cfg->kafka_cnt == CONFIG_MAX_KAFKA) {
        snprintf(errstr, errstr_size, "too many kafka.* settings (max %d)", CONFIG_MAX_KAFKA);
        return -1;
    }
    cfg->kafka[cfg->kafka_cnt].key = strdup(key);
    cfg->kafka[cfg->kafka_cnt].value = strdup(value);
    cfg->kafka_cnt++;
    return 0;
}

int config_set(config_t *cfg, const char *key, const char *value, const char *source, char *errstr,
               size_t errstr_size)
{
    int idx = 0;
    if (strncmp(key, "kafka.", 6) == 0 && !config_find(cfg, key, NULL))
        return config_set_kafka(cfg, key + 6, value, errstr, errstr_size);

    const config_key_t *k = config_find(cfg, key, &idx);
    if (!k) {
        snprintf(errstr, errstr_size, "unknown setting \"%s\" (from %s); see --help", key,
                 source);
        return -1;
    }
    switch (k->type) {
    case CONFIG_STR: {
        char **t = k->target;
        free(*t);
        *t = strdup(value);
        break;
    }
    case CONFIG_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -2147483647L || v > 2147483647L) {
            snprintf(errstr, errstr_size, "setting \"%s\" (from %s): \"%s\" is not an integer",
                     key, source, value);
            return -1;
        }
        *(int *)k->target = (int)v;
        break;
    }
    case CONFIG_BOOL:
        if (parse_bool(value, (int *)k->target) != 0) {
            snprintf(errstr, errstr_size,
                     "setting \"%s\" (from %s): \"%s\" is not a boolean (use true or false)", key,
                     source, value);
            return -1;
        }
        break;
    }
    if (idx < 64) {
        free(cfg->sources[idx]);
        cfg->sources[idx] = strdup(source);
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int config_load_file(config_t *cfg, const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    char line[4096], src[512];
    int lineno = 0, rc = 0;
    if (!f) {
        snprintf(errstr, errstr_size, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = trim(line);
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "%s:%d: expected \"key = value\"", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        snprintf(src, sizeof(src), "%s:%d", path, lineno);
        if (config_set(cfg, trim(p), trim(eq + 1), src, errstr, errstr_size) != 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* "pg.conninfo" -> "KESU_PG_CONNINFO" */
static void env_name(const char *key, char *out, size_t out_size)
{
    size_t o = (size_t)snprintf(out, out_size, "KESU_");
    for (const char *p = key; *p && o + 1 < out_size; p++)
        out[o++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

static int config_load_env(config_t *cfg, char *errstr, size_t errstr_size)
{
    char name[256];
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++) {
        for (const config_key_t *k = cfg->tables[t]; k->name; k++) {
            env_name(k->name, name, sizeof(name));
            const char *v = getenv(name);
            if (v && config_set(cfg, k->name, v, name, errstr, errstr_size) != 0)
                return -1;
        }
    }
    /* KESU_KAFKA_SECURITY_PROTOCOL=SSL -> security.protocol */
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "KESU_KAFKA_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char key[256];
        size_t n = 0;
        for (const char *p = *e + 11; p < eq && n + 1 < sizeof(key); p++)
            key[n++] = (*p == '_') ? '.' : (char)tolower((unsigned char)*p);
        key[n] = '\0';
        if (config_set_kafka(cfg, key, eq + 1, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

int config_load(config_t *cfg, int argc, char **argv, char *errstr, size_t errstr_size)
{
    const char *file = getenv("KESU_CONFIG");
    int want_help = 0, want_print = 0;

    /* defaults */
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++)
        for (const config_key_t *k = cfg->tables[t]; k->name; k++)
            if (config_set(cfg, k->name, k->def ? k->def : (k->type == CONFIG_STR ? "" : "0"),
                           "default", errstr, errstr_size) != 0)
                return -1;

    /* find --config first: the file sits below env and flags */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    if (file && *file && config_load_file(cfg, file, errstr, errstr_size) != 0)
        return -1;
    if (config_load_env(cfg, errstr, errstr_size) != 0)
        return -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            want_help = 1;
        } else if (strcmp(a, "--print-config") == 0) {
            want_print = 1;
        } else if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strncmp(a, "--config=", 9) == 0) {
            continue;
        } else if (strcmp(a, "-X") == 0 || strncmp(a, "-X", 2) == 0) {
            const char *kv = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq) {
                snprintf(errstr, errstr_size, "-X needs property=value");
                return -1;
            }
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
            const char *k = strncmp(key, "kafka.", 6) == 0 ? key + 6 : key;
            if (config_set_kafka(cfg, k, eq + 1, errstr, errstr_size) != 0)
                return -1;
        } else if (strncmp(a, "--", 2) == 0 && a[2]) {
            char key[256];
            const char *eq = strchr(a + 2, '=');
            const char *value;
            if (eq) {
                snprintf(key, sizeof(key), "%.*s", (int)(eq - a - 2), a + 2);
                value = eq + 1;
            } else {
                snprintf(key, sizeof(key), "%s", a + 2);
                const config_key_t *k = config_find(cfg, key, NULL);
                if (k && k->type == CONFIG_BOOL) {
                    value = "true";
                } else if (i + 1 < argc) {
                    value = argv[++i];
                } else {
                    snprintf(errstr, errstr_size, "flag --%s needs a value", key);
                    return -1;
                }
            }
            if (config_set(cfg, key, value, "command line", errstr, errstr_size) != 0)
                return -1;
        } else {
            if (cfg->arg_cnt == CONFIG_MAX_ARGS) {
                snprintf(errstr, errstr_size, "too many arguments");
                return -1;
            }
            cfg->args[cfg->arg_cnt++] = strdup(a);
        }
    }
    if (want_help) {
        config_help(cfg);
        return 1;
    }
    if (want_print) {
        config_print(cfg);
        return 1;
    }
    return 0;
}

const char *config_kafka_get(const config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_cnt; i++)
        if (strcmp(cfg->kafka[i].key, key) == 0)
            return cfg->kafka[i].value;
    return NULL;
}

static int kafka_secret(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, "key.pem") ||
           strstr(key, "sasl.oauthbearer.config");
}

void config_print(const config_t *cfg)
{
    int idx = 0;
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++) {
        for (const config_key_t *k = cfg->tables[t]; k->name; k++, idx++) {
            const char *src = idx < 64 && cfg->sources[idx] ? cfg->sources[idx] : "default";
            switch (k->type) {
            case CONFIG_STR: {
                const char *v = *(char **)k->target;
                printf("%s = %s", k->name, k->secret && v && *v ? "[redacted]" : (v ? v : ""));
                break;
            }
            case CONFIG_INT:
                printf("%s = %d", k->name, *(int *)k->target);
                break;
            case CONFIG_BOOL:
                printf("%s = %s", k->name, *(int *)k->target ? "true" : "false");
                break;
            }
            printf("    # %s\n", src);
        }
    }
    for (size_t i = 0; i < cfg->kafka_cnt; i++)
        printf("kafka.%s = %s\n", cfg->kafka[i].key,
               kafka_secret(cfg->kafka[i].key) ? "[redacted]" : cfg->kafka[i].value);
}

void config_help(const config_t *cfg)
{
    char name[256];
    printf("%s\n\n", cfg->usage ? cfg->usage : cfg->program);
    printf("Settings (defaults < --config FILE < environment < flags):\n");
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++) {
        for (const config_key_t *k = cfg->tables[t]; k->name; k++) {
            env_name(k->name, name, sizeof(name));
            printf("  --%-28s %s\n  %-30s env %s, default \"%s\"\n", k->name,
                   k->help ? k->help : "", "", name, k->def ? k->def : "");
        }
    }
    printf("  -X PROP=VALUE                  any librdkafka property (env KESU_KAFKA_PROP_NAME)\n"
           "  --config FILE                  key = value file (env KESU_CONFIG)\n"
           "  --print-config                 print the effective settings and exit\n"
           "  --help                         this text\n");
}

void config_free(config_t *cfg)
{
    for (int t = 0; t < CONFIG_MAX_TABLES && cfg->tables[t]; t++)
        for (const config_key_t *k = cfg->tables[t]; k->name; k++)
            if (k->type == CONFIG_STR) {
                free(*(char **)k->target);
                *(char **)k->target = NULL;
            }
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    cfg->kafka_cnt = 0;
    for (int i = 0; i < cfg->arg_cnt; i++)
        free(cfg->args[i]);
    cfg->arg_cnt = 0;
    for (int i = 0; i < 64; i++) {
        free(cfg->sources[i]);
        cfg->sources[i] = NULL;
    }
}

int config_resolve_path(const char *path, char *out, size_t out_size)
{
    if (!path || !*path) {
        snprintf(out, out_size, "%s", "");
        return -1;
    }
    snprintf(out, out_size, "%s", path);
    if (path[0] == '/' || access(path, R_OK) == 0)
        return access(out, R_OK) == 0 ? 0 : -1;
#ifdef KESU_SOURCE_DIR
    snprintf(out, out_size, "%s/%s", KESU_SOURCE_DIR, path);
    if (access(out, R_OK) == 0)
        return 0;
#endif
    snprintf(out, out_size, "%s", path);
    return -1;
}

json_t *config_json_load(const char *name, const char *text, char *errstr, size_t errstr_size)
{
    json_error_t e;
    json_t *root = text ? json_loads(text, JSON_REJECT_DUPLICATES, &e)
                        : json_load_file(name, JSON_REJECT_DUPLICATES, &e);
    if (root)
        return root;
    if (e.line > 0)
        snprintf(errstr, errstr_size, "%s:%d:%d: %s", name, e.line, e.column, e.text);
    else
        snprintf(errstr, errstr_size, "%s: %s", name, e.text);
    return NULL;
}
