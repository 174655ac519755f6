/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward: Knox's command line for keywardd (create, get, versions, add, promote, ...), with
 * Knox's flags and output, plus login/logout/whoami and the agent's commands. */
#include "keyward.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strv.h"

typedef struct Verb {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *usage; /* after "keyward " */
        const char *summary;
        const char *help;
} Verb;

/* clang-format off */
static const Verb verbs[] = {
        { "register", verb_register,
          "register [-r] [-k identifier] [-f identifier_file] [-g] [-t timeout] [--reader user:NAME|group:NAME]... [--unit UNIT]... [--credential NAME] [--on-change none|restart|reload-or-restart|reload] [--file PATH [--file-owner USER] [--file-group GROUP] [--file-mode MODE]] [identifier...]",
          "register keys with the local agent, which caches them",
          "Register asks keyward-agent (over D-Bus) to fetch the keys and keep them up to date in its\n"
          "cache, where they stay available while every server is down.\n"
          "\n"
          "-k specifies a key identifier to register (identifiers may also follow the flags)\n"
          "-f specifies a file containing a newline-separated list of key identifiers\n"
          "-r removes all other registered keys; alone, it unregisters every key\n"
          "-g waits until the agent has the key and prints it as JSON (one identifier only)\n"
          "-t is how long -g waits (e.g. '5s', '500ms'; a plain number is seconds; default 5s)\n"
          "--reader user:NAME or group:NAME lets that local user or group read the key from the agent\n"
          "--unit UNIT lets that systemd unit load the key with LoadCredential=\n"
          "--credential NAME is the credential name the unit asks for (default: the key identifier)\n"
          "--on-change restart, reload-or-restart or reload: what the agent does to the units when the key rotates\n"
          "--file PATH has the agent write the primary version (the version set as JSON for a\n"
          "  PATH ending in .json) to PATH, under a directory the agent allows with --file-dir; one key only\n"
          "--file-owner USER, --file-group GROUP: the file's owner and group (default root)\n"
          "--file-mode MODE: its octal mode, at most 0660 (default 0400, or 0440 with --file-group)\n"
          "\n"
          "The machine, not the user, needs access to the key: the agent authenticates with the\n"
          "machine certificate. Registering needs root or the polkit action org.keyward.agent.manage.\n"
          "\n"
          "See also: keyward unregister, keyward status, keyward sync" },
        { "unregister", verb_unregister,
          "unregister <key_identifier>",
          "unregister a key identifier from the agent",
          "Unregister stops caching and refreshing a key and removes it from the agent's cache.\n"
          "\n"
          "See also: keyward register, keyward status" },
        { "keys", verb_keys,
          "keys [<key_identifier> ...]",
          "lists key identifiers",
          "Keys lists every key identifier, or, with identifiers given, those of them that exist.\n"
          "This requires valid user or machine authentication, but no access to the keys.\n"
          "--json prints a JSON array.\n"
          "\n"
          "See also: keyward get, keyward create" },
        { "get", verb_get,
          "get [-v key_version] [-n] [-j] [-a] [--agent] <key_identifier>",
          "get a key",
          "Get prints the key data of the primary version, with no newline added.\n"
          "\n"
          "-v specifies the key_version to get instead of the primary version.\n"
          "-j (or --json) prints the key as JSON, as the Knox API specifies it, and a newline.\n"
          "-n forces a network call: the server, not keyward-agent's cache.\n"
          "-a includes inactive versions (with -j, or to find an inactive version with -v).\n"
          "--agent reads from keyward-agent only, and fails when it cannot answer.\n"
          "\n"
          "Without -n, a key registered with keyward-agent is read from it over D-Bus (for root and\n"
          "the readers named at registration), so it can be read while the servers are away; when\n"
          "the agent cannot answer, the server is asked. -j asks the server unless --agent is given\n"
          "(the agent keeps no creation times: ts is 0).\n"
          "\n"
          "This requires read access to the key.\n"
          "\n"
          "See also: keyward create, keyward versions, keyward register" },
        { "versions", verb_versions,
          "versions [-s state] [-v] <key_identifier>",
          "gets the versions of a key",
          "Versions prints the version ids of a key, one per line.\n"
          "\n"
          "-s specifies the minimum state of the versions to list: active (the default: primary and\n"
          "   active versions), primary, or inactive (all versions).\n"
          "-v shows the state of each version alongside its id.\n"
          "--json prints a JSON array of {\"id\", \"status\", \"ts\"}.\n"
          "\n"
          "This requires read access to the key.\n"
          "\n"
          "See also: keyward keys, keyward get" },
        { "acl", verb_acl,
          "acl [-json] <key_identifier>",
          "gets the ACL of a key",
          "Acl prints the access control list of a key, one JSON entry per line.\n"
          "\n"
          "-json (or --json) prints the ACL as one JSON array, which 'keyward access -acl' accepts.\n"
          "\n"
          "This does not require any access to the key, so that anyone can see whom to ask.\n"
          "\n"
          "See also: keyward access" },
        { "promote", verb_promote,
          "promote <key_identifier> <key_version>",
          "promotes a key version to primary",
          "Promote makes an active key version the primary version; the primary version becomes active.\n"
          "\n"
          "This requires write access to the key.\n"
          "\n"
          "See also: keyward reactivate, keyward deactivate" },
        { "create", verb_create,
          "create <key_identifier>",
          "creates a new key",
          "Create makes a new key whose primary version is the data read from stdin.\n"
          "The data never goes on the command line. The new version id is printed.\n"
          "\n"
          "Creating a key requires a user token. Its ACL gives the creator Admin access,\n"
          "plus the server's default entries.\n"
          "\n"
          "See also: keyward add, keyward get" },
        { "add", verb_add,
          "add <key_identifier>",
          "adds a new key version",
          "Add adds a version, read from stdin, to an existing key. The version is active; promote\n"
          "it to make it the primary version. The new version id is printed.\n"
          "\n"
          "This requires write access to the key.\n"
          "\n"
          "See also: keyward create, keyward promote" },
        { "deactivate", verb_deactivate,
          "deactivate <key_identifier> <key_version>",
          "deactivates a key version",
          "Deactivate makes an active key version inactive. The primary version cannot be deactivated.\n"
          "\n"
          "This requires write access to the key.\n"
          "\n"
          "See also: keyward reactivate, keyward promote" },
        { "reactivate", verb_reactivate,
          "reactivate <key_identifier> <key_version>",
          "reactivates an inactive key version",
          "Reactivate makes an inactive key version active again.\n"
          "\n"
          "This requires write access to the key.\n"
          "\n"
          "See also: keyward deactivate, keyward promote" },
        { "access", verb_access,
          "access {-n|-r|-w|-a} {-M|-U|-G|-P|-S|-N} <key_identifier> <principal> | access -acl <file> <key_identifier>",
          "modifies the ACL of a key",
          "Access adds or changes one entry of a key's ACL, or applies a JSON list of entries.\n"
          "\n"
          "-acl: a file with a JSON list of access entries\n"
          "\n"
          "-n: no access (removes the principal's entry)\n"
          "-r: read access\n"
          "-w: write access (rotate versions), with read\n"
          "-a: admin access (change the ACL, delete the key), with write and read\n"
          "\n"
          "-M: a machine, by exact hostname\n"
          "-U: a user\n"
          "-G: a user group\n"
          "-P: a machine hostname prefix ('auth' matches 'auth004')\n"
          "-S: a service, by exact SPIFFE ID (spiffe://example.com/service)\n"
          "-N: a service prefix, a SPIFFE ID ending with a slash (spiffe://example.com/ns/)\n"
          "\n"
          "This requires admin access to the key.\n"
          "\n"
          "See also: keyward acl" },
        { "delete", verb_delete,
          "delete <key_identifier>",
          "deletes a key",
          "Delete removes the key and all its versions from the server. This requires admin access.\n"
          "\n"
          "See also: keyward create" },
        { "login", verb_login,
          "login [username]",
          "gets a user token with a password",
          "Login asks for the password of the user (by default the current user) without echo, or\n"
          "reads it from stdin when stdin is not a terminal, and prints the user token the server\n"
          "returns on stdout:\n"
          "\n"
          "    export KEYWARD_TOKEN=$(keyward login)\n"
          "\n"
          "With --json it prints the whole answer (token, user, groups, expiry).\n"
          "\n"
          "See also: keyward logout, keyward whoami" },
        { "logout", verb_logout,
          "logout",
          "revokes the user token",
          "Logout revokes the user token in use on the server.\n"
          "\n"
          "See also: keyward login" },
        { "whoami", verb_whoami,
          "whoami",
          "shows who the server thinks you are",
          "Whoami prints the principal the server authenticated, its type and groups.\n"
          "--json prints the server's answer as JSON." },
        { "expiring", verb_expiring,
          "expiring [--within DURATION]",
          "lists keys whose certificate expires soon",
          "Expiring lists the keys you may read whose primary version is an X.509 certificate (for\n"
          "a chain, the first certificate) that expires within DURATION from now, or has expired,\n"
          "soonest first: the key identifier, the primary version, its notAfter (UTC) and the days\n"
          "left. keywardd records notAfter when a version is written.\n"
          "\n"
          "--within DURATION is the window (e.g. '30d', '12h', '90d'; a plain number is seconds;\n"
          "default 30d)\n"
          "--json prints the server's list: [{\"id\",\"version\",\"not_after\"}], not_after in\n"
          "seconds since the epoch.\n"
          "\n"
          "This requires read access to the keys listed; other keys are left out.\n"
          "\n"
          "See also: keyward get, keyward versions" },
        { "status", verb_status,
          "status",
          "shows the state of the local agent",
          "Status prints the agent's version, servers, connection state, last sync, why the last\n"
          "exchange with the servers failed, and the keys registered with it, each with what went\n"
          "wrong fetching it or writing its cache file. --json prints the same as JSON." },
        { "sync", verb_sync,
          "sync",
          "makes the agent fetch its keys now",
          "Sync asks the agent to compare its keys with the server now.\n"
          "This needs root or the polkit action org.keyward.agent.manage." },
};
/* clang-format on */

