/*
 * parallel_input.c - where the jobs of `coro parallel` come from: input
 * lines (stdin or --arg-file, streamed, one job each) or the cartesian
 * product of the ::: / :::: groups, and the command line each job runs
 * after substituting {} {.} {/} {//} {/.} {#} and {N}.
 *
 * Substituted values are shell-quoted (as GNU parallel does), so a value
 * is always one word. When the resulting line has nothing the shell would
 * interpret, it is split on spaces and exec'd directly: the same effect as
 * `sh -c`, without starting a shell per job.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "coro/io.h"
#include "cli.h"
#include "parallel.h"

#define IN_CHUNK 65536

struct par_input {
    int fd;            /* line input, or -1 with groups */
    int pollable;      /* a pipe/tty/socket: coroutine reads; else plain read */
    char *buf;
    size_t off, len, cap;
    int eof;
    size_t *idx;       /* groups: the current position in each */
    int started, done;
    uint64_t seq;
};

/* ---- line input ---------------------------------------------------------- */

static ssize_t in_fill(struct par *P, struct par_input *in, void (*idle)(struct par *))
{
    if (in->off > 0) {
        memmove(in->buf, in->buf + in->off, in->len - in->off);
        in->len -= in->off;
        in->off = 0;
    }
    if (in->len + 1 >= in->cap) { /* one spare byte for a last line's NUL */
        char *nb = realloc(in->buf, in->cap * 2);
        if (!nb)
            return -1;
        in->buf = nb;
        in->cap *= 2;
    }
    for (;;) {
        ssize_t r;
        if (in->pollable)
            r = coro_read(in->fd, in->buf + in->len, in->cap - in->len - 1, PAR_IDLE_MS);
        else
            r = read(in->fd, in->buf + in->len, in->cap - in->len - 1);
        if (r >= 0) {
            in->len += (size_t)r;
            return r;
        }
        if (errno == ETIMEDOUT && idle) {
            idle(P);
            continue;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* The next line (NUL-terminated in place, without its newline), or NULL:
 * errno 0 at the end. The pointer is valid until the next call. */
static char *in_line(struct par *P, struct par_input *in, void (*idle)(struct par *))
{
    for (;;) {
        char *s = in->buf + in->off;
        char *nl = memchr(s, '\n', in->len - in->off);
        if (nl) {
            *nl = '\0';
            in->off = (size_t)(nl - in->buf) + 1;
            return s;
        }
        if (in->eof || P->halted || P->signo) {
            if (in->len == in->off || P->halted || P->signo) {
                errno = 0;
                return NULL;
            }
            in->buf[in->len] = '\0'; /* a last line without newline */
            in->off = in->len;
            return s;
        }
        ssize_t r = in_fill(P, in, idle);
        if (r < 0)
            return NULL;
        if (r == 0)
            in->eof = 1;
    }
}

/* ---- ::: groups: the cartesian product, last group varying fastest ------- */

static int groups_next(struct par *P, struct par_input *in, const char **args)
{
    size_t n = P->o.ngroups;
    if (in->done)
        return 0;
    if (in->started) {
        size_t g = n;
        while (g > 0 && ++in->idx[g - 1] == P->o.groups[g - 1].n)
            in->idx[--g] = 0;
        if (g == 0) {
            in->done = 1;
            return 0;
        }
    }
    in->started = 1;
    for (size_t g = 0; g < n; g++) {
        if (P->o.groups[g].n == 0) {
            in->done = 1;
            return 0;
        }
        args[g] = P->o.groups[g].vals[in->idx[g]];
    }
    return 1;
}

/* ---- composing the command line ------------------------------------------ */

/* Bytes the shell takes literally inside a word (UTF-8 included). */
static int word_safe(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || strchr("_./:,+@^-%=", c);
}

static void put_quoted(struct par_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && word_safe((unsigned char)s[i]))
        i++;
    if (i == n && n > 0) {
        par_buf_add(b, s, n);
        return;
    }
    par_buf_add(b, "'", 1);
    for (i = 0; i < n; i++) {
        if (s[i] == '\'')
            par_buf_add(b, "'\\''", 4);
        else
            par_buf_add(b, s + i, 1);
    }
    par_buf_add(b, "'", 1);
}

enum xform { X_ALL, X_NOEXT, X_BASE, X_DIR, X_BASE_NOEXT };

/* Apply a {.} {/} {//} {/.} transform to one value and append it quoted. */
static void put_value(struct par_buf *b, const char *s, enum xform x)
{
    size_t n = strlen(s);
    const char *slash = memrchr(s, '/', n);
    const char *base = slash ? slash + 1 : s;
    if (x == X_DIR) {
        if (!slash)
            put_quoted(b, ".", 1);
        else
            put_quoted(b, s, slash == s ? 1 : (size_t)(slash - s));
        return;
    }
    const char *start = (x == X_BASE || x == X_BASE_NOEXT) ? base : s;
    const char *end = s + n;
    if (x == X_NOEXT || x == X_BASE_NOEXT) {
        const char *dot = memrchr(base, '.', (size_t)(end - base));
        if (dot && dot > base)
            end = dot;
    }
    put_quoted(b, start, (size_t)(end - start));
}

/* Parse a placeholder at t ("{...}"): its length, or 0 if t is not one.
 * *arg is 0 for all values or the 1-based value index. */
static size_t placeholder(const char *t, int *arg, enum xform *x, int *seq)
{
    const char *p = t + 1;
    *arg = 0;
    *seq = 0;
    if (!strncmp(p, "#}", 2)) {
        *seq = 1;
        return 3;
    }
    while (isdigit((unsigned char)*p))
        *arg = *arg * 10 + (*p++ - '0');
    if (p > t + 1 && *arg == 0)
        return 0;
    static const struct { const char *s; enum xform x; } forms[] = {
        {"}", X_ALL}, {".}", X_NOEXT}, {"/}", X_BASE}, {"//}", X_DIR}, {"/.}", X_BASE_NOEXT},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t l = strlen(forms[i].s);
        if (!strncmp(p, forms[i].s, l)) {
            *x = forms[i].x;
            return (size_t)(p - t) + l;
        }
    }
    return 0;
}

static void put_args(struct par_buf *b, const char **args, size_t nargs, int arg, enum xform x)
{
    if (arg > 0) {
        if ((size_t)arg <= nargs)
            put_value(b, args[arg - 1], x);
        return;
    }
    for (size_t i = 0; i < nargs; i++) {
        if (i)
            par_buf_add(b, " ", 1);
        put_value(b, args[i], x);
    }
}

static void compose(struct par *P, struct par_buf *b, uint64_t seq, const char **args,
                    size_t nargs)
{
    const char *t = P->o.tmpl;
    int found = 0;
    while (*t) {
        const char *br = strchr(t, '{');
        if (!br) {
            par_buf_add(b, t, strlen(t));
            break;
        }
        par_buf_add(b, t, (size_t)(br - t));
        int arg, isseq;
        enum xform x = X_ALL;
        size_t l = placeholder(br, &arg, &x, &isseq);
        if (!l) {
            par_buf_add(b, "{", 1);
            t = br + 1;
            continue;
        }
        found = 1;
        if (isseq) {
            char num[24];
            par_buf_add(b, num, (size_t)snprintf(num, sizeof(num), "%llu",
                                                 (unsigned long long)seq));
        } else {
            put_args(b, args, nargs, arg, x);
        }
        t = br + l;
    }
    if (!found) {
        if (b->len)
            par_buf_add(b, " ", 1);
        put_args(b, args, nargs, 0, X_ALL);
    }
}

/* Shell words that a direct exec would not reproduce. */
static int shell_word(const char *w, size_t n)
{
    static const char *const words[] = {
        ".", ":", "!", "{", "}", "alias", "bg", "break", "case", "cd", "command", "continue",
        "do", "done", "elif", "else", "esac", "eval", "exec", "exit", "export", "fc", "fg",
        "fi", "for", "getopts", "hash", "if", "in", "jobs", "local", "read", "readonly",
        "return", "set", "shift", "source", "then", "times", "trap", "type", "ulimit", "umask",
        "unalias", "unset", "until", "wait", "while", NULL,
    };
    for (const char *const *k = words; *k; k++)
        if (strlen(*k) == n && !memcmp(*k, w, n))
            return 1;
    return memchr(w, '=', n) != NULL; /* VAR=value prefix */
}

/* Number of words when cmd can be exec'd without a shell, else 0. */
static size_t direct_words(const char *cmd, size_t len)
{
    size_t words = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && cmd[i] == ' ')
            i++;
        size_t s = i;
        while (i < len && cmd[i] != ' ') {
            if (!word_safe((unsigned char)cmd[i]))
                return 0;
            i++;
        }
        if (i > s && words++ == 0 && shell_word(cmd + s, i - s))
            return 0;
    }
    return words;
}

