//! The permission rules as a table (issue 21), through the real endpoint: each procedure
//! that reads or changes an object, by each kind of caller (the owner, a member of the
//! object's group, another user, root), over the mode bits that decide it (sticky, setuid
//! and setgid included). Every case gets objects of its own, made by root; the caller is
//! handed their handles (NFS calls name objects by handle, not by path). A refused call
//! must change nothing.

use crate::support::Cluster;
use crate::support::nfs::{Fh, Nfs, mode};
use nfs3_client::nfs3_types::nfs3::*;

/// The callers: the owner (uid 1000, group 1000, also in 3000), a member of group 1000
/// (uid 1001), another user (uid 1002, group 1002), root.
const OWNER: (u32, u32) = (1000, 1000);
const NAMES: [&str; 4] = ["owner", "member", "other", "root"];

type Status = Result<(), nfsstat3>;
const OK: Status = Ok(());
const ACCES: Status = Err(nfsstat3::NFS3ERR_ACCES);
const PERM: Status = Err(nfsstat3::NFS3ERR_PERM);

/// What a case does to its objects: a directory `d` holding a file `f`, an empty
/// directory `s` and a symbolic link `l`.
#[derive(Debug, Clone, Copy)]
enum Op {
    Getattr,
    Readlink,
    Lookup,
    Read,
    Write,
    List,
    ListPlus,
    Create,
    Mkdir,
    Symlink,
    Remove,
    Rmdir,
    Rename,
    /// LINK of `f` as a new name in `d`.
    Link,
    /// CREATE UNCHECKED of the existing `f` with size 0 (open with O_CREAT|O_TRUNC).
    CreateOver,
    Chmod(u32),
    Chown(u32),
    Chgrp(u32),
    Truncate,
    TimesGiven,
    TimesNow,
}

struct Case {
    op: Op,
    /// Mode and owner (uid, gid) of the directory and of the file.
    dir: (u32, (u32, u32)),
    file: (u32, (u32, u32)),
    /// Owner, member, other, root.
    expect: [Status; 4],
}

const fn case(op: Op, dir: u32, file: u32, expect: [Status; 4]) -> Case {
    Case {
        op,
        dir: (dir, OWNER),
        file: (file, OWNER),
        expect,
    }
}

