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

/* ---- the queue, on a simulated clock ---------------------------------------------- */

static LoginJob *job_new(const char *user, const char *source, const char *machine) {
        LoginJob *j = calloc(1, sizeof(LoginJob));

        assert_non_null(j);
        j->user = strdup(user);
        j->source = strdup(source);
        assert_non_null(j->user);
        assert_non_null(j->source);
        if (machine) {
                j->machine = strdup(machine);
                assert_non_null(j->machine);
        }
        return j;
}

/* Add a job; on success the queue holds it, else it is freed. */
static int add(LoginQueue *q, const char *user, const char *source, const char *machine, uint64_t now) {
        LoginJob *j = job_new(user, source, machine);
        int r = login_queue_add(q, j, now);

        if (r < 0)
                login_job_free(j);
        return r;
}

/* The person who knows the password logs in from here; every other guess is wrong. */
#define RIGHT_SOURCE "198.51.100.7"

/* Run every job due at now as the password check would; how many reached the check. */
static unsigned run_due(LoginQueue *q, uint64_t now, unsigned *ret_right) {
        unsigned n = 0;
        uint64_t next;
        LoginJob *j;

        while ((j = login_queue_take(q, now, &next))) {
                bool right = streq(j->source, RIGHT_SOURCE);

                login_queue_done(q, j, right ? LOGIN_OUTCOME_SUCCESS : LOGIN_OUTCOME_FAILURE, now);
                if (right && ret_right)
                        (*ret_right)++;
                login_job_free(j);
                n++;
        }
        return n;
}

/* Make the user's count reach the slow-down, from sources of its own. */
static void fail_user(LoginQueue *q, const char *user, unsigned k, uint64_t now) {
        char source[64];

        for (unsigned i = 0; i < LOGIN_USER_SLOW_AFTER; i++) {
                snprintf(source, sizeof(source), "192.0.2.%u", k % 256);
                assert_int_equal(add(q, user, source, NULL, now), 0);
                /* not slowed down yet: due at once */
        }
        assert_int_equal(run_due(q, now, NULL), LOGIN_USER_SLOW_AFTER);
}

/* 50 guesses for one user from 50 sources at once, topped up from fresh sources whenever one
 * is answered: past the slow-down they reach the password check one after another, 1, 2, 4,
 * then 8 s apart, never side by side. In the first 60 s that is 5 at once, then those due at
 * 1, 3, 7, 15, 23, 31, 39, 47 and 55 s: 14, however many sources are used. */
static void test_user_serialized(void **state) {
        LoginQueue *q = login_queue_new();
        uint64_t t0 = 1000 * S, last = 0;
        unsigned reached = 0, fresh = 0, slowed_seen = 0;
        char source[64];

        assert_non_null(q);
        for (unsigned i = 0; i < 50; i++) {
                snprintf(source, sizeof(source), "10.5.0.%u", fresh++);
                assert_int_equal(add(q, "victim", source, NULL, t0), 0);
        }
        for (uint64_t t = t0; t < t0 + 60 * S; t += S / 10) {
                unsigned n = run_due(q, t, NULL);

                reached += n;
                if (n > 0 && t > t0) {
                        /* past the first five, one at a time, at least a second apart */
                        assert_int_equal(n, 1);
                        if (slowed_seen++ > 0)
                                assert_true(t - last >= 1 * S);
                        last = t;
                }
                /* the attacker tops up from new addresses, as many as the queue takes */
                for (unsigned k = 0; k < 10; k++) {
                        snprintf(source, sizeof(source), "10.5.%u.%u", fresh / 256, fresh % 256);
                        fresh++;
                        if (add(q, "victim", source, NULL, t) < 0)
                                break;
                }
        }
        assert_int_equal(reached, 14);
        login_queue_free(q);
}

/* While a flood for the user waits its turn, the right password from a clean source goes
 * ahead of it: it waits one interval of the schedule, not behind the row. */
static void test_clean_source_first(void **state) {
        LoginQueue *q = login_queue_new();
        uint64_t t0 = 2000 * S, t;
        unsigned right = 0;
        char source[64];
        LoginJob *v;
        int r;

        assert_non_null(q);
        fail_user(q, "dave", 1, t0);
        /* Three sources queue guesses for dave until the user's cap, then -EBUSY. Their slots
         * are 1, 3, 7, 15, 23, ... s from now. */
        for (unsigned i = 0; i < 12; i++) {
                snprintf(source, sizeof(source), "10.6.0.%u", i % 3);
                r = add(q, "dave", source, NULL, t0);
                assert_int_equal(r, i < LOGIN_DELAYED_PER_USER ? 0 : -EBUSY);
        }
        assert_int_equal(login_queue_delayed(q), LOGIN_DELAYED_PER_USER);
        /* A guess from an address used once: clean, taken in past the user's cap, and ahead
         * of the sources that sent more (each of whose first guesses came clean). */
        assert_int_equal(add(q, "dave", "10.6.0.50", NULL, t0), 0);
        /* The person, from a clean address: in line anyway, second, not behind the row (else
         * due at 63 s). */
        v = job_new("dave", RIGHT_SOURCE, NULL);
        assert_int_equal(login_queue_add(q, v, t0 + S), 0);
        assert_true(v->clean);
        assert_int_equal(v->not_before_usec, t0 + 3 * S);
        for (t = t0 + S; t <= t0 + 3 * S && right == 0; t += S / 10)
                (void) run_due(q, t, &right);
        assert_int_equal(right, 1);
        login_queue_free(q);
}

