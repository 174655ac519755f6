/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd's own settings: its table and the parsers that check default-acl, log-level,
 * login-ttl and connection-limit-exempt as they are read, over keywardd.conf text or a
 * command line (input starting with "--", one argument per line). The table is the one keywardd
 * uses, from keywardd-options.c. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keywardd.h"
#include "log.h"
#include "server-conn-limit.h"
#include "server.h"
#include "strv.h"

static void fuzz_argv(const char *text, size_t size, ServerConfig *c) {
        _cleanup_free_ char *copy = NULL;
        char *argv[65] = {"serve"};
        int argc;

        copy = strndup(text, size);
        if (!copy)
                return;
        argc = fuzz_argv_from_lines(copy, argv, 64, (const char *const[]){"--co", "--he", NULL});
        (void) config_parse_argv(argc, argv, server_items, server_items_count, c, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ServerConfig c = {};

        if (size > FUZZ_INPUT_MAX)
                return 0;

        log_set_max_level(LOG_CRIT); /* every bad value is logged: keep the replay quiet */
        if (size >= 2 && memcmp(data, "--", 2) == 0)
                fuzz_argv((const char *) data, size, &c);
        else
                (void) config_load_string(
                        (const char *) data, size, "fuzz", server_items, server_items_count, &c);

        /* Whatever was accepted is what serve goes on with. */
        STRV_FOREACH(e, c.default_acl) {
                Access a;

                assert(default_acl_entry_parse(*e, &a) == 0);
                access_done(&a);
        }
        STRV_FOREACH(e, c.connection_limit_exempt) {
                AddressPrefix p;

                assert(address_prefix_parse(*e, &p) == 0);
        }
        assert(!c.log_level || log_level_from_string(c.log_level) >= 0);
        server_config_done(&c);
        return 0;
}
