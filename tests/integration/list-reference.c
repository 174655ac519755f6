/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* list-reference DB HOST TS: the answer to GET /v0/keys/ as keywardd's whole-answer path
 * builds it (api_handle, then api_result_body: the path every other route takes), for
 * host HOST at time TS (ns), on stdout. test-server-list.sh compares the streamed answer
 * with it byte for byte. */

#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "server-api.h"

int main(int argc, char **argv) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_buf_ Buf body = BUF_INIT;
        ApiResult res = API_RESULT_INIT;
        Principals ps = {};
        ApiMatch m = {.route = API_ROUTE_GETKEYS};
        Form query = FORM_NULL;
        int64_t ts;
        int r;

        if (argc != 4 || safe_atoi64(argv[3], &ts) < 0) {
                fprintf(stderr, "Usage: %s DB HOST TS\n", argv[0]);
                return 2;
        }
        r = store_open_existing(argv[1], &store);
        if (r < 0)
                return log_error_errno(r, "Cannot open '%s': %m", argv[1]), 1;
        if (principals_add(&ps, PRINCIPAL_KIND_USER, "reference", NULL, "user") < 0)
                return 1;
        r = api_handle(
                &(Api){.store = store, .hostname = argv[2]},
                &(ApiRequest){.match = &m, .query = &query, .principals = &ps, .now_ns = ts}, &res);
        principals_done(&ps);
        if (r < 0 || res.code != KNOX_OK || api_result_body(&res, argv[2], ts, &body) < 0)
                return 1;
        api_result_done(&res);
        if (fwrite(body.data, 1, body.len, stdout) != body.len || fflush(stdout) != 0)
                return 1;
        return 0;
}
