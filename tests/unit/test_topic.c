/*
 * test_topic.c - the broker's topic trie and retained store: MQTT 3.1.1
 * section 4.7 matching (wildcards, the '$' rule), subscribe/unsubscribe
 * bookkeeping and pruning, retained messages, a randomised comparison with a
 * reference matcher, a throughput figure, and matching from several threads
 * while another one mutates the tree. Plain threads: the tree does not need
 * the runtime.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topic.h"
#include "unit.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not always ship. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* glibc keeps freed chunks in per-thread caches that mallinfo counts as in
 * use, so its figure wanders by a few KiB; the sanitizers' count is exact. */
#ifdef HAVE_ASAN
#define HEAP_SLACK 0
#else
#define HEAP_SLACK (16 * 1024)
#endif

/* Bytes currently allocated by the process (the sanitizer's allocator when
 * there is one: it bypasses glibc's). */
static size_t heap_in_use(void)
{
#ifdef HAVE_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* ---- reference matcher: levels compared one by one ---- */

static size_t split(const char *s, const char **lv, size_t *ll, size_t max)
{
    size_t n = 0;
    for (const char *p = s;; p++) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        ck_assert_uint_lt(n, max);
        lv[n] = p;
        ll[n++] = l;
        if (!e)
            return n;
        p = e;
    }
}

static bool lv_is(const char *p, size_t l, const char *w)
{
    return l == strlen(w) && memcmp(p, w, l) == 0;
}

static bool ref_match(const char *filter, const char *topic)
{
    const char *fl[64], *tl[64];
    size_t fn[64], tn[64];
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t nf = split(filter, fl, fn, 64), nt = split(topic, tl, tn, 64);
    for (size_t i = 0; i < nf; i++) {
        if (lv_is(fl[i], fn[i], "#"))
            return true;
        if (i >= nt)
            return false;
        if (!lv_is(fl[i], fn[i], "+") && (fn[i] != tn[i] || memcmp(fl[i], tl[i], fn[i])))
            return false;
    }
    return nf == nt;
}

/* ---- helpers ---- */

struct hits {
    size_t n;
    uintptr_t sub[64];
    uint8_t qos[64];
};

static void on_sub(void *sub, uint8_t qos, void *arg)
{
    struct hits *h = arg;
    if (h->n < 64) {
        h->sub[h->n] = (uintptr_t)sub;
        h->qos[h->n] = qos;
    }
    h->n++;
}

static void sub_s(topic_tree_t *t, const char *f, uintptr_t sub, uint8_t qos)
{
    ck_assert_int_ge(topic_subscribe(t, f, strlen(f), (void *)sub, qos), 0);
}

static struct hits match_s(topic_tree_t *t, const char *topic)
{
    struct hits h = {0};
    topic_match(t, topic, strlen(topic), on_sub, &h);
    return h;
}

static void count_cb(void *sub, uint8_t qos, void *arg)
{
    ++*(size_t *)arg;
}

static bool tree_matches(const char *filter, const char *topic)
{
    topic_tree_t *t = topic_tree_new();
    ck_assert_ptr_nonnull(t);
    sub_s(t, filter, 1, 0);
    struct hits h = match_s(t, topic);
    topic_tree_free(t, NULL);
    ck_assert_uint_le(h.n, 1);
    return h.n == 1;
}

/* ---- MQTT 3.1.1 section 4.7 ---- */

static const struct {
    const char *filter, *topic;
    bool match;
} spec[] = {
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "a", true},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+", "finance", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"+/tennis/#", "sport/tennis/player1/ranking", true},
    {"+/tennis/#", "sport/tennis", true},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"/finance", "/finance", true},
    {"/finance", "finance", false},
    {"finance", "/finance", false},
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"a//b", "a//b", true},
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS", "$SYS", true},
    {"a/$SYS", "a/$SYS", true},
    {"a/+", "a/$SYS", true},
    {"a/#", "a/$SYS/x", true},
};

START_TEST(spec_table_matches_as_section_4_7)
{
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        ck_assert_msg(tree_matches(spec[i].filter, spec[i].topic) == spec[i].match,
                      "filter \"%s\" topic \"%s\": expected %d", spec[i].filter, spec[i].topic,
                      spec[i].match);
        ck_assert_msg(ref_match(spec[i].filter, spec[i].topic) == spec[i].match,
                      "reference matcher disagrees on \"%s\" \"%s\"", spec[i].filter,
                      spec[i].topic);
    }
}
END_TEST

/* Every filter of the table in one tree, each its own subscriber: the set
 * reported for each topic is exactly the filters that match it (backtracking
 * through '+' and exact siblings must not lose or repeat anything). */
