/*
 * bench_echo.c - the network figures of `coro bench runtime`: memory per
 * idle connection, and TCP echo throughput, each for a coroutine server and
 * for a plain libevent bufferevent server driven the same way.
 *
 * Everything stays on 127.0.0.1 and is bounded: a fixed number of
 * connections, a fixed duration. The libevent peer runs on bases created
 * with EVENT_BASE_FLAG_NOLOCK, i.e. the way a single-threaded libevent
 * server is written, even if the runtime has enabled libevent's locking.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "coro/io.h"
#include "coro/net.h"
#include "cli.h"
#include "bench.h"

/* ---- connected loopback pairs -------------------------------------------- */

struct pairs {
    int n;
    int lfd;
    int *cfd, *sfd;
};

/* Raise RLIMIT_NOFILE so that 2n fds (plus slack) fit: up to the hard limit,
 * or beyond it when privileged. Returns the n that fits. */
static int fit_fds(int n)
{
    rlim_t want = 2 * (rlim_t)n + 256;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return n;
    if (rl.rlim_cur < want) {
        struct rlimit up = {want, rl.rlim_max > want ? rl.rlim_max : want};
        if (setrlimit(RLIMIT_NOFILE, &up) < 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur >= want ? n : (int)((rl.rlim_cur - 256) / 2);
}

static int listen_loopback(struct sockaddr_in *sa)
{
    socklen_t len = sizeof *sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)sa, sizeof *sa) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A blocking connect to loopback completes in the call, so the accept that
 * follows never waits: the blocking calls are fine even on a worker. */
static int pair_one(int lfd, const struct sockaddr_in *sa, int *c, int *s)
{
    *c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*c < 0)
        return -1;
    if (connect(*c, (const struct sockaddr *)sa, sizeof *sa) < 0 ||
        (*s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
        close(*c);
        return -1;
    }
    return 0;
}

static void pairs_close(struct pairs *p, int nclient, int nserver)
{
    for (int i = 0; i < nclient; i++)
        close(p->cfd[i]);
    for (int i = 0; i < nserver; i++)
        close(p->sfd[i]);
    if (p->lfd >= 0)
        close(p->lfd);
    p->lfd = -1;
}

/* The arrays are allocated here, before the caller's RSS baseline. */
static int pairs_alloc(struct pairs *p, int n)
{
    p->n = fit_fds(n);
    p->lfd = -1;
    p->cfd = calloc(p->n, sizeof *p->cfd);
    p->sfd = calloc(p->n, sizeof *p->sfd);
    if (p->n <= 0 || !p->cfd || !p->sfd) {
        free(p->cfd);
        free(p->sfd);
        errno = p->n <= 0 ? EMFILE : ENOMEM;
        return -1;
    }
    return 0;
}

static int pairs_open(struct pairs *p)
{
    struct sockaddr_in sa;
    int i;

    p->lfd = listen_loopback(&sa);
    if (p->lfd < 0)
        return -1;
    for (i = 0; i < p->n; i++)
        if (pair_one(p->lfd, &sa, &p->cfd[i], &p->sfd[i]) < 0)
            break;
    if (i < p->n) {
        int err = errno;
        pairs_close(p, i, i);
        errno = err;
        return -1;
    }
    return 0;
}

static void pairs_free(struct pairs *p)
{
    free(p->cfd);
    free(p->sfd);
}

static struct event_base *plain_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* ---- idle connections: coroutine watches --------------------------------- */

struct idle {
    struct pairs p;
    coro_watch_t **w;
    double per;
    int err;
};

static void idle_fired(void *arg, int what)
{
    coro_close((int)(intptr_t)arg);
}

/* Arm one stackless watch per server end; the client ends just stay open.
 * Counted: the watches, the runtime's per-fd registration (libevent event
 * included) and user memory of the sockets; kernel socket memory is not in
 * RSS. */
static void idle_main(void *arg)
{
    struct idle *d = arg;
    long rss0 = bench_rss_trimmed();
    int i;

    if (pairs_open(&d->p) < 0) {
        d->err = errno;
        return;
    }
    for (i = 0; i < d->p.n; i++) {
        d->w[i] = coro_watch_fd(d->p.sfd[i], CORO_READ, -1, idle_fired,
                                (void *)(intptr_t)d->p.sfd[i]);
        if (!d->w[i]) {
            d->err = errno;
            break;
        }
    }
    d->per = (double)(bench_rss() - rss0) / d->p.n;
    for (int j = 0; j < i; j++)
        coro_watch_cancel(d->w[j]);   /* idle_fired closes the server end */
    pairs_close(&d->p, d->p.n, 0);
    for (int j = i; j < d->p.n; j++)
        close(d->p.sfd[j]);
}

int bench_idle_coro(int n, double *bytes_per_conn)
{
    struct idle d = {.err = 0};
    int rc = -1;

    if (pairs_alloc(&d.p, n) < 0) {
        cli_warn("bench: idle connections");
        return -1;
    }
    d.w = calloc(d.p.n, sizeof *d.w);
    if (!d.w || bench_run(1, idle_main, &d) < 0)
        goto out;
    if (d.err) {
        errno = d.err;
        cli_warn("bench: %d idle connections with coro_watch_fd", d.p.n);
        goto out;
    }
    *bytes_per_conn = d.per;
    rc = 0;
out:
    free(d.w);
    pairs_free(&d.p);
    return rc;
}

/* ---- idle connections: libevent bufferevents ----------------------------- */

static void lev_read(struct bufferevent *b, void *arg)
{
    evbuffer_add_buffer(bufferevent_get_output(b), bufferevent_get_input(b));
}

static void lev_idle_event(struct bufferevent *b, short what, void *arg)
{
}

int bench_idle_libevent(int n, double *bytes_per_conn)
{
    struct event_base *base = plain_base();
    struct bufferevent **bev = NULL;
    struct pairs p;
    long rss0;
    int i = 0, rc = -1;

    if (!base || pairs_alloc(&p, n) < 0)
        goto out_base;
    bev = calloc(p.n, sizeof *bev);
    rss0 = bench_rss_trimmed();
    if (!bev || pairs_open(&p) < 0)
        goto out;
    for (i = 0; i < p.n; i++) {
        bev[i] = bufferevent_socket_new(base, p.sfd[i], BEV_OPT_CLOSE_ON_FREE);
        if (!bev[i])
            break;
        bufferevent_setcb(bev[i], lev_read, NULL, lev_idle_event, NULL);
        bufferevent_enable(bev[i], EV_READ);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    *bytes_per_conn = (double)(bench_rss() - rss0) / p.n;
    rc = i == p.n ? 0 : -1;
    for (int j = 0; j < i; j++)
        bufferevent_free(bev[j]);
    pairs_close(&p, p.n, 0);
    for (int j = i; j < p.n; j++)
        close(p.sfd[j]);
out:
    if (rc < 0)
        cli_warn("bench: idle connections with libevent");
    free(bev);
    pairs_free(&p);
out_base:
    if (base)
        event_base_free(base);
    return rc;
}

/* ---- the echo load generator --------------------------------------------- */

struct load {
    struct sockaddr_in sa;
    int conns;
    double secs;
    double rps;
    int err;
    chan_t *fin;        /* coroutine servers wait on this; NULL for libevent */
};

static int load_connect(struct load *L, int ep, int *fd)
{
    static const char msg[ECHO_MSG];
    int one = 1;

    for (int i = 0; i < L->conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd[i] < 0)
            return -1;
        if (connect(fd[i], (struct sockaddr *)&L->sa, sizeof L->sa) < 0 ||
            setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
            fcntl(fd[i], F_SETFL, O_NONBLOCK) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) < 0 ||
            write(fd[i], msg, sizeof msg) != sizeof msg)
            return -1;
    }
    return 0;
}

