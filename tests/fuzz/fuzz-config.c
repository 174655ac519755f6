/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* By path: automake's -I$(top_builddir) comes first and holds autoconf's config.h. */
#include "config.h"
#include "fuzz.h"
#include "keyward-config.h"
#include "strv.h"

typedef struct Settings {
        char *listen;
        char *top;
        char **servers;
        bool tls, verbose;
        unsigned workers;
        size_t body_max;
        uint64_t timeout;
} Settings;

/* Every parser, in two sections and at the top level. No name starts with 'c' or 'h', so that
 * only --config and --help match an abbreviation "--c..." or "--h..."; both are left out below,
 * as one reads files and the other writes to stdout. */
/* clang-format off */
static const ConfigItem items[] = {
        { "server", "listen",   config_parse_string,   offsetof(Settings, listen),   "listen", "ADDR" },
        { "server", "workers",  config_parse_unsigned, offsetof(Settings, workers),  "workers", "N" },
        { "server", "body-max", config_parse_size,     offsetof(Settings, body_max), "body", "BYTES" },
        { "server", "timeout",  config_parse_sec,      offsetof(Settings, timeout),  "timeout", "DURATION" },
        { "server", "tls",      config_parse_bool,     offsetof(Settings, tls),      "tls", "BOOL" },
        { "agent",  "server",   config_parse_strv,     offsetof(Settings, servers),  "servers", "URL" },
        { "agent",  "verbose",  config_parse_bool,     offsetof(Settings, verbose),  "verbose", NULL },
        { NULL,     "top",      config_parse_string,   offsetof(Settings, top),      "top", "VALUE" },
};
/* clang-format on */

static void settings_done(Settings *s) {
        free(s->listen);
        free(s->top);
        strv_free(s->servers);
}

/* Input starting with "--" is a command line, one argument per line; anything else is an INI
 * file, read with the table above and as keyward.conf (its own parsers: server lists, paths). */
static void fuzz_argv(const char *text, size_t size, Settings *s) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ char **args = NULL;
        char *argv[65] = {"fuzz-config"};
        int argc;

        copy = strndup(text, size);
        if (!copy)
                return;
        argc = fuzz_argv_from_lines(copy, argv, 64, (const char *const[]){"--c", "--h", NULL});
        (void) config_parse_argv(argc, argv, items, ELEMENTSOF(items), s, &args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Settings s = {};

        if (size > FUZZ_INPUT_MAX)
                return 0;

        if (size >= 2 && memcmp(data, "--", 2) == 0)
                fuzz_argv((const char *) data, size, &s);
        else {
                KeywardConfig k = {};

                (void) config_load_string((const char *) data, size, "fuzz", items, ELEMENTSOF(items), &s);
                (void) keyward_config_load_string((const char *) data, size, "fuzz", &k);
                /* Whatever was accepted holds what keyward hands to libcurl. */
                STRV_FOREACH(u, k.servers)
                        assert(!isempty(*u) && strlen(*u) <= KEYWARD_SERVER_URL_MAX &&
                               !strpbrk(*u, ", \t\n\r"));
                assert(strv_length(k.servers) <= KEYWARD_SERVERS_MAX);
                assert(!k.server_ca || k.server_ca[0] == '/');
                keyward_config_done(&k);
        }

        settings_done(&s);
        return 0;
}
