/*
 * admin.c - the admin endpoint: a deliberately small HTTP/1.1 server for
 * GET /metrics (Prometheus text format) and GET /healthz ("ok").
 *
 * Requests are bounded (ADMIN_MAX_REQUEST bytes of head, no bodies),
 * keep-alive is honoured (HTTP/1.1 default, HTTP/1.0 with "Connection:
 * keep-alive"), an idle connection is closed after ADMIN_IDLE_MS. It is
 * not a general HTTP server: libcommon/proto has the real parser.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coro/io.h"
#include "coro/log.h"
#include "service/service_int.h"

#define ADMIN_MAX_REQUEST 8192
#define ADMIN_IDLE_MS 30000
#define ADMIN_WRITE_MS 10000

struct req {
    char method[16];
    char target[256];
    int http10;
    int close;     /* Connection: close (or 1.0 without keep-alive) */
    int has_body;  /* Content-Length > 0 or Transfer-Encoding */
};

/* Find a header's value in the head (lines after the request line). */
static const char *header(const char *head, const char *name, size_t *len)
{
    size_t n = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            v += strspn(v, " \t");
            *len = strcspn(v, "\r");
            return v;
        }
    }
    return NULL;
}

/* Parse the request head (NUL-terminated, ends with CRLF CRLF): 0 or -1. */
static int parse_head(const char *head, struct req *r)
{
    char version[16];
    size_t len;
    const char *v;

    memset(r, 0, sizeof(*r));
    if (sscanf(head, "%15[A-Z] %255[^ \r\n] HTTP/%15[0-9.]\r\n", r->method, r->target, version) !=
        3)
        return -1;
    r->http10 = strcmp(version, "1.0") == 0;
    r->close = r->http10;
    if ((v = header(head, "Connection", &len))) {
        if (len == 5 && strncasecmp(v, "close", 5) == 0)
            r->close = 1;
        else if (len == 10 && strncasecmp(v, "keep-alive", 10) == 0)
            r->close = 0;
    }
    if (header(head, "Transfer-Encoding", &len))
        r->has_body = 1;
    if ((v = header(head, "Content-Length", &len)) && strtoul(v, NULL, 10) > 0)
        r->has_body = 1;
    return 0;
}

static int respond(int fd, int code, const char *reason, const char *ctype, const char *body,
                   size_t blen, int head_only, int close)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     code, reason, ctype, blen, code == 405 ? "Allow: GET, HEAD\r\n" : "",
                     close ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{hdr, (size_t)n}, {(void *)body, head_only ? 0 : blen}};
    return coro_writev(fd, iov, 2, ADMIN_WRITE_MS);
}

static int serve(int fd, daemon_t *d, const struct req *r)
{
    static const char text[] = "text/plain; charset=utf-8";
    int head = strcmp(r->method, "HEAD") == 0;
    const char *path = r->target;
    size_t plen = strcspn(path, "?");

    if (strcmp(r->method, "GET") != 0 && !head)
        return respond(fd, 405, "Method Not Allowed", text, "method not allowed\n", 19, 0,
                       r->close);
    if (plen == 8 && strncmp(path, "/healthz", 8) == 0)
        return respond(fd, 200, "OK", text, "ok\n", 3, head, r->close);
    if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
        size_t len;
        char *body = metrics_render(daemon_metrics(d), &len);
        if (!body)
            return respond(fd, 500, "Internal Server Error", text, "out of memory\n", 14, head, 1);
        int rc = respond(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len,
                         head, r->close);
        free(body);
        return rc;
    }
    return respond(fd, 404, "Not Found", text, "not found\n", 10, head, r->close);
}

/* Read until a complete head is buffered: its length, 0 at EOF, -1. */
static ssize_t read_head(int fd, char *buf, size_t *have)
{
    char *end;

    while (!(end = memmem(buf, *have, "\r\n\r\n", 4))) {
        if (*have >= ADMIN_MAX_REQUEST)
            return -2;
        ssize_t n = coro_read(fd, buf + *have, ADMIN_MAX_REQUEST - *have, ADMIN_IDLE_MS);
        if (n <= 0)
            return n;
        *have += (size_t)n;
    }
    return end + 4 - buf;
}

void service__admin_conn(int fd, const struct coro_addr *peer, void *arg)
{
    daemon_t *d = arg;
    struct daemon_conn dc;
    char *buf = malloc(ADMIN_MAX_REQUEST + 1);
    size_t have = 0;
    struct req r;

    service__track_enter(service__admin_track(d), &dc);
    while (buf) {
        ssize_t n = read_head(fd, buf, &have);
        if (n == -2)
            respond(fd, 431, "Request Header Fields Too Large", "text/plain", "too large\n", 10,
                    0, 1);
        if (n <= 0)
            break;
        char save = buf[n];
        buf[n] = '\0';
        int bad = parse_head(buf, &r) < 0;
        buf[n] = save;
        if (bad || r.has_body) {
            respond(fd, 400, "Bad Request", "text/plain", "bad request\n", 12, 0, 1);
            break;
        }
        if (serve(fd, d, &r) < 0 || r.close)
            break;
        memmove(buf, buf + n, have - (size_t)n);
        have -= (size_t)n;
    }
    free(buf);
    coro_close(fd);
    service__track_leave(service__admin_track(d), &dc);
}
