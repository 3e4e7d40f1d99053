#!/bin/sh
# Codetta seen through the Linux kernel NFSv3 client.
#
# Run by nfs-vm inside its guest with busybox sh, cwd = the NFS mount (/mnt,
# mounted "hard"): see tests/vm/run.sh. Works in a fresh directory of the
# mount and removes it at the end. Prints one PASS/FAIL line per check and
# "ALL PASS" at the end; exits 1 if any check failed.
#
# Can also be run by hand in any directory (then drop_caches may be refused
# and the non-root permission checks are skipped outside the nfs-vm guest).
set -u
export TZ=UTC0 LC_ALL=C
umask 022

pass=0 fail=0
ok()   { pass=$((pass + 1)); echo "PASS: $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL: $*"; }
note() { echo "note: $*"; }
# check DESCRIPTION CMD [ARGS...]: run the command, PASS if it succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}
# fails DESCRIPTION CMD...: PASS if the command fails
fails() { d=$1; shift; if "$@" 2>/dev/null; then bad "$d (succeeded)"; else ok "$d"; fi; }
# fails_with DESCRIPTION MESSAGE CMD...: PASS if the command fails saying MESSAGE
# (the errno's text: "Permission denied" is EACCES, "Operation not permitted" EPERM)
fails_with() {
  d=$1; want=$2; shift 2
  if out=$("$@" 2>&1); then bad "$d (succeeded)"; return; fi
  case $out in *"$want"*) ok "$d" ;; *) bad "$d (said: $out)" ;; esac
}
# drop the guest's page, dentry and inode caches so reads go to the server
drop() {
  sync
  { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || {
    [ -n "${drop_warned:-}" ] || note "cannot write /proc/sys/vm/drop_caches (reads may come from cache)"
    drop_warned=1
  }
}
size() { stat -c %s "$1"; }
md5() { md5sum <"$1" | cut -d' ' -f1; }
# count the NUL bytes missing from FILE: prints how many bytes are not zero
nonzero() { tr -d '\000' <"$1" | wc -c | tr -d ' '; }
have() { busybox --list 2>/dev/null | grep -qx "$1" || command -v "$1" >/dev/null 2>&1; }

w=kc.$(date +%s).$$
tmp=/tmp/kc.$$
rm -rf "$tmp"; mkdir -p "$tmp"
echo "kernel-client test in $(pwd)/$w"
grep " $(pwd) " /proc/mounts 2>/dev/null | cut -d' ' -f1-4 | cut -c1-200

# ---------------------------------------------------------------- ls ---
check "ls of the mount root" sh -c 'ls -la >/dev/null'
if ! mkdir "$w" || ! cd "$w"; then bad "mkdir/cd work directory $w"; echo "summary: $pass passed, $fail failed"; exit 1; fi
ok "mkdir work directory"
check "ls shows the work directory" sh -c "ls .. | grep -qx '$w'"
check_eq "ls of the empty directory" "" "$(ls -A)"

# ------------------------------------------------- echo / cat round trip ---
msg="hello codetta $w"
echo "$msg" >hello.txt
check_eq "echo/cat round trip" "$msg" "$(cat hello.txt)"
echo "second line" >>hello.txt
check_eq "append (>>) gives 2 lines" 2 "$(wc -l <hello.txt | tr -d ' ')"
drop
check_eq "content after drop_caches" "$msg" "$(head -n 1 hello.txt)"
check "ls shows the new file" sh -c 'ls | grep -qx hello.txt'
: >empty
check_eq "empty file has size 0" 0 "$(size empty)"

# ------------------------------------------------------- 64 MiB dd + md5 ---
dd if=/dev/urandom of="$tmp/big" bs=1M count=64 2>/dev/null
# df (FSSTAT) reports the servers' disk (the host's, here): the first big file of a fresh
# cluster takes room there (three replicas on one disk), so "Available" falls by at least
# its size.
avail() { df -k . | awk 'NR == 2 { print $4 }'; }
before=$(avail)
check "dd 64 MiB into the mount (conv=fsync)" dd if="$tmp/big" of=big.bin bs=1M conv=fsync 2>/dev/null
after=$(avail)
check "df's available space falls by at least 64 MiB ($before -> $after KiB)" test $((before - after)) -ge 65536
check "df shows no fixed 1 TiB" test "$(df -k . | awk 'NR == 2 { print $2 }')" != 1073741824
check_eq "size 67108864" 67108864 "$(size big.bin)"
drop
check_eq "64 MiB md5 after drop_caches" "$(md5 "$tmp/big")" "$(md5 big.bin)"
# overwrite one 4 KiB block in the middle and one across a 1 MiB boundary
dd if=/dev/urandom of="$tmp/patch" bs=4096 count=2 2>/dev/null
dd if="$tmp/patch" of="$tmp/big" bs=4096 count=1 seek=5000 conv=notrunc 2>/dev/null
dd if="$tmp/patch" of="$tmp/big" bs=1 skip=4096 count=4096 seek=$((3 * 1048576 - 2048)) conv=notrunc 2>/dev/null
dd if="$tmp/patch" of=big.bin bs=4096 count=1 seek=5000 conv=notrunc,fsync 2>/dev/null &&
  dd if="$tmp/patch" of=big.bin bs=1 skip=4096 count=4096 seek=$((3 * 1048576 - 2048)) conv=notrunc,fsync 2>/dev/null
check_eq "small overwrites keep the size" 67108864 "$(size big.bin)"
drop
check_eq "md5 after small overwrites" "$(md5 "$tmp/big")" "$(md5 big.bin)"
check "rm 64 MiB file" rm big.bin
rm -f "$tmp/big" "$tmp/patch"

# ------------------------------------------------------------ mkdir -p ---
check "mkdir -p a/b/c/d" mkdir -p a/b/c/d
check "nested directory exists" test -d a/b/c/d
check "mkdir -p on existing path" mkdir -p a/b/c/d
fails "mkdir of an existing directory fails" mkdir a/b

# ------------------------------------------------------------- mv ---
echo one >a/f1
echo two >a/b/target
check "mv a file across directories" mv a/f1 a/b/c/moved
check "source name gone" test ! -e a/f1
check_eq "moved file content" one "$(cat a/b/c/moved)"
check "mv over an existing file" mv a/b/c/moved a/b/target
check_eq "replaced file content" one "$(cat a/b/target)"
check "renamed-over source gone" test ! -e a/b/c/moved
check "mv (rename) a directory" mv a/b/c a/cc
check "renamed directory keeps its child" test -d a/cc/d
check "old directory name gone" test ! -e a/b/c
drop
check_eq "ls after renames" "b cc" "$(ls a | tr '\n' ' ' | sed 's/ $//')"

# -------------------------------------------------------- rm / rmdir ---
check "rm" rm a/b/target
check "removed file gone" test ! -e a/b/target
fails "rm of a missing file fails" rm a/b/target
check "rmdir" rmdir a/cc/d
check "removed directory gone" test ! -e a/cc/d
fails "rmdir of a non-empty directory fails" rmdir a
check "non-empty directory still there" test -d a/b

# --------------------------------------------------------- symlinks ---
check "ln -s" ln -s hello.txt link
check "symlink is a link" test -L link
check_eq "readlink" hello.txt "$(readlink link)"
check_eq "read through the symlink" "$msg" "$(head -n 1 link)"
check "ln -s dangling target" ln -s no/such/file dangling
check_eq "readlink of a dangling link" no/such/file "$(readlink dangling)"
check "dangling link does not resolve" test ! -e dangling
check "ln -s to a directory" ln -s a/b dirlink
check "path through a directory symlink" test -d dirlink/.
drop
check_eq "readlink after drop_caches" hello.txt "$(readlink link)"
check "rm of a symlink keeps its target" sh -c 'rm link && test ! -L link && test -f hello.txt'

# ---------------------------------------------------------- chmod ---
check "chmod 600" chmod 600 hello.txt
check_eq "stat %a shows 600" 600 "$(stat -c %a hello.txt)"
check "chmod 755 on a directory" chmod 755 a
check_eq "directory mode 755" 755 "$(stat -c %a a)"
chmod 640 hello.txt
drop
check_eq "mode 640 after drop_caches" 640 "$(stat -c %a hello.txt)"

# ---------------------------------------------------------- touch ---
# busybox touch -d takes "YYYY-MM-DD hh:mm:ss"; TZ=UTC0 above
check "touch -d '2001-02-03 04:05:06'" touch -d '2001-02-03 04:05:06' hello.txt
check_eq "stat %Y shows 981173106" 981173106 "$(stat -c %Y hello.txt)"
check "touch -d on a new file" touch -d '2030-01-01 00:00:00' stamp
check_eq "new file mtime 1893456000" 1893456000 "$(stat -c %Y stamp)"
drop
check_eq "mtime after drop_caches" 981173106 "$(stat -c %Y hello.txt)"
echo more >>stamp
check "a write updates mtime" test "$(stat -c %Y stamp)" -ne 1893456000

# -------------------------------------------------------- truncate ---
if have truncate; then
  grow() { truncate -s "$2" "$1"; }
else
  note "no truncate applet: using dd seek=SIZE count=0"
  grow() { dd if=/dev/null of="$1" bs=1 seek="$2" count=0 2>/dev/null; }
fi
printf 'abcdefghij' >tr.bin
check "truncate: grow to 100000" grow tr.bin 100000
check_eq "grown size" 100000 "$(size tr.bin)"
check_eq "head kept" abcdefghij "$(head -c 10 tr.bin)"
tail -c +11 tr.bin >"$tmp/tail"
check_eq "grown bytes count" 99990 "$(size "$tmp/tail")"
check_eq "grown bytes read as zeros" 0 "$(nonzero "$tmp/tail")"
check "truncate: shrink to 4" grow tr.bin 4
check_eq "shrunk size" 4 "$(size tr.bin)"
check "truncate: grow again to 8192" grow tr.bin 8192
drop
check_eq "regrown size after drop_caches" 8192 "$(size tr.bin)"
check_eq "bytes past the old end are zeros" "abcd 0" "$(head -c 4 tr.bin) $(tail -c +5 tr.bin | tr -d '\000' | wc -c | tr -d ' ')"
check "truncate to 0" grow tr.bin 0
check_eq "size 0" 0 "$(size tr.bin)"
# 64-bit offsets: a byte written past 4 GiB into a sparse file
off=$((4 * 1024 * 1024 * 1024 + 12345))
check "write at offset 4 GiB + 12345" sh -c "printf XYZ | dd of=sparse.bin bs=1 seek=$off conv=notrunc 2>/dev/null"
check_eq "sparse size" $((off + 3)) "$(size sparse.bin)"
drop
check_eq "read back past 4 GiB" XYZ "$(dd if=sparse.bin bs=1 skip=$off count=3 2>/dev/null)"
check_eq "hole before it reads as zeros" 0 "$(dd if=sparse.bin bs=4096 skip=$((off / 4096 - 1)) count=1 2>/dev/null | tr -d '\000' | wc -c | tr -d ' ')"
check "rm sparse file" rm sparse.bin

# ------------------------------------------------------------ find ---
mkdir -p fd/x/y fd/z
for f in fd/1 fd/2 fd/x/3 fd/x/y/4 fd/x/y/5 fd/z/6; do echo "$f" >"$f"; done
ln -s 1 fd/l1
check_eq "find -type f counts 6" 6 "$(find fd -type f | wc -l | tr -d ' ')"
check_eq "find -type d counts 4" 4 "$(find fd -type d | wc -l | tr -d ' ')"
check_eq "find -type l counts 1" 1 "$(find fd -type l | wc -l | tr -d ' ')"
check_eq "find -name" fd/x/y/4 "$(find fd -name 4)"
drop
check_eq "find lists everything after drop_caches" 11 "$(find fd | wc -l | tr -d ' ')"
check "rm -rf small tree" rm -rf fd
check "small tree gone" test ! -e fd

# ------------------------------------------------------------- tar ---
# A source tree in /tmp: 200 files of varied sizes (0 B .. ~300 KiB, some
# at block boundaries) over nested directories, some modes, a symlink, an
# empty directory and a name with a space.
src=$tmp/src out=$tmp/out
mkdir -p "$src" "$out"
i=0
while [ $i -lt 200 ]; do
  d=$src/d$((i % 7))/e$((i % 3))
  [ $((i % 5)) -eq 0 ] && d=$d/f$((i % 4))
  mkdir -p "$d"
  case $((i % 10)) in
    0) n=0 ;;
    1) n=4096 ;;
    2) n=65536 ;;
    3) n=$((i * 1531 % 300000)) ;;
    *) n=$((i * i * 37 % 70000 + 1)) ;;
  esac
  head -c $n /dev/urandom >"$d/file$i"
  i=$((i + 1))
