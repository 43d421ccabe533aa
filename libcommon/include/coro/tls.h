/*
 * tls.h - OpenSSL TLS over coroutine I/O: the handshake, reads and writes
 * park the coroutine on WANT_READ/WANT_WRITE instead of blocking.
 *
 * A context (coro_tls_ctx_t) holds certificates and settings and is shared
 * by many connections; it is reference counted, so coro_tls_ctx_reload()
 * can swap in new certificates while established connections keep theirs.
 * Library calls never print: errors come back as a reason in err.
 */
#ifndef CORO_TLS_H
#define CORO_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coro_tls_ctx coro_tls_ctx_t;
typedef struct coro_tls coro_tls_t;

struct coro_tls_server_opts {
    const char *cert_file;     /* PEM chain, required */
    const char *key_file;      /* PEM key, required */
    const char *ca_file;       /* CAs for client certificates, or NULL */
    int require_client_cert;   /* with ca_file: refuse clients without one */
    const char *ciphers;       /* TLS 1.2 cipher list, NULL = OpenSSL default */
    int min_version;           /* TLS1_2_VERSION (default when 0) or TLS1_3_VERSION */
};

/* NULL with a reason in err ("cert /etc/x.pem: No such file or directory"). */
coro_tls_ctx_t *coro_tls_server_new(const struct coro_tls_server_opts *o, char *err, size_t errlen);
/* Serve another certificate for SNI names matching pattern ("example.org",
 * "*.example.org"); the first certificate is the default. 0 or -1 + err. */
int coro_tls_server_add_sni(coro_tls_ctx_t *ctx, const char *pattern, const char *cert_file,
                            const char *key_file, char *err, size_t errlen);
/* Re-read every certificate/key/CA file. On error nothing changes. Thread-safe
 * against concurrent accepts. 0 or -1 + err. Reads files with blocking I/O
 * (as do the constructors): call at startup, on reload, or via coro_offload. */
int coro_tls_ctx_reload(coro_tls_ctx_t *ctx, char *err, size_t errlen);

/* Client context: ca_file NULL = system store; verify 0 disables peer
 * verification (tests only). */
coro_tls_ctx_t *coro_tls_client_new(const char *ca_file, int verify, char *err, size_t errlen);
/* Present a client certificate (mutual TLS). Re-read by coro_tls_ctx_reload;
 * connections already made keep the old one. 0 or -1 + err. */
int coro_tls_client_set_cert(coro_tls_ctx_t *ctx, const char *cert_file, const char *key_file,
                             char *err, size_t errlen);
void coro_tls_ctx_free(coro_tls_ctx_t *ctx);

/* Handshake on a connected non-blocking fd (not owned). NULL with errno
 * (ETIMEDOUT, ECANCELED, EPROTO for a TLS failure) and a reason in err. */
coro_tls_t *coro_tls_accept(coro_tls_ctx_t *ctx, int fd, int64_t timeout_ms, char *err, size_t errlen);
/* servername: SNI and the name verified against the certificate (NULL: none). */
coro_tls_t *coro_tls_connect(coro_tls_ctx_t *ctx, int fd, const char *servername,
                             int64_t timeout_ms, char *err, size_t errlen);

/* Reads, writes and shutdown: coroutine only, may yield; -1 with ETIMEDOUT,
 * ECANCELED, EPROTO (TLS error), or the socket's errno (EPIPE, ECONNRESET;
 * never SIGPIPE). A session is used by one coroutine at a time. */
ssize_t coro_tls_read(coro_tls_t *t, void *buf, size_t n, int64_t timeout_ms); /* 0 at close_notify/EOF */
ssize_t coro_tls_write(coro_tls_t *t, const void *buf, size_t n, int64_t timeout_ms);
int coro_tls_write_all(coro_tls_t *t, const void *buf, size_t n, int64_t timeout_ms);
/* Send close_notify (best effort within timeout). */
int coro_tls_shutdown(coro_tls_t *t, int64_t timeout_ms);
/* Free the session; does not close the fd. */
void coro_tls_free(coro_tls_t *t);

int coro_tls_fd(const coro_tls_t *t);
SSL *coro_tls_ssl(coro_tls_t *t);
/* SNI name the client asked for, or NULL. */
const char *coro_tls_servername(const coro_tls_t *t);
/* Subject CN of the verified peer certificate into buf; -1 when none. */
int coro_tls_peer_cn(const coro_tls_t *t, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
