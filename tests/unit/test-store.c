/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "store.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acl-json.h"
#include "buf.h"
#include "knox-json.h"
#include "store-internal.h"
#include "strv.h"

#define TS_BASE INT64_C(1800000000123456789)
#define ID_BASE ((UINT64_C(1) << 53) + 1)

/* ---- a private directory per test ---- */

typedef struct TestDir {
        char dir[64];
        char db[128];
} TestDir;

static void test_dir_make(TestDir *t) {
        assert_true(snprintf(t->dir, sizeof(t->dir), "/tmp/test-store-XXXXXX") > 0);
        assert_non_null(mkdtemp(t->dir));
        assert_true(snprintf(t->db, sizeof(t->db), "%s/keyward.db", t->dir) > 0);
}

/* Only files this test made, in its own mkdtemp() directory. */
static void test_dir_remove(TestDir *t) {
        DIR *d = opendir(t->dir);
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d))) {
                char p[256];

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                assert_true(snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name) > 0);
                assert_int_equal(unlink(p), 0);
        }
        closedir(d);
        assert_int_equal(rmdir(t->dir), 0);
}

static Store *open_store(const char *path) {
        Store *s = NULL;

        assert_int_equal(store_open(path, &s), 0);
        assert_non_null(s);
        return s;
}

static Store *open_init(const char *path) {
        Store *s = open_store(path);

        assert_int_equal(store_init(s), 0);
        return s;
}

