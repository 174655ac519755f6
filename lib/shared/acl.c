/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "acl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hexdecoct.h"
#include "strv.h"

/* Knox's messages, byte for byte (protocol.md §4.4). */
#define MSG_ACL_NONE "ACL contains None access"
#define MSG_ACL_DUPLICATE "Duplicate entries in ACL"
#define MSG_PRINCIPAL_EMPTY \
        "Principals of type user, user group, machine, or machine prefix may not be empty."
#define MSG_SERVICE_URL "Service prefix is invalid URL, must conform to 'spiffe://<domain>/<path>/' format."
#define MSG_SERVICE_NO_SLASH \
        "Service prefix had no trailing slash, must conform to 'spiffe://<domain>/<path>/' format."

static bool access_same_principal(const Access *a, const Access *b) {
        return a->type == b->type && streq(strempty(a->id), strempty(b->id));
}

int acl_validate(const Acl *acl, const char **reterr_message) {
        assert_return(acl, -EINVAL);

        /* Knox's order: entry i is checked for None before it is compared with the others,
         * so the first offending entry decides the message. A duplicate pair (j, i) with
         * j < i would already have been reported at j, hence j > i below. */
        for (size_t i = 0; i < acl->n; i++) {
                if (acl->entries[i].access == ACCESS_NONE) {
                        if (reterr_message)
                                *reterr_message = MSG_ACL_NONE;
                        return -EINVAL;
                }
                for (size_t j = i + 1; j < acl->n; j++)
                        if (access_same_principal(&acl->entries[i], &acl->entries[j])) {
                                if (reterr_message)
                                        *reterr_message = MSG_ACL_DUPLICATE;
                                return -EINVAL;
                        }
        }

        return 0;
}

/* The part of Go's net/url.Parse that Knox's IsValidPrincipal depends on: whether the
 * string parses without error, with scheme "spiffe" (compared case-insensitively, since Go
 * lowercases it) and a non-empty host. Each check below is one url.Parse makes: control
 * bytes, scheme syntax, the authority (userinfo characters, host characters and escapes,
 * port digits) and well-formed %-escapes in userinfo, path and fragment. The query is not
 * checked by url.Parse. */

typedef enum UrlPart {
        URL_PART_HOST,
        URL_PART_ZONE,  /* an IPv6 zone after "%25" */
        URL_PART_OTHER, /* userinfo, path, fragment: only the escapes are checked */
} UrlPart;

static bool is_alpha(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c) {
        return c >= '0' && c <= '9';
}

/* Whether Go wants a byte escaped inside a host: anything but letters, digits, the
 * sub-delimiters, ':' '[' ']' '<' '>' '"' and the unreserved marks. */
static bool host_byte_needs_escape(unsigned char c) {
        if (is_alpha(c) || is_digit(c))
                return false;
        return c == '\0' || !strchr("!$&'()*+,;=:[]<>\"-_.~", c);
}

static bool url_unescape_ok(const char *s, size_t n, UrlPart part) {
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];

                if (c == '%') {
                        int hi, lo;

                        if (n - i < 3)
                                return false;
                        hi = unhexchar(s[i + 1]);
                        lo = unhexchar(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return false;

                        bool pct25 = hi == 2 && lo == 5;
                        /* A host may escape only non-ASCII bytes, and %25. */
                        if (part == URL_PART_HOST && hi < 8 && !pct25)
                                return false;
                        /* A zone may escape only bytes it could hold raw, and a space. */
                        if (part == URL_PART_ZONE && !pct25) {
                                unsigned char v = (unsigned char) (hi << 4 | lo);
                                if (v != ' ' && host_byte_needs_escape(v))
                                        return false;
                        }
                        i += 3;
                        continue;
                }

                if (part != URL_PART_OTHER && c < 0x80 && host_byte_needs_escape(c))
                        return false;
                i++;
        }
        return true;
}

