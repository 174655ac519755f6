/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a key version's data is an X.509 certificate, and when it expires. Used by keywardd
 * at write time (the notAfter it records, for /metrics and `keyward expiring`) and by the
 * agent (its warning for cached primaries close to expiry). Nothing else is read from the
 * data, and nothing of it is logged. */

#include <stddef.h>
#include <stdint.h>

/* The largest data looked at: bigger data is no certificate for us (a chain of ten
 * certificates is some 20 KiB). */
#define CERT_DATA_MAX (256 * 1024)

/* data is a certificate when it is
 *  - PEM: after leading white space it starts with "-----BEGIN ", and holds a block
 *    "-----BEGIN CERTIFICATE-----" (or X509 CERTIFICATE, TRUSTED CERTIFICATE) that decodes;
 *    the first such block is the leaf (a chain lists the leaf first; a bundle with the
 *    private key before the certificate counts too), or
 *  - DER: one certificate (a DER SEQUENCE that decodes as one), or several in a row, the
 *    first being the leaf.
 * Returns 1 with the leaf's notAfter in Unix seconds in *ret_not_after, 0 when data is no
 * certificate (including PEM that merely starts like one, and broken certificates), or
 * -ENOMEM. */
int cert_not_after(const uint8_t *data, size_t size, int64_t *ret_not_after);
