/*
 * bench_runtime.c - `coro bench runtime`: the runtime's costs measured side
 * by side with the usual alternatives in one process, one line per figure.
 *
 * Each figure is taken several times, alternating coro and peer so drift
 * (frequency scaling, a noisy neighbour) hits both alike, and the median is
 * reported with the target next to it. Only the public API is used
 * (coro.h, chan.h, io.h, net.h), so the numbers are what a program gets.
 * The TCP echo and idle-connection figures live in bench_echo.c; this file
 * holds the driver, the report and the in-memory figures. Not a test: it
 * never fails on a missed target, it says so (the exit status is 0 unless a
 * measurement could not run).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "cli.h"
#include "bench.h"

enum { MAXREP = 9 };

/* One line of the report: coro's value and its peer's, per repetition. */
struct fig {
    const char *name;   /* stable key, also the JSON "name" */
    const char *unit;
    const char *peer;   /* NULL: no peer (a count, a capacity) */
    const char *cmp;    /* "<=" / ">=" against target, NULL: no target */
    double target;
    int on_ratio;       /* target applies to coro/peer rather than to coro */
    double c[MAXREP], p[MAXREP];
    int n;
};

enum {
    F_SWITCH_UC, F_SWITCH_PT, F_SPAWN_SAME, F_SPAWN_OTHER, F_SPAWN_BATCH, F_CHAN_SAME,
    F_CHAN_CROSS,
    F_PARKED_RSS, F_ALIVE, F_ALIVE_RSS, F_IDLE_RSS, F_ECHO2, F_ECHO1, F_COUNT,
};

static const struct fig fig_template[F_COUNT] = {
    [F_SWITCH_UC] = {.name = "switch_ns", .unit = "ns", .peer = "ucontext swapcontext",
                     .cmp = "<=", .target = 12},
    [F_SWITCH_PT] = {.name = "switch_ns", .unit = "ns", .peer = "pthread condvar (rtt/2)",
                     .cmp = "<=", .target = 12},
    [F_SPAWN_SAME] = {.name = "spawn_join_same_worker_ns", .unit = "ns",
                      .peer = "pthread_create+join",
                      .cmp = "<=", .target = 40},
    /* one at a time: two cross-core wake-ups per coroutine, a latency */
    [F_SPAWN_OTHER] = {.name = "spawn_join_other_worker_ns", .unit = "ns",
                       .peer = "pthread_create+join", .cmp = NULL, .target = 0},
    /* batches of 256 spawned onto the other worker, then joined: the cost
     * per coroutine when work is handed over in bulk */
    [F_SPAWN_BATCH] = {.name = "spawn_join_other_worker_batched_ns", .unit = "ns",
                       .peer = "pthread_create+join",
                       .cmp = "<=", .target = 150},
    [F_CHAN_SAME] = {.name = "chan_rtt_same_worker_ns", .unit = "ns", .peer = "pthread condvar rtt",
                     .cmp = "<=", .target = 60},
    [F_CHAN_CROSS] = {.name = "chan_rtt_cross_worker_ns", .unit = "ns",
                      .peer = "pthread condvar rtt",
                      .cmp = "<=", .target = 10000},
    [F_PARKED_RSS] = {.name = "parked_coro_rss_bytes", .unit = "B", .peer = "parked pthread",
                      .cmp = "<=", .target = 4608},
    [F_ALIVE] = {.name = "alive_coroutines", .unit = "", .peer = NULL,
                 .cmp = ">=", .target = 1e6},
    [F_ALIVE_RSS] = {.name = "alive_rss_per_coro_bytes", .unit = "B", .peer = NULL,
                     .cmp = NULL, .target = 0},
    [F_IDLE_RSS] = {.name = "idle_conn_rss_bytes", .unit = "B", .peer = "libevent bufferevent",
                    .cmp = "<=", .target = 1024},
    [F_ECHO2] = {.name = "echo_rps_2_workers", .unit = "req/s", .peer = "libevent 1 thread",
                 .cmp = ">=", .target = 0.9, .on_ratio = 1},
    [F_ECHO1] = {.name = "echo_rps_1_worker", .unit = "req/s", .peer = "libevent 1 thread",
                 .cmp = ">=", .target = 0.9, .on_ratio = 1},
};

