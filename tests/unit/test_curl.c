/*
 * test_curl.c - coro_curl_perform against a tiny HTTP/1.1 server written
 * with coroutine I/O in this file: many concurrent transfers on two
 * workers, connection errors, curl's own timeouts, and cancellation.
 * Every request goes to 127.0.0.1 and proxies are disabled.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "coro/curl.h"
#include "coro/io.h"
#include "unit.h"

/* ---- the HTTP server ------------------------------------------------------ */

struct http_srv {
    int lfd, port;
    coro_scope_t scope;        /* accept loop and connections */
    chan_t *slow_seen;         /* one int each time /slow is requested */
};

struct http_conn {
    struct http_srv *s;
    int fd;
};

/* Body for /N: long enough to need several reads, unique per N. */
static size_t body_for(int n, char *buf, size_t len)
{
    size_t k = 0;
    while (k + 16 < len && k < 3000)
        k += (size_t)snprintf(buf + k, len - k, "body-%d;", n);
    return k;
}

/* Answer one request head; 0 to continue, -1 to drop the connection. */
static int http_answer(struct http_conn *c, const char *head)
{
    char body[4096], hdr[128];
    int n, one = 1;

    if (strncmp(head, "GET /slow ", 10) == 0) {
        chan_send(c->s->slow_seen, &one);
        return -1; /* never answer: the caller reads until the client gives up */
    }
    if (sscanf(head, "GET /%d ", &n) != 1)
        return -1;
    size_t blen = body_for(n, body, sizeof(body));
    int hlen = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", blen);
    if (coro_write_all(c->fd, hdr, (size_t)hlen, 5000) < 0 ||
        coro_write_all(c->fd, body, blen, 5000) < 0)
        return -1;
    return 0;
}

static void http_conn_run(void *arg)
{
    struct http_conn *c = arg;
    char buf[4096];
    size_t have = 0;

    for (;;) {
        char *end;
        buf[have] = 0;
        while ((end = strstr(buf, "\r\n\r\n"))) {
            if (http_answer(c, buf) < 0)
                goto drain;
            end += 4;
            have -= (size_t)(end - buf);
            memmove(buf, end, have + 1);
        }
        if (have >= sizeof(buf) - 1)
            goto out;
        ssize_t r = coro_read(c->fd, buf + have, sizeof(buf) - 1 - have, -1);
        if (r <= 0)
            goto out;
        have += (size_t)r;
    }
drain:
    /* Hold the connection open until the client closes it (or we are
     * cancelled at the end of the test). */
    while (coro_read(c->fd, buf, sizeof(buf), -1) > 0)
        ;
out:
    coro_close(c->fd);
    free(c);
}

static void http_accept_loop(void *arg)
{
    struct http_srv *s = arg;
    int fd;

    while ((fd = coro_accept(s->lfd, NULL, NULL, -1)) >= 0) {
        struct http_conn *c = malloc(sizeof(*c));
        if (!c) {
            coro_close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (!coro_scope_spawn(&s->scope, http_conn_run, c)) {
            coro_close(fd);
            free(c);
        }
    }
    coro_close(s->lfd);
}

static void http_start(struct http_srv *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s->lfd, 512), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    s->slow_seen = chan_new(sizeof(int), 64);
    ck_assert_ptr_nonnull(s->slow_seen);
    coro_scope_init(&s->scope);
    ck_assert_ptr_nonnull(coro_scope_spawn(&s->scope, http_accept_loop, s));
}

static void http_stop(struct http_srv *s)
{
    coro_scope_cancel(&s->scope);
    coro_scope_wait(&s->scope);
    chan_free(s->slow_seen);
}

/* ---- a client transfer ------------------------------------------------------ */

struct buf {
    char data[8192];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp)
{
    struct buf *b = userp;
    size_t n = size * nmemb;
    if (n > sizeof(b->data) - b->len)
        return 0; /* too much: fail the transfer */
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return n;
}

/* An easy handle for http://127.0.0.1:port/path that never uses a proxy. */
static CURL *easy_for(int port, const char *path, struct buf *b)
{
    char url[128];
    CURL *e = curl_easy_init();

    if (!e)
        return NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    return e;
}

/* ---- many concurrent GETs --------------------------------------------------- */

enum { NGETS = 100 };

struct get_test {
    int port;
    atomic_int next;
    int rc[NGETS];
    int body_ok[NGETS];
    int private_kept[NGETS];
};

