/*
 * tls.c - OpenSSL TLS over coroutine I/O.
 *
 * The SSL object works on a non-blocking fd; whenever OpenSSL says
 * WANT_READ/WANT_WRITE the coroutine parks in coro_wait_fd() with what is
 * left of its timeout, so a handshake or a read never blocks the worker.
 *
 * A context keeps the file names it was made from and an immutable "set":
 * one SSL_CTX per certificate (the first is the default, the others are
 * chosen by SNI). Each connection holds a reference on the set it started
 * with; reload builds a whole new set from the files and swaps the pointer,
 * so established connections keep the old certificates and concurrent
 * accepts on other workers see either the old or the new set, never a mix.
 *
 * OpenSSL's error queue is per thread while coroutines share threads: every
 * SSL call is bracketed by ERR_clear_error() so a reason never leaks from
 * one connection into another's report. Not for: plain TCP, ALPN, session
 * tickets tuning (OpenSSL defaults).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/tls.h"
#include "runtime/runtime_int.h"

struct tls_cert {
    char *pattern;             /* SNI pattern, NULL for the default */
    char *cert_file, *key_file;
};

struct tls_entry {
    const char *pattern;       /* points into the ctx's tls_cert */
    SSL_CTX *ssl_ctx;
};

/* Immutable once published; freed when the last reference goes. */
struct tls_set {
    atomic_int refs;
    size_t n;
    struct tls_entry e[];
};

struct coro_tls_ctx {
    int server;
    struct coro_tls_server_opts o; /* strings owned */
    int verify;                /* client: verify the peer */
    struct tls_cert *certs;    /* server: [0] default; client: [0] own cert if any */
    size_t ncerts;
    pthread_mutex_t mu;        /* serialises add_sni/reload */
    atomic_int lock;           /* guards cur against a swap during acquire */
    struct tls_set *cur;
};

