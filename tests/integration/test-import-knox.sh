#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd import-knox against a real MariaDB and a real PostgreSQL, each started by the test,
# holding rows that Knox's own Go code made (tests/data/knox/README.md): a wrong Knox master
# key and malformed rows stop it with nothing written, a dry run writes nothing, the import
# keeps ids, version ids, statuses, creation times, data, ACLs and hashes (a keywardd serving
# the result answers as the fixture says), a second run finds nothing new, changed keys are
# reported and taken with --update, and passwords never go in the URL.

. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (to run mariadbd and PostgreSQL as their users)"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed"
DATA=$KEYWARD_TOP_SRCDIR/tests/data/knox
[ -r "$DATA/knox-v1.sql" ] || bail "no fixture in $DATA"

make_pki
chmod 0755 "$T"
install -m 0600 "$DATA/knox-master.key" "$T/knox.key"
head -c 16 /dev/urandom >"$T/wrong.key"
chmod 0600 "$T/wrong.key"

# ---- the Knox databases ----------------------------------------------------------------
MY_DIR=
my_start() {
        local port
        command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null && command -v mariadb >/dev/null ||
                return 1
        # The packaged server's user when mariadb-server made it; the core packages make none.
        MY_USER=mysql
        id mysql >/dev/null 2>&1 || MY_USER=nobody
        MY_DIR=$T/my
        mkdir -p "$MY_DIR"
        chown "$MY_USER:" "$MY_DIR"
        (cd / && mariadb-install-db --no-defaults --datadir="$MY_DIR/data" --user="$MY_USER" \
                --auth-root-authentication-method=socket --skip-test-db) >"$T/my-install.log" 2>&1 ||
                { sed 's/^/# /' "$T/my-install.log"; bail "mariadb-install-db failed"; }
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        (cd / && exec mariadbd --no-defaults --user="$MY_USER" --datadir="$MY_DIR/data" --socket="$MY_DIR/sock" \
                --port="$port" --bind-address=127.0.0.1 --pid-file="$MY_DIR/pid" --log-error="$MY_DIR/err.log" \
                --skip-log-bin --skip-name-resolve --innodb-buffer-pool-size=16M) 2>>"$T/my-stderr.log" &
        BG_PIDS+=("$!")
        wait_for 60 mariadb --no-defaults -S "$MY_DIR/sock" -u root -e 'SELECT 1' >/dev/null 2>&1 ||
                { sed 's/^/# /' "$MY_DIR/err.log"; bail "mariadbd did not start"; }
        MY_PORT=$port
}
my_sql() { mariadb --no-defaults -S "$MY_DIR/sock" -u root -N knox; }

# knox_schema: Knox's keydb table, as its sqlCreateKeys makes it for MySQL and PostgreSQL.
knox_schema() {
        echo 'CREATE TABLE IF NOT EXISTS secrets (id VARCHAR(512) PRIMARY KEY, acl TEXT NOT NULL,
                version_hash TEXT NOT NULL, versions TEXT NOT NULL, last_updated BIGINT NOT NULL);'
}

