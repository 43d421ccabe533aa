/*
 * buffer.c - `coro buffer`: a bounded buffer between a producer (stdin) and
 * a consumer (stdout), like mbuffer. It absorbs bursts, blocks the producer
 * when full and writes stdout as fast as the consumer takes it.
 *
 * Memory is one allocation of -m bytes cut into blocks. A reader coroutine
 * fills free blocks and a writer coroutine drains full ones; full block
 * indices go to the writer through a channel and come back on a stack of
 * free blocks counted by a semaphore, so no block is allocated or copied per
 * transfer and the producer blocks exactly when no block is free. Memory
 * never exceeds -m: a block is free, being filled, queued or being written.
 *
 * The free blocks are a stack, not a queue, so while the consumer keeps up
 * the same few blocks are reused and stay in the CPU cache (and pages never
 * touched stay out of RSS); cycling through all 64 MiB costs about a third
 * more time. Both coroutines run on one worker: that makes the stack safe
 * without a lock, and measured faster than two workers, whose cross-thread
 * wakeups per block cost more than the overlap of the two copies gains.
 *
 * stdin and stdout are switched to O_NONBLOCK for coroutine I/O and their
 * flags restored at exit (and on SIGINT/SIGTERM/SIGHUP), since a terminal
 * or an inherited pipe end is shared with other processes.
 *
 * When nothing is buffered and one side is a pipe, the reader moves data
 * with splice(2) straight from stdin to stdout (no copy through user
 * space, as pv does) and falls back to the blocks as soon as splice would
 * block: order is kept because splicing happens only with every block
 * free, i.e. everything read before has been written.
 *
 * A consumer that goes away (EPIPE) ends the run quietly by SIGPIPE, as it
 * ends `cat`, so the shell reports 141 and `set -o pipefail` sees it.
 * Not for: line records (pipeline.c), rate limiting (limit.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro/chan.h"
#include "coro/coro.h"
#include "coro/io.h"
#include "coro/sync.h"
#include "cli.h"

#define BUF_DEFAULT_MEM (64u << 20)
#define BUF_DEFAULT_BLOCK (64u << 10)
#define BUF_PROGRESS_MS 500
/* While the writer still has this many blocks queued, a partly filled block
 * waits (up to BUF_LINGER_MS) for more input instead of going out small:
 * a trickling producer then fills blocks rather than one block per read. */
#define BUF_BUSY_QUEUE 2
#define BUF_LINGER_MS 50

struct buf {
    char *mem;
    size_t block, nblocks;
    uint32_t *len;      /* bytes held by each block */
    chan_t *full_ch;    /* uint32_t indices of blocks to write */
    uint32_t *free_stk; /* indices of free blocks (top: most recent) */
    size_t nfree;
    coro_sem_t free_sem;      /* counts free_stk */
    _Atomic uint64_t in, out; /* bytes read from stdin, written to stdout */
    _Atomic uint64_t peak;    /* highest in - out seen by the reader */
    uint64_t blocked_ns;      /* reader waiting for a free block */
    int rerr, werr;           /* errno of a failed read / write, 0 */
    coro_t *reader;
    int tty, stats, sem_ok;
    int direct; /* splice(2) still worth trying */
};

