/*
 * test_util_grow: util_grow gives an array room for what is asked: the first
 * allocation at `first` (or more when more is needed), doubling after, no
 * reallocation while it fits, and the contents kept across a move.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "util.h"

static void test_grow(void **state)
{
    (void)state;
    size_t cap = 0;
    int *a = util_grow(NULL, &cap, 1, sizeof(*a), 4);
    assert_non_null(a);
    assert_int_equal(cap, 4);
    for (int i = 0; i < 4; i++)
        a[i] = i;
    int *same = util_grow(a, &cap, 4, sizeof(*a), 4);
    assert_ptr_equal(same, a); /* fits: nothing moves */
    assert_int_equal(cap, 4);
    a = util_grow(a, &cap, 5, sizeof(*a), 4);
    assert_non_null(a);
    assert_int_equal(cap, 8);
    a = util_grow(a, &cap, 40, sizeof(*a), 4);
    assert_non_null(a);
    assert_int_equal(cap, 64);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], i);
    free(a);

    cap = 0; /* more than first at once */
    a = util_grow(NULL, &cap, 100, sizeof(*a), 16);
    assert_non_null(a);
    assert_int_equal(cap, 128);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