struct opts {
    int quick, json;
    int reps;          /* repetitions of the cheap figures */
    long n_switch, n_spawn, n_cross, n_thread, n_parked, n_alive;
    int n_idle;
    double echo_secs;
    int echo_reps;
};

/* ---- helpers shared with bench_echo.c ---------------------------------- */

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* A field of /proc/self/status or /proc/meminfo in bytes ("VmRSS:"), -1. */
static long proc_kib(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) {
            v = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

long bench_rss(void)
{
    long kib = proc_kib("/proc/self/status", "VmRSS:");
    return kib < 0 ? -1 : kib * 1024;
}

/* RSS after giving freed heap back, so a baseline is not inflated by what a
 * previous figure freed (and a later one would silently reuse). */
long bench_rss_trimmed(void)
{
    malloc_trim(0);
    return bench_rss();
}

int bench_run(unsigned workers, void (*fn)(void *), void *arg)
{
    struct coro_config cfg;

    coro_config_default(&cfg);
    cfg.workers = workers;
    if (coro_run(&cfg, fn, arg) < 0) {
        cli_warn("bench: coro_run with %u workers", workers);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAXREP];

    if (n == 0)
        return NAN;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- context switch ---------------------------------------------------- */

struct loop {
    long n;
    double ns;
    int worker;         /* where the second party runs */
    int batch;          /* spawn this many before joining them (0 = 1) */
    int err;
};

static void yielder(void *arg)
{
    long n = *(long *)arg;

    for (long i = 0; i < n; i++)
        coro_yield();
}

/* Two coroutines yielding to each other on one worker: each yield is one
 * switch to the other (main is parked in join meanwhile). */
static void yield_main(void *arg)
{
    struct loop *l = arg;
    double t0 = bench_now_ns();
    coro_t *a = coro_spawn(yielder, &l->n), *b = coro_spawn(yielder, &l->n);

    if (!a || !b) {
        l->err = errno;
        return;
    }
    coro_join(a);
    coro_join(b);
    l->ns = (bench_now_ns() - t0) / (2.0 * l->n);
}

static ucontext_t uc_main, uc_peer;

static void uc_peer_fn(void)
{
    for (;;)
        swapcontext(&uc_peer, &uc_main);
}

/* ns per switch of glibc's swapcontext (which also saves the signal mask
 * with a syscall: the cost a hand-written switch avoids). */
static double bench_ucontext(long n)
{
    size_t sz = 64 * 1024;
    void *stk = malloc(sz);
    double t0, t1;

    if (!stk)
        return NAN;
    getcontext(&uc_peer);
    uc_peer.uc_stack.ss_sp = stk;
    uc_peer.uc_stack.ss_size = sz;
    uc_peer.uc_link = &uc_main;
    makecontext(&uc_peer, uc_peer_fn, 0);
    t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        swapcontext(&uc_main, &uc_peer);
    t1 = bench_now_ns();
    free(stk);
    return (t1 - t0) / (2.0 * n);
}

struct pingpong {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;
    long n;
};

static void *pp_thread(void *arg)
{
    struct pingpong *p = arg;

    pthread_mutex_lock(&p->mu);
    for (long i = 0; i < p->n; i++) {
        while (p->turn != 1)
            pthread_cond_wait(&p->cv, &p->mu);
        p->turn = 0;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ns per round trip between two threads handing a turn over a condvar. */
static double bench_pthread_rtt(long n)
{
    struct pingpong p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, n};
    pthread_t t;
    double t0, t1;

    if (pthread_create(&t, NULL, pp_thread, &p) != 0)
        return NAN;
    t0 = bench_now_ns();
    pthread_mutex_lock(&p.mu);
    for (long i = 0; i < n; i++) {
        p.turn = 1;
        pthread_cond_signal(&p.cv);
        while (p.turn != 0)
            pthread_cond_wait(&p.cv, &p.mu);
    }
    pthread_mutex_unlock(&p.mu);
    t1 = bench_now_ns();
    pthread_join(t, NULL);
    return (t1 - t0) / n;
}

/* ---- spawn + join ------------------------------------------------------- */

static void noop(void *arg)
{
}

#define MAX_BATCH 256

static void spawn_main(void *arg)
{
    struct loop *l = arg;
    coro_t *cs[MAX_BATCH];
    int batch = l->batch > 0 ? l->batch : 1;
    long done = 0;
    double t0 = bench_now_ns();

    while (done < l->n) {
        for (int i = 0; i < batch; i++) {
            cs[i] = l->worker < 0 ? coro_spawn(noop, NULL) : coro_spawn_on(l->worker, noop, NULL);
            if (!cs[i]) {
                l->err = errno;
                return;
            }
        }
        for (int i = 0; i < batch; i++)
            coro_join(cs[i]);
        done += batch;
    }
    l->ns = (bench_now_ns() - t0) / done;
}

static void *pt_noop(void *arg)
{
    return arg;
}

static double bench_pthread_spawn(long n)
{
    double t0 = bench_now_ns();

    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, pt_noop, NULL) != 0)
            return NAN;
        pthread_join(t, NULL);
    }
    return (bench_now_ns() - t0) / n;
}

