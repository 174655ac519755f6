/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"

/* Decimal integers only: no sign (for unsigned), no white space, no trailing garbage.
 * -EINVAL for a malformed number, -ERANGE when it does not fit. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atoi64(const char *s, int64_t *ret);
int safe_atou(const char *s, unsigned *ret);

/* "yes"/"no", "true"/"false", "on"/"off", "1"/"0"; 1 or 0, or -EINVAL. */
int parse_boolean(const char *s);

/* A duration: a plain number is seconds; units ms, s, m (min), h, d (also combined,
 * "1h30m"). Result in microseconds. */
int parse_sec(const char *s, uint64_t *ret_usec);

/* A size in bytes with an optional K, M or G suffix (powers of 1024). */
int parse_size(const char *s, uint64_t *ret);
