/*
 * test_metrics: registry identity, exact text exposition for a small
 * registry (labels, histogram buckets, escaping), and concurrent updates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int reset(void **state)
{
    (void)state;
    metrics_reset_for_tests();
    return 0;
}

static void test_empty(void **state)
{
    (void)state;
    char *txt = metrics_render();
    assert_string_equal(txt, "");
    free(txt);
}

static void test_identity(void **state)
{
    (void)state;
    metrics_counter_t *a = metrics_counter("kesu_x_total", "x", "topic=\"a\"");
    metrics_counter_t *b = metrics_counter("kesu_x_total", "other help", "topic=\"a\"");
    metrics_counter_t *c = metrics_counter("kesu_x_total", "x", "topic=\"b\"");
    metrics_counter_t *d = metrics_counter("kesu_x_total", "x", NULL);
    metrics_counter_t *e = metrics_counter("kesu_x_total", "x", "");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_equal(d, e);
    /* same name, other type */
    assert_null(metrics_gauge("kesu_x_total", "x", NULL));
    assert_null(metrics_histogram("kesu_x_total", "x", NULL));
    /* bad names and labels */
    assert_null(metrics_counter("1abc", "x", NULL));
    assert_null(metrics_counter("a-b", "x", NULL));
    assert_null(metrics_counter("", "x", NULL));
    assert_null(metrics_counter(NULL, "x", NULL));
    assert_null(metrics_counter("ok_name", "x", "a=\"1\"\nb=\"2\""));
    /* NULL series are no-ops */
    metrics_counter_add(NULL, 1);
    metrics_gauge_set(NULL, 1);
    metrics_gauge_add(NULL, 1);
    metrics_histogram_observe(NULL, 1);
}

static void test_render_exact(void **state)
{
    (void)state;
    metrics_counter_t *in = metrics_counter("kesu_messages_total", "Messages consumed.",
                                            "topic=\"kesu.intake.v1\"");
    metrics_counter_t *cl = metrics_counter("kesu_messages_total", "Messages consumed.",
                                            "topic=\"kesu.classifier.v1\"");
    metrics_gauge_t *lag = metrics_gauge("kesu_outbox_pending", "Outbox rows not yet published.",
                                         NULL);
    metrics_gauge_t *ratio = metrics_gauge("kesu_ratio", "A line\nwith \\ in help.", "x=\"1\"");
    metrics_histogram_t *h = metrics_histogram("kesu_http_request_seconds", "Request latency.",
                                               "route=\"/v1/cases\"");
    metrics_histogram_t *h2 = metrics_histogram("kesu_db_seconds", "DB latency.", NULL);

    metrics_counter_add(in, 3);
    metrics_counter_add(in, 4);
    metrics_counter_add(cl, 1);
    metrics_gauge_set(lag, 12);
    metrics_gauge_add(lag, -2.5);
    metrics_gauge_set(ratio, 0.1);
    metrics_histogram_observe(h, 0.0005); /* <= 0.001 */
    metrics_histogram_observe(h, 0.001);  /* le is inclusive */
    metrics_histogram_observe(h, 0.003);  /* 0.005 */
    metrics_histogram_observe(h, 0.2);    /* 0.25 */
    metrics_histogram_observe(h, 99);     /* +Inf only */
    metrics_histogram_observe(h2, 0.25);

    static const char want[] =
        "# HELP kesu_messages_total Messages consumed.\n"
        "# TYPE kesu_messages_total counter\n"
        "kesu_messages_total{topic=\"kesu.intake.v1\"} 7\n"
        "kesu_messages_total{topic=\"kesu.classifier.v1\"} 1\n"
        "# HELP kesu_outbox_pending Outbox rows not yet published.\n"
        "# TYPE kesu_outbox_pending gauge\n"
        "kesu_outbox_pending 9.5\n"
        "# HELP kesu_ratio A line\\nwith \\\\ in help.\n"
        "# TYPE kesu_ratio gauge\n"
        "kesu_ratio{x=\"1\"} 0.1\n"
        "# HELP kesu_http_request_seconds Request latency.\n"
        "# TYPE kesu_http_request_seconds histogram\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.001\"} 2\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.0025\"} 2\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.005\"} 3\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.01\"} 3\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.025\"} 3\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.05\"} 3\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.1\"} 3\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.25\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"0.5\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"1\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"2.5\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"5\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"10\"} 4\n"
        "kesu_http_request_seconds_bucket{route=\"/v1/cases\",le=\"+Inf\"} 5\n"
        "kesu_http_request_seconds_sum{route=\"/v1/cases\"} 99.2045\n"
        "kesu_http_request_seconds_count{route=\"/v1/cases\"} 5\n"
        "# HELP kesu_db_seconds DB latency.\n"
        "# TYPE kesu_db_seconds histogram\n"
        "kesu_db_seconds_bucket{le=\"0.001\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.0025\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.005\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.01\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.025\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.05\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.1\"} 0\n"
        "kesu_db_seconds_bucket{le=\"0.25\"} 1\n"
        "kesu_db_seconds_bucket{le=\"0.5\"} 1\n"
        "kesu_db_seconds_bucket{le=\"1\"} 1\n"
        "kesu_db_seconds_bucket{le=\"2.5\"} 1\n"
        "kesu_db_seconds_bucket{le=\"5\"} 1\n"
        "kesu_db_seconds_bucket{le=\"10\"} 1\n"
        "kesu_db_seconds_bucket{le=\"+Inf\"} 1\n"
        "kesu_db_seconds_sum 0.25\n"
        "kesu_db_seconds_count 1\n";
    char *txt = metrics_render();
    assert_string_equal(txt, want);
    free(txt);
}

