/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward status: the agent's properties and the keys the caller may read, as text or JSON. */
#include "keyward.h"
#include "keyward-agent.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "buf.h"
#include "json-util.h"
#include "keyward-bus.h"
#include "log.h"
#include "strv.h"
#include "time-util.h"

/* One property value (the variant's content) as text and as JSON. */
static int property_format(sd_bus_message *m, const char *name, Buf *text, Buf *json) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;

        switch (type) {
        case SD_BUS_TYPE_STRING:
        case SD_BUS_TYPE_OBJECT_PATH:
        case SD_BUS_TYPE_SIGNATURE: {
                const char *s;

                r = sd_bus_message_read_basic(m, type, &s);
                if (r < 0)
                        return r;
                (void) buf_puts(text, s);
                (void) json_append_cstring(json, s);
                break;
        }
        case SD_BUS_TYPE_BOOLEAN: {
                int b;

                r = sd_bus_message_read_basic(m, type, &b);
                if (r < 0)
                        return r;
                (void) buf_puts(text, b ? "yes" : "no");
                (void) buf_puts(json, b ? "true" : "false");
                break;
        }
        case SD_BUS_TYPE_BYTE:
        case SD_BUS_TYPE_UINT16:
        case SD_BUS_TYPE_UINT32:
        case SD_BUS_TYPE_UINT64: {
                union {
                        uint8_t y;
                        uint16_t q;
                        uint32_t u;
                        uint64_t t;
                } v = {};
                uint64_t u;

                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                u = type == SD_BUS_TYPE_BYTE       ? v.y :
                        type == SD_BUS_TYPE_UINT16 ? v.q :
                        type == SD_BUS_TYPE_UINT32 ? v.u :
                                                     v.t;
                (void) buf_printf(json, "%" PRIu64, u);
                if (streq(name, "LastSync") && type == SD_BUS_TYPE_UINT64) {
                        /* Microseconds since the epoch, as systemd's timestamps. */
                        time_t t = (time_t) (u / USEC_PER_SEC);
                        struct tm tm;
                        char s[64];

                        if (u == 0)
                                (void) buf_puts(text, "never");
                        else if (
                                localtime_r(&t, &tm) &&
                                strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S %Z", &tm) > 0)
                                (void) buf_puts(text, s);
                        else
                                (void) buf_printf(text, "%" PRIu64, u);
                } else
                        (void) buf_printf(text, "%" PRIu64, u);
                break;
        }
        case SD_BUS_TYPE_INT16:
        case SD_BUS_TYPE_INT32:
        case SD_BUS_TYPE_INT64: {
                union {
                        int16_t n;
                        int32_t i;
                        int64_t x;
                } v = {};
                int64_t i;

                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                i = type == SD_BUS_TYPE_INT16 ? v.n : type == SD_BUS_TYPE_INT32 ? v.i : v.x;
                (void) buf_printf(text, "%" PRIi64, i);
                (void) buf_printf(json, "%" PRIi64, i);
                break;
        }
        case SD_BUS_TYPE_DOUBLE: {
                double d;

                r = sd_bus_message_read_basic(m, type, &d);
                if (r < 0)
                        return r;
                (void) buf_printf(text, "%g", d);
                (void) buf_printf(json, "%.17g", d);
                break;
        }
        case SD_BUS_TYPE_ARRAY:
                if (streq(contents, "s")) {
                        _cleanup_strv_free_ char **l = NULL;

                        r = sd_bus_message_read_strv(m, &l);
                        if (r < 0)
                                return r;
                        (void) buf_putc(json, '[');
                        STRV_FOREACH(s, l) {
                                (void) buf_printf(text, "%s%s", s == l ? "" : " ", *s);
                                if (s != l)
                                        (void) buf_putc(json, ',');
                                (void) json_append_cstring(json, *s);
                        }
                        (void) buf_putc(json, ']');
                        break;
                }
                _fallthrough_;
        default:
                r = sd_bus_message_skip(m, NULL);
                if (r < 0)
                        return r;
                (void) buf_puts(text, "(not shown)");
                (void) buf_puts(json, "null");
        }
        return text->error < 0 ? text->error : json->error;
}

/* ListKeyStates() → a(ssss): (id, state, error, cache_error) of each key. The strings
 * belong to *ret_reply. An agent without the method gives none, and 0. */
typedef struct KeyStateRow {
        const char *id, *state, *error, *cache_error;
} KeyStateRow;

