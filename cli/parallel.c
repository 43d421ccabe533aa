/*
 * parallel.c - `coro parallel`: run a command once per input line or per
 * ::: argument, many at a time, like GNU parallel. This file parses the
 * command line, feeds jobs to a pool of job coroutines, sizes the pool,
 * applies --halt, handles SIGINT/SIGTERM and decides the exit status.
 * parallel_input.c makes the jobs, parallel_job.c runs and reports them.
 *
 * Pool policy (--jobs MIN..MAX): start with MIN slots. Each PAR_GROW_MS
 * that a ready job waits with every slot busy adds a slot (up to MAX);
 * each PAR_IDLE_MS in which the pool was never full, or no input arrived,
 * removes one (down to MIN). -j N fixes the pool at N.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "coro/io.h"
#include "coro/proc.h"
#include "cli.h"
#include "parallel.h"

#define TERM_GRACE_MS 200
#define JOBS_ZERO 256   /* -j 0: "as many as possible" */

static struct par *g_par;  /* the run, for the job coroutines */
static coro_t *g_feeder;   /* the dispatcher while it runs (under P->mu) */
static uint64_t g_last_full;

static void usage(FILE *out)
{
    fputs("usage: coro parallel [OPTIONS] COMMAND [ARGS...] [::: VALUES...]... [:::: FILE]...\n",
          out);
    if (out != stdout)
        return;
    fputs(
"\nRun COMMAND once per input line (stdin, or -a FILE) or per ::: value; several\n"
"::: groups combine as their cartesian product. Placeholders: {} the value(s),\n"
"{.} without extension, {/} basename, {//} dirname, {/.} basename without\n"
"extension, {#} job number, {N} the Nth group's value; {} is appended when the\n"
"command has none. Values are shell-quoted; commands run through /bin/sh -c\n"
"unless they need no shell (then exec'd directly, same result).\n"
"\noptions:\n"
"  -j, --jobs N|MIN..MAX  jobs at once (default: CPUs); a range lets the pool\n"
"                         grow while work waits and shrink when idle\n"
"  -k, --keep-order       print outputs in input order\n"
"      --line-buffer      print whole lines as they come (default: a job's\n"
"                         output at once when it ends); ignored with -k\n"
"      --timeout DUR      kill a job's process group after DUR (500ms, 2s, 1m)\n"
"      --retries N        run a failing job up to N times in total\n"
"      --backoff MIN..MAX delay between retries (default 100ms..10s), doubling,\n"
"                         with jitter\n"
"      --halt WHEN,fail=N|success=N|fail=P%   stop: WHEN is now (kill running\n"
"                         jobs) or soon (let them finish); never (default)\n"
"      --joblog FILE      log each job (GNU parallel's format)\n"
"      --resume           skip jobs the joblog shows run\n"
"      --resume-failed    skip jobs the joblog shows succeeded; rerun the rest\n"
"      --results DIR      save DIR/<seq>/{stdout,stderr,exitval,cmd}\n"
"  -a, --arg-file FILE    read input lines from FILE instead of stdin\n"
"      --dry-run          print the commands instead of running them\n"
"      --json             one JSON record per job on stdout instead of output\n"
"      --stats            a summary on stderr at the end\n"
"      --progress         a progress line on stderr (only on a terminal)\n"
"  -h, --help             this help\n"
"\nExit status: 0 when every job succeeded, else the number of failed jobs\n"
"(at most 101); with --halt ...fail the status of the job that halted;\n"
"130/143 after SIGINT/SIGTERM (running jobs are killed).\n", out);
}

/* ---- option parsing ---------------------------------------------------------- */

