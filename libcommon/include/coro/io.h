/*
 * io.h - fd I/O that parks the coroutine instead of blocking the worker.
 *
 * The fds must be non-blocking (coro_accept returns such fds; use
 * coro_fd_nonblock otherwise). A worker registers an fd with its event loop
 * once (edge-triggered) on the first wait and keeps it registered, so call
 * coro_close() (or coro_fd_forget() before close()) for fds that coroutines
 * have waited on. An fd is waited on from one worker at a time.
 *
 * timeout_ms < 0 waits forever. Every call here may yield, is coroutine
 * only, and returns -1 with ETIMEDOUT on timeout and ECANCELED when the
 * coroutine is cancelled, besides the errno of the underlying syscall.
 */
#ifndef CORO_IO_H
#define CORO_IO_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CORO_READ = 0x01,
    CORO_WRITE = 0x02,
    CORO_TIMEOUT = 0x04,   /* only reported to watch callbacks */
    CORO_CANCEL = 0x08,    /* only reported to watch callbacks */
};

/* Wait until fd is ready for events (CORO_READ|CORO_WRITE): returns the
 * ready subset (> 0), or -1/ETIMEDOUT, ECANCELED. */
int coro_wait_fd(int fd, int events, int64_t timeout_ms);

ssize_t coro_read(int fd, void *buf, size_t n, int64_t timeout_ms);   /* 0 at EOF */
ssize_t coro_write(int fd, const void *buf, size_t n, int64_t timeout_ms); /* partial ok */
ssize_t coro_readv(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms);
/* Write everything (loops over partial writes). 0 or -1; on -1 some bytes
 * may have been written. */
int coro_write_all(int fd, const void *buf, size_t n, int64_t timeout_ms);
int coro_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms); /* all, 0/-1 */
/* Accept a connection: a new non-blocking, close-on-exec fd, or -1. */
int coro_accept(int lfd, struct sockaddr *sa, socklen_t *salen, int64_t timeout_ms);
/* Connect non-blocking fd: 0, or -1 with the connect error (ECONNREFUSED...). */
int coro_connect(int fd, const struct sockaddr *sa, socklen_t salen, int64_t timeout_ms);

int coro_fd_nonblock(int fd);      /* set O_NONBLOCK; 0/-1 */
void coro_fd_forget(int fd);       /* drop this worker's registration of fd */
int coro_close(int fd);            /* coro_fd_forget + close */

/*
 * Stackless wait for idle connections. Arm a one-shot watch: when fd is
 * ready for events, or timeout_ms passes (< 0: never), or the watch is
 * cancelled, a new coroutine runs fn(arg, what) on this worker, with `what`
 * the ready CORO_READ/CORO_WRITE bits, CORO_TIMEOUT or CORO_CANCEL. The
 * caller typically returns from its coroutine right after, so an idle
 * connection holds no stack, only the watch (a few hundred bytes).
 * A watch counts as alive for coro_run(). NULL/ENOMEM, EEXIST (fd already
 * watched). Coroutine only; does not yield.
 */
typedef struct coro_watch coro_watch_t;
typedef void (*coro_watch_fn)(void *arg, int what);
coro_watch_t *coro_watch_fd(int fd, int events, int64_t timeout_ms, coro_watch_fn fn, void *arg);
/* Fire w now with CORO_CANCEL (fn runs soon in a new coroutine). Must be
 * called on the worker that armed w and before w fired: fn is where the
 * caller forgets its pointer to w. From elsewhere, coro_spawn_on() the
 * worker given by coro_watch_worker(). Misuse aborts with a message. */
void coro_watch_cancel(coro_watch_t *w);
int coro_watch_worker(const coro_watch_t *w);

#ifdef __cplusplus
}
#endif
#endif
