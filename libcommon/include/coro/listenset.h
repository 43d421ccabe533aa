/*
 * listenset.h - a daemon's set of named listeners, changed by reloads
 * without dropping connections.
 *
 * listenset_apply() makes the set match a wanted list of (name, address,
 * handler, arg): a listener whose name and configured address are
 * unchanged keeps its socket and accept loops (only its arg is updated for
 * connections accepted from then on); new or changed ones are bound
 * (or adopted from systemd socket activation via daemon_listen_fd()),
 * removed ones stop accepting. Connections already accepted are never
 * touched: closing them is the daemon's choice.
 *
 * All-or-nothing: every new socket is bound before anything is closed; if
 * one bind fails, the newly bound ones are closed and the set is unchanged.
 * Not thread-safe: use a set from one coroutine (the daemon's main one).
 */
#ifndef CORO_LISTENSET_H
#define CORO_LISTENSET_H

#include <stddef.h>

#include "coro/daemon.h"
#include "coro/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct listenset listenset_t;

struct listenset_want {
    const char *name; /* unique in the set: "mqtt", "admin" */
    struct coro_addr addr;
    coro_conn_fn handler; /* runs per connection: handler(fd, peer, arg) */
    void *arg;
    int backlog; /* 0 = default */
};

/* d supplies socket-activated fds and may be NULL. NULL/ENOMEM. */
listenset_t *listenset_new(daemon_t *d);
/*
 * Apply the wanted list (see above); logs "listener "NAME": listening on
 * ADDR" for each new one and "listener "NAME": closed" for removed ones.
 * 0, or -1 with a reason in err ("listener "mqtt": bind 127.0.0.1:80:
 * Permission denied"). Coroutine only; may yield.
 */
int listenset_apply(listenset_t *s, const struct listenset_want *w, size_t n, char *err,
                    size_t errlen);
/* The bound address (real port) of the listener called name: 0 or -1. */
int listenset_addr(const listenset_t *s, const char *name, struct coro_addr *out);
size_t listenset_count(const listenset_t *s);
/* Accepted connections of listener name (0 when unknown). */
uint64_t listenset_accepted(const listenset_t *s, const char *name);
/* Stop accepting on every listener (stop()); may yield. */
void listenset_close(listenset_t *s);
void listenset_free(listenset_t *s);

#ifdef __cplusplus
}
#endif
#endif
