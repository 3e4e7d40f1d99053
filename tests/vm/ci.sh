#!/usr/bin/env bash
# Runs `codetta up` (3 servers as processes, the root volume replicated on all three) in a
# temporary directory on free ports and the kernel-client script against it in the nfs-vm
# guest (mounted hard). When the guest prints "@@ kill-point" (just before its tar), the
# second server is SIGKILLed; at "@@ restart-point" it is started again. Exits with the
# script's status.
#
# The daemon keeps its default of taking NFS calls only from privileged source ports: the
# guest's connections reach it through tests/vm/privileged-relay.py, which gives back the
# privileged port slirp's address translation takes away (binding one needs root; without
# root the daemon is started with --allow-unprivileged-ports instead, and says so).
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
cargo build --locked --bin codetta
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# A base port with it and the next two free for UDP and TCP (one per server).
free_ports3() {
  python3 - <<'PY'
import random, socket
def free(p):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True
while True:
    base = random.randint(20000, 60000)
    if all(free(base + i) for i in range(3)):
        print(base)
        break
PY
}
dir=$(mktemp -d)
port=${CODETTA_VM_PORT:-$(free_port)}
server_port=$(free_ports3)
up_flags=()
if [ "$(id -u)" != 0 ]; then
  echo "not root: no privileged source ports; the daemon takes calls from any port"
  up_flags=(--allow-unprivileged-ports)
fi
./target/debug/codetta up --dir "$dir" --nfs-port "$port" --server-port "$server_port" "${up_flags[@]}" >"$dir/up.log" 2>&1 &
up=$!
restarted=
relay=
cleanup() {
  [ -n "$restarted" ] && kill "$restarted" 2>/dev/null || true
  [ -n "${vclient:-}" ] && kill "$vclient" 2>/dev/null || true
  [ -n "$relay" ] && kill "$relay" 2>/dev/null || true
  kill "$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true
  if [ -n "${CODETTA_VM_KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
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
# Two more volumes on all three servers, with mount points made through the client
# daemon's endpoint; the guest switches the root volume with "@@ set-root NAME".
admin="$dir/admin.toml"
for v in proj alt; do
  ./target/debug/codetta volume create "$v" --replicas s1,s2,s3 --admin "$admin"
done
./target/debug/codetta mkmount /proj proj --nfs-port "$port" --admin "$admin"
./target/debug/codetta mkmount /altm alt --nfs-port "$port" --admin "$admin"
guest_port=$port
if [ ${#up_flags[@]} = 0 ]; then
  guest_port=$(free_port)
  python3 tests/vm/privileged-relay.py "$guest_port" "$port" >"$dir/relay.log" 2>&1 &
  relay=$!
  for _ in $(seq 1 50); do
    grep -q "privileged-relay:" "$dir/relay.log" 2>/dev/null && break
    sleep 0.1
  done
  echo "the guest reaches the daemon through a privileged-port relay on $guest_port"
fi
# A second client daemon of the cluster, as its own process, for the guest's check of a
# daemon crash before COMMIT: SIGKILLed at "@@ kill-client" and started again.
vport=$(free_port)
sed -e "s|^data_dir = .*|data_dir = \"$dir/vclient\"|" \
  -e "s|^nfs_listen = .*|nfs_listen = \"127.0.0.1:$vport\"|" \
  -e "/^require_privileged_port/d" "$dir/client.toml" |
  sed "1a require_privileged_port = false" >"$dir/vclient.toml"
vclient=
start_vclient() {
  ./target/debug/codetta client --config "$dir/vclient.toml" >>"$dir/vclient.log" 2>&1 &
  vclient=$!
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $vport), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "host: the second client daemon did not start"; tail -n 20 "$dir/vclient.log"
}
start_vclient
# Test programs for the guest (static: the guest has busybox only).
files=()
mkdir -p "$dir/files"
if gcc -static -O2 -o "$dir/files/seekdir" tests/vm/seekdir.c 2>"$dir/gcc.log" &&
  gcc -static -O2 -o "$dir/files/unixsock" tests/vm/unixsock.c 2>>"$dir/gcc.log" &&
  gcc -static -O2 -o "$dir/files/unstable" tests/vm/unstable.c 2>>"$dir/gcc.log"; then
  files=(--files "$dir/files")
else
  echo "no static C toolchain: the guest runs without tests/vm/seekdir.c, unixsock.c and unstable.c"; cat "$dir/gcc.log"
fi
# "processes P1, P2, P3" in the banner: the servers' pids.
victim=$(sed -n 's/.*(processes \([0-9]*\), \([0-9]*\), .*/\2/p' "$dir/up.log" | head -n 1)
echo "servers up; s2 (pid ${victim:-?}) is killed during the guest's tar"
status=125
while IFS= read -r line; do
  case $line in
    "@@ exit "*) status=${line#@@ exit }; continue ;;
  esac
  printf '%s\n' "$line"
  case $line in
    *"@@ kill-point"*)
      if [ -n "$victim" ]; then kill -9 "$victim" && echo "host: SIGKILLed s2 (pid $victim)"; fi ;;
    "@@ set-root "*)
      ./target/debug/codetta volume set-root "${line#@@ set-root }" --admin "$admin" ;;
    *"@@ kill-client"*)
      if [ -n "$vclient" ]; then
        kill -9 "$vclient" && echo "host: SIGKILLed the second client daemon (pid $vclient)"
        wait "$vclient" 2>/dev/null || true
        start_vclient && echo "host: second client daemon started again (pid $vclient)"
      fi ;;
    *"@@ restart-point"*)
      ./target/debug/codetta server --config "$dir/s2.toml" 2>>"$dir/s2-restarted.log" &
      restarted=$!
      echo "host: s2 started again (pid $restarted)" ;;
  esac
done < <(bash tests/vm/run.sh "$guest_port" "${files[@]}" -- "$vport"; echo "@@ exit $?")
kill "$up" 2>/dev/null || true
wait "$up" 2>/dev/null || true
grep -o "client update stats: .*" "$dir/up.log" || true
if [ "$status" != 0 ]; then
  echo "kernel-client script failed ($status); codetta up log:"
  tail -n 50 "$dir/up.log"
fi
exit "$status"
