/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-registry.h"

#include <string.h>

#include "buf.h"
#include "cache-key.h"
#include "fileio.h"
#include "json-util.h"
#include "key.h"
#include "log.h"
#include "strv.h"

/* clang-format off */
static const char *const on_change_table[_ON_CHANGE_MAX] = {
        [ON_CHANGE_NONE]              = "none",
        [ON_CHANGE_RESTART]           = "restart",
        [ON_CHANGE_RELOAD_OR_RESTART] = "reload-or-restart",
        [ON_CHANGE_RELOAD]            = "reload",
};
/* clang-format on */

const char *on_change_to_string(OnChange c) {
        if (c < 0 || c >= _ON_CHANGE_MAX)
                return NULL;
        return on_change_table[c];
}

OnChange on_change_from_string(const char *s) {
        if (!s)
                return _ON_CHANGE_INVALID;
        for (int i = 0; i < _ON_CHANGE_MAX; i++)
                if (streq(on_change_table[i], s))
                        return (OnChange) i;
        return _ON_CHANGE_INVALID;
}

void registration_done(Registration *r) {
        if (!r)
                return;
        free(r->id);
        strv_free(r->readers);
        strv_free(r->units);
        free(r->credential);
        free(r->file);
        free(r->file_owner);
        free(r->file_group);
        *r = (Registration){};
}

int registration_copy(const Registration *src, Registration *ret) {
        _cleanup_(registration_donep) Registration c = {.on_change = src->on_change};

        assert_return(src && ret, -EINVAL);

        c.id = strdup(src->id);
        if (!c.id || strv_copy(src->readers, &c.readers) < 0 || strv_copy(src->units, &c.units) < 0)
                return -ENOMEM;
        if (src->credential && !(c.credential = strdup(src->credential)))
                return -ENOMEM;
        if ((src->file && !(c.file = strdup(src->file))) ||
            (src->file_owner && !(c.file_owner = strdup(src->file_owner))) ||
            (src->file_group && !(c.file_group = strdup(src->file_group))))
                return -ENOMEM;
        c.file_mode = src->file_mode;
        *ret = c;
        c = (Registration){};
        return 0;
}

static int list_validate(char *const *l, bool (*valid)(const char *), const char *what, const char **msg) {
        size_t n = 0;

        STRV_FOREACH(s, l) {
                if (!valid(*s)) {
                        *msg = what;
                        return -EINVAL;
                }
                for (char *const *t = l; t < s; t++)
                        if (streq(*t, *s)) {
                                *msg = "Duplicate entry in readers or units";
                                return -EINVAL;
                        }
                n++;
        }
        if (n > REGISTRY_LIST_MAX) {
                *msg = "Too many readers or units";
                return -EINVAL;
        }
        return 0;
}

int registration_validate(const Registration *r, const char **reterr_message) {
        const char *msg = NULL;

        assert_return(r, -EINVAL);

        if (!registry_id_is_valid(r->id))
                msg = "Invalid key id (it must match ^[a-zA-Z0-9_:]+$, at most 255 characters)";
        else if (
                list_validate(
                        r->readers, registry_reader_is_valid, "Invalid reader (user:NAME or group:NAME)",
                        &msg) < 0 ||
                list_validate(r->units, registry_unit_is_valid, "Invalid unit name", &msg) < 0)
                ; /* msg is set */
        else if (r->credential && !registry_credential_is_valid(r->credential))
                msg = "Invalid credential name";
        else if (!on_change_to_string(r->on_change))
                msg = "Invalid on_change (none, restart, reload-or-restart or reload)";
        else if (!r->file && (r->file_owner || r->file_group || r->file_mode != 0))
                msg = "The options file_owner, file_group and file_mode need the option file";
        else if (r->file && !registry_file_path_is_valid(r->file))
                msg = "Invalid file (an absolute UTF-8 path without control characters, '.', '..' or empty components, at most 1024 bytes)";
        else if (
                (r->file_owner && !registry_account_is_valid(r->file_owner)) ||
                (r->file_group && !registry_account_is_valid(r->file_group)))
                msg = "Invalid file_owner or file_group";
        else if (!registry_file_mode_is_valid(r->file_mode))
                msg = "Invalid file_mode: it may give others nothing and set no execute, setuid, setgid or sticky bit (at most 0660)";

        if (msg) {
                if (reterr_message)
                        *reterr_message = msg;
                return -EINVAL;
        }
        return 0;
}

