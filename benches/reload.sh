#!/usr/bin/env bash
# Reload benchmark: time from SIGHUP to a new 1,000,000-rule set answering,
# and request latency (p99) while it is compiled and swapped in, against the
# steady state, at the same offered load: wrk (on CPU 1) sends from 16
# connections, each waiting DELAY_MS between requests (about 10k requests/s,
# a fraction of what one server thread answers, so the latency measured is
# not queueing behind a saturated thread). The server (threads = 1) is not
# pinned; the reload compiles on its own low-priority thread. Loopback only;
# every run is bounded.
#
#   bash benches/reload.sh            # DURATION=10s RULES=1000000 DELAY_MS=1
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RULES=${RULES:-1000000}
DELAY_MS=${DELAY_MS:-1}
bash scripts/ensure-deps.sh wrk:wrk
cargo build --release --bin pingora-redirect >/dev/null 2>&1 || cargo build --release --bin pingora-redirect

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

gen() { # target host
  awk -v n="$RULES" -v t="$1" 'BEGIN { for (j = 0; j < n; j++) printf "h%d.example.com/old/%d/page.html,https://%s/new/%d,301\n", j % 1000, j, t, j }'
}
gen a.example >"$work/a.csv"
gen b.example >"$work/b.csv"
cp "$work/a.csv" "$work/rules.csv"
port=$(free_port); admin=$(free_port)
cat >"$work/bench.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
admin = "127.0.0.1:$admin"
threads = 1
grace_period = "1s"
upgrade_sock = "$work/upgrade.sock"
pid_file = "$work/pid"

[[list]]
id = "bulk"
file = "rules.csv"
TOML
cat >"$work/requests.lua" <<LUA
local n = $RULES
math.randomseed(777)
request = function()
  local j = math.random(0, n - 1)
  return wrk.format("GET", "/old/" .. j .. "/page.html", { ["Host"] = "h" .. (j % 1000) .. ".example.com" })
end
delay = function()
  return $DELAY_MS
end
LUA

RUST_LOG=warn target/release/pingora-redirect serve -c "$work/bench.toml" 2>"$work/log" &
pid=$!
deadline=$((SECONDS + 120))
until curl -fs -o /dev/null "http://127.0.0.1:$admin/readyz"; do
  ((SECONDS < deadline)) || { echo "server did not start" >&2; exit 1; }
  sleep 0.1
done

probe() { curl -s -o /dev/null -w '%{redirect_url}' -H 'Host: h7.example.com' "http://127.0.0.1:$port/old/7/page.html"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

taskset -c 1 wrk -t1 -c16 -d"$DURATION" --latency -s "$work/requests.lua" "http://127.0.0.1:$port/" >"$work/steady.out"

# Under load: swap the list for b.csv and send SIGHUP two seconds in.
taskset -c 1 wrk -t1 -c16 -d"$DURATION" --latency -s "$work/requests.lua" "http://127.0.0.1:$port/" >"$work/reload.out" &
wrk_pid=$!
sleep 2
cp "$work/b.csv" "$work/rules.csv.new" && mv "$work/rules.csv.new" "$work/rules.csv"
start=$(date +%s.%N)
kill -HUP "$pid"
until [ "$(probe)" = "https://b.example/new/7" ]; do
  sleep 0.01
  if (($(date +%s) - ${start%.*} > 60)); then echo "the new set never answered" >&2; exit 1; fi
done
end=$(date +%s.%N)
wait "$wrk_pid"
non3xx=$(awk '/Non-2xx or 3xx/ {print $5}' "$work/reload.out")

echo "| run | requests/s | p99 latency | non-3xx | SIGHUP → new $RULES-rule set answering |"
echo "|---|---|---|---|---|"
echo "| steady state | $(rps "$work/steady.out") | $(p99 "$work/steady.out") | 0 | – |"
echo "| reload during the run | $(rps "$work/reload.out") | $(p99 "$work/reload.out") | ${non3xx:-0} | $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f s", b - a }') |"
