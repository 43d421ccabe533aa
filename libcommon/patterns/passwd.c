/*
 * passwd.c - PBKDF2-SHA512 password hashes ($7$, as mosquitto) and the
 * user:hash password file: load, edit in memory, save atomically. It does
 * not prompt, print or decide policy; `coro passwd` and the broker do.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "coro/passwd.h"

#define SALT_LEN 16
#define HASH_LEN 64

struct pw_entry {
    char *user, *hash;
};

struct coro_passwd_file {
    struct pw_entry *v;
    size_t n, cap;
};

static int pbkdf2(const char *pw, const unsigned char *salt, size_t saltlen, unsigned iter,
                  unsigned char *out, size_t outlen)
{
    if (!PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)saltlen, (int)iter, EVP_sha512(),
                           (int)outlen, out)) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int coro_passwd_hash(const char *password, unsigned iterations, char *out, size_t outlen)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    char salt64[4 * ((SALT_LEN + 2) / 3) + 1], hash64[4 * ((HASH_LEN + 2) / 3) + 1];
    if (iterations == 0)
        iterations = CORO_PASSWD_ITERATIONS;
    if (iterations > CORO_PASSWD_MAX_ITERATIONS) {
        errno = EINVAL;
        return -1;
    }
    if (RAND_bytes(salt, sizeof salt) != 1) {
        errno = EIO;
        return -1;
    }
    if (pbkdf2(password, salt, sizeof salt, iterations, hash, sizeof hash) < 0)
        return -1;
    EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof salt);
    EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof hash);
    OPENSSL_cleanse(hash, sizeof hash);
    int n = snprintf(out, outlen, "$7$%u$%s$%s", iterations, salt64, hash64);
    if (n < 0 || (size_t)n >= outlen) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

/* Decode base64 (with padding) of at most cap bytes: length, or -1. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    unsigned char tmp[128];
    if (len == 0 || len % 4 || len / 4 * 3 > sizeof tmp)
        return -1;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    n -= (s[len - 1] == '=') + (s[len - 2] == '=');
    if (n <= 0 || (size_t)n > cap)
        return -1;
    memcpy(out, tmp, (size_t)n);
    return n;
}

struct parsed {
    unsigned iter;
    unsigned char salt[64], hash[HASH_LEN];
    int saltlen, hashlen;
};

static int parse_encoded(const char *enc, struct parsed *p)
{
    if (strncmp(enc, "$7$", 3))
        return -1;
    char *end;
    errno = 0;
    unsigned long it = strtoul(enc + 3, &end, 10);
    if (errno || end == enc + 3 || *end != '$' || it == 0 || it > CORO_PASSWD_MAX_ITERATIONS)
        return -1;
    const char *salt = end + 1, *dollar = strchr(salt, '$');
    if (!dollar)
        return -1;
    p->iter = (unsigned)it;
    p->saltlen = b64_decode(salt, (size_t)(dollar - salt), p->salt, sizeof p->salt);
    p->hashlen = b64_decode(dollar + 1, strlen(dollar + 1), p->hash, sizeof p->hash);
    return p->saltlen > 0 && p->hashlen > 0 ? 0 : -1;
}

int coro_passwd_verify(const char *password, const char *encoded)
{
    struct parsed p;
    unsigned char got[HASH_LEN];
    if (parse_encoded(encoded, &p) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (pbkdf2(password, p.salt, (size_t)p.saltlen, p.iter, got, (size_t)p.hashlen) < 0)
        return -1;
    int ok = CRYPTO_memcmp(got, p.hash, (size_t)p.hashlen) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

/* ---- the file ---- */

static int user_ok(const char *u)
{
    if (!*u)
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p == ':' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int hash_ok(const char *h)
{
    struct parsed p;
    for (const unsigned char *c = (const unsigned char *)h; *c; c++)
        if (*c <= 0x20 || *c == 0x7f)
            return 0;
    return parse_encoded(h, &p) == 0;
}

coro_passwd_file_t *coro_passwd_file_new(void)
{
    return calloc(1, sizeof(coro_passwd_file_t));
}

void coro_passwd_file_free(coro_passwd_file_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].user);
        free(f->v[i].hash);
    }
    free(f->v);
    free(f);
}

size_t coro_passwd_file_count(const coro_passwd_file_t *f)
{
    return f->n;
}

