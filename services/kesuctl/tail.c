/*
 * kesuctl events tail: read a topic and print each Envelope as one JSON
 * line (with partition and offset), for operators and tests. Uses a
 * throw-away consumer group and never commits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kesuctl.h"
#include "proto.h"
#include "util.h"

static volatile sig_atomic_t tail_run = 1;

static void tail_stop(int sig)
{
    tail_run = 0;
}

int kesuctl_events_tail(kesuctl_t *k)
{
    char errstr[512], group[64], uuid[37];
    rd_kafka_conf_t *conf = kafka_conf_new(&k->cfg, errstr, sizeof(errstr));
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *subs;
    int64_t last = util_mono_ms();
    int count = 0;

    if (!conf) {
        fprintf(stderr, "kesuctl events tail: %s\n", errstr);
        return 1;
    }
    util_uuid(uuid);
    snprintf(group, sizeof(group), "kesuctl-tail-%.8s", uuid + 28);
    if (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", k->from_beginning ? "earliest" : "latest",
                          errstr, sizeof(errstr))) {
        fprintf(stderr, "kesuctl events tail: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kesuctl events tail: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    subs = rd_kafka_topic_partition_list_new(1);
    /* a Kesu topic name gets the KESU_TOPICS_PREFIX like the services' */
    rd_kafka_topic_partition_list_add(subs, kafka_topic(k->topic), RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    signal(SIGINT, tail_stop);
    signal(SIGTERM, tail_stop);

    while (tail_run && (k->max == 0 || count < k->max)) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);
        if (!rkm) {
            if (k->timeout_ms > 0 && util_mono_ms() - last > k->timeout_ms)
                break;
            continue;
        }
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "kesuctl events tail: %s\n", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        last = util_mono_ms();
        Kesu__V1__Envelope *env = proto_env_unpack(rkm->payload, rkm->len, errstr, sizeof(errstr));
        json_t *line = env ? proto_env_to_json(env)
                           : json_pack("{s:s}", "undecodable", errstr);
        json_object_set_new(line, "_partition", json_integer(rkm->partition));
        json_object_set_new(line, "_offset", json_integer(rkm->offset));
        char *s = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(line);
        if (env)
            kesu__v1__envelope__free_unpacked(env, NULL);
        rd_kafka_message_destroy(rkm);
        count++;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