static int64_t wall_ns(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Run SQL on the store's own connection, as an attacker or an old keyward would. */
static void raw_exec(Store *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(store_sqlite_handle(s), sql, NULL, NULL, &err);

        if (rc != SQLITE_OK)
                fail_msg("%s: %s", sql, err);
}

static int64_t raw_int(Store *s, const char *sql) {
        sqlite3_stmt *st = NULL;
        int64_t v;

        assert_int_equal(sqlite3_prepare_v2(store_sqlite_handle(s), sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* ---- keys ---- */

static uint8_t *bytes(size_t n, uint8_t seed) {
        uint8_t *p = malloc(n);

        /* (A fill loop trips a false -Wstringop-overflow of gcc 12 at -O3.) */
        assert_true(n >= 2);
        assert_non_null(p);
        memset(p, seed, n);
        p[0] = 0xa5;
        p[n - 1] = (uint8_t) n;
        return p;
}

static void acl_add(Acl *acl, PrincipalType type, const char *id, AccessType access) {
        acl->entries = reallocarray(acl->entries, acl->n + 1, sizeof(Access));
        assert_non_null(acl->entries);
        acl->entries[acl->n++] = (Access){.type = type, .access = access, .id = strdup(id)};
        assert_non_null(acl->entries[acl->n - 1].id);
}

/* A stored-form key: n sealed versions (ids above 2^53, the last one the largest Knox allows,
 * timestamps around 1.8e18), three ACL entries, and its hash. */
static Key *make_key(const char *id, size_t n, uint8_t seed) {
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup(id);
        assert_non_null(k->id);
        acl_add(&k->acl, PRINCIPAL_TYPE_USER, "alice", ACCESS_ADMIN);
        acl_add(&k->acl, PRINCIPAL_TYPE_USER_GROUP, "security-team", ACCESS_READ);
        acl_add(&k->acl, PRINCIPAL_TYPE_MACHINE_PREFIX, "web", ACCESS_WRITE);

        k->versions = calloc(n, sizeof(KeyVersion));
        assert_non_null(k->versions);
        for (size_t i = 0; i < n; i++) {
                KeyVersion *v = &k->versions[i];

                v->id = i == n - 1 && n > 1 ? VERSION_ID_MAX : ID_BASE + i * 2;
                v->status = i == 0 ? VERSION_STATUS_PRIMARY :
                        i % 2      ? VERSION_STATUS_ACTIVE :
                                     VERSION_STATUS_INACTIVE;
                v->ts = TS_BASE + (int64_t) i * 1000;
                v->sealed_size = 17 + i;
                v->sealed = bytes(v->sealed_size, seed + i);
                v->crypt_size = 13;
                v->crypt = bytes(v->crypt_size, seed ^ 0x55);
                v->crypt[0] = 0;
        }
        k->n_versions = n;
        assert_int_equal(key_update_hash(k), 0);
        return k;
}

static void assert_key_equal(const Key *a, const Key *b) {
        assert_string_equal(a->id, b->id);
        assert_string_equal(a->hash, b->hash);
        assert_int_equal(a->acl.n, b->acl.n);
        for (size_t i = 0; i < a->acl.n; i++) {
                assert_int_equal(a->acl.entries[i].type, b->acl.entries[i].type);
                assert_int_equal(a->acl.entries[i].access, b->acl.entries[i].access);
                assert_string_equal(a->acl.entries[i].id, b->acl.entries[i].id);
        }
        assert_int_equal(a->n_versions, b->n_versions);
        for (size_t i = 0; i < a->n_versions; i++) {
                const KeyVersion *x = &a->versions[i], *y = &b->versions[i];

                assert_true(x->id == y->id);
                assert_int_equal(x->status, y->status);
                assert_true(x->ts == y->ts);
                assert_int_equal(x->sealed_size, y->sealed_size);
                assert_memory_equal(x->sealed, y->sealed, x->sealed_size);
                assert_int_equal(x->crypt_size, y->crypt_size);
                assert_memory_equal(x->crypt, y->crypt, x->crypt_size);
                assert_null(y->data);
        }
}

static void assert_stored(Store *s, const Key *want) {
        _cleanup_(key_freep) Key *got = NULL;

        assert_int_equal(store_get(s, want->id, &got, NULL), 0);
        assert_key_equal(want, got);
}

static int64_t version_of(Store *s, const char *id) {
        int64_t v = 0;

        assert_int_equal(store_get(s, id, NULL, &v), 0);
        return v;
}

static uint64_t counter_of(Store *s) {
        uint64_t c = UINT64_MAX;

        assert_int_equal(store_change_counter(s, &c), 0);
        return c;
}

static void add_new(Store *s, const char *id, size_t n, uint8_t seed) {
        _cleanup_(key_freep) Key *k = make_key(id, n, seed);

        assert_int_equal(store_add(s, k), 0);
}

/* store_reseal: new sealed forms for keys whose record is unchanged, in one transaction; the
 * record's version, hash and the change counter stay; a key written meanwhile is skipped. */
static void test_reseal(_unused_ void **state) {
        _cleanup_(key_freep) Key *a = NULL, *b = NULL, *gone = NULL;
        Key *keys[3];
        int64_t versions[3], va, vb;
        bool applied[3] = {};
        uint64_t counter;
        TestDir t;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "a", 2, 1);
        add_new(s, "b", 1, 2);
        assert_int_equal(store_get(s, "a", &a, &va), 0);
        assert_int_equal(store_get(s, "b", &b, &vb), 0);
        gone = make_key("gone", 1, 3);

        /* b is written after it was read: its re-seal must not land. */
        assert_int_equal(store_update(s, b, vb), 0);
        vb = version_of(s, "b");
        counter = counter_of(s);

        a->versions[0].sealed[0] ^= 0xff;
        a->versions[1].crypt[5] ^= 0xff;
        b->versions[0].sealed[0] ^= 0xff;
        keys[0] = a;
        keys[1] = b;
        keys[2] = gone;
        versions[0] = va;
        versions[1] = vb - 1; /* what rekey read before the write */
        versions[2] = 1;
        assert_int_equal(store_reseal(s, keys, versions, 3, applied), 1);
        assert_true(applied[0]);
        assert_false(applied[1]);
        assert_false(applied[2]);

        assert_stored(s, a);
        assert_int_equal(version_of(s, "a"), va);
        assert_int_equal(version_of(s, "b"), vb);
        assert_int_equal(counter_of(s), counter);
        b->versions[0].sealed[0] ^= 0xff;
        assert_stored(s, b);
        assert_int_equal(store_get(s, "gone", NULL, NULL), -ENOKEY);

        /* Nothing to do, and more than a batch is refused. */
        assert_int_equal(store_reseal(s, keys, versions, 0, applied), 0);
        assert_int_equal(store_reseal(s, keys, versions, STORE_RESEAL_BATCH + 1, applied), -E2BIG);

        s = store_free(s);
        test_dir_remove(&t);
}

/* ---- list ---- */

typedef struct Listing {
        char **ids;
        char **hashes;
        int stop_after; /* 0: never */
} Listing;

static int collect(const char *id, const char *hash, void *userdata) {
        Listing *l = userdata;

        assert_int_equal(strv_extend(&l->ids, id), 0);
        assert_int_equal(strv_extend(&l->hashes, hash), 0);
        if (l->stop_after > 0 && strv_length(l->ids) == (size_t) l->stop_after)
                return -EINTR;
        return 0;
}

static void listing_done(Listing *l) {
        l->ids = strv_free(l->ids);
        l->hashes = strv_free(l->hashes);
}

static void assert_list(Store *s, const char *const *want) {
        Listing l = {};
        size_t n = 0;

        assert_int_equal(store_list(s, collect, &l), 0);
        while (want[n])
                n++;
        assert_int_equal(strv_length(l.ids), n);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(key_freep) Key *k = NULL;

                assert_string_equal(l.ids[i], want[i]);
                /* The listed hash is the stored one. */
                assert_int_equal(store_get(s, want[i], &k, NULL), 0);
                assert_string_equal(l.hashes[i], k->hash);
        }
        listing_done(&l);
}

/* ---- tests ---- */

static void test_open_errors(void **state) {
        _cleanup_free_ char *missing = NULL, *garbage = NULL;
        TestDir t;
        Store *s = (Store *) 0x1;
        int fd;

        /* PostgreSQL URLs go to libpq: nothing listens on port 1. */
        assert_int_equal(store_open("postgresql://keyward@127.0.0.1:1/keyward", &s), -ECONNREFUSED);
        assert_int_equal(store_open("postgres://127.0.0.1:1", &s), -ECONNREFUSED);
        assert_int_equal(store_open("", &s), -EINVAL);
        {
                _cleanup_free_ char *buf = NULL;

                assert_string_equal(
                        store_url_display("postgresql://kw:s3cret@db:5432/keyward", &buf),
                        "postgresql://kw:***@db:5432/keyward");
                free(buf);
                assert_string_equal(
                        store_url_display("postgres://kw@db/keyward", &buf), "postgres://kw@db/keyward");
                assert_null(buf);
                assert_string_equal(
                        store_url_display("/var/lib/keywardd/k:ey@ward.db", &buf),
                        "/var/lib/keywardd/k:ey@ward.db");
                assert_null(buf);
        }
        assert_ptr_equal(s, (Store *) 0x1);

        test_dir_make(&t);
        assert_true(asprintf(&missing, "%s/no/such.db", t.dir) > 0);
        assert_int_equal(store_open(missing, &s), -ENOENT);
        assert_int_equal(store_open(t.dir, &s), -EISDIR);
        assert_ptr_equal(s, (Store *) 0x1);

        /* Only store_open() creates: store_open_existing() calls a missing file uninitialised. */
        free(missing);
        assert_true(asprintf(&missing, "%s/not-yet.db", t.dir) > 0);
        assert_int_equal(store_open_existing(missing, &s), -ENOMEDIUM);
        assert_int_equal(access(missing, F_OK), -1);
        assert_ptr_equal(s, (Store *) 0x1);
        assert_int_equal(store_open(missing, &s), 0);
        assert_int_equal(access(missing, F_OK), 0);
        s = store_free(s);
        assert_int_equal(store_open_existing(missing, &s), 0);
        s = store_free(s);
        assert_int_equal(unlink(missing), 0);
        s = (Store *) 0x1;

        /* A file that is not a database is refused, and left alone. */
        assert_true(asprintf(&garbage, "%s/garbage", t.dir) > 0);
        fd = open(garbage, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "this is not an SQLite database, not at all....", 46), 46);
        close(fd);
        assert_int_equal(store_open(garbage, &s), -EIO);
        assert_ptr_equal(s, (Store *) 0x1);
        assert_null(store_free(NULL));

        test_dir_remove(&t);
}

static void test_file_uri_is_a_path(void **state) {
        TestDir t;
        Store *s;
        int cwd;

        /* This SQLite reads "file:..." as a URI; a configured path must stay a path. */
        test_dir_make(&t);
        cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(cwd >= 0);
        assert_int_equal(chdir(t.dir), 0);
        s = open_init("file:k.db?mode=ro");
        add_new(s, "k", 1, 1);
        s = store_free(s);
        assert_int_equal(access("file:k.db?mode=ro", F_OK), 0);
        assert_int_equal(fchdir(cwd), 0);
        close(cwd);
        test_dir_remove(&t);
}

static void test_init(void **state) {
        uint8_t hash[TOKEN_HASH_SIZE] = {1};
        TokenInfo ti = {.user = (char *) "alice", .expires = 1};
        TestDir t;
        Store *s, *s2;
        Key *k = make_key("k", 1, 1);
        uint64_t c;
        struct stat st;

        test_dir_make(&t);
        s = open_store(t.db);

        /* Nothing works before init, and nothing is written. */
        assert_int_equal(store_get(s, "k", NULL, NULL), -ENOMEDIUM);
        assert_int_equal(store_get_hash(s, "k", (char[KEY_HASH_HEX_SIZE]){}), -ENOMEDIUM);
        assert_int_equal(store_add(s, k), -ENOMEDIUM);
        assert_int_equal(store_update(s, k, 1), -ENOMEDIUM);
        assert_int_equal(store_remove(s, "k"), -ENOMEDIUM);
        assert_int_equal(store_list(s, collect, &(Listing){}), -ENOMEDIUM);
        assert_int_equal(store_change_counter(s, &c), -ENOMEDIUM);
        assert_int_equal(store_token_add(s, hash, &ti), -ENOMEDIUM);
        assert_int_equal(store_token_get(s, hash, &ti), -ENOMEDIUM);
        assert_int_equal(store_token_revoke(s, hash), -ENOMEDIUM);
        assert_int_equal(store_token_expire(s, 1), -ENOMEDIUM);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), 0);

        assert_int_equal(store_init(s), 0);
        assert_int_equal(store_init(s), 0);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
        assert_int_equal(counter_of(s), 0);
        assert_list(s, (const char *const[]){NULL});

        /* A second connection initialises again without harm, and sees the first's data. */
        assert_int_equal(store_add(s, k), 0);
        s2 = open_init(t.db);
        assert_stored(s2, k);
        assert_int_equal(counter_of(s2), 1);

        /* Durability settings: WAL (persistent), synchronous=FULL (per connection). */
        assert_int_equal(raw_int(s, "PRAGMA synchronous"), 2);
        assert_int_equal(raw_int(s2, "PRAGMA synchronous"), 2);
        assert_int_equal(raw_int(s2, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
        assert_int_equal(raw_int(s2, "PRAGMA busy_timeout") > 0, 1);

        /* Only the owner may read the database. */
        assert_int_equal(stat(t.db, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        store_free(s);
        store_free(s2);
        key_free(k);
        test_dir_remove(&t);
}

static void test_add_get(void **state) {
        _cleanup_(key_freep) Key *k = make_key("team:db_password", 5, 3),
                                 *other = make_key("team:db_password", 1, 9);
        _cleanup_(key_freep) Key *got = NULL, *evil = make_key("x'); DROP TABLE secrets; --", 1, 4);
        _cleanup_free_ char *longest = NULL, *too_long = NULL;
        TestDir t;
        Store *s;
        int64_t v = 0, before = wall_ns();

        test_dir_make(&t);
        s = open_init(t.db);

        assert_int_equal(store_add(s, k), 0);
        assert_int_equal(store_get(s, k->id, &got, &v), 0);
        assert_key_equal(k, got);
        assert_true(got->versions[0].id == ID_BASE);
        assert_true(got->versions[4].id == VERSION_ID_MAX);
        assert_true(got->versions[4].ts == TS_BASE + 4000);
        /* The version is the write time in ns. */
        assert_true(v >= before && v <= wall_ns());

        /* A second add of the same id fails and changes nothing. */
        assert_int_equal(store_add(s, other), -EEXIST);
        assert_stored(s, k);
        assert_int_equal(version_of(s, k->id), v);

        assert_int_equal(store_get(s, "team:missing", &got, &v), -ENOKEY);
        assert_int_equal(store_get(s, "", NULL, NULL), -ENOKEY);

        /* Ids are data, never SQL. */
        assert_int_equal(store_add(s, evil), 0);
        assert_stored(s, evil);
        assert_stored(s, k);

        /* Knox's column is VARCHAR(512). */
        longest = malloc(STORE_ID_MAX + 2);
        assert_non_null(longest);
        memset(longest, 'a', STORE_ID_MAX + 1);
        longest[STORE_ID_MAX + 1] = 0;
        too_long = strdup(longest);
        longest[STORE_ID_MAX] = 0;
        free(evil->id);
        evil->id = TAKE_PTR(too_long);
        assert_int_equal(store_add(s, evil), -E2BIG);
        free(evil->id);
        evil->id = TAKE_PTR(longest);
        assert_int_equal(store_add(s, evil), 0);
        assert_stored(s, evil);
        free(evil->id);
        evil->id = strdup("");
        assert_int_equal(store_add(s, evil), -EINVAL);

        /* A key without sealed versions is a caller's bug, not a record. */
        key_version_done(&k->versions[1]);
        k->versions[1].id = 7;
        free(k->id);
        k->id = strdup("plain");
        assert_int_equal(store_add(s, k), -EINVAL);
        assert_int_equal(store_get(s, "plain", NULL, NULL), -ENOKEY);

        store_free(s);
        test_dir_remove(&t);
}

static void test_list_order(void **state) {
        _cleanup_(key_freep) Key *a = NULL;
        Listing l = {.stop_after = 2};
        TestDir t;
        Store *s;
        int64_t v;

        test_dir_make(&t);
        s = open_init(t.db);

        add_new(s, "c", 1, 1);
        add_new(s, "a", 2, 2);
        add_new(s, "b", 3, 3);
        add_new(s, "zz", 1, 4);
        assert_list(s, (const char *const[]){"c", "a", "b", "zz", NULL});

        /* An update changes the listed hash but not the place. */
        assert_int_equal(store_get(s, "a", &a, &v), 0);
        a->versions[1].status = VERSION_STATUS_INACTIVE;
        assert_int_equal(key_update_hash(a), 0);
        assert_int_equal(store_update(s, a, v), 0);
        assert_list(s, (const char *const[]){"c", "a", "b", "zz", NULL});
        assert_int_equal(store_list(s, collect, &l), -EINTR);
        assert_string_equal(l.hashes[1], a->hash);
        listing_done(&l);

        /* A removed and re-added key goes to the end. */
        assert_int_equal(store_remove(s, "b"), 0);
        add_new(s, "b", 1, 5);
        assert_list(s, (const char *const[]){"c", "a", "zz", "b", NULL});
        assert_int_equal(store_remove(s, "b"), 0);
        assert_int_equal(store_remove(s, "zz"), 0);
        add_new(s, "d", 1, 6);
        assert_list(s, (const char *const[]){"c", "a", "d", NULL});

        /* The callback's error stops the walk and comes back. */
        l.stop_after = 2;
        assert_int_equal(store_list(s, collect, &l), -EINTR);
        assert_int_equal(strv_length(l.ids), 2);
        listing_done(&l);
        /* ... and leaves the store usable. */
        assert_list(s, (const char *const[]){"c", "a", "d", NULL});

        /* A page at a time: the same keys in the same order, each once. */
        {
                Listing pl = {};
                int64_t next = 0, prev;

                assert_int_equal(store_list_page(s, 0, 2, collect, &pl, &next), 2);
                assert_true(next > 0);
                prev = next;
                /* A key added between pages comes in a later one, at its place. */
                add_new(s, "e", 1, 7);
                assert_int_equal(store_list_page(s, prev, 2, collect, &pl, &next), 2);
                assert_true(next > prev);
                prev = next;
                assert_int_equal(store_list_page(s, prev, 2, collect, &pl, &next), 0);
                assert_true(next == prev); /* the end: nothing more, and where it was */
                assert_int_equal(strv_length(pl.ids), 4);
                assert_string_equal(pl.ids[0], "c");
                assert_string_equal(pl.ids[1], "a");
                assert_string_equal(pl.ids[2], "d");
                assert_string_equal(pl.ids[3], "e");
                listing_done(&pl);
                assert_int_equal(store_list_page(s, 0, 0, collect, &pl, &next), -EINVAL);
                assert_int_equal(store_list_page(s, -1, 2, collect, &pl, &next), -EINVAL);
        }

        store_free(s);
        test_dir_remove(&t);
}

static void test_get_hash(void **state) {
        _cleanup_(key_freep) Key *k = NULL, *evil = make_key("x'); DROP TABLE secrets; --", 1, 4);
        _cleanup_free_ char *too_long = NULL;
        char hash[KEY_HASH_HEX_SIZE], untouched[KEY_HASH_HEX_SIZE];
        TestDir t;
        Store *s;
        int64_t v;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "a", 1, 1);
        add_new(s, "b", 3, 2);
        assert_int_equal(store_add(s, evil), 0);

        /* The stored hash, and the one store_get() reads. */
        assert_int_equal(store_get(s, "b", &k, &v), 0);
        assert_int_equal(store_get_hash(s, "b", hash), 0);
        assert_int_equal(strlen(hash), KEY_HASH_HEX_SIZE - 1);
        assert_string_equal(hash, k->hash);
        assert_int_equal(store_get_hash(s, evil->id, hash), 0);
        assert_string_equal(hash, evil->hash);
        assert_int_equal(store_get_hash(s, "a", hash), 0);
        assert_string_not_equal(hash, k->hash);

        /* An update moves it. */
        k->versions[1].status = VERSION_STATUS_INACTIVE;
        assert_int_equal(key_update_hash(k), 0);
        assert_int_equal(store_update(s, k, v), 0);
        assert_int_equal(store_get_hash(s, "b", hash), 0);
        assert_string_equal(hash, k->hash);

        /* Absent keys, and ids no record can have, leave the output alone. */
        memset(untouched, 'x', sizeof(untouched));
        memcpy(hash, untouched, sizeof(hash));
        assert_int_equal(store_get_hash(s, "c", hash), -ENOKEY);
        assert_int_equal(store_get_hash(s, "", hash), -ENOKEY);
        assert_int_equal(store_get_hash(s, "B", hash), -ENOKEY);
        too_long = malloc(STORE_ID_MAX + 2);
        assert_non_null(too_long);
        memset(too_long, 'a', STORE_ID_MAX + 1);
        too_long[STORE_ID_MAX + 1] = 0;
        assert_int_equal(store_get_hash(s, too_long, hash), -ENOKEY);
        assert_int_equal(store_remove(s, "b"), 0);
        assert_int_equal(store_get_hash(s, "b", hash), -ENOKEY);
        assert_memory_equal(hash, untouched, sizeof(hash));

        assert_int_equal(store_get_hash(NULL, "a", hash), -EINVAL);
        assert_int_equal(store_get_hash(s, NULL, hash), -EINVAL);
        assert_int_equal(store_get_hash(s, "a", NULL), -EINVAL);

        store_free(s);
        test_dir_remove(&t);
}

static void test_update(void **state) {
        _cleanup_(key_freep) Key *k = NULL, *stale = NULL;
        TestDir t;
        Store *s;
        int64_t v, v2, far;
        char sql[128];

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "k", 2, 1);

        assert_int_equal(store_get(s, "k", &k, &v), 0);
        assert_int_equal(store_get(s, "k", &stale, NULL), 0);
        assert_int_equal(key_set_version_status(k, VERSION_ID_MAX, VERSION_STATUS_PRIMARY, NULL), 0);
        acl_add(&k->acl, PRINCIPAL_TYPE_SERVICE, "spiffe://example.com/svc", ACCESS_READ);
        assert_int_equal(store_update(s, k, v), 0);
        assert_stored(s, k);
        v2 = version_of(s, "k");
        assert_true(v2 > v);

        /* The old version is stale now; the data stays as the winner left it. */
        stale->acl.entries[0].access = ACCESS_NONE;
        assert_int_equal(store_update(s, stale, v), -ESTALE);
        assert_stored(s, k);
        assert_int_equal(version_of(s, "k"), v2);

        /* An unknown key. */
        free(stale->id);
        stale->id = strdup("nope");
        assert_int_equal(store_update(s, stale, v), -ENOKEY);

        /* Back to back, within one clock tick or not, the version always moves forward. */
        for (int i = 0; i < 50; i++) {
                assert_int_equal(store_update(s, k, v2), 0);
                v = version_of(s, "k");
                assert_true(v > v2);
                v2 = v;
        }

        /* A stored version ahead of the clock still moves forward, by one. */
        far = wall_ns() + INT64_C(1000000000000000000);
        assert_true(snprintf(sql, sizeof(sql), "UPDATE secrets SET last_updated = %" PRIi64, far) > 0);
        raw_exec(s, sql);
        assert_int_equal(store_update(s, k, far), 0);
        assert_int_equal(version_of(s, "k"), far + 1);

        /* Past INT64_MAX nothing can follow. */
        raw_exec(s, "UPDATE secrets SET last_updated = 9223372036854775806");
        assert_int_equal(store_update(s, k, INT64_MAX - 1), 0);
        assert_true(version_of(s, "k") == INT64_MAX);
        assert_int_equal(store_update(s, k, INT64_MAX), -EOVERFLOW);

        store_free(s);
        test_dir_remove(&t);
}

static void test_two_connections(void **state) {
        _cleanup_(key_freep) Key *ka = NULL, *kb = NULL;
        TestDir t;
        Store *a, *b;
        int64_t va, vb;

        test_dir_make(&t);
        a = open_init(t.db);
        b = open_init(t.db);
        add_new(a, "k", 1, 1);

        /* Both read, both write: the first wins, the second is told. */
        assert_int_equal(store_get(a, "k", &ka, &va), 0);
        assert_int_equal(store_get(b, "k", &kb, &vb), 0);
        assert_true(va == vb);
        free(ka->acl.entries[0].id);
        ka->acl.entries[0].id = strdup("winner");
        free(kb->acl.entries[0].id);
        kb->acl.entries[0].id = strdup("loser");
        assert_int_equal(store_update(a, ka, va), 0);
        assert_int_equal(store_update(b, kb, vb), -ESTALE);
        assert_stored(b, ka);
        assert_stored(a, ka);

        /* The loser reads again and then succeeds. */
        assert_int_equal(store_get(b, "k", NULL, &vb), 0);
        assert_int_equal(store_update(b, kb, vb), 0);
        assert_stored(a, kb);

        store_free(a);
        store_free(b);
        test_dir_remove(&t);
}

#define N_RACERS 6

typedef struct Racer {
        Store *store;
        Key *key;
        int64_t version;
        pthread_barrier_t *barrier;
        int result;
} Racer;

static void *race(void *userdata) {
        Racer *r = userdata;

        (void) pthread_barrier_wait(r->barrier);
        r->result = store_update(r->store, r->key, r->version);
        return NULL;
}

static void test_threads_race(void **state) {
        pthread_barrier_t barrier;
        pthread_t threads[N_RACERS];
        Racer racers[N_RACERS];
        int winner = -1, stale = 0;
        TestDir t;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "k", 1, 1);

        assert_int_equal(pthread_barrier_init(&barrier, NULL, N_RACERS), 0);
        for (int i = 0; i < N_RACERS; i++) {
                char name[16];

                racers[i] = (Racer){.store = open_store(t.db), .barrier = &barrier};
                assert_int_equal(store_get(racers[i].store, "k", &racers[i].key, &racers[i].version), 0);
                assert_true(snprintf(name, sizeof(name), "racer-%d", i) > 0);
                free(racers[i].key->acl.entries[0].id);
                racers[i].key->acl.entries[0].id = strdup(name);
        }
        for (int i = 0; i < N_RACERS; i++)
                assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
        for (int i = 0; i < N_RACERS; i++)
                assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(pthread_barrier_destroy(&barrier), 0);

        for (int i = 0; i < N_RACERS; i++) {
                if (racers[i].result == 0) {
                        assert_int_equal(winner, -1);
                        winner = i;
                } else {
                        assert_int_equal(racers[i].result, -ESTALE);
                        stale++;
                }
        }
        assert_true(winner >= 0);
        assert_int_equal(stale, N_RACERS - 1);
        assert_stored(s, racers[winner].key);
        assert_int_equal(counter_of(s), 2);

        for (int i = 0; i < N_RACERS; i++) {
                store_free(racers[i].store);
                key_free(racers[i].key);
        }
        store_free(s);
        test_dir_remove(&t);
}

