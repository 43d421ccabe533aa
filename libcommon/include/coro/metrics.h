/*
 * metrics.h - counters and gauges with label sets, rendered in the
 * Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * Registration (cold path) takes a lock; updates (hot path) do not:
 * counters are split into per-worker shards on their own cache lines and
 * summed when rendered, gauges are one atomic. So a counter bumped on every
 * message costs one uncontended relaxed atomic add on the worker's shard.
 *
 * Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*, counters end in
 * _total by convention); label values are escaped when rendered. All
 * functions are thread-safe and never yield. A metric_t lives as long as
 * its registry: series are never removed (a listener removed by a reload
 * keeps its last counts; registering the same name and labels again returns
 * the same series, so a re-added listener continues counting).
 */
#ifndef CORO_METRICS_H
#define CORO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct metrics metrics_t;
typedef struct metric metric_t;

metrics_t *metrics_new(void);   /* NULL/ENOMEM */
void metrics_free(metrics_t *m);

/*
 * Register (or find) a series. The variadic part is label name/value
 * pairs ending with NULL: metrics_counter(m, "coro_accepted_total",
 * "connections accepted", "listener", "mqtt", (char *)NULL).
 * NULL with EINVAL (bad name, or the name exists with another type or help)
 * or ENOMEM.
 */
metric_t *metrics_counter(metrics_t *m, const char *name, const char *help, ...)
    __attribute__((sentinel));
metric_t *metrics_gauge(metrics_t *m, const char *name, const char *help, ...)
    __attribute__((sentinel));

/* A series whose value is computed when rendered (queue depths, runtime
 * stats). fn runs on the rendering thread, under the registry lock: it
 * must be quick and must not register metrics. */
typedef int64_t (*metric_fn)(void *arg);
metric_t *metrics_counter_fn(metrics_t *m, const char *name, const char *help, metric_fn fn,
                             void *arg, ...) __attribute__((sentinel));
metric_t *metrics_gauge_fn(metrics_t *m, const char *name, const char *help, metric_fn fn,
                           void *arg, ...) __attribute__((sentinel));

/* Updates: any thread, lock-free. add on a counter must be >= 0. */
void metric_inc(metric_t *x);
void metric_add(metric_t *x, int64_t n);
void metric_set(metric_t *x, int64_t v);  /* gauges only */
int64_t metric_value(const metric_t *x); /* sum of shards, or the gauge */

/* Register the runtime's counters from coro_stats_get() as coro_runtime_*
 * (coroutines spawned/alive, context switches, steals, stacks, watches).
 * 0 or -1/errno. */
int metrics_add_runtime(metrics_t *m);

/* Render every series: HELP and TYPE once per name, then one line per
 * label set, in registration order. Returns a malloc'd NUL-terminated
 * string (caller frees) and its length in *len, or NULL/ENOMEM. */
char *metrics_render(metrics_t *m, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
