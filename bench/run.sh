#!/usr/bin/env bash
# Side-by-side hit-path benchmark: Eddy (release) against nginx proxy_cache and Varnish, all in
# front of the same origin on this machine, driven by wrk. Prints one table with requests/s,
# p50, p99 and the ratios Eddy/nginx and Eddy/Varnish, and appends it to bench/RESULTS.md.
#
#   bash bench/run.sh [seconds-per-run (default 10)] [connections (default 64)]
#
# A/B against another build in the same run: BASE=<commit> builds that commit's eddy (release, in
# a worktree with its own target directory under target/bench-base) and runs it beside this one;
# BASE_EDDY=<binary> BASE_REV=<label> runs an eddy already built.
#
# Not a test: numbers depend on the machine. Compare ratios within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-64}
THREADS=2
WORK=$(mktemp -d /tmp/eddy-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -d "$WORK/base" ] && git worktree remove --force "$WORK/base" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a timeout or Ctrl-C still stops every server (through EXIT)

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need+=(varnish)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VARNISHD=$(command -v varnishd || echo /usr/sbin/varnishd)

bash scripts/prereqs.sh
cargo build --release --locked -q -p eddy
EDDY=target/release/eddy
BASE_EDDY=${BASE_EDDY:-}
BASE_REV=${BASE_REV:-base}
if [ -z "$BASE_EDDY" ] && [ -n "${BASE:-}" ]; then
  BASE_REV=$(git rev-parse --short "$BASE")
  git worktree add -q --detach "$WORK/base" "$BASE_REV"
  echo "building eddy at $BASE_REV for the A/B (target/bench-base)" >&2
  (cd "$WORK/base" && CARGO_TARGET_DIR="$OLDPWD/target/bench-base" cargo build --release --locked -q -p eddy)
  BASE_EDDY=target/bench-base/release/eddy
fi

