#!/usr/bin/env bash
# Reload benchmark, beside a 1,000,000-row list (threads = 1):
#
# - MODE=list (the default): the list file changes; time from SIGHUP to the
#   new set answering, and request latency (p99) meanwhile against the
#   steady state at the same offered load.
# - MODE=flip: `[maintenance] enabled` flips ROUNDS times (the list does not
#   change, so the compiled rules are kept); time from each SIGHUP to the
#   flip answering.
# - MODE=idle: the list file changes with no load at all; time from SIGHUP
#   to the new set answering (what the targets call the idle compile time).
# - MODE=rule: the target of the one `[[redirect]]` beside the list changes
#   ROUNDS times (the list's compiled layer is kept); time from each SIGHUP
#   to the new target answering.
#
# By default wrk (on CPU 1) sends from 16 connections, each waiting
# DELAY_MS between requests (about 10k requests/s, a fraction of what one
# server thread answers) and the server is not pinned. SATURATE=1 pins the
# server to CPU 0 (as a container limited to one CPU) and has wrk send as
# fast as 64 connections can, so that core is never idle. Loopback only;
# every run is bounded.
#
#   bash benches/reload.sh                          # DURATION=10s RULES=1000000 DELAY_MS=1
#   SATURATE=1 bash benches/reload.sh
#   MODE=flip SATURATE=1 bash benches/reload.sh     # ROUNDS=5
#   MODE=rule SATURATE=1 bash benches/reload.sh     # ROUNDS=5
#   MODE=idle bash benches/reload.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RULES=${RULES:-1000000}
DELAY_MS=${DELAY_MS:-1}
MODE=${MODE:-list}
SATURATE=${SATURATE:-0}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=16
PIN=()
if [ "$SATURATE" = 1 ]; then
  DELAY_MS=0
  CONNECTIONS=64
  PIN=(taskset -c 0)
fi
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

[pools.backup]
targets = ["https://backup.example"]

[maintenance]
enabled = MAINTENANCE
redirect_pool = "backup"

[[redirect]]
id = "edited"
path = "/edited"
to = "https://v0.example/"

[[list]]
id = "bulk"
file = "rules.csv"
TOML
sed -i 's/MAINTENANCE/false/' "$work/bench.toml"
cat >"$work/requests.lua" <<LUA
local n = $RULES
math.randomseed(777)
request = function()
  local j = math.random(0, n - 1)
  return wrk.format("GET", "/old/" .. j .. "/page.html", { ["Host"] = "h" .. (j % 1000) .. ".example.com" })
end
LUA
if [ "$DELAY_MS" != 0 ]; then
  printf 'delay = function()\n  return %s\nend\n' "$DELAY_MS" >>"$work/requests.lua"
fi

RUST_LOG=info "${PIN[@]}" target/release/pingora-redirect serve -c "$work/bench.toml" 2>"$work/log" &
pid=$!
deadline=$((SECONDS + 120))
until curl -fs -o /dev/null "http://127.0.0.1:$admin/readyz"; do
  ((SECONDS < deadline)) || { echo "server did not start" >&2; exit 1; }
  sleep 0.1
done

probe() { curl -s -o /dev/null -w '%{redirect_url}' -H 'Host: h7.example.com' "http://127.0.0.1:$port/old/7/page.html"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

load() { taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/requests.lua" "http://127.0.0.1:$port/"; }

# Replaces the list by b.csv, sends SIGHUP and waits for the new set to
# answer; sets start and end (seconds).
swap_list() {
  cp "$work/b.csv" "$work/rules.csv.new" && mv "$work/rules.csv.new" "$work/rules.csv"
  start=$(date +%s.%N)
  kill -HUP "$pid"
  until [ "$(probe)" = "https://b.example/new/7" ]; do
    sleep 0.01
    if (($(date +%s) - ${start%.*} > 60)); then echo "the new set never answered" >&2; exit 1; fi
  done
  end=$(date +%s.%N)
}

if [ "$MODE" = idle ]; then
  swap_list
  grep -o 'loaded, .*in force after [0-9]* ms' "$work/log" | sed 's/^/  log: /' >&2 || true
  echo "| no load | SIGHUP → new $RULES-rule set answering: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f s", b - a }') |"
  exit 0
fi

if [ "$MODE" = flip ] || [ "$MODE" = rule ]; then
  load >"$work/steady.out"
  flip_probe() { curl -s -o /dev/null -w '%{http_code}' -H 'Host: h7.example.com' "http://127.0.0.1:$port/elsewhere"; }
  rule_probe() { curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$port/edited"; }
  load >"$work/flip.out" &
  wrk_pid=$!
  sleep 2
  times=()
  for ((r = 1; r <= ROUNDS; r++)); do
    if [ "$MODE" = flip ]; then
      if ((r % 2)); then to=true; want=307; else to=false; want=404; fi
      sed "s/^enabled = .*/enabled = $to/" "$work/bench.toml" >"$work/bench.toml.new"
    else
      want="https://v$r.example/"
      sed "s|^to = \"https://v[0-9]*.example/\"|to = \"$want\"|" "$work/bench.toml" >"$work/bench.toml.new"
    fi
    mv "$work/bench.toml.new" "$work/bench.toml"
    start=$(date +%s%N)
    kill -HUP "$pid"
    until [ "$(if [ "$MODE" = flip ]; then flip_probe; else rule_probe; fi)" = "$want" ]; do
      if (($(date +%s%N) - start > 60000000000)); then echo "the new configuration never answered" >&2; exit 1; fi
    done
    times+=($((($(date +%s%N) - start) / 1000000)))
    sleep 0.5
  done
  wait "$wrk_pid"
  sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  what="maintenance flips"
  [ "$MODE" = rule ] && what="one [[redirect]] edited"
  echo "| run | requests/s | p99 latency | non-3xx | SIGHUP → new configuration answering, ms (median; all) |"
  echo "|---|---|---|---|---|"
  echo "| steady state, saturate=$SATURATE | $(rps "$work/steady.out") | $(p99 "$work/steady.out") | 0 | – |"
  echo "| $what, saturate=$SATURATE | $(awk '/Requests\/sec/ {print $2}' "$work/flip.out") | $(awk '$1 == "99%" {print $2}' "$work/flip.out") | $(awk '/Non-2xx or 3xx/ {print $5}' "$work/flip.out") | $median; $sorted|"
  grep -o 'loaded, .*in force after [0-9]* ms' "$work/log" | sed 's/^/  log: /' >&2 || true
  grep -o 'chains of the .*' "$work/log" | sed 's/^/  log: /' >&2 || true
  exit 0
fi

load >"$work/steady.out"

# Under load: swap the list for b.csv and send SIGHUP two seconds in.
load >"$work/reload.out" &
wrk_pid=$!
sleep 2
swap_list
wait "$wrk_pid"
non3xx=$(awk '/Non-2xx or 3xx/ {print $5}' "$work/reload.out")

echo "| run | requests/s | p99 latency | non-3xx | SIGHUP → new $RULES-rule set answering |"
echo "|---|---|---|---|---|"
grep -o 'loaded, .*in force after [0-9]* ms' "$work/log" | sed 's/^/  log: /' >&2 || true
echo "| steady state | $(rps "$work/steady.out") | $(p99 "$work/steady.out") | 0 | – |"
echo "| reload during the run | $(rps "$work/reload.out") | $(p99 "$work/reload.out") | ${non3xx:-0} | $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f s", b - a }') |"