/* ---- channel ping-pong -------------------------------------------------- */

struct chanpp {
    chan_t *ping, *pong;
};

static void ponger(void *arg)
{
    struct chanpp *c = arg;
    long v;

    while (chan_recv(c->ping, &v) == 0)
        if (chan_send(c->pong, &v) < 0)
            break;
}

/* Round trips over two rendezvous channels; the ponger runs on l->worker
 * (-1: the caller's worker, with a one-worker runtime so nothing steals). */
static void chan_main(void *arg)
{
    struct loop *l = arg;
    struct chanpp c = {chan_new(sizeof(long), 0), chan_new(sizeof(long), 0)};
    coro_t *p = NULL;
    double t0;

    if (!c.ping || !c.pong)
        goto fail;
    p = l->worker < 0 ? coro_spawn(ponger, &c) : coro_spawn_on(l->worker, ponger, &c);
    if (!p)
        goto fail;
    t0 = bench_now_ns();
    for (long i = 0; i < l->n; i++)
        if (chan_send(c.ping, &i) < 0 || chan_recv(c.pong, &i) < 0)
            goto fail;
    l->ns = (bench_now_ns() - t0) / l->n;
    chan_close(c.ping);
    coro_join(p);
    chan_free(c.ping);
    chan_free(c.pong);
    return;
fail:
    l->err = errno ? errno : EIO;
    if (c.ping)
        chan_close(c.ping);
    if (p)
        coro_join(p);
    if (c.ping)
        chan_free(c.ping);
    if (c.pong)
        chan_free(c.pong);
}

/* ---- parked coroutines -------------------------------------------------- */

struct park {
    long n;             /* how many to park */
    long limit;         /* stop when the RSS delta passes this (bytes) */
    chan_t *ch;
    atomic_long parked;
    long reached;
    long rss_delta;
    int err;
};

static void parker(void *arg)
{
    struct park *p = arg;
    char c;

    atomic_fetch_add(&p->parked, 1);
    chan_recv(p->ch, &c);
}

/* Let everything spawned so far run up to its chan_recv (one worker: the
 * spawned coroutines are all queued behind us). */
static void park_settle(struct park *p, long spawned)
{
    while (atomic_load(&p->parked) < spawned)
        coro_yield();
}

