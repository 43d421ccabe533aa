/*
 * offload.h - run a blocking call (getaddrinfo, fsync, big file I/O) on a
 * small pool of plain threads while the calling coroutine is parked, so the
 * worker keeps serving other coroutines.
 */
#ifndef CORO_OFFLOAD_H
#define CORO_OFFLOAD_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Run fn(arg) on the offload pool and park until it returns. fn must not
 * call coroutine-only functions. A thread cannot be interrupted, so a
 * cancelled caller still waits for fn to finish (arg may live on its stack)
 * and then gets -1/ECANCELED. Returns 0 otherwise. Outside a coroutine fn
 * simply runs in the calling thread. The pool starts lazily with
 * min(8, 2 * workers) threads and stops with coro_run().
 */
int coro_offload(void (*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif
#endif
