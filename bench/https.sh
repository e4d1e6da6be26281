#!/usr/bin/env bash
# HTTPS hit path: Eddy (release, rustls + ring, its own TLS port) against nginx (OpenSSL,
# proxy_cache) and Varnish behind hitch (its usual TLS terminator, PROXY v2 to Varnish), all in
# front of the same origin, all with one ECDSA P-256 certificate, TLS 1.3 only, so every server
# negotiates the same suite (the client's first choice, TLS_AES_256_GCM_SHA384, checked below).
#
#   bash bench/https.sh [seconds-per-run (default 10)] [connections (default 64)]
#
# Measures, in one run:
#   - HTTPS/1.1 keep-alive hits with wrk, 1 KiB and 100 KiB;
#   - HTTP/2 hits over TLS with h2load (-m 10 streams per connection), 1 KiB and 100 KiB;
#   - full and resumed handshakes/s: one new TLS connection per request (`Connection: close`),
#     from crates/eddy-edge/examples/handshakes.rs, one rustls client for every server (TLS 1.3,
#     the same suite), sharing a ticket store for the resumed run (it counts how many resumed).
# Server CPU per request (or per handshake) is reported beside every rate: wrk, h2load and
# s_time share the 2 cores with the servers.
#
# Kernel TLS is not available here (no `tls` ULP), so neither nginx nor anyone else can use
# sendfile under TLS on this machine: every byte is encrypted in user space.
#
# Not a test: numbers depend on the machine. Compare ratios within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-64}
THREADS=2
WORK=$(mktemp -d /tmp/eddy-bench-tls.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a timeout or Ctrl-C still stops every server (through EXIT)

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need+=(varnish)
command -v hitch >/dev/null 2>&1 || [ -x /usr/sbin/hitch ] || need+=(hitch)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VARNISHD=$(command -v varnishd || echo /usr/sbin/varnishd)
HITCH=$(command -v hitch || echo /usr/sbin/hitch)

cargo build --release --locked -q -p eddy
cargo build --release --locked -q -p eddy-edge --example handshakes
EDDY=target/release/eddy
HANDSHAKES=target/release/examples/handshakes

ports() { python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

read -r ORIGIN EDDY_P EDDY_TLS EDDY_ADMIN NGINX_TLS VARNISH_P HITCH_P < <(ports 7)

# One certificate and key for everyone, from a CA made here (the handshake client trusts the CA;
# a self-signed leaf would be a CA certificate used as an end entity, which webpki refuses).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.test \
  -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n' >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/leaf.ext" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/hitch.pem"

RUST_LOG=warn "$EDDY" origin --listen 127.0.0.1:"$ORIGIN" >"$WORK/origin.log" 2>&1 & PIDS+=($!)
wait_port "$ORIGIN"

cat >"$WORK/eddy.toml" <<TOML
[tls]
listen = "127.0.0.1:$EDDY_TLS"
certificates = [{ cert = "$WORK/cert.pem", key = "$WORK/key.pem" }]
TOML
RUST_LOG=warn "$EDDY" edge --config "$WORK/eddy.toml" --listen 127.0.0.1:"$EDDY_P" \
  --admin 127.0.0.1:"$EDDY_ADMIN" --origin http://127.0.0.1:"$ORIGIN" --memory-size "512 MiB" \
  >"$WORK/eddy.log" 2>&1 & PIDS+=($!)
EDDY_PID=$!

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
  sendfile on; tcp_nodelay on;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=c:64m max_size=1g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_TLS ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
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

"$VARNISHD" -F -n "$WORK/varnish" -a 127.0.0.1:"$VARNISH_P",PROXY -b 127.0.0.1:"$ORIGIN" \
  -s malloc,512m -p thread_pools=2 -p feature=+http2 >"$WORK/varnish.log" 2>&1 & PIDS+=($!)
VARNISH_PID=$!
"$HITCH" --frontend="[127.0.0.1]:$HITCH_P" --backend="[127.0.0.1]:$VARNISH_P" --write-proxy-v2=on \
  --workers=$THREADS --tls-protos=TLSv1.3 --alpn-protos=h2,http/1.1 --daemon=off \
  --user=nobody "$WORK/hitch.pem" >"$WORK/hitch.log" 2>&1 & PIDS+=($!)
HITCH_PID=$!

for p in "$EDDY_TLS" "$NGINX_TLS" "$HITCH_P"; do wait_port "$p"; done

NAMES=(eddy nginx "varnish+hitch")
PORTS=("$EDDY_TLS" "$NGINX_TLS" "$HITCH_P")
# CPU is summed over each server's processes (hitch and Varnish together).
ROOTS=("$EDDY_PID" "$NGINX_PID" "$VARNISH_PID $HITCH_PID")
SIZES=(1024 102400)

for i in 0 1 2; do
  for s in "${SIZES[@]}"; do
    for _ in 1 2 3; do curl -sk -o /dev/null "https://127.0.0.1:${PORTS[$i]}/bytes/$s"; done
  done
  hello=$(openssl s_client -connect 127.0.0.1:"${PORTS[$i]}" -servername bench.test </dev/null 2>/dev/null || true)
  suite=$(awk '/Cipher is/ {c=$NF} END {print c}' <<<"$hello")
  proto=$(curl -sk -o /dev/null -w '%{http_version}' "https://127.0.0.1:${PORTS[$i]}/bytes/1024" --http2)
  echo "  ${NAMES[$i]}: TLS 1.3 suite $suite, ALPN gives HTTP/$proto" >&2
done
# (Whole answers first: `curl | grep -q` can fail under pipefail when grep stops reading early.)
for i in 0 1; do
  head=$(curl -sk -D - -o /dev/null "https://127.0.0.1:${PORTS[$i]}/bytes/1024")
  grep -qi '^x-cache: HIT' <<<"$head" || { echo "${NAMES[$i]} is not hitting" >&2; exit 1; }
done

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }
cpu_one() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ "$p" = "$1" ] || { total=$((total + $(cpu_one "$p"))); continue; }
    [ -r /proc/"$p"/stat ] && total=$((total + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
  done
  echo "$total"
}
cpu_ticks() { local t=0 r; for r in $1; do t=$((t + $(cpu_one "$r"))); done; echo "$t"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
per() { python3 -c "r=float('$3'); print(f'{($2 - $1) * $TICK_US / (r * $DUR):.1f}' if r > 0 else 'n/a')"; }
ratio() { python3 -c "a,b=float('$1'),float('$2'); print(f'{a/b:.2f}' if b > 0 else 'n/a')"; }

# Each measurement: "<rate> <p50 ms or -> <p99 ms or ->".
wrk_keepalive() {
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$1")
  echo "$(echo "$out" | awk '/^Requests\/sec/ {print $2}') $(echo "$out" | awk '$1=="50%" {print $2}' | to_ms) $(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)"
}
h2() {
  local out; out=$(h2load -t"$THREADS" -c"$CONNS" -m10 -D"$DUR" "$1" 2>&1)
  if ! grep -q 'succeeded' <<<"$out"; then echo "h2load failed on $1: $out" >&2; echo "0 - -"; return; fi
  local ok; ok=$(echo "$out" | awk '/^requests:/ {print $8}')
  echo "$(python3 -c "print(f'{$ok / $DUR:.2f}')") $(echo "$out" | awk '/^time for request:/ {print $6}' | to_ms) -"
}
handshakes() { # port, extra flags
  local out n resumed failed
  out=$("$HANDSHAKES" --ca "$WORK/ca.pem" --name bench.test --addr "127.0.0.1:$1" \
    --path /bytes/1024 --conns "$HS_CONNS" --secs "$DUR" ${2:-})
  read -r n resumed failed <<<"$out"
  echo "    (handshakes on :$1 ${2:-}: $resumed resumed, $failed failed)" >&2
  echo "$n - -"
}
full_hs() { handshakes "$1"; }
resumed_hs() { handshakes "$1" --resume; }
HS_CONNS=32

declare -A RATE P50 P99 CPU
run() { # label what-fn url-or-port server-index
  local key=$1 fn=$2 target=$3 i=$4 before after r a b
  before=$(cpu_ticks "${ROOTS[$i]}")
  read -r r a b < <("$fn" "$target")
  after=$(cpu_ticks "${ROOTS[$i]}")
  RATE[$key,$i]=$r; P50[$key,$i]=$a; P99[$key,$i]=$b
  CPU[$key,$i]=$(per "$before" "$after" "$r")
  echo "  $key ${NAMES[$i]}: $r/s, p50 $a ms, p99 $b ms, ${CPU[$key,$i]} µs server CPU each" >&2
}
resumed_count() { local m; m=$(curl -s "http://127.0.0.1:$EDDY_ADMIN/metrics"); awk '/^eddy_tls_handshakes_total\{what="resumed"\}/ {n=$2} END {print n+0}' <<<"$m"; }
EDDY_RESUMED_BEFORE=$(resumed_count)
ROWS=("HTTPS/1.1 1 KiB" "HTTPS/1.1 100 KiB" "HTTP/2 1 KiB" "HTTP/2 100 KiB" "full handshakes" "resumed handshakes")
for i in 0 1 2; do
  url="https://127.0.0.1:${PORTS[$i]}"
  run "${ROWS[0]}" wrk_keepalive "$url/bytes/1024" "$i"
  run "${ROWS[1]}" wrk_keepalive "$url/bytes/102400" "$i"
  run "${ROWS[2]}" h2 "$url/bytes/1024" "$i"
  run "${ROWS[3]}" h2 "$url/bytes/102400" "$i"
  run "${ROWS[4]}" full_hs "${PORTS[$i]}" "$i"
  run "${ROWS[5]}" resumed_hs "${PORTS[$i]}" "$i"
done
echo "  eddy counted $(( $(resumed_count) - EDDY_RESUMED_BEFORE )) resumed handshakes" >&2

TABLE=$(
  echo "| what | server | per second | p50 ms | p99 ms | server CPU µs each | Eddy/this |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for row in "${ROWS[@]}"; do
    for i in 0 1 2; do
      echo "| $row | ${NAMES[$i]} | ${RATE[$row,$i]} | ${P50[$row,$i]} | ${P99[$row,$i]} | ${CPU[$row,$i]} | $(ratio "${RATE[$row,0]}" "${RATE[$row,$i]}") |"
    done
  done
)
HEADER="### $(date -u +%Y-%m-%d) — HTTPS hit path and handshakes, TLS 1.3, ECDSA P-256, -c$CONNS -d${DUR}s, $(nproc) cores, $(uname -r), no kTLS"
echo
echo "$HEADER"
echo
echo "$TABLE"
{
  echo
  echo "$HEADER"
  echo
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') ($(openssl version | awk '{print $1, $2}')), Varnish $("$VARNISHD" -V 2>&1 | head -1 | sed -E 's/.*varnish-([0-9.]+).*/\1/') behind hitch $("$HITCH" --version 2>&1 | awk '{print $2; exit}'), Eddy $(git rev-parse --short HEAD); wrk and h2load ($THREADS threads), handshakes with crates/eddy-edge/examples/handshakes.rs ($HS_CONNS connections)"
  echo
  echo "$TABLE"
} >> bench/RESULTS.md
