/*
 * listener.c - listening sockets and the accept loops that feed handlers.
 *
 * An inet listener binds one socket per worker with SO_REUSEPORT, so the
 * kernel spreads incoming connections over the workers and no accept is
 * contended. A unix path or an inherited fd (socket activation) gives one
 * socket that every worker's accept loop shares. The first socket is bound
 * in coro_listener_new (bind errors surface there, before the runtime runs);
 * the per-worker siblings are bound in coro_listener_serve, once the number
 * of workers is known, on the port the first one got.
 *
 * Not for: protocol handling (the handler owns the connection), TLS, or
 * connection limits (a daemon counts its own connections).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/net.h"
#include "runtime/runtime_int.h"

#define DEFAULT_BACKLOG 511
#define EMFILE_BACKOFF_MS 10

struct accept_loop {
    coro_listener_t *l;
    int fd;
    coro_t *co;
};

struct coro_listener {
    struct coro_addr addr;     /* bound address, real port */
    int backlog;
    int shared;                /* one socket for every worker */
    int unlink_path;           /* we created the unix socket file */
    int fd;                    /* the first (or only) socket; -1 once handed over */
    int serving, closed;
    coro_conn_fn handler;
    void *handler_arg;
    struct accept_loop *loops;
    unsigned nloops;
    atomic_int lock;           /* guards live and closer */
    unsigned live;             /* accept loops still running */
    struct coro_waiter *closer;
    atomic_uint_fast64_t accepted;
};

/* One connection's start parameters, freed when the handler returns. */
struct conn_start {
    coro_conn_fn fn;
    void *arg;
    int fd;
    struct coro_addr peer;
};

static void set_err(char *err, size_t errlen, const char *what, const struct coro_addr *a)
{
    int saved = errno;
    char as[CORO_ADDR_STRLEN];

    if (err && errlen) {
        if (a)
            snprintf(err, errlen, "%s %s: %s", what, coro_addr_format(a, as, sizeof(as)),
                     strerror(saved));
        else
            snprintf(err, errlen, "%s: %s", what, strerror(saved));
    }
    errno = saved;
}

static int is_in6_any(const struct coro_addr *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
    return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

/* On hosts without IPv6, "*:port" falls back to 0.0.0.0:port. */
static void to_in4_any(struct coro_addr *a)
{
    int port = coro_addr_port(a);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

    memset(a, 0, sizeof(*a));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    sin->sin_port = htons((uint16_t)port);
    a->len = sizeof(*sin);
}

static int set_opt(int fd, int level, int name, int val)
{
    return setsockopt(fd, level, name, &val, sizeof(val));
}

/* Close fd, keep errno, return -1. */
static int close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Bind fd to a and listen: fd, or -1 with err (fd closed). */
static int bind_listen(int fd, const struct coro_addr *a, int backlog, char *err, size_t errlen)
{
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        set_err(err, errlen, "bind", a);
        return close_keep_errno(fd);
    }
    if (listen(fd, backlog) < 0) {
        set_err(err, errlen, "listen", a);
        return close_keep_errno(fd);
    }
    return fd;
}

/* A listening inet socket on a (with SO_REUSEPORT), or -1 with err. */
static int open_inet(struct coro_addr *a, int backlog, char *err, size_t errlen)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 && errno == EAFNOSUPPORT && is_in6_any(a)) {
        to_in4_any(a);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        set_err(err, errlen, "socket", a);
        return -1;
    }
    if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
        set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0) {
        set_err(err, errlen, "setsockopt SO_REUSEPORT", a);
        goto fail;
    }
    /* "*:port" means every address: one dual-stack socket. */
    if (is_in6_any(a) && set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0) < 0) {
        set_err(err, errlen, "setsockopt IPV6_V6ONLY", a);
        goto fail;
    }
    return bind_listen(fd, a, backlog, err, errlen);
fail:
    return close_keep_errno(fd);
}

/* A socket file left by a dead process refuses connections: remove it.
 * A live one (or anything else at the path) is left for bind to report. */
static void unlink_stale(const struct coro_addr *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    struct stat st;

    if (stat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno == ECONNREFUSED)
        unlink(sun->sun_path);
    close(fd);
}

static int open_unix(const struct coro_addr *a, int backlog, char *err, size_t errlen)
{
    unlink_stale(a);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "socket", a);
        return -1;
    }
    return bind_listen(fd, a, backlog, err, errlen);
}