static void test_remove(void **state) {
        _cleanup_(key_freep) Key *k = make_key("k", 2, 1);
        TestDir t;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "other", 1, 2);
        assert_int_equal(store_add(s, k), 0);

        assert_int_equal(store_remove(s, "k"), 0);
        assert_int_equal(store_get(s, "k", NULL, NULL), -ENOKEY);
        assert_int_equal(store_remove(s, "k"), -ENOKEY);
        assert_int_equal(store_update(s, k, INT64_C(1)), -ENOKEY);
        assert_list(s, (const char *const[]){"other", NULL});

        /* The id is free again. */
        assert_int_equal(store_add(s, k), 0);
        assert_stored(s, k);

        store_free(s);
        test_dir_remove(&t);
}

static void test_change_counter(void **state) {
        _cleanup_(key_freep) Key *k = make_key("k", 1, 1);
        uint8_t hash[TOKEN_HASH_SIZE] = {7};
        TokenInfo ti = {.user = (char *) "alice", .expires = 10};
        TestDir t;
        Store *s, *watcher;
        uint64_t c;
        int64_t v;

        test_dir_make(&t);
        s = open_init(t.db);
        watcher = open_store(t.db); /* initialised by someone else */
        c = counter_of(watcher);
        assert_int_equal(c, 0);

        assert_int_equal(store_add(s, k), 0);
        assert_int_equal(counter_of(watcher), ++c);
        assert_int_equal(store_add(s, k), -EEXIST);
        assert_int_equal(counter_of(watcher), c);

        v = version_of(s, "k");
        assert_int_equal(store_update(s, k, v), 0);
        assert_int_equal(counter_of(watcher), ++c);
        assert_int_equal(store_update(s, k, v), -ESTALE);
        assert_int_equal(counter_of(watcher), c);

        /* Tokens are not keys: watchers are not woken for them. */
        assert_int_equal(store_token_add(s, hash, &ti), 0);
        assert_int_equal(store_token_revoke(s, hash), 0);
        assert_int_equal(store_token_expire(s, 100), 1);
        assert_int_equal(counter_of(watcher), c);

        assert_int_equal(store_remove(s, "k"), 0);
        assert_int_equal(counter_of(watcher), ++c);
        assert_int_equal(store_remove(s, "k"), -ENOKEY);
        assert_int_equal(counter_of(watcher), c);

        /* A write by the watcher's connection counts the same. */
        assert_int_equal(store_add(watcher, k), 0);
        assert_int_equal(counter_of(s), ++c);

        store_free(s);
        store_free(watcher);
        test_dir_remove(&t);
}