/* One reply has (partly) arrived on connection i: count it when whole and
 * send the next request at once (closed loop, one request in flight). */
static int load_reply(int fd, int *got, uint64_t *done)
{
    static const char msg[ECHO_MSG];
    char buf[ECHO_MSG];
    ssize_t r = read(fd, buf, ECHO_MSG - *got);

    if (r < 0)
        return errno == EAGAIN ? 0 : -1;
    if (r == 0) {
        errno = ECONNRESET;
        return -1;
    }
    *got += r;
    if (*got < ECHO_MSG)
        return 0;
    *got = 0;
    (*done)++;
    return write(fd, msg, sizeof msg) == sizeof msg ? 0 : -1;
}

/* Requests completed after a warm-up tenth of the run, per second. */
static int load_loop(struct load *L, int ep, int *fd, int *got)
{
    struct epoll_event ev[256];
    double t0 = bench_now_ns(), warm = t0 + L->secs * 1e8, end = t0 + L->secs * 1e9;
    double now = t0, tw = 0;
    uint64_t done = 0, dw = 0;

    while (now < end) {
        int n = epoll_wait(ep, ev, 256, 100);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int k = 0; k < n; k++) {
            int i = ev[k].data.u32;
            if (load_reply(fd[i], &got[i], &done) < 0)
                return -1;
        }
        now = bench_now_ns();
        if (!tw && now >= warm) {
            tw = now;
            dw = done;
        }
    }
    L->rps = tw ? (done - dw) / ((now - tw) / 1e9) : 0;
    return 0;
}

