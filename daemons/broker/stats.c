/*
 * stats.c - the broker's /metrics series: connections, bytes, messages in
 * and out per QoS, drops, queue depths, persistence damage. Counters are
 * bumped on the hot path (lock-free shards), gauges computed when scraped.
 */
#include "broker.h"

struct broker_stats bstats;

static void queue_sum(struct session *s, void *arg)
{
    int64_t *v = arg;
    v[0] += (int64_t)s->qlen;
    v[1] += (int64_t)s->nfl;
}

static int64_t queued_fn(void *arg)
{
    int64_t v[2] = {0, 0};
    session_foreach(queue_sum, v);
    return v[(intptr_t)arg];
}

static int64_t sessions_fn(void *arg)
{
    return (int64_t)session_count();
}

static int64_t subs_fn(void *arg)
{
    return (int64_t)topic_subscription_count(B.topics);
}

static int64_t retained_fn(void *arg)
{
    return (int64_t)topic_retained_count(B.topics);
}

void stats_init(daemon_t *d)
{
    metrics_t *m = daemon_metrics(d);
    static const char *q[3] = {"0", "1", "2"};

    bstats.conns = metrics_gauge(m, "broker_clients_connected", "clients connected", (char *)NULL);
    bstats.conns_total = metrics_counter(m, "broker_clients_total", "CONNECTs accepted",
                                         (char *)NULL);
    bstats.bytes_in = metrics_counter(m, "broker_bytes_received_total", "bytes received",
                                      (char *)NULL);
    bstats.bytes_out = metrics_counter(m, "broker_bytes_sent_total", "bytes sent", (char *)NULL);
    for (int i = 0; i < 3; i++) {
        bstats.msgs_in[i] = metrics_counter(m, "broker_messages_received_total",
                                            "PUBLISH packets received", "qos", q[i],
                                            (char *)NULL);
        bstats.msgs_out[i] = metrics_counter(m, "broker_messages_sent_total",
                                             "PUBLISH packets sent", "qos", q[i], (char *)NULL);
    }
    bstats.dropped = metrics_counter(m, "broker_messages_dropped_total",
                                     "messages dropped: full queue (QoS 0) or offline limit",
                                     (char *)NULL);
    bstats.refused = metrics_counter(m, "broker_connections_refused_total",
                                     "connections refused (limits, authentication)",
                                     (char *)NULL);
    bstats.protocol_errors = metrics_counter(m, "broker_protocol_errors_total",
                                             "connections closed for protocol errors",
                                             (char *)NULL);
    bstats.keepalive_timeouts = metrics_counter(m, "broker_keepalive_timeouts_total",
                                                "connections closed by keepalive", (char *)NULL);
    bstats.persist_torn = metrics_counter(m, "broker_persistence_torn_bytes_total",
                                          "bytes of torn final records discarded at start",
                                          (char *)NULL);
    bstats.persist_corrupt = metrics_counter(m, "broker_persistence_corrupt_files_total",
                                             "damaged persistence files moved aside",
                                             (char *)NULL);
    bstats.persist_lost = metrics_counter(m, "broker_persistence_lost_bytes_total",
                                          "bytes lost to corrupt records", (char *)NULL);
    metrics_gauge_fn(m, "broker_queued_messages", "messages queued for clients", queued_fn,
                     (void *)0, (char *)NULL);
    metrics_gauge_fn(m, "broker_inflight_messages", "messages sent and not yet acknowledged",
                     queued_fn, (void *)1, (char *)NULL);
    metrics_gauge_fn(m, "broker_sessions", "sessions (connected and persistent)", sessions_fn,
                     NULL, (char *)NULL);
    metrics_gauge_fn(m, "broker_subscriptions", "subscriptions", subs_fn, NULL, (char *)NULL);
    metrics_gauge_fn(m, "broker_retained_messages", "retained messages", retained_fn, NULL,
                     (char *)NULL);
    bstats.start_ms = coro_now_ms();
}
