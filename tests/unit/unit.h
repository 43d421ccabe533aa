/*
 * unit.h - shared scaffolding for the Check suites: run a test body as the
 * main coroutine of a fresh runtime, and a suite main() with one line.
 */
#ifndef CORO_TESTS_UNIT_H
#define CORO_TESTS_UNIT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include "coro/coro.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* Under Valgrind (20-50x slower, with its own malloc and fd table), checks
 * of wall-clock timing, heap statistics or kernel limits would measure
 * Valgrind: such a test starts with this and passes without checking.
 * scripts/valgrind.sh is there to find memory errors, not to time things. */
#define UNIT_SKIP_UNDER_VALGRIND(why)                                    \
    do {                                                                 \
        if (RUNNING_ON_VALGRIND) {                                       \
            fprintf(stderr, "%s: not checked under valgrind (%s)\n",     \
                    __func__, why);                                      \
            return;                                                      \
        }                                                                \
    } while (0)

/* Run body(arg) inside a fresh runtime with `workers` workers and default
 * stacks; fails the test if coro_run itself fails. */
static inline void unit_run(unsigned workers, void (*body)(void *), void *arg)
{
    struct coro_config cfg;
    coro_config_default(&cfg);
    cfg.workers = workers;
    ck_assert_int_eq(coro_run(&cfg, body, arg), 0);
}

/* Every case that runs an event loop gets this timeout (seconds). */
#define UNIT_TIMEOUT 30

/* main() for a suite built by make_suite(). */
#define UNIT_MAIN(make_suite)                                           \
    int main(void)                                                      \
    {                                                                   \
        SRunner *sr = srunner_create(make_suite());                     \
        srunner_run_all(sr, CK_NORMAL);                                 \
        int failed = srunner_ntests_failed(sr);                         \
        srunner_free(sr);                                               \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;               \
    }

#endif
