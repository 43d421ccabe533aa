/*
 * daemon.c - daemon_main(): the command line, config testing, the runtime,
 * and the main coroutine that starts the daemon, turns signals into
 * reloads and a graceful stop, talks to systemd, and drains connections.
 *
 * Signals are blocked in every thread (before the workers exist) and read
 * from a signalfd with coroutine I/O, so handlers never run on a worker in
 * the middle of something. Not here: the admin HTTP server (admin.c),
 * listener diffs (listenset.c).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "coro/io.h"
#include "coro/listenset.h"
#include "coro/log.h"
#include "service/service_int.h"

#define CANCEL_GRACE_MS 5000 /* after the deadline, for cancelled connections */

struct activated {
    int fd;
    char *name;
    int taken;
};

struct daemon {
    const struct daemon_ops *ops;
    const char *path;
    conf_t *conf;
    conf_t **retired; /* earlier configs, freed at exit */
    size_t nretired;
    metrics_t *metrics;
    listenset_t *admin;
    struct conntrack conns, admin_conns;
    struct activated *act;
    size_t nact;
    int sigfd;
    int exit_code;
    metric_t *reloads, *reload_failures;
};

/* --- connection tracking ------------------------------------------------ */

void service__track_init(struct conntrack *t)
{
    pthread_mutex_init(&t->mu, NULL);
    t->head.next = t->head.prev = &t->head;
    t->n = 0;
}

void service__track_enter(struct conntrack *t, struct daemon_conn *c)
{
    c->co = coro_self();
    pthread_mutex_lock(&t->mu);
    c->next = t->head.next;
    c->prev = &t->head;
    t->head.next->prev = c;
    t->head.next = c;
    t->n++;
    pthread_mutex_unlock(&t->mu);
}

void service__track_leave(struct conntrack *t, struct daemon_conn *c)
{
    pthread_mutex_lock(&t->mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    t->n--;
    pthread_mutex_unlock(&t->mu);
}

static size_t track_count(struct conntrack *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* Polls: shutdown is rare and a 20 ms step costs nothing meanwhile. */
static void wait_empty(struct conntrack *t, uint64_t deadline_ms)
{
    while (track_count(t) > 0 && coro_now_ms() < deadline_ms)
        coro_sleep_ms(20);
}

size_t service__track_drain(struct conntrack *t, uint64_t deadline_ms)
{
    size_t cancelled;

    wait_empty(t, deadline_ms);
    pthread_mutex_lock(&t->mu);
    cancelled = t->n;
    for (struct daemon_conn *c = t->head.next; c != &t->head; c = c->next)
        coro_cancel(c->co);
    pthread_mutex_unlock(&t->mu);
    if (cancelled)
        wait_empty(t, coro_now_ms() + CANCEL_GRACE_MS);
    return cancelled;
}

void daemon_conn_enter(daemon_t *d, struct daemon_conn *c)
{
    service__track_enter(&d->conns, c);
}

void daemon_conn_leave(daemon_t *d, struct daemon_conn *c)
{
    service__track_leave(&d->conns, c);
}

size_t daemon_conn_count(daemon_t *d)
{
    return track_count(&d->conns);
}

struct conntrack *service__admin_track(daemon_t *d)
{
    return &d->admin_conns;
}

/* --- accessors, notification, socket activation --------------------------- */

void *daemon_arg(daemon_t *d)
{
    return d->ops->arg;
}

const conf_t *daemon_conf(daemon_t *d)
{
    return d->conf;
}

metrics_t *daemon_metrics(daemon_t *d)
{
    return d->metrics;
}

void daemon_notify_status(daemon_t *d, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", buf);
}

/* READY=1 with the daemon's one-line status. */
static void notify_ready(daemon_t *d)
{
    char status[200] = "running";

    if (d->ops->status)
        d->ops->status(d, status, sizeof(status));
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

static void take_activated(daemon_t *d)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);

    if (n <= 0)
        return;
    d->act = calloc((size_t)n, sizeof(*d->act));
    for (int i = 0; d->act && i < n; i++) {
        d->act[i].fd = SD_LISTEN_FDS_START + i;
        d->act[i].name = names ? names[i] : NULL;
    }
    d->nact = d->act ? (size_t)n : 0;
    free(names); /* the strings now belong to d->act */
}

int daemon_listen_fd(daemon_t *d, const char *name, const struct coro_addr *a)
{
    struct coro_addr got;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < d->nact; i++) {
            struct activated *x = &d->act[i];
            if (x->taken)
                continue;
            int match = pass == 0 ? (x->name && strcmp(x->name, name) == 0)
                                  : ((got.len = sizeof(got.ss)),
                                     getsockname(x->fd, (struct sockaddr *)&got.ss, &got.len) ==
                                             0 &&
                                         got.len == a->len && memcmp(&got.ss, &a->ss, a->len) == 0);
            if (match) {
                x->taken = 1;
                return x->fd;
            }
        }
    }
    return -1;
}