/* "" or ':' followed by digits only. */
static bool valid_optional_port(const char *s, size_t n) {
        if (n == 0)
                return true;
        if (s[0] != ':')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_digit((unsigned char) s[i]))
                        return false;
        return true;
}

static const char *mem_rchr(const char *s, size_t n, char c) {
        for (size_t i = n; i > 0; i--)
                if (s[i - 1] == c)
                        return s + i - 1;
        return NULL;
}

static const char *mem_find(const char *s, size_t n, const char *needle) {
        size_t k = strlen(needle);

        for (size_t i = 0; k <= n && i <= n - k; i++)
                if (memcmp(s + i, needle, k) == 0)
                        return s + i;
        return NULL;
}

static bool url_host_ok(const char *h, size_t n) {
        if (n > 0 && h[0] == '[') {
                /* An IP literal, "[addr]" or "[addr%25zone]", then an optional port. */
                const char *close = mem_rchr(h, n, ']');
                if (!close)
                        return false;
                size_t i = (size_t) (close - h);
                if (!valid_optional_port(h + i + 1, n - i - 1))
                        return false;

                const char *zone = mem_find(h, i, "%25");
                if (zone) {
                        size_t z = (size_t) (zone - h);
                        return url_unescape_ok(h, z, URL_PART_HOST) &&
                                url_unescape_ok(h + z, i - z, URL_PART_ZONE) &&
                                url_unescape_ok(h + i, n - i, URL_PART_HOST);
                }
        } else {
                const char *colon = mem_rchr(h, n, ':');
                if (colon && !valid_optional_port(colon, n - (size_t) (colon - h)))
                        return false;
        }

        return url_unescape_ok(h, n, URL_PART_HOST);
}

/* Go checks userinfo rune by rune against an ASCII list, so any non-ASCII byte fails. */
static bool url_userinfo_ok(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (is_alpha(c) || is_digit(c))
                        continue;
                if (c == '\0' || !strchr("-._:~!$&'()*+,;=%@", c))
                        return false;
        }
        return url_unescape_ok(s, n, URL_PART_OTHER);
}

static bool spiffe_url_has_host(const char *s) {
        size_t len = strlen(s), n, i;

        /* The fragment is cut off first; only its escapes are checked. */
        const char *hash = strchr(s, '#');
        n = hash ? (size_t) (hash - s) : len;
        if (hash && !url_unescape_ok(hash + 1, len - n - 1, URL_PART_OTHER))
                return false;

        for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == 0x7f)
                        return false;
        }

        /* Scheme: a letter, then letters, digits, '+', '-', '.', up to the first ':'.
         * Anything else means no scheme at all, which cannot be "spiffe". */
        for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (is_alpha(c))
                        continue;
                if (i > 0 && (is_digit(c) || c == '+' || c == '-' || c == '.'))
                        continue;
                break;
        }
        if (i != STRLEN("spiffe") || i >= n || s[i] != ':' || strncasecmp(s, "spiffe", i) != 0)
                return false;

        const char *rest = s + i + 1;
        size_t rest_n = n - i - 1;

        /* The query, from the first '?', is not checked. */
        const char *q = memchr(rest, '?', rest_n);
        if (q)
                rest_n = (size_t) (q - rest);

        /* Without "//" there is no authority: an opaque URL, or a path without a host. */
        if (rest_n < 2 || rest[0] != '/' || rest[1] != '/')
                return false;

        const char *authority = rest + 2;
        size_t authority_n = rest_n - 2;
        const char *path = memchr(authority, '/', authority_n);
        if (path)
                authority_n = (size_t) (path - authority);

        const char *host = authority;
        size_t host_n = authority_n;
        const char *at = mem_rchr(authority, authority_n, '@');
        if (at) {
                host = at + 1;
                host_n = authority_n - (size_t) (host - authority);
        }

        if (!url_host_ok(host, host_n))
                return false;
        if (at && !url_userinfo_ok(authority, (size_t) (at - authority)))
                return false;
        if (path && !url_unescape_ok(path, rest_n - (size_t) (path - rest), URL_PART_OTHER))
                return false;

        /* An unescaped host is empty only when its text is. */
        return host_n > 0;
}