struct coro_tls {
    SSL *ssl;
    int fd;
    struct tls_set *set;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_ex_index = -1;
static BIO_METHOD *tls_bio_method;

/* ---- a socket BIO that never raises SIGPIPE ----------------------------- */

/* OpenSSL's socket BIO write()s, so a peer that hung up would kill the
 * process with SIGPIPE unless every program ignored it; send() with
 * MSG_NOSIGNAL turns that into EPIPE. */
static int bio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int bio_write(BIO *b, const char *buf, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = send(bio_fd(b), buf, (size_t)n, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_read(BIO *b, char *buf, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = recv(bio_fd(b), buf, (size_t)n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    if (r == 0) /* BIO_eof(): lets SSL_OP_IGNORE_UNEXPECTED_EOF see a clean EOF */
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = bio_fd(b);
        return bio_fd(b);
    default:
        return 0;
    }
}

static void tls_init_once(void)
{
    tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                     BIO_TYPE_DESCRIPTOR, "coro socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        tls_bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- errors ---------------------------------------------------------- */

/* "prefix: reason" from the first queued OpenSSL error (the most specific
 * one), then empty the queue. */
static void tls_err(char *err, size_t errlen, const char *prefix)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (!r) {
        if (e)
            ERR_error_string_n(e, buf, sizeof(buf));
        else
            snprintf(buf, sizeof(buf), "unknown error");
        r = buf;
    }
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", prefix, r);
    ERR_clear_error();
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* ---- sets -------------------------------------------------------------- */

static void set_unref(struct tls_set *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        SSL_CTX_free(s->e[i].ssl_ctx);
    free(s);
}

static struct tls_set *ctx_acquire(coro_tls_ctx_t *ctx)
{
    coro__spin_lock(&ctx->lock);
    struct tls_set *s = ctx->cur;
    atomic_fetch_add(&s->refs, 1);
    coro__spin_unlock(&ctx->lock);
    return s;
}

static void ctx_publish(coro_tls_ctx_t *ctx, struct tls_set *s)
{
    coro__spin_lock(&ctx->lock);
    struct tls_set *old = ctx->cur;
    ctx->cur = s;
    coro__spin_unlock(&ctx->lock);
    set_unref(old);
}

/* Does the SNI name match pattern ("host" or "*.domain", one label)? */
static int sni_match(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) != 0)
        return strcasecmp(pattern, name) == 0;
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

static SSL_CTX *sni_find(const struct tls_set *s, const char *name)
{
    for (int wild = 0; wild < 2; wild++)
        for (size_t i = 1; i < s->n; i++) {
            const char *p = s->e[i].pattern;
            if ((strncmp(p, "*.", 2) == 0) == wild && sni_match(p, name))
                return s->e[i].ssl_ctx;
        }
    return NULL;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    coro_tls_t *t = SSL_get_ex_data(ssl, tls_ex_index);

    if (!name || !t)
        return SSL_TLSEXT_ERR_OK;
    SSL_CTX *c = sni_find(t->set, name);
    if (c && c != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, c);
    return SSL_TLSEXT_ERR_OK;
}

/* ---- building SSL_CTXs from files ---------------------------------------- */

static int load_pair(SSL_CTX *c, const char *cert, const char *key, char *err, size_t errlen)
{
    char pfx[512];

    snprintf(pfx, sizeof(pfx), "cert %s", cert);
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1)
        goto fail;
    snprintf(pfx, sizeof(pfx), "key %s", key);
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
        goto fail;
    snprintf(pfx, sizeof(pfx), "key %s does not match cert %s", key, cert);
    if (SSL_CTX_check_private_key(c) != 1)
        goto fail;
    return 0;
fail:
    tls_err(err, errlen, pfx);
    return -1;
}

static int setup_common(coro_tls_ctx_t *ctx, SSL_CTX *c, char *err, size_t errlen)
{
    int minv = ctx->o.min_version ? ctx->o.min_version : TLS1_2_VERSION;
    char pfx[512];

    if (SSL_CTX_set_min_proto_version(c, minv) != 1) {
        tls_err(err, errlen, "min_version");
        return -1;
    }
    /* A peer closing the TCP connection without close_notify reads as EOF. */
    SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ctx->o.ciphers && SSL_CTX_set_cipher_list(c, ctx->o.ciphers) != 1) {
        snprintf(pfx, sizeof(pfx), "ciphers \"%s\"", ctx->o.ciphers);
        tls_err(err, errlen, pfx);
        return -1;
    }
    return 0;
}

static int setup_verify(coro_tls_ctx_t *ctx, SSL_CTX *c, char *err, size_t errlen)
{
    char pfx[512];
    const char *ca = ctx->o.ca_file;

    if (ctx->server) {
        static const unsigned char sid[] = "coro";
        SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1);
        if (!ca)
            return 0;
    } else if (!ca) {
        if (SSL_CTX_set_default_verify_paths(c) != 1) {
            tls_err(err, errlen, "system CA store");
            return -1;
        }
    }
    if (ca && SSL_CTX_load_verify_locations(c, ca, NULL) != 1) {
        snprintf(pfx, sizeof(pfx), "ca %s", ca);
        tls_err(err, errlen, pfx);
        return -1;
    }
    if (ctx->server) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names)
            SSL_CTX_set_client_CA_list(c, names);
        int mode = SSL_VERIFY_PEER;
        if (ctx->o.require_client_cert)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(c, mode, NULL);
    } else {
        SSL_CTX_set_verify(c, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    }
    return 0;
}

