#!/usr/bin/env bash
# Instructions per relayed HTTP request of `hycod relay` and `hycod run`, counted by callgrind:
# a figure the load of a shared machine does not move (method: docs/benchmarking.md rule 3;
# history: docs/performance.md).
#
#   benches/request_instructions.sh BIN_DIR [REQUESTS] [OUT_DIR]
#
# BIN_DIR holds `hycod` and `hycod-load` (a release build: debug info for function names). Relay
# and daemon (one worker each, epoll driver: valgrind does not run io_uring) run under
# `valgrind --tool=callgrind --instr-atstart=no` in front of one `hycod-load serve-http` target.
# After 200 warm-up requests, instrumentation is switched on in both (`callgrind_control -i on`),
# REQUESTS (default 2000) 1 KiB POSTs are sent open loop at 100/s over 4 connections, and the
# profiles are dumped. Prints the instructions (Ir) per answered request of each process; the
# per-function profiles stay in OUT_DIR (`callgrind_annotate OUT_DIR/daemon.out`).
set -euo pipefail

bin=$1 requests=${2:-2000} out=${3:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export MONOIO_FORCE_LEGACY_DRIVER=1

# wait_for, web_daemon_config
source "$(dirname "$0")/request_common.sh"
callgrind() {
  local name=$1; shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/$name.out" "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
}

"$bin/hycod-load" serve-http --listen 127.0.0.1:0 >"$work/target.log" 2>&1 &
pids+=($!)
wait_for "$work/target.log" listening 60
target=$(grep -m1 '^listening' "$work/target.log" | grep -o '127.0.0.1:[0-9]*')
key=$(head -c 32 /dev/urandom | base64)

callgrind relay "$bin/hycod" relay --listen 127.0.0.1:0 --workers 1 --rule "root=$key" \
  --hybrid-connection web
relay=${pids[-1]}
wait_for "$work/relay.log" 'listening ws://' 60
url=$(grep -o 'ws://[^ ]*' "$work/relay.log" | head -1)
web_daemon_config "$work/daemon.toml" "$key" "$url" "$target"
callgrind daemon "$bin/hycod" run --config "$work/daemon.toml"
daemon=${pids[-1]}
wait_for "$work/daemon.log" "listener online" 60

load=("$bin/hycod-load" http --relay "$url" --key-name root --key "$key" --hybrid-connection web
  --body-size 1024 --connections 4 --warmup 0s --rate 100 --timeout 30s)
"${load[@]}" --duration 2s >/dev/null
callgrind_control -i on "$relay" >/dev/null
callgrind_control -i on "$daemon" >/dev/null
"${load[@]}" --duration "$(( requests / 100 ))s" --json "$work/run.json" >/dev/null
callgrind_control -d "$relay" >/dev/null
callgrind_control -d "$daemon" >/dev/null
read -r n errors < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["n"], d["error_total"])' "$work/run.json")
for name in relay daemon; do
  # The dump is NAME.out.1 (callgrind numbers dumps taken on request).
  ir=$(callgrind_annotate "$out/$name.out".1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$name: $ir Ir over $n requests ($errors errors): $(( ir / n )) instructions per request"
done
echo "profiles: $out/relay.out.1 $out/daemon.out.1"
