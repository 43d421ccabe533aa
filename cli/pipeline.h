/*
 * pipeline.h - what the files of `coro pipeline` share: records, stages,
 * workers and the run state.
 *
 * Everything runs on ONE runtime worker (the CPU work is in the child
 * processes; the coroutines only move lines), so these structs are touched
 * by one thread and need no locks or atomics. pipeline.c parses options and
 * drives a run, pipeline_stage.c runs the worker processes of a stage,
 * pipeline_stats.c shows and prints the per-stage figures.
 */
#ifndef CORO_CLI_PIPELINE_H
#define CORO_CLI_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "coro/proc.h"
#include "coro/sync.h"

/* One line record; data holds the line with its '\n'. */
struct rec {
    uint64_t seq;
    uint32_t len;
    char data[];
};

struct pl_run;
struct pl_stage;

/* One long-lived worker process of a stage and its in-flight records. */
struct pl_worker {
    struct pl_stage *stage;
    int index;
    coro_proc_t *proc;
    struct rec **inflight; /* ring of records written to the process, oldest first */
    size_t head, count;
    coro_sem_t slots;             /* free places in inflight: caps records per process */
    int out_blocked;              /* its collector is waiting for room downstream */
    uint64_t busy_ns, busy_since; /* busy = records in flight and output moving */
    uint64_t last_progress_ns;    /* last output line, or work handed while idle */
    int done;                     /* collector finished */
    int stdin_closed;             /* the feeder has ended (end of input, or failure) */
    int reaped;                   /* exit status collected */
    int sem_ok;
};

struct pl_stage {
    struct pl_run *run;
    int index;
    const char *cmd;
    int nworkers;
    struct pl_worker *workers;
    chan_t *in;  /* records for this stage (struct rec *) */
    chan_t *out; /* the next stage's in, or the output queue */
    uint64_t records_in, records_out;
    size_t queue_peak;
    int collectors_live; /* the last collector to end closes out */
    int feeders_live;
};

struct pl_run {
    struct pl_stage *stages;
    int nstages;
    size_t buffer;   /* records per stage queue */
    size_t inflight; /* records per worker process */
    int keep_order, stats, json, tty;
    int64_t stall_ms;  /* a worker with work and no output this long fails */
    chan_t *outq;      /* after the last stage */
    coro_sem_t window; /* --keep-order: records between reader and output */
    size_t window_size;
    uint64_t records_read, records_written;
    uint64_t start_ns, end_ns;
    uint64_t *live_prev, live_t; /* last figures drawn on the TTY */
    int live_drawn;
    coro_scope_t scope;
    int failed;      /* a worker failed (message printed) */
    int interrupted; /* SIGINT/SIGTERM */
    int io_error;    /* stdin/stdout failed */
};

uint64_t pl_now_ns(void);
/* Record the failure once: print msg, kill every worker, cancel the run. */
void pl_fail(struct pl_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pl_abort(struct pl_run *run);

/* pipeline_stage.c: spawn the processes and the feeder/collector coroutines
 * of every stage (in run->scope). 0 or -1 with a message printed. */
int pl_stages_start(struct pl_run *run);
/* Send sig (0: none) to what is still running, wait a grace period, then
 * SIGKILL: no worker outlives the run. Coroutine only; may yield. */
void pl_stages_stop(struct pl_run *run, int sig);
/* Signal every worker not yet reaped (its process group). Does not yield. */
void pl_kill_all(struct pl_run *run, int sig);
/* Free processes, in-flight records and worker arrays. */
void pl_stages_free(struct pl_run *run);
/* Busy time of w up to now (includes the running busy period). */
uint64_t pl_worker_busy(const struct pl_worker *w, uint64_t now);

/* pipeline_stats.c */
/* Redraw one line per stage on stderr (a TTY); with done set, erase them. */
void pl_stats_live(struct pl_run *run, int done);
/* Fail workers that hold records and have not answered for run->stall_ms. */
void pl_stats_watchdog(struct pl_run *run, uint64_t now);
void pl_stats_print(struct pl_run *run);
/* Index of the stage whose workers were busiest (the bottleneck). */
int pl_stats_bottleneck(const struct pl_run *run, uint64_t now);

#endif