/* Original fd flags of stdin/stdout, restored by the signal handler too. */
static volatile int fl_saved[2] = {-1, -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fl_restore(void)
{
    for (int fd = 0; fd < 2; fd++)
        if (fl_saved[fd] >= 0)
            fcntl(fd, F_SETFL, fl_saved[fd]);
}

static void on_fatal_signal(int sig)
{
    fl_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int fl_nonblock(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    for (int fd = 0; fd < 2; fd++) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
            return -1;
        fl_saved[fd] = fl;
        if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -1;
    }
    return 0;
}

/* A free block, or -1/ECANCELED when the writer has gone. */
static int take_free(struct buf *b, uint32_t *i)
{
    if (coro_sem_trywait(&b->free_sem) < 0) {
        uint64_t t0 = now_ns();
        int r = coro_sem_wait(&b->free_sem);
        b->blocked_ns += now_ns() - t0;
        if (r < 0)
            return -1;
    }
    *i = b->free_stk[--b->nfree];
    return 0;
}

/*
 * Fill block i from stdin: returns the bytes read (a short block when input
 * pauses and the writer is about to idle), 0 at EOF with nothing read, -1
 * on error. *eof is set when stdin ended.
 */
static ssize_t fill(struct buf *b, uint32_t i, int *eof)
{
    char *p = b->mem + (size_t)i * b->block;
    size_t off = 0;

    while (off < b->block) {
        ssize_t n = read(0, p + off, b->block - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (n == 0) {
            *eof = 1;
            break;
        } else if (errno == EAGAIN) {
            int64_t ms = -1;
            if (off > 0) {
                if (chan_len(b->full_ch) < BUF_BUSY_QUEUE)
                    break;
                ms = BUF_LINGER_MS;
            }
            if (coro_wait_fd(0, CORO_READ, ms) < 0) {
                if (errno == ETIMEDOUT)
                    break;
                return -1;
            }
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return (ssize_t)off;
}

/*
 * With the buffer empty, move what stdin has straight to stdout: 1 when
 * data moved (or EOF), 0 when the caller should read into a block instead
 * (splice would block on either side, or cannot join these fds: then it is
 * not tried again and the block path meets any real error itself).
 */
#define SPLICE_MAX (1024 * 1024)

static int splice_direct(struct buf *b, int *eof)
{
    /* Ask for more than a block: from a file the kernel then moves up to a
     * pipe's worth per call (a pipe gives at most its own size anyway). */
    size_t len = b->block > SPLICE_MAX ? b->block : SPLICE_MAX;
    ssize_t n = splice(0, NULL, 1, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

    if (n > 0) {
        atomic_fetch_add_explicit(&b->in, (uint64_t)n, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->out, (uint64_t)n, memory_order_relaxed);
        coro_yield(); /* the progress line */
        return 1;
    }
    if (n == 0) {
        *eof = 1;
        return 1;
    }
    if (errno != EAGAIN && errno != EINTR)
        b->direct = 0;
    return 0;
}

static void reader(void *arg)
{
    struct buf *b = arg;
    int eof = 0;
    uint32_t i;

    while (!eof) {
        if (b->direct && b->nfree == b->nblocks && splice_direct(b, &eof))
            continue;
        if (take_free(b, &i) < 0)
            break;
        ssize_t n = fill(b, i, &eof);
        if (n < 0) {
            if (errno != ECANCELED)
                b->rerr = errno;
            break;
        }
        if (n == 0)
            break;
        b->len[i] = (uint32_t)n;
        uint64_t in = atomic_fetch_add_explicit(&b->in, (uint64_t)n, memory_order_relaxed) + n;
        uint64_t fillb = in - atomic_load_explicit(&b->out, memory_order_relaxed);
        if (fillb > atomic_load_explicit(&b->peak, memory_order_relaxed))
            atomic_store_explicit(&b->peak, fillb, memory_order_relaxed);
        if (chan_send(b->full_ch, &i) < 0)
            break;
        /* Let the writer take the block now: input that never blocks (a
         * file) would otherwise fill the whole buffer before a first write,
         * and a block written at once comes back still in cache. */
        coro_yield();
    }
    chan_close(b->full_ch);
}

/* write(2) until done, parking on EAGAIN. Not coro_write_all: that tries
 * send() first (for MSG_NOSIGNAL), one failing syscall per block on a pipe. */
static int write_block(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w >= 0) {
            p += w;
            n -= (size_t)w;
        } else if (errno == EAGAIN) {
            if (coro_wait_fd(1, CORO_WRITE, -1) < 0)
                return -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

static void writer(void *arg)
{
    struct buf *b = arg;
    uint32_t i;

    while (chan_recv(b->full_ch, &i) == 0) {
        if (write_block(b->mem + (size_t)i * b->block, b->len[i]) < 0) {
            b->werr = errno;
            break;
        }
        atomic_fetch_add_explicit(&b->out, b->len[i], memory_order_relaxed);
        b->free_stk[b->nfree++] = i;
        coro_sem_post(&b->free_sem);
    }
    /* The reader may be parked on stdin with a producer that is silent:
     * stop it rather than wait for input that can no longer go anywhere.
     * (After a normal EOF the reader has ended and this is a no-op.) */
    if (b->werr)
        coro_cancel(b->reader);
}

static void progress(void *arg)
{
    struct buf *b = arg;
    uint64_t last = 0, tlast = now_ns();
    char s1[32], s2[32], s3[32], s4[32];

    while (coro_sleep_ms(BUF_PROGRESS_MS) == 0) {
        uint64_t in = atomic_load(&b->in), out = atomic_load(&b->out), t = now_ns();
        double rate = (double)(out - last) * 1e9 / (double)(t - tlast + 1);
        uint64_t fillb = in > out ? in - out : 0;
        fprintf(stderr, "\rin %s  out %s  %s/s  fill %3.0f%% (%s)\x1b[K",
                cli_fmt_size(s1, sizeof s1, (double)in), cli_fmt_size(s2, sizeof s2, (double)out),
                cli_fmt_size(s3, sizeof s3, rate),
                100.0 * (double)fillb / (double)(b->nblocks * b->block),
                cli_fmt_size(s4, sizeof s4, (double)fillb));
        last = out;
        tlast = t;
    }
    fputs("\r\x1b[K", stderr);
}

static void run(void *arg)
{
    struct buf *b = arg;
    coro_t *w, *p = NULL;

    b->reader = coro_spawn_on(0, reader, b);
    w = b->reader ? coro_spawn_on(0, writer, b) : NULL;
    if (!w) {
        b->rerr = errno;
        if (b->reader) {
            chan_close(b->full_ch);
            coro_cancel(b->reader);
            coro_join(b->reader);
        }
        return;
    }
    if (b->tty)
        p = coro_spawn_on(0, progress, b);
    coro_join(w);
    coro_join(b->reader);
    if (p) {
        coro_cancel(p);
        coro_join(p);
    }
}

static void print_stats(struct buf *b, double secs)
{
    char s1[32], s2[32], s3[32], s4[32], s5[32];
    uint64_t out = atomic_load(&b->out), peak = atomic_load(&b->peak);
    size_t total = b->nblocks * b->block;

    fprintf(stderr,
            "coro buffer: %s in %.3f s, %s/s; buffer %s in %zu blocks of %s, "
            "peak fill %.0f%% (%s); producer blocked %.3f s (buffer full)\n",
            cli_fmt_size(s1, sizeof s1, (double)out), secs,
            cli_fmt_size(s2, sizeof s2, secs > 0 ? (double)out / secs : 0),
            cli_fmt_size(s3, sizeof s3, (double)total), b->nblocks,
            cli_fmt_size(s4, sizeof s4, (double)b->block), 100.0 * (double)peak / (double)total,
            cli_fmt_size(s5, sizeof s5, (double)peak), (double)b->blocked_ns / 1e9);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: coro buffer [-m SIZE] [-s SIZE] [--stats] [-q]\n"
                 "\n"
                 "Copy stdin to stdout through a bounded in-memory buffer (like mbuffer):\n"
                 "bursts are absorbed, the producer blocks when the buffer is full, and\n"
                 "stdout is written as fast as the consumer accepts it.\n"
                 "\n"
                 "  -m, --memory SIZE  buffer size (default 64M; k, M, G suffixes, binary)\n"
                 "  -s, --block SIZE   block size, the unit of reads and writes (default 64k)\n"
                 "      --stats        print a summary on stderr at the end\n"
                 "  -q, --quiet        no progress line (shown only when stderr is a TTY)\n"
                 "  -h, --help         this help\n"
                 "\n"
                 "Exit status: 0, 1 on a read or write error, 141 (SIGPIPE) when the\n"
                 "consumer closes its end early, 64 on a usage error.\n");
}

static int parse_args(struct buf *b, int argc, char **argv, uint64_t *mem)
{
    static const struct option opts[] = {
        {"memory", required_argument, NULL, 'm'}, {"block", required_argument, NULL, 's'},
        {"stats", no_argument, NULL, 'S'},        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    uint64_t block = BUF_DEFAULT_BLOCK;
    int c, quiet = 0;

    *mem = BUF_DEFAULT_MEM;
    while ((c = getopt_long(argc, argv, "m:s:qh", opts, NULL)) != -1) {
        uint64_t *dst = c == 'm' ? mem : &block;
        switch (c) {
        case 'm':
        case 's':
            if (cli_parse_size(optarg, dst) < 0 || *dst == 0) {
                cli_warnx("buffer: bad size '%s' (want e.g. 64k, 1M, 1G)", optarg);
                return -1;
            }
            break;
        case 'S':
            b->stats = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            exit(CLI_EX_OK);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        cli_warnx("buffer: unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (block > (1u << 30) || *mem / block < 2) {
        cli_warnx("buffer: -m must hold at least 2 blocks of at most 1G (block %llu, -m %llu)",
                  (unsigned long long)block, (unsigned long long)*mem);
        return -1;
    }
    b->block = block;
    b->nblocks = *mem / block;
    b->tty = !quiet && isatty(2);
    return 0;
}

static int setup(struct buf *b)
{
    b->mem = malloc(b->nblocks * b->block);
    b->len = calloc(b->nblocks, sizeof *b->len);
    b->free_stk = malloc(b->nblocks * sizeof *b->free_stk);
    b->full_ch = chan_new(sizeof(uint32_t), b->nblocks);
    if (!b->mem || !b->len || !b->free_stk || !b->full_ch ||
        coro_sem_init(&b->free_sem, b->nblocks) < 0)
        return -1;
    /* Block 0 on top: the first blocks used are the first in memory. */
    for (size_t i = 0; i < b->nblocks; i++)
        b->free_stk[i] = (uint32_t)(b->nblocks - 1 - i);
    b->nfree = b->nblocks;
    b->sem_ok = 1;
    b->direct = 1;
    return 0;
}

static void teardown(struct buf *b)
{
    free(b->mem);
    free(b->len);
    free(b->free_stk);
    if (b->sem_ok)
        coro_sem_fini(&b->free_sem);
    if (b->full_ch)
        chan_free(b->full_ch);
}

static int finish(struct buf *b, double secs)
{
    if (b->stats)
        print_stats(b, secs);
    if (b->werr == EPIPE) {
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
        return 128 + SIGPIPE;
    }
    if (b->werr) {
        errno = b->werr;
        cli_warn("buffer: write to stdout");
    }
    if (b->rerr) {
        errno = b->rerr;
        cli_warn("buffer: read from stdin");
    }
    return b->werr || b->rerr ? CLI_EX_FAIL : CLI_EX_OK;
}

int cmd_buffer(int argc, char **argv)
{
    struct buf b = {0};
    struct coro_config cfg;
    uint64_t mem, t0;
    int rc = CLI_EX_OSERR;

    if (parse_args(&b, argc, argv, &mem) < 0)
        return CLI_EX_USAGE;
    if (setup(&b) < 0) {
        cli_warn("buffer: cannot allocate %llu bytes", (unsigned long long)mem);
        goto out;
    }
    if (fl_nonblock() < 0) {
        cli_warn("buffer: stdin/stdout");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    coro_config_default(&cfg);
    cfg.workers = 1;
    t0 = now_ns();
    if (coro_run(&cfg, run, &b) < 0) {
        cli_warn("buffer: cannot start the runtime");
        rc = CLI_EX_SOFTWARE;
        goto out;
    }
    fl_restore();
    rc = finish(&b, (double)(now_ns() - t0) / 1e9);
out:
    fl_restore();
    teardown(&b);
    return rc;
}
