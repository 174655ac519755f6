/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* Have libevent and OpenSSL wipe what they free. Call before any other function of either;
 * returns -EBUSY when OpenSSL had already allocated (its frees are then plain ones). */
int wipe_alloc_install(void);

/* Whether OpenSSL's frees wipe (wipe_alloc_install() succeeded in this process). */
bool wipe_alloc_openssl(void);
