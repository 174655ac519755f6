/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "strv.h"

static AgentKey *new_key(const char *id, const char *reader) {
        Registration reg = {};
        AgentKey *k;

        reg.id = strdup(id);
        assert_non_null(reg.id);
        if (reader)
                assert_int_equal(strv_extend(&reg.readers, reader), 0);
        k = agent_key_new(&reg);
        assert_non_null(k);
        assert_null(reg.id); /* moved */
        return k;
}

/* Keys come from blocks of their own: a freed key's slot is reused, zeroed, and many keys
 * (more than one block holds) are all distinct and usable. */
static void test_slots(void **state) {
        AgentKey *keys[1000], *k, *again;
        char id[16];

        k = new_key("slot", NULL);
        k->failures = 7;
        k->state = KEY_STATE_FAILED;
        agent_key_free(k);
        again = new_key("slot2", NULL);
#ifndef __SANITIZE_ADDRESS__ /* there, keys are heap objects, and freed ones quarantined */
        assert_ptr_equal(again, k);
#endif
        assert_int_equal(again->failures, 0);
        assert_int_equal(again->state, KEY_STATE_NEW);
        assert_null(again->error);
        agent_key_free(again);

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                snprintf(id, sizeof(id), "k%zu", i);
                keys[i] = new_key(id, NULL);
                keys[i]->committed_seq = i;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                snprintf(id, sizeof(id), "k%zu", i);
                assert_string_equal(keys[i]->reg.id, id);
                assert_int_equal(keys[i]->committed_seq, i);
                agent_key_free(keys[i]);
        }
}

static void test_table(void **state) {
        Agent a = {};
        static const char *const ids[] = {"m", "c", "x", "a", "k"};
        AgentKey *k;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                assert_int_equal(agent_insert_key(&a, new_key(ids[i], NULL)), 0);
        assert_int_equal(a.n_keys, 5);
        assert_int_equal(a.gen, 5);
        /* Sorted, so that bsearch finds them. */
        assert_string_equal(a.keys[0]->reg.id, "a");
        assert_string_equal(a.keys[4]->reg.id, "x");
        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                assert_string_equal(agent_find_key(&a, ids[i])->reg.id, ids[i]);
        assert_null(agent_find_key(&a, "b"));
        assert_null(agent_find_key(&a, NULL));

        k = new_key("k", NULL);
        assert_int_equal(agent_insert_key(&a, k), -EEXIST);
        agent_key_free(k);

        k = agent_detach_key(&a, "k");
        assert_non_null(k);
        assert_string_equal(k->reg.id, "k");
        agent_key_free(k);
        assert_null(agent_detach_key(&a, "k"));
        assert_int_equal(a.n_keys, 4);
        assert_null(agent_find_key(&a, "k"));
        assert_non_null(agent_find_key(&a, "m"));

        for (size_t i = 0; i < a.n_keys; i++)
                agent_key_free(a.keys[i]);
        free(a.keys);
}

static void test_readers(void **state) {
        _cleanup_(agent_key_freep) AgentKey *k = new_key("k", "user:root");
        _cleanup_(agent_key_freep) AgentKey *g = new_key("g", "group:root");
        _cleanup_(agent_key_freep) AgentKey *n = new_key("n", "user:4242");
        _cleanup_(agent_key_freep) AgentKey *u = new_key("u", "user:no-such-user-kw");
        const char *unknown = NULL;
        gid_t groups[] = {100, 0};

        assert_int_equal(agent_key_resolve_readers(k, &unknown), 0);
        assert_int_equal(k->n_reader_uids, 1);
        assert_int_equal(k->reader_uids[0], 0);
        assert_int_equal(agent_key_resolve_readers(g, &unknown), 0);
        assert_int_equal(g->n_reader_gids, 1);
        assert_int_equal(g->reader_gids[0], 0);
        /* A number NSS does not know is taken as the id. */
        assert_int_equal(agent_key_resolve_readers(n, &unknown), 0);
        assert_int_equal(n->reader_uids[0], 4242);

        assert_int_equal(agent_key_resolve_readers(u, &unknown), -ESRCH);
        assert_string_equal(unknown, "user:no-such-user-kw");
        /* Without reterr_unknown, unknown names are left out. */
        assert_int_equal(agent_key_resolve_readers(u, NULL), 0);
        assert_int_equal(u->n_reader_uids, 0);

        /* root (and the agent's own uid) always; a reader uid; a member of a reader group;
         * nobody else. */
        if (geteuid() == 4243 || geteuid() == 54321)
                skip();
        assert_true(agent_key_may_read(u, 0, NULL, 0));
        assert_true(agent_key_may_read(u, geteuid(), NULL, 0));
        assert_true(agent_uid_is_privileged(geteuid()));
        assert_false(agent_uid_is_privileged(54321));
        assert_true(agent_key_may_read(n, 4242, NULL, 0));
        assert_false(agent_key_may_read(n, 4243, NULL, 0));
        assert_false(agent_key_may_read(u, 4242, NULL, 0));
        assert_true(agent_key_may_read(g, 54321, groups, 2));
        assert_false(agent_key_may_read(g, 54321, groups, 1));
        assert_false(agent_key_may_read(n, 54321, groups, 2));
}