static const char global_help[] =
        "Global flags (also accepted after the command):\n"
        "    --server URL        server URL, repeatable or comma separated (KEYWARD_SERVER)\n"
        "    --server-ca FILE    CA certificates for the server (KEYWARD_SERVER_CA)\n"
        "    --cert FILE --key FILE\n"
        "                        client certificate and key (machine authentication)\n"
        "    --hostname NAME     machine name for machine authentication (default: this host's)\n"
        "    --token TOKEN       user token (prefer KEYWARD_TOKEN: argv is visible to all)\n"
        "    --json              JSON output for reading commands\n"
        "\n"
        "The servers and their CA come from the flags, else KEYWARD_SERVER and KEYWARD_SERVER_CA,\n"
        "else /etc/keyward/keyward.conf (KEYWARD_CONFIG names another file), else keyward-agent.\n"
        "The user token comes from --token, KEYWARD_TOKEN, KNOX_USER_AUTH, or keyward-agent.\n";

static const Verb *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return &verbs[i];
        return NULL;
}

void print_usage(FILE *f) {
        fputs("keyward is a tool for storing and rotating keys (a Knox client for keywardd).\n"
              "\n"
              "Usage:\n"
              "\n"
              "\tkeyward [global flags] command [arguments]\n"
              "\n"
              "The commands are:\n",
              f);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "\n    %-14s %s", verbs[i].name, verbs[i].summary);
        fprintf(f,
                "\n    %-14s %s\n"
                "\n"
                "Use \"keyward help [command]\" for more information about a command.\n"
                "\n",
                "version", "prints the version of keyward");
        fputs(global_help, f);
}

