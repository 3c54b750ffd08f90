/*
 * kesuctl: the operator's command line. Each subcommand is a function in
 * its own file taking the loaded settings; main.c only dispatches.
 */
#ifndef KESU_KESUCTL_H
#define KESU_KESUCTL_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "httpc.h"

struct json_t;

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
    int load_districts;   /**< district codes to spread the messages over (0: none) */
    int load_rate;        /**< cases per second, 0 = as fast as possible */
    int load_count;       /**< stop after N submissions (0: by duration) */
    int load_connections; /**< concurrent keep-alive connections */
    int load_warmup_s;    /**< seconds not counted in the figures */
    int load_duration_s;  /**< measured seconds after the warm-up (0: until count) */
    int load_drain_s;     /**< how long to wait for submitted cases to complete */
    /* template render, stats, complainant erase */
    char *templates; /**< template render: notifier.json */
    char *event;     /**< template render --event */
    char *audience;  /**< template render --audience */
    char *lang;      /**< template render --lang */
    char *case_no;   /**< template render / complainant erase --case */
    char *from;      /**< stats --from YYYY-MM-DD */
    char *to;        /**< stats --to YYYY-MM-DD */
    char *group_by;  /**< stats --group_by day,department,... */
    char *format;    /**< stats --format table|csv|json */
    char *phone;     /**< complainant erase --phone */
    char *reason;    /**< complainant erase --reason */
    char *actor;     /**< complainant erase --actor (operator id, recorded) */
    char *pii_key;   /**< PII key spec (complainant erase --phone) */
    /* catalogue load, sla recompute, case sla */
    char *domains;  /**< catalogue load|check: domains.json */
    char *policy;   /**< sla recompute: sla.json */
    char *calendar; /**< sla recompute / case sla: the working calendar */
    int dry_run;    /**< sla recompute --dry-run */
    int json;       /**< case sla --json, dlq list --json, verify --json */
    /* dlq, verify */
    char *since;    /**< dlq list|replay, verify: from then on (30m, 2h, Unix ms, RFC 3339 UTC) */
    char *dlq_ids;  /**< dlq replay --id P:O[,P:O...] (DLQ partition:offset) */
    int all;        /**< dlq replay --all */
    int wait_s;     /**< verify --wait: re-check until clean or this many seconds */
    /* submit, case show, case list (through intake's API: --api, --token) */
    char *title;        /**< submit --title */
    char *body;         /**< submit --body */
    char *channel;      /**< submit --channel (default web) / case list filter */
    char *language;     /**< submit --language */
    char *external_ref; /**< submit --external_ref */
    char *district;     /**< submit --district / case list filter */
    char *address;      /**< submit --address */
    char *file;         /**< submit --file x.ndjson ("-": stdin) */
    char *idem_key;     /**< submit --idempotency_key */
    int chunk;          /**< submit --file: lines per batch request */
    char *status;       /**< case list --status a,b */
    char *category;     /**< case list --category */
    char *overdue;      /**< case list --overdue true|false */
    char *created_from; /**< case list --created_from */
    char *created_to;   /**< case list --created_to */
    int limit;          /**< case list --limit */
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

/** @brief Print a notice rendered as the notifier would (template render). @returns exit code. */
int kesuctl_template_render(kesuctl_t *k);

/** @brief Print the statistics of a date range (stats). @returns exit code. */
int kesuctl_stats(kesuctl_t *k);

/** @brief Erase a complainant's contact data, audited (complainant erase). @returns exit code. */
int kesuctl_complainant_erase(kesuctl_t *k);

/** @brief catalogue check (load 0) or load (load 1) [FILE]. @returns exit code. */
int kesuctl_catalogue(kesuctl_t *k, int load);

/** @brief sla recompute [--dry-run]: open deadlines after a policy/calendar change. @returns exit code. */
int kesuctl_sla_recompute(kesuctl_t *k);

/** @brief case sla CASE_NO [--json]: the SLA timeline in working time. @returns exit code. */
int kesuctl_case_sla(kesuctl_t *k);

/** @brief dlq list [--since] [--json]: the DLQ entries. @returns exit code. */
int kesuctl_dlq_list(kesuctl_t *k);

/** @brief dlq replay (--id P:O,... | --all) [--since] [--dry-run]. @returns exit code. */
int kesuctl_dlq_replay(kesuctl_t *k);

/** @brief verify [--since] [--wait S] [--json]: reconcile PostgreSQL and the topics. @returns 0 clean, 1 discrepancies, 2 error. */
int kesuctl_verify(kesuctl_t *k);

/** Called for each message of a topic scan; return non-zero to stop. */
typedef int (*kesuctl_scan_fn)(void *opaque, const rd_kafka_message_t *rkm);

/**
 * @brief Read every partition of topic from the beginning to its high
 *        watermark at the start (no group, nothing committed).
 * @returns 0 or -1 with errstr.
 */
int kesuctl_topic_scan(kesuctl_t *k, const char *topic, kesuctl_scan_fn fn, void *opaque,
                       char *errstr, size_t errstr_size);

/** @brief Parse --since (30s/15m/2h/1d ago, Unix ms, RFC 3339 UTC) into Unix ms (0 if empty). @returns 0 or -1. */
int kesuctl_parse_since(const char *s, int64_t *out_ms);

/** @brief submit: one complaint, or an NDJSON file through the batch API. @returns exit code. */
int kesuctl_submit(kesuctl_t *k);

/** @brief case show CASE_NO: the case and its history as a timeline. @returns exit code. */
int kesuctl_case_show(kesuctl_t *k);

/** @brief case list [filters]: cases newest first, as a table. @returns exit code. */
int kesuctl_case_list(kesuctl_t *k);

/**
 * @brief One call of intake's HTTP API: k->load_api + path, Bearer
 *        k->load_token; ctype and idem_key (Content-Type, Idempotency-Key)
 *        may be NULL. resp must be freed with httpc_response_free.
 * @returns 0 when a response arrived (any status), -1 with errstr.
 */
int kesuctl_api(const kesuctl_t *k, const char *method, const char *path, const char *ctype,
                const char *idem_key, const char *body, size_t body_len, httpc_response_t *resp,
                char *errstr, size_t errstr_size);

/**
 * @brief Print an API error answer ({"error":{code,field,message}}) to
 *        stderr as "kesuctl WHAT: HTTP 422 code (field): message".
 * @returns the exit code for it: 3 for 401/403, 4 for 404, else 1.
 */
int kesuctl_api_error(const char *what, const httpc_response_t *resp);

/** @brief A JSON string's value, or def when v is not a string. @returns it. */
const char *kesuctl_str(const struct json_t *v, const char *def);

/**
 * @brief Draw a progress bar "label [####....] done/total pct rate/s" on a
 *        terminal (redrawn in place; final ends the line), or print one
 *        plain line per call when out is not a terminal. t0_ms is
 *        util_mono_ms() at the start. @returns nothing.
 */
void kesuctl_progress(FILE *out, const char *label, long done, long total, int64_t t0_ms,
                      int final);

/**
 * @brief Apply the migrations in dir to the database (the function behind
 *        `kesuctl migrate`, also used by tests). Progress lines go to out.
 * @returns number applied, or -1 with errstr.
 */
int kesuctl_migrate_dir(const char *conninfo, const char *dir, FILE *out, char *errstr,
                        size_t errstr_size);

#endif