int access_validate_principal(const Access *a, const char **reterr_message) {
        const char *msg = NULL;

        assert_return(a, -EINVAL);

        if (isempty(a->id))
                msg = MSG_PRINCIPAL_EMPTY;
        else if (a->type == PRINCIPAL_TYPE_SERVICE || a->type == PRINCIPAL_TYPE_SERVICE_PREFIX) {
                /* Knox uses the prefix's message for Service too. */
                if (!spiffe_url_has_host(a->id))
                        msg = MSG_SERVICE_URL;
                else if (a->type == PRINCIPAL_TYPE_SERVICE_PREFIX && a->id[strlen(a->id) - 1] != '/')
                        msg = MSG_SERVICE_NO_SLASH;
        }

        if (msg) {
                if (reterr_message)
                        *reterr_message = msg;
                return -EINVAL;
        }
        return 0;
}

int acl_merge(Acl *acl, const Access *a) {
        assert_return(acl, -EINVAL);
        assert_return(a, -EINVAL);

        for (size_t i = 0; i < acl->n; i++) {
                Access *e = &acl->entries[i];

                if (!access_same_principal(e, a))
                        continue;

                if (a->access == ACCESS_NONE) {
                        access_done(e);
                        memmove(e, e + 1, (acl->n - i - 1) * sizeof(Access));
                        acl->n--;
                        if (acl->n == 0) {
                                free(acl->entries);
                                acl->entries = NULL;
                        }
                } else
                        e->access = a->access;
                return 0;
        }

        if (a->access == ACCESS_NONE)
                return 0;

        _cleanup_free_ char *id = strdup(strempty(a->id));
        if (!id)
                return -ENOMEM;

        Access *entries = reallocarray(acl->entries, acl->n + 1, sizeof(Access));
        if (!entries)
                return -ENOMEM;
        acl->entries = entries;
        acl->entries[acl->n++] = (Access){
                .type = a->type,
                .access = a->access,
                .id = TAKE_PTR(id),
        };
        return 0;
}

int acl_build_for_create(Acl *acl, const char *creator, const Acl *defaults) {
        _cleanup_acl_ Acl result = {};
        int r;

        assert_return(acl, -EINVAL);
        assert_return(creator, -EINVAL);

        /* Work on a copy so that a failure leaves the caller's ACL as it was. The request's
         * own entries are kept as sent: Knox validates them only afterwards. */
        r = acl_copy(acl, &result);
        if (r < 0)
                return r;

        r = acl_merge(
                &result,
                &(const Access){
                        .type = PRINCIPAL_TYPE_USER,
                        .access = ACCESS_ADMIN,
                        .id = (char *) creator,
                });
        if (r < 0)
                return r;

        if (defaults)
                FOREACH_ARRAY(d, defaults->entries, defaults->n) {
                        r = acl_merge(&result, d);
                        if (r < 0)
                                return r;
                }

        acl_done(acl);
        *acl = result;
        result = (Acl){};
        return 0;
}

/* clang-format off */
static const char *const principal_kind_table[_PRINCIPAL_KIND_MAX] = {
        [PRINCIPAL_KIND_USER]    = "user",
        [PRINCIPAL_KIND_MACHINE] = "machine",
        [PRINCIPAL_KIND_SERVICE] = "service",
};
/* clang-format on */

const char *principal_kind_to_string(PrincipalKind k) {
        if (k < 0 || k >= _PRINCIPAL_KIND_MAX)
                return NULL;
        return principal_kind_table[k];
}

void principal_done(Principal *p) {
        if (!p)
                return;
        free(p->id);
        strv_free(p->groups);
        *p = (Principal){};
}

void principals_done(Principals *ps) {
        if (!ps)
                return;
        FOREACH_ARRAY(p, ps->items, ps->n)
                principal_done(p);
        free(ps->items);
        *ps = (Principals){};
}

