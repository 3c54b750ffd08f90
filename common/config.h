/*
 * config: one table-driven loader for every binary.
 *
 * Precedence, lowest first: the table's defaults, then the file named by
 * --config FILE (or KESU_CONFIG), then KESU_* environment variables, then
 * command-line flags. A key "a.b_c" is KESU_A_B_C in the environment and
 * --a.b_c=VALUE (or --a.b_c VALUE) on the command line. Keys under "kafka."
 * pass straight to librdkafka: "kafka.bootstrap.servers" in the file,
 * KESU_KAFKA_BOOTSTRAP_SERVERS in the environment, -X bootstrap.servers=...
 * on the command line.
 *
 * File format: one "key = value" per line, '#' starts a comment.
 */
#ifndef KESU_CONFIG_H
#define KESU_CONFIG_H

#include <stddef.h>

typedef enum {
    CONFIG_STR,  /**< target is char ** (owned by the config, freed by config_free) */
    CONFIG_INT,  /**< target is int * */
    CONFIG_BOOL, /**< target is int *, accepts true/false/1/0/yes/no/on/off */
} config_type_t;

typedef struct config_key {
    const char *name;   /**< dotted key; NULL ends a table */
    config_type_t type; /**< how the value is parsed */
    void *target;       /**< where the value goes */
    const char *def;    /**< default as text, may be NULL (empty string / 0) */
    const char *help;   /**< one line for --help */
    int secret;         /**< redacted by --print-config */
} config_key_t;

typedef struct config_kv {
    char *key;   /**< librdkafka property name, without "kafka." */
    char *value; /**< its value */
} config_kv_t;

#define CONFIG_MAX_TABLES 4
#define CONFIG_MAX_KAFKA 64
#define CONFIG_MAX_ARGS 32

typedef struct config {
    const char *program;                        /**< binary name for --help */
    const char *usage;                          /**< one paragraph for --help */
    const config_key_t *tables[CONFIG_MAX_TABLES]; /**< key tables, NULL-terminated list */
    config_kv_t kafka[CONFIG_MAX_KAFKA];        /**< kafka.* pass-through, last write wins */
    size_t kafka_cnt;                           /**< used entries of kafka[] */
    char *args[CONFIG_MAX_ARGS];                /**< positional arguments, in order */
    int arg_cnt;                                /**< used entries of args[] */
    char *sources[64];                          /**< where each key's value came from (for --print-config) */
} config_t;

/** @brief Zero a config and attach the program name, usage text and key tables. */
void config_init(config_t *cfg, const char *program, const char *usage);

/** @brief Add a key table (service tables after the common one). */
void config_add_table(config_t *cfg, const config_key_t *table);

/**
 * @brief Load defaults, file, environment and flags into the targets.
 * @returns 0 to go on, 1 when --help or --print-config was printed (exit 0),
 *          -1 on a bad key or value (message in errstr names it).
 */
int config_load(config_t *cfg, int argc, char **argv, char *errstr, size_t errstr_size);

/** @brief Set one key (dotted name) from text. @returns 0 or -1 with errstr. */
int config_set(config_t *cfg, const char *key, const char *value, const char *source, char *errstr,
               size_t errstr_size);

/** @brief Look up a kafka pass-through value. @returns value or NULL. */
const char *config_kafka_get(const config_t *cfg, const char *key);

/** @brief Print the effective configuration, secrets redacted. */
void config_print(const config_t *cfg);

/** @brief Print --help: usage, then every key with default and help. */
void config_help(const config_t *cfg);

/**
 * @brief Find a data file named in a setting: an absolute path or one that
 *        exists relative to the working directory is used as is; otherwise the
 *        path is taken relative to the source tree (KESU_SOURCE_DIR) so that
 *        "deploy/config/x.json" works from any directory in development.
 *        out receives the path to use. @returns 0 if that file exists, else -1.
 */
int config_resolve_path(const char *path, char *out, size_t out_size);

/**
 * @brief Parse a JSON data file (path, when text is NULL) or text (named
 *        name in messages), refusing duplicate keys. A syntax error reads
 *        "NAME:LINE:COLUMN: why".
 * @returns a new reference (caller json_decref's) or NULL with errstr.
 */
struct json_t *config_json_load(const char *name, const char *text, char *errstr,
                                size_t errstr_size);

/** @brief Free strings owned by the config (STR targets, kafka, args). */
void config_free(config_t *cfg);

#endif
