/*
 * parallel_job.c - one job of `coro parallel`: start the process in its own
 * process group, collect stdout and stderr through coroutine I/O while it
 * runs, enforce --timeout on the whole group, retry with backoff, then
 * report it: grouped output (or whole lines with --line-buffer), --json
 * records, the joblog and the --results directory, in --keep-order when
 * asked.
 *
 * A job waits for its two pipes and its pidfd at once through a small
 * epoll set of its own, parked on with coro_wait_fd: no extra coroutine per
 * job, and the job ends when its process ends, not when the last background
 * grandchild closes the pipes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "coro/backoff.h"
#include "coro/io.h"
#include "coro/proc.h"
#include "cli.h"
#include "parallel.h"

#define TERM_GRACE_MS 200   /* SIGTERM, then SIGKILL this much later */
#define READ_CHUNK 16384
#define PID_POLL_MS 20     /* no pidfd: how often to check for the exit */

double par_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void par_buf_add(struct par_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            cli_warnx("parallel: out of memory");
            exit(CLI_EX_OSERR);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* ---- output --------------------------------------------------------------- */

static void out_write(int fd, const char *p, size_t n)
{
    if (n && coro_write_all(fd, p, n, -1) < 0 && errno != EPIPE)
        cli_warn("parallel: write");
}

/* --line-buffer: print the whole lines of b now, keep the partial tail. */
static void flush_lines(struct par *P, struct par_buf *b, int fd)
{
    char *nl = b->len ? memrchr(b->p, '\n', b->len) : NULL;
    if (!nl)
        return;
    size_t n = (size_t)(nl - b->p) + 1;
    coro_mutex_lock(&P->out_mu);
    out_write(fd, b->p, n);
    coro_mutex_unlock(&P->out_mu);
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void json_str(struct par_buf *b, const char *s, size_t n)
{
    par_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            par_buf_add(b, esc, 2);
        } else if (c == '\n') {
            par_buf_add(b, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            par_buf_add(b, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
        } else {
            par_buf_add(b, s + i, 1);
        }
    }
    par_buf_add(b, "\"", 1);
}

static void emit_json(struct par_job *j)
{
    struct par_buf b = {0};
    char num[160];
    par_buf_add(&b, num, (size_t)snprintf(num, sizeof(num), "{\"seq\":%llu,\"command\":",
                                          (unsigned long long)j->seq));
    json_str(&b, j->cmd, strlen(j->cmd));
    par_buf_add(&b, num, (size_t)snprintf(num, sizeof(num),
        ",\"exitval\":%d,\"signal\":%d,\"start\":%.3f,\"runtime\":%.3f,\"attempts\":%d,"
        "\"timeout\":%s,\"skipped\":%s,\"stdout\":",
        j->exitval, j->sig, j->start, j->runtime, j->attempts,
        j->timed_out ? "true" : "false", j->skipped ? "true" : "false"));
    json_str(&b, j->out.p ? j->out.p : "", j->out.len);
    par_buf_add(&b, ",\"stderr\":", 10);
    json_str(&b, j->err.p ? j->err.p : "", j->err.len);
    par_buf_add(&b, "}\n", 2);
    out_write(1, b.p, b.len);
    free(b.p);
}

/* Print one job's results; out_mu held. */
static void emit(struct par *P, struct par_job *j)
{
    if (j->skipped)
        return;
    if (P->o.dry_run) {
        out_write(1, j->cmd, strlen(j->cmd));
        out_write(1, "\n", 1);
    } else if (P->o.json) {
        emit_json(j);
    } else {
        out_write(1, j->out.p, j->out.len);
        out_write(2, j->err.p, j->err.len);
    }
}

static void write_file(const char *dir, const char *name, const char *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        cli_warn("parallel: %s", path);
    if (fd >= 0)
        close(fd);
}

/* --results DIR: DIR/<seq>/{stdout,stderr,exitval,cmd}. */
static void save_results(struct par *P, struct par_job *j)
{
    char dir[4096], val[32];
    snprintf(dir, sizeof(dir), "%s/%llu", P->o.results, (unsigned long long)j->seq);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        cli_warn("parallel: %s", dir);
        return;
    }
    write_file(dir, "stdout", j->out.p, j->out.len);
    write_file(dir, "stderr", j->err.p, j->err.len);
    int n = j->sig ? snprintf(val, sizeof(val), "%d\n", 128 + j->sig)
                   : snprintf(val, sizeof(val), "%d\n", j->exitval);
    write_file(dir, "exitval", val, (size_t)n);
    write_file(dir, "cmd", j->cmd, strlen(j->cmd));
}

static void keep_order_insert(struct par *P, struct par_job *j)
{
    j->next = NULL;
    if (!P->pending || P->pending_tail->seq < j->seq) {
        if (P->pending)
            P->pending_tail->next = j;
        else
            P->pending = j;
        P->pending_tail = j;
        return;
    }
    struct par_job **pp = &P->pending;
    while ((*pp)->seq < j->seq)
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
}

static void pending_pop_ready(struct par *P, int all)
{
    while (P->pending && (all || P->pending->seq == P->next_out)) {
        struct par_job *j = P->pending;
        P->pending = j->next;
        if (!P->pending)
            P->pending_tail = NULL;
        emit(P, j);
        P->next_out = j->seq + 1;
        par_job_free(j);
    }
}

void par_flush_pending(struct par *P)
{
    coro_mutex_lock(&P->out_mu);
    pending_pop_ready(P, 1);
    coro_mutex_unlock(&P->out_mu);
}

void par_job_report(struct par *P, struct par_job *j)
{
    coro_mutex_lock(&P->out_mu);
    if (!j->skipped && !P->o.dry_run) {
        if (P->joblog) {
            fprintf(P->joblog, "%llu\t:\t%.3f\t%10.3f\t0\t%zu\t%d\t%d\t%s\n",
                    (unsigned long long)j->seq, j->start, j->runtime, j->out.len, j->exitval,
                    j->sig, j->cmd);
            fflush(P->joblog);
        }
        if (P->o.results)
            save_results(P, j);
    }
    if (P->o.keep_order) {
        keep_order_insert(P, j);
        pending_pop_ready(P, 0);
    } else {
        emit(P, j);
        par_job_free(j);
    }
    coro_mutex_unlock(&P->out_mu);
}

/* ---- running ---------------------------------------------------------------- */

static void run_link(struct par *P, struct par_job *j, coro_proc_t *p)
{
    coro_mutex_lock(&P->mu);
    j->proc = p;
    j->rprev = NULL;
    j->rnext = P->run_head;
    if (P->run_head)
        P->run_head->rprev = j;
    P->run_head = j;
    coro_mutex_unlock(&P->mu);
}

static void run_unlink(struct par *P, struct par_job *j)
{
    coro_mutex_lock(&P->mu);
    if (j->rprev)
        j->rprev->rnext = j->rnext;
    else
        P->run_head = j->rnext;
    if (j->rnext)
        j->rnext->rprev = j->rprev;
    j->proc = NULL;
    coro_mutex_unlock(&P->mu);
}

void par_kill_all(struct par *P, int sig)
{
    coro_mutex_lock(&P->mu);
    for (struct par_job *j = P->run_head; j; j = j->rnext)
        coro_proc_kill(j->proc, sig);
    coro_mutex_unlock(&P->mu);
}

/* What one attempt watches: the two pipes and the pidfd-backed wait. */
struct attempt {
    struct par *P;
    struct par_job *j;
    coro_proc_t *p;
    int ep;              /* epoll set: stdout, stderr, pid */
    int open_fds;        /* pipes not at EOF yet */
    int pidfd_in_set;
};

/* Read fd until EAGAIN; 0 at EOF (fd leaves the set), 1 otherwise. */
static int drain(struct attempt *a, int fd, struct par_buf *b, int outfd)
{
    char chunk[READ_CHUNK];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r > 0) {
            par_buf_add(b, chunk, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (a->P->o.line_buffer && !a->P->o.keep_order && !a->P->o.json)
                flush_lines(a->P, b, outfd);
            return 1;
        }
        epoll_ctl(a->ep, EPOLL_CTL_DEL, fd, NULL);
        a->open_fds--;
        return 0;
    }
}

