/*
 * limit.c - `coro limit`: pass stdin lines to stdout at a given rate, for
 * all lines together or per key (a field of the line).
 *
 * One worker. A reader coroutine splits stdin into lines and queues each
 * on its key; a key with queued lines has one sender coroutine that takes
 * a grant from the keyed limiter (libcommon/patterns/ratelimit.c) before
 * writing each line, and ends when its queue is empty. So order is kept
 * within a key while a throttled key never holds back the others, and at
 * most --buffer lines wait in memory (the reader stops reading beyond).
 * Not for byte rates (pv -L does that).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/ratelimit.h"
#include "coro/sync.h"
#include "cli.h"

struct line {
    struct line *next;
    size_t len;
    char data[];
};

struct key {
    struct key *next; /* hash chain */
    struct line *head, *tail;
    size_t klen;
    char k[];
};

struct limit {
    /* options */
    struct coro_rl_conf conf;
    unsigned key_field; /* 0 = one limit for all lines */
    int delim;          /* -1 = runs of blanks */
    uint64_t buffer;
    int stats, json, progress;
    /* state */
    coro_ratelimit_map_t *map;
    coro_scope_t senders;
    coro_sem_t slots;
    struct key **tab;
    size_t ntab, nkeys, peak_keys;
    uint64_t lines, start_us;
    int err, done;
};

static const char usage_text[] =
    "usage: coro limit --rate N/s|N/min|N/DUR [--burst B]\n"
    "                  [--algorithm token-bucket|sliding-window]\n"
    "                  [--key-field K [--delimiter C]] [--buffer N] [--stats [--json]]\n"
    "\n"
    "Copy stdin to stdout line by line, at most N lines per interval.\n"
    "\n"
    "  -r, --rate N/UNIT     lines per s, min, h or a duration (100/s, 5/min, 3/10s)\n"
    "  -b, --burst B         token bucket: lines let through at once after a pause\n"
    "                        (default: 20 ms worth, at least 2 above 2.5/s, else 1);\n"
    "                        sliding window: at most B lines in any B/rate window\n"
    "                        (default: N, i.e. N per interval)\n"
    "  -a, --algorithm A     token-bucket (default) or sliding-window (exact log)\n"
    "  -k, --key-field K     limit each distinct value of field K (1-based) apart;\n"
    "                        lines of one key keep their order, keys do not wait\n"
    "                        for each other\n"
    "  -d, --delimiter C     field separator for -k (default: runs of blanks)\n"
    "      --buffer N        lines held while waiting, in all (default 10000)\n"
    "  -s, --stats           print lines, seconds, rate and keys to stderr at the end\n"
    "  -j, --json            --stats as one JSON object\n"
    "  -h, --help            this text\n"
    "\n"
    "A progress line is shown on stderr when it is a terminal.\n";

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    return h;
}

static struct key **key_slot(struct limit *l, const char *k, size_t n)
{
    struct key **pp = &l->tab[hash_key(k, n) & (l->ntab - 1)];
    while (*pp && ((*pp)->klen != n || memcmp((*pp)->k, k, n)))
        pp = &(*pp)->next;
    return pp;
}

static void tab_grow(struct limit *l)
{
    size_t n = l->ntab * 2;
    struct key **t = calloc(n, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < l->ntab; i++) {
        for (struct key *e = l->tab[i], *next; e; e = next) {
            next = e->next;
            struct key **s = &t[hash_key(e->k, e->klen) & (n - 1)];
            e->next = *s;
            *s = e;
        }
    }
    free(l->tab);
    l->tab = t;
    l->ntab = n;
}

