/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Bytes from the kernel's CSPRNG (getrandom, blocking until seeded). 0 or -errno. */
int random_bytes(void *p, size_t n);