done
head -c 1048577 /dev/urandom >"$src/d0/big 1 MiB+1"
chmod 755 "$src/d1/e1/file1"
chmod 444 "$src/d2/e2/file2"
chmod 600 "$src/d3/e0/file3"
mkdir -p "$src/empty dir"
ln -s ../d1/e1/file1 "$src/d0/link1"
touch -d '2011-12-13 14:15:16' "$src/d4/e1/file4"
nfiles=$(find "$src" -type f | wc -l | tr -d ' ')
check_eq "source tree has 201 files" 201 "$nfiles"

# manifest DIR: one line per entry: type, mode, size, md5 (regular files),
# mtime (regular files), link target (symlinks); sorted by path
manifest() (
  cd "$1" || exit 1
  find . -type d -exec stat -c 'D %a %n' {} + | sort
  find . -type l -exec stat -c 'L %N' {} + | sort
  find . -type f -exec stat -c 'F %a %s %Y %n' {} + | sort
  find . -type f -exec md5sum {} + | sort -k 2
)
manifest "$src" >"$tmp/m.src"

mkdir tree-in
# The host (tests/vm/ci.sh) SIGKILLs one server when it sees this line, while the tar
# runs, and starts it again at the next marker.
echo "@@ kill-point"
tar -cf - -C "$src" . | tar -xf - -C tree-in
check "tar -x into the mount" test -d "tree-in/d0" -a -f "tree-in/d0/big 1 MiB+1"
# Hard links made while that server is down.
echo linked >lnk-src
check "ln while a server is down" ln lnk-src lnk-dst
mkdir lnk-d
check "ln into another directory" ln lnk-src lnk-d/third
echo "@@ restart-point"
drop
manifest tree-in >"$tmp/m.in"
check "tree in the mount matches (names, modes, sizes, mtimes, md5)" cmp -s "$tmp/m.src" "$tmp/m.in"
cmp -s "$tmp/m.src" "$tmp/m.in" || diff "$tmp/m.src" "$tmp/m.in" | head -n 20
check_eq "find counts the files in the mount" "$nfiles" "$(find tree-in -type f | wc -l | tr -d ' ')"
tar -cf - -C tree-in . | tar -xf - -C "$out"
manifest "$out" >"$tmp/m.out"
check "tree tarred back out matches" cmp -s "$tmp/m.src" "$tmp/m.out"
if have diff; then
  if diff -rq "$src" "$out" >"$tmp/diff" 2>&1; then ok "diff -r source and round trip"
  else bad "diff -r source and round trip"; head -n 20 "$tmp/diff"; fi
