/*
 * test_tls.c - TLS over coroutine I/O: echo under load, peer verification,
 * hostname checks, SNI, client certificates, certificate reload, timeouts
 * and cancellation. A throwaway CA and certificates are generated with the
 * OpenSSL API into a temporary directory, so nothing secret or expiring is
 * committed; all traffic stays on 127.0.0.1.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "coro/io.h"
#include "coro/tls.h"
#include "unit.h"

/* ---- certificates ------------------------------------------------------ */

static char tmpdir[64];

/* Path of a file in tmpdir; a small ring so a call can use several. */
static const char *P(const char *name)
{
    static char ring[8][128];
    static unsigned i;
    char *b = ring[i++ % 8];
    snprintf(b, sizeof(ring[0]), "%s/%s", tmpdir, name);
    return b;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

/* Write name.pem (cert) and name.key; returns the cert and key for signing. */
static X509 *make_cert(const char *name, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *ikey, EVP_PKEY **key_out)
{
    static long serial = 1;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    char path[160];

    ck_assert_ptr_nonnull(key);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints, issuer ? "CA:FALSE"
                                                                  : "critical,CA:TRUE");
    if (!issuer)
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (san)
        add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
    ck_assert_int_gt(X509_sign(x, issuer ? ikey : key, EVP_sha256()), 0);

    snprintf(path, sizeof(path), "%s/%s.pem", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    if (key_out)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    return x;
}

static void certs_setup(void)
{
    EVP_PKEY *cakey, *ca2key;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coro-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    X509 *ca = make_cert("ca", "Test CA", NULL, NULL, NULL, &cakey);
    X509 *ca2 = make_cert("ca2", "Other CA", NULL, NULL, NULL, &ca2key);
    const char *local = "DNS:localhost,IP:127.0.0.1";
    X509 *c[] = {
        make_cert("srv", "localhost", local, ca, cakey, NULL),
        make_cert("srv2", "localhost-v2", local, ca, cakey, NULL),
        make_cert("a", "a.example.org", "DNS:a.example.org", ca, cakey, NULL),
        make_cert("wild", "wild.test", "DNS:*.wild.test", ca, cakey, NULL),
        make_cert("untrusted", "localhost", local, ca2, ca2key, NULL),
        make_cert("client", "client-1", NULL, ca, cakey, NULL),
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        X509_free(c[i]);
    X509_free(ca);
    X509_free(ca2);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(ca2key);
}

/* Remove everything in tmpdir, including what a failed test left behind. */
static void certs_teardown(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char path[400];

    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* ---- sockets ------------------------------------------------------------ */

static int tcp_listen(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 512), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Safe from any worker: no ck_assert. */
static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (coro_connect(fd, (struct sockaddr *)&sa, sizeof(sa), 5000) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- an echo server ------------------------------------------------------- */

struct srv {
    int lfd;
    int nconns;                /* accept this many, then stop */
    int64_t hs_timeout;
    coro_tls_ctx_t *ctx;
    atomic_int ok, failed, last_errno;
    char peer_cn[64];          /* last verified client CN */
    char sni[64];              /* last SNI name asked */
    char err[256];             /* last handshake error */
    chan_t *done;              /* one int per finished connection */
};

/* Global: server connections may outlive the test body that started them
 * (coro_run waits for them), so nothing of theirs lives on its stack. */
static struct srv S;

struct conn {
    struct srv *s;
    int fd;
};

static void srv_conn(void *arg)
{
    struct conn *c = arg;
    struct srv *s = c->s;
    char err[256], buf[4096];
    coro_tls_t *t = coro_tls_accept(s->ctx, c->fd, s->hs_timeout, err, sizeof(err));

    if (!t) {
        atomic_store(&s->last_errno, errno);
        snprintf(s->err, sizeof(s->err), "%s", err);
        atomic_fetch_add(&s->failed, 1);
        goto out;
    }
    atomic_fetch_add(&s->ok, 1);
    coro_tls_peer_cn(t, s->peer_cn, sizeof(s->peer_cn));
    if (coro_tls_servername(t))
        snprintf(s->sni, sizeof(s->sni), "%s", coro_tls_servername(t));
    ssize_t n;
    while ((n = coro_tls_read(t, buf, sizeof(buf), 10000)) > 0)
        if (coro_tls_write_all(t, buf, (size_t)n, 10000) < 0)
            break;
    coro_tls_shutdown(t, 1000);
    coro_tls_free(t);
out:
    coro_close(c->fd);
    free(c);
    int one = 1;
    chan_send(s->done, &one);
}

static void srv_loop(void *arg)
{
    struct srv *s = arg;

    for (int i = 0; i < s->nconns; i++) {
        int fd = coro_accept(s->lfd, NULL, NULL, 10000);
        if (fd < 0)
            break;
        struct conn *c = malloc(sizeof(*c));
        c->s = s;
        c->fd = fd;
        coro_detach(coro_spawn(srv_conn, c));
    }
    coro_close(s->lfd);
}

static void srv_start(struct srv *s, coro_tls_ctx_t *ctx, int nconns, int *port)
{
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->nconns = nconns;
    s->hs_timeout = 10000;
    s->done = chan_new(sizeof(int), 1024);
    ck_assert_ptr_nonnull(s->done);
    s->lfd = tcp_listen(port);
    coro_detach(coro_spawn(srv_loop, s));
}

static coro_tls_ctx_t *server_ctx(const char *name, const char *ca, int require)
{
    char cert[160], key[160], err[256] = "";
    snprintf(cert, sizeof(cert), "%s/%s.pem", tmpdir, name);
    snprintf(key, sizeof(key), "%s/%s.key", tmpdir, name);
    struct coro_tls_server_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca,
                                     .require_client_cert = require};
    coro_tls_ctx_t *ctx = coro_tls_server_new(&o, err, sizeof(err));
    ck_assert_msg(ctx != NULL, "server ctx %s: %s", name, err);
    return ctx;
}

static coro_tls_ctx_t *client_ctx(void)
{
    char err[256] = "";
    coro_tls_ctx_t *ctx = coro_tls_client_new(P("ca.pem"), 1, err, sizeof(err));
    ck_assert_msg(ctx != NULL, "client ctx: %s", err);
    return ctx;
}

/* After coro_run: free what the server shared with its connections. */
static void srv_cleanup(void)
{
    coro_tls_ctx_free(S.ctx);
    chan_free(S.done);
}

/* Wait until the server finished one more connection. */
static void srv_wait_conn(void)
{
    int one;
    ck_assert_int_eq(chan_recv(S.done, &one), 0);
}

/* Connect, handshake, and check one echo round trip. Main coroutine only. */
static coro_tls_t *dial(coro_tls_ctx_t *ctx, int port, const char *sn, int *fd)
{
    char err[256] = "";
    *fd = tcp_connect(port);
    ck_assert_int_ge(*fd, 0);
    coro_tls_t *t = coro_tls_connect(ctx, *fd, sn, 5000, err, sizeof(err));
    ck_assert_msg(t != NULL, "connect %s: %s", sn ? sn : "-", err);
    return t;
}

static void echo_once(coro_tls_t *t, const char *msg)
{
    char buf[128];
    size_t n = strlen(msg), got = 0;
    ck_assert_int_eq(coro_tls_write_all(t, msg, n, 5000), 0);
    while (got < n) {
        ssize_t r = coro_tls_read(t, buf + got, sizeof(buf) - got, 5000);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
    ck_assert_mem_eq(buf, msg, n);
}

static void hang_up(coro_tls_t *t, int fd)
{
    coro_tls_shutdown(t, 1000);
    coro_tls_free(t);
    coro_close(fd);
}

/* Subject CN of whatever certificate the server sent (verified or not). */
static void raw_peer_cn(coro_tls_t *t, char *buf, int len)
{
    X509 *x = SSL_get0_peer_certificate(coro_tls_ssl(t));
    ck_assert_ptr_nonnull(x);
    ck_assert_int_ge(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
                                               len), 0);
}

/* A client that ends its stream in a chosen way (end-of-stream tests). */
struct eof_client {
    coro_tls_ctx_t *ctx;
    int port, fd, notify;
    coro_tls_t *t;
};

/* ---- echo under load ---------------------------------------------------- */

enum { ECHO_CONNS = 200, ECHO_BYTES = 16384 };

struct echo_test {
    coro_tls_ctx_t *cctx;
    int port;
    atomic_int good, bad;
    char why[256];
};

static void echo_client(void *arg)
{
    struct echo_test *et = arg;
    unsigned char *out = malloc(ECHO_BYTES), *in = malloc(ECHO_BYTES);
    char err[256] = "";
    coro_tls_t *t = NULL;
    size_t got = 0;
    int fd = tcp_connect(et->port);

    if (!out || !in || fd < 0)
        goto fail;
    if (!(t = coro_tls_connect(et->cctx, fd, "localhost", 10000, err, sizeof(err))))
        goto fail;
    unsigned seed = (unsigned)coro_id(coro_self());
    for (size_t i = 0; i < ECHO_BYTES; i++)
        out[i] = (unsigned char)(seed + i * 7);
    if (coro_tls_write_all(t, out, ECHO_BYTES, 10000) < 0)
        goto fail;
    while (got < ECHO_BYTES) {
        ssize_t r = coro_tls_read(t, in + got, ECHO_BYTES - got, 10000);
        if (r <= 0)
            goto fail;
        for (ssize_t i = 0; i < r; i++, got++)
            if (in[got] != (unsigned char)(seed + got * 7))
                goto fail;
    }
    atomic_fetch_add(&et->good, 1);
    hang_up(t, fd);
    free(out);
    free(in);
    return;
fail:
    snprintf(et->why, sizeof(et->why), "errno %d: %s", errno, err);
    atomic_fetch_add(&et->bad, 1);
    coro_tls_free(t);
    if (fd >= 0)
        coro_close(fd);
    free(out);
    free(in);
}

static void echo_body(void *arg)
{
    struct echo_test *et = arg;
    struct srv *s = &S;
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0);
    coro_t *c[ECHO_CONNS];

    et->cctx = client_ctx();
    srv_start(s, sctx, ECHO_CONNS, &et->port);
    for (int i = 0; i < ECHO_CONNS; i++)
        c[i] = coro_spawn_on(CORO_WORKER_ANY, echo_client, et);
    for (int i = 0; i < ECHO_CONNS; i++)
        coro_join(c[i]);
    coro_tls_ctx_free(et->cctx);
}

START_TEST(test_echo_200_connections_2_workers)
{
    UNIT_SKIP_UNDER_VALGRIND("200 handshakes overrun the listen backlog at its speed");
    struct echo_test et = {0};
    unit_run(2, echo_body, &et);
    srv_cleanup();
    ck_assert_msg(atomic_load(&et.bad) == 0, "%d failed, last: %s", atomic_load(&et.bad),
                  et.why);
    ck_assert_int_eq(atomic_load(&et.good), ECHO_CONNS);
}
END_TEST

/* ---- verification failures ------------------------------------------------- */

struct fail_test {
    const char *srv_cert, *servername;
    coro_tls_t *t;
    int err_no;
    char err[256];
};

static void fail_body(void *arg)
{
    struct fail_test *ft = arg;
    struct srv *s = &S;
    int port, fd;
    coro_tls_ctx_t *sctx = server_ctx(ft->srv_cert, NULL, 0), *cctx = client_ctx();

    srv_start(s, sctx, 1, &port);
    fd = tcp_connect(port);
    ck_assert_int_ge(fd, 0);
    ft->t = coro_tls_connect(cctx, fd, ft->servername, 5000, ft->err, sizeof(ft->err));
    ft->err_no = errno;
    coro_tls_free(ft->t);
    coro_close(fd);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_untrusted_server_cert_is_refused)
{
    struct fail_test ft = {.srv_cert = "untrusted", .servername = "localhost"};
    unit_run(1, fail_body, &ft);
    srv_cleanup();
    ck_assert_ptr_null(ft.t);
    ck_assert_int_eq(ft.err_no, EPROTO);
    ck_assert_msg(strstr(ft.err, "verify") != NULL, "reason: %s", ft.err);
}
END_TEST

START_TEST(test_hostname_mismatch_is_refused)
{
    struct fail_test ft = {.srv_cert = "srv", .servername = "wrong.example"};
    unit_run(1, fail_body, &ft);
    srv_cleanup();
    ck_assert_ptr_null(ft.t);
    ck_assert_int_eq(ft.err_no, EPROTO);
    ck_assert_msg(strstr(ft.err, "verify") != NULL, "reason: %s", ft.err);
    ck_assert_msg(strstr(ft.err, "ostname") != NULL, "reason: %s", ft.err);
}
END_TEST

/* ---- SNI -------------------------------------------------------------------- */

static void sni_body(void *arg)
{
    static const char *cases[][2] = {
        {"a.example.org", "a.example.org"}, /* exact */
        {"x.wild.test", "wild.test"},       /* wildcard */
        {"localhost", "localhost"},         /* no match: the default */
        {NULL, "localhost"},                /* no SNI: the default */
    };
    struct srv *s = &S;
    char err[256] = "", cn[64];
    int port, fd;
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0), *cctx = client_ctx();

    ck_assert_msg(coro_tls_server_add_sni(sctx, "a.example.org", P("a.pem"), P("a.key"), err,
                                          sizeof(err)) == 0, "%s", err);
    ck_assert_msg(coro_tls_server_add_sni(sctx, "*.wild.test", P("wild.pem"), P("wild.key"),
                                          err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(coro_tls_server_add_sni(sctx, "b.test", P("nope.pem"), P("a.key"), err,
                                             sizeof(err)), -1);
    ck_assert_msg(strstr(err, "nope.pem") != NULL, "reason: %s", err);
    srv_start(s, sctx, 4, &port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s->sni[0] = 0;
        coro_tls_t *t = dial(cctx, port, cases[i][0], &fd);
        raw_peer_cn(t, cn, sizeof(cn));
        ck_assert_str_eq(cn, cases[i][1]);
        if (cases[i][0]) {
            ck_assert_int_eq(coro_tls_peer_cn(t, cn, sizeof(cn)), 0);
            ck_assert_str_eq(cn, cases[i][1]);
        }
        echo_once(t, "sni");
        ck_assert_str_eq(s->sni, cases[i][0] ? cases[i][0] : "");
        hang_up(t, fd);
    }
    coro_tls_ctx_free(cctx);
}

START_TEST(test_sni_selects_certificate)
{
    unit_run(2, sni_body, NULL);
    srv_cleanup();
}
END_TEST

/* ---- client certificates ----------------------------------------------- */

static void mtls_body(void *arg)
{
    struct srv *s = &S;
    char err[256] = "", buf[8];
    int port, fd;
    coro_tls_ctx_t *sctx = server_ctx("srv", P("ca.pem"), 1), *cctx = client_ctx();

    srv_start(s, sctx, 2, &port);
    /* Without a certificate: with TLS 1.3 the client may finish its side of
     * the handshake before the server refuses, so the refusal can surface
     * on the first read instead. */
    fd = tcp_connect(port);
    ck_assert_int_ge(fd, 0);
    coro_tls_t *t = coro_tls_connect(cctx, fd, "localhost", 5000, err, sizeof(err));
    if (t) {
        ck_assert_int_eq(coro_tls_read(t, buf, sizeof(buf), 5000), -1);
        ck_assert_int_eq(errno, EPROTO);
        coro_tls_free(t);
    } else {
        ck_assert_int_eq(errno, EPROTO);
    }
    coro_close(fd);
    srv_wait_conn();
    ck_assert_int_eq(atomic_load(&s->failed), 1);
    ck_assert_int_eq(atomic_load(&s->last_errno), EPROTO);

    /* With one signed by the CA the server trusts. */
    ck_assert_msg(coro_tls_client_set_cert(cctx, P("client.pem"), P("client.key"), err,
                                           sizeof(err)) == 0, "%s", err);
    t = dial(cctx, port, "localhost", &fd);
    echo_once(t, "mutual");
    ck_assert_int_eq(atomic_load(&s->ok), 1);
    ck_assert_str_eq(s->peer_cn, "client-1");
    hang_up(t, fd);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_require_client_cert)
{
    unit_run(2, mtls_body, NULL);
    srv_cleanup();
}
END_TEST

/* ---- reload --------------------------------------------------------------------- */

static void reload_body(void *arg)
{
    struct srv *s = &S;
    char err[256] = "", cn[64];
    int port, fda, fdb, fdc;

    copy_file(P("srv.pem"), P("r.pem"));
    copy_file(P("srv.key"), P("r.key"));
    coro_tls_ctx_t *sctx = server_ctx("r", NULL, 0), *cctx = client_ctx();
    srv_start(s, sctx, 3, &port);

    coro_tls_t *a = dial(cctx, port, "localhost", &fda);
    ck_assert_int_eq(coro_tls_peer_cn(a, cn, sizeof(cn)), 0);
    ck_assert_str_eq(cn, "localhost");
    echo_once(a, "before");

    copy_file(P("srv2.pem"), P("r.pem"));
    copy_file(P("srv2.key"), P("r.key"));
    ck_assert_msg(coro_tls_ctx_reload(sctx, err, sizeof(err)) == 0, "%s", err);
    coro_tls_t *b = dial(cctx, port, "localhost", &fdb);
    ck_assert_int_eq(coro_tls_peer_cn(b, cn, sizeof(cn)), 0);
    ck_assert_str_eq(cn, "localhost-v2");
    echo_once(b, "new");
    echo_once(a, "established connection still works");

    /* A broken reload keeps the certificate in use. */
    unlink(P("r.key"));
    ck_assert_int_eq(coro_tls_ctx_reload(sctx, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "r.key") != NULL, "reason: %s", err);
    coro_tls_t *c = dial(cctx, port, "localhost", &fdc);
    ck_assert_int_eq(coro_tls_peer_cn(c, cn, sizeof(cn)), 0);
    ck_assert_str_eq(cn, "localhost-v2");
    echo_once(c, "still v2");

    hang_up(a, fda);
    hang_up(b, fdb);
    hang_up(c, fdc);
    unlink(P("r.pem"));
    coro_tls_ctx_free(cctx);
}

START_TEST(test_reload_swaps_certificate)
{
    unit_run(2, reload_body, NULL);
    srv_cleanup();
}
END_TEST

/* Reloads racing with handshakes on both workers: every handshake sees a
 * whole certificate set, old or new, and nothing is freed while in use. */
enum { RACE_CONNS = 60, RACE_RELOADS = 30 };

static void race_body(void *arg)
{
    struct echo_test *et = arg;
    struct srv *s = &S;
    char err[256] = "";
    coro_t *c[RACE_CONNS];

    copy_file(P("srv.pem"), P("race.pem"));
    copy_file(P("srv.key"), P("race.key"));
    et->cctx = client_ctx();
    srv_start(s, server_ctx("race", NULL, 0), RACE_CONNS, &et->port);
    for (int i = 0; i < RACE_CONNS; i++)
        c[i] = coro_spawn_on(CORO_WORKER_ANY, echo_client, et);
    for (int i = 0; i < RACE_RELOADS; i++) {
        ck_assert_msg(coro_tls_ctx_reload(s->ctx, err, sizeof(err)) == 0, "%s", err);
        coro_yield();
    }
    for (int i = 0; i < RACE_CONNS; i++)
        coro_join(c[i]);
    unlink(P("race.pem"));
    unlink(P("race.key"));
    coro_tls_ctx_free(et->cctx);
}

START_TEST(test_reload_races_with_handshakes)
{
    struct echo_test et = {0};
    unit_run(2, race_body, &et);
    srv_cleanup();
    ck_assert_msg(atomic_load(&et.bad) == 0, "%d failed, last: %s", atomic_load(&et.bad),
                  et.why);
    ck_assert_int_eq(atomic_load(&et.good), RACE_CONNS);
}
END_TEST

/* A peer that speaks something else than TLS is refused with EPROTO, and
 * writing to a peer that hung up fails with EPIPE/ECONNRESET instead of
 * killing the process with SIGPIPE. */
static void peer_gone_client(void *arg)
{
    struct eof_client *ec = arg;
    char err[256];

    ec->fd = tcp_connect(ec->port);
    if (ec->fd < 0)
        return;
    if (ec->notify) { /* speak plain HTTP */
        static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        coro_write_all(ec->fd, req, sizeof(req) - 1, 5000);
    } else if ((ec->t = coro_tls_connect(ec->ctx, ec->fd, "localhost", 5000, err,
                                         sizeof(err)))) {
        coro_tls_free(ec->t); /* and close without a word */
    }
    while (coro_read(ec->fd, err, sizeof(err), 5000) > 0)
        ;
    coro_close(ec->fd);
}

static void peer_gone_body(void *arg)
{
    char err[256] = "", chunk[1024] = {0};
    int port, lfd = tcp_listen(&port);
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0), *cctx = client_ctx();

    struct eof_client ec = {.ctx = cctx, .port = port, .notify = 1};
    coro_t *c = coro_spawn(peer_gone_client, &ec);
    int fd = coro_accept(lfd, NULL, NULL, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_null(coro_tls_accept(sctx, fd, 5000, err, sizeof(err)));
    ck_assert_int_eq(errno, EPROTO);
    coro_close(fd);
    coro_join(c);

    ec.notify = 0;
    c = coro_spawn(peer_gone_client, &ec);
    fd = coro_accept(lfd, NULL, NULL, 5000);
    ck_assert_int_ge(fd, 0);
    coro_tls_t *t = coro_tls_accept(sctx, fd, 5000, err, sizeof(err));
    ck_assert_msg(t != NULL, "accept: %s", err);
    coro_join(c);
    int rc = 0, i;
    for (i = 0; i < 1000 && rc == 0; i++)
        rc = coro_tls_write_all(t, chunk, sizeof(chunk), 5000);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "errno %d", errno);
    coro_tls_free(t);
    coro_close(fd);
    coro_close(lfd);
    coro_tls_ctx_free(sctx);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_non_tls_peer_and_hung_up_peer)
{
    unit_run(1, peer_gone_body, NULL);
}
END_TEST

START_TEST(test_bad_files_give_reasons)
{
    char err[256] = "";
    struct coro_tls_server_opts o = {.cert_file = P("missing.pem"), .key_file = P("srv.key")};
    ck_assert_ptr_null(coro_tls_server_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "missing.pem") != NULL, "reason: %s", err);
    o.cert_file = P("srv.pem");
    o.key_file = P("a.key");
    ck_assert_ptr_null(coro_tls_server_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "a.key") && strstr(err, "mismatch"), "reason: %s", err);
    o.key_file = P("srv.key");
    o.ciphers = "NO-SUCH-CIPHER";
    ck_assert_ptr_null(coro_tls_server_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "ciphers") != NULL, "reason: %s", err);
    ck_assert_ptr_null(coro_tls_client_new(P("missing-ca.pem"), 1, err, sizeof(err)));
    ck_assert_msg(strstr(err, "missing-ca.pem") != NULL, "reason: %s", err);
}
END_TEST

