/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "keyholder.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "master-key.h"
#include "server-tls.h"

/* A request or an answer: this header, then len bytes. Both ends are the same binary, so
 * the integers are in host order. */
typedef struct MsgHeader {
        int32_t op_or_status; /* request: KEYHOLDER_OP_*; answer: 0 or -errno */
        uint32_t len;
} MsgHeader;

/* OPEN: this, then the key id, crypt and sealed. Answer: the plaintext. */
typedef struct OpenRequest {
        uint64_t version_id;
        int64_t ts;
        uint32_t key_id_len, crypt_len, sealed_len;
} OpenRequest;

/* SEAL: this, then the key id and the data. Answer: crypt (version 1), then sealed. */
typedef struct SealRequest {
        uint64_t version_id;
        int64_t ts;
        uint32_t key_id_len, data_len;
} SealRequest;

/* DATA_KEY: the master key's id, then the Knox key id (the rest). Answer: the data key. */
typedef struct DataKeyRequest {
        uint8_t master_id[CRYPTOR_KEY_ID_SIZE];
} DataKeyRequest;

/* The first message from the key holder: status, then on success the current key's id and
 * the audit checkpoint key. */
typedef struct Ready {
        int32_t status;
        uint8_t id[CRYPTOR_KEY_ID_SIZE];
        uint8_t audit_key[AUDIT_CHECKPOINT_KEY_SIZE];
        uint8_t ticket_seed[TLS_TICKET_SEED_SIZE];
} Ready;

struct KeyHolder {
        pid_t pid;
        int pidfd; /* to kill it safely even after the watcher reaped it */
        int fd;
        pthread_mutex_t lock; /* one exchange at a time on fd */
        bool broken;          /* an exchange failed half-way: fd is out of step */
        atomic_bool failed;
        atomic_bool stopping;
        pthread_t watcher;
        bool watching;
        Secret *audit_key;
        Secret *ticket_seed;
        CryptorRemote remote;
        Cryptor *cryptor;
};

/* ---- I/O ---- */

