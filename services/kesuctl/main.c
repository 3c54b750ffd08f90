/*
 * kesuctl: the operator's command line.
 *
 *   kesuctl migrate                       apply deploy/migrations, sync the transition table
 *   kesuctl topics create [--partitions N]
 *   kesuctl token create --role ROLE [--department D] [--label L]
 *   kesuctl token list | token revoke ID
 *   kesuctl events tail [--topic T] [--from-beginning] [--max N] [--timeout_ms MS]
 */
#include <stdio.h>
#include <string.h>

#include "kesuctl.h"
#include "log.h"

static const char kesuctl_usage[] =
    "usage: kesuctl COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  migrate                 apply pending deploy/migrations/*.sql (each once, in order)\n"
    "                          and sync case_transitions with the state machine\n"
    "  topics create           create every kesu.* topic (idempotent; names get the\n"
    "                          KESU_TOPICS_PREFIX when set, as in the services)\n"
    "  topics delete           delete a test run's topics (only with KESU_TOPICS_PREFIX)\n"
    "  token create            print a new API token: --role agent|handler|supervisor|auditor|\n"
    "                          admin|integrator [--department CODE (handlers)] [--label TEXT]\n"
    "  token list              list tokens (never their secrets)\n"
    "  token revoke ID         revoke a token\n"
    "  load                    the load generator: submit real messages to intake and\n"
    "                          follow them on kesu.public.v1; one JSON line of figures\n"
    "                          --token T [--api URL] [--rate N/s|0] [--count N | --duration S]\n"
    "                          [--warmup S] [--connections C] [--data a.jsonl,b.jsonl]\n"
    "  events tail             print envelopes of a topic as JSON lines\n"
    "                          [--topic kesu.public.v1] [--from-beginning] [--max N]\n"
    "                          [--timeout_ms MS: stop when idle that long]\n"
    "\n"
    "Examples:\n"
    "  kesuctl migrate --pg 'host=127.0.0.1 port=55432 dbname=kesu user=postgres'\n"
    "  TOKEN=$(kesuctl token create --role agent --label hotline-desk-1)\n"
    "  kesuctl events tail --topic kesu.public.v1 --from-beginning --timeout_ms 2000";

int main(int argc, char **argv)
{
    kesuctl_t k;
    char errstr[512];
    memset(&k, 0, sizeof(k));
    config_key_t keys[] = {
        {"pg", CONFIG_STR, &k.pg, "host=127.0.0.1 port=55432 dbname=kesu user=postgres",
         "PostgreSQL connection string", 1},
        {"migrations", CONFIG_STR, &k.migrations, KESU_SOURCE_DIR "/deploy/migrations",
         "folder of numbered migration files", 0},
        {"role", CONFIG_STR, &k.role, NULL, "token create: role", 0},
        {"department", CONFIG_STR, &k.department, NULL, "token create: department code", 0},
        {"label", CONFIG_STR, &k.label, NULL, "token create: free label", 0},
        {"partitions", CONFIG_INT, &k.partitions, "6", "topics create: partitions per topic", 0},
        {"replication", CONFIG_INT, &k.replication, "1", "topics create: replication factor", 0},
        {"topic", CONFIG_STR, &k.topic, "kesu.public.v1", "events tail: topic", 0},
        {"from-beginning", CONFIG_BOOL, &k.from_beginning, "false",
         "events tail: start at the oldest message", 0},
        {"max", CONFIG_INT, &k.max, "0", "events tail: stop after N messages", 0},
        {"timeout_ms", CONFIG_INT, &k.timeout_ms, "0", "events tail: stop when idle this long",
         0},
        {"api", CONFIG_STR, &k.load_api, "http://127.0.0.1:8080", "load: intake base URL", 0},
        {"token", CONFIG_STR, &k.load_token, NULL, "load: an agent token", 1},
        {"data", CONFIG_STR, &k.load_data, NULL,
         "load: JSONL files with title/body, comma-separated (default: the shared data)", 0},
        {"data_dir", CONFIG_STR, &k.data_dir, KESU_SOURCE_DIR "/../shared/data",
         "the shared data folder", 0},
        {"channels", CONFIG_STR, &k.load_channels, "web,app,phone,letter,walk_in",
         "load: channels to cycle through", 0},
        {"rate", CONFIG_INT, &k.load_rate, "0", "load: cases per second (0: as fast as possible)",
         0},
        {"count", CONFIG_INT, &k.load_count, "0", "load: submissions in all (0: by duration)", 0},
        {"connections", CONFIG_INT, &k.load_connections, "32", "load: concurrent connections",
         0},
        {"warmup", CONFIG_INT, &k.load_warmup_s, "0", "load: seconds not counted", 0},
        {"duration", CONFIG_INT, &k.load_duration_s, "10",
         "load: measured seconds after the warm-up (ignored with --count)", 0},
        {"drain", CONFIG_INT, &k.load_drain_s, "60",
         "load: seconds to wait for submitted cases to be assigned and acknowledged", 0},
        {NULL, 0, NULL, NULL, NULL, 0},
    };
    int rc;

    log_init("kesuctl", LOG_LVL_WARN);
    config_init(&k.cfg, "kesuctl", kesuctl_usage);
    config_add_table(&k.cfg, keys);
    config_set(&k.cfg, "kafka.bootstrap.servers", "127.0.0.1:59092", "default", errstr,
               sizeof(errstr));
    rc = config_load(&k.cfg, argc, argv, errstr, sizeof(errstr));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "kesuctl: %s\n", errstr);
        config_free(&k.cfg);
        return rc < 0 ? 2 : 0;
    }
    const char *cmd = k.cfg.arg_cnt > 0 ? k.cfg.args[0] : NULL;
    const char *sub = k.cfg.arg_cnt > 1 ? k.cfg.args[1] : "";
    if (!cmd) {
        fprintf(stderr, "%s\n", kesuctl_usage);
        rc = 2;
    } else if (strcmp(cmd, "migrate") == 0) {
        rc = kesuctl_migrate(&k);
    } else if (strcmp(cmd, "topics") == 0 && strcmp(sub, "create") == 0) {
        rc = kesuctl_topics_create(&k);
    } else if (strcmp(cmd, "topics") == 0 && strcmp(sub, "delete") == 0) {
        rc = kesuctl_topics_delete(&k);
    } else if (strcmp(cmd, "load") == 0) {
        if (k.load_count > 0)
            k.load_duration_s = 0;
        rc = kesuctl_load(&k);
    } else if (strcmp(cmd, "token") == 0) {
        rc = kesuctl_token(&k, 1);
    } else if (strcmp(cmd, "events") == 0 && strcmp(sub, "tail") == 0) {
        rc = kesuctl_events_tail(&k);
    } else {
        fprintf(stderr, "kesuctl: unknown command \"%s%s%s\"; see kesuctl --help\n", cmd,
                *sub ? " " : "", sub);
        rc = 2;
    }
    config_free(&k.cfg);
    return rc;
}
