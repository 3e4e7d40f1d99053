#!/usr/bin/env bash
# Runs `codetta up` in a temporary directory and the kernel-client script against it in
# the nfs-vm guest (mounted hard). Exits with the script's status.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
cargo build --locked --bin codetta
dir=$(mktemp -d)
port=${CODETTA_VM_PORT:-12049}
./target/debug/codetta up --dir "$dir" --nfs-port "$port" --server-port 17410 >"$dir/up.log" 2>&1 &
up=$!
cleanup() { kill "$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.2
done
status=0
bash tests/vm/run.sh "$port" || status=$?
if [ "$status" != 0 ]; then
  echo "kernel-client script failed ($status); codetta up log:"
  tail -n 50 "$dir/up.log"
fi
exit "$status"