/// The table. Directories and files belong to the owner unless a case says otherwise.
fn table() -> Vec<Case> {
    use Op::*;
    let root_sticky = |op| Case {
        op,
        dir: (0o1777, (0, 0)),
        file: (0o644, OWNER),
        expect: [OK, ACCES, ACCES, OK],
    };
    vec![
        // Attributes and a link's target need no permission on the object.
        case(Getattr, 0o700, 0o000, [OK, OK, OK, OK]),
        case(Readlink, 0o700, 0o000, [OK, OK, OK, OK]),
        // Search permission on the directory a name is looked up in.
        case(Lookup, 0o700, 0o644, [OK, ACCES, ACCES, OK]),
        case(Lookup, 0o710, 0o644, [OK, OK, ACCES, OK]),
        case(Lookup, 0o701, 0o644, [OK, ACCES, OK, OK]),
        // Read permission (the owner reads its own file whatever the mode).
        case(Read, 0o755, 0o600, [OK, ACCES, ACCES, OK]),
        case(Read, 0o755, 0o640, [OK, OK, ACCES, OK]),
        case(Read, 0o755, 0o604, [OK, ACCES, OK, OK]),
        case(Read, 0o755, 0o000, [OK, ACCES, ACCES, OK]),
        // Write permission (likewise for the owner).
        case(Write, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Write, 0o755, 0o664, [OK, OK, ACCES, OK]),
        case(Write, 0o755, 0o646, [OK, ACCES, OK, OK]),
        case(Write, 0o755, 0o444, [OK, ACCES, ACCES, OK]),
        // Listing needs read permission on the directory.
        case(List, 0o700, 0o644, [OK, ACCES, ACCES, OK]),
        case(List, 0o750, 0o644, [OK, OK, ACCES, OK]),
        case(List, 0o705, 0o644, [OK, ACCES, OK, OK]),
        case(ListPlus, 0o700, 0o644, [OK, ACCES, ACCES, OK]),
        case(ListPlus, 0o750, 0o644, [OK, OK, ACCES, OK]),
        // Creating, removing and renaming need write and search on the directory.
        case(Create, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Create, 0o775, 0o644, [OK, OK, ACCES, OK]),
        case(Create, 0o757, 0o644, [OK, ACCES, OK, OK]),
        case(Create, 0o766, 0o644, [OK, ACCES, ACCES, OK]),
        case(Mkdir, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Mkdir, 0o775, 0o644, [OK, OK, ACCES, OK]),
        case(Symlink, 0o757, 0o644, [OK, ACCES, OK, OK]),
        case(Rmdir, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Rmdir, 0o775, 0o644, [OK, OK, ACCES, OK]),
        case(Remove, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Remove, 0o777, 0o644, [OK, OK, OK, OK]),
        case(Rename, 0o775, 0o644, [OK, OK, ACCES, OK]),
        // A new name for a file is a create in its directory (the file's own mode does
        // not matter, as with knfsd).
        case(Link, 0o755, 0o000, [OK, ACCES, ACCES, OK]),
        case(Link, 0o775, 0o600, [OK, OK, ACCES, OK]),
        case(Link, 0o753, 0o644, [OK, ACCES, OK, OK]),
        // Sticky: only the entry's or the directory's owner (or root) removes it.
        root_sticky(Remove),
        root_sticky(Rename),
        // Truncating an existing file through CREATE needs write permission on it.
        case(CreateOver, 0o777, 0o644, [OK, ACCES, ACCES, OK]),
        case(CreateOver, 0o777, 0o666, [OK, OK, OK, OK]),
        // Mode by the owner or root; owner by root; group by the owner to its groups.
        case(Chmod(0o600), 0o755, 0o644, [OK, PERM, PERM, OK]),
        case(Chown(1002), 0o755, 0o644, [PERM, PERM, PERM, OK]),
        case(Chgrp(3000), 0o755, 0o644, [OK, PERM, PERM, OK]),
        case(Chgrp(4000), 0o755, 0o644, [PERM, PERM, PERM, OK]),
        // Size needs write permission.
        case(Truncate, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
        case(Truncate, 0o755, 0o666, [OK, OK, OK, OK]),
        // Times: a given value by the owner or root, "now" with write permission.
        case(TimesGiven, 0o755, 0o666, [OK, PERM, PERM, OK]),
        case(TimesNow, 0o755, 0o666, [OK, OK, OK, OK]),
        case(TimesNow, 0o755, 0o644, [OK, ACCES, ACCES, OK]),
    ]
}

/// SETATTR arguments changing one attribute.
fn set_uid(uid: u32) -> sattr3 {
    sattr3 {
        uid: Nfs3Option::Some(uid),
        ..sattr3::default()
    }
}

fn set_gid(gid: u32) -> sattr3 {
    sattr3 {
        gid: Nfs3Option::Some(gid),
        ..sattr3::default()
    }
}

fn set_size(size: u64) -> sattr3 {
    sattr3 {
        size: Nfs3Option::Some(size),
        ..sattr3::default()
    }
}

async fn callers(port: u16) -> [Nfs; 4] {
    [
        Nfs::connect_with_groups(port, 1000, 1000, &[3000])
            .await
            .expect("owner"),
        Nfs::connect_with_groups(port, 1001, 1000, &[])
            .await
            .expect("member"),
        Nfs::connect_with_groups(port, 1002, 1002, &[])
            .await
            .expect("other"),
        Nfs::connect_with_groups(port, 0, 0, &[])
            .await
            .expect("root"),
    ]
}

/// Gives an object to `uid`:`gid`, then sets its mode (in that order: a change of owner
/// drops setuid and setgid, even when the same call sets the mode).
async fn own(root: &mut Nfs, fh: &Fh, m: u32, (uid, gid): (u32, u32)) {
    let owner = sattr3 {
        uid: Nfs3Option::Some(uid),
        gid: Nfs3Option::Some(gid),
        ..sattr3::default()
    };
    root.setattr(fh, owner).await.expect("chown");
    root.setattr(fh, mode(m)).await.expect("chmod");
}

/// Root makes directory `name` in `base` and file `f` in it, as `case` says; their handles.
async fn fixture(
    root: &mut Nfs,
    base: &Fh,
    name: &str,
    dir: (u32, (u32, u32)),
    file: (u32, (u32, u32)),
) -> (Fh, Fh) {
    let d = root.mkdir(base, name).await.expect("mkdir");
    let f = root.create(&d, "f").await.expect("create");
    root.mkdir(&d, "s").await.expect("mkdir");
    root.symlink(&d, "l", "f").await.expect("symlink");
    root.write(&f, 0, b"contents", stable_how::FILE_SYNC)
        .await
        .expect("write");
    own(root, &f, file.0, file.1).await;
    own(root, &d, dir.0, dir.1).await;
    (d, f)
}

async fn perform(nfs: &mut Nfs, op: Op, d: &Fh, f: &Fh, l: &Fh) -> Status {
    match op {
        Op::Getattr => nfs.getattr(f).await.map(|_| ()),
        Op::Readlink => nfs.readlink(l).await.map(|_| ()),
        Op::ListPlus => nfs.list(d).await.map(|_| ()),
        Op::Mkdir => nfs.mkdir(d, "new").await.map(|_| ()),
        Op::Symlink => nfs.symlink(d, "new", "f").await.map(|_| ()),
        Op::Rmdir => nfs.rmdir(d, "s").await,
        Op::Lookup => nfs.lookup(d, "f").await.map(|_| ()),
        Op::Read => nfs.read(f, 0, 8).await.map(|_| ()),
        Op::Write => nfs
            .write(f, 0, b"C", stable_how::FILE_SYNC)
            .await
            .map(|_| ()),
        Op::List => nfs.list_plain(d, 4096).await.map(|_| ()),
        Op::Create => nfs.create(d, "new").await.map(|_| ()),
        Op::Remove => nfs.remove(d, "f").await,
        Op::Rename => nfs.rename(d, "f", d, "g").await,
        Op::Link => nfs.link(f, d, "g").await.map(|_| ()),
        Op::CreateOver => {
            let how = createhow3::UNCHECKED(set_size(0));
            nfs.create_how(d, "f", how).await.map(|_| ())
        }
        Op::Chmod(m) => nfs.setattr(f, mode(m)).await,
        Op::Chown(uid) => nfs.setattr(f, set_uid(uid)).await,
        Op::Chgrp(gid) => nfs.setattr(f, set_gid(gid)).await,
        Op::Truncate => nfs.setattr(f, set_size(0)).await,
        Op::TimesGiven => {
            let t = nfstime3 {
                seconds: 1_000_000_000,
                nseconds: 0,
            };
            let s = sattr3 {
                mtime: set_mtime::SET_TO_CLIENT_TIME(t),
                ..sattr3::default()
            };
            nfs.setattr(f, s).await
        }
        Op::TimesNow => {
            let s = sattr3 {
                mtime: set_mtime::SET_TO_SERVER_TIME,
                ..sattr3::default()
            };
            nfs.setattr(f, s).await
        }
    }
}

/// What a refused call must leave as it was: the file's mode, owner, size and mtime and
/// the directory's names.
async fn snapshot(root: &mut Nfs, d: &Fh, f: &Fh) -> (u32, u32, u32, u64, u32, Vec<String>) {
    let a = root.getattr(f).await.expect("getattr");
    let mut names = root.list(d).await.expect("list");
    names.sort();
    (a.mode, a.uid, a.gid, a.size, a.mtime.seconds, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_procedure_by_every_caller_over_the_mode_bits() {
    let cluster = Cluster::start().await;
    let mut who = callers(cluster.nfs_port()).await;
    let base = {
        let root = &mut who[3];
        let top = root.root.clone();
        let base = root.mkdir(&top, "perm").await.expect("mkdir");
        root.setattr(&base, mode(0o777)).await.expect("chmod");
        base
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, case) in table().into_iter().enumerate() {
        for (c, expected) in case.expect.iter().enumerate() {
            let name = format!("c{i}-{}", NAMES[c]);
            let (d, f) = fixture(&mut who[3], &base, &name, case.dir, case.file).await;
            let l = who[3].lookup(&d, "l").await.expect("lookup");
            let before = snapshot(&mut who[3], &d, &f).await;
            let got = perform(&mut who[c], case.op, &d, &f, &l).await;
            checked += 1;
            if got != *expected {
                failures.push(format!(
                    "{:?} (dir {:o}, file {:o}) by {}: expected {expected:?}, got {got:?}",
                    case.op, case.dir.0, case.file.0, NAMES[c]
                ));
            } else if got.is_err() && snapshot(&mut who[3], &d, &f).await != before {
                failures.push(format!(
                    "{:?} (dir {:o}, file {:o}) by {}: refused, yet something changed",
                    case.op, case.dir.0, case.file.0, NAMES[c]
                ));
            }
        }
    }
    println!("permission table: {checked} calls checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cluster.shutdown().await;
}

/// ACCESS answers from the same rules, without the owner's override (it is what open()
/// asks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_answers_from_the_same_rules() {
    let cluster = Cluster::start().await;
    let mut who = callers(cluster.nfs_port()).await;
    let top = who[3].root.clone();
    let (d, f) = fixture(&mut who[3], &top, "acc", (0o751, OWNER), (0o640, OWNER)).await;
    let ro = who[3].create(&d, "ro").await.expect("create");
    own(&mut who[3], &ro, 0o444, OWNER).await;
    // READ 1, LOOKUP 2, MODIFY 4, EXTEND 8, DELETE 0x10, EXECUTE 0x20.
    let file = [0x0d, 0x01, 0x00, 0x0d];
    let dir = [0x3f, 0x23, 0x22, 0x3f];
    let read_only = [0x01, 0x01, 0x01, 0x0d];
    for c in 0..4 {
        assert_eq!(
            who[c].access(&f, 0x3f).await,
            Ok(file[c]),
            "file 640 for {}",
            NAMES[c]
        );
        assert_eq!(
            who[c].access(&d, 0x3f).await,
            Ok(dir[c]),
            "dir 751 for {}",
            NAMES[c]
        );
        assert_eq!(
            who[c].access(&ro, 0x3f).await,
            Ok(read_only[c]),
            "file 444 for {}",
            NAMES[c]
        );
    }
    cluster.shutdown().await;
}

/// Setuid and setgid go on a write or truncation by anyone but root and on any change of
/// owner; a non-root owner outside the file's group cannot set setgid; MKDIR keeps its
/// mode, and a directory made in a setgid directory takes its group and its setgid bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_are_dropped_and_new_objects_are_owned_as_posix_says() {
    let cluster = Cluster::start().await;
    let mut who = callers(cluster.nfs_port()).await;
    let top = who[3].root.clone();
    let mode_of = |a: fattr3| a.mode;
    // A write by each caller to a 6777 file.
    let after_write = [0o777, 0o777, 0o777, 0o6777];
    for c in 0..4 {
        let (_, f) = fixture(
            &mut who[3],
            &top,
            &format!("w-{c}"),
            (0o777, OWNER),
            (0o6777, OWNER),
        )
        .await;
        who[c]
            .write(&f, 0, b"x", stable_how::UNSTABLE)
            .await
            .expect("write");
        who[c].commit(&f).await.expect("commit");
        let m = who[3].getattr(&f).await.map(mode_of).expect("getattr");
        assert_eq!(m, after_write[c], "a write by {}", NAMES[c]);
    }
    // Truncation by the group member (write permission), and chown by root.
    let (_, f) = fixture(&mut who[3], &top, "t", (0o777, OWNER), (0o6777, OWNER)).await;
    who[1].setattr(&f, set_size(0)).await.expect("truncate");
    assert_eq!(
        who[3].getattr(&f).await.map(mode_of),
        Ok(0o777),
        "truncated by the member"
    );
    let (_, f) = fixture(&mut who[3], &top, "o", (0o777, OWNER), (0o6755, OWNER)).await;
    who[3].setattr(&f, set_uid(1002)).await.expect("chown");
    assert_eq!(
        who[3].getattr(&f).await.map(mode_of),
        Ok(0o755),
        "chown by root"
    );
    // setgid by an owner outside the file's group is dropped.
    let (_, f) = fixture(
        &mut who[3],
        &top,
        "g",
        (0o777, OWNER),
        (0o644, (1000, 4000)),
    )
    .await;
    who[0].setattr(&f, mode(0o2755)).await.expect("chmod");
    assert_eq!(
        who[3].getattr(&f).await.map(mode_of),
        Ok(0o755),
        "setgid outside the group"
    );
    // Moving a directory to another parent rewrites its `..`: it must be writable.
    let (a, _) = fixture(&mut who[3], &top, "from", (0o777, (0, 0)), (0o644, OWNER)).await;
    let (b, _) = fixture(&mut who[3], &top, "to", (0o777, (0, 0)), (0o644, OWNER)).await;
    assert_eq!(
        who[1].rename(&a, "s", &b, "s").await,
        Err(nfsstat3::NFS3ERR_ACCES),
        "root's 755 directory moved by the member"
    );
    assert_eq!(
        who[1].rename(&a, "s", &a, "t").await,
        Ok(()),
        "renamed in place"
    );
    assert_eq!(
        who[3].rename(&a, "t", &b, "s").await,
        Ok(()),
        "moved by root"
    );
    // READDIRPLUS hands out handles and attributes only with search permission.
    let (r, _) = fixture(
        &mut who[3],
        &top,
        "readable",
        (0o740, OWNER),
        (0o644, OWNER),
    )
    .await;
    let member = who[1].list_with_handles(&r).await.expect("list");
    assert!(
        !member.is_empty() && member.iter().all(|(_, h, a)| !h && !a),
        "{member:?}"
    );
    let owner = who[0].list_with_handles(&r).await.expect("list");
    assert!(owner.iter().all(|(_, h, a)| *h && *a), "{owner:?}");
    // MKDIR's mode, and a setgid directory's group.
    let (d, _) = fixture(&mut who[3], &top, "m", (0o2777, (0, 4000)), (0o644, OWNER)).await;
    let (open, _) = fixture(&mut who[3], &top, "open", (0o777, (0, 0)), (0o644, OWNER)).await;
    let made = who[0]
        .mkdir_mode(&open, "private", 0o700)
        .await
        .expect("mkdir");
    let a = who[3].getattr(&made).await.expect("getattr");
    assert_eq!((a.mode, a.uid, a.gid), (0o700, 1000, 1000), "mkdir -m 0700");
    let inside = who[0].mkdir_mode(&d, "sub", 0o755).await.expect("mkdir");
    let a = who[3].getattr(&inside).await.expect("getattr");
    assert_eq!(
        (a.mode, a.gid),
        (0o2755, 4000),
        "made in a setgid directory"
    );
    cluster.shutdown().await;
}
