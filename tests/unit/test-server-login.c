/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sys/wait.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <unistd.h>

#include "parse.h"
#include "server-login.h"
#include "server-pam.h"

#define S USEC_PER_SEC

static void failed_attempt(LoginThrottle *t, const char *key, unsigned limit, uint64_t now) {
        assert_true(login_throttle_begin(t, key, limit, now));
        login_throttle_end(t, key, LOGIN_OUTCOME_FAILURE, now);
}

static void test_limit_and_window(void **state) {
        LoginThrottle *t = login_throttle_new();

        assert_non_null(t);
        for (unsigned i = 0; i < 5; i++)
                failed_attempt(t, "user:dave", 5, 100 * S + i);
        assert_int_equal(login_throttle_count(t, "user:dave", 101 * S), 5);
        assert_false(login_throttle_begin(t, "user:dave", 5, 101 * S));
        assert_true(login_throttle_begin(t, "user:alice", 5, 101 * S));
        login_throttle_end(t, "user:alice", LOGIN_OUTCOME_SUCCESS, 101 * S);
        /* The window counts from the first failure. */
        assert_false(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC - 1));
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_FAILURE, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 1);
        /* A success clears the failures; no verdict changes nothing. */
        failed_attempt(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC);
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_NONE, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 2);
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_SUCCESS, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 0);
        login_throttle_free(t);
}

/* Attempts still with PAM count: a burst of parallel guesses stops at the limit. */
static void test_in_flight(void **state) {
        LoginThrottle *t = login_throttle_new();
        unsigned admitted = 0;

        assert_non_null(t);
        for (unsigned i = 0; i < 20; i++)
                admitted += login_throttle_begin(t, "user:erin", 5, 10 * S);
        assert_int_equal(admitted, 5);
        for (unsigned i = 0; i < 5; i++)
                login_throttle_end(t, "user:erin", LOGIN_OUTCOME_FAILURE, 11 * S);
        assert_int_equal(login_throttle_count(t, "user:erin", 11 * S), 5);
        assert_false(login_throttle_begin(t, "user:erin", 5, 11 * S));
        login_throttle_free(t);
}

/* Made-up names cannot grow the table without bound, and cannot push out an entry with more
 * failures than theirs: a (user, source) at its limit stays locked however many addresses an
 * attacker cycles through. Never an entry with an attempt in flight either. */
static void test_bounded(void **state) {
        LoginThrottle *t = login_throttle_new();
        char key[64];

        assert_non_null(t);
        for (unsigned i = 0; i < 5; i++)
                failed_attempt(t, "pair:8:10.0.0.1:dave", 5, 1000 * S);
        for (unsigned i = 0; i < 3; i++)
                failed_attempt(t, "addr:10.0.0.1", 20, 1000 * S);
        assert_true(login_throttle_begin(t, "user:quiet", 5, 1000 * S));
        login_throttle_end(t, "user:quiet", LOGIN_OUTCOME_NONE, 1000 * S);
        assert_true(login_throttle_begin(t, "user:busy", 5, 1000 * S));
        for (unsigned i = 0; i < 5000; i++) {
                snprintf(key, sizeof(key), "addr:10.1.%u.%u", i / 256, i % 256);
                failed_attempt(t, key, 20, 1000 * S + 1 + i);
        }
        assert_int_equal(login_throttle_count(t, "pair:8:10.0.0.1:dave", 1000 * S + 6000), 5);
        assert_false(login_throttle_begin(t, "pair:8:10.0.0.1:dave", 5, 1000 * S + 6000));
        assert_int_equal(login_throttle_count(t, "addr:10.0.0.1", 1000 * S + 6000), 3);
        assert_int_equal(login_throttle_count(t, "user:busy", 1000 * S + 6000), 1);
        /* The entry with no failures went first, then the oldest of those with one. */
        assert_int_equal(login_throttle_count(t, "user:quiet", 1000 * S + 6000), 0);
        assert_int_equal(login_throttle_count(t, "addr:10.1.0.0", 1000 * S + 6000), 0);
        assert_int_equal(login_throttle_count(t, "addr:10.1.19.135", 1000 * S + 6000), 1);
        /* Once its window has passed, a locked entry is free again like any other. */
        assert_true(login_throttle_begin(t, "pair:8:10.0.0.1:dave", 5, 1000 * S + LOGIN_WINDOW_USEC));
        login_throttle_free(t);
}

