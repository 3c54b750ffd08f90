/*
 * test_archive_order: the public feed's ordering decision, as a table, and
 * the whole hold-and-drain procedure the archiver builds on it, simulated in
 * memory over every arrival order of a short history (with repeats and a
 * CaseArchived that joins the history when CaseClosed is published): the
 * output is always 1, 2, ..., n exactly once, and nothing stays held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "archive.h"

typedef struct order_case {
    int64_t seq, next;
    archive_order_t want;
} order_case_t;

static void test_decide_table(void **state)
{
    (void)state;
    static const order_case_t cases[] = {
        {1, 1, ARCHIVE_ORDER_PUBLISH}, {5, 5, ARCHIVE_ORDER_PUBLISH},
        {2, 1, ARCHIVE_ORDER_HOLD},    {100, 7, ARCHIVE_ORDER_HOLD},
        {1, 2, ARCHIVE_ORDER_SKIP},    {6, 7, ARCHIVE_ORDER_SKIP},
        {0, 1, ARCHIVE_ORDER_INVALID}, {-3, 1, ARCHIVE_ORDER_INVALID},
        {0, 0, ARCHIVE_ORDER_INVALID}, {INT64_MAX, INT64_MAX, ARCHIVE_ORDER_PUBLISH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(archive_order_decide(cases[i].seq, cases[i].next), cases[i].want);
}

/* ------------------------------------------------ in-memory simulation */

#define MAXSEQ 16

typedef struct feed {
    int64_t next;         /* public_feed_state.next_seq */
    int held[MAXSEQ + 2]; /* public_feed_pending: seq -> 1 */
    int64_t out[64];      /* what was published, in order */
    int nout;
    int64_t history_len; /* case_events length (CaseArchived appends) */
    int64_t closed_seq;  /* the seq that is CaseClosed (0: none) */
} feed_t;

static void sim_publish(feed_t *f, int64_t seq)
{
    f->out[f->nout++] = seq;
    if (seq == f->closed_seq) {
        /* archive: CaseArchived is appended to the history and held */
        int64_t a = ++f->history_len;
        f->held[a] = 1;
    }
}

/* the same steps as archive_feed: decide, then publish + drain, or hold */
static void sim_feed(feed_t *f, int64_t seq)
{
    switch (archive_order_decide(seq, f->next)) {
    case ARCHIVE_ORDER_SKIP:
    case ARCHIVE_ORDER_INVALID:
        return;
    case ARCHIVE_ORDER_HOLD:
        f->held[seq] = 1;
        return;
    case ARCHIVE_ORDER_PUBLISH:
        sim_publish(f, seq);
        f->next++;
        while (f->next <= MAXSEQ && f->held[f->next]) {
            f->held[f->next] = 0;
            sim_publish(f, f->next);
            f->next++;
        }
        return;
    }
}

static int next_perm(int64_t *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1])
        i--;
    if (i < 0)
        return 0;
    int j = n - 1;
    while (a[j] <= a[i])
        j--;
    int64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return 1;
}

static void check_feed(const feed_t *f, int64_t n, const int64_t *arrival, int na)
{
    char order[128] = "";
    for (int i = 0; i < na; i++)
        snprintf(order + strlen(order), sizeof(order) - strlen(order), "%lld ",
                 (long long)arrival[i]);
    if (f->nout != n)
        fail_msg("arrival %s: published %d events, want %lld", order, f->nout, (long long)n);
    for (int i = 0; i < f->nout; i++)
        if (f->out[i] != i + 1)
            fail_msg("arrival %s: position %d is seq %lld", order, i, (long long)f->out[i]);
    for (int s = 0; s <= MAXSEQ + 1; s++)
        if (f->held[s])
            fail_msg("arrival %s: seq %d still held", order, s);
}

static void test_every_arrival_order(void **state)
{
    (void)state;
    /* 6 events, the last one CaseClosed; CaseArchived becomes seq 7 */
    int64_t a[6] = {1, 2, 3, 4, 5, 6};
    int perms = 0;
    do {
        feed_t f = {.next = 1, .history_len = 6, .closed_seq = 6};
        for (int i = 0; i < 6; i++)
            sim_feed(&f, a[i]);
        check_feed(&f, 7, a, 6);
        perms++;
    } while (next_perm(a, 6));
    assert_int_equal(perms, 720);
}

static void test_repeats_and_close_in_the_middle(void **state)
{
    (void)state;
    /* every event delivered twice (a redelivery that the inbox did not
     * catch, e.g. a replayed DLQ copy); CaseClosed is seq 4 and two more
     * events (the closing notice and its NotificationSent) were already in
     * the history when the archiver published it, so CaseArchived is 7 */
    int64_t a[12] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6};
    int perms = 0;
    do {
        feed_t f = {.next = 1, .history_len = 6, .closed_seq = 4};
        for (int i = 0; i < 12; i++)
            sim_feed(&f, a[i]);
        check_feed(&f, 7, a, 12);
        perms++;
    } while (next_perm(a, 12) && perms < 200000);
    assert_true(perms > 1000);
}

static void test_gap_holds_everything_after_it(void **state)
{
    (void)state;
    feed_t f = {.next = 1, .history_len = 5};
    sim_feed(&f, 1);
    sim_feed(&f, 3);
    sim_feed(&f, 5);
    sim_feed(&f, 4);
    assert_int_equal(f.nout, 1);
    assert_int_equal(f.next, 2);
    assert_true(f.held[3] && f.held[4] && f.held[5]);
    sim_feed(&f, 2);
    assert_int_equal(f.nout, 5);
    assert_int_equal(f.next, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_every_arrival_order),
        cmocka_unit_test(test_repeats_and_close_in_the_middle),
        cmocka_unit_test(test_gap_holds_everything_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
