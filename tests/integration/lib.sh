# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the integration tests: TAP output, a scratch directory, a test PKI made at test
# time, and a real keywardd on 127.0.0.1 with a random port.
#
# Binaries come from $KEYWARD_TOP_BUILDDIR (make check sets it) and may be overridden with
# KEYWARDD=... and friends.

# The tests are bash scripts; make check may run them with another sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -u

: "${KEYWARD_TOP_BUILDDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${KEYWARD_TOP_SRCDIR:=$KEYWARD_TOP_BUILDDIR}"
: "${KEYWARDD:=$KEYWARD_TOP_BUILDDIR/keywardd}"
: "${KEYWARD_AGENT:=$KEYWARD_TOP_BUILDDIR/keyward-agent}"
: "${KEYWARD:=$KEYWARD_TOP_BUILDDIR/keyward}"
: "${TEST_PKI:=$KEYWARD_TOP_BUILDDIR/tests/integration/test-pki}"
: "${AGENT_UNSEAL:=$KEYWARD_TOP_BUILDDIR/tests/integration/agent-unseal}"

tap_n=0
tap_failed=0
TODO=

# With TODO set (e.g. `TODO="bug: ..." expect ...`), a result is a TAP TODO: an assertion
# known to fail because of a reported bug. Once the bug is fixed it shows up as XPASS, which
# fails the test: drop the TODO then.
ok() {
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $*${TODO:+ # TODO $TODO}"
}

not_ok() {
        tap_n=$((tap_n + 1))
        [ -n "${TODO:-}" ] || tap_failed=$((tap_failed + 1))
        echo "not ok $tap_n - $*${TODO:+ # TODO $TODO}"
}

# skip DESCRIPTION REASON: a TAP line for an assertion this build cannot make.
skip() {
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $1 # SKIP $2"
}

# Whether keywardd is built with AddressSanitizer (its shadow memory and quarantine make
# RSS figures meaningless).
kwd_has_asan() {
        ldd "$KEYWARDD" 2>/dev/null | grep -q libasan
}

# check DESCRIPTION COMMAND...: one TAP line from a command's status.
check() {
        local what=$1
        shift
        if "$@"; then ok "$what"; else not_ok "$what"; fi
}

diag() {
        echo "# $*"
}

# is DESCRIPTION GOT WANT: one TAP line from a comparison of strings.
is() {
        if [ "$2" = "$3" ]; then
                ok "$1"
        else
                not_ok "$1"
                diag "got:  $2"
                diag "want: $3"
        fi
}

# like DESCRIPTION GOT REGEX: the string matches an extended regular expression.
like() {
        if printf '%s' "$2" | grep -Eq -- "$3"; then
                ok "$1"
        else
                not_ok "$1"
                diag "got:  $2"
                diag "want: /$3/"
        fi
}

# unlike DESCRIPTION GOT REGEX: the string does not match the regular expression.
unlike() {
        if printf '%s' "$2" | grep -Eq -- "$3"; then
                not_ok "$1"
                diag "got:  $2"
                diag "want no match of /$3/"
        else
                ok "$1"
        fi
}

# todo REASON DESCRIPTION COMMAND...: check as a TAP TODO.
todo() {
        local TODO=$1
        shift
        check "$@"
}

# tcheck DESCRIPTION COMMAND...: like check, printing the command's output as diagnostics
# when it fails.
tcheck() {
        local what=$1 out
        shift
        if out=$("$@" 2>&1); then
                ok "$what"
        else
                not_ok "$what"
                [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/# /'
        fi
        return 0
}

# The plan "1..0 # SKIP" is the skip. Run alone a test also exits 77, automake's skip status;
# under make check's TAP driver (KW_TAP_DRIVER) that status would count as an error, so it
# exits 0 there and the plan line speaks.
skip_all() {
        echo "1..0 # SKIP $*"
        [ -n "${KW_TAP_DRIVER:-}" ] && exit 0
        exit 77
}

bail() {
        echo "Bail out! $*"
        exit 99
}

done_testing() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
}

# need_tools TOOL...: skip the whole test when a tool is not installed.
need_tools() {
        local tool
        for tool in "$@"; do
                command -v "$tool" >/dev/null || skip_all "$tool is not installed"
        done
}

need_tools curl openssl python3 timeout

T=$(mktemp -d "${TMPDIR:-/tmp}/keyward-test.XXXXXX")
KWD_PID=
AGENT_PID=
NOTIFY_PID=
BG_PIDS=()
cleanup() {
        local p
        {
                [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" && wait "$AGENT_PID"
                [ -n "$NOTIFY_PID" ] && kill "$NOTIFY_PID" && wait "$NOTIFY_PID"
                [ -n "$KWD_PID" ] && kill -9 "$KWD_PID" && wait "$KWD_PID"
                [ -n "${BUS_PID:-}" ] && kill "$BUS_PID" && wait "$BUS_PID"
                [ -n "${PG_DIR:-}" ] && pg_ctl -m immediate stop
                for p in "${BG_PIDS[@]}"; do
                        kill -9 "$p" && wait "$p"
                done
        } 2>/dev/null
        [ -n "${BUSDIR:-}" ] && rm -rf "$BUSDIR"
        [ -n "${KEEP_TEST_DIR:-}" ] && { echo "# kept $T"; return; }
        rm -rf "$T"
}
trap cleanup EXIT

# keyward-agent's name, object and interface on the bus (dbus/org.keyward.Agent1.xml).
DEST=org.keyward.Agent1
OBJ=/org/keyward/Agent1
IFACE=org.keyward.Agent1

# b64 TEXT: TEXT in base64, on one line.
b64() { printf '%s' "$1" | base64 -w0; }
# bus ARGS...: busctl on the system bus (the test's), bounded; call and jcall (JSON) call a method
# of the agent; a test may define its own bus, which they then use.
bus() { timeout "$(scaled 10)" busctl --system --timeout="$(scaled 8)" "$@"; }
call() { bus call "$DEST" "$OBJ" "$IFACE" "$@"; }
jcall() { bus --json=short call "$DEST" "$OBJ" "$IFACE" "$@"; }
# getkey ID: "<data as text> <version>" from the agent's GetKey, or the error message.
getkey() {
        local out
        out=$(jcall GetKey s "$1" 2>&1) || { printf 'ERROR %s' "$out"; return 1; }
        python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(bytes(j["data"][0]).decode(), j["data"][1])' "$out"
}

# make_pki: certificates and keys under $T/pki (see tests/integration/test-pki.c).
make_pki() {
        "$TEST_PKI" "$T/pki" >/dev/null || bail "cannot make the test PKI"
}

# kwd_init: a fresh store and master key ($KWD_MASTER_KEY when set: any --master-key spec).
kwd_init() {
        "$KEYWARDD" init --db "${KWD_DB:-$T/keyward.db}" --master-key "${KWD_MASTER_KEY:-$T/master.key}" 2>"$T/init.log" ||
                { cat "$T/init.log" >&2; bail "keywardd init failed"; }
}

# Every deadline a test waits for is scaled by one factor, KW_TEST_TIMEOUT_FACTOR (a whole
# number, default 1; tools/check raises it for the sanitized build), so a loaded or slow
# machine makes the suite slower instead of failing it.
KW_TEST_TIMEOUT_FACTOR=${KW_TEST_TIMEOUT_FACTOR:-1}
case $KW_TEST_TIMEOUT_FACTOR in
''|*[!0-9]*|0) echo "KW_TEST_TIMEOUT_FACTOR must be a whole number above 0" >&2; exit 99 ;;
esac

# scaled SECONDS: a deadline of SECONDS on this machine.
scaled() {
        echo $(($1 * KW_TEST_TIMEOUT_FACTOR))
}

# ns_agent_units ARGS...: units for a systemd booted in systemd-nspawn that run the agent
# ($T/bin/keyward-agent ARGS..., its log in $T/agent-ns.log) with its credential socket at
# $NS_RUN/credential.sock, in $T/units. The host cache key is agent_args' (ARGS may give
# another --cache-key).
ns_agent_units() {
        cat >"$T/units/kwagent.socket" <<UNIT
[Unit]
Description=keyward test: the agent's credential socket
[Socket]
ListenStream=$NS_RUN/credential.sock
SocketMode=0600
UNIT
        cat >"$T/units/kwagent.service" <<UNIT
[Unit]
Description=keyward test: the agent, in the container
Requires=dbus.socket kwagent.socket
After=dbus.socket kwagent.socket
[Service]
Type=notify
BusName=org.keyward.Agent1
ExecStart=$T/bin/keyward-agent --cache-key file:${AGENT_CACHE_KEY:-$T/host/cache.key} $*
StandardError=append:$T/agent-ns.log
UNIT
}

# credential_ask_py FILE: writes FILE, a Python script: FILE ADDRESS SOCKET OUT connects to the
# agent's credential socket SOCKET from the abstract address "\0ADDRESS", as systemd does, and
# saves what the agent wrote in OUT.
credential_ask_py() {
        cat >"$1" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1])
