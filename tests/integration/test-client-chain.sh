#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Which certificates keyward's client (the agent and the CLI share it) sends in a mutual-TLS
# handshake (issue 12): its certificate file's chain, and the intermediates it finds in its
# --server-ca bundle, but never a self-signed root, which the server has among its anchors
# anyway and would only parse (about a sixth of keywardd's CPU per full handshake with ECDSA
# certificates under OpenSSL 3.0). libcurl's default, left alone, builds the chain from the
# CA bundle and sends the root along. Seen from an openssl s_server -trace that asks for a
# client certificate: the client's Certificate message, certificate by certificate.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "keyward is not built"

P=$T/pki
mkdir -p "$P"
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
# ca: a root; inter: an intermediate under it; direct: a client certificate from the root;
# chained: one from the intermediate.
openssl req -x509 "${newkey[@]}" -keyout "$P/ca.key" -out "$P/ca.pem" -days 2 -subj /CN=chain-root \
        2>/dev/null || bail "cannot make a CA"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$P/ca.ext"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$P/server.ext"
printf 'subjectAltName=DNS:host1.example.com\nextendedKeyUsage=clientAuth\n' >"$P/client.ext"
sign() { # NAME ISSUER EXT
        openssl req "${newkey[@]}" -keyout "$P/$1.key" -out "$P/$1.csr" -subj "/CN=$1" 2>/dev/null &&
                openssl x509 -req -in "$P/$1.csr" -CA "$P/$2.pem" -CAkey "$P/$2.key" -CAcreateserial -days 2 \
                        -extfile "$P/$3.ext" -out "$P/$1.pem" 2>/dev/null || bail "cannot make the $1 certificate"
}
sign inter ca ca
sign server ca server
# A server PKI of its own, as when the servers' CA is not the machines' one.
openssl req -x509 "${newkey[@]}" -keyout "$P/srvca.key" -out "$P/srvca.pem" -days 2 -subj /CN=server-root \
        2>/dev/null || bail "cannot make the server CA"
sign server2 srvca server
sign direct ca client
sign chained inter client
cat "$P/chained.pem" "$P/inter.pem" >"$P/chained-full.pem"
cat "$P/ca.pem" "$P/inter.pem" >"$P/bundle.pem"

# client_certs NAME CERT KEY CA [SERVER]: one handshake of `keyward whoami` against an openssl s_server
# that asks for a client certificate; prints the CNs of the certificates the client sent, in
# order, on one line.
client_certs() {
        local name=$1 cert=$2 key=$3 ca=$4 server=${5:-server} port
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        timeout "$(scaled 20)" openssl s_server -accept "127.0.0.1:$port" -cert "$P/$server.pem" -key "$P/$server.key" \
                -verify 3 -CAfile "$P/bundle.pem" -trace -naccept 1 -www >"$T/$name.trace" 2>&1 &
        BG_PIDS+=("$!")
        wait_for 10 grep -q ACCEPT "$T/$name.trace" || bail "openssl s_server did not start"
        timeout "$(scaled 20)" "$KEYWARD" --server "https://localhost:$port" --server-ca "$ca" --cert "$cert" \
                --key "$key" whoami >/dev/null 2>&1
        wait_for 10 grep -q "^Received Record" "$T/$name.trace"
        # Records the server received; in them, the subject line of each certificate.
        awk '/^Received Record/ { rx = 1 } /^Sent Record/ { rx = 0 }
                rx && /ASN\.1Cert, length=/ { want = 1 }
                rx && want && /Subject: CN *= */ { sub(/.*CN *= */, ""); printf "%s%s", sep, $0; sep = " "; want = 0 }
                END { print "" }' "$T/$name.trace"
}

is "a certificate from the root: the leaf alone, not the root too" \
        "$(client_certs direct "$P/direct.pem" "$P/direct.key" "$P/bundle.pem")" "direct"
is "a certificate from an intermediate in the CA bundle: the leaf and the intermediate" \
        "$(client_certs bundled "$P/chained.pem" "$P/chained.key" "$P/bundle.pem")" "chained inter"
is "a certificate file with its intermediate: both, as in the file" \
        "$(client_certs file "$P/chained-full.pem" "$P/chained.key" "$P/ca.pem")" "chained inter"
is "a certificate file with its intermediate, a CA bundle of another PKI: both, as in the file" \
        "$(client_certs other "$P/chained-full.pem" "$P/chained.key" "$P/srvca.pem" server2)" "chained inter"
is "a certificate whose issuer the CA bundle lacks: the leaf alone" \
        "$(client_certs unknown "$P/chained.pem" "$P/chained.key" "$P/ca.pem")" "chained"

done_testing
