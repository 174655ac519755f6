/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "strv.h"

static void test_label_escape(void **state) {
        Buf b = BUF_INIT;

        assert_int_equal(metrics_label_escape(&b, "a\\b\"c\nd/e"), 0);
        assert_int_equal(buf_putc(&b, '\0'), 0);
        assert_string_equal(b.data, "a\\\\b\\\"c\\nd/e");
        buf_done(&b);
}

static AgentKey *new_key(const char *id, KeyState state, bool cached) {
        Registration reg = {};
        AgentKey *k;

        reg.id = strdup(id);
        assert_non_null(reg.id);
        k = agent_key_new(&reg);
        assert_non_null(k);
        k->state = state;
        k->cache.valid = cached;
        return k;
}

/* The figures of a made-up agent: counts by state, stale and unavailable keys, the servers
 * as the client names them (escaped), and no key id anywhere. */
static void test_render(void **state) {
        Agent a = {};
        Buf b = BUF_INIT;
        AgentKey *keys[4];

        pthread_mutex_init(&a.lock, NULL);
        keys[0] = new_key("k_ok", KEY_STATE_OK, true);
        keys[1] = new_key("k_stale", KEY_STATE_FAILED, true);
        keys[2] = new_key("k_new", KEY_STATE_NEW, false);
        keys[3] = new_key("k_missing", KEY_STATE_MISSING, false);
        a.keys = keys;
        a.n_keys = ELEMENTSOF(keys);
        assert_int_equal(strv_extend(&a.config.servers, "h1.example.com:9000/"), 0);
        assert_int_equal(strv_extend(&a.config.servers, "https://h2/\"x\\"), 0);
        assert_int_equal(agent_server_states_update(&a), 0);
        assert_int_equal(a.n_server_states, 2);
        assert_string_equal(a.server_states[0].url, "https://h1.example.com:9000");
        a.server_states[0].up = true;
        a.server_states[0].last_ok_usec = 1700000000123456;
        a.connected = true;
        a.last_sync_usec = 1700000000123456;
        a.counters.credentials_refused = 3;
        a.counters.bus_denied_manage = 2;
        a.counters.fetch_failures = 5;
        a.n_credential_waits = 1;

        assert_int_equal(agent_metrics_render(&a, &b), 0);
        assert_int_equal(buf_putc(&b, '\0'), 0);
        static const char *const wants[] = {
                "\nkeyward_agent_keys_registered 4\n",
                "\nkeyward_agent_keys_cached 2\n",
                "\nkeyward_agent_keys_unavailable 2\n",
                "\nkeyward_agent_keys_stale 1\n",
                "\nkeyward_agent_keys{state=\"new\"} 1\n",
                "\nkeyward_agent_keys{state=\"missing\"} 1\n",
                "\nkeyward_agent_keys{state=\"denied\"} 0\n",
                "\nkeyward_agent_fetch_failures_total 5\n",
                "\n# TYPE keyward_agent_fetch_failures_total counter\n",
                "\nkeyward_agent_connected 1\n",
                "\nkeyward_agent_last_sync_timestamp_seconds 1700000000.123456\n",
                "\nkeyward_agent_server_up{server=\"https://h1.example.com:9000\"} 1\n",
                "\nkeyward_agent_server_up{server=\"https://h2/\\\"x\\\\\"} 0\n",
                "\nkeyward_agent_server_last_success_timestamp_seconds{server=\"https://h1.example.com:9000\"} 1700000000.123456\n",
                "\nkeyward_agent_server_last_success_timestamp_seconds{server=\"https://h2/\\\"x\\\\\"} 0\n",
                "\nkeyward_agent_credential_requests_total{result=\"refused\"} 3\n",
                "\nkeyward_agent_credential_waiting 1\n",
                "\nkeyward_agent_bus_denials_total{kind=\"manage\"} 2\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(wants); i++)
                if (!strstr(b.data, wants[i]))
                        fail_msg("missing %s in:\n%s", wants[i], b.data);
        /* Aggregates only. */
        for (size_t i = 0; i < a.n_keys; i++)
                assert_null(strstr(b.data, keys[i]->reg.id));

        for (size_t i = 0; i < a.n_keys; i++)
                agent_key_free(keys[i]);
        for (size_t i = 0; i < a.n_server_states; i++)
                free(a.server_states[i].url);
        free(a.server_states);
        strv_free(a.config.servers);
        pthread_mutex_destroy(&a.lock);
        buf_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_label_escape),
                cmocka_unit_test(test_render),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