static void park_main(void *arg)
{
    struct park *p = arg;
    coro_scope_t s;
    long rss0;

    p->ch = chan_new(1, 0);
    if (!p->ch) {
        p->err = errno;
        return;
    }
    coro_scope_init(&s);
    rss0 = bench_rss_trimmed();
    for (p->reached = 0; p->reached < p->n; p->reached++) {
        if (!coro_scope_spawn(&s, parker, p)) {
            p->err = errno;
            break;
        }
        if (p->reached % 10000 == 9999) {
            park_settle(p, p->reached + 1);
            if (bench_rss() - rss0 > p->limit) {
                p->err = ENOMEM;
                p->reached++;
                break;
            }
        }
    }
    park_settle(p, p->reached);
    p->rss_delta = bench_rss() - rss0;
    chan_close(p->ch);
    coro_scope_wait(&s);
    chan_free(p->ch);
}

struct tpark {
    pthread_mutex_t mu;
    pthread_cond_t cv, all;
    long parked;
    int go;
};

static void *tparker(void *arg)
{
    struct tpark *t = arg;

    pthread_mutex_lock(&t->mu);
    t->parked++;
    pthread_cond_signal(&t->all);
    while (!t->go)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* RSS per thread blocked on a condvar (default attributes: 8 MiB stack
 * reserved, a few pages touched), the thread-per-task equivalent. */
static double bench_pthread_parked(long n)
{
    struct tpark t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t *th = calloc(n, sizeof *th);
    long rss0, rss1 = -1, made = 0;

    if (!th)
        return NAN;
    rss0 = bench_rss_trimmed();
    for (; made < n; made++)
        if (pthread_create(&th[made], NULL, tparker, &t) != 0)
            break;
    pthread_mutex_lock(&t.mu);
    while (t.parked < made)
        pthread_cond_wait(&t.all, &t.mu);
    rss1 = bench_rss();
    t.go = 1;
    pthread_cond_broadcast(&t.cv);
    pthread_mutex_unlock(&t.mu);
    for (long i = 0; i < made; i++)
        pthread_join(th[i], NULL);
    free(th);
    return made ? (double)(rss1 - rss0) / made : NAN;
}

/* ---- the figures, one repetition each ------------------------------------ */

static void add(struct fig *f, double c, double p)
{
    if (f->n < MAXREP) {
        f->c[f->n] = c;
        f->p[f->n] = p;
        f->n++;
    }
}

static int loop_run_batch(unsigned workers, void (*fn)(void *), long n, int worker, int batch,
                          double *ns)
{
    struct loop l = {.n = n, .ns = NAN, .worker = worker, .batch = batch};

    if (bench_run(workers, fn, &l) < 0)
        return -1;
    if (l.err) {
        errno = l.err;
        cli_warn("bench: runtime figure failed");
        return -1;
    }
    *ns = l.ns;
    return 0;
}

static int loop_run(unsigned workers, void (*fn)(void *), long n, int worker, double *ns)
{
    return loop_run_batch(workers, fn, n, worker, 1, ns);
}

static int rep_micro(struct fig *f, const struct opts *o)
{
    double y, uc, rtt, same, other, batched, pt, cs, cc;

    if (loop_run(1, yield_main, o->n_switch, -1, &y) < 0)
        return -1;
    uc = bench_ucontext(o->n_switch);
    rtt = bench_pthread_rtt(o->n_thread);
    add(&f[F_SWITCH_UC], y, uc);
    add(&f[F_SWITCH_PT], y, rtt / 2);
    if (loop_run(1, spawn_main, o->n_spawn, -1, &same) < 0 ||
        loop_run(2, spawn_main, o->n_cross, 1, &other) < 0 ||
        loop_run_batch(2, spawn_main, o->n_spawn, 1, MAX_BATCH, &batched) < 0)
        return -1;
    pt = bench_pthread_spawn(o->n_thread / 10);
    add(&f[F_SPAWN_SAME], same, pt);
    add(&f[F_SPAWN_OTHER], other, pt);
    add(&f[F_SPAWN_BATCH], batched, pt);
    if (loop_run(1, chan_main, o->n_spawn, -1, &cs) < 0 ||
        loop_run(2, chan_main, o->n_cross, 1, &cc) < 0)
        return -1;
    add(&f[F_CHAN_SAME], cs, rtt);
    add(&f[F_CHAN_CROSS], cc, rtt);
    return 0;
}

static int park_run(long n, long limit, struct park *p)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->limit = limit;
    if (bench_run(1, park_main, p) < 0)
        return -1;
    if (p->err && p->reached == 0) {
        errno = p->err;
        cli_warn("bench: parking coroutines");
        return -1;
    }
    return 0;
}

