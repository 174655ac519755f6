/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "strv.h"

#include <string.h>

char **strv_free(char **l) {
        STRV_FOREACH(s, l)
                free(*s);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        STRV_FOREACH(s, l)
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s) {
        STRV_FOREACH(i, l)
                if (streq(*i, s))
                        return true;
        return false;
}

int strv_push(char ***l, char *s) {
        size_t n = strv_length(*l);
        char **c;

        c = reallocarray(*l, n + 2, sizeof(char *));
        if (!c)
                return -ENOMEM;
        c[n] = s;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *s) {
        char *c;
        int r;

        c = strdup(s);
        if (!c)
                return -ENOMEM;
        r = strv_push(l, c);
        if (r < 0)
                free(c);
        return r;
}

int strv_copy(char *const *l, char ***ret) {
        _cleanup_strv_free_ char **c = NULL;
        int r;

        c = calloc(1, sizeof(char *));
        if (!c)
                return -ENOMEM;
        STRV_FOREACH(s, l) {
                r = strv_extend(&c, *s);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}