START_TEST(one_tree_reports_exactly_the_matching_filters)
{
    size_t n = sizeof(spec) / sizeof(spec[0]);
    topic_tree_t *t = topic_tree_new();
    for (size_t i = 0; i < n; i++)
        sub_s(t, spec[i].filter, i + 1, 0);
    for (size_t j = 0; j < n; j++) {
        struct hits h = match_s(t, spec[j].topic);
        bool seen[64] = {0};
        size_t want = 0;
        for (size_t i = 0; i < n; i++)
            want += ref_match(spec[i].filter, spec[j].topic);
        ck_assert_uint_eq(h.n, want);
        for (size_t k = 0; k < h.n; k++) {
            size_t i = h.sub[k] - 1;
            ck_assert(!seen[i]);
            seen[i] = true;
            ck_assert_msg(ref_match(spec[i].filter, spec[j].topic), "%s reported for %s",
                          spec[i].filter, spec[j].topic);
        }
    }
    topic_tree_free(t, NULL);
}
END_TEST

START_TEST(subscribe_twice_replaces_the_qos)
{
    topic_tree_t *t = topic_tree_new();
    ck_assert_int_eq(topic_subscribe(t, "a/+", 3, (void *)1, 0), 1);
    ck_assert_int_eq(topic_subscribe(t, "a/+", 3, (void *)1, 2), 0);
    ck_assert_int_eq(topic_subscribe(t, "a/+", 3, (void *)2, 1), 1);
    ck_assert_uint_eq(topic_subscription_count(t), 2);
    struct hits h = match_s(t, "a/b");
    ck_assert_uint_eq(h.n, 2);
    for (size_t k = 0; k < 2; k++)
        ck_assert_uint_eq(h.qos[k], h.sub[k] == 1 ? 2 : 1);
    topic_tree_free(t, NULL);
}
END_TEST

START_TEST(overlapping_filters_report_once_per_filter)
{
    topic_tree_t *t = topic_tree_new();
    sub_s(t, "a/b", 7, 0);
    sub_s(t, "a/+", 7, 1);
    sub_s(t, "a/#", 7, 2);
    sub_s(t, "#", 7, 1);
    sub_s(t, "+/b", 7, 0);
    sub_s(t, "a/c", 7, 2); /* does not match */
    struct hits h = match_s(t, "a/b");
    ck_assert_uint_eq(h.n, 5);
    unsigned qsum = 0;
    for (size_t k = 0; k < h.n; k++) {
        ck_assert_uint_eq(h.sub[k], 7);
        qsum += h.qos[k];
    }
    ck_assert_uint_eq(qsum, 0 + 1 + 2 + 1 + 0);
    topic_tree_free(t, NULL);
}
END_TEST

/* Subscribe 5,000 filters then unsubscribe them all; returns the number of
 * calls that did not return what they should. No Check calls inside, so
 * only the tree allocates. */
static int fill_and_empty(topic_tree_t *t, size_t *peak)
{
    char f[64];
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        int l = snprintf(f, sizeof(f), "dev/%d/+/x%d/#", i % 97, i);
        bad += topic_subscribe(t, f, (size_t)l, (void *)(uintptr_t)(i % 13 + 1), 1) != 1;
    }
    bad += topic_subscription_count(t) != 5000;
    *peak = heap_in_use();
    bad += topic_unsubscribe(t, "dev/0/+/x0/#", 12, (void *)2) != -1 || errno != ENOENT;
    for (int i = 0; i < 5000; i++) {
        int l = snprintf(f, sizeof(f), "dev/%d/+/x%d/#", i % 97, i);
        bad += topic_unsubscribe(t, f, (size_t)l, (void *)(uintptr_t)(i % 13 + 1)) != 0;
        if (i == 2500) { /* the rest still matches after many removals */
            size_t n = 0;
            topic_match(t, "dev/3/q/x4271/z", 15, count_cb, &n);
            bad += n != 1;
        }
    }
    return bad;
}

