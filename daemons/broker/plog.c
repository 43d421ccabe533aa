/*
 * plog.c - append-only log + snapshot engine (stub: the real engine follows).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "plog.h"

plog_t *plog_open(const struct plog_opts *o,
                  int (*replay)(void *arg, uint32_t type, const void *data, size_t len),
                  void *arg, struct plog_report *rep, char *err, size_t errlen)
{
    snprintf(err, errlen, "plog: not implemented yet");
    errno = ENOSYS;
    return NULL;
}

int plog_append(plog_t *l, uint32_t type, const void *data, size_t len)
{
    errno = ENOSYS;
    return -1;
}

int plog_snapshot_put(plog_snap_t *w, uint32_t type, const void *data, size_t len)
{
    errno = ENOSYS;
    return -1;
}

int plog_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg)
{
    errno = ENOSYS;
    return -1;
}

int plog_maybe_compact(plog_t *l, int (*dump)(void *arg, plog_snap_t *w), void *arg)
{
    return 0;
}

uint64_t plog_log_bytes(const plog_t *l)
{
    return 0;
}

void plog_stats_get(const plog_t *l, struct plog_stats *st)
{
    *st = (struct plog_stats){0};
}

int plog_close(plog_t *l)
{
    return 0;
}
