/*
 * acmatch: Aho–Corasick multi-pattern matching, one pass over the text.
 *
 * Every rule term of the classifier (keywords of request types, categories,
 * urgency, domains; emergency and sensitive terms, negations, near-misses)
 * goes into one automaton, built once when the rules are loaded, so the
 * live path reads each byte of a message once whatever the number of terms.
 * Matching is on bytes (UTF-8 is self-synchronising, so a Chinese term
 * never matches half a character) with ASCII letters folded to lower case;
 * the automaton is a full transition table over the bytes that occur in the
 * patterns (all other bytes lead back to the root), so a step is one load.
 * An ASCII pattern may require a word boundary before and/or after it.
 */
#ifndef KESU_ACMATCH_H
#define KESU_ACMATCH_H

#include <stddef.h>
#include <stdint.h>

#define ACMATCH_WORD_START 1 /**< no letter or digit right before the match */
#define ACMATCH_WORD_END   2 /**< no letter or digit right after the match */

typedef struct acmatch acmatch_t;

/** Called for each match: pattern id, byte offsets [start, end). Return non-zero to stop. */
typedef int (*acmatch_fn)(void *arg, uint32_t id, size_t start, size_t end);

/** @brief An empty automaton builder. @returns it or NULL (out of memory). */
acmatch_t *acmatch_new(void);

/**
 * @brief Add a pattern (copied; ASCII letters folded) with its id and flags.
 *        Must be called before acmatch_build. @returns 0 or -1 (empty, out of memory).
 */
int acmatch_add(acmatch_t *ac, const char *pattern, uint32_t id, int flags);

/** @brief Compile the automaton; no more patterns afterwards. @returns 0 or -1. */
int acmatch_build(acmatch_t *ac);

/**
 * @brief Report every match in text (len bytes) in order of its end offset.
 * @returns the number of matches reported.
 */
size_t acmatch_scan(const acmatch_t *ac, const char *text, size_t len, acmatch_fn fn, void *arg);

/** @brief Number of states (for the log). */
size_t acmatch_states(const acmatch_t *ac);

/** @brief Free (NULL is fine). */
void acmatch_free(acmatch_t *ac);

#endif
