#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The installed system, tested as installed: the Debian packages (tools/build-deb) installed
# with dpkg in a booted systemd (this host's tree in systemd-nspawn, with throwaway overlays on
# /usr, /etc and /var), then set up the way README.md, keywardd(8) and the shipped examples
# tell an admin to: configs copied from /usr/share/doc/*/examples, `keywardd init`, `systemctl
# enable --now`, reloads, a stop with the agent connected, a unit's LoadCredential= and its
# restart on rotation, a PAM login with pamtester and `keyward whoami`, and the common mistakes
# with the messages they must give in systemctl status and the journal.
#
# KEYWARD_DEBS=DIR uses packages built already (tools/check's build-deb/); otherwise they are
# built into the test's directory. Needs root, systemd-nspawn, a git checkout and pamtester.

. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root for systemd-nspawn"
command -v systemd-nspawn >/dev/null || skip_all "systemd-nspawn is not installed (apt-get install systemd-container)"
[ -x /lib/systemd/systemd ] || skip_all "needs systemd"
command -v pamtester >/dev/null || skip_all "pamtester is not installed (apt-get install pamtester)"
command -v pam-auth-update >/dev/null || skip_all "pam-auth-update is not installed"
[ -x "$TEST_PKI" ] || skip_all "test-pki is not built"

# tools/check runs this once, on the packages of its plain run: they are the same packages
# whatever build the rest of the suite was made by.
[ "${KW_SKIP_INSTALLED:-0}" = 1 ] && skip_all "KW_SKIP_INSTALLED is set"
DEBS=${KEYWARD_DEBS:-}
if [ -z "$DEBS" ]; then
        [ -d "$KEYWARD_TOP_SRCDIR/.git" ] || [ -f "$KEYWARD_TOP_SRCDIR/.git" ] ||
                skip_all "not a git checkout: set KEYWARD_DEBS to a directory of built packages"
        command -v dpkg-buildpackage >/dev/null || skip_all "dpkg-buildpackage is not installed"
        DEBS=$T/debs
        "$KEYWARD_TOP_SRCDIR/tools/build-deb" "$DEBS" >"$T/build-deb.log" 2>&1 ||
                { tail -n 30 "$T/build-deb.log" | sed 's/^/# /'; bail "tools/build-deb failed"; }
fi
for p in keywardd keyward-agent libpam-keyward; do
        ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || bail "no $p package in $DEBS"
done

make_pki
# What the container sees: /srv/kwtest (the driver, the PKI, its findings) and /debs.
S=$T/srv
mkdir -p "$S/out" "$S/units"
cp -r "$T/pki" "$S/pki"
chmod -R go-rwx "$S/pki"
chmod 0755 "$T" "$S" "$S/out" "$S/units"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SCALE=$KW_TEST_TIMEOUT_FACTOR # lib.sh: the one factor every deadline is scaled by

# The driver runs inside the container as a unit. It does what an admin does, and reports one
# line per finding: "ok - WHAT" or "not ok - WHAT", with "# ..." diagnostics.
cat >"$S/driver.sh" <<'DRIVER'
set -u
export DEBIAN_FRONTEND=noninteractive
O=/srv/kwtest/out
PKI=/srv/kwtest/pki
PORT=$(cat /srv/kwtest/port)
SCALE=$(cat /srv/kwtest/scale)
ok() { echo "ok - $*"; }
no() { echo "not ok - $*"; }
check() { local w=$1; shift; if "$@" >/dev/null 2>&1; then ok "$w"; else no "$w"; fi; }
diag() { sed 's/^/# /'; }
# wait_for SECONDS COMMAND...: until it succeeds, the deadline scaled as the suite's.
wait_for() {
        local n=$(($1 * 10 * SCALE))
        shift
        for _ in $(seq "$n"); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}
active() { [ "$(systemctl is-active "$1")" = active ]; }
since() { journalctl --no-pager -o cat -u "$1" --since "@$2" 2>&1; }
now() { date +%s; }
# failed_with UNIT TEXT: the unit's start failed and its log or status says TEXT (checks wait for
# it with wait_for: journald may not have the last lines yet when systemctl returns).
failed_with() {
        local unit=$1 text=$2
        ! active "$unit" && { systemctl status --no-pager -l "$unit" 2>&1; journalctl --no-pager -o cat -u "$unit" 2>&1; } | grep -qF -- "$text"
}

