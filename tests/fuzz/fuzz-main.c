/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a fuzz target's corpus without libFuzzer, as a TAP test: every file of
 * $KEYWARD_TOP_SRCDIR/tests/fuzz/corpus/<program name>/, or the files named on the
 * command line, goes through LLVMFuzzerTestOneInput() once. A crash fails the test. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fuzz.h"
#include "macro.h"
#include "strv.h"

static int run_file(const char *path, unsigned *n) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(path, 16 * 1024 * 1024, &data, &size);
        if (r < 0) {
                printf("not ok %u - %s: %s\n", ++*n, path, strerror(-r));
                return r;
        }
        (void) LLVMFuzzerTestOneInput((const uint8_t *) data, size);
        printf("ok %u - %s\n", ++*n, path);
        return 0;
}

static int compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char *argv[]) {
        _cleanup_strv_free_ char **files = NULL;
        _cleanup_free_ char *dir = NULL;
        const char *top, *name;
        unsigned n = 0;
        int failed = 0;

        if (argc > 1) {
                printf("1..%d\n", argc - 1);
                for (int i = 1; i < argc; i++)
                        failed |= run_file(argv[i], &n) < 0;
                return failed ? EXIT_FAILURE : EXIT_SUCCESS;
        }

        top = secure_getenv("KEYWARD_TOP_SRCDIR") ?: ".";
        name = strrchr(argv[0], '/');
        name = name ? name + 1 : argv[0];
        if (strncmp(name, "lt-", 3) == 0) /* libtool's wrapper */
                name += 3;
        if (asprintf(&dir, "%s/tests/fuzz/corpus/%s", top, name) < 0) {
                dir = NULL;
                return EXIT_FAILURE;
        }

        DIR *d = opendir(dir);
        if (!d) {
                printf("1..0 # SKIP no corpus at %s\n", dir);
                return 77;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char *path;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                        closedir(d);
                        return EXIT_FAILURE;
                }
                if (strv_push(&files, path) < 0) {
                        free(path);
                        closedir(d);
                        return EXIT_FAILURE;
                }
        }
        closedir(d);

        qsort(files, strv_length(files), sizeof(char *), compare);
        printf("1..%zu\n", strv_length(files));
        STRV_FOREACH(f, files)
                failed |= run_file(*f, &n) < 0;
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
