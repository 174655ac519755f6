/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "knox-client.h"
#include "strv.h"
#include "test-pki.h"
#include "tests.h"

/* Tests of the Knox client against a real keywardd on 127.0.0.1, started in main() with a
 * PKI made here. */

static char dir[] = "/tmp/test-knox-client.XXXXXX";
static char keywardd[4096];
static pid_t server_pid = -1;
static char server_url[128];
static char closed_url[128];
static char *token_alice, *token_bob, *token_carol;

#define STRV(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *path_in_dir(const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- setup: the PKI, keywardd init, tokens, serve ---------------------------------------- */

static int write_leaf(TestPki *p, const char *name, const TestCertSpec *spec) {
        _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
        _cleanup_x509_ X509 *leaf = NULL;
        _cleanup_free_ char *pem = NULL, *keyfile = NULL;
        int r;

        if (!key)
                return -ENOMEM;
        leaf = test_pki_leaf(p, spec, key, NULL, NULL);
        if (!leaf)
                return -EINVAL;
        if (asprintf(&pem, "%s/%s.pem", dir, name) < 0 || asprintf(&keyfile, "%s/%s.key", dir, name) < 0)
                return -ENOMEM;
        r = test_pki_write_certs(pem, (X509 *[]){leaf, p->inter}, 2);
        if (r < 0)
                return r;
        r = test_pki_write_key(keyfile, key, NULL);
        if (r < 0)
                return r;
        return chmod(keyfile, 0600) < 0 ? -errno : 0;
}

static int make_pki(void) {
        const TestCertSpec server = {
                .cn = "localhost",
                .dns = STRV("localhost"),
                .ips = STRV("127.0.0.1"),
                .eku = TEST_EKU_SERVER,
        };
        const TestCertSpec machine = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_free_ char *ca = path_in_dir("ca.pem"), *other = path_in_dir("other.pem");
        TestPki p;
        int r;

        r = test_pki_init(&p);
        if (r < 0)
                return r;
        r = test_pki_write_certs(ca, &p.root, 1);
        if (r >= 0)
                r = test_pki_write_certs(other, &p.other, 1);
        if (r >= 0)
                r = write_leaf(&p, "server", &server);
        if (r >= 0)
                r = write_leaf(&p, "machine", &machine);
        test_pki_done(&p);
        return r;
}

