#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd's configuration errors and `keywardd init`'s store, without systemd: a bad setting
# in a config file names FILE:LINE and what is allowed, as a flag it names the flag; config
# errors exit 2; a master key credential systemd could not load (the unit's SetCredential=
# marker) is named as missing; as root, init hands the SQLite store to --owner, and a store
# the serving user cannot open is reported with EACCES, the file and the user.
# test-installed.sh does the same through the installed packages and systemd.

. "$(dirname "$0")/lib.sh"

make_pki
SERVE=("$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key"
        --client-ca "$T/pki/ca.pem")

# A bad default-acl in a file: FILE:LINE, the value, and the valid types and accesses.
printf '[server]\ndb = %s\n\ndefault-acl = Usr:alice:Read\n' "$T/keyward.db" >"$T/bad-acl.conf"
"${SERVE[@]}" --config "$T/bad-acl.conf" --master-key "$T/master.key" 2>"$T/bad-acl.log"
is "a bad default-acl in the config file: exit 2" "$?" 2
check "the message gives FILE:LINE and the value" grep -qF \
        "$T/bad-acl.conf:4: Invalid value for 'default-acl' in section [server]: 'Usr:alice:Read'" "$T/bad-acl.log"
check "and what is allowed" grep -qF \
        "Expected TYPE:ID:ACCESS, TYPE one of User, UserGroup, Machine, MachinePrefix, Service, ServicePrefix, ACCESS one of Read, Write, Admin" \
        "$T/bad-acl.log"
check "and names no flag the admin never passed" bash -c "! grep -q -- '--default-acl' '$T/bad-acl.log'"

"${SERVE[@]}" --db "$T/keyward.db" --master-key "$T/master.key" --default-acl User:alice:Own 2>"$T/bad-acl-flag.log"
is "a bad --default-acl flag: exit 2" "$?" 2
check "the message names the flag and what is allowed" grep -qF \
        "Invalid value for --default-acl: 'User:alice:Own': Invalid argument. Expected TYPE:ID:ACCESS" "$T/bad-acl-flag.log"

printf '[server]\nlog-level = loud\nlogin-ttl = 2y\n' >"$T/bad-more.conf"
"${SERVE[@]}" --config "$T/bad-more.conf" 2>"$T/bad-more.log"
is "a bad log-level and login-ttl in the file: exit 2" "$?" 2
check "log-level: FILE:LINE and the levels" grep -qF \
        "$T/bad-more.conf:2: Invalid value for 'log-level' in section [server]: 'loud': Invalid argument. Expected one of debug, info, notice, warning, err." \
        "$T/bad-more.log"
check "login-ttl: FILE:LINE and the range" grep -qF \
        "$T/bad-more.conf:3: Invalid value for 'login-ttl' in section [server]: '2y'" "$T/bad-more.log"

"${SERVE[@]}" --config "$T/no-such.conf" 2>"$T/no-conf.log"
is "a missing config file: exit 2 (keywardd.service does not restart on it)" "$?" 2
check "the message names the file" grep -qF "Failed to open config file '$T/no-such.conf': No such file or directory" "$T/no-conf.log"

printf '[server]\ndb = %s\nmaster-key = %s\n' "$T/keyward.db" "$T/master.key" >"$T/no-tls.conf"
"$KEYWARDD" serve --config "$T/no-tls.conf" 2>"$T/no-tls.log"
is "a config file without tls-cert: exit 2" "$?" 2
check "the message names the setting as a key of the file too" grep -qF -- \
        "--tls-cert is required (or tls-cert = in the [server] section of --config FILE)." "$T/no-tls.log"

# The unit's fallback when /etc/keyward/master.key is missing.
mkdir -p "$T/creds"
printf 'keywardd-no-master-key' >"$T/creds/master.key"
chmod 0600 "$T/creds/master.key"
CREDENTIALS_DIRECTORY=$T/creds "${SERVE[@]}" --db "$T/keyward.db" --master-key credential:master.key 2>"$T/no-mk.log"
is "the unit's no-master-key marker: exit 2" "$?" 2
check "the message says the master key file is missing and how to make it" grep -qF \
        "The master key credential 'master.key' is missing: systemd found no file to load it from (keywardd.service loads it from /etc/keyward/master.key). Make the master key and the store with 'keywardd init" \
        "$T/no-mk.log"

# init --owner (as root: chown needs it).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && getent passwd nobody >/dev/null; then
        chmod 0755 "$T"
        mkdir -m 0755 "$T/store"
        "$KEYWARDD" init --db "$T/store/k.db" --master-key "$T/store/mk" --owner nobody 2>"$T/init.log"
        is "init --owner nobody succeeds" "$?" 0
        is "the store is nobody's, 0600" "$(stat -c %U:%a "$T/store/k.db")" nobody:600
        is "the master key stays root's, 0600" "$(stat -c %U:%a "$T/store/mk")" root:600
        check "init warns that nobody cannot create SQLite's files in the directory" grep -qF \
                "User 'nobody' cannot create files in '$T/store'" "$T/init.log"
        "$KEYWARDD" init --db "$T/store/k.db" --master-key "$T/store/mk" --owner no-such-user-kw 2>"$T/init-bad.log"
        is "init --owner with an unknown user fails" "$?" 1
        check "naming the user" grep -qF "Unknown --owner user 'no-such-user-kw'" "$T/init-bad.log"

        # A store root owns, served as another user: EACCES, the file, its owner, the user.
        chown root:root "$T/store/k.db"
        chown nobody "$T/store" "$T/store/mk"
        setpriv --reuid=nobody --regid=nogroup --clear-groups "${SERVE[@]}" --db "$T/store/k.db" \
                --master-key "$T/store/mk" --tls-cert /dev/null 2>"$T/eacces.log"
        is "a store the user cannot open: exit 1" "$?" 1
        check "the message says EACCES, the file, its owner and mode, and the user" grep -qF \
                "Cannot read and write the store '$T/store/k.db': Permission denied. keywardd runs as user 'nobody' (uid $(id -u nobody)), and '$T/store/k.db' is owned by 'root' (uid 0) with mode 0600." \
                "$T/eacces.log"
        "$KEYWARDD" init --db "$T/store/k.db" --master-key "$T/store/mk" --owner nobody 2>/dev/null
        is "init again hands it back" "$(stat -c %U "$T/store/k.db")" nobody
else
        diag "not root: init --owner and the EACCES message are left to test-installed.sh"
fi

done_testing
