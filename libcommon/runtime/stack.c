/*
 * stack.c - coroutine stacks: mmap'd, lazily committed, recycled through a
 * per-worker pool, with overflow detection that scales to a million stacks.
 *
 * A PROT_NONE guard page below each stack turns an overflow into a fault we
 * can report, but splits every stack into two kernel mappings, and the
 * default vm.max_map_count (65530) would then stop a process near 32,000
 * coroutines. So stacks are guarded while mappings are plentiful (a budget
 * of about a quarter of max_map_count); beyond that they are carved from
 * slabs (one mapping for many stacks) and protected by a stack-pointer check
 * at every switch against a red zone at the bottom of each stack
 * (sched.c). Either way an overflow ends the process with a message naming
 * the coroutine and stack_size.
 *
 * Not for: choosing which coroutine runs (sched.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#ifdef CORO_SANITIZERS
#include <sanitizer/asan_interface.h>
#endif

#include "runtime/runtime_int.h"
#include "runtime/sched_int.h"

#define SLAB_STACKS 64

struct slab {
    struct slab *next;
    void *base;
    size_t len;
    struct coro_stack stacks[SLAB_STACKS];
};

static struct {
    size_t page;
    size_t stack_size;
    long guard_budget;            /* stacks that may still get a guard page */
    atomic_long guarded;          /* guarded stacks mapped now */
    atomic_long mapped;           /* all stacks carved or mapped now */
    atomic_int lock;              /* protects slabs and free_slab */
    struct slab *slabs;
    struct coro_stack *free_slab; /* slab stacks not in any worker pool */
    struct coro_stack *shared;    /* overflow of full worker pools */
    atomic_size_t nshared;
    size_t shared_cap;
} g;

static long read_max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

void coro__stack_global_init(size_t stack_size)
{
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.stack_size = (stack_size + g.page - 1) & ~(g.page - 1);
    /* Each guarded stack costs two mappings; leave three quarters of the
     * map count to the rest of the process (heap, libraries, slabs). */
    long budget = read_max_map_count() / 4 - 1024;
    g.guard_budget = budget > 0 ? budget / 2 : 0;
    if (getenv("CORO_STACK_GUARD_BUDGET")) /* tests force the slab path */
        g.guard_budget = atol(getenv("CORO_STACK_GUARD_BUDGET"));
    atomic_store(&g.guarded, 0);
    atomic_store(&g.mapped, 0);
    g.slabs = NULL;
    g.free_slab = NULL;
    g.shared = NULL;
    g.nshared = 0;
    g.shared_cap = 0;
}

/* Coroutines spawned on one worker and ended on another move stacks from
 * pool to pool; a shared pool between them saves the mmap/munmap pair. */
void coro__stack_shared_cap(size_t cap)
{
    g.shared_cap = cap;
}

/* A recycled stack still carries ASan's marks from its previous life
 * (redzones of frames that never returned normally): clear them. */
void coro__stack_unpoison(struct coro_stack *s)
{
#ifdef CORO_SANITIZERS
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    (void)s;
}

static struct coro_stack *reuse(struct coro_stack *s)
{
    s->next = NULL;
    coro__stack_unpoison(s);
    return s;
}

#define SHARED_BATCH 32 /* stacks moved into an empty worker pool at once */

/* Take one stack from the shared pool, and up to SHARED_BATCH - 1 more
 * into p (empty when called): one lock round trip per batch. */
static struct coro_stack *shared_get(struct coro_stack_pool *p)
{
    struct coro_stack *s = NULL;
    if (!atomic_load_explicit(&g.nshared, memory_order_relaxed))
        return NULL;
    coro__spin_lock(&g.lock);
    if ((s = g.shared)) {
        size_t taken = 1;
        g.shared = s->next;
        for (; taken < SHARED_BATCH && g.shared && p->n < p->cap; taken++) {
            struct coro_stack *t = g.shared;
            g.shared = t->next;
            t->next = p->head;
            p->head = t;
            p->n++;
        }
        /* written under the lock; read without it only as a hint */
        atomic_store_explicit(&g.nshared, atomic_load_explicit(&g.nshared, memory_order_relaxed) -
                              taken, memory_order_relaxed);
    }
    coro__spin_unlock(&g.lock);
    return s;
}

static int shared_put(struct coro_stack *s)
{
    int ok = 0;
    coro__spin_lock(&g.lock);
    size_t n = atomic_load_explicit(&g.nshared, memory_order_relaxed);
    if (n < g.shared_cap) {
        s->next = g.shared;
        g.shared = s;
        atomic_store_explicit(&g.nshared, n + 1, memory_order_relaxed);
        ok = 1;
    }
    coro__spin_unlock(&g.lock);
    return ok;
}

void coro__stack_return(struct coro_stack *list, struct coro_stack_pool *p)
{
    coro__spin_lock(&g.lock);
    size_t n = atomic_load_explicit(&g.nshared, memory_order_relaxed);
    while (list && n < g.shared_cap) {
        struct coro_stack *s = list;
        list = s->next;
        s->next = g.shared;
        g.shared = s;
        n++;
    }
    atomic_store_explicit(&g.nshared, n, memory_order_relaxed);
    coro__spin_unlock(&g.lock);
    while (list) {
        struct coro_stack *s = list;
        list = s->next;
        coro__stack_put(p, s);
    }
}

