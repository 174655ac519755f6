# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by test-server-rekey.sh (SQLite) and test-server-rekey-postgres.sh after lib.sh:
# keywardd rekey from one file master key to another while a server serves and writes
# throughout, on the store at $KWD_DB.

LOADER=$KEYWARD_TOP_SRCDIR/tests/integration/rekey-load.py
N_KEYS=${N_KEYS:-200}

# loader MODE ARGS...: rekey-load.py against the running keywardd as $ADMIN.
loader() {
        local mode=$1
        shift
        python3 "$LOADER" "$mode" "$KWD_URL" "$T/pki/ca.pem" "$ADMIN" "$@"
}

# rekey OLD NEW [ARGS...]: keywardd rekey; its output in $T/rekey.out, its log in $T/rekey.log.
rekey() {
        local old=$1 new=$2
        shift 2
        "$KEYWARDD" rekey --db "$KWD_DB" --master-key "$old" --new-master-key "$new" "$@" \
                >"$T/rekey.out" 2>"$T/rekey.log"
}

# rounds: how many rounds the loader finished so far.
rounds() {
        cat "$T/load.stop.rounds" 2>/dev/null || echo 0
}

rounds_past() {
        [ "$(rounds)" -ge "$1" ]
}

rekey_under_load() {
        local new_key=$T/new.key rc before
        head -c 32 /dev/urandom >"$new_key"
        chmod 0600 "$new_key"
        export KWD_MASTER_KEY=$T/master.key

        make_pki
        kwd_init
        kwd_start
        ADMIN=$(kwd_token admin) || bail "cannot mint a token"
        loader populate "$N_KEYS" "$T/expect" || bail "cannot create the keys"
        kwd_stop

        # The servers move to the new key first, still reading the old one; then rekey runs
        # while one serves reads, creates and new versions.
        KWD_MASTER_KEY=$new_key kwd_start --old-master-key "$T/master.key"
        like "the server says it reads with an old key too" "$(cat "$T/keywardd.log")" "Reading with 1 old master key"
        rm -f "$T/load.stop" "$T/load.stop.rounds"
        loader load "$N_KEYS" "$T/expect" "$T/load.stop" >"$T/load.out" 2>"$T/load.err" &
        local load_pid=$!
        BG_PIDS+=("$load_pid")
        wait_for 20 rounds_past 3 || diag "the load made no progress: $(cat "$T/load.err")"

        rekey "$T/master.key" "$new_key"
        rc=$?
        is "rekey under load: exit 0" "$rc" 0
        like "rekey reports nothing left under the old key" "$(cat "$T/rekey.out")" "^0 versions remain under other master keys: the old key can be retired\."
        [ $rc -eq 0 ] || sed 's/^/# /' "$T/rekey.out" "$T/rekey.log"
        check "rekey re-sealed versions" grep -Eq '^Re-sealed [1-9][0-9]* versions' "$T/rekey.out"

        # A few more rounds after rekey, then stop the load.
        before=$(rounds)
        wait_for 20 rounds_past $((before + 3))
        touch "$T/load.stop"
        wait "$load_pid"
        rc=$?
        is "no request failed while rekey ran (load: $(cat "$T/load.out"))" "$rc" 0
        [ $rc -eq 0 ] || sed 's/^/# /' "$T/load.err" | head -n 20
        check "the load ran rounds before and after rekey" rounds_past $((before + 3))

        # Run again: nothing to do (versions written meanwhile were sealed under the new key).
        rekey "$T/master.key" "$new_key"
        is "rekey again: exit 0" "$?" 0
        like "rekey again re-seals nothing" "$(cat "$T/rekey.out")" "Re-sealed 0 versions"
        kwd_stop

        # The old key alone opens nothing, with Knox's error and no crash; the new one alone
        # opens every key ever acknowledged.
        kwd_start
        is "a server with the old key alone: every key is a clean error" "$(loader check "$T/expect" sealed 2>&1 | tail -n1)" "keys=$(wc -l <"$T/expect") bad=0"
        check "it is still running" kill -0 "$KWD_PID"
        like "it logs which key is missing" "$(cat "$T/keywardd.log")" "Required key not available"
        kwd_stop
        KWD_MASTER_KEY=$new_key kwd_start
        is "a server with the new key alone opens every key" "$(loader check "$T/expect" open 2>&1 | tail -n1)" "keys=$(wc -l <"$T/expect") bad=0"
        kwd_stop
        check "more keys than were populated (the load's creates)" test "$(wc -l <"$T/expect")" -gt "$N_KEYS"
}
