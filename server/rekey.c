/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "rekey.h"

#include <inttypes.h>
#include <stdlib.h>

#include "log.h"
#include "strv.h"

/* A key written by a server between rekey's read and its write is looked at again in the
 * next pass, and passes go on until one finds nothing to do; a store under a constant
 * stream of writes to the same keys gives up after this many and reports what remains. */
#define REKEY_PASSES_MAX 8

static int collect_id(const char *id, _unused_ const char *hash, void *userdata) {
        return strv_extend(userdata, id);
}

typedef struct Batch {
        Key *keys[STORE_RESEAL_BATCH];
        int64_t versions[STORE_RESEAL_BATCH];
        uint64_t n_resealed[STORE_RESEAL_BATCH]; /* versions re-sealed in each key */
        size_t n;
} Batch;

static void batch_clear(Batch *b) {
        for (size_t i = 0; i < b->n; i++)
                b->keys[i] = key_free(b->keys[i]);
        b->n = 0;
}

/* Write the batch in one transaction; a key whose record moved on meanwhile is a conflict,
 * left for the next pass. */
static int batch_flush(Store *store, Batch *b, RekeyStats *stats, uint64_t *conflicts) {
        bool applied[STORE_RESEAL_BATCH] = {};
        int r;

        if (b->n == 0)
                return 0;
        r = store_reseal(store, b->keys, b->versions, b->n, applied);
        if (r < 0) {
                batch_clear(b);
                return log_error_errno(r, "Failed to write re-sealed keys: %m");
        }
        for (size_t i = 0; i < b->n; i++) {
                if (applied[i])
                        stats->resealed += b->n_resealed[i];
                else
                        (*conflicts)++;
        }
        log_info(
                "Re-sealed %d keys (%zu in this batch; %" PRIu64 " versions so far).", r, b->n,
                stats->resealed);
        batch_clear(b);
        return 0;
}

/* Seal again, under the current key, every version of k that is not under it. Returns how
 * many were re-sealed; versions no key opens are logged and counted in *unopenable. */
static int reseal_key(const Cryptor *c, Key *k, uint64_t *unopenable) {
        size_t failed = 0;
        int n;

        n = cryptor_reseal_key(c, k, &failed);
        if (n < 0)
                return log_error_errno(n, "Failed to re-seal key '%s': %m", LOG_NAME(k->id));
        for (size_t i = 0; failed > 0 && i < k->n_versions; i++)
                if (!cryptor_sealed_by_current(c, k->versions + i))
                        log_warning(
                                "Cannot re-seal version %" PRIu64
                                " of key '%s': it is sealed under a master key not given.",
                                k->versions[i].id, LOG_NAME(k->id));
        *unopenable += failed;
        return n;
}

static int rekey_pass(Store *store, const Cryptor *c, char **ids, RekeyStats *stats, uint64_t *conflicts) {
        Batch b = {};
        uint64_t unopenable = 0;
        int r = 0;

        STRV_FOREACH(id, ids) {
                _cleanup_(key_freep) Key *k = NULL;
                int64_t version;
                int n;

                r = store_get(store, *id, &k, &version);
                if (r == -ENOKEY)
                        continue; /* removed meanwhile */
                if (r < 0) {
                        log_error_errno(r, "Failed to read key '%s': %m", LOG_NAME(*id));
                        goto finish;
                }
                n = reseal_key(c, k, &unopenable);
                if (n < 0) {
                        r = n;
                        goto finish;
                }
                if (n == 0)
                        continue;
                b.keys[b.n] = TAKE_PTR(k);
                b.versions[b.n] = version;
                b.n_resealed[b.n] = (uint64_t) n;
                if (++b.n == STORE_RESEAL_BATCH) {
                        r = batch_flush(store, &b, stats, conflicts);
                        if (r < 0)
                                goto finish;
                }
        }
        r = batch_flush(store, &b, stats, conflicts);

finish:
        batch_clear(&b);
        return r;
}

/* What is left: every key read once more, nothing opened. */
static int rekey_count(Store *store, const Cryptor *c, char **ids, RekeyStats *stats) {
        STRV_FOREACH(id, ids) {
                _cleanup_(key_freep) Key *k = NULL;
                int r;

                r = store_get(store, *id, &k, NULL);
                if (r == -ENOKEY)
                        continue;
                if (r < 0)
                        return log_error_errno(r, "Failed to read key '%s': %m", LOG_NAME(*id));
                stats->keys++;
                for (size_t i = 0; i < k->n_versions; i++) {
                        stats->versions++;
                        if (!cryptor_sealed_by_current(c, k->versions + i)) {
                                stats->remaining++;
                                if (cryptor_open_version(c, k->id, k->versions + i) < 0)
                                        stats->unopenable++;
                                k->versions[i].data = secret_free(k->versions[i].data);
                        }
                }
        }
        return 0;
}

int rekey_store(Store *store, const Cryptor *c, RekeyStats *ret) {
        RekeyStats stats = {};
        int r;

        assert_return(store, -EINVAL);
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);

        for (unsigned pass = 0; pass < REKEY_PASSES_MAX; pass++) {
                _cleanup_strv_free_ char **ids = NULL;
                uint64_t conflicts = 0, before = stats.resealed;

                /* The ids again each pass: keys added meanwhile are looked at too (servers
                 * seal them under the new key already, unless one still runs with the old). */
                r = store_list(store, collect_id, &ids);
                if (r < 0)
                        return log_error_errno(r, "Failed to list the keys: %m");
                r = rekey_pass(store, c, ids, &stats, &conflicts);
                if (r < 0)
                        return r;
                if (conflicts == 0 && stats.resealed == before)
                        break;
                if (conflicts > 0)
                        log_info(
                                "%" PRIu64 " keys changed while they were re-sealed; looking at them again.",
                                conflicts);
        }

        {
                _cleanup_strv_free_ char **ids = NULL;

                r = store_list(store, collect_id, &ids);
                if (r < 0)
                        return log_error_errno(r, "Failed to list the keys: %m");
                r = rekey_count(store, c, ids, &stats);
                if (r < 0)
                        return r;
        }
        *ret = stats;
        return 0;
}
