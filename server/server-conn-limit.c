/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-conn-limit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define CONN_LIMIT_BUCKETS 1024

typedef struct ConnEntry ConnEntry;
struct ConnEntry {
        ConnKey key;
        unsigned count;
        ConnEntry *next;
};

/* A chained hash table of the addresses with open connections: an entry lives while its
 * count is above zero, so the table never holds more entries than there are connections. */
struct ConnLimit {
        unsigned per_address;
        AddressPrefix *exempt;
        size_t n_exempt;
        pthread_mutex_t lock;
        ConnEntry *buckets[CONN_LIMIT_BUCKETS];
};

int address_prefix_parse(const char *s, AddressPrefix *ret) {
        _cleanup_free_ char *host = NULL;
        const char *slash;
        AddressPrefix p = {};
        unsigned bits, len;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        host = slash ? strndup(s, (size_t) (slash - s)) : strdup(s);
        if (!host)
                return -ENOMEM;
        if (inet_pton(AF_INET, host, p.addr) == 1) {
                p.family = AF_INET;
                bits = 32;
        } else if (inet_pton(AF_INET6, host, p.addr) == 1) {
                p.family = AF_INET6;
                bits = 128;
        } else
                return -EINVAL;
        len = bits;
        if (slash && (safe_atou(slash + 1, &len) < 0 || len > bits))
                return -EINVAL;
        for (unsigned i = len; i < bits; i++)
                if (p.addr[i / 8] & (0x80 >> (i % 8)))
                        return -EINVAL;
        p.prefixlen = len;
        *ret = p;
        return 0;
}

/* The key of a socket address; IPv4-mapped IPv6 becomes IPv4. -EAFNOSUPPORT otherwise. */
static int conn_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, ConnKey *ret) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        ConnKey k = {};

        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                k.family = AF_INET;
                memcpy(k.addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const uint8_t *a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;

                if (memcmp(a, mapped, sizeof(mapped)) == 0) {
                        k.family = AF_INET;
                        memcpy(k.addr, a + 12, 4);
                } else {
                        k.family = AF_INET6;
                        memcpy(k.addr, a, 16);
                }
        } else
                return -EAFNOSUPPORT;
        *ret = k;
        return 0;
}

static bool prefix_contains(const AddressPrefix *p, const ConnKey *k) {
        unsigned full = p->prefixlen / 8, rest = p->prefixlen % 8;

        if (p->family != k->family)
                return false;
        if (memcmp(p->addr, k->addr, full) != 0)
                return false;
        return rest == 0 || ((p->addr[full] ^ k->addr[full]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

/* The group an address is counted in: an IPv4 address alone, an IPv6 address with its /64,
 * which one host or one customer commonly has whole (one address per connection would
 * otherwise go around the limit). */
static void conn_key_group(ConnKey *k) {
        if (k->family == AF_INET6)
                memset(k->addr + 8, 0, 8);
}

static size_t conn_key_hash(const ConnKey *k) {
        uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */

        for (size_t i = 0; i < sizeof(k->addr); i++)
                h = (h ^ k->addr[i]) * UINT64_C(1099511628211);
        return (size_t) (h ^ (uint64_t) k->family) % CONN_LIMIT_BUCKETS;
}

static ConnEntry **conn_entry_find(ConnLimit *l, const ConnKey *k) {
        ConnEntry **e = &l->buckets[conn_key_hash(k)];

        while (*e &&
               !((*e)->key.family == k->family && memcmp((*e)->key.addr, k->addr, sizeof(k->addr)) == 0))
                e = &(*e)->next;
        return e;
}

int conn_limit_new(unsigned per_address, char *const *exempt, ConnLimit **ret) {
        _cleanup_(conn_limit_freep) ConnLimit *l = NULL;
        size_t n = 0;
        int r;

        while (exempt && exempt[n])
                n++;
        l = calloc(1, sizeof(ConnLimit));
        if (!l)
                return -ENOMEM;
        (void) pthread_mutex_init(&l->lock, NULL);
        l->per_address = per_address;
        if (n > 0) {
                l->exempt = calloc(n, sizeof(AddressPrefix));
                if (!l->exempt)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = address_prefix_parse(exempt[i], &l->exempt[i]);
                if (r < 0)
                        return r;
                l->n_exempt++;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

ConnLimit *conn_limit_free(ConnLimit *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < CONN_LIMIT_BUCKETS; i++)
                while (l->buckets[i]) {
                        ConnEntry *e = l->buckets[i];

                        l->buckets[i] = e->next;
                        free(e);
                }
        (void) pthread_mutex_destroy(&l->lock);
        free(l->exempt);
        free(l);
        return NULL;
}

int conn_limit_acquire(ConnLimit *l, const struct sockaddr *sa, socklen_t len, ConnKey *ret_key) {
        ConnEntry **e;
        ConnKey k;

        *ret_key = (ConnKey){.family = AF_UNSPEC};
        if (l->per_address == 0 || conn_key_from_sockaddr(sa, len, &k) < 0)
                return 1;
        for (size_t i = 0; i < l->n_exempt; i++)
                if (prefix_contains(&l->exempt[i], &k))
                        return 1;
        conn_key_group(&k);

        pthread_mutex_lock(&l->lock);
        e = conn_entry_find(l, &k);
        if (*e && (*e)->count >= l->per_address) {
                pthread_mutex_unlock(&l->lock);
                return 0;
        }
        if (!*e) {
                *e = calloc(1, sizeof(ConnEntry));
                if (!*e) {
                        pthread_mutex_unlock(&l->lock);
                        return -ENOMEM;
                }
                (*e)->key = k;
        }
        (*e)->count++;
        pthread_mutex_unlock(&l->lock);
        *ret_key = k;
        return 1;
}

void conn_limit_release(ConnLimit *l, const ConnKey *key) {
        ConnEntry **e, *gone;

        if (!l || !key || key->family == AF_UNSPEC)
                return;
        pthread_mutex_lock(&l->lock);
        e = conn_entry_find(l, key);
        if (*e && --(*e)->count == 0) {
                gone = *e;
                *e = gone->next;
                free(gone);
        }
        pthread_mutex_unlock(&l->lock);
}

unsigned conn_limit_count(ConnLimit *l, const struct sockaddr *sa, socklen_t len) {
        ConnEntry **e;
        unsigned n;
        ConnKey k;

        if (conn_key_from_sockaddr(sa, len, &k) < 0)
                return 0;
        conn_key_group(&k);
        pthread_mutex_lock(&l->lock);
        e = conn_entry_find(l, &k);
        n = *e ? (*e)->count : 0;
        pthread_mutex_unlock(&l->lock);
        return n;
}
