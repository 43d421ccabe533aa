/*
 * lineio.h - buffered line reading and writing on non-blocking fds through
 * coroutine I/O, for the CLI subcommands that move line records.
 *
 * A reader hands out lines that point into its buffer (valid until the next
 * call); a writer gathers output and flushes it in large writes. One
 * coroutine per reader or writer; the fds belong to the caller.
 */
#ifndef CORO_CLI_LINEIO_H
#define CORO_CLI_LINEIO_H

#include <stddef.h>
#include <sys/types.h>

struct lineio_reader {
    int fd;
    char *buf;
    size_t cap, start, end;
    size_t max; /* longest line accepted (E2BIG beyond) */
    int eof;
};

struct lineio_writer {
    int fd;
    char *buf;
    size_t cap, len;
};

int lineio_reader_init(struct lineio_reader *r, int fd, size_t max);
void lineio_reader_fini(struct lineio_reader *r);
/*
 * Next line, '\n' included (a last line without one is returned as is):
 * its length with *line pointing into the buffer, 0 at EOF, or -1 with
 * errno (E2BIG for a line longer than max, ECANCELED...). May yield.
 */
ssize_t lineio_read_line(struct lineio_reader *r, char **line);
/* Bytes buffered and not yet returned (a line may already be waiting). */
size_t lineio_buffered(const struct lineio_reader *r);

int lineio_writer_init(struct lineio_writer *w, int fd, size_t cap);
void lineio_writer_fini(struct lineio_writer *w);
/* Append (flushing first when full): 0 or -1 with errno. May yield. */
int lineio_write(struct lineio_writer *w, const void *p, size_t n);
int lineio_flush(struct lineio_writer *w);

#endif
