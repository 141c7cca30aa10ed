#!/usr/bin/env bash
# A flame graph of one pingora-redirect binary serving redirects: the server
# (threads = 1, CPU 0) answers wrk (CPU 1, keep-alive GETs to a 1,000-row
# list) while perf samples it (cpu-clock, DWARF call stacks); inferno turns
# the samples into an SVG.
#
#   bash benches/flame.sh [BINARY] [OUT.svg]     # defaults: target/dist/pingora-redirect, flame.svg
#   LOG=combined bash benches/flame.sh           # the same with the access log on (combined | json)
#
# Next to OUT.svg, OUT.folded keeps the collapsed stacks, for counting the
# share of a function: grep -F access_log OUT.folded | awk '{s += $NF} END {print s}'
#
# Installs wrk and perf (Debian's linux-perf) with apt-get and inferno with
# cargo when they are missing; the run is bounded (5 s of load).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/dist/pingora-redirect}
OUT=${2:-flame.svg}
SECS=${SECS:-5}
LOG=${LOG:-}
bash scripts/ensure-deps.sh wrk:wrk perf:linux-perf curl:curl
command -v inferno-flamegraph >/dev/null 2>&1 || cargo install inferno --locked
if [ "$BIN" = target/dist/pingora-redirect ]; then
  cargo build --profile dist --bin pingora-redirect
fi

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill -INT "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
awk 'BEGIN { for (j = 0; j < 1000; j++) printf "h%d.example.com/old/%d/page.html,https://new.example.com/new/%d,301\n", j, j, j }' >"$work/rules.csv"
cat >"$work/c.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
admin = "127.0.0.1:$admin"
threads = 1
grace_period = "1s"
upgrade_sock = "$work/u.sock"
pid_file = "$work/p.pid"

[[list]]
id = "bulk"
file = "rules.csv"
TOML
if [ -n "$LOG" ]; then
  printf '\n[log]\naccess = "%s/access.log"\nformat = "%s"\n' "$work" "$LOG" >>"$work/c.toml"
fi
cat >"$work/req.lua" <<'LUA'
math.randomseed(1)
request = function()
  local j = math.random(0, 999)
  return wrk.format("GET", "/old/" .. j .. "/page.html", { ["Host"] = "h" .. j .. ".example.com" })
end
LUA
RUST_LOG=warn taskset -c 0 "$BIN" serve -c "$work/c.toml" 2>"$work/log" &
server=$!
deadline=$((SECONDS + 30))
until curl -s -o /dev/null "http://127.0.0.1:$admin/readyz"; do
  ((SECONDS < deadline)) || { echo "the server did not start" >&2; exit 1; }
  sleep 0.1
done
taskset -c 1 wrk -t1 -c32 -d$((SECS + 2))s -s "$work/req.lua" "http://127.0.0.1:$port/" >/dev/null &
wrk_pid=$!
sleep 1
perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$server" -o "$work/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$wrk_pid" || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"${OUT%.svg}.folded"
inferno-flamegraph --minwidth 0.1 --title "$(basename "$BIN"): redirects, 1,000-row list${LOG:+, access log $LOG}" \
  <"${OUT%.svg}.folded" >"$OUT"
# inferno's embedded script carries a TODO comment of its own; it is not ours.
sed -i '/TODO This should be optimized somehow too\./d' "$OUT"
echo "wrote $OUT and ${OUT%.svg}.folded"
