/*
 * net.h - addresses, listeners with one SO_REUSEPORT socket per worker,
 * outgoing connections and DNS through evdns on the worker's event loop.
 *
 * Address syntax (as in every config file): "127.0.0.1:1883", "[::1]:80",
 * "*:8080" (all IPv4 and IPv6 addresses), ":8080" (same), and
 * "unix:/run/coro/x.sock". Port 0 asks the kernel for an ephemeral port;
 * coro_listener_addr() reads back the real one.
 */
#ifndef CORO_NET_H
#define CORO_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

struct coro_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parse a numeric address (no DNS). 0, or -1/EINVAL with a reason in err
 * ("port out of range 0..65535"). */
int coro_addr_parse(const char *s, struct coro_addr *out, char *err, size_t errlen);
/* Format as "1.2.3.4:80", "[::1]:80" or "unix:/path". Returns buf. */
char *coro_addr_format(const struct coro_addr *a, char *buf, size_t len);
#define CORO_ADDR_STRLEN 128
/* Port of an inet address, 0 for unix sockets. */
int coro_addr_port(const struct coro_addr *a);
/* Nonzero for 127.0.0.0/8, ::1, ::ffff:127.x and unix sockets. */
int coro_addr_is_loopback(const struct coro_addr *a);

/*
 * A listener: one listening socket per worker (SO_REUSEPORT) so accepts
 * spread over cores, or a single socket shared by all workers when made
 * from an inherited fd (socket activation) or a unix path.
 * Not thread-safe: create, serve and close it from one coroutine.
 */
typedef struct coro_listener coro_listener_t;

/* Bind and listen (backlog 0 = 511). Does not need a running runtime.
 * NULL with errno and a reason in err (e.g. "bind 127.0.0.1:80: Permission
 * denied"). */
coro_listener_t *coro_listener_new(const struct coro_addr *a, int backlog,
                                   char *err, size_t errlen);
/* Adopt an already listening fd (LISTEN_FDS). Takes ownership of fd. */
coro_listener_t *coro_listener_from_fd(int fd, char *err, size_t errlen);
/* The bound address, with the real port when 0 was asked. */
int coro_listener_addr(const coro_listener_t *l, struct coro_addr *out);

/*
 * Start one accept loop per worker; each accepted connection runs
 * handler(fd, peer, arg) in a new coroutine on the accepting worker (the fd
 * is non-blocking; the handler owns it). Returns at once: 0, or -1/EBUSY if
 * already serving, ESRCH outside a runtime. Coroutine only.
 */
typedef void (*coro_conn_fn)(int fd, const struct coro_addr *peer, void *arg);
int coro_listener_serve(coro_listener_t *l, coro_conn_fn handler, void *arg);
/* Stop accepting and wait for the accept loops to end (connections already
 * accepted are not touched). Coroutine only when serving; may yield. */
void coro_listener_close(coro_listener_t *l);
/* Close (if needed) and free. */
void coro_listener_free(coro_listener_t *l);
/* Accepted connections so far (all workers). */
uint64_t coro_listener_accepted(const coro_listener_t *l);

/*
 * Resolve host (name or numeric) and port through evdns (no thread, no
 * blocking; /etc/hosts and /etc/resolv.conf are read once per worker).
 * family: AF_UNSPEC, AF_INET or AF_INET6. Fills up to max addresses and
 * returns how many (>= 1), or -1 with errno ENOENT (no such name),
 * EAGAIN (temporary DNS failure), ETIMEDOUT, ECANCELED, EINVAL.
 * Coroutine only; may yield.
 */
int coro_dns_resolve(const char *host, int port, int family,
                     struct coro_addr *out, size_t max, int64_t timeout_ms);

/*
 * Connect to "host:port" ("[v6]:port", "unix:/path"): resolve, then try each
 * address in turn within timeout_ms overall. Returns a connected
 * non-blocking fd, or -1 with errno. Coroutine only; may yield.
 */
int coro_dial(const char *hostport, int64_t timeout_ms);
/* Connect to a parsed address. Same results as coro_dial. */
int coro_dial_addr(const struct coro_addr *a, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