/* "1.5" (seconds), "500ms", "2s", "3m", "1h" -> ms; -1 on error. */
static int64_t parse_dur(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double mul = 1000;
    if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (*end && strcmp(end, "s"))
        return -1;
    return (int64_t)(v * mul + 0.5);
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > 1000000 || *s == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_jobs(const char *s, struct par_opts *o)
{
    const char *dots = strstr(s, "..");
    char lo[32];
    if (!dots) {
        if (parse_uint(s, &o->jobs_min) < 0)
            return -1;
        o->jobs_max = o->jobs_min;
    } else {
        if ((size_t)(dots - s) >= sizeof(lo))
            return -1;
        memcpy(lo, s, (size_t)(dots - s));
        lo[dots - s] = '\0';
        if (parse_uint(lo, &o->jobs_min) < 0 || parse_uint(dots + 2, &o->jobs_max) < 0)
            return -1;
    }
    if (o->jobs_min == 0 && o->jobs_max == 0)
        o->jobs_min = o->jobs_max = JOBS_ZERO;
    if (o->jobs_min == 0)
        o->jobs_min = 1;
    return o->jobs_max >= o->jobs_min ? 0 : -1;
}

static int parse_range_ms(const char *s, int64_t *lo, int64_t *hi)
{
    const char *dots = strstr(s, "..");
    char a[32];
    if (!dots || (size_t)(dots - s) >= sizeof(a))
        return -1;
    memcpy(a, s, (size_t)(dots - s));
    a[dots - s] = '\0';
    *lo = parse_dur(a);
    *hi = parse_dur(dots + 2);
    return *lo >= 1 && *hi >= *lo ? 0 : -1;
}

/* "now,fail=1", "soon,fail=N", "now,success=1", "soon,fail=30%", "never". */
static int parse_halt(const char *s, struct par_opts *o)
{
    if (!strcmp(s, "never")) {
        o->halt_when = PAR_HALT_NEVER;
        return 0;
    }
    const char *comma = strchr(s, ',');
    if (!comma)
        return -1;
    if (!strncmp(s, "now,", 4))
        o->halt_when = PAR_HALT_NOW;
    else if (!strncmp(s, "soon,", 5))
        o->halt_when = PAR_HALT_SOON;
    else
        return -1;
    const char *v = comma + 1;
    if (!strncmp(v, "fail=", 5)) {
        v += 5;
    } else if (!strncmp(v, "success=", 8)) {
        o->halt_on_success = 1;
        v += 8;
    } else {
        return -1;
    }
    char *end;
    double n = strtod(v, &end);
    if (end == v || n <= 0)
        return -1;
    if (*end == '%' && !end[1] && n <= 100) {
        o->halt_pct = n;
        return 0;
    }
    if (*end || n != (unsigned)n)
        return -1;
    o->halt_count = (unsigned)n;
    return 0;
}

static int group_add(struct par_group *g, char *v)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        char **nv = realloc(g->vals, cap * sizeof(*nv));
        if (!nv)
            return -1;
        g->vals = nv;
        g->cap = cap;
    }
    g->vals[g->n++] = v;
    return 0;
}

/* :::: FILE: the file's lines become a group (kept for the whole run). */
static int group_from_file(struct par_group *g, const char *path)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "r");
    if (!f) {
        cli_warn("parallel: %s", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
        char *v = strdup(line);
        if (!v || group_add(g, v) < 0)
            return -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return 0;
}

/* The command words up to the first ::: / ::::, then the groups. */
static int parse_command(struct par_opts *o, int argc, char **argv)
{
    struct par_buf t = {0};
    int i = 0;
    for (; i < argc && strcmp(argv[i], ":::") && strcmp(argv[i], "::::"); i++) {
        if (t.len)
            par_buf_add(&t, " ", 1);
        par_buf_add(&t, argv[i], strlen(argv[i]));
    }
    o->tmpl = t.p ? t.p : strdup("");
    o->groups = calloc((size_t)argc + 1, sizeof(*o->groups));
    if (!o->tmpl || !o->groups)
        return -1;
    while (i < argc) {
        int from_file = !strcmp(argv[i], "::::");
        struct par_group *g = &o->groups[o->ngroups++];
        for (i++; i < argc && strcmp(argv[i], ":::") && strcmp(argv[i], "::::"); i++)
            if ((from_file ? group_from_file(g, argv[i]) : group_add(g, argv[i])) < 0)
                return -1;
    }
    return 0;
}

enum {
    OPT_LB = 256, OPT_TIMEOUT, OPT_RETRIES, OPT_BACKOFF, OPT_HALT, OPT_JOBLOG, OPT_RESUME,
    OPT_RESUME_FAILED, OPT_RESULTS, OPT_DRY, OPT_JSON, OPT_STATS, OPT_PROGRESS,
};

static const struct option longopts[] = {
    {"jobs", required_argument, NULL, 'j'},
    {"keep-order", no_argument, NULL, 'k'},
    {"line-buffer", no_argument, NULL, OPT_LB},
    {"lb", no_argument, NULL, OPT_LB},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"backoff", required_argument, NULL, OPT_BACKOFF},
    {"halt", required_argument, NULL, OPT_HALT},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"resume-failed", no_argument, NULL, OPT_RESUME_FAILED},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"arg-file", required_argument, NULL, 'a'},
    {"dry-run", no_argument, NULL, OPT_DRY},
    {"json", no_argument, NULL, OPT_JSON},
    {"stats", no_argument, NULL, OPT_STATS},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val)
{
    cli_warnx("parallel: bad %s '%s'", opt, val);
    usage(stderr);
    return -1;
}

