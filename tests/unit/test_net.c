/*
 * test_net.c - addresses, listeners (SO_REUSEPORT per worker, unix, adopted
 * fd), DNS through evdns (hosts file, numeric, failures, cancellation) and
 * dialing. Loopback only; every port is ephemeral.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>

#include "unit.h"
#include "coro/io.h"
#include "coro/net.h"
#include "runtime/runtime_int.h"

/* ---- addresses ------------------------------------------------------- */

static const struct {
    const char *in;
    int family;
    const char *out;
    int port;
} valid[] = {
    {"127.0.0.1:1883", AF_INET, "127.0.0.1:1883", 1883},
    {"0.0.0.0:0", AF_INET, "0.0.0.0:0", 0},
    {"10.1.2.3:65535", AF_INET, "10.1.2.3:65535", 65535},
    {"[::1]:80", AF_INET6, "[::1]:80", 80},
    {"[fe80::1:2]:443", AF_INET6, "[fe80::1:2]:443", 443},
    {"[::ffff:127.0.0.1]:5", AF_INET6, "[::ffff:127.0.0.1]:5", 5},
    {"*:8080", AF_INET6, "[::]:8080", 8080},
    {":8080", AF_INET6, "[::]:8080", 8080},
    {"unix:/run/coro/x.sock", AF_UNIX, "unix:/run/coro/x.sock", 0},
};

START_TEST(addr_parse_valid_inputs)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct coro_addr a;
        char err[128] = "", buf[CORO_ADDR_STRLEN];
        ck_assert_msg(coro_addr_parse(valid[i].in, &a, err, sizeof(err)) == 0,
                      "%s: %s", valid[i].in, err);
        ck_assert_int_eq(a.ss.ss_family, valid[i].family);
        ck_assert_str_eq(coro_addr_format(&a, buf, sizeof(buf)), valid[i].out);
        ck_assert_int_eq(coro_addr_port(&a), valid[i].port);
    }
}
END_TEST

static const struct {
    const char *in;
    const char *reason;
} invalid[] = {
    {"", "empty address"},
    {"127.0.0.1", "missing port"},
    {"127.0.0.1:", "missing port"},
    {"[::1]", "missing port"},
    {"[::1]:", "missing port"},
    {"127.0.0.1:65536", "port out of range 0..65535"},
    {"[::1]:99999999999999999999", "port out of range 0..65535"},
    {"127.0.0.1:8x", "bad port (not a number)"},
    {"127.0.0.1:-1", "bad port (not a number)"},
    {"[::g]:80", "bad IPv6 address"},
    {"[1.2.3.4]:80", "bad IPv6 address"},
    {"[::1:80", "missing ']' after IPv6 address"},
    {"[::1]80", "expected ':' after ']'"},
    {"::1:80", "IPv6 address needs brackets: [addr]:port"},
    {"300.1.1.1:80", "bad IPv4 address"},
    {"localhost:80", "bad IPv4 address"},
    {"unix:", "empty unix path"},
};

START_TEST(addr_parse_invalid_inputs_give_reason)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        struct coro_addr a, before;
        char err[128] = "";
        memset(&a, 0xab, sizeof(a));
        before = a;
        errno = 0;
        ck_assert_msg(coro_addr_parse(invalid[i].in, &a, err, sizeof(err)) == -1,
                      "%s parsed", invalid[i].in);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_msg(strcmp(err, invalid[i].reason) == 0, "%s: got \"%s\", want \"%s\"",
                      invalid[i].in, err, invalid[i].reason);
        ck_assert_msg(memcmp(&a, &before, sizeof(a)) == 0, "%s: out modified", invalid[i].in);
    }
}
END_TEST

START_TEST(addr_parse_unix_path_too_long)
{
    char s[300], err[64] = "";
    struct coro_addr a;
    struct sockaddr_un sun;

    /* The longest path that fits, then one byte more. */
    size_t max = sizeof(sun.sun_path) - 1;
    memcpy(s, "unix:/", 6);
    memset(s + 6, 'x', max - 1);
    s[5 + max] = '\0';
    ck_assert_int_eq(coro_addr_parse(s, &a, err, sizeof(err)), 0);
    s[5 + max] = 'y';
    s[6 + max] = '\0';
    ck_assert_int_eq(coro_addr_parse(s, &a, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "unix path too long");
}
END_TEST

START_TEST(addr_format_round_trips)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct coro_addr a, b;
        char buf[CORO_ADDR_STRLEN];
        ck_assert_int_eq(coro_addr_parse(valid[i].in, &a, NULL, 0), 0);
        coro_addr_format(&a, buf, sizeof(buf));
        ck_assert_int_eq(coro_addr_parse(buf, &b, NULL, 0), 0);
        ck_assert_int_eq(a.len, b.len);
        ck_assert_msg(memcmp(&a.ss, &b.ss, a.len) == 0, "%s -> %s", valid[i].in, buf);
    }
}
END_TEST

