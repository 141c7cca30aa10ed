#!/usr/bin/env bash
# Load benchmark: redirects per second of `pingora-redirect serve` next to
# nginx, HAProxy and a bare Pingora handler (examples/bare307.rs), all on the
# same rule sets and request mixes, in one run. Every server has one thread
# (one worker) on CPU 0; wrk runs on CPU 1 over loopback; every request is a
# hit; rounds interleave the servers so drift on the machine hits all alike.
#
#   bash benches/load.sh                         # every workload, 10 s per run, 3 rounds
#   WORKLOADS="exact-1k regex-shared-10k" DURATION=5s ROUNDS=5 bash benches/load.sh
#   WORKLOADS=log-1k bash benches/load.sh        # the access log off, combined, json
#   WORKLOADS="tls-1k tls-handshake-1k" bash benches/load.sh   # HTTPS: keep-alive, a handshake per request
#   BASE=/path/to/older/pingora-redirect WORKLOADS=exact-1k bash benches/load.sh
#                                                # also serve exact and regex workloads with an
#                                                # older build, for a before/after ratio
#
# Workloads: exact-1k, exact-1m (Cloudflare list / nginx `map` / HAProxy
# `map_str`), exact-layered-1m (exact-1m with 20 `[[redirect]]` tables
# before the list and 20 after it: three layers a lookup goes through;
# pingora-redirect only, with BASE when given), prefix-1m (the suffix kept; pingora-redirect only: nginx needs
# a `location` per rule and HAProxy has no such map), regex-1k (a literal
# each), regex-shared-10k (`^/article/(?P<id>[0-9]+)-topicI$`, all sharing
# `/article/`), regex-noliteral-10k (`^.[a-z]{A}[0-9]{B}$`, no literal at all)
# (nginx `location ~`, HAProxy `map_regm`); log-1k is exact-1k served three
# times by pingora-redirect: access log off, `combined` to a file, `json` to
# a file (the writer thread on the same core); tls-1k is exact-1k over HTTPS
# with keep-alive and tls-handshake-1k the same with `Connection: close`, a
# full TLS handshake per request (one self-signed ECDSA P-256 certificate
# for every server, made with the openssl command). It installs wrk,
# nginx-light and haproxy with apt-get when they are missing; every run is
# bounded by -d.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-3}
WORKLOADS=${WORKLOADS:-"exact-1k exact-1m prefix-1m regex-1k regex-shared-10k regex-noliteral-10k"}
bash scripts/ensure-deps.sh wrk:wrk nginx:nginx-light haproxy:haproxy curl:curl openssl:openssl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
# The production build (`[profile.dist]`: LTO), for both servers alike.
cargo build --profile dist --bin pingora-redirect --example bare307 >/dev/null 2>&1 ||
  cargo build --profile dist --bin pingora-redirect --example bare307