static int strv_merge(char ***dst, char *const *src, bool *changed) {
        STRV_FOREACH(s, src) {
                int r;

                if (strv_contains(*dst, *s))
                        continue;
                if (strv_length(*dst) >= REGISTRY_LIST_MAX)
                        return -E2BIG;
                r = strv_extend(dst, *s);
                if (r < 0)
                        return r;
                *changed = true;
        }
        return 0;
}

int registration_merge(Registration *dst, const Registration *src, bool on_change_set) {
        bool changed = false;
        int r;

        assert_return(dst && src, -EINVAL);

        r = strv_merge(&dst->readers, src->readers, &changed);
        if (r < 0)
                return r;
        r = strv_merge(&dst->units, src->units, &changed);
        if (r < 0)
                return r;
        if (src->credential && !streq(src->credential, strempty(dst->credential))) {
                char *c = strdup(src->credential);
                if (!c)
                        return -ENOMEM;
                free(dst->credential);
                dst->credential = c;
                changed = true;
        }
        if (on_change_set && dst->on_change != src->on_change) {
                dst->on_change = src->on_change;
                changed = true;
        }
        if (src->file) {
                if (dst->file && !streq(dst->file, src->file))
                        return -EEXIST;
                if (!dst->file || !streq(strempty(dst->file_owner), strempty(src->file_owner)) ||
                    !streq(strempty(dst->file_group), strempty(src->file_group)) ||
                    dst->file_mode != src->file_mode) {
                        Registration f = {};

                        if ((!dst->file && !(f.file = strdup(src->file))) ||
                            (src->file_owner && !(f.file_owner = strdup(src->file_owner))) ||
                            (src->file_group && !(f.file_group = strdup(src->file_group)))) {
                                registration_done(&f);
                                return -ENOMEM;
                        }
                        if (f.file) {
                                free(dst->file);
                                dst->file = f.file;
                        }
                        free(dst->file_owner);
                        free(dst->file_group);
                        dst->file_owner = f.file_owner;
                        dst->file_group = f.file_group;
                        dst->file_mode = src->file_mode;
                        changed = true;
                }
        }
        return changed;
}

static int append_strv(Buf *b, const char *name, char *const *l) {
        bool first = true;

        (void) buf_printf(b, ",\"%s\":[", name);
        STRV_FOREACH(s, l) {
                if (!first)
                        (void) buf_putc(b, ',');
                first = false;
                (void) json_append_cstring(b, *s);
        }
        return buf_putc(b, ']');
}

