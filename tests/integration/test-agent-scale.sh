#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent with 10,000 registered keys (issue 12): every request it sends stays within
# keywardd's limits (at most 1,000 ids a request, keywardd refuses more than 1,024 query
# parameters), it follows a rotation of a key near the end of its list, and a request the
# server refuses with 400 is logged as an error with the server's message and retried only
# with back-off.

. "$(dirname "$0")/lib.sh"

need_tools dbus-daemon busctl python3
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
POPULATE=${POPULATE_STORE:-$KEYWARD_TOP_BUILDDIR/bench/populate-store}
[ -x "$POPULATE" ] || skip_all "bench/populate-store is not built"

N=10000
PREFIX=scale:key:
HOST=host1.example.com

make_pki
kwd_init
# N keys readable by the machine, administered by user "bench", straight into the store.
"$POPULATE" --db "$T/keyward.db" --master-key "$T/master.key" --machine "$HOST" \
        --fill "$N" --fill-prefix "$PREFIX" >"$T/populate.log" 2>&1 || { cat "$T/populate.log" >&2; bail "populate-store failed"; }
kwd_start
BENCH=$(kwd_token bench) || bail "cannot mint a token"
bus_start

bus() { timeout 30 busctl --system --timeout=25 "$@"; }
prop() { bus get-property "$DEST" "$OBJ" "$IFACE" "$1"; }
serves() { [ "$(getkey "$1")" = "$2" ]; } # ID "DATA VERSION"
n_cached() { # how many registered keys have a cached copy
        jcall ListKeys | python3 -c 'import json, sys; print(sum(1 for k in json.load(sys.stdin)["data"][0] if k[1]))'
}
all_cached() { [ "$(n_cached)" = "$N" ]; }
rotate() { # ID DATA: a new primary version; prints its id
        local v
        v=$(jget "$(body "$(req none "0u$BENCH" POST "/v0/keys/$1/versions/" --data-urlencode "data=$(b64 "$2")")")" 'j["data"]')
        req none "0u$BENCH" PUT "/v0/keys/$1/versions/$v/" --data-urlencode 'status="Primary"' >/dev/null
        echo "$v"
}

AGENT_FLAGS=(--retry-max 2s --watch-wait 30s)
agent_start
check "the agent owns $DEST" wait_for 10 bus status "$DEST"

# ---- RegisterMany: all or nothing ----------------------------------------------------------
out=$(call RegisterMany 'a(sa{sv})' 2 "${PREFIX}1" 0 "bad id" 0 2>&1)
like "RegisterMany with an invalid entry fails" "$out" "[Ii]nvalid"
is "... and registers none of its entries" "$(prop KeyCount)" "u 0"
out=$(call RegisterMany 'a(sa{sv})' 2 "${PREFIX}1" 0 "${PREFIX}1" 0 2>&1)
like "RegisterMany with an id listed twice fails" "$out" "listed twice"
is "... and registers none" "$(prop KeyCount)" "u 0"
check "RegisterMany with options" call RegisterMany 'a(sa{sv})' 2 \
        "${PREFIX}1" 1 readers as 1 user:root "${PREFIX}2" 1 on_change s restart
is "KeyCount is 2" "$(prop KeyCount)" "u 2"
unseal "$T/state/registrations.sealed" >"$T/reg.json"
check "the registry file holds both, with their options" python3 -c '
import json, sys
keys = {k["id"]: k for k in json.load(open(sys.argv[1]))["keys"]}
p = sys.argv[2]
sys.exit(0 if keys[p + "1"].get("readers") == ["user:root"] and keys[p + "2"].get("on_change") == "restart" else 1)
' "$T/reg.json" "$PREFIX"

# ---- keyward register -f with N ids (and repeats) ----------------------------------------------
seq -f "${PREFIX}%.0f" 0 $((N - 1)) >"$T/ids"
seq -f "${PREFIX}%.0f" 0 9 >>"$T/ids"
t0=$SECONDS
# (Its line of success names every id, as Knox's does: not shown here.)
check "keyward register -f: $N keys" bash -c '"$0" register -f "$1" 2>/dev/null' "$KEYWARD" "$T/ids"
diag "registering $N keys: $((SECONDS - t0)) s"
is "KeyCount is $N" "$(prop KeyCount)" "u $N"
unseal "$T/state/registrations.sealed" >"$T/reg.json"
check "the registry file holds $N keys" python3 -c '
import json, sys
sys.exit(0 if len(json.load(open(sys.argv[1]))["keys"]) == int(sys.argv[2]) else 1)
' "$T/reg.json" "$N"
t0=$SECONDS
check "all $N keys are cached" wait_for 120 all_cached
diag "first sync of $N keys: $((SECONDS - t0)) s"

# Near the end of the list in id order (the watch and the comparisons go in that order).
for id in "${PREFIX}9998" "${PREFIX}9990" "${PREFIX}5000"; do
        v=$(rotate "$id" "rotated-$id")
        check "$id follows a rotation at $N keys" wait_for 20 serves "$id" "rotated-$id $v"
done
check "the cache file of ${PREFIX}9998 holds the new version" grep -q "rotated-" <(
        jcall GetKeyVersions s "${PREFIX}9998" | python3 -c '
import json, sys
for v in json.load(sys.stdin)["data"][0]:
        print(bytes(v[1]).decode(errors="replace"))')
check "Sync over all $N keys" call Sync
check "keywardd refused none of the agent's requests" bash -c "! grep -q 'too many query parameters' '$T/audit.log' '$T/agent.log'"
check "no request names more than 1,000 keys" python3 - "$T/audit.log" <<'EOF'
import sys
# The list route's audit line carries its query string: pairs joined by '&' (or its JSON
# escape).
worst = max((line.count("&") + line.count("\\u0026") + 1 for line in open(sys.argv[1]) if "queryString" in line), default=0)
print("# longest list: %d pairs" % worst)
sys.exit(0 if 0 < worst <= 1000 else 1)
EOF
check "SIGTERM: the agent exits 0" agent_stop

# ---- a request keywardd refuses: logged as an error, retried with back-off -------------------
: >"$T/agent.log"
agent_start --max-request-keys 1100
check "a 400 is logged as an error with the server's message" \
        wait_for 20 grep -q 'keywardd refused a sync request: .*too many query parameters' "$T/agent.log"
sleep 3
# Each request stream backs off on its own: ten watches of 1,100 keys, and the other thread's
# comparisons. With --retry-max 2s each retries at most about four times in these seconds;
# without back-off a stream would be refused hundreds of times.
refused=$(grep -c 'refused a sync request' "$T/agent.log")
check "it is retried with back-off, not in a loop ($refused lines)" test "$refused" -le $(((N / 1100 + 1 + 2) * 4))
check "SIGTERM: the agent exits 0" agent_stop

done_testing