START_TEST(addr_loopback_detection)
{
    static const struct {
        const char *in;
        int loop;
    } t[] = {
        {"127.0.0.1:1", 1}, {"127.255.0.9:1", 1}, {"[::1]:1", 1},
        {"[::ffff:127.0.0.2]:1", 1}, {"unix:/tmp/s", 1}, {"10.0.0.1:1", 0},
        {"0.0.0.0:1", 0}, {"128.0.0.1:1", 0}, {"*:1", 0}, {"[::ffff:10.0.0.1]:1", 0},
        {"[::2]:1", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct coro_addr a;
        ck_assert_int_eq(coro_addr_parse(t[i].in, &a, NULL, 0), 0);
        ck_assert_msg(!!coro_addr_is_loopback(&a) == t[i].loop, "%s", t[i].in);
    }
}
END_TEST

/* ---- listeners ------------------------------------------------------- */

#define ECHO_CONNS 500
#define ECHO_CLIENTS 20

static atomic_int per_worker[4];
static atomic_int echo_ok;

/* Echo until EOF, counting the worker that runs the connection. */
static void echo_handler(int fd, const struct coro_addr *peer, void *arg)
{
    char buf[256];
    ssize_t n;
    int w = coro_worker_index();

    if (w >= 0 && w < 4)
        atomic_fetch_add(&per_worker[w], 1);
    while ((n = coro_read(fd, buf, sizeof(buf), 5000)) > 0)
        if (coro_write_all(fd, buf, (size_t)n, 5000) < 0)
            break;
    coro_close(fd);
}

/* Connect, send one line, expect it back. 1 on success. */
static int echo_once(const struct coro_addr *a, int id)
{
    char msg[32], back[32];
    int len = snprintf(msg, sizeof(msg), "hello %d", id);
    int fd = coro_dial_addr(a, 5000);
    int ok = 0;

    if (fd < 0)
        return 0;
    if (coro_write_all(fd, msg, (size_t)len, 5000) == 0) {
        ssize_t got = 0, n;
        while (got < len && (n = coro_read(fd, back + got, (size_t)(len - got), 5000)) > 0)
            got += n;
        ok = got == len && memcmp(msg, back, (size_t)len) == 0;
    }
    coro_close(fd);
    return ok;
}

struct clients {
    struct coro_addr addr;
    int base;
};

static void echo_client(void *arg)
{
    struct clients *c = arg;
    for (int i = 0; i < ECHO_CONNS / ECHO_CLIENTS; i++)
        if (echo_once(&c->addr, c->base + i))
            atomic_fetch_add(&echo_ok, 1);
}

/* Run ECHO_CONNS echo round trips against a, from ECHO_CLIENTS coroutines. */
static void run_clients(const struct coro_addr *a)
{
    struct clients cl[ECHO_CLIENTS];
    coro_t *co[ECHO_CLIENTS];

    for (int i = 0; i < ECHO_CLIENTS; i++) {
        cl[i].addr = *a;
        cl[i].base = i * 1000;
        co[i] = coro_spawn(echo_client, &cl[i]);
        ck_assert_ptr_nonnull(co[i]);
    }
    for (int i = 0; i < ECHO_CLIENTS; i++)
        coro_join(co[i]);
}

static uint64_t reuseport_accepted;
static int reuseport_sockets;

/* Listening TCP sockets of this process bound to port. */
static int count_listening(int port)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        struct coro_addr a;
        int val = 0;
        socklen_t vlen = sizeof(val);
        a.len = sizeof(a.ss);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &vlen) == 0 && val &&
            getsockname(fd, (struct sockaddr *)&a.ss, &a.len) == 0 &&
            a.ss.ss_family == AF_INET && coro_addr_port(&a) == port)
            n++;
    }
    return n;
}