fi
check "rm -rf the tree" rm -rf tree-in
check "tree gone" test ! -e tree-in
check "ls no longer lists it" sh -c '! ls | grep -qx tree-in'
rm -rf "$src" "$out"

# ----------------------------------------------------------- hard links ---
drop
check_eq "stat -c %h counts the three names" 3 "$(stat -c %h lnk-src)"
check_eq "every name is one inode" "$(stat -c %i lnk-src) $(stat -c %i lnk-src)" \
  "$(stat -c %i lnk-dst) $(stat -c %i lnk-d/third)"
check_eq "content through a link" linked "$(cat lnk-d/third)"
echo more >>lnk-dst
drop
check_eq "a write through one name reads through another" "linked more" \
  "$(tr '\n' ' ' <lnk-src | sed 's/ $//')"
check "rm of one name" rm lnk-src
check_eq "%h after rm of one name" 2 "$(stat -c %h lnk-dst)"
check "mv of a linked name" mv lnk-dst lnk-d/moved
drop
check_eq "%h after mv" 2 "$(stat -c %h lnk-d/third)"
check_eq "content after rm and mv" "linked more" "$(tr '\n' ' ' <lnk-d/moved | sed 's/ $//')"
check "ln of a directory is refused" sh -c '! ln lnk-d lnk-d2 2>/dev/null'
check "ln over an existing name is refused" sh -c '! ln lnk-d/moved lnk-d/third 2>/dev/null'
check "rm -rf of a directory of links" rm -rf lnk-d
check "the links are gone" test ! -e lnk-d

