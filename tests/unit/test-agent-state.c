/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agent-state.c: the accessors through which files other than the table's own read and
 * change the agent's shared state, each taking a.lock itself. */
#undef NDEBUG
#include "agent.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

static void agent_init(Agent *a) {
        pthread_condattr_t ca;

        *a = (Agent){.wake_fd = -EBADF};
        pthread_mutex_init(&a->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cond, &ca);
        pthread_condattr_destroy(&ca);
}

static void agent_fini(Agent *a) {
        free(a->last_error);
        free(a->last_error_logged);
        agent_config_done(&a->config);
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
}

/* Connected, LastSync and LastError are copied out: the copy stays as it was when the sync
 * threads change the state afterwards. */
static void test_status(void **state) {
        _cleanup_(agent_status_done) AgentStatus st = {};
        Agent a;

        agent_init(&a);
        a.connected = true;
        a.last_sync_usec = 1234;
        a.last_error = strdup("no server answers");
        assert_non_null(a.last_error);

        assert_int_equal(agent_status_snapshot(&a, &st), 0);
        assert_true(st.connected);
        assert_int_equal(st.last_sync_usec, 1234);
        assert_string_equal(st.last_error, "no server answers");
        assert_ptr_not_equal(st.last_error, a.last_error);

        free(a.last_error);
        a.last_error = NULL;
        a.connected = false;
        assert_string_equal(st.last_error, "no server answers");
        agent_status_done(&st);
        assert_int_equal(agent_status_snapshot(&a, &st), 0);
        assert_false(st.connected);
        assert_null(st.last_error);
        agent_fini(&a);
}

/* What the sync threads reported is taken out once, with the status, for the main thread. */
static void test_take_changes(void **state) {
        AgentStatus st = {};
        KeyChange *changes = NULL;
        size_t n = 0;
        Agent a;

        agent_init(&a);
        assert_int_equal(agent_post_change(&a, "k1", "h1", true), 0);
        assert_int_equal(agent_post_change(&a, "k2", "", false), 0);
        a.status_dirty = true;
        a.sync_done = 3;
        a.sync_error = -EHOSTUNREACH;
        a.last_sync_usec = 99;

        agent_take_changes(&a, &changes, &n, &st);
        assert_int_equal(n, 2);
        assert_string_equal(changes[0].id, "k1");
        assert_string_equal(changes[0].hash, "h1");
        assert_true(changes[0].rotated);
        assert_string_equal(changes[1].id, "k2");
        assert_int_equal(st.sync_done, 3);
        assert_int_equal(st.sync_error, -EHOSTUNREACH);
        assert_int_equal(st.last_sync_usec, 99);
        assert_false(a.status_dirty);
        assert_null(a.changes);
        assert_int_equal(a.n_changes, 0);
        for (size_t i = 0; i < n; i++)
                free(changes[i].id);
        free(changes);

        agent_take_changes(&a, &changes, &n, &st);
        assert_int_equal(n, 0);
        assert_null(changes);
        agent_fini(&a);
}

typedef struct Waiter {
        Agent *a;
        uint64_t seen;
} Waiter;

/* A sync thread waiting for Sync(), as the worker does. */
static void *wait_for_sync(void *userdata) {
        Waiter *w = userdata;

        pthread_mutex_lock(&w->a->lock);
        while (w->a->sync_requested == 0)
                pthread_cond_wait(&w->a->cond, &w->a->lock);
        w->seen = w->a->sync_requested;
        pthread_mutex_unlock(&w->a->lock);
        return NULL;
}

/* Sync() asks for a full comparison and wakes the threads that wait for one. */
static void test_request_sync(void **state) {
        Waiter w;
        pthread_t t;
        Agent a;

        agent_init(&a);
        w = (Waiter){.a = &a};
        assert_int_equal(pthread_create(&t, NULL, wait_for_sync, &w), 0);
        assert_int_equal(agent_request_sync(&a), 1);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.seen, 1);
        assert_int_equal(agent_request_sync(&a), 2);
        agent_fini(&a);
}

static void test_credential_waiting(void **state) {
        Agent a;

        agent_init(&a);
        agent_set_credential_waiting(&a, true);
        assert_true(a.credential_waiting);
        agent_set_credential_waiting(&a, false);
        assert_false(a.credential_waiting);
        agent_fini(&a);
}

/* A new configuration replaces the old one, bumps config_gen (the sync threads build new
 * clients) and forgets the failure last logged. */
static void test_config_replace(void **state) {
        AgentConfig c = {};
        Agent a;

        agent_init(&a);
        assert_int_equal(strv_extend(&a.config.servers, "https://old:4443"), 0);
        a.last_error_logged = strdup("old failure");
        assert_int_equal(strv_extend(&c.servers, "https://new:4443"), 0);

        agent_config_replace(&a, &c);
        assert_null(c.servers);
        assert_string_equal(a.config.servers[0], "https://new:4443");
        assert_int_equal(a.config_gen, 1);
        assert_null(a.last_error_logged);
        agent_fini(&a);
}

/* Readers resolved anew (SIGHUP) are installed in the key; the old arrays go. */
static void test_install_readers(void **state) {
        Registration reg = {.id = strdup("k")};
        AgentKey *k, from = {};
        Agent a;

        agent_init(&a);
        k = agent_key_new(&reg);
        assert_non_null(k);
        assert_int_equal(agent_insert_key(&a, k), 0);
        from.reader_uids = calloc(2, sizeof(uid_t));
        from.reader_uids[1] = 42;
        from.n_reader_uids = 2;
        from.reader_gids = calloc(1, sizeof(gid_t));
        from.reader_gids[0] = 7;
        from.n_reader_gids = 1;

        agent_key_install_readers(&a, k, &from);
        assert_null(from.reader_uids);
        assert_null(from.reader_gids);
        assert_int_equal(k->n_reader_uids, 2);
        assert_int_equal(k->reader_uids[1], 42);
        assert_int_equal(k->n_reader_gids, 1);
        assert_true(agent_key_may_read(k, 42, NULL, 0));
        assert_true(agent_key_may_read(k, 4242, (gid_t[]){7}, 1));
        assert_false(agent_key_may_read(k, 4242, NULL, 0));

        /* Removed from the table under the lock, and handed back. */
        assert_ptr_equal(agent_remove_key(&a, "k"), k);
        assert_int_equal(a.n_keys, 0);
        assert_null(agent_remove_key(&a, "k"));
        agent_key_free(k);
        free(a.keys);
        agent_fini(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status),         cmocka_unit_test(test_take_changes),
                cmocka_unit_test(test_request_sync),   cmocka_unit_test(test_credential_waiting),
                cmocka_unit_test(test_config_replace), cmocka_unit_test(test_install_readers),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
