/*
 * passwd.h - password hashes and password files for the broker's users,
 * compatible in shape with mosquitto_passwd(1):
 *
 *   user:$7$<iterations>$<base64 salt>$<base64 hash>
 *
 * $7$ is PBKDF2-HMAC-SHA512 (OpenSSL PKCS5_PBKDF2_HMAC) with a 16-byte
 * random salt and a 64-byte hash; new hashes use CORO_PASSWD_ITERATIONS
 * (210,000: OWASP's 2023 figure for PBKDF2-SHA512). Hashing is deliberately
 * slow (~0.1-0.3 s of CPU): daemons call it through coro_offload().
 * Not for: transport security, ACLs (the broker's), other hash schemes.
 * Every function here is thread-safe on distinct objects.
 */
#ifndef CORO_PASSWD_H
#define CORO_PASSWD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORO_PASSWD_ITERATIONS 210000u
/* Largest iteration count accepted from a file (bounds the CPU a crafted
 * line can cost a verifier). */
#define CORO_PASSWD_MAX_ITERATIONS 10000000u
/* Room for an encoded hash: "$7$" + count + "$" + 24 + "$" + 88 + NUL. */
#define CORO_PASSWD_ENCODED_MAX 136

/* Hash password with a fresh random salt into out ("$7$..."). iterations 0
 * = CORO_PASSWD_ITERATIONS. 0, or -1 with EINVAL (iterations above the
 * max), ENOSPC (out too small), EIO (OpenSSL failed). */
int coro_passwd_hash(const char *password, unsigned iterations, char *out, size_t outlen);
/* 1 when password matches encoded, 0 when not, -1/EINVAL when encoded is
 * not a $7$ hash this code reads. The comparison is constant-time. */
int coro_passwd_verify(const char *password, const char *encoded);

/* A password file in memory: users in file order, no duplicates. Comment
 * (#) and blank lines are skipped on load and not written back. */
typedef struct coro_passwd_file coro_passwd_file_t;

coro_passwd_file_t *coro_passwd_file_new(void);
/* Load path: NULL with errno from open/read, ENOMEM, or EINVAL for a
 * malformed line (its number in *bad_line when bad_line is not NULL). */
coro_passwd_file_t *coro_passwd_file_load(const char *path, unsigned *bad_line);
void coro_passwd_file_free(coro_passwd_file_t *f);
size_t coro_passwd_file_count(const coro_passwd_file_t *f);
/* The user's encoded hash, or NULL. Owned by f until the next change. */
const char *coro_passwd_file_find(const coro_passwd_file_t *f, const char *user);
/* Add or replace user. -1/EINVAL for a bad user name (empty, ':' or
 * control characters) or a hash that is not $7$; ENOMEM. */
int coro_passwd_file_set(coro_passwd_file_t *f, const char *user, const char *encoded);
/* Remove user: 0, or -1/ENOENT. */
int coro_passwd_file_delete(coro_passwd_file_t *f, const char *user);
/* Write f to path atomically: a temp file in the same directory, fsync,
 * rename. An existing file's owner, group and mode are kept (a save that
 * cannot keep them, e.g. EPERM for another user's file, fails and leaves
 * the old file); a new file is mode 0600, owned by the caller. 0, or -1
 * with the errno of the failing call. */
int coro_passwd_file_save(const coro_passwd_file_t *f, const char *path);
/* Verify user's password: 1 match, 0 no match or no such user (an unknown
 * user costs one hash too, so timing does not tell users apart), -1 on a
 * malformed stored hash. */
int coro_passwd_file_check(const coro_passwd_file_t *f, const char *user, const char *password);

#ifdef __cplusplus
}
#endif
#endif