dpkg -i /debs/keywardd_*.deb /debs/keyward-agent_*.deb /debs/libpam-keyward_*.deb >$O/dpkg.log 2>&1
check "dpkg -i installs the three packages" dpkg-query -W keywardd keyward-agent libpam-keyward
check "the examples ship" test -f /usr/share/doc/keywardd/examples/keywardd.conf -a \
        -f /usr/share/doc/keyward-agent/examples/agent.conf -a -f /usr/share/doc/keyward-agent/examples/keyward.conf
check "/var/lib/keywardd is made for the keywardd user" test "$(stat -c %U:%a /var/lib/keywardd)" = keywardd:700

# Mistake 1: start before configuring. The start fails, the journal says which file is
# missing, and systemd does not restart it over and over.
T0=$(now)
systemctl start keywardd >$O/start-unconfigured.log 2>&1
rc=$?
check "an unconfigured keywardd does not start (systemctl start fails)" test $rc -ne 0
check "the journal names the missing /etc/keyward/keywardd.conf" wait_for 10 failed_with keywardd \
        "Failed to open config file '/etc/keyward/keywardd.conf': No such file or directory"
check "and the failure is not 243/CREDENTIALS" sh -c "! systemctl status --no-pager keywardd 2>&1 | grep -q CREDENTIALS"
check "exit status 2, and no restart loop" test \
        "$(systemctl show -p ExecMainStatus --value keywardd):$(systemctl show -p NRestarts --value keywardd)" = "2:0"
systemctl show -p ExecMainStatus -p NRestarts keywardd | diag
systemctl status --no-pager -l keywardd 2>&1 | tail -n 4 | diag
systemctl reset-failed keywardd

# Set up as the docs say: the examples, a PKI, keywardd init, enable --now.
cp /usr/share/doc/keywardd/examples/keywardd.conf /usr/share/doc/keyward-agent/examples/agent.conf \
        /usr/share/doc/keyward-agent/examples/keyward.conf /etc/keyward/
sed -i -e "s|^listen = .*|listen = 127.0.0.1:$PORT|" \
        -e "s|^#default-acl = .*|default-acl = Machine:host1.example.com:Read|" /etc/keyward/keywardd.conf
sed -i -e "s|^server = .*|server = https://localhost:$PORT|" \
        -e "s|^#hostname = .*|hostname = host1.example.com|" /etc/keyward/agent.conf /etc/keyward/keyward.conf
install -m 0644 $PKI/server.pem /etc/keyward/server.pem
install -m 0640 -g keywardd $PKI/server.key /etc/keyward/server.key
install -m 0644 $PKI/ca.pem /etc/keyward/clients-ca.pem
install -m 0644 $PKI/ca.pem /etc/keyward/ca.pem
install -m 0644 $PKI/machine.pem /etc/keyward/host.pem
install -m 0600 $PKI/machine.key /etc/keyward/host.key
# Mistake 1b: configured, but no master key yet.
systemctl start keywardd >/dev/null 2>&1
check "without /etc/keyward/master.key: the journal says the master key is missing" wait_for 10 failed_with keywardd \
        "The master key credential 'master.key' is missing: systemd found no file to load it from (keywardd.service loads it from /etc/keyward/master.key)"
check "and the failure is still not 243/CREDENTIALS" sh -c "! systemctl status --no-pager keywardd 2>&1 | grep -q CREDENTIALS"
systemctl reset-failed keywardd
keywardd init --db /var/lib/keywardd/keyward.db --master-key /etc/keyward/master.key >$O/init.log 2>&1
check "keywardd init as root succeeds" test $? -eq 0
check "the store belongs to the keywardd user" test "$(stat -c %U /var/lib/keywardd/keyward.db)" = keywardd
check "the master key stays root's, 0600" test "$(stat -c %U:%a /etc/keyward/master.key)" = root:600
systemctl enable --now keywardd keyward-agent >$O/enable.log 2>&1
check "systemctl enable --now keywardd keyward-agent" test $? -eq 0
check "keywardd is active" active keywardd
check "keyward-agent is active" wait_for 20 active keyward-agent
active keywardd || { journalctl --no-pager -o cat -u keywardd | tail -n 15 | diag; }
check "audit lines go to the journal (the default under systemd)" wait_for 10 sh -c \
        "journalctl --no-pager -o export -u keywardd | grep -q '^KEYWARD_METHOD='"

