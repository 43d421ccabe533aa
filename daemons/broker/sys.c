/*
 * sys.c - the $SYS/broker/... topics mosquitto users expect: version,
 * uptime, clients, messages, subscriptions, retained count and bytes,
 * published as retained messages every [broker] sys_interval.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "coro/log.h"

static struct {
    coro_t *co;
    int64_t interval;
} Y;

static void sys_pub(const char *topic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sys_pub(const char *topic, const char *fmt, ...)
{
    char val[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    struct msg *m = msg_new(topic, strlen(topic), val, (size_t)n, 0, true);
    if (!m)
        return;
    retain_set(m);
    deliver_publish(m, NULL);
    msg_unref(m);
}

static int64_t sum3(metric_t **v)
{
    return metric_value(v[0]) + metric_value(v[1]) + metric_value(v[2]);
}

static void sys_once(void)
{
    sys_pub("$SYS/broker/version", "%s", BROKER_VERSION);
    sys_pub("$SYS/broker/uptime", "%" PRIu64 " seconds", (coro_now_ms() - bstats.start_ms) / 1000);
    sys_pub("$SYS/broker/clients/connected", "%" PRId64, metric_value(bstats.conns));
    sys_pub("$SYS/broker/clients/total", "%zu", session_count());
    sys_pub("$SYS/broker/messages/received", "%" PRId64, sum3(bstats.msgs_in));
    sys_pub("$SYS/broker/messages/sent", "%" PRId64, sum3(bstats.msgs_out));
    sys_pub("$SYS/broker/messages/dropped", "%" PRId64, metric_value(bstats.dropped));
    sys_pub("$SYS/broker/subscriptions/count", "%zu", topic_subscription_count(B.topics));
    sys_pub("$SYS/broker/retained messages/count", "%zu", topic_retained_count(B.topics));
    sys_pub("$SYS/broker/bytes/received", "%" PRId64, metric_value(bstats.bytes_in));
    sys_pub("$SYS/broker/bytes/sent", "%" PRId64, metric_value(bstats.bytes_out));
}

static void sys_loop(void *arg)
{
    do
        sys_once();
    while (coro_sleep_ms((uint64_t)Y.interval) == 0 && !atomic_load(&B.stopping));
}

void sys_start(int64_t interval_ms)
{
    Y.interval = interval_ms;
    if (interval_ms > 0 && !Y.co)
        Y.co = coro_spawn(sys_loop, NULL);
}

void sys_stop(void)
{
    if (!Y.co)
        return;
    coro_cancel(Y.co);
    coro_join(Y.co);
    Y.co = NULL;
}
