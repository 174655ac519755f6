/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Authorization header through every provider, against a real (scratch) store holding
 * one valid token. Certificates are not fuzzed here: OpenSSL parses them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server-auth.h"

static Store *store;
static char dir[] = "/tmp/fuzz-auth.XXXXXX";

static void cleanup(void) {
        char path[sizeof(dir) + 16];

        store = store_free(store);
        (void) snprintf(path, sizeof(path), "%s/db", dir);
        (void) unlink(path);
        (void) snprintf(path, sizeof(path), "%s/db-wal", dir);
        (void) unlink(path);
        (void) snprintf(path, sizeof(path), "%s/db-shm", dir);
        (void) unlink(path);
        (void) rmdir(dir);
}

static void setup(void) {
        char path[sizeof(dir) + 8];
        uint8_t hash[TOKEN_HASH_SIZE];
        char *groups[] = {(char *) "eng", NULL};
        TokenInfo t = {.user = (char *) "alice", .groups = groups, .expires = INT64_MAX};

        if (!mkdtemp(dir))
                abort();
        (void) snprintf(path, sizeof(path), "%s/db", dir);
        if (store_open(path, &store) < 0 || store_init(store) < 0)
                abort();
        /* "0ukwt_fuzz" authenticates as alice. */
        if (user_token_hash("kwt_fuzz", 8, hash) < 0 || store_token_add(store, hash, &t) < 0)
                abort();
        atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *header = NULL, *msg = NULL;
        Principals ps = {};
        uint8_t hash[TOKEN_HASH_SIZE];
        bool has_token = false;
        int r;

        if (size > 8192)
                return 0;
        if (!store)
                setup();
        header = strndup((const char *) data, size);
        if (!header)
                return 0;

        r = auth_request(
                &(AuthRequest){.authorization = header, .store = store, .now_ns = 1}, &ps, hash, &has_token,
                &msg);
        if (r == 0) {
                /* Without a certificate only a user token can succeed. */
                if (ps.n != 1 || !has_token || ps.items[0].kind != PRINCIPAL_KIND_USER)
                        __builtin_trap();
                principals_done(&ps);
        } else if (r == -EACCES && !msg)
                __builtin_trap();
        return 0;
}
