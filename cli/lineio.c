/*
 * lineio.c - buffered line reader and writer over coroutine I/O (lineio.h).
 *
 * The reader keeps one buffer that grows to the longest line seen (up to
 * its max), so a record costs a memchr and no copy; the writer batches many
 * records into one write. Not for: framing other than '\n'.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coro/io.h"
#include "lineio.h"

#define LINEIO_MIN_READ 4096

int lineio_reader_init(struct lineio_reader *r, int fd, size_t max)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max = max;
    r->cap = 64 * 1024;
    r->buf = malloc(r->cap);
    return r->buf ? 0 : -1;
}

void lineio_reader_fini(struct lineio_reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

size_t lineio_buffered(const struct lineio_reader *r)
{
    return r->end - r->start;
}

/* Make room for at least LINEIO_MIN_READ more bytes: slide, then grow. */
static int make_room(struct lineio_reader *r)
{
    if (r->start > 0 && r->cap - r->end < LINEIO_MIN_READ) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end >= LINEIO_MIN_READ)
        return 0;
    if (r->end >= r->max) {
        errno = E2BIG;
        return -1;
    }
    char *nb = realloc(r->buf, r->cap * 2);
    if (!nb)
        return -1;
    r->buf = nb;
    r->cap *= 2;
    return 0;
}

ssize_t lineio_read_line(struct lineio_reader *r, char **line)
{
    size_t scanned = 0;

    for (;;) {
        char *p = r->buf + r->start;
        size_t have = r->end - r->start;
        char *nl = memchr(p + scanned, '\n', have - scanned);
        if (nl || (r->eof && have)) {
            size_t n = nl ? (size_t)(nl - p) + 1 : have;
            *line = p;
            r->start += n;
            return (ssize_t)n;
        }
        if (r->eof)
            return 0;
        scanned = have;
        if (make_room(r) < 0)
            return -1;
        ssize_t n = coro_read(r->fd, r->buf + r->end, r->cap - r->end, -1);
        if (n < 0)
            return -1;
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
    }
}

int lineio_writer_init(struct lineio_writer *w, int fd, size_t cap)
{
    w->fd = fd;
    w->cap = cap;
    w->len = 0;
    w->buf = malloc(cap);
    return w->buf ? 0 : -1;
}

void lineio_writer_fini(struct lineio_writer *w)
{
    free(w->buf);
    w->buf = NULL;
}

int lineio_flush(struct lineio_writer *w)
{
    if (!w->len)
        return 0;
    int r = coro_write_all(w->fd, w->buf, w->len, -1);
    w->len = 0;
    return r;
}

int lineio_write(struct lineio_writer *w, const void *p, size_t n)
{
    if (w->len + n > w->cap && lineio_flush(w) < 0)
        return -1;
    if (n > w->cap)
        return coro_write_all(w->fd, p, n, -1);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}