# ---------------------------------------------------------- directories ---
mkdir dots
check_eq "ls -a of an empty directory lists . and .." ". .." "$(ls -a dots | tr '\n' ' ' | sed 's/ $//')"
check_eq ".. is the parent (inode)" "$(stat -c %i .)" "$(stat -c %i dots/..)"
if [ -x /opt/files/seekdir ]; then
  i=0
  while [ $i -lt 1000 ]; do : >"dots/e$i"; i=$((i + 1)); done
  drop
  check "telldir/seekdir over 1,000 entries" /opt/files/seekdir dots
else
  note "telldir/seekdir check skipped (no /opt/files/seekdir: tests/vm/ci.sh builds it)"
fi
rm -rf dots

# ------------------------------------------- a client daemon crash before COMMIT ---
# $1: the port of a second client daemon of the same cluster, which the host SIGKILLs
# and starts again when it sees "@@ kill-client". /opt/files/unstable writes 50 MiB so
# that every page reaches that daemon as an UNSTABLE WRITE and none is committed, prints
# the marker, then fsyncs. The daemon held part of the data in memory when it died; its
# verifier is new after the restart, so this kernel sends every uncommitted page again at
# the COMMIT, and the file is whole. (The loss a fixed verifier lets through is shown by
# tests/e2e durability::a_daemon_killed_before_commit_gets_its_writes_again: whether the
# daemon still holds writes when it dies depends on this kernel's timing, which may send
# the last pages FILE_SYNC or commit first, and a first try with the verifier fixed lost
# nothing, so the loss does not show reliably here.)
vport=${1:-}
if [ -n "$vport" ] && [ -x /opt/files/unstable ] && mkdir -p /tmp/vmnt &&
  mount -t nfs -o "vers=3,proto=tcp,mountproto=tcp,port=$vport,mountport=$vport,nolock,hard,addr=10.0.2.2,mountaddr=10.0.2.2" 10.0.2.2:/ /tmp/vmnt; then
  # WRITE bytes this kernel sent to that mount (the 'bytes:' line of mountstats).
  sent() {
    awk '/ mounted on \/tmp\/vmnt /{m=1} m && $1 == "bytes:" {print $7; exit}' /proc/self/mountstats
  }
  dd if=/dev/urandom of="$tmp/vsrc" bs=1M count=50 2>/dev/null
  vf=/tmp/vmnt/held.$$
  check "50 MiB written UNSTABLE, the daemon SIGKILLed and restarted before the COMMIT" \
    /opt/files/unstable "$tmp/vsrc" "$vf" "@@ kill-client"
  total=$(sent)
  again=$(( ${total:-0} - 52428800 ))
  note "WRITE bytes sent for the 50 MiB file: ${total:-?}, $((again / 1024)) KiB of them again after the restart"
  check "the kernel sent the uncommitted pages again (new verifier)" test "$again" -gt 0
  drop
  check_eq "50 MiB md5 after the daemon's crash and restart" "$(md5 "$tmp/vsrc")" "$(md5 "$vf")"
  rm -f "$vf"
  umount /tmp/vmnt || note "umount of the second mount failed"