# Keys, as an admin makes them: a bootstrap token, then the command line.
TOKEN=$(keywardd token --db /var/lib/keywardd/keyward.db --master-key /etc/keyward/master.key --user admin 2>$O/token.log)
check "keywardd token mints a token next to the running service" test -n "$TOKEN"
printf first | KEYWARD_TOKEN=$TOKEN keyward create app_token >$O/create.log 2>&1
check "keyward create app_token" test $? -eq 0
cat $O/create.log | diag

# Reload both.
T0=$(now)
systemctl reload keywardd keyward-agent >$O/reload.log 2>&1
check "systemctl reload keywardd keyward-agent" test $? -eq 0
check "both are still active after the reload" systemctl is-active keywardd keyward-agent

# A unit with LoadCredential=, registered for the key, restarted on rotation.
cat >/etc/systemd/system/counter.service <<'UNIT'
[Unit]
Description=keyward test: a unit that reads its key from the agent
[Service]
Type=oneshot
RemainAfterExit=yes
LoadCredential=token:/run/keyward/credential.sock
ExecStart=/bin/sh -c 'cat "$CREDENTIALS_DIRECTORY/token" >>/srv/kwtest/out/starts; echo >>/srv/kwtest/out/starts'
UNIT
systemctl daemon-reload
keyward register -k app_token --unit counter.service --credential token --on-change restart >$O/register.log 2>&1
check "keyward register -k app_token --unit counter.service --on-change restart" test $? -eq 0
check "the agent has the key" wait_for 20 sh -c "keyward status 2>&1 | grep -q app_token && busctl call org.keyward.Agent1 /org/keyward/Agent1 org.keyward.Agent1 GetKey s app_token"
systemctl start counter.service
check "counter.service got the key through LoadCredential=" test "$(cat $O/starts 2>/dev/null)" = first
V=$(printf second | KEYWARD_TOKEN=$TOKEN keyward add app_token 2>$O/add.log | sed -n 's/^Added key version //p')
KEYWARD_TOKEN=$TOKEN keyward promote app_token "$V" >$O/promote.log 2>&1
check "keyward add and promote a new version" test $? -eq 0
check "on_change=restart: counter.service ran again with the new value" wait_for 20 sh -c \
        "test \"\$(cat $O/starts)\" = \"\$(printf 'first\nsecond')\""
cat $O/starts | diag

# Stop keywardd while the agent holds a watch on it: exit 0, no core dump.
T0=$(now)
check "the agent is connected" sh -c "busctl get-property org.keyward.Agent1 /org/keyward/Agent1 org.keyward.Agent1 Connected | grep -q true"
systemctl stop keywardd
check "systemctl stop keywardd with the agent connected" test $? -eq 0
check "keywardd exited 0 (Result=success, status 0)" test \
        "$(systemctl show -p Result --value keywardd):$(systemctl show -p ExecMainCode --value keywardd):$(systemctl show -p ExecMainStatus --value keywardd)" = "success:1:0"
check "no core dump" sh -c "! journalctl --no-pager -o cat --since @$T0 | grep -Eqi 'dumped core|core-dump'"
systemctl show -p Result -p ExecMainCode -p ExecMainStatus keywardd | diag

# Mistake 2: a store root owns (a root `sqlite3`, a restore as root): the start fails with
# EACCES, the file and the user; `keywardd init` again hands it back.
chown root:root /var/lib/keywardd/keyward.db*
T0=$(now)
systemctl start keywardd >/dev/null 2>&1
check "a root-owned store: the log says EACCES, which file and as which user" wait_for 10 failed_with keywardd \
        "Cannot read and write the store '/var/lib/keywardd/keyward.db': Permission denied. keywardd runs as user 'keywardd'"
since keywardd "$T0" | grep -F "Cannot " | head -n 2 | diag
keywardd init --db /var/lib/keywardd/keyward.db --master-key /etc/keyward/master.key >>$O/init.log 2>&1
systemctl reset-failed keywardd
systemctl start keywardd
check "keywardd init again fixes it" active keywardd

