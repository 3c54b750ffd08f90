/*
 * kesuctl topics create: every Kesu topic through the Admin API, idempotent
 * (an existing topic is fine; its partition count is left alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kesuctl.h"

int kesuctl_topics_create(kesuctl_t *k)
{
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf_new(&k->cfg, errstr, sizeof(errstr));
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t *nt[16];
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    int n = 0, rc = 1;

    if (!conf) {
        fprintf(stderr, "kesuctl topics: %s\n", errstr);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "kesuctl topics: %s\n", errstr);
        return 1;
    }
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++) {
        const char *const *t = (const char *const[]){kafka_topic_at(i)};
        nt[n] = rd_kafka_NewTopic_new(*t, k->partitions, k->replication, errstr, sizeof(errstr));
        if (!nt[n]) {
            fprintf(stderr, "kesuctl topics: %s: %s\n", *t, errstr);
            goto out;
        }
        n++;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        fprintf(stderr, "kesuctl topics: no answer from the broker in 30 s (is Kafka running? "
                        "scripts/infra.sh status)\n");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kesuctl topics: %s\n", rd_kafka_event_error_string(ev));
        goto out;
    }
    {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rc = 0;
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            const char *name = rd_kafka_topic_result_name(res[i]);
            if (!e)
                printf("created %s (%d partitions)\n", name, k->partitions);
            else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                printf("exists  %s\n", name);
            else {
                fprintf(stderr, "kesuctl topics: %s: %s\n", name,
                        rd_kafka_topic_result_error_string(res[i]));
                rc = 1;
            }
        }
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    for (int i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_destroy(rk);
    return rc;
}

int kesuctl_topics_delete(kesuctl_t *k)
{
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf_new(&k->cfg, errstr, sizeof(errstr));
    rd_kafka_t *rk;
    rd_kafka_DeleteTopic_t *dt[KAFKA_TOPIC_COUNT];
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    int rc = 1;

    if (!conf || !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        fprintf(stderr, "kesuctl topics delete: %s\n", errstr);
        return 1;
    }
    if (!getenv("KESU_TOPICS_PREFIX") || !*getenv("KESU_TOPICS_PREFIX")) {
        fprintf(stderr, "kesuctl topics delete: refusing to delete the unprefixed production "
                        "topics; it only deletes a test run's topics (KESU_TOPICS_PREFIX)\n");
        rd_kafka_destroy(rk);
        return 2;
    }
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        dt[i] = rd_kafka_DeleteTopic_new(kafka_topic_at(i));
    q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, KAFKA_TOPIC_COUNT, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (ev && !rd_kafka_event_error(ev)) {
        printf("deleted the topics of prefix %s\n", getenv("KESU_TOPICS_PREFIX"));
        rc = 0;
    } else {
        fprintf(stderr, "kesuctl topics delete: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer from the broker");
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        rd_kafka_DeleteTopic_destroy(dt[i]);
    rd_kafka_destroy(rk);
    return rc;
}
