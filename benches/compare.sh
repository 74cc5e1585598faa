#!/usr/bin/env bash
# Side-by-side benchmark on loopback (method: docs/benchmarking.md): direct (no proxy),
# hycod (forward -> relay -> daemon for streams; relay + daemon for HTTP), hycod over wss, hycod
# on the epoll driver (MONOIO_FORCE_LEGACY_DRIVER=1), a listener on the official Node SDKs in the
# daemon's place (benches/peers/node-sdk-listener: same relay, forwarder and targets), and the
# peers when present: rathole 0.5 websocket, rathole websocket+TLS, haproxy (tcp mode). One
# invocation, paths alternated within every round, >= 3 rounds, medians [min..max].
#
#   benches/compare.sh [--with-peers] [--quick] [--runs N] [--duration 5s] [--no-write]
#
# --with-peers  installs what is missing: rathole 0.5.0 (cargo install, into target/peers),
#               haproxy, iperf3, and node with npm (apt-get); the Node SDK listener's packages
#               (npm ci from its committed lock, into target/peers/node-sdk-listener). Without
#               it, peers already installed are used.
# --quick       a short smoke run (1 round, 1 s, 1,000 idle streams).
# --no-write    print the tables without replacing them in docs/performance.md.
# --skip PATH   leave a path out (hycod_wss, hycod_epoll, sdk, rathole, haproxy, iperf3,
#               many); repeatable. `many` is the 1,000-connection io_uring / epoll workload.
# --many N      concurrent streams and requests of that workload (default 1000).
#
# Binaries: `cargo build --release -p hycod -p loadtest` on every run (a no-op when fresh, so a
# stale binary is never measured), unless BIN_DIR names a directory holding hycod and hycod-load.
#
# Pinning (rule 2): generator and targets on CPU 0, every proxy process (relay, daemon,
# forwarder, rathole server and client, haproxy) on CPU 1; each runs one worker / thread. The
# latency workloads are measured a second time with the proxies moved to CPU 0 too (everything
# on one CPU), then moved back.
# Records: single-stream Gbit/s (hycod-load bulk, pinned and unpinned; iperf3 when present),
# CPU-seconds per GiB of the proxy processes, 64 B echo p50/p99 at a fixed rate, HTTP 1 KiB p99
# at a fixed rate (both pinnings) and the max req/s at p99 < 5 ms, the 1.5 MB response p50, and
# RSS per idle stream at 10,000 streams (hycod daemon; the SDK listener and rathole client for
# comparison), the listener process's CPU per relayed request, and the io_uring / epoll pair at 1
# and at --many concurrent streams and requests. HTTP over hycod wss is sent to the relay over
# TLS (hycod-load --ca-file).
#
# Open files: the daemon holds three descriptors per idle stream. When the hard RLIMIT_NOFILE
# is too low for --idle and the script may raise it (CAP_SYS_RESOURCE), it raises the soft and
# hard limits for every process it starts; otherwise it caps the idle count and says so.
set -euo pipefail

runs=3 duration=5s warmup=1s http_rate=2000 stream_rate=1000 connections=4 idle=10000
find_duration=2s refine=3 with_peers=0 write=1 quick=0 skip=" " many=1000
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN_DIR:-$root/target/release}
peers=$root/target/peers
command_line="benches/compare.sh $*"
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --http-rate) http_rate=$2; shift 2 ;;
    --stream-rate) stream_rate=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --with-peers) with_peers=1; shift ;;
    --quick) quick=1; runs=1 duration=1s warmup=500ms idle=1000 find_duration=1s refine=1; shift ;;
    --no-write) write=0; shift ;;
    --skip) skip+=" $2 "; shift 2 ;;
    --many) many=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# --- Binaries and peers -------------------------------------------------------------------
if [ -z "${BIN_DIR:-}" ]; then
  echo "building hycod and hycod-load (release; a no-op when up to date)" >&2
  (cd "$root" && cargo build --release -p hycod -p loadtest) >&2