static void test_tokens(void **state) {
        uint8_t h1[TOKEN_HASH_SIZE], h2[TOKEN_HASH_SIZE], h3[TOKEN_HASH_SIZE];
        char *groups[] = {(char *) "admins", (char *) "with \"quotes\" and \\", (char *) "ünïcode", NULL};
        TokenInfo alice = {
                .user = (char *) "alice", .groups = groups, .created = TS_BASE, .expires = TS_BASE + 100};
        TokenInfo bob = {.user = (char *) "bob", .created = TS_BASE, .expires = TS_BASE + 200};
        TokenInfo got = {};
        _cleanup_(token_info_done) TokenInfo untouched = {.user = strdup("x")};
        TestDir t;
        Store *s;

        for (size_t i = 0; i < TOKEN_HASH_SIZE; i++) {
                h1[i] = (uint8_t) i;
                h2[i] = (uint8_t) (0xff - i);
                h3[i] = 0;
        }
        h3[31] = 0; /* NUL bytes in a hash are data too */

        test_dir_make(&t);
        s = open_init(t.db);

        assert_int_equal(store_token_add(s, h1, &alice), 0);
        assert_int_equal(store_token_add(s, h2, &bob), 0);
        assert_int_equal(store_token_add(s, h1, &bob), -EEXIST);
        assert_int_equal(store_token_add(s, h3, &(TokenInfo){.user = (char *) ""}), -EINVAL);

        assert_int_equal(store_token_get(s, h1, &got), 0);
        assert_string_equal(got.user, "alice");
        assert_int_equal(strv_length(got.groups), 3);
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(got.groups[i], groups[i]);
        assert_true(got.created == TS_BASE);
        assert_true(got.expires == TS_BASE + 100);
        assert_false(got.revoked);
        token_info_done(&got);
        assert_null(got.user);

        /* No groups reads back as an empty list. */
        assert_int_equal(store_token_get(s, h2, &got), 0);
        assert_string_equal(got.user, "bob");
        assert_non_null(got.groups);
        assert_null(got.groups[0]);
        token_info_done(&got);

        assert_int_equal(store_token_get(s, h3, &untouched), -ENOKEY);
        assert_string_equal(untouched.user, "x");

        /* Revocation sticks and is idempotent. */
        assert_int_equal(store_token_revoke(s, h1), 0);
        assert_int_equal(store_token_revoke(s, h1), 0);
        assert_int_equal(store_token_revoke(s, h3), -ENOKEY);
        assert_int_equal(store_token_get(s, h1, &got), 0);
        assert_true(got.revoked);
        token_info_done(&got);

        /* Expiry drops what expired before now, revoked or not. */
        assert_int_equal(store_token_expire(s, TS_BASE + 100), 0);
        assert_int_equal(store_token_expire(s, TS_BASE + 101), 1);
        assert_int_equal(store_token_get(s, h1, &got), -ENOKEY);
        assert_int_equal(store_token_get(s, h2, &got), 0);
        token_info_done(&got);
        assert_int_equal(store_token_expire(s, TS_BASE + 101), 0);
        assert_int_equal(store_token_expire(s, INT64_MAX), 1);
        assert_int_equal(store_token_get(s, h2, &got), -ENOKEY);

        store_free(s);
        test_dir_remove(&t);
}

