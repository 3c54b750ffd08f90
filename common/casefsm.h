/*
 * casefsm: the case state machine, as one transition table.
 *
 * Every service checks a status change here before it writes, and
 * `kesuctl migrate` copies the same table into case_transitions where a
 * trigger makes PostgreSQL refuse anything else.
 */
#ifndef KESU_CASEFSM_H
#define KESU_CASEFSM_H

#include <stddef.h>

typedef enum {
    CASE_RECEIVED = 0,
    CASE_CLASSIFIED,
    CASE_ASSIGNED,
    CASE_ACCEPTED,
    CASE_IN_PROGRESS,
    CASE_RESOLVED,
    CASE_REPLIED,
    CASE_CLOSED,
    CASE_RETURNED,
    CASE_REOPENED,
    CASE_MERGED,
    CASE_REJECTED,
    CASE_WITHDRAWN,
    CASE__COUNT
} case_status_t;

typedef struct casefsm_transition {
    case_status_t from; /**< status before */
    case_status_t to;   /**< status after */
} casefsm_transition_t;

/** @brief The whole table; *n receives its length. */
const casefsm_transition_t *casefsm_table(size_t *n);

/** @brief Status name as stored in PostgreSQL ("in_progress"). */
const char *casefsm_name(case_status_t s);

/** @brief Parse a status name. @returns the status or -1. */
int casefsm_parse(const char *name);

/** @brief 1 if from -> to is allowed. */
int casefsm_allowed(case_status_t from, case_status_t to);

/** @brief 1 if names are known and the transition allowed. */
int casefsm_allowed_names(const char *from, const char *to);

/** @brief 1 for statuses from which nothing moves on (closed, merged, rejected, withdrawn). */
int casefsm_terminal(case_status_t s);

#endif
