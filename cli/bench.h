/*
 * bench.h - what the files of `coro bench runtime` share: timing and RSS
 * helpers (bench_runtime.c) and the network figures (bench_echo.c). Private
 * to cli/; nothing here is library API.
 */
#ifndef CORO_CLI_BENCH_H
#define CORO_CLI_BENCH_H

/* Concurrent client connections of the echo figure (the load). */
#define ECHO_CONNS 200
/* Bytes per echo request. */
#define ECHO_MSG 64

double bench_now_ns(void);           /* CLOCK_MONOTONIC in ns */
long bench_rss(void);                /* VmRSS in bytes, -1 on error */
long bench_rss_trimmed(void);        /* malloc_trim(0), then VmRSS */
/* coro_run(fn, arg) with `workers` workers and default stacks; warns on
 * failure and returns -1. */
int bench_run(unsigned workers, void (*fn)(void *), void *arg);

/* RSS delta per idle loopback TCP connection (both ends' fds in this
 * process): server ends held by coro_watch_fd, or by libevent bufferevents.
 * n is lowered to what RLIMIT_NOFILE allows. 0 or -1 (warned). */
int bench_idle_coro(int n, double *bytes_per_conn);
int bench_idle_libevent(int n, double *bytes_per_conn);

/* Requests/s of a 64-byte echo over `conns` loopback connections for secs
 * seconds, against a coroutine server (coro_listener, `workers` workers) or
 * a one-thread libevent bufferevent server, with the same epoll client. */
int bench_echo_coro(unsigned workers, int conns, double secs, double *rps);
int bench_echo_libevent(int conns, double secs, double *rps);

#endif
