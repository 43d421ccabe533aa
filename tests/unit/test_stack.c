/*
 * test_stack.c - coroutine stacks: an overflow ends the process with a
 * message naming the coroutine and stack_size (on a guard page and, past
 * the guard budget, by the check at every switch), parked coroutines cost
 * about one page, and a million coroutines can be alive at once on default
 * kernel settings.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "coro/coro.h"
#include "coro/sync.h"
#include "unit.h"

/* ---- overflow ------------------------------------------------------------ */

static int id_pipe = -1;
static volatile int limit = 1 << 30; /* never reached: the stack ends first */

static int __attribute__((noinline)) recurse(int depth, int yield_each)
{
    volatile char pad[256];
    pad[0] = (char)depth;
    if (yield_each)
        coro_yield();
    if (depth >= limit)
        return pad[0];
    return recurse(depth + 1, yield_each) + pad[0];
}

static void overflow_body(void *arg)
{
    unsigned long long id = coro_id(coro_self());
    if (write(id_pipe, &id, sizeof(id)) != sizeof(id))
        _exit(3);
    recurse(0, *(int *)arg);
}

static void overflow_main(void *arg)
{
    coro_join(coro_spawn(overflow_body, arg));
}

/* Run an overflowing coroutine in a child; return its stderr and id. */
static int run_overflow(int yield_each, const char *guard_budget, char *err, size_t errlen,
                        unsigned long long *id)
{
    int ep[2], ip[2];
    ck_assert_int_eq(pipe(ep), 0);
    ck_assert_int_eq(pipe(ip), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(ep[1], 2);
        close(ep[0]);
        close(ip[0]);
        id_pipe = ip[1];
        if (guard_budget)
            setenv("CORO_STACK_GUARD_BUDGET", guard_budget, 1);
        struct coro_config cfg;
        coro_config_default(&cfg);
        cfg.workers = 1;
        coro_run(&cfg, overflow_main, &yield_each);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(ep[1]);
    close(ip[1]);
    ck_assert_int_eq(read(ip[0], id, sizeof(*id)), (ssize_t)sizeof(*id));
    size_t n = 0;
    ssize_t r;
    while (n < errlen - 1 && (r = read(ep[0], err + n, errlen - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    int status;
    waitpid(pid, &status, 0);
    close(ep[0]);
    close(ip[0]);
    return status;
}

static void check_overflow_message(const char *err, unsigned long long id)
{
    char want[128];
    snprintf(want, sizeof(want), "coroutine %llu overflowed its stack (stack_size = 65536 bytes)",
             id);
    ck_assert_msg(strstr(err, want), "stderr was: %s", err);
}

START_TEST(overflow_on_guard_page_names_coroutine)
{
    char err[1024];
    unsigned long long id;
    int status = run_overflow(0, NULL, err, sizeof(err), &id);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGABRT);
    check_overflow_message(err, id);
}
END_TEST

START_TEST(overflow_of_slab_stack_caught_at_switch)
{
    char err[1024];
    unsigned long long id;
    /* no guard pages at all: the stack-pointer check must catch it */
    int status = run_overflow(1, "0", err, sizeof(err), &id);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGABRT);
    check_overflow_message(err, id);
}
END_TEST

/* ---- parked coroutines ------------------------------------------------------- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

struct parked {
    coro_sem_t sem;
    long n;
    long rss_before, rss_after;
    struct coro_stats st;
};

static void park_on_sem(void *arg)
{
    coro_sem_wait(&((struct parked *)arg)->sem);
}

static void park_many(void *arg)
{
    struct parked *p = arg;
    coro_sem_init(&p->sem, 0);
    p->rss_before = rss_kib();
    for (long i = 0; i < p->n; i++) {
        coro_t *c = coro_spawn(park_on_sem, p);
        ck_assert_ptr_nonnull(c);
        coro_detach(c);
        if (i % 1024 == 0)
            coro_yield(); /* let them start and park as we go */
    }
    /* every one has run and parked once nothing else is ready */
    for (int i = 0; i < 4; i++)
        coro_sleep_ms(5);
    p->rss_after = rss_kib();
    coro_stats_get(&p->st);
    for (long i = 0; i < p->n; i++)
        coro_sem_post(&p->sem);
}

/* The RSS target is for the assembly switch: ucontext keeps a ~1 KiB
 * ucontext_t per coroutine on the heap. */
static int measuring_memory_makes_sense(void)
{
#if defined(CORO_SANITIZERS) || defined(CORO_CTX_UCONTEXT)
    return 0;
#else
    return !RUNNING_ON_VALGRIND;
#endif
}

START_TEST(parked_coroutine_costs_about_a_page)
{
    struct parked p = { .n = 100000 };
    unit_run(1, park_many, &p);
    ck_assert_uint_ge(p.st.alive, 100000);
    /* past the guard budget, the rest come from slabs */
    ck_assert_uint_lt(p.st.stacks_guarded, 40000);
    if (measuring_memory_makes_sense()) {
        double per = (double)(p.rss_after - p.rss_before) * 1024.0 / (double)p.n;
        ck_assert_msg(per <= 4.5 * 1024, "%.0f bytes RSS per parked coroutine", per);
    }
}
END_TEST

START_TEST(million_coroutines_alive_at_once)
{
    struct parked p = { .n = 1000000 };
    unit_run(2, park_many, &p);
    ck_assert_uint_ge(p.st.alive, 1000000);
    ck_assert_uint_ge(p.st.stacks_mapped, 1000000);
}
END_TEST

static Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("overflow");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, overflow_on_guard_page_names_coroutine);
    tcase_add_test(tc, overflow_of_slab_stack_caught_at_switch);
    suite_add_tcase(s, tc);
    tc = tcase_create("scale");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, parked_coroutine_costs_about_a_page);
    tcase_add_test(tc, million_coroutines_alive_at_once);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(stack_suite)
