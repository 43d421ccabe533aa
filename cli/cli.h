/*
 * cli.h - what the files of the `coro` command share: the subcommand table
 * row, the dispatcher that walks such a table (used for `coro X` and for
 * nested ones like `coro bench runtime`), exit statuses and error printing.
 *
 * Adding a subcommand: write cli/<name>.c with `int cmd_<name>(int argc,
 * char **argv)` (argv[0] is the subcommand name, so getopt_long works as in
 * main), declare it below, add one row to the table in cli/main.c and the
 * file to cli/Makefile.inc. Not for library code: only the CLI prints.
 */
#ifndef CORO_CLI_H
#define CORO_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses (sysexits.h values, spelled out so every file agrees). */
enum {
    CLI_EX_OK = 0,
    CLI_EX_FAIL = 1,       /* the work ran and something failed */
    CLI_EX_USAGE = 64,     /* bad command line */
    CLI_EX_SOFTWARE = 70,  /* internal error (runtime failed to start...) */
    CLI_EX_OSERR = 71,     /* a system call we depend on failed */
};

/* A subcommand: fn gets argc/argv with argv[0] = name and returns the exit
 * status. help is one line, shown by `coro --help`. */
struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

/*
 * Run the row of table (terminated by a row with name NULL) named argv[0]
 * with argv shifted by one. prefix names the level for messages ("coro",
 * "coro bench"). Handles -h/--help (lists the table) and, when argc == 0,
 * prints the list and returns CLI_EX_USAGE. An unknown name is reported on
 * stderr and returns CLI_EX_USAGE.
 */
int cli_dispatch(const struct cli_cmd *table, const char *prefix, int argc, char **argv);
/* Print the rows of table, one "  name  help" line each, to stdout. */
void cli_list(const struct cli_cmd *table);

/* "coro: <message>" on stderr; cli_warn appends ": strerror(errno)". */
__attribute__((format(printf, 1, 2))) void cli_warnx(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void cli_warn(const char *fmt, ...);

/* Sizes with binary suffixes, "64k", "1M", "1.5G" (optional B/iB): 0, or -1 with
 * EINVAL/ERANGE. cli_fmt_size writes "1.23 GiB" into buf and returns it. */
int cli_parse_size(const char *s, uint64_t *out);  /* cli/size.c */
const char *cli_fmt_size(char *buf, size_t len, double bytes);

/* Durations "500ms", "5s", "2m", "1h", "1.5s" (bare number = seconds) and rates
 * "N/s", "N/min", "N/10s": 0, or -1/EINVAL. */
int cli_parse_duration_ms(const char *s, uint64_t *out);  /* cli/duration.c */
int cli_parse_rate(const char *s, uint64_t *count, uint64_t *interval_ms);

/* Subcommands (one file each). */
int cmd_bench(int argc, char **argv);      /* cli/main.c: nested table of benches */
int bench_runtime(int argc, char **argv);  /* cli/bench_runtime.c */
int cmd_parallel(int argc, char **argv);   /* cli/parallel.c */
int cmd_buffer(int argc, char **argv);     /* cli/buffer.c */
int cmd_pipeline(int argc, char **argv);   /* cli/pipeline*.c */
int cmd_limit(int argc, char **argv);      /* cli/limit.c */
int cmd_retry(int argc, char **argv);      /* cli/retry.c */
int cmd_passwd(int argc, char **argv);     /* cli/passwd.c */

#endif
