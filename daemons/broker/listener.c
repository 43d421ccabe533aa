/*
 * listener.c - the [listener.NAME] sections: plain and TLS listeners bound
 * through listenset.h (a reload adds and removes listeners without
 * touching established connections), each with its anonymous policy,
 * connection limit, TLS context and counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "coro/listenset.h"
#include "coro/log.h"
#include "coro/offload.h"

static struct {
    listenset_t *set;
    struct lst *all; /* never freed: connections point here */
} S;

static struct lst *lst_get(daemon_t *d, const char *name)
{
    for (struct lst *l = S.all; l; l = l->next)
        if (!strcmp(l->name, name))
            return l;
    struct lst *l = calloc(1, sizeof(*l));
    if (!l || !(l->name = strdup(name))) {
        free(l);
        return NULL;
    }
    metrics_t *m = daemon_metrics(d);
    l->d = d;
    pthread_mutex_init(&l->tls_mu, NULL);
    l->m_conns = metrics_gauge(m, "broker_listener_connections", "connected clients per listener",
                               "listener", name, (char *)NULL);
    l->m_accepted = metrics_counter(m, "broker_listener_accepted_total",
                                    "connections accepted per listener", "listener", name,
                                    (char *)NULL);
    l->m_refused = metrics_counter(m, "broker_listener_refused_total",
                                   "connections refused per listener", "listener", name,
                                   (char *)NULL);
    l->m_bytes_in = metrics_counter(m, "broker_listener_bytes_received_total",
                                    "bytes received per listener", "listener", name,
                                    (char *)NULL);
    l->m_bytes_out = metrics_counter(m, "broker_listener_bytes_sent_total",
                                     "bytes sent per listener", "listener", name, (char *)NULL);
    l->next = S.all;
    S.all = l;
    return l;
}

/* ---- TLS contexts ------------------------------------------------------ */

struct tlsref *listener_tls_get(struct lst *l)
{
    pthread_mutex_lock(&l->tls_mu);
    struct tlsref *t = l->tls;
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&l->tls_mu);
    return t;
}

void tlsref_unref(struct tlsref *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    coro_tls_ctx_free(t->ctx); /* live TLS sessions keep their certificates */
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t);
}

/* Install t (the caller's ref moves in); the old one comes back. */
static struct tlsref *tls_swap(struct lst *l, struct tlsref *t)
{
    pthread_mutex_lock(&l->tls_mu);
    struct tlsref *old = l->tls;
    l->tls = t;
    pthread_mutex_unlock(&l->tls_mu);
    return old;
}

