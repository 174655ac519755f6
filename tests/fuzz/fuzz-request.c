/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request line and headers keywardd reads itself: the request target (path and query),
 * the route match, Prefer: wait and Content-Type, and the --connection-limit-exempt address
 * the config gives. The input is split at newlines: target, method, Prefer, Content-Type,
 * exempt address. The whole input is also a connection's raw bytes for the framing check,
 * which must come to the same verdict whether the bytes arrive at once or one by one. */
#include <string.h>

#include "form.h"
#include "server-conn-limit.h"
#include "fuzz.h"
#include "server-api.h"
#include "server-request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *copy = NULL, *path = NULL;
        _cleanup_form_ Form q = FORM_NULL;
        const char *target, *method, *prefer, *ct, *exempt, *query;
        AddressPrefix prefix;
        ApiMatch m = {};
        char *p;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        {
                HttpScan whole = HTTP_SCAN_INIT, bytes = HTTP_SCAN_INIT;
                HttpScanError e;

                e = http_scan_feed(&whole, data, size);
                for (size_t i = 0; i < size; i++)
                        (void) http_scan_feed(&bytes, data + i, 1);
                if (e != whole.error || whole.error != bytes.error || whole.heads != bytes.heads ||
                    whole.error_head != bytes.error_head || !http_scan_error_to_string(e) ||
                    whole.head_start != bytes.head_start || whole.head_start > size)
                        __builtin_trap();
                if (e != HTTP_SCAN_OK &&
                    (http_scan_error_of(&whole, whole.error_head) != e ||
                     (whole.error_head > 0 && http_scan_error_of(&whole, 0) != HTTP_SCAN_OK)))
                        __builtin_trap();
        }
        copy = strndup((const char *) data, size);
        if (!copy)
                return 0;
        p = copy;
        target = fuzz_next_line(&p);
        method = fuzz_next_line(&p) ?: "GET";
        prefer = fuzz_next_line(&p);
        ct = fuzz_next_line(&p);
        exempt = fuzz_next_line(&p);

        if (address_prefix_parse(exempt, &prefix) == 0 &&
            ((prefix.family != AF_INET && prefix.family != AF_INET6) ||
             prefix.prefixlen > (prefix.family == AF_INET ? 32u : 128u)))
                __builtin_trap();

        (void) http_prefer_wait(prefer, 300);
        if (http_prefer_wait(prefer, 300) > 300)
                __builtin_trap();
        (void) http_content_type_is_form(ct);

        if (http_target_split(target, &path, &query) < 0)
                return 0;
        if (query && strlen(query) > strlen(target))
                __builtin_trap();
        if (query)
                (void) form_parse(query, strlen(query), &q);
        if (api_match(method, path, &m) == 0) {
                if (m.route < 0 || m.route >= _API_ROUTE_MAX)
                        __builtin_trap();
                /* Path parameters never hold a slash. */
                if ((m.key_id && strchr(m.key_id, '/')) || (m.version_id && strchr(m.version_id, '/')))
                        __builtin_trap();
                api_match_done(&m);
        }
        return 0;
}
