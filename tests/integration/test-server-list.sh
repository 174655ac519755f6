#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET /v0/keys/ (the whole list) is written out as it is read from the store, in chunked
# transfer encoding: the same bytes as the whole-answer path builds (list-reference runs it
# on the same store), on an empty store, across page boundaries and on 100,000 keys. A
# client that stops reading does not make keywardd hold the list (its RSS grows by less
# than the list's size while the client stalls), and keywardd answers others meanwhile.

. "$(dirname "$0")/lib.sh"

POPULATE=${POPULATE:-$KEYWARD_TOP_BUILDDIR/bench/populate-store}
REFERENCE=${REFERENCE:-$KEYWARD_TOP_BUILDDIR/tests/integration/list-reference}
[ -x "$POPULATE" ] && [ -x "$REFERENCE" ] || skip_all "populate-store or list-reference is not built"

make_pki
kwd_init
kwd_start --workers 1
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
fill() { # N PREFIX: N keys straight into the store
        "$POPULATE" --db "$T/keyward.db" --master-key "$T/master.key" --machine host1.example.com \
                --fill "$1" --fill-prefix "$2" --data-size 8 >/dev/null 2>>"$T/populate.log" ||
                bail "populate-store failed"
}

# same_as_reference WHAT: the list through keywardd, against the whole-answer path's bytes.
same_as_reference() {
        local what=$1 ts
        curl -sS --max-time "$(scaled 60)" --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ADMIN" \
                -D "$T/list.head" -o "$T/list.body" "$KWD_URL/v0/keys/" || { not_ok "$what: the list"; return; }
        ts=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ts"])' "$T/list.body") ||
                { not_ok "$what: the list is JSON"; return; }
        "$REFERENCE" "$T/keyward.db" testhost "$ts" >"$T/list.ref" || { not_ok "$what: the reference"; return; }
        check "$what: streamed (chunked)" grep -qi '^transfer-encoding: chunked' "$T/list.head"
        if cmp -s "$T/list.body" "$T/list.ref"; then
                ok "$what: the same bytes as the whole answer ($(wc -c <"$T/list.body") bytes)"
        else
                not_ok "$what: the same bytes as the whole answer"
                cmp "$T/list.body" "$T/list.ref" | sed 's/^/# /'
        fi
}

same_as_reference "empty store"
for id in first a_b:c Z9; do
        r=$(req none "0u$ADMIN" POST /v0/keys/ --data-urlencode "id=$id" --data-urlencode "data=$(b64 v)")
        expect "create '$id'" "$r" 200 0 ""
