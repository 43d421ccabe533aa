/*
 * pipeline_stage.c - the worker processes of `coro pipeline` stages.
 *
 * Each worker is a long-lived `/bin/sh -c CMD` with pipes on stdin and
 * stdout and two coroutines: a feeder takes records from the stage's queue
 * and writes their lines to the process, a collector reads the answers and
 * passes them on. The contract is one line out per line in, in order, so
 * the collector pairs each answer with the oldest record in flight (which
 * keeps its sequence number for --keep-order). Several records may be in
 * flight per process (run->inflight) so a worker never idles for a round
 * trip, and a stage's workers share one input queue, so a free worker
 * takes the next record (dynamic balancing).
 *
 * Violations of the contract are failures with a message: an output line
 * with no record in flight (the command writes extra lines), an output
 * that ends while records are in flight or before the input ended (the
 * command died or dropped lines), a non-zero exit status. Output withheld
 * (a command that buffers) is caught by the watchdog in pipeline_stats.c.
 * Not for: option parsing, stdin/stdout (pipeline.c), figures (pipeline_stats.c).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "coro/io.h"
#include "cli.h"
#include "lineio.h"
#include "pipeline.h"

#define PL_WRITE_BATCH 64
#define PL_MAX_LINE (64u << 20)
#define PL_STOP_GRACE_MS 2000

/* Busy means records in flight whose answers can move on: time blocked on
 * a full downstream queue is the next stage's doing, not this one's. */
static void busy_update(struct pl_worker *w)
{
    int active = w->count > 0 && !w->out_blocked;
    uint64_t now = pl_now_ns();

    if (active && !w->busy_since) {
        w->busy_since = now;
        w->last_progress_ns = now;
    } else if (!active && w->busy_since) {
        w->busy_ns += now - w->busy_since;
        w->busy_since = 0;
    }
}

uint64_t pl_worker_busy(const struct pl_worker *w, uint64_t now)
{
    return w->busy_ns + (w->busy_since ? now - w->busy_since : 0);
}

static void inflight_push(struct pl_worker *w, struct rec *r)
{
    w->inflight[(w->head + w->count) % w->stage->run->inflight] = r;
    w->count++;
    if (w->count == 1)
        busy_update(w);
}

static struct rec *inflight_pop(struct pl_worker *w)
{
    struct rec *r = w->inflight[w->head];
    w->head = (w->head + 1) % w->stage->run->inflight;
    w->count--;
    if (w->count == 0)
        busy_update(w);
    coro_sem_post(&w->slots);
    return r;
}

/* Take up to PL_WRITE_BATCH records (at least one, waiting for it) within
 * the free in-flight slots: 0 at the end of input, -1 when cancelled. */
static int take_batch(struct pl_worker *w, struct iovec *iov, int *n)
{
    struct pl_stage *s = w->stage;
    struct rec *r;

    *n = 0;
    if (coro_sem_wait(&w->slots) < 0)
        return -1;
    if (chan_recv(s->in, &r) < 0) {
        coro_sem_post(&w->slots);
        return errno == EPIPE ? 0 : -1;
    }
    do {
        s->records_in++;
        inflight_push(w, r);
        iov[*n].iov_base = r->data;
        iov[(*n)++].iov_len = r->len;
        if (*n == PL_WRITE_BATCH || coro_sem_trywait(&w->slots) < 0)
            break;
        if (chan_try_recv(s->in, &r) < 0) {
            coro_sem_post(&w->slots);
            break;
        }
    } while (1);
    return *n;
}

static void feeder(void *arg)
{
    struct pl_worker *w = arg;
    struct iovec iov[PL_WRITE_BATCH];
    int n, fd = coro_proc_stdin(w->proc);

    /* A write error (EPIPE: the process is gone) stops feeding quietly: the
     * collector sees the records left in flight and reports the worker. */
    while (take_batch(w, iov, &n) > 0 && coro_writev(fd, iov, n, -1) == 0)
        ;
    coro_proc_close_stdin(w->proc);
    w->stdin_closed = 1;
}

static struct rec *answer(struct pl_worker *w, const char *line, size_t n)
{
    int add_nl = line[n - 1] != '\n';
    struct rec *old = inflight_pop(w);
    struct rec *r = malloc(sizeof *r + n + (size_t)add_nl);

    if (r) {
        r->seq = old->seq;
        r->len = (uint32_t)(n + (size_t)add_nl);
        memcpy(r->data, line, n);
        if (add_nl)
            r->data[n] = '\n';
    }
    free(old);
    return r;
}

static int pass_on(struct pl_worker *w, struct rec *r)
{
    struct pl_stage *s = w->stage;

    if (chan_try_send(s->out, &r) < 0) {
        w->out_blocked = 1;
        busy_update(w);
        int rc = chan_send(s->out, &r);
        w->out_blocked = 0;
        busy_update(w);
        if (rc < 0) {
            free(r);
            return -1;
        }
    }
    s->records_out++;
    if (s->index + 1 < s->run->nstages) {
        struct pl_stage *next = &s->run->stages[s->index + 1];
        size_t q = chan_len(s->out);
        if (q > next->queue_peak)
            next->queue_peak = q;
    }
    return 0;
}

/* The output of w ended: a failure unless every record was answered and
 * the input had ended first. */
static void check_eof(struct pl_worker *w)
{
    struct pl_stage *s = w->stage;
    pid_t pid = coro_proc_pid(w->proc);

    if (w->count)
        pl_fail(s->run, "stage %d worker %d (pid %d): output ended with %zu record%s unanswered",
                s->index + 1, w->index + 1, (int)pid, w->count, w->count == 1 ? "" : "s");
    else if (!w->stdin_closed)
        pl_fail(s->run, "stage %d worker %d (pid %d): output ended before its input", s->index + 1,
                w->index + 1, (int)pid);
}

