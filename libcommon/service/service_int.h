/*
 * service_int.h - shared between daemon.c and admin.c: the connection
 * tracker used for draining, and the admin endpoint's connection handler.
 */
#ifndef CORO_SERVICE_INT_H
#define CORO_SERVICE_INT_H

#include <pthread.h>

#include "coro/daemon.h"

/* Registered connection coroutines (struct daemon_conn on their stacks). */
struct conntrack {
    pthread_mutex_t mu;
    struct daemon_conn head; /* circular list sentinel */
    size_t n;
};

void service__track_init(struct conntrack *t);
void service__track_enter(struct conntrack *t, struct daemon_conn *c);
void service__track_leave(struct conntrack *t, struct daemon_conn *c);
/* Wait until none is left or coro_now_ms() reaches deadline; then cancel
 * the rest and wait for them (a cancelled connection ends promptly).
 * Coroutine only. Returns how many had to be cancelled. */
size_t service__track_drain(struct conntrack *t, uint64_t deadline_ms);

/* Connection handler of the admin endpoint; arg is the daemon_t. */
void service__admin_conn(int fd, const struct coro_addr *peer, void *arg);
/* The admin connections' tracker of d. */
struct conntrack *service__admin_track(daemon_t *d);

#endif