BIN=target/dist/pingora-redirect
BARE=target/dist/examples/bare307

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Polls until `url` answers (any status); prints the seconds it took.
wait_answer() { # url started-at(ns) limit(s) pid
  local deadline=$((SECONDS + $3))
  until curl -s -o /dev/null "$1"; do
    if ((SECONDS > deadline)); then echo "timeout waiting for $1" >&2; return 1; fi
    if ! kill -0 "$4" 2>/dev/null; then echo "the server for $1 exited (its log is in $work)" >&2; return 1; fi
    sleep 0.1
  done
  awk -v a="$2" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

rss_mb() { awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

# ---------------------------------------------------------------------------
# Rule sets, in each server's form

# Exact rules: hJ.example.com/old/J/page.html -> https://new.example.com/new/J
gen_exact() { # n dir
  awk -v n="$1" -v d="$2" 'BEGIN {
    for (j = 0; j < n; j++) {
      h = "h" (j % 1000) ".example.com"; p = "/old/" j "/page.html"; t = "https://new.example.com/new/" j
      printf "%s%s,%s,301\n", h, p, t > (d "/rules.csv")
      printf "%s%s %s;\n", h, p, t > (d "/nginx-map.conf")
      printf "%s%s %s\n", h, p, t > (d "/haproxy.map")
    } }'
  printf '[[list]]\nid = "bulk"\nfile = "rules.csv"\n' >"$2/rules.toml"
}

# exact-1m's list between two runs of 20 `[[redirect]]` tables (other
# hosts, a wildcard, a prefix without a host): three layers.
gen_layers() { # dir
  local f="$1/rules.toml"
  : >"$f"
  run() { # first
    for ((i = $1; i < $1 + 18; i++)); do
      printf '[[redirect]]\nid = "r%d"\nhost = "r%d.example.org"\npath = "/x"\nto = "https://new.example.org/%d"\n\n' "$i" "$i" "$i" >>"$f"
    done
    printf '[[redirect]]\nid = "w%d"\nhost = "*.w%d.example.org"\nprefix = "/"\nto = "https://new.example.org/w"\n\n' "$1" "$1" >>"$f"
    printf '[[redirect]]\nid = "p%d"\nprefix = "/legacy%d"\nto = "https://new.example.org/l"\n\n' "$1" "$1" >>"$f"
  }
  run 0
  printf '[[list]]\nid = "bulk"\nfile = "rules.csv"\n\n' >>"$f"
  run 100
}

# Every TLS server picks from the same TLS 1.3 suites in the same order (the
# Mozilla intermediate one, which pingora-redirect uses with the server's
# preference), so all of them negotiate TLS_AES_128_GCM_SHA256 with wrk.
TLS13_SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

# One certificate for every TLS server: *.example.com, ECDSA P-256.
gen_cert() { # dir
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj /CN=h0.example.com -addext "subjectAltName=DNS:*.example.com,DNS:localhost" \
    -keyout "$1/tls.key" -out "$1/tls.pem" 2>/dev/null
  cat "$1/tls.pem" "$1/tls.key" >"$1/haproxy.pem"
}

# Prefix rules with the suffix kept: hJ.example.com/dir/J -> https://new.example.com/d/J
gen_prefix() { # n dir
  awk -v n="$1" -v d="$2" 'BEGIN {
    for (j = 0; j < n; j++)
      printf "h%d.example.com/dir/%d,https://new.example.com/d/%d,301,TRUE,FALSE,TRUE,TRUE\n", j % 1000, j, j > (d "/rules.csv") }'
  printf '[[list]]\nid = "bulk"\nfile = "rules.csv"\n' >"$2/rules.toml"
}

# Regex rules of one shape: $1 = distinct | shared | noliteral.
gen_regex() { # shape n dir
  awk -v shape="$1" -v n="$2" -v d="$3" 'BEGIN {
    for (i = 0; i < n; i++) {
      if (shape == "distinct") {
        re = "^/r" i "/([0-9]+)/([a-z-]+)$"; rs = "^/r" i "/([0-9]+)/(?P<slug>[a-z-]+)$"
        to = "https://new.example.com/n" i "/"; ngx = to "$1/$2"; ha = to "\\1/\\2"; pr = to "${1}/${slug}"
      } else if (shape == "shared") {
        re = "^/article/([0-9]+)-topic" i "$"; rs = "^/article/(?P<id>[0-9]+)-topic" i "$"
        to = "https://new.example.com/t" i "/"; ngx = to "$1"; ha = to "\\1"; pr = to "${id}"
      } else {
        re = "^.[a-z]{" (i % 100 + 1) "}[0-9]{" (int(i / 100) + 1) "}$"; rs = re
        to = "https://new.example.com/lit/" i; ngx = to; ha = to; pr = to
      }
      printf "[[redirect]]\nid = \"re%d\"\nregex = '\''%s'\''\nto = \"%s\"\nstatus = 301\n\n", i, rs, pr > (d "/rules.toml")
      printf "location ~ \"%s\" { return 301 %s; }\n", re, ngx > (d "/nginx-locations.conf")
      printf "%s %s\n", re, ha > (d "/haproxy.map")
    } }'
}

# wrk request scripts: every request is a hit.
lua_for() { # workload n -> script path
  local f="$work/$1.lua"
  case "$1" in
    exact-* | log-* | tls-*) cat >"$f" <<'LUA'
local n = tonumber(os.getenv("RULES"))
local close = os.getenv("CLOSE") == "1"
math.randomseed(12345)
request = function()
  local j = math.random(0, n - 1)
  local h = { ["Host"] = "h" .. (j % 1000) .. ".example.com" }
  if close then h["Connection"] = "close" end
  return wrk.format("GET", "/old/" .. j .. "/page.html", h)
end
LUA
    ;;
    prefix-*) cat >"$f" <<'LUA'