/* ---- timeouts and cancellation ------------------------------------------------- */

static void timeout_body(void *arg)
{
    char err[256] = "";
    int port, lfd = tcp_listen(&port);

    /* Client side: the kernel completes the TCP handshake from the backlog,
     * but nobody ever speaks TLS. */
    coro_tls_ctx_t *cctx = client_ctx();
    int fd = tcp_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_null(coro_tls_connect(cctx, fd, "localhost", 200, err, sizeof(err)));
    ck_assert_int_eq(errno, ETIMEDOUT);

    /* Server side: a client that connects and stays silent. */
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0);
    int sfd = coro_accept(lfd, NULL, NULL, 5000);
    ck_assert_int_ge(sfd, 0);
    ck_assert_ptr_null(coro_tls_accept(sctx, sfd, 200, err, sizeof(err)));
    ck_assert_int_eq(errno, ETIMEDOUT);

    coro_close(sfd);
    coro_close(fd);
    coro_close(lfd);
    coro_tls_ctx_free(sctx);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_handshake_timeout)
{
    unit_run(1, timeout_body, NULL);
}
END_TEST

struct cancel_test {
    coro_tls_t *t;
    chan_t *ready;
    ssize_t r;
    int err_no;
};

static void cancel_reader(void *arg)
{
    struct cancel_test *ct = arg;
    char buf[16];
    int one = 1;

    chan_send(ct->ready, &one);
    ct->r = coro_tls_read(ct->t, buf, sizeof(buf), -1);
    ct->err_no = errno;
}