elif [ ! -x "$bin/hycod" ] || [ ! -x "$bin/hycod-load" ]; then
  echo "BIN_DIR=$bin holds no hycod and hycod-load" >&2; exit 2
fi
if [ "$with_peers" = 1 ]; then
  apt_missing=()
  command -v haproxy >/dev/null || apt_missing+=(haproxy)
  command -v iperf3 >/dev/null || apt_missing+=(iperf3)
  command -v node >/dev/null || apt_missing+=(nodejs)
  command -v npm >/dev/null || apt_missing+=(npm)
  if [ ! -x "$peers/bin/rathole" ]; then
    command -v pkg-config >/dev/null || apt_missing+=(pkg-config)
    dpkg -s libssl-dev >/dev/null 2>&1 || apt_missing+=(libssl-dev)
  fi
  if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "installing ${apt_missing[*]} (apt-get)" >&2
    apt-get install -y "${apt_missing[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${apt_missing[@]}" >&2; }
  fi
  if [ ! -x "$peers/bin/rathole" ]; then
    # rathole 0.5.0's lock file pins time 0.3.29, which no longer compiles on current Rust, so
    # the install resolves semver-compatible versions instead of using --locked. Its default
    # features include the websocket transport and TLS (native-tls).
    echo "installing rathole 0.5.0 into $peers (cargo install)" >&2
    cargo install rathole --version 0.5.0 --root "$peers" >&2
  fi
fi
# The Node SDK listener runs from a copy under target/peers, installed from the committed lock
# (`npm ci`) whenever the lock there differs from the checkout's.
sdk_src=$root/benches/peers/node-sdk-listener sdk_dir=$peers/node-sdk-listener sdk=""
if [ "$with_peers" = 1 ] && command -v npm >/dev/null \
    && ! cmp -s "$sdk_src/package-lock.json" "$sdk_dir/package-lock.json" 2>/dev/null; then
  echo "installing the Node SDK listener's packages into $sdk_dir (npm ci)" >&2
  mkdir -p "$sdk_dir" && cp "$sdk_src/package.json" "$sdk_src/package-lock.json" "$sdk_dir/"
  (cd "$sdk_dir" && npm ci --no-audit --no-fund) >&2
fi
if command -v node >/dev/null && [ -d "$sdk_dir/node_modules/hyco-ws" ] \
    && cmp -s "$sdk_src/package-lock.json" "$sdk_dir/package-lock.json"; then
  cp "$sdk_src/listener.js" "$sdk_dir/" && sdk=$sdk_dir/listener.js
fi
rathole=""; [ -x "$peers/bin/rathole" ] && rathole=$peers/bin/rathole
command -v rathole >/dev/null && [ -z "$rathole" ] && rathole=$(command -v rathole)
haproxy=$(command -v haproxy || true)
iperf3=$(command -v iperf3 || true)
skipped() { [[ $skip == *" $1 "* ]]; }
skipped rathole && rathole=""
skipped haproxy && haproxy=""
skipped iperf3 && iperf3=""
skipped sdk && sdk=""