/* Run keywardd with these arguments, stdout into *ret_out (may be NULL), stderr into the log. */
static int run_keywardd(char *const *args, char **ret_out) {
        _cleanup_free_ char *log = path_in_dir("keywardd.log");
        _cleanup_buf_ Buf out = BUF_INIT;
        int pipefd[2], status;
        pid_t pid;
        char buf[256];
        ssize_t n;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || dup2(pipefd[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execv(keywardd, args);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
                (void) buf_put(&out, buf, (size_t) n);
        close(pipefd[0]);
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        if (ret_out) {
                while (out.len > 0 && out.data[out.len - 1] == '\n')
                        out.data[--out.len] = '\0';
                *ret_out = buf_steal(&out, NULL);
                if (!*ret_out)
                        return -ENOMEM;
        }
        return 0;
}

static int mint_token(const char *user, const char *group, char **ret) {
        _cleanup_free_ char *db = path_in_dir("keyward.db"), *mk = path_in_dir("master.key");
        char *args[] = {
                keywardd,
                (char *) "token",
                (char *) "--db",
                db,
                (char *) "--master-key",
                mk,
                (char *) "--user",
                (char *) user,
                (char *) "--group",
                (char *) group,
                NULL,
        };
        return run_keywardd(args, ret);
}

static int start_server(void) {
        _cleanup_free_ char *db = path_in_dir("keyward.db"), *mk = path_in_dir("master.key"),
                            *cert = path_in_dir("server.pem"), *key = path_in_dir("server.key"),
                            *ca = path_in_dir("ca.pem"), *audit = path_in_dir("audit.log"),
                            *ready = path_in_dir("ready"), *log = path_in_dir("keywardd.log");
        char *init[] = {keywardd, (char *) "init", (char *) "--db", db, (char *) "--master-key", mk, NULL};
        char *serve[] = {
                keywardd,
                (char *) "serve",
                (char *) "--listen",
                (char *) "127.0.0.1:0",
                (char *) "--tls-cert",
                cert,
                (char *) "--tls-key",
                key,
                (char *) "--client-ca",
                ca,
                (char *) "--db",
                db,
                (char *) "--master-key",
                mk,
                (char *) "--audit-log",
                audit,
                (char *) "--ready-file",
                ready,
                (char *) "--workers",
                (char *) "2",
                (char *) "--hostname",
                (char *) "testhost",
                NULL,
        };
        int r;

        r = run_keywardd(init, NULL);
        if (r < 0)
                return r;
        r = mint_token("alice", "eng", &token_alice);
        if (r >= 0)
                r = mint_token("bob", "other", &token_bob);
        if (r >= 0)
                r = mint_token("carol", "eng", &token_carol);
        if (r < 0)
                return r;

        server_pid = fork();
        if (server_pid < 0)
                return -errno;
        if (server_pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                execv(keywardd, serve);
                _exit(127);
        }

        for (int i = 0; i < 200; i++) {
                _cleanup_free_ char *s = NULL;
                size_t n;

                if (read_full_file(ready, 4096, &s, &n) >= 0 && n > 0) {
                        char *nl = strchr(s, '\n');

                        if (nl)
                                *nl = '\0';
                        (void) snprintf(server_url, sizeof(server_url), "https://%s", s);
                        return 0;
                }
                if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
                        server_pid = -1;
                        return -ECHILD;
                }
                usleep(50 * 1000);
        }
        return -ETIMEDOUT;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then closed). */
static int closed_port(void) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int fd, port = -1;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &a, sizeof(a)) >= 0 &&
            getsockname(fd, (struct sockaddr *) &a, &len) >= 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

/* ---- clients ------------------------------------------------------------------------------ */

typedef enum Who {
        WHO_NONE,
        WHO_ALICE,
        WHO_BOB,
        WHO_CAROL,
        WHO_MACHINE,
} Who;

/* Set for the clients client_for() makes while a test needs them cancellable. */
static const atomic_bool *client_cancel;

static KnoxClient *client_for(Who who, char *const *servers, const char *ca_name) {
        _cleanup_free_ char *ca = path_in_dir(ca_name ?: "ca.pem"), *cert = path_in_dir("machine.pem"),
                            *key = path_in_dir("machine.key"), *auth = NULL;
        char *const default_servers[] = {server_url, NULL};
        KnoxClientConfig config = {
                .servers = servers ?: default_servers,
                .ca_file = ca,
                .timeout_usec = 10 * 1000000,
                .cancel = client_cancel,
        };
        KnoxClient *c = NULL;

        switch (who) {
        case WHO_NONE:
                break;
        case WHO_ALICE:
        case WHO_BOB:
        case WHO_CAROL:
                assert_true(
                        asprintf(
                                &auth, "0u%s",
                                who == WHO_ALICE       ? token_alice :
                                        who == WHO_BOB ? token_bob :
                                                         token_carol) > 0);
                break;
        case WHO_MACHINE:
                config.cert_file = cert;
                config.key_file = key;
                auth = strdup("0thost1.example.com");
                break;
        }
        config.authorization = auth;
        assert_int_equal(knox_client_new(&config, &c), 0);
        erase_and_free_string(TAKE_PTR(auth));
        return c;
}

static Secret *secret_from(const void *p, size_t n) {
        Secret *s = secret_new_copy(p, n);

        assert_non_null(s);
        return s;
}

