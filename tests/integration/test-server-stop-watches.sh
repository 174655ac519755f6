#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGTERM with a few hundred held watches (issue 12): keywardd answers every one of them at
# once with "nothing changed" ([] and Connection: close), so that agents go to another
# server instead of waiting, writes every answer out before it leaves, audits each one in
# a whole line, and exits 0. (bench/fleet measures the same with 10,000.)

. "$(dirname "$0")/lib.sh"

need_tools python3
N=300

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
as_alice() { req none "0u$ALICE" "$@"; }
watchers() {
        curl -sS --max-time 5 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" 2>/dev/null |
                sed -n 's/^keyward_watchers \([0-9]*\)$/\1/p'
}

# The watchers: N connections, each holding one watch; once every answer is in (or 60 s
# have passed) it prints how many came, how many were 200 with [] and Connection: close.
cat >"$T/watchers.py" <<'PY'
import asyncio, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ca, token, key_hash, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
results = []

async def watcher():
        try:
                r, w = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname="localhost")
                w.write(("GET /v0/keys/?k1=%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n"
                         "Prefer: wait=120\r\n\r\n" % (key_hash, token)).encode())
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                                length = int(v)
                body = await r.readexactly(length)
                results.append((head.split(b" ")[1] == b"200", b'"data":[]' in body,
                                b"connection: close" in head.lower()))
        except Exception as e:
                print("watcher: %r" % e, file=sys.stderr)
                results.append((False, False, False))

async def main():
        await asyncio.wait_for(asyncio.gather(*(watcher() for _ in range(n))), 60)

try:
        asyncio.run(main())
except asyncio.TimeoutError:
        pass
print("answered=%d ok_empty_close=%d" % (sum(1 for r in results if r[0]),
                                         sum(1 for r in results if all(r))))
PY

kwd_start --workers 2 --max-connections-per-address 0
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(printf one | base64 -w0)")
expect "create k1" "$r" 200 0 ""
H1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')
[ -n "$H1" ] || bail "no hash for k1"

python3 "$T/watchers.py" "$KWD_ADDR" "$T/pki/ca.pem" "$ALICE" "$H1" "$N" >"$T/watchers.out" 2>"$T/watchers.err" &
WPY=$!
BG_PIDS+=("$WPY")
held_all() { [ "$(watchers)" = "$N" ]; }
wait_for 60 held_all
is "keywardd holds the $N watches" "$(watchers)" "$N"

start=$(date +%s%3N)
pid=$KWD_PID
kill -TERM "$pid"
kwd_wait_exit "$pid" 30
rc=$?
KWD_PID=
diag "SIGTERM to exit with $N watches held: $(($(date +%s%3N) - start)) ms"
is "keywardd exits 0" "$rc" 0
kwd_wait_exit "$WPY" 70
is "every watcher got an answer: 200, [] and Connection: close" "$(cat "$T/watchers.out")" \
        "answered=$N ok_empty_close=$N" || sort "$T/watchers.err" | uniq -c | head -5 | sed 's/^/# /'
check "every audit line is whole JSON" python3 -c '
import json, sys
for line in open(sys.argv[1]):
        json.loads(line)
' "$T/audit.log"
n=$(grep -c '"method":"GET","path":"/v0/keys/"' "$T/audit.log")
is "each answer is audited" "$n" "$N"
if grep -Eq 'Sanitizer|runtime error|SEGV' "$T/keywardd.log"; then
        not_ok "no sanitizer report"
else
        ok "no sanitizer report"
fi

done_testing