static SSL_CTX *build_one(coro_tls_ctx_t *ctx, const struct tls_cert *tc, char *err,
                          size_t errlen)
{
    SSL_CTX *c = SSL_CTX_new(ctx->server ? TLS_server_method() : TLS_client_method());

    if (!c) {
        tls_err(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    if (setup_common(ctx, c, err, errlen) < 0 || setup_verify(ctx, c, err, errlen) < 0)
        goto fail;
    if (tc && load_pair(c, tc->cert_file, tc->key_file, err, errlen) < 0)
        goto fail;
    if (ctx->server)
        SSL_CTX_set_tlsext_servername_callback(c, sni_cb);
    return c;
fail:
    SSL_CTX_free(c);
    return NULL;
}

static struct tls_set *set_new(size_t n)
{
    struct tls_set *s = calloc(1, sizeof(*s) + n * sizeof(s->e[0]));

    if (s)
        atomic_init(&s->refs, 1);
    return s;
}

/* A fresh set from every file the context names. NULL + err. */
static struct tls_set *build_set(coro_tls_ctx_t *ctx, char *err, size_t errlen)
{
    size_t n = ctx->server ? ctx->ncerts : 1;
    struct tls_set *s = set_new(n);

    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tls_cert *tc = i < ctx->ncerts ? &ctx->certs[i] : NULL;
        s->e[i].ssl_ctx = build_one(ctx, tc, err, errlen);
        if (!s->e[i].ssl_ctx)
            goto fail;
        s->e[i].pattern = tc ? tc->pattern : NULL;
        s->n = i + 1;
    }
    return s;
fail:
    set_unref(s);
    errno = EINVAL;
    return NULL;
}

/* ---- contexts ------------------------------------------------------------ */

static void cert_fini(struct tls_cert *tc)
{
    free(tc->pattern);
    free(tc->cert_file);
    free(tc->key_file);
}

static int cert_push(coro_tls_ctx_t *ctx, const char *pattern, const char *cert,
                     const char *key)
{
    struct tls_cert *v = realloc(ctx->certs, (ctx->ncerts + 1) * sizeof(*v));

    if (!v)
        return -1;
    ctx->certs = v;
    struct tls_cert *tc = &v[ctx->ncerts];
    tc->pattern = pattern ? strdup(pattern) : NULL;
    tc->cert_file = strdup(cert);
    tc->key_file = strdup(key);
    if ((pattern && !tc->pattern) || !tc->cert_file || !tc->key_file) {
        cert_fini(tc);
        return -1;
    }
    ctx->ncerts++;
    return 0;
}

static coro_tls_ctx_t *ctx_alloc(int server)
{
    pthread_once(&tls_once, tls_init_once);
    coro_tls_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->server = server;
    pthread_mutex_init(&ctx->mu, NULL);
    return ctx;
}

static int dup_opt(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

coro_tls_ctx_t *coro_tls_server_new(const struct coro_tls_server_opts *o, char *err,
                                    size_t errlen)
{
    coro_tls_ctx_t *ctx = NULL;

    if (!o || !o->cert_file || !o->key_file) {
        set_err(err, errlen, "cert_file and key_file are required");
        errno = EINVAL;
        return NULL;
    }
    if (!(ctx = ctx_alloc(1)))
        goto nomem;
    ctx->o = *o;
    ctx->o.cert_file = ctx->o.key_file = NULL;
    if (dup_opt((char **)&ctx->o.ca_file, o->ca_file) < 0 ||
        dup_opt((char **)&ctx->o.ciphers, o->ciphers) < 0 ||
        cert_push(ctx, NULL, o->cert_file, o->key_file) < 0)
        goto nomem;
    if (!(ctx->cur = build_set(ctx, err, errlen)))
        goto fail;
    return ctx;
nomem:
    set_err(err, errlen, "out of memory");
    errno = ENOMEM;
fail:
    if (ctx) {
        int e = errno;
        coro_tls_ctx_free(ctx);
        errno = e;
    }
    return NULL;
}

coro_tls_ctx_t *coro_tls_client_new(const char *ca_file, int verify, char *err, size_t errlen)
{
    coro_tls_ctx_t *ctx = ctx_alloc(0);

    if (!ctx || dup_opt((char **)&ctx->o.ca_file, ca_file) < 0) {
        set_err(err, errlen, "out of memory");
        errno = ENOMEM;
        goto fail;
    }
    ctx->verify = verify;
    if (!(ctx->cur = build_set(ctx, err, errlen)))
        goto fail;
    return ctx;
fail:
    if (ctx) {
        int e = errno;
        coro_tls_ctx_free(ctx);
        errno = e;
    }
    return NULL;
}

int coro_tls_client_set_cert(coro_tls_ctx_t *ctx, const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    int rc = -1;

    pthread_mutex_lock(&ctx->mu);
    struct tls_cert saved = ctx->ncerts ? ctx->certs[0] : (struct tls_cert){0};
    size_t saved_n = ctx->ncerts;
    ctx->ncerts = 0;
    if (ctx->server || cert_push(ctx, NULL, cert_file, key_file) < 0) {
        set_err(err, errlen, ctx->server ? "not a client context" : "out of memory");
        errno = ctx->server ? EINVAL : ENOMEM;
        goto restore;
    }
    struct tls_set *s = build_set(ctx, err, errlen);
    if (!s) {
        cert_fini(&ctx->certs[0]);
        goto restore;
    }
    if (saved_n)
        cert_fini(&saved);
    ctx_publish(ctx, s);
    rc = 0;
    goto out;
restore:
    if (saved_n)
        ctx->certs[0] = saved;
    ctx->ncerts = saved_n;
out:
    pthread_mutex_unlock(&ctx->mu);
    return rc;
}

int coro_tls_server_add_sni(coro_tls_ctx_t *ctx, const char *pattern, const char *cert_file,
                            const char *key_file, char *err, size_t errlen)
{
    int rc = -1;

    if (!ctx->server || !pattern || !*pattern || !cert_file || !key_file) {
        set_err(err, errlen, "add_sni: needs a server context, a pattern, cert and key");
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&ctx->mu);
    if (cert_push(ctx, pattern, cert_file, key_file) < 0) {
        set_err(err, errlen, "out of memory");
        errno = ENOMEM;
        goto out;
    }
    struct tls_cert *tc = &ctx->certs[ctx->ncerts - 1];
    SSL_CTX *c = build_one(ctx, tc, err, errlen);
    struct tls_set *old = ctx->cur, *s = c ? set_new(old->n + 1) : NULL;
    if (!s) {
        if (c)
            set_err(err, errlen, "out of memory");
        SSL_CTX_free(c);
        cert_fini(tc);
        ctx->ncerts--;
        errno = c ? ENOMEM : EINVAL;
        goto out;
    }
    /* Share the unchanged SSL_CTXs with the old set: no file is re-read. */
    for (size_t i = 0; i < old->n; i++) {
        SSL_CTX_up_ref(old->e[i].ssl_ctx);
        s->e[i] = old->e[i];
    }
    s->e[old->n] = (struct tls_entry){tc->pattern, c};
    s->n = old->n + 1;
    ctx_publish(ctx, s);
    rc = 0;
out:
    pthread_mutex_unlock(&ctx->mu);
    return rc;
}

int coro_tls_ctx_reload(coro_tls_ctx_t *ctx, char *err, size_t errlen)
{
    pthread_mutex_lock(&ctx->mu);
    struct tls_set *s = build_set(ctx, err, errlen);
    if (s)
        ctx_publish(ctx, s);
    pthread_mutex_unlock(&ctx->mu);
    return s ? 0 : -1;
}

void coro_tls_ctx_free(coro_tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    set_unref(ctx->cur);
    for (size_t i = 0; i < ctx->ncerts; i++)
        cert_fini(&ctx->certs[i]);
    free(ctx->certs);
    free((char *)ctx->o.ca_file);
    free((char *)ctx->o.ciphers);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
}

/* ---- connections ------------------------------------------------------------ */

static int64_t remaining(int64_t timeout_ms, uint64_t start)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t el = coro_now_ms() - start;
    return el >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int64_t)el;
}