static void register_stack(struct coro_stack *s)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s->lo + s->size);
#endif
}

static void deregister_stack(struct coro_stack *s)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    (void)s;
}

static struct coro_stack *map_guarded(void)
{
    size_t len = g.stack_size + g.page;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (mprotect(m, g.page, PROT_NONE) < 0)
        goto fail;
    struct coro_stack *s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->map = m;
    s->map_len = len;
    s->lo = (char *)m + g.page;
    s->size = g.stack_size;
    s->guarded = 1;
    register_stack(s);
    atomic_fetch_add(&g.guarded, 1);
    atomic_fetch_add(&g.mapped, 1);
    return s;
fail:;
    int e = errno;
    munmap(m, len);
    errno = e;
    return NULL;
}

/* Carve a new slab; keep one stack, put the rest on the free list.
 * Called with g.lock held. */
static struct coro_stack *new_slab_locked(void)
{
    struct slab *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return NULL;
    /* One guard page under the whole slab: the lowest stack faults like a
     * guarded one; the others overflow into a neighbour's unused top and
     * are caught by the check at the next switch. */
    sl->len = g.page + g.stack_size * SLAB_STACKS;
    sl->base = mmap(NULL, sl->len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (sl->base == MAP_FAILED) {
        free(sl);
        return NULL;
    }
    if (mprotect(sl->base, g.page, PROT_NONE) < 0) {
        munmap(sl->base, sl->len);
        free(sl);
        return NULL;
    }
    for (int i = 0; i < SLAB_STACKS; i++) {
        struct coro_stack *s = &sl->stacks[i];
        s->lo = (char *)sl->base + g.page + (size_t)i * g.stack_size;
        s->size = g.stack_size;
        register_stack(s);
        if (i > 0) {
            s->next = g.free_slab;
            g.free_slab = s;
        }
    }
    sl->next = g.slabs;
    g.slabs = sl;
    return &sl->stacks[0];
}

static struct coro_stack *take_slab(void)
{
    coro__spin_lock(&g.lock);
    struct coro_stack *s = g.free_slab;
    if (s)
        g.free_slab = s->next;
    else
        s = new_slab_locked();
    coro__spin_unlock(&g.lock);
    if (s) {
        atomic_fetch_add(&g.mapped, 1);
        reuse(s);
    }
    return s;
}

struct coro_stack *coro__stack_get(struct coro_stack_pool *p)
{
    struct coro_stack *s = coro__stack_pop(p);
    if (s)
        return s;
    if ((s = shared_get(p)))
        return reuse(s);
    /* Fresh mappings too: the address may have held a stack of an earlier
     * runtime in this process, whose ASan marks outlive the munmap. */
    if (atomic_load_explicit(&g.guarded, memory_order_relaxed) < g.guard_budget &&
        (s = map_guarded()))
        return reuse(s);
    if (!(s = take_slab())) {
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

static void release(struct coro_stack *s)
{
    atomic_fetch_sub(&g.mapped, 1);
    if (s->guarded) {
        deregister_stack(s);
        munmap(s->map, s->map_len);
        atomic_fetch_sub(&g.guarded, 1);
        free(s);
        return;
    }
    /* Give the memory back (and any frame left on it) but keep the
     * address range in its slab. */
    s->frame_owner = NULL;
    madvise(s->lo, s->size, MADV_DONTNEED);
    coro__spin_lock(&g.lock);
    s->next = g.free_slab;
    g.free_slab = s;
    coro__spin_unlock(&g.lock);
}

void coro__stack_put(struct coro_stack_pool *p, struct coro_stack *s)
{
    if (coro__stack_push(p, s))
        return;
    if (!shared_put(s))
        release(s);
}

void coro__stack_pool_fini(struct coro_stack_pool *p)
{
    struct coro_stack *s, *next;
    for (s = p->head; s; s = next) {
        next = s->next;
        release(s);
    }
    p->head = NULL;
    p->n = 0;
}

void coro__stack_global_fini(void)
{
    struct slab *sl, *next;
    struct coro_stack *s, *snext;
    for (s = g.shared; s; s = snext) {
        snext = s->next;
        release(s);
    }
    g.shared = NULL;
    g.nshared = 0;
    for (sl = g.slabs; sl; sl = next) {
        next = sl->next;
        for (int i = 0; i < SLAB_STACKS; i++)
            deregister_stack(&sl->stacks[i]);
        munmap(sl->base, sl->len);
        free(sl);
    }
    g.slabs = NULL;
    g.free_slab = NULL;
}

int coro__stack_in_guard(const struct coro_stack *s, const void *addr)
{
    if (!s)
        return 0;
    /* the page under the stack (its guard, or its slab's), and one more
     * for a large frame that jumps over it */
    const char *a = addr, *lo = s->lo;
    return a >= lo - 2 * g.page && a < lo;
}

size_t coro__stack_size(void)
{
    return g.stack_size;
}

void coro__stack_stats(uint64_t *mapped, uint64_t *guarded)
{
    *mapped = (uint64_t)atomic_load(&g.mapped);
    *guarded = (uint64_t)atomic_load(&g.guarded);
}