/* One party cannot take the slowed-down places of others: a machine naming a new rhost for
 * every guess, at 40 users it failed, holds no more than its sources' share, and other
 * users still get in line. */
static void test_flood_bounded(void **state) {
        LoginQueue *q = login_queue_new();
        uint64_t t0 = 3000 * S;
        char source[96], user[32];
        unsigned refused = 0;

        assert_non_null(q);
        for (unsigned k = 0; k < 40; k++) {
                snprintf(user, sizeof(user), "user%u", k);
                fail_user(q, user, k, t0);
        }
        fail_user(q, "victim", 200, t0);
        for (unsigned i = 0; i < 400; i++) {
                snprintf(user, sizeof(user), "user%u", i % 40);
                snprintf(source, sizeof(source), "host1.example.com/10.7.%u.%u", i / 256, i % 256);
                refused += add(q, user, source, "host1.example.com", t0 + S) == -EBUSY;
        }
        assert_true(refused > 0);
        assert_true(login_queue_delayed(q) <= (LOGIN_RHOSTS_PER_MACHINE + 1) * LOGIN_DELAYED_PER_SOURCE);
        assert_true(login_queue_delayed(q) < LOGIN_DELAYED_MAX);
        /* the victim from a clean address, and a user nobody failed */
        assert_int_equal(add(q, "victim", "203.0.113.5", NULL, t0 + S), 0);
        assert_int_equal(add(q, "bystander", "203.0.113.6", NULL, t0 + S), 0);
        /* One plain source holds LOGIN_DELAYED_PER_SOURCE, then -EBUSY. */
        for (unsigned k = 0; k < LOGIN_DELAYED_PER_SOURCE; k++) {
                snprintf(user, sizeof(user), "user%u", k);
                assert_int_equal(add(q, user, "203.0.113.66", NULL, t0 + S), 0);
        }
        assert_int_equal(add(q, "user9", "203.0.113.66", NULL, t0 + S), -EBUSY);
        login_queue_free(q);
}

/* A machine names at most LOGIN_RHOSTS_PER_MACHINE rhosts in a window; logins from further
 * ones are counted as the machine's own. */
static void test_rhosts_per_machine(void **state) {
        LoginQueue *q = login_queue_new();
        uint64_t t0 = 4000 * S;
        char source[96];
        LoginJob *j;

        assert_non_null(q);
        for (unsigned i = 0; i < LOGIN_RHOSTS_PER_MACHINE; i++) {
                char user[32];

                /* a user each, none of them slowed down */
                snprintf(user, sizeof(user), "user%u", i);
                snprintf(source, sizeof(source), "m.example.com/10.8.0.%u", i);
                j = job_new(user, source, "m.example.com");
                assert_int_equal(login_queue_add(q, j, t0), 0);
                assert_string_equal(j->source, source);
                (void) run_due(q, t0, NULL);
        }
        j = job_new("alice", "m.example.com/10.8.1.1", "m.example.com");
        assert_int_equal(login_queue_add(q, j, t0), 0);
        assert_string_equal(j->source, "m.example.com");
        (void) run_due(q, t0, NULL);
        /* one it named already keeps its own count */
        j = job_new("alice", "m.example.com/10.8.0.3", "m.example.com");
        assert_int_equal(login_queue_add(q, j, t0), 0);
        assert_string_equal(j->source, "m.example.com/10.8.0.3");
        (void) run_due(q, t0, NULL);
        /* another machine has its own */
        j = job_new("alice", "n.example.com/10.8.1.1", "n.example.com");
        assert_int_equal(login_queue_add(q, j, t0), 0);
        assert_string_equal(j->source, "n.example.com/10.8.1.1");
        (void) run_due(q, t0, NULL);
        /* a new window, new rhosts */
        j = job_new("alice", "m.example.com/10.8.1.1", "m.example.com");
        assert_int_equal(login_queue_add(q, j, t0 + LOGIN_WINDOW_USEC), 0);
        assert_string_equal(j->source, "m.example.com/10.8.1.1");
        (void) run_due(q, t0 + LOGIN_WINDOW_USEC, NULL);
        login_queue_free(q);
}

static void check_address(const char *in, const char *want) {
        char *s = NULL;

        assert_int_equal(login_source_address(in, strlen(in), &s), 0);
        assert_string_equal(s, want);
        free(s);
}

/* An IPv6 host holds a /64: it is counted as one source. */
static void test_source_address(void **state) {
        char *s = NULL;

        check_address("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
        check_address("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64");
        check_address("[2001:db8:1:2::9]", "2001:db8:1:2::/64");
        check_address("::1", "::/64");
        check_address("::ffff:192.0.2.1", "192.0.2.1");
        check_address("192.0.2.1", "192.0.2.1");
        check_address("host.example.com", "host.example.com");
        check_address("fe80::1%eth0", "fe80::1%eth0");
        check_address("", "");
        check_address("[]", "[]");
        /* a NUL inside is refused, not cut at */
        assert_int_equal(login_source_address("::1\0x", 5, &s), -EBADMSG);
        assert_null(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_and_window),
                cmocka_unit_test(test_in_flight),
                cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_user_delay),
                cmocka_unit_test(test_user_serialized),
                cmocka_unit_test(test_clean_source_first),
                cmocka_unit_test(test_flood_bounded),
                cmocka_unit_test(test_rhosts_per_machine),
                cmocka_unit_test(test_source_address),
                cmocka_unit_test(test_pam_status),
                cmocka_unit_test(test_pam_service_configured),
                cmocka_unit_test(test_pam_password_unreadable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
