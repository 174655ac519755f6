/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The keyward command line: shared state and helpers of its commands. Every command is
 * `int verb_NAME(int argc, char **argv)` with argv[0] the command name, and returns the
 * exit status: EXIT_OK, EXIT_FAIL (a Knox-style log line was printed on stderr) or
 * EXIT_USAGE. */

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "knox-client.h"
#include "macro.h"
#include "secret.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Largest key data read from stdin. */
#define KEYWARD_DATA_MAX (16 * 1024 * 1024)

/* Global flags, also accepted after the command name. */
extern char **arg_servers;
extern char *arg_server_ca;
extern char *arg_cert;
extern char *arg_key;
extern char *arg_hostname;
extern char *arg_token; /* from --token: a secret, wiped at exit */
extern bool arg_json;

/* Long options of the global flags, to end each command's option table with. */
enum {
        ARG_SERVER = 0x100,
        ARG_SERVER_CA,
        ARG_CERT,
        ARG_KEY,
        ARG_TOKEN,
        ARG_HOSTNAME,
        ARG_JSON,
        ARG_HELP,
        _ARG_COMMON_MAX,
};
/* clang-format off */
#define COMMON_OPTIONS                                              \
        { "server",    required_argument, NULL, ARG_SERVER    },    \
        { "server-ca", required_argument, NULL, ARG_SERVER_CA },    \
        { "cert",      required_argument, NULL, ARG_CERT      },    \
        { "key",       required_argument, NULL, ARG_KEY       },    \
        { "token",     required_argument, NULL, ARG_TOKEN     },    \
        { "hostname",  required_argument, NULL, ARG_HOSTNAME  },    \
        { "json",      no_argument,       NULL, ARG_JSON      },    \
        { "help",      no_argument,       NULL, ARG_HELP      },    \
        {}
/* clang-format on */

/* Handle what getopt returned that is not the command's own: a global flag (COMMON_HANDLED),
 * --help (prints the command's help: COMMON_HELP), or an unknown flag or a missing value
 * (prints Go's flag message: COMMON_USAGE). Commands end their switch with
 * COMMON_DEFAULT(c, "name"), which returns from the command in the last two cases. */
enum {
        COMMON_HANDLED,
        COMMON_HELP,
        COMMON_USAGE,
};
int common_option(int c, char **argv, const char *verb);
#define COMMON_DEFAULT(c, argv, verb)                                     \
        default: {                                                        \
                int _q_ = common_option(c, argv, verb);                   \
                if (_q_ != COMMON_HANDLED)                                \
                        return _q_ == COMMON_HELP ? EXIT_OK : EXIT_USAGE; \
                break;                                                    \
        }

/* Parse the flags of a command that has none of its own (the global ones only); returns
 * from the command on --help or a usage error. The positional arguments start at optind. */
#define PARSE_PLAIN(argc, argv, verb)                                             \
        do {                                                                      \
                int _c_;                                                          \
                static const struct option _o_[] = {COMMON_OPTIONS};              \
                while ((_c_ = getopt_long_only(argc, argv, ":", _o_, NULL)) >= 0) \
                        switch (_c_) { COMMON_DEFAULT(_c_, argv, verb); }         \
        } while (false)

/* Knox's command error line on stderr: "YYYY/MM/DD HH:MM:SS message". Returns EXIT_FAIL. */
int fail(const char *fmt, ...) _printf_(1, 2);
/* The same line for a usage error; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);
/* A non-fatal notice line in the same format. */
void note(const char *fmt, ...) _printf_(1, 2);

/* The client, made on first use from the flags and the environment: servers, CA, client
 * certificate, and the Authorization (the user token from --token, KEYWARD_TOKEN,
 * KNOX_USER_AUTH or the agent; else machine auth "0t<hostname>" when a certificate is
 * given; else none). Returns 0, or an exit status after printing why. */
int client_get(KnoxClient **ret);
/* The servers and the CA bundle (NULL: the system's), each from the first source that has
 * it: the flags, KEYWARD_SERVER and KEYWARD_SERVER_CA, keyward.conf (KEYWARD_CONFIG names
 * another file than /etc/keyward/keyward.conf), keyward-agent. Returns 0, or an exit status
 * after printing why (no server anywhere is a usage error). */
int client_server_settings(char ***ret_servers, char **ret_ca);
/* Whether the client got a user token (for hints on 401). */
bool client_has_user_token(void);
void client_release(void);

/* A failed call: prints "<what>: <why>" (Knox's wording) and returns EXIT_FAIL. r is the
 * call's return value, err its error. */
int fail_call(const char *what, int r, const KnoxError *err);

/* All of stdin into locked memory (at most KEYWARD_DATA_MAX bytes). */
int read_stdin_secret(Secret **ret);

/* Write all of p to stdout; -errno on failure. */
int write_stdout(const void *p, size_t n);

/* k as Knox's key JSON and a newline on stdout (with_acl: its ACL too); an exit status. */
int print_key_json(const Key *k, bool with_acl);

/* Help for one command (usage line and long text) on stdout; the command list. */
void verb_help(const char *verb);
void print_usage(FILE *f);

/* The agent over D-Bus: the user token it holds for us (NULL, 0 when it has none or is
 * not there). */
int agent_get_user_token(char **ret);

/* The key as keyward-agent has cached it, read over D-Bus without starting the agent:
 * GetKeyVersions (every version the agent has, creation times 0) when all_versions, else
 * GetKey (the primary version only). On failure returns -errno and, except for -ENOMEM,
 * *ret_why says why in words (no bus, no agent, or the agent's refusal and its error name). */
int agent_get_key(const char *id, bool all_versions, Key **ret, char **ret_why);

/* Commands. */
int verb_create(int argc, char **argv);
int verb_add(int argc, char **argv);
int verb_get(int argc, char **argv);
int verb_versions(int argc, char **argv);
int verb_promote(int argc, char **argv);
int verb_reactivate(int argc, char **argv);
int verb_deactivate(int argc, char **argv);
int verb_access(int argc, char **argv);
int verb_acl(int argc, char **argv);
int verb_keys(int argc, char **argv);
int verb_delete(int argc, char **argv);
int verb_whoami(int argc, char **argv);
int verb_expiring(int argc, char **argv);
int verb_login(int argc, char **argv);
int verb_logout(int argc, char **argv);
int verb_register(int argc, char **argv);
int verb_unregister(int argc, char **argv);
int verb_status(int argc, char **argv);
int verb_sync(int argc, char **argv);