local n = tonumber(os.getenv("RULES"))
math.randomseed(12345)
request = function()
  local j = math.random(0, n - 1)
  return wrk.format("GET", "/dir/" .. j .. "/a/b?x=1", { ["Host"] = "h" .. (j % 1000) .. ".example.com" })
end
LUA
    ;;
    regex-1k) cat >"$f" <<'LUA'
local n = tonumber(os.getenv("RULES"))
math.randomseed(12345)
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", "/r" .. i .. "/" .. math.random(1, 99999) .. "/some-slug", { ["Host"] = "any.example" })
end
LUA
    ;;
    regex-shared-*) cat >"$f" <<'LUA'
local n = tonumber(os.getenv("RULES"))
math.randomseed(12345)
request = function()
  local i = math.random(0, n - 1)
  return wrk.format("GET", "/article/" .. math.random(1, 99999) .. "-topic" .. i, { ["Host"] = "any.example" })
end
LUA
    ;;
    regex-noliteral-*) cat >"$f" <<'LUA'
local n = tonumber(os.getenv("RULES"))
math.randomseed(12345)
request = function()
  local i = math.random(0, n - 1)
  local a, b = i % 100 + 1, math.floor(i / 100) + 1
  return wrk.format("GET", "/" .. string.rep("q", a) .. string.rep("7", b), { ["Host"] = "any.example" })
end
LUA
    ;;
  esac
  echo "$f"
}

# ---------------------------------------------------------------------------
# Servers: each sets PORT, READY (seconds to its first answer) and LAST_PID
# (for the RSS and the stop); they run in this shell, not a subshell.

start_pr() { # dir metrics(on|off) probe-path [more sections: PORT, TLSPORT replaced]
  local dir=$1 port admin t0 more=${4:-}
  port=$(free_port); admin=$(free_port); TLSPORT=$(free_port)
  more=${more//TLSPORT/$TLSPORT}
  sed -i '/^\[server\]/,/^$/d' "$dir/rules.toml"
  { printf '[server]\nlisten = ["127.0.0.1:%s"]\nadmin = "127.0.0.1:%s"\nthreads = 1\ngrace_period = "1s"\n' "$port" "$admin"
    printf 'upgrade_sock = "%s/upgrade-%s.sock"\npid_file = "%s/pid-%s"\n\n' "$dir" "$port" "$dir" "$port"
    [ -z "$more" ] || printf '%s\n\n' "${more//PORT/$port}"
    cat "$dir/rules.toml"; } >"$dir/bench-$port.toml"
  t0=$(date +%s%N)
  PINGORA_REDIRECT_METRICS=$2 RUST_LOG=warn taskset -c 0 "$BIN" serve -c "$dir/bench-$port.toml" 2>"$dir/pr-$port.log" &
  pids+=($!); LAST_PID=$!; PORT=$port
  READY=$(wait_answer "http://127.0.0.1:$port$3" "$t0" 300 "$LAST_PID")
}

start_bare() { # [dir with tls.pem and tls.key: serve HTTPS too]
  local port t0 tls=()
  port=$(free_port); t0=$(date +%s%N)
  if [ -n "${1:-}" ]; then TLSPORT=$(free_port); tls=("127.0.0.1:$TLSPORT" "$1/tls.pem" "$1/tls.key"); fi
  RUST_LOG=warn taskset -c 0 "$BARE" "127.0.0.1:$port" 1 "${tls[@]}" 2>"$work/bare.log" &
  pids+=($!); LAST_PID=$!; PORT=$port
  READY=$(wait_answer "http://127.0.0.1:$port/" "$t0" 30 "$LAST_PID")
}

start_nginx() { # dir kind(map|regex|tls) probe-path
  local dir=$1 port t0 body
  port=$(free_port)
  if [ "$2" = tls ]; then
    # TLS on one port, plain HTTP on the next for the readiness probe.
    TLSPORT=$(free_port)
    body="map_hash_max_size 4194304; map_hash_bucket_size 128;
  map \$host\$uri \$target { include $dir/nginx-map.conf; }
  ssl_certificate $dir/tls.pem; ssl_certificate_key $dir/tls.key;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on;
  ssl_conf_command Ciphersuites $TLS13_SUITES;
  server { listen 127.0.0.1:$TLSPORT ssl http2; listen 127.0.0.1:$port;
    location / { if (\$target) { return 301 \$target; } return 404; } }"
  elif [ "$2" = map ]; then
    body="map_hash_max_size 4194304; map_hash_bucket_size 128;
  map \$host\$uri \$target { include $dir/nginx-map.conf; }
  server { listen 127.0.0.1:$port; location / { if (\$target) { return 301 \$target; } return 404; } }"
  else
    body="server { listen 127.0.0.1:$port; include $dir/nginx-locations.conf; location / { return 404; } }"
  fi
  cat >"$dir/nginx-$port.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx-$port.pid;
error_log $dir/nginx-$port.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  $body
}
CONF
  t0=$(date +%s%N)
  taskset -c 0 "$NGINX" -c "$dir/nginx-$port.conf" -p "$dir" 2>>"$dir/nginx-$port.err" &
  pids+=($!); LAST_PID=$!; PORT=$port
  READY=$(wait_answer "http://127.0.0.1:$port$3" "$t0" 600 "$LAST_PID")
}