# Open files: the daemon holds three descriptors per idle stream (target, its duplicate kept
# for a reset, rendezvous), the relay two, hycod-load and the target one each. Every process
# started below inherits this shell's limits, so raising them here raises them for all.
nofile_needed=$(( idle * 3 + 400 ))
nofile_wanted=$(( nofile_needed > 65536 ? nofile_needed : 65536 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile_needed" ]; then
  # Raising a hard limit needs CAP_SYS_RESOURCE; a refused raise leaves it as it was.
  if ulimit -Hn "$nofile_wanted" 2>/dev/null; then
    echo "open-file limit raised from $hard to $nofile_wanted (soft and hard)" >&2
  else
    echo "open-file hard limit $hard cannot be raised (no CAP_SYS_RESOURCE)" >&2
  fi
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$idle" -gt $(( (hard - 400) / 3 )) ]; then
  idle=$(( (hard - 400) / 3 ))
  echo "idle streams capped at $idle by the open-file hard limit $hard" >&2
fi
cpu0="" cpu1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then cpu0="taskset -c 0"; cpu1="taskset -c 1"; fi

mkdir -p "$root/target"
work=$(mktemp -d "$root/target/compare.XXXXXX")
pids=() names=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -f "$work"/*.toml "$work"/*.key "$work"/*.pfx "$work"/*.cs
}
trap cleanup EXIT

# start_bg NAME CMD...: runs CMD in the background (log in $work/NAME.log) and records its pid
# in pid_NAME (readiness is probed later).
start_bg() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!) names+=("$name")
  printf -v "pid_$name" %s "$!"
}
# start NAME CMD...: start_bg, then waits for the "listening" line hycod and hycod-load print.
start() {
  local name=$1 pid; shift
  start_bg "$name" "$@"
  pid=${pids[-1]}
  for _ in $(seq 100); do
    grep -q listening "$work/$name.log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$name exited:" >&2; cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name printed no listening line in 10 s:" >&2; cat "$work/$name.log" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen_addr() { grep -m1 '^listening ' "$work/$1.log" | sed -E 's#^listening (on )?([a-z]+://)?##; s#/.*$##'; }
load() { $cpu0 "$bin/hycod-load" "$@"; }
json_ok() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if $2 else 1)" "$1" 2>/dev/null; }

# --- Targets (CPU 0) -----------------------------------------------------------------------
start t_echo $cpu0 "$bin/hycod-load" serve-echo --listen 127.0.0.1:0
start t_bulk $cpu0 "$bin/hycod-load" serve-bulk --listen 127.0.0.1:0
start t_http $cpu0 "$bin/hycod-load" serve-http --listen 127.0.0.1:0
start t_big $cpu0 "$bin/hycod-load" serve-http --listen 127.0.0.1:0 --response-size 1572864
declare -A target=(
  [echo]=$(listen_addr t_echo) [bulk]=$(listen_addr t_bulk)
  [web]=$(listen_addr t_http) [big]=$(listen_addr t_big)
)
if [ -n "$iperf3" ]; then
  iperf_port=$(free_port)
  $cpu0 "$iperf3" -s -B 127.0.0.1 -p "$iperf_port" >"$work/t_iperf.log" 2>&1 &
  pids+=($!) names+=(t_iperf)
  target[iperf]=127.0.0.1:$iperf_port
fi
services=("${!target[@]}")

# --- TLS material (self-signed CA and a localhost / 127.0.0.1 leaf) -------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hycod-bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/leaf.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/leaf.ext" -out "$work/server.pem" 2>/dev/null
openssl pkcs12 -export -inkey "$work/server.key" -in "$work/server.pem" -certfile "$work/ca.pem" \
  -passout pass:bench -out "$work/server.pfx" 2>/dev/null

# --- hycod: relay + daemon + forwarders (CPU 1), plain ws, wss and ws on epoll --------------
key=$(head -c 32 /dev/urandom | base64)
hc_flags=(); for s in "${services[@]}"; do hc_flags+=(--hybrid-connection "$s"); done
# The SDK listener serves sdk_SERVICE on the plain ws relay, next to the daemon's SERVICE.
sdk_flags=(); for s in "${services[@]}"; do sdk_flags+=(--hybrid-connection "sdk_$s"); done
# forwarders SUFFIX URL ENTITY_PREFIX [CA]: fwd_SUFFIX_{bulk,echo,iperf}, one per stream service.
forwarders() {
  local sfx=$1 url=$2 prefix=$3 ca=${4:-} s ca_flag=()
  [ -n "$ca" ] && ca_flag=(--relay-ca-file "$ca")
  for s in bulk echo iperf; do
    [ -n "${target[$s]:-}" ] || continue
    echo "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$key;EntityPath=$prefix$s" >"$work/$prefix$s.cs"
    chmod 600 "$work/$prefix$s.cs"
    start "fwd_${sfx}_$s" "${run[@]}" "$bin/hycod" forward --listen 127.0.0.1:0 --workers 1 \
      --connection-string-file "$work/$prefix$s.cs" --entity "$prefix$s" --relay-url "$url" "${ca_flag[@]}"
  done
}
# hycod_stack SUFFIX RELAY_TLS_FLAGS...: relay_SUFFIX, daemon_SUFFIX, fwd_SUFFIX_{bulk,echo,iperf};
# SUFFIX epoll runs all three on monoio's epoll driver (MONOIO_FORCE_LEGACY_DRIVER=1).
hycod_stack() {
  local sfx=$1; shift
  run=($cpu1); [ "$sfx" = epoll ] && run=(env MONOIO_FORCE_LEGACY_DRIVER=1 $cpu1)
  local extra=(); [ "$sfx" = ws ] && [ -n "$sdk" ] && extra=("${sdk_flags[@]}")
  start "relay_$sfx" "${run[@]}" "$bin/hycod" relay --listen 127.0.0.1:0 --workers 1 \
    --rule "root=$key" "${hc_flags[@]}" "${extra[@]}" "$@"
  local url ca=""
  url=$(grep -o 'wss\?://[^ ]*' "$work/relay_$sfx.log" | head -1)
  printf -v "url_$sfx" %s "$url"
  [ "${url#wss}" != "$url" ] && ca="relay_ca_file = \"$work/ca.pem\""
  # The idle-stream measurement holds ~10,000 streams: above the default [limits] maxima.
  { echo "[runtime]"; echo "workers = 1"
    echo "[limits]"; echo "max_streams_per_hybrid_connection = 100000"
    echo "max_streams_per_worker = 100000"
    for s in "${services[@]}"; do
      local kind=target scheme=tcp; [ "$s" = web ] || [ "$s" = big ] && { kind=http_target; scheme=http; }
      cat <<TOML
[[hybrid_connection]]
name = "$s"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$key;EntityPath=$s"
relay_url = "$url"
$ca
$kind = "$scheme://${target[$s]}$([ $scheme = http ] && echo /)"
TOML
    done; } >"$work/daemon_$sfx.toml"
  chmod 600 "$work/daemon_$sfx.toml"
  start_bg "daemon_$sfx" "${run[@]}" "$bin/hycod" run --config "$work/daemon_$sfx.toml"
  forwarders "$sfx" "$url" "" "$([ -n "$ca" ] && echo "$work/ca.pem")"
}
hycod_stack ws
skipped hycod_wss || hycod_stack wss --tls-cert "$work/server.pem" --tls-key "$work/server.key"
skipped hycod_epoll || hycod_stack epoll

# --- The Node SDK listener (CPU 1) in the daemon's place: same relay, forwarders, targets -----
if [ -n "$sdk" ]; then
  run=($cpu1)
  sdk_args=()
  for s in "${services[@]}"; do
    case $s in
      web|big) sdk_args+=(--http "sdk_$s=http://${target[$s]}") ;;
      *) sdk_args+=(--ws "sdk_$s=${target[$s]}") ;;
    esac
  done
  HYCO_RELAY=$url_ws HYCO_KEY_NAME=root HYCO_KEY=$key start sdk_listener $cpu1 node "$sdk" "${sdk_args[@]}"
  forwarders sdk "$url_ws" sdk_
fi

# --- rathole (CPU 1): websocket and websocket+TLS ------------------------------------------
# rathole_stack NAME TLS(true|false): rathole server + client; ports in port_NAME_SERVICE.
rathole_stack() {
  local name=$1 tls=$2 control
  control=$(free_port)
  { echo "[server]"; echo "bind_addr = \"127.0.0.1:$control\""
    echo "[server.transport]"; echo 'type = "websocket"'
    echo "[server.transport.websocket]"; echo "tls = $tls"
    [ "$tls" = true ] && printf '[server.transport.tls]\npkcs12 = "%s"\npkcs12_password = "bench"\n' "$work/server.pfx"
    for s in "${services[@]}"; do
      local p; p=$(free_port); printf -v "port_${name}_$s" %s "$p"
      printf '[server.services.%s]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$s" "$p"
    done; } >"$work/$name-server.toml"
  { echo "[client]"; echo "remote_addr = \"127.0.0.1:$control\""
    echo "[client.transport]"; echo 'type = "websocket"'
    echo "[client.transport.websocket]"; echo "tls = $tls"
    [ "$tls" = true ] && printf '[client.transport.tls]\ntrusted_root = "%s"\nhostname = "localhost"\n' "$work/ca.pem"
    for s in "${services[@]}"; do
      printf '[client.services.%s]\ntoken = "bench"\nlocal_addr = "%s"\n' "$s" "${target[$s]}"
    done; } >"$work/$name-client.toml"
  TOKIO_WORKER_THREADS=1 start_bg "${name}_server" $cpu1 "$rathole" --server "$work/$name-server.toml"
  TOKIO_WORKER_THREADS=1 start_bg "${name}_client" $cpu1 "$rathole" --client "$work/$name-client.toml"
}
paths=(direct hycod); skipped hycod_wss || paths+=(hycod_wss); skipped hycod_epoll || paths+=(hycod_epoll)
[ -n "$sdk" ] && paths+=(sdk)
if [ -n "$rathole" ]; then
  rathole_stack rathole_ws false
  rathole_stack rathole_wss true
  paths+=(rathole_ws rathole_wss)
fi
if [ -n "$haproxy" ]; then
  { printf 'global\n  nbthread 1\n  maxconn 9000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n'
    for s in "${services[@]}"; do
      p=$(free_port); printf -v "port_haproxy_$s" %s "$p"
      printf 'listen %s\n  bind 127.0.0.1:%s\n  server t %s\n' "$s" "$p" "${target[$s]}"
    done; } >"$work/haproxy.cfg"
  start_bg haproxy $cpu1 "$haproxy" -db -f "$work/haproxy.cfg"
  paths+=(haproxy)
fi

# stream_addr PATH SERVICE: where a TCP client of PATH connects for SERVICE.
stream_addr() {
  case $1 in
    direct) echo "${target[$2]}" ;;
    hycod) listen_addr "fwd_ws_$2" ;;
    hycod_wss) listen_addr "fwd_wss_$2" ;;
    hycod_epoll) listen_addr "fwd_epoll_$2" ;;
    sdk) listen_addr "fwd_sdk_$2" ;;
    *) local v="port_$1_$2"; echo "127.0.0.1:${!v}" ;;
  esac
}
# cpu_pids PATH: the proxy processes charged for a bulk run on PATH.
cpu_pids() {
  case $1 in
    direct) ;;
    hycod) echo "--cpu-pids relay=$pid_relay_ws,daemon=$pid_daemon_ws,forward=$pid_fwd_ws_bulk" ;;
    hycod_wss) echo "--cpu-pids relay=$pid_relay_wss,daemon=$pid_daemon_wss,forward=$pid_fwd_wss_bulk" ;;
    hycod_epoll) echo "--cpu-pids relay=$pid_relay_epoll,daemon=$pid_daemon_epoll,forward=$pid_fwd_epoll_bulk" ;;
    sdk) echo "--cpu-pids relay=$pid_relay_ws,listener=$pid_sdk_listener,forward=$pid_fwd_sdk_bulk" ;;
    rathole_*) local s="pid_$1_server" c="pid_$1_client"; echo "--cpu-pids server=${!s},client=${!c}" ;;
    haproxy) echo "--cpu-pids haproxy=$pid_haproxy" ;;
  esac
}
# service_pids PATH SERVICE: NAME=PID of the proxy processes a stream of SERVICE passes on PATH
# (the forwarder is SERVICE's own), space-separated.
service_pids() {
  local f="" fwd
  case $1 in
    hycod) f="pid_fwd_ws_$2"; echo -n "relay=$pid_relay_ws daemon=$pid_daemon_ws" ;;
    hycod_wss) f="pid_fwd_wss_$2"; echo -n "relay=$pid_relay_wss daemon=$pid_daemon_wss" ;;
    hycod_epoll) f="pid_fwd_epoll_$2"; echo -n "relay=$pid_relay_epoll daemon=$pid_daemon_epoll" ;;
    sdk) f="pid_fwd_sdk_$2"; echo -n "relay=$pid_relay_ws listener=$pid_sdk_listener" ;;
    *) cpu_pids "$1" | sed 's/--cpu-pids //; s/,/ /g'; return ;;
  esac
  fwd=${!f:-}
  if [ -n "$fwd" ]; then echo " forward=$fwd"; else echo; fi
}
# cpu_ns NAME=PID...: "NAME=NS" per process, NS its threads' nanoseconds on a CPU so far
# (/proc/PID/task/*/schedstat: finer than the 10 ms ticks of /proc/PID/stat).
cpu_ns() {
  local np out=()
  for np in "$@"; do
    out+=("${np%%=*}=$(cat /proc/"${np#*=}"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f", n}')")
  done
  echo "${out[*]}"
}
# charged FILE "NAME=PID..." CMD...: runs CMD; FILE gets the CPU of those processes before and
# after it.
charged() {
  local file=$1 named=$2; shift 2
  # shellcheck disable=SC2086
  cpu_ns $named >"$file"
  "$@" || true
  # shellcheck disable=SC2086
  cpu_ns $named >>"$file"
}
# http_target PATH SERVICE: hycod-load http target flags (hycod wss: HTTPS to the relay,
# trusting the bench CA).
http_target() {
  case $1 in
    direct) echo "--direct http://${target[$2]}/" ;;
    hycod) echo "--relay $url_ws --key-name root --key $key --hybrid-connection $2" ;;
    hycod_wss) echo "--relay $url_wss --ca-file $work/ca.pem --key-name root --key $key --hybrid-connection $2" ;;
    hycod_epoll) echo "--relay $url_epoll --key-name root --key $key --hybrid-connection $2" ;;
    sdk) echo "--relay $url_ws --key-name root --key $key --hybrid-connection sdk_$2" ;;
    *) echo "--direct http://$(stream_addr "$1" "$2")/" ;;
  esac
}
# proxy_all: every proxy process started (all but the t_* targets).
proxy_all() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]#t_}" = "${names[$i]}" ]; then echo "${pids[$i]}"; fi
  done
}
# pin_proxies CPU: moves every thread of every proxy process to CPU (taskset -a).
pin_proxies() {
  local p
  for p in $(proxy_all); do taskset -a -p -c "$1" "$p" >/dev/null || echo "cannot move $p to CPU $1" >&2; done
}
# Open-file limits as each process got them (/proc/PID/limits: soft then hard).
nofile_report=""
for i in "${!names[@]}"; do
  lim=$(awk '/^Max open files/ {print $4 "/" $5}' "/proc/${pids[$i]}/limits" 2>/dev/null || echo "?")
  nofile_report+=" ${names[$i]} $lim"
