/*
 * alert: emergency and sensitive-case detection from a rules file
 * (deploy/config/classifier/alerts.json).
 *
 * Each signal is a flag (public_safety, self_harm, media, mass_incident,
 * corruption) or an urgency level (emergency, urgent) with Chinese and
 * English terms, weights, ordered two-term patterns ("闻到" then "煤气"
 * within N characters), near-misses (phrases that contain a term but mean
 * something else: 消防演练, gas station) and a min_score. Negation cues
 * (没有, 不是, no, not, ...) shortly before a term in the same clause cancel
 * it: "没有人受伤" is no injury, "no smell of gas" no gas leak. Everything is
 * matched in one Aho–Corasick pass (acmatch.h); a signal's score is the sum
 * of the weights of its distinct terms and patterns that survive.
 */
#ifndef KESU_ALERT_H
#define KESU_ALERT_H

#include <stddef.h>

#define ALERT_MAX_SIGNALS 16

typedef struct alert_rules alert_rules_t;

/** What the rules found in one message. */
typedef struct alert_result {
    const char *flags[ALERT_MAX_SIGNALS]; /**< flag codes set, in file order (point into rules) */
    size_t nflags;                        /**< entries of flags */
    int severity;                         /**< 0 low, 1 normal, 2 urgent, 3 emergency; -1: none */
    int scores[ALERT_MAX_SIGNALS];        /**< score of each signal, file order */
} alert_result_t;

/** @brief Load and check the rules. @returns them or NULL with errstr (file and JSON path). */
alert_rules_t *alert_rules_load(const char *path, char *errstr, size_t errstr_size);

/** @brief Free (NULL is fine). */
void alert_rules_free(alert_rules_t *r);

/** @brief Number of terms, patterns and cues loaded (for the log). */
size_t alert_rules_terms(const alert_rules_t *r);

/**
 * @brief Scan title and body (either may be NULL). Allocates nothing.
 * @returns 0.
 */
int alert_scan(const alert_rules_t *r, const char *title, const char *body, alert_result_t *out);

/** @brief Severity of an urgency name (low 0 .. emergency 3), -1 if unknown. */
int alert_severity(const char *urgency);

/** @brief Urgency name of a severity 0..3. */
const char *alert_urgency_name(int severity);

#endif