/*
 * Run op until it completes, parking on WANT_READ/WANT_WRITE. Returns op's
 * positive result, 0 for a clean close (ZERO_RETURN), or -1 with errno and
 * (when err) a reason.
 */
typedef int (*ssl_op)(SSL *ssl, void *buf, size_t n, size_t *done);

static int ssl_wait(coro_tls_t *t, int e, int64_t timeout_ms, uint64_t start)
{
    int64_t left = remaining(timeout_ms, start);

    if (left == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return coro_wait_fd(t->fd, e == SSL_ERROR_WANT_READ ? CORO_READ : CORO_WRITE, left) < 0 ? -1
                                                                                            : 0;
}

/* Map a failed SSL call's error to errno and a reason; empties the queue. */
static void ssl_fail(coro_tls_t *t, int e, int saved_errno, char *err, size_t errlen)
{
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        errno = saved_errno ? saved_errno : ECONNRESET;
        if (err && errlen)
            snprintf(err, errlen, "tls: %s", strerror(errno));
        ERR_clear_error();
        return;
    }
    long vr = SSL_get_verify_result(t->ssl);
    if ((SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) && vr != X509_V_OK && err && errlen) {
        char pfx[256];
        snprintf(pfx, sizeof(pfx), "tls handshake: certificate verify failed (%s)",
                 X509_verify_cert_error_string(vr));
        set_err(err, errlen, pfx);
        ERR_clear_error();
    } else {
        tls_err(err, errlen, "tls");
    }
    errno = EPROTO;
}

