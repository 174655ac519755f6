#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Password logins (POST /v0/auth/login/) against a real keywardd whose PAM stack is
# pam_wrapper's pam_matrix and whose users and groups come from nss_wrapper: tokens with the
# NSS groups, the same refusal for every wrong guess, the throttle, and no password anywhere.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
pam_setup
cat >"$T/passdb" <<'PASSDB'
alice:wonderland:keyward
bob:builder:other
dave:dungeons:keyward
erin:p&ss=w%C3%B6rd +x:keyward
frank:fishing:keyward
PASSDB
# pam_matrix compares bytes: erin's password is the text above, percent signs and all.
cat >"$T/passwd" <<'PASSWD'
alice:x:5001:5001:Alice:/home/alice:/bin/sh
dave:x:5003:5003:Dave:/home/dave:/bin/sh
PASSWD
cat >"$T/group" <<'GROUP'
alice:x:5001:
dave:x:5003:
ops:x:6001:alice,dave
admins:x:6000:alice
GROUP
kwd_start --login-ttl 1h

# login USER PASSWORD [curl args...]
login() {
        local user=$1 password=$2
        shift 2
        req none "" POST /v0/auth/login/ --data-urlencode "user=$user" --data-urlencode "password=$password" "$@"
}

# kw_login USER PASSWORD: `keyward login USER` with the password on stdin; stderr in $ERR,
# the exit status in $rc. No agent, no token of the caller's.
kw_login() {
        printf '%s\n' "$2" | env -u KEYWARD_TOKEN -u KNOX_USER_AUTH DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus" \
                KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" \
                timeout 30 "$KEYWARD" login "$1" >"$T/kw.out" 2>"$T/kw.err"
        rc=$?
        ERR=$(cat "$T/kw.err")
}

r=$(login alice wonderland)
expect "login with the right password: 200/0" "$r" 200 0 ""
TOKEN=$(jget "$(body "$r")" 'j["data"]["token"]')
like "the token is keywardd's kind" "$TOKEN" '^kwt_[A-Za-z0-9_-]{43}$'
is "the user" "$(jget "$(body "$r")" 'j["data"]["user"]')" "alice"
is "the groups come from NSS, sorted, the primary group included" \
        "$(jget "$(body "$r")" 'j["data"]["groups"]')" '["admins", "alice", "ops"]'
is "expires: an hour from now (--login-ttl 1h)" \
        "$(jget "$(body "$r")" 'abs(j["data"]["expires"] - int(__import__("time").time()) - 3600) < 60')" "true"

r=$(req none "0u$TOKEN" GET /v0/auth/whoami/)
expect "the token authenticates" "$r" 200 0 ""
is "whoami: alice with her groups" "$(jget "$(body "$r")" '[j["data"]["principal"], j["data"]["principals"][0]["groups"]]')" \
        '["alice", ["admins", "alice", "ops"]]'

ADMIN=$(kwd_token root-admin) || bail "cannot mint a token"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=ops_key --data-urlencode "data=$(printf 'opsdata' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"UserGroup","id":"ops","access":"Read"}]')
expect "a key readable by the group ops" "$r" 200 0 ""
r=$(req none "0u$TOKEN" GET /v0/keys/ops_key/)
expect "alice reads it through the NSS group in her token" "$r" 200 0 ""

r=$(login erin 'p&ss=w%C3%B6rd +x')
expect "a password with &, =, % and a space arrives intact" "$r" 200 0 ""
is "a user NSS does not know: no groups" "$(jget "$(body "$r")" 'j["data"]["groups"]')" "[]"

# ---- refusals: one answer for every wrong guess ---------------------------------------------

r=$(login alice wrong)
expect "wrong password: 401/5" "$r" 401 5 "Invalid user name or password"
kw_login alice wrong
is "keyward login with a wrong password: exit 1" "$rc" 1
like "keyward login: the server's refusal" "$ERR" "Fail to authenticate: Invalid user name or password\$"
if grep -q "no user token" "$T/kw.err"; then
        not_ok "keyward login: no hint to get a token, which is what login is for"
else
        ok "keyward login: no hint to get a token, which is what login is for"
fi
r=$(req none "" POST /v0/auth/login/ -d user=mallory -d password=x -d rhost=10.9.9.9)
expect "unknown user: the same answer" "$r" 401 5 "Invalid user name or password"
check "an rhost from a client without a machine certificate is ignored" \
        grep -q "Login as 'mallory' from 127.0.0.1 refused" "$T/keywardd.log"
