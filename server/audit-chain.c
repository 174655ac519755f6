/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "audit-chain.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hexdecoct.h"
#include "secret.h"
#include "time-util.h"

/* How far back from the end of a file audit_chain_resume() looks for its last line. */
#define AUDIT_RESUME_MAX (1024 * 1024)

void audit_chain_init(AuditChain *c) {
        *c = (AuditChain){
                .checkpoint_usec = now_usec(CLOCK_MONOTONIC),
                .every_lines = AUDIT_CHECKPOINT_LINES,
                .every_usec = AUDIT_CHECKPOINT_USEC,
                .min_usec = AUDIT_CHECKPOINT_MIN_USEC,
        };
}

/* Every every_lines lines, but no sooner than min_usec after the last checkpoint; and after
 * every_usec whatever the count. */
static bool checkpoint_due(const AuditChain *c) {
        uint64_t since = now_usec(CLOCK_MONOTONIC) - c->checkpoint_usec;

        if (since >= c->every_usec)
                return true;
        return c->since_checkpoint >= c->every_lines && since >= c->min_usec;
}

void audit_chain_done(AuditChain *c) {
        c->key = secret_free(c->key);
        EVP_MD_CTX_free(c->hash_ctx);
        c->hash_ctx = NULL;
}

int audit_chain_set_key(AuditChain *c, const uint8_t key[static AUDIT_CHAIN_KEY_SIZE]) {
        Secret *k;

        k = secret_new_copy(key, AUDIT_CHAIN_KEY_SIZE);
        if (!k)
                return -ENOMEM;
        audit_chain_done(c);
        c->key = k;
        return 0;
}

/* SHA256() looks the digest up in OpenSSL's provider tables at every call (a lock and a
 * search); one line hash per request makes that worth fetching once. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void) {
        (void) pthread_once(&sha256_once, sha256_fetch);
        return sha256_md;
}

void audit_line_hash(const char *line, size_t len, uint8_t ret[static AUDIT_HASH_SIZE]) {
        const EVP_MD *md = sha256();

        if (!md || EVP_Digest(line, len, ret, NULL, md, NULL) != 1)
                (void) SHA256((const unsigned char *) line, len, ret);
}

/* The same with the chain's own context, kept from line to line (no allocation per line). */
static void chain_line_hash(AuditChain *c, const char *line, size_t len) {
        const EVP_MD *md = sha256();

        if (!c->hash_ctx && md)
                c->hash_ctx = EVP_MD_CTX_new();
        if (!c->hash_ctx || EVP_DigestInit_ex2(c->hash_ctx, md, NULL) != 1 ||
            EVP_DigestUpdate(c->hash_ctx, line, len) != 1 ||
            EVP_DigestFinal_ex(c->hash_ctx, c->head, NULL) != 1)
                audit_line_hash(line, len, c->head);
}

int audit_checkpoint_hmac(
        const uint8_t key[static AUDIT_CHAIN_KEY_SIZE],
        const char *prefix,
        size_t len,
        uint8_t ret[static AUDIT_HASH_SIZE]) {
        unsigned int n = 0;

        if (!HMAC(EVP_sha256(), key, AUDIT_CHAIN_KEY_SIZE, (const unsigned char *) prefix, len, ret, &n) ||
            n != AUDIT_HASH_SIZE)
                return -EIO;
        return 0;
}

/* The seq member of a line, if it has one: the last "seq": in the line (ours is the last). */
static bool line_seq(const char *line, size_t len, uint64_t *ret) {
        static const char tag[] = ",\"seq\":";
        const char *p = NULL;
        uint64_t v = 0;

        for (size_t i = len; i >= sizeof(tag) - 1; i--)
                if (memcmp(line + i - (sizeof(tag) - 1), tag, sizeof(tag) - 1) == 0) {
                        p = line + i;
                        break;
                }
        if (!p || p >= line + len || *p < '0' || *p > '9')
                return false;
        for (; p < line + len && *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return true;
}

int audit_chain_resume(AuditChain *c, int fd) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n, end, start;
        ssize_t k;
        off_t from;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size == 0)
                return 0;
        n = (size_t) MIN(st.st_size, (off_t) AUDIT_RESUME_MAX);
        from = st.st_size - (off_t) n;
        buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        k = pread(fd, buf, n, from);
        if (k < 0)
                return -errno;
        n = (size_t) k;

        /* The last whole line. What follows it is part of a line that a crash stopped
         * mid-write: cut it off, or the next line would be glued to it. */
        end = n;
        while (end > 0 && buf[end - 1] != '\n')
                end--;
        if (end == 0 && from > 0)
                return -E2BIG; /* no newline as far as we look back: not ours */
        if (end < n && ftruncate(fd, from + (off_t) end) < 0)
                return -errno;
        if (end == 0)
                return 0;
        end--; /* the newline */
        start = end;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        if (start == 0 && from > 0)
                return -E2BIG; /* a last line longer than we look back: not ours */

        audit_line_hash(buf + start, end - start, c->head);
        if (!line_seq(buf + start, end - start, &c->seq))
                c->seq = 0;
        return 0;
}

