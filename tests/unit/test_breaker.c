/*
 * test_breaker.c - the circuit breaker state machine, every transition, in
 * memory and in a state file; the single half-open probe when threads and
 * separate processes race for it.
 */
#include "config.h"

#include <errno.h>
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/breaker.h"
#include "unit.h"

static const struct coro_breaker_conf three = {3, 0, 0, 1000};

static coro_breaker_t *mk(const struct coro_breaker_conf *c)
{
    coro_breaker_t *b = coro_breaker_new(c);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(opens_after_n_consecutive_failures)
{
    coro_breaker_t *b = mk(&three);
    struct coro_breaker_ticket t;
    /* A success in between resets the count. */
    coro_breaker_record(b, 0, 0, 0);
    coro_breaker_record(b, 0, 0, 0);
    coro_breaker_record(b, 0, 1, 0);
    coro_breaker_record(b, 0, 0, 0);
    coro_breaker_record(b, 0, 0, 0);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_CLOSED);
    ck_assert_int_eq(coro_breaker_allow(b, 5, &t), 0);
    ck_assert_int_eq(t.probe, 0);
    coro_breaker_record(b, 10, 0, 0);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_OPEN);
    errno = 0;
    ck_assert_int_eq(coro_breaker_allow(b, 400, &t), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(t.retry_in_ms, 610);
    ck_assert_int_eq(t.state, CORO_BREAKER_OPEN);
    coro_breaker_free(b);
}
END_TEST

START_TEST(ratio_rule_needs_a_full_window)
{
    struct coro_breaker_conf c = {0, 10, 50, 1000};
    coro_breaker_t *b = mk(&c);
    for (int i = 0; i < 9; i++)
        coro_breaker_record(b, 0, i % 2, 0); /* 5 failures of 9 */
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_CLOSED);
    coro_breaker_record(b, 0, 1, 0); /* 5 of 10 = 50% but a success */
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_CLOSED);
    coro_breaker_record(b, 0, 1, 0); /* window slides: 4 of 10 */
    coro_breaker_record(b, 0, 0, 0); /* 5 of 10 on a failure: opens */
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_OPEN);
    coro_breaker_free(b);
}
END_TEST

/* Open -> half-open after the cooldown; one probe; its outcome decides. */
START_TEST(half_open_single_probe_success_closes)
{
    coro_breaker_t *b = mk(&three);
    struct coro_breaker_ticket t;
    for (int i = 0; i < 3; i++)
        coro_breaker_record(b, 100, 0, 0);
    ck_assert_int_eq(coro_breaker_allow(b, 1099, &t), -1);
    ck_assert_uint_eq(t.retry_in_ms, 1);
    ck_assert_int_eq(coro_breaker_allow(b, 1100, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    ck_assert_int_eq(t.state, CORO_BREAKER_HALF_OPEN);
    ck_assert_int_eq(coro_breaker_allow(b, 1100, &t), -1);
    ck_assert_int_eq(t.probe, 0);
    /* A non-probe call finishing now changes nothing. */
    coro_breaker_record(b, 1150, 1, 0);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_HALF_OPEN);
    coro_breaker_record(b, 1200, 1, 1);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_CLOSED);
    ck_assert_int_eq(coro_breaker_allow(b, 1200, &t), 0);
    /* Closed afresh: it takes three new failures to open again. */
    coro_breaker_record(b, 1200, 0, 0);
    coro_breaker_record(b, 1200, 0, 0);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_CLOSED);
    coro_breaker_free(b);
}
END_TEST

