#!/usr/bin/env bash
# Builds every cargo-fuzz target without a sanitizer (`-s none`, which works on a stable
# toolchain) and runs each for SECONDS seconds; a crash fails the script and leaves its input
# in fuzz/artifacts/<target>/. Usage: fuzz/run-all.sh SECONDS
set -euo pipefail
seconds="${1:?usage: fuzz/run-all.sh SECONDS}"
cd "$(dirname "$0")"
cargo fuzz build -s none
for target in $(cargo fuzz list); do
  echo "== $target: ${seconds}s"
  log="$(mktemp)"
  status=0
  cargo fuzz run -s none "$target" -- -max_total_time="$seconds" >"$log" 2>&1 || status=$?
  # libFuzzer's progress lines are dropped; its summary, and any crash report, are kept.
  grep -aE '^(#[0-9]+ *DONE|Done [0-9]+ runs|==[0-9]+== ERROR|SUMMARY|thread .* panicked)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    echo "fuzz target $target failed; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
  rm -f "$log"
done