START_TEST(unsubscribe_prunes_and_frees_nodes)
{
    topic_tree_t *t = topic_tree_new();
    ck_assert_int_eq(topic_unsubscribe(t, "a", 1, (void *)1), -1);
    ck_assert_int_eq(errno, ENOENT);
    size_t start = heap_in_use(), peak, base, end;
    /* The first round also warms the allocator's caches (glibc's tcache
     * counts as in use); the second must end where the first did. */
    int bad = fill_and_empty(t, &peak);
    base = heap_in_use();
    bad += fill_and_empty(t, &peak);
    end = heap_in_use();
    ck_assert_int_eq(bad, 0);
    ck_assert_uint_eq(topic_subscription_count(t), 0);
    /* Valgrind's malloc keeps no glibc statistics (they read 0 there) */
    if (!RUNNING_ON_VALGRIND) {
        ck_assert_uint_gt(peak, start + 5000 * 64);
        ck_assert_uint_le(end, base + HEAP_SLACK);
        ck_assert_uint_lt(base, start + 64 * 1024);
    }
    size_t n = 0;
    topic_match(t, "dev/3/q/x4271/z", 15, count_cb, &n);
    ck_assert_uint_eq(n, 0);
    topic_tree_free(t, NULL);
}
END_TEST

/* Random subscribe/unsubscribe against a model, checked with the reference
 * matcher: exercises child tables past the small-array size, their index
 * deletion and the slot bookkeeping of moved children. */
static const char *lvls[] = {"a",  "b",  "c",  "",   "$x", "d0", "d1", "d2", "d3", "d4",
                             "d5", "d6", "d7", "d8", "d9", "e1", "e2", "e3", "e4", "e5"};
#define NLV (sizeof(lvls) / sizeof(lvls[0]))

static void rand_name(char *out, size_t cap, bool wild, unsigned *seed)
{
    int depth = 1 + rand_r(seed) % 4;
    size_t o = 0;
    for (int d = 0; d < depth; d++) {
        int r = rand_r(seed) % (int)(NLV + (wild ? 4 : 0));
        const char *l = r < (int)NLV ? lvls[r] : r < (int)NLV + 3 ? "+" : "#";
        if (l[0] == '#')
            d = depth; /* '#' only last */
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "/" : "", l);
    }
}

#define NMODEL 400

START_TEST(random_operations_agree_with_the_reference)
{
    static char filt[NMODEL][80];
    static bool on[NMODEL];
    unsigned seed = 12345;
    topic_tree_t *t = topic_tree_new();
    for (int i = 0; i < NMODEL; i++)
        rand_name(filt[i], sizeof(filt[i]), true, &seed);
    size_t live = 0;
    for (int step = 0; step < 20000; step++) {
        int i = rand_r(&seed) % NMODEL;
        void *sub = (void *)(uintptr_t)(i + 1);
        if (on[i]) {
            ck_assert_int_eq(topic_unsubscribe(t, filt[i], strlen(filt[i]), sub), 0);
            live--;
        } else {
            ck_assert_int_eq(topic_subscribe(t, filt[i], strlen(filt[i]), sub, 1), 1);
            live++;
        }
        on[i] = !on[i];
        ck_assert_uint_eq(topic_subscription_count(t), live);
        if (step % 50)
            continue;
        char topic[80];
        rand_name(topic, sizeof(topic), false, &seed);
        struct hits h = {0};
        topic_match(t, topic, strlen(topic), on_sub, &h);
        size_t want = 0;
        for (int k = 0; k < NMODEL; k++)
            want += on[k] && ref_match(filt[k], topic);
        ck_assert_msg(h.n == want, "topic %s: %zu reported, %zu expected", topic, h.n, want);
    }
    topic_tree_free(t, NULL);
}
END_TEST

/* ---- retained ---- */

struct rhits {
    size_t n;
    const char *msg[64];
};

static void on_msg(void *msg, void *arg)
{
    struct rhits *r = arg;
    if (r->n < 64)
        r->msg[r->n] = msg;
    r->n++;
}

static size_t rmatch(topic_tree_t *t, const char *filter)
{
    struct rhits r = {0};
    topic_retain_match(t, filter, strlen(filter), on_msg, &r);
    for (size_t k = 0; k < r.n && k < 64; k++) /* the message is its topic */
        ck_assert_msg(ref_match(filter, r.msg[k]), "%s returned for %s", r.msg[k], filter);
    return r.n;
}

static void *rset(topic_tree_t *t, const char *topic, void *msg)
{
    return topic_retain_set(t, topic, strlen(topic), msg);
}

