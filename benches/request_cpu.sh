#!/usr/bin/env bash
# CPU per relayed HTTP request of `hycod relay` and `hycod run`, two builds alternated
# (method: docs/benchmarking.md; figures: docs/performance.md).
#
#   [RATE=N] benches/request_cpu.sh BIN_A BIN_B [PAIRS] [DURATION]
#
# BIN_A and BIN_B are directories holding `hycod` and `hycod-load` (release builds). Each round
# starts, for A then B, a fresh relay and daemon (one worker each, both on CPU 1) in front of one
# HTTP target (CPU 0), warms up for 1 s, then sends 1 KiB POSTs closed-loop over 32 connections
# for DURATION (default 4s) with hycod-load on CPU 0, and charges each process the CPU time its
# threads spent during the measured run (/proc/PID/task/*/schedstat, nanoseconds: at a few
# thousand requests the 10 ms ticks of /proc/PID/stat are too coarse) divided by the requests
# answered.
# With RATE set, the POSTs are sent open-loop at RATE per second instead: both builds then serve
# the same rate, so neither gains from the batching a faster run gets (on a loaded machine the
# closed-loop rate, and with it the CPU per request, swings from run to run).
# Prints one line per run and the medians and B/A ratios at the end.
set -euo pipefail

a=$1 b=$2 pairs=${3:-5} duration=${4:-4s}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# cpu_ns PID: nanoseconds on CPU of every thread of PID (the first field of schedstat).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{n += $1} END {print n}'; }
# wait_for, web_daemon_config
source "$(dirname "$0")/request_common.sh"

taskset -c 0 "$a/hycod-load" serve-http --listen 127.0.0.1:0 >"$work/target.log" 2>&1 &
pids+=($!)
wait_for "$work/target.log" listening
target=$(grep -m1 '^listening' "$work/target.log" | grep -o '127.0.0.1:[0-9]*')
key=$(head -c 32 /dev/urandom | base64)

# run LABEL BIN: one measured run; prints "LABEL relay_us daemon_us req_per_s".
run() {
  local label=$1 bin=$2 relay daemon url before_r before_d after_r after_d n secs
  taskset -c 1 "$bin/hycod" relay --listen 127.0.0.1:0 --workers 1 --rule "root=$key" \
    --hybrid-connection web >"$work/relay.log" 2>&1 &
  relay=$!; pids+=($relay)
  wait_for "$work/relay.log" listening
  url=$(grep -o 'ws://[^ ]*' "$work/relay.log" | head -1)
  web_daemon_config "$work/daemon.toml" "$key" "$url" "$target"
  taskset -c 1 "$bin/hycod" run --config "$work/daemon.toml" >"$work/daemon.log" 2>&1 &
  daemon=$!; pids+=($daemon)
  wait_for "$work/daemon.log" "listener online"
  local load=(taskset -c 0 "$bin/hycod-load" http --relay "$url" --key-name root --key "$key"
    --hybrid-connection web --body-size 1024 --connections 32 --warmup 0s)
  if [ -n "${RATE:-}" ]; then load+=(--rate "$RATE"); else load+=(--closed-loop); fi
  "${load[@]}" --duration 1s >/dev/null 2>&1
  before_r=$(cpu_ns "$relay") before_d=$(cpu_ns "$daemon")
  "${load[@]}" --duration "$duration" --json "$work/run.json" >/dev/null 2>&1
  after_r=$(cpu_ns "$relay") after_d=$(cpu_ns "$daemon")
  read -r n secs < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["n"], d["duration_secs"])' "$work/run.json")
  kill "$relay" "$daemon"; wait "$relay" "$daemon" 2>/dev/null || true
  python3 -c 'import sys; l,r,d,n,s=sys.argv[1:]; n=int(n); print(l, "%.2f" % (int(r)/1e3/n), "%.2f" % (int(d)/1e3/n), "%.0f" % (n/float(s)))' \
    "$label" $((after_r - before_r)) $((after_d - before_d)) "$n" "$secs"
}

echo "label relay_cpu_us_per_req daemon_cpu_us_per_req req_per_s"
for i in $(seq "$pairs"); do
  run A "$a" | tee -a "$work/results"
  run B "$b" | tee -a "$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(label, i): return [float(r[i]) for r in rows if r[0] == label]
for i, name in [(1, "relay"), (2, "daemon"), (3, "req/s")]:
    a, b = statistics.median(col("A", i)), statistics.median(col("B", i))
    ratios = [y / x for x, y in zip(col("A", i), col("B", i))]
    print(f"{name}: A median {a:.2f}, B median {b:.2f}, B/A {b / a:.3f}; "
          f"paired ratios median {statistics.median(ratios):.3f} [{min(ratios):.3f}..{max(ratios):.3f}]")
PY