done
echo "open-file limits (soft/hard):$nofile_report; idle streams: $idle" >&2
printf '%s\n' "$nofile_report" >"$work/nofile.txt"

# --- Readiness: a short probe per path and service, retried ---------------------------------
for path in "${paths[@]}"; do
  for _ in $(seq 60); do
    ok=1
    load stream --direct "tcp://$(stream_addr "$path" echo)" --rate 100 --duration 200ms --warmup 0s \
      --json "$work/ready.json" >/dev/null 2>&1 && json_ok "$work/ready.json" 'd["n"] and not d["errors"]' || ok=0
    # rathole 0.5's websocket transport resets bulk streams (see compare_report.py); its bulk
    # service is the same tunnel as echo, so echo and HTTP probe it.
    [ "$ok" = 1 ] && [ "${path#rathole}" = "$path" ] && { load bulk --direct "tcp://$(stream_addr "$path" bulk)" --duration 100ms --warmup 0s \
      --json "$work/ready.json" >/dev/null 2>&1 && json_ok "$work/ready.json" 'd["bytes"] and not d["errors"]' || ok=0; }
    if [ "$ok" = 1 ] && t=$(http_target "$path" web); then
      # shellcheck disable=SC2086
      load http $t --rate 100 --duration 200ms --warmup 0s --json "$work/ready.json" >/dev/null 2>&1 \
        && json_ok "$work/ready.json" 'd["n"] and not d["errors"]' || ok=0
    fi
    [ "$ok" = 1 ] && break
    sleep 0.2
  done
  [ "$ok" = 1 ] || { echo "path $path never became ready; logs in $work" >&2; exit 1; }