/* Field K of line (without its newline) as the key. */
static void line_key(const struct limit *l, const char *s, size_t n, const char **k, size_t *kn)
{
    const char *p = s, *end = s + n;
    *k = s;
    *kn = 0;
    if (l->key_field == 0)
        return;
    for (unsigned f = 1; p <= end; f++) {
        if (l->delim < 0)
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        const char *q = p;
        while (q < end && (l->delim < 0 ? *q != ' ' && *q != '\t' : *q != l->delim))
            q++;
        if (f == l->key_field) {
            *k = p;
            *kn = (size_t)(q - p);
            return;
        }
        if (q == end)
            return; /* no such field: the empty key */
        p = q + 1;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static struct limit *g_limit; /* the senders' shared state (one run per process) */

/* One per key with queued lines: grant, write, repeat; gone when empty. */
static void sender(void *arg)
{
    struct limit *l = g_limit;
    struct key *k = arg;
    while (k->head && !l->err) {
        if (coro_ratelimit_map_acquire(l->map, k->k, k->klen) < 0) {
            if (errno != ECANCELED)
                l->err = errno;
            break;
        }
        struct line *ln = k->head;
        if (write_all(STDOUT_FILENO, ln->data, ln->len) < 0 && !l->err)
            l->err = errno;
        k->head = ln->next;
        free(ln);
        l->lines++;
        coro_sem_post(&l->slots);
    }
    /* After an error: drop what is left, and free its slots so the reader
     * is not stuck. Single worker: nothing ran since the last check. */
    for (struct line *ln = k->head, *n; ln; ln = n) {
        n = ln->next;
        free(ln);
        coro_sem_post(&l->slots);
    }
    *key_slot(l, k->k, k->klen) = k->next;
    l->nkeys--;
    free(k);
}

static int enqueue(struct limit *l, const char *s, size_t n)
{
    const char *kp;
    size_t kn;
    size_t body = n > 0 && s[n - 1] == '\n' ? n - 1 : n;
    line_key(l, s, body, &kp, &kn);
    struct line *ln = malloc(sizeof *ln + n + 1);
    if (!ln)
        return -1;
    ln->next = NULL;
    ln->len = n;
    memcpy(ln->data, s, n);
    if (body == n) /* a last line without a newline gets one */
        ln->data[ln->len++] = '\n';
    struct key **slot = key_slot(l, kp, kn), *k = *slot;
    if (k) {
        k->tail->next = ln;
        k->tail = ln;
        return 0;
    }
    if (!(k = calloc(1, sizeof *k + kn)))
        goto fail;
    memcpy(k->k, kp, kn);
    k->klen = kn;
    k->head = k->tail = ln;
    *slot = k;
    if (++l->nkeys > l->peak_keys)
        l->peak_keys = l->nkeys;
    if (!coro_scope_spawn(&l->senders, sender, k)) {
        *slot = NULL;
        l->nkeys--;
        free(k);
        goto fail;
    }
    if (l->nkeys > l->ntab)
        tab_grow(l);
    return 0;
fail:
    free(ln);
    return -1;
}

/* Read stdin, split lines, queue them; --buffer bounds what waits. */
static int read_input(struct limit *l)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = coro_read(STDIN_FILENO, buf + len, cap - len, -1);
        if (r < 0)
            goto fail;
        size_t start = 0, scan = len;
        len += (size_t)r;
        for (size_t i = scan; i < len || (r == 0 && start < len); i++) {
            if (i < len && buf[i] != '\n')
                continue;
            size_t end = i < len ? i + 1 : len;
            if (coro_sem_wait(&l->slots) < 0 || l->err || enqueue(l, buf + start, end - start) < 0)
                goto fail;
            start = end;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (r == 0 || l->err)
            break;
    }
    free(buf);
    return 0;
fail:;
    int e = errno;
    free(buf);
    errno = e;
    return -1;
}

static double elapsed_s(const struct limit *l)
{
    return (double)(coro_ratelimit_now_us() - l->start_us) / 1e6;
}

static void progress(void *arg)
{
    struct limit *l = arg;
    while (!l->done && coro_sleep_ms(500) == 0) {
        double t = elapsed_s(l);
        fprintf(stderr, "\r%" PRIu64 " lines  %.1f lines/s  %zu keys  %" PRIu64 " waiting ",
                l->lines, t > 0 ? (double)l->lines / t : 0.0, l->nkeys,
                l->buffer - coro_sem_value(&l->slots));
    }
}

static void print_stats(struct limit *l)
{
    double t = elapsed_s(l), rate = t > 0 ? (double)l->lines / t : 0;
    if (l->json)
        fprintf(stderr,
                "{\"lines\":%" PRIu64 ",\"seconds\":%.3f,\"lines_per_s\":%.2f,"
                "\"keys_peak\":%zu}\n",
                l->lines, t, rate, l->peak_keys);
    else
        fprintf(stderr, "coro limit: %" PRIu64 " lines in %.3f s, %.2f lines/s, %zu keys at most\n",
                l->lines, t, rate, l->peak_keys);
}

static void limit_main(void *arg)
{
    struct limit *l = arg;
    coro_t *prog = NULL;
    coro_scope_init(&l->senders);
    l->start_us = coro_ratelimit_now_us();
    if (l->progress)
        prog = coro_spawn(progress, l);
    if (read_input(l) < 0 && !l->err)
        l->err = errno;
    coro_scope_wait(&l->senders);
    l->done = 1;
    if (prog) {
        coro_cancel(prog);
        coro_join(prog);
        fputc('\n', stderr);
    }
}

static int parse_opts(struct limit *l, int argc, char **argv)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},
        {"burst", required_argument, NULL, 'b'},
        {"algorithm", required_argument, NULL, 'a'},
        {"key-field", required_argument, NULL, 'k'},
        {"delimiter", required_argument, NULL, 'd'},
        {"buffer", required_argument, NULL, 'B'},
        {"stats", no_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t ms = 0;
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "r:b:a:k:d:sjh", opts, NULL)) != -1) {
        errno = 0;
        switch (c) {
        case 'r':
            if (cli_parse_rate(optarg, &l->conf.rate, &ms) < 0)
                return cli_warnx("limit: bad rate '%s' (want N/s, N/min, N/10s)", optarg), -1;
            l->conf.interval_us = ms * 1000;
            break;
        case 'b':
        case 'B':
        case 'k': {
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || end == optarg || errno || v == 0 || (c == 'k' && v > 65535))
                return cli_warnx("limit: bad number '%s'", optarg), -1;
            if (c == 'b')
                l->conf.burst = v;
            else if (c == 'B')
                l->buffer = v;
            else
                l->key_field = (unsigned)v;
            break;
        }
        case 'a':
            if (!strcmp(optarg, "token-bucket"))
                l->conf.algo = CORO_RL_TOKEN_BUCKET;
            else if (!strcmp(optarg, "sliding-window"))
                l->conf.algo = CORO_RL_SLIDING_WINDOW;
            else
                return cli_warnx("limit: unknown algorithm '%s'", optarg), -1;
            break;
        case 'd':
            if (strlen(optarg) != 1)
                return cli_warnx("limit: the delimiter is one character"), -1;
            l->delim = (unsigned char)optarg[0];
            break;
        case 's':
            l->stats = 1;
            break;
        case 'j':
            l->json = l->stats = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        default:
            fputs(usage_text, stderr);
            return -1;
        }
    }
    if (optind < argc)
        return cli_warnx("limit: unexpected argument '%s'", argv[optind]), -1;
    if (l->conf.rate == 0)
        return cli_warnx("limit: --rate is required"), -1;
    return 0;
}

