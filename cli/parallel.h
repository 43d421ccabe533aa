/*
 * parallel.h - what the files of `coro parallel` share: options, the run's
 * state, one job, and the functions each file provides (parallel.c parses
 * and schedules, parallel_input.c makes jobs from input, parallel_job.c
 * runs a job and reports it).
 */
#ifndef CORO_CLI_PARALLEL_H
#define CORO_CLI_PARALLEL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "coro/coro.h"
#include "coro/sync.h"

struct par_buf {
    char *p;
    size_t len, cap;
};

struct par_job {
    uint64_t seq;
    char *cmd;          /* the command line after substitution */
    char **argv;        /* words to exec directly, or NULL: run through /bin/sh */
    struct par_buf out, err;
    struct par_job *next; /* keep-order queue */
    struct par_job *rnext, *rprev; /* running list, for kills (under P->mu) */
    void *proc;         /* coro_proc_t while an attempt runs */
    double start;       /* epoch seconds when the first attempt started */
    double runtime;     /* seconds, all attempts */
    int exitval, sig;
    int attempts;
    int timed_out;
    int skipped;        /* --resume: counted but not run */
};

enum par_halt_when { PAR_HALT_NEVER, PAR_HALT_SOON, PAR_HALT_NOW };

/* A growable set of ::: or :::: values. */
struct par_group {
    char **vals;
    size_t n, cap;
};

struct par_opts {
    unsigned jobs_min, jobs_max;
    int keep_order, line_buffer, dry_run, json, stats, progress;
    int64_t timeout_ms;          /* < 0: none */
    unsigned retries;            /* attempts in total, like GNU parallel; >= 1 */
    int64_t backoff_min_ms, backoff_max_ms;
    enum par_halt_when halt_when;
    int halt_on_success;         /* halt counts successes instead of failures */
    unsigned halt_count;         /* fail=N / success=N */
    double halt_pct;             /* fail=N% (0 when a count) */
    const char *joblog, *results, *arg_file;
    int resume, resume_failed;
    char *tmpl;                  /* command words joined by spaces */
    struct par_group *groups;    /* ::: and :::: groups */
    size_t ngroups;
};

/* The run: shared by the dispatcher and every job coroutine. */
struct par {
    struct par_opts o;
    coro_mutex_t mu;             /* counters and pool size */
    coro_cond_t slot;            /* a job ended (a slot is free) */
    coro_mutex_t out_mu;         /* stdout/stderr, joblog, keep-order queue */
    coro_scope_t jobs;
    unsigned running, limit, peak;
    uint64_t started, ok, failed, skipped, retried, total;
    int halted;                  /* stop starting jobs */
    int halt_status;             /* exit status decided by --halt, or -1 */
    int signo;                   /* SIGINT/SIGTERM received, or 0 */
    struct par_job *run_head;    /* jobs with a live process */
    struct par_job *pending, *pending_tail; /* keep-order: ended jobs by seq */
    uint64_t next_out;           /* keep-order: the seq printed next */
    FILE *joblog;
    uint64_t *done_seqs;         /* --resume: seqs the joblog shows (sorted) */
    size_t ndone;
    double t0;
    struct par_input *in;
    int input_is_stdin, stdin_flags;
};

/* parallel_input.c */
int par_input_open(struct par *P);
/* Next job (seq set, command composed) or NULL with errno 0 at the end of
 * the input, or NULL with errno set. `idle` is called each time no input
 * arrives for PAR_IDLE_MS. */
struct par_job *par_input_next(struct par *P, void (*idle)(struct par *P));
void par_input_close(struct par *P);
void par_job_free(struct par_job *j);

/* parallel_job.c */
void par_job_run(struct par *P, struct par_job *j);
/* Hand an ended (or skipped) job to the output side; frees it. */
void par_job_report(struct par *P, struct par_job *j);
int par_joblog_open(struct par *P);
void par_kill_all(struct par *P, int sig);
/* Print what keep-order still holds (jobs a halt never ran leave gaps). */
void par_flush_pending(struct par *P);
double par_now(void);
void par_buf_add(struct par_buf *b, const void *p, size_t n);

/* parallel.c: the policy after each ended job (halts, counts). */
void par_job_ended(struct par *P, struct par_job *j);

#define PAR_IDLE_MS 1000   /* no input this long: the pool shrinks by one */
#define PAR_GROW_MS 100    /* all slots busy this long with work waiting: grow */

#endif
