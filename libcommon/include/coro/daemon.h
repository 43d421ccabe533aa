/*
 * daemon.h - the life of a coro daemon, written once: command line, config
 * loading and testing, the runtime, signals, reload, graceful stop,
 * systemd notification, socket activation and the admin endpoint.
 *
 * A daemon provides a schema (conf.h) and four callbacks; its main() is
 *
 *     int main(int argc, char **argv) { return daemon_main(&broker_ops, argc, argv); }
 *
 * Command line (daemon_main):
 *   -c FILE         config file (default /etc/coro/coro-NAME.ini)
 *   -t              test the config: prints "FILE: syntax is ok" on stdout and
 *                   exits 0, or every error on stderr and exits 78 (EX_CONFIG)
 *   -f              foreground; accepted for compatibility: a coro daemon never
 *                   forks or detaches (systemd Type=notify supervises it) and
 *                   always logs to stderr
 *   -V, -h          version, usage
 *   --dump-config   print the annotated defaults (the shipped conf file)
 *   --dump-man      print the config key list as man(7) markup
 *
 * Shipped files come from the schema: a daemon's Makefile fragment
 * regenerates conf/coro-NAME.ini with `coro-NAME --dump-config` (and the
 * key list of coro-NAME.ini(5) with --dump-man), and an integration test
 * `cmp`s the output with the shipped file so they cannot drift.
 *
 * Lifecycle, all in the runtime ([runtime] settings) on worker 0's main
 * coroutine:
 *   1. the admin endpoint ([admin] listen) is bound, if configured;
 *   2. start(d, conf): bind listeners (listenset.h), start work; -1 = exit 1
 *      after stop(d, now) was called to undo a partial start;
 *   3. READY=1 and STATUS= to systemd; WATCHDOG=1 every WatchdogSec/2;
 *   4. SIGHUP: RELOADING=1, load and validate the file again; on any error
 *      every error is logged and the old config keeps running; else
 *      reload(d, old, new) applies it (0 = new config current, -1 = the
 *      daemon kept the old one); READY=1;
 *   5. SIGTERM/SIGINT: STOPPING=1, stop(d, deadline): stop accepting, let
 *      work finish until coro_now_ms() reaches deadline, flush state; then
 *      connections registered with daemon_conn_enter() still open are
 *      cancelled; exit status 0.
 * Every conf_t ever loaded stays valid until daemon_main returns, so
 * connections may keep pointers into the config they started with.
 * Errors are logged (log.h) by the framework; callbacks log their own.
 */
#ifndef CORO_DAEMON_H
#define CORO_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "coro/conf.h"
#include "coro/coro.h"
#include "coro/metrics.h"
#include "coro/net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DAEMON_EX_CONFIG 78 /* sysexits.h EX_CONFIG */

typedef struct daemon daemon_t;

struct daemon_ops {
    const char *name;    /* "broker": program coro-broker, /etc/coro/coro-broker.ini */
    const char *version; /* printed by -V */
    const struct conf_schema *schema;
    /* Coroutine on worker 0; may yield. start and reload log their errors. */
    int (*start)(daemon_t *d, const conf_t *c);
    int (*reload)(daemon_t *d, const conf_t *old, const conf_t *c);
    void (*stop)(daemon_t *d, uint64_t deadline_ms);
    /* Optional: one line for systemd's STATUS= ("12 clients, 3 listeners"). */
    void (*status)(daemon_t *d, char *buf, size_t len);
    void *arg; /* for the callbacks: daemon_arg() */
};

/* Run the daemon; returns the process exit status. */
int daemon_main(const struct daemon_ops *ops, int argc, char **argv);

void *daemon_arg(daemon_t *d);
/* The current config (the new one once reload returned 0). */
const conf_t *daemon_conf(daemon_t *d);
/* The registry served at /metrics; runtime metrics are already in it. */
metrics_t *daemon_metrics(daemon_t *d);
/* Send STATUS=... to systemd now (also logged at debug). Any thread. */
void daemon_notify_status(daemon_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Connections the drain waits for: a connection coroutine calls
 * daemon_conn_enter(d, &c) first (c on its stack) and daemon_conn_leave()
 * before it ends. At the stop deadline the framework coro_cancel()s the
 * ones still registered, so their blocking calls return ECANCELED.
 * Thread-safe, never yield.
 */
struct daemon_conn {
    coro_t *co;
    struct daemon_conn *prev, *next;
};
void daemon_conn_enter(daemon_t *d, struct daemon_conn *c);
void daemon_conn_leave(daemon_t *d, struct daemon_conn *c);
size_t daemon_conn_count(daemon_t *d);

/*
 * Socket activation: an fd passed by systemd (LISTEN_FDS) whose
 * FileDescriptorName= equals name, else one bound to address a; -1 when
 * none. Each fd is handed out once; the caller owns it (pass it to
 * coro_listener_from_fd). listenset.h calls this for every new listener.
 */
int daemon_listen_fd(daemon_t *d, const char *name, const struct coro_addr *a);

#ifdef __cplusplus
}
#endif
#endif
