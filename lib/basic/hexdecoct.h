/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The value of one hex digit (either case), or -EINVAL. */
int unhexchar(char c);

/* Lowercase hex of n bytes into ret (2n+1 bytes, NUL-terminated). */
void hexencode(const void *p, size_t n, char *ret);

/* Standard base64 with padding (RFC 4648 §4), appended to b. */
int base64_append(Buf *b, const void *p, size_t n);
size_t base64_encoded_size(size_t n);

/* Decode standard base64 with padding, as Go's base64.StdEncoding does: CR and LF are
 * skipped, padding is required, anything else is -EBADMSG. Output goes to a buffer of
 * at least base64_decoded_max(len) bytes; *ret_size gets the decoded length. */
size_t base64_decoded_max(size_t len);
int base64_decode(const char *s, size_t len, uint8_t *out, size_t *ret_size);

/* The input offset Go's decoder names in "illegal base64 data at input byte N". */
size_t base64_error_offset(const char *s, size_t len);

/* URL-safe alphabet without padding (Go's base64.RawURLEncoding). */
int base64url_decode(const char *s, size_t len, uint8_t *out, size_t *ret_size);

/* Percent-decoding as Go's url.QueryUnescape: '+' becomes ' ' when plus_is_space.
 * Writes at most len bytes plus a NUL to out; -EBADMSG on a bad escape. */
int url_unescape(const char *s, size_t len, bool plus_is_space, char *out, size_t *ret_len);
/* Percent-encoding of everything but unreserved characters (Go's url.QueryEscape). */
int url_escape_append(Buf *b, const char *s, size_t len);