static struct pw_entry *find(const coro_passwd_file_t *f, const char *user)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].user, user))
            return &f->v[i];
    return NULL;
}

const char *coro_passwd_file_find(const coro_passwd_file_t *f, const char *user)
{
    struct pw_entry *e = find(f, user);
    return e ? e->hash : NULL;
}

int coro_passwd_file_set(coro_passwd_file_t *f, const char *user, const char *encoded)
{
    if (!user_ok(user) || !hash_ok(encoded)) {
        errno = EINVAL;
        return -1;
    }
    char *h = strdup(encoded);
    if (!h)
        return -1;
    struct pw_entry *e = find(f, user);
    if (e) {
        free(e->hash);
        e->hash = h;
        return 0;
    }
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        struct pw_entry *v = realloc(f->v, ncap * sizeof *v);
        if (!v)
            goto fail;
        f->v = v;
        f->cap = ncap;
    }
    if (!(f->v[f->n].user = strdup(user)))
        goto fail;
    f->v[f->n++].hash = h;
    return 0;
fail:
    free(h);
    errno = ENOMEM;
    return -1;
}

int coro_passwd_file_delete(coro_passwd_file_t *f, const char *user)
{
    struct pw_entry *e = find(f, user);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    free(e->user);
    free(e->hash);
    memmove(e, e + 1, (size_t)(f->v + f->n - (e + 1)) * sizeof *e);
    f->n--;
    return 0;
}

/* One line of the file into f: 0, 1 to skip, -1 malformed/ENOMEM. */
static int load_line(coro_passwd_file_t *f, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
        return 1;
    char *colon = strchr(line, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    if (find(f, line))
        return -1; /* a duplicate would make the file mean two things */
    return coro_passwd_file_set(f, line, colon + 1);
}

coro_passwd_file_t *coro_passwd_file_load(const char *path, unsigned *bad_line)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    coro_passwd_file_t *f = NULL;
    FILE *fp = fopen(path, "re");
    if (!fp)
        return NULL;
    if (!(f = coro_passwd_file_new()))
        goto fail;
    while (getline(&line, &cap, fp) >= 0) {
        lineno++;
        if (load_line(f, line) < 0) {
            if (bad_line)
                *bad_line = lineno;
            errno = errno == ENOMEM ? ENOMEM : EINVAL;
            goto fail;
        }
    }
    if (ferror(fp))
        goto fail;
    free(line);
    fclose(fp);
    return f;
fail:;
    int e = errno;
    free(line);
    fclose(fp);
    coro_passwd_file_free(f);
    errno = e;
    return NULL;
}

static int write_all(int fd, const coro_passwd_file_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (dprintf(fd, "%s:%s\n", f->v[i].user, f->v[i].hash) < 0)
            return -1;
    return 0;
}

/* The replacement gets the old file's owner, group and mode: a file an
 * admin made root:coro-broker 0640 so the daemon can read it must stay so
 * after `coro passwd`, or the next reload fails (the ngIRCd/tinyproxy bug).
 * Owner first: chown may clear set-id bits that the mode then restores.
 * A new file is 0600, owned by the caller. */
static int keep_owner_and_mode(int fd, const char *path)
{
    struct stat old, cur;
    if (stat(path, &old) < 0)
        return errno == ENOENT ? fchmod(fd, 0600) : -1;
    if (fstat(fd, &cur) < 0)
        return -1;
    if ((old.st_uid != cur.st_uid || old.st_gid != cur.st_gid) &&
        fchown(fd, old.st_uid, old.st_gid) < 0)
        return -1;
    return fchmod(fd, old.st_mode & 07777);
}

int coro_passwd_file_save(const coro_passwd_file_t *f, const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0)
        return -1;
    if (keep_owner_and_mode(fd, path) < 0 || write_all(fd, f) < 0 || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return -1;
}

int coro_passwd_file_check(const coro_passwd_file_t *f, const char *user, const char *password)
{
    /* A fixed dummy hash with the default cost, so a missing user takes
     * as long as a wrong password. */
    static const char dummy[] = "$7$210000$AAAAAAAAAAAAAAAAAAAAAA==$"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const char *h = coro_passwd_file_find(f, user);
    if (!h) {
        (void)coro_passwd_verify(password, dummy);
        return 0;
    }
    return coro_passwd_verify(password, h);
}
