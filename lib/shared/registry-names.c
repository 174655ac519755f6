/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "registry-names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "key.h"
#include "strv.h"

static bool chars_in(const char *s, const char *extra) {
        for (const char *p = s; *p; p++) {
                bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                        strchr(extra, *p);
                if (!ok)
                        return false;
        }
        return true;
}

bool registry_id_is_valid(const char *id) {
        return id && strlen(id) <= REGISTRY_NAME_MAX && key_id_is_valid(id);
}

bool registry_account_is_valid(const char *name) {
        /* What useradd and NSS accept in practice (systemd's relaxed user name rules), and a
         * trailing '$' for Samba machine accounts. */
        if (isempty(name) || strlen(name) > 256 || name[0] == '-')
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("_.@-", *p) || (*p == '$' && p[1] == '\0')))
                        return false;
        return true;
}

bool registry_reader_is_valid(const char *reader) {
        if (!reader)
                return false;
        if (strneq(reader, "user:", 5))
                return registry_account_is_valid(reader + 5);
        if (strneq(reader, "group:", 6))
                return registry_account_is_valid(reader + 6);
        return false;
}

bool registry_file_path_is_valid(const char *path) {
        const char *last;
        size_t n;

        if (!path || path[0] != '/' || (n = strlen(path)) > REGISTRY_FILE_PATH_MAX || path[n - 1] == '/')
                return false;
        for (const char *p = path; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        /* As D-Bus carries it: a name that is not UTF-8 would not read back the same from the
         * registry (JSON writes it as code points). */
        if (!utf8_is_valid(path, n))
                return false;
        /* Each component: not empty ("//"), not "." or "..". */
        for (const char *c = path + 1;;) {
                const char *e = strchrnul(c, '/');
                size_t len = (size_t) (e - c);

                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (!*e)
                        break;
                c = e + 1;
        }
        last = strrchr(path, '/') + 1;
        return strlen(last) <= REGISTRY_FILE_NAME_MAX;
}

bool registry_file_mode_is_valid(unsigned mode) {
        return (mode & ~0660u) == 0;
}

bool registry_unit_is_valid(const char *unit) {
        static const char *const suffixes[] = {".service", ".socket", ".target", ".timer",
                                               ".path",    ".mount",  ".scope",  ".slice"};
        size_t n;

        if (isempty(unit) || (n = strlen(unit)) > REGISTRY_NAME_MAX || unit[0] == '.' || unit[0] == '-')
                return false;
        if (!chars_in(unit, ":-_.\\@"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t l = strlen(suffixes[i]);
                if (n > l && streq(unit + n - l, suffixes[i]))
                        return true;
        }
        return false;
}

bool registry_credential_is_valid(const char *name) {
        /* systemd's credential_name_valid(): a file name; we are stricter about the bytes. */
        if (isempty(name) || strlen(name) > REGISTRY_NAME_MAX || streq(name, ".") || streq(name, ".."))
                return false;
        return chars_in(name, "_.-:@");
}

typedef struct IdAt {
        const char *id;
        size_t at;
} IdAt;

static int id_at_compare(const void *x, const void *y) {
        const IdAt *a = x, *b = y;
        int c = strcmp(a->id, b->id);

        return c != 0 ? c : (a->at > b->at) - (a->at < b->at);
}

/* Drop the repeats of an id from l, keeping each first one in place: sorted, not pairwise, so
 * that a file of 100,000 ids takes no longer to read than to send. */
static int strv_uniq_stable(char **l) {
        _cleanup_free_ IdAt *v = NULL;
        size_t n = strv_length(l), o = 0;

        if (n < 2)
                return 0;
        v = calloc(n, sizeof(IdAt));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = (IdAt){l[i], i};
        qsort(v, n, sizeof(IdAt), id_at_compare);
        /* v[first] is the first of a run of equal ids, kept; the others of the run go (each
         * compared with it, never with one already freed). */
        for (size_t i = 1, first = 0; i < n; i++)
                if (streq(v[i].id, v[first].id)) {
                        free(l[v[i].at]);
                        l[v[i].at] = NULL;
                } else
                        first = i;
        for (size_t i = 0; i < n; i++)
                if (l[i])
                        l[o++] = l[i];
        l[o] = NULL;
        return 0;
}

int registry_id_list_parse(const char *text, size_t size, char ***ids) {
        static const char ws[] = " \t\r\n";
        size_t n = strv_length(*ids), n_alloc = n + 1;

        assert_return(ids && (text || size == 0), -EINVAL);

        for (size_t p = 0; p < size;) {
                size_t len = 0;
                char *id;

                if (strchr(ws, text[p]) || text[p] == '\0') {
                        p++;
                        continue;
                }
                while (p + len < size && text[p + len] != '\0' && !strchr(ws, text[p + len]))
                        len++;
                if (n + 1 >= n_alloc) {
                        size_t m = MAX(n_alloc * 2, (size_t) 64);
                        char **l = reallocarray(*ids, m, sizeof(char *));

                        if (!l)
                                return -ENOMEM;
                        if (!*ids)
                                l[0] = NULL;
                        *ids = l;
                        n_alloc = m;
                }
                id = strndup(text + p, len);
                if (!id)
                        return -ENOMEM;
                (*ids)[n++] = id;
                (*ids)[n] = NULL;
                p += len;
        }
        return strv_uniq_stable(*ids);
}
