/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* JSON helpers on json-c: Go-compatible output, bounded parsing, exact integers. */

#include <json-c/json.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

#define JSON_DEPTH_MAX 16

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(json_object *, json_object_put, NULL);

/* A JSON string exactly as Go's encoding/json writes it: "\"", "\\", \n \r \t, other
 * controls as \u00XX, '<' '>' '&' as \u003c \u003e \u0026, U+2028/U+2029 escaped, and
 * each byte of invalid UTF-8 as \ufffd. */
/* Whether s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool utf8_is_valid(const char *s, size_t n);
int json_append_string(Buf *b, const char *s, size_t n);
int json_append_cstring(Buf *b, const char *s);
int json_append_int64(Buf *b, int64_t v);
int json_append_uint64(Buf *b, uint64_t v);

/* Parse exactly one JSON value from s (trailing white space allowed, anything else is an
 * error), nesting at most JSON_DEPTH_MAX deep. The tokener's scratch buffer is wiped, so
 * parsing a secret leaves no copy but the returned tree (wipe it with json_wipe()).
 * -EBADMSG with a message (when reterr_message is not NULL) on malformed input. */
int json_parse(const char *s, size_t n, json_object **ret, const char **reterr_message);

/* A decoder's refusal: message to *reterr_message (when not NULL), -EBADMSG returned. */
int json_fail(const char **reterr_message, const char *message);

/* Defines int name(const char *s, size_t n, Type *ret, const char **reterr_message): the JSON
 * text s parsed with json_parse(), then decoded by from_json(o, ret, reterr_message); the tree
 * is let go with free_tree (json_wipe_putp when it may hold secrets). */
#define DEFINE_JSON_TEXT_DECODER(name, Type, from_json, free_tree)                  \
        int name(const char *s, size_t n, Type *ret, const char **reterr_message) { \
                _cleanup_(free_tree) json_object *o = NULL;                         \
                int r;                                                              \
                                                                                    \
                assert_return(s || n == 0, -EINVAL);                                \
                assert_return(ret, -EINVAL);                                        \
                                                                                    \
                r = json_parse(s, n, &o, reterr_message);                           \
                if (r < 0)                                                          \
                        return r;                                                   \
                return from_json(o, ret, reterr_message);                           \
        }

/* Overwrite every string in the tree with zeros (before json_object_put on secrets). */
void json_wipe(json_object *o);
/* json_wipe() then json_object_put(), for _cleanup_ of trees that hold secrets. */
static inline void json_wipe_putp(json_object **o) {
        if (*o) {
                json_wipe(*o);
                json_object_put(*o);
        }
}

/* Field lookup as Go's decoder does it: an exact match first, else case-insensitive. */
json_object *json_get_field(json_object *o, const char *name);

/* Integers, exactly: -EBADMSG unless o is a JSON integer in range. */
int json_get_int64(json_object *o, int64_t *ret);
int json_get_uint64(json_object *o, uint64_t *ret);
/* A JSON string; -EBADMSG otherwise. The pointer lives as long as o. */
int json_get_string(json_object *o, const char **ret, size_t *ret_len);
/* The same for a string used as a C string: -EBADMSG when it holds a NUL byte (a C string
 * could not tell "a\u0000b" from "a"). */
int json_get_cstring(json_object *o, const char **ret);
