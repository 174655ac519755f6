/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite store's keys: read, write, list, the change counter and re-sealing. */

#include <string.h>

#include "log.h"
#include "store-sqlite.h"

/* ---- keys ---- */

/* Statement i with key id bound to ?1; ready: once the schema is known to be current (reads),
 * else as it is (within a write's transaction). */
static int stmt_for_key(SqliteStore *s, Stmt i, bool ready, const char *id, sqlite3_stmt **ret) {
        sqlite3_stmt *st;
        int rc, r;

        r = ready ? sqlite_stmt_ready(s, i, &st) : sqlite_stmt_get(s, i, &st);
        if (r < 0)
                return r;
        rc = bind_text(st, 1, id);
        if (rc != SQLITE_OK) {
                stmt_resetp(&st);
                return sqlite_fail(s, rc, "binding");
        }
        *ret = st;
        return 0;
}

/* rec's columns after the id: ?2 to ?5, and not_after at ?not_after_index. */
static int bind_record(sqlite3_stmt *st, const StoreRecord *rec, int not_after_index) {
        int rc;

        if ((rc = bind_text(st, 2, rec->acl)) != SQLITE_OK ||
            (rc = bind_text(st, 3, rec->hash)) != SQLITE_OK ||
            (rc = bind_text(st, 4, rec->versions)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 5, rec->version)) != SQLITE_OK)
                return rc;
        return bind_text(st, not_after_index, rec->not_after);
}

int sqlite_get(Store *base, const char *id, StoreRecord *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_(store_record_done) StoreRecord rec = {};
        int r;

        r = stmt_for_key(s, STMT_GET, true, id, &st);
        if (r < 0)
                return r;

        r = sqlite_step_row(s, st, "reading a key");
        if (r < 0)
                return r;

        if ((r = sqlite_column_strdup(st, 0, &rec.acl)) < 0 ||
            (r = sqlite_column_strdup(st, 1, &rec.hash)) < 0 ||
            (r = sqlite_column_strdup(st, 2, &rec.versions)) < 0)
                return r;
        rec.version = sqlite3_column_int64(st, 3);
        r = sqlite_column_strdup(st, 4, &rec.not_after);
        if (r < 0)
                return r;

        *ret = rec;
        rec = (StoreRecord){};
        return 0;
}

int sqlite_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const unsigned char *hash;
        int r, n;

        r = stmt_for_key(s, STMT_GET_HASH, true, id, &st);
        if (r < 0)
                return r;

        r = sqlite_step_row(s, st, "reading a key's hash");
        if (r < 0)
                return r;

        hash = sqlite3_column_text(st, 0);
        if (!hash)
                return -ENOMEM; /* the column is NOT NULL */
        n = sqlite3_column_bytes(st, 0);
        if (n < 0 || (size_t) n >= KEY_HASH_HEX_SIZE || strlen((const char *) hash) != (size_t) n)
                return log_debug_errno(EBADMSG, "SQLite: stored hash of key '%s' is not a hash.", id);

        memcpy(ret, hash, (size_t) n + 1);
        return 0;
}

static int add_in_tx(SqliteStore *s, const char *id, const StoreRecord *rec) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_for_key(s, STMT_ADD, false, id, &st);
        if (r < 0)
                return r;
        rc = bind_record(st, rec, 6);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                return -EEXIST;
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "adding a key");

        return sqlite_bump_change_counter(s);
}

int sqlite_add(Store *base, const char *id, const StoreRecord *rec) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, add_in_tx(s, id, rec));
}

static int key_exists(SqliteStore *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_for_key(s, STMT_EXISTS, false, id, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return sqlite_fail(s, rc, "looking up a key");
}

static int update_in_tx(SqliteStore *s, const char *id, const StoreRecord *rec, int64_t expected_version) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_for_key(s, STMT_UPDATE, false, id, &st);
        if (r < 0)
                return r;
        rc = bind_record(st, rec, 7);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 6, expected_version);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "updating a key");

        if (sqlite3_changes(s->db) == 0) {
                r = key_exists(s, id);
                if (r < 0)
                        return r;
                return r > 0 ? -ESTALE : -ENOKEY;
        }

        return sqlite_bump_change_counter(s);
}

int sqlite_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, update_in_tx(s, id, rec, expected_version));
}

static int remove_in_tx(SqliteStore *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_for_key(s, STMT_REMOVE, false, id, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "removing a key");
        if (sqlite3_changes(s->db) == 0)
                return -ENOKEY;

        return sqlite_bump_change_counter(s);
}

int sqlite_remove(Store *base, const char *id) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, remove_in_tx(s, id));
}

/* Each row's first two columns (never NULL in the rows listed) to f, in order; with ret_seq,
 * the third column (seq) of the last row. Returns the number of rows. */
static int list_rows(
        SqliteStore *s,
        sqlite3_stmt *st,
        const char *what,
        StoreListFunc f,
        void *userdata,
        int64_t *ret_seq) {
        int rc, r, n = 0;

        for (;; n++) {
                const unsigned char *id, *value;

                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return n;
                if (rc != SQLITE_ROW)
                        return sqlite_fail(s, rc, what);

                id = sqlite3_column_text(st, 0);
                value = sqlite3_column_text(st, 1);
                if (!id || !value)
                        return -ENOMEM; /* neither is NULL in these rows */
                if (ret_seq)
                        *ret_seq = sqlite3_column_int64(st, 2);
                r = f((const char *) id, (const char *) value, userdata);
                if (r < 0)
                        return r;
        }
}

/* Every row of a statement without parameters. */
static int list_all(Store *base, Stmt i, const char *what, StoreListFunc f, void *userdata) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = sqlite_stmt_ready(s, i, &st);
        if (r < 0)
                return r;
        r = list_rows(s, st, what, f, userdata, NULL);
        return r < 0 ? r : 0;
}

int sqlite_list(Store *base, StoreListFunc f, void *userdata) {
        return list_all(base, STMT_LIST, "listing keys", f, userdata);
}

int sqlite_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata) {
        return list_all(base, STMT_LIST_NOT_AFTER, "listing certificates", f, userdata);
}

int sqlite_list_page(
        Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t next = after;
        int r;

        r = sqlite_stmt_ready(s, STMT_LIST_PAGE, &st);
        if (r < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, after) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, (sqlite3_int64) max) != SQLITE_OK)
                return -ENOMEM;

        r = list_rows(s, st, "listing keys", f, userdata, &next);
        if (r < 0)
                return r;
        *ret_next = next;
        return r;
}

int sqlite_change_counter(Store *base, uint64_t *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_ready(s, STMT_COUNTER, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return log_debug_errno(EIO, "SQLite: '%s' has no change counter.", s->path);
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading the change counter");

        *ret = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

static int reseal_in_tx(SqliteStore *s, StoreReseal *items, size_t n) {
        int applied = 0;

        for (size_t i = 0; i < n; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                int rc, r;

                r = sqlite_stmt_get(s, STMT_RESEAL, &st);
                if (r < 0)
                        return r;
                if ((rc = bind_text(st, 1, items[i].id)) != SQLITE_OK ||
                    (rc = bind_text(st, 2, items[i].versions)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 3, items[i].expected_version)) != SQLITE_OK)
                        return sqlite_fail(s, rc, "binding");
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE)
                        return sqlite_fail(s, rc, "re-sealing a key");
                items[i].applied = sqlite3_changes(s->db) > 0;
                applied += items[i].applied;
        }
        return applied;
}

int sqlite_reseal(Store *base, StoreReseal *items, size_t n) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, reseal_in_tx(s, items, n));
}