static bool streq(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static bool tls_same_files(const struct tlsref *t, const struct listener_conf *lc)
{
    return streq(t->cert, lc->tls_cert) && streq(t->key, lc->tls_key) &&
           streq(t->ca, lc->tls_ca) && t->require_certificate == lc->require_certificate;
}

/* Blocking file reads: run via coro_offload. */
struct tls_job {
    const struct listener_conf *lc;
    struct tlsref *t; /* reload this one, or NULL: make one */
    coro_tls_ctx_t *ctx;
    int rc;
    char err[256];
};

static void tls_job_run(void *arg)
{
    struct tls_job *j = arg;
    if (j->t) {
        j->rc = coro_tls_ctx_reload(j->t->ctx, j->err, sizeof(j->err));
        return;
    }
    struct coro_tls_server_opts o = {j->lc->tls_cert, j->lc->tls_key, j->lc->tls_ca,
                                     j->lc->require_certificate, NULL, 0};
    j->ctx = coro_tls_server_new(&o, j->err, sizeof(j->err));
    j->rc = j->ctx ? 0 : -1;
}

/* The context for lc: the listener's own, its files re-read in place when
 * they are the same files, else a new one. A ref, or NULL with err. */
static struct tlsref *tls_for(struct lst *l, const struct listener_conf *lc, char *err,
                              size_t errlen)
{
    struct tls_job j = {lc, listener_tls_get(l), NULL, 0, ""};
    if (j.t && !tls_same_files(j.t, lc)) {
        tlsref_unref(j.t);
        j.t = NULL;
    }
    coro_offload(tls_job_run, &j);
    if (j.rc < 0) {
        snprintf(err, errlen, "listener \"%s\": %s", l->name, j.err);
        tlsref_unref(j.t);
        return NULL;
    }
    if (j.t)
        return j.t;
    struct tlsref *t = calloc(1, sizeof(*t));
    if (!t || !(t->cert = strdup(lc->tls_cert)) || !(t->key = strdup(lc->tls_key)) ||
        (lc->tls_ca && !(t->ca = strdup(lc->tls_ca)))) {
        snprintf(err, errlen, "out of memory");
        if (t) {
            free(t->cert);
            free(t->key);
        }
        free(t);
        coro_tls_ctx_free(j.ctx);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->ctx = j.ctx;
    t->require_certificate = lc->require_certificate;
    return t;
}

/* ---- applying a configuration --------------------------------------------- */

struct pending {
    struct lst *l;
    struct tlsref *tls;
    int anon;
    long maxc;
};

static void settings_swap(struct pending *pd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct lst *l = pd[i].l;
        pd[i].tls = tls_swap(l, pd[i].tls);
        pd[i].anon = atomic_exchange(&l->allow_anon, pd[i].anon);
        pd[i].maxc = atomic_exchange(&l->max_conns, pd[i].maxc);
    }
}

/* Listeners no longer configured accept nothing: let their context go. */
static void drop_unused_tls(const struct pending *pd, size_t n)
{
    for (struct lst *l = S.all; l; l = l->next) {
        size_t i = 0;
        while (i < n && pd[i].l != l)
            i++;
        if (i == n)
            tlsref_unref(tls_swap(l, NULL));
    }
}

int listener_apply(daemon_t *d, const struct broker_conf *bc, char *err, size_t errlen)
{
    size_t n = bc->listeners.n;
    struct listenset_want *w = calloc(n + 1, sizeof(*w));
    struct pending *pd = calloc(n + 1, sizeof(*pd));
    int rc = -1;

    if (!w || !pd || (!S.set && !(S.set = listenset_new(d)))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct listener_conf *lc = CONF_LIST_AT(&bc->listeners, struct listener_conf, i);
        const char *name = bc->listeners.names[i];
        if (!(pd[i].l = lst_get(d, name))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (lc->tls_cert || lc->tls_key) {
            if (!lc->tls_cert || !lc->tls_key) {
                snprintf(err, errlen, "listener \"%s\": tls_cert and tls_key go together", name);
                goto out;
            }
            if (!(pd[i].tls = tls_for(pd[i].l, lc, err, errlen)))
                goto out;
        }
        pd[i].anon = lc->allow_anonymous;
        if (pd[i].anon == ANON_AUTO && !coro_addr_is_loopback(&lc->listen))
            pd[i].anon = ANON_NO; /* only an explicit yes opens a public address */
        pd[i].maxc = (long)lc->max_connections;
        w[i] = (struct listenset_want){name, lc->listen, client_conn, pd[i].l, 0};
    }
    /* Settings first, so connections accepted by a new socket see them;
     * pd now holds the old ones. */
    settings_swap(pd, n);
    if (listenset_apply(S.set, w, n, err, errlen) < 0) {
        settings_swap(pd, n); /* put the old settings back */
        goto out;
    }
    drop_unused_tls(pd, n);
    rc = 0;
out:
    for (size_t i = 0; pd && i < n; i++)
        tlsref_unref(pd[i].tls);
    free(w);
    free(pd);
    return rc;
}

void listener_close_all(void)
{
    if (S.set)
        listenset_close(S.set);
    for (struct lst *l = S.all; l; l = l->next)
        tlsref_unref(tls_swap(l, NULL));
}

size_t listener_count(void)
{
    return S.set ? listenset_count(S.set) : 0;
}

static int listener_port(const char *name) __attribute__((unused));
static int listener_port(const char *name)
{
    struct coro_addr a;
    if (!S.set || listenset_addr(S.set, name, &a) < 0)
        return -1;
    return coro_addr_port(&a);
}