START_TEST(retained_set_clear_and_match)
{
    static const char *topics[] = {"a",  "a/b",    "a/b/c",    "a/c",  "b/b", "/x",
                                   "a/", "$SYS/x", "$SYS/y/z", "$SYS", "x/$y"};
    size_t nt = sizeof(topics) / sizeof(topics[0]);
    topic_tree_t *t = topic_tree_new();
    for (size_t i = 0; i < nt; i++)
        ck_assert_ptr_null(rset(t, topics[i], (void *)topics[i]));
    ck_assert_uint_eq(topic_retained_count(t), nt);
    static char other[] = "a/b";
    ck_assert_ptr_eq(rset(t, "a/b", other), topics[1]); /* replace returns the old one */
    ck_assert_ptr_eq(rset(t, "a/b", (void *)topics[1]), other);
    ck_assert_uint_eq(topic_retained_count(t), nt);

    static const char *filters[] = {"#",     "a/#",    "a/+",    "+/b",      "+",    "+/+",
                                    "/+",    "a/b",    "$SYS/#", "$SYS/+/z", "+/$y", "a/b/c/#",
                                    "a/+/c", "nope/#", "+/x",    "$SYS"};
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        size_t want = 0;
        for (size_t i = 0; i < nt; i++)
            want += ref_match(filters[f], topics[i]);
        ck_assert_msg(rmatch(t, filters[f]) == want, "filter %s", filters[f]);
    }
    ck_assert_uint_eq(rmatch(t, "#"), nt - 3); /* no $SYS */
    ck_assert_uint_eq(rmatch(t, "a/#"), 5);    /* a, a/b, a/b/c, a/c, a/ */

    ck_assert_ptr_eq(rset(t, "a/b", NULL), topics[1]);
    ck_assert_ptr_null(rset(t, "a/b", NULL));
    ck_assert_ptr_null(rset(t, "never/set", NULL));
    ck_assert_uint_eq(rmatch(t, "a/b"), 0);
    ck_assert_uint_eq(rmatch(t, "a/b/c"), 1); /* the child survives its parent's clear */
    ck_assert_uint_eq(topic_retained_count(t), nt - 1);

    struct rhits all = {0};
    topic_retain_foreach(t, on_msg, &all);
    ck_assert_uint_eq(all.n, nt - 1); /* foreach includes '$' topics */

    for (size_t i = 0; i < nt; i++)
        rset(t, topics[i], NULL);
    ck_assert_uint_eq(topic_retained_count(t), 0);
    ck_assert_uint_eq(rmatch(t, "#"), 0);
    topic_tree_free(t, NULL);
}
END_TEST

static int freed;

static void count_free(void *msg)
{
    freed++;
    free(msg);
}

START_TEST(tree_free_releases_retained_messages)
{
    topic_tree_t *t = topic_tree_new();
    char topic[32];
    for (int i = 0; i < 100; i++) {
        int l = snprintf(topic, sizeof(topic), "r/%d/%d", i % 7, i);
        ck_assert_ptr_null(topic_retain_set(t, topic, (size_t)l, malloc(8)));
        sub_s(t, topic, (uintptr_t)i + 1, 0);
    }
    freed = 0;
    topic_tree_free(t, count_free);
    ck_assert_int_eq(freed, 100);
}
END_TEST

/* No recursion: a 20,000-level topic and filter walk on a 64 KiB stack. */
static void *deep_body(void *arg)
{
    char *s = arg;
    topic_tree_t *t = topic_tree_new();
    size_t len = strlen(s);
    intptr_t ok = topic_subscribe(t, s, len, (void *)1, 0) == 1;
    for (size_t i = 0; i < len; i += 2)
        s[i] = 'x';
    struct hits h = {0};
    topic_match(t, s, len, on_sub, &h);
    ok = ok && h.n == 1 && topic_retain_set(t, s, len, s) == NULL;
    for (size_t i = 0; i < len; i += 2)
        s[i] = '+';
    struct rhits r = {0};
    topic_retain_match(t, s, len, on_msg, &r);
    ok = ok && r.n == 1;
    topic_tree_free(t, NULL);
    return (void *)ok;
}

START_TEST(deep_topics_do_not_recurse)
{
    size_t levels = 20000;
    char *s = malloc(levels * 2);
    for (size_t i = 0; i < levels; i++) {
        s[2 * i] = '+';
        s[2 * i + 1] = '/';
    }
    s[levels * 2 - 1] = '\0';
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    pthread_t th;
    void *ok;
    ck_assert_int_eq(pthread_create(&th, &a, deep_body, s), 0);
    pthread_join(th, &ok);
    ck_assert(ok);
    free(s);
}
END_TEST

