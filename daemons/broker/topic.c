/*
 * topic.c - the broker's subscription trie and retained-message store.
 *
 * Two tries of the same node type, each behind its own lock: one holds
 * subscriptions at the node of their filter (one node per filter level,
 * '+' and '#' as dedicated children), the other holds retained messages at
 * the node of their exact topic name. This file knows topic levels and
 * wildcards; it does not validate syntax (the codec does) and knows nothing
 * of sessions, QoS delivery or message contents.
 *
 * Walks are iterative (parent pointers plus each node's slot in its parent
 * replace a stack) so a 32,768-level topic cannot overflow a coroutine's
 * stack, and matching never allocates.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

/*
 * A dense array with an optional open-addressing index (linear probing,
 * values are array index + 1, 0 = empty). Small arrays (the common case: a
 * node with a handful of children or subscribers) are scanned and carry no
 * index; past VEC_SMALL the index has 2 * cap slots. Removal moves the last
 * element into the hole, so iteration stays dense.
 */
#define VEC_SMALL 8

struct vec {
    void *v;
    uint32_t *idx;
    uint32_t n, cap;
};

struct vec_ops {
    size_t esz;
    uint32_t (*hash)(const void *elem);
};

struct tsub {
    void *sub;
    uint8_t qos;
};

struct tnode {
    struct tnode *parent;
    struct tnode *plus, *hash; /* '+' and '#' children (subscription trie only) */
    void *retained;            /* retained trie only */
    struct vec kids;           /* struct tnode *: exact-name children */
    struct vec subs;           /* struct tsub */
    uint32_t hashv;            /* hash of name */
    uint32_t slot;             /* index in parent->kids, for exact children */
    uint16_t nlen;
    char name[];
};

/*
 * A "big reader" lock: readers take the shard of the CPU they run on, so
 * concurrent matches on different CPUs touch different cache lines; writers
 * take every shard in order. Each shard prefers writers, so a steady stream
 * of publishes cannot starve subscribe (readers never nest, which that
 * kind requires).
 */
#define TOPIC_SHARDS 8

struct shard {
    pthread_rwlock_t l;
} __attribute__((aligned(64)));

struct brlock {
    struct shard s[TOPIC_SHARDS];
};

struct topic_tree {
    struct brlock slock, rlock; /* subscription trie, retained trie */
    struct tnode *sroot, *rroot;
    size_t nsubs, nretained; /* written under the write lock, read atomically */
};

/* ---- hashing and the indexed vector ---- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t ptr_hash(const void *p)
{
    return (uint32_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 32);
}

static uint32_t kid_elem_hash(const void *e)
{
    return (*(struct tnode *const *)e)->hashv;
}

static uint32_t sub_elem_hash(const void *e)
{
    return ptr_hash(((const struct tsub *)e)->sub);
}

static const struct vec_ops kid_ops = {sizeof(struct tnode *), kid_elem_hash};
static const struct vec_ops sub_ops = {sizeof(struct tsub), sub_elem_hash};

static void *vec_at(const struct vec *v, const struct vec_ops *o, uint32_t i)
{
    return (char *)v->v + (size_t)i * o->esz;
}

static uint32_t idx_mask(const struct vec *v)
{
    return v->cap * 2 - 1;
}

static void idx_put(struct vec *v, const struct vec_ops *o, uint32_t i)
{
    uint32_t m = idx_mask(v), s = o->hash(vec_at(v, o, i)) & m;
    while (v->idx[s])
        s = (s + 1) & m;
    v->idx[s] = i + 1;
}

/* Slot of the index that holds element i. */
static uint32_t idx_slot(const struct vec *v, const struct vec_ops *o, uint32_t i)
{
    uint32_t m = idx_mask(v), s = o->hash(vec_at(v, o, i)) & m;
    while (v->idx[s] != i + 1)
        s = (s + 1) & m;
    return s;
}

/* Backward-shift deletion: later entries of the probe run move up so no
 * tombstones are needed. */
static void idx_del(struct vec *v, const struct vec_ops *o, uint32_t s)
{
    uint32_t m = idx_mask(v), j = s;
    for (;;) {
        v->idx[s] = 0;
        for (;;) {
            j = (j + 1) & m;
            if (!v->idx[j])
                return;
            uint32_t k = o->hash(vec_at(v, o, v->idx[j] - 1)) & m;
            bool stays = s <= j ? (s < k && k <= j) : (s < k || k <= j);
            if (!stays)
                break;
        }
        v->idx[s] = v->idx[j];
        s = j;
    }
}

/* Resize to cap elements and rebuild the index (none when cap is small).
 * On failure nothing changes. */
