/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's key holder: the master key (a file, a credential, or the data key a PKCS#11
 * token unseals) lives in a small process forked at start, and nowhere else. It loads the
 * key, derives the audit checkpoint key once, then drops what it can (capabilities,
 * dumpability, every file descriptor but its socket, and with a seccomp filter every system
 * call but reading, writing and memory), and answers seal and open requests over a
 * socketpair until keywardd closes it. keywardd's workers use it through a remote Cryptor,
 * so a memory disclosure in a worker cannot reveal the master key. See keywardd(8), "KEY
 * HOLDER", and docs/keyholder.md. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cryptor.h"
#include "secret.h"
#include "server-audit.h"

typedef struct KeyHolder KeyHolder;

/* Fork the key holder with the master key spec (and old ones: --old-master-key) and wait for
 * it to load them. Call before any thread is started. Errors are logged (the key holder
 * logs why it could not load a key). */
int keyholder_start(const char *spec, char *const *old_specs, KeyHolder **ret);
/* Close the socket (the key holder exits), reap it, stop watching it. */
KeyHolder *keyholder_free(KeyHolder *kh);
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyHolder *, keyholder_free);

/* The cryptor that asks the key holder; owned by kh. */
Cryptor *keyholder_cryptor(KeyHolder *kh);
/* The audit checkpoint key it derived at start. */
const uint8_t *keyholder_audit_key(KeyHolder *kh);
/* The seed of the TLS session ticket keys (TLS_TICKET_SEED_SIZE bytes, server-tls.h). */
const uint8_t *keyholder_ticket_seed(KeyHolder *kh);
pid_t keyholder_pid(KeyHolder *kh);
/* Whether it died (or stopped answering) while keywardd served: keywardd was then sent
 * SIGTERM, and must exit with a failure. */
bool keyholder_failed(KeyHolder *kh);

/* The key holder's side of one request, for the fuzz target: op and payload as read from
 * the socket; on success *ret is the answer's payload. -EPROTO for a malformed request (the
 * key holder then exits); the cryptor's errors otherwise. */
#define KEYHOLDER_OP_OPEN 1
#define KEYHOLDER_OP_SEAL 2
#define KEYHOLDER_OP_DATA_KEY 3
#define KEYHOLDER_MESSAGE_MAX (64U * 1024 * 1024)

/* How long keywardd waits for the key holder to take a request or answer it (SO_SNDTIMEO and
 * SO_RCVTIMEO) before it declares it lost and stops. An answer takes microseconds (an HKDF, or
 * one AES-GCM open: about 50 ms for the largest message), and a request waits behind one
 * request of each other worker at most (64 workers at most), so 10 s of silence means a stalled process,
 * never a slow one; and it is well under the 30 s or more that clients and load balancers give a request, so
 * they see an error and systemd restarts keywardd before they give up on it. */
#define KEYHOLDER_TIMEOUT_SEC 10
int keyholder_handle(const Cryptor *c, uint32_t op, const uint8_t *p, size_t n, Secret **ret);
