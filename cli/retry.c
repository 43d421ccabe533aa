/*
 * retry.c - `coro retry`: run a command until it succeeds, up to N times,
 * sleeping an exponential backoff with jitter between attempts; optionally
 * through a circuit breaker kept in a state file, so repeated invocations
 * (cron) stop calling a service that keeps failing and send it one probe
 * once the cooldown has passed.
 *
 * The policy pieces live in libcommon/patterns (backoff.c, breaker.c) and
 * the child in libcommon/runtime/proc.c; this file is the command line and
 * the loop. Not for running many commands (coro parallel does that).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/backoff.h"
#include "coro/breaker.h"
#include "coro/coro.h"
#include "coro/proc.h"
#include "cli.h"

/* Exit statuses besides the command's own (documented in coro(1)). */
enum {
    RETRY_EX_TEMPFAIL = 75, /* EX_TEMPFAIL: the circuit is open, nothing ran */
    RETRY_EX_TIMEOUT = 124, /* an attempt ran past --timeout (as timeout(1)) */
    RETRY_EX_NOEXEC = 126,  /* found but not executable (as the shell) */
    RETRY_EX_NOTFOUND = 127,
};

struct retry {
    char **argv;
    unsigned attempts;
    uint64_t min_ms, max_ms, timeout_ms, seed;
    enum coro_jitter jitter;
    unsigned char on_exit[256]; /* 1 = retry on this status; all 0 = any non-zero */
    int have_on_exit, quiet;
    const char *breaker;
    struct coro_breaker_conf bconf;
    int status;
};

static volatile sig_atomic_t g_signal;
static volatile pid_t g_child; /* running child (its group with --timeout) */
static int g_group;

static void on_signal(int sig)
{
    g_signal = sig;
    if (g_child > 0)
        kill(g_group ? -g_child : g_child, sig);
}

static const char usage_text[] =
    "usage: coro retry [--attempts N] [--backoff MIN..MAX] [--jitter full|equal|none]\n"
    "                  [--on-exit CODES] [--timeout DUR] [--quiet]\n"
    "                  [--breaker FILE [--failures N] [--cooldown DUR]] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD; when it fails, wait and run it again, up to N attempts.\n"
    "\n"
    "  -n, --attempts N      attempts in all (default 3)\n"
    "  -b, --backoff MIN..MAX  wait MIN, 2*MIN, 4*MIN... up to MAX between attempts\n"
    "                        (durations: 500ms, 2s, 1m; default 1s..60s)\n"
    "  -J, --jitter MODE     full (0..wait, default), equal (wait/2..wait) or none\n"
    "  -e, --on-exit CODES   retry only on these exit statuses: 1,2,75-78\n"
    "                        (default: any non-zero; 124 = timed out)\n"
    "  -t, --timeout DUR     kill an attempt (and its children) after DUR: status 124\n"
    "  -B, --breaker FILE    circuit breaker state shared by every run using FILE\n"
    "  -f, --failures N      consecutive failed attempts that open it (default 5)\n"
    "  -c, --cooldown DUR    open this long, then one run probes (default 60s)\n"
    "  -q, --quiet           no message per failed attempt\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: the last attempt's (128+N when killed by signal N), 124 when it\n"
    "timed out, 75 when the circuit is open and CMD was not run, 127/126 when CMD\n"
    "cannot be found/run, 64 for a bad command line.\n";

/* "1,2,75-78" into r->on_exit. */
static int parse_codes(struct retry *r, const char *s)
{
    char *end;
    for (;;) {
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s)
            return -1;
        if (*end == '-') {
            s = end + 1;
            hi = strtol(s, &end, 10);
            if (end == s)
                return -1;
        }
        if (lo < 0 || hi > 255 || lo > hi)
            return -1;
        for (long c = lo; c <= hi; c++)
            r->on_exit[c] = 1;
        if (*end == '\0')
            break;
        if (*end != ',')
            return -1;
        s = end + 1;
    }
    r->have_on_exit = 1;
    return 0;
}