# ---- checks against a keywardd serving the imported store -------------------------------
# same_as_fixture WHAT EXPECT-FILE: every key of the fixture, read back through the API by
# alice (named in every fixture ACL), has the fixture's versions (order, ids, statuses,
# creation times, data), hash and ACL.
same_as_fixture() {
        local what=$1 expect=$2 id line r all def acl got
        while read -r line; do
                id=$(jget "$line" 'j["id"]')
                r=$(req none "0u$ALICE" GET "/v0/keys/$id/?status=\"Inactive\"")
                all=$(body "$r")
                def=$(body "$(req none "0u$ALICE" GET "/v0/keys/$id/")")
                acl=$(body "$(req none "0u$ALICE" GET "/v0/keys/$id/access/")")
                got=$(python3 -c '
import json, sys
want, all_, def_, acl = (json.loads(a) for a in sys.argv[1:5])
errs = []
a, d = all_.get("data") or {}, def_.get("data") or {}
if a.get("versions") != want["versions"]:
        errs.append("versions %r, want %r" % (a.get("versions"), want["versions"]))
if a.get("hash") != want["hash"] or d.get("hash") != want["hash"]:
        errs.append("hash %r/%r, want %r" % (a.get("hash"), d.get("hash"), want["hash"]))
live = [v for v in want["versions"] if v["status"] != "Inactive"]
if d.get("versions") != live:
        errs.append("active set %r, want %r" % (d.get("versions"), live))
if acl.get("data") != want["acl"]:
        errs.append("acl %r, want %r" % (acl.get("data"), want["acl"]))
print("; ".join(errs))
' "$line" "$all" "$def" "$acl" 2>&1)
                if [ -z "$got" ]; then ok "$what: $id as the fixture says"; else
                        not_ok "$what: $id as the fixture says"
                        echo "# $got" | cut -c1-600
                fi
        done <"$expect"
}

# ---- one backend ------------------------------------------------------------------------
# scenario NAME URL SQL-FUNCTION [import flags...]: the whole story against one Knox database.
scenario() {
        local name=$1 url=$2 sql=$3 out rc hash
        shift 3
        local db=$T/$name.db
        imp() { "$KEYWARDD" import-knox --db "$db" --master-key "$T/master.key" --knox-db "$url" "$@"; }

        KWD_DB=$db kwd_init
        knox_schema | $sql || bail "$name: cannot create Knox's table"
        if [ "$name" = mariadb ]; then
                (echo "SET SESSION sql_mode='NO_BACKSLASH_ESCAPES';"; cat "$DATA/knox-v1.sql") | $sql
        else
                $sql <"$DATA/knox-v1.sql"
        fi || bail "$name: cannot load the fixture"

        # A wrong Knox master key: the first key that does not open is named; nothing written.
        out=$(imp --knox-master-key "$T/wrong.key" "$@" 2>&1)
        is "$name: wrong Knox master key: exit 1" "$?" 1
        like "$name: wrong key: names the first key" "$out" "Knox key 'api:binary' version 1 does not open"
        like "$name: wrong key: says nothing was written" "$out" "nothing was written"

        # A key file with a newline after Knox's 16 bytes is not Knox's key.
        { cat "$T/knox.key"; echo; } >"$T/newline.key"
        chmod 0600 "$T/newline.key"
        out=$(imp --knox-master-key "$T/newline.key" "$@" 2>&1)
        is "$name: a 17-byte Knox key file: exit 1" "$?" 1
        like "$name: a 17-byte Knox key file: says the size" "$out" "holds 17 bytes; Knox's AES-GCM key is 16, 24 or 32 raw"

        # Malformed rows: each one reported, nothing written.
        hash=$(echo "SELECT version_hash FROM secrets WHERE id='tls_chain';" | $sql | tr -d ' ')
        {
                echo "INSERT INTO secrets VALUES ('bad_json', '[]', '$(printf '%064d' 0)', '[{\"id\":', 1);"
                echo "UPDATE secrets SET version_hash='$(printf '%064d' 1)' WHERE id='tls_chain';"
        } | $sql
        out=$(imp --knox-master-key "$T/knox.key" "$@" 2>&1)
        is "$name: malformed rows: exit 1" "$?" 1
        like "$name: malformed: the bad JSON row is named" "$out" "Knox row 'bad_json' is malformed"
        like "$name: malformed: the wrong hash is named" "$out" \
                "Knox row 'tls_chain' is malformed: the stored version_hash is not the hash of the versions"
        like "$name: malformed: nothing written" "$out" "2 of 4 Knox rows are malformed, 0 do not open; nothing was written"
        {
                echo "DELETE FROM secrets WHERE id='bad_json';"
                echo "UPDATE secrets SET version_hash='$hash' WHERE id='tls_chain';"
        } | $sql

        # A dry run lists and writes nothing.
        out=$(imp --knox-master-key "$T/knox.key" --dry-run "$@" 2>&1)
        is "$name: dry run: exit 0" "$?" 0
        like "$name: dry run lists db_password" "$out" "would add db_password \(3 versions\)"
        like "$name: dry run summary" "$out" "dry run, nothing written: 3 Knox keys: 3 to add"
        is "$name: dry run: the store is still empty" "$(sqlite3 "$db" 'SELECT count(*) FROM secrets')" 0

        out=$(imp --knox-master-key "$T/knox.key" "$@" 2>&1)
        is "$name: import: exit 0" "$?" 0
        like "$name: import adds api:binary" "$out" "add api:binary \(1 versions\)"
        like "$name: import summary" "$out" "3 Knox keys: 3 added, 0 updated, 0 unchanged, 0 differ"
        check "$name: no plaintext in the store" \
                bash -c "! sqlite3 '$db' 'SELECT versions FROM secrets' | grep -q -e pw-three -e 'cHctdGhyZWU='"

        out=$(imp --knox-master-key "$T/knox.key" "$@" 2>&1)
        is "$name: second run: exit 0" "$?" 0
        is "$name: second run finds nothing new" "$out" "3 Knox keys: 0 added, 0 updated, 3 unchanged, 0 differ"

        KWD_DB=$db kwd_start
        ALICE=$(KWD_DB=$db kwd_token alice) || bail "cannot mint a token"
        same_as_fixture "$name v1" "$DATA/knox-v1.expect"
        kwd_stop

        # Knox moves on: db_password rotated, api:binary's ACL changed, new_key made.
        if [ "$name" = mariadb ]; then
                (echo "SET SESSION sql_mode='NO_BACKSLASH_ESCAPES';"; cat "$DATA/knox-v2.sql") | $sql
        else
                $sql <"$DATA/knox-v2.sql"
        fi || bail "$name: cannot load the second fixture"
        out=$(imp --knox-master-key "$T/knox.key" "$@" 2>&1)
        is "$name: changed keys without --update: exit 0" "$?" 0
        like "$name: db_password differs" "$out" "differs db_password"
        like "$name: api:binary differs" "$out" "differs api:binary"
        like "$name: without --update: summary" "$out" "4 Knox keys: 1 added, 0 updated, 1 unchanged, 2 differ"
        out=$(imp --knox-master-key "$T/knox.key" --update --dry-run "$@" 2>&1)
        like "$name: --update --dry-run lists the update" "$out" "would update db_password \(4 versions\)"
        out=$(imp --knox-master-key "$T/knox.key" --update "$@" 2>&1)
        is "$name: --update: exit 0" "$?" 0
        like "$name: --update summary (the dry run wrote nothing)" "$out" \
                "4 Knox keys: 0 added, 2 updated, 2 unchanged, 0 differ"
        KWD_DB=$db kwd_start
        same_as_fixture "$name v2" "$DATA/knox-v2.expect"
        kwd_stop
}

ran=0
if my_start; then
        mariadb --no-defaults -S "$MY_DIR/sock" -u root <<<"CREATE DATABASE knox;
                CREATE USER 'knox'@'127.0.0.1' IDENTIFIED BY 'knox pass''word';
                GRANT SELECT ON knox.* TO 'knox'@'127.0.0.1';" || bail "cannot set up MariaDB"
        printf "knox pass'word\n" >"$T/my.pw"
        chmod 0600 "$T/my.pw"
        scenario mariadb "mysql://knox@127.0.0.1:$MY_PORT/knox" my_sql --knox-db-password-file "$T/my.pw"
        out=$("$KEYWARDD" import-knox --db "$T/mariadb.db" --master-key "$T/master.key" \
                --knox-db "mysql://knox:pw@127.0.0.1:$MY_PORT/knox" --knox-master-key "$T/knox.key" 2>&1)
        is "mariadb: a password in the URL: exit 1" "$?" 1
        like "mariadb: a password in the URL is refused" "$out" "a password in the URL would show in the process list"
        out=$("$KEYWARDD" import-knox --db "$T/mariadb.db" --master-key "$T/master.key" \
                --knox-db "mysql://knox@127.0.0.1:$MY_PORT/knox" --knox-master-key "$T/knox.key" 2>&1)
        is "mariadb: no password: exit 1" "$?" 1
        like "mariadb: no password: the server's refusal is shown" "$out" "Access denied"
        out=$("$KEYWARDD" import-knox --db "$T/mariadb.db" --master-key "$T/master.key" \
                --knox-db "mysql://root@localhost/knox?socket=$MY_DIR/sock" --knox-master-key "$T/knox.key" 2>&1)
        is "mariadb: over the socket: nothing new" "$out" "4 Knox keys: 0 added, 0 updated, 4 unchanged, 0 differ"
        ran=$((ran + 1))
else
        diag "MariaDB is not installed (apt-get install mariadb-server-core mariadb-client-core): its part is skipped"
fi

if [ -n "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null)" ]; then
        pg_start
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U keyward knox || bail "createdb knox failed"
        pg_sql() { psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U keyward -At knox; }
        scenario postgresql "postgresql://keyward@127.0.0.1:$PG_PORT/knox" pg_sql
        out=$("$KEYWARDD" import-knox --db "$T/postgresql.db" --master-key "$T/master.key" \
                --knox-db "postgresql://keyward:pw@127.0.0.1:$PG_PORT/knox" --knox-master-key "$T/knox.key" 2>&1)
        is "postgresql: a password in the URL: exit 1" "$?" 1
        like "postgresql: a password in the URL is refused" "$out" "would show in the process list"
        ran=$((ran + 1))
fi
[ "$ran" -gt 0 ] || skip_all "neither MariaDB nor PostgreSQL is installed"

done_testing
