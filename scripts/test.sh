#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy, unit,
# integration, property and CLI tests, and builds the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
REDBOT_VERSION=2.7.1

# prometheus and promtool (Debian's prometheus package) for tests/prometheus.rs,
# curl and h2load (nghttp2-client) for tests/h2_bodies.rs,
# chromium for tests/browser.rs, testssl (testssl.sh) and openssl for tests/tls.rs,
# python3-venv for REDbot
bash scripts/ensure-deps.sh prometheus:prometheus promtool:prometheus chromium:chromium testssl:testssl.sh \
    curl:curl h2load:nghttp2-client openssl:openssl python3:python3 dpkg=python3-venv
# REDbot (PyPI) for tests/redbot.rs, in a virtual environment of its own.
if [ ! -x target/redbot/bin/redbot ]; then
  python3 -m venv target/redbot
  target/redbot/bin/pip install --quiet "redbot==$REDBOT_VERSION"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --all-targets -- -D warnings
echo "== cargo test"
cargo test --release --all-targets
cargo test --release --doc
echo "== fuzz smoke (${FUZZ_SECONDS:-30}s per target)"
FUZZ_SEED="${FUZZ_SEED:-1}" bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