start_haproxy() { # dir converter(map_str|map_regm) fetch(base|path) probe-path [tls]
  local dir=$1 port t0 tls_bind=""
  port=$(free_port)
  if [ "${5:-}" = tls ]; then
    TLSPORT=$(free_port)
    tls_bind="  bind 127.0.0.1:$TLSPORT ssl crt $dir/haproxy.pem alpn h2,http/1.1 ciphersuites $TLS13_SUITES"
  fi
  cat >"$dir/haproxy-$port.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout client 30s
  timeout server 30s
  timeout connect 5s
frontend bench
  bind 127.0.0.1:$port
$tls_bind
  http-request set-var(txn.target) $3,$2($dir/haproxy.map)
  http-request redirect location %[var(txn.target)] code 301 if { var(txn.target) -m found }
  http-request return status 404
CONF
  t0=$(date +%s%N)
  taskset -c 0 "$HAPROXY" -db -f "$dir/haproxy-$port.cfg" >"$dir/haproxy-$port.log" 2>&1 &
  pids+=($!); LAST_PID=$!; PORT=$port
  READY=$(wait_answer "http://127.0.0.1:$port$4" "$t0" 600 "$LAST_PID")
}

# ---------------------------------------------------------------------------
# One entry per server and workload: name, port, rules, lua, pid, ready.

names=(); declare -A port rules lua pid ready workload url close
add_base() { # dir probe workload n: the BASE build too, when given
  [ -n "${BASE:-}" ] || return 0
  local keep=$BIN
  BIN=$BASE
  start_pr "$1" on "$2"
  BIN=$keep
  add "pingora-redirect, BASE build|$3" "$3" "$4"
}

add() { # name workload n (after a start_*)
  local name=$1
  names+=("$name"); workload[$name]=$2
  port[$name]=$PORT; ready[$name]=$READY
  rules[$name]=$3; lua[$name]=$(lua_for "$2" "$3"); pid[$name]=$LAST_PID
  url[$name]="http://127.0.0.1:$PORT/"; close[$name]=0
  case "$2" in
    tls-*) url[$name]="https://127.0.0.1:$TLSPORT/" ;;
  esac
  [ "$2" != tls-handshake-1k ] || close[$name]=1
}

for w in $WORKLOADS; do
  d="$work/$w"; mkdir -p "$d"
  case "$w" in
    exact-1k | exact-1m)
      n=$([ "$w" = exact-1k ] && echo 1000 || echo 1000000)
      gen_exact "$n" "$d"
      probe="/old/0/page.html"
      if [ "$w" = exact-1k ]; then start_bare; add "bare Pingora 307|$w" "$w" $n; fi
      start_pr "$d" on "$probe"; add "pingora-redirect|$w" "$w" $n
      add_base "$d" "$probe" "$w" $n
      if [ "$w" = exact-1m ]; then start_pr "$d" off "$probe"; add "pingora-redirect, metrics off|$w" "$w" $n; fi
      start_nginx "$d" map "$probe"; add "nginx map|$w" "$w" $n
      start_haproxy "$d" map_str base "$probe"; add "HAProxy map_str|$w" "$w" $n
      ;;
    exact-layered-1m)
      gen_exact 1000000 "$d"; gen_layers "$d"
      probe="/old/0/page.html"
      start_pr "$d" on "$probe"; add "pingora-redirect|$w" "$w" 1000000
      add_base "$d" "$probe" "$w" 1000000
      ;;
    log-1k)
      gen_exact 1000 "$d"
      probe="/old/0/page.html"
      start_pr "$d" on "$probe"; add "pingora-redirect, access log off|$w" "$w" 1000
      start_pr "$d" on "$probe" $'[log]\naccess = "access-PORT.log"\nformat = "combined"'
      add "pingora-redirect, access log combined|$w" "$w" 1000
      start_pr "$d" on "$probe" $'[log]\naccess = "access-PORT.log"\nformat = "json"'
      add "pingora-redirect, access log json|$w" "$w" 1000
      ;;
    tls-1k | tls-handshake-1k)
      gen_exact 1000 "$d"; gen_cert "$d"
      probe="/old/0/page.html"
      start_bare "$d"; add "bare Pingora 307 (Pingora's TLS listener)|$w" "$w" 1000
      start_pr "$d" on "$probe" "[tls]