static void drain_both(struct attempt *a, int *out_open, int *err_open)
{
    if (*out_open)
        *out_open = drain(a, coro_proc_stdout(a->p), &a->j->out, 1);
    if (*err_open)
        *err_open = drain(a, coro_proc_stderr(a->p), &a->j->err, 2);
}

/* Kill the job's process group: TERM, then KILL if it lingers. */
static void kill_group(struct attempt *a)
{
    coro_proc_kill(a->p, SIGTERM);
    int st;
    coro_proc_wait(a->p, TERM_GRACE_MS, &st); /* also KILLs what the leader left behind */
    coro_proc_kill(a->p, SIGKILL);
}

static int64_t left_ms(uint64_t deadline)
{
    if (!deadline)
        return -1;
    uint64_t now = coro_now_ms();
    return deadline > now ? (int64_t)(deadline - now) : 0;
}

/* Collect output until the process ends or the deadline passes. Returns
 * 0 with *status, or -1 (timed out: status not yet known). */
static int collect(struct attempt *a, uint64_t deadline, int *status)
{
    int out_open = 1, err_open = 1;
    struct epoll_event evs[3];
    for (;;) {
        drain_both(a, &out_open, &err_open);
        if (coro_proc_wait(a->p, 0, status) == 0) {
            drain_both(a, &out_open, &err_open); /* what it wrote before exiting */
            return 0;
        }
        if (epoll_wait(a->ep, evs, 3, 0) > 0)
            continue;
        int64_t left = left_ms(deadline);
        if (left == 0)
            return -1;
        if (!a->pidfd_in_set && (left < 0 || left > PID_POLL_MS))
            left = PID_POLL_MS;
        if (coro_wait_fd(a->ep, CORO_READ, left) < 0 && errno != ETIMEDOUT)
            return -1;
    }
}

