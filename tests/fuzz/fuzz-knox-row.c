/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/* What import-knox takes from outside: a row of Knox's secrets table (id, acl, version_hash,
 * then the versions column, one a line) and the --knox-db URL (the first line again). A row
 * that decodes must be one keyward would store, and opening its versions under a key they
 * were not sealed with fails cleanly. */

#include "fuzz.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "key.h"
#include "knox-cryptor.h"
#include "knox-db.h"
#include "knox-row.h"

static void fuzz_url(const char *s) {
        KnoxMysqlUrl u = {};
        const char *m = NULL;
        int r;

        r = knox_mysql_url_parse(s, &u, &m);
        if (r < 0) {
                assert(r == -EINVAL || r == -EPERM || r == -ENOMEM);
                assert(r == -ENOMEM || m);
                return;
        }
        assert(u.user && u.database);
        assert(!!u.host != !!u.socket);
        assert(!u.socket || u.port == 0);
        knox_mysql_url_done(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t zero_key[16] = {};
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_free_ char *text = NULL;
        const char *id, *acl, *hash, *versions, *m = NULL;
        char *p, computed[KEY_HASH_HEX_SIZE];
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        text = strndup((const char *) data, size);
        assert(text);
        p = text;
        id = fuzz_next_line(&p);
        acl = fuzz_next_line(&p);
        hash = fuzz_next_line(&p);
        versions = p;
        if (!id)
                return 0;
        fuzz_url(id);
        if (!acl || !hash || !versions)
                return 0;

        r = knox_row_decode(id, acl, strlen(acl), hash, versions, strlen(versions), &k, &m);
        if (r < 0) {
                assert(r == -EBADMSG || r == -ENOMEM);
                assert(r == -ENOMEM || m);
                return 0;
        }
        assert(key_validate(k, NULL) == 0);
        assert(key_version_hash(k->versions, k->n_versions, computed) == 0);
        assert(streq(computed, k->hash));

        assert(cryptor_new(zero_key, sizeof(zero_key), &c) == 0);
        for (size_t i = 0; i < k->n_versions; i++) {
                r = knox_open_version(c, k->id, &k->versions[i]);
                assert(r == 0 || r == -EBADMSG || r == -EINVAL || r == -EPROTONOSUPPORT || r == -ENOMEM);
                assert(r < 0 || k->versions[i].data);
        }
        return 0;
}
