/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* ACL entries as Knox writes and reads them: {"type":"User","id":"alice","access":"Admin"}. */

#include <json-c/json.h>

#include "buf.h"
#include "key.h"

int access_json_append(Buf *b, const Access *a);
/* An array, "[]" when empty. */
int acl_json_append(Buf *b, const Acl *acl);

/* Decoding rejects an unknown principal type ("json: Invalid PrincipalType to convert"),
 * an unknown access ("json: Invalid AccessType to convert") and any value of the wrong
 * JSON type, each with -EBADMSG and a message for the API's 400/11. A JSON null ACL is
 * an empty ACL, as in Go. */
int access_from_json(json_object *o, Access *ret, const char **reterr_message);
int acl_from_json(json_object *o, Acl *ret, const char **reterr_message);
int access_parse(const char *s, size_t n, Access *ret, const char **reterr_message);
int acl_parse(const char *s, size_t n, Acl *ret, const char **reterr_message);
