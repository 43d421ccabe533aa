/*
 * test_passwd.c - $7$ PBKDF2-SHA512 hashes (format, salt, verify, malformed
 * input) and the password file (round trip, mode 0600 for a new file,
 * owner, group and mode of an existing one kept, atomic save, bad lines
 * and names, timing-neutral check of unknown users).
 */
#include "config.h"

#include <errno.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coro/passwd.h"
#include "unit.h"

/* Tests use a low cost so the suite stays fast; one checks the default. */
#define FAST 1000

START_TEST(hash_has_the_mosquitto_shape)
{
    char h[CORO_PASSWD_ENCODED_MAX];
    ck_assert_int_eq(coro_passwd_hash("secret", 0, h, sizeof h), 0);
    unsigned iter;
    char salt[64], hash[128];
    ck_assert_int_eq(sscanf(h, "$7$%u$%63[^$]$%127s", &iter, salt, hash), 3);
    ck_assert_uint_eq(iter, 210000);
    ck_assert_uint_eq(strlen(salt), 24); /* 16 bytes */
    ck_assert_uint_eq(strlen(hash), 88); /* 64 bytes of SHA-512 */
    ck_assert_int_eq(coro_passwd_verify("secret", h), 1);
}
END_TEST

START_TEST(verify_tells_right_from_wrong)
{
    char a[CORO_PASSWD_ENCODED_MAX], b[CORO_PASSWD_ENCODED_MAX];
    ck_assert_int_eq(coro_passwd_hash("pässword", FAST, a, sizeof a), 0);
    ck_assert_int_eq(coro_passwd_hash("pässword", FAST, b, sizeof b), 0);
    ck_assert_str_ne(a, b); /* fresh salt each time */
    ck_assert_int_eq(coro_passwd_verify("pässword", a), 1);
    ck_assert_int_eq(coro_passwd_verify("pässword", b), 1);
    ck_assert_int_eq(coro_passwd_verify("passwörd", a), 0);
    ck_assert_int_eq(coro_passwd_verify("", a), 0);
    ck_assert_int_eq(coro_passwd_verify("pässword ", a), 0);
}
END_TEST

START_TEST(verify_matches_a_known_vector)
{
    /* PBKDF2-HMAC-SHA512("password", "salt", 1 iteration, 64 bytes) is
     * 867f70cf1ade02cf... (the widely published vector); base64 of "salt" is c2FsdA==. */
    const char *enc = "$7$1$c2FsdA==$hn9wzxreAs/zdSWZo6U9xK80x6ZpgVrl1RNVThyM8lLALUcK"
                      "KFoFAbrZmb/pQ8CPBQI119aLHaVeY/c7YKV/zg==";
    ck_assert_int_eq(coro_passwd_verify("password", enc), 1);
    ck_assert_int_eq(coro_passwd_verify("passwore", enc), 0);
}
END_TEST

START_TEST(malformed_hashes_are_errors)
{
    const char *bad[] = {"",
                         "$6$1$c2FsdA==$AAAA",
                         "$7$$c2FsdA==$AAAA",
                         "$7$0$c2FsdA==$AAAA",
                         "$7$99999999999$c2FsdA==$AAAA",
                         "$7$10$c2FsdA==",
                         "$7$10$c2F$AAAA",
                         "$7$10$c2FsdA==$!!!!",
                         "$7$10x$c2FsdA==$AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        ck_assert_msg(coro_passwd_verify("x", bad[i]) == -1 && errno == EINVAL, "%s", bad[i]);
    }
    char small[40];
    ck_assert_int_eq(coro_passwd_hash("x", FAST, small, sizeof small), -1);
    ck_assert_int_eq(errno, ENOSPC);
}
END_TEST

static char dir[64], file[128];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/coro-passwd-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/passwd", dir);
}

static void rm_tmp(void)
{
    unlink(file);
    rmdir(dir);
}