/* --- the main coroutine -------------------------------------------------- */

static int apply_admin(daemon_t *d, const conf_t *c)
{
    struct listenset_want w = {"admin", c->common.admin_listen, service__admin_conn, d, 0};
    char err[300];

    if (listenset_apply(d->admin, &w, c->common.admin_listen.len ? 1 : 0, err, sizeof(err)) < 0) {
        log_errorx("%s", err);
        return -1;
    }
    return 0;
}

static void log_conf_errors(const conf_t *c)
{
    for (size_t i = 0; i < c->nerrors; i++)
        log_errorx("%s", c->errors[i]);
}

static void reload(daemon_t *d)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    log_notice("reloading %s", d->path);
    metric_inc(d->reloads);
    conf_t *nc = conf_load(d->ops->schema, d->path);
    if (!nc || nc->nerrors) {
        if (nc)
            log_conf_errors(nc);
        else
            log_warn("reload %s", d->path);
        log_errorx("reload failed: %zu error%s in %s, keeping the running configuration",
                   nc ? nc->nerrors : 0, nc && nc->nerrors == 1 ? "" : "s", d->path);
        goto fail;
    }
    if (memcmp(&nc->common.runtime, &d->conf->common.runtime, sizeof(nc->common.runtime)) != 0)
        log_warnx("[runtime] changes take effect after a restart");
    if (d->ops->reload && d->ops->reload(d, d->conf, nc) < 0) {
        log_errorx("reload failed, keeping the running configuration");
        goto fail;
    }
    log_set_level(nc->common.log_level);
    apply_admin(d, nc); /* on failure the old admin listener stays */
    conf_t **r = realloc(d->retired, (d->nretired + 1) * sizeof(*r));
    if (r) {
        d->retired = r;
        d->retired[d->nretired++] = d->conf;
    }
    d->conf = nc;
    log_notice("reloaded %s", d->path);
    notify_ready(d);
    return;
fail:
    metric_inc(d->reload_failures);
    /* A config that could not be kept is freed only if nobody saw it. */
    conf_free(nc);
    notify_ready(d);
}

static void watchdog(void *arg)
{
    uint64_t usec = *(uint64_t *)arg;

    do
        sd_notify(0, "WATCHDOG=1");
    while (coro_sleep_ms(usec / 2000 ? usec / 2000 : 1) == 0);
}

