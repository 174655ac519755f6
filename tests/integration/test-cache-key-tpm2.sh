#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The agent's host cache key sealed to a TPM2 (agent/cache-key-tpm2.c), with swtpm as the TPM:
# the blob is made once (0400) and unseals to the same key; another TPM, an edited blob or a
# changed PCR it is bound to unseal nothing; no TPM is told apart from a TPM that refuses.
. "$(dirname "$0")/lib.sh"

HELPER=${CACHE_KEY_TPM2:-$KEYWARD_TOP_BUILDDIR/tests/integration/cache-key-tpm2}
umask 077 # blobs the test makes by hand are private, as the agent's are
[ -x "$HELPER" ] || skip_all "keyward is built without TPM2 support (libtss2-dev)"
need_tools swtpm

# load PATH TCTI PCRS: the key in hex, or the errno's name; the time it took goes to $T/times.
load() {
        "$HELPER" load "$@" 2>>"$T/times"
}

is "no PCRs: an empty mask" "$("$HELPER" parse "")" "0x000000"
is "PCR 7" "$("$HELPER" parse 7)" "0x000080"
is "PCRs 0, 7 and 23" "$("$HELPER" parse 0,7,23)" "0x800081"
for bad in 24 -1 7, ,7 "7 " a 0x7 007 "0,,7"; do
        is "PCR list '$bad' refused" "$("$HELPER" parse "$bad")" "EINVAL"
done

swtpm_start "$T/tpm-a"
TPM_A=$SWTPM_TCTI
swtpm_start "$T/tpm-b"
TPM_B=$SWTPM_TCTI
nothing="swtpm:host=127.0.0.1,port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

is "a TPM answers through the swtpm TCTI" "$("$HELPER" present "$TPM_A")" yes
is "no TPM where nothing listens" "$("$HELPER" present "$nothing")" no
is "load without a TPM: ENODEV" "$(load "$T/nothing.sealed" "$nothing" "")" ENODEV
check "no blob written without a TPM" test ! -e "$T/nothing.sealed"

# Unbound: made, then unsealed to the same key.
key1=$(load "$T/cache.sealed" "$TPM_A" "")
like "a new key of 32 bytes" "$key1" '^[0-9a-f]{64}$'
is "the sealed blob is 0400" "$(stat -c %a "$T/cache.sealed")" 400
unlike "the blob does not hold the key in clear" "$(od -An -tx1 "$T/cache.sealed" | tr -d ' \n')" "$key1"
is "loading again unseals the same key" "$(load "$T/cache.sealed" "$TPM_A" "")" "$key1"
is "an existing blob keeps the binding it was sealed with" "$(load "$T/cache.sealed" "$TPM_A" 16)" "$key1"
key2=$(load "$T/other.sealed" "$TPM_A" "")
like "a second blob: another key" "$key2" '^[0-9a-f]{64}$'
check "two blobs, two keys" test "$key1" != "$key2"

# The blob must be a regular file of the agent's own uid that nobody else may read or write:
# anyone who can read an unbound blob and use the TPM unseals the key, and a blob that others
# may replace would hand the agent a key they chose. Refused as EPERM (never replaced by a new
# key, which would hide the problem), whatever it holds.
for m in 0644 0440 0404 0600 0620; do
        cp "$T/cache.sealed" "$T/lax.sealed"
        chmod "$m" "$T/lax.sealed"
        case $m in
        0600) is "a blob of mode 0600 unseals" "$(load "$T/lax.sealed" "$TPM_A" "")" "$key1" ;;
        *) is "a blob of mode $m (others have access) is refused" "$(load "$T/lax.sealed" "$TPM_A" "")" EPERM ;;
        esac
done
is "the refused blob is left as it was" "$(cmp "$T/cache.sealed" "$T/lax.sealed" && echo same)" same
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
        cp "$T/cache.sealed" "$T/other.owner.sealed"
        chown nobody "$T/other.owner.sealed"
        is "a blob owned by another user is refused" "$(load "$T/other.owner.sealed" "$TPM_A" "")" EPERM
fi
ln -s "$T/cache.sealed" "$T/link.sealed"
is "a blob that is a symbolic link is refused" "$(load "$T/link.sealed" "$TPM_A" "")" ELOOP
mkfifo "$T/fifo.sealed"
is "a FIFO is no blob (and the load does not wait for a writer)" "$(load "$T/fifo.sealed" "$TPM_A" "")" EBADFD

# Another machine: the same blob on another TPM.
is "another TPM does not unseal the blob" "$(load "$T/cache.sealed" "$TPM_B" "")" EBADMSG
is "this TPM still does" "$(load "$T/cache.sealed" "$TPM_A" "")" "$key1"

