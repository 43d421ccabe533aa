/*
 * proc.h - child processes for coroutines: posix_spawn with pipes that are
 * read and written through coroutine I/O, and a wait that parks on a pidfd
 * instead of blocking the worker or relying on SIGCHLD.
 *
 * Used by the CLI (parallel, pipeline, retry, watch) and by daemons that run
 * helpers. The struct is opaque; each process belongs to the coroutine that
 * spawned it (not thread-safe).
 */
#ifndef CORO_PROC_H
#define CORO_PROC_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum coro_proc_io {
    CORO_PROC_INHERIT = 0, /* share the parent's fd */
    CORO_PROC_NULL,        /* /dev/null */
    CORO_PROC_PIPE,        /* a non-blocking pipe end for the parent */
    CORO_PROC_STDOUT,      /* stderr only: into the same pipe/fd as stdout */
};

struct coro_proc_opts {
    const char *const *argv;  /* argv[0] looked up in PATH; ignored with shell */
    const char *shell_cmd;    /* when set: run `/bin/sh -c shell_cmd` instead */
    const char *const *envp;  /* NULL = inherit environ */
    const char *cwd;          /* NULL = inherit */
    enum coro_proc_io in, out, err;
    int new_pgrp;             /* own process group, so kill() reaches grandchildren */
};

typedef struct coro_proc coro_proc_t;

/* Start a process. NULL with errno (ENOENT for a missing program, as
 * posix_spawnp reports it, EMFILE...). Does not yield. */
coro_proc_t *coro_proc_spawn(const struct coro_proc_opts *o);
pid_t coro_proc_pid(const coro_proc_t *p);
/* Parent ends of the pipes asked for (non-blocking, close-on-exec), or -1.
 * Owned by p; coro_proc_close_stdin() closes the child's stdin early (EOF). */
int coro_proc_stdin(const coro_proc_t *p);
int coro_proc_stdout(const coro_proc_t *p);
int coro_proc_stderr(const coro_proc_t *p);
void coro_proc_close_stdin(coro_proc_t *p);
/* A pidfd that turns readable when the process ends (for waiting on it
 * together with other fds, e.g. in an epoll set), or -1 on kernels without
 * pidfd_open. Owned by p. */
int coro_proc_pidfd(const coro_proc_t *p);
/*
 * Wait for the process to end: 0 with *status as from waitpid (use
 * WIFEXITED...), or -1 with ETIMEDOUT (still running) or ECANCELED.
 * Coroutine only; may yield. Outside a coroutine it blocks.
 */
int coro_proc_wait(coro_proc_t *p, int64_t timeout_ms, int *status);
/* Send sig to the process (or to its group with new_pgrp). 0 or -1. */
int coro_proc_kill(coro_proc_t *p, int sig);
/* Close the pipes and free; kills nothing. Reaps the child if it ended. */
void coro_proc_free(coro_proc_t *p);

#ifdef __cplusplus
}
#endif
#endif
