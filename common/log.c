/*
 * log: JSON-lines logging to stderr, one write(2) per line so lines from
 * several threads never interleave.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

log_level_t log_threshold = LOG_LVL_INFO;
static char log_service[64] = "kesu";

static __thread struct {
    char case_id[64];
    char event_id[64];
    char topic[128];
    int32_t partition;
    int64_t offset;
    int set;
} log_ctx;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

const char *log_service_name(void)
{
    return log_service;
}

void log_init(const char *service, log_level_t level)
{
    snprintf(log_service, sizeof(log_service), "%s", service ? service : "kesu");
    log_threshold = level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, log_level_names[i]) == 0)
            return i;
    return -1;
}

void log_ctx_set(const char *case_id, const char *event_id, const char *topic, int32_t partition,
                 int64_t offset)
{
    snprintf(log_ctx.case_id, sizeof(log_ctx.case_id), "%s", case_id ? case_id : "");
    snprintf(log_ctx.event_id, sizeof(log_ctx.event_id), "%s", event_id ? event_id : "");
    snprintf(log_ctx.topic, sizeof(log_ctx.topic), "%s", topic ? topic : "");
    log_ctx.partition = partition;
    log_ctx.offset = offset;
    log_ctx.set = 1;
}

void log_ctx_clear(void)
{
    log_ctx.set = 0;
}

void log_write(log_level_t level, const char *file, int line, const char *func, const char *fmt,
               ...)
{
    char msg[2048], ts[96], src[160];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    const char *base = strrchr(file, '/');

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));
    snprintf(src, sizeof(src), "%s:%d", base ? base + 1 : file, line);

    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ts", ts, "level",
                             log_level_names[level], "service", log_service, "src", src, "fn",
                             func, "msg", msg);
    if (!root)
        return;
    if (log_ctx.set) {
        if (log_ctx.case_id[0])
            json_object_set_new(root, "case_id", json_string(log_ctx.case_id));
        if (log_ctx.event_id[0])
            json_object_set_new(root, "event_id", json_string(log_ctx.event_id));
        if (log_ctx.topic[0]) {
            json_object_set_new(root, "topic", json_string(log_ctx.topic));
            json_object_set_new(root, "partition", json_integer(log_ctx.partition));
            json_object_set_new(root, "offset", json_integer(log_ctx.offset));
        }
    }
    char *line_s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!line_s)
        return;
    size_t n = strlen(line_s);
    char *buf = malloc(n + 2);
    if (buf) {
        memcpy(buf, line_s, n);
        buf[n] = '\n';
        ssize_t w = write(STDERR_FILENO, buf, n + 1);
        (void)w;
        free(buf);
    }
    free(line_s);
}
