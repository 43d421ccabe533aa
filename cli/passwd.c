/*
 * passwd.c - `coro passwd`: create and edit the broker's password file,
 * and check a password against it, in the manner of mosquitto_passwd(1).
 * Hashing and the file format live in libcommon/patterns/passwd.c, which
 * the broker uses to verify; this file reads passwords and options.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "coro/passwd.h"
#include "cli.h"

enum { PASSWD_EX_DATAERR = 65 }; /* the file is not a password file */

#define PW_MAX 1024

struct passwd_opts {
    int create, batch, delete, verify;
    unsigned iterations;
    const char *file, *user, *password;
};

static const char usage_text[] =
    "usage: coro passwd [-c] [-I N] FILE USER            (prompt for the password)\n"
    "       coro passwd -b [-c] [-I N] FILE USER PASSWORD\n"
    "       coro passwd -D FILE USER\n"
    "       coro passwd --verify FILE USER                (password on stdin)\n"
    "\n"
    "Add or change USER in the password file FILE (user:$7$... lines, PBKDF2-SHA512,\n"
    "as mosquitto_passwd), delete USER, or check USER's password.\n"
    "\n"
    "  -c, --create          start a new FILE (replaces an existing one)\n"
    "  -b, --batch           take the password from the command line (visible in ps;\n"
    "                        prefer the prompt or stdin)\n"
    "  -D, --delete          remove USER\n"
    "      --verify          read a password (stdin, or a prompt on a terminal) and exit\n"
    "                        0 when it is USER's, 1 when not\n"
    "  -I, --iterations N    PBKDF2 iterations (default 210000)\n"
    "  -h, --help            this text\n"
    "\n"
    "Without -b the password is asked twice with echo off on a terminal, or read\n"
    "as one line from stdin otherwise. FILE is rewritten atomically, keeping its\n"
    "owner, group and mode (a new FILE gets mode 0600).\n"
    "Exit status: 0, 1 (wrong password, unknown user, mismatch), 64 usage,\n"
    "65 FILE is malformed, 71 FILE cannot be read or written.\n";

static int parse_opts(struct passwd_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"create", no_argument, NULL, 'c'},
        {"batch", no_argument, NULL, 'b'},
        {"delete", no_argument, NULL, 'D'},
        {"verify", no_argument, NULL, 'V'},
        {"iterations", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "cbDI:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->create = 1;
            break;
        case 'b':
            o->batch = 1;
            break;
        case 'D':
            o->delete = 1;
            break;
        case 'V':
            o->verify = 1;
            break;
        case 'I':
            o->iterations = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o->iterations == 0 || o->iterations > CORO_PASSWD_MAX_ITERATIONS)
                return cli_warnx("passwd: bad iteration count '%s'", optarg), -1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        default:
            fputs(usage_text, stderr);
            return -1;
        }
    }
    int nargs = argc - optind, want = o->batch ? 3 : 2;
    if (o->create + o->delete + o->verify > 1 || (o->batch && (o->delete || o->verify)) ||
        nargs != want) {
        fputs(usage_text, stderr);
        return -1;
    }
    o->file = argv[optind];
    o->user = argv[optind + 1];
    o->password = o->batch ? argv[optind + 2] : NULL;
    return 0;
}

/* One line from fp into buf, without its newline: 0, or -1 at EOF. */
static int read_line(FILE *fp, char *buf, size_t len)
{
    if (!fgets(buf, (int)len, fp))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Prompt on the terminal with echo off. */
static int prompt(const char *what, char *buf, size_t len)
{
    struct termios old, quiet;
    fputs(what, stderr);
    fflush(stderr);
    int have = tcgetattr(STDIN_FILENO, &old) == 0;
    if (have) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    int r = read_line(stdin, buf, len);
    if (have)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    return r;
}

/* The password to set or check into buf: 0, or -1 (message printed). */
static int get_password(const struct passwd_opts *o, char *buf, size_t len, int twice)
{
    if (o->password) {
        if (strlen(o->password) >= len)
            return cli_warnx("passwd: password too long"), -1;
        strcpy(buf, o->password);
    } else if (isatty(STDIN_FILENO)) {
        char again[PW_MAX];
        if (prompt("Password: ", buf, len) < 0)
            return cli_warnx("passwd: no password given"), -1;
        if (twice) {
            int bad = prompt("Reenter password: ", again, sizeof again) < 0 || strcmp(buf, again);
            OPENSSL_cleanse(again, sizeof again);
            if (bad)
                return cli_warnx("passwd: passwords do not match"), -1;
        }
    } else if (read_line(stdin, buf, len) < 0) {
        return cli_warnx("passwd: no password on stdin"), -1;
    }
    if (!*buf && !o->verify)
        return cli_warnx("passwd: empty password refused"), -1;
    return 0;
}

static coro_passwd_file_t *load(const struct passwd_opts *o, int *status)
{
    unsigned line = 0;
    coro_passwd_file_t *f =
        o->create ? coro_passwd_file_new() : coro_passwd_file_load(o->file, &line);
    if (f)
        return f;
    if (errno == EINVAL && line) {
        cli_warnx("passwd: %s:%u: not a user:$7$... line", o->file, line);
        *status = PASSWD_EX_DATAERR;
    } else {
        cli_warn("passwd: %s", o->file);
        *status = CLI_EX_OSERR;
    }
    return NULL;
}

static int save(const struct passwd_opts *o, coro_passwd_file_t *f)
{
    if (coro_passwd_file_save(f, o->file) == 0)
        return CLI_EX_OK;
    cli_warn("passwd: cannot write %s", o->file);
    return CLI_EX_OSERR;
}

static int do_set(const struct passwd_opts *o, coro_passwd_file_t *f, const char *pw)
{
    char enc[CORO_PASSWD_ENCODED_MAX];
    if (coro_passwd_hash(pw, o->iterations, enc, sizeof enc) < 0) {
        cli_warn("passwd: hashing failed");
        return CLI_EX_SOFTWARE;
    }
    if (coro_passwd_file_set(f, o->user, enc) < 0) {
        cli_warnx("passwd: bad user name '%s' (no ':' or control characters)", o->user);
        return CLI_EX_USAGE;
    }
    return save(o, f);
}

int cmd_passwd(int argc, char **argv)
{
    struct passwd_opts o = {0};
    char pw[PW_MAX] = "";
    int status = CLI_EX_OK, r = parse_opts(&o, argc, argv);
    if (r != 0)
        return r > 0 ? CLI_EX_OK : CLI_EX_USAGE;
    coro_passwd_file_t *f = load(&o, &status);
    if (!f)
        return status;
    if (o.delete) {
        if (coro_passwd_file_delete(f, o.user) < 0) {
            cli_warnx("passwd: no user '%s' in %s", o.user, o.file);
            status = CLI_EX_FAIL;
        } else {
            status = save(&o, f);
        }
    } else if (get_password(&o, pw, sizeof pw, !o.verify) < 0) {
        status = CLI_EX_FAIL;
    } else if (o.verify) {
        int ok = coro_passwd_file_check(f, o.user, pw);
        if (ok < 0)
            cli_warnx("passwd: %s: user '%s' has a malformed hash", o.file, o.user);
        status = ok == 1 ? CLI_EX_OK : ok == 0 ? CLI_EX_FAIL : PASSWD_EX_DATAERR;
    } else {
        status = do_set(&o, f, pw);
    }
    OPENSSL_cleanse(pw, sizeof pw);
    coro_passwd_file_free(f);
    return status;
}