done
same_as_reference "three keys"
fill 2045 page: # 2048 in all: two whole pages, then an empty one
same_as_reference "2048 keys"
fill 1000 more:
same_as_reference "3048 keys"
r=$(req none "0u$ADMIN" DELETE /v0/keys/first/)
expect "delete one" "$r" 200 0 ""
same_as_reference "3047 keys"
# Pipelined on one keep-alive connection: two lists, a key, a list, each answered whole and
# in order (the list's chunked body ends where the next answer begins).
HOSTPORT=${KWD_URL#https://}
pipeline() {
        python3 "$KEYWARD_TOP_SRCDIR/tests/integration/http-pipeline.py" 127.0.0.1 "${HOSTPORT##*:}" \
                "$T/pki/ca.pem" "$ADMIN" "$@"
}
if pipeline /v0/keys/ /v0/keys/ /v0/keys/a_b:c/ /v0/keys/ >"$T/pipe.out" 2>"$T/pipe.err"; then
        ok "four pipelined requests: four answers"
else
        not_ok "four pipelined requests: four answers"
        sed 's/^/# /' "$T/pipe.err"
fi
is "... all 200" "$(cut -d' ' -f1 "$T/pipe.out" | tr '\n' ' ')" "200 200 200 200 "
is "... the three lists the same length as one alone" \
        "$(awk 'NR != 3 { print $2 }' "$T/pipe.out" | sort -u | wc -l) $(awk 'NR == 1 { print $2 }' "$T/pipe.out")" \
        "1 $(wc -c <"$T/list.body")"
r=$(req none "" GET /v0/keys/)
expect "the list without authentication: 401 as before" "$r" 401 5
r=$(req none "0u$ADMIN" GET '/v0/keys/?first=x')
expect "a changed-keys query still answers whole" "$r" 200 0 ""
# The audit lines of GET /v0/keys/ answered 200 so far: five lists (empty, 3, 2048, 3048,
# 3047 keys), the three pipelined ones and the changed-keys query.
lists_audited() {
        python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
        j = json.loads(line)
        if "payload" not in j:
                continue  # a checkpoint (every 10 seconds: a slow run has some)
        p = j["payload"]
        if p["request"]["path"] == "/v0/keys/" and p["status_code"] == 200 and p["request"]["method"] == "GET":
                n += 1
print(n)' "$T/audit.log"
}
audited_at_least() { [ "$(lists_audited)" -ge "$1" ]; } # evaluated at each try of wait_for
check "the audit log has a line for each list answered" wait_for 5 audited_at_least 9
is "... and only those" "$(lists_audited)" 9

# ---- 100,000 keys, and a client that stops reading --------------------------------------
fill 96953 a_rather_long_key_id_prefix_so_that_the_list_is_megabytes_long:
same_as_reference "100,000 keys"
SIZE=$(wc -c <"$T/list.body")

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$KWD_PID/status"; }
# Restart, so that the RSS before holds no memory a list left behind.
kwd_stop
kwd_start --workers 1
curl -sS --cacert "$T/pki/ca.pem" "$KWD_URL/healthz" >/dev/null
BEFORE=$(rss_kb)
cat >"$T/stall.py" <<'PY'
import os, socket, ssl, sys, time
host, port, ca, token, ready = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect((host, int(port)))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(("GET /v0/keys/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n\r\n" % token).encode())
got = b""
while b"\r\n\r\n" not in got:
    got += s.recv(1024)
open(ready, "w").write(got.split(b"\r\n")[0].decode())
time.sleep(600)  # and never read again
PY
HOSTPORT=${KWD_URL#https://}
python3 "$T/stall.py" 127.0.0.1 "${HOSTPORT##*:}" "$T/pki/ca.pem" "$ADMIN" "$T/stall.ready" 2>"$T/stall.log" &
STALL_PID=$!
BG_PIDS+=("$STALL_PID")
check "the stalled client got the status line" wait_for 20 test -s "$T/stall.ready"
like "and it is 200" "$(cat "$T/stall.ready")" "200"
# The largest RSS seen over a while the client does not read.
PEAK=$(rss_kb)
for _ in $(seq 10); do
        sleep 0.1
        now=$(rss_kb)
        [ "$now" -gt "$PEAK" ] && PEAK=$now
done
GROWTH=$(((PEAK - BEFORE) * 1024))
diag "RSS before ${BEFORE} kB, with the stalled list ${PEAK} kB; the list is $SIZE bytes"
if kwd_has_asan; then
        skip "keywardd holds less than the list for a client that does not read" "RSS under AddressSanitizer"
else
        check "keywardd holds less than the list for a client that does not read" test "$GROWTH" -lt "$SIZE"
fi
r=$(req none "" GET /healthz)
is "keywardd answers others meanwhile (healthz)" "${r%% *}" 200
same_as_reference "another client's whole list meanwhile"
kill "$STALL_PID"
wait "$STALL_PID" 2>/dev/null
r=$(req none "0u$ADMIN" GET /v0/keys/a_b:c/)
expect "after the stalled client left, keywardd serves" "$r" 200 0 ""

# SIGTERM while a client stalls in the middle of a list: keywardd stops, and cleanly.
python3 "$T/stall.py" 127.0.0.1 "${HOSTPORT##*:}" "$T/pki/ca.pem" "$ADMIN" "$T/stall2.ready" 2>"$T/stall2.log" &
STALL_PID=$!
BG_PIDS+=("$STALL_PID")
check "a second stalled client got the status line" wait_for 20 test -s "$T/stall2.ready"
kill -TERM "$KWD_PID"
check "SIGTERM with a list streaming: keywardd exits" wait_for 10 bash -c "! kill -0 $KWD_PID 2>/dev/null"
wait "$KWD_PID"
is "... with status 0" "$?" 0
KWD_PID=
kill "$STALL_PID"
wait "$STALL_PID" 2>/dev/null
done_testing
