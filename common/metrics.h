/*
 * metrics: the process-wide Prometheus registry behind every /metrics.
 *
 * Counters, gauges and histograms are registered by name and a label set
 * and live until the process exits (or metrics_reset_for_tests). Looking
 * one up takes a mutex, so a hot path looks its series up once and keeps
 * the pointer; updating a series is a lock-free C11 atomic operation and
 * safe from any thread. metrics_render writes the text exposition format
 * 0.0.4: families in registration order, series in registration order,
 * "# HELP" and "# TYPE" once per family.
 *
 * Labels are passed pre-formatted, exactly as they appear between the
 * braces: `topic="kesu.intake.v1",partition="3"` (NULL or "" for none).
 * The caller escapes label values ('\\', '"', newline) and keeps label
 * order stable, since the string is the series' identity.
 */
#ifndef KESU_METRICS_H
#define KESU_METRICS_H

#include <stdint.h>

typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_gauge metrics_gauge_t;
typedef struct metrics_histogram metrics_histogram_t;

/** Number of finite histogram buckets (le = 0.001 ... 10 seconds, then +Inf). */
#define METRICS_HISTOGRAM_BUCKETS 13

/**
 * @brief Find or create the counter series name{labels}. help is used the
 * first time the name is seen.
 * @returns the series (owned by the registry, valid until
 * metrics_reset_for_tests), or NULL (logged) if the name is not a valid
 * metric name or is already registered with another type. Every update
 * function accepts NULL and does nothing.
 */
metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels);

/** @brief Add v to a counter (atomic). @returns nothing. */
void metrics_counter_add(metrics_counter_t *c, uint64_t v);

/** @brief Find or create the gauge series name{labels}; see metrics_counter. @returns the series or NULL. */
metrics_gauge_t *metrics_gauge(const char *name, const char *help, const char *labels);

/** @brief Set a gauge to v (atomic). @returns nothing. */
void metrics_gauge_set(metrics_gauge_t *g, double v);

/** @brief Add v (may be negative) to a gauge (atomic compare-and-swap). @returns nothing. */
void metrics_gauge_add(metrics_gauge_t *g, double v);

/**
 * @brief Find or create the histogram series name{labels} with the fixed
 * latency buckets 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10
 * seconds; see metrics_counter. @returns the series or NULL.
 */
metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels);

/** @brief Record one observation in seconds (atomic per field). @returns nothing. */
void metrics_histogram_observe(metrics_histogram_t *h, double seconds);

/**
 * @brief Render every registered series in Prometheus text format 0.0.4.
 * @returns a malloc'd NUL-terminated string the caller frees ("" when the
 * registry is empty).
 */
char *metrics_render(void);

/**
 * @brief Drop every family and series. Pointers returned earlier become
 * invalid, so only tests call this, with no other thread using metrics.
 * @returns nothing.
 */
void metrics_reset_for_tests(void);

#endif