static coro_listener_t *listener_alloc(int fd, int backlog, int shared)
{
    coro_listener_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->fd = fd;
    l->backlog = backlog;
    l->shared = shared;
    atomic_init(&l->lock, 0);
    atomic_init(&l->accepted, 0);
    return l;
}

coro_listener_t *coro_listener_new(const struct coro_addr *a, int backlog,
                                   char *err, size_t errlen)
{
    struct coro_addr bound = *a;
    int is_unix = a->ss.ss_family == AF_UNIX;
    int fd;

    if (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6 && !is_unix) {
        errno = EAFNOSUPPORT;
        set_err(err, errlen, "listen", NULL);
        return NULL;
    }
    if (backlog <= 0)
        backlog = DEFAULT_BACKLOG;
    fd = is_unix ? open_unix(&bound, backlog, err, errlen)
                 : open_inet(&bound, backlog, err, errlen);
    if (fd < 0)
        return NULL;
    /* Read the real port back: the siblings bind to it. */
    if (!is_unix) {
        bound.len = sizeof(bound.ss);
        if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) < 0) {
            set_err(err, errlen, "getsockname", a);
            goto fail;
        }
    }
    coro_listener_t *l = listener_alloc(fd, backlog, is_unix);
    if (!l) {
        set_err(err, errlen, "listen", a);
        goto fail;
    }
    l->addr = bound;
    l->unlink_path = is_unix;
    return l;
fail:;
    int saved = errno;
    close(fd);
    if (is_unix)
        unlink(((struct sockaddr_un *)&bound.ss)->sun_path);
    errno = saved;
    return NULL;
}

coro_listener_t *coro_listener_from_fd(int fd, char *err, size_t errlen)
{
    int val = 0;
    socklen_t vlen = sizeof(val);
    struct coro_addr a;

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &vlen) < 0) {
        set_err(err, errlen, "getsockopt SO_ACCEPTCONN", NULL);
        goto fail;
    }
    if (!val) {
        errno = EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "fd %d is not a listening socket", fd);
        goto fail;
    }
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0 || coro_fd_nonblock(fd) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        set_err(err, errlen, "adopt listening fd", NULL);
        goto fail;
    }
    coro_listener_t *l = listener_alloc(fd, 0, 1);
    if (!l) {
        set_err(err, errlen, "adopt listening fd", NULL);
        goto fail;
    }
    l->addr = a;
    return l;
fail:;
    /* Ownership was handed over: the fd is closed on failure too. */
    int saved = errno;
    close(fd);
    errno = saved;
    return NULL;
}

int coro_listener_addr(const coro_listener_t *l, struct coro_addr *out)
{
    *out = l->addr;
    return 0;
}

uint64_t coro_listener_accepted(const coro_listener_t *l)
{
    return atomic_load_explicit(&l->accepted, memory_order_relaxed);
}

static void conn_main(void *arg)
{
    struct conn_start *cs = arg;

    cs->fn(cs->fd, &cs->peer, cs->arg);
    free(cs);
}

static void start_conn(coro_listener_t *l, int fd, const struct coro_addr *peer)
{
    struct conn_start *cs = malloc(sizeof(*cs));
    coro_t *co = NULL;

    if (cs) {
        cs->fn = l->handler;
        cs->arg = l->handler_arg;
        cs->fd = fd;
        cs->peer = *peer;
        /* On the accepting worker: SO_REUSEPORT already balanced the load. */
        co = coro_spawn_on(coro_worker_index(), conn_main, cs);
    }
    if (!co) {
        free(cs);
        close(fd); /* never waited on: no registration to forget */
        return;
    }
    coro_detach(co);
}

/* Nonzero when the accept loop should stop after err. */
static int accept_fatal(int err)
{
    switch (err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* Out of fds or memory: the pending connection stays queued and
         * the socket stays readable, so back off instead of spinning. */
        return coro_sleep_ms(EMFILE_BACKOFF_MS) < 0;
    case EBADF:
    case EINVAL:
    case ENOTSOCK:
    case EOPNOTSUPP:
    case ECANCELED:
        return 1;
    default:
        return 0; /* ECONNABORTED, EPROTO, EPERM (firewall), EINTR... */
    }
}

/* The loop's end: drop this worker's registration of the fd, close it when
 * no other loop uses it, and wake coro_listener_close after the last one. */
