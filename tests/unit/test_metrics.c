/*
 * test_metrics.c - the Prometheus text exposition: HELP/TYPE once per
 * name, label sets in registration order with escaping, counters summed
 * over worker shards, gauges, computed series, the runtime's own metrics,
 * and name validation.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coro/metrics.h"
#include "unit.h"

static int64_t forty_two(void *arg)
{
    return 42;
}

START_TEST(exposition_golden)
{
    metrics_t *m = metrics_new();
    metric_t *a = metrics_counter(m, "coro_accepted_total", "connections accepted", "listener",
                                  "mqtt", (char *)NULL);
    metric_t *b = metrics_counter(m, "coro_accepted_total", "ignored", "listener", "tls\"x\\",
                                  (char *)NULL);
    metric_t *g = metrics_gauge(m, "coro_clients", "clients\nconnected", (char *)NULL);
    ck_assert_ptr_nonnull(metrics_gauge_fn(m, "coro_queue_depth", "queued", forty_two, NULL, "q",
                                           "1", "w", "0", (char *)NULL));
    metric_inc(a);
    metric_add(a, 4);
    metric_inc(b);
    metric_set(g, 9);
    metric_add(g, -2);
    /* the same name and labels is the same series */
    ck_assert_ptr_eq(metrics_counter(m, "coro_accepted_total", "x", "listener", "mqtt",
                                     (char *)NULL),
                     a);
    size_t len;
    char *text = metrics_render(m, &len);
    ck_assert_str_eq(text, "# HELP coro_accepted_total connections accepted\n"
                           "# TYPE coro_accepted_total counter\n"
                           "coro_accepted_total{listener=\"mqtt\"} 5\n"
                           "coro_accepted_total{listener=\"tls\\\"x\\\\\"} 1\n"
                           "# HELP coro_clients clients\\nconnected\n"
                           "# TYPE coro_clients gauge\n"
                           "coro_clients 7\n"
                           "# HELP coro_queue_depth queued\n"
                           "# TYPE coro_queue_depth gauge\n"
                           "coro_queue_depth{q=\"1\",w=\"0\"} 42\n");
    ck_assert_uint_eq(len, strlen(text));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(invalid_names_refused)
{
    metrics_t *m = metrics_new();
    errno = 0;
    ck_assert_ptr_null(metrics_counter(m, "1bad", "h", (char *)NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(metrics_counter(m, "ok", "h", "bad-label", "v", (char *)NULL));
    ck_assert_ptr_nonnull(metrics_counter(m, "ok", "h", (char *)NULL));
    errno = 0;
    ck_assert_ptr_null(metrics_gauge(m, "ok", "h", (char *)NULL)); /* type clash */
    ck_assert_int_eq(errno, EINVAL);
    metrics_free(m);
}
END_TEST

struct shard_arg {
    metric_t *c;
};

static void bump(void *arg)
{
    struct shard_arg *a = arg;
    for (int i = 0; i < 1000; i++)
        metric_inc(a->c);
}

static void spread(void *arg)
{
    coro_t *h[4];
    for (int i = 0; i < 4; i++)
        h[i] = coro_spawn_on(i % 2, bump, arg);
    for (int i = 0; i < 4; i++)
        coro_join(h[i]);
}

START_TEST(counters_sum_over_workers_and_runtime_metrics)
{
    metrics_t *m = metrics_new();
    struct shard_arg a = {metrics_counter(m, "hits_total", "h", (char *)NULL)};
    ck_assert_int_eq(metrics_add_runtime(m), 0);
    unit_run(2, spread, &a);
    ck_assert_int_eq(metric_value(a.c), 4000);
    char *text = metrics_render(m, NULL);
    ck_assert_ptr_nonnull(strstr(text, "hits_total 4000\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE coro_runtime_coroutines_spawned_total counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE coro_runtime_coroutines_alive gauge\n"));
    free(text);
    metrics_free(m);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, exposition_golden);
    tcase_add_test(tc, invalid_names_refused);
    tcase_add_test(tc, counters_sum_over_workers_and_runtime_metrics);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