static void test_backoff(void **state) {
        uint64_t max = 60 * USEC_PER_SEC;
        /* How 4,000 draws of each window spread over its eight eighths. */
        unsigned eighths[3][8] = {};
        const uint64_t windows[3] = {USEC_PER_SEC, 4 * USEC_PER_SEC, 60 * USEC_PER_SEC};

        for (int i = 0; i < 4000; i++) {
                uint64_t d[3] = {backoff_usec(1, max), backoff_usec(3, max), backoff_usec(20, max)};

                for (int w = 0; w < 3; w++) {
                        /* Bounded: never sooner than an eighth of the window, never past it. */
                        assert_true(d[w] >= windows[w] / 8 && d[w] <= windows[w]);
                        eighths[w][MIN(d[w] * 8 / windows[w], (uint64_t) 7)]++;
                }
        }
        /* Jittered over the whole window (reconnections after a server restart spread out):
         * the draws fill the second to the eighth eighth about evenly (4000/7 each, well
         * within 300..850 by chance), the first stays empty. */
        for (int w = 0; w < 3; w++) {
                assert_int_equal(eighths[w][0], 0);
                for (int e = 1; e < 8; e++)
                        assert_true(eighths[w][e] >= 300 && eighths[w][e] <= 850);
        }
        /* A cap below one second still holds. */
        assert_true(backoff_usec(1, 500 * USEC_PER_MSEC) <= 500 * USEC_PER_MSEC);
        /* A huge cap does not overflow. */
        assert_true(backoff_usec(200, UINT64_C(1) << 62) >= UINT64_C(1) << 59);
}

static void test_changes(void **state) {
        Agent a = {.wake_fd = -EBADF};

        assert_int_equal(agent_post_change(&a, "k1", "abc", false), 0);
        assert_int_equal(agent_post_change(&a, "k2", "", true), 0);
        assert_int_equal(a.n_changes, 2);
        assert_string_equal(a.changes[0].id, "k1");
        assert_string_equal(a.changes[0].hash, "abc");
        assert_false(a.changes[0].rotated);
        assert_string_equal(a.changes[1].hash, "");
        assert_true(a.changes[1].rotated);
        agent_wake(&a); /* no eventfd: nothing happens */
        for (size_t i = 0; i < a.n_changes; i++)
                free(a.changes[i].id);
        free(a.changes);
}

static int count_key(const AgentKey *k, void *userdata) {
        size_t *n = userdata;

        (*n)++;
        return streq(k->reg.id, "stop") ? -ECANCELED : 0;
}

/* What other files ask of the table, each under the lock it takes itself. */
static void test_accessors(void **state) {
        Agent a = {};
        AgentKeyStatus st;
        AgentKey *web = new_key("web_db", NULL), *other = new_key("other", NULL);
        char *id = NULL;
        size_t n = 0;

        assert_int_equal(strv_extend(&web->reg.units, "web.service"), 0);
        web->reg.credential = strdup("db");
        web->state = KEY_STATE_OK;
        web->cache.valid = true;
        memset(web->cache.sha256, 0x5a, sizeof(web->cache.sha256));
        assert_int_equal(strv_extend(&other->reg.units, "web.service"), 0);
        assert_int_equal(agent_insert_key(&a, web), 0);
        assert_int_equal(agent_insert_key(&a, other), 0);

        assert_int_equal(agent_key_status(&a, "nope", &st), 0);
        assert_int_equal(agent_key_status(&a, "web_db", &st), 1);
        assert_true(st.cached);
        assert_int_equal(st.state, KEY_STATE_OK);
        assert_int_equal(st.sha256[0], 0x5a);

        /* By credential name, else by id; only for the units it names. */
        assert_int_equal(agent_key_find_for_unit(&a, "web.service", "db", &id, &st), 1);
        assert_string_equal(id, "web_db");
        free(id);
        assert_int_equal(agent_key_find_for_unit(&a, "web.service", "web_db", &id, &st), 0);
        assert_int_equal(agent_key_find_for_unit(&a, "web.service", "other", &id, &st), 1);
        assert_string_equal(id, "other");
        assert_false(st.cached);
        free(id);
        assert_int_equal(agent_key_find_for_unit(&a, "db.service", "db", &id, &st), 0);

        assert_int_equal(agent_keys_foreach(&a, count_key, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(agent_insert_key(&a, new_key("stop", NULL)), 0);
        n = 0;
        assert_int_equal(agent_keys_foreach(&a, count_key, &n), -ECANCELED);
        assert_int_equal(n, 2); /* "other", then "stop" */

        for (size_t i = 0; i < a.n_keys; i++)
                agent_key_free(a.keys[i]);
        free(a.keys);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slots),   cmocka_unit_test(test_table),
                cmocka_unit_test(test_readers), cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_changes), cmocka_unit_test(test_accessors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