# N distinct free ports at once (one call per port could hand the same freed port out twice).
ports() { python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

read -r ORIGIN EDDY_P EDDY_ADMIN NGINX_P VARNISH_P FULL_P FULL_ADMIN BASE_P BASE_ADMIN < <(ports 9)

RUST_LOG=warn "$EDDY" origin --listen 127.0.0.1:"$ORIGIN" >"$WORK/origin.log" 2>&1 & PIDS+=($!)
wait_port "$ORIGIN"

RUST_LOG=warn "$EDDY" edge --listen 127.0.0.1:"$EDDY_P" --admin 127.0.0.1:"$EDDY_ADMIN" \
  --origin http://127.0.0.1:"$ORIGIN" --memory-size "512 MiB" >"$WORK/eddy.log" 2>&1 & PIDS+=($!)
EDDY_PID=$!

# The same Eddy with the hit fast path off: every request through pingora's full proxy. Shows
# what the fast path (crates/eddy-edge/src/fast.rs) is worth, in the same run.
printf '[edge]\nfast_hits = false\n' >"$WORK/full.toml"
RUST_LOG=warn "$EDDY" edge --config "$WORK/full.toml" --listen 127.0.0.1:"$FULL_P" --admin 127.0.0.1:"$FULL_ADMIN" \
  --origin http://127.0.0.1:"$ORIGIN" --memory-size "512 MiB" >"$WORK/eddy-full.log" 2>&1 & PIDS+=($!)
FULL_PID=$!

mkdir -p "$WORK/nginx-cache"
NGINX_USER=""
[ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"
cat >"$WORK/nginx.conf" <<NGX
$NGINX_USER
worker_processes $THREADS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # sendfile without tcp_nopush: with tcp_nopush, 100 KiB responses stall ~40 ms on loopback
  # (1.8k req/s); this is nginx at its best here (38k req/s measured on 2026-11-26).
  sendfile on; tcp_nodelay on;
  keepalive_requests 1000000;
  proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=c:64m max_size=1g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_P;
    location / {
      proxy_pass http://127.0.0.1:$ORIGIN;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGX
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" >"$WORK/nginx.out" 2>&1 & PIDS+=($!)
NGINX_PID=$!

"$VARNISHD" -F -n "$WORK/varnish" -a 127.0.0.1:"$VARNISH_P" -b 127.0.0.1:"$ORIGIN" \
  -s malloc,512m -p thread_pools=2 >"$WORK/varnish.log" 2>&1 & PIDS+=($!)
VARNISH_PID=$!

for p in "$EDDY_P" "$NGINX_P" "$VARNISH_P" "$FULL_P"; do wait_port "$p"; done

SIZES=(1024 102400)
NAMES=(eddy nginx varnish "eddy, fast path off")
PORTS=("$EDDY_P" "$NGINX_P" "$VARNISH_P" "$FULL_P")
ROOTS=("$EDDY_PID" "$NGINX_PID" "$VARNISH_PID" "$FULL_PID")
SERVERS=(0 1 2 3)
if [ -n "$BASE_EDDY" ]; then
  RUST_LOG=warn "$BASE_EDDY" edge --listen 127.0.0.1:"$BASE_P" --admin 127.0.0.1:"$BASE_ADMIN" \
    --origin http://127.0.0.1:"$ORIGIN" --memory-size "512 MiB" >"$WORK/eddy-base.log" 2>&1 & PIDS+=($!)
  BASE_PID=$!
  wait_port "$BASE_P"
  NAMES+=("eddy @$BASE_REV (A/B base)"); PORTS+=("$BASE_P"); ROOTS+=("$BASE_PID"); SERVERS+=(4)
fi

# Issue 12: the same Eddy with an hls.js-style CMCD query on every request. CMCD is not part of
# the key, so these are the same hits and must stay on the fast path (target: >= 0.9x the
# requests/s without it, i.e. "Eddy/this" <= 1.11).
declare -A SUFFIX
CMCD_Q='?CMCD=bl%3D21300%2Cbr%3D2306%2Ccid%3D%22show-1%22%2Cd%3D2000%2Cdl%3D18600%2Cmtp%3D48100%2Cnor%3D%22seg_002.m4s%22%2Cot%3Dav%2Crtp%3D11500%2Csf%3Dh%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Cst%3Dv%2Ctb%3D2306'
NAMES[5]="eddy, CMCD query on every request"; PORTS[5]=$EDDY_P; ROOTS[5]=$EDDY_PID; SUFFIX[5]=$CMCD_Q
SERVERS=(0 5 "${SERVERS[@]:1}")

# Warm every cache and check each answers a hit.
for i in "${SERVERS[@]}"; do
  for s in "${SIZES[@]}"; do
    for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:${PORTS[$i]}/bytes/$s${SUFFIX[$i]:-}"; done
  done
done
curl -s -D - -o /dev/null "http://127.0.0.1:$EDDY_P/bytes/1024" | grep -qi '^x-cache: HIT' || { echo "eddy is not hitting" >&2; exit 1; }
curl -s -D - -o /dev/null "http://127.0.0.1:$NGINX_P/bytes/1024" | grep -qi '^x-cache: HIT' || { echo "nginx is not hitting" >&2; exit 1; }

# wrk output -> "rps p50_ms p99_ms"
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }
# CPU time (user + system, clock ticks) of a process and all its descendants: nginx and Varnish
# serve from child processes. wrk shares the 2 cores, so requests/s alone also measures how much
# CPU a server leaves to the client; CPU per request is the server's own cost.
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ "$p" = "$1" ] || { total=$((total + $(cpu_ticks "$p"))); continue; }
    [ -r /proc/"$p"/stat ] && total=$((total + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
  done
  echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

run_wrk() {
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$1")
  local rps p50 p99
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}' | to_ms)
  p99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)
  echo "$rps $p50 $p99"
}

declare -A RPS P50 P99 CPU
for s in "${SIZES[@]}"; do
  for i in "${SERVERS[@]}"; do
    before=$(cpu_ticks "${ROOTS[$i]}")
    read -r r a b < <(run_wrk "http://127.0.0.1:${PORTS[$i]}/bytes/$s${SUFFIX[$i]:-}")
    after=$(cpu_ticks "${ROOTS[$i]}")
    RPS[$i,$s]=$r; P50[$i,$s]=$a; P99[$i,$s]=$b
    CPU[$i,$s]=$(python3 -c "print(f'{($after - $before) * $TICK_US / ($r * $DUR):.1f}')")
    echo "  ${NAMES[$i]} $s B: $r req/s, p50 $a ms, p99 $b ms, ${CPU[$i,$s]} µs CPU/req" >&2
  done
done

ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }
TABLE=$(
  echo "| object | server | requests/s | p50 ms | p99 ms | server CPU µs/req | Eddy/this (req/s) |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for s in "${SIZES[@]}"; do
    label=$([ "$s" = 1024 ] && echo "1 KiB" || echo "100 KiB")
    for i in "${SERVERS[@]}"; do
      echo "| $label | ${NAMES[$i]} | ${RPS[$i,$s]} | ${P50[$i,$s]} | ${P99[$i,$s]} | ${CPU[$i,$s]} | $(ratio "${RPS[0,$s]}" "${RPS[$i,$s]}") |"
    done
  done
)
HEADER="### $(date -u +%Y-%m-%d) — hit path, wrk -t$THREADS -c$CONNS -d${DUR}s, $(nproc) cores, $(uname -r)"
echo
echo "$HEADER"
echo
echo "$TABLE"
{
  echo
  echo "$HEADER"
  echo
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), Varnish $("$VARNISHD" -V 2>&1 | head -1 | sed -E 's/.*varnish-([0-9.]+).*/\1/'), Eddy $(git rev-parse --short HEAD)"
  echo
  echo "$TABLE"
} >> bench/RESULTS.md
