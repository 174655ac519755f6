/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The key commands, as Knox's CLI has them: create, add, get, versions, promote, reactivate,
 * deactivate, access, acl, keys, delete. Output, wording and streams follow Knox's client
 * (client/ in its tree): results on stdout, errors as log lines on stderr. */
#include "keyward.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl-json.h"
#include "buf.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "strv.h"

#define ACL_FILE_MAX (1024 * 1024)

static int create_or_add(int argc, char **argv, bool create) {
        static const struct option options[] = {
                {"key-template", required_argument, NULL, 'T'},
                COMMON_OPTIONS,
        };
        const char *verb = create ? "create" : "add";
        _cleanup_(secret_freep) Secret *data = NULL;
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        KnoxClient *c;
        uint64_t version = 0;
        int opt, r;

        while ((opt = getopt_long_only(argc, argv, ":", options, NULL)) >= 0)
                switch (opt) {
                case 'T':
                        return fail(
                                "Tink key templates are not supported by keyward; pipe the key data to stdin.");
                        COMMON_DEFAULT(opt, argv, verb);
                }
        if (argc - optind != 1)
                return usage_error(
                        create ? "create takes exactly one argument. See 'keyward help create'" :
                                 "add takes only one argument. See 'keyward help add'");

        r = client_get(&c);
        if (r != 0)
                return r;

        /* Knox prints this on stdout, before it reads. */
        printf("Reading from stdin...\n");
        (void) fflush(stdout);
        r = read_stdin_secret(&data);
        if (r < 0)
                return fail("problem reading key data: %s", strerror(-r));

        if (create)
                r = knox_client_create_key(c, argv[optind], data, NULL, &version, &err);
        else
                r = knox_client_add_version(c, argv[optind], data, &version, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error adding version", r, &err);

        if (create)
                printf("Created key with initial version %" PRIu64 "\n", version);
        else
                printf("Added key version %" PRIu64 "\n", version);
        return EXIT_OK;
}

int verb_create(int argc, char **argv) {
        return create_or_add(argc, argv, true);
}

int verb_add(int argc, char **argv) {
        return create_or_add(argc, argv, false);
}

/* The version get prints: version (an id) if given, else the primary. Without all, an
 * inactive version does not count, as the server leaves it out. */
static const KeyVersion *get_pick(const Key *k, const char *version, bool all) {
        FOREACH_ARRAY(v, k->versions, k->n_versions) {
                char id[32];

                if (!version) {
                        if (v->status == VERSION_STATUS_PRIMARY)
                                return v;
                        continue;
                }
                (void) snprintf(id, sizeof(id), "%" PRIu64, v->id);
                if (streq(id, version) && (all || v->status != VERSION_STATUS_INACTIVE))
                        return v;
        }
        return NULL;
}

static int get_print(const Key *k, const char *version, bool all, bool json) {
        const KeyVersion *v;
        int r;

        if (json)
                return print_key_json(k, true);

        v = get_pick(k, version, all);
        if (!v || !v->data)
                return fail("Key version not found.");
        r = write_stdout(v->data->data, v->data->size);
        if (r < 0)
                return fail("Failed to write the key: %s", strerror(-r));
        return EXIT_OK;
}

int verb_get(int argc, char **argv) {
        enum {
                ARG_AGENT = _ARG_COMMON_MAX,
        };
        static const struct option options[] = {
                {"tink-keyset", no_argument, NULL, 'K'},
                {"tink-keyset-info", no_argument, NULL, 'I'},
                {"agent", no_argument, NULL, ARG_AGENT},
                COMMON_OPTIONS,
        };
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(key_freep) Key *k = NULL;
        const char *version = NULL;
        bool json = false, all = false, network = false, agent = false;
        KnoxClient *c;
        int opt, r;

        while ((opt = getopt_long_only(argc, argv, ":v:jna", options, NULL)) >= 0)
                switch (opt) {
                case 'v':
                        version = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'n':
                        network = true;
                        break;
                case 'a':
                        all = true;
                        break;
                case ARG_AGENT:
                        agent = true;
                        break;
                case 'K':
                case 'I':
                        return fail("Tink keysets are not supported by keyward.");
                        COMMON_DEFAULT(opt, argv, "get");
                }
        json = json || arg_json;
        if (argc - optind != 1)
                return usage_error("get takes only one argument. See 'keyward help get'");
        if (network && agent)
                return usage_error("-n and --agent exclude each other. See 'keyward help get'");

        /* As Knox reads its local cache first: the agent, unless -n. The agent keeps no
         * creation times, so the JSON comes from the server unless --agent insists. */
        if (!network && (!json || agent)) {
                _cleanup_free_ char *why = NULL;

                r = agent_get_key(argv[optind], json || all || version, &k, &why);
                if (r == -ENOMEM)
                        return fail("Out of memory.");
                if (r >= 0 && (json || get_pick(k, version, all)))
                        return get_print(k, version, all, json);
                if (agent)
                        return r < 0 ? fail("Error getting key from agent: %s", why) :
                                       fail("Key version not found.");
                if (r < 0)
                        log_debug("Not from the agent, so from the server: %s", why);
                else
                        log_debug(
                                "The agent has no version '%s' of the key; asking the server.",
                                strna(version));
                k = key_free(k);
        }

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_get_key(
                c, argv[optind], all ? VERSION_STATUS_INACTIVE : VERSION_STATUS_ACTIVE, &k, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting key", r, &err);
        return get_print(k, version, all, json);
}

int verb_versions(int argc, char **argv) {
        static const struct option options[] = {COMMON_OPTIONS};
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(key_freep) Key *k = NULL;
        VersionStatus status = VERSION_STATUS_ACTIVE;
        bool verbose = false;
        KnoxClient *c;
        int opt, r;

        while ((opt = getopt_long_only(argc, argv, ":s:v", options, NULL)) >= 0)
                switch (opt) {
                case 's':
                        if (strcasecmp(optarg, "active") == 0)
                                status = VERSION_STATUS_ACTIVE;
                        else if (strcasecmp(optarg, "primary") == 0)
                                status = VERSION_STATUS_PRIMARY;
                        else if (strcasecmp(optarg, "inactive") == 0)
                                status = VERSION_STATUS_INACTIVE;
                        else
                                return usage_error(
                                        "Invalid state '%s': use active, primary or inactive. See 'keyward help versions'",
                                        optarg);
                        break;
                case 'v':
                        verbose = true;
                        break;
                        COMMON_DEFAULT(opt, argv, "versions");
                }
        if (argc - optind != 1)
                return usage_error("get takes only one argument. See 'keyward help versions'");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_get_key(c, argv[optind], status, &k, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting key", r, &err);

        if (arg_json) {
                _cleanup_buf_ Buf b = BUF_INIT;

                (void) buf_putc(&b, '[');
                FOREACH_ARRAY(v, k->versions, k->n_versions) {
                        (void) buf_printf(
                                &b, "%s{\"id\":%" PRIu64 ",\"status\":\"%s\",\"ts\":%" PRIi64 "}",
                                v == k->versions ? "" : ",", v->id, version_status_to_string(v->status),
                                v->ts);
                }
                (void) buf_puts(&b, "]\n");
                if (b.error < 0)
                        return fail("Out of memory.");
                fputs(b.data, stdout);
                return EXIT_OK;
        }

        FOREACH_ARRAY(v, k->versions, k->n_versions) {
                if (verbose)
                        printf("%" PRIu64 " \"%s\"\n", v->id, version_status_to_string(v->status));
                else
                        printf("%" PRIu64 "\n", v->id);
        }
        return EXIT_OK;
}

static int set_status(int argc, char **argv, VersionStatus status) {
        /* Knox's wording, command by command. */
        static const struct {
                const char *verb, *error, *done;
        } texts[] = {
                [VERSION_STATUS_PRIMARY] = {"promote", "Error promoting version", "Promoted"},
                [VERSION_STATUS_ACTIVE] = {"reactivate", "Error reactivating version", "Reactivated"},
                [VERSION_STATUS_INACTIVE] = {"deactivate", "Error updating version", "Deactivated"},
        };
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        KnoxClient *c;
        uint64_t version;
        int r;

        PARSE_PLAIN(argc, argv, texts[status].verb);
        if (argc - optind != 2)
                return usage_error(
                        "%s takes exactly two argument. See 'keyward help %s'", texts[status].verb,
                        texts[status].verb);
        if (safe_atou64(argv[optind + 1], &version) < 0)
                return fail("%s: invalid version id '%s'", texts[status].error, argv[optind + 1]);

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_set_version_status(c, argv[optind], version, status, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call(texts[status].error, r, &err);
        printf("%s %s successfully.\n", texts[status].done, argv[optind + 1]);
        return EXIT_OK;
}

int verb_promote(int argc, char **argv) {
        return set_status(argc, argv, VERSION_STATUS_PRIMARY);
}

int verb_reactivate(int argc, char **argv) {
        return set_status(argc, argv, VERSION_STATUS_ACTIVE);
}

int verb_deactivate(int argc, char **argv) {
        return set_status(argc, argv, VERSION_STATUS_INACTIVE);
}

int verb_access(int argc, char **argv) {
        static const struct option options[] = {
                {"acl", required_argument, NULL, 'L'},
                COMMON_OPTIONS,
        };
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_acl_ Acl acl = {};
        const char *acl_file = NULL;
        bool access_flags[4] = {}, type_flags[6] = {};
        KnoxClient *c;
        int opt, r;

        while ((opt = getopt_long_only(argc, argv, ":nrwaMUGPSN", options, NULL)) >= 0)
                switch (opt) {
                case 'L':
                        acl_file = optarg;
                        break;
                case 'n':
                case 'r':
                case 'w':
                case 'a':
                        access_flags[strchr("nrwa", opt) - "nrwa"] = true;
                        break;
                case 'M':
                case 'U':
                case 'G':
                case 'P':
                case 'S':
                case 'N':
                        type_flags[strchr("MUGPSN", opt) - "MUGPSN"] = true;
                        break;
                        COMMON_DEFAULT(opt, argv, "access");
                }

        if (acl_file) {
                _cleanup_free_ char *text = NULL;
                const char *msg = NULL;
                size_t size;

                if (argc - optind != 1)
                        return usage_error(
                                "access takes one argument when used with --acl. See 'keyward help access'");
                r = read_full_file(acl_file, ACL_FILE_MAX, &text, &size);
                if (r < 0)
                        return fail("Could not read acl file: %s: %s", acl_file, strerror(-r));
                r = acl_parse(text, size, &acl, &msg);
                if (r < 0)
                        return fail("Could not decode access list properly: %s", msg ?: strerror(-r));
        } else {
                /* Knox's order of precedence when several are given. */
                static const AccessType accesses[] = {ACCESS_NONE, ACCESS_READ, ACCESS_WRITE, ACCESS_ADMIN};
                static const PrincipalType types[] = {
                        PRINCIPAL_TYPE_MACHINE,        PRINCIPAL_TYPE_USER,    PRINCIPAL_TYPE_USER_GROUP,
                        PRINCIPAL_TYPE_MACHINE_PREFIX, PRINCIPAL_TYPE_SERVICE, PRINCIPAL_TYPE_SERVICE_PREFIX,
                };
                Access a = {.type = _PRINCIPAL_TYPE_INVALID, .access = _ACCESS_TYPE_INVALID};

                if (argc - optind != 2)
                        return usage_error("access takes exactly two arguments. See 'keyward help access'");
                for (size_t i = 0; i < ELEMENTSOF(accesses) && a.access < 0; i++)
                        if (access_flags[i])
                                a.access = accesses[i];
                if (a.access < 0)
                        return usage_error("access requires {-n,-r,-w,-a}. See 'keyward help access'");
                for (size_t i = 0; i < ELEMENTSOF(types) && a.type < 0; i++)
                        if (type_flags[i])
                                a.type = types[i];
                if (a.type < 0)
                        return usage_error("access requires {-M|-U|-G|-P|-S|-N}. See 'keyward help access'");
                a.id = strdup(argv[optind + 1]);
                acl.entries = malloc(sizeof(Access));
                if (!a.id || !acl.entries) {
                        free(a.id);
                        return fail("Out of memory.");
                }
                acl.entries[0] = a;
                acl.n = 1;
        }

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_put_access(c, argv[optind], &acl, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Failed to update access", r, &err);
        printf("Successfully updated Access\n");
        return EXIT_OK;
}

int verb_acl(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_acl_ Acl acl = {};
        _cleanup_buf_ Buf b = BUF_INIT;
        KnoxClient *c;
        int r;

        /* Knox spells it -json; getopt_long_only() takes -json and --json alike. */
        PARSE_PLAIN(argc, argv, "acl");
        if (argc - optind != 1)
                return usage_error("acl takes only one argument. See 'keyward help acl'");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_get_acl(c, argv[optind], &acl, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting key ACL", r, &err);

        if (arg_json) {
                (void) acl_json_append(&b, &acl);
                (void) buf_putc(&b, '\n');
        } else
                for (size_t i = 0; i < acl.n; i++) {
                        (void) access_json_append(&b, &acl.entries[i]);
                        (void) buf_putc(&b, '\n');
                }
        if (b.error < 0)
                return fail("Out of memory.");
        fputs(strempty(b.data), stdout);
        return EXIT_OK;
}

int verb_keys(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **ids = NULL, **none = NULL;
        KnoxClient *c;
        int r;

        PARSE_PLAIN(argc, argv, "keys");

        r = client_get(&c);
        if (r != 0)
                return r;
        if (optind < argc) {
                /* Knox asks with the hash "NONE", which matches no key's hash. */
                for (int i = optind; i < argc; i++)
                        if (strv_extend(&none, "NONE") < 0)
                                return fail("Out of memory.");
                r = knox_client_changed_keys(
                        c, argv + optind, none, (size_t) (argc - optind), 0, &ids, &err);
        } else
                r = knox_client_list_keys(c, &ids, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting keys", r, &err);

        if (arg_json) {
                _cleanup_buf_ Buf b = BUF_INIT;

                (void) buf_putc(&b, '[');
                STRV_FOREACH(id, ids) {
                        if (id != ids)
                                (void) buf_putc(&b, ',');
                        (void) json_append_cstring(&b, *id);
                }
                (void) buf_puts(&b, "]\n");
                if (b.error < 0)
                        return fail("Out of memory.");
                fputs(b.data, stdout);
                return EXIT_OK;
        }
        STRV_FOREACH(id, ids)
                printf("%s\n", *id);
        return EXIT_OK;
}

int verb_delete(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        KnoxClient *c;
        int r;

        PARSE_PLAIN(argc, argv, "delete");
        if (argc - optind != 1)
                return usage_error("delete takes exactly one argument. See 'keyward help delete'");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_delete_key(c, argv[optind], &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error deleting key", r, &err);
        printf("Successfully deleted key\n");
        return EXIT_OK;
}
