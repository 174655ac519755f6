/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Open connections counted per client address, across every worker, so that one address
 * cannot hold every connection slot. Addresses in the exempt list (trusted load balancers,
 * behind which a whole fleet shares one address) are never counted. IPv4-mapped IPv6
 * addresses count as their IPv4 address. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "macro.h"

/* An address, or a network: "192.0.2.7", "10.0.0.0/8", "2001:db8::/32". */
typedef struct AddressPrefix {
        int family; /* AF_INET or AF_INET6 */
        uint8_t addr[16];
        unsigned prefixlen;
} AddressPrefix;

/* -EINVAL for anything but an address with an optional /PREFIX within its family's bits
 * (bits past the prefix must be zero, so that a typo does not widen a network). */
int address_prefix_parse(const char *s, AddressPrefix *ret);

/* The counted form of a client address. */
typedef struct ConnKey {
        int family; /* AF_UNSPEC: not counted */
        uint8_t addr[16];
} ConnKey;

typedef struct ConnLimit ConnLimit;

/* per_address 0: no limit. exempt: NULL or a strv of address_prefix_parse() strings. */
int conn_limit_new(unsigned per_address, char *const *exempt, ConnLimit **ret);
ConnLimit *conn_limit_free(ConnLimit *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(ConnLimit *, conn_limit_free);

/* Count a new connection from sa. 1: admitted (ret_key says what to release; its family is
 * AF_UNSPEC for an exempt or uncounted address), 0: the address is at its limit, nothing
 * counted. Safe from several threads. */
int conn_limit_acquire(ConnLimit *l, const struct sockaddr *sa, socklen_t len, ConnKey *ret_key);
/* Give back what conn_limit_acquire() counted (a key of AF_UNSPEC: nothing). */
void conn_limit_release(ConnLimit *l, const ConnKey *key);
/* The connections counted for sa now (for tests). */
unsigned conn_limit_count(ConnLimit *l, const struct sockaddr *sa, socklen_t len);