else
  note "client-crash check skipped (no second daemon port, no /opt/files/unstable, or the mount failed)"
fi

# -------------------------------------------------------- special files ---
check "mkfifo" mkfifo pipe
check "it is a FIFO" test -p pipe
(echo through >pipe) &
check_eq "a writer and a reader meet through it" through "$(timeout 30 cat pipe)"
wait
if [ "$(id -u)" = 0 ]; then
  check "mknod c 1 3 (root)" mknod cdev c 1 3
  check "it is a character device" test -c cdev
  check_eq "its major and minor" "1,3" "$(stat -c '%t,%T' cdev)"
  check "mknod b 7 9 (root)" mknod bdev b 7 9
  check_eq "a block device's major and minor" "block 7,9" "$(test -b bdev && echo block) $(stat -c '%t,%T' bdev)"
fi
if [ -x /opt/files/unixsock ]; then
  check "a UNIX socket bound in the mount passes a message" /opt/files/unixsock sock
  check "its name is a socket" test -S sock
else
  note "UNIX socket check skipped (no /opt/files/unixsock: tests/vm/ci.sh builds it)"
fi
rm -f pipe cdev bdev sock

# ------------------------------------------- permissions as a non-root uid ---
# The daemon enforces mode bits with the caller's AUTH_SYS uid/gid. In the
# nfs-vm guest (hostname nfs-vm, /etc in RAM) a user with uid 1000 is added.
if [ "$(id -u)" = 0 ] && { grep -q '^kcuser:' /etc/passwd 2>/dev/null || [ "$(hostname)" = nfs-vm ]; }; then
  grep -q '^kcuser:' /etc/passwd || {
    echo 'kcuser:x:1000:1000:kernel-client test:/tmp:/bin/sh' >>/etc/passwd
    echo 'kcuser:x:1000:' >>/etc/group
  }
  grep -q '^kcother:' /etc/passwd || {
    echo 'kcother:x:1001:1001:kernel-client test, a second user:/tmp:/bin/sh' >>/etc/passwd
    echo 'kcother:x:1001:' >>/etc/group
  }
  as_user() { su -s /bin/sh -c "$1" kcuser </dev/null; }
  as_other() { su -s /bin/sh -c "$1" kcother </dev/null; }
  mkdir perm pub
  echo secret >perm/rootfile
  chmod 755 perm; chmod 644 perm/rootfile; chmod 1777 pub
  here=$(pwd)
  check "uid 1000 reads a 644 root file" as_user "cat '$here/perm/rootfile' >/dev/null"
  # ACCESS answers from the mode bits, so open() for writing fails at once.
  fails "uid 1000 cannot open a 644 root file for writing" as_user "echo x >>'$here/perm/rootfile'"
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  check_eq "root file unchanged after uid 1000 tried to write" secret "$(cat perm/rootfile)"
  fails "uid 1000 cannot create in a 755 root directory" as_user "echo x >'$here/perm/new'"
  check "no file was created" test ! -e perm/new
  fails "uid 1000 cannot remove from a 755 root directory" as_user "rm -f '$here/perm/rootfile'"
  check "the root file is still there" test -f perm/rootfile
  check "uid 1000 creates a file in a 1777 directory" as_user "echo mine >'$here/pub/mine'"
  check_eq "it is owned by uid 1000" "1000 644" "$(stat -c '%u %a' pub/mine)"
  check "uid 1000 makes a 0700 directory" as_user "mkdir -m 0700 '$here/pub/private'"
  check_eq "it keeps the mode asked for" "1000 700" "$(stat -c '%u %a' pub/private)"
  fails "uid 1000 cannot open a 0444 file of its own for writing" as_user "echo y >>'$here/pub/mine'; chmod 444 '$here/pub/mine'; echo z >>'$here/pub/mine'"
  # open(O_CREAT|O_WRONLY, 0444) then write: allowed to the creator (tar, git, cp -p do this)
  check "uid 1000 creates and writes a 0444 file" as_user "umask 222; echo data >'$here/pub/ro'"
  check_eq "0444 file has its data" "data 444" "$(cat pub/ro) $(stat -c %a pub/ro)"
  chmod 600 perm/rootfile
  fails "uid 1000 cannot read a 600 root file" as_user "cat '$here/perm/rootfile'"
  echo theirs >pub/roots
  fails "sticky directory: uid 1000 cannot remove root's file" as_user "rm -f '$here/pub/roots'"
  check "root's file in the sticky directory remains" test -f pub/roots
  # Two unprivileged users: kcuser (1000) owns, kcother (1001) tries.
  as_user "echo data >'$here/pub/his'; chmod 644 '$here/pub/his'"
  fails_with "kcother cannot chown kcuser's file (EPERM)" "Operation not permitted" \
    as_other "chown 1001 '$here/pub/his'"
  fails_with "kcuser cannot give its file away (EPERM)" "Operation not permitted" \
    as_user "chown 1001 '$here/pub/his'"
  fails_with "kcuser cannot chgrp to a group it is not in (EPERM)" "Operation not permitted" \
    as_user "chgrp 1001 '$here/pub/his'"
  fails_with "kcother cannot chmod kcuser's file (EPERM)" "Operation not permitted" \
    as_other "chmod 666 '$here/pub/his'"
  fails_with "kcother cannot truncate kcuser's 644 file (EACCES)" "Permission denied" \
    as_other "truncate -s 0 '$here/pub/his'"
  fails_with "kcother cannot set kcuser's file's times (EPERM)" "Operation not permitted" \
    as_other "touch -d '2001-01-01 00:00:00' '$here/pub/his'"
  check_eq "kcuser's file unchanged" "1000 644 5" "$(stat -c '%u %a %s' pub/his)"
  as_user "mkdir -m 0700 '$here/pub/closed' && echo inside >'$here/pub/closed/f' && chmod 666 '$here/pub/closed/f'"
  drop
  fails_with "kcother cannot look up in a 0700 directory (EACCES)" "Permission denied" \
    as_other "cat '$here/pub/closed/f'"
  fails_with "kcother cannot truncate through a 0700 directory (EACCES)" "Permission denied" \
    as_other "truncate -s 0 '$here/pub/closed/f'"
  check_eq "the file behind it unchanged" inside "$(cat pub/closed/f)"
  as_user "echo '#!/bin/sh' >'$here/pub/suid' && chmod 4777 '$here/pub/suid'"
  check_eq "kcuser makes its file setuid" "4777" "$(stat -c %a pub/suid)"
  check "kcother writes to the 4777 file" as_other "echo more >>'$here/pub/suid'"
  drop
  check_eq "a write by another user drops setuid" "777" "$(stat -c %a pub/suid)"
  as_user "chmod 4777 '$here/pub/suid'"
  chown 1001 pub/suid
  check_eq "chown drops setuid" "1001 777" "$(stat -c '%u %a' pub/suid)"
  as_user "echo shared >'$here/pub/shared' && chmod 666 '$here/pub/shared'"
  check "kcother sets a 666 file's times to now (write permission)" as_other "touch '$here/pub/shared'"
  fails_with "kcother cannot set them to a given time (EPERM)" "Operation not permitted" \
    as_other "touch -d '2001-01-01 00:00:00' '$here/pub/shared'"
  rm -rf perm pub
