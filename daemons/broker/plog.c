/*
 * plog.c - the broker's storage engine: checksummed append-only log files
 * plus snapshots, group commit by a writer thread, crash-safe compaction
 * and replay that tells a torn tail from real corruption. It knows nothing
 * about MQTT; record types and contents belong to the owner.
 *
 * On-disk format (all integers little-endian):
 *   dir/log.<gen>       file header, then records appended in order
 *   dir/snapshot.<gen>  file header, records, then an end record
 *   file header (16 bytes): magic u32 ("CPLG" log / "CPSN" snapshot),
 *                           version u32 (1), generation u64
 *   record header (20 bytes): length u32 (of data), type u32, sequence u64,
 *                             crc u32; then length bytes of data
 *   crc = CRC32C (Castagnoli) of the data followed by the first 16 header
 *   bytes: appenders checksum their data in parallel, the writer adds the
 *   header once it has assigned the sequence number. Sequence numbers rise
 *   strictly within a file. The snapshot's end record (type PLOG_T_END)
 *   carries the record count, so a cut snapshot is detected.
 *
 * Generations. Compaction (1) rotates appends to log.<N+1>, (2) dumps the
 * owner's state into snapshot.<N+1>.tmp, fsyncs it, renames it to
 * snapshot.<N+1> and fsyncs the directory, (3) removes the files of older
 * generations. Open replays the newest snapshot.<S> then every log.<g>
 * with g >= S in order, and removes *.tmp and older generations. A crash
 * before (2) completes leaves snapshot.<S> + log.<S..N+1>: all data; after
 * it, snapshot.<N+1> + log.<N+1>: all data, some records seen twice.
 *
 * Damage. At a record that fails its checks, replay scans the rest of the
 * file for any valid record. None: a torn tail (a write cut by a crash),
 * discarded and counted, the file truncated to the last good record. One
 * found: corruption, never skipped silently - REFUSE fails naming the file
 * and offset; RECOVER copies the file aside (NAME.corrupt-<UTC time>),
 * truncates it to the good prefix and goes on. In a snapshot any damage
 * (including a missing end record) is corruption.
 *
 * Not for: interpreting records, or indexing (replay is the only reader).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coro/coro.h"
#include "coro/offload.h"
#include "coro/sync.h"
#include "plog.h"

#define PLOG_VERSION 1
#define MAGIC_LOG 0x474c5043u  /* "CPLG" */
#define MAGIC_SNAP 0x4e535043u /* "CPSN" */
#define FHDR 16                /* file header */
#define RHDR 20                /* record header */
#define PLOG_T_END 0xffffffffu /* snapshot end record */
#define SNAP_FLUSH (256u * 1024)

enum node_kind { N_RECORD, N_ROTATE };

/* One queued request, shared by its appender and the writer thread (two
 * references) so a cancelled appender can leave without waiting. */
struct pnode {
    struct pnode *next;
    coro_sem_t done;
    atomic_int refs;
    enum node_kind kind;
    int result;      /* 0 or an errno value */
    uint64_t gen;    /* N_ROTATE: the new generation */
    uint32_t dcrc;   /* CRC32C of the data */
    size_t len;      /* RHDR + data */
    uint8_t buf[];   /* record header, then data */
};

struct plog {
    struct plog_opts o;
    char *dir;
    int dirfd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t writer;
    struct pnode *head, *tail; /* under mu */
    bool stopping;             /* under mu */
    int broken;                /* under mu: errno that stops appends */
    /* Writer-owned. */
    int fd;
    uint64_t gen, size, next_seq, last_sync_ms;
    bool dirty;
    atomic_int compacting;
    _Atomic uint64_t log_bytes, appends, writes, fsyncs, compactions, cur_gen;
};

struct plog_snap {
    plog_t *l;
    int fd, err;
    uint64_t count;
    uint8_t *buf;
    size_t len, cap;
};

