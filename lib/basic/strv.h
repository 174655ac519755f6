/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* NULL-terminated arrays of strings. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);
bool strv_contains(char *const *l, const char *s);
/* Append a copy of s. */
int strv_extend(char ***l, const char *s);
/* Append s itself (ownership moves on success). */
int strv_push(char ***l, char *s);
int strv_copy(char *const *l, char ***ret);

#define STRV_FOREACH(s, l) for (typeof(*(l)) *s = (l); s && *s; s++)
