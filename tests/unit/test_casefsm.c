/* Unit tests: the case state machine table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "casefsm.h"

static const struct {
    const char *from, *to;
    int allowed;
} cases[] = {
    {"received", "classified", 1},   {"classified", "assigned", 1},
    {"assigned", "accepted", 1},     {"accepted", "in_progress", 1},
    {"accepted", "resolved", 1},     {"in_progress", "resolved", 1},
    {"resolved", "replied", 1},      {"replied", "closed", 1},
    {"assigned", "returned", 1},     {"returned", "assigned", 1},
    {"replied", "reopened", 1},      {"reopened", "assigned", 1},
    {"closed", "reopened", 1},       {"received", "rejected", 1},
    {"in_progress", "withdrawn", 1}, {"classified", "merged", 1},
    /* refused */
    {"received", "assigned", 0},     {"received", "closed", 0},
    {"classified", "accepted", 0},   {"assigned", "resolved", 0},
    {"resolved", "closed", 0},       {"closed", "received", 0},
    {"rejected", "received", 0},     {"withdrawn", "assigned", 0},
    {"merged", "assigned", 0},       {"replied", "resolved", 0},
    {"received", "received", 0},     {"closed", "closed", 0},
    {"nonsense", "closed", 0},       {"received", "nonsense", 0},
    {"resolved", "withdrawn", 0},    {"returned", "accepted", 0},
};

static void test_transitions(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = casefsm_allowed_names(cases[i].from, cases[i].to);
        if (got != cases[i].allowed)
            fail_msg("%s -> %s: expected %d, got %d", cases[i].from, cases[i].to,
                     cases[i].allowed, got);
    }
}

static void test_names_round_trip(void **state)
{
    for (int s = 0; s < CASE__COUNT; s++) {
        const char *n = casefsm_name((case_status_t)s);
        assert_string_not_equal(n, "unknown");
        assert_int_equal(casefsm_parse(n), s);
    }
    assert_int_equal(casefsm_parse("Received"), -1);
    assert_int_equal(casefsm_parse(NULL), -1);
    assert_string_equal(casefsm_name(CASE__COUNT), "unknown");
}

static void test_table_well_formed(void **state)
{
    size_t n;
    const casefsm_transition_t *t = casefsm_table(&n);
    assert_true(n > 20);
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i].from != t[i].to);
        assert_false(casefsm_terminal(t[i].from)); /* nothing leaves a terminal status */
        for (size_t j = i + 1; j < n; j++)
            assert_false(t[i].from == t[j].from && t[i].to == t[j].to); /* no duplicates */
    }
}

static void test_every_status_reachable(void **state)
{
    /* every status except received must be the target of some transition,
     * and every non-terminal status must lead somewhere */
    size_t n;
    const casefsm_transition_t *t = casefsm_table(&n);
    for (int s = 0; s < CASE__COUNT; s++) {
        int in = 0, out = 0;
        for (size_t i = 0; i < n; i++) {
            in |= t[i].to == (case_status_t)s;
            out |= t[i].from == (case_status_t)s;
        }
        if (s != CASE_RECEIVED)
            assert_true(in);
        if (!casefsm_terminal((case_status_t)s))
            assert_true(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_table_well_formed),
        cmocka_unit_test(test_every_status_reachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
