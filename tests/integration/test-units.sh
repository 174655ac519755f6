#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The packaged systemd units, run by a real systemd: the host's tree booted in systemd-nspawn
# with a throwaway root starts keyward-agent.service as shipped (only the binary's directory
# differs), on the container's own system bus with the shipped bus policy, configured from
# /etc/keyward/agent.conf. A unit registers a key over D-Bus; another declares LoadCredential=
# against keyward-agent.socket and gets the key; a unit registered with on_change=restart is
# restarted by the agent, through systemd's D-Bus API, when its key rotates on the server;
# a key delivered as a file (with keyward-agent(8)'s drop-in for files) to a unit running as
# nobody, registered with on_change=reload, is reloaded with the rotated file.
# systemd-analyze security rates both daemons' units. Needs root and systemd-nspawn.

. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root for systemd-nspawn"
command -v systemd-nspawn >/dev/null || skip_all "systemd-nspawn is not installed (apt-get install systemd-container)"
[ -x /lib/systemd/systemd ] && command -v busctl >/dev/null || skip_all "needs systemd and busctl"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
UNITS=$KEYWARD_TOP_SRCDIR/packaging/systemd

make_pki
kwd_init
kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=db_password --data-urlencode "data=$(printf 'hunter2' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"host1.example.com","access":"Read"}]')
expect "a key for the machine" "$r" 200 0 ""
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=app_token --data-urlencode "data=$(printf 'first' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"host1.example.com","access":"Read"}]')
expect "a key that will rotate" "$r" 200 0 ""
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=file_key --data-urlencode "data=$(printf 'file-first' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"host1.example.com","access":"Read"}]')
expect "a key for a file, that will rotate" "$r" 200 0 ""

# What the container sees under /srv/kwtest (not /tmp: the agent's unit has PrivateTmp=).
S=$T/srv
mkdir -p "$S/bin" "$S/out" "$S/files" "$T/units/keyward-agent.service.d"
cp "$KEYWARD_AGENT" "$S/bin/"
cp -r "$T/pki" "$S/pki"
chmod -R go-rwx "$S/pki"
chmod 0755 "$T" "$S" "$S/bin" "$S/out" "$S/files" "$T/units" "$T/units/keyward-agent.service.d"
chmod 0777 "$S/out"
cat >"$S/agent.conf" <<CONF
[agent]
server = $KWD_URL
cert = /srv/kwtest/pki/machine.pem
key = /srv/kwtest/pki/machine.key
server-ca = /srv/kwtest/pki/ca.pem
hostname = host1.example.com
log-level = debug
file-dir = /srv/kwtest/files
CONF
# keyward-agent(8), FILES FOR PROGRAMS: what the shipped unit needs to deliver files.
cat >"$T/units/keyward-agent.service.d/files.conf" <<UNIT
[Service]
ReadWritePaths=-/srv/kwtest/files
CapabilityBoundingSet=CAP_CHOWN
SystemCallFilter=@chown
UNIT

for u in keyward-agent.service keywardd.service; do
        sed -e 's|@sbindir@|/srv/kwtest/bin|g' "$UNITS/$u.in" >"$T/units/$u"
done
cp "$UNITS/keyward-agent.socket" "$T/units/"
BUSCALL="busctl call org.keyward.Agent1 /org/keyward/Agent1 org.keyward.Agent1"
cat >"$T/units/kw-register.service" <<UNIT
[Unit]
Description=keyward test: register db_password for demo.service
Wants=keyward-agent.service
After=keyward-agent.service
[Service]
Type=oneshot
ExecStart=$BUSCALL Register sa{sv} db_password 2 units as 1 demo.service credential s db
ExecStart=$BUSCALL Register sa{sv} app_token 3 units as 1 counter.service credential s token on_change s restart
ExecStart=$BUSCALL Register sa{sv} file_key 6 units as 1 filereader.service on_change s reload file s /srv/kwtest/files/app/file_key file_owner s nobody file_group s nogroup file_mode u 288
ExecStart=/bin/sh -c 'for i in \$(seq 100); do $BUSCALL GetKey s db_password >/dev/null 2>&1 && $BUSCALL GetKey s app_token >/dev/null 2>&1 && [ -f /srv/kwtest/files/app/file_key ] && exit 0; sleep 0.1; done; exit 1'
UNIT
cat >"$T/units/filereader.service" <<UNIT
[Unit]
Description=keyward test: a program that reads its key from a file, again on reload
After=kw-register.service
[Service]
Type=oneshot
RemainAfterExit=yes
User=nobody
Group=nogroup
ExecStart=/bin/sh -c 'cat /srv/kwtest/files/app/file_key >>/srv/kwtest/out/file-reads; echo >>/srv/kwtest/out/file-reads'
ExecReload=/bin/sh -c 'cat /srv/kwtest/files/app/file_key >>/srv/kwtest/out/file-reads; echo >>/srv/kwtest/out/file-reads'
UNIT
cat >"$T/units/counter.service" <<UNIT
[Unit]
Description=keyward test: a unit restarted when its key rotates
After=kw-register.service
[Service]
Type=oneshot
RemainAfterExit=yes
LoadCredential=token:/run/keyward/credential.sock
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/token" >>/srv/kwtest/out/starts; echo >>/srv/kwtest/out/starts'
UNIT
cat >"$T/units/demo.service" <<UNIT
[Unit]
Description=keyward test: a unit with a credential from the agent
Wants=kw-register.service counter.service filereader.service
After=kw-register.service counter.service filereader.service keyward-agent.socket
SuccessAction=exit-force
FailureAction=exit-force
[Service]
Type=oneshot
LoadCredential=db:/run/keyward/credential.sock
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/db" >/srv/kwtest/out/db'
ExecStart=/bin/sh -c 'systemctl show -p ActiveState --value keyward-agent.service >/srv/kwtest/out/agent-state'
ExecStart=/bin/sh -c 'systemd-analyze security --no-pager keyward-agent.service >/srv/kwtest/out/agent-security 2>&1; systemd-analyze security --no-pager keywardd.service >/srv/kwtest/out/keywardd-security 2>&1; true'
ExecStart=/bin/sh -c 'stat -c "%%U %%G %%a" /srv/kwtest/files/app/file_key >/srv/kwtest/out/file-stat'
ExecStart=/bin/sh -c 'touch /srv/kwtest/out/ready; for i in \$(seq 300); do [ \$(wc -l </srv/kwtest/out/starts) -ge 2 ] && [ \$(wc -l </srv/kwtest/out/file-reads) -ge 2 ] && exit 0; sleep 0.1; done; true'
ExecStart=/bin/sh -c 'journalctl --no-pager -u keyward-agent.service >/srv/kwtest/out/agent.log 2>&1; true'
UNIT

