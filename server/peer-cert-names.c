/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names a client certificate carries: its subjectAltName entries (IP addresses
 * printed as Go prints them) and its last CN. */

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "peer-cert-internal.h"
#include "strv.h"

/* IP SANs kept per certificate; more are ignored (no host could need them). */
#define IP_SAN_MAX 64

/* An IPv4 or IPv6 literal as Go's net.ParseIP accepts it, as 16 bytes (IPv4 mapped). */
bool peer_cert_parse_ip(const char *s, uint8_t ret[16]) {
        struct in_addr a4;

        if (inet_pton(AF_INET, s, &a4) == 1) {
                memset(ret, 0, 10);
                ret[10] = ret[11] = 0xff;
                memcpy(ret + 12, &a4, 4);
                return true;
        }
        return inet_pton(AF_INET6, s, ret) == 1;
}

static bool ip_is_v4_mapped(const uint8_t ip[16]) {
        static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        return memcmp(ip, prefix, sizeof(prefix)) == 0;
}

/* Go's net.IP.String(): dotted quad for IPv4 (mapped ones included), otherwise RFC 5952:
 * lowercase hex groups, the first longest run of two or more zero groups as "::". glibc's
 * inet_ntop() differs for a few addresses (it prints "::1:2" as "::0.1.0.2"). */
static void format_ip(const uint8_t ip[16], char ret[static INET6_ADDRSTRLEN]) {
        int best = -1, best_len = 0;
        size_t n = 0;

        if (ip_is_v4_mapped(ip)) {
                snprintf(ret, INET6_ADDRSTRLEN, "%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
                return;
        }

        for (int i = 0; i < 8;) {
                int j = i;

                while (j < 8 && ip[2 * j] == 0 && ip[2 * j + 1] == 0)
                        j++;
                if (j - i > best_len) {
                        best = i;
                        best_len = j - i;
                }
                i = j == i ? i + 1 : j;
        }
        if (best_len < 2)
                best = -1;

        ret[0] = '\0';
        for (int i = 0; i < 8; i++) {
                if (i == best) {
                        n += (size_t) snprintf(ret + n, INET6_ADDRSTRLEN - n, "::");
                        i += best_len - 1;
                        continue;
                }
                n += (size_t) snprintf(
                        ret + n, INET6_ADDRSTRLEN - n, "%s%x",
                        i == 0 || n == 0 || ret[n - 1] == ':' ? "" : ":",
                        (unsigned) (ip[2 * i] << 8 | ip[2 * i + 1]));
        }
}

/* An IA5String from the certificate as a C string: 1 with *ret set, or 0 with *ret NULL
 * when it holds a NUL byte, which no C string could match. */
static int asn1_to_cstring(const ASN1_STRING *s, char **ret) {
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int len = ASN1_STRING_length(s);
        char *c;

        if (!d || len < 0 || memchr(d, 0, (size_t) len)) {
                *ret = NULL;
                return 0;
        }
        c = strndup((const char *) d, (size_t) len);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 1;
}

static int push_ip(PeerCert *pc, const ASN1_OCTET_STRING *o) {
        const unsigned char *d = ASN1_STRING_get0_data(o);
        int len = ASN1_STRING_length(o);
        char text[INET6_ADDRSTRLEN];
        uint8_t ip[16] = {};
        void *p;
        int r;

        if (len == 4) {
                ip[10] = ip[11] = 0xff;
                memcpy(ip + 12, d, 4);
        } else if (len == 16)
                memcpy(ip, d, 16);
        else
                return 0; /* not an address; Go refuses such certificates outright */
        if (pc->n_ip_bin >= IP_SAN_MAX)
                return 0;

        p = reallocarray(pc->ip_bin, pc->n_ip_bin + 1, sizeof(pc->ip_bin[0]));
        if (!p)
                return -ENOMEM;
        pc->ip_bin = p;
        memcpy(pc->ip_bin[pc->n_ip_bin++], ip, 16);

        format_ip(ip, text);
        r = strv_extend(&pc->ips, text);
        return r < 0 ? r : 0;
}

int peer_cert_extract_names(PeerCert *pc, X509 *leaf) {
        X509_NAME *subject = X509_get_subject_name(leaf);
        GENERAL_NAMES *gens;
        int crit = -1, r = 0;

        pc->has_san_ext = X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1) >= 0;

        gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
        for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && r >= 0; i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                char *s = NULL;

                switch (g->type) {
                case GEN_DNS:
                        r = asn1_to_cstring(g->d.dNSName, &s);
                        if (r > 0)
                                r = strv_push(&pc->dns, s);
                        break;
                case GEN_URI:
                        pc->n_uris++;
                        r = asn1_to_cstring(g->d.uniformResourceIdentifier, &s);
                        if (r > 0)
                                r = strv_push(&pc->uris, s);
                        break;
                case GEN_IPADD:
                        r = push_ip(pc, g->d.iPAddress);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        free(s);
        }
        GENERAL_NAMES_free(gens);
        if (r < 0)
                return r;

        if (subject) {
                int idx = -1, last = -1;

                while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0)
                        last = idx;
                if (last >= 0) {
                        X509_NAME_ENTRY *e = X509_NAME_get_entry(subject, last);
                        unsigned char *utf8 = NULL;
                        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));

                        if (len >= 0 && !memchr(utf8, 0, (size_t) len)) {
                                pc->common_name = strndup((const char *) utf8, (size_t) len);
                                if (!pc->common_name)
                                        r = -ENOMEM;
                        }
                        OPENSSL_free(utf8);
                }
        }
        return r;
}
