/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/populate-store: fill a keywardd SQLite store with keys for bench/server, fast.
 *
 * It links keywardd's own store and cryptor, so every key is what POST /v0/keys/ would have
 * stored: an ACL, one Primary version of random bytes sealed with the master key, the
 * version hash. Only durability is given up: the store runs with synchronous=OFF while this
 * program writes (a bench store; keywardd sets FULL again when it opens it).
 *
 * Every key gets the ACL [{User bench Admin}, {Machine HOST ACCESS}].
 *
 * Usage: populate-store --db DB --master-key MK --machine HOST [--key ID:ACCESS]...
 *                       [--fill N] [--fill-prefix PREFIX] [--data-size BYTES] */

#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench-util.h"
#include "cryptor.h"
#include "key.h"
#include "master-key.h"
#include "random-util.h"
#include "store-internal.h"
#include "store.h"

static int make_key(
        Store *store,
        const Cryptor *cryptor,
        const char *id,
        const char *machine,
        AccessType access,
        size_t data_size,
        int64_t ts) {

        _cleanup_(key_freep) Key *k = NULL;
        KeyVersion v = {.status = VERSION_STATUS_PRIMARY, .ts = ts};
        int r;

        k = key_new();
        if (!k)
                return -ENOMEM;
        k->id = strdup(id);
        k->acl.entries = calloc(2, sizeof(Access));
        if (!k->id || !k->acl.entries)
                return -ENOMEM;
        k->acl.entries[0] =
                (Access){.type = PRINCIPAL_TYPE_USER, .access = ACCESS_ADMIN, .id = strdup("bench")};
        k->acl.entries[1] =
                (Access){.type = PRINCIPAL_TYPE_MACHINE, .access = access, .id = strdup(machine)};
        k->acl.n = 2;
        if (!k->acl.entries[0].id || !k->acl.entries[1].id)
                return -ENOMEM;

        v.data = secret_new(data_size);
        if (!v.data)
                return -ENOMEM;
        r = random_bytes(v.data->data, data_size);
        if (r >= 0)
                r = key_new_version_id(k, &v.id);
        if (r >= 0)
                r = key_append_version(k, &v);
        if (r < 0) {
                key_version_done(&v);
                return r;
        }
        r = cryptor_seal_key(cryptor, k);
        if (r < 0)
                return r;
        return store_add(store, k);
}

static int parse_key_spec(const char *spec, char **ret_id, AccessType *ret_access) {
        const char *colon = strrchr(spec, ':');
        AccessType a;

        if (!colon || colon == spec)
                return -EINVAL;
        a = access_type_from_string(colon + 1);
        if (a < 0 || a == ACCESS_NONE)
                return -EINVAL;
        *ret_id = strndup(spec, (size_t) (colon - spec));
        if (!*ret_id)
                return -ENOMEM;
        *ret_access = a;
        return 0;
}

static double now_sec(void) {
        return (double) bench_now_ns() / 1e9;
}

static void usage(FILE *f) {
        fputs("Usage: populate-store --db DB --master-key MK --machine HOST [--key ID:ACCESS]...\n"
              "                      [--fill N] [--fill-prefix PREFIX] [--data-size BYTES]\n",
              f);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"db", required_argument, NULL, 'd'},
                {"master-key", required_argument, NULL, 'm'},
                {"machine", required_argument, NULL, 'M'},
                {"key", required_argument, NULL, 'k'},
                {"fill", required_argument, NULL, 'f'},
                {"fill-prefix", required_argument, NULL, 'p'},
                {"data-size", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {}};
        const char *db = NULL, *mk = NULL, *machine = NULL, *fill_prefix = "bench:fill:";
        const char *keys[64];
        size_t n_keys = 0, data_size = 32;
        uint64_t fill = 0, v;
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        struct timespec ts;
        int64_t ts_ns;
        double t0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        db = optarg;
                        break;
                case 'm':
                        mk = optarg;
                        break;
                case 'M':
                        machine = optarg;
                        break;
                case 'k':
                        if (n_keys >= ELEMENTSOF(keys)) {
                                fputs("populate-store: too many --key\n", stderr);
                                return 2;
                        }
                        keys[n_keys++] = optarg;
                        break;
                case 'f':
                        if (bench_parse_u64(optarg, 10000000, &fill) < 0) {
                                fputs("populate-store: bad --fill\n", stderr);
                                return 2;
                        }
                        break;
                case 'p':
                        fill_prefix = optarg;
                        break;
                case 's':
                        if (bench_parse_u64(optarg, 65536, &v) < 0 || v == 0) {
                                fputs("populate-store: bad --data-size\n", stderr);
                                return 2;
                        }
                        data_size = (size_t) v;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (!db || !mk || !machine || optind != argc) {
                usage(stderr);
                return 2;
        }

        r = master_key_load(mk, &cryptor);
        if (r < 0) {
                fprintf(stderr, "populate-store: cannot load the master key '%s': %s\n", mk, strerror(-r));
                return 1;
        }
        r = store_open(db, &store);
        if (r >= 0)
                r = store_init(store);
        if (r < 0) {
                fprintf(stderr, "populate-store: cannot open the store '%s': %s\n", db, strerror(-r));
                return 1;
        }
        if (!store_sqlite_handle(store) ||
            sqlite3_exec(store_sqlite_handle(store), "PRAGMA synchronous = OFF", NULL, NULL, NULL) !=
                    SQLITE_OK) {
                fputs("populate-store: not a SQLite store\n", stderr);
                return 1;
        }

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        ts_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
        t0 = now_sec();

        for (size_t i = 0; i < n_keys; i++) {
                _cleanup_free_ char *id = NULL;
                AccessType a;

                r = parse_key_spec(keys[i], &id, &a);
                if (r < 0) {
                        fprintf(stderr, "populate-store: bad --key '%s' (want ID:Read|Write|Admin)\n",
                                keys[i]);
                        return 2;
                }
                r = make_key(store, cryptor, id, machine, a, data_size, ts_ns);
                if (r < 0) {
                        fprintf(stderr, "populate-store: cannot add '%s': %s\n", id, strerror(-r));
                        return 1;
                }
        }

        for (unsigned long long i = 0; i < fill; i++) {
                char id[256];

                if ((size_t) snprintf(id, sizeof(id), "%s%llu", fill_prefix, i) >= sizeof(id))
                        return 2;
                r = make_key(store, cryptor, id, machine, ACCESS_READ, data_size, ts_ns);
                if (r < 0) {
                        fprintf(stderr, "populate-store: cannot add '%s': %s\n", id, strerror(-r));
                        return 1;
                }
        }

        /* Leave no big WAL behind for keywardd's readers to wade through, and make it durable
         * now rather than while keywardd is being measured. */
        if (sqlite3_exec(store_sqlite_handle(store), "PRAGMA synchronous = FULL", NULL, NULL, NULL) !=
                    SQLITE_OK ||
            sqlite3_exec(store_sqlite_handle(store), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) !=
                    SQLITE_OK) {
                fprintf(stderr, "populate-store: checkpoint failed: %s\n",
                        sqlite3_errmsg(store_sqlite_handle(store)));
                return 1;
        }

        printf("keys=%llu seconds=%.2f\n", (unsigned long long) n_keys + fill, now_sec() - t0);
        return 0;
}