static int attempt_setup(struct attempt *a)
{
    a->ep = epoll_create1(EPOLL_CLOEXEC);
    if (a->ep < 0)
        return -1;
    int fds[2] = {coro_proc_stdout(a->p), coro_proc_stderr(a->p)};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(a->ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
            return -1;
    }
    a->open_fds = 2;
    /* The pidfd turns readable when the process ends. Without one (old
     * kernels) collect() polls the exit every PID_POLL_MS instead. */
    int pidfd = coro_proc_pidfd(a->p);
    if (pidfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = pidfd};
        if (epoll_ctl(a->ep, EPOLL_CTL_ADD, pidfd, &ev) < 0)
            return -1;
        a->pidfd_in_set = 1;
    }
    return 0;
}

static void spawn_failed(struct par_job *j)
{
    int e = errno;
    char msg[512];
    const char *what = j->argv ? j->argv[0] : "/bin/sh";
    int n = snprintf(msg, sizeof(msg), "coro parallel: %s: %s\n", what,
                     e == ENOENT ? "command not found" : strerror(e));
    par_buf_add(&j->err, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    j->exitval = e == ENOENT ? 127 : 126; /* what sh -c would report */
    j->sig = 0;
}

static void decode_status(struct par_job *j, int st)
{
    if (WIFSIGNALED(st)) {
        j->exitval = 0;
        j->sig = WTERMSIG(st);
    } else {
        j->exitval = WEXITSTATUS(st);
        j->sig = 0;
    }
    if (j->timed_out)
        j->exitval = -1; /* as GNU parallel's joblog shows a timeout */
}

static void run_once(struct par *P, struct par_job *j, uint64_t deadline)
{
    struct coro_proc_opts o = {
        .argv = (const char *const *)j->argv,
        .shell_cmd = j->argv ? NULL : j->cmd,
        .in = P->input_is_stdin || isatty(0) ? CORO_PROC_NULL : CORO_PROC_INHERIT,
        .out = CORO_PROC_PIPE,
        .err = CORO_PROC_PIPE,
        .new_pgrp = 1,
    };
    coro_proc_t *p = coro_proc_spawn(&o);
    if (!p) {
        spawn_failed(j);
        return;
    }
    run_link(P, j, p);
    struct attempt a = {.P = P, .j = j, .p = p, .ep = -1};
    int st = 0;
    if (attempt_setup(&a) < 0 || collect(&a, deadline, &st) < 0) {
        j->timed_out = deadline && left_ms(deadline) == 0;
        kill_group(&a);
        while (coro_proc_wait(p, -1, &st) < 0 && errno == ECANCELED)
            ;
        int out_open = 1, err_open = 1;
        drain_both(&a, &out_open, &err_open); /* what is left in the pipes */
        if (j->timed_out)
            cli_warnx("parallel: job %llu timed out, killed: %s", (unsigned long long)j->seq,
                      j->cmd);
    }
    if (a.ep >= 0)
        coro_close(a.ep);
    run_unlink(P, j);
    decode_status(j, st);
    coro_proc_free(p);
}

static int flag(const int *f)
{
    return __atomic_load_n(f, __ATOMIC_RELAXED);
}

void par_job_run(struct par *P, struct par_job *j)
{
    /* Doubling from --backoff MIN up to MAX; equal jitter keeps at least
     * half the delay, so retries of jobs that failed together spread out
     * without hammering at once. */
    struct coro_backoff bo;
    if (P->o.retries > 1)
        coro_backoff_init(&bo, (uint64_t)P->o.backoff_min_ms, (uint64_t)P->o.backoff_max_ms,
                          CORO_JITTER_EQUAL, 0);
    j->start = par_now();
    for (unsigned n = 1;; n++) {
        j->attempts = (int)n;
        j->out.len = j->err.len = 0;
        j->timed_out = 0;
        uint64_t deadline = P->o.timeout_ms >= 0 ? coro_now_ms() + (uint64_t)P->o.timeout_ms : 0;
        run_once(P, j, deadline);
        if ((j->exitval == 0 && j->sig == 0) || n >= P->o.retries || flag(&P->halted) ||
            flag(&P->signo))
            break;
        coro_mutex_lock(&P->mu);
        P->retried++;
        coro_mutex_unlock(&P->mu);
        if (coro_sleep_ms(coro_backoff_next(&bo)) < 0)
            break;
    }
    j->runtime = par_now() - j->start;
}

/* ---- joblog and --resume ---------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Collect the seqs an existing joblog shows done: any line for --resume,
 * lines with exit 0 and no signal for --resume-failed. */
static int joblog_read(struct par *P, FILE *f)
{
    char line[8192];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long seq;
        int exitval, sig;
        if (sscanf(line, "%llu\t%*s\t%*f\t%*f\t%*d\t%*d\t%d\t%d", &seq, &exitval, &sig) != 3)
            continue;
        if (P->o.resume_failed && (exitval != 0 || sig != 0))
            continue;
        if (P->ndone == cap) {
            cap = cap ? cap * 2 : 256;
            uint64_t *n = realloc(P->done_seqs, cap * sizeof(*n));
            if (!n)
                return -1;
            P->done_seqs = n;
        }
        P->done_seqs[P->ndone++] = seq;
    }
    if (P->ndone)
        qsort(P->done_seqs, P->ndone, sizeof(*P->done_seqs), cmp_u64);
    return 0;
}

int par_joblog_open(struct par *P)
{
    if (!P->o.joblog)
        return 0;
    int resume = P->o.resume || P->o.resume_failed;
    if (resume) {
        FILE *f = fopen(P->o.joblog, "r");
        if (f) {
            int r = joblog_read(P, f);
            fclose(f);
            if (r < 0)
                return -1;
        }
    }
    P->joblog = fopen(P->o.joblog, resume ? "a" : "w");
    if (!P->joblog) {
        cli_warn("parallel: %s", P->o.joblog);
        return -1;
    }
    if (ftell(P->joblog) == 0)
        fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
              P->joblog);
    fflush(P->joblog);
    return 0;
}