static int read_full(int fd, void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = read(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EPIPE;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int write_iov(int fd, struct iovec *iov, int n) {
        while (n > 0) {
                ssize_t k = writev(fd, iov, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                while (n > 0 && (size_t) k >= iov->iov_len) {
                        k -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }
        return 0;
}

/* ---- the key holder's side ---- */

/* The fixed part of a request: size bytes off the front of the payload. */
static int take_fixed(const uint8_t **p, size_t *n, void *q, size_t size) {
        if (*n < size)
                return -EPROTO;
        memcpy(q, *p, size);
        *p += size;
        *n -= size;
        return 0;
}

/* The Knox key id: len bytes at p, with no NUL among them. */
static int take_key_id(const uint8_t *p, size_t len, char **ret) {
        char *id;

        id = strndup((const char *) p, len);
        if (!id)
                return -ENOMEM;
        if (strlen(id) != len) {
                free(id);
                return -EPROTO;
        }
        *ret = id;
        return 0;
}

int keyholder_handle(const Cryptor *c, uint32_t op, const uint8_t *p, size_t n, Secret **ret) {
        _cleanup_free_ char *key_id = NULL;
        KeyVersion v = {};
        Secret *out;
        int r;

        if (op == KEYHOLDER_OP_OPEN) {
                OpenRequest q;

                r = take_fixed(&p, &n, &q, sizeof(q));
                if (r < 0)
                        return r;
                if ((uint64_t) q.key_id_len + q.crypt_len + q.sealed_len != n)
                        return -EPROTO;
                r = take_key_id(p, q.key_id_len, &key_id);
                if (r < 0)
                        return r;
                v = (KeyVersion){
                        .id = q.version_id,
                        .ts = q.ts,
                        .crypt = (uint8_t *) p + q.key_id_len,
                        .crypt_size = q.crypt_len,
                        .sealed = (uint8_t *) p + q.key_id_len + q.crypt_len,
                        .sealed_size = q.sealed_len,
                };
                r = cryptor_open_version(c, key_id, &v);
                if (r < 0)
                        return r;
                *ret = v.data;
                return 0;
        }

        if (op == KEYHOLDER_OP_SEAL) {
                SealRequest q;

                r = take_fixed(&p, &n, &q, sizeof(q));
                if (r < 0)
                        return r;
                if ((uint64_t) q.key_id_len + q.data_len != n)
                        return -EPROTO;
                r = take_key_id(p, q.key_id_len, &key_id);
                if (r < 0)
                        return r;
                v = (KeyVersion){.id = q.version_id, .ts = q.ts};
                v.data = secret_new_copy(p + q.key_id_len, q.data_len);
                if (!v.data)
                        return -ENOMEM;
                r = cryptor_seal_version(c, key_id, &v);
                if (r >= 0) {
                        out = secret_new(v.crypt_size + v.sealed_size);
                        if (out) {
                                memcpy(out->data, v.crypt, v.crypt_size);
                                memcpy(out->data + v.crypt_size, v.sealed, v.sealed_size);
                                *ret = out;
                        } else
                                r = -ENOMEM;
                }
                key_version_done(&v);
                return r;
        }

        if (op == KEYHOLDER_OP_DATA_KEY) {
                DataKeyRequest q;

                r = take_fixed(&p, &n, &q, sizeof(q));
                if (r < 0)
                        return r;
                r = take_key_id(p, n, &key_id);
                if (r < 0)
                        return r;
                return cryptor_data_key(c, q.master_id, key_id, ret);
        }

        return -EPROTO;
}

/* Everything but the socket and stderr goes; nothing in the key holder needs the network,
 * the store or the TLS files. */
static void close_other_fds(int keep) {
        if (keep > 3)
                (void) close_range(3, (unsigned) keep - 1, 0);
        (void) close_range((unsigned) keep + 1, ~0U, 0);
        (void) close(STDIN_FILENO);
        (void) close(STDOUT_FILENO);
}

/* No capability stays. Under keywardd.service there is none to drop (and the unit's
 * filter refuses capset): only capabilities held are dropped. */
static int drop_capabilities(void) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        bool any = false;

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(d); i++)
                any = any || d[i].effective || d[i].permitted || d[i].inheritable;
        if (!any)
                return 0;
        for (unsigned long cap = 0; cap <= CAP_LAST_CAP; cap++)
                (void) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        memset(d, 0, sizeof(d));
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

#if defined(__x86_64__)
#        define KEYHOLDER_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#        define KEYHOLDER_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#        define KEYHOLDER_AUDIT_ARCH AUDIT_ARCH_I386
#endif

#define ALLOW(nr) \
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* A sanitizer's runtime needs calls the key holder itself never makes (AddressSanitizer's
 * signal stack, LeakSanitizer's thread at exit): in such a build the filter is installed but
 * logs what it would refuse instead of refusing it. */
#if defined(__SANITIZE_ADDRESS__)
#        define KEYHOLDER_SECCOMP_DEFAULT SECCOMP_RET_LOG
#elif defined(__has_feature)
#        if __has_feature(address_sanitizer)
#                define KEYHOLDER_SECCOMP_DEFAULT SECCOMP_RET_LOG
#        endif
#endif
#ifndef KEYHOLDER_SECCOMP_DEFAULT
#        define KEYHOLDER_SECCOMP_DEFAULT (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#endif

/* Reading and writing the socket, memory, randomness for nonces, and leaving. Anything
 * else fails with EPERM; another architecture's system call kills the process. */
static int install_seccomp(void) {
#ifdef KEYHOLDER_AUDIT_ARCH
        struct sock_filter filter[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KEYHOLDER_AUDIT_ARCH, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                ALLOW(__NR_read),
                ALLOW(__NR_write),
                ALLOW(__NR_writev),
                ALLOW(__NR_close),
                ALLOW(__NR_exit),
                ALLOW(__NR_exit_group),
                ALLOW(__NR_futex),
                ALLOW(__NR_brk),
                ALLOW(__NR_mmap),
                ALLOW(__NR_munmap),
                ALLOW(__NR_mremap),
                ALLOW(__NR_mprotect),
                ALLOW(__NR_madvise),
                ALLOW(__NR_mlock),
                ALLOW(__NR_munlock),
                ALLOW(__NR_getrandom),
                ALLOW(__NR_getpid),
                ALLOW(__NR_gettid),
                ALLOW(__NR_clock_gettime),
                ALLOW(__NR_rt_sigreturn),
                ALLOW(__NR_rt_sigprocmask),
                ALLOW(__NR_restart_syscall),
                BPF_STMT(BPF_RET | BPF_K, KEYHOLDER_SECCOMP_DEFAULT),
        };
        struct sock_fprog prog = {.len = ELEMENTSOF(filter), .filter = filter};

        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
                return -errno;
        return 0;
#else
        return -EOPNOTSUPP;
#endif
}

static int harden(void) {
        int r;

        r = drop_capabilities();
        if (r < 0)
                return log_error_errno(r, "Key holder: failed to drop capabilities: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "Key holder: failed to set no_new_privs: %m");
        r = install_seccomp();
        if (r == -EOPNOTSUPP)
                log_warning("Key holder: no seccomp filter on this architecture.");
        else if (r < 0)
                return log_error_errno(r, "Key holder: failed to install its seccomp filter: %m");
        return 0;
}

/* Answer requests until keywardd closes the socket. A malformed request ends the key
 * holder: only keywardd speaks to it, so one means keywardd is broken or compromised. */
static int serve(const Cryptor *c, int fd) {
        for (;;) {
                _cleanup_(secret_freep) Secret *in = NULL, *out = NULL;
                MsgHeader h;
                struct iovec iov[2];
                int r;

                r = read_full(fd, &h, sizeof(h));
                if (r == -EPIPE)
                        return 0;
                if (r < 0 || h.len > KEYHOLDER_MESSAGE_MAX)
                        return -EPROTO;
                in = secret_new(h.len); /* a seal request carries plaintext */
                if (!in)
                        return -ENOMEM;
                r = read_full(fd, in->data, h.len);
                if (r < 0)
                        return r;
                r = keyholder_handle(c, (uint32_t) h.op_or_status, in->data, h.len, &out);
                if (r == -EPROTO)
                        return r;
                h = (MsgHeader){.op_or_status = r < 0 ? r : 0, .len = r < 0 ? 0 : (uint32_t) out->size};
                iov[0] = (struct iovec){&h, sizeof(h)};
                iov[1] = (struct iovec){r < 0 ? NULL : out->data, r < 0 ? 0 : out->size};
                r = write_iov(fd, iov, 2);
                if (r < 0)
                        return r;
        }
}

static _Noreturn void keyholder_main(int fd, const char *spec, char *const *old_specs) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        Ready ready = {};
        struct iovec iov;
        int r;

        /* keywardd stops it by closing the socket, after its last request; a SIGTERM to the
         * whole unit must not end it first. It never outlives keywardd. */
        (void) signal(SIGTERM, SIG_IGN);
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGHUP, SIG_IGN);
        (void) signal(SIGPIPE, SIG_IGN);
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        (void) prctl(PR_SET_NAME, "keywardd-keys", 0, 0, 0);
        close_other_fds(fd);
        (void) secret_harden_process();

        r = master_key_load(spec, &c);
        for (char *const *o = old_specs; r >= 0 && o && *o; o++)
                r = master_key_add_old(c, *o);
        if (r >= 0)
                r = cryptor_derive_key(
                        c, AUDIT_CHECKPOINT_KEY_INFO, ready.audit_key, sizeof(ready.audit_key));
        if (r >= 0)
                r = cryptor_derive_key(
                        c, TLS_TICKET_SEED_INFO, ready.ticket_seed, sizeof(ready.ticket_seed));
        if (r >= 0)
                r = harden();
        if (r >= 0)
                cryptor_key_id(c, ready.id);
        ready.status = r < 0 ? r : 0;
        iov = (struct iovec){&ready, sizeof(ready)};
        if (write_iov(fd, &iov, 1) < 0)
                r = -EPIPE;
        explicit_bzero(&ready, sizeof(ready));
        if (r >= 0)
                r = serve(c, fd);
        c = cryptor_free(c);
        /* A forked child leaves with _exit(): the parent's atexit handlers and stdio buffers
         * are not its own. */
        _exit(r < 0 ? 1 : 0);
}

/* ---- keywardd's side ---- */

static void keyholder_lost(KeyHolder *kh, const char *why) {
        if (atomic_load(&kh->stopping) || atomic_exchange(&kh->failed, true))
                return;
        log_error("The key holder (pid %d) %s; keywardd stops (systemd restarts it).", (int) kh->pid, why);
        (void) kill(getpid(), SIGTERM);
}

/* The exchange failed half-way: the socket is out of step, and keywardd stops. */
static void keyholder_break(KeyHolder *kh, const char *why) {
        kh->broken = true;
        keyholder_lost(kh, why);
}

/* One exchange; the answer's payload is read by the caller while the lock is held. */
static int exchange_begin(KeyHolder *kh, struct iovec *iov, int n, MsgHeader *ret) {
        int r;

        if (kh->broken)
                return -EIO;
        r = write_iov(kh->fd, iov, n);
        if (r >= 0)
                r = read_full(kh->fd, ret, sizeof(*ret));
        if (r < 0) {
                keyholder_break(kh, r == -EAGAIN ? "stopped answering" : "went away");
                return -EIO;
        }
        return 0;
}

static int exchange_payload(KeyHolder *kh, void *buf, size_t n) {
        int r = read_full(kh->fd, buf, n);

        if (r < 0) {
                keyholder_break(kh, "went away");
                return -EIO;
        }
        return 0;
}

/* Reads an answer's payload of len bytes (already checked against the call's bounds). */
typedef int (*AnswerReader)(KeyHolder *kh, uint32_t len, void *userdata);

/* One round trip of op: the request's parts in iov[1..n-1] (iov[0] takes the header), then
 * the answer, whose status is returned; a successful answer's payload must be min to max
 * bytes long and is read by read_answer, under the lock. */
static int
call(KeyHolder *kh,
     int32_t op,
     struct iovec *iov,
     int n,
     uint32_t min,
     uint32_t max,
     AnswerReader read_answer,
     void *userdata) {

        MsgHeader h = {.op_or_status = op};
        uint64_t len = 0;
        int r;

        for (int i = 1; i < n; i++)
                len += iov[i].iov_len;
        if (len > KEYHOLDER_MESSAGE_MAX)
                return -E2BIG;
        h.len = (uint32_t) len;
        iov[0] = (struct iovec){&h, sizeof(h)};

        pthread_mutex_lock(&kh->lock);
        r = exchange_begin(kh, iov, n, &h);
        if (r >= 0 && h.op_or_status < 0)
                r = h.op_or_status;
        else if (r >= 0 && (h.len < min || h.len > max)) {
                keyholder_break(kh, "answered nonsense");
                r = -EIO;
        } else if (r >= 0)
                r = read_answer(kh, h.len, userdata);
        pthread_mutex_unlock(&kh->lock);
        return r;
}

/* A version's plaintext or a data key: straight into locked memory, never anywhere else here. */
static int read_secret(KeyHolder *kh, uint32_t len, void *userdata) {
        Secret **ret = userdata;
        Secret *s;
        int r;

        s = secret_new(len);
        if (!s) {
                keyholder_break(kh, "could not be answered (out of memory)"); /* the payload was not read */
                return -ENOMEM;
        }
        r = exchange_payload(kh, s->data, len);
        if (r < 0) {
                secret_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int remote_open(void *userdata, const char *key_id, const KeyVersion *v, Secret **ret) {
        KeyHolder *kh = userdata;
        OpenRequest q = {
                .version_id = v->id,
                .ts = v->ts,
                .key_id_len = (uint32_t) strlen(key_id),
                .crypt_len = (uint32_t) v->crypt_size,
                .sealed_len = (uint32_t) v->sealed_size,
        };
        struct iovec iov[] = {
                {},
                {&q, sizeof(q)},
                {(void *) key_id, q.key_id_len},
                {v->crypt, v->crypt_size},
                {v->sealed, v->sealed_size},
        };

        return call(kh, KEYHOLDER_OP_OPEN, iov, (int) ELEMENTSOF(iov), 0, UINT32_MAX, read_secret, ret);
}

/* A sealed version: its per-version header and the ciphertext, which are no secrets. */
typedef struct SealAnswer {
        uint8_t *crypt;
        uint8_t *sealed;
        size_t sealed_size;
} SealAnswer;

static int read_sealed(KeyHolder *kh, uint32_t len, void *userdata) {
        SealAnswer *a = userdata;
        int r;

        a->crypt = malloc(CRYPTOR_CRYPT_SIZE_V1);
        a->sealed = malloc(len - CRYPTOR_CRYPT_SIZE_V1);
        if (!a->crypt || !a->sealed) {
                keyholder_break(kh, "could not be answered (out of memory)");
                return -ENOMEM;
        }
        a->sealed_size = len - CRYPTOR_CRYPT_SIZE_V1;
        r = exchange_payload(kh, a->crypt, CRYPTOR_CRYPT_SIZE_V1);
        if (r >= 0)
                r = exchange_payload(kh, a->sealed, a->sealed_size);
        return r;
}

static int remote_seal(
        void *userdata,
        const char *key_id,
        const KeyVersion *v,
        uint8_t **ret_sealed,
        size_t *ret_sealed_size,
        uint8_t **ret_crypt) {

        KeyHolder *kh = userdata;
        SealRequest q = {
                .version_id = v->id,
                .ts = v->ts,
                .key_id_len = (uint32_t) strlen(key_id),
                .data_len = (uint32_t) v->data->size,
        };
        struct iovec iov[] = {
                {},
                {&q, sizeof(q)},
                {(void *) key_id, q.key_id_len},
                {v->data->data, v->data->size},
        };
        SealAnswer a = {};
        int r;

        r =
                call(kh, KEYHOLDER_OP_SEAL, iov, (int) ELEMENTSOF(iov),
                     CRYPTOR_CRYPT_SIZE_V1 + CRYPTOR_TAG_SIZE, UINT32_MAX, read_sealed, &a);
        if (r < 0) {
                free(a.crypt);
                free(a.sealed);
                return r;
        }
        *ret_sealed_size = a.sealed_size;
        *ret_sealed = a.sealed;
        *ret_crypt = a.crypt;
        return 0;
}

static int remote_data_key(
        void *userdata, const uint8_t master_id[CRYPTOR_KEY_ID_SIZE], const char *key_id, Secret **ret) {
        KeyHolder *kh = userdata;
        DataKeyRequest q = {};
        struct iovec iov[] = {
                {},
                {&q, sizeof(q)},
                {(void *) key_id, strlen(key_id)},
        };

        memcpy(q.master_id, master_id, CRYPTOR_KEY_ID_SIZE);
        return call(
                kh, KEYHOLDER_OP_DATA_KEY, iov, (int) ELEMENTSOF(iov), CRYPTOR_DATA_KEY_SIZE,
                CRYPTOR_DATA_KEY_SIZE, read_secret, ret);
}

/* Waits for the key holder to exit: before keyholder_free() asked it to, that is a failure. */
static void *watch(void *userdata) {
        KeyHolder *kh = userdata;
        int status = 0;
        char why[64];

        while (waitpid(kh->pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFSIGNALED(status))
                (void) snprintf(why, sizeof(why), "was killed by signal %d", WTERMSIG(status));
        else
                (void) snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
        keyholder_lost(kh, why);
        return NULL;
}

int keyholder_start(const char *spec, char *const *old_specs, KeyHolder **ret) {
        _cleanup_(keyholder_freep) KeyHolder *kh = NULL;
        struct timeval tv = {.tv_sec = KEYHOLDER_TIMEOUT_SEC};
        sigset_t all, old;
        Ready ready = {};
        int sv[2], r;

        assert_return(spec, -EINVAL);
        assert_return(ret, -EINVAL);

        kh = calloc(1, sizeof(KeyHolder));
        if (!kh)
                return log_oom();
        kh->fd = -EBADF;
        kh->pidfd = -EBADF;
        kh->pid = -1;
        pthread_mutex_init(&kh->lock, NULL);

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to make the key holder's socket: %m");
        kh->pid = fork();
        if (kh->pid < 0) {
                r = -errno;
                (void) close(sv[0]);
                (void) close(sv[1]);
                return log_error_errno(r, "Failed to fork the key holder: %m");
        }
        if (kh->pid == 0) {
                (void) close(sv[0]);
                keyholder_main(sv[1], spec, old_specs);
        }
        (void) close(sv[1]);
        kh->fd = sv[0];
        kh->pidfd = (int) syscall(SYS_pidfd_open, kh->pid, 0); /* -1: kill by pid, unreaped */

        r = read_full(kh->fd, &ready, sizeof(ready));
        if (r >= 0 && ready.status < 0)
                r = ready.status;
        if (r < 0) {
                explicit_bzero(&ready, sizeof(ready));
                /* The key holder logged why; this says what it means. */
                return log_error_errno(
                        r == -EPIPE ? EIO : -r, "The key holder could not load the master key.");
        }
        kh->audit_key = secret_new_copy(ready.audit_key, sizeof(ready.audit_key));
        explicit_bzero(ready.audit_key, sizeof(ready.audit_key));
        kh->ticket_seed = secret_new_copy(ready.ticket_seed, sizeof(ready.ticket_seed));
        explicit_bzero(ready.ticket_seed, sizeof(ready.ticket_seed));
        if (!kh->audit_key || !kh->ticket_seed)
                return log_oom();
        if (setsockopt(kh->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(kh->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return log_error_errno(errno, "Failed to set the key holder's socket timeouts: %m");

        kh->remote = (CryptorRemote){
                .open = remote_open, .seal = remote_seal, .data_key = remote_data_key, .userdata = kh};
        r = cryptor_new_remote(&kh->remote, ready.id, &kh->cryptor);
        if (r < 0)
                return log_oom();

        /* The watcher takes no signal: SIGTERM and friends stay the main loop's. */
        sigfillset(&all);
        (void) pthread_sigmask(SIG_BLOCK, &all, &old);
        r = -pthread_create(&kh->watcher, NULL, watch, kh);
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to start watching the key holder: %m");
        kh->watching = true;

        log_debug("Key holder running as pid %d.", (int) kh->pid);
        *ret = TAKE_PTR(kh);
        return 0;
}

KeyHolder *keyholder_free(KeyHolder *kh) {
        if (!kh)
                return NULL;
        atomic_store(&kh->stopping, true);
        if (kh->fd >= 0)
                (void) close(kh->fd); /* the key holder reads EOF and exits */
        /* Unless it was lost: stalled (or stopped), it reads nothing and would be waited for
         * for ever. */
        if (atomic_load(&kh->failed) && kh->pidfd >= 0)
                (void) syscall(SYS_pidfd_send_signal, kh->pidfd, SIGKILL, NULL, 0);
        if (kh->watching)
                (void) pthread_join(kh->watcher, NULL);
        else if (kh->pid > 0) {
                (void) kill(kh->pid, SIGKILL);
                while (waitpid(kh->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        if (kh->pidfd >= 0)
                (void) close(kh->pidfd);
        cryptor_free(kh->cryptor);
        secret_free(kh->audit_key);
        secret_free(kh->ticket_seed);
        pthread_mutex_destroy(&kh->lock);
        free(kh);
        return NULL;
}

Cryptor *keyholder_cryptor(KeyHolder *kh) {
        return kh->cryptor;
}

const uint8_t *keyholder_audit_key(KeyHolder *kh) {
        return kh->audit_key->data;
}

const uint8_t *keyholder_ticket_seed(KeyHolder *kh) {
        return kh->ticket_seed->data;
}

pid_t keyholder_pid(KeyHolder *kh) {
        return kh->pid;
}

bool keyholder_failed(KeyHolder *kh) {
        return atomic_load(&kh->failed);
}
