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

/* A TLS context for the section, or NULL with err set (NULL and err
 * empty: not a TLS listener). Blocking file reads: run via coro_offload. */
struct tls_job {
    const struct listener_conf *lc;
    coro_tls_ctx_t *ctx;
    char err[256];
};

static void tls_make(void *arg)
{
    struct tls_job *j = arg;
    struct coro_tls_server_opts o = {j->lc->tls_cert, j->lc->tls_key, j->lc->tls_ca,
                                     j->lc->require_certificate, NULL, 0};
    j->ctx = coro_tls_server_new(&o, j->err, sizeof(j->err));
}

struct pending {
    struct lst *l;
    coro_tls_ctx_t *tls;
    int anon;
    long maxc;
};

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
            struct tls_job j = {lc, NULL, ""};
            if (!lc->tls_cert || !lc->tls_key) {
                snprintf(err, errlen, "listener \"%s\": tls_cert and tls_key go together", name);
                goto out;
            }
            coro_offload(tls_make, &j);
            if (!(pd[i].tls = j.ctx)) {
                snprintf(err, errlen, "listener \"%s\": %s", name, j.err);
                goto out;
            }
        }
        pd[i].anon = lc->allow_anonymous;
        if (pd[i].anon == ANON_AUTO && !coro_addr_is_loopback(&lc->listen))
            pd[i].anon = ANON_NO; /* only an explicit yes opens a public address */
        pd[i].maxc = (long)lc->max_connections;
        w[i] = (struct listenset_want){name, lc->listen, client_conn, pd[i].l, 0};
    }
    /* Settings first, so connections accepted by a new socket see them. */
    struct pending *keep = calloc(n + 1, sizeof(*keep));
    for (size_t i = 0; i < n; i++) {
        struct lst *l = pd[i].l;
        if (keep)
            keep[i] = (struct pending){l, atomic_load(&l->tls), atomic_load(&l->allow_anon),
                                       atomic_load(&l->max_conns)};
        atomic_store(&l->tls, pd[i].tls);
        atomic_store(&l->allow_anon, pd[i].anon);
        atomic_store(&l->max_conns, pd[i].maxc);
    }
    if (listenset_apply(S.set, w, n, err, errlen) < 0) {
        for (size_t i = 0; keep && i < n; i++) { /* put the old settings back */
            atomic_store(&keep[i].l->tls, keep[i].tls);
            atomic_store(&keep[i].l->allow_anon, keep[i].anon);
            atomic_store(&keep[i].l->max_conns, keep[i].maxc);
        }
        free(keep);
        goto out;
    }
    /* Old contexts stay referenced by their connections' sessions (TLS
     * sessions hold their SSL_CTX), so they are never freed here. */
    free(keep);
    rc = 0;
out:
    if (rc < 0)
        for (size_t i = 0; pd && i < n; i++)
            if (pd[i].tls)
                coro_tls_ctx_free(pd[i].tls);
    free(w);
    free(pd);
    return rc;
}

void listener_close_all(void)
{
    if (S.set)
        listenset_close(S.set);
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
