/*
 * test_plog.c - the broker's storage engine: round trip, durability of
 * ALWAYS appends across a SIGKILL, torn tails, corruption in the middle
 * (recover and refuse), compaction and crashes inside it, group commit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/coro.h"
#include "plog.h"
#include "unit.h"

#define FHDR 16
#define RHDR 20
#define VLEN 32 /* every test record: "rec NNNNNN" padded to 32 bytes */
#define RSIZE (RHDR + VLEN)

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/var/tmp/test_plog.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static void teardown(void)
{
    if (dir[0])
        nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static off_t file_size(const char *name)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof p, name);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static void rec_value(char *v, unsigned i)
{
    memset(v, 0, VLEN);
    snprintf(v, VLEN, "rec %06u", i);
}

/* Replay into a checker: records must be rec 0, 1, 2... in order. */
struct seen {
    unsigned n;
    int bad;
};

static int replay_seq(void *arg, uint32_t type, const void *data, size_t len)
{
    struct seen *s = arg;
    char v[VLEN];
    rec_value(v, s->n);
    if (type != 7 || len != VLEN || memcmp(data, v, VLEN))
        s->bad++;
    s->n++;
    return 0;
}

static plog_t *open_dir(enum plog_fsync f, enum plog_corrupt c, struct seen *s,
                        struct plog_report *rep, char *err)
{
    struct plog_opts o = {.dir = dir, .fsync = f, .on_corruption = c};
    return plog_open(&o, replay_seq, s, rep, err, 256);
}

/* Append n sequential records with policy f in a fresh runtime. */
struct fill {
    enum plog_fsync f;
    unsigned from, n;
    int rc;
};

static void fill_body(void *arg)
{
    struct fill *fl = arg;
    struct seen s = {0};
    char err[256], v[VLEN];
    plog_t *l = open_dir(fl->f, PLOG_REFUSE, &s, NULL, err);
    fl->rc = l ? 0 : -1;
    for (unsigned i = fl->from; l && i < fl->from + fl->n && !fl->rc; i++) {
        rec_value(v, i);
        fl->rc = plog_append(l, 7, v, VLEN);
    }
    if (plog_close(l) < 0)
        fl->rc = -1;
}

static void fill(enum plog_fsync f, unsigned from, unsigned n)
{
    struct fill fl = {f, from, n, 0};
    unit_run(2, fill_body, &fl);
    ck_assert_int_eq(fl.rc, 0);
}

START_TEST(test_round_trip_10000)
{
    struct seen s = {0};
    struct plog_report rep;
    char err[256];
    fill(PLOG_FSYNC_NEVER, 0, 10000);
    plog_t *l = open_dir(PLOG_FSYNC_NEVER, PLOG_REFUSE, &s, &rep, err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(s.n, 10000);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_uint_eq(rep.records, 10000);
    ck_assert_uint_eq(rep.torn_bytes, 0);
    ck_assert_int_eq(rep.corrupt, 0);
    ck_assert_uint_eq(plog_log_bytes(l), 10000 * RSIZE);
    ck_assert_int_eq(plog_close(l), 0);
}
END_TEST

/* The child appends with ALWAYS from several coroutines, tells the parent
 * how many appends returned, and is SIGKILLed: every one must be there. */
struct child {
    int fd;
};

static void child_append(void *arg)
{
    plog_t *l = arg;
    char v[VLEN];
    rec_value(v, 0);
    for (int i = 0; i < 25; i++)
        if (plog_append(l, 7, v, VLEN) < 0)
            _exit(3);
}

static void child_body(void *arg)
{
    struct child *c = arg;
    struct seen s = {0};
    char err[256];
    plog_t *l = open_dir(PLOG_FSYNC_ALWAYS, PLOG_REFUSE, &s, NULL, err);
    coro_t *co[4];
    if (!l)
        _exit(2);
    for (int i = 0; i < 4; i++)
        co[i] = coro_spawn(child_append, l);
    for (int i = 0; i < 4; i++)
        coro_join(co[i]);
    (void)!write(c->fd, "k", 1);
    for (;;)
        pause(); /* killed here, with the log still open */
}

static int count_any(void *arg, uint32_t type, const void *data, size_t len)
{
    (*(unsigned *)arg)++;
    return 0;
}

START_TEST(test_always_durable_across_sigkill)
{
    int p[2];
    char b, err[256];
    unsigned n = 0;
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct child c = {p[1]};
        struct coro_config cfg;
        coro_config_default(&cfg);
        cfg.workers = 2;
        coro_run(&cfg, child_body, &c);
        _exit(1);
    }
    close(p[1]);
    ck_assert_int_eq(read(p[0], &b, 1), 1);
    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st));
    struct plog_opts o = {.dir = dir, .fsync = PLOG_FSYNC_ALWAYS};
    plog_t *l = plog_open(&o, count_any, &n, NULL, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(n, 100);
    plog_close(l);
}
END_TEST

