/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Knox wire codec: the response envelope, keys and versions (API form, with plaintext
 * data) and the stored form of versions (sealed data and cryptor metadata). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"

/* Knox's sub-codes (protocol.md §2). */
typedef enum KnoxCode {
        KNOX_OK = 0,
        KNOX_INTERNAL_SERVER_ERROR = 1,
        KNOX_KEY_IDENTIFIER_EXISTS = 2,
        KNOX_KEY_VERSION_DOES_NOT_EXIST = 3,
        KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST = 4,
        KNOX_UNAUTHENTICATED = 5,
        KNOX_UNAUTHORIZED = 6,
        KNOX_NOT_YET_IMPLEMENTED = 7,
        KNOX_NOT_FOUND = 8,
        KNOX_NO_KEY_ID = 9,
        KNOX_NO_KEY_DATA = 10,
        KNOX_BAD_REQUEST_DATA = 11,
        KNOX_BAD_KEY_FORMAT = 12,
        KNOX_BAD_PRINCIPAL_IDENTIFIER = 13,
        _KNOX_CODE_MAX,
        _KNOX_CODE_INVALID = -EINVAL,
} KnoxCode;

/* The HTTP status that goes with a code (200 for KNOX_OK). */
int knox_code_http_status(KnoxCode code) _const_;

/* {"status":"ok","code":0,"host":"h","ts":1,"message":"","data":  ...  }\n
 * begin writes everything up to and including "data":; the caller appends the payload
 * (or "null") and end closes the object and adds the newline. status is "ok" for KNOX_OK
 * and "error" otherwise. */
int knox_envelope_begin(Buf *b, KnoxCode code, const char *host, int64_t ts_ns, const char *message);
int knox_envelope_end(Buf *b);

/* {"id":1,"data":"<base64>","status":"Primary","ts":2}; data must be set. */
int knox_version_json_append(Buf *b, const KeyVersion *v);

/* {"id":..,"acl":[...],"versions":[...],"hash":".."} in Knox's order. Versions whose
 * status is above max_status are left out (PRIMARY: primary only; ACTIVE: primary and
 * active; INACTIVE: all), in stored order; the hash is always k->hash. With with_acl
 * false the acl is written as [] as the server does on GET key. */
int knox_key_json_append(Buf *b, const Key *k, VersionStatus max_status, bool with_acl);

/* A key in API form, checked as Knox's client checks it: non-empty id, acl present (not
 * null), versions present and non-empty, non-empty hash, each version with id, base64
 * data, a valid status and ts. Data is decoded into Secrets and the parse leaves no
 * plaintext copy behind. -EBADMSG with a message on anything else. knox_key_from_json()
 * leaves the tree to its caller, who wipes it (json_wipe()); knox_key_parse() wipes its own.
 * The hash must be 64 lowercase hex digits; the key id pattern is not checked (Knox's client
 * does not either). */
int knox_key_from_json(json_object *o, Key **ret, const char **reterr_message);
int knox_key_parse(const char *s, size_t n, Key **ret, const char **reterr_message);

/* The stored form of a version list: [{"id":1,"data":"<b64 sealed>","status":"Primary",
 * "ts":2,"crypt":"<b64 crypt>"}, ...] (Knox's DBKey versions). */
int knox_sealed_versions_json_append(Buf *b, const KeyVersion *versions, size_t n);
int knox_sealed_versions_parse(
        const char *s, size_t n, KeyVersion **ret_versions, size_t *ret_n, const char **reterr_message);

/* A decoded response envelope (client side). */
typedef struct KnoxResponse {
        bool ok;       /* status was "ok" */
        KnoxCode code; /* may be outside the known range when a server sends one */
        char *host;
        int64_t ts;
        char *message;
        json_object *data; /* owned; NULL for JSON null */
} KnoxResponse;

int knox_response_parse(const char *s, size_t n, KnoxResponse *ret, const char **reterr_message);
/* Wipes the strings of data (it may hold key material) before it drops the reference. */
void knox_response_done(KnoxResponse *r);
