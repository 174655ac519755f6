/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fileio.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hexdecoct.h"
#include "random-util.h"

static int open_regular(const char *path, int *ret_fd, struct stat *ret_st) {
        _cleanup_close_ int fd = -EBADF;

        /* O_NONBLOCK: opening a FIFO must not wait for a writer; reads of a regular file
         * ignore the flag. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, ret_st) < 0)
                return -errno;
        if (!S_ISREG(ret_st->st_mode))
                return -EBADFD;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int read_fd_all(int fd, uint8_t *p, size_t max, size_t *ret_size) {
        size_t n = 0;

        /* Read one byte past max so that a file that grew is caught. */
        for (;;) {
                ssize_t l = read(fd, p + n, max + 1 - n);

                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        break;
                n += (size_t) l;
                if (n > max)
                        return -E2BIG;
        }
        *ret_size = n;
        return 0;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *p = NULL;
        struct stat st;
        size_t n = 0;
        int r;

        r = open_regular(path, &fd, &st);
        if (r < 0)
                return r;
        if ((uint64_t) st.st_size > max)
                return -E2BIG;

        p = malloc(max + 2);
        if (!p)
                return -ENOMEM;
        r = read_fd_all(fd, (uint8_t *) p, max, &n);
        if (r < 0)
                return r;
        p[n] = '\0';

        *ret = TAKE_PTR(p);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_secret_file(const char *path, size_t max, Secret **ret) {
        _cleanup_(secret_freep) Secret *buf = NULL, *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t n = 0;
        int r;

        r = open_regular(path, &fd, &st);
        if (r < 0)
                return r;
        if (st.st_mode & 0044)
                return -EPERM;
        if ((uint64_t) st.st_size > max)
                return -E2BIG;

        buf = secret_new(max + 1);
        if (!buf)
                return -ENOMEM;
        r = read_fd_all(fd, buf->data, max, &n);
        if (r < 0)
                return r;

        s = secret_new_copy(buf->data, n);
        if (!s)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *slash;

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        else {
                if (slash == dir)
                        slash[1] = '\0';
                else
                        *slash = '\0';
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        return RET_NERRNO(fsync(fd));
}

int write_fd_all(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;

        while (n > 0) {
                ssize_t l = write(fd, p, n);

                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        return -EIO;
                p += l;
                n -= (size_t) l;
        }
        return 0;
}

int write_file_atomic(const char *path, const void *p, size_t n, mode_t mode) {
        return write_file_replace(path, p, n, mode, true);
}

int write_file_replace(const char *path, const void *p, size_t n, mode_t mode, bool durable) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *base;
        uint8_t rnd[8];
        char hex[sizeof(rnd) * 2 + 1];
        int r;

        r = random_bytes(rnd, sizeof(rnd));
        if (r < 0)
                return r;
        hexencode(rnd, sizeof(rnd), hex);

        base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (isempty(base))
                return -EINVAL;
        if (asprintf(&tmp, "%.*s.#%s.%s", (int) (base - path), path, base, hex) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }

        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;

        /* The umask may have narrowed the mode; set exactly what was asked for. */
        r = RET_NERRNO(fchmod(fd, mode));
        if (r >= 0)
                r = write_fd_all(fd, p, n);
        if (r >= 0 && durable)
                r = RET_NERRNO(fsync(fd));
        if (r >= 0)
                r = RET_NERRNO(rename(tmp, path));
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return durable ? fsync_directory_of(path) : 0;
}