# Mistake 3: audit-log= in keywardd.conf is the one that counts.
echo "audit-log = /var/lib/keywardd/audit.log" >>/etc/keyward/keywardd.conf
sed -i 's|^audit-log = journal$||' /etc/keyward/keywardd.conf
systemctl restart keywardd
KEYWARD_TOKEN=$TOKEN keyward keys >/dev/null 2>&1
check "audit-log = FILE in keywardd.conf: the audit lines go to that file" wait_for 10 sh -c \
        "grep -q '\"method\"' /var/lib/keywardd/audit.log"

# Mistake 4: a bad default-acl in keywardd.conf: file:line and the valid values.
cp /etc/keyward/keywardd.conf $O/keywardd.conf.good
echo "default-acl = Usr:alice:Read" >>/etc/keyward/keywardd.conf
LINE=$(wc -l </etc/keyward/keywardd.conf)
systemctl restart keywardd >/dev/null 2>&1
check "a bad default-acl: file:line, value and the types allowed" wait_for 10 failed_with keywardd \
        "/etc/keyward/keywardd.conf:$LINE: Invalid value for 'default-acl' in section [server]: 'Usr:alice:Read': Invalid argument. Expected TYPE:ID:ACCESS, TYPE one of User, UserGroup"
check "the message does not name a flag the admin never passed" sh -c "! journalctl --no-pager -o cat -u keywardd | grep -q -- '--default-acl'"
journalctl --no-pager -o cat -u keywardd | grep -F "default-acl" | tail -n 1 | diag
cp $O/keywardd.conf.good /etc/keyward/keywardd.conf
systemctl reset-failed keywardd

# Mistake 5: the agent with a wrong CA path says which file.
cp /etc/keyward/agent.conf $O/agent.conf.good
sed -i 's|^server-ca = .*|server-ca = /etc/keyward/no-such-ca.pem|' /etc/keyward/agent.conf
systemctl restart keyward-agent >/dev/null 2>&1
check "a wrong server-ca path: the agent's log names the file" wait_for 10 sh -c \
        "journalctl --no-pager -o cat -u keyward-agent | grep -q /etc/keyward/no-such-ca.pem"
journalctl --no-pager -o cat -u keyward-agent | grep -F no-such-ca | tail -n 2 | diag
cp $O/agent.conf.good /etc/keyward/agent.conf
systemctl reset-failed keyward-agent
systemctl restart keyward-agent

# Local passwords: keywardd.service's documented drop-in (User=root, still no capabilities)
# with the TLS key root:keywardd 0640; pam_keyward enabled with pam-auth-update; a login
# with pamtester; `keyward whoami` as that user with nothing in the environment.
mkdir -p /etc/systemd/system/keywardd.service.d
printf '[Service]\nUser=root\n' >/etc/systemd/system/keywardd.service.d/local-passwords.conf
systemctl daemon-reload
systemctl restart keywardd
check "keywardd as root without capabilities (the documented drop-in) starts" active keywardd
active keywardd || { journalctl --no-pager -o cat -u keywardd | tail -n 10 | diag; }
check "the agent is active" wait_for 20 active keyward-agent
useradd -m alice
echo 'alice:Correct-Horse-9' | chpasswd
pam-auth-update --enable keyward >$O/pam-auth-update.log 2>&1
check "pam-auth-update --enable keyward puts pam_keyward in common-auth" grep -q pam_keyward /etc/pam.d/common-auth
echo 'Correct-Horse-9' | pamtester login alice authenticate open_session >$O/pamtester.log 2>&1
check "pamtester login alice authenticate open_session" test $? -eq 0
cat $O/pamtester.log | diag
WHO=$(runuser -u alice -- env -i /usr/bin/keyward whoami 2>$O/whoami.err)
check "keyward whoami as alice, nothing in the environment, says alice" sh -c "printf '%s' '$WHO' | grep -qw alice"
printf '%s\n' "$WHO" | diag
cat $O/whoami.err | diag
check "no PAM loop: keywardd's own PAM service has no pam_keyward" sh -c "! grep -v '^#' /etc/pam.d/keyward | grep -q pam_keyward"

