#!/usr/bin/env bash
# `audit` at scale: a 1,000,000-row list counted by source (`metrics =
# "source"`) against an admin /metrics page with 100,000 hit series (a
# static file served by Python's http.server, as an instance that has
# answered 100,000 distinct rows would show it). Prints the wall time and
# the peak resident memory of `audit --format csv` and `--format json`.
#
#   bash benches/audit.sh            # ROWS=1000000 SERIES=100000
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
SERIES=${SERIES:-100000}
bash scripts/ensure-deps.sh /usr/bin/time:time curl:curl python3:python3
cargo build --release --bin pingora-redirect
BIN=target/release/pingora-redirect
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
awk -v n="$ROWS" 'BEGIN { for (j = 0; j < n; j++) printf "h%d.example.com/old/%d/page.html,https://new.example.com/new/%d,301\n", j % 1000, j, j }' >"$work/rows.csv"
printf '[[list]]\nid = "bulk"\nfile = "rows.csv"\nmetrics = "source"\n' >"$work/audit.toml"
mkdir "$work/www"
awk -v n="$SERIES" -v rows="$ROWS" 'BEGIN {
  print "# TYPE pingora_redirect_hits_total counter"
  for (i = 0; i < n; i++) { j = int(i * rows / n); printf "pingora_redirect_hits_total{rule=\"bulk:h%d.example.com/old/%d/page.html\",status=\"301\"} %d\n", j % 1000, j, i % 7 + 1 }
  print "# TYPE pingora_redirect_last_hit_timestamp_seconds gauge"
  for (i = 0; i < n; i++) { j = int(i * rows / n); printf "pingora_redirect_last_hit_timestamp_seconds{rule=\"bulk:h%d.example.com/old/%d/page.html\"} 1796140000\n", j % 1000, j }
}' >"$work/www/metrics"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
server=$!
deadline=$((SECONDS + 10))
until curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; do
  ((SECONDS < deadline)) || { echo "the metrics server did not start" >&2; exit 1; }
  sleep 0.1
done
echo "| format | rows | series | wall (s) | peak RSS (MB) | output (MB) |"
echo "|---|---|---|---|---|---|"
for format in csv json markdown; do
  /usr/bin/time -f '%e %M' -o "$work/time" "$BIN" audit -c "$work/audit.toml" \
    --metrics "http://127.0.0.1:$port/metrics" --format "$format" >"$work/out"
  read -r wall kb <"$work/time"
  echo "| $format | $ROWS | $SERIES | $wall | $((kb / 1024)) | $(($(stat -c %s "$work/out") / 1048576)) |"
done
