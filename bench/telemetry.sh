#!/usr/bin/env bash
# What reading player telemetry costs the hit path (issue 12): five Eddy edges in front of one
# origin, alike but for [streaming] prefetch and guard (both on, the default; each alone; both
# off: then no request's CMCD is read) and telemetry_rate (the default reads 20,000 requests'
# CMCD a second and sheds the rest; the fifth edge reads every one), each driven by wrk with and
# without an hls.js-style CMCD query on a 1 KiB hit. Prints requests/s per edge, the CMCD / plain
# ratio, and how many requests' telemetry each edge shed, twice (the machine is noisy:
# compare within one run).
#
#   bash bench/telemetry.sh [seconds-per-run (default 5)]
#
# Not a test. Needs wrk (bench/run.sh installs it) and builds eddy in release.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
cargo build --release --locked -q -p eddy
E=target/release/eddy
W=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$W"' EXIT
ports() { python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
read -r -a P < <(ports 11)
RUST_LOG=warn $E origin --listen 127.0.0.1:"${P[0]}" >"$W/origin.log" 2>&1 & PIDS+=($!)
wait_port "${P[0]}"
CFGS=("" "[streaming]\nprefetch = false\n" "[streaming]\nguard = false\n" "[streaming]\nprefetch = false\nguard = false\n" "[streaming]\ntelemetry_rate = 0\n")
NAMES=("prefetch + guard (default)" "guard only" "prefetch only" "neither (CMCD not read)" "default, every request read")
for i in 0 1 2 3 4; do
  printf "${CFGS[$i]}" >"$W/c$i.toml"
  RUST_LOG=warn $E edge --config "$W/c$i.toml" --listen 127.0.0.1:"${P[$((1 + 2 * i))]}" \
    --admin 127.0.0.1:"${P[$((2 + 2 * i))]}" --origin http://127.0.0.1:"${P[0]}" \
    --memory-size "512 MiB" >"$W/e$i.log" 2>&1 & PIDS+=($!)
  wait_port "${P[$((1 + 2 * i))]}"
done
Q='?CMCD=bl%3D21300%2Cbr%3D2306%2Ccid%3D%22show-1%22%2Cd%3D2000%2Cdl%3D18600%2Cmtp%3D48100%2Cnor%3D%22seg_002.m4s%22%2Cot%3Dav%2Crtp%3D11500%2Csf%3Dh%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Cst%3Dv%2Ctb%3D2306'
rps() { wrk -t2 -c64 -d"${DUR}s" "$1" | awk '/Requests\/sec/{print $2}'; }
for round in 1 2; do
  for i in 0 1 2 3 4; do
    u="http://127.0.0.1:${P[$((1 + 2 * i))]}/bytes/1024"
    for _ in 1 2 3; do curl -s -o /dev/null "$u"; curl -s -o /dev/null "$u$Q"; done
    plain=$(rps "$u"); cmcd=$(rps "$u$Q")
    m=$(curl -s "http://127.0.0.1:${P[$((2 + 2 * i))]}/metrics")
    printf '%-28s plain %10s  cmcd %10s  ratio %s  (telemetry shed so far: %s)\n' "${NAMES[$i]}" "$plain" "$cmcd" \
      "$(python3 -c "print(f'{$cmcd / $plain:.2f}')")" \
      "$(awk '/^eddy_qoe_samples_total\{what="shed"\}/ {print $2}' <<<"$m")"
  done
done
