#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The audit log of a real keywardd on a full file system (a small tmpfs in a mount namespace
# of the test's own, so root only): requests whose lines cannot be written fail with Knox's
# internal error and no key data, /healthz and /metrics say so, the file never holds part of a
# line, every acknowledged write has its line, and lines go out again once there is room,
# with no restart. With --audit-fail-open the same requests are answered.

if [ -z "${KWD_AUDIT_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
        KWD_AUDIT_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"

[ "${KWD_AUDIT_NS:-}" = 1 ] || skip_all "needs root and unshare, for a tmpfs of its own"
mkdir -p "$T/fs"
fs_cleanup() {
        kwd_kill9
        umount "$T/fs" 2>/dev/null
        cleanup
}
trap fs_cleanup EXIT
mount -t tmpfs -o size=512k,mode=0700 tmpfs "$T/fs" || skip_all "cannot mount a tmpfs"
AUDIT=$T/fs/audit.log

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"

# A User-Agent longer than a page: no line can slip into the room left in the audit file's
# last page of the tmpfs once it is full, so a full disk refuses every line.
UA=$(head -c 5000 /dev/zero | tr '\0' u)
as_alice() { req none "0u$ALICE" "$@" -A "$UA"; }
healthz() { curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -A "$UA" -w ' %{http_code}' "$KWD_URL/healthz"; }
healthy() { [ "$(healthz)" = "ok
 200" ]; }
metric() { curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -A "$UA" "$KWD_URL/metrics" | sed -n "s/^$1 //p"; }
# fill: take every free byte of the tmpfs.
fill() { head -c 1G /dev/zero >"$T/fs/filler" 2>/dev/null; }
# create_until_refused PREFIX: create PREFIX0, PREFIX1, ... until one is not answered 200 (at
# most 400: the audit file keeps up to 1 MiB of room it made before the disk filled). The
# acknowledged ids go to $T/acked; prints the answer that was not 200.
create_until_refused() {
        local i r
        for ((i = 0; i < 400; i++)); do
                r=$(as_alice POST /v0/keys/ -d "id=$1$i" --data-urlencode "data=$(b64 "audit-secret-$i")")
                case "$r" in
                '200 {"status":"ok"'*) echo "$1$i" >>"$T/acked" ;;
                *)
                        printf '%s' "$r"
                        return 0
                        ;;
                esac
        done
        printf 'never refused'
}
# whole_lines FILE: every line is a JSON object and the file ends in a newline.
whole_lines() {
        python3 - "$1" <<'EOF2'
import json, sys
data = open(sys.argv[1], "rb").read()
if data and not data.endswith(b"\n"):
        sys.exit("the file ends in part of a line: %r" % data[-200:])
for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
                j = json.loads(line)
                assert "checkpoint" in j or j["payload"]["type"] == "access"
        except Exception as e:
                sys.exit("line %d is not a whole line (%s): %r" % (n, e, line[:200]))
EOF2
}
# audited_creates FILE: the ids of creates the audit file has as answered 200.
audited_creates() {
        python3 - "$1" <<'EOF2'
import json, sys
for line in open(sys.argv[1], "rb"):
        j = json.loads(line)
        if "checkpoint" in j:
                continue
        p = j["payload"]
        if p["request"]["path"] == "/v0/keys/" and p["request"]["method"] == "POST" and p["status_code"] == 200:
                print(p["request"]["parameters"]["id"])
EOF2
}

# ---- failing closed (the default) -----------------------------------------------------

kwd_start --audit-log "$AUDIT"
: >"$T/acked"
r=$(as_alice POST /v0/keys/ -d id=before --data-urlencode "data=$(b64 before-secret)")
expect "a create while the audit log has room" "$r" 200 0 ""
echo before >>"$T/acked"
check "healthz is ok while the audit log has room" healthy

fill
r=$(create_until_refused full)
expect "full disk: a create whose line cannot be written gets code 1" "$r" 500 1 "audit log unavailable"
n_acked=$(wc -l <"$T/acked")
diag "$n_acked creates acknowledged before the disk was full"
r=$(as_alice GET /v0/keys/before/)
expect "full disk: a read of key data is refused" "$r" 500 1 "audit log unavailable"
if grep -q "$(b64 before-secret)" "$T/body"; then
        not_ok "full disk: the refused read carries no key data"
else
        ok "full disk: the refused read carries no key data"
fi
r=$(as_alice POST /v0/keys/ -d id=refused --data-urlencode "data=$(b64 refused-secret)")
expect "full disk: a later create is refused" "$r" 500 1 "audit log unavailable"
r=$(as_alice GET /v0/keys/)
expect "full disk: a list is refused too" "$r" 500 1 "audit log unavailable"
is "full disk: healthz says the audit log is unavailable" "$(healthz)" "audit log unavailable
 503"
like "full disk: the metric counts the failures" "$(metric keyward_audit_failures_total)" '^[1-9][0-9]*$'
like "full disk: keywardd logs that the audit log is unavailable" "$(cat "$T/keywardd.log")" \
        'Audit log unavailable, refusing requests'
tcheck "full disk: the audit file holds whole lines only" whole_lines "$AUDIT"

# Room again: no restart.
rm -f "$T/fs/filler"
check "room again: healthz is ok again" wait_for 10 healthy
r=$(as_alice POST /v0/keys/ -d id=after --data-urlencode "data=$(b64 after-secret)")
expect "room again: a create is answered" "$r" 200 0 ""
like "room again: keywardd logs that the audit log takes lines again" "$(cat "$T/keywardd.log")" \
        'The audit log takes lines again'
unlike "full disk: nothing says the failure is ignored" "$(cat "$T/keywardd.log")" 'ignoring'
echo after >>"$T/acked"
r=$(as_alice GET /v0/keys/after/)
expect "room again: a read of key data is answered" "$r" 200 0 ""
r=$(as_alice GET /v0/keys/refused/)
expect "room again: the create refused up front changed nothing" "$r" 404 4

kwd_stop
tcheck "the audit file holds whole lines only" whole_lines "$AUDIT"
missing=$(comm -23 <(sort "$T/acked") <(audited_creates "$AUDIT" | sort))
is "every acknowledged create has its audit line" "$missing" ""
if grep -q -e "$(b64 before-secret)" -e "$(b64 after-secret)" -e "$ALICE" "$AUDIT" "$T/keywardd.log"; then
        not_ok "no key data or token in the audit log or keywardd's log"
else
        ok "no key data or token in the audit log or keywardd's log"
fi

# ---- --audit-fail-open ----------------------------------------------------------------

kwd_start --audit-log "$AUDIT" --audit-fail-open
like "fail open: keywardd says so when it starts" "$(cat "$T/keywardd.log")" 'Audit fails open'
fill
: >"$T/acked"
r=$(create_until_refused open)
is "fail open: every create is answered on a full disk" "$r" "never refused"
r=$(as_alice GET /v0/keys/open0/)
expect "fail open: a read of key data is answered on a full disk" "$r" 200 0 ""
like "fail open: keywardd logs loudly that lines are lost" "$(cat "$T/keywardd.log")" \
        'AUDIT LOG UNAVAILABLE, answering requests without their audit lines'
is "fail open: healthz answers 200 but says the audit log is unavailable" "$(healthz)" "audit log unavailable
 200"
like "fail open: the metric counts the lost lines" "$(metric keyward_audit_failures_total)" '^[1-9][0-9]*$'
rm -f "$T/fs/filler"
check "fail open: healthz is ok once there is room" wait_for 10 healthy
kwd_stop
tcheck "fail open: the audit file holds whole lines only" whole_lines "$AUDIT"

# A file size limit (LimitFSIZE=) reached fails the write that crosses it (EFBIG, for the audit
# file or the store's, whichever first), not a SIGXFSZ that would kill the server.
if command -v prlimit >/dev/null; then
        AUDIT=$T/fsize-audit.log
        kwd_start --audit-log "$AUDIT"
        r=$(as_alice POST /v0/keys/ -d id=fsize0 --data-urlencode "data=$(b64 fsize)")
        expect "file size limit: a create before it" "$r" 200 0 ""
        prlimit --pid "$KWD_PID" --fsize="$(($(stat -c %s "$AUDIT") + 100)):"
        r=$(create_until_refused fsz)
        like "file size limit: a create past it is refused with 500/1" "$r" '^500 .*"code":1,'
        check "file size limit: keywardd is still running" kill -0 "$KWD_PID"
        kwd_kill9
        tcheck "file size limit: the audit file holds whole lines only" whole_lines "$AUDIT"
fi

done_testing