r=$(login mallory anything)
expect "unknown user: the same answer" "$r" 401 5 "Invalid user name or password"
# A user name is the client's: it cannot split the log line or forge one.
r=$(login "$(printf 'eve\nkeywardd: User %s logged in from 127.0.0.1.' "'root'")" anything)
expect "a user name with a newline: the same answer" "$r" 401 5 "Invalid user name or password"
check "the name is logged escaped, on one line" \
        grep -qF "Login as 'eve\x0akeywardd: User \x27root\x27 logged in from 127.0.0.1.' from 127.0.0.1 refused" "$T/keywardd.log"
check "and no forged line" bash -c "! grep -q \"^keywardd: User 'root' logged in\" '$T/keywardd.log'"
r=$(login bob builder)
expect "account refused by PAM's account step: the same answer" "$r" 401 5 "Invalid user name or password"

r=$(req none "" POST /v0/auth/login/ -d user=alice)
expect "no password: 400/11" "$r" 400 11 "Missing or invalid user or password"
r=$(req none "" POST /v0/auth/login/ -d user= -d password=x)
expect "empty user: 400/11" "$r" 400 11 "Missing or invalid user or password"
r=$(req none "" POST /v0/auth/login/ -d user=alice -d 'password=wonder%00land')
expect "a NUL in the password: 400/11" "$r" 400 11 "Missing or invalid user or password"
r=$(req none "" POST /v0/auth/login/ -d user=alice --data-urlencode "password=$(head -c 5000 /dev/zero | tr '\0' x)")
expect "a password over 4096 bytes: 400/11" "$r" 400 11 "Missing or invalid user or password"
r=$(req none "" GET /v0/auth/login/)
expect "GET: 405/8" "$r" 405 8 "Method not allowed"

# ---- the throttle ---------------------------------------------------------------------------

# Eight guesses at once: attempts still with PAM count, so only five get that far.
pids=()
for i in 1 2 3 4 5 6 7 8; do
        REQ_BODY=$T/body.$i login dave "guess$i" >"$T/guess.$i" &
        pids+=($!)
done
wait "${pids[@]}"
is "eight parallel wrong guesses for dave: five reach PAM" \
        "$(grep -l 'Invalid user name or password' "$T"/guess.? | wc -l)" 5
is "and three are refused by the throttle" "$(grep -l 'Too many failed logins' "$T"/guess.? | wc -l)" 3
r=$(login dave dungeons)
expect "then even the right password is refused from that address" "$r" 401 5 "Too many failed logins, try again later"
like "the throttle is logged" "$(cat "$T/keywardd.log")" "Login as 'dave' from 127.0.0.1 refused: too many failed logins"
r=$(login alice wonderland)
expect "another user from the same address still logs in" "$r" 200 0 ""

# Whoever failed dave's password cannot lock dave out: from an address without failures the
# right password gets in, slowed down, not refused.
r=$(login dave dungeons --interface 127.0.0.2)
expect "dave from a clean address (127.0.0.2): logged in" "$r" 200 0 ""
like "and the login was slowed down, which the log says" "$(cat "$T/keywardd.log")" \
        "Login as 'dave' from 127.0.0.2 slowed down by 1 s: too many failed logins for 'dave'"
r=$(login dave dungeons)
expect "the success cleared dave's count, but not 127.0.0.1's lock on dave" "$r" 401 5 \
        "Too many failed logins, try again later"

# The same for logins a machine's agent passes on: the address the person came from counts.
for i in 1 2 3 4 5; do
        r=$(req machine "" POST /v0/auth/login/ -d user=dave -d "password=relayed$i" -d rhost=10.7.7.7)
        expect "relayed wrong guess $i for dave from 10.7.7.7" "$r" 401 5 "Invalid user name or password"
done
r=$(req machine "" POST /v0/auth/login/ -d user=dave -d password=dungeons -d rhost=10.7.7.7)
expect "relayed from 10.7.7.7: dave is locked out there" "$r" 401 5 "Too many failed logins, try again later"
r=$(req machine "" POST /v0/auth/login/ -d user=dave -d password=dungeons -d rhost=10.8.8.8)
expect "relayed from 10.8.8.8: dave logs in" "$r" 200 0 ""
like "slowed down, as host1.example.com/10.8.8.8" "$(cat "$T/keywardd.log")" \
        "Login as 'dave' from host1.example.com/10.8.8.8 slowed down by 1 s"

