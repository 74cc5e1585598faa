#!/usr/bin/env bash
# End-to-end comparison on loopback (docs/benchmarking.md): hycod relay + hycod daemon against
# the direct baseline, alternated A/B in one invocation, with hycod-load as the generator.
#
#   cargo build --release -p hycod -p loadtest
#   benches/compare.sh [--runs 3] [--duration 5s] [--http-rate 2000] [--stream-rate 1000]
#
# Pinning (rule 2): relay and daemon on CPU 1, generator and targets on CPU 0 (when taskset and
# two CPUs exist). Prints a median [min..max] table and relayed/direct ratios; raw JSON stays
# in the work directory it names.
set -euo pipefail

runs=3 duration=5s warmup=1s http_rate=2000 stream_rate=1000 connections=4
bin=${BIN_DIR:-target/release}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --http-rate) http_rate=$2; shift 2 ;;
    --stream-rate) stream_rate=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for b in hycod hycod-load; do
  [ -x "$bin/$b" ] || { echo "$bin/$b missing: cargo build --release -p hycod -p loadtest" >&2; exit 2; }
done

cpu0="" cpu1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then cpu0="taskset -c 0"; cpu1="taskset -c 1"; fi

work=$(mktemp -d /tmp/hycod-compare.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -f "$work/daemon.toml"
}
trap cleanup EXIT

# Starts "$@" in the background, logging to $work/$name.log; waits for its "listening" line.
start() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q listening "$work/$name.log" 2>/dev/null && break
    sleep 0.1
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

key=$(head -c 32 /dev/urandom | base64)
echo_port=$(free_port); http_port=$(free_port)
start echo $cpu0 "$bin/hycod-load" serve-echo --listen "127.0.0.1:$echo_port"
start http $cpu0 "$bin/hycod-load" serve-http --listen "127.0.0.1:$http_port"
start relay $cpu1 "$bin/hycod" relay --listen 127.0.0.1:0 --workers 1 \
  --rule "root=$key" --hybrid-connection echo --hybrid-connection web
relay=$(grep -o 'ws://[^ ]*' "$work/relay.log" | head -1)
cat >"$work/daemon.toml" <<TOML
[runtime]
workers = 1
[[hybrid_connection]]
name = "echo"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$key;EntityPath=echo"
relay_url = "$relay"
target = "tcp://127.0.0.1:$echo_port"
[[hybrid_connection]]
name = "web"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$key;EntityPath=web"
relay_url = "$relay"
http_target = "http://127.0.0.1:$http_port/"
TOML
chmod 600 "$work/daemon.toml"
$cpu1 "$bin/hycod" run --config "$work/daemon.toml" >"$work/daemon.log" 2>&1 &
pids+=($!)

load() { $cpu0 "$bin/hycod-load" "$@" --connections "$connections" --duration "$duration" --warmup "$warmup"; }
relayed=(--relay "$relay" --key-name root --key "$key")
# The daemon is ready when a short relayed run has no errors.
for _ in $(seq 50); do
  load http "${relayed[@]}" --hybrid-connection web --rate 100 --duration 200ms --warmup 0s \
    --json "$work/ready.json" >/dev/null 2>&1 || true
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["n"] and not d["errors"] else 1)' \
    "$work/ready.json" 2>/dev/null && break
  sleep 0.2
done

echo "# $(date -u +%F\ %H:%MZ) $(uname -srm), $(nproc) CPUs; runs=$runs duration=$duration warmup=$warmup connections=$connections; pinned: ${cpu0:+yes}"
for i in $(seq "$runs"); do
  load http --direct "http://127.0.0.1:$http_port/" --rate "$http_rate" --body-size 1024 --json "$work/http-direct-$i.json" >/dev/null
  load http "${relayed[@]}" --hybrid-connection web --rate "$http_rate" --body-size 1024 --json "$work/http-relayed-$i.json" >/dev/null
  load stream --direct "tcp://127.0.0.1:$echo_port" --rate "$stream_rate" --size 64 --json "$work/stream-direct-$i.json" >/dev/null
  load stream "${relayed[@]}" --hybrid-connection echo --rate "$stream_rate" --size 64 --json "$work/stream-relayed-$i.json" >/dev/null
done

python3 - "$work" "$runs" "$http_rate" "$stream_rate" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
rates = {"http": sys.argv[3], "stream": sys.argv[4]}
def load(name):
    return [json.load(open(f"{work}/{name}-{i}.json")) for i in range(1, runs + 1)]
def fmt(vals):
    return f"{statistics.median(vals):g} [{min(vals):g}..{max(vals):g}]"
print("| workload | path | n | p50 µs | p99 µs | p99.9 µs | errors | hycod-load CPU-µs/req |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for mode, what in (("http", "HTTP 1 KiB POST"), ("stream", "64 B echo")):
    for path in ("direct", "relayed"):
        rs = load(f"{mode}-{path}")
        errors = sum(sum(r["errors"].values()) for r in rs)
        med[(mode, path)] = {k: statistics.median(r[k] for r in rs) for k in ("p50_us", "p99_us")}
        print(f"| {what} @ {rates[mode]}/s | {path} | {fmt([r['n'] for r in rs])} | "
              f"{fmt([r['p50_us'] for r in rs])} | {fmt([r['p99_us'] for r in rs])} | "
              f"{fmt([r['p999_us'] for r in rs])} | {errors} | "
              f"{fmt([round(r['generator_cpu_us_per_request'], 1) for r in rs])} |")
print()
for mode in ("http", "stream"):
    d, r = med[(mode, "direct")], med[(mode, "relayed")]
    print(f"{mode}: relayed/direct p50 {r['p50_us'] / max(d['p50_us'], 1):.2f}x, "
          f"p99 {r['p99_us'] / max(d['p99_us'], 1):.2f}x")
print(f"raw JSON: {work}")
PY