static int vec_resize(struct vec *v, const struct vec_ops *o, uint32_t cap)
{
    uint32_t *idx = NULL;
    if (cap > VEC_SMALL && !(idx = calloc((size_t)cap * 2, sizeof(*idx))))
        return -1;
    void *nv = realloc(v->v, (size_t)cap * o->esz);
    if (!nv) {
        free(idx);
        return -1;
    }
    free(v->idx);
    v->v = nv;
    v->idx = idx;
    v->cap = cap;
    if (idx)
        for (uint32_t i = 0; i < v->n; i++)
            idx_put(v, o, i);
    return 0;
}

/* Append elem; returns its index, or -1/ENOMEM. */
static int64_t vec_push(struct vec *v, const struct vec_ops *o, const void *elem)
{
    if (v->n == v->cap && (v->cap >= (1u << 30) || vec_resize(v, o, v->cap ? v->cap * 2 : 2))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(vec_at(v, o, v->n), elem, o->esz);
    if (v->idx)
        idx_put(v, o, v->n);
    return v->n++;
}

/* Remove element i; the last element (if any) moves to i. */
static void vec_remove(struct vec *v, const struct vec_ops *o, uint32_t i)
{
    uint32_t last = v->n - 1;
    if (v->idx) {
        idx_del(v, o, idx_slot(v, o, i));
        if (i != last)
            v->idx[idx_slot(v, o, last)] = i + 1;
    }
    if (i != last)
        memcpy(vec_at(v, o, i), vec_at(v, o, last), o->esz);
    v->n--;
    if (v->n == 0) {
        free(v->v);
        free(v->idx);
        *v = (struct vec){0};
    } else if (v->cap > 2 && v->n <= v->cap / 4) {
        (void)vec_resize(v, o, v->cap / 2); /* giving memory back is optional */
    }
}

static struct tnode *kid_at(const struct tnode *n, uint32_t i)
{
    return ((struct tnode **)n->kids.v)[i];
}

static struct tnode *kid_find(const struct tnode *n, const char *name, size_t len, uint32_t h)
{
    const struct vec *v = &n->kids;
    if (!v->idx) {
        for (uint32_t i = 0; i < v->n; i++) {
            struct tnode *k = kid_at(n, i);
            if (k->hashv == h && k->nlen == len && memcmp(k->name, name, len) == 0)
                return k;
        }
        return NULL;
    }
    uint32_t m = idx_mask(v);
    for (uint32_t s = h & m; v->idx[s]; s = (s + 1) & m) {
        struct tnode *k = kid_at(n, v->idx[s] - 1);
        if (k->hashv == h && k->nlen == len && memcmp(k->name, name, len) == 0)
            return k;
    }
    return NULL;
}

static struct tsub *sub_find(const struct tnode *n, const void *sub)
{
    const struct vec *v = &n->subs;
    struct tsub *a = v->v;
    if (!v->idx) {
        for (uint32_t i = 0; i < v->n; i++)
            if (a[i].sub == sub)
                return &a[i];
        return NULL;
    }
    uint32_t m = idx_mask(v);
    for (uint32_t s = ptr_hash(sub) & m; v->idx[s]; s = (s + 1) & m)
        if (a[v->idx[s] - 1].sub == sub)
            return &a[v->idx[s] - 1];
    return NULL;
}

/* ---- locking ---- */

static int brlock_init(struct brlock *b)
{
    pthread_rwlockattr_t a;
    if (pthread_rwlockattr_init(&a))
        return -1;
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (int i = 0; i < TOPIC_SHARDS; i++)
        pthread_rwlock_init(&b->s[i].l, &a);
    pthread_rwlockattr_destroy(&a);
    return 0;
}

static void brlock_fini(struct brlock *b)
{
    for (int i = 0; i < TOPIC_SHARDS; i++)
        pthread_rwlock_destroy(&b->s[i].l);
}

/* Returns the shard to pass to rd_unlock (the thread may migrate meanwhile). */
static int rd_lock(struct brlock *b)
{
    int cpu = sched_getcpu();
    int i = cpu < 0 ? 0 : cpu % TOPIC_SHARDS;
    pthread_rwlock_rdlock(&b->s[i].l);
    return i;
}

static void rd_unlock(struct brlock *b, int i)
{
    pthread_rwlock_unlock(&b->s[i].l);
}

static void wr_lock(struct brlock *b)
{
    for (int i = 0; i < TOPIC_SHARDS; i++)
        pthread_rwlock_wrlock(&b->s[i].l);
}

static void wr_unlock(struct brlock *b)
{
    for (int i = TOPIC_SHARDS - 1; i >= 0; i--)
        pthread_rwlock_unlock(&b->s[i].l);
}

/* ---- nodes ---- */

static struct tnode *node_new(struct tnode *parent, const char *name, size_t len, uint32_t h)
{
    if (len > UINT16_MAX) {
        errno = ENOMEM; /* a topic is at most 65535 bytes: cannot happen from the codec */
        return NULL;
    }
    struct tnode *n = calloc(1, sizeof(*n) + len);
    if (!n)
        return NULL;
    n->parent = parent;
    n->hashv = h;
    n->nlen = (uint16_t)len;
    memcpy(n->name, name, len);
    return n;
}

static bool node_empty(const struct tnode *n)
{
    return !n->plus && !n->hash && !n->retained && n->kids.n == 0 && n->subs.n == 0;
}

/* Unlink n from its parent and free it (n must be empty). */
static void node_unlink(struct tnode *n)
{
    struct tnode *p = n->parent;
    if (p->plus == n) {
        p->plus = NULL;
    } else if (p->hash == n) {
        p->hash = NULL;
    } else {
        vec_remove(&p->kids, &kid_ops, n->slot);
        if (n->slot < p->kids.n)
            kid_at(p, n->slot)->slot = n->slot;
    }
    free(n->kids.v);
    free(n->kids.idx);
    free(n->subs.v);
    free(n->subs.idx);
    free(n);
}

/* Free n and its ancestors while they hold nothing (the root stays). */
static void prune(struct tnode *n)
{
    while (n->parent && node_empty(n)) {
        struct tnode *p = n->parent;
        node_unlink(n);
        n = p;
    }
}

/* End of the level that starts at off: the next '/' or len. */
static size_t level_end(const char *s, size_t len, size_t off)
{
    const char *e = off < len ? memchr(s + off, '/', len - off) : NULL;
    return e ? (size_t)(e - s) : len;
}

/* Child of n for one level, created if missing. wild: '+' and '#' levels
 * are the wildcard children (subscription trie). */
static struct tnode *child_get(struct tnode *n, const char *name, size_t len, bool wild)
{
    struct tnode **wc = NULL;
    if (wild && len == 1 && (name[0] == '+' || name[0] == '#'))
        wc = name[0] == '+' ? &n->plus : &n->hash;
    if (wc) {
        if (!*wc)
            *wc = node_new(n, name, len, 0);
        return *wc;
    }
    uint32_t h = name_hash(name, len);
    struct tnode *k = kid_find(n, name, len, h);
    if (k)
        return k;
    if (!(k = node_new(n, name, len, h)))
        return NULL;
    int64_t i = vec_push(&n->kids, &kid_ops, &k);
    if (i < 0) {
        free(k);
        return NULL;
    }
    k->slot = (uint32_t)i;
    return k;
}

/* Node for a whole filter/topic, created as needed; NULL/ENOMEM after
 * pruning what this call created. */
static struct tnode *path_get(struct tnode *root, const char *s, size_t len, bool wild)
{
    struct tnode *n = root;
    for (size_t off = 0;;) {
        size_t e = level_end(s, len, off);
        struct tnode *c = child_get(n, s + off, e - off, wild);
        if (!c) {
            prune(n);
            errno = ENOMEM;
            return NULL;
        }
        n = c;
        if (e == len)
            return n;
        off = e + 1;
    }
}

/* Existing node for a whole filter/topic, or NULL. */
static struct tnode *path_find(struct tnode *root, const char *s, size_t len, bool wild)
{
    struct tnode *n = root;
    for (size_t off = 0; n;) {
        size_t e = level_end(s, len, off), l = e - off;
        const char *name = s + off;
        if (wild && l == 1 && name[0] == '+')
            n = n->plus;
        else if (wild && l == 1 && name[0] == '#')
            n = n->hash;
        else
            n = kid_find(n, name, l, name_hash(name, l));
        if (e == len)
            return n;
        off = e + 1;
    }
    return NULL;
}

/* Start of the level before the one that starts at off (off > 0; off may
 * be len + 1, "past the last level"). */
static size_t level_prev(const char *s, size_t off)
{
    size_t q = off - 1; /* the '/' ending the previous level, or len */
    while (q > 0 && s[q - 1] != '/')
        q--;
    return q;
}

static bool is_dollar(const struct tnode *n)
{
    return n->nlen > 0 && n->name[0] == '$';
}

/* First exact child of n at index >= from, skipping '$' names if asked. */
static struct tnode *next_kid(const struct tnode *n, uint32_t from, bool skip_dollar)
{
    for (uint32_t i = from; i < n->kids.n; i++)
        if (!skip_dollar || !is_dollar(kid_at(n, i)))
            return kid_at(n, i);
    return NULL;
}

/* ---- tree ---- */

topic_tree_t *topic_tree_new(void)
{
    struct topic_tree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (brlock_init(&t->slock))
        goto fail_t;
    if (brlock_init(&t->rlock))
        goto fail_slock;
    if (!(t->sroot = node_new(NULL, "", 0, 0)))
        goto fail_rlock;
    if (!(t->rroot = node_new(NULL, "", 0, 0)))
        goto fail_sroot;
    return t;
fail_sroot:
    free(t->sroot);
fail_rlock:
    brlock_fini(&t->rlock);
fail_slock:
    brlock_fini(&t->slock);
fail_t:
    free(t);
    errno = ENOMEM;
    return NULL;
}

/* Free every node below and including root, depth first without a stack:
 * always descend into a remaining child, free leaves on the way back up. */
static void tree_destroy(struct tnode *root, void (*free_retained)(void *msg))
{
    struct tnode *n = root;
    while (n) {
        struct tnode *c = n->plus ? n->plus : n->hash ? n->hash : NULL;
        if (!c && n->kids.n)
            c = kid_at(n, n->kids.n - 1); /* the last one: removal moves nothing */
        if (c) {
            n = c;
            continue;
        }
        if (n->retained && free_retained)
            free_retained(n->retained);
        free(n->subs.v);
        free(n->subs.idx);
        n->subs = (struct vec){0};
        n->retained = NULL;
        struct tnode *p = n->parent;
        if (p)
            node_unlink(n);
        else
            free(n);
        n = p;
    }
}

void topic_tree_free(topic_tree_t *t, void (*free_retained)(void *msg))
{
    if (!t)
        return;
    tree_destroy(t->sroot, NULL);
    tree_destroy(t->rroot, free_retained);
    brlock_fini(&t->slock);
    brlock_fini(&t->rlock);
    free(t);
}

static void count_add(size_t *c, long d)
{
    __atomic_store_n(c, *c + (size_t)d, __ATOMIC_RELAXED); /* writers are serialised */
}

size_t topic_subscription_count(topic_tree_t *t)
{
    return __atomic_load_n(&t->nsubs, __ATOMIC_RELAXED);
}

size_t topic_retained_count(topic_tree_t *t)
{
    return __atomic_load_n(&t->nretained, __ATOMIC_RELAXED);
}

/* ---- subscriptions ---- */

int topic_subscribe(topic_tree_t *t, const char *filter, size_t len, void *sub, uint8_t qos)
{
    int rc = -1;
    wr_lock(&t->slock);
    struct tnode *n = path_get(t->sroot, filter, len, true);
    if (!n)
        goto out;
    struct tsub *s = sub_find(n, sub), e = {sub, qos};
    if (s) {
        s->qos = qos;
        rc = 0;
    } else if (vec_push(&n->subs, &sub_ops, &e) < 0) {
        prune(n);
        errno = ENOMEM;
    } else {
        count_add(&t->nsubs, 1);
        rc = 1;
    }
out:;
    int saved = errno;
    wr_unlock(&t->slock);
    errno = saved;
    return rc;
}

int topic_unsubscribe(topic_tree_t *t, const char *filter, size_t len, void *sub)
{
    int rc = -1;
    wr_lock(&t->slock);
    struct tnode *n = path_find(t->sroot, filter, len, true);
    struct tsub *s = n ? sub_find(n, sub) : NULL;
    if (s) {
        vec_remove(&n->subs, &sub_ops, (uint32_t)(s - (struct tsub *)n->subs.v));
        prune(n);
        count_add(&t->nsubs, -1);
        rc = 0;
    }
    wr_unlock(&t->slock);
    if (rc)
        errno = ENOENT;
    return rc;
}

static void report_subs(const struct tnode *n, void (*fn)(void *sub, uint8_t qos, void *arg),
                        void *arg)
{
    const struct tsub *a = n->subs.v;
    for (uint32_t i = 0; i < n->subs.n; i++)
        fn(a[i].sub, a[i].qos, arg);
}

/* The exact child of n for the topic level starting at off. */
static struct tnode *exact_kid(const struct tnode *n, const char *s, size_t len, size_t off)
{
    size_t l = level_end(s, len, off) - off;
    return kid_find(n, s + off, l, name_hash(s + off, l));
}

/*
 * Depth-first over the trie along the topic's levels. At each node: its '#'
 * child matches here and everything below (and the parent level, "a/#"
 * matches "a"); then the '+' child, then the exact child, each consuming one
 * level. off is the start of the level the current node is about to match,
 * len + 1 once every level is consumed (the node's own subscribers match).
 * Backtracking climbs parent pointers and recomputes off; leaving a '+'
 * child means the exact sibling is still to be tried.
 */
void topic_match(topic_tree_t *t, const char *topic, size_t len,
                 void (*fn)(void *sub, uint8_t qos, void *arg), void *arg)
{
    bool dollar = len > 0 && topic[0] == '$'; /* MQTT-4.7.2-1 */
    int sh = rd_lock(&t->slock);
    struct tnode *root = t->sroot, *n = root, *c;
    size_t off = 0;
    for (;;) {
        bool wild_ok = !(n == root && dollar);
        if (n->hash && wild_ok)
            report_subs(n->hash, fn, arg);
        if (off > len) {
            report_subs(n, fn, arg);
            c = NULL;
        } else {
            c = wild_ok ? n->plus : NULL;
            if (!c)
                c = exact_kid(n, topic, len, off);
        }
        while (!c) {
            if (n == root)
                goto done;
            struct tnode *p = n->parent;
            off = level_prev(topic, off);
            if (p->plus == n)
                c = exact_kid(p, topic, len, off);
            n = p;
        }
        n = c;
        off = level_end(topic, len, off) + 1;
    }
done:
    rd_unlock(&t->slock, sh);
}

/* ---- retained messages ---- */

void *topic_retain_set(topic_tree_t *t, const char *topic, size_t len, void *msg)
{
    void *prev = NULL;
    wr_lock(&t->rlock);
    if (!msg) {
        struct tnode *n = path_find(t->rroot, topic, len, false);
        if (n && n->retained) {
            prev = n->retained;
            n->retained = NULL;
            count_add(&t->nretained, -1);
            prune(n);
        }
    } else {
        struct tnode *n = path_get(t->rroot, topic, len, false);
        if (!n) {
            prev = msg;
        } else {
            prev = n->retained;
            n->retained = msg;
            if (!prev)
                count_add(&t->nretained, 1);
        }
    }
    int saved = errno;
    wr_unlock(&t->rlock);
    errno = saved;
    return prev;
}

/* fn for every retained message strictly below top, pre-order without a
 * stack (slots give the next sibling). */
static void retain_subtree(const struct tnode *top, bool skip_dollar,
                           void (*fn)(void *msg, void *arg), void *arg)
{
    const struct tnode *c = next_kid(top, 0, skip_dollar);
    while (c) {
        if (c->retained)
            fn(c->retained, arg);
        if (c->kids.n) {
            c = kid_at(c, 0);
            continue;
        }
        const struct tnode *s = NULL;
        while (c != top && !s) {
            const struct tnode *p = c->parent;
            s = next_kid(p, c->slot + 1, p == top && skip_dollar);
            c = p;
        }
        c = s;
    }
}

static bool level_is(const char *s, size_t off, size_t e, char w)
{
    return e - off == 1 && s[off] == w;
}

/*
 * The filter walks the exact-name trie: '#' takes the node and its whole
 * subtree, '+' iterates the children (resuming after the child we climb back
 * from), anything else follows one exact child. At the root, wildcards skip
 * '$' names.
 */
void topic_retain_match(topic_tree_t *t, const char *filter, size_t len,
                        void (*fn)(void *msg, void *arg), void *arg)
{
    int sh = rd_lock(&t->rlock);
    struct tnode *root = t->rroot, *n = root, *c = NULL;
    size_t off = 0, e = 0;
    for (;;) {
        c = NULL;
        if (off > len) {
            if (n->retained)
                fn(n->retained, arg);
        } else if (e = level_end(filter, len, off), level_is(filter, off, e, '#')) {
            if (n->retained)
                fn(n->retained, arg);
            retain_subtree(n, n == root, fn, arg);
        } else if (level_is(filter, off, e, '+')) {
            c = next_kid(n, 0, n == root);
        } else {
            c = kid_find(n, filter + off, e - off, name_hash(filter + off, e - off));
        }
        while (!c) {
            if (n == root)
                goto done;
            struct tnode *p = n->parent;
            off = level_prev(filter, off);
            e = level_end(filter, len, off);
            if (level_is(filter, off, e, '+'))
                c = next_kid(p, n->slot + 1, p == root);
            n = p;
        }
        n = c;
        off = e + 1;
    }
done:
    rd_unlock(&t->rlock, sh);
}

void topic_retain_foreach(topic_tree_t *t, void (*fn)(void *msg, void *arg), void *arg)
{
    int sh = rd_lock(&t->rlock);
    retain_subtree(t->rroot, false, fn, arg);
    rd_unlock(&t->rlock, sh);
}
