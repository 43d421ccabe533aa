/*
 * listenset.c - named listeners diffed on reload: keep the unchanged ones,
 * bind the new ones first, then close the removed ones.
 *
 * Entries of closed listeners are kept until listenset_free(): a
 * connection coroutine spawned by an accept loop reads its entry when it
 * starts, possibly after the listener was closed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro/listenset.h"
#include "coro/log.h"

struct entry {
    char *name;
    struct coro_addr want; /* as configured (port 0 stays 0) */
    coro_listener_t *l;
    coro_conn_fn handler;
    _Atomic(void *) arg;
    struct entry *next;
};

struct listenset {
    daemon_t *d;
    struct entry *live;
    struct entry *closed;
};

listenset_t *listenset_new(daemon_t *d)
{
    listenset_t *s = calloc(1, sizeof(*s));
    if (s)
        s->d = d;
    return s;
}

static int same_addr(const struct coro_addr *a, const struct coro_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static struct entry *find(struct entry *list, const char *name)
{
    for (; list; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

static const struct listenset_want *wanted(const struct listenset_want *w, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w[i].name, name) == 0)
            return &w[i];
    return NULL;
}

/* Accept-loop trampoline: the entry's current arg, read per connection. */
static void accepted(int fd, const struct coro_addr *peer, void *arg)
{
    struct entry *e = arg;
    e->handler(fd, peer, atomic_load(&e->arg));
}

static struct entry *bind_one(listenset_t *s, const struct listenset_want *w, char *err,
                              size_t errlen)
{
    struct entry *e = calloc(1, sizeof(*e));
    char why[256] = "";
    int fd = s->d ? daemon_listen_fd(s->d, w->name, &w->addr) : -1;

    if (!e || !(e->name = strdup(w->name))) {
        snprintf(why, sizeof(why), "%s", strerror(ENOMEM));
        goto fail;
    }
    e->l = fd >= 0 ? coro_listener_from_fd(fd, why, sizeof(why))
                   : coro_listener_new(&w->addr, w->backlog, why, sizeof(why));
    if (!e->l)
        goto fail;
    e->want = w->addr;
    e->handler = w->handler;
    atomic_store(&e->arg, w->arg);
    if (coro_listener_serve(e->l, accepted, e) < 0) {
        snprintf(why, sizeof(why), "serve: %s", strerror(errno));
        goto fail;
    }
    return e;
fail:
    snprintf(err, errlen, "listener \"%s\": %s", w->name, why);
    if (e) {
        coro_listener_free(e->l);
        free(e->name);
        free(e);
    }
    return NULL;
}

static void log_listening(const struct entry *e, const char *how)
{
    struct coro_addr a;
    char buf[CORO_ADDR_STRLEN] = "?";

    if (coro_listener_addr(e->l, &a) == 0)
        coro_addr_format(&a, buf, sizeof(buf));
    log_info("listener \"%s\": %s %s", e->name, how, buf);
}

/* Close e's listener and move it to the closed list. */
static void retire(listenset_t *s, struct entry *e)
{
    coro_listener_close(e->l);
    log_info("listener \"%s\": closed", e->name);
    e->next = s->closed;
    s->closed = e;
}

int listenset_apply(listenset_t *s, const struct listenset_want *w, size_t n, char *err,
                    size_t errlen)
{
    struct entry *fresh = NULL, *keep = NULL, *e, *next;

    for (size_t i = 0; i < n; i++) {
        e = find(s->live, w[i].name);
        if (e && same_addr(&e->want, &w[i].addr))
            continue;
        if (!(e = bind_one(s, &w[i], err, errlen)))
            goto fail;
        e->next = fresh;
        fresh = e;
    }
    /* Everything is bound: now keep, update and close. */
    for (e = s->live; e; e = next) {
        next = e->next;
        const struct listenset_want *x = wanted(w, n, e->name);
        if (x && same_addr(&e->want, &x->addr) && !find(fresh, e->name)) {
            e->handler = x->handler;
            atomic_store(&e->arg, x->arg);
            e->next = keep;
            keep = e;
        } else {
            retire(s, e);
        }
    }
    for (e = fresh; e; e = next) {
        next = e->next;
        log_listening(e, "listening on");
        e->next = keep;
        keep = e;
    }
    s->live = keep;
    return 0;
fail:
    for (e = fresh; e; e = next) {
        next = e->next;
        coro_listener_free(e->l);
        free(e->name);
        free(e);
    }
    return -1;
}

int listenset_addr(const listenset_t *s, const char *name, struct coro_addr *out)
{
    struct entry *e = find(s->live, name);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    return coro_listener_addr(e->l, out);
}

size_t listenset_count(const listenset_t *s)
{
    size_t n = 0;
    for (struct entry *e = s->live; e; e = e->next)
        n++;
    return n;
}

uint64_t listenset_accepted(const listenset_t *s, const char *name)
{
    struct entry *e = find(s->live, name);
    return e ? coro_listener_accepted(e->l) : 0;
}

void listenset_close(listenset_t *s)
{
    while (s->live) {
        struct entry *e = s->live;
        s->live = e->next;
        retire(s, e);
    }
}

void listenset_free(listenset_t *s)
{
    if (!s)
        return;
    listenset_close(s);
    while (s->closed) {
        struct entry *e = s->closed;
        s->closed = e->next;
        coro_listener_free(e->l);
        free(e->name);
        free(e);
    }
    free(s);
}