void verb_help(const char *verb) {
        const Verb *v = verb ? verb_find(verb) : NULL;

        if (!v) {
                print_usage(stdout);
                return;
        }
        printf("usage: keyward %s\n\n%s\n", v->usage, v->help);
}

static int verb_version(int argc, char **argv) {
        printf("keyward CLI version %s\n", PACKAGE_VERSION);
        return EXIT_OK;
}

static int help(int argc, char **argv) {
        if (argc <= 1) {
                print_usage(stdout);
                return EXIT_OK;
        }
        if (argc > 2) {
                fputs("usage: keyward help command\n\nToo many arguments given.\n", stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "version")) {
                puts("usage: keyward version\n\nPrints the version of keyward.");
                return EXIT_OK;
        }
        if (!verb_find(argv[1])) {
                fprintf(stderr, "Unknown help topic `%s`.  Run 'keyward help'.\n", argv[1]);
                return EXIT_USAGE;
        }
        verb_help(argv[1]);
        return EXIT_OK;
}

static int run(int argc, char *argv[]) {
        static const struct option options[] = {
                {"version", no_argument, NULL, 'V'},
                COMMON_OPTIONS,
        };
        const Verb *v;
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'V':
                        return verb_version(0, NULL);
                case 'h':
                        print_usage(stdout);
                        return EXIT_OK;
                        COMMON_DEFAULT(c, argv, NULL);
                }

        if (optind >= argc) {
                print_usage(stderr);
                return EXIT_USAGE;
        }
        argc -= optind;
        argv += optind;

        if (streq(argv[0], "help"))
                return help(argc, argv);
        if (streq(argv[0], "version"))
                return verb_version(argc, argv);
        v = verb_find(argv[0]);
        if (!v) {
                fprintf(stderr, "keyward: unknown subcommand \"%s\"\nRun 'keyward help' for usage.\n",
                        argv[0]);
                return EXIT_USAGE;
        }
        optind = 0; /* a fresh getopt for the command's own flags */
        return v->run(argc, argv);
}

int main(int argc, char *argv[]) {
        const char *level;
        int r;

        (void) setlocale(LC_ALL, "");
        log_setup("keyward", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        level = secure_getenv("KEYWARD_LOG_LEVEL");
        if (level && log_level_from_string(level) >= 0)
                log_set_max_level(log_level_from_string(level));

        r = run(argc, argv);

        client_release();
        strv_free(arg_servers);
        erase_and_free_string(arg_token);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (r == EXIT_OK)
                        r = fail("Failed to write to stdout: %m");
        }
        return r;
}