/* Wait for SIGHUP (reload) until SIGTERM or SIGINT. */
static void signal_loop(daemon_t *d)
{
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(d->sigfd, &si, sizeof(si));
        if (n < 0 && errno == EAGAIN) {
            coro_wait_fd(d->sigfd, CORO_READ, -1);
            continue;
        }
        if (n != (ssize_t)sizeof(si)) {
            log_warn("signalfd read");
            return;
        }
        if (si.ssi_signo == SIGHUP) {
            reload(d);
        } else {
            log_notice("%s received, stopping", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
    }
}

static void stop(daemon_t *d)
{
    uint64_t deadline = coro_now_ms() + (uint64_t)d->conf->common.shutdown_timeout_ms;

    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    if (d->ops->stop)
        d->ops->stop(d, deadline);
    size_t n = service__track_drain(&d->conns, deadline);
    if (n)
        log_warnx("shutdown_timeout reached: closed %zu connections", n);
    listenset_close(d->admin);
    service__track_drain(&d->admin_conns, coro_now_ms());
}

static void svc_main(void *arg)
{
    daemon_t *d = arg;
    coro_t *wd = NULL;
    uint64_t wd_usec = 0;

    d->exit_code = 1;
    if (!(d->metrics = metrics_new()) || metrics_add_runtime(d->metrics) < 0 ||
        !(d->admin = listenset_new(d)))
        goto out;
    d->reloads = metrics_counter(d->metrics, "coro_config_reloads_total",
                                 "configuration reloads asked for (SIGHUP)", (char *)NULL);
    d->reload_failures = metrics_counter(d->metrics, "coro_config_reload_failures_total",
                                         "reloads refused (the old configuration kept running)",
                                         (char *)NULL);
    if (apply_admin(d, d->conf) < 0)
        goto out;
    if (d->ops->start && d->ops->start(d, d->conf) < 0) {
        if (d->ops->stop)
            d->ops->stop(d, coro_now_ms());
        service__track_drain(&d->conns, coro_now_ms());
        goto out;
    }
    notify_ready(d);
    log_notice("coro-%s %s started with %u workers", d->ops->name, d->ops->version,
               d->conf->common.runtime.workers);
    if (sd_watchdog_enabled(0, &wd_usec) > 0)
        wd = coro_spawn(watchdog, &wd_usec);
    signal_loop(d);
    stop(d);
    d->exit_code = 0;
    log_notice("stopped");
out:
    if (wd) {
        coro_cancel(wd);
        coro_join(wd);
    }
    if (d->exit_code && d->admin) {
        listenset_close(d->admin);
        service__track_drain(&d->admin_conns, coro_now_ms());
    }
    listenset_free(d->admin);
}

/* --- command line -------------------------------------------------------- */

static void usage(const struct daemon_ops *ops, FILE *out)
{
    fprintf(out,
            "usage: coro-%s [-c FILE] [-t] [-f] [-V] [-h] [--dump-config] [--dump-man]\n"
            "  -c FILE        configuration file (default /etc/coro/coro-%s.ini)\n"
            "  -t             test the configuration and exit (0 ok, 78 errors)\n"
            "  -f             stay in the foreground (always the case; logs go to stderr)\n"
            "  -V             print the version\n"
            "  --dump-config  print the annotated default configuration\n"
            "  --dump-man     print the configuration keys as man(7) markup\n",
            ops->name, ops->name);
}

/* Parse argv: -1 = run, else the exit status to return at once. */
static int parse_args(const struct daemon_ops *ops, int argc, char **argv, const char **path,
                      int *test)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            *path = argv[++i];
        } else if (strcmp(a, "-t") == 0) {
            *test = 1;
        } else if (strcmp(a, "-f") == 0) {
            /* never forks: see daemon.h */
        } else if (strcmp(a, "-V") == 0) {
            printf("coro-%s %s\n", ops->name, ops->version);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(ops, stdout);
            return 0;
        } else if (strcmp(a, "--dump-config") == 0) {
            return conf_dump(ops->schema, stdout) == 0 ? 0 : 1;
        } else if (strcmp(a, "--dump-man") == 0) {
            return conf_dump_man(ops->schema, stdout) == 0 ? 0 : 1;
        } else {
            fprintf(stderr, "coro-%s: bad argument \"%s\"\n", ops->name, a);
            usage(ops, stderr);
            return 64; /* EX_USAGE */
        }
    }
    return -1;
}

static int setup_signals(daemon_t *d)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before coro_run creates the workers, which inherit the mask. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return d->sigfd < 0 ? -1 : 0;
}

static void daemon_fini(daemon_t *d)
{
    for (size_t i = 0; i < d->nretired; i++)
        conf_free(d->retired[i]);
    free(d->retired);
    conf_free(d->conf);
    metrics_free(d->metrics);
    for (size_t i = 0; i < d->nact; i++) {
        if (!d->act[i].taken)
            close(d->act[i].fd);
        free(d->act[i].name);
    }
    free(d->act);
    if (d->sigfd >= 0)
        close(d->sigfd);
}

int daemon_main(const struct daemon_ops *ops, int argc, char **argv)
{
    char defpath[256];
    const char *path = defpath;
    int test = 0, rc;
    daemon_t d = {.ops = ops, .sigfd = -1};

    snprintf(defpath, sizeof(defpath), "/etc/coro/coro-%s.ini", ops->name);
    if ((rc = parse_args(ops, argc, argv, &path, &test)) >= 0)
        return rc;
    d.path = path;
    if (!(d.conf = conf_load(ops->schema, path))) {
        fprintf(stderr, "coro-%s: %s: %s\n", ops->name, path, strerror(errno));
        return 1;
    }
    if (test) {
        for (size_t i = 0; i < d.conf->nerrors; i++)
            fprintf(stderr, "%s\n", d.conf->errors[i]);
        if (!d.conf->nerrors)
            printf("%s: syntax is ok\n", path);
        rc = d.conf->nerrors ? DAEMON_EX_CONFIG : 0;
        conf_free(d.conf);
        return rc;
    }
    if (d.conf->nerrors) {
        log_conf_errors(d.conf);
        log_errorx("%s: %zu error%s, not starting", path, d.conf->nerrors,
                   d.conf->nerrors == 1 ? "" : "s");
        conf_free(d.conf);
        return DAEMON_EX_CONFIG;
    }
    log_set_level(d.conf->common.log_level);
    service__track_init(&d.conns);
    service__track_init(&d.admin_conns);
    take_activated(&d);
    if (setup_signals(&d) < 0) {
        log_error("signals");
        d.exit_code = 1;
    } else if (coro_run(&d.conf->common.runtime, svc_main, &d) < 0) {
        log_error("coro_run");
        d.exit_code = 1;
    }
    rc = d.exit_code;
    daemon_fini(&d);
    return rc;
}
