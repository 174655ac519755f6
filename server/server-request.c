/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-request.h"

#include <string.h>
#include <strings.h>

#include "hexdecoct.h"
#include "parse.h"

int http_target_split(const char *target, char **ret_path, const char **ret_query) {
        _cleanup_free_ char *path = NULL;
        const char *q;
        size_t len, n;

        if (!target || target[0] != '/')
                return -EBADMSG;
        q = strchr(target, '?');
        len = q ? (size_t) (q - target) : strlen(target);

        path = malloc(len + 1);
        if (!path)
                return -ENOMEM;
        if (url_unescape(target, len, false, path, &n) < 0 || strlen(path) != n)
                return -EBADMSG;

        *ret_path = TAKE_PTR(path);
        *ret_query = q ? q + 1 : NULL;
        return 0;
}

unsigned http_prefer_wait(const char *header, unsigned max) {
        const char *p = header;

        while (p && *p) {
                char num[16];
                uint64_t v;
                size_t n;

                p += strspn(p, " \t,;");
                if (strncasecmp(p, "wait", 4) != 0 || !strchr(" \t=", p[4])) {
                        p = strpbrk(p, ",;");
                        continue;
                }
                p += 4;
                p += strspn(p, " \t");
                if (*p != '=')
                        return 0;
                p++;
                p += strspn(p, " \t");
                n = strspn(p, "0123456789");
                if (n == 0 || n >= sizeof(num) || !strchr(" \t,;", p[n]))
                        return 0;
                memcpy(num, p, n);
                num[n] = '\0';
                if (safe_atou64(num, &v) < 0)
                        return 0;
                return (unsigned) MIN(v, (uint64_t) max);
        }
        return 0;
}

bool http_content_type_is_form(const char *ct) {
        static const char form[] = "application/x-www-form-urlencoded";

        if (!ct)
                return false;
        ct += strspn(ct, " \t");
        return strncasecmp(ct, form, (sizeof(form) - 1)) == 0 && strchr(" \t;", ct[(sizeof(form) - 1)]);
}