static void accept_loop_exit(struct accept_loop *al)
{
    coro_listener_t *l = al->l;
    struct coro_waiter *w;
    unsigned live;

    coro_fd_forget(al->fd);
    coro__spin_lock(&l->lock);
    live = --l->live;
    w = l->closer;
    if (!l->shared || live == 0)
        close(al->fd);
    coro__spin_unlock(&l->lock);
    /* l may be freed as soon as the closer runs: do not touch it below. */
    if (live == 0 && w && coro__waiter_claim(w))
        coro__waiter_finish(w, 0);
}

static void accept_loop(void *arg)
{
    struct accept_loop *al = arg;
    coro_listener_t *l = al->l;

    for (;;) {
        struct coro_addr peer;
        peer.len = sizeof(peer.ss);
        int fd = coro_accept(al->fd, (struct sockaddr *)&peer.ss, &peer.len, -1);
        if (fd >= 0) {
            atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
            start_conn(l, fd, &peer);
        } else if (accept_fatal(errno)) {
            break;
        }
    }
    accept_loop_exit(al);
}

/* Fill loops[i].fd: the first socket, then siblings on the same address. */
static int open_siblings(coro_listener_t *l, struct accept_loop *loops, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        loops[i].l = l;
        loops[i].fd = l->fd;
        if (i == 0 || l->shared)
            continue;
        loops[i].fd = open_inet(&l->addr, l->backlog, NULL, 0);
        if (loops[i].fd < 0) {
            int saved = errno;
            for (unsigned j = 1; j < i; j++)
                close(loops[j].fd);
            errno = saved;
            return -1;
        }
    }
    return 0;
}

static void wait_loops(coro_listener_t *l);

/* Spawning accept loop `started` failed: close the sockets no loop owns, stop
 * the loops already running and leave the listener closed. */
static void serve_abort(coro_listener_t *l, unsigned started)
{
    int saved = errno;
    unsigned n = l->nloops;
    int close_shared;

    coro__spin_lock(&l->lock);
    l->live -= n - started;
    close_shared = l->shared && l->live == 0;
    coro__spin_unlock(&l->lock);
    for (unsigned i = started; i < n && !l->shared; i++)
        close(l->loops[i].fd);
    if (close_shared)
        close(l->loops[0].fd);
    l->nloops = started;
    coro_listener_close(l);
    errno = saved;
}

int coro_listener_serve(coro_listener_t *l, coro_conn_fn handler, void *arg)
{
    unsigned n = coro_worker_count();

    if (n == 0 || coro_worker_index() < 0) {
        errno = ESRCH;
        return -1;
    }
    if (l->serving) {
        errno = EBUSY;
        return -1;
    }
    if (l->closed) {
        errno = EBADF;
        return -1;
    }
    struct accept_loop *loops = calloc(n, sizeof(*loops));
    if (!loops)
        return -1;
    if (open_siblings(l, loops, n) < 0) {
        free(loops);
        return -1;
    }
    l->handler = handler;
    l->handler_arg = arg;
    l->loops = loops;
    l->nloops = n;
    l->live = n;
    l->serving = 1;
    l->fd = -1; /* the loops own the sockets now */
    for (unsigned i = 0; i < n; i++) {
        loops[i].co = coro_spawn_on((int)i, accept_loop, &loops[i]);
        if (!loops[i].co) {
            serve_abort(l, i);
            return -1;
        }
    }
    return 0;
}

/* Wait, not cancellably, until every accept loop has ended: they touch l
 * until their last step, so close must not return earlier. */
static void wait_loops(coro_listener_t *l)
{
    struct coro_waiter w;
    unsigned live;

    coro__waiter_init(&w);
    coro__spin_lock(&l->lock);
    live = l->live;
    if (live)
        l->closer = &w;
    coro__spin_unlock(&l->lock);
    for (unsigned i = 0; i < l->nloops; i++)
        coro_cancel(l->loops[i].co);
    if (live)
        coro__park(&w, -1, 0);
    for (unsigned i = 0; i < l->nloops; i++)
        coro_join(l->loops[i].co); /* ECANCELED is the expected ending */
}

void coro_listener_close(coro_listener_t *l)
{
    int saved = errno;

    if (l->closed)
        return;
    l->closed = 1;
    if (l->serving) {
        wait_loops(l);
        free(l->loops);
        l->loops = NULL;
        l->nloops = 0;
        l->serving = 0;
    } else if (l->fd >= 0) {
        close(l->fd);
    }
    l->fd = -1;
    if (l->unlink_path)
        unlink(((struct sockaddr_un *)&l->addr.ss)->sun_path);
    errno = saved;
}

void coro_listener_free(coro_listener_t *l)
{
    if (!l)
        return;
    coro_listener_close(l);
    free(l);
}
