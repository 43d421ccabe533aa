/*
 * plog.h - the broker's storage engine: an append-only, checksummed record
 * log plus a periodic snapshot, in one directory. It stores opaque typed
 * records; what they mean (retained messages, sessions, queued QoS 1/2
 * messages) is the owner's business (the broker core).
 *
 * Recovery contract. On open the newest complete snapshot is replayed, then
 * every log generation written since it, in order. Replay may see a record
 * twice (a record appended while a compaction was dumping the state can be
 * both in the new snapshot and in the new log): records must be idempotent
 * (set/delete by key). Compaction rule: the state dump() sees must include
 * the effect of every record whose plog_append() began before
 * plog_compact() was called - update the in-memory state before (or while)
 * appending, never only after the append returns.
 *
 * Thread-safety: one plog_t may be used by coroutines on every worker at
 * once. plog_open and plog_close are called once each, by the owner.
 */
#ifndef CORO_BROKER_PLOG_H
#define CORO_BROKER_PLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plog plog_t;

enum plog_fsync { PLOG_FSYNC_ALWAYS, PLOG_FSYNC_INTERVAL, PLOG_FSYNC_NEVER };
enum plog_corrupt { PLOG_RECOVER, PLOG_REFUSE };

struct plog_opts {
    const char *dir;               /* created (0700) if missing */
    enum plog_fsync fsync;
    uint64_t fsync_interval_ms;    /* INTERVAL: at most this long between fsyncs */
    enum plog_corrupt on_corruption;
    uint64_t compact_after_bytes;  /* plog_maybe_compact threshold; 0 = never */
};

struct plog_report {
    uint64_t records, snapshot_records; /* replayed from the logs / the snapshot */
    uint64_t torn_bytes;                /* discarded incomplete tail(s) */
    int corrupt;                        /* damaged files found (RECOVER moved them aside) */
    uint64_t corrupt_offset, lost_bytes; /* first damage: offset in its file; bytes lost */
    char moved_to[512];                 /* path of the copy of the (first) damaged file */
};

/* Record types at or above this value are the engine's own; owners use less. */
#define PLOG_TYPE_RESERVED 0xffffff00u
/* Largest record an owner may append or put (EMSGSIZE beyond). */
#define PLOG_MAX_RECORD (64u * 1024 * 1024)

/*
 * Open (creating the directory and files as needed) and replay the snapshot
 * then the log through replay(arg, type, data, len) (data is valid only
 * during the call); replay returning -1 aborts the open. Torn final record: discarded, counted in
 * rep->torn_bytes, the file truncated to the last good record. A corrupt
 * record followed by valid data: RECOVER keeps what came before, copies the
 * damaged file aside in the directory (rep->moved_to), fills
 * corrupt_offset/lost_bytes and continues with the good prefix; REFUSE
 * fails with a reason naming the file and offset. Returns NULL and a reason
 * in err on failure (errno set).
 * Blocking: this implementation does its file I/O in the calling thread and
 * runs replay there. Call it before coro_run, at start-up, or wrap it in
 * coro_offload (then replay runs on an offload thread). rep may be NULL.
 */
plog_t *plog_open(const struct plog_opts *o,
                  int (*replay)(void *arg, uint32_t type, const void *data, size_t len),
                  void *arg, struct plog_report *rep, char *err, size_t errlen);

/*
 * Append a record (data is copied; type < PLOG_TYPE_RESERVED). Returns once
 * it is durable per the fsync policy: ALWAYS fsynced, INTERVAL and NEVER
 * written to the file (page cache). Appends from any coroutine on any
 * worker are batched by a writer thread into one write (and for ALWAYS one
 * fdatasync) per group, so the caller parks, never blocks its worker. May
 * yield. 0, or -1 with errno: EINVAL, EMSGSIZE, ENOMEM, EIO (a write or
 * fsync failed: the log refuses further appends), ECANCELED (the caller was
 * cancelled; the record may or may not be logged), ESHUTDOWN (closing).
 */
int plog_append(plog_t *l, uint32_t type, const void *data, size_t len);

/*
 * Compaction. plog_compact first switches appends to a new log generation,
 * then calls dump(arg, w), which calls plog_snapshot_put(w, ...) for every
 * live record; the snapshot is written to a temp file, fsynced, renamed in
 * place and the directory fsynced; only then are the older snapshot and
 * logs removed. A crash at any step leaves a consistent set (see the
 * recovery contract above). Records appended meanwhile go to the new log.
 * May yield (file I/O runs through coro_offload). dump returning -1 aborts
 * the compaction (the previous files stay authoritative).
 * plog_compact: 0, or -1 with errno: EBUSY (a compaction is running), EIO,
 * ENOSPC..., ECANCELED, or what dump left in errno.
 * plog_maybe_compact: compacts if the current log has grown past
 * compact_after_bytes and no compaction is running; 0 if nothing was due.
 */
typedef struct plog_snap plog_snap_t;
int plog_snapshot_put(plog_snap_t *w, uint32_t type, const void *data, size_t len);
int plog_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg);
int plog_maybe_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg);

/* Bytes in the current log generation (records since the last compaction). */
uint64_t plog_log_bytes(const plog_t *l);

/* Counters for tests and /metrics. */
struct plog_stats {
    uint64_t appends;     /* records written to the log */
    uint64_t writes;      /* write batches (one writev each) */
    uint64_t fsyncs;      /* fdatasync calls on the log */
    uint64_t compactions; /* completed snapshots */
    uint64_t generation;  /* current log generation */
};
void plog_stats_get(const plog_t *l, struct plog_stats *st);

/* Write what is queued, fsync, stop the writer and free l. May yield (the
 * final fsync runs through coro_offload). 0, or -1/EIO if data could not be
 * made durable (l is freed either way). NULL is a no-op. */
int plog_close(plog_t *l);

#ifdef __cplusplus
}
#endif
#endif