# A source that failed 20 times is refused for everyone, whoever the users were.
pids=()
for i in $(seq 20); do
        REQ_BODY=$T/body.s$i login "nobody$i" guess --interface 127.0.0.3 >"$T/spray.$i" &
        pids+=($!)
done
wait "${pids[@]}"
is "twenty wrong guesses from 127.0.0.3, one per user: all reach PAM" \
        "$(grep -l 'Invalid user name or password' "$T"/spray.* | wc -l)" 20
r=$(login alice wonderland --interface 127.0.0.3)
expect "then alice's right password from 127.0.0.3 is refused" "$r" 401 5 "Too many failed logins, try again later"
r=$(login alice wonderland --interface 127.0.0.4)
expect "and from 127.0.0.4 she logs in" "$r" 200 0 ""

# ---- revocation, audit, logs ----------------------------------------------------------------

r=$(req none "0u$TOKEN" DELETE /v0/auth/token/)
expect "the login token can be revoked" "$r" 200 0 ""
r=$(req none "0u$TOKEN" GET /v0/auth/whoami/)
expect "and no longer authenticates" "$r" 401 5

kwd_stop
like "a login's audit line names the user" "$(grep '"path":"/v0/auth/login/"' "$T/audit.log" | head -n1)" \
        '"parameters":\{"user":"alice"\}'
is "every login is audited" "$(grep -c '"path":"/v0/auth/login/"' "$T/audit.log")" 54
if grep -q -e wonderland -e dungeons -e 'guess[0-9]' -e "$TOKEN" "$T/audit.log" "$T/keywardd.log"; then
        not_ok "no password or token in the audit log or the server's log"
else
        ok "no password or token in the audit log or the server's log"
fi

# A PAM service with no stack at all (pam_wrapper has no "other" either): PAM cannot decide,
# which is the server's failure, not the user's.
kwd_start --pam-service keyward-missing
r=$(login alice wonderland)
expect "a PAM service without a stack: 500/1" "$r" 500 1 "Password check unavailable"
like "the log says PAM failed" "$(cat "$T/keywardd.log")" "Login as 'alice' from 127.0.0.1 failed: "
kwd_stop

# The same with a stack "other" that refuses everyone, as a distribution's does: libpam
# falls back to it for a service without a file, and a wrong password must not be what the
# person hears.
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' >"$T/pam.d/other"
: >"$T/keywardd.log"
kwd_start --pam-service keyward-missing
r=$(login alice wonderland)
expect "no file for the service, an 'other' that refuses: 500/1" "$r" 500 1 "Password check unavailable"
like "the log says the service has no file" "$(cat "$T/keywardd.log")" \
        "Login as 'alice' from 127.0.0.1 failed: the PAM service has no configuration file"
kw_login alice wonderland
is "keyward login: exit 1" "$rc" 1
like "keyward login: says the check is unavailable" "$ERR" "Fail to authenticate: Password check unavailable\$"
kwd_stop

# pam_matrix without its password file, as pam_unix that cannot read the shadow file:
# PAM_AUTHINFO_UNAVAIL, not a wrong password, and nothing counted against the user.
printf 'auth required %s/pam_matrix.so passdb=%s\naccount required %s/pam_matrix.so passdb=%s\n' \
        "$(pkg-config --variable=modules pam_wrapper)" "$T/no-passdb" \
        "$(pkg-config --variable=modules pam_wrapper)" "$T/no-passdb" >"$T/pam.d/keyward-noshadow"
kwd_start --pam-service keyward-noshadow
for i in 1 2 3 4 5 6; do
        r=$(login dave dungeons)
        expect "password database unreadable, attempt $i: 500/1" "$r" 500 1 "Password check unavailable"
done
kwd_stop

# ---- a flood for one user keeps neither the user nor others out -----------------------------

: >"$T/keywardd.log"
kwd_start
# An IPv6 address counts as its /64: five wrong guesses for dave relayed from one address of
# 2001:db8:1:2::/64 lock dave out of the whole /64, the rest of the Internet aside.
pids=()
for i in 1 2 3 4 5; do
        REQ_BODY=$T/body.v$i req machine "" POST /v0/auth/login/ -d user=dave -d "password=v6guess$i" \
                --data-urlencode "rhost=2001:db8:1:2::$i" >"$T/v6.$i" &
        pids+=($!)
