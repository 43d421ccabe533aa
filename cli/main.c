/*
 * main.c - the `coro` command: option handling common to every subcommand
 * (--help, --version) and dispatch through the subcommand table. The work
 * itself lives in one file per subcommand; this file only routes to them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* `coro bench <name>`: each benchmark is a row, like a subcommand. */
static const struct cli_cmd bench_cmds[] = {
    {"runtime", bench_runtime, "coroutine runtime vs ucontext, pthreads and libevent"},
    {NULL, NULL, NULL},
};

/* Top-level subcommands, in the order `coro --help` lists them. */
static const struct cli_cmd cmds[] = {
    {"bench", cmd_bench, "run a benchmark side by side with its peers (coro bench --help)"},
    {"pipeline", cmd_pipeline, "multi-stage pipeline of line records, N worker processes per stage"},
    {"buffer", cmd_buffer, "bounded buffer between a producer and a consumer (like mbuffer)"},
    {"limit", cmd_limit, "pass stdin lines through at a rate, per key if asked"},
    {"parallel", cmd_parallel, "run a command per input line or ::: value, many at once"},
    {"retry", cmd_retry, "run a command again on failure, with backoff and a circuit breaker"},
    {"passwd", cmd_passwd, "manage a broker password file (PBKDF2-SHA512)"},
    {NULL, NULL, NULL},
};

static void vwarn(const char *fmt, va_list ap, int err)
{
    fputs("coro: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (err)
        fprintf(stderr, ": %s", strerror(err));
    fputc('\n', stderr);
}

void cli_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap, 0);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    int err = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap, err);
    va_end(ap);
    errno = err;
}

void cli_list(const struct cli_cmd *table)
{
    for (const struct cli_cmd *c = table; c->name; c++)
        printf("  %-10s %s\n", c->name, c->help);
}

static void usage(const struct cli_cmd *table, const char *prefix, FILE *out)
{
    fprintf(out, "usage: %s <command> [options]\n", prefix);
    if (out == stdout) {
        printf("\ncommands:\n");
        cli_list(table);
        printf("\n'%s <command> --help' describes a command.\n", prefix);
    } else {
        fprintf(out, "'%s --help' lists the commands\n", prefix);
    }
}

int cli_dispatch(const struct cli_cmd *table, const char *prefix, int argc, char **argv)
{
    if (argc < 1) {
        usage(table, prefix, stderr);
        return CLI_EX_USAGE;
    }
    if (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help") || !strcmp(argv[0], "help")) {
        usage(table, prefix, stdout);
        return CLI_EX_OK;
    }
    for (const struct cli_cmd *c = table; c->name; c++)
        if (!strcmp(c->name, argv[0]))
            return c->fn(argc, argv);
    fprintf(stderr, "%s: unknown %s '%s'\n", prefix, argv[0][0] == '-' ? "option" : "command",
            argv[0]);
    usage(table, prefix, stderr);
    return CLI_EX_USAGE;
}

int cmd_bench(int argc, char **argv)
{
    return cli_dispatch(bench_cmds, "coro bench", argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
        printf("coro %s\n", PACKAGE_VERSION);
        return CLI_EX_OK;
    }
    return cli_dispatch(cmds, "coro", argc - 1, argv + 1);
}
