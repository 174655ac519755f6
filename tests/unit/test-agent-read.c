/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-read.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

/* agent_key_read(), the one read path of D-Bus and the credential socket, against a real
 * cache directory. */

typedef struct Fixture {
        char dir[64];
        Agent a;
        AgentKey *k; /* "k1", in the table; uid 4243 reads it */
} Fixture;

#define NOBODY_UID 4242
#define READER_UID 4243

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        Registration reg = {};

        if (!f)
                return -1;
        (void) snprintf(f->dir, sizeof(f->dir), "/tmp/test-agent-read.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        f->a.cache_dir = f->dir;
        f->a.cache_seal = secret_new(32); /* zeros: a key like any other here */
        if (!f->a.cache_seal)
                return -1;
        if (agent_read_open(&f->a) < 0)
                return -1;
        reg.id = strdup("k1");
        f->k = agent_key_new(&reg);
        if (!f->k)
                return -1;
        f->k->reader_uids = malloc(sizeof(uid_t));
        f->k->reader_uids[0] = READER_UID;
        f->k->n_reader_uids = 1;
        if (agent_insert_key(&f->a, f->k) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        AgentKey *k = agent_detach_key(&f->a, "k1");

        agent_key_free(k);
        free(f->a.keys);
        agent_read_close(&f->a);
        f->a.cache_seal = secret_free(f->a.cache_seal);
        (void) tests_rm_rf(f->dir);
        free(f);
        return 0;
}

static Key *make_key(const char *data) {
        KeyVersion v = {.id = 7, .status = VERSION_STATUS_PRIMARY, .ts = 1800000000123456789};
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup("k1");
        v.data = secret_new_copy(data, strlen(data));
        assert_int_equal(key_append_version(k, &v), 0);
        return k;
}

/* Write data as k1's cache file; the agent's record is left to the caller. */
static CacheInfo write_file(Fixture *f, const char *data) {
        _cleanup_(key_freep) Key *key = make_key(data);
        CacheInfo info = {};

        assert_int_equal(cache_write(f->dir, f->a.cache_seal, key, 1, &info), 0);
        return info;
}

static void assert_primary(const Key *key, const char *data) {
        const KeyVersion *p = key_primary_version(key);

        assert_non_null(p);
        assert_int_equal(p->data->size, strlen(data));
        assert_memory_equal(p->data->data, data, strlen(data));
}

/* Who may read what, and why a key has no copy. */
static void test_access(void **state) {
        Fixture *f = *state;
        Caller nobody = {.uid = NOBODY_UID}, reader = {.uid = READER_UID}, root = {.uid = 0};
        KeyUnavailable u = {};
        const Key *key = NULL;

        /* Which keys are registered is not a stranger's to learn. */
        assert_int_equal(agent_key_read(&f->a, &nobody, "nope", &key, NULL, NULL), -EACCES);
        assert_int_equal(agent_key_read(&f->a, &root, "nope", &key, NULL, NULL), -ENOKEY);
        assert_int_equal(agent_key_read(&f->a, &nobody, "k1", &key, NULL, NULL), -EACCES);

        f->k->state = KEY_STATE_FAILED;
        f->k->error = strdup("the server timed out");
        assert_int_equal(agent_key_read(&f->a, &reader, "k1", &key, NULL, &u), -ENOENT);
        assert_int_equal(u.state, KEY_STATE_FAILED);
        assert_string_equal(u.error, "the server timed out");
        key_unavailable_done(&u);
        assert_null(key);
        caller_done(&nobody);
        caller_done(&reader);
}

/* A key read twice is parsed once; a new file is read again. */
static void test_hot(void **state) {
        Fixture *f = *state;
        Caller reader = {.uid = READER_UID};
        uint8_t sha[CACHE_SHA256_SIZE];
        const Key *key = NULL, *again = NULL;

        f->k->cache = write_file(f, "first");
        assert_int_equal(agent_key_read(&f->a, &reader, "k1", &key, sha, NULL), 0);
        assert_primary(key, "first");
        assert_memory_equal(sha, f->k->cache.sha256, CACHE_SHA256_SIZE);
        assert_int_equal(agent_key_read(&f->a, &reader, "k1", &again, NULL, NULL), 0);
        assert_ptr_equal(again, key);

        f->k->cache = write_file(f, "second");
        assert_int_equal(agent_key_read(&f->a, &reader, "k1", &key, sha, NULL), 0);
        assert_primary(key, "second");
        assert_memory_equal(sha, f->k->cache.sha256, CACHE_SHA256_SIZE);
        caller_done(&reader);
}

/* The file a sync thread is writing is served as the agent's own; a file that matches
 * neither the record nor the write in progress is damaged, unless the record moves. */
static void test_writing(void **state) {
        Fixture *f = *state;
        Caller root = {.uid = 0};
        const Key *key = NULL;
        CacheInfo new;

        f->k->cache = write_file(f, "old");
        new = write_file(f, "new");
        f->a.writing = f->k;
        memcpy(f->a.writing_sha256, new.sha256, CACHE_SHA256_SIZE);
        assert_int_equal(agent_key_read(&f->a, &root, "k1", &key, NULL, NULL), 0);
        assert_primary(key, "new");

        /* Still being written, but with other content than the file's: the file keeps moving.
         * It is not declared damaged (the reader asks again). */
        memset(f->a.writing_sha256, 0xaa, CACHE_SHA256_SIZE);
        assert_int_equal(agent_key_read(&f->a, &root, "k1", &key, NULL, NULL), -EAGAIN);
        assert_true(f->k->cache.valid);

        /* No write in progress, and the file is not what the agent wrote. */
        f->a.writing = NULL;
        assert_int_equal(agent_key_read(&f->a, &root, "k1", &key, NULL, NULL), -EBADMSG);
        assert_false(f->k->cache.valid);
        assert_true(f->k->need_fetch);
        /* Removed, so that the next fetch writes it again. */
        {
                char path[96];

                (void) snprintf(path, sizeof(path), "%s/k1", f->dir);
                assert_int_equal(access(path, F_OK), -1);
        }
}

/* A key whose file could not be written is served from memory. */
static void test_held(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *src = make_key("held");
        Caller reader = {.uid = READER_UID};
        const Key *key = NULL;

        assert_int_equal(cache_encode(src, &f->k->held, &f->k->cache), 0);
        assert_int_equal(agent_key_read(&f->a, &reader, "k1", &key, NULL, NULL), 0);
        assert_primary(key, "held");
        caller_done(&reader);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_access, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_writing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_held, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
