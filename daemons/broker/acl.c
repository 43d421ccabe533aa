/*
 * acl.c - topic access rules in mosquitto's acl_file syntax:
 *
 *     topic read $SYS/#          rules before any `user` line: anonymous
 *     user alice
 *     topic readwrite home/#     rules for alice
 *     pattern write sensors/%c/# rules for everyone, %u user, %c client id
 *
 * Access is read, write or readwrite (default readwrite). When a file is
 * loaded, anything no rule grants is denied. Also the MQTT filter matcher
 * the rules use, and the filter overlap test behind SUBACK 0x80 for a
 * subscription no rule lets its client read anything through.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

struct rule {
    struct rule *next;
    char *user; /* NULL: anonymous (topic) or everyone (pattern) */
    bool pattern;
    int access;
    char filter[];
};

static struct {
    pthread_rwlock_t lock;
    struct rule *rules;
    atomic_bool on;
} L = {PTHREAD_RWLOCK_INITIALIZER, NULL, false};

static void rules_free(struct rule *r)
{
    for (struct rule *n; r; r = n) {
        n = r->next;
        free(r->user);
        free(r);
    }
}

void acl_clear(void)
{
    pthread_rwlock_wrlock(&L.lock);
    struct rule *old = L.rules;
    L.rules = NULL;
    atomic_store(&L.on, false);
    pthread_rwlock_unlock(&L.lock);
    rules_free(old);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One `topic`/`pattern` line's rest: "[read|write|readwrite] FILTER". */
static struct rule *parse_rule(char *rest, const char *user, bool pattern)
{
    int access = ACL_READ | ACL_WRITE;
    char *sp = strpbrk(rest, " \t");
    if (sp) {
        *sp = '\0';
        if (!strcmp(rest, "read"))
            access = ACL_READ, rest = trim(sp + 1);
        else if (!strcmp(rest, "write"))
            access = ACL_WRITE, rest = trim(sp + 1);
        else if (!strcmp(rest, "readwrite"))
            rest = trim(sp + 1);
        else if (!strcmp(rest, "deny"))
            access = 0, rest = trim(sp + 1);
        else
            *sp = ' ';
    }
    if (!*rest)
        return NULL;
    struct rule *r = calloc(1, sizeof(*r) + strlen(rest) + 1);
    if (!r)
        return NULL;
    strcpy(r->filter, rest);
    r->access = access;
    r->pattern = pattern;
    r->user = user ? strdup(user) : NULL;
    return r;
}

int acl_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char line[1024], *user = NULL;
    struct rule *head = NULL, **tail = &head;
    unsigned ln = 0;

    if (!f) {
        snprintf(err, errlen, "acl_file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        ln++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        struct rule *r = NULL;
        if (!strncmp(s, "user ", 5) || !strncmp(s, "user\t", 5)) {
            free(user);
            user = strdup(trim(s + 5));
            continue;
        } else if (!strncmp(s, "topic ", 6) || !strncmp(s, "topic\t", 6)) {
            r = parse_rule(trim(s + 6), user, false);
        } else if (!strncmp(s, "pattern ", 8) || !strncmp(s, "pattern\t", 8)) {
            r = parse_rule(trim(s + 8), NULL, true);
        }
        if (!r) {
            snprintf(err, errlen, "acl_file %s:%u: bad line", path, ln);
            fclose(f);
            free(user);
            rules_free(head);
            return -1;
        }
        *tail = r;
        tail = &r->next;
    }
    fclose(f);
    free(user);
    pthread_rwlock_wrlock(&L.lock);
    struct rule *old = L.rules;
    L.rules = head;
    atomic_store(&L.on, true);
    pthread_rwlock_unlock(&L.lock);
    rules_free(old);
    return 0;
}

/* MQTT matching of topic against filter (+ one level, # the rest; a
 * leading wildcard does not match a $ topic). 1 = match. */
int topic_filter_matches(const char *f, size_t fl, const char *t, size_t tl)
{
    size_t i = 0, j = 0;
    if (tl && t[0] == '$' && fl && (f[0] == '+' || f[0] == '#'))
        return 0;
    while (i < fl) {
        if (f[i] == '#')
            return 1;
        if (f[i] == '+') {
            while (j < tl && t[j] != '/')
                j++;
            i++;
        } else {
            while (i < fl && j < tl && f[i] != '/' && f[i] == t[j])
                i++, j++;
            if (i < fl && f[i] != '/')
                return 0;
            if (j < tl && t[j] != '/')
                return 0;
        }
        if (i == fl)
            return j == tl;
        /* f[i] == '/' */
        if (j == tl)
            return fl - i == 2 && f[i + 1] == '#'; /* "a/#" matches "a" */
        i++, j++;
    }
    return j == tl;
}

/* Substitute %u and %c in a pattern; NULL when %u is used without a user. */
static char *expand(const char *f, const char *user, const char *cid, char *buf, size_t len)
{
    size_t o = 0;
    for (; *f; f++) {
        const char *s = NULL;
        if (f[0] == '%' && f[1] == 'u')
            s = user;
        else if (f[0] == '%' && f[1] == 'c')
            s = cid;
        else if (o + 1 < len) {
            buf[o++] = *f;
            continue;
        }
        if (!s || strpbrk(s, "+#/") || o + strlen(s) >= len)
            return NULL;
        memcpy(buf + o, s, strlen(s));
        o += strlen(s);
        f++;
    }
    buf[o] = '\0';
    return buf;
}

bool acl_allowed(const char *user, const char *cid, const char *topic, int access)
{
    char buf[1024];
    bool ok = false;

    if (!atomic_load_explicit(&L.on, memory_order_relaxed))
        return true;
    size_t tl = strlen(topic);
    pthread_rwlock_rdlock(&L.lock);
    for (struct rule *r = L.rules; r && !ok; r = r->next) {
        const char *f = r->filter;
        if (r->pattern) {
            if (!(f = expand(r->filter, user, cid, buf, sizeof(buf))))
                continue;
        } else if (user ? !r->user || strcmp(r->user, user) : r->user != NULL) {
            continue;
        }
        if ((r->access & access) && topic_filter_matches(f, strlen(f), topic, tl))
            ok = true;
    }
    pthread_rwlock_unlock(&L.lock);
    return ok;
}

/* Length of the level of f starting at i. */
static size_t level_len(const char *f, size_t fl, size_t i)
{
    size_t j = i;
    while (j < fl && f[j] != '/')
        j++;
    return j - i;
}

/* Level at f[i] is exactly "#" (i past the end: no level). */
static bool level_is(const char *f, size_t fl, size_t i, char w)
{
    return i < fl && f[i] == w && level_len(f, fl, i) == 1;
}

/* 1 when some topic matches both filters a and b. i and j index the start
 * of the current level; past the end there are no more levels. */
static int filters_overlap(const char *a, size_t al, const char *b, size_t bl)
{
    size_t i = 0, j = 0;
    for (bool first = true;; first = false) {
        if (i > al || j > bl) /* "x/#" also matches "x" */
            return i > al ? j > bl || level_is(b, bl, j, '#') : level_is(a, al, i, '#');
        size_t na = level_len(a, al, i), nb = level_len(b, bl, j);
        bool wa = level_is(a, al, i, '+') || level_is(a, al, i, '#');
        bool wb = level_is(b, bl, j, '+') || level_is(b, bl, j, '#');
        if (first && ((wa && !wb && nb && b[j] == '$') || (wb && !wa && na && a[i] == '$')))
            return 0; /* leading wildcards never match $-topics */
        if (level_is(a, al, i, '#') || level_is(b, bl, j, '#'))
            return 1;
        if (!wa && !wb && (na != nb || memcmp(a + i, b + j, na) != 0))
            return 0;
        i += na + 1;
        j += nb + 1;
    }
}

bool acl_filter_readable(const char *user, const char *cid, const char *filter, size_t len)
{
    char buf[1024];
    bool ok = false;

    if (!atomic_load_explicit(&L.on, memory_order_relaxed))
        return true;
    pthread_rwlock_rdlock(&L.lock);
    for (struct rule *r = L.rules; r && !ok; r = r->next) {
        const char *f = r->filter;
        if (!(r->access & ACL_READ))
            continue;
        if (r->pattern) {
            if (!(f = expand(r->filter, user, cid, buf, sizeof(buf))))
                continue;
        } else if (user ? !r->user || strcmp(r->user, user) : r->user != NULL) {
            continue;
        }
        ok = filters_overlap(f, strlen(f), filter, len);
    }
    pthread_rwlock_unlock(&L.lock);
    return ok;
}
