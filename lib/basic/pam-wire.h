/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The messages pam_keyward and keyward-agent exchange over pam.sock (a SOCK_SEQPACKET
 * socket, 0600 root): one request and one answer per connection, each a single packet of
 * NUL-terminated fields, the first naming the verb.
 *
 *   LOGIN user password rhost   -> OK handle user | DENIED message | UNAVAILABLE message
 *   BIND handle uid session     -> OK | ERROR message
 *   RELEASE handle              -> OK | ERROR message
 *
 * LOGIN asks keywardd (POST /v0/auth/login/) and keeps the token under a random handle; BIND
 * gives it to a uid, which must be the user who logged in, and a logind session (empty when
 * there is none); RELEASE drops the token bound under that handle and revokes it. */

#include <stddef.h>

#define PAM_WIRE_MAX 8192
#define PAM_WIRE_FIELDS_MAX 8
#define PAM_WIRE_HANDLE_SIZE 33 /* 32 hex digits and a NUL */

/* Split a packet into its fields: the packet must end in a NUL and hold at most max fields.
 * Returns the number of fields or -EBADMSG. The fields point into buf. */
int pam_wire_split(const char *buf, size_t len, const char *fields[], size_t max);

/* Join n fields into buf; returns the length or -E2BIG (also for a field holding no text). */
int pam_wire_join(char *buf, size_t size, const char *const fields[], size_t n);
