/*
 * io.c - fd I/O for coroutines: syscalls that park the calling coroutine on
 * EAGAIN instead of blocking the worker, and stackless watches that keep
 * idle connections without a coroutine.
 *
 * Each worker owns a table indexed by fd (worker slot CORO_SLOT_IO). An
 * entry holds ONE persistent edge-triggered libevent event, registered on
 * the first wait and kept until coro_fd_forget()/coro_close(): a wait costs
 * no epoll_ctl and no allocation, which is what lets a coroutine echo server
 * keep up with a bufferevent one. Edge triggering reports readiness once, so
 * the callback remembers readiness that arrives while nobody waits, and the
 * next wait consumes it instead of parking.
 *
 * Only the owning worker thread touches its table: the event callbacks and
 * the coroutines of a worker run on that one thread, and a coroutine never
 * migrates once started. Cancellation and timeouts complete a waiter from
 * elsewhere through the claim protocol but never touch the table.
 *
 * Not for: addresses, listeners, DNS and TLS (libcommon/net/).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "coro/io.h"
#include "runtime/runtime_int.h"

atomic_uint_fast64_t coro__stat_watches;

/* A stackless watch lives inside its fd entry: an idle connection costs
 * the entry alone (about 200 bytes with the libevent event). */
struct coro_watch {
    coro_watch_fn fn;
    void *arg;
    struct event *timer; /* made on the first watch with a timeout, then kept */
    int worker;          /* the worker whose table holds the entry */
    uint8_t events;      /* CORO_READ|CORO_WRITE of interest */
    uint8_t armed;
    uint8_t retry; /* `what` to deliver again after a failed spawn */
};

struct io_fd {
    struct coro_waitq waiters; /* parked coroutines; waiter->index = events */
    struct coro_watch watch;
    int fd;
    uint8_t ready;   /* readiness no waiter has consumed yet */
    uint8_t notsock; /* send() said ENOTSOCK once: use write() directly */
    void *ev[];    /* struct event, event_get_struct_event_size() */
};

struct io_table {
    struct io_fd **fds;
    size_t cap;
    int worker;
    struct event_base *base;
};

/* Time left of an operation that may wait several times (a partial write,
 * a spurious wakeup): the clock is read only once the first wait happens. */
struct io_deadline {
    int64_t timeout_ms;
    uint64_t end;
    int started;
};

#define IO_DEADLINE(ms)                            \
    {                                              \
        .timeout_ms = (ms), .end = 0, .started = 0 \
    }
#define IO_IOV_CHUNK 64
#define WATCH_RETRY_MS 10

static int64_t deadline_left(struct io_deadline *d)
{
    if (d->timeout_ms < 0)
        return -1;
    uint64_t now = coro_now_ms();
    if (!d->started) {
        d->started = 1;
        d->end = now + (uint64_t)d->timeout_ms;
    }
    return d->end > now ? (int64_t)(d->end - now) : 0;
}

static struct event *io_fd_event(struct io_fd *e)
{
    return (struct event *)e->ev;
}

static struct io_fd *watch_entry(const struct coro_watch *w)
{
    return (struct io_fd *)((char *)w - offsetof(struct io_fd, watch));
}

static int ev_to_bits(short what)
{
    return ((what & EV_READ) ? CORO_READ : 0) | ((what & EV_WRITE) ? CORO_WRITE : 0);
}

/* ---- watches firing ------------------------------------------------------ */

static void watch_timer_cb(evutil_socket_t fd, short what, void *arg);