static int ssl_run(coro_tls_t *t, ssl_op op, void *buf, size_t n, size_t *done,
                   int64_t timeout_ms, char *err, size_t errlen)
{
    uint64_t start = coro_now_ms();

    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = op(t->ssl, buf, n, done);
        if (r > 0)
            return 1;
        int saved = errno;
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            if (ssl_wait(t, e, timeout_ms, start) < 0) {
                if (err && errlen)
                    snprintf(err, errlen, "tls: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        ssl_fail(t, e, saved, err, errlen);
        return -1;
    }
}

static int op_handshake(SSL *ssl, void *buf, size_t n, size_t *done)
{
    return SSL_do_handshake(ssl);
}

static int op_read(SSL *ssl, void *buf, size_t n, size_t *done)
{
    return SSL_read_ex(ssl, buf, n, done);
}

static int op_write(SSL *ssl, void *buf, size_t n, size_t *done)
{
    return SSL_write_ex(ssl, buf, n, done);
}

static coro_tls_t *tls_new(coro_tls_ctx_t *ctx, int fd, char *err, size_t errlen)
{
    coro_tls_t *t = calloc(1, sizeof(*t));

    if (!t)
        goto nomem;
    t->fd = fd;
    t->set = ctx_acquire(ctx);
    ERR_clear_error();
    if (!(t->ssl = SSL_new(t->set->e[0].ssl_ctx)))
        goto nomem;
    BIO *bio = tls_bio_method ? BIO_new(tls_bio_method) : NULL;
    if (!bio)
        goto nomem;
    BIO_set_data(bio, (void *)(intptr_t)fd);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio);
    if (SSL_set_ex_data(t->ssl, tls_ex_index, t) != 1)
        goto nomem;
    return t;
nomem:
    set_err(err, errlen, "tls: out of memory");
    coro_tls_free(t);
    ERR_clear_error();
    errno = ENOMEM;
    return NULL;
}

static coro_tls_t *handshake(coro_tls_t *t, int64_t timeout_ms, char *err, size_t errlen)
{
    int r = ssl_run(t, op_handshake, NULL, 0, NULL, timeout_ms, err, errlen);

    if (r > 0)
        return t;
    if (r == 0) {
        /* close_notify during a handshake is the peer giving up: a TLS failure. */
        set_err(err, errlen, "tls handshake: peer closed the connection");
        errno = EPROTO;
    }
    coro_tls_free(t); /* keeps errno */
    return NULL;
}

