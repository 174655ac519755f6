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
#include "parse.h"
#include "store-internal.h"
#include "strv.h"
#include "time-util.h"

void store_record_done(StoreRecord *r) {
        if (!r)
                return;
        free(r->acl);
        free(r->hash);
        free(r->versions);
        free(r->not_after);
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

static bool id_is_ok(const char *id) {
        return !isempty(id) && strlen(id) <= STORE_ID_MAX;
}

/* The not_after column: [{"id":VERSION,"status":"Primary","not_after":SECONDS},...] for the
 * versions that are certificates, in version order; empty (NULL in the row) when none is. */
static int not_after_json_append(Buf *b, const Key *k) {
        bool first = true;

        for (size_t i = 0; i < k->n_versions; i++) {
                const KeyVersion *v = k->versions + i;

                if (v->not_after == 0)
                        continue;
                (void) buf_puts(b, first ? "[{\"id\":" : ",{\"id\":");
                (void) json_append_uint64(b, v->id);
                (void) buf_puts(b, ",\"status\":");
                (void) json_append_cstring(b, version_status_to_string(v->status));
                (void) buf_puts(b, ",\"not_after\":");
                (void) json_append_int64(b, v->not_after);
                (void) buf_putc(b, '}');
                first = false;
        }
        if (!first)
                (void) buf_putc(b, ']');
        return b->error;
}

/* Calls f for each well-formed entry of a not_after column; a broken one (it is derived
 * data) is skipped. */
static int not_after_json_foreach(
        const char *json,
        int (*f)(uint64_t version, VersionStatus status, int64_t not_after, void *userdata),
        void *userdata) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *m;
        size_t n;
        int r;

        r = json_parse(json, strlen(json), &o, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !json_object_is_type(o, json_type_array))
                return 0;
        n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(o, i);
                const char *status;
                uint64_t version;
                int64_t not_after;
                VersionStatus st;

                if (json_get_uint64(json_get_field(e, "id"), &version) < 0 ||
                    json_get_int64(json_get_field(e, "not_after"), &not_after) < 0 ||
                    json_get_string(json_get_field(e, "status"), &status, NULL) < 0)
                        continue;
                st = version_status_from_string(status);
                if (st < 0 || not_after == 0)
                        continue;
                r = f(version, st, not_after, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int set_not_after(uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        KeyVersion *v = key_find_version(userdata, version);

        if (v)
                v->not_after = not_after;
        return 0;
}

/* The stored row of a key. The strings belong to the Bufs. */
static int key_to_record(const Key *k, Buf *acl, Buf *versions, Buf *not_after, StoreRecord *ret) {
        int r;

        r = acl_json_append(acl, &k->acl);
        if (r < 0)
                return r;
        r = knox_sealed_versions_json_append(versions, k->versions, k->n_versions);
        if (r < 0)
                return r;

        r = not_after_json_append(not_after, k);
        if (r < 0)
                return r;

        *ret = (StoreRecord){
                .acl = acl->data,
                .hash = (char *) k->hash,
                .versions = versions->data,
                .not_after = not_after->len > 0 ? not_after->data : NULL,
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
        if (rec->not_after) {
                r = not_after_json_foreach(rec->not_after, set_not_after, k);
                if (r < 0)
                        return r;
        }

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
        _cleanup_buf_ Buf acl = BUF_INIT, versions = BUF_INIT, not_after = BUF_INIT;
        StoreRecord rec;
        int r;

        assert_return(s, -EINVAL);
        assert_return(k, -EINVAL);

        if (isempty(k->id))
                return -EINVAL;
        if (!id_is_ok(k->id))
                return -E2BIG;

        r = key_to_record(k, &acl, &versions, &not_after, &rec);
        if (r < 0)
                return r;
        rec.version = now_nsec(CLOCK_REALTIME);

        return s->vtable->add(s, k->id, &rec);
}

int store_update(Store *s, const Key *k, int64_t expected_version) {
        _cleanup_buf_ Buf acl = BUF_INIT, versions = BUF_INIT, not_after = BUF_INIT;
        StoreRecord rec;
        int r;

        assert_return(s, -EINVAL);
        assert_return(k, -EINVAL);

        if (!id_is_ok(k->id))
                return -ENOKEY;
        /* Nothing can follow it; no stored record gets there before the year 2262. */
        if (expected_version == INT64_MAX)
                return -EOVERFLOW;

        r = key_to_record(k, &acl, &versions, &not_after, &rec);
        if (r < 0)
                return r;
        /* Always forward, even within one clock tick or after the clock stepped back. */
        rec.version = MAX(now_nsec(CLOCK_REALTIME), expected_version + 1);

        return s->vtable->update(s, k->id, &rec, expected_version);
}

int store_reseal(Store *s, Key *const *keys, const int64_t *expected_versions, size_t n, bool *ret_applied) {
        Buf versions[STORE_RESEAL_BATCH] = {};
        StoreReseal items[STORE_RESEAL_BATCH] = {};
        int r = 0;

        assert_return(s, -EINVAL);
        assert_return(keys || n == 0, -EINVAL);
        assert_return(expected_versions || n == 0, -EINVAL);
        assert_return(n <= STORE_RESEAL_BATCH, -E2BIG);

        for (size_t i = 0; i < n; i++) {
                if (!id_is_ok(keys[i]->id)) {
                        r = -ENOKEY;
                        goto finish;
                }
                r = knox_sealed_versions_json_append(versions + i, keys[i]->versions, keys[i]->n_versions);
                if (r < 0)
                        goto finish;
                items[i] = (StoreReseal){
                        .id = keys[i]->id,
                        .versions = versions[i].data,
                        .expected_version = expected_versions[i],
                };
        }
        r = n == 0 ? 0 : s->vtable->reseal(s, items, n);
        if (r >= 0 && ret_applied)
                for (size_t i = 0; i < n; i++)
                        ret_applied[i] = items[i].applied;

finish:
        for (size_t i = 0; i < n; i++)
                buf_done(versions + i);
        return r;
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

typedef struct CertWalk {
        const char *id;
        StoreCertFunc f;
        void *userdata;
} CertWalk;

static int cert_entry(uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        CertWalk *w = userdata;

        return w->f(w->id, version, status, not_after, w->userdata);
}

static int cert_row(const char *id, const char *not_after, void *userdata) {
        CertWalk *w = userdata;

        w->id = id;
        return not_after_json_foreach(not_after, cert_entry, w);
}

int store_list_certificates(Store *s, StoreCertFunc f, void *userdata) {
        CertWalk w = {.f = f, .userdata = userdata};

        assert_return(s, -EINVAL);
        assert_return(f, -EINVAL);
        return s->vtable->list_not_after(s, cert_row, &w);
}

int store_list_page(
        Store *s, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next) {
        assert_return(s, -EINVAL);
        assert_return(f, -EINVAL);
        assert_return(ret_next, -EINVAL);
        assert_return(after >= 0, -EINVAL);
        assert_return(max > 0 && max <= INT32_MAX, -EINVAL);

        return s->vtable->list_page(s, after, max, f, userdata, ret_next);
}

int store_change_counter(Store *s, uint64_t *ret) {
        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        return s->vtable->change_counter(s, ret);
}

static bool is_postgres_url(const char *url) {
        return startswith(url, "postgresql://") || startswith(url, "postgres://");
}

int store_listener_new(const char *url, StoreListener **ret) {
        assert_return(url, -EINVAL);
        assert_return(ret, -EINVAL);

        if (!is_postgres_url(url))
                return -EOPNOTSUPP;
        return store_postgres_listener_new(url, ret);
}

StoreListener *store_listener_free(StoreListener *l) {
        if (l)
                l->vtable->free(l);
        return NULL;
}

int store_listener_connect(StoreListener *l, int *ret_fd, bool *ret_write) {
        assert_return(l, -EINVAL);
        assert_return(ret_fd, -EINVAL);
        assert_return(ret_write, -EINVAL);

        return l->vtable->connect(l, ret_fd, ret_write);
}

int store_listener_dispatch(StoreListener *l, StoreChangeFunc f, void *userdata) {
        assert_return(l, -EINVAL);
        assert_return(f, -EINVAL);

        return l->vtable->dispatch(l, f, userdata);
}

int store_change_parse(const char *payload, const char **ret_id, uint64_t *ret_counter) {
        const char *space;
        char counter[21];
        uint64_t c;
        size_t n;

        assert_return(payload, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(ret_counter, -EINVAL);

        space = strchr(payload, ' ');
        n = space ? (size_t) (space - payload) : strlen(payload);
        if (n == 0 || n >= sizeof(counter) || strspn(payload, "0123456789") != n)
                return -EBADMSG;
        memcpy(counter, payload, n);
        counter[n] = '\0';
        if (safe_atou64(counter, &c) < 0 || c == 0)
                return -EBADMSG;
        if (space && (isempty(space + 1) || strlen(space + 1) > STORE_PG_NOTIFY_ID_MAX))
                return -EBADMSG;
        *ret_id = space ? space + 1 : NULL;
        *ret_counter = c;
        return 0;
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
                s, hash,
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