static void reuseport_body(void *arg)
{
    struct coro_addr a, bound;
    char err[128];

    ck_assert_int_eq(coro_addr_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    coro_listener_addr(l, &bound);
    ck_assert_int_ne(coro_addr_port(&bound), 0);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), -1);
    ck_assert_int_eq(errno, EBUSY);
    reuseport_sockets = count_listening(coro_addr_port(&bound));
    run_clients(&bound);
    coro_listener_close(l);
    reuseport_accepted = coro_listener_accepted(l);
    coro_listener_free(l);
}

START_TEST(listener_reuseport_serves_500_echo_connections)
{
    unit_run(2, reuseport_body, NULL);
    ck_assert_int_eq(atomic_load(&echo_ok), ECHO_CONNS);
    ck_assert_uint_eq(reuseport_accepted, ECHO_CONNS);
    ck_assert_int_eq(atomic_load(&per_worker[0]) + atomic_load(&per_worker[1]), ECHO_CONNS);
    /* Not asserted: that handlers ran on both workers. The kernel splits
     * accepts evenly over the two sockets, but the runtime may steal an
     * accept loop (or a handler) before it starts, so occasionally every
     * handler runs on one worker. reuseport_sockets below checks the part
     * the listener controls. */
    ck_assert_int_eq(reuseport_sockets, 2);
}
END_TEST

static char unix_path[108];

static void unix_body(void *arg)
{
    struct coro_addr a;
    char err[128], spec[128];

    snprintf(unix_path, sizeof(unix_path), "/tmp/coro-test-net-%d.sock", (int)getpid());
    snprintf(spec, sizeof(spec), "unix:%s", unix_path);
    ck_assert_int_eq(coro_addr_parse(spec, &a, err, sizeof(err)), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    for (int i = 0; i < 20; i++) {
        int fd = coro_dial(spec, 5000);
        ck_assert_int_ge(fd, 0);
        coro_close(fd);
        if (echo_once(&a, i))
            atomic_fetch_add(&echo_ok, 1);
    }
    coro_listener_close(l);
    ck_assert_uint_eq(coro_listener_accepted(l), 40);
    coro_listener_free(l);
}

START_TEST(listener_unix_socket_shared_by_workers)
{
    unit_run(2, unix_body, NULL);
    ck_assert_int_eq(atomic_load(&echo_ok), 20);
    ck_assert_int_eq(access(unix_path, F_OK), -1); /* close removed the file */
}
END_TEST

static void from_fd_body(void *arg)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct coro_addr a;
    socklen_t len = sizeof(sin);
    char err[128];

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);

    coro_listener_t *l = coro_listener_from_fd(fd, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    coro_listener_addr(l, &a);
    ck_assert_int_eq(coro_addr_port(&a), ntohs(sin.sin_port));
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    for (int i = 0; i < 20; i++)
        if (echo_once(&a, i))
            atomic_fetch_add(&echo_ok, 1);
    coro_listener_free(l);
    /* The adopted fd is closed by the listener. */
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}

START_TEST(listener_adopts_listening_fd)
{
    unit_run(2, from_fd_body, NULL);
    ck_assert_int_eq(atomic_load(&echo_ok), 20);
}
END_TEST

START_TEST(listener_from_fd_rejects_non_listening_socket)
{
    char err[128] = "", want[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_null(coro_listener_from_fd(fd, err, sizeof(err)));
    ck_assert_int_eq(errno, EINVAL);
    snprintf(want, sizeof(want), "fd %d is not a listening socket", fd);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(listener_bind_conflict_reports_address_and_reason)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    char spec[64], err[128] = "", want[128];
    struct coro_addr a;

    /* A socket without SO_REUSEPORT holds the port. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(sin.sin_port));
    ck_assert_int_eq(coro_addr_parse(spec, &a, NULL, 0), 0);

    ck_assert_ptr_null(coro_listener_new(&a, 0, err, sizeof(err)));
    ck_assert_int_eq(errno, EADDRINUSE);
    snprintf(want, sizeof(want), "bind %s: %s", spec, strerror(EADDRINUSE));
    ck_assert_str_eq(err, want);
    close(fd);
}
END_TEST

static int closed_rc, closed_errno, closed_sockets;
static uint64_t closed_accepted;

static void close_body(void *arg)
{
    struct coro_addr a, bound;
    char err[128];

    ck_assert_int_eq(coro_addr_parse("127.0.0.1:0", &a, NULL, 0), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    coro_listener_addr(l, &bound);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    ck_assert_int_eq(echo_once(&bound, 1), 1);
    coro_listener_close(l);
    closed_sockets = count_listening(coro_addr_port(&bound));
    closed_rc = coro_dial_addr(&bound, 5000);
    closed_errno = errno;
    closed_accepted = coro_listener_accepted(l);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), -1);
    coro_listener_free(l);
}

START_TEST(listener_close_stops_accepting)
{
    unit_run(2, close_body, NULL);
    ck_assert_int_eq(closed_rc, -1);
    ck_assert_int_eq(closed_errno, ECONNREFUSED);
    ck_assert_uint_eq(closed_accepted, 1);
    ck_assert_int_eq(closed_sockets, 0);
}
END_TEST

static int early_ok;

static void serve_early_body(void *arg)
{
    coro_listener_t *l = arg;
    struct coro_addr bound;

    coro_listener_addr(l, &bound);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    early_ok = echo_once(&bound, 7);
    coro_listener_close(l);
}

START_TEST(listener_new_before_runtime_then_serve)
{
    struct coro_addr a;
    char err[128];

    /* Created before coro_run: bind errors surface here, serving later. */
    ck_assert_int_eq(coro_addr_parse("127.0.0.1:0", &a, NULL, 0), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), -1);
    ck_assert_int_eq(errno, ESRCH);
    unit_run(2, serve_early_body, l);
    ck_assert_int_eq(early_ok, 1);
    ck_assert_uint_eq(coro_listener_accepted(l), 1);
    coro_listener_free(l);
}
END_TEST