static int parse_one(struct par_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'j': return parse_jobs(arg, o) < 0 ? bad("--jobs", arg) : 0;
    case 'k': o->keep_order = 1; return 0;
    case OPT_LB: o->line_buffer = 1; return 0;
    case OPT_TIMEOUT:
        return (o->timeout_ms = parse_dur(arg)) <= 0 ? bad("--timeout", arg) : 0;
    case OPT_RETRIES: return parse_uint(arg, &o->retries) < 0 ? bad("--retries", arg) : 0;
    case OPT_BACKOFF:
        return parse_range_ms(arg, &o->backoff_min_ms, &o->backoff_max_ms) < 0
                   ? bad("--backoff", arg) : 0;
    case OPT_HALT: return parse_halt(arg, o) < 0 ? bad("--halt", arg) : 0;
    case OPT_JOBLOG: o->joblog = arg; return 0;
    case OPT_RESUME: o->resume = 1; return 0;
    case OPT_RESUME_FAILED: o->resume_failed = 1; return 0;
    case OPT_RESULTS: o->results = arg; return 0;
    case 'a': o->arg_file = arg; return 0;
    case OPT_DRY: o->dry_run = 1; return 0;
    case OPT_JSON: o->json = 1; return 0;
    case OPT_STATS: o->stats = 1; return 0;
    case OPT_PROGRESS: o->progress = 1; return 0;
    }
    usage(stderr);
    return -1;
}