static int rep_parked(struct fig *f, const struct opts *o)
{
    struct park p;

    if (park_run(o->n_parked, 1L << 40, &p) < 0)
        return -1;
    add(&f[F_PARKED_RSS], (double)p.rss_delta / p.reached, bench_pthread_parked(2000));
    return 0;
}

/* A million parked at once, stopping early rather than exhausting memory. */
static int rep_alive(struct fig *f, const struct opts *o)
{
    long avail = proc_kib("/proc/meminfo", "MemAvailable:");
    struct park p;

    if (park_run(o->n_alive, avail > 0 ? avail * 1024 / 2 : 1L << 32, &p) < 0)
        return -1;
    if (p.err) {
        errno = p.err;
        cli_warn("bench: stopped after %ld coroutines", p.reached);
    }
    add(&f[F_ALIVE], p.reached, NAN);
    add(&f[F_ALIVE_RSS], (double)p.rss_delta / p.reached, NAN);
    return 0;
}

static int rep_idle(struct fig *f, const struct opts *o)
{
    double c, p;

    if (bench_idle_coro(o->n_idle, &c) < 0 || bench_idle_libevent(o->n_idle, &p) < 0)
        return -1;
    add(&f[F_IDLE_RSS], c, p);
    return 0;
}

static int rep_echo(struct fig *f, const struct opts *o)
{
    double c2, c1, le;

    if (bench_echo_coro(2, ECHO_CONNS, o->echo_secs, &c2) < 0 ||
        bench_echo_libevent(ECHO_CONNS, o->echo_secs, &le) < 0 ||
        bench_echo_coro(1, ECHO_CONNS, o->echo_secs, &c1) < 0)
        return -1;
    add(&f[F_ECHO2], c2, le);
    add(&f[F_ECHO1], c1, le);
    return 0;
}

/* ---- report -------------------------------------------------------------- */

static double fig_ratio(const struct fig *f)
{
    double r[MAXREP];

    for (int i = 0; i < f->n; i++)
        r[i] = f->c[i] / f->p[i];
    return median(r, f->n);
}

static int fig_met(const struct fig *f, double c, double ratio)
{
    double v = f->on_ratio ? ratio : c;

    if (!f->cmp || isnan(v))
        return -1;
    return f->cmp[0] == '<' ? v <= f->target : v >= f->target;
}

static void print_text(const struct fig *f, double c, double p, double ratio, int met)
{
    char peer[80] = "", target[48] = "";

    if (f->peer)
        snprintf(peer, sizeof peer, "%-23s %12.1f  ratio %8.3g", f->peer, p, ratio);
    if (f->cmp)
        snprintf(target, sizeof target, "target %s%s %.10g%s%s: %s", f->on_ratio ? "ratio " : "",
                 f->cmp, f->target, f->unit[0] && !f->on_ratio ? " " : "",
                 f->on_ratio ? "" : f->unit, met ? "met" : "MISSED");
    printf("%-28s coro %12.1f %-5s %-52s %s\n", f->name, c, f->unit, peer, target);
}

