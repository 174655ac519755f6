/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Have libevent wipe what it frees. Call before any other libevent function. */
void wipe_alloc_install(void);