static int parse_backoff(struct retry *r, const char *s)
{
    const char *dots = strstr(s, "..");
    char lo[64];
    if (!dots || (size_t)(dots - s) >= sizeof lo)
        return -1;
    memcpy(lo, s, (size_t)(dots - s));
    lo[dots - s] = '\0';
    if (cli_parse_duration_ms(lo, &r->min_ms) < 0 ||
        cli_parse_duration_ms(dots + 2, &r->max_ms) < 0)
        return -1;
    return r->min_ms >= 1 && r->max_ms >= r->min_ms ? 0 : -1;
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || errno || v == 0 || v > 1000000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* One option into r: 0, 1 for --help, -1 on a bad value. */
static int apply_opt(struct retry *r, int c, const char *arg)
{
    int bad = 0;
    switch (c) {
    case 'n':
        bad = parse_uint(arg, &r->attempts);
        break;
    case 'b':
        bad = parse_backoff(r, arg);
        break;
    case 'J':
        bad = coro_backoff_parse_jitter(arg, &r->jitter);
        break;
    case 'e':
        bad = parse_codes(r, arg);
        break;
    case 't':
        bad = cli_parse_duration_ms(arg, &r->timeout_ms) < 0 || r->timeout_ms == 0;
        break;
    case 'B':
        r->breaker = arg;
        break;
    case 'f':
        bad = parse_uint(arg, &r->bconf.failures);
        break;
    case 'c':
        bad = cli_parse_duration_ms(arg, &r->bconf.cooldown_ms);
        break;
    case 'S':
        r->seed = strtoull(arg, NULL, 10);
        break;
    case 'q':
        r->quiet = 1;
        break;
    case 'h':
        fputs(usage_text, stdout);
        return 1;
    default:
        fputs(usage_text, stderr);
        return -1;
    }
    if (bad)
        cli_warnx("retry: bad value '%s' for -%c", arg, c);
    return bad ? -1 : 0;
}

static int parse_opts(struct retry *r, int argc, char **argv)
{
    static const struct option opts[] = {
        {"attempts", required_argument, NULL, 'n'}, {"backoff", required_argument, NULL, 'b'},
        {"jitter", required_argument, NULL, 'J'},   {"on-exit", required_argument, NULL, 'e'},
        {"timeout", required_argument, NULL, 't'},  {"breaker", required_argument, NULL, 'B'},
        {"failures", required_argument, NULL, 'f'}, {"cooldown", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 'S'},     {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    /* '+': stop at the first non-option, so CMD's own options stay its own. */
    while ((c = getopt_long(argc, argv, "+n:b:J:e:t:B:f:c:qh", opts, NULL)) != -1) {
        int a = apply_opt(r, c, optarg);
        if (a != 0)
            return a;
    }
    if (optind >= argc) {
        cli_warnx("retry: no command given (coro retry [OPTIONS] -- CMD [ARGS])");
        return -1;
    }
    r->argv = argv + optind;
    return 0;
}

/* Exit status in the shell's terms: code, or 128 + signal. */
static int shell_status(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

/* Wait for the child, killing it (its group) at the deadline. */
static int wait_child(struct retry *r, coro_proc_t *p)
{
    int st;
    int64_t t = r->timeout_ms ? (int64_t)r->timeout_ms : -1;
    if (coro_proc_wait(p, t, &st) == 0)
        return shell_status(st);
    if (errno != ETIMEDOUT)
        return 1;
    coro_proc_kill(p, SIGTERM);
    if (coro_proc_wait(p, 2000, &st) < 0) {
        coro_proc_kill(p, SIGKILL);
        coro_proc_wait(p, -1, &st);
    }
    return RETRY_EX_TIMEOUT;
}

static int run_once(struct retry *r)
{
    struct coro_proc_opts o = {
        .argv = (const char *const *)r->argv,
        .new_pgrp = r->timeout_ms > 0, /* so a timeout reaches grandchildren */
    };
    coro_proc_t *p = coro_proc_spawn(&o);
    if (!p) {
        cli_warn("retry: %s", r->argv[0]);
        return errno == ENOENT ? RETRY_EX_NOTFOUND : RETRY_EX_NOEXEC;
    }
    g_group = o.new_pgrp;
    g_child = coro_proc_pid(p);
    int code = wait_child(r, p);
    g_child = 0;
    coro_proc_free(p);
    return code;
}

static int retryable(const struct retry *r, int code)
{
    if (code == 0 || g_signal || code == RETRY_EX_NOTFOUND)
        return 0;
    return r->have_on_exit ? r->on_exit[code & 255] : 1;
}

/* The breaker's verdict before an attempt: 0 go (probe set), 1 open, -1 error. */
static int breaker_allow(struct retry *r, int *probe)
{
    struct coro_breaker_ticket t;
    *probe = 0;
    if (!r->breaker)
        return 0;
    if (coro_breaker_file_allow(r->breaker, &r->bconf, coro_breaker_file_now_ms(), &t) == 0) {
        *probe = t.probe;
        return 0;
    }
    if (errno != EAGAIN) {
        cli_warn("retry: breaker %s", r->breaker);
        return -1;
    }
    cli_warnx("retry: circuit %s (%s): not running %s; next probe in %.1f s",
              t.state == CORO_BREAKER_OPEN ? "open" : "half-open, another run is probing",
              r->breaker, r->argv[0], (double)t.retry_in_ms / 1000);
    return 1;
}

/* Sleep ms in slices so a signal ends the wait promptly. */
static void backoff_sleep(uint64_t ms)
{
    while (ms > 0 && !g_signal) {
        uint64_t s = ms < 100 ? ms : 100;
        if (coro_sleep_ms(s) < 0)
            return;
        ms -= s;
    }
}

static void retry_main(void *arg)
{
    struct retry *r = arg;
    struct coro_backoff b;
    coro_backoff_init(&b, r->min_ms, r->max_ms, r->jitter, r->seed);
    for (unsigned i = 1; i <= r->attempts; i++) {
        int probe, v = breaker_allow(r, &probe);
        if (v != 0) {
            r->status = v > 0 ? RETRY_EX_TEMPFAIL : CLI_EX_OSERR;
            return;
        }
        r->status = run_once(r);
        if (r->breaker &&
            coro_breaker_file_record(r->breaker, &r->bconf, coro_breaker_file_now_ms(),
                                     r->status == 0, probe) < 0)
            cli_warn("retry: breaker %s", r->breaker);
        if (!retryable(r, r->status) || i == r->attempts)
            break;
        uint64_t d = coro_backoff_next(&b);
        if (!r->quiet)
            cli_warnx("retry: attempt %u/%u: %s exited with %d; next in %.3f s", i, r->attempts,
                      r->argv[0], r->status, (double)d / 1000);
        backoff_sleep(d);
    }
    if (g_signal)
        r->status = 128 + g_signal;
}

int cmd_retry(int argc, char **argv)
{
    struct retry r = {
        .attempts = 3,
        .min_ms = 1000,
        .max_ms = 60000,
        .jitter = CORO_JITTER_FULL,
        .bconf = {.failures = 5, .cooldown_ms = 60000},
    };
    int rc = parse_opts(&r, argc, argv);
    if (rc != 0)
        return rc > 0 ? CLI_EX_OK : CLI_EX_USAGE;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    struct coro_config cfg;
    coro_config_default(&cfg);
    cfg.workers = 1;
    if (coro_run(&cfg, retry_main, &r) < 0) {
        cli_warn("retry: cannot start the runtime");
        return CLI_EX_SOFTWARE;
    }
    return r.status;
}