# The container keeps CAP_IPC_LOCK, as a host's PID 1 has it, for the agent's mlockall().
timeout 180 systemd-nspawn --directory=/ --volatile=yes --boot --register=no --keep-unit --quiet \
        --capability=CAP_IPC_LOCK \
        --bind="$S:/srv/kwtest" --bind-ro="$T/units:/etc/systemd/system" \
        --bind-ro="$S/agent.conf:/etc/keyward/agent.conf" \
        --bind-ro="$KEYWARD_TOP_SRCDIR/dbus/org.keyward.Agent1.conf:/etc/dbus-1/system.d/org.keyward.Agent1.conf" \
        -- --unit=demo.service systemd.firstboot=off </dev/null >"$T/nspawn.log" 2>&1 &
NSPAWN_PID=$!
# Once demo.service is waiting, rotate app_token on the server: the agent in the container
# restarts counter.service, which reads the new primary.
for _ in $(seq 600); do
        [ -e "$S/out/ready" ] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
done
r=$(req none "0u$ADMIN" POST /v0/keys/file_key/versions/ --data-urlencode "data=$(printf 'file-second' | base64 -w0)")
expect "add a version to file_key" "$r" 200 0 ""
r=$(req none "0u$ADMIN" PUT "/v0/keys/file_key/versions/$(jget "$(body "$r")" 'j["data"]')/" \
        --data-urlencode 'status="Primary"')
expect "promote it" "$r" 200 0 ""
r=$(req none "0u$ADMIN" POST /v0/keys/app_token/versions/ --data-urlencode "data=$(printf 'second' | base64 -w0)")
expect "add a version to app_token" "$r" 200 0 ""
r=$(req none "0u$ADMIN" PUT "/v0/keys/app_token/versions/$(jget "$(body "$r")" 'j["data"]')/" \
        --data-urlencode 'status="Primary"')
expect "promote it" "$r" 200 0 ""
wait "$NSPAWN_PID"
rc=$?
is "the container ran demo.service to success" "$rc" 0 || tail -n 40 "$T/nspawn.log" | sed 's/^/# /'
is "keyward-agent.service, as shipped, ran" "$(cat "$S/out/agent-state" 2>/dev/null)" "active"
is "demo.service got the key through LoadCredential= and the socket unit" "$(cat "$S/out/db" 2>/dev/null)" "hunter2"
check "the agent logged the delivery to demo.service" grep -q "Delivered key 'db_password' version [0-9]* to unit demo.service as credential 'db'" "$S/out/agent.log"
is "on_change=restart: the unit ran again with the rotated key" "$(cat "$S/out/starts" 2>/dev/null)" $'first\nsecond'
check "the restart is logged" grep -q "Unit 'counter.service' restarted after a key rotation" "$S/out/agent.log"
is "a file under the shipped unit with the drop-in: owner nobody, group nogroup, mode 0440" \
        "$(cat "$S/out/file-stat" 2>/dev/null)" "nobody nogroup 440"
is "on_change=reload: the unit, as nobody, read the file, then the rotated one on reload" \
        "$(cat "$S/out/file-reads" 2>/dev/null)" $'file-first\nfile-second'
check "its memory is locked (CapabilityBoundingSet= keeps CAP_IPC_LOCK)" bash -c "grep -q 'Serving credentials' '$S/out/agent.log' && ! grep -q 'Failed to lock memory' '$S/out/agent.log'"

# systemd-analyze security: 0 is locked down, 10 is wide open; "OK" is below 4.
for u in agent keywardd; do
        score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$S/out/$u-security" 2>/dev/null)
        diag "systemd-analyze security, $u: ${score:-none}"
        check "the $u unit rates OK or better (exposure below 4)" python3 -c "import sys; sys.exit(0 if '$score' and float('$score') < 4 else 1)"
done

done_testing
