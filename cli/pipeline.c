/*
 * pipeline.c - `coro pipeline`: a multi-stage pipeline of line records in
 * which each stage runs N long-lived worker processes.
 *
 *   stdin -> reader -> [queue] -> stage 1 (N procs) -> [queue] -> ... -> writer -> stdout
 *
 * Every queue is a bounded channel of --buffer records, and each process
 * holds at most --inflight records, so a slow stage stalls the ones before
 * it and finally the reader: backpressure goes end to end and memory stays
 * bounded whatever the input size. With --keep-order the reader numbers
 * the records and the writer restores their order in a ring; a semaphore
 * (the window) keeps the reader at most "everything the pipeline can hold"
 * records ahead of the writer, which bounds the ring as well.
 *
 * This file holds the options, the reader and writer of stdin/stdout,
 * signals and the exit status; the stage processes are pipeline_stage.c,
 * the figures pipeline_stats.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro/io.h"
#include "cli.h"
#include "lineio.h"
#include "pipeline.h"

#define PL_DEFAULT_BUFFER 1024
#define PL_DEFAULT_INFLIGHT 8
#define PL_DEFAULT_STALL_MS 10000
#define PL_MAX_WORKERS 1024
#define PL_MAX_LINE (64u << 20)
#define PL_OUT_BUF (64u << 10)

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_caught;
static int fl_saved[2] = {-1, -1};

uint64_t pl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pl_abort(struct pl_run *run)
{
    pl_kill_all(run, SIGTERM);
    coro_scope_cancel(&run->scope);
}

void pl_fail(struct pl_run *run, const char *fmt, ...)
{
    va_list ap;

    if (run->failed || run->interrupted)
        return;
    run->failed = 1;
    fputs("coro: pipeline: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pl_abort(run);
}

static void reader(void *arg)
{
    struct pl_run *run = arg;
    struct lineio_reader rd;
    chan_t *q = run->stages[0].in;
    char *line;
    ssize_t n;

    if (lineio_reader_init(&rd, 0, PL_MAX_LINE) < 0)
        goto out;
    while ((n = lineio_read_line(&rd, &line)) > 0) {
        if (run->keep_order && coro_sem_wait(&run->window) < 0)
            break;
        int add_nl = line[n - 1] != '\n';
        struct rec *r = malloc(sizeof *r + (size_t)n + (size_t)add_nl);
        if (!r)
            break;
        r->seq = run->records_read++;
        r->len = (uint32_t)(n + add_nl);
        memcpy(r->data, line, (size_t)n);
        if (add_nl)
            r->data[n] = '\n';
        if (chan_send(q, &r) < 0) {
            free(r);
            break;
        }
        if (chan_len(q) > run->stages[0].queue_peak)
            run->stages[0].queue_peak = chan_len(q);
    }
    if (n < 0 && errno != ECANCELED) {
        cli_warn("pipeline: read from stdin");
        run->io_error = 1;
        pl_abort(run);
    }
    lineio_reader_fini(&rd);
out:
    chan_close(q);
}

static int emit(struct pl_run *run, struct lineio_writer *w, struct rec *r)
{
    int rc = lineio_write(w, r->data, r->len);
    free(r);
    run->records_written++;
    return rc;
}

/* In order: park r in the ring, then write every record now next in line. */
static int emit_ordered(struct pl_run *run, struct lineio_writer *w, struct rec **ring,
                        uint64_t *next, struct rec *r)
{
    ring[r->seq % run->window_size] = r;
    while ((r = ring[*next % run->window_size])) {
        ring[*next % run->window_size] = NULL;
        (*next)++;
        coro_sem_post(&run->window);
        if (emit(run, w, r) < 0)
            return -1;
    }
    return 0;
}

static void write_all(struct pl_run *run, struct lineio_writer *w, struct rec **ring)
{
    uint64_t next = 0;
    struct rec *r;

    for (;;) {
        int rc = chan_try_recv(run->outq, &r);
        if (rc < 0 && errno == EAGAIN) {
            if (lineio_flush(w) < 0)
                goto werr;
            rc = chan_recv(run->outq, &r);
        }
        if (rc < 0)
            break;
        if ((ring ? emit_ordered(run, w, ring, &next, r) : emit(run, w, r)) < 0)
            goto werr;
    }
    if (!run->failed && !run->interrupted && lineio_flush(w) < 0)
        goto werr;
    return;
werr:
    if (errno == ECANCELED)
        return;
    run->io_error = errno == EPIPE ? EPIPE : 1;
    if (errno != EPIPE)
        cli_warn("pipeline: write to stdout");
    pl_abort(run);
}

static void writer(void *arg)
{
    struct pl_run *run = arg;
    struct lineio_writer w;
    struct rec **ring = NULL;

    if (run->keep_order && !(ring = calloc(run->window_size, sizeof *ring))) {
        pl_fail(run, "out of memory");
        return;
    }
    if (lineio_writer_init(&w, 1, PL_OUT_BUF) < 0) {
        pl_fail(run, "out of memory");
    } else {
        write_all(run, &w, ring);
        lineio_writer_fini(&w);
    }
    for (size_t i = 0; ring && i < run->window_size; i++)
        free(ring[i]);
    free(ring);
}

