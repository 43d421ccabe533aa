/*
 * conf_common.c - the sections every daemon's config has: [runtime] (the
 * coroutine runtime and the shutdown drain), [log] and [admin]. Their keys
 * live in struct conf_common, so the framework can act on them without
 * knowing the daemon's struct.
 */
#include <syslog.h>

#include "service/conf_int.h"

const struct conf_enum conf__log_levels[] = {
    {"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"notice", LOG_NOTICE},
    {"warning", LOG_WARNING}, {"err", LOG_ERR}, {NULL, 0},
};

#define C(member) CONF_FIELD(struct conf_common, member)

static const struct conf_key runtime_keys[] = {
    {"workers", CONF_INT, C(runtime.workers), "0", 0, 1024, NULL, 0,
     "worker threads, each with its own event loop; 0 = one per CPU", NULL},
    {"stack_size", CONF_SIZE, C(runtime.stack_size), "64k", 16 * 1024, 1024 * 1024 * 1024, NULL,
     0, "stack size of each coroutine", NULL},
    {"pool_capacity", CONF_INT, C(runtime.pool_capacity), "1024", 0, 1000000, NULL, 0,
     "coroutine stacks kept for reuse per worker", NULL},
    {"shutdown_timeout", CONF_DURATION, C(shutdown_timeout_ms), "10s", 0, 3600000, NULL, 0,
     "on SIGTERM, how long open connections may finish before they are closed", NULL},
    {0},
};

static const struct conf_key log_keys[] = {
    {"level", CONF_ENUM, C(log_level), "info", 0, 0, conf__log_levels, 0,
     "least important messages logged", NULL},
    {0},
};

/* The default comes from the daemon's schema (admin_default). */
static const struct conf_key admin_keys[] = {
    {"listen", CONF_ADDR, C(admin_listen), NULL, 0, 0, NULL, 0,
     "address of the HTTP endpoint serving /metrics and /healthz; empty = off", NULL},
    {0},
};

const struct conf_section conf__common_sections[] = {
    {"runtime", 0, 0, 0, runtime_keys, "coroutine runtime and process lifecycle", NULL},
    {"log", 0, 0, 0, log_keys, "logging to stderr (journald reads the <N> priority prefixes)",
     NULL},
    {"admin", 0, 0, 0, admin_keys, "administration endpoint (Prometheus metrics, health check)",
     NULL},
    {0},
};
