#!/usr/bin/env bash
# Load benchmark: redirects per second of `pingora-redirect serve` with
# threads = 1 at 1k and 1M rules, against a bare Pingora handler that answers
# one fixed 307 with the same headers (examples/bare307.rs), in the same run.
# Server on CPU 0, wrk on CPU 1, loopback only; every run is bounded by -d.
#
#   bash benches/load.sh            # 10 s per run
#   DURATION=20s CONNECTIONS=64 bash benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
bash scripts/ensure-deps.sh wrk:wrk
cargo build --release --bin pingora-redirect --example bare307 >/dev/null 2>&1 || cargo build --release --bin pingora-redirect --example bare307

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$1"; do
    if ((SECONDS > deadline)); then echo "timeout waiting for $1" >&2; return 1; fi
    sleep 0.1
  done
}

cat >"$work/requests.lua" <<'LUA'
local n = tonumber(os.getenv("RULES") or "1000")
math.randomseed(12345)
request = function()
  local j = math.random(0, n - 1)
  local host = "h" .. (j % 1000) .. ".example.com"
  return wrk.format("GET", "/old/" .. j .. "/page.html", { ["Host"] = host })
end
LUA

run_wrk() { # port, rules -> "req/s p99"
  RULES=$2 taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/requests.lua" "http://127.0.0.1:$1/" >"$work/wrk.out"
  local rps p99 non3xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  non3xx=$(awk '/Non-2xx or 3xx/ {print $5}' "$work/wrk.out")
  echo "$rps $p99 ${non3xx:-0}"
}

start_redirect() { # rules, metrics on|off; sets RPORT
  local n=$1 dir="$work/r$1-$2" port admin
  mkdir -p "$dir"
  awk -v n="$n" 'BEGIN { for (j = 0; j < n; j++) printf "h%d.example.com/old/%d/page.html,https://new.example.com/new/%d,301\n", j % 1000, j, j }' >"$dir/rules.csv"
  port=$(free_port); admin=$(free_port)
  cat >"$dir/bench.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
admin = "127.0.0.1:$admin"
threads = 1
grace_period = "1s"
upgrade_sock = "$dir/upgrade.sock"
pid_file = "$dir/pid"

[[list]]
id = "bulk"
file = "rules.csv"
TOML
  PINGORA_REDIRECT_METRICS=$2 RUST_LOG=warn taskset -c 0 target/release/pingora-redirect serve -c "$dir/bench.toml" 2>"$dir/log" &
  pids+=($!)
  wait_http "http://127.0.0.1:$admin/readyz" 120
  RPORT=$port
}

echo "| server | rules | metrics | redirects/s | p99 latency | non-3xx | vs ceiling |"
echo "|---|---|---|---|---|---|---|"

bport=$(free_port)
RUST_LOG=warn taskset -c 0 target/release/examples/bare307 "127.0.0.1:$bport" 1 2>"$work/bare.log" &
pids+=($!)
deadline=$((SECONDS + 20))
until curl -s -o /dev/null "http://127.0.0.1:$bport/"; do ((SECONDS < deadline)) || { echo "bare307 did not start" >&2; exit 1; }; sleep 0.1; done
read -r ceiling p99 bad < <(run_wrk "$bport" 1000)
echo "| bare Pingora 307 | – | – | $ceiling | $p99 | $bad | 1.00 |"
kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

for run in "1000 on" "1000000 on" "1000000 off"; do
  read -r n metrics <<<"$run"
  start_redirect "$n" "$metrics"
  read -r rps p99 bad < <(run_wrk "$RPORT" "$n")
  ratio=$(awk -v a="$rps" -v b="$ceiling" 'BEGIN { printf "%.2f", a / b }')
  echo "| pingora-redirect | $n | $metrics | $rps | $p99 | $bad | $ratio |"
  kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
done