static void truncate_to(const char *name, off_t size)
{
    char p[256];
    path_of(p, sizeof p, name);
    ck_assert_int_eq(truncate(p, size), 0);
}

static void flip_byte(const char *name, off_t off)
{
    char p[256];
    unsigned char c;
    path_of(p, sizeof p, name);
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

START_TEST(test_torn_tail_discarded_and_truncated)
{
    struct seen s = {0};
    struct plog_report rep;
    char err[256];
    fill(PLOG_FSYNC_NEVER, 0, 100);
    truncate_to("log.1", FHDR + 100 * RSIZE - 7); /* cut inside record 100 */
    plog_t *l = open_dir(PLOG_FSYNC_NEVER, PLOG_RECOVER, &s, &rep, err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(s.n, 99);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_uint_eq(rep.torn_bytes, RSIZE - 7);
    ck_assert_int_eq(rep.corrupt, 0);
    ck_assert_int_eq(file_size("log.1"), FHDR + 99 * RSIZE);
    ck_assert_int_eq(plog_close(l), 0);

    /* A bad checksum in the very last record is a torn write too. */
    fill(PLOG_FSYNC_NEVER, 99, 1);
    flip_byte("log.1", FHDR + 99 * RSIZE + RHDR + 3);
    s = (struct seen){0};
    l = open_dir(PLOG_FSYNC_NEVER, PLOG_REFUSE, &s, &rep, err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(s.n, 99);
    ck_assert_uint_eq(rep.torn_bytes, RSIZE);
    ck_assert_int_eq(plog_close(l), 0);

    /* Appends go on after the good prefix. */
    fill(PLOG_FSYNC_NEVER, 99, 1);
    s = (struct seen){0};
    l = open_dir(PLOG_FSYNC_NEVER, PLOG_REFUSE, &s, &rep, err);
    ck_assert_uint_eq(s.n, 100);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_uint_eq(rep.torn_bytes, 0);
    plog_close(l);
}
END_TEST

START_TEST(test_corrupt_middle_recover)
{
    struct seen s = {0};
    struct plog_report rep;
    char err[256];
    struct stat st;
    fill(PLOG_FSYNC_NEVER, 0, 1000);
    off_t size = file_size("log.1"), rec500 = FHDR + 499 * RSIZE;
    flip_byte("log.1", rec500 + RHDR + 5);
    plog_t *l = open_dir(PLOG_FSYNC_NEVER, PLOG_RECOVER, &s, &rep, err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(s.n, 499);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_int_eq(rep.corrupt, 1);
    ck_assert_uint_eq(rep.corrupt_offset, (uint64_t)rec500);
    ck_assert_uint_eq(rep.lost_bytes, (uint64_t)(size - rec500));
    ck_assert_uint_eq(rep.torn_bytes, 0);
    ck_assert_ptr_nonnull(strstr(rep.moved_to, "/log.1.corrupt-"));
    ck_assert_int_eq(stat(rep.moved_to, &st), 0);
    ck_assert_int_eq(st.st_size, size); /* the damaged file, whole, for inspection */
    ck_assert_int_eq(file_size("log.1"), rec500);
    ck_assert_int_eq(plog_close(l), 0);

    /* The next open is clean and keeps the good prefix; appends follow it. */
    fill(PLOG_FSYNC_NEVER, 499, 1);
    s = (struct seen){0};
    l = open_dir(PLOG_FSYNC_NEVER, PLOG_REFUSE, &s, &rep, err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(s.n, 500);
    ck_assert_int_eq(s.bad, 0);
    ck_assert_int_eq(rep.corrupt, 0);
    plog_close(l);
}
END_TEST

START_TEST(test_corrupt_middle_refuse)
{
    struct seen s = {0};
    struct plog_report rep;
    char err[256], want[64];
    fill(PLOG_FSYNC_NEVER, 0, 1000);
    off_t size = file_size("log.1"), rec500 = FHDR + 499 * RSIZE;
    flip_byte("log.1", rec500 + 1); /* the length field this time */
    plog_t *l = open_dir(PLOG_FSYNC_NEVER, PLOG_REFUSE, &s, &rep, err);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(errno, EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "/log.1: corrupt at offset"));
    snprintf(want, sizeof want, "offset %lld ", (long long)rec500);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    ck_assert_int_eq(file_size("log.1"), size); /* untouched */
}
END_TEST

/* Owner state for the compaction tests: 100 keys, set by records. */
#define NKEYS 100
struct kv {
    uint32_t val[NKEYS];
    unsigned replayed;
};

struct kvrec {
    uint32_t key, val;
};

static int kv_replay(void *arg, uint32_t type, const void *data, size_t len)
{
    struct kv *kv = arg;
    struct kvrec r;
    if (type != 1 || len != sizeof r)
        return -1;
    memcpy(&r, data, sizeof r);
    kv->val[r.key % NKEYS] = r.val;
    kv->replayed++;
    return 0;
}

static int kv_dump(void *arg, plog_snap_t *w)
{
    struct kv *kv = arg;
    for (uint32_t k = 0; k < NKEYS; k++) {
        struct kvrec r = {k, kv->val[k]};
        if (plog_snapshot_put(w, 1, &r, sizeof r) < 0)
            return -1;
    }
    return 0;
}

static plog_t *kv_open(struct kv *kv, struct plog_report *rep)
{
    char err[256];
    struct plog_opts o = {.dir = dir, .fsync = PLOG_FSYNC_NEVER,
                          .compact_after_bytes = 4096};
    memset(kv, 0, sizeof *kv);
    plog_t *l = plog_open(&o, kv_replay, kv, rep, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    return l;
}

static int kv_set(plog_t *l, struct kv *kv, uint32_t key, uint32_t val)
{
    struct kvrec r = {key, val};
    kv->val[key] = val; /* state first, then the log (the compaction rule) */
    return plog_append(l, 1, &r, sizeof r);
}

struct ctest {
    struct kv kv;
    int rc;
    uint64_t before, after;
    struct plog_stats st;
};

static void compact_body(void *arg)
{
    struct ctest *t = arg;
    plog_t *l = kv_open(&t->kv, NULL);
    for (uint32_t i = 0; i < 5000 && !t->rc; i++)
        t->rc = kv_set(l, &t->kv, i % NKEYS, i);
    t->before = plog_log_bytes(l);
    if (!t->rc)
        t->rc = plog_maybe_compact(l, kv_dump, &t->kv);
    t->after = plog_log_bytes(l);
    for (uint32_t k = 0; k < 10 && !t->rc; k++)
        t->rc = kv_set(l, &t->kv, k, 90000 + k);
    plog_stats_get(l, &t->st);
    if (plog_close(l) < 0)
        t->rc = -1;
}

START_TEST(test_compaction_keeps_state_and_shrinks)
{
    struct ctest t = {0};
    struct plog_report rep;
    struct kv kv;
    unit_run(2, compact_body, &t);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_uint_eq(t.before, 5000 * (RHDR + 8));
    ck_assert_uint_eq(t.after, 0);
    ck_assert_uint_eq(t.st.compactions, 1);
    ck_assert_uint_eq(t.st.generation, 2);
    ck_assert_int_eq(file_size("log.1"), -1);
    ck_assert_int_eq(file_size("snapshot.2"), FHDR + (NKEYS + 1) * (RHDR + 8));
    ck_assert_int_eq(file_size("log.2"), FHDR + 10 * (RHDR + 8));
    plog_t *l = kv_open(&kv, &rep);
    ck_assert_mem_eq(kv.val, t.kv.val, sizeof kv.val);
    ck_assert_uint_eq(rep.snapshot_records, NKEYS);
    ck_assert_uint_eq(rep.records, 10);
    plog_close(l);
}
END_TEST

/* Appends racing with compactions: each coroutine owns 25 keys and sets
 * them over and over while the main coroutine compacts; nothing is lost. */
struct race {
    plog_t *l;
    struct kv kv;
    int fails, done;
};

static void race_setter(void *arg)
{
    struct race *r = arg;
    uint32_t base = (uint32_t)__atomic_fetch_add(&r->done, 1, __ATOMIC_RELAXED) * 25;
    for (uint32_t i = 0; i < 1000; i++) {
        struct kvrec rec = {base + i % 25, i + 1};
        __atomic_store_n(&r->kv.val[rec.key], rec.val, __ATOMIC_RELAXED);
        if (plog_append(r->l, 1, &rec, sizeof rec) < 0)
            __atomic_add_fetch(&r->fails, 1, __ATOMIC_RELAXED);
    }
}

static int race_dump(void *arg, plog_snap_t *w)
{
    struct kv *kv = arg;
    for (uint32_t k = 0; k < NKEYS; k++) {
        struct kvrec r = {k, __atomic_load_n(&kv->val[k], __ATOMIC_RELAXED)};
        if (plog_snapshot_put(w, 1, &r, sizeof r) < 0)
            return -1;
    }
    return 0;
}

static void race_body(void *arg)
{
    struct race *r = arg;
    coro_t *co[4];
    r->l = kv_open(&r->kv, NULL);
    for (int i = 0; i < 4; i++)
        co[i] = coro_spawn_on(i % 2, race_setter, r);
    for (int i = 0; i < 20; i++)
        if (plog_compact(r->l, race_dump, &r->kv) < 0)
            r->fails++;
    for (int i = 0; i < 4; i++)
        coro_join(co[i]);
    if (plog_close(r->l) < 0)
        r->fails++;
}

START_TEST(test_compaction_races_appends)
{
    struct race r = {0};
    struct kv kv;
    unit_run(2, race_body, &r);
    ck_assert_int_eq(r.fails, 0);
    plog_t *l = kv_open(&kv, NULL);
    for (uint32_t k = 0; k < NKEYS; k++)
        ck_assert_uint_eq(kv.val[k], 1000 - (24 - k % 25));
    plog_close(l);
}
END_TEST

/* A child crashes (_exit) inside dump, after the log rotated and part of
 * the snapshot was written to its temp file. */
static int crash_dump(void *arg, plog_snap_t *w)
{
    struct kvrec r = {0, 1};
    for (int i = 0; i < 50000; i++) /* past the flush size: a real temp file */
        plog_snapshot_put(w, 1, &r, sizeof r);
    _exit(0);
}

static void crash_body(void *arg)
{
    struct kv *kv = arg;
    plog_t *l = kv_open(kv, NULL);
    for (uint32_t i = 0; i < 300; i++)
        kv_set(l, kv, i % NKEYS, i);
    plog_compact(l, kv_dump, kv); /* generation 2 */
    for (uint32_t i = 0; i < 300; i++)
        kv_set(l, kv, i % NKEYS, 1000 + i);
    plog_compact(l, crash_dump, kv);
}

START_TEST(test_crash_inside_compaction)
{
    struct kv kv, want;
    struct plog_report rep;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct coro_config cfg;
        coro_config_default(&cfg);
        cfg.workers = 1;
        coro_run(&cfg, crash_body, &kv);
        _exit(1);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_gt(file_size("snapshot.3.tmp"), FHDR);
    ck_assert_int_eq(file_size("log.3"), FHDR);
    for (uint32_t i = 0; i < 300; i++)
        want.val[i % NKEYS] = 1000 + i;
    plog_t *l = kv_open(&kv, &rep); /* snapshot.2 + log.2 + log.3 */
    ck_assert_mem_eq(kv.val, want.val, sizeof kv.val);
    ck_assert_int_eq(file_size("snapshot.3.tmp"), -1);
    ck_assert_int_eq(file_size("snapshot.2"), FHDR + (NKEYS + 1) * (RHDR + 8));
    ck_assert_uint_eq(rep.records, 300);
    plog_close(l);
}
END_TEST

/* A crash after the new snapshot was renamed in place but before the old
 * generation was removed: the old log is ignored (and removed). */
START_TEST(test_crash_before_old_generation_removed)
{
    struct ctest t = {0};
    struct kv kv;
    struct plog_report rep;
    char a[256], b[256];
    unit_run(1, compact_body, &t);
    ck_assert_int_eq(t.rc, 0);
    /* Leftovers of generation 1 that the rename of snapshot.2 superseded
     * (garbage here: replaying them would show up as corruption). */
    path_of(a, sizeof a, "snapshot.1");
    path_of(b, sizeof b, "log.1");
    int fd = open(a, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fd = open(b, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "stale generation, not even a log", 32), 32);
    close(fd);
    plog_t *l = kv_open(&kv, &rep);
    ck_assert_mem_eq(kv.val, t.kv.val, sizeof kv.val);
    ck_assert_int_eq(rep.corrupt, 0);
    ck_assert_int_eq(file_size("log.1"), -1);
    ck_assert_int_eq(file_size("snapshot.1"), -1);
    plog_close(l);
}
END_TEST

/* Group commit: 8 coroutines on 2 workers appending with ALWAYS share
 * fsyncs; every append still returns only once fsynced. */
#define GC_CO 8
#define GC_N 250
struct gc {
    plog_t *l;
    int fails;
    struct plog_stats st;
    uint64_t ms;
};

static void gc_appender(void *arg)
{
    struct gc *g = arg;
    char v[VLEN];
    rec_value(v, 0);
    for (int i = 0; i < GC_N; i++)
        if (plog_append(g->l, 7, v, VLEN) < 0)
            __atomic_add_fetch(&g->fails, 1, __ATOMIC_RELAXED);
}

static void gc_body(void *arg)
{
    struct gc *g = arg;
    struct seen s = {0};
    char err[256];
    coro_t *co[GC_CO];
    g->l = open_dir(PLOG_FSYNC_ALWAYS, PLOG_REFUSE, &s, NULL, err);
    ck_assert_msg(g->l != NULL, "%s", err);
    uint64_t t0 = coro_now_ms();
    for (int i = 0; i < GC_CO; i++)
        co[i] = coro_spawn_on(i % 2, gc_appender, g);
    for (int i = 0; i < GC_CO; i++)
        coro_join(co[i]);
    g->ms = coro_now_ms() - t0;
    plog_stats_get(g->l, &g->st);
    ck_assert_int_eq(plog_close(g->l), 0);
}

START_TEST(test_group_commit_shares_fsyncs)
{
    struct gc g = {0};
    unit_run(2, gc_body, &g);
    ck_assert_int_eq(g.fails, 0);
    ck_assert_uint_eq(g.st.appends, GC_CO * GC_N);
    ck_assert_uint_le(g.st.fsyncs, g.st.writes);
    ck_assert_uint_le(g.st.fsyncs, GC_CO * GC_N / 2); /* ~4 records per fsync here */
    printf("plog ALWAYS: %u appends from %d coroutines in %llu ms (%.0f/s), "
           "%llu fsyncs (%.1f records per fsync)\n",
           GC_CO * GC_N, GC_CO, (unsigned long long)g.ms,
           GC_CO * GC_N * 1000.0 / (double)(g.ms ? g.ms : 1), (unsigned long long)g.st.fsyncs,
           (double)g.st.appends / (double)g.st.fsyncs);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("plog");
    TCase *tc = tcase_create("plog");
    tcase_add_checked_fixture(tc, mkdir_tmp, teardown);
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_round_trip_10000);
    tcase_add_test(tc, test_always_durable_across_sigkill);
    tcase_add_test(tc, test_torn_tail_discarded_and_truncated);
    tcase_add_test(tc, test_corrupt_middle_recover);
    tcase_add_test(tc, test_corrupt_middle_refuse);
    tcase_add_test(tc, test_compaction_keeps_state_and_shrinks);
    tcase_add_test(tc, test_compaction_races_appends);
    tcase_add_test(tc, test_crash_inside_compaction);
    tcase_add_test(tc, test_crash_before_old_generation_removed);
    tcase_add_test(tc, test_group_commit_shares_fsyncs);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
