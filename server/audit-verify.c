/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "audit-verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hexdecoct.h"
#include "json-util.h"
#include "log.h"
#include "secret.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(FILE *, fclose, NULL);

void audit_verifier_init(AuditVerifier *v, const uint8_t *key, FILE *out) {
        *v = (AuditVerifier){.key = key, .out = out, .first_seq = 1};
}

void audit_verifier_file(AuditVerifier *v, const char *name) {
        v->file = name;
        v->line = 0;
        v->n_lines = 0;
        v->n_checkpoints = 0;
        v->last_final = false;
}

static int broken(AuditVerifier *v, const char *why) {
        fprintf(v->out, "%s:%" PRIu64 ": %s\n", v->file, v->line, why);
        v->broken = true;
        return 1;
}

static bool parse_hex(const char *s, size_t len, uint8_t *ret, size_t size) {
        if (len != 2 * size)
                return false;
        for (size_t i = 0; i < size; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);

                /* Lowercase only: one spelling per hash. */
                if (hi < 0 || lo < 0 || (s[2 * i] >= 'A' && s[2 * i] <= 'F') ||
                    (s[2 * i + 1] >= 'A' && s[2 * i + 1] <= 'F'))
                        return false;
                ret[i] = (uint8_t) (hi << 4 | lo);
        }
        return true;
}

/* A checkpoint's HMAC: the line must end in ,"hmac":"<hex>"} and the hex must be the HMAC of
 * what comes before it. */
static int check_checkpoint(AuditVerifier *v, const char *line, size_t len) {
        static const char tag[] = ",\"hmac\":\"";
        uint8_t want[AUDIT_HASH_SIZE], got[AUDIT_HASH_SIZE];
        size_t prefix;

        if (len < AUDIT_HMAC_TAIL_SIZE)
                return broken(v, "a checkpoint without its hmac");
        prefix = len - AUDIT_HMAC_TAIL_SIZE;
        if (memcmp(line + prefix, tag, sizeof(tag) - 1) != 0 || memcmp(line + len - 2, "\"}", 2) != 0 ||
            !parse_hex(line + prefix + sizeof(tag) - 1, AUDIT_HASH_HEX, got, sizeof(got)))
                return broken(v, "a checkpoint without its hmac");
        if (!v->key)
                return 0;
        if (audit_checkpoint_hmac(v->key, line, prefix, want) < 0)
                return broken(v, "cannot compute the checkpoint's HMAC");
        if (!memeq_secure(want, got, sizeof(want)))
                return broken(
                        v,
                        "the checkpoint's HMAC does not verify: the lines before it were rewritten, or the "
                        "master key is another");
        return 0;
}

int audit_verifier_line(AuditVerifier *v, const char *line, size_t len, bool newline) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *seq, *prev, *cp;
        uint8_t prev_hash[AUDIT_HASH_SIZE];
        const char *err = NULL;
        int64_t s;

        v->line++;
        if (!newline)
                return broken(v, "the last line is not whole (no newline): the file was cut");
        if (json_parse(line, len, &o, &err) < 0 || !json_object_is_type(o, json_type_object))
                return broken(v, "not a JSON object");
        if (!json_object_object_get_ex(o, "seq", &seq) || !json_object_is_type(seq, json_type_int) ||
            !json_object_object_get_ex(o, "prev", &prev) || !json_object_is_type(prev, json_type_string) ||
            !parse_hex(
                    json_object_get_string(prev), (size_t) json_object_get_string_len(prev), prev_hash,
                    sizeof(prev_hash)))
                return broken(v, "no chain members (seq, prev): not a line keywardd sealed");
        s = json_object_get_int64(seq);
        if (s <= 0)
                return broken(v, "seq is not a positive number");

        if (v->have_prev) {
                if (memcmp(prev_hash, v->prev, sizeof(prev_hash)) != 0)
                        return broken(
                                v,
                                v->line == 1 ?
                                        "does not continue the file before it: files are missing, "
                                        "out of order, or that file's end was cut" :
                                        "prev is not the hash of the line before: a line was deleted, "
                                        "inserted, edited or moved here");
                if ((uint64_t) s != v->prev_seq + 1)
                        return broken(v, "seq does not follow the line before");
        } else if (v->first_seq != 0 && (uint64_t) s != v->first_seq) {
                fprintf(v->out,
                        "%s:%" PRIu64 ": starts at seq %" PRIi64 ", not %" PRIu64
                        ": the lines before it are missing (after removing older files on purpose, "
                        "say where the files start with --first-seq)\n",
                        v->file, v->line, s, v->first_seq);
                v->broken = true;
                return 1;
        }

        v->last_final = false;
        if (json_object_object_get_ex(o, "checkpoint", &cp)) {
                json_object *final;

                if (check_checkpoint(v, line, len) != 0)
                        return 1;
                v->n_checkpoints++;
                v->last_final = json_object_object_get_ex(cp, "final", &final) &&
                        json_object_is_type(final, json_type_boolean) && json_object_get_boolean(final);
        }

        audit_line_hash(line, len, v->prev);
        if (v->have_anchor && (uint64_t) s == v->anchor_seq) {
                if (memcmp(v->prev, v->anchor_hash, sizeof(v->prev)) != 0)
                        return broken(
                                v,
                                "this is not the line the anchor recorded at this seq: the chain was "
                                "rewritten from here on, or the anchor is another log's");
                v->anchor_seen = true;
        }
        v->have_prev = true;
        v->prev_seq = (uint64_t) s;
        v->n_lines++;
        return 0;
}

