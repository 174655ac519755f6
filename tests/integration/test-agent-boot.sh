#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A unit started at boot before the agent's first fetch: its LoadCredential= request for a
# registered key that has no copy yet waits (--credential-wait) until the key arrives, and the
# unit gets it; when the key does not come in time, the agent refuses (an empty credential)
# and the recipe of keyward-agent.8 (ExecStartPre=/usr/bin/test -s ...) fails the unit
# cleanly. Meanwhile other units get their cached keys and the bus answers. A unit whose
# start is cancelled while it waits frees its place. As root, in a real systemd booted with
# systemd-nspawn, against a keywardd that is down until the test brings it up.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

HOST=host1.example.com

make_pki
kwd_init
kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
for k in db_password:hunter2 cached_key:early-bird; do
        r=$(req none "0u$ADMIN" POST /v0/keys/ -d "id=${k%%:*}" --data-urlencode "data=$(printf '%s' "${k#*:}" | base64 -w0)" \
                --data-urlencode "acl=$GRANT")
        expect "create ${k%%:*}" "$r" 200 0 ""
done

# The limits of the setting.
AGENT_STATE=$T/x AGENT_RUN=$T/xrun
agent_args --credential-wait 11m
"$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>"$T/bad.log"
is "--credential-wait above 10m stops the start (exit 1)" "$?" 1
check "and says why" grep -q -- "--credential-wait must be at most 10m" "$T/bad.log"
printf '[agent]\ncredential-wait = soon\n' >"$T/bad.conf"
agent_args --config "$T/bad.conf"
"$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>"$T/bad.log"
is "a malformed credential-wait in the file stops the start (exit 1)" "$?" 1

NSPAWN_TESTS=("the container ran the driver to success"
        "with --credential-wait 0, the request is refused at once, without waiting"
        "and the unit fails in its ExecStartPre= check"
        "with the server down past the wait, the unit's start fails"
        "it fails in its ExecStartPre= check (Result=exit-code), not later"
        "its ExecStart= never ran"
        "the agent waited, then refused at the deadline, and said so"
        "a unit whose start is cancelled while it waits frees its place"
        "a unit started before the first fetch waits (logged)"
        "meanwhile another unit gets its cached key"
        "meanwhile the bus answers"
        "meanwhile the metrics file counts the waiting request"
        "the waiting unit is still starting when the server comes"
        "while a unit waits, the key is fetched again every second, whatever the back-off"
        "the waiting unit gets its key within seconds of the server's return"
        "once the server is up, the waiting unit gets its key"
        "its start succeeds"
        "the delivery is logged after the key was fetched"
        "no key data in the container agent's log")
if [ "$(id -u)" -ne 0 ] || ! command -v systemd-nspawn >/dev/null || [ ! -x /lib/systemd/systemd ]; then
        for t in "${NSPAWN_TESTS[@]}"; do
                ok "$t # SKIP needs root and systemd-nspawn"
        done
        done_testing
        exit
fi

# ---- registrations made while the server was there, then it goes ---------------------------
# The host's state as it would be at boot: cached_key has a cache file, db_password was
# registered but never fetched (registered while the servers were away).
NS_STATE=$T/nsstate
bus_start
AGENT_STATE=$NS_STATE AGENT_RUN=$T/seedrun AGENT_LOG=$T/seed.log
agent_start --retry-max 1s
check "seed: the agent is on the bus" wait_for 10 bus status "$DEST"
check "seed: Register cached_key for other.service" \
        call Register 'sa{sv}' cached_key 2 units as 1 other.service credential s cached
check "seed: cached_key is cached" wait_for 10 test -s "$NS_STATE/cache/cached_key"
kwd_stop
check "seed: Register db_password for the boot units while the server is down" \
        call Register 'sa{sv}' db_password 2 units as 3 late.service never.service hang.service credential s db
agent_stop
is "seed: the agent stops" "$?" 0
check "seed: db_password is registered but not cached" \
        bash -c "'$AGENT_UNSEAL' '$T/host/cache.key' '$NS_STATE/registrations.sealed' | grep -q db_password && test ! -e '$NS_STATE/cache/db_password'"

# ---- the boot, in a container ------------------------------------------------------------------
NS_RUN=$T/nsrun
O=$T/out
NL=$T/agent-ns.log
mkdir -p "$T/units" "$O" "$NS_RUN" "$T/bin" "$T/prom"
cp "$KEYWARD_AGENT" "$T/bin/keyward-agent"
chmod 0755 "$T" "$T/units" "$O" "$NS_RUN" "$T/bin" "$T/prom"
# The wait and the back-off come from the file, so that a reload can change them: a short wait
# first, then a long one with a long back-off (60s, the default).
printf '[agent]\ncredential-wait = 0\nretry-max = 1s\n' >"$T/agent.conf"

ns_agent_units --config "$T/agent.conf" --server "$KWD_URL" --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" \
        --server-ca "$T/pki/ca.pem" --hostname "$HOST" --state-dir "$NS_STATE" --runtime-dir "$NS_RUN" \
        --metrics-file "$T/prom/keyward.prom" --log-level debug
# unit NAME CREDENTIAL [EXTRA]: a unit that refuses to start without its credential, the way
# keyward-agent.8 says, and then saves it in $O/NAME.
unit() {
        cat >"$T/units/$1.service" <<UNIT
[Unit]
Description=keyward test: a unit that needs its credential
[Service]
Type=oneshot
${3:-}
LoadCredential=$2:$NS_RUN/credential.sock
ExecStartPre=/usr/bin/test -s \${CREDENTIALS_DIRECTORY}/$2
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/$2" >$O/$1'
UNIT
}
unit never db
unit late db
unit other cached
unit hang db TimeoutStartSec=2s
ns_driver_unit "$O"
cat >"$T/driver.sh" <<DRIVER
set -u
O=$O
NL=$NL
CALL="busctl call $DEST $OBJ $IFACE"
# until_ok SECONDS COMMAND...: wait for a command to succeed.
until_ok() {
        local n=\$((\$1 * 10))
        shift
        for _ in \$(seq "\$n"); do "\$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
}
systemctl start kwagent.service || exit 1

# reload N: reload the agent, the N-th time, and wait until it did.
reload() {
        systemctl kill -s HUP kwagent.service
        until_ok 10 bash -c "[ \\\$(grep -c 'Reloading the configuration' \$NL) -ge \$1 ]"
}

# No wait: refused at once.
systemctl start never.service && touch \$O/never0-started
systemctl show -p Result --value never.service >\$O/never0-result
until_ok 10 grep -q "Refused credential 'db' to unit never.service" \$NL
cp \$NL \$O/log-no-wait

# The server does not come within the wait (3s, from the file): the unit fails.
sed -i 's/^credential-wait = 0/credential-wait = 3s/' $T/agent.conf
reload 1 || exit 1
systemctl start never.service && touch \$O/never-started
systemctl show -p Result --value never.service >\$O/never-result
until_ok 10 grep -q "Refused credential 'db' to unit never.service: the key did not arrive" \$NL

# A longer wait, and a long back-off, by the file and a reload.
sed -i 's/^credential-wait = 3s/credential-wait = 120s/; s/^retry-max = 1s/retry-max = 60s/' $T/agent.conf
reload 2 || exit 1

# A unit whose start times out (TimeoutStartSec=2s) while it waits.
systemctl start hang.service
until_ok 20 grep -q "Refused credential 'db' to unit hang.service: the unit stopped waiting for it" \$NL && touch \$O/hang-freed

# A unit started before the first fetch: it waits.
systemctl start --no-block late.service
until_ok 30 grep -q "Credential 'db' for unit late.service: key 'db_password' has no copy yet; waiting up to 120000 ms" \$NL && touch \$O/late-waits
# Nothing else waits for it.
systemctl start other.service
\$CALL GetKey s cached_key >/dev/null && touch \$O/bus-answered
until_ok 10 grep -qx 'keyward_agent_credential_waiting 1' $T/prom/keyward.prom && touch \$O/metrics-waiting
systemctl show -p ActiveState --value late.service >\$O/late-state
# After many failures the back-off is long (30 to 60s), but not while a unit waits.
n0=\$(grep -c "annot sync with the keyward servers" \$NL)
until_ok 30 bash -c "[ \\\$(grep -c 'annot sync with the keyward servers' \$NL) -ge \$((n0 + 4)) ]" && touch \$O/retries
# The server comes.
touch \$O/server-turn
until_ok 60 test -e \$O/server-up || exit 1
until_ok 10 test -s \$O/late && touch \$O/late-soon
until_ok 60 test -s \$O/late
until_ok 10 bash -c '[ "\$(systemctl show -p ActiveState --value late.service)" != activating ]'
systemctl show -p Result --value late.service >\$O/late-result
exit 0
DRIVER

ns_boot
server_turn() { [ -e "$O/server-turn" ] || ! kill -0 "$NSPAWN_PID"; }
wait_for 180 server_turn
if [ -e "$O/server-turn" ]; then
        kwd_restart_at "$KWD_ADDR" || diag "keywardd did not come back on $KWD_ADDR"
        touch "$O/server-up"
fi
wait "$NSPAWN_PID"
rc=$?
BG_PIDS=()

is "${NSPAWN_TESTS[0]}" "$rc" 0 || { tail -n 30 "$T/nspawn.log"; tail -n 30 "$O/driver.log"; } 2>/dev/null | sed 's/^/# /'
check "${NSPAWN_TESTS[1]}" bash -c "grep -q \"Refused credential 'db' to unit never.service: the key is not cached yet\" '$O/log-no-wait' &&
        ! grep -q 'waiting up to' '$O/log-no-wait'"
check "${NSPAWN_TESTS[2]}" bash -c "test ! -e '$O/never0-started' && [ \"\$(cat '$O/never0-result')\" = exit-code ]"
check "${NSPAWN_TESTS[3]}" test ! -e "$O/never-started"
is "${NSPAWN_TESTS[4]}" "$(cat "$O/never-result" 2>/dev/null)" exit-code
check "${NSPAWN_TESTS[5]}" test ! -e "$O/never"
check "${NSPAWN_TESTS[6]}" bash -c "grep -q \"Credential 'db' for unit never.service: key 'db_password' has no copy yet; waiting up to 3000 ms\" '$NL' &&
        grep -q \"Refused credential 'db' to unit never.service: the key did not arrive within 3000 ms\" '$NL'"
check "${NSPAWN_TESTS[7]}" test -e "$O/hang-freed"
check "${NSPAWN_TESTS[8]}" test -e "$O/late-waits"
is "${NSPAWN_TESTS[9]}" "$(cat "$O/other" 2>/dev/null)" early-bird
check "${NSPAWN_TESTS[10]}" test -e "$O/bus-answered"
check "${NSPAWN_TESTS[11]}" test -e "$O/metrics-waiting"
is "${NSPAWN_TESTS[12]}" "$(cat "$O/late-state" 2>/dev/null)" activating
check "${NSPAWN_TESTS[13]}" test -e "$O/retries"
check "${NSPAWN_TESTS[14]}" test -e "$O/late-soon"
is "${NSPAWN_TESTS[15]}" "$(cat "$O/late" 2>/dev/null)" hunter2
is "${NSPAWN_TESTS[16]}" "$(cat "$O/late-result" 2>/dev/null)" success
fetched=$(grep -n "Key 'db_password': cached primary version" "$NL" | head -n1 | cut -d: -f1)
delivered=$(grep -n "Delivered key 'db_password' version [0-9]* to unit late.service as credential 'db'" "$NL" | head -n1 | cut -d: -f1)
check "${NSPAWN_TESTS[17]}" test -n "$fetched" -a -n "$delivered" -a "${delivered:-0}" -gt "${fetched:-0}"
if grep -q -e hunter2 -e early-bird "$NL"; then
        not_ok "${NSPAWN_TESTS[18]}"
else
        ok "${NSPAWN_TESTS[18]}"
fi

done_testing
