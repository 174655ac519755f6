#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent misconfigured (issue 15, defect 9). Settings that cannot work stop the start
# with a non-zero exit naming the file or URL: a --server-ca, --cert or --key that does not
# read or parse, a key that is not the certificate's, a URL that is not https. Settings that
# only a server can judge (a CA that does not match, a wrong port, a host typo, an expired
# certificate) leave the agent running with no key registered: it still asks a server at
# start, logs the failure once with its reason however often it retries, and shows the
# reason in Status= (sd_notify), in the LastError property and in `keyward status`.

. "$(dirname "$0")/lib.sh"


need_tools dbus-daemon busctl
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
[ -x "$KEYWARD" ] || skip_all "keyward is not built"

make_pki
kwd_init
kwd_start
bus_start
HOST=host1.example.com

prop() { bus get-property "$DEST" "$OBJ" "$IFACE" "$1"; }

notify_start

# The agent's flags come from agent_args: a file flag given replaces the default (the last one
# counts), a --server given replaces the test server (--server repeats). next_agent: each
# agent started has a state, runtime directory and log of its own.
N=0
AGENT_FLAGS=(--retry-max 1s --log-level debug)
next_agent() {
        N=$((N + 1))
        AGENT_STATE=$T/state$N AGENT_RUN=$T/run$N AGENT_LOG=$T/agent$N.log
}

# refused WHAT NEEDLE ARGS...: the agent must not start: it exits non-zero at once, and its
# error names NEEDLE.
refused() {
        local what=$1 needle=$2 rc out
        shift 2
        next_agent
        agent_args "$@"
        out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1 </dev/null)
        rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then ok "$what: the agent refuses to start"; else
                not_ok "$what: the agent refuses to start (exit $rc)"
        fi
        like "$what: the error names '$needle'" "$out" "$(printf '%s' "$needle" | sed 's/[].[*^$()+?{}|\\]/\\&/g')"
}

printf 'not a certificate\n' >"$T/garbage.pem"

refused "a missing --server-ca" "$T/pki/nosuch-ca.pem" --server-ca "$T/pki/nosuch-ca.pem"
refused "a --server-ca that is no PEM" "$T/garbage.pem" --server-ca "$T/garbage.pem"
refused "a missing --key" "$T/pki/nosuch.key" --key "$T/pki/nosuch.key"
refused "a missing --cert" "$T/pki/nosuch.pem" --cert "$T/pki/nosuch.pem"
refused "a --cert that is no PEM" "$T/garbage.pem" --cert "$T/garbage.pem"
refused "a --key that is no key" "$T/garbage.pem" --key "$T/garbage.pem"
refused "a key that is not the certificate's" "$T/pki/service.key" --key "$T/pki/service.key"
refused "an htps:// URL" "htps://$KWD_ADDR" --server "htps://$KWD_ADDR"
refused "an http:// URL" "http://$KWD_ADDR" --server "http://$KWD_ADDR"
refused "a second URL that is not https" "ftp://$KWD_ADDR" --server "$KWD_URL" --server "ftp://$KWD_ADDR"

# ---- settings only a server can judge ------------------------------------------------------

# agent_up ARGS...: the next agent, once it is ready and on the bus.
AGENT_ENV=(NOTIFY_SOCKET="$T/notify.sock")
agent_up() {
        next_agent
        : >"$T/agent$N.log"
        : >"$T/notify.log"
        agent_start "$@"
        wait_for 10 grep -q '^READY=1' "$T/notify.log" || bail "the agent did not start: $(cat "$T/agent$N.log")"
        wait_for 5 bus status "$DEST" || bail "the agent did not take its bus name"
}
logged() { grep -c -- "$1" "$T/agent$N.log"; }
retries_at_least() { [ "$(logged 'Still cannot sync with the keyward servers')" -ge "$1" ]; }
last_status() { grep '^STATUS=' "$T/notify.log" | tail -n1; }

# misconfigured WHAT KIND REASON ARGS...: the agent runs with no key registered; it asks a
# server, fails, and retries; the failure is logged once (with KIND and REASON) whatever the
# number of retries, and shows in Status=, LastError and keyward status (text and --json).
misconfigured() {
        local what=$1 kind=$2 reason=$3 st
        shift 3
        agent_up "$@"
        check "$what: logged at once, with no key registered" \
                wait_for 20 grep -q "Cannot sync with the keyward servers: $kind" "$T/agent$N.log"
        check "$what: retried at least 3 times" wait_for 30 retries_at_least 3
        is "$what: logged once across $(logged 'Still cannot sync') retries" \
                "$(logged 'Cannot sync with the keyward servers')" 1
        like "$what: the log says why" "$(grep 'Cannot sync with the keyward servers' "$T/agent$N.log")" "$reason"
        like "$what: Status= says why" "$(last_status)" "no server usable, serving the cache: $kind.*$reason"
        like "$what: LastError says why" "$(prop LastError)" "^s \"$kind.*$reason"
        st=$("$KEYWARD" status 2>&1)
        like "$what: keyward status says why" "$st" "LastError: $kind.*$reason"
        like "$what: keyward status says not connected" "$st" "Connected: no"
        st=$("$KEYWARD" status --json 2>&1)
        like "$what: keyward status --json says why" "$(jget "$st" 'j["LastError"]')" "^$kind.*$reason"
        agent_stop
}

misconfigured "a CA that does not match" "TLS verification failed" "certificate" \
        --server-ca "$T/pki/foreign.pem"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
misconfigured "a wrong port" "connection refused" "127.0.0.1.*$PORT" --server "https://127.0.0.1:$PORT"
misconfigured "a host typo" "name not resolved" "no-such-host.invalid" \
        --server "https://no-such-host.invalid:${KWD_ADDR##*:}"
misconfigured "an expired certificate" "HTTP status 401" "" \
        --cert "$T/pki/expired.pem" --key "$T/pki/expired.key"
check "an expired certificate: a warning at start names it" grep -q "$T/pki/expired.pem' has expired" "$T/agent$N.log"

# With a key registered both sync threads ask (the watch and the fetch): still one line, and
# the server's refusal of the machine is not mistaken for an answer (no "Connected" between).
agent_up --cert "$T/pki/expired.pem" --key "$T/pki/expired.key"
check "an expired certificate, a key registered: Register" bus call "$DEST" "$OBJ" "$IFACE" Register 'sa{sv}' k1 0
check "an expired certificate, a key registered: retried at least 6 times" wait_for 30 retries_at_least 6
is "an expired certificate, a key registered: logged once across $(logged 'Still cannot sync') retries" \
        "$(logged 'Cannot sync with the keyward servers')" 1
is "an expired certificate, a key registered: never said connected" "$(logged 'Connected to')" 0
is "an expired certificate, a key registered: no warning about the key itself" "$(logged "key 'k1'")" 0
like "an expired certificate, a key registered: Status= says why" "$(last_status)" "serving the cache: HTTP status 401"
agent_stop

# The same agent, rightly configured: it reaches a server at start, with no key registered.
agent_up
check "a good configuration: connected with no key registered" \
        wait_for 20 bash -c "[ \"\$(busctl --system get-property $DEST $OBJ $IFACE Connected)\" = 'b true' ]"
is "a good configuration: LastError is empty" "$(prop LastError)" 's ""'
like "a good configuration: Status= says in step" "$(last_status)" "in step with the server"
is "a good configuration: nothing logged as a failure" "$(logged 'Cannot sync with the keyward servers')" 0
agent_stop

done_testing
