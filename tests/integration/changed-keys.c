/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* changed-keys URL CA CERT KEY WAIT N...: for each N in turn, over one connection while the
 * server keeps it open, the agent's request for N keys ("changed-key:<i>" with a made-up hash
 * each), sent through keyward's own client (knox_client_changed_keys(), libcurl, the
 * machine certificate and "0t" auth, Prefer: wait=WAIT when WAIT > 0). Prints one line per answer:
 * "ok <ids changed>" or "error <HTTP status> <code> <message>" (or "failed <message>" when
 * no answer came); exits 0 when every request got an answer. */

#include <stdio.h>
#include <stdlib.h>

#include "knox-client.h"
#include "log.h"
#include "parse.h"
#include "strv.h"

int main(int argc, char **argv) {
        _cleanup_(knox_client_freep) KnoxClient *client = NULL;
        _cleanup_strv_free_ char **ids = NULL, **hashes = NULL;
        unsigned n = 0, wait_sec;
        bool all_answered = true;
        int r;

        if (argc < 7 || safe_atou(argv[5], &wait_sec) < 0) {
                fprintf(stderr, "Usage: %s URL CA CERT KEY WAIT N...\n", argv[0]);
                return 2;
        }
        for (int i = 6; i < argc; i++) {
                unsigned k;

                if (safe_atou(argv[i], &k) < 0 || k > 1000000) {
                        fprintf(stderr, "Invalid key count: %s\n", argv[i]);
                        return 2;
                }
                n = MAX(n, k);
        }
        ids = calloc(n + 1, sizeof(char *));
        hashes = calloc(n + 1, sizeof(char *));
        if (!ids || !hashes)
                return log_oom(), 1;
        for (unsigned i = 0; i < n; i++)
                if (asprintf(&ids[i], "changed-key:%u", i) < 0 ||
                    asprintf(&hashes[i], "%043u=", i) < 0) /* as long as a real hash */
                        return log_oom(), 1;

        r = knox_client_new(
                &(KnoxClientConfig){
                        .servers = (char *const[]){argv[1], NULL},
                        .ca_file = argv[2],
                        .cert_file = argv[3],
                        .key_file = argv[4],
                        .authorization = "0thost1.example.com",
                },
                &client);
        if (r < 0)
                return log_error_errno(r, "Cannot make the client: %m"), 1;

        for (int i = 6; i < argc; i++) {
                _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
                _cleanup_strv_free_ char **changed = NULL;
                unsigned k;

                (void) safe_atou(argv[i], &k);
                r = knox_client_changed_keys(client, ids, hashes, k, wait_sec, &changed, &err);
                if (r >= 0 && err.code == KNOX_OK)
                        printf("ok %zu\n", strv_length(changed));
                else if (r >= 0)
                        printf("error %d %d %s\n", err.http_status, (int) err.code, strna(err.message));
                else {
                        printf("failed %s\n", strna(err.message));
                        all_answered = false;
                }
                fflush(stdout);
        }
        return all_answered ? 0 : 1;
}
