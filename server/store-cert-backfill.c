/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "store-cert-backfill.h"

#include <errno.h>

#include "cert-expiry.h"
#include "key.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

static int collect_id(const char *id, const char *hash, void *userdata) {
        return strv_extend(userdata, id);
}

/* 1 when k got a notAfter for at least one version, 0 when none is a certificate. */
static int key_sniff_certificates(const Cryptor *c, Key *k) {
        bool found = false;
        int r;

        for (size_t i = 0; i < k->n_versions; i++) {
                KeyVersion *v = k->versions + i;
                int64_t t;

                r = cryptor_open_version(c, k->id, v);
                if (r < 0)
                        return r;
                if (v->data && cert_not_after(v->data->data, v->data->size, &t) > 0) {
                        v->not_after = t;
                        found = true;
                }
        }
        return found;
}

static bool key_has_not_after(const Key *k) {
        for (size_t i = 0; i < k->n_versions; i++)
                if (k->versions[i].not_after != 0)
                        return true;
        return false;
}

int store_backfill_not_after(Store *s, const Cryptor *c, size_t *ret_n) {
        _cleanup_strv_free_ char **ids = NULL;
        size_t n = 0;
        int r;

        assert_return(s, -EINVAL);
        assert_return(c, -EINVAL);

        /* The ids first: no write while a list is being read. */
        r = store_list(s, collect_id, &ids);
        if (r < 0)
                return r;

        STRV_FOREACH(id, ids) {
                _cleanup_(key_freep) Key *k = NULL;
                int64_t version;

                r = store_get(s, *id, &k, &version);
                if (r == -ENOKEY)
                        continue; /* removed since */
                if (r < 0)
                        return r;
                if (key_has_not_after(k))
                        continue; /* recorded when it was written */
                r = key_sniff_certificates(c, k);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        /* One key that does not open must not stop the rest (nor init). */
                        log_warning_errno(
                                r, "Cannot open the versions of key '%s', not looking at it: %m",
                                LOG_NAME(*id));
                        continue;
                }
                if (r == 0)
                        continue;
                r = store_update(s, k, version);
                if (r == -ESTALE || r == -ENOKEY)
                        continue; /* written or removed meanwhile, by a keywardd that records it */
                if (r < 0)
                        return log_error_errno(
                                r, "Failed to record the certificates of key '%s': %m", LOG_NAME(*id));
                n++;
        }
        if (ret_n)
                *ret_n = n;
        return 0;
}
