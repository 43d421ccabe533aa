/*
 * test_io.c - coroutine fd I/O (coro/io.h): reads and writes that park,
 * timeouts, cancellation, connect/accept over loopback TCP, and the
 * stackless watches that hold idle connections without a coroutine.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "coro/io.h"
#include "coro/sync.h"
#include "unit.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Fill fd's send buffer (and the peer's receive buffer) until EAGAIN. */
static void fill(int fd)
{
    static char junk[65536];
    while (write(fd, junk, sizeof(junk)) > 0)
        ;
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port. */
static int tcp_listener(struct sockaddr_in *sa, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    socklen_t len = sizeof(*sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    if (backlog > 0)
        ck_assert_int_eq(listen(fd, backlog), 0);
    return fd;
}

static int tcp_socket(void)
{
    return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* ---- reads and writes ----------------------------------------------------- */

#define BIG (1u << 20)

static void big_writer(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char buf[BIG];
    for (size_t i = 0; i < BIG; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    *(int *)arg = coro_write_all(fd, buf, BIG, 10000);
}

static void body_big_transfer(void *unused)
{
    int sv[2];
    pair(sv);
    int warg = sv[1];
    coro_t *w = coro_spawn(big_writer, &warg);
    static unsigned char got[BIG];
    size_t n = 0;
    while (n < BIG) {
        ssize_t r = coro_read(sv[0], got + n, BIG - n, 10000);
        ck_assert_int_gt(r, 0);
        n += (size_t)r;
    }
    ck_assert_int_eq(coro_join(w), 0);
    ck_assert_int_eq(warg, 0);
    for (size_t i = 0; i < BIG; i++)
        if (got[i] != (unsigned char)(i * 7 + 3))
            ck_abort_msg("byte %zu differs", i);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(write_all_larger_than_socket_buffer_arrives_intact)
{
    unit_run(1, body_big_transfer, NULL);
}
END_TEST

static void body_read_timeout(void *unused)
{
    int sv[2];
    char c;
    pair(sv);
    uint64_t t0 = mono_ms();
    ck_assert_int_eq(coro_read(sv[0], &c, 1, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    uint64_t dt = mono_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_le(dt, 150);
    /* Data after a timeout is still read normally. */
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(coro_read(sv[0], &c, 1, 1000), 1);
    ck_assert_int_eq(c, 'x');
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(read_times_out_after_50ms)
{
    unit_run(1, body_read_timeout, NULL);
}
END_TEST

static void body_write_timeout(void *unused)
{
    int sv[2];
    pair(sv);
    fill(sv[0]);
    uint64_t t0 = mono_ms();
    ck_assert_int_eq(coro_write_all(sv[0], "abc", 3, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    uint64_t dt = mono_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_le(dt, 150);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(write_on_full_socket_times_out_after_50ms)
{
    unit_run(1, body_write_timeout, NULL);
}
END_TEST

static void body_wait_fd(void *unused)
{
    int sv[2];
    pair(sv);
    ck_assert_int_eq(coro_wait_fd(sv[0], CORO_WRITE, 1000), CORO_WRITE);
    ck_assert_int_eq(coro_wait_fd(sv[0], CORO_READ, 0), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(coro_wait_fd(sv[0], CORO_READ, 1000), CORO_READ);
    ck_assert_int_eq(coro_wait_fd(sv[0], 0, 1000), -1);
    ck_assert_int_eq(errno, EINVAL);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(wait_fd_reports_ready_subset_and_times_out)
{
    unit_run(1, body_wait_fd, NULL);
}
END_TEST

static void body_vectors(void *unused)
{
    int sv[2];
    pair(sv);
    struct iovec out[3] = {
        {"hello ", 6},
        {(void *)"", 0},
        {"world", 5},
    };
    ck_assert_int_eq(coro_writev(sv[1], out, 3, 1000), 0);
    char a[4], b[16];
    struct iovec in[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    ck_assert_int_eq(coro_readv(sv[0], in, 2, 1000), 11);
    ck_assert(memcmp(a, "hell", 4) == 0);
    ck_assert(memcmp(b, "o world", 7) == 0);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(writev_and_readv_move_all_segments)
{
    unit_run(1, body_vectors, NULL);
}
END_TEST

/* A writev bigger than the socket buffer with many segments resumes in
 * the middle of a segment. */
static void vec_reader(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char got[BIG];
    size_t n = 0;
    while (n < BIG) {
        ssize_t r = coro_read(fd, got + n, BIG - n, 10000);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    int ok = n == BIG;
    for (size_t i = 0; ok && i < BIG; i++)
        ok = got[i] == (unsigned char)(i % 251);
    *(int *)arg = ok;
}

static void body_big_writev(void *unused)
{
    int sv[2];
    pair(sv);
    static unsigned char data[BIG];
    static struct iovec iov[1000];
    for (size_t i = 0; i < BIG; i++)
        data[i] = (unsigned char)(i % 251);
    size_t seg = BIG / 1000, off = 0;
    for (int i = 0; i < 1000; i++) {
        iov[i].iov_base = data + off;
        iov[i].iov_len = i == 999 ? BIG - off : seg;
        off += iov[i].iov_len;
    }
    int rarg = sv[0];
    coro_t *r = coro_spawn(vec_reader, &rarg);
    ck_assert_int_eq(coro_writev(sv[1], iov, 1000, 10000), 0);
    ck_assert_int_eq(coro_join(r), 0);
    ck_assert_int_eq(rarg, 1);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(writev_resumes_partial_writes_across_1000_segments)
{
    unit_run(1, body_big_writev, NULL);
}
END_TEST

static void body_eof_epipe(void *unused)
{
    int sv[2];
    char c;
    pair(sv);
    coro_close(sv[1]);
    ck_assert_int_eq(coro_read(sv[0], &c, 1, 1000), 0);
    /* EPIPE, not SIGPIPE: the test process would die of the signal. */
    ck_assert_int_eq(coro_write(sv[0], "x", 1, 1000), -1);
    ck_assert_int_eq(errno, EPIPE);
    coro_close(sv[0]);
}

START_TEST(read_sees_eof_and_write_to_closed_peer_gives_epipe)
{
    unit_run(1, body_eof_epipe, NULL);
}
END_TEST

/* ---- cancellation ------------------------------------------------------- */

struct blocked {
    int fd;
    int op;
    ssize_t rc;
    int err;
    int started;
};

enum { OP_READ, OP_ACCEPT, OP_WRITE, OP_WAIT };

static void blocked_op(void *arg)
{
    struct blocked *b = arg;
    char buf[64] = {0};
    b->started = 1;
    switch (b->op) {
    case OP_READ:
        b->rc = coro_read(b->fd, buf, sizeof(buf), -1);
        break;
    case OP_ACCEPT:
        b->rc = coro_accept(b->fd, NULL, NULL, -1);
        break;
    case OP_WRITE:
        b->rc = coro_write_all(b->fd, buf, sizeof(buf), -1);
        break;
    default:
        b->rc = coro_wait_fd(b->fd, CORO_READ, -1);
        break;
    }
    b->err = errno;
}

/* Start op in a coroutine, let it park (one worker: yield runs it until
 * it blocks), cancel it and check it came back with ECANCELED. */
static void cancel_blocked(int fd, int op)
{
    struct blocked b = {.fd = fd, .op = op, .rc = 0};
    coro_t *c = coro_spawn(blocked_op, &b);
    while (!b.started)
        coro_yield();
    coro_yield();
    coro_cancel(c);
    coro_join(c);
    ck_assert_int_eq(b.rc, -1);
    ck_assert_int_eq(b.err, ECANCELED);
}

static void body_cancel(void *unused)
{
    int sv[2];
    pair(sv);
    cancel_blocked(sv[0], OP_READ);
    cancel_blocked(sv[0], OP_WAIT);
    fill(sv[0]);
    cancel_blocked(sv[0], OP_WRITE);
    struct sockaddr_in sa;
    int lfd = tcp_listener(&sa, 16);
    cancel_blocked(lfd, OP_ACCEPT);
    /* The fds still work after the cancelled waits. */
    ck_assert_int_eq(write(sv[1], "y", 1), 1);
    char c;
    ck_assert_int_eq(coro_read(sv[0], &c, 1, 1000), 1);
    ck_assert_int_eq(c, 'y');
    coro_close(lfd);
    coro_close(sv[0]);
    coro_close(sv[1]);
}

START_TEST(cancel_interrupts_read_write_accept_and_wait_fd)
{
    unit_run(1, body_cancel, NULL);
}
END_TEST

static void body_close_wakes_reader(void *unused)
{
    int sv[2];
    pair(sv);
    struct blocked b = {.fd = sv[0], .op = OP_READ};
    coro_t *c = coro_spawn(blocked_op, &b);
    while (!b.started)
        coro_yield();
    coro_yield();
    coro_close(sv[0]);
    ck_assert_int_eq(coro_join(c), 0);
    ck_assert_int_eq(b.rc, -1);
    ck_assert_int_eq(b.err, EBADF);
    coro_close(sv[1]);
}

START_TEST(close_of_fd_wakes_its_parked_reader_with_ebadf)
{
    unit_run(1, body_close_wakes_reader, NULL);
}
END_TEST

/* ---- TCP ------------------------------------------------------------------ */

static void body_refused(void *unused)
{
    struct sockaddr_in sa;
    int bound = tcp_listener(&sa, 0); /* bound, not listening: connects get RST */
    int fd = tcp_socket();
    ck_assert_int_eq(coro_connect(fd, (struct sockaddr *)&sa, sizeof(sa), 1000), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    coro_close(fd);
    close(bound);
}

START_TEST(connect_to_closed_port_fails_with_econnrefused)
{
    unit_run(1, body_refused, NULL);
}
END_TEST

static void body_accept_timeout(void *unused)
{
    struct sockaddr_in sa;
    int lfd = tcp_listener(&sa, 16);
    uint64_t t0 = mono_ms();
    ck_assert_int_eq(coro_accept(lfd, NULL, NULL, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    uint64_t dt = mono_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_le(dt, 150);

    /* And a real connection: accept gives a non-blocking fd and the peer. */
    int cfd = tcp_socket();
    ck_assert_int_eq(coro_connect(cfd, (struct sockaddr *)&sa, sizeof(sa), 1000), 0);
    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    int afd = coro_accept(lfd, (struct sockaddr *)&peer, &plen, 1000);
    ck_assert_int_ge(afd, 0);
    ck_assert_uint_eq(plen, sizeof(peer));
    ck_assert_uint_eq(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
    char c;
    ck_assert_int_eq(read(afd, &c, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);
    coro_close(afd);
    coro_close(cfd);
    coro_close(lfd);
}

START_TEST(accept_times_out_then_accepts_nonblocking_connection)
{
    unit_run(1, body_accept_timeout, NULL);
}
END_TEST

#define NCONN 1000
#define MSG 4096

struct echo_test {
    struct sockaddr_in sa;
    int lfd;
    coro_wg_t wg;
    atomic_int ok, fail;
    atomic_int on_worker[2];
};

static void echo_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    ssize_t n;
    while ((n = coro_read(fd, buf, sizeof(buf), 10000)) > 0)
        if (coro_write_all(fd, buf, (size_t)n, 10000) < 0)
            break;
    coro_close(fd);
}

static void echo_acceptor(void *arg)
{
    struct echo_test *t = arg;
    for (int i = 0; i < NCONN; i++) {
        int fd = coro_accept(t->lfd, NULL, NULL, 10000);
        if (fd < 0)
            break;
        coro_detach(coro_spawn(echo_handler, (void *)(intptr_t)fd));
    }
}

struct echo_client {
    struct echo_test *t;
    int id;
};

static void echo_client(void *arg)
{
    struct echo_client *c = arg;
    struct echo_test *t = c->t;
    unsigned char out[MSG], in[MSG];
    for (int i = 0; i < MSG; i++)
        out[i] = (unsigned char)(c->id * 31 + i);
    int fd = tcp_socket(), good = 0;
    atomic_fetch_add(&t->on_worker[coro_worker_index() & 1], 1);
    if (fd >= 0 && coro_connect(fd, (struct sockaddr *)&t->sa, sizeof(t->sa), 10000) == 0 &&
        coro_write_all(fd, out, MSG, 10000) == 0) {
        size_t n = 0;
        ssize_t r = 1;
        while (n < MSG && (r = coro_read(fd, in + n, MSG - n, 10000)) > 0)
            n += (size_t)r;
        good = n == MSG && memcmp(in, out, MSG) == 0;
    }
    if (fd >= 0)
        coro_close(fd);
    atomic_fetch_add(good ? &t->ok : &t->fail, 1);
    coro_wg_done(&t->wg);
}

static void body_echo(void *arg)
{
    struct echo_test *t = arg;
    static struct echo_client cl[NCONN];
    t->lfd = tcp_listener(&t->sa, 1024);
    coro_wg_init(&t->wg);
    coro_t *acc = coro_spawn(echo_acceptor, t);
    coro_wg_add(&t->wg, NCONN);
    for (int i = 0; i < NCONN; i++) {
        cl[i] = (struct echo_client){t, i};
        coro_detach(coro_spawn_on(i % 2, echo_client, &cl[i]));
    }
    coro_wg_wait(&t->wg);
    coro_join(acc);
    coro_close(t->lfd);
    coro_wg_fini(&t->wg);
}

START_TEST(echo_1000_concurrent_tcp_connections_on_2_workers)
{
    static struct echo_test t;
    unit_run(2, body_echo, &t);
    ck_assert_int_eq(atomic_load(&t.fail), 0);
    ck_assert_int_eq(atomic_load(&t.ok), NCONN);
    ck_assert_int_gt(atomic_load(&t.on_worker[0]), 0);
    ck_assert_int_gt(atomic_load(&t.on_worker[1]), 0);
}
END_TEST

/* ---- watches ----------------------------------------------------------- */

#define NWATCH 10000

struct many_watches {
    int fds[NWATCH];
    atomic_int what[NWATCH];
    coro_wg_t wg;
    struct coro_stats armed;
    long rss_delta;
};

static struct many_watches *mw;

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static void many_fired(void *arg, int what)
{
    int i = (int)(intptr_t)arg;
    char c;
    if (read(mw->fds[i], &c, 1) != 1)
        what |= 0x100;
    atomic_store(&mw->what[i], what);
    coro_wg_done(&mw->wg);
}

static void body_many_watches(void *unused)
{
    for (int i = 0; i < NWATCH; i += 2) {
        int sv[2];
        pair(sv);
        mw->fds[i] = sv[0];
        mw->fds[i + 1] = sv[1];
    }
    coro_wg_init(&mw->wg);
    coro_wg_add(&mw->wg, NWATCH);
    long rss0 = rss_bytes();
    for (int i = 0; i < NWATCH; i++)
        ck_assert_ptr_nonnull(
            coro_watch_fd(mw->fds[i], CORO_READ, -1, many_fired, (void *)(intptr_t)i));
    mw->rss_delta = rss_bytes() - rss0;
    coro_stats_get(&mw->armed);
    /* Every end of every pair gets one byte: its peer becomes readable. */
    for (int i = 0; i < NWATCH; i++)
        ck_assert_int_eq(write(mw->fds[i], "z", 1), 1);
    coro_wg_wait(&mw->wg);
    coro_wg_fini(&mw->wg);
    for (int i = 0; i < NWATCH; i++)
        coro_close(mw->fds[i]);
}

START_TEST(ten_thousand_idle_watches_hold_no_coroutines_and_all_wake)
{
    static struct many_watches m;
    mw = &m;
    unit_run(2, body_many_watches, NULL);
    ck_assert_uint_eq(m.armed.watches, NWATCH);
    ck_assert_uint_le(m.armed.alive, 2);
    /* The budget for an idle connection is 1 KiB of process memory. */
    ck_assert_int_le(m.rss_delta / NWATCH, 1024);
    for (int i = 0; i < NWATCH; i++)
        ck_assert_int_eq(atomic_load(&m.what[i]), CORO_READ);
    struct coro_stats st;
    coro_stats_get(&st);
    ck_assert_uint_eq(st.watches, 0);
}
END_TEST

struct one_watch {
    int fd[2];
    coro_watch_t *w;
    int calls;
    int what;
    int worker;
    uint64_t armed_at, fired_at;
    int eexist;
};

static void one_fired(void *arg, int what)
{
    struct one_watch *o = arg;
    o->calls++;
    o->what = what;
    o->worker = coro_worker_index();
    o->fired_at = mono_ms();
    coro_close(o->fd[0]);
    coro_close(o->fd[1]);
}

static void body_watch_timeout(void *arg)
{
    struct one_watch *o = arg;
    pair(o->fd);
    o->armed_at = mono_ms();
    o->w = coro_watch_fd(o->fd[0], CORO_READ, 50, one_fired, o);
    ck_assert_ptr_nonnull(o->w);
    ck_assert_int_eq(coro_watch_worker(o->w), 0);
    ck_assert_ptr_null(coro_watch_fd(o->fd[0], CORO_READ, -1, one_fired, o));
    o->eexist = errno == EEXIST;
}

START_TEST(watch_with_timeout_fires_once_with_coro_timeout)
{
    struct one_watch o = {.calls = 0};
    unit_run(1, body_watch_timeout, &o);
    ck_assert_int_eq(o.eexist, 1);
    ck_assert_int_eq(o.calls, 1);
    ck_assert_int_eq(o.what, CORO_TIMEOUT);
    ck_assert_uint_ge(o.fired_at - o.armed_at, 50);
    ck_assert_uint_le(o.fired_at - o.armed_at, 150);
}
END_TEST

static void body_watch_data_before_timeout(void *arg)
{
    struct one_watch *o = arg;
    pair(o->fd);
    o->w = coro_watch_fd(o->fd[0], CORO_READ, 100, one_fired, o);
    ck_assert_ptr_nonnull(o->w);
    ck_assert_int_eq(write(o->fd[1], "d", 1), 1);
}

START_TEST(watch_fires_on_data_and_its_timer_is_disarmed)
{
    struct one_watch o = {.calls = 0};
    unit_run(1, body_watch_data_before_timeout, &o);
    ck_assert_int_eq(o.calls, 1);
    ck_assert_int_eq(o.what, CORO_READ);
}
END_TEST

static void body_watch_cancel(void *arg)
{
    struct one_watch *o = arg;
    pair(o->fd);
    o->w = coro_watch_fd(o->fd[0], CORO_READ, -1, one_fired, o);
    ck_assert_ptr_nonnull(o->w);
    coro_watch_cancel(o->w);
    coro_watch_cancel(o->w); /* fired, callback pending: a no-op */
}

START_TEST(watch_cancel_fires_coro_cancel_once)
{
    struct one_watch o = {.calls = 0};
    unit_run(1, body_watch_cancel, &o);
    ck_assert_int_eq(o.calls, 1);
    ck_assert_int_eq(o.what, CORO_CANCEL);
}
END_TEST

/* Readiness that arrives while the fd is registered but nobody waits must
 * reach the next watch: edge triggering would never report it again. */
static void body_watch_remembers(void *arg)
{
    struct one_watch *o = arg;
    int other[2];
    pair(o->fd);
    pair(other);
    ck_assert_int_eq(coro_wait_fd(o->fd[0], CORO_READ, 10), -1); /* registers fd[0] */
    ck_assert_int_eq(write(o->fd[1], "r", 1), 1);
    /* Let the event loop run (and see fd[0] readable) while nobody waits. */
    ck_assert_int_eq(coro_wait_fd(other[0], CORO_READ, 20), -1);
    o->w = coro_watch_fd(o->fd[0], CORO_READ, -1, one_fired, o);
    ck_assert_ptr_nonnull(o->w);
    coro_close(other[0]);
    coro_close(other[1]);
}

START_TEST(watch_sees_readiness_that_arrived_before_it_was_armed)
{
    struct one_watch o = {.calls = 0};
    unit_run(1, body_watch_remembers, &o);
    ck_assert_int_eq(o.calls, 1);
    ck_assert_int_eq(o.what, CORO_READ);
}
END_TEST

/* main arms a watch without timeout and ends; a plain thread writes only
 * once it has seen the runtime with no coroutine alive but the watch. */
static void *late_writer(void *arg)
{
    struct one_watch *o = arg;
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 5000; i++) {
        struct coro_stats st;
        coro_stats_get(&st);
        if (st.alive == 0 && st.watches == 1)
            break;
        nanosleep(&ms, NULL);
    }
    o->armed_at = 1;
    if (write(o->fd[1], "w", 1) != 1)
        o->armed_at = 0;
    return NULL;
}

static void body_watch_keeps_alive(void *arg)
{
    struct one_watch *o = arg;
    pair(o->fd);
    ck_assert_ptr_nonnull(coro_watch_fd(o->fd[0], CORO_READ, -1, one_fired, o));
}

START_TEST(coro_run_waits_for_an_armed_watch)
{
    struct one_watch o = {.calls = 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_writer, &o), 0);
    unit_run(1, body_watch_keeps_alive, &o);
    pthread_join(th, NULL);
    ck_assert_int_eq(o.armed_at, 1);
    ck_assert_int_eq(o.calls, 1);
    ck_assert_int_eq(o.what, CORO_READ);
}
END_TEST

static void cancel_from_other_worker(void *arg)
{
    coro_watch_cancel(arg);
}

static void body_watch_cancel_elsewhere(void *arg)
{
    struct one_watch *o = arg;
    pair(o->fd);
    o->w = coro_watch_fd(o->fd[0], CORO_READ, -1, one_fired, o);
    coro_join(coro_spawn_on(1, cancel_from_other_worker, o->w));
}

START_TEST(watch_cancel_from_another_worker_aborts)
{
    struct one_watch o = {.calls = 0};
    unit_run(2, body_watch_cancel_elsewhere, &o);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("rw");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, write_all_larger_than_socket_buffer_arrives_intact);
    tcase_add_test(tc, read_times_out_after_50ms);
    tcase_add_test(tc, write_on_full_socket_times_out_after_50ms);
    tcase_add_test(tc, wait_fd_reports_ready_subset_and_times_out);
    tcase_add_test(tc, writev_and_readv_move_all_segments);
    tcase_add_test(tc, writev_resumes_partial_writes_across_1000_segments);
    tcase_add_test(tc, read_sees_eof_and_write_to_closed_peer_gives_epipe);
    tcase_add_test(tc, cancel_interrupts_read_write_accept_and_wait_fd);
    tcase_add_test(tc, close_of_fd_wakes_its_parked_reader_with_ebadf);
    suite_add_tcase(s, tc);

    tc = tcase_create("tcp");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, connect_to_closed_port_fails_with_econnrefused);
    tcase_add_test(tc, accept_times_out_then_accepts_nonblocking_connection);
    tcase_add_test(tc, echo_1000_concurrent_tcp_connections_on_2_workers);
    suite_add_tcase(s, tc);

    tc = tcase_create("watch");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, ten_thousand_idle_watches_hold_no_coroutines_and_all_wake);
    tcase_add_test(tc, watch_with_timeout_fires_once_with_coro_timeout);
    tcase_add_test(tc, watch_fires_on_data_and_its_timer_is_disarmed);
    tcase_add_test(tc, watch_cancel_fires_coro_cancel_once);
    tcase_add_test(tc, watch_sees_readiness_that_arrived_before_it_was_armed);
    tcase_add_test(tc, coro_run_waits_for_an_armed_watch);
    tcase_add_test_raise_signal(tc, watch_cancel_from_another_worker_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(io_suite)