/* 0 ok, 1 --help printed, -1 usage error. */
static int parse_args(struct par_opts *o, int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs_min = o->jobs_max = ncpu > 0 ? (unsigned)ncpu : 1;
    o->timeout_ms = -1;
    o->retries = 1;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 10000;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+j:ka:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (parse_one(o, c, optarg) < 0)
            return -1;
    }
    if (o->retries == 0)
        o->retries = 1;
    if ((o->resume || o->resume_failed) && !o->joblog) {
        cli_warnx("parallel: --resume and --resume-failed need --joblog");
        return -1;
    }
    if (parse_command(o, argc - optind, argv + optind) < 0) {
        cli_warnx("parallel: out of memory");
        return -1;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------ */

static int flag_get(const int *f)
{
    return __atomic_load_n(f, __ATOMIC_RELAXED);
}

static void flag_set(int *f, int v)
{
    __atomic_store_n(f, v, __ATOMIC_RELAXED);
}

/* Stop the dispatcher where it waits (input, a slot). P->mu held. */
static void stop_feeder(struct par *P)
{
    if (g_feeder)
        coro_cancel(g_feeder);
    coro_cond_broadcast(&P->slot);
}

static int halt_reached(const struct par *P, uint64_t hits)
{
    const struct par_opts *o = &P->o;
    if (o->halt_pct > 0) {
        uint64_t ended = P->ok + P->failed;
        return ended >= 3 && hits * 100.0 >= o->halt_pct * (double)ended; /* 3: not on the first */
    }
    return hits >= o->halt_count;
}

void par_job_ended(struct par *P, struct par_job *j)
{
    int ok = j->exitval == 0 && j->sig == 0;
    coro_mutex_lock(&P->mu);
    if (ok)
        P->ok++;
    else
        P->failed++;
    P->running--;
    if (P->o.halt_when != PAR_HALT_NEVER && !P->halted && ok == P->o.halt_on_success &&
        halt_reached(P, ok ? P->ok : P->failed)) {
        flag_set(&P->halted, 1);
        P->halt_status = ok ? 0 : (j->exitval > 0 ? j->exitval : 1);
        stop_feeder(P);
        if (P->o.halt_when == PAR_HALT_NOW) {
            for (struct par_job *r = P->run_head; r; r = r->rnext)
                coro_proc_kill(r->proc, SIGTERM);
        }
    }
    coro_cond_signal(&P->slot);
    coro_mutex_unlock(&P->mu);
}

static void job_main(void *arg)
{
    struct par_job *j = arg;
    par_job_run(g_par, j);
    par_job_ended(g_par, j);
    par_job_report(g_par, j);
}

static int seq_done(const struct par *P, uint64_t seq)
{
    size_t lo = 0, hi = P->ndone;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (P->done_seqs[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < P->ndone && P->done_seqs[lo] == seq;
}

/* No input for PAR_IDLE_MS: give a slot back. */
static void pool_idle(struct par *P)
{
    coro_mutex_lock(&P->mu);
    if (P->limit > P->o.jobs_min)
        P->limit--;
    coro_mutex_unlock(&P->mu);
}

/* Wait for a free slot, growing the pool while a ready job waits and
 * shrinking it after a second without a full pool. 0, or -1 to stop. */
static int slot_acquire(struct par *P)
{
    coro_mutex_lock(&P->mu);
    uint64_t now = coro_now_ms();
    if (P->running >= P->limit)
        g_last_full = now;
    else if (now - g_last_full >= PAR_IDLE_MS && P->limit > P->o.jobs_min) {
        P->limit--;
        g_last_full = now;
    }
    while (P->running >= P->limit && !P->halted && !P->signo) {
        int r = coro_cond_timedwait(&P->slot, &P->mu, PAR_GROW_MS);
        if (r < 0 && errno == ECANCELED)
            break;
        if (r < 0 && P->running >= P->limit && P->limit < P->o.jobs_max)
            P->limit++;
        g_last_full = coro_now_ms();
    }
    int go = P->running < P->limit && !P->halted && !P->signo;
    if (go) {
        P->running++;
        P->started++;
        if (P->limit > P->peak)
            P->peak = P->limit;
    }
    coro_mutex_unlock(&P->mu);
    return go ? 0 : -1;
}

static void feeder(void *arg)
{
    struct par *P = arg;
    while (!flag_get(&P->halted) && !flag_get(&P->signo) && !coro_cancelled()) {
        struct par_job *j = par_input_next(P, pool_idle);
        if (!j) {
            if (errno && errno != ECANCELED)
                cli_warn("parallel: reading input");
            break;
        }
        P->total++;
        if (seq_done(P, j->seq) || P->o.dry_run) {
            j->skipped = !P->o.dry_run;
            P->skipped += j->skipped;
            par_job_report(P, j);
            continue;
        }
        if (slot_acquire(P) < 0) {
            par_job_free(j);
            break;
        }
        if (!coro_scope_spawn(&P->jobs, job_main, j)) {
            cli_warn("parallel: starting a job");
            par_job_ended(P, j);
            par_job_free(j);
            break;
        }
    }
    coro_mutex_lock(&P->mu);
    g_feeder = NULL;
    coro_mutex_unlock(&P->mu);
}

/* SIGINT/SIGTERM: stop feeding, TERM the running jobs' groups; a second
 * signal KILLs them. Runs until cancelled at the end of the run. */
static int g_sigfd = -1;

static void signal_watch(void *arg)
{
    struct par *P = arg;
    struct signalfd_siginfo si;
    while (coro_read(g_sigfd, &si, sizeof(si), -1) == (ssize_t)sizeof(si)) {
        int again = flag_get(&P->signo) != 0;
        flag_set(&P->signo, (int)si.ssi_signo);
        coro_mutex_lock(&P->mu);
        stop_feeder(P);
        coro_mutex_unlock(&P->mu);
        par_kill_all(P, again ? SIGKILL : SIGTERM);
    }
}

/* --progress on a terminal: one line, rewritten in place. */
static void progress(void *arg)
{
    struct par *P = arg;
    while (coro_sleep_ms(200) == 0) {
        coro_mutex_lock(&P->mu);
        fprintf(stderr, "\rcoro parallel: %llu done, %llu failed, %u running (pool %u) ",
                (unsigned long long)(P->ok + P->failed), (unsigned long long)P->failed,
                P->running, P->limit);
        coro_mutex_unlock(&P->mu);
    }
    fputs("\r\033[K", stderr);
}

/* After a signal or --halt now: give the jobs TERM_GRACE_MS, then KILL. */
static void kill_stragglers(struct par *P)
{
    for (int waited = 0; waited < TERM_GRACE_MS; waited += 10) {
        coro_mutex_lock(&P->mu);
        unsigned running = P->running;
        coro_mutex_unlock(&P->mu);
        if (!running)
            return;
        coro_sleep_ms(10);
    }
    par_kill_all(P, SIGKILL);
}

static void run_main(void *arg)
{
    struct par *P = arg;
    coro_t *sig = coro_spawn(signal_watch, P);
    coro_t *prog = P->o.progress && isatty(2) ? coro_spawn(progress, P) : NULL;
    coro_mutex_lock(&P->mu);
    g_feeder = coro_spawn(feeder, P);
    coro_t *f = g_feeder;
    coro_mutex_unlock(&P->mu);
    if (f)
        coro_join(f);
    if (flag_get(&P->signo) || (flag_get(&P->halted) && P->o.halt_when == PAR_HALT_NOW))
        kill_stragglers(P);
    coro_scope_wait(&P->jobs);
    par_flush_pending(P);
    coro_t *helpers[] = {sig, prog};
    for (size_t i = 0; i < 2; i++) {
        if (helpers[i]) {
            coro_cancel(helpers[i]);
            coro_join(helpers[i]);
        }
    }
}

static void print_stats(const struct par *P)
{
    double wall = par_now() - P->t0;
    fprintf(stderr,
            "coro parallel: %llu jobs: %llu ok, %llu failed, %llu skipped, %llu retries; "
            "pool %u..%u (peak %u); %.3f s, %.1f jobs/s\n",
            (unsigned long long)P->total, (unsigned long long)P->ok,
            (unsigned long long)P->failed, (unsigned long long)P->skipped,
            (unsigned long long)P->retried, P->o.jobs_min, P->o.jobs_max, P->peak, wall,
            wall > 0 ? (double)(P->ok + P->failed) / wall : 0.0);
}

static int exit_status(const struct par *P)
{
    if (P->signo)
        return 128 + P->signo;
    if (P->halt_status >= 0)
        return P->halt_status;
    return P->failed > 101 ? 101 : (int)P->failed;
}

/* Block the stop signals in every thread (workers inherit the mask) and
 * read them from a signalfd instead. Children get an empty mask. */
static int signals_setup(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, old) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    g_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return g_sigfd < 0 ? -1 : 0;
}

static int par_init(struct par *P)
{
    P->halt_status = -1;
    P->next_out = 1;
    P->limit = P->o.jobs_min;
    P->t0 = par_now();
    if (coro_mutex_init(&P->mu) < 0 || coro_mutex_init(&P->out_mu) < 0 ||
        coro_cond_init(&P->slot) < 0)
        return -1;
    coro_scope_init(&P->jobs);
    if (P->o.results && mkdir(P->o.results, 0755) < 0 && errno != EEXIST) {
        cli_warn("parallel: %s", P->o.results);
        return -1;
    }
    if (!P->o.dry_run && par_joblog_open(P) < 0)
        return -1;
    return par_input_open(P);
}

int cmd_parallel(int argc, char **argv)
{
    static struct par P;
    g_par = &P;
    int r = parse_args(&P.o, argc, argv);
    if (r)
        return r > 0 ? CLI_EX_OK : CLI_EX_USAGE;
    sigset_t old;
    if (signals_setup(&old) < 0) {
        cli_warn("parallel: signals");
        return CLI_EX_OSERR;
    }
    if (par_init(&P) < 0)
        return CLI_EX_OSERR;
    struct coro_config cfg;
    coro_config_default(&cfg);
    if (cfg.workers > 4)
        cfg.workers = 4; /* spawning, not computing: a few workers suffice */
    if (coro_run(&cfg, run_main, &P) < 0) {
        cli_warn("parallel: runtime");
        return CLI_EX_SOFTWARE;
    }
    par_input_close(&P);
    if (P.joblog)
        fclose(P.joblog);
    if (P.o.stats)
        print_stats(&P);
    close(g_sigfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return exit_status(&P);
}