static void on_signal(int sig)
{
    int err = errno;
    sig_caught = sig;
    if (write(sig_pipe[1], "x", 1) < 0) {
        /* the pipe is full: a wakeup is already pending */
    }
    errno = err;
}

/* Waits for SIGINT/SIGTERM (through the self-pipe) and stops the run. */
static void sig_watch(void *arg)
{
    struct pl_run *run = arg;

    if (coro_wait_fd(sig_pipe[0], CORO_READ, -1) < 0)
        return;
    run->interrupted = sig_caught ? (int)sig_caught : SIGINT;
    pl_abort(run);
}

static void ticker(void *arg)
{
    struct pl_run *run = arg;

    while (coro_sleep_ms(500) == 0) {
        pl_stats_watchdog(run, pl_now_ns());
        if (run->tty)
            pl_stats_live(run, 0);
    }
    if (run->tty)
        pl_stats_live(run, 1);
}

static void pl_main(void *arg)
{
    struct pl_run *run = arg;
    coro_t *sig = coro_spawn(sig_watch, run), *tick = coro_spawn(ticker, run);
    coro_t *side[] = {sig, tick};

    if (!sig || !tick || pl_stages_start(run) < 0 || !coro_scope_spawn(&run->scope, reader, run) ||
        !coro_scope_spawn(&run->scope, writer, run)) {
        if (!run->failed)
            cli_warn("pipeline: cannot start");
        run->failed = 1;
        pl_abort(run);
    }
    coro_scope_wait(&run->scope);
    pl_stages_stop(run, run->failed || run->interrupted || run->io_error ? SIGTERM : 0);
    run->end_ns = pl_now_ns();
    for (int i = 0; i < 2; i++) {
        if (!side[i])
            continue;
        coro_cancel(side[i]);
        coro_join(side[i]);
    }
}

static void usage(FILE *out)
{
    fprintf(out, "usage: coro pipeline --stage 'CMD[:N]' [--stage 'CMD[:N]' ...] [-b N] [-k]\n"
                 "                     [--stats] [--json] [--inflight K] [--stall SEC]\n"
                 "\n"
                 "Run line records from stdin through stages of long-lived worker processes\n"
                 "(N per stage, /bin/sh -c CMD) and write the results to stdout. Each stage\n"
                 "command must answer every input line with exactly one output line and\n"
                 "flush it (awk '{...; fflush()}', sed -u, python3 -u, grep --line-buffered).\n"
                 "\n"
                 "  -s, --stage 'CMD[:N]'  add a stage of N workers (default 1)\n"
                 "  -b, --buffer N         records queued before each stage (default 1024)\n"
                 "  -k, --keep-order       write records in input order\n"
                 "      --inflight K       records written ahead to each worker (default 8)\n"
                 "      --stall SEC        fail a worker that holds records without answering\n"
                 "                         for SEC seconds (default 10, 0 = never)\n"
                 "      --stats            per-stage figures on stderr at the end\n"
                 "      --json             the same figures as one JSON object on stderr\n"
                 "  -h, --help             this help\n"
                 "\n"
                 "On a TTY, stderr shows one line per stage (records/s, queue depth, busy %%)\n"
                 "with the bottleneck marked. Exit status: 0; 1 when a worker failed (exit\n"
                 "status, died, broke the one-line contract) or on an I/O error; 130 on\n"
                 "SIGINT (workers are killed); 141 when stdout is closed early; 64 usage.\n");
}

/* 'CMD:N' -> cmd, N; a ':' followed by anything but digits belongs to CMD. */
static int parse_stage(struct pl_stage *s, char *spec)
{
    char *colon = strrchr(spec, ':'), *end;
    long n = 1;

    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        n = strtol(colon + 1, &end, 10);
        if (n < 1 || n > PL_MAX_WORKERS) {
            cli_warnx("pipeline: stage '%s': workers must be 1..%d", spec, PL_MAX_WORKERS);
            return -1;
        }
        *colon = '\0';
    }
    if (!*spec) {
        cli_warnx("pipeline: empty stage command");
        return -1;
    }
    s->cmd = spec;
    s->nworkers = (int)n;
    return 0;
}

static int parse_count(const char *opt, const char *arg, long min, long max, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(arg, &end, 10);
    if (errno || end == arg || *end || *out < min || *out > max) {
        cli_warnx("pipeline: %s: want a number in %ld..%ld, got '%s'", opt, min, max, arg);
        return -1;
    }
    return 0;
}