static void test_reopen(void **state) {
        _cleanup_(key_freep) Key *k1 = make_key("k1", 3, 1), *k2 = make_key("k2", 1, 2);
        uint8_t hash[TOKEN_HASH_SIZE] = {0xaa, 0xbb};
        TokenInfo ti = {.user = (char *) "carol", .created = 5, .expires = TS_BASE}, got = {};
        TestDir t;
        Store *s;
        int64_t v;
        uint64_t c;

        test_dir_make(&t);
        s = open_init(t.db);
        assert_int_equal(store_add(s, k2), 0);
        assert_int_equal(store_add(s, k1), 0);
        assert_int_equal(store_token_add(s, hash, &ti), 0);
        v = version_of(s, "k1");
        c = counter_of(s);
        s = store_free(s);

        /* A new process would do this: open, no init. */
        s = open_store(t.db);
        assert_stored(s, k1);
        assert_stored(s, k2);
        assert_int_equal(version_of(s, "k1"), v);
        assert_int_equal(counter_of(s), c);
        assert_list(s, (const char *const[]){"k2", "k1", NULL});
        assert_int_equal(store_token_get(s, hash, &got), 0);
        assert_string_equal(got.user, "carol");
        token_info_done(&got);
        store_free(s);
        test_dir_remove(&t);
}