else
  note "permission checks skipped (need root inside the nfs-vm guest)"
fi

# ------------------------------------- volumes: mount points, set-root ---
# tests/vm/ci.sh makes two more volumes and their mount points with `codetta mkmount`:
# /proj (volume proj) and /altm (volume alt); it switches the root volume when told.
if [ -d ../proj ] && [ -d ../altm ]; then
  check "a mount point shows as a directory" test -d ../proj -a ! -L ../proj
  mkdir -p "../proj/$w/sub" && echo "in proj" >"../proj/$w/sub/f.txt"
  dd if=/dev/urandom of="../proj/$w/sub/r.bin" bs=64k count=16 2>/dev/null
  echo moved >mv-me.txt
  check "mv across volumes (rename refused, copied)" mv mv-me.txt "../proj/$w/"
  drop
  check "ls -R through the mount point" sh -c 'ls -R .. >/dev/null'
  check_eq "find through the mount point" 3 "$(find "../proj/$w" -type f | wc -l | tr -d ' ')"
  mkdir "$tmp/vt"
  check "tar through the mount point" sh -c "tar -cf - -C .. 'proj/$w' | tar -xf - -C '$tmp/vt'"
  check_eq "tar copied the volume's files" "in proj" "$(cat "$tmp/vt/proj/$w/sub/f.txt")"
  check_eq "tar copied the volume's data" "$(md5 "../proj/$w/sub/r.bin")" "$(md5 "$tmp/vt/proj/$w/sub/r.bin")"
  dups=$(ls -iR .. 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}' | sort | uniq -d | head -n 3 | tr '\n' ' ')
  check_eq "inode numbers unique across volumes" "" "$dups"
  echo "in the first root" >old.txt
  echo "in alt" >"../altm/marker.$w"
  exec 3<old.txt
  echo "@@ set-root alt"
  sleep 5
  i=0
  while [ ! -e "/mnt/marker.$w" ] && [ $i -lt 180 ]; do sleep 0.5; i=$((i + 1)); done
  check "set-root: the new root shows without a remount" test -e "/mnt/marker.$w"
  check "set-root: the old root's entries are gone from /" test ! -e "/mnt/proj"
  # The cwd and an open file are handles into the old root volume: they keep working
  # (a path from / now leads into the new root).
  check_eq "set-root: an open file in the old root volume reads on" "in the first root" "$(cat <&3)"
  exec 3<&-
  check_eq "set-root: the cwd in the old root volume works on" "in the first root" "$(cat old.txt)"
  echo "@@ set-root root"
  sleep 5
  i=0
  while [ ! -e "/mnt/proj" ] && [ $i -lt 180 ]; do sleep 0.5; i=$((i + 1)); done
  check "set-root back: the first root shows again" test -d "/mnt/$w/sub" -o -d "/mnt/proj"
  rm -rf "../proj/$w" "$tmp/vt" "../altm/marker.$w"
else
  note "volume checks skipped (no /proj and /altm mount points)"
fi

# ---------------------------------------------------------- clean up ---
cd ..
check "rm -rf the work directory" rm -rf "$w"
check "work directory gone" test ! -e "$w"
rm -rf "$tmp"

echo "summary: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "ALL PASS"