static int watch_timer_add(struct coro_watch *w, struct event_base *base, int64_t ms)
{
    if (!w->timer) {
        w->timer = evtimer_new(base, watch_timer_cb, w);
        if (!w->timer) {
            errno = ENOMEM;
            return -1;
        }
    }
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (evtimer_add(w->timer, &tv) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* Disarm w and start fn(arg, what) in a new coroutine on this worker. The
 * spawn comes before dropping the live count, so coro_run() never sees zero
 * in between. A failed spawn (out of memory) keeps the watch armed and
 * retries from its timer rather than losing the connection. */
static void watch_fire(struct coro_watch *w, int what)
{
    if (!coro__spawn_fn2(w->fn, w->arg, what)) {
        w->retry = (uint8_t)what;
        if (watch_timer_add(w, coro__event_base(), WATCH_RETRY_MS) < 0)
            coro__fatal("coro_watch: cannot start the watch callback: out of memory");
        return;
    }
    w->armed = 0;
    w->retry = 0;
    if (w->timer)
        evtimer_del(w->timer);
    atomic_fetch_sub_explicit(&coro__stat_watches, 1, memory_order_relaxed);
    coro__live_add(-1);
}

static void watch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct coro_watch *w = arg;
    if (w->armed)
        watch_fire(w, w->retry ? w->retry : CORO_TIMEOUT);
}

/* ---- the fd table ---------------------------------------------------------- */

/* The persistent event's callback: remember readiness, wake the waiters it
 * concerns, then the watch. Readiness handed to someone is consumed: that
 * party will do the syscall and see for itself. */
static void io_fd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_fd *e = arg;
    int used = 0;

    e->ready |= (uint8_t)ev_to_bits(what);
    for (struct coro_waiter *w = e->waiters.head, *next; w; w = next) {
        next = w->next;
        int got = (int)w->index & e->ready;
        if (got && coro__waiter_claim(w)) {
            coro__waitq_remove(&e->waiters, w);
            w->index = (size_t)got;
            used |= got;
            coro__waiter_finish(w, 0);
        }
    }
    e->ready &= (uint8_t)~used;
    int got = e->watch.events & e->ready;
    if (e->watch.armed && got && !e->watch.retry) {
        e->ready &= (uint8_t)~got;
        watch_fire(&e->watch, got);
    }
}

/* Drop an entry: parked coroutines get EBADF, an armed watch fires with
 * CORO_CANCEL (its callback needs only fn and arg, not the entry). */
static void io_fd_release(struct io_fd *e)
{
    struct coro_waiter *w;

    event_del(io_fd_event(e));
    while ((w = e->waiters.head) != NULL) {
        coro__waitq_remove(&e->waiters, w);
        if (coro__waiter_claim(w))
            coro__waiter_finish(w, EBADF);
    }
    if (e->watch.armed)
        watch_fire(&e->watch, CORO_CANCEL);
    if (e->watch.armed) /* the spawn failed: nobody can take the callback */
        coro__fatal("coro_fd_forget(%d): cannot cancel the watch: out of memory", e->fd);
    if (e->watch.timer)
        event_free(e->watch.timer);
    free(e);
}

static void io_table_free(void *arg)
{
    struct io_table *t = arg;
    for (size_t i = 0; i < t->cap; i++)
        if (t->fds[i])
            io_fd_release(t->fds[i]);
    free(t->fds);
    free(t);
}

static struct io_table *io_table_get(void)
{
    void **slot = coro__worker_slot(CORO_SLOT_IO);
    if (*slot)
        return *slot;
    struct io_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->worker = coro__worker_id(coro__worker_self());
    t->base = coro__event_base();
    *slot = t;
    coro__worker_slot_fini(CORO_SLOT_IO, io_table_free);
    return t;
}

static int io_table_grow(struct io_table *t, int fd)
{
    size_t cap = t->cap ? t->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct io_fd **fds = realloc(t->fds, cap * sizeof(*fds));
    if (!fds)
        return -1;
    memset(fds + t->cap, 0, (cap - t->cap) * sizeof(*fds));
    t->fds = fds;
    t->cap = cap;
    return 0;
}

/* The entry of fd on this worker, registering fd with the event loop on
 * first use. NULL with errno (EBADF, ENOMEM, or epoll's EPERM for files). */
static struct io_fd *io_fd_get(int fd)
{
    struct io_table *t = io_table_get();
    if (!t)
        return NULL;
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    if ((size_t)fd >= t->cap && io_table_grow(t, fd) < 0)
        return NULL;
    if (t->fds[fd])
        return t->fds[fd];

    struct io_fd *e = calloc(1, sizeof(*e) + event_get_struct_event_size());
    if (!e)
        return NULL;
    e->fd = fd;
    e->watch.worker = t->worker;
    errno = 0;
    if (event_assign(io_fd_event(e), t->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST, io_fd_cb,
                     e) < 0 ||
        event_add(io_fd_event(e), NULL) < 0) {
        int err = errno ? errno : EINVAL;
        free(e);
        errno = err;
        return NULL;
    }
    t->fds[fd] = e;
    return e;
}

/*
 * Park until fd is ready for one of events: the ready subset, or -1 with
 * errno. `stale` says the caller's syscall just returned EAGAIN, which
 * proves the remembered readiness for those events out of date (it was
 * recorded before the syscall ran: callbacks only run while we are parked).
 */
