/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd audit-verify: the audit files' chain, checkpoints and anchor. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-verify.h"
#include "config.h"
#include "keywardd.h"
#include "log.h"
#include "master-key.h"
#include "parse.h"
#include "server-audit.h"
#include "store.h"

typedef struct VerifyArgs {
        char *master_key;
        char *db;
        char *host;
        char *anchor;
        char *first_seq;
} VerifyArgs;

/* clang-format off */
static const ConfigItem verify_items[] = {
        { "audit-verify", "master-key", config_parse_string, offsetof(VerifyArgs, master_key), "master key, to check the checkpoints too: FILE, credential:NAME or pkcs11: URI", "MK" },
        { "audit-verify", "db",         config_parse_string, offsetof(VerifyArgs, db),         "store holding the chain's anchor: the files must hold its line (catches a file cut back or missing)", "DB" },
        { "audit-verify", "host",       config_parse_string, offsetof(VerifyArgs, host),       "whose anchor to read from --db (default: this host's name, as keywardd serve names itself)", "NAME" },
        { "audit-verify", "anchor",     config_parse_string, offsetof(VerifyArgs, anchor),     "the chain's anchor as keywardd logged it: the files must hold line SEQ with hash HASH", "SEQ:HASH" },
        { "audit-verify", "first-seq",  config_parse_string, offsetof(VerifyArgs, first_seq),  "the seq the first file starts at (default 1: the chain's beginning), after older files were removed", "N" },
};
/* clang-format on */

/* The anchor for audit-verify --db: -ENOENT (no anchor) is an error, the store was named. */
static int verify_anchor_from_db(const VerifyArgs *a, AuditVerifyOptions *o) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *shown = NULL;
        char hash[STORE_AUDIT_HASH_HEX + 1], host[256], spelled[24 + STORE_AUDIT_HASH_HEX];
        const char *name = a->host;
        int r;

        if (!name) {
                if (gethostname(host, sizeof(host)) < 0)
                        return log_error_errno(-errno, "Failed to get the host name: %m");
                host[sizeof(host) - 1] = '\0';
                name = host;
        }
        r = store_open_existing(a->db, &store);
        if (r >= 0)
                r = store_audit_anchor_get(store, name, &o->anchor_seq, hash);
        if (r == -ENOENT)
                return log_error_errno(
                        r, "The store '%s' holds no audit anchor for '%s'.",
                        store_url_display(a->db, &shown), name);
        if (r < 0)
                return log_error_errno(
                        r, "Failed to read the audit anchor from '%s': %m",
                        store_url_display(a->db, &shown));
        (void) snprintf(spelled, sizeof(spelled), "%" PRIu64 ":%s", o->anchor_seq, hash);
        if (audit_anchor_parse(spelled, &o->anchor_seq, o->anchor_hash) < 0)
                return log_error_errno(-EBADMSG, "The store's audit anchor is not a hash.");
        o->have_anchor = true;
        return 0;
}

/* keywardd audit-verify [--master-key MK] FILE...: exit 0 intact, 1 broken, 2 usage. */
int verb_audit_verify(int argc, char **argv) {
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        _cleanup_free_ char **files = NULL;
        uint8_t key[AUDIT_CHECKPOINT_KEY_SIZE];
        AuditVerifyOptions o = {};
        VerifyArgs a = {};
        int r;

        r = config_parse_argv(argc, argv, verify_items, ELEMENTSOF(verify_items), &a, &files);
        if (r != 0)
                goto finish;
        if (!files || !files[0] || (a.db && a.anchor)) {
                log_error(
                        "Usage: keywardd audit-verify [--master-key MK] [--db DB [--host NAME] | --anchor SEQ:HASH] [--first-seq N] FILE...");
                r = -EINVAL;
                goto finish;
        }
        if (a.first_seq && (safe_atou64(a.first_seq, &o.first_seq) < 0 || o.first_seq == 0)) {
                log_error("Invalid --first-seq '%s': expected a seq, 1 or more.", a.first_seq);
                r = -EINVAL;
                goto finish;
        }
        if (a.anchor) {
                if (audit_anchor_parse(a.anchor, &o.anchor_seq, o.anchor_hash) < 0) {
                        log_error(
                                "Invalid --anchor '%s': expected SEQ:HASH (64 lowercase hex digits).",
                                a.anchor);
                        r = -EINVAL;
                        goto finish;
                }
                o.have_anchor = true;
        }
        if (a.db) {
                r = verify_anchor_from_db(&a, &o);
                if (r < 0) {
                        r = -EIO; /* not a usage error */
                        goto finish;
                }
        }
        if (a.master_key) {
                r = master_key_load(a.master_key, &cryptor);
                if (r < 0) {
                        log_error_errno(r, "Failed to load the master key: %m");
                        r = -EIO; /* not a usage error */
                        goto finish;
                }
                r = cryptor_derive_key(cryptor, AUDIT_CHECKPOINT_KEY_INFO, key, sizeof(key));
                if (r < 0) {
                        log_error_errno(r, "Failed to derive the audit checkpoint key: %m");
                        goto finish;
                }
        }
        o.key = a.master_key ? key : NULL;
        r = audit_verify_files_with(files, &o, stdout);
        if (r > 0)
                r = -EBADMSG; /* broken: exit 1 */
        else if (r == -EINVAL)
                r = -EIO;

finish:
        explicit_bzero(key, sizeof(key));
        free(a.master_key);
        free(a.db);
        free(a.host);
        free(a.anchor);
        free(a.first_seq);
        return r > 0 ? 0 : r;
}
