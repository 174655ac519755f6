/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every keyward command shares: global flags, Knox-style error lines, the client and
 * where its Authorization comes from, stdin and stdout. */
#include "keyward.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "keyward-config.h"
#include "knox-json.h"
#include "log.h"
#include "strv.h"

char **arg_servers = NULL;
char *arg_server_ca = NULL;
char *arg_cert = NULL;
char *arg_key = NULL;
char *arg_hostname = NULL;
char *arg_token = NULL;
bool arg_json = false;

static KnoxClient *client = NULL;
static bool client_user_token = false;

static _printf_(1, 0) void log_line_va(const char *fmt, va_list ap) {
        char stamp[32] = "";
        struct tm tm;
        time_t t = time(NULL);
        int saved = errno;

        /* Go's log package: local time, "2006/01/02 15:04:05 ". */
        if (localtime_r(&t, &tm))
                (void) strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S ", &tm);
        (void) fflush(stdout);
        errno = saved;
        fputs(stamp, stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

int fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_line_va(fmt, ap);
        va_end(ap);
        return EXIT_FAIL;
}

int usage_error(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_line_va(fmt, ap);
        va_end(ap);
        return EXIT_USAGE;
}

void note(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_line_va(fmt, ap);
        va_end(ap);
}

static int set_string(char **p, const char *v) {
        char *s = strdup(v);

        if (!s)
                return -ENOMEM;
        free(*p);
        *p = s;
        return 0;
}

int common_option(int c, char **argv, const char *verb) {
        int r = 0;

        switch (c) {
        case ARG_SERVER:
                /* "a,b c" and repeated flags: every URL, in order. */
                r = keyward_servers_append(&arg_servers, optarg);
                if (r == -EINVAL || r == -E2BIG) {
                        (void) usage_error(
                                "invalid value \"%s\" for flag --server: not a list of server URLs", optarg);
                        goto usage;
                }
                break;
        case ARG_SERVER_CA:
                r = set_string(&arg_server_ca, optarg);
                break;
        case ARG_CERT:
                r = set_string(&arg_cert, optarg);
                break;
        case ARG_KEY:
                r = set_string(&arg_key, optarg);
                break;
        case ARG_HOSTNAME:
                r = set_string(&arg_hostname, optarg);
                break;
        case ARG_TOKEN:
                note("Warning: --token shows the token to every user of this machine in the process "
                     "list; set KEYWARD_TOKEN instead.");
                arg_token = erase_and_free_string(arg_token);
                arg_token = strdup(optarg);
                if (!arg_token)
                        r = -ENOMEM;
                /* Shorten its life in /proc/self/cmdline at least. */
                explicit_bzero(optarg, strlen(optarg));
                break;
        case ARG_JSON:
                arg_json = true;
                break;
        case ARG_HELP:
                verb_help(verb);
                return COMMON_HELP;
        case ':':
                (void) usage_error("flag needs an argument: %s", argv[optind - 1]);
                goto usage;
        case '?':
                /* -h is ambiguous for getopt_long_only() (--help, --hostname): Go's -h. */
                if (optopt == 0 && optind > 0 && streq(argv[optind - 1], "-h")) {
                        verb_help(verb);
                        return COMMON_HELP;
                }
                if (optopt != 0)
                        (void) usage_error("flag provided but not defined: -%c", optopt);
                else
                        (void) usage_error("flag provided but not defined: %s", argv[optind - 1]);
                goto usage;
        default:
                (void) usage_error("Unexpected option.");
                goto usage;
        }
        if (r < 0) {
                (void) fail("Out of memory.");
                return COMMON_USAGE;
        }
        return COMMON_HANDLED;

usage:
        if (verb)
                fprintf(stderr, "Run 'keyward help %s' for usage.\n", verb);
        else
                fprintf(stderr, "Run 'keyward help' for usage.\n");
        return COMMON_USAGE;
}

/* The user token, from the first source that has one. */
static int user_token(char **ret) {
        static const char *const token_variables[] = {"KEYWARD_TOKEN", "KNOX_USER_AUTH"};
        const char *e;
        char *t;

        if (arg_token) {
                t = strdup(arg_token);
                if (!t)
                        return -ENOMEM;
                *ret = t;
                return 1;
        }
        FOREACH_ARRAY(name, token_variables, ELEMENTSOF(token_variables)) {
                e = secure_getenv(*name);
                if (!isempty(e)) {
                        t = strdup(e);
                        if (!t)
                                return -ENOMEM;
                        *ret = t;
                        return 1;
                }
        }
        return agent_get_user_token(ret);
}

int client_get(KnoxClient **ret) {
        _cleanup_erase_free_ char *token = NULL, *auth = NULL;
        _cleanup_strv_free_ char **servers = NULL;
        _cleanup_free_ char *ca = NULL;
        char host[256];
        KnoxClientConfig config = {};
        int r;

        if (client) {
                *ret = client;
                return 0;
        }

        if (!arg_cert != !arg_key)
                return usage_error("--cert and --key go together.");
        r = client_server_settings(&servers, &ca);
        if (r != 0)
                return r;

        r = user_token(&token);
        if (r < 0)
                return fail("Out of memory.");
        if (r > 0) {
                if (asprintf(&auth, "0u%s", token) < 0)
                        auth = NULL;
                client_user_token = true;
        } else if (arg_cert) {
                if (arg_hostname)
                        r = asprintf(&auth, "0t%s", arg_hostname);
                else if (gethostname(host, sizeof(host)) >= 0) {
                        host[sizeof(host) - 1] = '\0';
                        r = asprintf(&auth, "0t%s", host);
                } else
                        return fail("Failed to get the host name: %m");
                if (r < 0)
                        auth = NULL;
        }
        if ((r > 0 || arg_cert) && !auth)
                return fail("Out of memory.");

        config = (KnoxClientConfig){
                .servers = servers,
                .ca_file = ca,
                .cert_file = arg_cert,
                .key_file = arg_key,
                .authorization = auth,
        };
        r = knox_client_new(&config, &client);
        if (r == -EINVAL)
                return usage_error("Invalid server URL.");
        if (r < 0)
                return fail("Failed to set up the client: %s", strerror(-r));
        *ret = client;
        return 0;
}

bool client_has_user_token(void) {
        return client_user_token;
}

void client_release(void) {
        client = knox_client_free(client);
}

/* Knox's default texts (protocol.md §2), for an error envelope without a message. */
static const char *knox_code_text(KnoxCode code) {
        /* clang-format off */
        static const char *const texts[_KNOX_CODE_MAX] = {
                [KNOX_INTERNAL_SERVER_ERROR]         = "Internal Server Error",
                [KNOX_KEY_IDENTIFIER_EXISTS]         = "Key identifer exists",
                [KNOX_KEY_VERSION_DOES_NOT_EXIST]    = "Key version does not exist",
                [KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST] = "Key identifer does not exist",
                [KNOX_UNAUTHENTICATED]               = "User or machine is not authenticated",
                [KNOX_UNAUTHORIZED]                  = "User or machine not authorized",
                [KNOX_NOT_YET_IMPLEMENTED]           = "Not yet implemented",
                [KNOX_NOT_FOUND]                     = "Route not found",
                [KNOX_NO_KEY_ID]                     = "Missing Key ID",
                [KNOX_NO_KEY_DATA]                   = "Missing Key Data",
                [KNOX_BAD_REQUEST_DATA]              = "Bad request format",
                [KNOX_BAD_KEY_FORMAT]                = "Key ID contains unsupported characters",
                [KNOX_BAD_PRINCIPAL_IDENTIFIER]      = "Invalid principal identifier",
        };
        /* clang-format on */
        return code > 0 && code < _KNOX_CODE_MAX ? texts[code] : NULL;
}

int fail_call(const char *what, int r, const KnoxError *err) {
        const char *msg;

        if (r < 0)
                return fail("%s: %s", what, err->message ?: strerror(-r));
        msg = err->message;
        if (isempty(msg))
                msg = knox_code_text(err->code);
        if (!msg)
                return fail("%s: error code %d (HTTP status %d)", what, (int) err->code, err->http_status);
        if (err->code == KNOX_UNAUTHENTICATED && !client_user_token)
                return fail("%s: %s (no user token: run 'keyward login', or set KEYWARD_TOKEN)", what, msg);
        return fail("%s: %s", what, msg);
}

int read_stdin_secret(Secret **ret) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        char chunk[16 * 1024];
        CLEANUP_ERASE(chunk);
        Secret *s;

        b.max = KEYWARD_DATA_MAX;
        for (;;) {
                ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                if (buf_put(&b, chunk, (size_t) n) < 0)
                        return b.error;
        }
        s = secret_new_copy(b.data ?: "", b.len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int write_stdout(const void *p, size_t n) {
        const uint8_t *q = p;

        /* Straight to the fd: stdio's buffer would keep a copy of the secret. */
        if (fflush(stdout) != 0)
                return -errno;
        while (n > 0) {
                ssize_t k = write(STDOUT_FILENO, q, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                q += k;
                n -= (size_t) k;
        }
        return 0;
}

int print_key_json(const Key *k, bool with_acl) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        int r;

        r = knox_key_json_append(&b, k, VERSION_STATUS_INACTIVE, with_acl);
        if (r >= 0)
                r = buf_putc(&b, '\n');
        if (r < 0)
                return fail("Failed to format the key: %s", strerror(-r));
        r = write_stdout(b.data, b.len);
        if (r < 0)
                return fail("Failed to write the key: %s", strerror(-r));
        return EXIT_OK;
}
