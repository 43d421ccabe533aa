/*
 * proc.c - child processes for coroutines (coro/proc.h).
 *
 * Spawning goes through posix_spawnp, which glibc implements with
 * clone(CLONE_VM|CLONE_VFORK): no page tables are copied, so the cost does
 * not grow with the parent's heap and only the calling worker thread is
 * suspended until the exec. The child gets default signal dispositions and
 * an empty mask whatever the parent ignores or blocks (the CLI ignores
 * SIGPIPE; a child must not inherit that).
 *
 * Waiting parks on a pidfd (pidfd_open, Linux >= 5.3), which turns readable
 * when the process ends: no SIGCHLD handler, no thread blocked in waitpid,
 * and timeouts and cancellation come from coro_wait_fd for free. Without
 * pidfds (older kernels) the wait polls waitpid with a growing sleep.
 *
 * Not for: PTYs, or reaping children that were not started here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/proc.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern char **environ;

struct coro_proc {
    pid_t pid;
    int pidfd;          /* -1 when the kernel has no pidfd_open */
    int fd[3];          /* parent ends of stdin/stdout/stderr pipes, or -1 */
    int status;
    int reaped;
    int pgrp;
};

/* Child ends of the pipes; closed in the parent once the child has them. */
struct spawn_fds {
    int child[3];
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        if (coro_worker_index() >= 0)
            coro_close(*fd);
        else
            close(*fd);
        *fd = -1;
    }
}

/* Make the pipe for child fd `which`; the parent's end is non-blocking. */
static int make_pipe(coro_proc_t *p, struct spawn_fds *s, int which)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    int parent = which == 0 ? pfd[1] : pfd[0];
    s->child[which] = which == 0 ? pfd[0] : pfd[1];
    p->fd[which] = parent;
    return coro_fd_nonblock(parent);
}

/* The file action for child fd `which`. */
static int add_io(posix_spawn_file_actions_t *fa, coro_proc_t *p, struct spawn_fds *s,
                  int which, enum coro_proc_io how)
{
    switch (how) {
    case CORO_PROC_INHERIT:
        return 0;
    case CORO_PROC_NULL:
        return posix_spawn_file_actions_addopen(fa, which, "/dev/null",
                                                which == 0 ? O_RDONLY : O_WRONLY, 0);
    case CORO_PROC_PIPE:
        if (make_pipe(p, s, which) < 0)
            return errno;
        /* dup2 onto 0/1/2 clears close-on-exec on the child's copy; glibc
         * also clears it when the pipe end already is that fd. */
        return posix_spawn_file_actions_adddup2(fa, s->child[which], which);
    case CORO_PROC_STDOUT:
        if (which != 2)
            return EINVAL;
        return posix_spawn_file_actions_adddup2(fa, 1, 2);
    }
    return EINVAL;
}

static int set_attrs(posix_spawnattr_t *at, const struct coro_proc_opts *o)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int err = posix_spawnattr_setsigmask(at, &none);
    if (!err)
        err = posix_spawnattr_setsigdefault(at, &all);
    if (!err && o->new_pgrp) {
        flags |= POSIX_SPAWN_SETPGROUP;
        err = posix_spawnattr_setpgroup(at, 0);
    }
    if (!err)
        err = posix_spawnattr_setflags(at, flags);
    return err;
}

static int do_spawn(coro_proc_t *p, const struct coro_proc_opts *o,
                    posix_spawn_file_actions_t *fa, posix_spawnattr_t *at)
{
    char *const *envp = o->envp ? (char *const *)o->envp : environ;
    if (o->shell_cmd) {
        const char *argv[] = {"sh", "-c", o->shell_cmd, NULL};
        return posix_spawn(&p->pid, "/bin/sh", fa, at, (char *const *)argv, envp);
    }
    if (!o->argv || !o->argv[0])
        return EINVAL;
    return posix_spawnp(&p->pid, o->argv[0], fa, at, (char *const *)o->argv, envp);
}

static int spawn_setup(coro_proc_t *p, const struct coro_proc_opts *o, struct spawn_fds *s,
                       posix_spawn_file_actions_t *fa, posix_spawnattr_t *at)
{
    int err = add_io(fa, p, s, 0, o->in);
    if (!err)
        err = add_io(fa, p, s, 1, o->out);
    if (!err)
        err = add_io(fa, p, s, 2, o->err);
    if (!err && o->cwd)
        err = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
    if (!err)
        err = set_attrs(at, o);
    if (!err)
        err = do_spawn(p, o, fa, at);
    return err;
}

