/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "knox-import.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "knox-cryptor.h"
#include "knox-row.h"
#include "log.h"

typedef struct ImportContext {
        const Cryptor *knox_key;
        Store *store;
        const Cryptor *master_key;
        const KnoxImportOptions *o;
        FILE *out;
        KnoxImportStats stats;
} ImportContext;

/* Decode a row and open its versions. On failure the row is reported and counted. */
static int row_load(
        ImportContext *c,
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        Key **ret) {

        _cleanup_(key_freep) Key *k = NULL;
        const char *m = NULL;
        int r;

        r = knox_row_decode(id, acl, acl_size, hash, versions, versions_size, &k, &m);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                c->stats.bad++;
                log_error("Knox row '%s' is malformed: %s.", id ?: "(NULL id)", m ?: "cannot decode");
                return -EBADMSG;
        }

        for (size_t i = 0; i < k->n_versions; i++) {
                r = knox_open_version(c->knox_key, k->id, &k->versions[i]);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        if (c->stats.sealed++ == 0)
                                log_error(
                                        "Knox key '%s' version %" PRIu64
                                        " does not open with the Knox master key (%s).",
                                        k->id, k->versions[i].id,
                                        r == -EBADMSG ? "wrong --knox-master-key, or the row was changed" :
                                                        "malformed crypt metadata");
                        return -EBADMSG;
                }
        }
        *ret = TAKE_PTR(k);
        return 0;
}

static int check_row(
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        void *userdata) {

        ImportContext *c = userdata;
        _cleanup_(key_freep) Key *k = NULL;
        int r;

        c->stats.read++;
        r = row_load(c, id, acl, acl_size, hash, versions, versions_size, &k);
        return r == -EBADMSG ? 0 : r; /* go on, to report every bad row */
}

static bool acl_equal(const Acl *a, const Acl *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (a->entries[i].type != b->entries[i].type ||
                    a->entries[i].access != b->entries[i].access ||
                    !streq(a->entries[i].id, b->entries[i].id))
                        return false;
        return true;
}

/* Both opened. Order counts: it is what GET returns. */
static bool key_equal(const Key *a, const Key *b) {
        if (!streq(a->hash, b->hash) || !acl_equal(&a->acl, &b->acl) || a->n_versions != b->n_versions)
                return false;
        for (size_t i = 0; i < a->n_versions; i++) {
                const KeyVersion *x = &a->versions[i], *y = &b->versions[i];

                if (x->id != y->id || x->status != y->status || x->ts != y->ts ||
                    x->data->size != y->data->size ||
                    !memeq_secure(x->data->data, y->data->data, x->data->size))
                        return false;
        }
        return true;
}

static int seal_all(ImportContext *c, Key *k) {
        int r;

        for (size_t i = 0; i < k->n_versions; i++) {
                r = cryptor_seal_version(c->master_key, k->id, &k->versions[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to seal key '%s' under the master key: %m", k->id);
        }
        return 0;
}

static int apply_row(
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        void *userdata) {

        ImportContext *c = userdata;
        _cleanup_(key_freep) Key *k = NULL, *old = NULL;
        const char *would = c->o->dry_run ? "would " : "";
        int64_t version;
        int r;

        r = row_load(c, id, acl, acl_size, hash, versions, versions_size, &k);
        if (r == -EBADMSG)
                return log_error_errno(
                        r, "The Knox database changed during the import; nothing more written.");
        if (r < 0)
                return r;

        r = store_get(c->store, k->id, &old, &version);
        if (r == -ENOKEY) {
                if (!c->o->dry_run) {
                        r = seal_all(c, k);
                        if (r < 0)
                                return r;
                        r = store_add(c->store, k);
                        if (r < 0)
                                return log_error_errno(r, "Failed to add key '%s': %m", k->id);
                }
                c->stats.added++;
                fprintf(c->out, "%sadd %s (%zu versions)\n", would, k->id, k->n_versions);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read key '%s' from the store: %m", k->id);

        r = cryptor_open_key(c->master_key, old);
        if (r < 0)
                return log_error_errno(
                        r, "Key '%s' is in the store already but does not open with --master-key: %m",
                        k->id);
        if (key_equal(k, old)) {
                c->stats.unchanged++;
                return 0;
        }
        if (!c->o->update) {
                c->stats.differ++;
                fprintf(c->out, "differs %s (kept; --update takes Knox's)\n", k->id);
                return 0;
        }
        if (!c->o->dry_run) {
                r = seal_all(c, k);
                if (r < 0)
                        return r;
                r = store_update(c->store, k, version);
                if (r < 0)
                        return log_error_errno(r, "Failed to update key '%s': %m", k->id);
        }
        c->stats.updated++;
        fprintf(c->out, "%supdate %s (%zu versions)\n", would, k->id, k->n_versions);
        return 0;
}

int knox_import(
        KnoxDb *db,
        const Cryptor *knox_key,
        Store *store,
        const Cryptor *master_key,
        const KnoxImportOptions *o,
        FILE *out,
        KnoxImportStats *ret) {

        ImportContext c = {
                .knox_key = knox_key,
                .store = store,
                .master_key = master_key,
                .o = o,
                .out = out,
        };
        unsigned n;
        int r;

        if (!db || !knox_key || !store || !master_key || !o || !out)
                return -EINVAL;

        r = knox_db_foreach(db, check_row, &c);
        if (r < 0)
                return r;
        if (c.stats.bad > 0 || c.stats.sealed > 0) {
                if (c.stats.sealed > 1)
                        log_error("%u more Knox keys do not open either.", c.stats.sealed - 1);
                log_error(
                        "%u of %u Knox rows are malformed, %u do not open; nothing was written.",
                        c.stats.bad, c.stats.read, c.stats.sealed);
                if (ret)
                        *ret = c.stats;
                return -EBADMSG;
        }

        n = c.stats.read;
        c.stats = (KnoxImportStats){};
        r = knox_db_foreach(db, apply_row, &c);
        c.stats.read = n;
        if (ret)
                *ret = c.stats;
        if (r < 0)
                return r;

        fprintf(out, "%s%u Knox keys: %u %s, %u %s, %u unchanged, %u differ\n",
                o->dry_run ? "dry run, nothing written: " : "", c.stats.read, c.stats.added,
                o->dry_run ? "to add" : "added", c.stats.updated, o->dry_run ? "to update" : "updated",
                c.stats.unchanged, c.stats.differ);
        return fflush(out) == 0 ? 0 : -EIO;
}