int registry_format(const Registration *const *regs, size_t n, char **ret, size_t *ret_size) {
        _cleanup_buf_ Buf b = BUF_INIT;
        char *s;

        assert_return(regs || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        (void) buf_puts(&b, "{\"version\":1,\"keys\":[");
        for (size_t i = 0; i < n; i++) {
                const Registration *r = regs[i];

                (void) buf_puts(&b, i > 0 ? ",\n{\"id\":" : "\n{\"id\":");
                (void) json_append_cstring(&b, r->id);
                (void) append_strv(&b, "readers", r->readers);
                (void) append_strv(&b, "units", r->units);
                if (r->credential) {
                        (void) buf_puts(&b, ",\"credential\":");
                        (void) json_append_cstring(&b, r->credential);
                }
                if (r->file) {
                        (void) buf_puts(&b, ",\"file\":");
                        (void) json_append_cstring(&b, r->file);
                        if (r->file_owner) {
                                (void) buf_puts(&b, ",\"file_owner\":");
                                (void) json_append_cstring(&b, r->file_owner);
                        }
                        if (r->file_group) {
                                (void) buf_puts(&b, ",\"file_group\":");
                                (void) json_append_cstring(&b, r->file_group);
                        }
                        (void) buf_printf(&b, ",\"file_mode\":%u", r->file_mode);
                }
                (void) buf_printf(&b, ",\"on_change\":\"%s\"}", on_change_to_string(r->on_change));
        }
        (void) buf_puts(&b, "\n]}\n");
        if (b.error < 0)
                return b.error;
        s = buf_steal(&b, ret_size);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int registry_save(const char *path, const Registration *const *regs, size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        assert_return(path, -EINVAL);

        r = registry_format(regs, n, &text, &size);
        if (r < 0)
                return r;
        return write_file_atomic(path, text, size, 0600);
}

static int get_strv(json_object *o, const char *name, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        json_object *a = json_get_field(o, name);
        size_t n;

        if (!a || json_object_is_type(a, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(a, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(a);
        if (n > REGISTRY_LIST_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                const char *s;
                size_t len;
                int r;

                if (json_get_string(json_object_array_get_idx(a, i), &s, &len) < 0 || strlen(s) != len)
                        return -EBADMSG;
                r = strv_extend(&l, s);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int get_string(json_object *o, const char *name, char **ret) {
        json_object *f = json_get_field(o, name);
        const char *s;
        size_t len;

        if (!f || json_object_is_type(f, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (json_get_string(f, &s, &len) < 0 || strlen(s) != len)
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_mode(json_object *o, const char *name, unsigned *ret) {
        json_object *f = json_get_field(o, name);
        int64_t v;

        if (!f || json_object_is_type(f, json_type_null)) {
                *ret = 0;
                return 0;
        }
        if (json_get_int64(f, &v) < 0 || v < 0 || v > 07777)
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

static int entry_from_json(json_object *o, Registration *ret) {
        _cleanup_(registration_donep) Registration reg = {};
        _cleanup_free_ char *on_change = NULL;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if ((r = get_string(o, "id", &reg.id)) < 0 || (r = get_strv(o, "readers", &reg.readers)) < 0 ||
            (r = get_strv(o, "units", &reg.units)) < 0 ||
            (r = get_string(o, "credential", &reg.credential)) < 0 ||
            (r = get_string(o, "on_change", &on_change)) < 0 || (r = get_string(o, "file", &reg.file)) < 0 ||
            (r = get_string(o, "file_owner", &reg.file_owner)) < 0 ||
            (r = get_string(o, "file_group", &reg.file_group)) < 0 ||
            (r = get_mode(o, "file_mode", &reg.file_mode)) < 0)
                return r;
        reg.on_change = on_change ? on_change_from_string(on_change) : ON_CHANGE_NONE;
        *ret = reg;
        reg = (Registration){};
        return 0;
}

static int cmp_registration(const void *a, const void *b) {
        return strcmp(((const Registration *) a)->id, ((const Registration *) b)->id);
}

static void registrations_free(Registration *regs, size_t n) {
        for (size_t i = 0; i < n; i++)
                registration_done(&regs[i]);
        free(regs);
}

/* A growing list of entries. */
typedef struct RegList {
        Registration *regs;
        size_t n, cap;
} RegList;

static int reglist_add(RegList *l, json_object *o, size_t index) {
        Registration reg = {};
        const char *msg = NULL;
        int r;

        r = entry_from_json(o, &reg);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || registration_validate(&reg, &msg) < 0) {
                log_warning(
                        "Registry entry %zu ('%s') is invalid (%s), ignoring.", index, LOG_NAME(reg.id),
                        r < 0 ? "malformed" : msg);
                registration_done(&reg);
                return 0;
        }
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                Registration *n = reallocarray(l->regs, cap, sizeof(Registration));

                if (!n) {
                        registration_done(&reg);
                        return -ENOMEM;
                }
                l->regs = n;
                l->cap = cap;
        }
        l->regs[l->n++] = reg;
        return 0;
}

static void reglist_done(RegList *l) {
        registrations_free(l->regs, l->n);
        *l = (RegList){};
}

/* The whole text as one JSON document. */
static int parse_document(const char *text, size_t size, RegList *l) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *keys, *v;
        const char *msg = NULL;
        int64_t version;
        int r;

        r = json_parse(text, size, &o, &msg);
        if (r < 0)
                return log_error_errno(r, "Registry is not JSON: %s", strna(msg));
        if (!json_object_is_type(o, json_type_object))
                return log_error_errno(EBADMSG, "Registry is not a JSON object.");
        v = json_get_field(o, "version");
        if (!v || json_get_int64(v, &version) < 0 || version != 1)
                return log_error_errno(EBADMSG, "Registry has an unknown version.");
        keys = json_get_field(o, "keys");
        if (!keys || !json_object_is_type(keys, json_type_array))
                return log_error_errno(EBADMSG, "Registry has no key list.");

        for (size_t i = 0, n = json_object_array_length(keys); i < n; i++) {
                r = reglist_add(l, json_object_array_get_idx(keys, i), i);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define HEAD "{\"version\":1,\"keys\":[\n"
#define TAIL "\n]}\n"

/* The layout registry_format() writes, one entry per line, parsed a line at a time so that
 * a large registry never becomes one large JSON tree. -EBADMSG when the text is laid out
 * otherwise (the caller then parses it as a whole). */
static int parse_lines(const char *text, size_t size, RegList *l) {
        const char *p, *end, *msg = NULL;
        size_t index = 0;

        if (size < STRLEN(HEAD) + STRLEN(TAIL) - 1 || memcmp(text, HEAD, STRLEN(HEAD)) != 0 ||
            memcmp(text + size - STRLEN(TAIL), TAIL, STRLEN(TAIL)) != 0)
                return -EBADMSG;
        p = text + STRLEN(HEAD);
        end = text + size - STRLEN(TAIL);

        while (p < end) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *e = nl ? nl : end;
                size_t len = (size_t) (e - p);
                int r;

                if (len > 0 && p[len - 1] == ',' && nl)
                        len--;
                else if (nl) /* every line but the last ends in a comma */
                        return -EBADMSG;
                if (json_parse(p, len, &o, &msg) < 0)
                        return -EBADMSG;
                r = reglist_add(l, o, index++);
                if (r < 0)
                        return r;
                p = nl ? nl + 1 : end;
        }
        return 0;
}

int registry_parse(const char *text, size_t size, Registration **ret, size_t *ret_n) {
        _cleanup_(reglist_done) RegList l = {};
        Registration *regs;
        size_t n = 0;
        int r;

        assert_return(text || size == 0, -EINVAL);
        assert_return(ret && ret_n, -EINVAL);

        r = parse_lines(text, size, &l);
        if (r == -EBADMSG) {
                reglist_done(&l);
                r = parse_document(text, size, &l);
        }
        if (r < 0)
                return r;

        /* Sorted by id, duplicates folded into the first. */
        regs = l.regs;
        if (l.n > 0)
                qsort(regs, l.n, sizeof(Registration), cmp_registration);
        for (size_t i = 0; i < l.n; i++) {
                if (n > 0 && streq(regs[n - 1].id, regs[i].id)) {
                        r = registration_merge(&regs[n - 1], &regs[i], true);
                        registration_done(&regs[i]);
                        if (r == -ENOMEM) {
                                for (size_t j = i + 1; j < l.n; j++)
                                        registration_done(&regs[j]);
                                l.n = n;
                                return r;
                        }
                        continue;
                }
                if (n != i)
                        regs[n] = regs[i];
                n++;
        }
        if (!regs) {
                regs = calloc(1, sizeof(Registration));
                if (!regs)
                        return -ENOMEM;
        }

        *ret = regs;
        *ret_n = n;
        l = (RegList){};
        return 0;
}

int registry_load(const char *path, Registration **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        assert_return(path, -EINVAL);

        r = read_full_file(path, REGISTRY_FILE_MAX, &text, &size);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", path);
        r = registry_parse(text, size, ret, ret_n);
        if (r < 0 && r != -ENOMEM)
                return log_error_errno(r, "Registry '%s' is unusable.", path);
        return r;
}

int registry_save_sealed(const char *path, const Secret *seal, const Registration *const *regs, size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        assert_return(path && seal, -EINVAL);

        r = registry_format(regs, n, &text, &size);
        if (r < 0)
                return r;
        return cache_write_sealed_file(seal, REGISTRY_SEALED_MAGIC, path, text, size);
}

int registry_load_sealed(const char *path, const Secret *seal, Registration **ret, size_t *ret_n) {
        _cleanup_(secret_freep) Secret *plain = NULL;
        int r;

        assert_return(path && seal, -EINVAL);

        r = cache_read_sealed_file(
                seal, REGISTRY_SEALED_MAGIC, path,
                REGISTRY_FILE_MAX + STRLEN(REGISTRY_SEALED_MAGIC) + CACHE_SEAL_OVERHEAD, &plain);
        if (r == -ENOENT)
                return r;
        if (r == -EBADMSG)
                return log_error_errno(
                        r,
                        "Registry '%s' does not open with this host's cache key (another host's, or changed).",
                        path);
        if (r < 0)
                return log_error_errno(r, "Failed to read the registry '%s': %m", path);
        r = registry_parse((const char *) plain->data, plain->size, ret, ret_n);
        if (r < 0 && r != -ENOMEM)
                return log_error_errno(r, "Registry '%s' is unusable.", path);
        return r;
}
