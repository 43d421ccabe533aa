/*
 * curl.c - libcurl's multi_socket API on the worker's libevent loop.
 *
 * Each worker owns one CURLM (created on first use, kept in the worker's
 * CORO_SLOT_CURL slot, so its connection cache is reused by every transfer
 * on that worker). curl tells us which sockets to watch (socket callback)
 * and when to call it back (timer callback); we turn those into libevent
 * events whose callbacks drive curl_multi_socket_action() and then collect
 * finished transfers with curl_multi_info_read(). A finished transfer only
 * finishes its coroutine's waiter: no coroutine runs inside a libevent or
 * curl callback.
 *
 * Not for: sharing one multi across workers (a coroutine never migrates
 * once started, so its transfer stays on one loop), or HTTP logic.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "coro/coro.h"
#include "coro/curl.h"
#include "runtime/runtime_int.h"

struct curl_worker {
    CURLM *multi;
    struct event_base *base;
    struct event *timer;
};

/* One transfer in flight; lives on its coroutine's stack. */
struct curl_xfer {
    struct coro_waiter w;
    CURLcode rc;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Hand every finished transfer back to the coroutine that started it. */
static void collect_done(struct curl_worker *cw)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(cw->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct curl_xfer *x = NULL;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        /* m is invalid after remove_handle: everything was copied above. */
        if (x && coro__waiter_claim(&x->w)) {
            curl_multi_remove_handle(cw->multi, easy);
            x->rc = rc;
            coro__waiter_finish(&x->w, 0);
        }
        /* Otherwise the owner was cancelled and removes the handle itself. */
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct curl_worker *cw = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;

    curl_multi_socket_action(cw->multi, fd, flags, &running);
    collect_done(cw);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct curl_worker *cw = arg;
    int running;

    curl_multi_socket_action(cw->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(cw);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop watching. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curl_worker *cw = userp;
    struct event *ev = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (ev) {
            event_free(ev);
            curl_multi_assign(cw->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                 (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!ev) {
        ev = event_new(cw->base, s, kind, on_socket_event, cw);
        if (!ev)
            return -1;
        curl_multi_assign(cw->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, cw->base, s, kind, on_socket_event, cw);
    }
    return event_add(ev, NULL) < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the one multi timer. curl asks
 * not to be called back from here, so even 0 ms goes through the loop. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_worker *cw = userp;

    if (timeout_ms < 0)
        return event_del(cw->timer) < 0 ? -1 : 0;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(cw->timer, &tv) < 0 ? -1 : 0;
}

static void worker_free(void *p)
{
    struct curl_worker *cw = p;

    if (!cw)
        return;
    /* Cleanup may still call socket_cb/timer_cb, which need the events. */
    if (cw->multi)
        curl_multi_cleanup(cw->multi);
    if (cw->timer)
        event_free(cw->timer);
    free(cw);
}

static struct curl_worker *worker_get(void)
{
    void **slot = coro__worker_slot(CORO_SLOT_CURL);
    struct curl_worker *cw = *slot;

    if (cw)
        return cw;
    if (!(cw = calloc(1, sizeof(*cw))))
        return NULL;
    cw->base = coro__event_base();
    cw->multi = curl_multi_init();
    cw->timer = evtimer_new(cw->base, on_timer, cw);
    if (!cw->multi || !cw->timer)
        goto fail;
    curl_multi_setopt(cw->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(cw->multi, CURLMOPT_SOCKETDATA, cw);
    curl_multi_setopt(cw->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(cw->multi, CURLMOPT_TIMERDATA, cw);
    *slot = cw;
    coro__worker_slot_fini(CORO_SLOT_CURL, worker_free);
    return cw;
fail:
    worker_free(cw);
    return NULL;
}

int coro_curl_perform(CURL *easy)
{
    coro__require("coro_curl_perform");
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return curl_init_rc;
    struct curl_worker *cw = worker_get();
    if (!cw)
        return CURLE_OUT_OF_MEMORY;

    /* CURLOPT_PRIVATE belongs to the caller: borrow it and give it back. */
    /* curl must not use signals (alarm() for DNS timeouts) in a threaded
     * process. */
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    char *user_priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user_priv);
    struct curl_xfer x = {.rc = CURLE_OK};
    coro__waiter_init(&x.w);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)&x);
    CURLMcode mc = curl_multi_add_handle(cw->multi, easy);
    if (mc != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, user_priv);
        return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    }
    int r = coro__park(&x.w, -1, CORO_PARK_CANCELLABLE);
    if (r != 0) /* cancelled: the transfer is still in the multi */
        curl_multi_remove_handle(cw->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, user_priv);
    if (r != 0) {
        errno = r;
        return -1;
    }
    return (int)x.rc;
}