s.connect(sys.argv[2])
data = b""
while True:
        chunk = s.recv(65536)
        if not chunk:
                break
        data += chunk
open(sys.argv[3], "wb").write(data)
PYEOF
}

# ns_driver_unit OUT: driver.service in $T/units, the test's side inside the container: it runs
# $T/driver.sh (written by the test), logs to OUT/driver.log and ends the container when done.
ns_driver_unit() {
        cat >"$T/units/driver.service" <<UNIT
[Unit]
Description=keyward test: drives the test inside the container
SuccessAction=exit-force
FailureAction=exit-force
[Service]
Type=oneshot
ExecStart=/bin/bash $T/driver.sh
StandardOutput=append:$1/driver.log
StandardError=append:$1/driver.log
UNIT
}

# ns_boot: a systemd booted in systemd-nspawn on a volatile copy of /, with $T bound, the units
# of $T/units and keyward's bus policy, running driver.service; its output in $T/nspawn.log.
# In the background, for at most 300 s (scaled): its pid in NSPAWN_PID and BG_PIDS.
ns_boot() {
        timeout "$(scaled 300)" systemd-nspawn --directory=/ --volatile=yes --boot --register=no --keep-unit \
                --quiet --capability=CAP_IPC_LOCK --bind="$T" --bind-ro="$T/units:/etc/systemd/system" \
                --bind-ro="$KEYWARD_TOP_SRCDIR/dbus/org.keyward.Agent1.conf:/etc/dbus-1/system.d/org.keyward.Agent1.conf" \
                -- --unit=driver.service systemd.firstboot=off </dev/null >"$T/nspawn.log" 2>&1 &
        NSPAWN_PID=$!
        BG_PIDS+=("$NSPAWN_PID")
}

