/*
 * conf_schema.c - every key of coro-broker.ini, once: the loader, -t,
 * --dump-config (the shipped conf/coro-broker.ini) and the key list of
 * coro-broker.ini(5) all come from these tables.
 */
#include <stddef.h>

#include "broker.h"

static const struct conf_enum fsync_names[] = {
    {"always", FSYNC_ALWAYS}, {"interval", FSYNC_INTERVAL}, {"never", FSYNC_NEVER}, {NULL, 0}};
static const struct conf_enum corrupt_names[] = {
    {"recover", CORRUPT_RECOVER}, {"refuse", CORRUPT_REFUSE}, {NULL, 0}};
static const struct conf_enum anon_names[] = {
    {"auto", ANON_AUTO}, {"yes", ANON_YES}, {"no", ANON_NO}, {NULL, 0}};

#define B_(m) CONF_FIELD(struct broker_conf, broker.m)
#define A_(m) CONF_FIELD(struct broker_conf, auth.m)
#define L_(m) CONF_FIELD(struct listener_conf, m)

static const struct conf_key broker_keys[] = {
    {"persistence", CONF_BOOL, B_(persistence), "no", 0, 0, NULL, 0,
     "keep retained messages, persistent sessions and queued QoS 1/2 messages in state_dir",
     NULL},
    {"state_dir", CONF_PATH, B_(state_dir), "/var/lib/coro-broker", 0, 0, NULL, 0,
     "directory of the persistence log and snapshot", NULL},
    {"fsync", CONF_ENUM, B_(fsync), "interval", 0, 0, fsync_names, 0,
     "when the log is flushed to disk: always (before each ack), interval, never", NULL},
    {"fsync_interval", CONF_DURATION, B_(fsync_interval_ms), "1s", 1, 3600000, NULL, 0,
     "time between flushes with fsync = interval", NULL},
    {"on_corruption", CONF_ENUM, B_(on_corruption), "recover", 0, 0, corrupt_names, 0,
     "a corrupt log record: recover (keep what precedes it, move the file aside) or refuse",
     NULL},
    {"compact_after", CONF_SIZE, B_(compact_after), "64m", 4096, (int64_t)1 << 40, NULL, 0,
     "rewrite the snapshot once the log grows past this size", NULL},
    {"sys_interval", CONF_DURATION, B_(sys_interval_ms), "10s", 0, 86400000, NULL, 0,
     "period of the $SYS/broker/... statistics topics; 0 = off", NULL},
    {"max_packet_size", CONF_SIZE, B_(max_packet_size), "1m", 64, 268435455, NULL, 0,
     "largest MQTT packet accepted; a larger one closes the connection", NULL},
    {"max_inflight", CONF_INT, B_(max_inflight), "100", 1, 65535, NULL, 0,
     "QoS 1/2 messages sent to a client and not yet acknowledged", NULL},
    {"max_queued", CONF_INT, B_(max_queued), "100000", 1, 100000000, NULL, 0,
     "messages queued per client; then QoS 0 is dropped and QoS 1/2 publishers wait", NULL},
    {"max_queued_bytes", CONF_SIZE, B_(max_queued_bytes), "64m", 1024, (int64_t)1 << 40, NULL,
     0, "payload bytes queued per client (same rules as max_queued)", NULL},
    {"max_connections", CONF_INT, B_(max_connections), "0", 0, 10000000, NULL, 0,
     "connections over all listeners; 0 = no limit", NULL},
    {"connect_timeout", CONF_DURATION, B_(connect_timeout_ms), "10s", 100, 3600000, NULL, 0,
     "time a new connection has to send CONNECT", NULL},
    {0},
};

static const struct conf_key auth_keys[] = {
    {"allow_anonymous", CONF_BOOL, A_(allow_anonymous), "yes", 0, 0, NULL, 0,
     "clients without a user name on loopback listeners (others: see [listener] allow_anonymous)",
     NULL},
    {"password_file", CONF_PATH, A_(password_file), NULL, 0, 0, NULL, 0,
     "users and PBKDF2-SHA512 hashes, made with `coro passwd`; re-read on SIGHUP", NULL},
    {"acl_file", CONF_PATH, A_(acl_file), NULL, 0, 0, NULL, 0,
     "topic access rules (user, topic, pattern lines); when set, unlisted access is denied",
     NULL},
    {0},
};

static const struct conf_key listener_keys[] = {
    {"listen", CONF_ADDR, L_(listen), NULL, 0, 0, NULL, CONF_REQUIRED,
     "address to accept MQTT connections on", "127.0.0.1:1883"},
    {"tls_cert", CONF_PATH, L_(tls_cert), NULL, 0, 0, NULL, 0,
     "PEM certificate chain: makes this a TLS listener", NULL},
    {"tls_key", CONF_PATH, L_(tls_key), NULL, 0, 0, NULL, 0, "PEM private key of tls_cert", NULL},
    {"tls_ca", CONF_PATH, L_(tls_ca), NULL, 0, 0, NULL, 0,
     "CA certificates to verify client certificates with", NULL},
    {"require_certificate", CONF_BOOL, L_(require_certificate), "no", 0, 0, NULL, 0,
     "refuse TLS clients without a certificate signed by tls_ca", NULL},
    {"allow_anonymous", CONF_ENUM, L_(allow_anonymous), "auto", 0, 0, anon_names, 0,
     "auto: [auth] allow_anonymous on loopback addresses, refused on others", NULL},
    {"max_connections", CONF_INT, L_(max_connections), "0", 0, 10000000, NULL, 0,
     "connections on this listener; 0 = no limit", NULL},
    {0},
};

static const struct conf_section sections[] = {
    {"broker", 0, 0, 0, broker_keys, "limits and persistence", NULL},
    {"auth", 0, 0, 0, auth_keys, "who may connect and what they may do", NULL},
    {"listener", CONF_NAMED, offsetof(struct broker_conf, listeners),
     sizeof(struct listener_conf), listener_keys, "MQTT listeners, one section each", "mqtt"},
    {0},
};

const struct conf_schema broker_schema = {"broker", sizeof(struct broker_conf), sections, ""};
