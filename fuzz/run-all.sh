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
  cargo fuzz run -s none "$target" -- -max_total_time="$seconds" 2>&1 \
    | grep -E '^(#[0-9]+ *DONE|==[0-9]+== ERROR|SUMMARY|Done [0-9]+ runs)' || true
  # grep hides libFuzzer's progress lines; PIPESTATUS keeps the fuzzer's own exit status.
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    echo "fuzz target $target failed; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
