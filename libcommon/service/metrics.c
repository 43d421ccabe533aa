/*
 * metrics.c - the metrics registry and its Prometheus text rendering.
 *
 * A family is one metric name (HELP, TYPE); a series is one label set of
 * it. Counters keep one padded slot per worker shard so workers never
 * share a cache line on the hot path; rendering sums the slots. Not here:
 * serving the text over HTTP (admin.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro/coro.h"
#include "coro/metrics.h"

#define SHARDS 8

enum kind { COUNTER, GAUGE };

struct slot {
    _Alignas(64) atomic_llong v;
};

struct metric {
    struct slot shard[SHARDS]; /* counters: all; gauges: shard[0] */
    enum kind kind;
    metric_fn fn;
    void *arg;
    char *labels; /* rendered: k="v",k2="v2" or "" */
    struct metric *next;
};

struct family {
    char *name;
    char *help;
    enum kind kind;
    struct metric *series, **tail;
    struct family *next;
};

struct metrics {
    pthread_mutex_t mu;
    struct family *families, **tail;
};

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->families;
    return m;
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    for (struct family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (struct metric *x = f->series, *xn; x; x = xn) {
            xn = x->next;
            free(x->labels);
            free(x);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int valid_name(const char *s, int colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                 (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':');
        if (!ok)
            return 0;
    }
    return 1;
}

/* A growable string for rendering; on allocation failure it sets oom. */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_b(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Escape per the exposition format: \\ and \n always, \" in label values. */
static void put_escaped(struct buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_b(b, "\\\\");
        else if (*s == '\n')
            puts_b(b, "\\n");
        else if (quote && *s == '"')
            puts_b(b, "\\\"");
        else
            put(b, s, 1);
    }
}

/* Render the NULL-terminated name/value pairs as k="v",...; NULL on error. */
static char *render_labels(va_list ap)
{
    struct buf b = {0};
    const char *k;

    puts_b(&b, "");
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        if (!valid_name(k, 0) || !v) {
            free(b.p);
            errno = EINVAL;
            return NULL;
        }
        if (b.len)
            puts_b(&b, ",");
        puts_b(&b, k);
        puts_b(&b, "=\"");
        put_escaped(&b, v, 1);
        puts_b(&b, "\"");
    }
    if (b.oom) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    return b.p;
}

static struct family *get_family(metrics_t *m, const char *name, const char *help, enum kind k)
{
    struct family *f;

    for (f = m->families; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (f->kind != k) {
                errno = EINVAL;
                return NULL;
            }
            return f;
        }
    }
    if (!(f = calloc(1, sizeof(*f))) || !(f->name = strdup(name)) ||
        !(f->help = strdup(help ? help : ""))) {
        if (f)
            free(f->name);
        free(f);
        errno = ENOMEM;
        return NULL;
    }
    f->kind = k;
    f->tail = &f->series;
    *m->tail = f;
    m->tail = &f->next;
    return f;
}

