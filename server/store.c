/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "acl-json.h"
#include "buf.h"
#include "json-util.h"
#include "knox-json.h"
#include "log.h"
#include "store-internal.h"
#include "strv.h"

void store_record_done(StoreRecord *r) {
        if (!r)
                return;
        free(r->acl);
        free(r->hash);
        free(r->versions);
        *r = (StoreRecord){};
}

void store_token_record_done(StoreTokenRecord *t) {
        if (!t)
                return;
        free(t->user);
        free(t->groups);
        *t = (StoreTokenRecord){};
}

void token_info_done(TokenInfo *t) {
        if (!t)
                return;
        free(t->user);
        strv_free(t->groups);
        *t = (TokenInfo){};
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int open_url(const char *url, bool create, Store **ret) {
        assert_return(url, -EINVAL);
        assert_return(ret, -EINVAL);

        if (isempty(url))
                return -EINVAL;
        /* libpq's two URI schemes. */
        if (startswith(url, "postgresql://") || startswith(url, "postgres://"))
                return store_postgres_open(url, create, ret);

        return store_sqlite_open(url, create, ret);
}

const char *store_url_display(const char *url, char **buf) {
        const char *rest, *at, *colon;

        *buf = NULL;
        if (!url || !(startswith(url, "postgresql://") || startswith(url, "postgres://")))
                return url;
        rest = strstr(url, "://") + 3;
        at = strchr(rest, '@');
        colon = at ? memchr(rest, ':', (size_t) (at - rest)) : NULL;
        if (!colon)
                return url;
        if (asprintf(buf, "%.*s:***%s", (int) (colon - url), url, at) < 0) {
                *buf = NULL;
                return "(a PostgreSQL URL)";
        }
        return *buf;
}

int store_open(const char *url, Store **ret) {
        return open_url(url, true, ret);
}

int store_open_existing(const char *url, Store **ret) {
        return open_url(url, false, ret);
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        s->vtable->free(s);
        return NULL;
}

int store_init(Store *s) {
        assert_return(s, -EINVAL);
        return s->vtable->init(s);
}

static int64_t now_ns(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool id_is_ok(const char *id) {
        return !isempty(id) && strlen(id) <= STORE_ID_MAX;
}

/* The stored row of a key. The strings belong to the Bufs. */
static int key_to_record(const Key *k, Buf *acl, Buf *versions, StoreRecord *ret) {
        int r;

        r = acl_json_append(acl, &k->acl);
        if (r < 0)
                return r;
        r = knox_sealed_versions_json_append(versions, k->versions, k->n_versions);
        if (r < 0)
                return r;

        *ret = (StoreRecord){
                .acl = acl->data,
                .hash = (char *) k->hash,
                .versions = versions->data,
        };
        return 0;
}

static int record_to_key(const char *id, const StoreRecord *rec, Key **ret) {
        _cleanup_(key_freep) Key *k = NULL;
        const char *m = NULL;
        const char *acl = rec->acl ?: "null", *versions = rec->versions ?: "null",
                   *hash = strempty(rec->hash);
        int r;

        if (strlen(hash) >= KEY_HASH_HEX_SIZE)
                return log_debug_errno(EBADMSG, "Stored hash of key '%s' is too long.", id);

        k = key_new();
        if (!k)
                return -ENOMEM;
        k->id = strdup(id);
        if (!k->id)
                return -ENOMEM;
        memcpy(k->hash, hash, strlen(hash) + 1);

        r = acl_parse(acl, strlen(acl), &k->acl, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return log_debug_errno(EBADMSG, "Stored ACL of key '%s' does not decode: %s", id, strna(m));

        r = knox_sealed_versions_parse(versions, strlen(versions), &k->versions, &k->n_versions, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return log_debug_errno(
                        EBADMSG, "Stored versions of key '%s' do not decode: %s", id, strna(m));

        *ret = TAKE_PTR(k);
        return 0;
}

int store_get(Store *s, const char *id, Key **ret_key, int64_t *ret_version) {
        _cleanup_(store_record_done) StoreRecord rec = {};
        Key *k = NULL;
        int r;

        assert_return(s, -EINVAL);
        assert_return(id, -EINVAL);

        r = s->vtable->get(s, id, &rec);
        if (r < 0)
                return r;

        if (ret_key) {
                r = record_to_key(id, &rec, &k);
                if (r < 0)
                        return r;
                *ret_key = k;
        }
        if (ret_version)
                *ret_version = rec.version;
        return 0;
}

int store_get_hash(Store *s, const char *id, char ret_hash[KEY_HASH_HEX_SIZE]) {
        assert_return(s, -EINVAL);
        assert_return(id, -EINVAL);
        assert_return(ret_hash, -EINVAL);

        /* No stored record has such an id; do not ask the database. */
        if (!id_is_ok(id))
                return -ENOKEY;

        return s->vtable->get_hash(s, id, ret_hash);
}

int store_add(Store *s, const Key *k) {
        _cleanup_buf_ Buf acl = BUF_INIT, versions = BUF_INIT;
        StoreRecord rec;
        int r;

        assert_return(s, -EINVAL);
        assert_return(k, -EINVAL);

        if (isempty(k->id))
                return -EINVAL;
        if (!id_is_ok(k->id))
                return -E2BIG;

        r = key_to_record(k, &acl, &versions, &rec);
        if (r < 0)
                return r;
        rec.version = now_ns();

        return s->vtable->add(s, k->id, &rec);
}

int store_update(Store *s, const Key *k, int64_t expected_version) {
        _cleanup_buf_ Buf acl = BUF_INIT, versions = BUF_INIT;
        StoreRecord rec;
        int r;

        assert_return(s, -EINVAL);
        assert_return(k, -EINVAL);

        if (!id_is_ok(k->id))
                return -ENOKEY;
        /* Nothing can follow it; no stored record gets there before the year 2262. */
        if (expected_version == INT64_MAX)
                return -EOVERFLOW;

        r = key_to_record(k, &acl, &versions, &rec);
        if (r < 0)
                return r;
        /* Always forward, even within one clock tick or after the clock stepped back. */
        rec.version = MAX(now_ns(), expected_version + 1);

        return s->vtable->update(s, k->id, &rec, expected_version);
}

int store_remove(Store *s, const char *id) {
        assert_return(s, -EINVAL);
        assert_return(id, -EINVAL);

        return s->vtable->remove(s, id);
}

int store_list(Store *s, StoreListFunc f, void *userdata) {
        assert_return(s, -EINVAL);
        assert_return(f, -EINVAL);

        return s->vtable->list(s, f, userdata);
}

int store_change_counter(Store *s, uint64_t *ret) {
        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        return s->vtable->change_counter(s, ret);
}

static int groups_to_json(char *const *groups, Buf *b) {
        bool first = true;

        (void) buf_putc(b, '[');
        STRV_FOREACH(g, groups) {
                if (!first)
                        (void) buf_putc(b, ',');
                first = false;
                (void) json_append_cstring(b, *g);
        }
        (void) buf_putc(b, ']');
        return b->error;
}

static int groups_from_json(const char *s, char ***ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_strv_free_ char **l = NULL;
        const char *m = NULL;
        size_t n;
        int r;

        r = json_parse(s, strlen(s), &o, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !json_object_is_type(o, json_type_array))
                return log_debug_errno(
                        EBADMSG, "Stored token groups do not decode: %s", m ?: "not an array");

        /* Always an array, empty or not. */
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;

        n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
                const char *g;
                size_t len;

                r = json_get_string(json_object_array_get_idx(o, i), &g, &len);
                if (r < 0 || strlen(g) != len)
                        return log_debug_errno(EBADMSG, "Stored token group is not a string.");
                r = strv_extend(&l, g);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

int store_token_add(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], const TokenInfo *t) {
        _cleanup_buf_ Buf groups = BUF_INIT;
        int r;

        assert_return(s, -EINVAL);
        assert_return(hash, -EINVAL);
        assert_return(t, -EINVAL);

        if (isempty(t->user))
                return -EINVAL;

        r = groups_to_json(t->groups, &groups);
        if (r < 0)
                return r;

        return s->vtable->token_add(
                s,
                hash,
                &(const StoreTokenRecord){
                        .user = t->user,
                        .groups = groups.data,
                        .created = t->created,
                        .expires = t->expires,
                        .revoked = t->revoked,
                });
}

int store_token_get(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], TokenInfo *ret) {
        _cleanup_(store_token_record_done) StoreTokenRecord rec = {};
        char **groups = NULL;
        int r;

        assert_return(s, -EINVAL);
        assert_return(hash, -EINVAL);
        assert_return(ret, -EINVAL);

        r = s->vtable->token_get(s, hash, &rec);
        if (r < 0)
                return r;
        if (isempty(rec.user))
                return log_debug_errno(EBADMSG, "Stored token has no user.");

        r = groups_from_json(strempty(rec.groups), &groups);
        if (r < 0)
                return r;

        *ret = (TokenInfo){
                .user = TAKE_PTR(rec.user),
                .groups = groups,
                .created = rec.created,
                .expires = rec.expires,
                .revoked = rec.revoked,
        };
        return 0;
}

int store_token_revoke(Store *s, const uint8_t hash[TOKEN_HASH_SIZE]) {
        assert_return(s, -EINVAL);
        assert_return(hash, -EINVAL);

        return s->vtable->token_revoke(s, hash);
}

int store_token_expire(Store *s, int64_t now) {
        assert_return(s, -EINVAL);

        return s->vtable->token_expire(s, now);
}

static bool audit_hash_valid(const char *h) {
        if (!h || strlen(h) != STORE_AUDIT_HASH_HEX)
                return false;
        for (const char *p = h; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

int store_audit_anchor_set(Store *s, const char *name, uint64_t seq, const char *hash) {
        assert_return(s, -EINVAL);
        assert_return(!isempty(name), -EINVAL);
        assert_return(seq > 0 && seq <= INT64_MAX, -EINVAL);
        assert_return(audit_hash_valid(hash), -EINVAL);

        return s->vtable->audit_anchor_set(s, name, seq, hash);
}

int store_audit_anchor_get(
        Store *s, const char *name, uint64_t *ret_seq, char ret_hash[STORE_AUDIT_HASH_HEX + 1]) {
        char hash[STORE_AUDIT_HASH_HEX + 1] = {};
        uint64_t seq = 0;
        int r;

        assert_return(s, -EINVAL);
        assert_return(!isempty(name), -EINVAL);
        assert_return(ret_seq, -EINVAL);
        assert_return(ret_hash, -EINVAL);

        r = s->vtable->audit_anchor_get(s, name, &seq, hash);
        if (r < 0)
                return r;
        if (seq == 0 || !audit_hash_valid(hash))
                return -EBADMSG;
        *ret_seq = seq;
        memcpy(ret_hash, hash, sizeof(hash));
        return 0;
}