static int io_wait(int fd, int events, struct io_deadline *d, int stale, const char *who)
{
    coro__require(who);
    struct io_fd *e = io_fd_get(fd);
    if (!e)
        return -1;
    if (stale)
        e->ready &= (uint8_t)~events;
    int got = e->ready & events;
    if (got) {
        e->ready &= (uint8_t)~got;
        return got;
    }
    int64_t left = deadline_left(d);
    if (left == 0) {
        errno = ETIMEDOUT;
        return -1;
    }

    struct coro_waiter w;
    coro__waiter_init(&w);
    w.index = (size_t)events;
    coro__waitq_push(&e->waiters, &w);
    int rc = coro__park(&w, left, CORO_PARK_CANCELLABLE);
    if (w.queued) /* timed out or cancelled: still linked in the live entry */
        coro__waitq_remove(&e->waiters, &w);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return (int)w.index;
}

static int is_again(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

/* ---- reading and writing ------------------------------------------------- */

int coro_wait_fd(int fd, int events, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    if (events & ~(CORO_READ | CORO_WRITE) || !events) {
        errno = EINVAL;
        return -1;
    }
    return io_wait(fd, events, &d, 0, "coro_wait_fd");
}

ssize_t coro_read(int fd, void *buf, size_t n, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (!is_again(errno) || io_wait(fd, CORO_READ, &d, 1, "coro_read") < 0)
            return -1;
    }
}

ssize_t coro_readv(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    for (;;) {
        ssize_t r = readv(fd, iov, iovcnt);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (!is_again(errno) || io_wait(fd, CORO_READ, &d, 1, "coro_readv") < 0)
            return -1;
    }
}

/* This worker's entry of fd if it has one; never registers. */
static struct io_fd *io_fd_peek(int fd)
{
    struct worker *w = coro__worker_self();
    struct io_table *t = w ? *coro__worker_slot(CORO_SLOT_IO) : NULL;
    return t && fd >= 0 && (size_t)fd < t->cap ? t->fds[fd] : NULL;
}

/* Remember a pipe once it has been waited on (it has an entry), so later
 * writes skip the failing send(). */
static int not_a_socket(int fd)
{
    struct io_fd *e = io_fd_peek(fd);
    if (e)
        e->notsock = 1;
    return 1;
}

/* send() with MSG_NOSIGNAL so a peer that went away gives EPIPE instead of
 * killing the process; pipes and other non-sockets use write(). */
static ssize_t io_send(int fd, const void *buf, size_t n)
{
    struct io_fd *e = io_fd_peek(fd);
    if (e && e->notsock)
        return write(fd, buf, n);
    ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK && not_a_socket(fd))
        r = write(fd, buf, n);
    return r;
}

static ssize_t io_sendv(int fd, struct iovec *iov, int iovcnt)
{
    struct io_fd *e = io_fd_peek(fd);
    if (e && e->notsock)
        return writev(fd, iov, iovcnt);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK && not_a_socket(fd))
        r = writev(fd, iov, iovcnt);
    return r;
}