static metric_t *reg(metrics_t *m, enum kind k, const char *name, const char *help, metric_fn fn,
                     void *arg, va_list ap)
{
    struct metric *x = NULL;
    char *labels;

    if (!valid_name(name, 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (!(labels = render_labels(ap)))
        return NULL;
    pthread_mutex_lock(&m->mu);
    struct family *f = get_family(m, name, help, k);
    if (!f)
        goto out;
    for (x = f->series; x; x = x->next)
        if (strcmp(x->labels, labels) == 0)
            goto out;
    if (!(x = aligned_alloc(64, sizeof(*x)))) {
        errno = ENOMEM;
        goto out;
    }
    memset(x, 0, sizeof(*x));
    x->kind = k;
    x->fn = fn;
    x->arg = arg;
    x->labels = labels;
    labels = NULL;
    *f->tail = x;
    f->tail = &x->next;
out:
    pthread_mutex_unlock(&m->mu);
    free(labels);
    return x;
}

#define REGISTER(kind, fn, arg, last)                                                              \
    va_list ap;                                                                                    \
    va_start(ap, last);                                                                            \
    metric_t *x = reg(m, kind, name, help, fn, arg, ap);                                           \
    va_end(ap);                                                                                    \
    return x

metric_t *metrics_counter(metrics_t *m, const char *name, const char *help, ...)
{
    REGISTER(COUNTER, NULL, NULL, help);
}

metric_t *metrics_gauge(metrics_t *m, const char *name, const char *help, ...)
{
    REGISTER(GAUGE, NULL, NULL, help);
}

metric_t *metrics_counter_fn(metrics_t *m, const char *name, const char *help, metric_fn fn,
                             void *arg, ...)
{
    REGISTER(COUNTER, fn, arg, arg);
}

metric_t *metrics_gauge_fn(metrics_t *m, const char *name, const char *help, metric_fn fn,
                           void *arg, ...)
{
    REGISTER(GAUGE, fn, arg, arg);
}

static int shard_index(void)
{
    int w = coro_worker_index();
    return w < 0 ? 0 : w % SHARDS;
}

void metric_inc(metric_t *x)
{
    metric_add(x, 1);
}

void metric_add(metric_t *x, int64_t n)
{
    int i = x->kind == COUNTER ? shard_index() : 0;
    atomic_fetch_add_explicit(&x->shard[i].v, n, memory_order_relaxed);
}

void metric_set(metric_t *x, int64_t v)
{
    atomic_store_explicit(&x->shard[0].v, v, memory_order_relaxed);
}

int64_t metric_value(const metric_t *x)
{
    int64_t sum = 0;

    if (x->fn)
        return x->fn(x->arg);
    for (int i = 0; i < (x->kind == COUNTER ? SHARDS : 1); i++)
        sum += atomic_load_explicit(&((metric_t *)x)->shard[i].v, memory_order_relaxed);
    return sum;
}

char *metrics_render(metrics_t *m, size_t *len)
{
    struct buf b = {0};
    char num[32];

    puts_b(&b, "");
    pthread_mutex_lock(&m->mu);
    for (struct family *f = m->families; f; f = f->next) {
        puts_b(&b, "# HELP ");
        puts_b(&b, f->name);
        puts_b(&b, " ");
        put_escaped(&b, f->help, 0);
        puts_b(&b, "\n# TYPE ");
        puts_b(&b, f->name);
        puts_b(&b, f->kind == COUNTER ? " counter\n" : " gauge\n");
        for (struct metric *x = f->series; x; x = x->next) {
            puts_b(&b, f->name);
            if (*x->labels) {
                puts_b(&b, "{");
                puts_b(&b, x->labels);
                puts_b(&b, "}");
            }
            snprintf(num, sizeof(num), " %lld\n", (long long)metric_value(x));
            puts_b(&b, num);
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

/* Runtime statistics, read whole each time: rendering is rare. */
enum rt_field { RT_SPAWNED, RT_ALIVE, RT_SWITCHES, RT_STEALS, RT_POOLED, RT_MAPPED, RT_WATCHES };

static int64_t rt_stat(void *arg)
{
    struct coro_stats st;
    coro_stats_get(&st);
    const uint64_t v[] = {st.spawned,       st.alive,         st.switches, st.steals,
                          st.stacks_pooled, st.stacks_mapped, st.watches};
    return (int64_t)v[(enum rt_field)(intptr_t)arg];
}

int metrics_add_runtime(metrics_t *m)
{
    static const struct {
        const char *name, *help;
        int counter;
    } defs[] = {
        {"coro_runtime_coroutines_spawned_total", "coroutines created since start", 1},
        {"coro_runtime_coroutines_alive", "coroutines not yet ended", 0},
        {"coro_runtime_context_switches_total", "coroutine context switches", 1},
        {"coro_runtime_steals_total", "unstarted coroutines taken by idle workers", 1},
        {"coro_runtime_stacks_pooled", "coroutine stacks kept for reuse", 0},
        {"coro_runtime_stacks_mapped", "coroutine stacks currently mapped", 0},
        {"coro_runtime_watches", "armed stackless fd watches (idle connections)", 0},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        void *arg = (void *)(intptr_t)i;
        metric_t *x = defs[i].counter
                          ? metrics_counter_fn(m, defs[i].name, defs[i].help, rt_stat, arg, NULL)
                          : metrics_gauge_fn(m, defs[i].name, defs[i].help, rt_stat, arg, NULL);
        if (!x)
            return -1;
    }
    return 0;
}