/* Durability of acknowledged writes: a child adds keys as fast as it can and reports each
 * one after store_add() returns; it is killed with SIGKILL in the middle. Every key it
 * reported must be there. */
static void test_kill9(void **state) {
        int fds[2], acked = 0, status;
        uint32_t i;
        TestDir t;
        Store *s;
        pid_t pid;
        Listing l = {};

        test_dir_make(&t);
        s = open_init(t.db);
        s = store_free(s);

        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                Store *c = NULL;

                close(fds[0]);
                if (store_open(t.db, &c) < 0)
                        _exit(2);
                for (i = 0; i < 100000; i++) {
                        char id[32];
                        Key *k;

                        (void) snprintf(id, sizeof(id), "burst_%u", i);
                        k = make_key(id, 2, (uint8_t) i);
                        if (store_add(c, k) < 0)
                                _exit(3);
                        key_free(k);
                        if (write(fds[1], &i, sizeof(i)) != sizeof(i))
                                _exit(4);
                }
                pause();
                _exit(5);
        }

        close(fds[1]);
        while (acked < 25) {
                assert_int_equal(read(fds[0], &i, sizeof(i)), sizeof(i));
                assert_int_equal(i, acked);
                acked++;
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        /* Acknowledgements still in the pipe count too. */
        while (read(fds[0], &i, sizeof(i)) == sizeof(i)) {
                assert_int_equal(i, acked);
                acked++;
        }
        close(fds[0]);

        s = open_store(t.db);
        for (int j = 0; j < acked; j++) {
                char id[32];
                _cleanup_(key_freep) Key *want = NULL;

                assert_true(snprintf(id, sizeof(id), "burst_%d", j) > 0);
                want = make_key(id, 2, (uint8_t) j);
                assert_stored(s, want);
        }
        /* At most the one write in flight may be there unacknowledged. */
        assert_int_equal(store_list(s, collect, &l), 0);
        assert_true(strv_length(l.ids) == (size_t) acked || strv_length(l.ids) == (size_t) acked + 1);
        /* Each write and its counter bump were one transaction. */
        assert_int_equal(counter_of(s), strv_length(l.ids));
        listing_done(&l);
        store_free(s);
        test_dir_remove(&t);
}