done

# The I/O driver each hycod process reported at start-up ("driver=..." in its log).
for i in "${!names[@]}"; do
  d=$(grep -o -m1 'driver="\?[a-z_]*' "$work/${names[$i]}.log" 2>/dev/null | sed 's/.*"//; s/.*=//') || true
  [ -n "$d" ] && echo "${names[$i]} $d"
done >"$work/drivers.txt"

# --- Measurements: every round runs every path in turn (A/B/C… alternation) ----------------
echo "# $(date -u +%F\ %H:%MZ) $(uname -srm), $(nproc) CPUs; $command_line; paths: ${paths[*]}" >&2
for i in $(seq "$runs"); do
  echo "round $i/$runs" >&2
  for path in "${paths[@]}"; do
    # shellcheck disable=SC2046
    load bulk --direct "tcp://$(stream_addr "$path" bulk)" --duration "$duration" --warmup "$warmup" \
      $(cpu_pids "$path") --json "$work/bulk-$path-$i.json" >/dev/null || true
  done
  for path in "${paths[@]}"; do
    # shellcheck disable=SC2046
    "$bin/hycod-load" bulk --direct "tcp://$(stream_addr "$path" bulk)" --duration "$duration" \
      --warmup "$warmup" $(cpu_pids "$path") --json "$work/bulkfree-$path-$i.json" >/dev/null || true
  done
  if [ -n "$iperf3" ]; then
    for path in "${paths[@]}"; do
      a=$(stream_addr "$path" iperf)
      charged "$work/iperfcpu-$path-$i.txt" "$(service_pids "$path" iperf)" \
        $cpu0 "$iperf3" -c "${a%:*}" -p "${a##*:}" -t "${duration%s}" -J --logfile "$work/iperf-$path-$i.json"
    done
  fi
  for path in "${paths[@]}"; do
    load stream --direct "tcp://$(stream_addr "$path" echo)" --rate "$stream_rate" --size 64 \
      --connections "$connections" --duration "$duration" --warmup "$warmup" \
      --json "$work/echo-$path-$i.json" >/dev/null || true
  done
  for path in "${paths[@]}"; do
    t=$(http_target "$path" web) || continue
    # shellcheck disable=SC2086
    charged "$work/httpcpu-$path-$i.txt" "$(service_pids "$path" web)" load http $t --rate "$http_rate" --body-size 1024 \
      --connections "$connections" --duration "$duration" --warmup "$warmup" \
      --json "$work/http-$path-$i.json" >/dev/null
    t=$(http_target "$path" big)
    # shellcheck disable=SC2086
    load http $t --method GET --body-size 0 --rate 20 --connections 2 \
      --duration "$duration" --warmup "$warmup" --json "$work/big-$path-$i.json" >/dev/null || true
  done
  # io_uring against epoll: the same hycod at 1 and at --many concurrent streams and requests,
  # closed loop (each connection sends its next message when the answer is back), CPU charged
  # to relay, daemon and forwarder.
  if ! skipped many; then
    for level in 1 "$many"; do
      for path in hycod hycod_epoll; do
        [[ " ${paths[*]} " == *" $path "* ]] || continue
        charged "$work/conc_stream_${level}cpu-$path-$i.txt" "$(service_pids "$path" echo)" load stream --direct \
          "tcp://$(stream_addr "$path" echo)" --closed-loop --size 64 --connections "$level" \
          --duration "$duration" --warmup "$warmup" --json "$work/conc_stream_$level-$path-$i.json" >/dev/null
        t=$(http_target "$path" web)
        # shellcheck disable=SC2086
        charged "$work/conc_http_${level}cpu-$path-$i.txt" "$(service_pids "$path" web)" load http $t --closed-loop \
          --body-size 1024 --connections "$level" --duration "$duration" --warmup "$warmup" \
          --json "$work/conc_http_$level-$path-$i.json" >/dev/null
      done
    done
  fi
  # Latency with everything on CPU 0 (rule 2, second half): the proxies join the generator and
  # the targets for the echo and HTTP 1 KiB runs, then go back to CPU 1.
  if [ -n "$cpu1" ]; then
    pin_proxies 0
    for path in "${paths[@]}"; do
      load stream --direct "tcp://$(stream_addr "$path" echo)" --rate "$stream_rate" --size 64 \
        --connections "$connections" --duration "$duration" --warmup "$warmup" \
        --json "$work/echo_cpu0-$path-$i.json" >/dev/null || true
      t=$(http_target "$path" web) || continue
      # shellcheck disable=SC2086
      load http $t --rate "$http_rate" --body-size 1024 --connections "$connections" \
        --duration "$duration" --warmup "$warmup" --json "$work/http_cpu0-$path-$i.json" >/dev/null || true
    done
    pin_proxies 1
  fi