/* One allocation: the job, its command line, and argv for a direct exec. */
static struct par_job *job_make(uint64_t seq, const char *cmd, size_t len)
{
    size_t words = direct_words(cmd, len);
    size_t sz = sizeof(struct par_job) + (words ? (words + 1) * sizeof(char *) + len + 1 : 0);
    struct par_job *j = calloc(1, sz + len + 1);
    if (!j)
        return NULL;
    j->seq = seq;
    char *tail = (char *)(j + 1);
    if (words) {
        j->argv = (char **)tail;
        char *w = tail + (words + 1) * sizeof(char *);
        memcpy(w, cmd, len + 1);
        size_t k = 0;
        for (char *save = NULL, *tok = strtok_r(w, " ", &save); tok;
             tok = strtok_r(NULL, " ", &save))
            j->argv[k++] = tok;
        j->argv[k] = NULL;
        tail = w + len + 1;
    }
    j->cmd = tail;
    memcpy(j->cmd, cmd, len + 1);
    return j;
}

void par_job_free(struct par_job *j)
{
    if (!j)
        return;
    free(j->out.p);
    free(j->err.p);
    free(j);
}

struct par_job *par_input_next(struct par *P, void (*idle)(struct par *))
{
    struct par_input *in = P->in;
    const char *one[1];
    const char **args = one;
    const char *stackv[16];
    size_t nargs = 1;
    if (in->fd < 0) {
        nargs = P->o.ngroups;
        args = nargs <= 16 ? stackv : malloc(nargs * sizeof(*args));
        if (!args)
            return NULL;
        if (!groups_next(P, in, args)) {
            if (args != stackv)
                free(args);
            errno = 0;
            return NULL;
        }
    } else if (!(one[0] = in_line(P, in, idle))) {
        return NULL;
    }
    struct par_buf b = {0};
    compose(P, &b, ++in->seq, args, nargs);
    if (args != one && args != stackv)
        free(args);
    struct par_job *j = b.p ? job_make(in->seq, b.p, b.len) : job_make(in->seq, "", 0);
    free(b.p);
    return j;
}

