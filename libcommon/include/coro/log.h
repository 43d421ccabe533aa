/*
 * log.h - the one logging API of the daemons and the CLI, modelled on
 * OpenBSD daemons' log.c.
 *
 * Every event is one line on stderr (fd 2 unless log_set_fd), written with a
 * single write(2) so lines from concurrent workers never interleave:
 *
 *     <4>listener "mqtt" (127.0.0.1:1883): accept: Too many open files
 *
 * The `<N>` prefix is the syslog priority (LOG_ERR = 3 ... LOG_DEBUG = 7):
 * journald reads it (SyslogLevelPrefix=yes, the default) and strips it, so
 * `journalctl -p warning` works. Newlines inside a message become spaces.
 * Messages longer than LOG_MAX_LINE are cut and end with "...".
 *
 * Style of messages: lower case, no trailing period, the object first.
 * Never log secrets. All functions are thread-safe, never yield, and
 * preserve errno.
 */
#ifndef CORO_LOG_H
#define CORO_LOG_H

#include <stdarg.h>
#include <syslog.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOG_MAX_LINE 1024

/* Least important priority written (LOG_DEBUG..LOG_ERR); default LOG_INFO.
 * Messages above it (less important) are dropped. Any thread. */
void log_set_level(int level);
int log_get_level(void);
/* Write lines to fd instead of stderr (tests); returns the previous fd. */
int log_set_fd(int fd);

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);   /* LOG_ERR, appends ": strerror(errno)" */
void log_errorx(const char *fmt, ...) LOG_PRINTF(1, 2);  /* LOG_ERR */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);    /* LOG_WARNING, appends strerror(errno) */
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);   /* LOG_WARNING */
void log_notice(const char *fmt, ...) LOG_PRINTF(1, 2);  /* LOG_NOTICE */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);    /* LOG_INFO */
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);   /* LOG_DEBUG */
/* Log at LOG_CRIT (never filtered) and exit(1). fatal appends strerror. */
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

/* The general form: priority, and errnum (0 = none) appended as
 * ": strerror(errnum)". */
void log_vmsg(int prio, int errnum, const char *fmt, va_list ap) LOG_PRINTF(3, 0);
void log_msg(int prio, int errnum, const char *fmt, ...) LOG_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif
