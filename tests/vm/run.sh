#!/bin/sh
# Run tests/vm/kernel-client.sh against a Codetta client daemon whose NFSv3
# endpoint listens on the host's 127.0.0.1:PORT, through the Linux kernel NFS
# client in an nfs-vm guest (hard mount). Exit status: the script's (0 = all
# checks passed), or nfs-vm's own (32 mount failed, 33 unmount failed,
# 124 timeout, 125 nfs-vm/QEMU error); see shared/tools/nfs-vm/README.md.
#
#   tests/vm/run.sh PORT [EXTRA nfs-vm OPTIONS...] [-- SCRIPT ARGUMENTS...]
#
# The script's first argument, if given, is the port of a second client daemon the host
# kills and restarts at "@@ kill-client" (tests/vm/ci.sh does).
# The guest's connections reach PORT from ordinary source ports (slirp's address
# translation): either the daemon accepts unprivileged ports
# (require_privileged_port = false) or PORT is tests/vm/privileged-relay.py in front of
# it, as tests/vm/ci.sh does.
# nfs-vm is looked up beside the repository (shared/ next to the clone, as in
# CI); NFS_VM overrides its path.
set -u
if [ $# -lt 1 ]; then
  echo "usage: $0 PORT [nfs-vm options...]" >&2
  exit 2
fi
port=$1; shift
case $port in '' | *[!0-9]*) echo "$0: bad port '$port'" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || top=$(cd "$here/../.." && pwd)
nfsvm=${NFS_VM:-$top/../shared/tools/nfs-vm/nfs-vm}
if [ ! -e "$nfsvm" ]; then
  echo "$0: nfs-vm not found at $nfsvm (set NFS_VM)" >&2
  exit 125
fi

# nfs-vm's options, the script, then the script's arguments (those after "--"): the
# arguments are rotated through "$@" so each keeps its quoting.
n=$#; i=0; placed=
while [ "$i" -lt "$n" ]; do
  a=$1; shift; i=$((i + 1))
  if [ -z "$placed" ] && [ "$a" = "--" ]; then
    set -- "$@" "$here/kernel-client.sh"; placed=1
  else
    set -- "$@" "$a"
  fi
done
[ -n "$placed" ] || set -- "$@" "$here/kernel-client.sh"
# bash explicitly: shared/ may be copied without execute bits
bash "$nfsvm" --port "$port" --opts hard --timeout 600 "$@"
rc=$?
echo "tests/vm/run.sh: kernel-client exit status $rc"
exit $rc
