/*
 * log.c - one line per event on stderr with a syslog priority prefix,
 * written with one write(2) so concurrent workers never interleave.
 *
 * The level and fd are process-wide atomics: the only global state here,
 * set by the daemon at start and on reload, read by every worker.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coro/log.h"

static atomic_int log_level = LOG_INFO;
static atomic_int log_fd = 2;

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_get_level(void)
{
    return atomic_load(&log_level);
}

int log_set_fd(int fd)
{
    return atomic_exchange(&log_fd, fd);
}

/* Append s at *off, stopping before the last byte (kept for '\n'). */
static void append(char *buf, size_t *off, const char *s)
{
    size_t room = LOG_MAX_LINE - 1 - *off;
    size_t n = strnlen(s, room + 1);

    if (n > room) {
        memcpy(buf + *off, s, room);
        memcpy(buf + LOG_MAX_LINE - 4, "...", 3);
        *off = LOG_MAX_LINE - 1;
        return;
    }
    memcpy(buf + *off, s, n);
    *off += n;
}

void log_vmsg(int prio, int errnum, const char *fmt, va_list ap)
{
    int saved = errno;
    char buf[LOG_MAX_LINE + 1];
    char msg[LOG_MAX_LINE + 1];
    size_t off;

    if (prio > atomic_load(&log_level) && prio > LOG_CRIT)
        goto out;
    off = (size_t)snprintf(buf, sizeof(buf), "<%d>", prio & 7);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg))
        memcpy(msg + sizeof(msg) - 4, "...", 3);
    append(buf, &off, msg);
    if (errnum) {
        append(buf, &off, ": ");
        append(buf, &off, strerror(errnum));
    }
    for (size_t i = 3; i < off; i++)
        if (buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    buf[off++] = '\n';
    /* One write per line; a short write to a pipe of this size is not expected. */
    if (write(atomic_load(&log_fd), buf, off) < 0)
        (void)0;
out:
    errno = saved;
}

void log_msg(int prio, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(prio, errnum, fmt, ap);
    va_end(ap);
}

#define DEFINE_LOG(fn, prio, with_errno)                                                           \
    void fn(const char *fmt, ...)                                                                  \
    {                                                                                              \
        int e = errno;                                                                             \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_vmsg(prio, with_errno ? e : 0, fmt, ap);                                               \
        va_end(ap);                                                                                \
    }

DEFINE_LOG(log_error, LOG_ERR, 1)
DEFINE_LOG(log_errorx, LOG_ERR, 0)
DEFINE_LOG(log_warn, LOG_WARNING, 1)
DEFINE_LOG(log_warnx, LOG_WARNING, 0)
DEFINE_LOG(log_notice, LOG_NOTICE, 0)
DEFINE_LOG(log_info, LOG_INFO, 0)
DEFINE_LOG(log_debug, LOG_DEBUG, 0)

void fatal(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_CRIT, e, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_CRIT, 0, fmt, ap);
    va_end(ap);
    exit(1);
}
