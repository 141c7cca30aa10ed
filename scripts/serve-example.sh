#!/usr/bin/env bash
# Builds pingora-redirect and starts the front proxy on a bundled example
# configuration; stop it with Ctrl-C.
#
#   scripts/serve-example.sh          # conf/example.toml: traffic on 127.0.0.1:8080,
#                                     # admin (/metrics /healthz /readyz) on 127.0.0.1:9091
#   scripts/serve-example.sh https    # conf/https.toml: HTTPS on 127.0.0.1:8443 with a
#                                     # self-signed pair for localhost made in conf/tls/,
#                                     # plain HTTP on 8080 redirected to it
#
# Other arguments go to `serve` (e.g. --daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
config=conf/example.toml
if [ "${1:-}" = https ]; then
  shift
  config=conf/https.toml
  bash scripts/ensure-deps.sh openssl:openssl
  if [ ! -f conf/tls/localhost.pem ] || [ ! -f conf/tls/localhost.key ]; then
    mkdir -p conf/tls
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj /CN=localhost -addext subjectAltName=DNS:localhost \
      -keyout conf/tls/localhost.key -out conf/tls/localhost.pem 2>/dev/null
    echo "made a self-signed certificate for localhost: conf/tls/localhost.pem (30 days)" >&2
  fi
else
  bash scripts/ensure-deps.sh
fi
cargo build --release --bin pingora-redirect
exec target/release/pingora-redirect serve -c "$config" "$@"