coro_proc_t *coro_proc_spawn(const struct coro_proc_opts *o)
{
    coro_proc_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    struct spawn_fds s = {{-1, -1, -1}};
    p->fd[0] = p->fd[1] = p->fd[2] = p->pidfd = -1;
    p->pgrp = o->new_pgrp;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int err = posix_spawn_file_actions_init(&fa);
    if (err)
        goto fail_fa;
    err = posix_spawnattr_init(&at);
    if (err)
        goto fail_at;
    err = spawn_setup(p, o, &s, &fa, &at);
    posix_spawnattr_destroy(&at);
fail_at:
    posix_spawn_file_actions_destroy(&fa);
fail_fa:
    for (int i = 0; i < 3; i++)
        if (s.child[i] >= 0)
            close(s.child[i]);
    if (err)
        goto fail;
    /* The child is unreaped, so its pid cannot be reused before this. */
    p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (p->pidfd >= 0)
        fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
    return p;
fail:
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            close(p->fd[i]);
    free(p);
    errno = err;
    return NULL;
}

pid_t coro_proc_pid(const coro_proc_t *p)
{
    return p->pid;
}

int coro_proc_stdin(const coro_proc_t *p)
{
    return p->fd[0];
}

int coro_proc_stdout(const coro_proc_t *p)
{
    return p->fd[1];
}

int coro_proc_stderr(const coro_proc_t *p)
{
    return p->fd[2];
}

int coro_proc_pidfd(const coro_proc_t *p)
{
    return p->pidfd;
}

void coro_proc_close_stdin(coro_proc_t *p)
{
    close_fd(&p->fd[0]);
}

/* waitpid without blocking: 1 reaped, 0 still running, -1 error. */
static int try_reap(coro_proc_t *p)
{
    if (p->reaped)
        return 1;
    for (;;) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->reaped = 1;
            return 1;
        }
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static int64_t time_left(int64_t timeout_ms, uint64_t end)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = coro_now_ms();
    return end > now ? (int64_t)(end - now) : 0;
}

/* In a coroutine: park on the pidfd, or sleep-poll without one. */
static int wait_coro(coro_proc_t *p, int64_t timeout_ms)
{
    uint64_t end = timeout_ms < 0 ? 0 : coro_now_ms() + (uint64_t)timeout_ms;
    uint64_t nap = 1;
    for (;;) {
        int r = try_reap(p);
        if (r != 0)
            return r < 0 ? -1 : 0;
        int64_t left = time_left(timeout_ms, end);
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (p->pidfd >= 0) {
            if (coro_wait_fd(p->pidfd, CORO_READ, left) < 0)
                return -1;
            continue;
        }
        uint64_t ms = left >= 0 && (uint64_t)left < nap ? (uint64_t)left : nap;
        if (coro_sleep_ms(ms) < 0)
            return -1;
        nap = nap < 50 ? nap * 2 : 50;
    }
}

/* Outside coroutines: poll the pidfd for a timeout, else block. */
static int wait_thread(coro_proc_t *p, int64_t timeout_ms)
{
    if (timeout_ms >= 0 && p->pidfd >= 0) {
        struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
        int r;
        while ((r = poll(&pf, 1, timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms)) < 0 &&
               errno == EINTR)
            ;
        if (r == 0 && !try_reap(p)) {
            errno = ETIMEDOUT;
            return -1;
        }
    } else if (timeout_ms >= 0) {
        /* No pidfd: poll in steps of 10 ms. */
        for (int64_t t = 0;; t += 10) {
            if (try_reap(p))
                return 0;
            if (t >= timeout_ms) {
                errno = ETIMEDOUT;
                return -1;
            }
            usleep(10000);
        }
    }
    while (!p->reaped) {
        if (waitpid(p->pid, &p->status, 0) == p->pid)
            p->reaped = 1;
        else if (errno != EINTR)
            return -1;
    }
    return 0;
}

int coro_proc_wait(coro_proc_t *p, int64_t timeout_ms, int *status)
{
    int r = coro_self() ? wait_coro(p, timeout_ms) : wait_thread(p, timeout_ms);
    if (r == 0 && status)
        *status = p->status;
    return r;
}

int coro_proc_kill(coro_proc_t *p, int sig)
{
    /* A group outlives its leader: after the leader is reaped the group id
     * still names its members (grandchildren left behind). */
    if (p->pgrp)
        return kill(-p->pid, sig);
    if (p->reaped) {
        errno = ESRCH;
        return -1;
    }
    return kill(p->pid, sig);
}

void coro_proc_free(coro_proc_t *p)
{
    if (!p)
        return;
    int err = errno;
    for (int i = 0; i < 3; i++)
        close_fd(&p->fd[i]);
    try_reap(p);
    close_fd(&p->pidfd);
    free(p);
    errno = err;
}