static void *load_thread(void *arg)
{
    struct load *L = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fd = malloc(L->conns * sizeof *fd), *got = calloc(L->conns, sizeof *got);
    char x = 0;

    if (ep < 0 || !fd || !got)
        L->err = errno ? errno : ENOMEM;
    if (fd)
        for (int i = 0; i < L->conns; i++)
            fd[i] = -1;
    if (!L->err && (load_connect(L, ep, fd) < 0 || load_loop(L, ep, fd, got) < 0))
        L->err = errno ? errno : EIO;
    for (int i = 0; fd && i < L->conns; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    if (ep >= 0)
        close(ep);
    free(fd);
    free(got);
    if (L->fin)
        chan_send(L->fin, &x);
    return NULL;
}

/* ---- echo: coroutine server ---------------------------------------------- */

static void echo_conn(int fd, const struct coro_addr *peer, void *arg)
{
    char buf[4096];
    ssize_t n;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while ((n = coro_read(fd, buf, sizeof buf, -1)) > 0)
        if (coro_write_all(fd, buf, n, -1) < 0)
            break;
    coro_close(fd);
}

struct echo {
    coro_listener_t *l;
    struct load load;
    int err;
};

/* Serve until the client thread says it has finished and closed its
 * connections; the handlers then end on EOF and coro_run returns. */
static void echo_main(void *arg)
{
    struct echo *e = arg;
    pthread_t t;
    char x;

    if (coro_listener_serve(e->l, echo_conn, NULL) < 0) {
        e->err = errno;
        return;
    }
    if (pthread_create(&t, NULL, load_thread, &e->load) != 0) {
        e->err = EAGAIN;
    } else {
        chan_recv(e->load.fin, &x);
        pthread_join(t, NULL);   /* it has sent: only its return is left */
    }
    coro_listener_close(e->l);
}

int bench_echo_coro(unsigned workers, int conns, double secs, double *rps)
{
    struct echo e = {.load = {.conns = conns, .secs = secs}};
    struct coro_addr a, bound;
    char err[256] = "";
    int rc = -1;

    if (coro_addr_parse("127.0.0.1:0", &a, err, sizeof err) < 0 ||
        !(e.l = coro_listener_new(&a, 0, err, sizeof err)) ||
        coro_listener_addr(e.l, &bound) < 0) {
        cli_warnx("bench: echo listener: %s", err[0] ? err : strerror(errno));
        goto out;
    }
    memcpy(&e.load.sa, &bound.ss, sizeof e.load.sa);
    if (!(e.load.fin = chan_new(1, 1)) || bench_run(workers, echo_main, &e) < 0)
        goto out;
    if (e.err || e.load.err) {
        errno = e.err ? e.err : e.load.err;
        cli_warn("bench: coroutine echo with %u workers", workers);
        goto out;
    }
    *rps = e.load.rps;
    rc = 0;
out:
    if (e.load.fin)
        chan_free(e.load.fin);
    if (e.l)
        coro_listener_free(e.l);
    return rc;
}

/* ---- echo: libevent server ----------------------------------------------- */

struct lev {
    struct event_base *base;
    int live, stopping;
};

static void lev_event(struct bufferevent *b, short what, void *arg)
{
    struct lev *s = arg;

    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    bufferevent_free(b);
    if (--s->live == 0 && s->stopping)
        event_base_loopbreak(s->base);
}

static void lev_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                       int salen, void *arg)
{
    struct lev *s = arg;
    struct bufferevent *b = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    int one = 1;

    if (!b) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_setcb(b, lev_read, NULL, lev_event, s);
    bufferevent_enable(b, EV_READ | EV_WRITE);
    s->live++;
}

/* The pipe's read end became readable: the client is done; leave once the
 * last connection has seen its EOF. */
static void lev_stop(evutil_socket_t fd, short what, void *arg)
{
    struct lev *s = arg;

    s->stopping = 1;
    if (s->live == 0)
        event_base_loopbreak(s->base);
}

static void *lev_thread(void *arg)
{
    event_base_dispatch(((struct lev *)arg)->base);
    return NULL;
}

static int lev_serve(struct lev *s, struct evconnlistener *lis, struct load *L, int stopfd)
{
    pthread_t st, lt;
    char x = 0;

    if (pthread_create(&st, NULL, lev_thread, s) != 0)
        return -1;
    if (pthread_create(&lt, NULL, load_thread, L) != 0)
        L->err = EAGAIN;
    else
        pthread_join(lt, NULL);
    if (write(stopfd, &x, 1) != 1)
        abort();   /* a pipe with room: cannot fail, and the join would hang */
    pthread_join(st, NULL);
    return 0;
}

int bench_echo_libevent(int conns, double secs, double *rps)
{
    struct lev s = {plain_base(), 0, 0};
    struct load L = {.conns = conns, .secs = secs};
    struct evconnlistener *lis = NULL;
    struct event *stop = NULL;
    int pfd[2] = {-1, -1}, rc = -1;

    L.sa.sin_family = AF_INET;
    L.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!s.base || pipe2(pfd, O_CLOEXEC) < 0)
        goto out;
    lis = evconnlistener_new_bind(s.base, lev_accept, &s,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 511,
                                  (struct sockaddr *)&L.sa, sizeof L.sa);
    stop = event_new(s.base, pfd[0], EV_READ, lev_stop, &s);
    if (!lis || !stop || event_add(stop, NULL) < 0)
        goto out;
    socklen_t len = sizeof L.sa;
    if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&L.sa, &len) < 0 ||
        lev_serve(&s, lis, &L, pfd[1]) < 0)
        goto out;
    if (L.err)
        errno = L.err;
    else
        rc = 0;
    *rps = L.rps;
out:
    if (rc < 0)
        cli_warn("bench: libevent echo");
    if (stop)
        event_free(stop);
    if (lis)
        evconnlistener_free(lis);
    if (s.base)
        event_base_free(s.base);
    for (int i = 0; i < 2; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    return rc;
}