static void append_chain_members(AuditChain *c, Buf *out) {
        char digits[20], hex[AUDIT_HASH_HEX + 1];
        uint64_t v = c->seq + 1;
        size_t n = sizeof(digits);

        /* By hand: vsnprintf() cost as much as the rest of the sealing. */
        do
                digits[--n] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        hexencode(c->head, AUDIT_HASH_SIZE, hex);
        (void) buf_puts(out, ",\"seq\":");
        (void) buf_put(out, digits + n, sizeof(digits) - n);
        (void) buf_puts(out, ",\"prev\":\"");
        (void) buf_put(out, hex, AUDIT_HASH_HEX);
        (void) buf_putc(out, '"');
}

/* The line at out[start..) is complete (without its newline): it becomes the head. */
static void line_done(AuditChain *c, Buf *out, size_t start) {
        chain_line_hash(c, out->data + start, out->len - start);
        c->seq++;
        (void) buf_putc(out, '\n');
}

int audit_chain_checkpoint(AuditChain *c, bool final, Buf *out) {
        uint8_t mac[AUDIT_HASH_SIZE];
        char hex[AUDIT_HASH_HEX + 1];
        size_t start = out->len;
        int r;

        if (!c->key)
                return 0;
        (void) buf_puts(
                out, final ? "{\"checkpoint\":{\"final\":true}" : "{\"checkpoint\":{\"final\":false}");
        append_chain_members(c, out);
        if (out->error < 0)
                return out->error;
        r = audit_checkpoint_hmac(c->key->data, out->data + start, out->len - start, mac);
        if (r < 0) {
                buf_truncate(out, start);
                return r;
        }
        hexencode(mac, sizeof(mac), hex);
        (void) buf_printf(out, ",\"hmac\":\"%s\"}", hex);
        line_done(c, out, start);
        c->checkpoint_seq = c->seq;
        memcpy(c->checkpoint_head, c->head, AUDIT_HASH_SIZE);
        c->since_checkpoint = 0;
        c->checkpoint_usec = now_usec(CLOCK_MONOTONIC);
        return out->error;
}

int audit_chain_seal(AuditChain *c, const char *p, size_t n, Buf *out) {
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t len = nl ? (size_t) (nl - p) : n;
                size_t start = out->len;
                int r;

                if (len < 2 || p[0] != '{' || p[len - 1] != '}')
                        return -EBADMSG;
                (void) buf_put(out, p, len - 1);
                append_chain_members(c, out);
                (void) buf_putc(out, '}');
                if (out->error < 0)
                        return out->error;
                line_done(c, out, start);
                c->since_checkpoint++;

                if (c->key && checkpoint_due(c)) {
                        r = audit_chain_checkpoint(c, false, out);
                        if (r < 0)
                                return r;
                }

                len += nl ? 1 : 0;
                p += len;
                n -= len;
        }
        return out->error;
}

void audit_chain_rewind(AuditChain *c, const AuditChain *saved, const char *out, size_t kept) {
        size_t lines = 0, last = 0;

        memcpy(c->head, saved->head, AUDIT_HASH_SIZE);
        c->seq = saved->seq;
        c->since_checkpoint = saved->since_checkpoint;
        c->checkpoint_usec = saved->checkpoint_usec;
        /* A checkpoint that went out before the failure is anchored at the next one. */
        c->checkpoint_seq = saved->checkpoint_seq;
        memcpy(c->checkpoint_head, saved->checkpoint_head, AUDIT_HASH_SIZE);
        for (size_t i = 0; i < kept; i++)
                if (out[i] == '\n') {
                        lines++;
                        audit_line_hash(out + last, i - last, c->head);
                        last = i + 1;
                }
        c->seq += lines;
        c->since_checkpoint += lines;
}