/* Build a version 1 database as an older keyward (or Knox itself, for the table) left it. */
static void make_v1(const char *path, bool knox_only) {
        _cleanup_(key_freep) Key *k3 = make_key("k3", 2, 3), *k1 = make_key("k1", 3, 1),
                                 *k2 = make_key("k2", 1, 2);
        const Key *keys[] = {k3, k1, k2};
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(
                sqlite3_exec(
                        db,
                        "CREATE TABLE secrets (id VARCHAR(512) PRIMARY KEY, acl TEXT, version_hash TEXT, "
                        "versions TEXT, last_updated BIGINT)",
                        NULL, NULL, NULL),
                SQLITE_OK);
        if (!knox_only)
                assert_int_equal(
                        sqlite3_exec(
                                db,
                                "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);"
                                "INSERT INTO meta VALUES ('change_counter', 7);"
                                "PRAGMA user_version = 1;",
                                NULL, NULL, NULL),
                        SQLITE_OK);

        assert_int_equal(
                sqlite3_prepare_v2(db, "INSERT INTO secrets VALUES (?, ?, ?, ?, ?)", -1, &st, NULL),
                SQLITE_OK);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_buf_ Buf acl = BUF_INIT, versions = BUF_INIT;

                assert_int_equal(acl_json_append(&acl, &keys[i]->acl), 0);
                assert_int_equal(
                        knox_sealed_versions_json_append(&versions, keys[i]->versions, keys[i]->n_versions),
                        0);
                assert_int_equal(sqlite3_bind_text(st, 1, keys[i]->id, -1, SQLITE_STATIC), SQLITE_OK);
                assert_int_equal(sqlite3_bind_text(st, 2, acl.data, -1, SQLITE_STATIC), SQLITE_OK);
                assert_int_equal(sqlite3_bind_text(st, 3, keys[i]->hash, -1, SQLITE_STATIC), SQLITE_OK);
                assert_int_equal(sqlite3_bind_text(st, 4, versions.data, -1, SQLITE_STATIC), SQLITE_OK);
                assert_int_equal(sqlite3_bind_int64(st, 5, TS_BASE + (int64_t) i), SQLITE_OK);
                assert_int_equal(sqlite3_step(st), SQLITE_DONE);
                assert_int_equal(sqlite3_reset(st), SQLITE_OK);
        }
        sqlite3_finalize(st);
        /* Knox's columns allow NULL. */
        assert_int_equal(
                sqlite3_exec(
                        db, "INSERT INTO secrets (id, last_updated) VALUES ('bare', 5)", NULL, NULL, NULL),
                SQLITE_OK);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void check_migrated(const char *path, uint64_t counter) {
        _cleanup_(key_freep) Key *k1 = make_key("k1", 3, 1), *bare = NULL;
        uint8_t hash[TOKEN_HASH_SIZE] = {3};
        TokenInfo ti = {.user = (char *) "dave", .expires = 1};
        Store *s = open_store(path);
        int64_t v;

        assert_int_equal(store_get(s, "k1", NULL, NULL), -ENOMEDIUM);
        assert_int_equal(store_init(s), 0);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
        assert_int_equal(raw_int(s, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

        /* Same rows, same order, same versions. */
        assert_list(s, (const char *const[]){"k3", "k1", "k2", "bare", NULL});
        assert_stored(s, k1);
        assert_int_equal(store_get(s, "k1", NULL, &v), 0);
        assert_true(v == TS_BASE + 1);
        assert_int_equal(counter_of(s), counter);
        assert_int_equal(store_get(s, "bare", &bare, &v), 0);
        assert_int_equal(bare->acl.n, 0);
        assert_int_equal(bare->n_versions, 0);
        assert_string_equal(bare->hash, "");
        assert_int_equal(v, 5);

        /* What version 2 added works. */
        assert_int_equal(store_token_add(s, hash, &ti), 0);
        add_new(s, "new", 1, 9);
        assert_list(s, (const char *const[]){"k3", "k1", "k2", "bare", "new", NULL});
        assert_int_equal(counter_of(s), counter + 1);
        assert_int_equal(store_init(s), 0);
        store_free(s);
}

static void test_migrate_v1(void **state) {
        TestDir t;

        test_dir_make(&t);
        make_v1(t.db, false);
        check_migrated(t.db, 7);
        test_dir_remove(&t);
}

static void test_migrate_knox(void **state) {
        TestDir t;

        /* A database with only Knox's own table (user_version 0) is adopted. */
        test_dir_make(&t);
        make_v1(t.db, true);
        check_migrated(t.db, 0);
        test_dir_remove(&t);
}

static void test_future_version(void **state) {
        TestDir t;
        Store *s;
        uint64_t c;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "k", 1, 1);
        {
                char sql[64];

                (void) snprintf(
                        sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SQLITE_SCHEMA_VERSION + 1);
                raw_exec(s, sql);
        }
        s = store_free(s);

        s = open_store(t.db);
        assert_int_equal(store_get(s, "k", NULL, NULL), -EPROTONOSUPPORT);
        assert_int_equal(store_change_counter(s, &c), -EPROTONOSUPPORT);
        assert_int_equal(store_get_hash(s, "k", (char[KEY_HASH_HEX_SIZE]){}), -EPROTONOSUPPORT);
        assert_int_equal(store_init(s), -EPROTONOSUPPORT);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION + 1);
        assert_int_equal(raw_int(s, "SELECT count(*) FROM secrets"), 1);
        store_free(s);

        test_dir_remove(&t);
}

typedef struct CertSeen {
        char text[1024];
} CertSeen;

static int
cert_collect(const char *id, uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        CertSeen *c = userdata;
        size_t n = strlen(c->text);

        (void) snprintf(
                c->text + n, sizeof(c->text) - n, "%s/%" PRIu64 "/%s/%" PRId64 " ", id, version - ID_BASE,
                version_status_to_string(status), not_after);
        return 0;
}

static const char *certs_of(Store *s, CertSeen *c) {
        c->text[0] = '\0';
        assert_int_equal(store_list_certificates(s, cert_collect, c), 0);
        return c->text;
}

/* The notAfter of certificate versions goes in and out with the row, survives updates that
 * know it, and is listed without reading versions; keys without any are not listed. */
static void test_certificates(void **state) {
        _cleanup_(key_freep) Key *k = make_key("cert", 3, 1), *plain = make_key("plain", 2, 2), *got = NULL;
        CertSeen c;
        TestDir t;
        int64_t v;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        k->versions[0].not_after = 1900000000; /* Primary */
        k->versions[1].not_after = 1800000000; /* Active */
        assert_int_equal(store_add(s, k), 0);
        assert_int_equal(store_add(s, plain), 0);
        assert_int_equal(raw_int(s, "SELECT not_after IS NULL FROM secrets WHERE id = 'plain'"), 1);
        assert_string_equal(certs_of(s, &c), "cert/0/Primary/1900000000 cert/2/Active/1800000000 ");

        assert_int_equal(store_get(s, "cert", &got, &v), 0);
        assert_int_equal(got->versions[0].not_after, 1900000000);
        assert_int_equal(got->versions[1].not_after, 1800000000);
        assert_int_equal(got->versions[2].not_after, 0);

        /* A status change through the record read back keeps the dates, with the new status. */
        got->versions[1].status = VERSION_STATUS_INACTIVE;
        assert_int_equal(store_update(s, got, v), 0);
        assert_string_equal(certs_of(s, &c), "cert/0/Primary/1900000000 cert/2/Inactive/1800000000 ");

        /* A broken column is derived data: skipped, never an error. */
        raw_exec(s, "UPDATE secrets SET not_after = '[{\"id\":\"x\"}' WHERE id = 'cert'");
        assert_string_equal(certs_of(s, &c), "");
        got = key_free(got);
        assert_int_equal(store_get(s, "cert", &got, NULL), 0);
        assert_int_equal(got->versions[0].not_after, 0);

        assert_int_equal(store_remove(s, "cert"), 0);
        assert_string_equal(certs_of(s, &c), "");
        store_free(s);
        test_dir_remove(&t);
}

