/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The keyward CLI's config file: the server list and its CA, checked as outside input. */
#include "keyward-config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "strv.h"

void keyward_config_done(KeywardConfig *c) {
        if (!c)
                return;
        strv_free(c->servers);
        free(c->server_ca);
        *c = (KeywardConfig){};
}

static bool url_ok(const char *p, size_t n) {
        if (n == 0 || n > KEYWARD_SERVER_URL_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
                        return false;
        return true;
}

int keyward_servers_append(char ***l, const char *list) {
        static const char sep[] = ", \t\n";
        int r;

        assert_return(l, -EINVAL);
        assert_return(list, -EINVAL);

        for (const char *p = list + strspn(list, sep); *p; p += strspn(p, sep)) {
                size_t n = strcspn(p, sep);
                _cleanup_free_ char *s = NULL;

                if (!url_ok(p, n))
                        return -EINVAL;
                if (strv_length(*l) >= KEYWARD_SERVERS_MAX)
                        return -E2BIG;
                s = strndup(p, n);
                if (!s)
                        return -ENOMEM;
                r = strv_push(l, s);
                if (r < 0)
                        return r;
                s = NULL;
                p += n;
        }
        return 0;
}

static int parse_servers(_unused_ const ConfigItem *item, const char *value, void *data) {
        char ***l = data;

        if (isempty(value)) {
                *l = strv_free(*l);
                return 0;
        }
        return keyward_servers_append(l, value);
}

static int parse_path(_unused_ const ConfigItem *item, const char *value, void *data) {
        char **p = data, *c = NULL;

        /* A relative path would depend on the directory keyward happens to run in. */
        if (!isempty(value)) {
                if (value[0] != '/' || strlen(value) >= PATH_MAX)
                        return -EINVAL;
                c = strdup(value);
                if (!c)
                        return -ENOMEM;
        }
        free(*p);
        *p = c;
        return 0;
}

/* clang-format off */
static const ConfigItem keyward_items[] = {
        { "keyward", "server",    parse_servers, offsetof(KeywardConfig, servers),   "server URLs", "URL" },
        { "keyward", "server-ca", parse_path,    offsetof(KeywardConfig, server_ca), "CA bundle",   "FILE" },
};
/* clang-format on */

int keyward_config_load_file(const char *path, KeywardConfig *c) {
        assert_return(path, -EINVAL);
        assert_return(c, -EINVAL);

        return config_load_file(path, keyward_items, ELEMENTSOF(keyward_items), c);
}

int keyward_config_load_string(const char *text, size_t size, const char *name, KeywardConfig *c) {
        assert_return(text || size == 0, -EINVAL);
        assert_return(c, -EINVAL);

        return config_load_string(text, size, name, keyward_items, ELEMENTSOF(keyward_items), c);
}