static int emfile_echo_ok;
static uint64_t emfile_accepted_while_limited;

static void emfile_body(void *arg)
{
    struct coro_addr a, bound;
    struct rlimit old, lim;
    char err[128], back[4];

    ck_assert_int_eq(coro_addr_parse("127.0.0.1:0", &a, NULL, 0), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    coro_listener_addr(l, &bound);
    ck_assert_int_eq(coro_listener_serve(l, echo_handler, NULL), 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(cfd, 0);

    /* No fd can be allocated: the accept loop meets EMFILE. */
    int probe = dup(0);
    close(probe);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)probe;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    ck_assert_int_eq(coro_connect(cfd, (struct sockaddr *)&bound.ss, bound.len, 5000), 0);
    coro_sleep_ms(50); /* let the loop fail and back off a few times */
    emfile_accepted_while_limited = coro_listener_accepted(l);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);

    /* The loop kept going: the queued connection is served now. */
    ck_assert_int_eq(coro_write_all(cfd, "abc", 3, 5000), 0);
    emfile_echo_ok = coro_read(cfd, back, 3, 5000) == 3 && memcmp(back, "abc", 3) == 0;
    coro_close(cfd);
    coro_listener_free(l);
}

START_TEST(listener_survives_emfile)
{
    UNIT_SKIP_UNDER_VALGRIND("it reserves file descriptors of its own");
    unit_run(1, emfile_body, NULL);
    ck_assert_uint_eq(emfile_accepted_while_limited, 0);
    ck_assert_int_eq(emfile_echo_ok, 1);
}
END_TEST

/* ---- DNS and dial ---------------------------------------------------- */

static void localhost_body(void *arg)
{
    struct coro_addr out[8];
    char buf[CORO_ADDR_STRLEN];

    int n = coro_dns_resolve("localhost", 8080, AF_UNSPEC, out, 8, 5000);
    ck_assert_msg(n >= 1, "localhost: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        ck_assert_msg(coro_addr_is_loopback(&out[i]), "%s", coro_addr_format(&out[i], buf, 64));
        ck_assert_int_eq(coro_addr_port(&out[i]), 8080);
    }
    n = coro_dns_resolve("localhost", 1, AF_INET, out, 8, 5000);
    ck_assert_int_ge(n, 1);
    ck_assert_str_eq(coro_addr_format(&out[0], buf, sizeof(buf)), "127.0.0.1:1");
}

START_TEST(dns_localhost_from_hosts_file)
{
    unit_run(1, localhost_body, NULL);
}
END_TEST

