/*
 * main.c - coro-broker: an MQTT 3.1.1 broker on the coro daemon framework.
 * The framework owns argv, config loading, signals and systemd; this file
 * wires the broker into its start / reload / stop / status callbacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "broker.h"
#include "coro/log.h"

struct broker B;

static void apply_limits(const struct broker_conf *bc)
{
    atomic_store(&B.max_packet, (size_t)bc->broker.max_packet_size);
    atomic_store(&B.max_inflight, (size_t)bc->broker.max_inflight);
    atomic_store(&B.max_queued, (size_t)bc->broker.max_queued);
    atomic_store(&B.max_queued_bytes, (size_t)bc->broker.max_queued_bytes);
    atomic_store(&B.max_conns, (long)bc->broker.max_connections);
}

static int broker_start(daemon_t *d, const conf_t *c)
{
    const struct broker_conf *bc = c->data;
    char err[512];

    B.d = d;
    B.conf = bc;
    apply_limits(bc);
    stats_init(d);
    if (!(B.topics = topic_tree_new())) {
        log_errorx("out of memory");
        return -1;
    }
    if (auth_load(bc, err, sizeof(err)) < 0) {
        log_errorx("%s", err);
        return -1;
    }
    if (persist_open(bc, d) < 0)
        return -1;
    if (listener_apply(d, bc, err, sizeof(err)) < 0) {
        log_errorx("%s", err);
        return -1;
    }
    if (client_sweeper_start() < 0) {
        log_errorx("cannot start the keepalive sweeper");
        return -1;
    }
    persist_start_compactor();
    sys_start(bc->broker.sys_interval_ms);
    log_info("%s started: %zu listeners, %zu sessions restored", BROKER_VERSION,
             listener_count(), session_count());
    return 0;
}

static int broker_reload(daemon_t *d, const conf_t *old, const conf_t *c)
{
    const struct broker_conf *bc = c->data, *ob = old->data;
    char err[512];

    if (bc->broker.persistence != ob->broker.persistence ||
        (bc->broker.state_dir && ob->broker.state_dir &&
         strcmp(bc->broker.state_dir, ob->broker.state_dir)))
        log_warnx("persistence settings change on restart only");
    if (auth_load(bc, err, sizeof(err)) < 0) {
        log_errorx("reload: %s; keeping the old configuration", err);
        return -1;
    }
    if (listener_apply(d, bc, err, sizeof(err)) < 0) {
        log_errorx("reload: %s; keeping the old configuration", err);
        auth_load(ob, err, sizeof(err));
        return -1;
    }
    apply_limits(bc);
    B.conf = bc;
    sys_stop();
    sys_start(bc->broker.sys_interval_ms);
    log_info("reloaded: %zu listeners", listener_count());
    return 0;
}

static void broker_stop(daemon_t *d, uint64_t deadline_ms)
{
    atomic_store(&B.stopping, true);
    listener_close_all();
    sys_stop();
    client_stop_all();
    while (client_count() > 0 && coro_now_ms() < deadline_ms)
        coro_sleep_ms(10);
    client_sweeper_stop();
    persist_close();
}

static void broker_status(daemon_t *d, char *buf, size_t len)
{
    snprintf(buf, len, "%zu clients, %zu sessions, %zu listeners", client_count(),
             session_count(), listener_count());
}

static const struct daemon_ops ops = {
    "broker", PACKAGE_VERSION_STR, &broker_schema, broker_start, broker_reload, broker_stop,
    broker_status, NULL,
};

int main(int argc, char **argv)
{
    return daemon_main(&ops, argc, argv);
}
