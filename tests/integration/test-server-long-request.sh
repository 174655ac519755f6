#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A request target with more query parameters than keywardd takes, longer than libcurl sends
# in one go (libcurl never sends more than 128 KiB of a GET's head over TLS, and waits for the
# answer): keywardd refuses it as soon as the bytes show it, with Knox's envelope, instead of
# waiting for the rest of a head that never comes (issue 12: an agent with 2,000 keys a request
# waited forever). Sent through keyward's own client, as the agent sends it.

. "$(dirname "$0")/lib.sh"

CK=${CHANGED_KEYS:-$KEYWARD_TOP_BUILDDIR/tests/integration/changed-keys}
[ -x "$CK" ] || skip_all "tests/integration/changed-keys is not built"

make_pki
kwd_init
kwd_start

# One line: the answers joined by "; ".
ck() {
        timeout "$(scaled 20)" "$CK" "$KWD_URL" "$T/pki/ca.pem" "$T/pki/machine.pem" "$T/pki/machine.key" "$@" 2>&1 |
                paste -sd';' | sed 's/;/; /g'
}

out=$(ck 0 2100)
is "2,100 keys (137 KB, more than libcurl sends at once): answered with 400" "$out" "error 400 11 too many query parameters"
out=$(ck 0 4000)
is "4,000 keys (262 KB): answered with 400" "$out" "error 400 11 too many query parameters"
out=$(ck 1 1 2100)
is "after a held watch on the same connection" "$out" "ok 0; error 400 11 too many query parameters"
out=$(ck 0 1025)
is "1,025 keys: refused (one over the limit)" "$out" "error 400 11 too many query parameters"
out=$(ck 0 1024)
is "1,024 keys: served" "$out" "ok 0"
out=$(ck 0 2100 1)
is "the client goes on with a new connection after the refusal" "$out" "error 400 11 too many query parameters; ok 0"
check "each refusal has its audit line" test "$(grep -c 'too many query parameters' "$T/audit.log")" -eq 5
like "keywardd still answers" "$(req none "" GET /healthz)" "^200 ok"
done_testing
