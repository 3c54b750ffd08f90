/*
 * log: one JSON line per event on stderr.
 *
 * {"ts":"2026-12-01T08:00:00.123Z","level":"info","service":"intake",
 *  "src":"relay.c:42","fn":"relay_run","msg":"...", "case_id":"...", ...}
 *
 * Key fields (case id, event id, topic/partition/offset) come from a
 * per-thread context that the consumer loop sets around each message, so a
 * handler's log lines carry them without passing them around. Never log
 * PII (phone, name, ID number, address).
 */
#ifndef KESU_LOG_H
#define KESU_LOG_H

#include <stdint.h>

typedef enum {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
} log_level_t;

/** @brief Set the service name and threshold for the process. */
void log_init(const char *service, log_level_t level);

/** @brief The service name given to log_init ("kesu" before). */
const char *log_service_name(void);

/** @brief Parse "error|warn|info|debug". @returns level, or -1 if unknown. */
int log_level_parse(const char *s);

/** @brief Per-thread context fields; NULL / -1 clears. */
void log_ctx_set(const char *case_id, const char *event_id, const char *topic, int32_t partition,
                 int64_t offset);
void log_ctx_clear(void);

/** @brief Write one line. Use the LOG_* macros instead. */
void log_write(log_level_t level, const char *file, int line, const char *func, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

extern log_level_t log_threshold;

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_threshold)                                                                \
            log_write((lvl), __FILE__, __LINE__, __func__, __VA_ARGS__);                           \
    } while (0)
#define LOG_ERROR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_INFO(...)  LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
