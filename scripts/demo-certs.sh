#!/usr/bin/env bash
# Makes the demo's certificates for docker-compose.mtls.yml (docs/security.md): a CA, augur's
# server certificate, Envoy's, one per agent and an admin's, each with its SPIFFE-style URI SAN.
#
#   scripts/demo-certs.sh [OUT_DIR]      (default ./pki; nothing here is committed: pki/ is ignored)
#
# For a demo only: the keys are made readable by every user (the containers run as another user
# than yours) and the CA key is left beside them. In production, use your own CA and keep keys
# 0600, owned by the user that runs augur.
set -euo pipefail
out="${1:-pki}"
trust="spiffe://augur.demo"
days="${DAYS:-30}"
mkdir -p "$out"
cd "$out"

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

if [[ ! -f ca.crt ]]; then
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days "$days" -subj "/CN=augur demo CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi

# issue NAME SAN...: NAME.crt and NAME.key, signed by the CA.
issue() {
  local name="$1"
  shift
  local sans
  sans="$(IFS=,; echo "$*")"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$name.ext"
  openssl req "${ec[@]}" -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

issue augur "URI:$trust/augur" DNS:augur DNS:localhost IP:127.0.0.1
issue envoy "URI:$trust/envoy"
issue admin "URI:$trust/admin"
for n in 1 2 3; do issue "agent-$n" "URI:$trust/agent/backend-$n"; done
chmod 0644 ./*.key
echo "certificates in $(pwd): ca.crt, augur, envoy, admin, agent-1..3 (.crt/.key)"