listen = [\"127.0.0.1:TLSPORT\"]

[[certificate]]
cert = \"tls.pem\"
key = \"tls.key\""
      add "pingora-redirect|$w" "$w" 1000
      start_nginx "$d" tls "$probe"; add "nginx map|$w" "$w" 1000
      start_haproxy "$d" map_str base "$probe" tls; add "HAProxy map_str|$w" "$w" 1000
      ;;
    prefix-1m)
      gen_prefix 1000000 "$d"
      start_pr "$d" on /dir/0/a; add "pingora-redirect|$w" "$w" 1000000
      ;;
    regex-*)
      case "$w" in
        regex-1k) shape=distinct; n=1000; probe=/r0/1/a ;;
        regex-shared-10k) shape=shared; n=10000; probe=/article/1-topic0 ;;
        regex-noliteral-10k) shape=noliteral; n=10000; probe=/q7 ;;
      esac
      gen_regex "$shape" "$n" "$d"
      start_pr "$d" on "$probe"; add "pingora-redirect|$w" "$w" $n
      add_base "$d" "$probe" "$w" $n
      start_nginx "$d" regex "$probe"; add "nginx location ~|$w" "$w" $n
      start_haproxy "$d" map_regm path "$probe"; add "HAProxy map_regm|$w" "$w" $n
      ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
done

declare -A results
for ((r = 1; r <= ROUNDS; r++)); do
  for name in "${names[@]}"; do
    RULES=${rules[$name]} CLOSE=${close[$name]} taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
      -s "${lua[$name]}" "${url[$name]}" >"$work/wrk.out" 2>&1 || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
    bad=$(awk '/Non-2xx or 3xx/ {print $5}' "$work/wrk.out")
    results[$name]+="${rps:-0} ${p99:-?} ${bad:-0};"
  done
done

median() { tr ';' '\n' <<<"$1" | sed '/^$/d' | sort -n -k1,1 | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }
runs() { tr ';' '\n' <<<"$1" | sed '/^$/d' | awk '{ printf "%s%d", sep, $1; sep = ", " }'; }

# The ratio is taken round by round (the servers of a round ran minutes
# apart at most) and the median of those is shown; the reference is nginx,
# or the first server of a workload without nginx (log-1k: the log off).
ratio_of() { # results reference-results
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, ";"); split(b, y, ";"); k = 0
    for (i = 1; i <= n; i++) { if (x[i] == "") continue; split(x[i], p, " "); split(y[i], q, " "); if (q[1] > 0) r[++k] = p[1] / q[1] }
    if (k == 0) { print "–"; exit }
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
    printf "%.2f", r[int((k + 1) / 2)] }'
}

echo "| workload | server | ready (s) | RSS (MB) | redirects/s (median of $ROUNDS) | p99 | non-3xx | ratio | runs |"
echo "|---|---|---|---|---|---|---|---|---|"
for w in $WORKLOADS; do
  ref=""
  for name in "${names[@]}"; do
    [ "${workload[$name]}" = "$w" ] || continue
    [ -n "$ref" ] || ref=$name
    [[ "$name" == nginx* ]] && ref=$name
  done
  for name in "${names[@]}"; do
    [ "${workload[$name]}" = "$w" ] || continue
    read -r rps p99 bad < <(median "${results[$name]}")
    ratio=$(ratio_of "${results[$name]}" "${results[$ref]}")
    echo "| $w | ${name%%|*} | ${ready[$name]} | $(rss_mb "${pid[$name]}") | $rps | $p99 | $bad | $ratio | $(runs "${results[$name]}") |"
  done
done
