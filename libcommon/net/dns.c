/*
 * dns.c - name resolution on the worker's own event loop (evdns), and
 * dialing "host:port" with one overall deadline.
 *
 * Each worker lazily creates one evdns_base (kept in its CORO_SLOT_DNS slot
 * as a struct evdns_base *; tests reach it there to point it at a fake
 * nameserver). A lookup parks the coroutine on a waiter that the evdns
 * callback finishes; a timeout or a cancellation claims the waiter instead
 * and cancels the request, and the callback, which libevent still runs
 * (with EVUTIL_EAI_CANCEL), then only frees the abandoned query.
 *
 * Not for: blocking getaddrinfo (NSS modules, mDNS...); reverse lookups.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/dns.h>
#include <event2/util.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/net.h"
#include "runtime/runtime_int.h"

#define DIAL_MAX_ADDRS 16

/* One lookup. The callback and the coroutine run on the same worker thread,
 * so only the waiter (claimed by timeouts and cancellers from anywhere)
 * needs atomics. */
struct dns_query {
    struct coro_waiter w;
    int in_call;                 /* inside evdns_getaddrinfo: answer inline */
    int cb_done;                 /* the callback has run: req is gone */
    int abandoned;               /* the coroutine left: callback frees q */
    int result;                  /* EVUTIL_EAI_* */
    struct evutil_addrinfo *res;
};

/* evdns would print "[msg] Nameserver ... has failed" on stderr: library
 * code never prints, and a failed lookup already reports through errno. */
static void dns_log_quiet(int severity, const char *msg)
{
    (void)severity;
    (void)msg;
}

static void dns_log_init(void)
{
    evdns_set_log_fn(dns_log_quiet);
}

static void dns_base_fini(void *p)
{
    /* 1: fail pending requests, so abandoned queries are freed. */
    evdns_base_free(p, 1);
}

/* This worker's evdns_base, created on first use. */
static struct evdns_base *dns_base(void)
{
    void **slot = coro__worker_slot(CORO_SLOT_DNS);
    struct event_base *eb = coro__event_base();
    struct evdns_base *db;
    int flags = EVDNS_BASE_DISABLE_WHEN_INACTIVE;

    static pthread_once_t log_once = PTHREAD_ONCE_INIT;

    if (*slot)
        return *slot;
    pthread_once(&log_once, dns_log_init);
    if (!eb) {
        errno = ESRCH;
        return NULL;
    }
    db = evdns_base_new(eb, flags | EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!db) {
        /* No usable resolv.conf: /etc/hosts and numeric names still work. */
        db = evdns_base_new(eb, flags);
        if (!db) {
            errno = ENOMEM;
            return NULL;
        }
        evdns_base_load_hosts(db, NULL);
    }
    *slot = db;
    coro__worker_slot_fini(CORO_SLOT_DNS, dns_base_fini);
    return db;
}

static int eai_errno(int eai)
{
    switch (eai) {
    case EVUTIL_EAI_NONAME:
    case EVUTIL_EAI_NODATA:
    case EVUTIL_EAI_ADDRFAMILY:
        return ENOENT;
    case EVUTIL_EAI_AGAIN:
    case EVUTIL_EAI_FAIL:
        return EAGAIN;
    case EVUTIL_EAI_MEMORY:
        return ENOMEM;
    case EVUTIL_EAI_CANCEL:
        return ECANCELED;
    case EVUTIL_EAI_SYSTEM:
        return EIO;
    default:
        return EINVAL; /* EAI_FAMILY, EAI_SERVICE, EAI_BADFLAGS... */
    }
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct dns_query *q = arg;

    q->cb_done = 1;
    if (q->abandoned) {
        if (res)
            evutil_freeaddrinfo(res);
        free(q);
        return;
    }
    q->result = result;
    q->res = res;
    if (!q->in_call && coro__waiter_claim(&q->w))
        coro__waiter_finish(&q->w, 0);
}

static void set_port(struct coro_addr *a, int port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* Copy up to max inet results, skipping duplicates. */
static size_t copy_results(const struct evutil_addrinfo *ai, int port,
                           struct coro_addr *out, size_t max)
{
    size_t n = 0;

    for (; ai && n < max; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(out[n].ss))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
        out[n].len = (socklen_t)ai->ai_addrlen;
        set_port(&out[n], port);
        int dup = 0;
        for (size_t i = 0; i < n && !dup; i++)
            dup = out[i].len == out[n].len && memcmp(&out[i].ss, &out[n].ss, out[n].len) == 0;
        if (!dup)
            n++;
    }
    return n;
}

/* A numeric host ("1.2.3.4", "::1", "[::1]") fills out[0]: 1, 0 if not
 * numeric, -1/ENOENT if numeric but not of the asked family. */