/* The user's own count slows logins down, doubling, up to a bound; it never locks. */
static void test_user_delay(void **state) {
        assert_int_equal(login_user_delay_usec(0), 0);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER - 1), 0);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER), 1 * S);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER + 1), 2 * S);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER + 2), 4 * S);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER + 3), LOGIN_USER_DELAY_MAX_USEC);
        assert_int_equal(login_user_delay_usec(LOGIN_USER_SLOW_AFTER + 40), LOGIN_USER_DELAY_MAX_USEC);
        assert_int_equal(login_user_delay_usec(UINT32_MAX), LOGIN_USER_DELAY_MAX_USEC);
}

/* Only wrong credentials are the user's failure; whatever keeps PAM from deciding is the
 * server's ("Password check unavailable"), and is not counted against anyone. */
static void test_pam_status(void **state) {
        static const struct {
                int status;
                int auth, account;
        } table[] = {
                /* clang-format off */
                { PAM_SUCCESS,            0,            0            },
                { PAM_AUTH_ERR,           -EACCES,      -EACCES      },
                { PAM_USER_UNKNOWN,       -EACCES,      -EACCES      },
                { PAM_MAXTRIES,           -EACCES,      -EACCES      },
                { PAM_PERM_DENIED,        -EHOSTDOWN,   -EACCES      },
                { PAM_ACCT_EXPIRED,       -EHOSTDOWN,   -EACCES      },
                { PAM_NEW_AUTHTOK_REQD,   -EKEYEXPIRED, -EKEYEXPIRED },
                { PAM_AUTHTOK_EXPIRED,    -EKEYEXPIRED, -EKEYEXPIRED },
                { PAM_AUTHINFO_UNAVAIL,   -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_SYSTEM_ERR,         -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_ABORT,              -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_CRED_INSUFFICIENT,  -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_BUF_ERR,            -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_CONV_ERR,           -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_SERVICE_ERR,        -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_MODULE_UNKNOWN,     -EHOSTDOWN,   -EHOSTDOWN   },
                { PAM_IGNORE,             -EHOSTDOWN,   -EHOSTDOWN   },
                /* clang-format on */
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                const char *reason = NULL;

                print_message("PAM status %d\n", table[i].status);
                assert_int_equal(pam_status_to_errno(table[i].status, false, &reason), table[i].auth);
                assert_non_null(reason);
                assert_int_equal(pam_status_to_errno(table[i].status, true, &reason), table[i].account);
        }
}

/* A service without a file must not fall back to "other" (which on Debian refuses every
 * password as wrong). pam_wrapper's directory stands for /etc/pam.d, as it does for libpam. */
static void test_pam_service_configured(void **state) {
        char dir[] = "/tmp/test-server-login.XXXXXX", path[PATH_MAX];
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/keyward", dir);
        f = fopen(path, "we");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(setenv("PAM_WRAPPER", "1", 1), 0);
        assert_int_equal(setenv("PAM_WRAPPER_SERVICE_DIR", dir, 1), 0);

        assert_true(pam_service_configured("keyward"));
        assert_true(pam_service_configured("KeyWard")); /* libpam lowercases the name */
        assert_false(pam_service_configured("keyward-missing"));
        assert_false(pam_service_configured("other"));
        assert_false(pam_service_configured(""));
        assert_false(pam_service_configured("../keyward"));
        assert_false(pam_service_configured(".keyward"));

        assert_int_equal(unlink(path), 0);
        assert_false(pam_service_configured("keyward"));
        assert_int_equal(rmdir(dir), 0);
        unsetenv("PAM_WRAPPER");
        unsetenv("PAM_WRAPPER_SERVICE_DIR");
}

/* pam_unix without root cannot read anyone's shadow entry: its refusal then says nothing
 * about the password. Checked in a child that drops root for nobody, with the real passwd
 * entry of root (whose password is in /etc/shadow on any Debian). */
static void test_pam_password_unreadable(void **state) {
        struct passwd *nobody = getpwnam("nobody"), *root = getpwuid(0);
        int status;
        pid_t pid;

        if (geteuid() != 0 || !nobody || !root || !streq(root->pw_passwd, "x") ||
            access("/etc/shadow", F_OK) < 0)
                skip();
        assert_false(pam_password_unreadable("root")); /* as root: readable */

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 ||
                    setresgid(nobody->pw_gid, nobody->pw_gid, nobody->pw_gid) < 0 ||
                    setresuid(nobody->pw_uid, nobody->pw_uid, nobody->pw_uid) < 0)
                        _exit(2);
                if (!pam_password_unreadable("root"))
                        _exit(3);
                /* No passwd entry, or one without "x": nothing to say. */
                if (pam_password_unreadable("no-such-user-keyward-test"))
                        _exit(4);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_and_window),
                cmocka_unit_test(test_in_flight),
                cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_user_delay),
                cmocka_unit_test(test_pam_status),
                cmocka_unit_test(test_pam_service_configured),
                cmocka_unit_test(test_pam_password_unreadable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