done
wait "${pids[@]}"
is "five wrong guesses for dave from 2001:db8:1:2::1 to ::5" \
        "$(grep -l 'Invalid user name or password' "$T"/v6.? | wc -l)" 5
r=$(req machine "" POST /v0/auth/login/ -d user=dave -d password=dungeons --data-urlencode "rhost=2001:db8:1:2:ffff::9")
expect "then dave from another address of that /64 is refused" "$r" 401 5 "Too many failed logins, try again later"
like "counted as the /64" "$(cat "$T/keywardd.log")" \
        "Login as 'dave' from host1.example.com/2001:db8:1:2::/64 refused: too many failed logins"
r=$(req machine "" POST /v0/auth/login/ -d user=dave -d password=dungeons --data-urlencode "rhost=2001:db8:1:3::1")
expect "and from the next /64 he logs in" "$r" 200 0 ""

# frank fails eight times from 127.0.0.8 and .9: his logins are slowed down, 8 s apart.
pids=()
for i in 1 2 3 4 5 6 7 8; do
        REQ_BODY=$T/body.f$i login frank "guess$i" --interface 127.0.0.$((8 + i % 2)) >"$T/frank.$i" &
        pids+=($!)
done
wait "${pids[@]}"
is "eight wrong guesses for frank" "$(grep -l 'Invalid user name or password' "$T"/frank.? | wc -l)" 8
# Then 300 guesses for frank that host1's certificate relays, each naming a new rhost, held
# open by one curl over 30 local addresses: before the per-source and per-user caps, they took
# every place for slowed-down logins, and everyone else got 503.
{
        echo 'parallel'
        echo 'parallel-max = 300'
        for i in $(seq 300); do
                [ "$i" -gt 1 ] && echo 'next'
                printf 'url = "%s/v0/auth/login/"\n' "$KWD_URL"
                printf 'cacert = "%s"\ncert = "%s"\nkey = "%s"\n' \
                        "$T/pki/ca.pem" "$T/pki/machine.pem" "$T/pki/machine.key"
                printf 'interface = "127.0.1.%d"\n' $((i % 30 + 1))
                printf 'data = "user=frank&password=flood%d&rhost=10.66.%d.%d"\n' "$i" $((i / 256)) $((i % 256))
                printf 'output = "/dev/null"\nmax-time = %d\nsilent\n' "$(scaled 120)"
        done
} >"$T/flood.cfg"
curl -K "$T/flood.cfg" >/dev/null 2>&1 &
flood=$!
flood_in() {
        [ "$(grep -c -e "Login as 'frank' from host1\.example\.com" -e "Refusing a login as 'frank' from host1\.example\.com" \
                "$T/keywardd.log")" -ge 300 ]
}
check "the flood's 300 logins are in: waiting, refused or turned away" wait_for 60 flood_in
check "host1 may name only 16 rhosts in the window" \
        grep -q "Machine host1.example.com passed on logins from more than 16 addresses" "$T/keywardd.log"
# Ahead of the flood's guesses (their machine has more than one counted): about one interval.
r=$(login frank fishing --interface 127.0.0.10 --max-time "$(scaled 30)")
expect "frank's right password from a clean address gets in while the flood waits" "$r" 200 0 ""
r=$(login alice wonderland --interface 127.0.0.11)
expect "and so does alice's" "$r" 200 0 ""
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null

# A slowed-down login names the user escaped, on one line.
evil=$(printf 'eve\nkeywardd: forged')
pids=()
for i in 1 2 3 4 5; do
        REQ_BODY=$T/body.e$i login "$evil" "guess$i" --interface 127.0.0.12 >/dev/null &
        pids+=($!)
done
wait "${pids[@]}"
r=$(login "$evil" anything --interface 127.0.0.13)
expect "the sixth guess for that name: refused after its wait" "$r" 401 5 "Invalid user name or password"
check "the slowed-down notice escapes the name" \
        grep -qF "Login as 'eve\x0akeywardd: forged' from 127.0.0.13 slowed down by 1 s" "$T/keywardd.log"
check "and no forged line" bash -c "! grep -q '^keywardd: forged' '$T/keywardd.log'"
kwd_stop

done_testing