static ssize_t io_write_dl(int fd, const void *buf, size_t n, struct io_deadline *d,
                           const char *who)
{
    for (;;) {
        ssize_t r = io_send(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (!is_again(errno) || io_wait(fd, CORO_WRITE, d, 1, who) < 0)
            return -1;
    }
}

ssize_t coro_write(int fd, const void *buf, size_t n, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    return io_write_dl(fd, buf, n, &d, "coro_write");
}

int coro_write_all(int fd, const void *buf, size_t n, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    const char *p = buf;
    while (n > 0) {
        ssize_t r = io_write_dl(fd, p, n, &d, "coro_write_all");
        if (r < 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Copy up to IO_IOV_CHUNK entries from iov[i] on, the first one starting
 * `off` bytes in: the caller's array is const and writes may be partial. */
static int iov_window(struct iovec *out, const struct iovec *iov, int iovcnt, int i, size_t off)
{
    int n = 0;
    for (; i < iovcnt && n < IO_IOV_CHUNK; i++, n++)
        out[n] = iov[i];
    out[0].iov_base = (char *)out[0].iov_base + off;
    out[0].iov_len -= off;
    return n;
}

int coro_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    struct iovec win[IO_IOV_CHUNK];
    int i = 0;
    size_t off = 0;

    while (i < iovcnt) {
        if (iov[i].iov_len == off) { /* skip empty or finished entries */
            i++;
            off = 0;
            continue;
        }
        ssize_t r = io_sendv(fd, win, iov_window(win, iov, iovcnt, i, off));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (!is_again(errno) || io_wait(fd, CORO_WRITE, &d, 1, "coro_writev") < 0)
                return -1;
            continue;
        }
        size_t left = (size_t)r;
        while (i < iovcnt && left >= iov[i].iov_len - off) {
            left -= iov[i].iov_len - off;
            i++;
            off = 0;
        }
        off += left;
    }
    return 0;
}

/* ---- connections --------------------------------------------------------- */

int coro_accept(int lfd, struct sockaddr *sa, socklen_t *salen, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    socklen_t len0 = salen ? *salen : 0;
    for (;;) {
        if (salen)
            *salen = len0;
        int fd = accept4(lfd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        /* A connection reset before we took it is not the listener's error. */
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (!is_again(errno) || io_wait(lfd, CORO_READ, &d, 1, "coro_accept") < 0)
            return -1;
    }
}

/* After a writable wakeup: 0 when connected, -1 with the connect error,
 * 1 when still connecting (a wakeup for something else). */
static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        return 0;
    return errno == ENOTCONN ? 1 : -1;
}

int coro_connect(int fd, const struct sockaddr *sa, socklen_t salen, int64_t timeout_ms)
{
    struct io_deadline d = IO_DEADLINE(timeout_ms);
    if (connect(fd, sa, salen) == 0)
        return 0;
    /* EINTR: the connection goes on asynchronously, as with EINPROGRESS. */
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    for (;;) {
        if (io_wait(fd, CORO_WRITE, &d, 1, "coro_connect") < 0)
            return -1;
        int r = connect_result(fd);
        if (r <= 0)
            return r;
    }
}

int coro_fd_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)
        return 0;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

void coro_fd_forget(int fd)
{
    if (!coro__worker_self() || fd < 0)
        return;
    struct io_table *t = *coro__worker_slot(CORO_SLOT_IO);
    if (!t || (size_t)fd >= t->cap || !t->fds[fd])
        return;
    struct io_fd *e = t->fds[fd];
    t->fds[fd] = NULL;
    int saved = errno;
    io_fd_release(e);
    errno = saved;
}

int coro_close(int fd)
{
    coro_fd_forget(fd);
    return close(fd);
}

/* ---- stackless watches --------------------------------------------------- */

coro_watch_t *coro_watch_fd(int fd, int events, int64_t timeout_ms, coro_watch_fn fn, void *arg)
{
    coro__require("coro_watch_fd");
    if (!fn || (events & ~(CORO_READ | CORO_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    struct io_fd *e = io_fd_get(fd);
    if (!e)
        return NULL;
    struct coro_watch *w = &e->watch;
    if (w->armed) {
        errno = EEXIST;
        return NULL;
    }
    if (timeout_ms >= 0 && watch_timer_add(w, coro__event_base(), timeout_ms) < 0)
        return NULL;
    w->fn = fn;
    w->arg = arg;
    w->events = (uint8_t)events;
    w->armed = 1;
    w->retry = 0;
    atomic_fetch_add_explicit(&coro__stat_watches, 1, memory_order_relaxed);
    coro__live_add(1);

    /* Readiness that came while the connection was being served would
     * never be reported again (edge triggering): deliver it now. */
    int got = e->ready & events;
    if (got) {
        e->ready &= (uint8_t)~got;
        watch_fire(w, got);
    }
    return w;
}

void coro_watch_cancel(coro_watch_t *w)
{
    struct worker *self = coro__worker_self();
    if (!self || coro__worker_id(self) != w->worker)
        coro__fatal("coro_watch_cancel: the watch belongs to worker %d, called from %s %d",
                    w->worker, self ? "worker" : "thread outside the runtime",
                    self ? coro__worker_id(self) : -1);
    if (!w->armed || w->retry) /* fired already: its callback is on its way */
        return;
    struct io_table *t = *coro__worker_slot(CORO_SLOT_IO);
    struct io_fd *e = watch_entry(w);
    if (!t || (size_t)e->fd >= t->cap || t->fds[e->fd] != e)
        coro__fatal("coro_watch_cancel: not a live watch of this worker");
    watch_fire(w, CORO_CANCEL);
}

int coro_watch_worker(const coro_watch_t *w)
{
    return w->worker;
}
