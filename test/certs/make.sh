#!/usr/bin/env bash
# Regenerates the test certificates (valid 100 years): a CA, a server and a
# client certificate it signed (for localhost and 127.0.0.1), and a second,
# unrelated CA with its own server certificate for "untrusted peer" tests.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
ca() { # name subject
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days $days -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # name subject ca
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days $days -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "/CN=effect-amp test CA"
leaf server "/CN=effect-amp test server" ca
leaf client "/CN=effect-amp test client" ca
ca rogue-ca "/CN=effect-amp rogue CA"
leaf rogue "/CN=effect-amp rogue peer" rogue-ca
rm -f ./*.srl
echo "certificates written to $(pwd)"
