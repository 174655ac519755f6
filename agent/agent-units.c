/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-units.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strv.h"

static int on_unit_job(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        char *unit = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning(
                        "Could not restart unit '%s' after a key rotation: %s", LOG_NAME(unit),
                        strna(e->message));
        else
                log_info("Unit '%s' restarted after a key rotation.", LOG_NAME(unit));
        free(unit);
        return 0;
}

void agent_units_key_rotated(sd_bus *bus, const Registration *reg) {
        int r;

        if (reg->on_change == ON_CHANGE_NONE)
                return;
        STRV_FOREACH(u, reg->units) {
                char *unit = strdup(*u);

                if (!unit) {
                        log_oom();
                        return;
                }
                r = sd_bus_call_method_async(
                        bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        reg->on_change == ON_CHANGE_RESTART        ? "RestartUnit" :
                                reg->on_change == ON_CHANGE_RELOAD ? "ReloadUnit" :
                                                                     "ReloadOrRestartUnit",
                        on_unit_job, unit, "ss", *u, "replace");
                if (r < 0) {
                        log_warning_errno(r, "Could not restart unit '%s': %m", LOG_NAME(*u));
                        free(unit);
                }
        }
}