static int parse_args(struct pl_run *run, int argc, char **argv)
{
    static const struct option opts[] = {
        {"stage", required_argument, NULL, 's'},
        {"buffer", required_argument, NULL, 'b'},
        {"keep-order", no_argument, NULL, 'k'},
        {"inflight", required_argument, NULL, 'I'},
        {"stall", required_argument, NULL, 'T'},
        {"stats", no_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long v;

    while ((c = getopt_long(argc, argv, "s:b:kh", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            struct pl_stage *ns = realloc(run->stages, (size_t)(run->nstages + 1) * sizeof *ns);
            if (!ns)
                return -1;
            run->stages = ns;
            memset(&ns[run->nstages], 0, sizeof *ns);
            if (parse_stage(&ns[run->nstages], optarg) < 0)
                return -1;
            run->nstages++;
            break;
        }
        case 'b':
            if (parse_count("--buffer", optarg, 1, 1 << 24, &v) < 0)
                return -1;
            run->buffer = (size_t)v;
            break;
        case 'I':
            if (parse_count("--inflight", optarg, 1, 4096, &v) < 0)
                return -1;
            run->inflight = (size_t)v;
            break;
        case 'T':
            if (parse_count("--stall", optarg, 0, 86400 * 365, &v) < 0)
                return -1;
            run->stall_ms = v * 1000;
            break;
        case 'k':
            run->keep_order = 1;
            break;
        case 'S':
            run->stats = 1;
            break;
        case 'J':
            run->json = 1;
            break;
        case 'h':
            usage(stdout);
            exit(CLI_EX_OK);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        cli_warnx("pipeline: unexpected argument '%s' (stages are given with --stage)",
                  argv[optind]);
        return -1;
    }
    if (!run->nstages) {
        cli_warnx("pipeline: at least one --stage is needed");
        return -1;
    }
    return 0;
}

/* Queues, workers and the --keep-order window (everything the stages can
 * hold at once, so the window never limits a pipeline that is moving). */
static int setup(struct pl_run *run)
{
    size_t hold = run->buffer;

    for (int i = 0; i < run->nstages; i++) {
        struct pl_stage *s = &run->stages[i];
        s->run = run;
        s->index = i;
        s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
        s->in = chan_new(sizeof(struct rec *), run->buffer);
        if (!s->workers || !s->in)
            return -1;
        if (i > 0)
            run->stages[i - 1].out = s->in;
        hold += run->buffer + (size_t)s->nworkers * run->inflight;
    }
    run->outq = chan_new(sizeof(struct rec *), run->buffer);
    if (!run->outq)
        return -1;
    run->stages[run->nstages - 1].out = run->outq;
    run->window_size = hold;
    return coro_sem_init(&run->window, hold);
}

static void drain_free(chan_t *ch)
{
    struct rec *r;

    if (!ch)
        return;
    while (chan_try_recv(ch, &r) == 0)
        free(r);
    chan_free(ch);
}

static void teardown(struct pl_run *run)
{
    pl_stages_free(run);
    for (int i = 0; i < run->nstages; i++)
        drain_free(run->stages[i].in);
    drain_free(run->outq);
    free(run->stages);
    free(run->live_prev);
}

static int io_setup(void)
{
    struct sigaction sa;

    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int fd = 0; fd < 2; fd++) {
        fl_saved[fd] = fcntl(fd, F_GETFL);
        if (fl_saved[fd] < 0 || fcntl(fd, F_SETFL, fl_saved[fd] | O_NONBLOCK) < 0)
            return -1;
    }
    return 0;
}

static void io_restore(void)
{
    for (int fd = 0; fd < 2; fd++)
        if (fl_saved[fd] >= 0)
            fcntl(fd, F_SETFL, fl_saved[fd]);
    for (int i = 0; i < 2; i++)
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
}

static int exit_status(const struct pl_run *run)
{
    if (run->interrupted)
        return 128 + run->interrupted;
    if (run->failed)
        return CLI_EX_FAIL;
    if (run->io_error)
        return run->io_error == EPIPE ? 128 + SIGPIPE : CLI_EX_FAIL;
    return CLI_EX_OK;
}

int cmd_pipeline(int argc, char **argv)
{
    struct pl_run run = {.buffer = PL_DEFAULT_BUFFER,
                         .inflight = PL_DEFAULT_INFLIGHT,
                         .stall_ms = PL_DEFAULT_STALL_MS};
    struct coro_config cfg;
    int rc = CLI_EX_OSERR;

    if (parse_args(&run, argc, argv) < 0) {
        free(run.stages);
        return CLI_EX_USAGE;
    }
    run.tty = isatty(2);
    coro_scope_init(&run.scope);
    if (setup(&run) < 0) {
        cli_warn("pipeline: setup");
        goto out;
    }
    if (io_setup() < 0) {
        cli_warn("pipeline: stdin/stdout");
        goto out;
    }
    coro_config_default(&cfg);
    cfg.workers = 1; /* the work is in the child processes; see pipeline.h */
    run.start_ns = pl_now_ns();
    if (coro_run(&cfg, pl_main, &run) < 0) {
        cli_warn("pipeline: cannot start the runtime");
        rc = CLI_EX_SOFTWARE;
        goto out;
    }
    if (run.stats || run.json)
        pl_stats_print(&run);
    rc = exit_status(&run);
out:
    io_restore();
    teardown(&run);
    return rc;
}