static void check_status(struct pl_worker *w)
{
    struct pl_stage *s = w->stage;
    int st;

    if (coro_proc_wait(w->proc, -1, &st) < 0)
        return;
    w->reaped = 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    if (WIFEXITED(st))
        pl_fail(s->run, "stage %d worker %d (pid %d): exited with status %d", s->index + 1,
                w->index + 1, (int)coro_proc_pid(w->proc), WEXITSTATUS(st));
    else
        pl_fail(s->run, "stage %d worker %d (pid %d): killed by signal %d", s->index + 1,
                w->index + 1, (int)coro_proc_pid(w->proc), WTERMSIG(st));
}

static void collect(struct pl_worker *w, struct lineio_reader *rd)
{
    struct pl_stage *s = w->stage;
    char *line;
    ssize_t n;

    while ((n = lineio_read_line(rd, &line)) > 0) {
        if (!w->count) {
            pl_fail(s->run,
                    "stage %d worker %d (pid %d): wrote a line for no record "
                    "(a stage command must write one line per input line)",
                    s->index + 1, w->index + 1, (int)coro_proc_pid(w->proc));
            return;
        }
        w->last_progress_ns = pl_now_ns();
        struct rec *r = answer(w, line, (size_t)n);
        if (!r) {
            pl_fail(s->run, "out of memory");
            return;
        }
        if (pass_on(w, r) < 0)
            return;
    }
    if (n < 0) {
        if (errno != ECANCELED)
            pl_fail(s->run, "stage %d worker %d: reading its output: %s", s->index + 1,
                    w->index + 1, strerror(errno));
        return;
    }
    check_eof(w);
    if (!s->run->failed)
        check_status(w);
}

static void collector(void *arg)
{
    struct pl_worker *w = arg;
    struct pl_stage *s = w->stage;
    struct lineio_reader rd;

    if (lineio_reader_init(&rd, coro_proc_stdout(w->proc), PL_MAX_LINE) < 0) {
        pl_fail(s->run, "out of memory");
    } else {
        collect(w, &rd);
        lineio_reader_fini(&rd);
    }
    w->done = 1;
    if (--s->collectors_live == 0)
        chan_close(s->out);
}

static int worker_start(struct pl_stage *s, struct pl_worker *w)
{
    struct coro_proc_opts o = {
        .shell_cmd = s->cmd,
        .in = CORO_PROC_PIPE,
        .out = CORO_PROC_PIPE,
        .err = CORO_PROC_INHERIT,
        .new_pgrp = 1,
    };

    w->stage = s;
    w->inflight = calloc(s->run->inflight, sizeof *w->inflight);
    if (!w->inflight || coro_sem_init(&w->slots, s->run->inflight) < 0) {
        cli_warn("pipeline: stage %d", s->index + 1);
        return -1;
    }
    w->sem_ok = 1;
    w->proc = coro_proc_spawn(&o);
    if (!w->proc) {
        cli_warn("pipeline: stage %d: cannot start '%s'", s->index + 1, s->cmd);
        return -1;
    }
    if (!coro_scope_spawn(&s->run->scope, feeder, w) ||
        !coro_scope_spawn(&s->run->scope, collector, w)) {
        cli_warn("pipeline: stage %d", s->index + 1);
        return -1;
    }
    s->collectors_live++;
    return 0;
}

int pl_stages_start(struct pl_run *run)
{
    for (int i = 0; i < run->nstages; i++) {
        struct pl_stage *s = &run->stages[i];
        for (int j = 0; j < s->nworkers; j++) {
            s->workers[j].index = j;
            if (worker_start(s, &s->workers[j]) < 0)
                return -1;
        }
    }
    return 0;
}

/* Ask politely (sig), then insist: a worker must not outlive the run. */
static void worker_stop(struct pl_worker *w, int sig)
{
    int st;

    if (!w->reaped) {
        if (sig)
            coro_proc_kill(w->proc, sig);
        if (coro_proc_wait(w->proc, PL_STOP_GRACE_MS, &st) < 0) {
            coro_proc_kill(w->proc, SIGKILL);
            coro_proc_wait(w->proc, -1, &st);
        }
        w->reaped = 1;
    }
}

void pl_stages_stop(struct pl_run *run, int sig)
{
    for (int i = 0; i < run->nstages; i++)
        for (int j = 0; j < run->stages[i].nworkers; j++) {
            struct pl_worker *w = &run->stages[i].workers[j];
            if (w->proc)
                worker_stop(w, sig);
        }
}

void pl_stages_free(struct pl_run *run)
{
    for (int i = 0; i < run->nstages; i++) {
        struct pl_stage *s = &run->stages[i];
        for (int j = 0; s->workers && j < s->nworkers; j++) {
            struct pl_worker *w = &s->workers[j];
            for (; w->count; w->count--, w->head = (w->head + 1) % run->inflight)
                free(w->inflight[w->head]);
            if (w->proc)
                coro_proc_free(w->proc);
            if (w->sem_ok)
                coro_sem_fini(&w->slots);
            free(w->inflight);
        }
        free(s->workers);
    }
}

void pl_kill_all(struct pl_run *run, int sig)
{
    for (int i = 0; i < run->nstages; i++)
        for (int j = 0; j < run->stages[i].nworkers; j++) {
            struct pl_worker *w = &run->stages[i].workers[j];
            if (w->proc && !w->reaped)
                coro_proc_kill(w->proc, sig);
        }
}
