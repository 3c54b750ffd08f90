/*
 * casefsm: the one transition table. DESIGN.md section 4:
 * received -> classified -> assigned -> accepted -> in_progress -> resolved
 * -> replied -> closed, with returned (back to dispatch), reopened, merged,
 * rejected and withdrawn.
 */
#include "casefsm.h"

#include <string.h>

static const char *const casefsm_names[CASE__COUNT] = {
    [CASE_RECEIVED] = "received",     [CASE_CLASSIFIED] = "classified",
    [CASE_ASSIGNED] = "assigned",     [CASE_ACCEPTED] = "accepted",
    [CASE_IN_PROGRESS] = "in_progress", [CASE_RESOLVED] = "resolved",
    [CASE_REPLIED] = "replied",       [CASE_CLOSED] = "closed",
    [CASE_RETURNED] = "returned",     [CASE_REOPENED] = "reopened",
    [CASE_MERGED] = "merged",         [CASE_REJECTED] = "rejected",
    [CASE_WITHDRAWN] = "withdrawn",
};

static const casefsm_transition_t casefsm_transitions[] = {
    /* the main line */
    {CASE_RECEIVED, CASE_CLASSIFIED},
    {CASE_CLASSIFIED, CASE_ASSIGNED},
    {CASE_ASSIGNED, CASE_ACCEPTED},
    {CASE_ACCEPTED, CASE_IN_PROGRESS},
    {CASE_ACCEPTED, CASE_RESOLVED},
    {CASE_IN_PROGRESS, CASE_RESOLVED},
    {CASE_RESOLVED, CASE_REPLIED},
    {CASE_REPLIED, CASE_CLOSED},
    /* 退单: the department sends it back, the dispatcher re-routes (改派) */
    {CASE_ASSIGNED, CASE_RETURNED},
    {CASE_ACCEPTED, CASE_RETURNED},
    {CASE_IN_PROGRESS, CASE_RETURNED},
    {CASE_RETURNED, CASE_ASSIGNED},
    /* 重办: unsatisfied feedback reopens, the dispatcher sends it back */
    {CASE_REPLIED, CASE_REOPENED},
    {CASE_CLOSED, CASE_REOPENED},
    {CASE_REOPENED, CASE_ASSIGNED},
    /* 并单 into another open case */
    {CASE_RECEIVED, CASE_MERGED},
    {CASE_CLASSIFIED, CASE_MERGED},
    {CASE_ASSIGNED, CASE_MERGED},
    {CASE_ACCEPTED, CASE_MERGED},
    {CASE_IN_PROGRESS, CASE_MERGED},
    {CASE_RETURNED, CASE_MERGED},
    /* invalid / spam */
    {CASE_RECEIVED, CASE_REJECTED},
    {CASE_CLASSIFIED, CASE_REJECTED},
    {CASE_ASSIGNED, CASE_REJECTED},
    {CASE_RETURNED, CASE_REJECTED},
    /* the complainant withdraws before the case is resolved */
    {CASE_RECEIVED, CASE_WITHDRAWN},
    {CASE_CLASSIFIED, CASE_WITHDRAWN},
    {CASE_ASSIGNED, CASE_WITHDRAWN},
    {CASE_ACCEPTED, CASE_WITHDRAWN},
    {CASE_IN_PROGRESS, CASE_WITHDRAWN},
    {CASE_RETURNED, CASE_WITHDRAWN},
    {CASE_REOPENED, CASE_WITHDRAWN},
};

const casefsm_transition_t *casefsm_table(size_t *n)
{
    *n = sizeof(casefsm_transitions) / sizeof(casefsm_transitions[0]);
    return casefsm_transitions;
}

const char *casefsm_name(case_status_t s)
{
    if ((int)s < 0 || s >= CASE__COUNT)
        return "unknown";
    return casefsm_names[s];
}

int casefsm_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < CASE__COUNT; i++)
        if (strcmp(casefsm_names[i], name) == 0)
            return i;
    return -1;
}

int casefsm_allowed(case_status_t from, case_status_t to)
{
    size_t n;
    const casefsm_transition_t *t = casefsm_table(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].from == from && t[i].to == to)
            return 1;
    return 0;
}

int casefsm_allowed_names(const char *from, const char *to)
{
    int f = casefsm_parse(from), t = casefsm_parse(to);
    if (f < 0 || t < 0)
        return 0;
    return casefsm_allowed((case_status_t)f, (case_status_t)t);
}

int casefsm_terminal(case_status_t s)
{
    return s == CASE_MERGED || s == CASE_REJECTED || s == CASE_WITHDRAWN;
}