static void print_json(const struct fig *f, double c, double p, double ratio, int met)
{
    printf("{\"name\":\"%s\",\"unit\":\"%s\",\"coro\":%.3f,\"runs\":%d", f->name, f->unit,
           c, f->n);
    if (f->peer)
        printf(",\"peer\":\"%s\",\"peer_value\":%.3f,\"ratio\":%.6g", f->peer, p, ratio);
    if (f->cmp)
        printf(",\"target\":\"%s%s %.10g\",\"met\":%s", f->on_ratio ? "ratio " : "", f->cmp,
               f->target, met ? "true" : "false");
    printf("}\n");
}

static void report(const struct fig *f, int json)
{
    double c, p, ratio;
    int met;

    if (f->n == 0)
        return;
    c = median(f->c, f->n);
    p = f->peer ? median(f->p, f->n) : NAN;
    ratio = f->peer ? fig_ratio(f) : NAN;
    met = fig_met(f, c, ratio);
    if (json)
        print_json(f, c, p, ratio, met);
    else
        print_text(f, c, p, ratio, met);
    fflush(stdout);
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: coro bench runtime [--quick] [--json]\n"
            "  -q, --quick  fewer iterations and repetitions, skip the 1,000,000 coroutines\n"
            "  -j, --json   one JSON object per figure and line\n"
            "Each line: figure, coro's median, the peer's median, the median of the\n"
            "per-run ratios coro/peer, and the target. See bench/README.md.\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"quick", no_argument, NULL, 'q'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof *o);
    optind = 0;
    opterr = 0;   /* getopt would name argv[0] ("runtime"), not the command */
    while ((c = getopt_long(argc, argv, "qjh", lo, NULL)) != -1) {
        switch (c) {
        case 'q': o->quick = 1; break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); return CLI_EX_OK;
        default:
            cli_warnx("bench runtime: unknown option '%s'", argv[optind - 1]);
            usage(stderr);
            return CLI_EX_USAGE;
        }
    }
    if (optind < argc) {
        cli_warnx("bench runtime: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return CLI_EX_USAGE;
    }
    o->reps = o->quick ? 3 : 5;
    o->n_switch = o->quick ? 200000 : 2000000;
    o->n_spawn = o->quick ? 50000 : 500000;
    o->n_cross = o->quick ? 5000 : 50000;
    o->n_thread = o->quick ? 2000 : 20000;
    o->n_parked = 100000;
    o->n_alive = o->quick ? 0 : 1000000;
    o->n_idle = 10000;
    o->echo_secs = o->quick ? 1.0 : 3.0;
    o->echo_reps = o->quick ? 1 : 3;
    return -1;
}

int bench_runtime(int argc, char **argv)
{
    struct fig f[F_COUNT];
    struct opts o;
    int rc = parse(argc, argv, &o);

    if (rc >= 0)
        return rc;
    memcpy(f, fig_template, sizeof f);
    for (int i = 0; i < o.reps; i++)
        if (rep_micro(f, &o) < 0)
            return CLI_EX_SOFTWARE;
    for (int i = F_SWITCH_UC; i <= F_CHAN_CROSS; i++)
        report(&f[i], o.json);
    for (int i = 0; i < (o.quick ? 1 : 3); i++)
        if (rep_parked(f, &o) < 0)
            return CLI_EX_SOFTWARE;
    report(&f[F_PARKED_RSS], o.json);
    if (o.n_alive && rep_alive(f, &o) < 0)
        return CLI_EX_SOFTWARE;
    report(&f[F_ALIVE], o.json);
    report(&f[F_ALIVE_RSS], o.json);
    for (int i = 0; i < (o.quick ? 1 : 3); i++)
        if (rep_idle(f, &o) < 0)
            return CLI_EX_SOFTWARE;
    report(&f[F_IDLE_RSS], o.json);
    for (int i = 0; i < o.echo_reps; i++)
        if (rep_echo(f, &o) < 0)
            return CLI_EX_SOFTWARE;
    report(&f[F_ECHO2], o.json);
    report(&f[F_ECHO1], o.json);
    return CLI_EX_OK;
}
