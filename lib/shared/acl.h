/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The ACL engine: Knox's validation, merge and access-decision rules (protocol.md §3.6,
 * §4.4 to §4.6). */

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "key.h"

/* No None entry, no two entries with the same (type, id). -EINVAL with Knox's message
 * ("ACL contains None access", "Duplicate entries in ACL"). */
int acl_validate(const Acl *acl, const char **reterr_message);

/* Knox's IsValidPrincipal for one entry (applied by PUT access to entries that are not
 * None). -EINVAL with Knox's message. */
int access_validate_principal(const Access *a, const char **reterr_message);

/* Merge one entry the way PUT access does: an entry with the same (type, id) takes the new
 * access in place, or is removed by None; otherwise the entry is appended, unless None. */
int acl_merge(Acl *acl, const Access *a);

/* The ACL of a new key (protocol.md §4.5): the request's entries as sent, then {User, creator, Admin} and
 * each server-wide default merged in turn. As in Knox the request's own entries are not
 * merged, so a None or duplicate in them is left for acl_validate(). On failure *acl is
 * unchanged. */
int acl_build_for_create(Acl *acl, const char *creator, const Acl *defaults);

typedef enum PrincipalKind {
        PRINCIPAL_KIND_USER,
        PRINCIPAL_KIND_MACHINE,
        PRINCIPAL_KIND_SERVICE,
        _PRINCIPAL_KIND_MAX,
        _PRINCIPAL_KIND_INVALID = -EINVAL,
} PrincipalKind;

/* "user", "machine", "service" */
const char *principal_kind_to_string(PrincipalKind k) _const_;

/* One authenticated identity of a request. */
typedef struct Principal {
        PrincipalKind kind;
        char *id;             /* user name, hostname as sent, or SPIFFE ID */
        char **groups;        /* users only: NULL-terminated, may be NULL */
        const char *provider; /* the auth provider that produced it ("mtls", ...): a literal */
} Principal;

/* All principals of a request; the first is the default principal (protocol.md §5). */
typedef struct Principals {
        Principal *items;
        size_t n;
} Principals;

void principal_done(Principal *p);
void principals_done(Principals *ps);
/* Append a principal; id and groups are copied, provider is a literal and is not. */
int principals_add(
        Principals *ps, PrincipalKind kind, const char *id, char *const *groups, const char *provider);
const Principal *principals_default(const Principals *ps);

/* Knox's type string for the audit log: "user" for one principal, nothing for none, or for
 * several "mux[mtls=>machine,spiffe-fallback=>service]" in the order they were added. */
int principals_type_append(const Principals *ps, Buf *b);

/* Whether one principal, or any of several, holds at least `need` on the ACL (protocol.md §4.6). An
 * entry grants its level and those below; a None entry grants nothing. */
bool acl_allows_principal(const Acl *acl, const Principal *p, AccessType need);
bool acl_allows(const Acl *acl, const Principals *ps, AccessType need);
