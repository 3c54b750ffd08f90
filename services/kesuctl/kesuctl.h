/*
 * kesuctl: the operator's command line. Each subcommand is a function in
 * its own file taking the loaded settings; main.c only dispatches.
 */
#ifndef KESU_KESUCTL_H
#define KESU_KESUCTL_H

#include <stdio.h>

#include "config.h"

typedef struct kesuctl {
    config_t cfg;       /**< settings + positional args (args[0] is the command) */
    char *pg;           /**< libpq conninfo */
    char *migrations;   /**< folder of numbered *.sql files */
    char *role;         /**< token create --role */
    char *department;   /**< token create --department */
    char *label;        /**< token create --label */
    int partitions;     /**< topics create */
    int replication;    /**< topics create */
    char *topic;        /**< events tail --topic */
    int from_beginning; /**< events tail */
    int max;            /**< events tail: stop after N (0: no limit) */
    int timeout_ms;     /**< events tail: stop after this long without a message (0: never) */
    /* load */
    char *load_api;       /**< intake base URL */
    char *load_token;     /**< agent token */
    char *load_data;      /**< JSONL files, comma-separated ("" = the shared data) */
    char *data_dir;       /**< the shared data folder */
    char *load_channels;  /**< channels to cycle through, comma-separated */
    int load_rate;        /**< cases per second, 0 = as fast as possible */
    int load_count;       /**< stop after N submissions (0: by duration) */
    int load_connections; /**< concurrent keep-alive connections */
    int load_warmup_s;    /**< seconds not counted in the figures */
    int load_duration_s;  /**< measured seconds after the warm-up (0: until count) */
    int load_drain_s;     /**< how long to wait for submitted cases to complete */
} kesuctl_t;

/** @brief Apply pending migrations and sync case_transitions. @returns exit code. */
int kesuctl_migrate(kesuctl_t *k);

/** @brief Create every Kesu topic (idempotent). @returns exit code. */
int kesuctl_topics_create(kesuctl_t *k);

/** @brief The load generator (see load.c). @returns exit code. */
int kesuctl_load(kesuctl_t *k);

/** @brief Delete a test run's topics (only with KESU_TOPICS_PREFIX set). @returns exit code. */
int kesuctl_topics_delete(kesuctl_t *k);

/** @brief token create|list|revoke. @returns exit code. */
int kesuctl_token(kesuctl_t *k, int argi);

/** @brief Decode envelopes of a topic to JSON lines on stdout. @returns exit code. */
int kesuctl_events_tail(kesuctl_t *k);

/**
 * @brief Apply the migrations in dir to the database (the function behind
 *        `kesuctl migrate`, also used by tests). Progress lines go to out.
 * @returns number applied, or -1 with errstr.
 */
int kesuctl_migrate_dir(const char *conninfo, const char *dir, FILE *out, char *errstr,
                        size_t errstr_size);

#endif
