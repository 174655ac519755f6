/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/agent-baseline: the baseline of bench/agent, a trivial sd-bus service on the same bus as
 * keyward-agent. Its one method, org.keyward.BenchBaseline1.Get(s id) -> (ay data, t version),
 * has GetKey's signature and answers 32 fixed bytes and a number, with the reply marked
 * sensitive as GetKey's is; it looks nothing up and logs nothing.
 *
 * Usage: agent-baseline [--name NAME] [--data-size BYTES]
 *   NAME defaults to org.keyward.BenchBaseline1; the bus is the system bus
 *   (DBUS_SYSTEM_BUS_ADDRESS). It runs until SIGTERM or SIGINT. */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bench-util.h"

#define BASELINE_PATH "/org/keyward/BenchBaseline1"
#define BASELINE_IFACE "org.keyward.BenchBaseline1"

static uint8_t data[4096];
static size_t data_size = 32;

static int method_get(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        __attribute__((cleanup(sd_bus_message_unrefp))) sd_bus_message *reply = NULL;
        const char *id;
        int r;

        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        if (!id[0])
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Empty id");

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_sensitive(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', data, data_size);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "t", (uint64_t) 1234567890123456789ULL);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* clang-format off */
static const sd_bus_vtable baseline_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Get", SD_BUS_ARGS("s", id), SD_BUS_RESULT("ay", data, "t", version),
                                method_get, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

static void usage(FILE *f) {
        fputs("Usage: agent-baseline [--name NAME] [--data-size BYTES]\n", f);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},
                {"data-size", required_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sd_bus_slot *slot = NULL;
        const char *name = "org.keyward.BenchBaseline1";
        sigset_t ss;
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        name = optarg;
                        break;
                case 'd':
                        if (bench_parse_u64(optarg, sizeof(data), &v) < 0 || v == 0) {
                                fputs("agent-baseline: bad --data-size\n", stderr);
                                return 2;
                        }
                        data_size = (size_t) v;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        memset(data, 0x5a, sizeof(data));

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &ss, NULL);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(
                        bus, &slot, BASELINE_PATH, BASELINE_IFACE, baseline_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, name, 0);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0)
                fprintf(stderr, "agent-baseline: %s\n", strerror(-r));

        sd_bus_slot_unref(slot);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