/* Create a key as alice with this data and return its first version. */
static uint64_t create(KnoxClient *c, const char *id, const char *data) {
        _cleanup_(secret_freep) Secret *s = secret_from(data, strlen(data));
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        uint64_t v = 0;

        assert_int_equal(knox_client_create_key(c, id, s, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_true(v > 0 && v <= VERSION_ID_MAX);
        return v;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_create_and_get(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *data = secret_from("\0bin\xff\x80 data=&+%", 15);
        _cleanup_(key_freep) Key *k = NULL;
        uint64_t v = 0;

        assert_int_equal(knox_client_create_key(c, "kc:binary", data, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_null(err.message);
        assert_true(v > 0 && v <= VERSION_ID_MAX);

        assert_int_equal(knox_client_get_key(c, "kc:binary", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(err.http_status, 200);
        assert_string_equal(k->id, "kc:binary");
        assert_int_equal(k->acl.n, 0); /* the server never sends the ACL with a key */
        assert_int_equal(k->n_versions, 1);
        /* The 63-bit id survives exactly (a double would round most of them). */
        assert_true(k->versions[0].id == v);
        assert_int_equal(k->versions[0].status, VERSION_STATUS_PRIMARY);
        assert_true(k->versions[0].ts > INT64_C(1600000000000000000));
        assert_int_equal(k->versions[0].data->size, 15);
        assert_memory_equal(k->versions[0].data->data, "\0bin\xff\x80 data=&+%", 15);
        assert_int_equal(strlen(k->hash), 64);

        /* An ACL given on create is sent as JSON and merged with the creator. */
        {
                Access entries[] = {
                        {.type = PRINCIPAL_TYPE_USER, .access = ACCESS_READ, .id = (char *) "bob"}};
                Acl acl = {.entries = entries, .n = 1};
                _cleanup_acl_ Acl got = {};
                uint64_t v2 = 0;

                assert_int_equal(knox_client_create_key(c, "kc:with_acl", data, &acl, &v2, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(knox_client_get_acl(c, "kc:with_acl", &got, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(got.n, 2);
                assert_int_equal(got.entries[0].type, PRINCIPAL_TYPE_USER);
                assert_string_equal(got.entries[0].id, "bob");
                assert_int_equal(got.entries[0].access, ACCESS_READ);
                assert_string_equal(got.entries[1].id, "alice");
                assert_int_equal(got.entries[1].access, ACCESS_ADMIN);
        }
}

static void test_versions(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *d2 = secret_from("second", 6);
        uint64_t v1, v2 = 0;

        v1 = create(c, "kc:versions", "first");
        assert_int_equal(knox_client_add_version(c, "kc:versions", d2, &v2, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_true(v2 > 0 && v2 != v1);

        /* promote the new one, then deactivate the old one */
        assert_int_equal(
                knox_client_set_version_status(c, "kc:versions", v2, VERSION_STATUS_PRIMARY, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(
                knox_client_set_version_status(c, "kc:versions", v1, VERSION_STATUS_INACTIVE, &err), 0);
        assert_int_equal(err.code, KNOX_OK);

        {
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(knox_client_get_key(c, "kc:versions", VERSION_STATUS_PRIMARY, &k, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(k->n_versions, 1);
                assert_true(k->versions[0].id == v2);
                assert_memory_equal(k->versions[0].data->data, "second", 6);
        }
        {
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(knox_client_get_key(c, "kc:versions", VERSION_STATUS_ACTIVE, &k, &err), 0);
                assert_int_equal(k->n_versions, 1);
        }
        {
                /* ?status="Inactive" with its raw quotes: all versions. */
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(
                        knox_client_get_key(c, "kc:versions", VERSION_STATUS_INACTIVE, &k, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(k->n_versions, 2);
                assert_true(k->versions[0].id == v1);
                assert_int_equal(k->versions[0].status, VERSION_STATUS_INACTIVE);
                assert_true(k->versions[1].id == v2);
                assert_int_equal(k->versions[1].status, VERSION_STATUS_PRIMARY);
        }

        /* reactivate the old one */
        assert_int_equal(
                knox_client_set_version_status(c, "kc:versions", v1, VERSION_STATUS_ACTIVE, &err), 0);
        assert_int_equal(err.code, KNOX_OK);

        /* Knox's transition errors come back as code and message, with return value 0. */
        assert_int_equal(
                knox_client_set_version_status(c, "kc:versions", v2, VERSION_STATUS_INACTIVE, &err), 0);
        assert_int_equal(err.code, KNOX_BAD_REQUEST_DATA);
        assert_int_equal(err.http_status, 400);
        assert_string_equal(err.message, "Version must be Active to demote to Inactive");
        assert_int_equal(
                knox_client_set_version_status(c, "kc:versions", 12345, VERSION_STATUS_PRIMARY, &err), 0);
        assert_int_equal(err.code, KNOX_KEY_VERSION_DOES_NOT_EXIST);
        assert_string_equal(err.message, "Key version not found");
}

static void test_knox_errors(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *alice = client_for(WHO_ALICE, NULL, NULL);
        _cleanup_(knox_client_freep) KnoxClient *bob = client_for(WHO_BOB, NULL, NULL);
        _cleanup_(knox_client_freep) KnoxClient *nobody = client_for(WHO_NONE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *data = secret_from("x", 1), *empty = secret_from("", 0);
        Key *k = NULL;
        uint64_t v = 0;

        create(alice, "kc:errors", "secret");

        assert_int_equal(knox_client_create_key(alice, "kc:errors", data, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_KEY_IDENTIFIER_EXISTS);
        assert_string_equal(err.message, "Key kc:errors already exists");
        assert_true(v == 0);

        assert_int_equal(knox_client_create_key(alice, "bad id!", data, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_BAD_KEY_FORMAT);

        assert_int_equal(knox_client_create_key(alice, "kc:empty", empty, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_NO_KEY_DATA);

        assert_int_equal(knox_client_get_key(alice, "kc:nope", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST);
        assert_int_equal(err.http_status, 404);
        assert_string_equal(err.message, "No such key kc:nope");
        assert_null(k);

        /* An id with characters outside Knox's set is escaped, not let loose on the path. */
        assert_int_equal(knox_client_get_key(alice, "a b?c#d%", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST);
        assert_string_equal(err.message, "No such key a b?c#d%");
        /* A '/' stays inside the segment too; the server decodes the path before routing,
         * as Knox's router does, and finds no route. */
        assert_int_equal(knox_client_get_key(alice, "a/b", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_NOT_FOUND);

        assert_int_equal(knox_client_get_key(bob, "kc:errors", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHORIZED);
        assert_int_equal(err.http_status, 403);
        assert_non_null(strstr(err.message, "not authorized"));
        assert_null(k);

        assert_int_equal(knox_client_get_key(nobody, "kc:errors", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHENTICATED);
        assert_int_equal(err.http_status, 401);
        assert_null(k);

        assert_int_equal(knox_client_add_version(bob, "kc:errors", data, &v, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHORIZED);
        assert_int_equal(knox_client_delete_key(bob, "kc:errors", &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHORIZED);

        /* A later success resets the error. */
        {
                _cleanup_acl_ Acl acl = {};

                assert_int_equal(knox_client_get_acl(bob, "kc:errors", &acl, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_null(err.message);
                assert_int_equal(acl.n, 1);
        }
}

static void test_access_and_machine(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *alice = client_for(WHO_ALICE, NULL, NULL);
        _cleanup_(knox_client_freep) KnoxClient *machine = client_for(WHO_MACHINE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *data = secret_from("x", 1);
        Access grant[] = {
                {.type = PRINCIPAL_TYPE_MACHINE, .access = ACCESS_READ, .id = (char *) "host1.example.com"},
                {.type = PRINCIPAL_TYPE_USER_GROUP, .access = ACCESS_WRITE, .id = (char *) "eng"},
        };
        Acl changes = {.entries = grant, .n = 2};
        uint64_t v = 0;

        create(alice, "kc:machine", "for the machine");

        {
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(
                        knox_client_get_key(machine, "kc:machine", VERSION_STATUS_ACTIVE, &k, &err), 0);
                assert_int_equal(err.code, KNOX_UNAUTHORIZED);
                assert_null(k);
        }

        assert_int_equal(knox_client_put_access(alice, "kc:machine", &changes, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        {
                _cleanup_acl_ Acl acl = {};

                assert_int_equal(knox_client_get_acl(machine, "kc:machine", &acl, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(acl.n, 3);
                assert_int_equal(acl.entries[1].type, PRINCIPAL_TYPE_MACHINE);
                assert_string_equal(acl.entries[1].id, "host1.example.com");
                assert_int_equal(acl.entries[2].type, PRINCIPAL_TYPE_USER_GROUP);
                assert_int_equal(acl.entries[2].access, ACCESS_WRITE);
        }
        {
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(
                        knox_client_get_key(machine, "kc:machine", VERSION_STATUS_ACTIVE, &k, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_memory_equal(k->versions[0].data->data, "for the machine", 15);
        }

        /* Only users may create keys. */
        assert_int_equal(knox_client_create_key(machine, "kc:by_machine", data, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHORIZED);
        assert_string_equal(err.message, "Must be a user to create keys, principal is host1.example.com");

        /* A bad principal id is the server's 400/13. */
        {
                Access bad[] = {
                        {.type = PRINCIPAL_TYPE_SERVICE, .access = ACCESS_READ, .id = (char *) "nope"}};
                Acl acl = {.entries = bad, .n = 1};

                assert_int_equal(knox_client_put_access(alice, "kc:machine", &acl, &err), 0);
                assert_int_equal(err.code, KNOX_BAD_PRINCIPAL_IDENTIFIER);
        }
}

static void test_list_and_changed(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_CAROL, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **all = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        char hash[KEY_HASH_HEX_SIZE];

        create(c, "kc:list_a", "a");
        create(c, "kc:list_b", "b");

        assert_int_equal(knox_client_list_keys(c, &all, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_true(strv_contains(all, "kc:list_a"));
        assert_true(strv_contains(all, "kc:list_b"));

        assert_int_equal(knox_client_get_key(c, "kc:list_a", VERSION_STATUS_ACTIVE, &k, &err), 0);
        memcpy(hash, k->hash, sizeof(hash));

        {
                /* a: same hash, b: empty, missing: unknown to the server, c: NONE */
                char *ids[] = {
                        (char *) "kc:list_b", (char *) "kc:list_a", (char *) "kc:missing",
                        (char *) "kc:list_b"};
                char *hashes[] = {(char *) "stale", hash, (char *) "", (char *) "NONE"};
                _cleanup_strv_free_ char **changed = NULL;

                assert_int_equal(knox_client_changed_keys(c, ids, hashes, 4, 0, &changed, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(strv_length(changed), 1);
                assert_string_equal(changed[0], "kc:list_b");
        }
        {
                _cleanup_strv_free_ char **changed = NULL;
                char *ids[] = {(char *) "kc:list_a"};

                assert_int_equal(knox_client_changed_keys(c, ids, NULL, 1, 0, &changed, &err), 0);
                assert_int_equal(strv_length(changed), 1);
        }
        {
                /* A list longer than 16K goes as the request target of a short URL
                 * (CURLOPT_REQUEST_TARGET): the same answer, and the next request is
                 * normal again. */
                _cleanup_strv_free_ char **changed = NULL, **again = NULL, **ids = NULL, **hashes = NULL;
                size_t n = 400;

                for (size_t i = 0; i < n; i++) {
                        char id[64];

                        (void) snprintf(id, sizeof(id), "kc:not-there-%03zu", i);
                        assert_int_equal(strv_extend(&ids, id), 0);
                        assert_int_equal(strv_extend(&hashes, hash), 0);
                }
                free(ids[n / 2]);
                ids[n / 2] = strdup("kc:list_b"); /* stale: "changed" */
                free(ids[n - 1]);
                ids[n - 1] = strdup("kc:list_a"); /* current: not */
                assert_non_null(ids[n / 2]);
                assert_non_null(ids[n - 1]);
                assert_int_equal(knox_client_changed_keys(c, ids, hashes, n, 0, &changed, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(strv_length(changed), 1);
                assert_string_equal(changed[0], "kc:list_b");
                assert_int_equal(knox_client_changed_keys(c, ids + n - 1, hashes, 1, 0, &again, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_int_equal(strv_length(again), 0);
        }
        {
                /* Nothing changes: a watch waits its time, then answers an empty list. */
                _cleanup_strv_free_ char **changed = NULL;
                char *ids[] = {(char *) "kc:list_a"};
                char *hashes[] = {hash};
                uint64_t t0 = now_usec();

                assert_int_equal(knox_client_changed_keys(c, ids, hashes, 1, 1, &changed, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_non_null(changed);
                assert_int_equal(strv_length(changed), 0);
                assert_true(now_usec() - t0 >= 800 * 1000);
        }
}

static void *add_version_later(void *arg) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_CAROL, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *d = secret_new_copy("later", 5);
        uint64_t v = 0;

        usleep(300 * 1000);
        if (d && knox_client_add_version(c, "kc:watched", d, &v, &err) == 0 && err.code == KNOX_OK)
                return (void *) 1;
        return NULL;
}

static void test_watch_wakes(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_CAROL, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **changed = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        char *ids[] = {(char *) "kc:watched"};
        char *hashes[1];
        pthread_t t;
        void *res = NULL;
        uint64_t t0;

        create(c, "kc:watched", "before");
        assert_int_equal(knox_client_get_key(c, "kc:watched", VERSION_STATUS_ACTIVE, &k, &err), 0);
        hashes[0] = k->hash;

        assert_int_equal(pthread_create(&t, NULL, add_version_later, NULL), 0);
        t0 = now_usec();
        assert_int_equal(knox_client_changed_keys(c, ids, hashes, 1, 20, &changed, &err), 0);
        assert_int_equal(pthread_join(t, &res), 0);
        assert_non_null(res);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(strv_length(changed), 1);
        assert_string_equal(changed[0], "kc:watched");
        assert_true(now_usec() - t0 < 10 * 1000000);
}

static void *cancel_later(void *arg) {
        usleep(300 * 1000);
        atomic_store((atomic_bool *) arg, true);
        return NULL;
}

/* A held watch ends soon after the cancel flag is set, from another thread, as the agent's
 * SIGTERM does it; the next request after the flag is cleared works. */
static void test_watch_cancel(void **state) {
        static atomic_bool cancel;
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **changed = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        char *ids[] = {(char *) "kc:cancelled"};
        char *hashes[1];
        pthread_t t;
        uint64_t t0;

        atomic_store(&cancel, false);
        client_cancel = &cancel;
        c = client_for(WHO_CAROL, NULL, NULL);
        client_cancel = NULL;
        create(c, "kc:cancelled", "data");
        assert_int_equal(knox_client_get_key(c, "kc:cancelled", VERSION_STATUS_ACTIVE, &k, &err), 0);
        hashes[0] = k->hash;

        assert_int_equal(pthread_create(&t, NULL, cancel_later, &cancel), 0);
        t0 = now_usec();
        assert_int_equal(knox_client_changed_keys(c, ids, hashes, 1, 20, &changed, &err), -ECANCELED);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_true(now_usec() - t0 < 5 * 1000000); /* not the 20 s wait */
        assert_null(changed);
        assert_non_null(err.message);

        atomic_store(&cancel, false);
        knox_error_done(&err);
        assert_int_equal(knox_client_changed_keys(c, ids, hashes, 1, 0, &changed, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(strv_length(changed), 0);
}

static void test_failover(void **state) {
        char *servers[] = {closed_url, server_url, NULL};
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, servers, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *data = secret_from("failover", 8);
        uint64_t v = 0;

        assert_string_equal(knox_client_current_server(c), closed_url);
        /* A create is not idempotent, but a refused connection never reached a server. */
        assert_int_equal(knox_client_create_key(c, "kc:failover", data, NULL, &v, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_string_equal(knox_client_current_server(c), server_url);

        {
                _cleanup_(key_freep) Key *k = NULL;

                assert_int_equal(knox_client_get_key(c, "kc:failover", VERSION_STATUS_ACTIVE, &k, &err), 0);
                assert_int_equal(err.code, KNOX_OK);
                assert_true(k->versions[0].id == v);
                assert_string_equal(knox_client_current_server(c), server_url);
        }
}

static void test_unreachable(void **state) {
        char *servers[] = {closed_url, NULL};
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, servers, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *data = secret_from("x", 1);
        _cleanup_strv_free_ char **ids = NULL;
        Key *k = NULL;
        uint64_t v = 0;

        assert_int_equal(knox_client_get_key(c, "kc:x", VERSION_STATUS_ACTIVE, &k, &err), -EHOSTUNREACH);
        assert_null(k);
        assert_non_null(err.message);
        assert_non_null(strstr(err.message, "Cannot reach any server"));
        assert_non_null(strstr(err.message, closed_url));
        assert_int_equal(err.cause, -ECONNREFUSED);
        assert_int_equal(knox_client_create_key(c, "kc:x", data, NULL, &v, &err), -EHOSTUNREACH);
        assert_int_equal(knox_client_list_keys(c, &ids, &err), -EHOSTUNREACH);
        assert_null(ids);
}

static void test_wrong_ca(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, NULL, "other.pem");
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **ids = NULL;

        /* A server whose certificate does not verify is no server. */
        assert_int_equal(knox_client_list_keys(c, &ids, &err), -EHOSTUNREACH);
        assert_non_null(err.message);
        assert_int_equal(err.cause, -EKEYREJECTED);
        assert_null(ids);
}

static void test_whoami_and_revoke(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_BOB, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        _cleanup_strv_free_ char **ids = NULL;

        assert_int_equal(knox_client_whoami(c, &json, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_non_null(strstr(json, "\"principal\":\"bob\""));
        assert_non_null(strstr(json, "\"other\""));

        assert_int_equal(knox_client_revoke_token(c, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(knox_client_whoami(c, &json2, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHENTICATED);
        assert_null(json2);

        /* No Authorization at all. */
        assert_int_equal(knox_client_set_authorization(c, NULL), 0);
        assert_int_equal(knox_client_list_keys(c, &ids, &err), 0);
        assert_int_equal(err.code, KNOX_UNAUTHENTICATED);
        /* And back to a good token. */
        {
                _cleanup_free_ char *auth = NULL;

                assert_true(asprintf(&auth, "0u%s", token_alice) > 0);
                assert_int_equal(knox_client_set_authorization(c, auth), 0);
        }
        assert_int_equal(knox_client_list_keys(c, &ids, &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_non_null(ids);
}

static void test_login(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_NONE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(secret_freep) Secret *pw = secret_from("wrong password", 14);
        Secret *token = NULL;

        /* No such user: an error envelope, whatever the server's login support. */
        assert_int_equal(knox_client_login(c, "no-such-user-kc", pw, NULL, &token, NULL, &err), 0);
        assert_int_not_equal(err.code, KNOX_OK);
        assert_non_null(err.message);
        assert_null(token);
}

static void test_delete(void **state) {
        _cleanup_(knox_client_freep) KnoxClient *c = client_for(WHO_ALICE, NULL, NULL);
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        Key *k = NULL;

        create(c, "kc:delete_me", "gone soon");
        assert_int_equal(knox_client_delete_key(c, "kc:delete_me", &err), 0);
        assert_int_equal(err.code, KNOX_OK);
        assert_int_equal(knox_client_get_key(c, "kc:delete_me", VERSION_STATUS_ACTIVE, &k, &err), 0);
        assert_int_equal(err.code, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST);
        assert_int_equal(knox_client_delete_key(c, "kc:delete_me", &err), 0);
        assert_int_equal(err.code, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST);
}

/* knox_client_set_timeouts() changes the timeouts of a client made: against a server that
 * accepts and never answers (a frozen keywardd), a request gives up after the new connect
 * timeout, not the minute the client was made with. */
static void test_set_timeouts(void **state) {
        _cleanup_free_ char *ca = path_in_dir("ca.pem");
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_strv_free_ char **ids = NULL;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        char url[64];
        char *servers[] = {url, NULL};
        KnoxClientConfig config = {
                .servers = servers,
                .ca_file = ca,
                .connect_timeout_usec = 60 * 1000000,
                .timeout_usec = 60 * 1000000,
        };
        uint64_t t0;
        int fd;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 8), 0); /* the kernel completes the connection; nobody reads */
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u", (unsigned) ntohs(sa.sin_port));

        assert_int_equal(knox_client_new(&config, &c), 0);
        assert_int_equal(knox_client_set_timeouts(c, 200 * 1000, 500 * 1000), 0);
        t0 = now_usec();
        assert_int_equal(knox_client_list_keys(c, &ids, &err), -EHOSTUNREACH);
        assert_int_equal(err.cause, -ETIMEDOUT);
        assert_true(now_usec() - t0 < 30 * 1000000); /* not the minute it was made with */
        assert_null(ids);
        assert_int_equal(knox_client_set_timeouts(NULL, 0, 0), -EINVAL);
        close(fd);
}

static void test_new_rejects(void **state) {
        char *none[] = {NULL};
        KnoxClientConfig config = {.servers = none};
        KnoxClient *c = NULL;

        assert_int_equal(knox_client_new(&config, &c), -EINVAL);
        {
                char *servers[] = {(char *) "/", NULL};

                config.servers = servers;
                assert_int_equal(knox_client_new(&config, &c), -EINVAL);
        }
        {
                /* "host:port" means https://host:port, and trailing slashes go. */
                char *servers[] = {(char *) "127.0.0.1:1//", NULL};

                config.servers = servers;
                assert_int_equal(knox_client_new(&config, &c), 0);
                assert_string_equal(knox_client_current_server(c), "https://127.0.0.1:1");
                c = knox_client_free(c);
        }
        assert_null(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_rejects),
                cmocka_unit_test(test_set_timeouts),
                cmocka_unit_test(test_create_and_get),
                cmocka_unit_test(test_versions),
                cmocka_unit_test(test_knox_errors),
                cmocka_unit_test(test_access_and_machine),
                cmocka_unit_test(test_list_and_changed),
                cmocka_unit_test(test_watch_wakes),
                cmocka_unit_test(test_watch_cancel),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_wrong_ca),
                cmocka_unit_test(test_whoami_and_revoke),
                cmocka_unit_test(test_login),
                cmocka_unit_test(test_delete),
        };
        const char *builddir = secure_getenv("KEYWARD_TOP_BUILDDIR");
        int port, r;

        (void) snprintf(keywardd, sizeof(keywardd), "%s/keywardd", builddir ?: ".");
        if (access(keywardd, X_OK) < 0) {
                printf("1..0 # SKIP %s is not built\n", keywardd);
                return 77;
        }
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 99;
        }
        port = closed_port();
        if (port <= 0) {
                fprintf(stderr, "cannot find a free port\n");
                return 99;
        }
        (void) snprintf(closed_url, sizeof(closed_url), "https://127.0.0.1:%d", port);

        r = make_pki();
        if (r >= 0)
                r = start_server();
        if (r < 0) {
                _cleanup_free_ char *log = path_in_dir("keywardd.log"), *text = NULL;

                fprintf(stderr, "cannot start keywardd: %s\n", strerror(-r));
                if (read_full_file(log, 1 << 20, &text, NULL) >= 0)
                        fprintf(stderr, "%s", text);
                r = 99;
        } else
                r = cmocka_run_group_tests(tests, NULL, NULL);

        if (server_pid > 0) {
                (void) kill(server_pid, SIGTERM);
                (void) waitpid(server_pid, NULL, 0);
        }
        erase_and_free_string(token_alice);
        erase_and_free_string(token_bob);
        erase_and_free_string(token_carol);
        if (!secure_getenv("KEEP_TEST_DIR"))
                (void) tests_rm_rf(dir);
        return r;
}