int principals_add(
        Principals *ps, PrincipalKind kind, const char *id, char *const *groups, const char *provider) {
        _cleanup_(principal_done) Principal p = {.kind = kind, .provider = provider};
        int r;

        assert_return(ps, -EINVAL);
        assert_return(kind >= 0 && kind < _PRINCIPAL_KIND_MAX, -EINVAL);
        assert_return(id, -EINVAL);

        p.id = strdup(id);
        if (!p.id)
                return -ENOMEM;
        if (groups) {
                r = strv_copy(groups, &p.groups);
                if (r < 0)
                        return r;
        }

        /* Room for two from the start: "0t" requests get a machine and often a service. */
        if (ps->n == 0 || (ps->n >= 2 && (ps->n & (ps->n - 1)) == 0)) {
                Principal *items = reallocarray(ps->items, MAX(ps->n * 2, (size_t) 2), sizeof(Principal));
                if (!items)
                        return -ENOMEM;
                ps->items = items;
        }
        ps->items[ps->n++] = p;
        p = (Principal){};
        return 0;
}

const Principal *principals_default(const Principals *ps) {
        if (!ps || ps->n == 0)
                return NULL;
        return &ps->items[0];
}

int principals_type_append(const Principals *ps, Buf *b) {
        int r;

        assert_return(ps, -EINVAL);
        assert_return(b, -EINVAL);

        if (ps->n == 0)
                return 0;
        if (ps->n == 1)
                return buf_puts(b, strempty(principal_kind_to_string(ps->items[0].kind)));

        r = buf_puts(b, "mux[");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ps->n; i++) {
                r = buf_printf(
                        b, "%s%s=>%s", i > 0 ? "," : "", strempty(ps->items[i].provider),
                        strempty(principal_kind_to_string(ps->items[i].kind)));
                if (r < 0)
                        return r;
        }
        return buf_putc(b, ']');
}

static bool principal_matches(const Principal *p, const Access *e) {
        const char *id = strempty(e->id);

        switch (p->kind) {
        case PRINCIPAL_KIND_USER:
                if (e->type == PRINCIPAL_TYPE_USER)
                        return streq(p->id, id);
                if (e->type == PRINCIPAL_TYPE_USER_GROUP)
                        return strv_contains(p->groups, id);
                return false;

        case PRINCIPAL_KIND_MACHINE:
                if (e->type == PRINCIPAL_TYPE_MACHINE)
                        return streq(p->id, id);
                /* Plain string prefix, as Knox does; an empty prefix matches every machine
                 * (PUT access refuses to store one). */
                if (e->type == PRINCIPAL_TYPE_MACHINE_PREFIX)
                        return strneq(p->id, id, strlen(id));
                return false;

        case PRINCIPAL_KIND_SERVICE:
                if (e->type == PRINCIPAL_TYPE_SERVICE)
                        return streq(p->id, id);
                if (e->type == PRINCIPAL_TYPE_SERVICE_PREFIX)
                        return strneq(p->id, id, strlen(id));
                return false;

        case _PRINCIPAL_KIND_MAX:
        case _PRINCIPAL_KIND_INVALID:
                break;
        }
        return false;
}

bool acl_allows_principal(const Acl *acl, const Principal *p, AccessType need) {
        if (!acl || !p || !p->id)
                return false;
        if (need < 0 || need >= _ACCESS_TYPE_MAX)
                return false;

        FOREACH_ARRAY(e, acl->entries, acl->n) {
                /* None grants nothing; any other level grants itself and those below. */
                if (e->access <= ACCESS_NONE || e->access >= _ACCESS_TYPE_MAX || e->access < need)
                        continue;
                if (principal_matches(p, e))
                        return true;
        }
        return false;
}

bool acl_allows(const Acl *acl, const Principals *ps, AccessType need) {
        if (!ps)
                return false;
        FOREACH_ARRAY(p, ps->items, ps->n)
                if (acl_allows_principal(acl, p, need))
                        return true;
        return false;
}
