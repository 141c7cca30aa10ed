#!/usr/bin/env bash
# Builds pingora-redirect and starts the front proxy on the bundled example
# configuration: traffic on 127.0.0.1:8080, admin (/metrics /healthz /readyz)
# on 127.0.0.1:9091. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo build --release --bin pingora-redirect
exec target/release/pingora-redirect serve -c conf/example.toml "$@"