# Edited blobs: a byte of the header, the public part, the private part; cut short; grown.
size=$(stat -c %s "$T/cache.sealed")
for off in 3 9 20 $((size / 2)) $((size - 5)); do
        cp "$T/cache.sealed" "$T/edited.sealed"
        chmod 0600 "$T/edited.sealed"
        printf '\x5a' | dd of="$T/edited.sealed" bs=1 seek="$off" conv=notrunc status=none
        cmp -s "$T/cache.sealed" "$T/edited.sealed" ||
                is "a blob edited at byte $off does not unseal" "$(load "$T/edited.sealed" "$TPM_A" "")" EBADMSG
done
head -c $((size - 1)) "$T/cache.sealed" >"$T/short.sealed"
is "a blob cut short does not unseal" "$(load "$T/short.sealed" "$TPM_A" "")" EBADMSG
{ cat "$T/cache.sealed"; printf x; } >"$T/long.sealed"
is "a blob with bytes after it does not unseal" "$(load "$T/long.sealed" "$TPM_A" "")" EBADMSG
: >"$T/empty.sealed"
is "an empty file is not a blob" "$(load "$T/empty.sealed" "$TPM_A" "")" EBADMSG
check "an edited blob is left as it was (never replaced by a new key)" test ! -s "$T/empty.sealed"
head -c 70000 /dev/zero >"$T/large.sealed"
is "a file far too large for a blob is refused" "$(load "$T/large.sealed" "$TPM_A" "")" EBADMSG
is "without a TPM a damaged blob is ENODEV too (no TPM said no)" "$(load "$T/empty.sealed" "$nothing" "")" ENODEV

# Bound to PCR 16 (resettable, for debugging): unseals until the PCR changes.
pkey=$(load "$T/pcr.sealed" "$TPM_A" 16)
like "a key bound to PCR 16" "$pkey" '^[0-9a-f]{64}$'
is "it unseals while PCR 16 is unchanged" "$(load "$T/pcr.sealed" "$TPM_A" 16)" "$pkey"
pkey7=$(load "$T/pcr7.sealed" "$TPM_A" 0,7)
is "PCR 16 extended (as a boot that measured something else)" "$("$HELPER" extend "$TPM_A" 16)" extended
is "after PCR 16 changed the blob bound to it does not unseal" "$(load "$T/pcr.sealed" "$TPM_A" 16)" EBADMSG
is "a blob bound to PCRs 0 and 7 still unseals" "$(load "$T/pcr7.sealed" "$TPM_A" 0,7)" "$pkey7"
is "an unbound blob still unseals" "$(load "$T/cache.sealed" "$TPM_A" "")" "$key1"
# The header's mask says which policy to satisfy; saying "none" does not get around it.
cp "$T/pcr.sealed" "$T/pcr-nomask.sealed"
chmod 0600 "$T/pcr-nomask.sealed"
printf '\0\0\0\0' | dd of="$T/pcr-nomask.sealed" bs=1 seek=8 conv=notrunc status=none
is "a PCR-bound blob with its mask erased does not unseal" "$(load "$T/pcr-nomask.sealed" "$TPM_A" "")" EBADMSG

# A TPM that cannot take the object now (its transient memory full, as another program
# without a resource manager may leave it) says nothing about the blob: EIO, not EBADMSG,
# so the key is not thrown away.
bkey=$(load "$T/b.sealed" "$TPM_B" "")
like "a key sealed on the second TPM" "$bkey" '^[0-9a-f]{64}$'
is "two of its three transient object slots taken" "$("$HELPER" hog "$TPM_B" 2)" hogged
is "the TPM out of object memory: EIO" "$(load "$T/b.sealed" "$TPM_B" "")" EIO

# Where the TPM went away: stopped now, the blob stays, and load says there is no TPM.
kill -9 "$SWTPM_PID" && wait "$SWTPM_PID" 2>/dev/null
is "a TPM gone: ENODEV, not EBADMSG" "$(load "$T/cache.sealed" "$TPM_B" "")" ENODEV

# How long a load takes with swtpm (a figure, not a test): the median of each kind.
grep -v '^load: ' "$T/times" | sed 's/^/# /'
for kind in "new key" unsealed failed; do
        sed -n "s/^load: $kind in \([0-9.]*\) ms$/\1/p" "$T/times" | sort -n |
                awk -v kind="$kind" '{ v[NR] = $1 } END { if (NR) printf "# load, %s: median %.1f ms of %d (%.1f to %.1f)\n", kind, v[int((NR + 1) / 2)], NR, v[1], v[NR] }'
done
done_testing
