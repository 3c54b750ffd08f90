/*
 * kesuctl: the operator's command line.
 *
 *   kesuctl migrate                       apply deploy/migrations, sync the transition table
 *   kesuctl topics create [--partitions N]
 *   kesuctl token create --role ROLE [--department D] [--label L]
 *   kesuctl token list | token revoke ID
 *   kesuctl events tail [--topic T] [--from-beginning] [--max N] [--timeout_ms MS]
 *   kesuctl catalogue load|check [FILE]
 *   kesuctl sla recompute [--dry-run]
 *   kesuctl case sla CASE_NO [--json]
 *   kesuctl template render --event E --audience A [--lang L] [--case NO]
 *   kesuctl stats --from D [--to D] [--group_by ...] [--format table|csv|json]
 *   kesuctl complainant erase (--case NO | --phone N) --reason TEXT
 *   kesuctl dlq list [--since T] [--json] | dlq replay (--id P:O,... | --all) [--dry-run]
 *   kesuctl verify [--since T] [--wait S] [--json]
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
    "                          [--districts N: spread them over N district codes]\n"
    "  events tail             print envelopes of a topic as JSON lines\n"
    "                          [--topic kesu.public.v1] [--from-beginning] [--max N]\n"
    "                          [--timeout_ms MS: stop when idle that long]\n"
    "  template render         print a notice as the notifier renders it: --event TYPE\n"
    "                          --audience complainant|handler|department_head|supervisor\n"
    "                          [--lang zh-CN|en] [--case CASE_NO: that case's values]\n"
    "  stats                   statistics table: --from YYYY-MM-DD [--to YYYY-MM-DD]\n"
    "                          [--group_by day,department,category,channel,district]\n"
    "                          [--format table|csv|json]\n"
    "  complainant erase       erase a complainant's contact data (audited): --case NO\n"
    "                          or --phone NUMBER (needs --pii.key), --reason TEXT\n"
    "                          [--actor OPERATOR_ID]\n"
    "  catalogue check [FILE]  check a dispatch catalogue (default deploy/config/catalogue.json)\n"
    "  catalogue load [FILE]   check it and store it as a new version; dispatchers switch to\n"
    "                          it on their next tick [--domains deploy/config/domains.json]\n"
    "  sla recompute           recompute open SLA deadlines after a policy or calendar change\n"
    "                          [--dry-run] [--policy sla.json] [--calendar calendar/cn.json]\n"
    "  case sla CASE_NO        a case's SLA timeline in working time [--json]\n"
    "  submit                  submit a complaint through intake: --title T --body B\n"
    "                          [--channel web] [--language L] [--external_ref R]\n"
    "                          [--district CODE] [--address A] [--idempotency_key K]\n"
    "                          or a bulk NDJSON file: --file x.ndjson [--chunk 500]\n"
    "                          (progress bar; refused lines named by line number)\n"
    "  case show CASE_NO       a case and its history as a timeline (China time) [--json]\n"
    "  case list               cases, newest first: [--status a,b] [--department D]\n"
    "                          [--category C] [--channel C] [--district D] [--overdue true]\n"
    "                          [--created_from D] [--created_to D] [--limit 50] [--json]\n"
    "                          (submit and case: --api URL --token T, or KESU_API/KESU_TOKEN)\n"
    "  dlq list                the messages consumers gave up on (kesu.dlq.v1), with service,\n"
    "                          source topic/partition/offset and reason [--since 2h] [--json]\n"
    "  dlq replay              republish DLQ entries to their source topic (idempotent: the\n"
    "                          inboxes apply an event once): --id P:O[,P:O...] | --all\n"
    "                          [--since 2h] [--dry-run]\n"
    "  verify                  reconcile cases, history, outbox, inbox, notifications, the\n"
    "                          public feed and the console's kept counts; every discrepancy\n"
    "                          printed, exit 1 if any\n"
    "                          [--since T: cases created from then on] [--wait S] [--json]\n"
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
        {"templates", CONFIG_STR, &k.templates, "deploy/config/notifier.json",
         "the notifier's template index (template render; verify: which events it acts on)", 0},
        {"event", CONFIG_STR, &k.event, NULL, "template render: event type", 0},
        {"audience", CONFIG_STR, &k.audience, NULL, "template render: audience", 0},
        {"lang", CONFIG_STR, &k.lang, NULL, "template render: language (default zh-CN)", 0},
        {"case", CONFIG_STR, &k.case_no, NULL, "template render / complainant erase: case number",
         0},
        {"from", CONFIG_STR, &k.from, NULL, "stats: first day YYYY-MM-DD", 0},
        {"to", CONFIG_STR, &k.to, NULL, "stats: last day (default: --from)", 0},
        {"group_by", CONFIG_STR, &k.group_by, "day", "stats: dimensions, comma-separated", 0},
        {"format", CONFIG_STR, &k.format, "table", "stats: table, csv or json", 0},
        {"phone", CONFIG_STR, &k.phone, NULL, "complainant erase: phone number", 1},
        {"reason", CONFIG_STR, &k.reason, NULL, "complainant erase: why (recorded)", 0},
        {"actor", CONFIG_STR, &k.actor, "kesuctl", "complainant erase: operator id (recorded)", 0},
        {"pii.key", CONFIG_STR, &k.pii_key, NULL, "PII key: 64 hex or file:PATH", 1},
        {"api", CONFIG_STR, &k.load_api, "http://127.0.0.1:8080",
         "load, submit, case show|list: intake base URL", 0},
        {"token", CONFIG_STR, &k.load_token, NULL,
         "load, submit, case show|list: a staff API token", 1},
        {"data", CONFIG_STR, &k.load_data, NULL,
         "load: JSONL files with title/body, comma-separated (default: the shared data)", 0},
        {"data_dir", CONFIG_STR, &k.data_dir, KESU_SOURCE_DIR "/../shared/data",
         "the shared data folder", 0},
        {"channels", CONFIG_STR, &k.load_channels, "web,app,phone,letter,walk_in",
         "load: channels to cycle through", 0},
        {"districts", CONFIG_INT, &k.load_districts, "0",
         "load: spread the messages over this many district codes (110101 on; 0: none, as in "
         "the data), so the duplicate and hotspot search runs",
         0},
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
        {"domains", CONFIG_STR, &k.domains, "deploy/config/domains.json",
         "catalogue load|check: domain codes rules may use", 0},
        {"policy", CONFIG_STR, &k.policy, "deploy/config/sla.json", "sla recompute: SLA policy",
         0},
        {"calendar", CONFIG_STR, &k.calendar, "deploy/config/calendar/cn.json",
         "sla recompute / case sla: working calendar", 0},
        {"dry-run", CONFIG_BOOL, &k.dry_run, "false", "sla recompute: print, change nothing", 0},
        {"json", CONFIG_BOOL, &k.json, "false",
         "case sla|show|list / dlq list / verify / submit: print JSON", 0},
        {"title", CONFIG_STR, &k.title, NULL, "submit: the complaint's title", 0},
        {"body", CONFIG_STR, &k.body, NULL, "submit: the complaint's text", 0},
        {"channel", CONFIG_STR, &k.channel, NULL,
         "submit: channel (default web); case list: filter", 0},
        {"language", CONFIG_STR, &k.language, NULL, "submit: language tag (default zh-CN)", 0},
        {"external_ref", CONFIG_STR, &k.external_ref, NULL, "submit: the channel's own reference",
         0},
        {"district", CONFIG_STR, &k.district, NULL, "submit: district code; case list: filter", 0},
        {"address", CONFIG_STR, &k.address, NULL, "submit: address", 0},
        {"file", CONFIG_STR, &k.file, NULL,
         "submit: NDJSON file, one complaint per line (- = stdin)", 0},
        {"idempotency_key", CONFIG_STR, &k.idem_key, NULL,
         "submit: Idempotency-Key (a file's chunk n gets KEY.n)", 0},
        {"chunk", CONFIG_INT, &k.chunk, "500", "submit --file: lines per batch request", 0},
        {"status", CONFIG_STR, &k.status, NULL, "case list: statuses, comma-separated", 0},
        {"category", CONFIG_STR, &k.category, NULL, "case list: category", 0},
        {"overdue", CONFIG_STR, &k.overdue, NULL, "case list: true or false", 0},
        {"created_from", CONFIG_STR, &k.created_from, NULL, "case list: YYYY-MM-DD or RFC 3339",
         0},
        {"created_to", CONFIG_STR, &k.created_to, NULL, "case list: YYYY-MM-DD or RFC 3339", 0},
        {"limit", CONFIG_INT, &k.limit, "50", "case list: most cases printed", 0},
        {"since", CONFIG_STR, &k.since, NULL,
         "dlq / verify: from then on (30m, 2h, Unix ms, RFC 3339 UTC)", 0},
        {"id", CONFIG_STR, &k.dlq_ids, NULL, "dlq replay: DLQ entries P:O, comma-separated", 0},
        {"all", CONFIG_BOOL, &k.all, "false", "dlq replay: every entry (since --since)", 0},
        {"wait", CONFIG_INT, &k.wait_s, "0", "verify: re-check until clean for up to S seconds",
         0},
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
    } else if (strcmp(cmd, "template") == 0 && strcmp(sub, "render") == 0) {
        rc = kesuctl_template_render(&k);
    } else if (strcmp(cmd, "stats") == 0) {
        rc = kesuctl_stats(&k);
    } else if (strcmp(cmd, "complainant") == 0 && strcmp(sub, "erase") == 0) {
        rc = kesuctl_complainant_erase(&k);
    } else if (strcmp(cmd, "catalogue") == 0 &&
               (strcmp(sub, "load") == 0 || strcmp(sub, "check") == 0)) {
        rc = kesuctl_catalogue(&k, strcmp(sub, "load") == 0);
    } else if (strcmp(cmd, "sla") == 0 && strcmp(sub, "recompute") == 0) {
        rc = kesuctl_sla_recompute(&k);
    } else if (strcmp(cmd, "dlq") == 0 && strcmp(sub, "list") == 0) {
        rc = kesuctl_dlq_list(&k);
    } else if (strcmp(cmd, "dlq") == 0 && strcmp(sub, "replay") == 0) {
        rc = kesuctl_dlq_replay(&k);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = kesuctl_verify(&k);
    } else if (strcmp(cmd, "case") == 0 && strcmp(sub, "sla") == 0) {
        rc = kesuctl_case_sla(&k);
    } else if (strcmp(cmd, "case") == 0 && strcmp(sub, "show") == 0) {
        rc = kesuctl_case_show(&k);
    } else if (strcmp(cmd, "case") == 0 && strcmp(sub, "list") == 0) {
        rc = kesuctl_case_list(&k);
    } else if (strcmp(cmd, "submit") == 0) {
        rc = kesuctl_submit(&k);
    } else {
        fprintf(stderr, "kesuctl: unknown command \"%s%s%s\"; see kesuctl --help\n", cmd,
                *sub ? " " : "", sub);
        rc = 2;
    }
    config_free(&k.cfg);
    return rc;
}
