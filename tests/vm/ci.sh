#!/usr/bin/env bash
# Runs `codetta up` in a temporary directory on free ports and the kernel-client script
# against it in the nfs-vm guest (mounted hard). Exits with the script's status.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
cargo build --locked --bin codetta
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
port=${CODETTA_VM_PORT:-$(free_port)}
server_port=$(free_port)
./target/debug/codetta up --dir "$dir" --nfs-port "$port" --server-port "$server_port" >"$dir/up.log" 2>&1 &
up=$!
cleanup() { kill "$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$up" 2>/dev/null; then break; fi
  if grep -q "Codetta is up" "$dir/up.log" 2>/dev/null; then ready=1; break; fi
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "codetta up did not start:"; tail -n 30 "$dir/up.log"; exit 1
fi
status=0
bash tests/vm/run.sh "$port" || status=$?
kill "$up" 2>/dev/null || true
wait "$up" 2>/dev/null || true
grep -o "client update stats: .*" "$dir/up.log" || true
if [ "$status" != 0 ]; then
  echo "kernel-client script failed ($status); codetta up log:"
  tail -n 50 "$dir/up.log"
fi
exit "$status"
