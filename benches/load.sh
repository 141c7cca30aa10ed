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

ROUNDS=${ROUNDS:-3}

bport=$(free_port)
RUST_LOG=warn taskset -c 0 target/release/examples/bare307 "127.0.0.1:$bport" 1 2>"$work/bare.log" &
pids+=($!)
deadline=$((SECONDS + 20))
until curl -s -o /dev/null "http://127.0.0.1:$bport/"; do ((SECONDS < deadline)) || { echo "bare307 did not start" >&2; exit 1; }; sleep 0.1; done

# Every server runs on CPU 0 for the whole benchmark; only the one under load
# is busy. Rounds interleave the servers so drift on the machine hits all.
declare -A port rules
names=("bare" "1k-on" "1m-on" "1m-off")
port[bare]=$bport; rules[bare]=1000
start_redirect 1000 on; port[1k-on]=$RPORT; rules[1k-on]=1000
start_redirect 1000000 on; port[1m-on]=$RPORT; rules[1m-on]=1000000
start_redirect 1000000 off; port[1m-off]=$RPORT; rules[1m-off]=1000000

declare -A results
for ((r = 1; r <= ROUNDS; r++)); do
  for name in "${names[@]}"; do
    read -r rps p99 bad < <(run_wrk "${port[$name]}" "${rules[$name]}")
    results[$name]+="$rps $p99 $bad;"
  done
done

median() { # "rps p99 bad;..." -> the run with the median rps
  tr ';' '\n' <<<"$1" | sed '/^$/d' | sort -n -k1,1 | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'
}

read -r ceiling cp99 cbad < <(median "${results[bare]}")
echo "| server | rules | metrics | redirects/s (median of $ROUNDS) | p99 latency | non-3xx | vs ceiling | runs (redirects/s) |"
echo "|---|---|---|---|---|---|---|---|"
runs() { tr ';' '\n' <<<"$1" | sed '/^$/d' | awk '{ printf "%s%s", sep, $1; sep = ", " }'; }
echo "| bare Pingora 307 | – | – | $ceiling | $cp99 | $cbad | 1.00 | $(runs "${results[bare]}") |"
for name in 1k-on 1m-on 1m-off; do
  read -r rps p99 bad < <(median "${results[$name]}")
  ratio=$(awk -v a="$rps" -v b="$ceiling" 'BEGIN { printf "%.2f", a / b }')
  echo "| pingora-redirect | ${rules[$name]} | ${name##*-} | $rps | $p99 | $bad | $ratio | $(runs "${results[$name]}") |"
done