# wait_for SECONDS COMMAND...: until the command (a program or a function) succeeds, for at
# most SECONDS, scaled.
wait_for() {
        local n=$(($(scaled "$1") * 10))
        shift
        for _ in $(seq "$n"); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

# pam_setup: a PAM service "keyward" in $T/pam.d, backed by pam_wrapper's pam_matrix with the
# passwords in $T/passdb ("user:password:service" lines), and users and groups from
# nss_wrapper ($T/passwd, $T/group). keywardd started after this runs under both; the rest of
# the test does not. Skips the whole test when pam_wrapper or nss_wrapper is missing.
KWD_ENV=()
pam_setup() {
        local modules lib nss
        modules=$(pkg-config --variable=modules pam_wrapper 2>/dev/null)
        lib=$(pkg-config --libs pam_wrapper 2>/dev/null)
        lib=${lib%% *}
        nss=$(dirname "${lib:-/nonexistent}")/libnss_wrapper.so
        [ -f "$modules/pam_matrix.so" ] && [ -f "$lib" ] && [ -f "$nss" ] ||
                skip_all "pam_wrapper and nss_wrapper are needed (apt-get install libpam-wrapper libnss-wrapper)"
        mkdir -p "$T/pam.d"
        printf 'auth required %s/pam_matrix.so passdb=%s\naccount required %s/pam_matrix.so passdb=%s\n' \
                "$modules" "$T/passdb" "$modules" "$T/passdb" >"$T/pam.d/keyward"
        touch "$T/passdb" "$T/passwd" "$T/group"
        # An ASan build must let the wrappers come first, and they must not use RTLD_DEEPBIND
        # (pam_wrapper 1.1.4 reads the uid_wrapper spelling of that switch).
        KWD_ENV=(LD_PRELOAD="$lib $nss" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$T/pam.d"
                NSS_WRAPPER_PASSWD="$T/passwd" NSS_WRAPPER_GROUP="$T/group"
                UID_WRAPPER_DISABLE_DEEPBIND=1 NSS_WRAPPER_DISABLE_DEEPBIND=1
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
        # For an agent that must see the same users (AGENT_ENV): nss_wrapper without pam_wrapper.
        AGENT_NSS_ENV=(LD_PRELOAD="$lib $nss" NSS_WRAPPER_PASSWD="$T/passwd" NSS_WRAPPER_GROUP="$T/group"
                NSS_WRAPPER_DISABLE_DEEPBIND=1 UID_WRAPPER_DISABLE_DEEPBIND=1
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
}

# bus_start: a private system bus with keyward's bus policy, for DBUS_SYSTEM_BUS_ADDRESS. Its
# socket lives where any uid can reach it (tests that switch uid), the rest in $T. Skips the
# test without dbus-daemon and busctl.
BUS_PID=
BUSDIR=
bus_start() {
        need_tools dbus-daemon busctl
        BUSDIR=$(mktemp -d "${TMPDIR:-/tmp}/keyward-bus.XXXXXX")
        chmod 0755 "$BUSDIR"
        cat >"$T/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$BUSDIR/bus</listen>
  <auth>EXTERNAL</auth>
  <include>$KEYWARD_TOP_SRCDIR/dbus/org.keyward.Agent1.conf</include>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
        dbus-daemon --config-file="$T/bus.conf" --nofork --print-address=3 3>"$T/bus.address" 2>"$T/bus.log" &
        BUS_PID=$!
        for _ in $(seq $((100 * KW_TEST_TIMEOUT_FACTOR))); do [ -s "$T/bus.address" ] && break; sleep 0.05; done
        [ -s "$T/bus.address" ] || { cat "$T/bus.log" >&2; bail "dbus-daemon did not start"; }
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$BUSDIR/bus"
}

# pg_start: a PostgreSQL server of the test's own on 127.0.0.1 with a database "keyward"
# (run as the postgres user when the test runs as root: PostgreSQL refuses root); sets
# PG_URL. Skips the test without PostgreSQL's server binaries.
PG_DIR=
PG_BIN=
PG_RUN=()
pg_start() {
        local port
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
        [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || skip_all "PostgreSQL is not installed (apt-get install postgresql)"
        PG_DIR=$T/pg
        mkdir -p "$PG_DIR"
        if [ "$(id -u)" -eq 0 ]; then
                id postgres >/dev/null 2>&1 || skip_all "no postgres user to run PostgreSQL as"
                chmod 0755 "$T"
                chown postgres: "$PG_DIR"
                PG_RUN=(setpriv --reuid=postgres --regid=postgres --init-groups)
        fi
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        (cd / && "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U keyward -A trust -E UTF8 --no-sync) \
                >"$T/pg-init.log" 2>&1 || { cat "$T/pg-init.log" >&2; bail "initdb failed"; }
        PG_OPTS="-h 127.0.0.1 -p $port -k $PG_DIR"
        pg_ctl start || { cat "$PG_DIR/log" >&2; bail "PostgreSQL did not start"; }
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U keyward keyward || bail "createdb failed"
        PG_PORT=$port
        PG_URL="postgresql://keyward@127.0.0.1:$port/keyward"
}
# pg_ctl ARGS...: the test's server (start gets its address again).
pg_ctl() {
        local opts=()
        [ "$1" = start ] && opts=(-o "$PG_OPTS")
        (cd / && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 "${opts[@]}" "$@") \
                >/dev/null 2>&1
}

# kwd_start [FLAGS...]: start keywardd in the background and wait until it serves.
kwd_start() {
        rm -f "$T/ready"
        env "${KWD_ENV[@]}" "$KEYWARDD" serve --listen 127.0.0.1:0 \
                --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
                --client-ca "$T/pki/ca.pem" --db "${KWD_DB:-$T/keyward.db}" --master-key "${KWD_MASTER_KEY:-$T/master.key}" \
                --audit-log "$T/audit.log" --ready-file "$T/ready" --workers 2 \
                --hostname testhost "$@" 2>>"$T/keywardd.log" &
        KWD_PID=$!
        for _ in $(seq $((100 * KW_TEST_TIMEOUT_FACTOR))); do
                [ -s "$T/ready" ] && break
                kill -0 "$KWD_PID" 2>/dev/null || { tail -n 30 "$T/keywardd.log" | sed 's/^/# /'; bail "keywardd exited"; }
                sleep 0.05
        done
        [ -s "$T/ready" ] || bail "keywardd did not become ready"
        KWD_ADDR=$(head -n1 "$T/ready")
        KWD_URL="https://$KWD_ADDR"
}

# kwd_restart_at ADDR: keywardd again on the address it had (where an agent expects it), with
# the same store; fails when it is not ready within 10 seconds, scaled.
kwd_restart_at() {
        rm -f "$T/ready"
        "$KEYWARDD" serve --listen "$1" \
                --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
                --client-ca "$T/pki/ca.pem" --db "${KWD_DB:-$T/keyward.db}" --master-key "${KWD_MASTER_KEY:-$T/master.key}" \
                --audit-log "$T/audit.log" --ready-file "$T/ready" --workers 2 \
                --hostname testhost 2>>"$T/keywardd.log" &
        KWD_PID=$!
        wait_for 10 test -s "$T/ready"
}

kwd_stop() {
        [ -n "$KWD_PID" ] || return 0
        kill -TERM "$KWD_PID" 2>/dev/null
        wait "$KWD_PID" 2>/dev/null
        KWD_PID=
}

kwd_kill9() {
        [ -n "$KWD_PID" ] || return 0
        {
                kill -9 "$KWD_PID"
                wait "$KWD_PID"
        } 2>/dev/null
        KWD_PID=
}

# agent_args [ARGS...]: AGENT_ARGS, keyward-agent's flags against the test's keywardd with the
# machine certificate of the test PKI, then the test's own AGENT_FLAGS, then ARGS (of a flag
# given twice, the last counts).
# --server is the test's keywardd unless ARGS give one. The state and runtime directories are
# $AGENT_STATE and $AGENT_RUN ($T/state and $T/run unless set); the host name $HOST
# (host1.example.com, the machine certificate's, unless set). The host cache key is the file
# $AGENT_CACHE_KEY ($T/host/cache.key unless set), so that no test writes /var/lib/keyward-host.
AGENT_FLAGS=()
agent_args() {
        AGENT_ARGS=()
        case " $* " in
        *" --server "*) ;;
        *) AGENT_ARGS=(--server "$KWD_URL") ;;
        esac
        AGENT_ARGS+=(--cert "$T/pki/machine.pem" --key "$T/pki/machine.key" --server-ca "$T/pki/ca.pem"
                --hostname "${HOST:-host1.example.com}" --state-dir "${AGENT_STATE:-$T/state}"
                --runtime-dir "${AGENT_RUN:-$T/run}" --cache-key "file:${AGENT_CACHE_KEY:-$T/host/cache.key}"
                "${AGENT_FLAGS[@]}" "$@")
}

# unseal FILE: the plaintext of one of the agent's sealed files (cache file, registry,
# record) under the test's host cache key ($AGENT_CACHE_KEY or $T/host/cache.key).
unseal() {
        "$AGENT_UNSEAL" "${AGENT_CACHE_KEY:-$T/host/cache.key}" "$1"
}

# agent_start [ARGS...]: keyward-agent with agent_args' flags in the background, with
# AGENT_ENV (NAME=VALUE words) added to its environment and its stderr appended to $AGENT_LOG
# ($T/agent.log unless set); sets AGENT_PID, which cleanup kills. It does not wait.
AGENT_ENV=()
agent_start() {
        agent_args "$@"
        env "${AGENT_ENV[@]}" "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>>"${AGENT_LOG:-$T/agent.log}" &
        AGENT_PID=$!
}

# notify_start: a datagram socket $T/notify.sock, for NOTIFY_SOCKET, that records what is
# sent to it in $T/notify.log, one message a line; sets NOTIFY_PID, which cleanup stops.
notify_start() {
        python3 -u - "$T/notify.sock" "$T/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
        while True:
                f.write(s.recv(4096).decode() + "\n")
                f.flush()
EOF
        NOTIFY_PID=$!
        wait_for 5 test -S "$T/notify.sock" || bail "notify socket did not appear"
}

# agent_stop [SECONDS]: SIGTERM to the agent and wait for it (10 seconds unless given); returns
# its exit status, or 124 when it is still running (cleanup kills it then).
agent_stop() {
        local rc
        [ -n "$AGENT_PID" ] || return 0
        kill -TERM "$AGENT_PID" 2>/dev/null
        kwd_wait_exit "$AGENT_PID" "${1:-10}"
        rc=$?
        [ "$rc" -eq 124 ] && BG_PIDS+=("$AGENT_PID")
        AGENT_PID=
        return "$rc"
}

# kwd_token USER [--group G]...: mint a user token.
kwd_token() {
        local user=$1
        shift
        "$KEYWARDD" token --db "${KWD_DB:-$T/keyward.db}" --master-key "${KWD_MASTER_KEY:-$T/master.key}" --user "$user" "$@" 2>>"$T/token.log"
}

# req CERT AUTH METHOD PATH [curl args...]: one request; prints "<http status> <body>".
# CERT is a name under $T/pki (machine, service, ...) or "none". The raw body stays in
# $REQ_BODY ($T/body unless set; set it to a file of its own in concurrent subshells).
req() {
        local cert=$1 auth=$2 method=$3 path=$4
        local out=${REQ_BODY:-$T/body}
        shift 4
        rm -f "$out"
        local args=(-sS --max-time 10 --cacert "$T/pki/ca.pem" -X "$method" -o "$out" -w '%{http_code}')
        [ "$cert" != none ] && args+=(--cert "$T/pki/$cert.pem" --key "$T/pki/$cert.key")
        [ -n "$auth" ] && args+=(-H "Authorization: $auth")
        local code
        code=$(curl "${args[@]}" "$@" "$KWD_URL$path") || code=000
        printf '%s %s' "$code" "$(cat "$out" 2>/dev/null)"
}

# expect DESCRIPTION RESPONSE HTTP_STATUS KNOX_CODE [MESSAGE]: RESPONSE is what req printed;
# its HTTP status, the envelope's status ("ok" for code 0, else "error") and code, and, when
# given, the exact message must match.
expect() {
        local what=$1 resp=$2 http=$3 code=$4 msg
        local got
        if [ $# -ge 5 ]; then msg=$5; else msg=$'\x01'; fi
        got=$(python3 -c '
import json, sys
resp, http, code, msg = sys.argv[1:5]
status, _, body = resp.partition(" ")
errs = []
if status != http:
        errs.append("HTTP status %s, want %s" % (status, http))
try:
        j = json.loads(body)
except ValueError:
        errs.append("not JSON: %r" % body[:300])
        j = None
if isinstance(j, dict):
        want_status = "ok" if code == "0" else "error"
        if j.get("status") != want_status:
                errs.append("status %r, want %r" % (j.get("status"), want_status))
        if j.get("code") != int(code):
                errs.append("code %r, want %s" % (j.get("code"), code))
        if msg != "\x01" and j.get("message") != msg:
                errs.append("message %r, want %r" % (j.get("message"), msg))
elif j is not None:
        errs.append("not an object: %r" % body[:300])
if errs:
        print("; ".join(errs))
        print("response: %s" % resp[:500])
' "$resp" "$http" "$code" "$msg" 2>&1)
        if [ -z "$got" ]; then
                ok "$what"
        else
                not_ok "$what"
                printf '%s\n' "$got" | sed 's/^/# /'
        fi
}

# jget JSON EXPR: evaluate a Python expression over the parsed JSON `j` (integers stay exact);
# strings print bare, anything else as JSON. Prints nothing and fails on a parse error.
jget() {
        python3 -c '
import json, sys
try:
        j = json.loads(sys.argv[1])
        v = eval(sys.argv[2])
except Exception as e:
        sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}

# body RESPONSE: the body part of what req printed.
body() {
        printf '%s' "${1#* }"
}

# kwd_wait_exit PID SECONDS: wait for a process of ours to exit; returns its exit status, or
# 124 if it is still running after SECONDS, scaled (it is then left running).
kwd_wait_exit() {
        local pid=$1 i
        for i in $(seq $(($2 * 20 * KW_TEST_TIMEOUT_FACTOR))); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && return 124
        wait "$pid"
}

# jfield JSON FIELD: a top-level field of a response (numbers and strings, as printed).
jfield() {
        python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(json.dumps(v) if not isinstance(v,str) else v)' "$1" "$2"
}

# swtpm_start DIR: a software TPM2 (swtpm) with its state in DIR, its command port and its
# control port (the next one) on 127.0.0.1, already started up; waits until it listens and
# sets SWTPM_TCTI to the tpm2-tss TCTI string that reaches it ("swtpm:host=...,port=N") and
# SWTPM_PID, which cleanup kills. Skips the test when swtpm is not installed.
swtpm_start() {
        local dir=$1 port _
        command -v swtpm >/dev/null || skip_all "swtpm is not installed (apt-get install swtpm swtpm-tools)"
        mkdir -p "$dir"
        for _ in 1 2 3 4 5; do
                port=$(python3 -c '
import socket
while True:
        a, b = socket.socket(), socket.socket()
        a.bind(("127.0.0.1", 0))
        p = a.getsockname()[1]
        try:
                b.bind(("127.0.0.1", p + 1))
                break
        except OSError:
                pass
print(p)')
                swtpm socket --tpm2 --tpmstate dir="$dir" --flags not-need-init,startup-clear \
                        --server type=tcp,port="$port",bindaddr=127.0.0.1 \
                        --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
                        --log file="$dir/swtpm.log" 2>>"$dir/swtpm.log" &
                SWTPM_PID=$!
                BG_PIDS+=("$SWTPM_PID")
                for _ in $(seq $((100 * KW_TEST_TIMEOUT_FACTOR))); do
                        kill -0 "$SWTPM_PID" 2>/dev/null || break
                        if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
                                $((port + 1)) 2>/dev/null; then
                                SWTPM_TCTI="swtpm:host=127.0.0.1,port=$port"
                                return 0
                        fi
                        sleep 0.1
                done
                kill -9 "$SWTPM_PID" 2>/dev/null && wait "$SWTPM_PID" 2>/dev/null
        done
        tail -n 20 "$dir/swtpm.log" | sed 's/^/# /'
        bail "swtpm did not start"
}