/* A version 2 database (before not_after) is migrated by store_init(), rows intact. */
static void test_migrate_v2(void **state) {
        _cleanup_(key_freep) Key *k = make_key("old", 2, 4), *n = make_key("new", 1, 5);
        CertSeen c;
        TestDir t;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        assert_int_equal(store_add(s, k), 0);
        raw_exec(
                s,
                "DROP INDEX secrets_not_after; ALTER TABLE secrets DROP COLUMN not_after; "
                "PRAGMA user_version = 2");
        s = store_free(s);

        s = open_store(t.db);
        assert_int_equal(store_get(s, "old", NULL, NULL), -ENOMEDIUM);
        assert_int_equal(store_init(s), 0);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
        assert_stored(s, k);
        n->versions[0].not_after = 1700000000;
        assert_int_equal(store_add(s, n), 0);
        assert_string_equal(certs_of(s, &c), "new/0/Primary/1700000000 ");
        store_free(s);
        test_dir_remove(&t);
}

static void test_bad_records(void **state) {
        uint8_t hash[TOKEN_HASH_SIZE] = {9};
        TokenInfo ti = {.user = (char *) "eve", .expires = 1}, got = {};
        char h[KEY_HASH_HEX_SIZE];
        Listing l = {};
        Key *k = NULL;
        TestDir t;
        Store *s;

        test_dir_make(&t);
        s = open_init(t.db);
        add_new(s, "acl", 1, 1);
        add_new(s, "versions", 1, 2);
        add_new(s, "hash", 1, 3);
        add_new(s, "fine", 1, 4);
        assert_int_equal(store_token_add(s, hash, &ti), 0);

        /* Someone with write access to the file, or a bug: decoding fails cleanly. */
        raw_exec(
                s,
                "UPDATE secrets SET acl = '[{\"type\":\"Nobody\",\"id\":\"x\",\"access\":\"Read\"}]' WHERE id = 'acl'");
        raw_exec(s, "UPDATE secrets SET versions = '[{\"id\":-1}' WHERE id = 'versions'");
        raw_exec(s, "UPDATE secrets SET version_hash = hex(randomblob(40)) WHERE id = 'hash'");
        raw_exec(s, "UPDATE tokens SET \"groups\" = '[1,2]'");

        assert_int_equal(store_get(s, "acl", &k, NULL), -EBADMSG);
        assert_int_equal(store_get(s, "versions", &k, NULL), -EBADMSG);
        assert_int_equal(store_get(s, "hash", &k, NULL), -EBADMSG);
        assert_null(k);
        memset(h, 'x', sizeof(h));
        assert_int_equal(store_get_hash(s, "hash", h), -EBADMSG);
        assert_memory_equal(h, (char[KEY_HASH_HEX_SIZE]){[0 ... KEY_HASH_HEX_SIZE - 1] = 'x'}, sizeof(h));
        raw_exec(s, "UPDATE secrets SET version_hash = 'ab' || char(0) || 'cd' WHERE id = 'versions'");
        assert_int_equal(store_get_hash(s, "versions", h), -EBADMSG);
        assert_int_equal(store_get_hash(s, "fine", h), 0);
        assert_int_equal(store_get(s, "fine", &k, NULL), 0);
        k = key_free(k);
        assert_int_equal(store_token_get(s, hash, &got), -EBADMSG);
        assert_null(got.user);

        /* The version alone needs no decoding; list does not read the versions. */
        assert_int_equal(store_get(s, "versions", NULL, NULL), 0);
        assert_int_equal(store_list(s, collect, &l), 0);
        assert_int_equal(strv_length(l.ids), 4);
        assert_string_equal(l.ids[2], "hash");
        listing_done(&l);

        /* A counter row gone missing is an error, not a zero. */
        raw_exec(s, "DELETE FROM meta");
        assert_int_equal(store_change_counter(s, &(uint64_t){0}), -EIO);
        assert_int_equal(store_remove(s, "fine"), -EIO);
        assert_int_equal(store_get(s, "fine", NULL, NULL), 0);

        store_free(s);
        test_dir_remove(&t);
}

static void test_change_notifications(void **state) {
        StoreListener *l = NULL;
        const char *id = NULL;
        uint64_t c = 0;
        char long_id[STORE_PG_NOTIFY_ID_MAX + 4];

        /* SQLite has no notifications: its servers poll the counter. */
        assert_int_equal(store_listener_new("/tmp/x.db", &l), -EOPNOTSUPP);
        assert_null(l);

        assert_int_equal(store_change_parse("42 my key", &id, &c), 0);
        assert_string_equal(id, "my key");
        assert_int_equal(c, 42);
        assert_int_equal(store_change_parse("7", &id, &c), 0);
        assert_null(id);
        assert_int_equal(c, 7);
        /* Anything else is refused, and the caller looks at the counter. */
        assert_int_equal(store_change_parse("", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse("0 k", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse("1 ", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse(" 1 k", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse("+1 k", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse("1x k", &id, &c), -EBADMSG);
        assert_int_equal(store_change_parse("18446744073709551616 k", &id, &c), -EBADMSG);
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[0] = '1';
        long_id[1] = ' ';
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(store_change_parse(long_id, &id, &c), -EBADMSG);
        assert_int_equal(c, 7); /* untouched on failure */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_errors),
                cmocka_unit_test(test_file_uri_is_a_path),
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_add_get),
                cmocka_unit_test(test_list_order),
                cmocka_unit_test(test_get_hash),
                cmocka_unit_test(test_update),
                cmocka_unit_test(test_reseal),
                cmocka_unit_test(test_two_connections),
                cmocka_unit_test(test_threads_race),
                cmocka_unit_test(test_remove),
                cmocka_unit_test(test_change_counter),
                cmocka_unit_test(test_tokens),
                cmocka_unit_test(test_reopen),
                cmocka_unit_test(test_kill9),
                cmocka_unit_test(test_migrate_v1),
                cmocka_unit_test(test_migrate_knox),
                cmocka_unit_test(test_future_version),
                cmocka_unit_test(test_bad_records),
                cmocka_unit_test(test_certificates),
                cmocka_unit_test(test_migrate_v2),
                cmocka_unit_test(test_change_notifications),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