journalctl --no-pager -o short-monotonic >$O/journal.log 2>&1
echo done >$O/finished
DRIVER
echo "$PORT" >"$S/port"
echo "$SCALE" >"$S/scale"
cat >"$S/units/kw-driver.service" <<'UNIT'
[Unit]
Description=keyward test: install and set up keyward as an admin does
Wants=systemd-user-sessions.service
After=systemd-user-sessions.service dbus.service
SuccessAction=exit-force
FailureAction=exit-force
[Service]
Type=oneshot
ExecStart=/bin/sh -c '/bin/bash /srv/kwtest/driver.sh >/srv/kwtest/out/results 2>/srv/kwtest/out/driver.err'
TimeoutStartSec=infinity
UNIT

WANT=(
        "dpkg -i installs the three packages"
        "the examples ship"
        "/var/lib/keywardd is made for the keywardd user"
        "an unconfigured keywardd does not start (systemctl start fails)"
        "the journal names the missing /etc/keyward/keywardd.conf"
        "and the failure is not 243/CREDENTIALS"
        "exit status 2, and no restart loop"
        "without /etc/keyward/master.key: the journal says the master key is missing"
        "and the failure is still not 243/CREDENTIALS"
        "keywardd init as root succeeds"
        "the store belongs to the keywardd user"
        "the master key stays root's, 0600"
        "systemctl enable --now keywardd keyward-agent"
        "keywardd is active"
        "keyward-agent is active"
        "audit lines go to the journal (the default under systemd)"
        "keywardd token mints a token next to the running service"
        "keyward create app_token"
        "systemctl reload keywardd keyward-agent"
        "both are still active after the reload"
        "keyward register -k app_token --unit counter.service --on-change restart"
        "the agent has the key"
        "counter.service got the key through LoadCredential="
        "keyward add and promote a new version"
        "on_change=restart: counter.service ran again with the new value"
        "the agent is connected"
        "systemctl stop keywardd with the agent connected"
        "keywardd exited 0 (Result=success, status 0)"
        "no core dump"
        "a root-owned store: the log says EACCES, which file and as which user"
        "keywardd init again fixes it"
        "audit-log = FILE in keywardd.conf: the audit lines go to that file"
        "a bad default-acl: file:line, value and the types allowed"
        "the message does not name a flag the admin never passed"
        "a wrong server-ca path: the agent's log names the file"
        "keywardd as root without capabilities (the documented drop-in) starts"
        "the agent is active"
        "pam-auth-update --enable keyward puts pam_keyward in common-auth"
        "pamtester login alice authenticate open_session"
        "keyward whoami as alice, nothing in the environment, says alice"
        "no PAM loop: keywardd's own PAM service has no pam_keyward"
)

# The container keeps CAP_IPC_LOCK, as a host's PID 1 has it, for the agent's mlockall().
timeout $((300 * SCALE)) systemd-nspawn --directory=/ --volatile=yes --boot --register=no --keep-unit --quiet \
        --capability=CAP_IPC_LOCK \
        --overlay=/usr::/usr --overlay=/etc::/etc --overlay=/var::/var \
        --bind="$S:/srv/kwtest" --bind-ro="$DEBS:/debs" \
        --bind-ro="$S/units/kw-driver.service:/etc/systemd/system/kw-driver.service" \
        -- --unit=kw-driver.service systemd.firstboot=off </dev/null >"$T/nspawn.log" 2>&1
rc=$?
is "the container ran the driver to the end" "$rc:$(cat "$S/out/finished" 2>/dev/null)" "0:done" ||
        { tail -n 20 "$T/nspawn.log" | sed 's/^/# /'; tail -n 20 "$S/out/driver.err" 2>/dev/null | sed 's/^/# /'; }

# Each finding once, in the driver's words; a missing one fails.
for w in "${WANT[@]}"; do
        line=$(grep -F -x -e "ok - $w" -e "not ok - $w" "$S/out/results" 2>/dev/null | head -n 1)
        case $line in
        "ok - $w") ok "$w" ;;
        "not ok - $w")
                not_ok "$w"
                # The diagnostics the driver printed after it.
                awk -v l="$line" 'f && /^#/ {print; next} f {exit} $0 == l {f = 1}' "$S/out/results"
                ;;
        *) not_ok "$w (no result: the driver stopped before it)" ;;
        esac
done
n=$(grep -c -E '^(not )?ok - ' "$S/out/results" 2>/dev/null)
is "the driver reported exactly the findings listed here" "${n:-0}" "${#WANT[@]}"
if [ -n "${KEEP_TEST_DIR:-}" ]; then diag "driver output: $S/out"; fi

done_testing
