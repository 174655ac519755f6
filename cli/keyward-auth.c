/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward's own user commands: login (POST /v0/auth/login/), logout (DELETE
 * /v0/auth/token/) and whoami (GET /v0/auth/whoami/). */
#include "keyward.h"

#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "buf.h"
#include "json-util.h"
#include "user-util.h"

#define PASSWORD_MAX 4096

int verb_whoami(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *json = NULL;
        const char *s, *msg = NULL;
        json_object *ps;
        KnoxClient *c;
        size_t len;
        int r;

        PARSE_PLAIN(argc, argv, "whoami");
        if (optind < argc)
                return usage_error("whoami takes no arguments. See 'keyward help whoami'");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_whoami(c, &json, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting principal", r, &err);
        if (arg_json) {
                printf("%s\n", json);
                return EXIT_OK;
        }

        r = json_parse(json, strlen(json), &o, &msg);
        if (r < 0)
                return fail("Invalid answer: %s", strna(msg));
        if (json_get_string(json_get_field(o, "principal"), &s, &len) >= 0)
                printf("principal: %s\n", s);
        if (json_get_string(json_get_field(o, "type"), &s, &len) >= 0)
                printf("type: %s\n", s);

        ps = json_get_field(o, "principals");
        for (size_t i = 0; json_object_is_type(ps, json_type_array) && i < json_object_array_length(ps);
             i++) {
                json_object *p = json_object_array_get_idx(ps, i), *groups = json_get_field(p, "groups");
                const char *id = NULL, *type = NULL;

                (void) json_get_string(json_get_field(p, "id"), &id, &len);
                (void) json_get_string(json_get_field(p, "type"), &type, &len);
                if (json_object_array_length(ps) > 1)
                        printf("principal %zu: %s (%s)\n", i + 1, strna(id), strna(type));
                if (json_object_is_type(groups, json_type_array) && json_object_array_length(groups) > 0) {
                        fputs("groups:", stdout);
                        for (size_t j = 0; j < json_object_array_length(groups); j++)
                                if (json_get_string(json_object_array_get_idx(groups, j), &s, &len) >= 0)
                                        printf(" %s", s);
                        fputc('\n', stdout);
                }
        }
        return EXIT_OK;
}

int verb_logout(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        KnoxClient *c;
        int r;

        PARSE_PLAIN(argc, argv, "logout");
        if (optind < argc)
                return usage_error("logout takes no arguments. See 'keyward help logout'");

        r = client_get(&c);
        if (r != 0)
                return r;
        if (!client_has_user_token())
                return fail("Error revoking token: no user token to revoke (set KEYWARD_TOKEN)");
        r = knox_client_revoke_token(c, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error revoking token", r, &err);
        printf("Successfully revoked token\n");
        return EXIT_OK;
}

/* The password: typed on the terminal without echo, or one line of stdin when stdin is not a
 * terminal (for scripts). The trailing newline is not part of it. */
static int read_password(Secret **ret) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        struct termios old, quiet;
        bool tty = isatty(STDIN_FILENO);
        Secret *s;
        int r = 0;

        b.max = PASSWORD_MAX;
        if (tty) {
                if (tcgetattr(STDIN_FILENO, &old) < 0)
                        return -errno;
                fputs("Password: ", stderr);
                (void) fflush(stderr);
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t) ECHO;
                quiet.c_lflag |= ECHONL;
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
                        return -errno;
        }
        for (;;) {
                char ch;
                ssize_t n = read(STDIN_FILENO, &ch, 1);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0 || ch == '\n')
                        break;
                if (buf_putc(&b, ch) < 0) {
                        r = b.error;
                        break;
                }
                ch = 0;
        }
        if (tty)
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        if (r < 0)
                return r;
        if (b.len > 0 && b.data[b.len - 1] == '\r')
                b.data[--b.len] = '\0';

        s = secret_new_copy(b.data ?: "", b.len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int verb_login(int argc, char **argv) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *password = NULL, *token = NULL;
        _cleanup_erase_free_ char *json = NULL;
        _cleanup_free_ char *user = NULL;
        KnoxClient *c;
        int r;

        PARSE_PLAIN(argc, argv, "login");
        if (argc - optind > 1)
                return usage_error("Invalid arguments. See 'keyward help login'");
        if (optind < argc)
                user = strdup(argv[optind]);
        else {
                r = user_by_uid(getuid(), &user, NULL);
                if (r < 0) {
                        errno = -r;
                        return fail("Error getting OS user: %m");
                }
        }
        if (!user)
                return fail("Out of memory.");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = read_password(&password);
        if (r < 0)
                return fail("Problem getting password: %s", strerror(-r));

        r = knox_client_login(c, user, password, NULL, &token, arg_json ? &json : NULL, &err);
        /* A refused login is not for want of a token: no hint to go and get one. */
        if (r >= 0 && err.code == KNOX_UNAUTHENTICATED && !isempty(err.message))
                return fail("Fail to authenticate: %s", err.message);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Fail to authenticate", r, &err);

        if (arg_json)
                r = printf("%s\n", json) < 0 ? -EIO : 0;
        else {
                r = write_stdout(token->data, token->size);
                if (r >= 0)
                        r = write_stdout("\n", 1);
        }
        if (r < 0)
                return fail("Failed to write the token: %s", strerror(-r));
        return EXIT_OK;
}