static int call_list_key_states(sd_bus *bus, sd_bus_message **ret_reply, KeyStateRow **ret, size_t *ret_n) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ KeyStateRow *rows = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(
                bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "ListKeyStates", &error, &reply,
                NULL);
        if (r < 0 && sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_METHOD)) {
                *ret_reply = NULL;
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        if (r < 0)
                return r;
        for (;;) {
                KeyStateRow row, *m;

                r = sd_bus_message_read(reply, "(ssss)", &row.id, &row.state, &row.error, &row.cache_error);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                m = reallocarray(rows, n + 1, sizeof(KeyStateRow));
                if (!m)
                        return -ENOMEM;
                rows = m;
                rows[n++] = row;
        }
        *ret_reply = TAKE_PTR(reply);
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

static const KeyStateRow *key_state_find(const KeyStateRow *rows, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (streq(rows[i].id, id))
                        return &rows[i];
        return NULL;
}

int verb_status(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_buf_ Buf text = BUF_INIT, json = BUF_INIT;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *states_reply = NULL;
        _cleanup_free_ KeyStateRow *states = NULL;
        AgentKey *keys = NULL;
        size_t n = 0, n_states = 0;
        bool first = true;
        int r;

        PARSE_PLAIN(argc, argv, "status");
        if (optind < argc)
                return usage_error("status takes no arguments. See 'keyward help status'");

        r = agent_bus_connect(&bus, false);
        if (r < 0)
                return agent_fail_bus_open(r);
        r = sd_bus_call_method(
                bus, AGENT_BUS_NAME, AGENT_BUS_PATH, "org.freedesktop.DBus.Properties", "GetAll", &error,
                &reply, "s", AGENT_BUS_INTERFACE);
        if (r < 0)
                return agent_fail_bus("Error getting the agent's status", r, &error);

        (void) buf_putc(&json, '{');
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0) {
                const char *name;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'v', NULL);
                if (r < 0)
                        break;
                (void) buf_printf(&text, "%s: ", name);
                if (!first)
                        (void) buf_putc(&json, ',');
                first = false;
                (void) json_append_cstring(&json, name);
                (void) buf_putc(&json, ':');
                r = property_format(reply, name, &text, &json);
                (void) buf_putc(&text, '\n');
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return fail("Error reading the agent's status: %s", strerror(-r));

        r = agent_call_list_keys(bus, &keys, &n, &error);
        if (r < 0)
                return agent_fail_bus("Error listing the agent's keys", r, &error);
        r = call_list_key_states(bus, &states_reply, &states, &n_states);
        if (r < 0) {
                agent_keys_free(keys, n);
                return fail("Error reading the state of the agent's keys: %s", strerror(-r));
        }
        (void) buf_printf(&json, "%s\"Keys\":[", first ? "" : ",");
        (void) buf_puts(&text, n > 0 ? "Keys:\n" : "Keys: none\n");
        for (size_t i = 0; i < n; i++) {
                const KeyStateRow *st = key_state_find(states, n_states, keys[i].id);

                if (isempty(keys[i].hash))
                        (void) buf_printf(&text, "    %s (not cached yet)", keys[i].id);
                else
                        (void) buf_printf(
                                &text, "    %s primary %" PRIu64 " hash %s", keys[i].id, keys[i].number,
                                keys[i].hash);
                if (st && !streq(st->state, "ok") && !streq(st->state, "new"))
                        (void) buf_printf(
                                &text, ", %s: %s", st->state, isempty(st->error) ? "?" : st->error);
                if (st && !isempty(st->cache_error))
                        (void) buf_printf(
                                &text, ", cache file not written: %s (served from memory)", st->cache_error);
                (void) buf_putc(&text, '\n');
                (void) buf_puts(&json, i > 0 ? ",{\"id\":" : "{\"id\":");
                (void) json_append_cstring(&json, keys[i].id);
                (void) buf_puts(&json, ",\"hash\":");
                (void) json_append_cstring(&json, keys[i].hash);
                (void) buf_printf(&json, ",\"primary\":%" PRIu64, keys[i].number);
                if (st) {
                        (void) buf_puts(&json, ",\"state\":");
                        (void) json_append_cstring(&json, st->state);
                        (void) buf_puts(&json, ",\"error\":");
                        (void) json_append_cstring(&json, st->error);
                        (void) buf_puts(&json, ",\"cacheError\":");
                        (void) json_append_cstring(&json, st->cache_error);
                }
                (void) buf_putc(&json, '}');
        }
        agent_keys_free(keys, n);
        (void) buf_puts(&json, "]}\n");
        if (text.error < 0 || json.error < 0)
                return fail("Out of memory.");

        fputs(arg_json ? json.data : text.data, stdout);
        return EXIT_OK;
}
