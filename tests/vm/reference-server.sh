#!/usr/bin/env bash
# Check tests/vm/kernel-client.sh itself against a known-good NFSv3 server:
# nfs-ganesha with its VFS backend exporting a scratch directory. When this
# passes and tests/vm/run.sh fails against Codetta, the fault is Codetta's,
# not the script's.
#
#   tests/vm/reference-server.sh [EXTRA nfs-vm OPTIONS...]
#
# Needs root (private mount and network namespaces; nothing on the host is
# installed or changed) and Debian package lists: the packages are fetched
# with `apt-get download` and unpacked into a cache
# (${XDG_CACHE_HOME:-~/.cache}/codetta-ganesha). rpcbind and ganesha run
# inside a new network namespace together with nfs-vm's QEMU, so they bind
# no host ports and are stopped when the run ends.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/codetta-ganesha
root=$cache/root
NFS_PORT=12049 MNT_PORT=12050

if [[ ${1:-} != --inside ]]; then
  [[ $EUID -eq 0 ]] || { echo "$0: needs root (unshare)" >&2; exit 125; }
  if [[ ! -x $root/usr/bin/ganesha.nfsd || ! -e $root/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]]; then
    echo "$0: fetching nfs-ganesha, its VFS backend and rpcbind into $cache" >&2
    rm -rf "$cache"; mkdir -p "$cache/debs"
    apt-cache show nfs-ganesha >/dev/null 2>&1 || apt-get update -qq
    pkgs=$(apt-get install -s --no-install-recommends nfs-ganesha nfs-ganesha-vfs rpcbind 2>/dev/null | awk '/^Inst /{print $2}')
    # shellcheck disable=SC2086
    (cd "$cache/debs" && apt-get download -q nfs-ganesha nfs-ganesha-vfs rpcbind $pkgs 2>&1 | grep -v unsandboxed >&2 || true)
    for d in "$cache"/debs/*.deb; do dpkg-deb -x "$d" "$root"; done
    rm -rf "$cache/debs"
  fi
  exec unshare -mn --propagation private "$0" --inside "$@"
fi
shift   # --inside: now in private mount + network namespaces

lib=/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$root$lib:$root/usr/lib/ganesha
run=$(mktemp -d)
export_dir=$run/export
mkdir -p "$export_dir" "$run/ov"
chmod 755 "$run" "$export_dir"
ip link set lo up
# rpcbind wants its own /run and a user "_rpc"; libnfsidmap loads plugins
# from a fixed directory: provide all three in this namespace only.
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind
if ! getent passwd _rpc >/dev/null; then
  { cat /etc/passwd; echo '_rpc:x:108:65534::/run/rpcbind:/usr/sbin/nologin'; } >"$run/passwd"
  mount --bind "$run/passwd" /etc/passwd
fi
if [[ ! -d $lib/libnfsidmap ]]; then
  cp -r "$root$lib/libnfsidmap" "$run/ov/"
  mount -t overlay overlay -o "lowerdir=$run/ov:$lib" "$lib"
fi
printf '[General]\nDomain = localdomain\n[Translation]\nMethod = nsswitch\n' >"$run/idmapd.conf"
cat >"$run/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  NFS_Port = $NFS_PORT; MNT_Port = $MNT_PORT; NLM_Port = 12051; Rquota_Port = 12052;
  Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; Protocols = 3;
  Plugins_Dir = "$root$lib/ganesha";
}
NFSV4 { Graceless = true; IdmapConf = "$run/idmapd.conf"; Only_Numeric_Owners = true; }
EXPORT {
  Export_Id = 1; Path = $export_dir; Pseudo = /export; Protocols = 3; Transports = TCP;
  Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF

pids=()
stop() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$run"; }
trap stop EXIT
"$root/sbin/rpcbind" -f >"$run/rpcbind.log" 2>&1 & pids+=($!)
sleep 1
"$root/usr/bin/ganesha.nfsd" -F -f "$run/ganesha.conf" -L "$run/ganesha.log" -p "$run/ganesha.pid" >"$run/ganesha.out" 2>&1 & pids+=($!)
for _ in $(seq 60); do ss -ltn | grep -q ":$NFS_PORT " && break; sleep 1; done
if ! ss -ltn | grep -q ":$NFS_PORT "; then
  echo "$0: ganesha did not start:" >&2
  grep -E 'CRIT|MAJ|FATAL' "$run/ganesha.log" | grep -v DBUS | tail -n 5 >&2 || true
  exit 125
fi
rc=0
"$here/run.sh" "$NFS_PORT" --mountport "$MNT_PORT" --export "$export_dir" "$@" || rc=$?
exit $rc