/* See --burst in the usage text: enough to absorb timer lateness. */
static void default_burst(struct limit *l)
{
    if (l->conf.burst || l->conf.algo != CORO_RL_TOKEN_BUCKET)
        return;
    double per_s = (double)l->conf.rate * 1e6 / (double)l->conf.interval_us;
    uint64_t b = (uint64_t)(per_s * 0.02 + 0.999);
    l->conf.burst = per_s > 2.5 && b < 2 ? 2 : b < 1 ? 1 : b;
}

int cmd_limit(int argc, char **argv)
{
    struct limit l = {.delim = -1, .buffer = 10000};
    int r = parse_opts(&l, argc, argv);
    if (r != 0)
        return r > 0 ? CLI_EX_OK : CLI_EX_USAGE;
    default_burst(&l);
    l.progress = isatty(STDERR_FILENO);
    l.ntab = 64;
    l.tab = calloc(l.ntab, sizeof *l.tab);
    l.map = coro_ratelimit_map_new(&l.conf, 0);
    if (!l.tab || !l.map) {
        cli_warn("limit: cannot set up the limiter");
        free(l.tab);
        coro_ratelimit_map_free(l.map);
        return errno == EINVAL ? CLI_EX_USAGE : CLI_EX_OSERR;
    }
    coro_sem_init(&l.slots, l.buffer);
    g_limit = &l;
    /* stdin through coroutine I/O; its flags are restored for the shell. */
    int fl = fcntl(STDIN_FILENO, F_GETFL);
    coro_fd_nonblock(STDIN_FILENO);
    struct coro_config cfg;
    coro_config_default(&cfg);
    cfg.workers = 1;
    int rc = coro_run(&cfg, limit_main, &l);
    if (fl >= 0)
        fcntl(STDIN_FILENO, F_SETFL, fl);
    int status = CLI_EX_OK;
    if (rc < 0) {
        cli_warn("limit: cannot start the runtime");
        status = CLI_EX_SOFTWARE;
    } else if (l.err) {
        errno = l.err;
        cli_warn("limit");
        status = CLI_EX_FAIL;
    }
    if (l.stats)
        print_stats(&l);
    coro_sem_fini(&l.slots);
    coro_ratelimit_map_free(l.map);
    free(l.tab);
    return status;
}