int audit_verifier_end(AuditVerifier *v) {
        if (v->n_lines == 0)
                return broken(v, "empty: keywardd ends every file with a seal");
        if (!v->last_final)
                return broken(
                        v,
                        "does not end in keywardd's final checkpoint: lines were cut from its end, or keywardd "
                        "was still writing it or did not stop cleanly");
        if (v->key)
                fprintf(v->out, "%s: %" PRIu64 " lines, %" PRIu64 " checkpoints: intact\n", v->file,
                        v->n_lines, v->n_checkpoints);
        else
                fprintf(v->out,
                        "%s: %" PRIu64 " lines: chain intact (checkpoints not checked: no --master-key)\n",
                        v->file, v->n_lines);
        return 0;
}

int audit_verifier_finish(AuditVerifier *v) {
        if (!v->have_anchor)
                return 0;
        if (!v->anchor_seen) {
                if (v->prev_seq < v->anchor_seq)
                        fprintf(v->out,
                                "%s: ends at seq %" PRIu64 ", but the anchor says seq %" PRIu64
                                " was written: lines were cut from the end (back to an earlier "
                                "checkpoint), or the newest files are missing\n",
                                strna(v->file), v->prev_seq, v->anchor_seq);
                else
                        fprintf(v->out, "%s: the anchor's line (seq %" PRIu64 ") is in a file not given\n",
                                strna(v->file), v->anchor_seq);
                v->broken = true;
                return 1;
        }
        fprintf(v->out, "anchor at seq %" PRIu64 ": found, the chain holds it\n", v->anchor_seq);
        return 0;
}

int audit_anchor_parse(const char *s, uint64_t *ret_seq, uint8_t ret_hash[static AUDIT_HASH_SIZE]) {
        const char *colon;
        uint64_t seq = 0;

        if (!s)
                return -EINVAL;
        colon = strchr(s, ':');
        if (!colon || colon == s || colon - s > 19)
                return -EINVAL;
        for (const char *p = s; p < colon; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                seq = seq * 10 + (uint64_t) (*p - '0');
        }
        if (seq == 0 || seq > INT64_MAX ||
            !parse_hex(colon + 1, strlen(colon + 1), ret_hash, AUDIT_HASH_SIZE))
                return -EINVAL;
        *ret_seq = seq;
        return 0;
}

int audit_verify_files(char *const *files, const uint8_t *key, FILE *out) {
        return audit_verify_files_with(files, &(const AuditVerifyOptions){.key = key}, out);
}

int audit_verify_files_with(char *const *files, const AuditVerifyOptions *o, FILE *out) {
        AuditVerifier v;

        audit_verifier_init(&v, o->key, out);
        if (o->first_seq > 0)
                v.first_seq = o->first_seq;
        if (o->have_anchor) {
                v.have_anchor = true;
                v.anchor_seq = o->anchor_seq;
                memcpy(v.anchor_hash, o->anchor_hash, sizeof(v.anchor_hash));
        }
        for (char *const *f = files; *f; f++) {
                _cleanup_(fclosep) FILE *in = NULL;
                _cleanup_free_ char *line = NULL;
                size_t cap = 0;
                ssize_t n;

                in = fopen(*f, "re");
                if (!in)
                        return log_error_errno(-errno, "Failed to open '%s': %m", *f);
                audit_verifier_file(&v, *f);
                errno = 0;
                while ((n = getline(&line, &cap, in)) > 0) {
                        bool nl = line[n - 1] == '\n';

                        if (audit_verifier_line(&v, line, (size_t) n - nl, nl) != 0)
                                return 1;
                }
                if (ferror(in))
                        return log_error_errno(-EIO, "Failed to read '%s': %m", *f);
                if (audit_verifier_end(&v) != 0)
                        return 1;
        }
        return audit_verifier_finish(&v);
}
