/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Go's hostname and SPIFFE rules over a verified certificate's names (Knox's mtls and
 * spiffe providers). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "peer-cert-internal.h"
#include "strv.h"

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* Go's validHostname(): labels of [A-Za-z0-9_-] (no leading '-'), no empty label; a pattern
 * may have "*" as its whole first label but may not be "*" alone; an input may end in one
 * dot. */
static bool valid_hostname(const char *host, bool is_pattern) {
        size_t len = strlen(host), label = 0, pos = 0;

        if (!is_pattern && len > 0 && host[len - 1] == '.')
                len--;
        if (len == 0)
                return false;
        if (len == 1 && host[0] == '*')
                return false;

        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? host[i] : '.';

                if (c == '.') {
                        if (pos == 0)
                                return false;
                        label++;
                        pos = 0;
                        continue;
                }
                if (is_pattern && label == 0 && pos == 0 && c == '*' &&
                    (i + 1 == len || host[i + 1] == '.')) {
                        pos++;
                        continue;
                }
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    (c == '-' && pos != 0)) {
                        pos++;
                        continue;
                }
                return false;
        }
        return true;
}

/* Go's matchHostnames(): same number of labels, a "*" first pattern label matches any one
 * label, the rest compare ASCII case-insensitively; one trailing dot of host ignored. */
static bool match_hostnames(const char *pattern, const char *host) {
        size_t plen = strlen(pattern), hlen = strlen(host), pi = 0, hi = 0;
        bool first = true;

        if (hlen > 0 && host[hlen - 1] == '.')
                hlen--;
        if (plen == 0 || hlen == 0)
                return false;

        for (;;) {
                size_t pe = pi, he = hi;

                while (pe < plen && pattern[pe] != '.')
                        pe++;
                while (he < hlen && host[he] != '.')
                        he++;

                if (!(first && pe - pi == 1 && pattern[pi] == '*')) {
                        if (pe - pi != he - hi)
                                return false;
                        for (size_t k = 0; k < pe - pi; k++)
                                if (ascii_lower(pattern[pi + k]) != ascii_lower(host[hi + k]))
                                        return false;
                }
                first = false;

                if (pe == plen || he == hlen)
                        return pe == plen && he == hlen;
                pi = pe + 1;
                hi = he + 1;
        }
}

/* Go's matchExactly(). */
static bool match_exactly(const char *a, const char *b) {
        if (isempty(a) || streq(a, ".") || isempty(b) || streq(b, "."))
                return false;
        if (strlen(a) != strlen(b))
                return false;
        for (; *a; a++, b++)
                if (ascii_lower(*a) != ascii_lower(*b))
                        return false;
        return true;
}

static int join(char *const *l, Buf *b) {
        STRV_FOREACH(s, l) {
                if (s != l)
                        (void) buf_puts(b, ", ");
                (void) buf_puts(b, *s);
        }
        return b->error;
}

/* Go's HostnameError.Error(). */
static int hostname_error(const PeerCert *pc, const char *host, char **ret_message) {
        _cleanup_buf_ Buf valid = BUF_INIT;
        uint8_t ip[16];
        int r;

        if (!pc->has_san_ext && pc->common_name && match_hostnames(pc->common_name, host))
                *ret_message =
                        strdup("x509: certificate relies on legacy Common Name field, use SANs instead");
        else {
                if (peer_cert_parse_ip(host, ip)) {
                        if (pc->n_ip_bin == 0)
                                return asprintf(
                                               ret_message,
                                               "x509: cannot validate certificate for %s because it doesn't "
                                               "contain any IP SANs",
                                               host) < 0 ?
                                        -ENOMEM :
                                        -EKEYREJECTED;
                        r = join(peer_cert_ip_addresses(pc), &valid);
                } else
                        r = join(peer_cert_dns_names(pc), &valid);
                if (r < 0)
                        return r;

                if (valid.len == 0)
                        r = asprintf(
                                ret_message,
                                "x509: certificate is not valid for any names, but wanted to match %s",
                                host);
                else
                        r = asprintf(
                                ret_message, "x509: certificate is valid for %s, not %s", valid.data, host);
                if (r < 0)
                        *ret_message = NULL;
        }
        return *ret_message ? -EKEYREJECTED : -ENOMEM;
}

int peer_cert_match_host(const PeerCert *pc, const char *host, char **reterr_message) {
        _cleanup_free_ char *candidate = NULL;
        const char *ip_text = host;
        size_t len;
        uint8_t ip[16];
        bool valid_candidate;

        assert_return(pc, -EINVAL);
        assert_return(host, -EINVAL);
        assert_return(reterr_message, -EINVAL);

        if (!pc->verified) {
                *reterr_message = strdup(strempty(pc->error));
                return *reterr_message ? -EKEYREJECTED : -ENOMEM;
        }

        /* IP literals, optionally in [ ], only against IP SANs. */
        len = strlen(host);
        if (len >= 3 && host[0] == '[' && host[len - 1] == ']') {
                candidate = strndup(host + 1, len - 2);
                if (!candidate)
                        return -ENOMEM;
                ip_text = candidate;
        }
        if (peer_cert_parse_ip(ip_text, ip)) {
                for (size_t i = 0; i < pc->n_ip_bin; i++)
                        if (memcmp(pc->ip_bin[i], ip, 16) == 0)
                                return 0;
                return hostname_error(pc, ip_text, reterr_message);
        }

        /* Names against DNS SANs only; wildcards and the trailing dot only when both sides
         * are valid hostnames, exact (case-insensitive) matches always. */
        valid_candidate = valid_hostname(host, false);
        STRV_FOREACH(m, peer_cert_dns_names(pc)) {
                if (valid_candidate && valid_hostname(*m, true)) {
                        if (match_hostnames(*m, host))
                                return 0;
                } else if (match_exactly(*m, host))
                        return 0;
        }
        return hostname_error(pc, host, reterr_message);
}

int peer_cert_spiffe_id(const PeerCert *pc, const char **ret_id, const char **reterr_message) {
        const char *uri;

        assert_return(pc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(reterr_message, -EINVAL);

        if (!pc->verified) {
                *reterr_message = strempty(pc->error);
                return -EKEYREJECTED;
        }
        if (pc->n_uris == 0) {
                *reterr_message = PEER_CERT_ERROR_NO_SPIFFE;
                return -EKEYREJECTED;
        }
        if (pc->n_uris > 1) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_MANY;
                return -EKEYREJECTED;
        }

        uri = pc->uris ? pc->uris[0] : NULL;
        if (!uri) {
                /* The one URI holds a NUL byte: not a usable identity. */
                *reterr_message = PEER_CERT_ERROR_SPIFFE_FORMAT;
                return -EKEYREJECTED;
        }
        if (!strneq(uri, "spiffe://", STRLEN("spiffe://"))) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_PREFIX;
                return -EKEYREJECTED;
        }
        if (!strchr(uri + STRLEN("spiffe://"), '/')) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_FORMAT;
                return -EKEYREJECTED;
        }

        *ret_id = uri;
        return 0;
}