static void cancel_body(void *arg)
{
    struct cancel_test *ct = arg;
    struct srv *s = &S;
    int port, fd, one;
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0), *cctx = client_ctx();

    srv_start(s, sctx, 1, &port);
    ct->t = dial(cctx, port, "localhost", &fd);
    ct->ready = chan_new(sizeof(int), 1);
    coro_t *c = coro_spawn(cancel_reader, ct);
    ck_assert_int_eq(chan_recv(ct->ready, &one), 0);
    coro_yield(); /* let it reach the read; cancellation works either way */
    coro_cancel(c);
    ck_assert_int_eq(coro_join(c), -1);
    hang_up(ct->t, fd);
    chan_free(ct->ready);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_cancel_blocked_read)
{
    struct cancel_test ct = {0};
    unit_run(1, cancel_body, &ct);
    srv_cleanup();
    ck_assert_int_eq(ct.r, -1);
    ck_assert_int_eq(ct.err_no, ECANCELED);
}
END_TEST

/* ---- end of stream ------------------------------------------------------------- */

/* Connect, then end the stream with close_notify or a bare TCP close. */
static void eof_client_run(void *arg)
{
    struct eof_client *ec = arg;
    char err[256];

    ec->fd = tcp_connect(ec->port);
    if (ec->fd < 0)
        return;
    ec->t = coro_tls_connect(ec->ctx, ec->fd, "localhost", 5000, err, sizeof(err));
    if (ec->t && ec->notify)
        coro_tls_shutdown(ec->t, 1000);
    else
        shutdown(ec->fd, SHUT_WR); /* a FIN, no close_notify */
    /* Close only once the server has: closing with its session tickets
     * unread would send a reset instead of an end of stream. */
    while (coro_read(ec->fd, err, sizeof(err), 5000) > 0)
        ;
    coro_tls_free(ec->t);
    coro_close(ec->fd);
}

