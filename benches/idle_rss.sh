#!/usr/bin/env bash
# Resident memory per idle relayed stream of `hycod run`, for one or more builds, alternated
# within every round (compare.sh's idle step on its own): an echo target, a relay and a daemon
# per build, then `hycod-load idle` opens N streams through the relay (one probe byte echoed on
# each, or a burst of --echo-bytes N echoed first: a stream that moved data and then went quiet),
# reads the daemon's VmRSS before and after, and closes them. Prints one line per build and
# round, then the median per build.
#
#   benches/idle_rss.sh [--streams N] [--rounds R] [--echo-bytes N] [--quiet-for D] [--wss] BIN_DIR...
#
# --quiet-for D (e.g. 3s): the VmRSS "after" is read once the streams have been quiet that long.
# --wss: the relay serves wss:// with a self-signed certificate (as Azure's endpoints are TLS),
# so the daemon's rendezvous sockets carry its TLS layer.
#
# Each BIN_DIR holds release `hycod` and `hycod-load`. Pinning as in compare.sh: generator and
# target on CPU 0, relay and daemon on CPU 1. A fresh relay and daemon per build and round, so
# no round inherits another's heap.
set -euo pipefail

streams=3000 rounds=3 echo_bytes=1 quiet_for=0s tls=()
while [ $# -gt 0 ]; do
  case $1 in
    --streams) streams=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --echo-bytes) echo_bytes=$2; shift 2 ;;
    --quiet-for) quiet_for=$2; shift 2 ;;
    --wss) tls=(--self-signed localhost); shift ;;
    --*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--streams N] [--rounds R] [--echo-bytes N] [--quiet-for D] [--wss] BIN_DIR..." >&2; exit 2; }
for dir in "$@"; do
  [ -x "$dir/hycod" ] && [ -x "$dir/hycod-load" ] || { echo "$dir holds no hycod and hycod-load" >&2; exit 2; }
done

# Three descriptors per stream in the daemon (target, its duplicate, rendezvous).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cpu0="" cpu1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then cpu0="taskset -c 0"; cpu1="taskset -c 1"; fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
wait_for() {
  for _ in $(seq 200); do grep -aq "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

# measure BIN_DIR: prints the KiB per stream of one fresh relay + daemon.
measure() {
  local bin=$1 key url
  key=$(head -c 32 /dev/urandom | base64)
  $cpu0 "$bin/hycod-load" serve-echo --listen 127.0.0.1:0 >"$work/echo.log" 2>&1 & pids+=($!)
  wait_for "$work/echo.log" listening
  local echo_addr
  echo_addr=$(grep -am1 '^listening ' "$work/echo.log" | sed -E 's#^listening (on )?([a-z]+://)?##; s#/.*$##')
  $cpu1 "$bin/hycod" relay --listen 127.0.0.1:0 --workers 1 --rule "root=$key" \
    --hybrid-connection echo "${tls[@]}" --state-dir "$work/state" >"$work/relay.log" 2>&1 & pids+=($!)
  wait_for "$work/relay.log" listening
  url=$(grep -ao 'wss\?://[^ ]*' "$work/relay.log" | head -1)
  # The certificate names localhost.
  [ ${#tls[@]} -gt 0 ] && url=${url/127.0.0.1/localhost}
  local ca=() ca_key=""
  if [ ${#tls[@]} -gt 0 ]; then
    ca=(--ca-file "$work/state/self-signed/localhost/ca.pem")
    ca_key="relay_ca_file = \"$work/state/self-signed/localhost/ca.pem\""
  fi
  cat >"$work/daemon.toml" <<TOML
[runtime]
workers = 1
[limits]
max_streams_per_hybrid_connection = 100000
max_streams_per_worker = 100000
[[hybrid_connection]]
name = "echo"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$key;EntityPath=echo"
relay_url = "$url"
$ca_key
target = "tcp://$echo_addr"
TOML
  chmod 600 "$work/daemon.toml"
  $cpu1 "$bin/hycod" run --config "$work/daemon.toml" >"$work/daemon.log" 2>&1 & pids+=($!)
  local daemon=$!
  # The daemon is ready once its control channel is up: a probe stream gets through.
  for _ in $(seq 100); do
    $cpu0 "$bin/hycod-load" idle --relay "$url" "${ca[@]}" --key-name root --key "$key" \
      --hybrid-connection echo --connections 1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  $cpu0 "$bin/hycod-load" idle --relay "$url" "${ca[@]}" --key-name root --key "$key" \
    --hybrid-connection echo --connections "$streams" --echo-bytes "$echo_bytes" --quiet-for "$quiet_for" --rss-pid "$daemon" \
    --json "$work/idle.json" >/dev/null
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["opened"], d["rss_before_kib"], d["rss_after_kib"], "%.2f" % d["rss_per_stream_kib"])' "$work/idle.json"
  stop_all
}

declare -A results
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    # In this shell, not a subshell: the exit trap must see the pids if a step fails.
    measure "$bin" >"$work/result"
    read -r opened before after per <"$work/result"
    echo "round $round $bin: $opened streams, VmRSS $before -> $after KiB, $per KiB per stream"
    results[$bin]+="$per "
  done
done
for bin in "$@"; do
  median=$(printf '%s\n' ${results[$bin]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "median $bin: $median KiB per idle stream ($streams streams, $echo_bytes bytes echoed, quiet $quiet_for, $rounds rounds)"
done
