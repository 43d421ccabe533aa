/*
 * testd.c - the smallest daemon on the framework, for
 * tests/integration/10-daemon-lifecycle.sh: named echo listeners
 * ([listener.NAME] listen = ADDR), an optional greeting sent on connect,
 * per-listener connection counters. Not installed.
 */
#include <stdlib.h>
#include <string.h>

#include "coro/daemon.h"
#include "coro/io.h"
#include "coro/listenset.h"
#include "coro/log.h"

struct echo_listener {
    struct coro_addr listen;
};

struct testd_conf {
    struct {
        char *greeting;
    } echo;
    struct conf_list listeners;
};

static const struct conf_key echo_keys[] = {
    {"greeting", CONF_STRING, CONF_FIELD(struct testd_conf, echo.greeting), NULL, 0, 0, NULL, 0,
     "line sent to each new connection; empty = none", NULL},
    {0},
};

static const struct conf_key listener_keys[] = {
    {"listen", CONF_ADDR, CONF_FIELD(struct echo_listener, listen), NULL, 0, 0, NULL,
     CONF_REQUIRED, "address to accept echo connections on", "127.0.0.1:7777"},
    {0},
};

static const struct conf_section sections[] = {
    {"echo", 0, 0, 0, echo_keys, "echo service", NULL},
    {"listener", CONF_NAMED, offsetof(struct testd_conf, listeners), sizeof(struct echo_listener),
     listener_keys, "echo listeners", "main"},
    {0},
};

static const struct conf_schema schema = {"testd", sizeof(struct testd_conf), sections,
                                          "127.0.0.1:0"};

/* Per listener name, kept for the life of the process (see listenset.h). */
struct lst {
    daemon_t *d;
    const char *greeting;
    metric_t *conns;
    struct lst *next;
};

static struct {
    listenset_t *set;
    struct lst *lsts;
} st;

static void echo_conn(int fd, const struct coro_addr *peer, void *arg)
{
    struct lst *l = arg;
    struct daemon_conn dc;
    char buf[4096];
    ssize_t n;

    daemon_conn_enter(l->d, &dc);
    metric_inc(l->conns);
    if (l->greeting && coro_write_all(fd, l->greeting, strlen(l->greeting), 5000) == 0)
        coro_write_all(fd, "\n", 1, 5000);
    while ((n = coro_read(fd, buf, sizeof(buf), -1)) > 0)
        if (coro_write_all(fd, buf, (size_t)n, 5000) < 0)
            break;
    coro_close(fd);
    daemon_conn_leave(l->d, &dc);
}

static struct lst *lst_for(daemon_t *d, const char *name, const char *greeting)
{
    struct lst *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->d = d;
    l->greeting = greeting;
    l->conns = metrics_counter(daemon_metrics(d), "testd_connections_total",
                               "echo connections accepted", "listener", name, (char *)NULL);
    l->next = st.lsts;
    st.lsts = l;
    return l;
}

static int apply(daemon_t *d, const conf_t *c)
{
    const struct testd_conf *tc = c->data;
    size_t n = tc->listeners.n;
    struct listenset_want *w = calloc(n + 1, sizeof(*w));
    char err[300];
    int rc = -1;

    for (size_t i = 0; w && i < n; i++) {
        w[i].name = tc->listeners.names[i];
        w[i].addr = CONF_LIST_AT(&tc->listeners, struct echo_listener, i)->listen;
        w[i].handler = echo_conn;
        if (!(w[i].arg = lst_for(d, w[i].name, tc->echo.greeting)))
            goto out;
    }
    if (w && listenset_apply(st.set, w, n, err, sizeof(err)) == 0)
        rc = 0;
    else
        log_errorx("%s", w ? err : "out of memory");
out:
    free(w);
    return rc;
}

static int testd_start(daemon_t *d, const conf_t *c)
{
    if (!(st.set = listenset_new(d)))
        return -1;
    return apply(d, c);
}

static int testd_reload(daemon_t *d, const conf_t *old, const conf_t *c)
{
    return apply(d, c);
}

static void testd_stop(daemon_t *d, uint64_t deadline_ms)
{
    listenset_free(st.set);
    st.set = NULL;
}

static void testd_status(daemon_t *d, char *buf, size_t len)
{
    snprintf(buf, len, "%zu listeners, %zu connections", st.set ? listenset_count(st.set) : 0,
             daemon_conn_count(d));
}

static const struct daemon_ops ops = {
    "testd", "test", &schema, testd_start, testd_reload, testd_stop, testd_status, NULL,
};

int main(int argc, char **argv)
{
    return daemon_main(&ops, argc, argv);
}