static void eof_body(void *arg)
{
    char err[256] = "", buf[16];
    int port, lfd = tcp_listen(&port);
    coro_tls_ctx_t *sctx = server_ctx("srv", NULL, 0), *cctx = client_ctx();

    for (int notify = 1; notify >= 0; notify--) {
        struct eof_client ec = {.ctx = cctx, .port = port, .notify = notify};
        coro_t *c = coro_spawn(eof_client_run, &ec);
        int fd = coro_accept(lfd, NULL, NULL, 5000);
        ck_assert_int_ge(fd, 0);
        coro_tls_t *t = coro_tls_accept(sctx, fd, 5000, err, sizeof(err));
        ck_assert_msg(t != NULL, "accept: %s", err);
        ssize_t r = coro_tls_read(t, buf, sizeof(buf), 5000);
        ck_assert_msg(r == 0, "notify=%d: read %zd errno %d", notify, r, errno);
        ck_assert_int_eq(coro_join(c), 0);
        coro_tls_free(t);
        coro_close(fd);
    }
    coro_close(lfd);
    coro_tls_ctx_free(sctx);
    coro_tls_ctx_free(cctx);
}

START_TEST(test_read_returns_0_at_close_notify_and_eof)
{
    unit_run(1, eof_body, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");

    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_echo_200_connections_2_workers);
    tcase_add_test(tc, test_untrusted_server_cert_is_refused);
    tcase_add_test(tc, test_hostname_mismatch_is_refused);
    tcase_add_test(tc, test_sni_selects_certificate);
    tcase_add_test(tc, test_require_client_cert);
    tcase_add_test(tc, test_reload_swaps_certificate);
    tcase_add_test(tc, test_bad_files_give_reasons);
    tcase_add_test(tc, test_handshake_timeout);
    tcase_add_test(tc, test_cancel_blocked_read);
    tcase_add_test(tc, test_read_returns_0_at_close_notify_and_eof);
    tcase_add_test(tc, test_reload_races_with_handshakes);
    tcase_add_test(tc, test_non_tls_peer_and_hung_up_peer);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
