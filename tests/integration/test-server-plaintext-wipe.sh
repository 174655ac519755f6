#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A secret that passed through keywardd does not stay in its memory once the requests that
# carried it are answered: not the POST's bytes as they came out of TLS (OpenSSL's read
# buffer, libevent's input chains), not the answer's (the output chains). The scan reads every
# readable mapping of the serving process through /proc/PID/mem (mem-scan.py).
set -u
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "reading /proc/PID/mem of a non-dumpable process needs root"
SCAN=$KEYWARD_TOP_SRCDIR/tests/integration/mem-scan.py

# A secret whose base64 has no '+', '/' or '=', so that it travels the same in a form body,
# in JSON and on the wire, and the scan can look for one spelling.
secret=
for _ in $(seq 200); do
        s="wipe-me-$(od -An -N17 -tx1 /dev/urandom | tr -d ' \n')"
        b=$(printf '%s' "$s" | base64 -w0)
        case $b in *[+/=]*) continue ;; esac
        secret=$s
        b64=$b
        break
done
[ -n "$secret" ] || bail "no secret with a plain base64 spelling in 200 tries"
printf '%s' "$secret" >"$T/secret.raw"
printf '%s' "$b64" >"$T/secret.b64"

make_pki
kwd_init
kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token"

r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=wipe_key -d "data=$b64")
expect "create a key with the secret" "$r" 200 0
r=$(req none "0u$ADMIN" POST /v0/keys/wipe_key/versions/ -d "data=$b64")
expect "add it again as a second version" "$r" 200 0
for i in 1 2 3; do
        r=$(req none "0u$ADMIN" GET /v0/keys/wipe_key/)
        expect "read it back ($i)" "$r" 200 0
done
like "the answer carries the secret" "$(body "$r")" "$b64"
# Scanned before any other request too: an allocator that hands a freed block straight to the
# next request of its size (jemalloc's thread caches do) would hide an unwiped copy from the
# scan after them.
early=$(python3 "$SCAN" "$KWD_PID" "$T/secret.b64")
like "the base64 spelling is not in keywardd's memory before the next request ($early)" "$early" "^found=0 "
# Other requests after it: what they leave must not be what hides the secret's copies.
r=$(req none "0u$ADMIN" GET /v0/keys/)
expect "list the keys" "$r" 200 0

raw=$(python3 "$SCAN" "$KWD_PID" "$T/secret.raw")
enc=$(python3 "$SCAN" "$KWD_PID" "$T/secret.b64")
like "the serving process's memory was scanned" "$raw" "regions=[1-9]"
like "the secret's bytes are nowhere in keywardd's memory ($raw)" "$raw" "^found=0 "
like "nor its base64 spelling, as the POSTs and answers carried it ($enc)" "$enc" "^found=0 "

# The scan finds what is there: a secret still in flight is found. Hold a request half sent
# (its body not complete) so that its bytes sit in keywardd's input buffer.
held=wipe-held-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s' "$held" >"$T/held.raw"
mkfifo "$T/held.fifo"
{
        printf 'POST /v0/keys/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n' "$ADMIN"
        printf 'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n'
        printf 'id=held&data=%s' "$held"
        cat "$T/held.fifo" >/dev/null
} | openssl s_client -quiet -connect "$KWD_ADDR" -CAfile "$T/pki/ca.pem" >/dev/null 2>&1 &
client=$!
held_scan=found=0
for _ in $(seq 50); do
        held_scan=$(python3 "$SCAN" "$KWD_PID" "$T/held.raw")
        case $held_scan in found=0*) sleep "$(scaled 0.2)" ;; *) break ;; esac
done
like "a request still being received is found by the same scan ($held_scan)" "$held_scan" "^found=[1-9]"
exec 3>"$T/held.fifo"
exec 3>&-
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null

done_testing
