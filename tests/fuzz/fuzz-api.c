/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Knox routes with what a client controls: method, path, query and form body, against a
 * real SQLite store holding one key. The input is split at newlines: method, path, query
 * ("-" for none), body, and the caller ('u' a user, 'm' a machine, 's' a service). Besides
 * not crashing: every answer is a result with a Knox code, and an error carries a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "form.h"
#include "fuzz.h"
#include "server-api.h"

static const uint8_t master_key[32] = "fuzz-api-master-key-32-bytes....";

static struct {
        char dir[64];
        char db[96];
        Store *store;
        Cryptor *cryptor;
        Acl defaults;
        Api api;
        Principals user, machine, service;
        bool ready;
} fx;

static void fixture_done(void) {
        char path[160];

        store_free(fx.store);
        cryptor_free(fx.cryptor);
        acl_done(&fx.defaults);
        principals_done(&fx.user);
        principals_done(&fx.machine);
        principals_done(&fx.service);
        /* SQLite's files: the database and its WAL companions. */
        for (const char *const *s = (const char *const[]){"", "-wal", "-shm", "-journal", NULL}; *s; s++) {
                snprintf(path, sizeof(path), "%s%s", fx.db, *s);
                (void) unlink(path);
        }
        (void) rmdir(fx.dir);
}

static int fixture_init(void) {
        Access admins = {.type = PRINCIPAL_TYPE_USER_GROUP, .access = ACCESS_ADMIN, .id = (char *) "admins"};
        char *groups[] = {(char *) "admins", NULL};
        ApiMatch m = {};
        ApiResult res = API_RESULT_INIT;
        Form body = FORM_NULL;
        static const char create[] = "id=k&data=c2VjcmV0&acl=%5B%5D";

        snprintf(fx.dir, sizeof(fx.dir), "/tmp/fuzz-api.XXXXXX");
        if (!mkdtemp(fx.dir))
                return -errno;
        snprintf(fx.db, sizeof(fx.db), "%s/keyward.db", fx.dir);
        if (store_open(fx.db, &fx.store) < 0 || store_init(fx.store) < 0 ||
            cryptor_new(master_key, sizeof(master_key), &fx.cryptor) < 0 ||
            acl_merge(&fx.defaults, &admins) < 0 ||
            principals_add(&fx.user, PRINCIPAL_KIND_USER, "alice", groups, "user") < 0 ||
            principals_add(&fx.machine, PRINCIPAL_KIND_MACHINE, "host1.example.com", NULL, "mtls") < 0 ||
            principals_add(&fx.service, PRINCIPAL_KIND_SERVICE, "spiffe://example.com/svc", NULL, "spiffe") <
                    0)
                return -EIO;
        fx.api = (Api){
                .store = fx.store, .cryptor = fx.cryptor, .default_acl = &fx.defaults, .hostname = "fuzz"};
        atexit(fixture_done);

        /* One key for the routes to find. */
        if (api_match("POST", "/v0/keys/", &m) < 0 || form_parse(create, strlen(create), &body) < 0)
                return -EIO;
        (void) api_handle(
                &fx.api, &(ApiRequest){.match = &m, .form = &body, .principals = &fx.user, .now_ns = 1},
                &res);
        api_result_done(&res);
        api_match_done(&m);
        form_done(&body);
        fx.ready = true;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_form_ Form q = FORM_NULL, body = FORM_NULL;
        const char *method, *path, *query, *form, *who;
        const Principals *ps;
        ApiResult res = API_RESULT_INIT;
        ApiMatch m = {};
        bool form_ok;
        char *p;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        if (!fx.ready && fixture_init() < 0)
                __builtin_trap();
        copy = strndup((const char *) data, size);
        if (!copy)
                return 0;
        p = copy;
        method = fuzz_next_line(&p) ?: "GET";
        path = fuzz_next_line(&p) ?: "/v0/keys/";
        query = fuzz_next_line(&p);
        form = fuzz_next_line(&p);
        who = fuzz_next_line(&p) ?: "u";
        if (query && streq(query, "-"))
                query = NULL;
        ps = who[0] == 'm' ? &fx.machine : who[0] == 's' ? &fx.service : &fx.user;

        if (api_match(method, path, &m) < 0)
                return 0;
        if (query)
                (void) form_parse(query, strlen(query), &q);
        form_ok = !form || form_parse(form, strlen(form), &body) >= 0;

        r = api_handle(
                &fx.api,
                &(ApiRequest){
                        .match = &m,
                        .raw_query = query,
                        .query = &q,
                        .form = form && form_ok ? &body : NULL,
                        .principals = ps,
                        .now_ns = 1700000000000000000,
                },
                &res);
        /* A result or out of memory, nothing else; an error always says what went wrong. */
        if (r < 0 && r != -ENOMEM)
                __builtin_trap();
        if (r == 0 && res.code != KNOX_OK && (!res.message || !res.message[0]) &&
            m.route != API_ROUTE_NOT_FOUND)
                __builtin_trap();
        if (r == 0 && (res.http_status < 200 || res.http_status > 599))
                __builtin_trap();
        api_result_done(&res);
        api_match_done(&m);
        return 0;
}
