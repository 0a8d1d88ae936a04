#!/usr/bin/env bash
# Makes a throwaway certificate authority, a server certificate for localhost/127.0.0.1 and a
# client certificate (CN=client1) for testing TLS and mutual TLS. Not for production.
#
#   examples/tls/make_cert.sh [DIR]      (default DIR: examples/tls/certs)
#
# rustls (which Deno uses) refuses leaf certificates without basicConstraints CA:FALSE and a
# subjectAltName, so both are set.
set -euo pipefail
dir=${1:-"$(dirname "$0")/certs"}
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -newkey rsa:2048 -nodes -days 365 -keyout ca.key -out ca.crt -subj "/CN=Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null

leaf() { # name, common name, extended key usage, extra extensions
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2> /dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s\n' \
    "$3" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out "$1.crt" \
    -extfile "$1.ext" 2> /dev/null
  rm -f "$1.csr" "$1.ext"
}
leaf server localhost serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client client1 clientAuth "subjectAltName=DNS:client1"
rm -f ca.srl
echo "wrote $(pwd)/{ca,server,client}.{crt,key}"