START_TEST(half_open_probe_failure_reopens)
{
    coro_breaker_t *b = mk(&three);
    struct coro_breaker_ticket t;
    for (int i = 0; i < 3; i++)
        coro_breaker_record(b, 0, 0, 0);
    ck_assert_int_eq(coro_breaker_allow(b, 1000, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    coro_breaker_record(b, 1500, 0, 1);
    ck_assert_int_eq(coro_breaker_state(b), CORO_BREAKER_OPEN);
    /* The new cooldown counts from the failed probe. */
    ck_assert_int_eq(coro_breaker_allow(b, 2499, &t), -1);
    ck_assert_uint_eq(t.retry_in_ms, 1);
    ck_assert_int_eq(coro_breaker_allow(b, 2500, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    coro_breaker_free(b);
}
END_TEST

START_TEST(lost_probe_is_reissued_after_cooldown)
{
    coro_breaker_t *b = mk(&three);
    struct coro_breaker_ticket t;
    for (int i = 0; i < 3; i++)
        coro_breaker_record(b, 0, 0, 0);
    ck_assert_int_eq(coro_breaker_allow(b, 1000, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    ck_assert_int_eq(coro_breaker_allow(b, 1999, &t), -1);
    ck_assert_int_eq(coro_breaker_allow(b, 2000, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    coro_breaker_free(b);
}
END_TEST

START_TEST(new_rejects_bad_conf)
{
    struct coro_breaker_conf none = {0, 0, 0, 1}, wide = {0, 65, 50, 1}, pct = {0, 10, 0, 1};
    errno = 0;
    ck_assert_ptr_null(coro_breaker_new(&none));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(coro_breaker_new(&wide));
    ck_assert_ptr_null(coro_breaker_new(&pct));
    ck_assert_str_eq(coro_breaker_state_name(CORO_BREAKER_HALF_OPEN), "half-open");
}
END_TEST

/* Threads race for the probe of one in-memory breaker: exactly one wins. */
static coro_breaker_t *race_b;
static int race_wins;
static pthread_barrier_t race_bar;

static void *race_thread(void *arg)
{
    struct coro_breaker_ticket t;
    pthread_barrier_wait(&race_bar);
    for (int i = 0; i < 100; i++)
        if (coro_breaker_allow(race_b, 5000, &t) == 0 && t.probe)
            __atomic_fetch_add(&race_wins, 1, __ATOMIC_RELAXED);
    return NULL;
}

START_TEST(threads_race_for_one_probe)
{
    pthread_t th[8];
    race_b = mk(&three);
    for (int i = 0; i < 3; i++)
        coro_breaker_record(race_b, 0, 0, 0);
    pthread_barrier_init(&race_bar, NULL, 8);
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, race_thread, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(race_wins, 1);
    coro_breaker_free(race_b);
}
END_TEST

/* ---- file form ---- */

static char path[64];

static void mkpath(void)
{
    snprintf(path, sizeof path, "/tmp/coro-breaker-test.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void slurp(char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    buf[fread(buf, 1, n - 1, f)] = '\0';
    fclose(f);
}

START_TEST(file_walks_every_transition)
{
    struct coro_breaker_ticket t;
    char buf[512];
    mkpath();
    /* Empty file = closed; each call is a separate "invocation". */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(coro_breaker_file_allow(path, &three, 100, &t), 0);
        ck_assert_int_eq(t.probe, 0);
        ck_assert_int_eq(coro_breaker_file_record(path, &three, 100, 0, 0), 0);
    }
    slurp(buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "state open\n"));
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 600, &t), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(t.retry_in_ms, 500);
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 1100, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 1101, &t), -1);
    ck_assert_int_eq(t.state, CORO_BREAKER_HALF_OPEN);
    ck_assert_int_eq(coro_breaker_file_record(path, &three, 1200, 0, 1), 0);
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 2199, &t), -1);
    ck_assert_int_eq(t.state, CORO_BREAKER_OPEN);
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 2200, &t), 0);
    ck_assert_int_eq(t.probe, 1);
    ck_assert_int_eq(coro_breaker_file_record(path, &three, 2300, 1, 1), 0);
    slurp(buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "state closed\n"));
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 2300, &t), 0);
    ck_assert_int_eq(t.probe, 0);
    unlink(path);
}
END_TEST

START_TEST(file_rejects_foreign_content)
{
    struct coro_breaker_ticket t;
    mkpath();
    FILE *f = fopen(path, "w");
    fputs("hello world\n", f);
    fclose(f);
    errno = 0;
    ck_assert_int_eq(coro_breaker_file_allow(path, &three, 0, &t), -1);
    ck_assert_int_eq(errno, EBADMSG);
    unlink(path);
    errno = 0;
    ck_assert_int_eq(coro_breaker_file_allow("/nonexistent-dir/x", &three, 0, &t), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* Processes race for the probe through the file: exactly one wins. */
START_TEST(processes_race_for_one_probe)
{
    enum { NPROC = 8 };
    struct coro_breaker_ticket t;
    mkpath();
    for (int i = 0; i < 3; i++)
        coro_breaker_file_record(path, &three, 0, 0, 0);
    /* A shared word makes them start together instead of one by one. */
    int *go = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(go, MAP_FAILED);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        if ((pids[i] = fork()) == 0) {
            while (!__atomic_load_n(go, __ATOMIC_ACQUIRE))
                ;
            int probes = 0;
            for (int k = 0; k < 20; k++)
                if (coro_breaker_file_allow(path, &three, 5000, &t) == 0 && t.probe)
                    probes++;
            _exit(probes);
        }
        ck_assert_int_gt(pids[i], 0);
    }
    __atomic_store_n(go, 1, __ATOMIC_RELEASE);
    int total = 0;
    for (int i = 0; i < NPROC; i++) {
        int st;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert(WIFEXITED(st));
        total += WEXITSTATUS(st);
    }
    ck_assert_int_eq(total, 1);
    munmap(go, 4096);
    unlink(path);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, opens_after_n_consecutive_failures);
    tcase_add_test(tc, ratio_rule_needs_a_full_window);
    tcase_add_test(tc, half_open_single_probe_success_closes);
    tcase_add_test(tc, half_open_probe_failure_reopens);
    tcase_add_test(tc, lost_probe_is_reissued_after_cooldown);
    tcase_add_test(tc, new_rejects_bad_conf);
    tcase_add_test(tc, threads_race_for_one_probe);
    suite_add_tcase(s, tc);
    tc = tcase_create("file");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, file_walks_every_transition);
    tcase_add_test(tc, file_rejects_foreign_content);
    tcase_add_test(tc, processes_race_for_one_probe);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