done
echo "max req/s at p99 < 5 ms" >&2
for path in "${paths[@]}"; do
  t=$(http_target "$path" web) || continue
  # shellcheck disable=SC2086
  load http $t --rate 500 --body-size 1024 --connections 32 --duration "$find_duration" \
    --warmup 500ms --find-max --max-p99 5ms --refine-steps "$refine" --json "$work/max-$path.json" >/dev/null || true
done
echo "idle streams: $idle" >&2
load idle --relay "$url_ws" --key-name root --key "$key" --hybrid-connection echo \
  --connections "$idle" --rss-pid "$pid_daemon_ws" --json "$work/idle-hycod.json" >/dev/null || true
if [ -n "$sdk" ]; then
  load idle --relay "$url_ws" --key-name root --key "$key" --hybrid-connection sdk_echo \
    --connections "$idle" --rss-pid "$pid_sdk_listener" --json "$work/idle-sdk.json" >/dev/null || true
fi
if [ -n "$rathole" ]; then
  load idle --direct "tcp://$(stream_addr rathole_ws echo)" --connections "$idle" \
    --rss-pid "$pid_rathole_ws_client" --json "$work/idle-rathole_ws.json" >/dev/null || true
fi

# --- Tables ---------------------------------------------------------------------------------
python3 "$root/benches/compare_report.py" --work "$work" --runs "$runs" --paths "${paths[@]}" \
  --command "$command_line" --stream-rate "$stream_rate" --http-rate "$http_rate" \
  --connections "$connections" --duration "$duration" --idle "$idle" \
  --nofile "$(ulimit -Hn)" --many "$many" \
  $([ -n "$cpu0" ] && echo --pinned) $([ "$write" = 1 ] && echo --write "$root/docs/performance.md")
echo "raw JSON: $work" >&2
