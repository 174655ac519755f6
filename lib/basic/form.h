/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* application/x-www-form-urlencoded bodies and URL query strings, read as Go's
 * url.ParseQuery reads them, since Knox's server is written in Go. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define FORM_FIELDS_MAX 1024

typedef struct FormField {
        const char *key; /* NUL-terminated, unescaped, inside the form's buffer */
        const char *value;
        size_t key_len;
        size_t value_len;
} FormField;

typedef struct Form {
        FormField *fields; /* in input order */
        size_t n;
        char *buf; /* private: the unescaped copy of the input, wiped on done */
        size_t buf_size;
} Form;

#define FORM_NULL ((Form){})

/* Pairs are split at '&', key from value at the first '='; both are unescaped with '+' as a
 * space. As in Go, a pair that fails to unescape or whose key holds ';' is skipped, empty
 * pairs are skipped, and the whole input is still read: the return value is 0 when every
 * pair was good, -EBADMSG when one was skipped (the form is filled in either case), and
 * -E2BIG (form not filled) with more than FORM_FIELDS_MAX pairs. The input is copied: the
 * caller may wipe it right after. */
int form_parse(const char *s, size_t n, Form *ret);
void form_done(Form *f);

static inline void form_donep(Form *f) {
        form_done(f);
}
#define _cleanup_form_ _cleanup_(form_donep)

/* The first field with this key (Go's Values.Get), the last one, or NULL. */
const FormField *form_get(const Form *f, const char *key);
const FormField *form_get_last(const Form *f, const char *key);