coro_tls_t *coro_tls_accept(coro_tls_ctx_t *ctx, int fd, int64_t timeout_ms, char *err,
                            size_t errlen)
{
    coro_tls_t *t = tls_new(ctx, fd, err, errlen);

    if (!t)
        return NULL;
    SSL_set_accept_state(t->ssl);
    return handshake(t, timeout_ms, err, errlen);
}

coro_tls_t *coro_tls_connect(coro_tls_ctx_t *ctx, int fd, const char *servername,
                             int64_t timeout_ms, char *err, size_t errlen)
{
    coro_tls_t *t = tls_new(ctx, fd, err, errlen);

    if (!t)
        return NULL;
    SSL_set_connect_state(t->ssl);
    if (servername && *servername) {
        ERR_clear_error();
        if (SSL_set_tlsext_host_name(t->ssl, servername) != 1 ||
            SSL_set1_host(t->ssl, servername) != 1) {
            tls_err(err, errlen, "tls servername");
            coro_tls_free(t);
            errno = EINVAL;
            return NULL;
        }
    }
    return handshake(t, timeout_ms, err, errlen);
}

ssize_t coro_tls_read(coro_tls_t *t, void *buf, size_t n, int64_t timeout_ms)
{
    size_t done = 0;

    if (n == 0)
        return 0;
    int r = ssl_run(t, op_read, buf, n, &done, timeout_ms, NULL, 0);

    return r < 0 ? -1 : r == 0 ? 0 : (ssize_t)done;
}

ssize_t coro_tls_write(coro_tls_t *t, const void *buf, size_t n, int64_t timeout_ms)
{
    size_t done = 0;

    if (n == 0)
        return 0;
    int r = ssl_run(t, op_write, (void *)buf, n, &done, timeout_ms, NULL, 0);
    if (r == 0) {
        errno = EPIPE; /* the peer sent close_notify: it reads no more */
        return -1;
    }
    return r < 0 ? -1 : (ssize_t)done;
}

int coro_tls_write_all(coro_tls_t *t, const void *buf, size_t n, int64_t timeout_ms)
{
    const char *p = buf;
    uint64_t start = coro_now_ms();

    while (n > 0) {
        int64_t left = remaining(timeout_ms, start);
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t w = coro_tls_write(t, p, n, left);
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int op_shutdown(SSL *ssl, void *buf, size_t n, size_t *done)
{
    int r = SSL_shutdown(ssl);
    /* 0: our close_notify is sent; we do not wait for the peer's. */
    return r == 0 ? 1 : r;
}

int coro_tls_shutdown(coro_tls_t *t, int64_t timeout_ms)
{
    return ssl_run(t, op_shutdown, NULL, 0, NULL, timeout_ms, NULL, 0) < 0 ? -1 : 0;
}

void coro_tls_free(coro_tls_t *t)
{
    if (!t)
        return;
    int e = errno;
    SSL_free(t->ssl);
    set_unref(t->set);
    free(t);
    ERR_clear_error();
    errno = e;
}

int coro_tls_fd(const coro_tls_t *t)
{
    return t->fd;
}

SSL *coro_tls_ssl(coro_tls_t *t)
{
    return t->ssl;
}

const char *coro_tls_servername(const coro_tls_t *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

int coro_tls_peer_cn(const coro_tls_t *t, char *buf, size_t len)
{
    X509 *peer = SSL_get0_peer_certificate(t->ssl);

    if (!peer || SSL_get_verify_result(t->ssl) != X509_V_OK || len == 0) {
        errno = ENOENT;
        return -1;
    }
    X509_NAME *subj = X509_get_subject_name(peer);
    if (X509_NAME_get_text_by_NID(subj, NID_commonName, buf, (int)(len > INT32_MAX ? INT32_MAX
                                                                                  : len)) < 0) {
        ERR_clear_error();
        errno = ENOENT;
        return -1;
    }
    return 0;
}
