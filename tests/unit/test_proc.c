/*
 * test_proc.c - child processes (coro/proc.h): pipes read through
 * coroutine I/O, exit statuses, spawn errors, wait timeouts and
 * cancellation, process-group kills that reach grandchildren, default
 * signals in the child, and many concurrent processes on two workers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "coro/io.h"
#include "coro/proc.h"
#include "unit.h"

/* Read fd to EOF into buf (NUL-terminated); returns the length or -1. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = coro_read(fd, buf + n, cap - 1 - n, 10000);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

/* ---- output and status ---------------------------------------------------- */

static void body_echo(void *unused)
{
    const char *argv[] = {"echo", "hello", "world", NULL};
    struct coro_proc_opts o = {.argv = argv, .out = CORO_PROC_PIPE};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(coro_proc_stdin(p), -1);
    ck_assert_int_ge(coro_proc_stdout(p), 0);
    char buf[64];
    ck_assert_int_eq(read_all(coro_proc_stdout(p), buf, sizeof(buf)), 12);
    ck_assert_str_eq(buf, "hello world\n");
    int st = -1;
    ck_assert_int_eq(coro_proc_wait(p, 5000, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    coro_proc_free(p);
}

START_TEST(echo_stdout_read_through_coro_read)
{
    unit_run(1, body_echo, NULL);
}
END_TEST

static void body_status(void *unused)
{
    struct coro_proc_opts o = {.shell_cmd = "echo out; echo err >&2; exit 7",
                               .out = CORO_PROC_PIPE, .err = CORO_PROC_STDOUT};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(coro_proc_stderr(p), -1);
    char buf[64];
    ck_assert_int_ge(read_all(coro_proc_stdout(p), buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "out\nerr\n");
    int st = -1;
    ck_assert_int_eq(coro_proc_wait(p, -1, &st), 0);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 7);
    /* A second wait returns the same status without a syscall failing. */
    ck_assert_int_eq(coro_proc_wait(p, 0, &st), 0);
    ck_assert_int_eq(WEXITSTATUS(st), 7);
    coro_proc_free(p);
}

START_TEST(exit_status_and_stderr_into_stdout)
{
    unit_run(1, body_status, NULL);
}
END_TEST

static void body_stdin(void *unused)
{
    const char *argv[] = {"cat", NULL};
    struct coro_proc_opts o = {.argv = argv, .in = CORO_PROC_PIPE, .out = CORO_PROC_PIPE,
                               .err = CORO_PROC_NULL};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(coro_write_all(coro_proc_stdin(p), "abc\n", 4, 5000), 0);
    coro_proc_close_stdin(p);
    ck_assert_int_eq(coro_proc_stdin(p), -1);
    char buf[16];
    ck_assert_int_eq(read_all(coro_proc_stdout(p), buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "abc\n");
    int st;
    ck_assert_int_eq(coro_proc_wait(p, 5000, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    coro_proc_free(p);
}

START_TEST(stdin_pipe_and_early_eof)
{
    unit_run(1, body_stdin, NULL);
}
END_TEST

START_TEST(missing_program_is_enoent)
{
    UNIT_SKIP_UNDER_VALGRIND("its posix_spawn emulation reports exec failures late");
    const char *argv[] = {"coro-no-such-program-xyz", NULL};
    struct coro_proc_opts o = {.argv = argv, .out = CORO_PROC_PIPE};
    errno = 0;
    ck_assert_ptr_null(coro_proc_spawn(&o));
    ck_assert_int_eq(errno, ENOENT);
    const char *argv2[] = {"/nonexistent/dir/prog", NULL};
    o.argv = argv2;
    errno = 0;
    ck_assert_ptr_null(coro_proc_spawn(&o));
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- timeouts, kills, signals ----------------------------------------------- */

static void body_timeout(void *unused)
{
    const char *argv[] = {"sleep", "30", NULL};
    struct coro_proc_opts o = {.argv = argv};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    int st = -1;
    uint64_t t0 = coro_now_ms();
    ck_assert_int_eq(coro_proc_wait(p, 50, &st), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_uint_ge(coro_now_ms() - t0, 40);
    ck_assert_int_eq(st, -1);
    ck_assert_int_eq(coro_proc_kill(p, SIGKILL), 0);
    ck_assert_int_eq(coro_proc_wait(p, 5000, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    coro_proc_free(p);
}

START_TEST(wait_times_out_while_running)
{
    unit_run(1, body_timeout, NULL);
}
END_TEST

/* The parent ignores SIGTERM and blocks SIGUSR1; the child must not
 * inherit either, so SIGTERM kills it. */
static void body_sigdefault(void *unused)
{
    const char *argv[] = {"sleep", "30", NULL};
    struct coro_proc_opts o = {.argv = argv};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(coro_proc_kill(p, SIGTERM), 0);
    int st;
    ck_assert_int_eq(coro_proc_wait(p, 5000, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    coro_proc_free(p);
}

START_TEST(child_gets_default_signals)
{
    signal(SIGTERM, SIG_IGN);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    unit_run(1, body_sigdefault, NULL);
}
END_TEST

static pid_t grandchild;

static void body_group(void *unused)
{
    struct coro_proc_opts o = {.shell_cmd = "sleep 30 & echo $!; wait", .out = CORO_PROC_PIPE,
                               .new_pgrp = 1};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    char buf[32];
    size_t n = 0;
    while (n == 0 || buf[n - 1] != '\n') {
        ssize_t r = coro_read(coro_proc_stdout(p), buf + n, sizeof(buf) - 1 - n, 5000);
        ck_assert_int_gt(r, 0);
        n += (size_t)r;
    }
    buf[n] = '\0';
    grandchild = (pid_t)atoi(buf);
    ck_assert_int_gt(grandchild, 0);
    ck_assert_int_eq(getpgid(grandchild), coro_proc_pid(p));
    ck_assert_int_eq(coro_proc_kill(p, SIGKILL), 0);
    int st;
    ck_assert_int_eq(coro_proc_wait(p, 5000, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    coro_proc_free(p);
}

START_TEST(group_kill_reaches_grandchild)
{
    /* Orphans come back to us, so the grandchild's fate can be waited for. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    unit_run(1, body_group, NULL);
    int st;
    alarm(10); /* a surviving `sleep 30` fails the test instead of hanging */
    ck_assert_int_eq(waitpid(grandchild, &st, 0), grandchild);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}
END_TEST

/* ---- many at once, cancellation, plain threads ------------------------------- */

#define NPROC 200

struct job {
    int index;
    int status;
    char out[16];
    int ok;
};

static void run_job(void *arg)
{
    struct job *j = arg;
    char cmd[48];
    snprintf(cmd, sizeof(cmd), "echo %d; exit %d", j->index, j->index % 100);
    struct coro_proc_opts o = {.shell_cmd = cmd, .out = CORO_PROC_PIPE};
    coro_proc_t *p = coro_proc_spawn(&o);
    if (!p)
        return;
    if (read_all(coro_proc_stdout(p), j->out, sizeof(j->out)) >= 0 &&
        coro_proc_wait(p, 20000, &j->status) == 0)
        j->ok = 1;
    coro_proc_free(p);
}

static void body_many(void *arg)
{
    struct job *jobs = arg;
    coro_scope_t s;
    coro_scope_init(&s);
    for (int i = 0; i < NPROC; i++) {
        jobs[i].index = i;
        ck_assert_ptr_nonnull(coro_scope_spawn(&s, run_job, &jobs[i]));
    }
    ck_assert_int_eq(coro_scope_wait(&s), 0);
}

START_TEST(two_hundred_concurrent_processes_on_two_workers)
{
    static struct job jobs[NPROC];
    unit_run(2, body_many, jobs);
    for (int i = 0; i < NPROC; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d\n", i);
        ck_assert_msg(jobs[i].ok, "job %d did not complete", i);
        ck_assert_str_eq(jobs[i].out, want);
        ck_assert(WIFEXITED(jobs[i].status));
        ck_assert_int_eq(WEXITSTATUS(jobs[i].status), i % 100);
    }
}
END_TEST

struct cancel_ctx {
    coro_proc_t *p;
    int parked;
    int rc, err;
};

static void cancel_waiter(void *arg)
{
    struct cancel_ctx *c = arg;
    c->parked = 1;
    c->rc = coro_proc_wait(c->p, -1, NULL);
    c->err = errno;
}

static void body_cancel(void *unused)
{
    const char *argv[] = {"sleep", "30", NULL};
    struct coro_proc_opts o = {.argv = argv};
    struct cancel_ctx c = {.p = coro_proc_spawn(&o)};
    ck_assert_ptr_nonnull(c.p);
    coro_t *w = coro_spawn(cancel_waiter, &c);
    ck_assert_ptr_nonnull(w);
    while (!c.parked)  /* one worker: the waiter runs up to its park */
        coro_yield();
    coro_yield();
    coro_cancel(w);
    coro_join(w);
    ck_assert_int_eq(c.rc, -1);
    ck_assert_int_eq(c.err, ECANCELED);
    /* The process is untouched and can still be waited for. */
    ck_assert_int_eq(coro_proc_kill(c.p, SIGKILL), 0);
    int st;
    ck_assert_int_eq(coro_proc_wait(c.p, 5000, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    coro_proc_free(c.p);
}

START_TEST(wait_is_cancellable)
{
    unit_run(1, body_cancel, NULL);
}
END_TEST

START_TEST(wait_outside_coroutines_blocks)
{
    const char *argv[] = {"sleep", "30", NULL};
    struct coro_proc_opts o = {.argv = argv, .new_pgrp = 1};
    coro_proc_t *p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    int st;
    ck_assert_int_eq(coro_proc_wait(p, 20, &st), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_eq(coro_proc_kill(p, SIGKILL), 0);
    ck_assert_int_eq(coro_proc_wait(p, -1, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    coro_proc_free(p);
    const char *argv2[] = {"true", NULL};
    o.argv = argv2;
    p = coro_proc_spawn(&o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(coro_proc_wait(p, -1, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    coro_proc_free(p);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc = tcase_create("proc");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, echo_stdout_read_through_coro_read);
    tcase_add_test(tc, exit_status_and_stderr_into_stdout);
    tcase_add_test(tc, stdin_pipe_and_early_eof);
    tcase_add_test(tc, missing_program_is_enoent);
    tcase_add_test(tc, wait_times_out_while_running);
    tcase_add_test(tc, child_gets_default_signals);
    tcase_add_test(tc, group_kill_reaches_grandchild);
    tcase_add_test(tc, two_hundred_concurrent_processes_on_two_workers);
    tcase_add_test(tc, wait_is_cancellable);
    tcase_add_test(tc, wait_outside_coroutines_blocks);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