static void numeric_body(void *arg)
{
    struct coro_addr out[2];
    char buf[CORO_ADDR_STRLEN];

    ck_assert_int_eq(coro_dns_resolve("192.0.2.7", 80, AF_UNSPEC, out, 2, 0), 1);
    ck_assert_str_eq(coro_addr_format(&out[0], buf, sizeof(buf)), "192.0.2.7:80");
    ck_assert_int_eq(coro_dns_resolve("::1", 443, AF_INET6, out, 2, 0), 1);
    ck_assert_str_eq(coro_addr_format(&out[0], buf, sizeof(buf)), "[::1]:443");
    ck_assert_int_eq(coro_dns_resolve("[2001:db8::5]", 1, AF_UNSPEC, out, 2, 0), 1);
    ck_assert_str_eq(coro_addr_format(&out[0], buf, sizeof(buf)), "[2001:db8::5]:1");
    ck_assert_int_eq(coro_dns_resolve("192.0.2.7", 80, AF_INET6, out, 2, 0), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(coro_dns_resolve("", 80, AF_UNSPEC, out, 2, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_dns_resolve("localhost", 65536, AF_UNSPEC, out, 2, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_dns_resolve("localhost", 80, AF_UNIX, out, 2, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
}

START_TEST(dns_numeric_hosts_bypass_dns)
{
    unit_run(1, numeric_body, NULL);
}
END_TEST

/* Point this worker's evdns base at a nameserver on 127.0.0.1 (the test's
 * own), with no search domains. Returns the bound UDP socket. */
static int local_nameserver(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    struct coro_addr tmp[1];
    char ns[64];

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    /* A hosts-file lookup creates this worker's base. */
    ck_assert_int_ge(coro_dns_resolve("localhost", 1, AF_INET, tmp, 1, 5000), 1);
    struct evdns_base *db = *coro__worker_slot(CORO_SLOT_DNS);
    ck_assert_ptr_nonnull(db);
    snprintf(ns, sizeof(ns), "127.0.0.1:%u", ntohs(sin.sin_port));
    evdns_base_clear_nameservers_and_suspend(db);
    evdns_base_search_clear(db);
    ck_assert_int_eq(evdns_base_nameserver_ip_add(db, ns), 0);
    evdns_base_resume(db);
    return fd;
}

/* The fake nameserver (evdns randomizes the case of names it asks):
 * "a.test" has A 127.0.0.9, "flaky.test" fails with
 * SERVFAIL, anything else does not exist. */
static void fake_dns(struct evdns_server_request *req, void *arg)
{
    struct in_addr ip = {.s_addr = htonl(0x7f000009)};
    int err = DNS_ERR_NOTEXIST;

    for (int i = 0; i < req->nquestions; i++) {
        const char *name = req->questions[i]->name;
        if (strcasecmp(name, "a.test") == 0 && req->questions[i]->type == EVDNS_TYPE_A) {
            evdns_server_request_add_a_reply(req, name, 1, &ip, 60);
            err = 0;
        } else if (strcasecmp(name, "flaky.test") == 0) {
            err = DNS_ERR_SERVERFAILED;
        }
    }
    evdns_server_request_respond(req, err);
}

static int found_n, notexist_rc, notexist_errno, servfail_rc, servfail_errno;
static char found_addr[CORO_ADDR_STRLEN];

static void fake_dns_body(void *arg)
{
    struct coro_addr out[4];
    int fd = local_nameserver();
    struct evdns_server_port *port =
        evdns_add_server_port_with_base(coro__event_base(), fd, 0, fake_dns, NULL);
    ck_assert_ptr_nonnull(port);

    found_n = coro_dns_resolve("a.test", 1883, AF_INET, out, 4, 5000);
    if (found_n > 0)
        coro_addr_format(&out[0], found_addr, sizeof(found_addr));
    notexist_rc = coro_dns_resolve("no-such-host.invalid", 80, AF_INET, out, 4, 5000);
    notexist_errno = errno;
    servfail_rc = coro_dns_resolve("flaky.test", 80, AF_INET, out, 4, 5000);
    servfail_errno = errno;
    evdns_close_server_port(port);
    close(fd);
}

START_TEST(dns_answers_and_errors_from_nameserver)
{
    unit_run(1, fake_dns_body, NULL);
    ck_assert_int_eq(found_n, 1);
    ck_assert_str_eq(found_addr, "127.0.0.9:1883");
    ck_assert_int_eq(notexist_rc, -1);
    ck_assert_int_eq(notexist_errno, ENOENT);
    ck_assert_int_eq(servfail_rc, -1);
    ck_assert_int_eq(servfail_errno, EAGAIN);
}
END_TEST

static int stuck_rc, stuck_errno;

static void stuck_resolver(void *arg)
{
    struct coro_addr out[2];
    stuck_rc = coro_dns_resolve("blackhole.invalid", 80, AF_INET, out, 2, -1);
    stuck_errno = errno;
}

static int timeout_rc, timeout_errno, after_rc;

static void cancel_body(void *arg)
{
    struct coro_addr out[2];
    char buf[512];
    int ns = local_nameserver(); /* never answers */

    coro_t *co = coro_spawn_on(0, stuck_resolver, NULL);
    ck_assert_ptr_nonnull(co);
    /* The query reaching the nameserver shows the resolver is parked. */
    ck_assert_int_eq(coro_wait_fd(ns, CORO_READ, 5000), CORO_READ);
    ck_assert_int_gt(recv(ns, buf, sizeof(buf), 0), 0);
    coro_cancel(co);
    coro_join(co);

    timeout_rc = coro_dns_resolve("blackhole.invalid", 80, AF_INET, out, 2, 100);
    timeout_errno = errno;
    /* The abandoned requests left the base usable. */
    after_rc = coro_dns_resolve("localhost", 1, AF_INET, out, 2, 5000);
    coro_close(ns);
}

START_TEST(dns_resolve_is_cancellable_and_times_out)
{
    unit_run(1, cancel_body, NULL);
    ck_assert_int_eq(stuck_rc, -1);
    ck_assert_int_eq(stuck_errno, ECANCELED);
    ck_assert_int_eq(timeout_rc, -1);
    ck_assert_int_eq(timeout_errno, ETIMEDOUT);
    ck_assert_int_eq(after_rc, 1);
}
END_TEST

static int dial_ok_fd, dial_name_fd, refused_rc, refused_errno, bad_rc, bad_errno;

static void noop_handler(int fd, const struct coro_addr *peer, void *arg)
{
    coro_close(fd);
}

static void dial_body(void *arg)
{
    struct coro_addr a, bound;
    char spec[64], err[128];

    ck_assert_int_eq(coro_addr_parse("127.0.0.1:0", &a, NULL, 0), 0);
    coro_listener_t *l = coro_listener_new(&a, 0, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    coro_listener_addr(l, &bound);
    ck_assert_int_eq(coro_listener_serve(l, noop_handler, NULL), 0);

    snprintf(spec, sizeof(spec), "127.0.0.1:%d", coro_addr_port(&bound));
    dial_ok_fd = coro_dial(spec, 5000);
    snprintf(spec, sizeof(spec), "localhost:%d", coro_addr_port(&bound));
    dial_name_fd = coro_dial(spec, 5000);
    if (dial_ok_fd >= 0)
        coro_close(dial_ok_fd);
    if (dial_name_fd >= 0)
        coro_close(dial_name_fd);
    coro_listener_free(l);

    /* The port is free again once the listener is gone. */
    refused_rc = coro_dial(spec, 5000);
    refused_errno = errno;
    bad_rc = coro_dial("127.0.0.1", 5000);
    bad_errno = errno;
}

START_TEST(dial_connects_and_reports_refused)
{
    unit_run(1, dial_body, NULL);
    ck_assert_int_ge(dial_ok_fd, 0);
    ck_assert_int_ge(dial_name_fd, 0);
    ck_assert_int_eq(refused_rc, -1);
    ck_assert_int_eq(refused_errno, ECONNREFUSED);
    ck_assert_int_eq(bad_rc, -1);
    ck_assert_int_eq(bad_errno, EINVAL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("addr");
    tcase_add_test(tc, addr_parse_valid_inputs);
    tcase_add_test(tc, addr_parse_invalid_inputs_give_reason);
    tcase_add_test(tc, addr_parse_unix_path_too_long);
    tcase_add_test(tc, addr_format_round_trips);
    tcase_add_test(tc, addr_loopback_detection);
    suite_add_tcase(s, tc);

    tc = tcase_create("listener");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, listener_reuseport_serves_500_echo_connections);
    tcase_add_test(tc, listener_unix_socket_shared_by_workers);
    tcase_add_test(tc, listener_adopts_listening_fd);
    tcase_add_test(tc, listener_from_fd_rejects_non_listening_socket);
    tcase_add_test(tc, listener_bind_conflict_reports_address_and_reason);
    tcase_add_test(tc, listener_close_stops_accepting);
    tcase_add_test(tc, listener_new_before_runtime_then_serve);
    tcase_add_test(tc, listener_survives_emfile);
    suite_add_tcase(s, tc);

    tc = tcase_create("dns");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, dns_localhost_from_hosts_file);
    tcase_add_test(tc, dns_numeric_hosts_bypass_dns);
    tcase_add_test(tc, dns_answers_and_errors_from_nameserver);
    tcase_add_test(tc, dns_resolve_is_cancellable_and_times_out);
    tcase_add_test(tc, dial_connects_and_reports_refused);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