/* ---- scale ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(hundred_thousand_subscriptions_million_matches)
{
    topic_tree_t *t = topic_tree_new();
    char f[64];
    /* 100,000 devices each on its own topic, a few wildcard watchers. */
    double t0 = now_s();
    for (int i = 0; i < 100000; i++) {
        int l = snprintf(f, sizeof(f), "site/%d/dev%d/temp", i % 100, i);
        ck_assert_int_eq(topic_subscribe(t, f, (size_t)l, (void *)(uintptr_t)(i + 1), 1), 1);
    }
    sub_s(t, "site/+/+/temp", 200001, 0);
    sub_s(t, "site/#", 200002, 0);
    double t1 = now_s();
    size_t hits = 0;
    unsigned seed = 7;
    for (int i = 0; i < 1000000; i++) {
        int d = rand_r(&seed) % 100000;
        int l = snprintf(f, sizeof(f), "site/%d/dev%d/temp", d % 100, d);
        topic_match(t, f, (size_t)l, count_cb, &hits);
    }
    double t2 = now_s();
    ck_assert_uint_eq(hits, 3000000);
    printf("topic: 100000 subscribes in %.3f s, 1000000 matches in %.3f s: %.0f matches/s\n",
           t1 - t0, t2 - t1, 1e6 / (t2 - t1));
    topic_tree_free(t, NULL);
}
END_TEST

/* ---- concurrency ---- */

struct conc {
    topic_tree_t *t;
    int stop; /* atomic */
    int bad;  /* atomic */
    long matches;
};

/* Stable subscriptions 1..3 match every "s/<n>/v" topic; the churn thread
 * adds and removes subs 100.. on filters that also match. A matcher must
 * always see the stable ones exactly once each. */
static void *matcher(void *arg)
{
    struct conc *c = arg;
    char topic[32];
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    for (long i = 0; i < 200000 && !__atomic_load_n(&c->stop, __ATOMIC_RELAXED); i++) {
        int l = snprintf(topic, sizeof(topic), "s/%d/v", rand_r(&seed) % 50);
        struct hits h = {0};
        topic_match(c->t, topic, (size_t)l, on_sub, &h);
        int stable = 0;
        for (size_t k = 0; k < h.n && k < 64; k++) {
            stable += h.sub[k] <= 3;
            if (h.sub[k] > 3 && h.sub[k] < 100)
                __atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
        }
        if (stable != 3 || h.n > 64)
            __atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
        struct rhits r = {0};
        topic_retain_match(c->t, "s/#", 3, on_msg, &r);
        if (r.n < 1) /* "s/keep" is never cleared */
            __atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->matches, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *churner(void *arg)
{
    struct conc *c = arg;
    char f[32];
    static const char *shapes[] = {"s/%d/v", "s/+/v", "s/#", "+/%d/+", "s/%d/#"};
    for (int i = 0; i < 20000; i++) {
        int l = snprintf(f, sizeof(f), shapes[i % 5], i % 50);
        void *sub = (void *)(uintptr_t)(100 + i % 40);
        if (topic_subscribe(c->t, f, (size_t)l, sub, 1) < 0 ||
            topic_unsubscribe(c->t, f, (size_t)l, sub) != 0)
            __atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
        l = snprintf(f, sizeof(f), "s/%d", i % 50);
        topic_retain_set(c->t, f, (size_t)l, (void *)"m");
        if (i % 3 == 0)
            topic_retain_set(c->t, f, (size_t)l, NULL);
    }
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

START_TEST(concurrent_matching_while_subscribing)
{
    struct conc c = {.t = topic_tree_new()};
    sub_s(c.t, "s/+/v", 1, 0);
    sub_s(c.t, "s/#", 2, 1);
    sub_s(c.t, "#", 3, 2);
    topic_retain_set(c.t, "s/keep", 6, (void *)"k");
    pthread_t th[5];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, matcher, &c), 0);
    ck_assert_int_eq(pthread_create(&th[4], NULL, churner, &c), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_gt(c.matches, 0);
    ck_assert_uint_eq(topic_subscription_count(c.t), 3);
    printf("topic: %ld concurrent matches during 20000 subscribe/unsubscribe pairs\n", c.matches);
    topic_tree_free(c.t, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tcase_create("match");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, spec_table_matches_as_section_4_7);
    tcase_add_test(tc, one_tree_reports_exactly_the_matching_filters);
    tcase_add_test(tc, subscribe_twice_replaces_the_qos);
    tcase_add_test(tc, overlapping_filters_report_once_per_filter);
    tcase_add_test(tc, unsubscribe_prunes_and_frees_nodes);
    tcase_add_test(tc, random_operations_agree_with_the_reference);
    tcase_add_test(tc, deep_topics_do_not_recurse);
    suite_add_tcase(s, tc);
    tc = tcase_create("retained");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, retained_set_clear_and_match);
    tcase_add_test(tc, tree_free_releases_retained_messages);
    suite_add_tcase(s, tc);
    tc = tcase_create("scale");
    tcase_set_timeout(tc, UNIT_TIMEOUT * 2);
    tcase_add_test(tc, hundred_thousand_subscriptions_million_matches);
    tcase_add_test(tc, concurrent_matching_while_subscribing);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
