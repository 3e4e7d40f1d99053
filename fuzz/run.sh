#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz on the
# stable toolchain (`--sanitizer none`: libFuzzer coverage without a sanitizer; a panic is
# the finding). Installs cargo-fuzz if it is missing. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  echo "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run "$target" --sanitizer none -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target found a failure (artifacts in fuzz/artifacts/$target)"
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
done
