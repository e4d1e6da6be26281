#!/usr/bin/env bash
# Interleaved A/B of two eddy builds on the hit path: both edges run side by side in front of one
# origin, and wrk alternates between them (A then B, then B then A, ...) so drift on this noisy
# machine lands on both. Prints each pair and the median ratio of requests/s and of server CPU
# per request, per object size.
#
#   bash bench/ab.sh <eddy A> <eddy B> [pairs (default 6)] [seconds (default 5)]
#
# SIZES (default "1024 102400") picks the object sizes; QUERY is appended to every request's
# URL (QUERY='?CMCD=...' measures the hit path reading player telemetry).
#
# Not a test. A is usually target/release/eddy, B the previous commit's (bench/run.sh BASE=...).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2; PAIRS=${3:-6}; DUR=${4:-5}
WORK=$(mktemp -d /tmp/eddy-ab.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
# Distinct free ports at once (one call per port could hand the same freed port out twice).
ports() { python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
read -r ORIGIN AP AA BP BA < <(ports 5)
RUST_LOG=warn "$A" origin --listen 127.0.0.1:"$ORIGIN" >"$WORK/o.log" 2>&1 & PIDS+=($!)
wait_port "$ORIGIN"
RUST_LOG=warn "$A" edge --listen 127.0.0.1:"$AP" --admin 127.0.0.1:"$AA" --origin http://127.0.0.1:"$ORIGIN" \
  --memory-size "512 MiB" >"$WORK/a.log" 2>&1 & PIDS+=($!); APID=$!
RUST_LOG=warn "$B" edge --listen 127.0.0.1:"$BP" --admin 127.0.0.1:"$BA" --origin http://127.0.0.1:"$ORIGIN" \
  --memory-size "512 MiB" >"$WORK/b.log" 2>&1 & PIDS+=($!); BPID=$!
wait_port "$AP"; wait_port "$BP"
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
one() { # port pid url -> "rps cpu_us_per_req"
  local before after rps
  before=$(ticks "$2")
  rps=$(wrk -t2 -c64 -d"${DUR}s" "$3" | awk '/^Requests\/sec/ {print $2}')
  after=$(ticks "$2")
  python3 -c "print($rps, round(($after - $before) * $TICK_US / ($rps * $DUR), 2))"
}
for size in ${SIZES:-1024 102400}; do
  for p in "$AP" "$BP"; do for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$p/bytes/$size"; done; done
  echo "== $size B: pair, A req/s, B req/s, A/B, A CPU µs/req, B CPU µs/req"
  RATIOS=(); CPUS=()
  for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then
      read -r ar ac < <(one "$AP" "$APID" "http://127.0.0.1:$AP/bytes/$size${QUERY:-}")
      read -r br bc < <(one "$BP" "$BPID" "http://127.0.0.1:$BP/bytes/$size${QUERY:-}")
    else
      read -r br bc < <(one "$BP" "$BPID" "http://127.0.0.1:$BP/bytes/$size${QUERY:-}")
      read -r ar ac < <(one "$AP" "$APID" "http://127.0.0.1:$AP/bytes/$size${QUERY:-}")
    fi
    r=$(python3 -c "print(round($ar / $br, 3))"); c=$(python3 -c "print(round($ac / $bc, 3))")
    RATIOS+=("$r"); CPUS+=("$c")
    echo "  $i  $ar  $br  $r  $ac  $bc"
  done
  R=$(IFS=,; echo "${RATIOS[*]}"); C=$(IFS=,; echo "${CPUS[*]}")
  python3 -c "import statistics as s; r=[$R]; c=[$C]; print(f'  median A/B req/s {s.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}); median A/B CPU per request {s.median(c):.3f}')"
done
