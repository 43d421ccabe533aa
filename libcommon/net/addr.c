/*
 * addr.c - numeric socket addresses as written in config files and logs:
 * "127.0.0.1:1883", "[::1]:80", "*:8080" / ":8080" (every address, bound
 * as a dual-stack [::]) and "unix:/run/coro/x.sock".
 *
 * Parsing never touches DNS: names are for coro_dns_resolve and coro_dial.
 * Errors are reported as a short reason in the caller's buffer, so a config
 * loader can print "FILE:LINE: [section] listen: port out of range 0..65535".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "coro/net.h"

/* Set err to reason and fail with EINVAL. */
static int fail(char *err, size_t errlen, const char *reason)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", reason);
    errno = EINVAL;
    return -1;
}

/* "0".."65535", digits only: the port, or -1 with *reason set. */
static int parse_port(const char *s, const char **reason)
{
    long v = 0;

    if (*s == '\0') {
        *reason = "missing port";
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            *reason = "bad port (not a number)";
            return -1;
        }
        if (v <= 65535) /* stop growing: only "too big" matters */
            v = v * 10 + (*p - '0');
    }
    if (v > 65535) {
        *reason = "port out of range 0..65535";
        return -1;
    }
    return (int)v;
}

static int parse_unix(const char *path, struct coro_addr *out, char *err, size_t errlen)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
    size_t n = strlen(path);

    if (n == 0)
        return fail(err, errlen, "empty unix path");
    if (n >= sizeof(sun->sun_path))
        return fail(err, errlen, "unix path too long");
    memset(out, 0, sizeof(*out));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static void set_in6(struct coro_addr *out, const struct in6_addr *ip, int port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = *ip;
    sin6->sin6_port = htons((uint16_t)port);
    out->len = sizeof(*sin6);
}

/* "[v6]:port": host is the text after '['. */
static int parse_bracketed(const char *s, struct coro_addr *out, char *err, size_t errlen)
{
    const char *close = strchr(s, ']');
    char host[INET6_ADDRSTRLEN];
    struct in6_addr ip;
    const char *reason = NULL;

    if (!close)
        return fail(err, errlen, "missing ']' after IPv6 address");
    if ((size_t)(close - s) >= sizeof(host))
        return fail(err, errlen, "bad IPv6 address");
    memcpy(host, s, (size_t)(close - s));
    host[close - s] = '\0';
    if (inet_pton(AF_INET6, host, &ip) != 1)
        return fail(err, errlen, "bad IPv6 address");
    if (close[1] != ':')
        return fail(err, errlen, close[1] ? "expected ':' after ']'" : "missing port");
    int port = parse_port(close + 2, &reason);
    if (port < 0)
        return fail(err, errlen, reason);
    set_in6(out, &ip, port);
    return 0;
}

/* "host:port" without brackets: host is IPv4, "*" or empty. */
static int parse_plain(const char *s, struct coro_addr *out, char *err, size_t errlen)
{
    const char *colon = strrchr(s, ':');
    char host[INET_ADDRSTRLEN];
    const char *reason = NULL;
    struct in_addr ip;

    if (!colon)
        return fail(err, errlen, "missing port");
    if (memchr(s, ':', (size_t)(colon - s)))
        return fail(err, errlen, "IPv6 address needs brackets: [addr]:port");
    int port = parse_port(colon + 1, &reason);
    if (port < 0)
        return fail(err, errlen, reason);
    size_t hlen = (size_t)(colon - s);
    if (hlen == 0 || (hlen == 1 && s[0] == '*')) {
        set_in6(out, &in6addr_any, port);
        return 0;
    }
    if (hlen >= sizeof(host))
        return fail(err, errlen, "bad IPv4 address");
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, &ip) != 1)
        return fail(err, errlen, "bad IPv4 address");

    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    memset(out, 0, sizeof(*out));
    sin->sin_family = AF_INET;
    sin->sin_addr = ip;
    sin->sin_port = htons((uint16_t)port);
    out->len = sizeof(*sin);
    return 0;
}

int coro_addr_parse(const char *s, struct coro_addr *out, char *err, size_t errlen)
{
    struct coro_addr tmp;
    int rc;

    if (!s || !out)
        return fail(err, errlen, "no address");
    if (*s == '\0')
        return fail(err, errlen, "empty address");
    /* Parse into tmp so that out is untouched on error. */
    if (strncmp(s, "unix:", 5) == 0)
        rc = parse_unix(s + 5, &tmp, err, errlen);
    else if (s[0] == '[')
        rc = parse_bracketed(s + 1, &tmp, err, errlen);
    else
        rc = parse_plain(s, &tmp, err, errlen);
    if (rc == 0)
        *out = tmp;
    return rc;
}

char *coro_addr_format(const struct coro_addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (len == 0)
        return buf;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX: {
        /* Peers of a unix listener are usually unnamed (len = family only). */
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = a->len > off ? a->len - off : 0;
        if (n > sizeof(sun->sun_path))
            n = sizeof(sun->sun_path);
        n = strnlen(sun->sun_path, n);
        snprintf(buf, len, "unix:%.*s", (int)n, sun->sun_path);
        break;
    }
    default:
        snprintf(buf, len, "(family %d)", sa->sa_family);
        break;
    }
    return buf;
}

int coro_addr_port(const struct coro_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int coro_addr_is_loopback(const struct coro_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    switch (sa->sa_family) {
    case AF_INET: {
        uint32_t ip = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (ip >> 24) == 127;
    }
    case AF_INET6: {
        const struct in6_addr *ip = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(ip))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127;
    }
    case AF_UNIX:
        return 1;
    default:
        return 0;
    }
}