/* ---- encoding and CRC32C --------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
        crc_table[i] = c;
    }
}

/* Streaming form: crc32c(crc32c(0, a), b) == CRC32C of a then b. */
static uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Fill a record header for data already checksummed as dcrc. */
static void rec_header(uint8_t *h, uint32_t len, uint32_t type, uint64_t seq, uint32_t dcrc)
{
    put32(h, len);
    put32(h + 4, type);
    put64(h + 8, seq);
    put32(h + 16, crc32c(dcrc, h, 16));
}

static void file_header(uint8_t *h, uint32_t magic, uint64_t gen)
{
    put32(h, magic);
    put32(h + 4, PLOG_VERSION);
    put64(h + 8, gen);
}

/* ---- small file helpers ------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void fpath(char *out, size_t cap, const char *dir, const char *kind, uint64_t gen,
                  const char *suffix)
{
    snprintf(out, cap, "%s/%s.%llu%s", dir, kind, (unsigned long long)gen, suffix);
}

/* Create (truncating) a file holding only a file header, fsynced with its
 * directory entry. Returns the fd (O_WRONLY|O_APPEND) or -1. */
static int create_file(plog_t *l, const char *path, uint32_t magic, uint64_t gen)
{
    uint8_t h[FHDR];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    file_header(h, magic, gen);
    if (write_all(fd, h, FHDR) < 0 || fdatasync(fd) < 0 || fsync(l->dirfd) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- the writer thread ------------------------------------------------- */

static void node_unref(struct pnode *n)
{
    if (atomic_fetch_sub(&n->refs, 1) == 1) {
        coro_sem_fini(&n->done);
        free(n);
    }
}

static void node_finish(struct pnode *n, int result)
{
    n->result = result;
    coro_sem_post(&n->done);
    node_unref(n);
}

static void set_broken(plog_t *l, int e)
{
    pthread_mutex_lock(&l->mu);
    if (!l->broken)
        l->broken = e;
    pthread_mutex_unlock(&l->mu);
}

static int do_sync(plog_t *l)
{
    if (!l->dirty)
        return 0;
    atomic_fetch_add(&l->fsyncs, 1);
    if (fdatasync(l->fd) < 0) {
        /* The kernel may have dropped the dirty pages: never retry (fsyncgate). */
        set_broken(l, EIO);
        return -1;
    }
    l->dirty = false;
    l->last_sync_ms = mono_ms();
    return 0;
}

/* writev the records [first, end) at the end of the log. On a failed write
 * the file is cut back so a later batch does not follow a partial record. */
static int write_run(plog_t *l, struct pnode *first, struct pnode *end)
{
    struct iovec iov[64];
    uint64_t start = l->size, n = 0;
    for (struct pnode *p = first; p != end;) {
        int cnt = 0;
        for (; p != end && cnt < 64; p = p->next, cnt++) {
            uint32_t dlen = (uint32_t)(p->len - RHDR);
            rec_header(p->buf, dlen, get32(p->buf + 4), l->next_seq++, p->dcrc);
            iov[cnt] = (struct iovec){p->buf, p->len};
            n++;
        }
        for (int i = 0; i < cnt;) {
            ssize_t r = writev(l->fd, iov + i, cnt - i);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                goto fail;
            l->size += (uint64_t)r;
            for (; i < cnt && (size_t)r >= iov[i].iov_len; i++)
                r -= (ssize_t)iov[i].iov_len;
            if (i < cnt) {
                iov[i].iov_base = (uint8_t *)iov[i].iov_base + r;
                iov[i].iov_len -= (size_t)r;
            }
        }
    }
    l->dirty = true;
    atomic_fetch_add(&l->writes, 1);
    atomic_fetch_add(&l->appends, n);
    atomic_store(&l->log_bytes, l->size - FHDR);
    return 0;
fail: {
    int e = errno;
    if (ftruncate(l->fd, (off_t)start) < 0)
        set_broken(l, EIO);
    l->size = start;
    errno = e;
    return -1;
}
}

static int rotate(plog_t *l)
{
    char path[PATH_MAX];
    if (do_sync(l) < 0)
        return -1;
    fpath(path, sizeof path, l->dir, "log", l->gen + 1, "");
    int fd = create_file(l, path, MAGIC_LOG, l->gen + 1);
    if (fd < 0)
        return -1;
    close(l->fd);
    l->fd = fd;
    l->gen++;
    l->size = FHDR;
    atomic_store(&l->cur_gen, l->gen);
    atomic_store(&l->log_bytes, 0);
    return 0;
}

/* Write the records up to the next rotate marker in one writev, make them
 * durable per policy, wake their appenders; then handle the marker. */
static void process_batch(plog_t *l, struct pnode *batch)
{
    while (batch) {
        struct pnode *end = batch;
        while (end && end->kind == N_RECORD)
            end = end->next;
        int rc = 0;
        pthread_mutex_lock(&l->mu);
        int broken = l->broken;
        pthread_mutex_unlock(&l->mu);
        if (broken)
            rc = broken;
        else if (batch != end && write_run(l, batch, end) < 0)
            rc = errno;
        else if (batch != end && l->o.fsync == PLOG_FSYNC_ALWAYS && do_sync(l) < 0)
            rc = EIO;
        else if (l->o.fsync == PLOG_FSYNC_INTERVAL &&
                 mono_ms() - l->last_sync_ms >= l->o.fsync_interval_ms)
            do_sync(l);
        while (batch != end) {
            struct pnode *next = batch->next;
            node_finish(batch, rc);
            batch = next;
        }
        if (end) {
            batch = end->next;
            rc = broken ? broken : rotate(l) < 0 ? errno : 0;
            end->gen = l->gen;
            node_finish(end, rc);
        }
    }
}

/* Wait for work; under INTERVAL wake in time to fsync what was written. */
static bool writer_wait(plog_t *l)
{
    while (!l->head && !l->stopping) {
        if (l->o.fsync != PLOG_FSYNC_INTERVAL || !l->dirty) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        uint64_t due = l->last_sync_ms + l->o.fsync_interval_ms;
        if (mono_ms() >= due) {
            pthread_mutex_unlock(&l->mu);
            do_sync(l);
            pthread_mutex_lock(&l->mu);
            continue;
        }
        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    return l->head != NULL;
}

static void *writer_main(void *arg)
{
    plog_t *l = arg;
    pthread_mutex_lock(&l->mu);
    while (writer_wait(l)) {
        struct pnode *batch = l->head;
        l->head = l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        process_batch(l, batch);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Queue n for the writer and park until it is done. */
static int submit(plog_t *l, struct pnode *n)
{
    coro_sem_init(&n->done, 0);
    atomic_init(&n->refs, 2);
    n->next = NULL;
    pthread_mutex_lock(&l->mu);
    int e = l->stopping ? ESHUTDOWN : l->broken;
    if (!e) {
        if (l->tail)
            l->tail->next = n;
        else
            l->head = n;
        l->tail = n;
        pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (e) {
        coro_sem_fini(&n->done);
        free(n);
        errno = e;
        return -1;
    }
    if (coro_sem_wait(&n->done) < 0) {
        node_unref(n); /* the writer frees it when done */
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

int plog_append(plog_t *l, uint32_t type, const void *data, size_t len)
{
    if (!l || type >= PLOG_TYPE_RESERVED || (len && !data)) {
        errno = EINVAL;
        return -1;
    }
    if (len > PLOG_MAX_RECORD) {
        errno = EMSGSIZE;
        return -1;
    }
    struct pnode *n = malloc(sizeof *n + RHDR + len);
    if (!n)
        return -1;
    n->kind = N_RECORD;
    n->len = RHDR + len;
    put32(n->buf + 4, type);
    if (len)
        memcpy(n->buf + RHDR, data, len);
    n->dcrc = crc32c(0, data, len);
    if (submit(l, n) < 0)
        return -1;
    int rc = n->result;
    node_unref(n);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

uint64_t plog_log_bytes(const plog_t *l)
{
    return atomic_load(&((plog_t *)l)->log_bytes);
}

void plog_stats_get(const plog_t *l, struct plog_stats *st)
{
    plog_t *m = (plog_t *)l;
    st->appends = atomic_load(&m->appends);
    st->writes = atomic_load(&m->writes);
    st->fsyncs = atomic_load(&m->fsyncs);
    st->compactions = atomic_load(&m->compactions);
    st->generation = atomic_load(&m->cur_gen);
}

/* ---- compaction -------------------------------------------------------- */

/* Blocking steps run through coro_offload (inline outside a coroutine);
 * the job's own result counts, even if the caller was cancelled meanwhile. */
struct job {
    plog_t *l;
    plog_snap_t *w;
    uint64_t gen;
    int rc, err;
};

static void run(void (*fn)(struct job *), struct job *j)
{
    coro_offload((void (*)(void *))fn, j);
}

static void job_flush(struct job *j)
{
    plog_snap_t *w = j->w;
    j->rc = write_all(w->fd, w->buf, w->len);
    j->err = errno;
    w->len = 0;
}

static int snap_flush(plog_snap_t *w)
{
    struct job j = {.w = w};
    run(job_flush, &j);
    if (j.rc < 0) {
        w->err = j.err;
        errno = j.err;
    }
    return j.rc;
}

static int snap_reserve(plog_snap_t *w, size_t n)
{
    if (w->len + n <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : SNAP_FLUSH;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (!b)
        return -1;
    w->buf = b;
    w->cap = cap;
    return 0;
}

int plog_snapshot_put(plog_snap_t *w, uint32_t type, const void *data, size_t len)
{
    if (w->err) {
        errno = w->err;
        return -1;
    }
    if (type >= PLOG_TYPE_RESERVED || len > PLOG_MAX_RECORD || (len && !data)) {
        errno = len > PLOG_MAX_RECORD ? EMSGSIZE : EINVAL;
        return -1;
    }
    if (snap_reserve(w, RHDR + len) < 0)
        return -1;
    uint8_t *h = w->buf + w->len;
    if (len)
        memcpy(h + RHDR, data, len);
    rec_header(h, (uint32_t)len, type, ++w->count, crc32c(0, data, len));
    w->len += RHDR + len;
    return w->len >= SNAP_FLUSH ? snap_flush(w) : 0;
}

static void job_create(struct job *j)
{
    char path[PATH_MAX];
    plog_t *l = j->w->l;
    fpath(path, sizeof path, l->dir, "snapshot", j->gen, ".tmp");
    j->w->fd = create_file(l, path, MAGIC_SNAP, j->gen);
    j->rc = j->w->fd < 0 ? -1 : 0;
    j->err = errno;
}

/* Unlink snapshot.<g> and log.<g> for every g < gen (older generations). */
static void remove_older(plog_t *l, uint64_t gen)
{
    DIR *d = opendir(l->dir);
    struct dirent *e;
    char path[PATH_MAX];
    if (!d)
        return;
    while ((e = readdir(d))) {
        unsigned long long g;
        int end = 0;
        if ((sscanf(e->d_name, "log.%llu%n", &g, &end) == 1 ||
             sscanf(e->d_name, "snapshot.%llu%n", &g, &end) == 1) &&
            e->d_name[end] == '\0' && g < gen) {
            snprintf(path, sizeof path, "%s/%s", l->dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    fsync(l->dirfd);
}

/* End record, fsync, rename into place, fsync the directory, drop the past. */
static void job_commit(struct job *j)
{
    plog_snap_t *w = j->w;
    char tmp[PATH_MAX], path[PATH_MAX];
    uint8_t cnt[8];
    put64(cnt, w->count);
    rec_header(w->buf + w->len, 8, PLOG_T_END, w->count + 1, crc32c(0, cnt, 8));
    memcpy(w->buf + w->len + RHDR, cnt, 8);
    w->len += RHDR + 8;
    fpath(tmp, sizeof tmp, w->l->dir, "snapshot", j->gen, ".tmp");
    fpath(path, sizeof path, w->l->dir, "snapshot", j->gen, "");
    j->rc = -1;
    if (write_all(w->fd, w->buf, w->len) < 0 || fsync(w->fd) < 0)
        goto out;
    if (rename(tmp, path) < 0 || fsync(w->l->dirfd) < 0)
        goto out;
    remove_older(w->l, j->gen);
    j->rc = 0;
out:
    j->err = errno;
}

static void job_abort(struct job *j)
{
    char tmp[PATH_MAX];
    fpath(tmp, sizeof tmp, j->w->l->dir, "snapshot", j->gen, ".tmp");
    unlink(tmp);
}

static int rotate_log(plog_t *l, uint64_t *gen)
{
    struct pnode *n = malloc(sizeof *n);
    if (!n)
        return -1;
    n->kind = N_ROTATE;
    n->len = 0;
    if (submit(l, n) < 0)
        return -1;
    int rc = n->result;
    *gen = n->gen;
    node_unref(n);
    errno = rc;
    return rc ? -1 : 0;
}

static int compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg)
{
    plog_snap_t w = {.l = l, .fd = -1};
    struct job j = {.w = &w};
    int rc = -1;
    if (rotate_log(l, &j.gen) < 0)
        return -1;
    run(job_create, &j);
    if (j.rc < 0) {
        errno = j.err;
        return -1;
    }
    if (dump(arg, &w) < 0 || w.err)
        goto fail;
    /* Room for the end record, so the commit job cannot fail on memory. */
    if (snap_reserve(&w, RHDR + 8) < 0)
        goto fail;
    run(job_commit, &j);
    if (j.rc < 0) {
        w.err = j.err;
        goto fail;
    }
    atomic_fetch_add(&l->compactions, 1);
    rc = 0;
fail: {
    int e = w.err ? w.err : errno;
    if (rc < 0)
        run(job_abort, &j);
    close(w.fd);
    free(w.buf);
    errno = e;
    return rc;
}
}

int plog_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg)
{
    if (atomic_exchange(&l->compacting, 1)) {
        errno = EBUSY;
        return -1;
    }
    int rc = compact(l, dump, arg);
    int e = errno;
    atomic_store(&l->compacting, 0);
    errno = e;
    return rc;
}

int plog_maybe_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg)
{
    if (!l->o.compact_after_bytes || plog_log_bytes(l) < l->o.compact_after_bytes ||
        atomic_load(&l->compacting))
        return 0;
    if (plog_compact(l, dump, arg) < 0 && errno != EBUSY)
        return -1;
    return 0;
}

/* ---- close ------------------------------------------------------------- */

static void job_close(struct job *j)
{
    plog_t *l = j->l;
    pthread_join(l->writer, NULL);
    j->rc = fdatasync(l->fd);
    pthread_mutex_lock(&l->mu);
    if (l->broken)
        j->rc = -1;
    pthread_mutex_unlock(&l->mu);
}

static void plog_free(plog_t *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->dirfd >= 0)
        close(l->dirfd);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->dir);
    free(l);
}

int plog_close(plog_t *l)
{
    if (!l)
        return 0;
    struct job j = {.l = l};
    pthread_mutex_lock(&l->mu);
    l->stopping = true; /* the writer drains the queue, then exits */
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    run(job_close, &j);
    plog_free(l);
    if (j.rc < 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* ---- open and replay --------------------------------------------------- */

struct replay {
    plog_t *l;
    int (*fn)(void *arg, uint32_t type, const void *data, size_t len);
    void *arg;
    struct plog_report *rep;
    char *err;
    size_t errlen;
};

enum scan_status { S_OK, S_TORN, S_CORRUPT, S_ABORT };

struct scan {
    enum scan_status st;
    uint64_t good, nrec, last_seq;
    const char *why;
};

/* Is there a well-formed record at off, newer than last_seq? why says what
 * is wrong when there is not. */
static bool rec_valid(const uint8_t *p, uint64_t size, uint64_t off, uint64_t last_seq,
                      const char **why)
{
    const uint8_t *h = p + off;
    if (size - off < RHDR)
        return *why = "short record header", false;
    uint32_t len = get32(h);
    if (len > PLOG_MAX_RECORD || len > size - off - RHDR)
        return *why = "bad record length", false;
    if (get64(h + 8) <= last_seq)
        return *why = "sequence number out of order", false;
    if (crc32c(crc32c(0, h + RHDR, len), h, 16) != get32(h + 16))
        return *why = "bad checksum", false;
    return true;
}

static bool later_valid(const uint8_t *p, uint64_t size, uint64_t off, uint64_t last_seq)
{
    const char *why;
    for (uint64_t o = off + 1; o + RHDR <= size; o++)
        if (rec_valid(p, size, o, last_seq, &why))
            return true;
    return false;
}

/* The snapshot's end record: its count must match and nothing may follow. */
static bool snap_end_ok(const uint8_t *h, uint64_t off, uint64_t size, uint64_t nrec)
{
    return get32(h) == 8 && get64(h + RHDR) == nrec && off + RHDR + 8 == size;
}

static void scan_records(struct replay *r, const uint8_t *p, uint64_t size, bool snap,
                         struct scan *sc)
{
    uint64_t off = FHDR;
    bool ended = false;
    while (off < size && !ended) {
        const uint8_t *h = p + off;
        if (!rec_valid(p, size, off, sc->last_seq, &sc->why))
            break;
        uint32_t len = get32(h), type = get32(h + 4);
        if (snap && type == PLOG_T_END && snap_end_ok(h, off, size, sc->nrec)) {
            ended = true;
        } else if (type >= PLOG_TYPE_RESERVED) {
            sc->why = "reserved record type";
            break;
        } else if (r->fn(r->arg, type, h + RHDR, len) < 0) {
            sc->st = S_ABORT;
            return;
        } else {
            sc->nrec++;
        }
        sc->last_seq = get64(h + 8);
        off += RHDR + len;
    }
    sc->good = off;
    if (off == size && (ended || !snap))
        sc->st = S_OK;
    else if (snap || later_valid(p, size, off, sc->last_seq))
        sc->st = S_CORRUPT;
    else
        sc->st = S_TORN;
    if (off == size && snap && !ended)
        sc->why = "snapshot has no end record";
}

static int fail_msg(struct replay *r, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_msg(struct replay *r, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    errno = e;
    return -1;
}

/* Copy the damaged file to PATH.corrupt-<UTC time>[-N], fsynced. */
static int copy_aside(struct replay *r, const char *path, const uint8_t *p, uint64_t size,
                      char *out, size_t cap)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    int fd = -1;
    for (int i = 0; fd < 0 && i < 100; i++) {
        if (i)
            snprintf(out, cap, "%s.corrupt-%s-%d", path, stamp, i);
        else
            snprintf(out, cap, "%s.corrupt-%s", path, stamp);
        fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return fail_msg(r, errno, "%s: cannot copy the damaged file aside: %s", out,
                        strerror(errno));
    if (write_all(fd, p, size) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(out);
        return fail_msg(r, e, "%s: %s", out, strerror(e));
    }
    close(fd);
    return 0;
}

/* Cut the file to its good prefix (a fresh header if even that was bad);
 * a snapshot gets its end record back. */
static int cut_file(int fd, uint64_t good, bool snap, uint32_t magic, uint64_t gen,
                    const struct scan *sc)
{
    uint8_t b[RHDR + 8];
    if (ftruncate(fd, (off_t)(good < FHDR ? 0 : good)) < 0)
        return -1;
    if (good < FHDR) {
        file_header(b, magic, gen);
        if (pwrite(fd, b, FHDR, 0) != FHDR)
            return -1;
        good = FHDR;
    }
    if (snap) {
        put64(b + RHDR, sc->nrec);
        rec_header(b, 8, PLOG_T_END, sc->last_seq + 1, crc32c(0, b + RHDR, 8));
        if (pwrite(fd, b, sizeof b, (off_t)good) != (ssize_t)sizeof b)
            return -1;
    }
    return fdatasync(fd);
}

static int handle_damage(struct replay *r, const char *path, int fd, const uint8_t *p,
                         uint64_t size, bool snap, uint32_t magic, uint64_t gen,
                         struct scan *sc)
{
    struct plog_report *rep = r->rep;
    char moved[PATH_MAX + 64];
    if (sc->st == S_TORN) {
        rep->torn_bytes += size - sc->good;
    } else {
        if (r->l->o.on_corruption == PLOG_REFUSE)
            return fail_msg(r, EBADMSG, "%s: corrupt at offset %llu (%s), %llu bytes follow",
                            path, (unsigned long long)sc->good, sc->why,
                            (unsigned long long)(size - sc->good));
        if (copy_aside(r, path, p, size, moved, sizeof moved) < 0)
            return -1;
        if (!rep->corrupt++) {
            rep->corrupt_offset = sc->good;
            snprintf(rep->moved_to, sizeof rep->moved_to, "%.511s", moved);
        }
        rep->lost_bytes += size - sc->good;
    }
    if (cut_file(fd, sc->good, snap, magic, gen, sc) < 0)
        return fail_msg(r, errno, "%s: cannot truncate: %s", path, strerror(errno));
    return 0;
}

/* Replay one file; a damaged one is repaired per policy. */
static int replay_file(struct replay *r, const char *kind, uint64_t gen, uint64_t *last_seq)
{
    char path[PATH_MAX];
    bool snap = kind[0] == 's';
    uint32_t magic = snap ? MAGIC_SNAP : MAGIC_LOG;
    struct scan sc = {.st = S_OK};
    struct stat st;
    fpath(path, sizeof path, r->l->dir, kind, gen, "");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail_msg(r, e, "%s: %s", path, strerror(e));
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int rc = -1;
    if (p == MAP_FAILED) {
        fail_msg(r, errno, "%s: mmap: %s", path, strerror(errno));
        goto out_close;
    }
    if (size >= FHDR && get32(p) == magic && get32(p + 4) != PLOG_VERSION) {
        fail_msg(r, EPROTO, "%s: unsupported format version %u", path, get32(p + 4));
        goto out;
    }
    if (size < FHDR && !snap) {
        sc.st = S_TORN; /* a crash right after creating the file */
    } else if (size < FHDR || get32(p) != magic || get64(p + 8) != gen) {
        sc.st = S_CORRUPT;
        sc.why = "bad file header";
    } else {
        scan_records(r, p, size, snap, &sc);
    }
    if (sc.st == S_ABORT) {
        fail_msg(r, errno ? errno : ECANCELED, "%s: replay aborted by the owner", path);
        goto out;
    }
    if (sc.st != S_OK && handle_damage(r, path, fd, p, size, snap, magic, gen, &sc) < 0)
        goto out;
    if (snap)
        r->rep->snapshot_records += sc.nrec;
    else
        r->rep->records += sc.nrec;
    if (sc.last_seq > *last_seq)
        *last_seq = sc.last_seq;
    rc = 0;
out:
    if (p)
        munmap(p, size);
out_close:
    close(fd);
    return rc;
}

struct listing {
    uint64_t snap;   /* newest snapshot generation, 0 = none */
    uint64_t *logs;  /* log generations, ascending */
    size_t nlogs;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Find the generations present; leftover temp snapshots are removed. */
static int list_dir(plog_t *l, struct listing *ls)
{
    DIR *d = opendir(l->dir);
    struct dirent *e;
    size_t cap = 0;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        unsigned long long g;
        int end = 0;
        bool snap = sscanf(e->d_name, "snapshot.%llu%n", &g, &end) == 1;
        if (snap && !strcmp(e->d_name + end, ".tmp")) {
            unlinkat(l->dirfd, e->d_name, 0);
        } else if (snap && !e->d_name[end]) {
            ls->snap = g > ls->snap ? g : ls->snap;
        } else if (sscanf(e->d_name, "log.%llu%n", &g, &end) == 1 && !e->d_name[end]) {
            if (ls->nlogs == cap) {
                cap = cap ? 2 * cap : 8;
                uint64_t *n = realloc(ls->logs, cap * sizeof *n);
                if (!n)
                    goto fail;
                ls->logs = n;
            }
            ls->logs[ls->nlogs++] = g;
        }
    }
    closedir(d);
    if (ls->nlogs)
        qsort(ls->logs, ls->nlogs, sizeof *ls->logs, cmp_u64);
    return 0;
fail:
    closedir(d);
    return -1;
}

static int replay_all(struct replay *r, struct listing *ls)
{
    uint64_t seq = 0;
    if (ls->snap && replay_file(r, "snapshot", ls->snap, &seq) < 0)
        return -1;
    seq = 0;
    for (size_t i = 0; i < ls->nlogs; i++)
        if (ls->logs[i] >= ls->snap && replay_file(r, "log", ls->logs[i], &seq) < 0)
            return -1;
    r->l->next_seq = seq + 1;
    return 0;
}

/* Append to the newest log generation, creating it if needed. */
static int open_current(struct replay *r, struct listing *ls)
{
    plog_t *l = r->l;
    char path[PATH_MAX];
    uint64_t gen = ls->nlogs ? ls->logs[ls->nlogs - 1] : 1;
    gen = gen > ls->snap ? gen : ls->snap ? ls->snap : 1;
    fpath(path, sizeof path, l->dir, "log", gen, "");
    if (ls->nlogs && gen == ls->logs[ls->nlogs - 1])
        l->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    else
        l->fd = create_file(l, path, MAGIC_LOG, gen);
    off_t size = l->fd < 0 ? -1 : lseek(l->fd, 0, SEEK_END);
    if (size < 0)
        return fail_msg(r, errno, "%s: %s", path, strerror(errno));
    l->gen = gen;
    l->size = (uint64_t)size;
    atomic_store(&l->cur_gen, gen);
    atomic_store(&l->log_bytes, l->size - FHDR);
    if (ls->snap)
        remove_older(l, ls->snap);
    return 0;
}

static int start_writer(plog_t *l)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->last_sync_ms = mono_ms();
    errno = pthread_create(&l->writer, NULL, writer_main, l);
    return errno ? -1 : 0;
}

plog_t *plog_open(const struct plog_opts *o,
                  int (*replay)(void *arg, uint32_t type, const void *data, size_t len),
                  void *arg, struct plog_report *rep, char *err, size_t errlen)
{
    struct plog_report dummy;
    struct listing ls = {0};
    plog_t *l = calloc(1, sizeof *l);
    struct replay r = {l, replay, arg, rep ? rep : &dummy, err, errlen};
    memset(r.rep, 0, sizeof *r.rep);
    if (!l || !o || !o->dir || !replay || o->fsync > PLOG_FSYNC_NEVER ||
        o->on_corruption > PLOG_REFUSE) {
        fail_msg(&r, l ? EINVAL : ENOMEM, "plog: %s", l ? "bad options" : "out of memory");
        free(l);
        return NULL;
    }
    l->o = *o;
    l->fd = l->dirfd = -1;
    if (!l->o.fsync_interval_ms)
        l->o.fsync_interval_ms = 1000;
    if (!(l->dir = strdup(o->dir)) || (mkdir(o->dir, 0700) < 0 && errno != EEXIST) ||
        (l->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        list_dir(l, &ls) < 0) {
        fail_msg(&r, errno, "%s: %s", o->dir, strerror(errno));
        goto fail;
    }
    if (replay_all(&r, &ls) < 0 || open_current(&r, &ls) < 0)
        goto fail;
    if (start_writer(l) < 0) {
        fail_msg(&r, errno, "plog: writer thread: %s", strerror(errno));
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        goto fail;
    }
    free(ls.logs);
    return l;
fail: {
    int e = errno;
    free(ls.logs);
    if (l->fd >= 0)
        close(l->fd);
    if (l->dirfd >= 0)
        close(l->dirfd);
    free(l->dir);
    free(l);
    errno = e;
    return NULL;
}
}
