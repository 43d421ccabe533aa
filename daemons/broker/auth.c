/*
 * auth.c - who may connect: anonymous clients (globally and per listener:
 * a listener on a non-loopback address refuses them unless its section
 * says allow_anonymous = yes), the password file (coro passwd format,
 * PBKDF2-SHA512 checked off the workers), and loading the ACL file.
 * A reload that fails to read a file keeps the previous one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "coro/log.h"
#include "coro/offload.h"
#include "coro/passwd.h"

static struct {
    pthread_rwlock_t lock; /* guards pw: a reload swaps it */
    coro_passwd_file_t *pw;
    atomic_int global_anon;
} A = {PTHREAD_RWLOCK_INITIALIZER, NULL, 0};

int auth_load(const struct broker_conf *bc, char *err, size_t errlen)
{
    coro_passwd_file_t *pw = NULL;
    unsigned bad = 0;

    if (bc->auth.password_file) {
        pw = coro_passwd_file_load(bc->auth.password_file, &bad);
        if (!pw) {
            if (errno == EINVAL)
                snprintf(err, errlen, "password_file %s:%u: malformed line",
                         bc->auth.password_file, bad);
            else
                snprintf(err, errlen, "password_file %s: %s", bc->auth.password_file,
                         strerror(errno));
            return -1;
        }
    }
    if (bc->auth.acl_file) {
        if (acl_load(bc->auth.acl_file, err, errlen) < 0) {
            coro_passwd_file_free(pw);
            return -1;
        }
    } else {
        acl_clear();
    }
    pthread_rwlock_wrlock(&A.lock);
    coro_passwd_file_t *old = A.pw;
    A.pw = pw;
    pthread_rwlock_unlock(&A.lock);
    coro_passwd_file_free(old);
    atomic_store(&A.global_anon, bc->auth.allow_anonymous);
    return 0;
}

struct check {
    const char *user;
    char *pass;
    int result;
};

static void check_offloaded(void *arg)
{
    struct check *k = arg;
    pthread_rwlock_rdlock(&A.lock);
    k->result = A.pw ? coro_passwd_file_check(A.pw, k->user, k->pass) : 0;
    pthread_rwlock_unlock(&A.lock);
}

static bool anon_allowed(struct conn *c)
{
    int mode = atomic_load(&c->lst->allow_anon);
    return mode == ANON_YES || (mode == ANON_AUTO && atomic_load(&A.global_anon));
}

int auth_check(struct conn *c, const struct mqtt_connect *ck)
{
    if (!ck->has_username)
        return anon_allowed(c) ? MQTT_RC_ACCEPTED : MQTT_RC_NOT_AUTHORIZED;
    pthread_rwlock_rdlock(&A.lock);
    bool have_file = A.pw != NULL;
    pthread_rwlock_unlock(&A.lock);
    if (!have_file) /* no user list: a user name alone identifies (for ACLs) */
        return anon_allowed(c) ? MQTT_RC_ACCEPTED : MQTT_RC_NOT_AUTHORIZED;
    if (!ck->has_password)
        return MQTT_RC_BAD_USER_PASS;
    struct check k = {c->username, strndup((const char *)ck->password.p, ck->password.len), 0};
    if (!k.pass)
        return MQTT_RC_UNAVAILABLE;
    int rc = coro_offload(check_offloaded, &k);
    explicit_bzero(k.pass, ck->password.len);
    free(k.pass);
    if (rc < 0)
        return MQTT_RC_UNAVAILABLE;
    return k.result == 1 ? MQTT_RC_ACCEPTED : MQTT_RC_BAD_USER_PASS;
}
