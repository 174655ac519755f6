/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cert-expiry.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <time.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(X509 *, X509_free, NULL);
static void bio_freep(BIO **b) {
        if (*b)
                (void) BIO_free(*b);
}

static const char *const pem_cert_labels[] = {
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN X509 CERTIFICATE-----",
        "-----BEGIN TRUSTED CERTIFICATE-----",
};

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (m 1..12), so that no
 * time_t or time zone is involved. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned) (y - era * 400);
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

static int not_after_of(const X509 *x, int64_t *ret) {
        const ASN1_TIME *t = X509_get0_notAfter(x);
        struct tm tm = {};

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return 0;
        *ret = days_from_civil(
                       (int64_t) tm.tm_year + 1900, (unsigned) tm.tm_mon + 1, (unsigned) tm.tm_mday) *
                        86400 +
                tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
        return 1;
}

static const uint8_t *find_pem_leaf(const uint8_t *data, size_t size, size_t *ret_size) {
        const uint8_t *p = data, *best = NULL;

        while (p < data + size && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                p++;
        if ((size_t) (data + size - p) < STRLEN("-----BEGIN ") ||
            memcmp(p, "-----BEGIN ", STRLEN("-----BEGIN ")) != 0)
                return NULL;
        FOREACH_ARRAY(label, pem_cert_labels, ELEMENTSOF(pem_cert_labels)) {
                const uint8_t *f = memmem(p, (size_t) (data + size - p), *label, strlen(*label));

                if (f && (!best || f < best))
                        best = f;
        }
        if (best)
                *ret_size = (size_t) (data + size - best);
        return best;
}

static int pem_not_after(const uint8_t *leaf, size_t size, int64_t *ret) {
        _cleanup_(bio_freep) BIO *bio = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;

        bio = BIO_new_mem_buf(leaf, (int) size);
        if (!bio)
                return -ENOMEM;
        /* PEM_read_bio_X509_AUX reads TRUSTED CERTIFICATE blocks as well as the plain ones. */
        x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
        if (!x)
                return 0;
        return not_after_of(x, ret);
}

static int der_not_after(const uint8_t *data, size_t size, int64_t *ret) {
        _cleanup_(X509_freep) X509 *x = NULL;
        const unsigned char *p = data;

        x = d2i_X509(NULL, &p, (long) size);
        if (!x)
                return 0;
        return not_after_of(x, ret);
}

int cert_not_after(const uint8_t *data, size_t size, int64_t *ret_not_after) {
        const uint8_t *leaf;
        size_t leaf_size = 0;
        int64_t t = 0;
        int r;

        if (!data || size == 0 || size > CERT_DATA_MAX)
                return 0;

        ERR_clear_error();
        leaf = find_pem_leaf(data, size, &leaf_size);
        if (leaf)
                r = pem_not_after(leaf, leaf_size, &t);
        else if (data[0] == 0x30)
                r = der_not_after(data, size, &t);
        else
                r = 0;
        ERR_clear_error();
        if (r > 0 && ret_not_after)
                *ret_not_after = t;
        return r;
}
