/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Inputs above this are ignored: the parsers bound their input well below it. */
#define FUZZ_INPUT_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of the text at *p, cut off in place; NULL past the end. */
static inline const char *fuzz_next_line(char **p) {
        char *s = *p, *nl;

        if (!s)
                return NULL;
        nl = strchr(s, '\n');
        if (nl) {
                *nl = '\0';
                *p = nl + 1;
        } else
                *p = NULL;
        return s;
}

/* A command line from text, one argument a line, after argv[0] (set by the caller), at most
 * max arguments in all. Arguments starting with one of the prefixes in skip (a NULL-ended
 * list: the shortest abbreviations of --config, which reads files, and --help, which writes to
 * stdout, in the table at hand) are left out. Returns argc. */
static inline int fuzz_argv_from_lines(char *text, char **argv, int max, const char *const *skip) {
        const char *line;
        int argc = 1;

        while (argc < max && (line = fuzz_next_line(&text))) {
                const char *const *k = skip;

                while (*k && strncmp(line, *k, strlen(*k)) != 0)
                        k++;
                if (!*k)
                        argv[argc++] = (char *) line;
        }
        return argc;
}