static void get_one(void *arg)
{
    struct get_test *gt = arg;
    int i = atomic_fetch_add(&gt->next, 1);
    char path[32], want[4096];
    struct buf *b = calloc(1, sizeof(*b));

    snprintf(path, sizeof(path), "/%d", i);
    CURL *e = b ? easy_for(gt->port, path, b) : NULL;
    if (!e) {
        gt->rc[i] = -2;
        free(b);
        return;
    }
    /* coro_curl_perform borrows CURLOPT_PRIVATE and must give it back. */
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)gt);
    gt->rc[i] = coro_curl_perform(e);
    size_t wlen = body_for(i, want, sizeof(want));
    gt->body_ok[i] = b->len == wlen && memcmp(b->data, want, wlen) == 0;
    char *priv = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    gt->private_kept[i] = priv == (char *)gt;
    curl_easy_cleanup(e);
    free(b);
}

static void gets_body(void *arg)
{
    struct get_test *gt = arg;
    struct http_srv s;
    coro_t *c[NGETS];

    http_start(&s);
    gt->port = s.port;
    for (int i = 0; i < NGETS; i++)
        c[i] = coro_spawn_on(CORO_WORKER_ANY, get_one, gt);
    for (int i = 0; i < NGETS; i++)
        coro_join(c[i]);
    http_stop(&s);
}

START_TEST(test_concurrent_gets_get_their_bodies)
{
    struct get_test gt = {0};
    unit_run(2, gets_body, &gt);
    for (int i = 0; i < NGETS; i++) {
        ck_assert_msg(gt.rc[i] == CURLE_OK, "GET /%d: %d", i, gt.rc[i]);
        ck_assert_msg(gt.body_ok[i], "GET /%d: wrong body", i);
        ck_assert_msg(gt.private_kept[i], "GET /%d: CURLOPT_PRIVATE lost", i);
    }
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */

static void refused_body(void *arg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    struct buf b = {.len = 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was just free and is closed again: nobody listens. */
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    CURL *e = easy_for(ntohs(sa.sin_port), "/1", &b);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(coro_curl_perform(e), CURLE_COULDNT_CONNECT);
    /* The handle is reusable after a failure. */
    ck_assert_int_eq(coro_curl_perform(e), CURLE_COULDNT_CONNECT);
    curl_easy_cleanup(e);
}

START_TEST(test_closed_port_couldnt_connect)
{
    unit_run(1, refused_body, NULL);
}
END_TEST

static void timeout_body(void *arg)
{
    struct http_srv s;
    struct buf b = {.len = 0};

    http_start(&s);
    CURL *e = easy_for(s.port, "/slow", &b);
    ck_assert_ptr_nonnull(e);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 200L);
    uint64_t t0 = coro_now_ms();
    ck_assert_int_eq(coro_curl_perform(e), CURLE_OPERATION_TIMEDOUT);
    ck_assert_uint_lt(coro_now_ms() - t0, 5000);
    /* The same handle then works against a path that answers. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/7", s.port);
    curl_easy_setopt(e, CURLOPT_URL, url);
    ck_assert_int_eq(coro_curl_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    http_stop(&s);
}

START_TEST(test_slow_server_times_out)
{
    unit_run(1, timeout_body, NULL);
}
END_TEST

/* ---- cancellation ------------------------------------------------------------- */

struct cancel_test {
    int port;
    int rc, err_no, reuse_rc;
    CURL *e;                   /* kept for reuse after the cancellation */
    struct buf b;
};

static void cancel_get(void *arg)
{
    struct cancel_test *ct = arg;

    ct->rc = coro_curl_perform(ct->e);
    ct->err_no = errno;
}

static void cancel_body(void *arg)
{
    struct cancel_test *ct = arg;
    struct http_srv s;
    int one;

    char url[64];

    http_start(&s);
    ct->e = easy_for(s.port, "/slow", &ct->b);
    ck_assert_ptr_nonnull(ct->e);
    coro_t *c = coro_spawn(cancel_get, ct);
    /* The server has the request: the transfer is parked in curl. */
    ck_assert_int_eq(chan_recv(s.slow_seen, &one), 0);
    coro_cancel(c);
    coro_join(c);
    /* The aborted handle left the multi cleanly: it works again. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/3", s.port);
    curl_easy_setopt(ct->e, CURLOPT_URL, url);
    ct->reuse_rc = coro_curl_perform(ct->e);
    curl_easy_cleanup(ct->e);
    http_stop(&s);
}

START_TEST(test_cancel_blocked_transfer)
{
    struct cancel_test ct = {0};
    unit_run(2, cancel_body, &ct);
    ck_assert_int_eq(ct.rc, -1);
    ck_assert_int_eq(ct.err_no, ECANCELED);
    ck_assert_int_eq(ct.reuse_rc, CURLE_OK);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("curl");
    TCase *tc = tcase_create("curl");

    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_concurrent_gets_get_their_bodies);
    tcase_add_test(tc, test_closed_port_couldnt_connect);
    tcase_add_test(tc, test_slow_server_times_out);
    tcase_add_test(tc, test_cancel_blocked_transfer);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