static int resolve_numeric(const char *host, int port, int family, struct coro_addr *out)
{
    char buf[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    struct coro_addr a;

    memset(&a, 0, sizeof(a));
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        a.len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        a.len = sizeof(*sin6);
    } else {
        return 0;
    }
    if (family != AF_UNSPEC && family != a.ss.ss_family) {
        errno = ENOENT;
        return -1;
    }
    set_port(&a, port);
    *out = a;
    return 1;
}

/* Start the lookup and park until it ends. 0 with q->result/q->res set,
 * or -1 with errno; q is then owned by the callback or freed. */
static int lookup(struct evdns_base *db, struct dns_query *q, const char *host, int family,
                  int64_t timeout_ms)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    coro__waiter_init(&q->w);
    q->in_call = 1;
    req = evdns_getaddrinfo(db, host, NULL, &hints, dns_cb, q);
    q->in_call = 0;
    if (q->cb_done) /* answered inline: hosts file, or an early error */
        return 0;
    if (!req) { /* documented never to happen without a callback */
        free(q);
        errno = ENOMEM;
        return -1;
    }
    int rc = coro__park(&q->w, timeout_ms, CORO_PARK_CANCELLABLE);
    if (rc == 0)
        return 0;
    if (q->cb_done) {
        /* Answered, but the timeout or the cancel won the waiter. */
        if (q->res)
            evutil_freeaddrinfo(q->res);
        free(q);
    } else {
        q->abandoned = 1;
        evdns_getaddrinfo_cancel(req); /* may run dns_cb, which frees q */
    }
    errno = rc;
    return -1;
}

int coro_dns_resolve(const char *host, int port, int family,
                     struct coro_addr *out, size_t max, int64_t timeout_ms)
{
    coro__require("coro_dns_resolve");
    if (!host || !*host || !out || max == 0 || port < 0 || port > 65535 ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)) {
        errno = EINVAL;
        return -1;
    }
    int num = resolve_numeric(host, port, family, out);
    if (num != 0)
        return num;
    if (coro_cancelled()) {
        errno = ECANCELED;
        return -1;
    }
    struct evdns_base *db = dns_base();
    if (!db)
        return -1;
    struct dns_query *q = calloc(1, sizeof(*q));
    if (!q)
        return -1;
    if (lookup(db, q, host, family, timeout_ms) < 0)
        return -1;

    size_t n = q->result == 0 ? copy_results(q->res, port, out, max) : 0;
    int err = q->result != 0 ? eai_errno(q->result) : ENOENT;
    if (q->res)
        evutil_freeaddrinfo(q->res);
    free(q);
    if (n == 0) {
        errno = err;
        return -1;
    }
    return (int)n;
}

/* Milliseconds left before deadline (< 0: no deadline), at least 0. */
static int64_t remaining(uint64_t deadline, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = coro_now_ms();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static int dial_one(const struct coro_addr *a, int64_t timeout_ms)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (coro_connect(fd, (const struct sockaddr *)&a->ss, a->len, timeout_ms) < 0) {
        int saved = errno;
        coro_close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Try each address in turn until one connects or time runs out. */
static int dial_list(const struct coro_addr *addrs, size_t n, uint64_t deadline,
                     int64_t timeout_ms)
{
    int err = ECONNREFUSED;

    for (size_t i = 0; i < n; i++) {
        int64_t left = remaining(deadline, timeout_ms);
        if (left == 0) {
            err = ETIMEDOUT;
            break;
        }
        int fd = dial_one(&addrs[i], left);
        if (fd >= 0)
            return fd;
        err = errno;
        if (err == ECANCELED || err == ETIMEDOUT)
            break;
    }
    errno = err;
    return -1;
}

int coro_dial_addr(const struct coro_addr *a, int64_t timeout_ms)
{
    coro__require("coro_dial_addr");
    return dial_list(a, 1, coro_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms),
                     timeout_ms);
}

/* Split "host:port" / "[v6]:port" into host (brackets removed) and port. */
static int split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *h = s;
    size_t n;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostlen || colon[1] == '\0')
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (*end || errno || p < 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int coro_dial(const char *hostport, int64_t timeout_ms)
{
    struct coro_addr addrs[DIAL_MAX_ADDRS];
    char host[256];
    int port, n;

    coro__require("coro_dial");
    uint64_t deadline = coro_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    if (!hostport) {
        errno = EINVAL;
        return -1;
    }
    if (strncmp(hostport, "unix:", 5) == 0) {
        if (coro_addr_parse(hostport, &addrs[0], NULL, 0) < 0)
            return -1;
        return dial_list(addrs, 1, deadline, timeout_ms);
    }
    if (split_hostport(hostport, host, sizeof(host), &port) < 0) {
        errno = EINVAL;
        return -1;
    }
    n = coro_dns_resolve(host, port, AF_UNSPEC, addrs, DIAL_MAX_ADDRS, timeout_ms);
    if (n < 0)
        return -1;
    return dial_list(addrs, (size_t)n, deadline, timeout_ms);
}
