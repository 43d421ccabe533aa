/*
 * pipeline_stats.c - the figures of `coro pipeline`: a live line per stage
 * on a TTY, the summary of --stats / --json, and the stall watchdog.
 *
 * A stage's busy % is the share of its workers' time spent with records in
 * flight whose answers could move on (see busy_update in pipeline_stage.c);
 * the stage with the highest busy % is the bottleneck: the stages before it
 * wait on its queue, the ones after it wait for its output.
 * Not for: moving records (pipeline.c, pipeline_stage.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

static double stage_busy(const struct pl_stage *s, uint64_t now, uint64_t elapsed)
{
    uint64_t sum = 0;

    for (int j = 0; j < s->nworkers; j++)
        sum += pl_worker_busy(&s->workers[j], now);
    return elapsed ? 100.0 * (double)sum / ((double)elapsed * s->nworkers) : 0;
}

int pl_stats_bottleneck(const struct pl_run *run, uint64_t now)
{
    uint64_t elapsed = now - run->start_ns;
    double best = -1;
    int idx = 0;

    for (int i = 0; i < run->nstages; i++) {
        double b = stage_busy(&run->stages[i], now, elapsed);
        if (b > best) {
            best = b;
            idx = i;
        }
    }
    return idx;
}

void pl_stats_watchdog(struct pl_run *run, uint64_t now)
{
    uint64_t stall_ns = (uint64_t)run->stall_ms * 1000000u;

    if (!run->stall_ms)
        return;
    for (int i = 0; i < run->nstages; i++) {
        struct pl_stage *s = &run->stages[i];
        for (int j = 0; j < s->nworkers; j++) {
            struct pl_worker *w = &s->workers[j];
            if (!w->busy_since || now - w->last_progress_ns < stall_ns)
                continue;
            pl_fail(run,
                    "stage %d worker %d (pid %d): no output for %lld s with %zu record%s "
                    "in flight (a stage command must write one line per input line and flush "
                    "it: awk fflush(), sed -u, python3 -u, grep --line-buffered)",
                    i + 1, j + 1, (int)coro_proc_pid(w->proc), (long long)run->stall_ms / 1000,
                    w->count, w->count == 1 ? "" : "s");
            return;
        }
    }
}

void pl_stats_live(struct pl_run *run, int done)
{
    uint64_t now = pl_now_ns();
    double dt = (double)(now - (run->live_t ? run->live_t : run->start_ns)) / 1e9;
    int bn = pl_stats_bottleneck(run, now);

    if (run->live_drawn)
        fprintf(stderr, "\x1b[%dA", run->live_drawn);
    if (done) {
        fputs("\r\x1b[J", stderr);
        return;
    }
    if (!run->live_prev && !(run->live_prev = calloc((size_t)run->nstages, sizeof(uint64_t))))
        return;
    for (int i = 0; i < run->nstages; i++) {
        struct pl_stage *s = &run->stages[i];
        fprintf(stderr,
                "\r\x1b[2Kstage %d x%d  %10llu rec  %9.0f rec/s  queue %5zu/%zu  "
                "busy %3.0f%%%s\n",
                i + 1, s->nworkers, (unsigned long long)s->records_out,
                dt > 0 ? (double)(s->records_out - run->live_prev[i]) / dt : 0, chan_len(s->in),
                run->buffer, stage_busy(s, now, now - run->start_ns),
                i == bn ? "  <- bottleneck" : "");
        run->live_prev[i] = s->records_out;
    }
    run->live_drawn = run->nstages;
    run->live_t = now;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_json(const struct pl_run *run, double secs, int bn)
{
    uint64_t now = run->end_ns, elapsed = now - run->start_ns;

    fprintf(stderr,
            "{\"elapsed_s\":%.3f,\"records_in\":%llu,\"records_out\":%llu,"
            "\"bottleneck\":%d,\"stages\":[",
            secs, (unsigned long long)run->records_read, (unsigned long long)run->records_written,
            bn + 1);
    for (int i = 0; i < run->nstages; i++) {
        const struct pl_stage *s = &run->stages[i];
        fprintf(stderr, "%s{\"stage\":%d,\"command\":", i ? "," : "", i + 1);
        json_str(stderr, s->cmd);
        fprintf(stderr,
                ",\"workers\":%d,\"records\":%llu,\"records_per_s\":%.1f,"
                "\"busy_pct\":%.1f,\"queue_peak\":%zu,\"queue_cap\":%zu,\"bottleneck\":%s}",
                s->nworkers, (unsigned long long)s->records_out,
                secs > 0 ? (double)s->records_out / secs : 0, stage_busy(s, now, elapsed),
                s->queue_peak, run->buffer, i == bn ? "true" : "false");
    }
    fputs("]}\n", stderr);
}

void pl_stats_print(struct pl_run *run)
{
    uint64_t now = run->end_ns, elapsed = now - run->start_ns;
    double secs = (double)elapsed / 1e9;
    int bn = pl_stats_bottleneck(run, now);

    if (run->json) {
        print_json(run, secs, bn);
        return;
    }
    fprintf(stderr, "%-6s %7s %10s %10s %6s %13s  %s\n", "stage", "workers", "records", "rec/s",
            "busy%", "queue peak", "command");
    for (int i = 0; i < run->nstages; i++) {
        const struct pl_stage *s = &run->stages[i];
        char q[32];
        snprintf(q, sizeof q, "%zu/%zu", s->queue_peak, run->buffer);
        fprintf(stderr, "%-6d %7d %10llu %10.0f %6.1f %13s  %s%s\n", i + 1, s->nworkers,
                (unsigned long long)s->records_out, secs > 0 ? (double)s->records_out / secs : 0,
                stage_busy(s, now, elapsed), q, s->cmd, i == bn ? "   <- bottleneck" : "");
    }
    fprintf(stderr, "%llu records in, %llu out in %.3f s (%.0f rec/s); bottleneck: stage %d\n",
            (unsigned long long)run->records_read, (unsigned long long)run->records_written, secs,
            secs > 0 ? (double)run->records_written / secs : 0, bn + 1);
}