int par_input_open(struct par *P)
{
    struct par_input *in = calloc(1, sizeof(*in));
    if (!in)
        return -1;
    P->in = in;
    in->fd = -1;
    if (P->o.ngroups) {
        in->idx = calloc(P->o.ngroups, sizeof(*in->idx));
        return in->idx ? 0 : -1;
    }
    in->cap = IN_CHUNK;
    if (!(in->buf = malloc(in->cap)))
        return -1;
    if (P->o.arg_file) {
        in->fd = open(P->o.arg_file, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            cli_warn("%s", P->o.arg_file);
            return -1;
        }
    } else {
        in->fd = 0;
        P->input_is_stdin = 1;
    }
    struct stat st;
    in->pollable = fstat(in->fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
    if (in->pollable) {
        P->stdin_flags = fcntl(in->fd, F_GETFL);
        if (coro_fd_nonblock(in->fd) < 0)
            in->pollable = 0;
    }
    return 0;
}

void par_input_close(struct par *P)
{
    struct par_input *in = P->in;
    if (!in)
        return;
    if (in->fd >= 0) {
        coro_fd_forget(in->fd);
        if (in->pollable && P->stdin_flags >= 0)
            fcntl(in->fd, F_SETFL, P->stdin_flags); /* the fd may be shared: restore */
        if (in->fd > 2)
            close(in->fd);
    }
    free(in->buf);
    free(in->idx);
    free(in);
    P->in = NULL;
}
