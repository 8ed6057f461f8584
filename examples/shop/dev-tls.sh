#!/usr/bin/env bash
# A certificate authority of your own and a certificate it signs, for HTTPS on your
# machine (never for a public site: use an ACME client such as certbot there).
#
#   bash examples/shop/dev-tls.sh [DIR] [NAME...]
#
# DIR (default examples/shop/tls) receives:
#   ca.pem, ca-key.pem    the CA: made once, kept on later runs; trust ca.pem in your
#                         browser (Chromium: Settings → Privacy and security → Security →
#                         Manage certificates → Authorities → Import) or system store
#   site.pem, site-key.pem
#                         a leaf for NAMEs (default: localhost 127.0.0.1 ::1), valid
#                         90 days, signed by the CA; made again on every run (a renewal,
#                         which a running isthmus picks up by itself)
# and prints the leaf key's SHA-256 SPKI pin (for Chromium's
# --ignore-certificate-errors-spki-list, as the tests use it).
# Needs only openssl.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$here/tls}"
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1 ::1)
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca-key.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=isthmus development CA ($(hostname))" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    chmod 644 "$dir/ca.pem"
    echo "made a new CA: $dir/ca.pem (trust it in your browser)"
fi

san=""
for n in "${names[@]}"; do
    if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${names[0]}" \
    -keyout "$tmp/site-key.pem" -out "$tmp/site.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "${san%,}" > "$tmp/ext"
openssl x509 -req -in "$tmp/site.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days 90 -extfile "$tmp/ext" -out "$tmp/site.pem" 2>/dev/null
# Renamed into place, key first: a watching isthmus never reads a half-written pair
# (and a pair caught between the two renames is refused, the old one kept).
chmod 644 "$tmp/site.pem"
mv "$tmp/site-key.pem" "$dir/site-key.pem"
mv "$tmp/site.pem" "$dir/site.pem"
pin="$(openssl x509 -in "$dir/site.pem" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)"
echo "certificate for ${names[*]}: $dir/site.pem, key $dir/site-key.pem"
echo "spki-pin: $pin"