static void test_gauge_special_values(void **state)
{
    (void)state;
    metrics_gauge_t *g = metrics_gauge("g", "", NULL);
    metrics_gauge_set(g, 1.0 / 0.0);
    char *txt = metrics_render();
    assert_string_equal(txt, "# HELP g \n# TYPE g gauge\ng +Inf\n");
    free(txt);
    metrics_gauge_set(g, 1e21);
    txt = metrics_render();
    assert_string_equal(txt, "# HELP g \n# TYPE g gauge\ng 1e+21\n");
    free(txt);
    metrics_gauge_set(g, 1.0 / 3.0);
    txt = metrics_render();
    assert_string_equal(txt, "# HELP g \n# TYPE g gauge\ng 0.33333333333333331\n");
    free(txt);
}

#define THREADS 8
#define ROUNDS 20000

static void *hammer(void *arg)
{
    (void)arg;
    metrics_counter_t *c = metrics_counter("kesu_hammer_total", "h", NULL);
    metrics_gauge_t *g = metrics_gauge("kesu_hammer_gauge", "h", NULL);
    metrics_histogram_t *h = metrics_histogram("kesu_hammer_seconds", "h", NULL);
    for (int i = 0; i < ROUNDS; i++) {
        metrics_counter_add(c, 1);
        metrics_gauge_add(g, 0.5);
        metrics_histogram_observe(h, 0.5);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *txt = metrics_render();
    assert_non_null(strstr(txt, "\nkesu_hammer_total 160000\n"));
    assert_non_null(strstr(txt, "\nkesu_hammer_gauge 80000\n"));
    assert_non_null(strstr(txt, "\nkesu_hammer_seconds_bucket{le=\"0.25\"} 0\n"));
    assert_non_null(strstr(txt, "\nkesu_hammer_seconds_bucket{le=\"0.5\"} 160000\n"));
    assert_non_null(strstr(txt, "\nkesu_hammer_seconds_sum 80000\n"));
    assert_non_null(strstr(txt, "\nkesu_hammer_seconds_count 160000\n"));
    free(txt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty, reset),
        cmocka_unit_test_setup(test_identity, reset),
        cmocka_unit_test_setup(test_render_exact, reset),
        cmocka_unit_test_setup(test_gauge_special_values, reset),
        cmocka_unit_test_setup(test_concurrent, reset),
    };
    return cmocka_run_group_tests(tests, NULL, reset);
}
