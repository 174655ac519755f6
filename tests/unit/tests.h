/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by the unit tests. */

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

static inline int tests_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

/* rm -rf of a scratch directory. */
static inline int tests_rm_rf(const char *dir) {
        return nftw(dir, tests_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whether a file holds the bytes (a missing file holds nothing). */
static inline bool tests_file_contains(const char *path, const void *needle, size_t n) {
        _cleanup_free_ char *data = NULL;
        size_t size;

        if (read_full_file(path, 64 * 1024 * 1024, &data, &size) < 0)
                return false;
        return memmem(data, size, needle, n) != NULL;
}