START_TEST(file_round_trip)
{
    char h[CORO_PASSWD_ENCODED_MAX];
    mkdir_tmp();
    coro_passwd_file_t *f = coro_passwd_file_new();
    ck_assert_int_eq(coro_passwd_hash("one", FAST, h, sizeof h), 0);
    ck_assert_int_eq(coro_passwd_file_set(f, "alice", h), 0);
    ck_assert_int_eq(coro_passwd_hash("two", FAST, h, sizeof h), 0);
    ck_assert_int_eq(coro_passwd_file_set(f, "bob", h), 0);
    ck_assert_int_eq(coro_passwd_file_save(f, file), 0);
    coro_passwd_file_free(f);

    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);

    f = coro_passwd_file_load(file, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(coro_passwd_file_count(f), 2);
    ck_assert_int_eq(coro_passwd_file_check(f, "alice", "one"), 1);
    ck_assert_int_eq(coro_passwd_file_check(f, "bob", "two"), 1);
    ck_assert_int_eq(coro_passwd_file_check(f, "bob", "one"), 0);
    ck_assert_int_eq(coro_passwd_file_check(f, "carol", "one"), 0);
    /* Replace keeps the order; delete removes. */
    ck_assert_int_eq(coro_passwd_hash("three", FAST, h, sizeof h), 0);
    ck_assert_int_eq(coro_passwd_file_set(f, "alice", h), 0);
    ck_assert_int_eq(coro_passwd_file_delete(f, "bob"), 0);
    ck_assert_int_eq(coro_passwd_file_delete(f, "bob"), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(coro_passwd_file_save(f, file), 0);
    coro_passwd_file_free(f);

    f = coro_passwd_file_load(file, NULL);
    ck_assert_uint_eq(coro_passwd_file_count(f), 1);
    ck_assert_int_eq(coro_passwd_file_check(f, "alice", "three"), 1);
    ck_assert_ptr_null(coro_passwd_file_find(f, "bob"));
    coro_passwd_file_free(f);
    rm_tmp();
}
END_TEST

static void write_file(const char *text)
{
    FILE *fp = fopen(file, "w");
    fputs(text, fp);
    fclose(fp);
}

START_TEST(file_reports_the_bad_line)
{
    char h[CORO_PASSWD_ENCODED_MAX], text[512];
    mkdir_tmp();
    ck_assert_int_eq(coro_passwd_hash("x", FAST, h, sizeof h), 0);
    snprintf(text, sizeof text, "# users\n\nu1:%s\nu2 no colon\n", h);
    write_file(text);
    unsigned line = 0;
    errno = 0;
    ck_assert_ptr_null(coro_passwd_file_load(file, &line));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_uint_eq(line, 4);
    /* A user twice is an error, not "last one wins". */
    snprintf(text, sizeof text, "u1:%s\nu1:%s\n", h, h);
    write_file(text);
    ck_assert_ptr_null(coro_passwd_file_load(file, &line));
    ck_assert_uint_eq(line, 2);
    /* Comments and blank lines are fine, and CRLF endings. */
    snprintf(text, sizeof text, "# c\r\n\r\nu1:%s\r\n", h);
    write_file(text);
    coro_passwd_file_t *f = coro_passwd_file_load(file, &line);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(coro_passwd_file_check(f, "u1", "x"), 1);
    coro_passwd_file_free(f);
    rm_tmp();
    ck_assert_ptr_null(coro_passwd_file_load(file, &line));
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(bad_names_and_hashes_are_refused)
{
    char h[CORO_PASSWD_ENCODED_MAX];
    ck_assert_int_eq(coro_passwd_hash("x", FAST, h, sizeof h), 0);
    coro_passwd_file_t *f = coro_passwd_file_new();
    const char *names[] = {"", "a:b", "a\nb", "tab\there"};
    for (size_t i = 0; i < 4; i++) {
        errno = 0;
        ck_assert_int_eq(coro_passwd_file_set(f, names[i], h), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    ck_assert_int_eq(coro_passwd_file_set(f, "ok", "plaintext"), -1);
    ck_assert_uint_eq(coro_passwd_file_count(f), 0);
    coro_passwd_file_free(f);
}
END_TEST

/* A group other than the caller's own that the caller may give a file:
 * any gid for root, else a supplementary group; our own gid if none. */
static gid_t other_group(void)
{
    if (geteuid() == 0)
        return getegid() == 4242 ? 4243 : 4242;
    gid_t g[64];
    int n = getgroups(64, g);
    for (int i = 0; i < n; i++)
        if (g[i] != getegid())
            return g[i];
    return getegid();
}

START_TEST(save_keeps_owner_group_and_mode)
{
    char h[CORO_PASSWD_ENCODED_MAX];
    mkdir_tmp();
    write_file("");
    gid_t gid = other_group();
    ck_assert_int_eq(chown(file, (uid_t)-1, gid), 0);
    ck_assert_int_eq(chmod(file, 0640), 0); /* root:coro-broker 0640 */
    coro_passwd_file_t *f = coro_passwd_file_load(file, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(coro_passwd_hash("pw", FAST, h, sizeof h), 0);
    ck_assert_int_eq(coro_passwd_file_set(f, "alice", h), 0);
    ck_assert_int_eq(coro_passwd_file_save(f, file), 0);
    coro_passwd_file_free(f);

    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    ck_assert_uint_eq(st.st_gid, gid);
    ck_assert_uint_eq(st.st_uid, geteuid());
    f = coro_passwd_file_load(file, NULL); /* and it is the new content */
    ck_assert_int_eq(coro_passwd_file_check(f, "alice", "pw"), 1);
    coro_passwd_file_free(f);
    rm_tmp();
}
END_TEST

START_TEST(save_failure_leaves_old_file)
{
    mkdir_tmp();
    coro_passwd_file_t *f = coro_passwd_file_new();
    write_file("# old\n");
    ck_assert_int_eq(chmod(dir, 0500), 0);
    int r = coro_passwd_file_save(f, file);
    chmod(dir, 0700);
    if (geteuid() != 0) { /* root writes to 0500 directories anyway */
        ck_assert_int_eq(r, -1);
        ck_assert_int_eq(errno, EACCES);
    }
    coro_passwd_file_free(f);
    /* No temp files left behind either way. */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    rm_tmp();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("passwd");
    TCase *tc = tcase_create("passwd");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, hash_has_the_mosquitto_shape);
    tcase_add_test(tc, verify_tells_right_from_wrong);
    tcase_add_test(tc, verify_matches_a_known_vector);
    tcase_add_test(tc, malformed_hashes_are_errors);
    tcase_add_test(tc, file_round_trip);
    tcase_add_test(tc, file_reports_the_bad_line);
    tcase_add_test(tc, bad_names_and_hashes_are_refused);
    tcase_add_test(tc, save_keeps_owner_group_and_mode);
    tcase_add_test(tc, save_failure_leaves_old_file);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
