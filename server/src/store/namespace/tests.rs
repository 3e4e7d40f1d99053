//! Tests of directory operations: creates, special files, removes, renames, hard links, reading a directory in pages, reopening.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::super::testutil::{Fx, check_consistency, name};
use codetta_wire::update::{CreateHow, NewObject, Op};
use codetta_wire::{Fid, FileType, FsError};
use std::collections::BTreeSet;

fn rename(fx: &mut Fx, from: Fid, a: &str, to: Fid, b: &str) -> Result<Option<Fid>, FsError> {
    let op = fx.rename_op(from, a, to, b);
    fx.one(op)
}

fn all_names(fx: &Fx, dir: Fid, page: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let (_, entries, eof) = fx.store.readdir(dir, cookie, page, false).unwrap();
        assert!(entries.len() <= page as usize);
        for e in &entries {
            out.push((e.cookie, e.name.to_string()));
            cookie = e.cookie;
        }
        if eof {
            return out;
        }
    }
}

/// MKNOD makes FIFOs, sockets and device nodes: a name and attributes, the device
/// number in the type (and so in the tag); no data, no size, no target; a regular file,
/// a directory or a link cannot be made by it.
#[test]
fn special_files_are_names_and_attributes() {
    let mut fx = Fx::new();
    let root = fx.root();
    let mknod = |fx: &mut Fx, n: &str, kind| {
        let fid = fx.g.fid();
        let new = NewObject {
            mode: 0o600,
            uid: 0,
            gid: 0,
        };
        let op = Op::Mknod {
            dir: root,
            name: name(n),
            fid,
            new,
            kind,
        };
        (fx.one(op), fid)
    };
    let kinds = [
        ("fifo", FileType::Fifo),
        ("sock", FileType::Socket),
        ("null", FileType::CharDevice { major: 1, minor: 3 }),
        ("zero", FileType::CharDevice { major: 1, minor: 5 }),
        ("loop", FileType::BlockDevice { major: 7, minor: 0 }),
    ];
    let mut made = Vec::new();
    for (n, kind) in kinds {
        let (outcome, fid) = mknod(&mut fx, n, kind);
        assert_eq!(outcome, Ok(Some(fid)), "{n}");
        let s = fx.lookup(root, n).unwrap();
        assert_eq!((s.fid, s.attrs.ftype, s.attrs.size), (fid, kind, 0));
        assert_eq!(fx.store.read(fid, 0, 10).map(|_| ()), Err(FsError::Invalid));
        assert_eq!(fx.store.readlink(fid), Err(FsError::Invalid));
        made.push(s);
    }
    let (_, entries, _) = fx.store.readdir(root, 0, 10, true).unwrap();
    assert_eq!(entries.len(), 5);
    let w = super::super::testutil::Gen::write_op(made[0].fid, 0, b"x");
    assert_eq!(fx.one_with(w, b"x".to_vec()), Err(FsError::Invalid));
    for kind in [FileType::Regular, FileType::Directory, FileType::Symlink] {
        assert_eq!(mknod(&mut fx, "bad", kind).0, Err(FsError::Invalid));
    }
}

#[test]
fn create_lookup_and_attributes() {
    let mut fx = Fx::new();
    let root = fx.root();
    let f = fx.create(root, "a.txt");
    let d = fx.mkdir(root, "sub");
    let (op, l) = {
        let fid = fx.g.fid();
        let op = Op::Symlink {
            dir: d,
            name: name("link"),
            fid,
            new: NewObject {
                mode: 0o777,
                uid: 1,
                gid: 2,
            },
            target: b"../a.txt".to_vec(),
        };
        (op, fid)
    };
    assert_eq!(fx.one(op), Ok(Some(l)));

    let a = fx.lookup(root, "a.txt").unwrap();
    assert_eq!(a.fid, f);
    assert_eq!(a.attrs.ftype, FileType::Regular);
    assert_eq!(
        (a.attrs.mode, a.attrs.uid, a.attrs.size, a.attrs.nlink),
        (0o644, 1000, 0, 1)
    );
    let r = fx.state(root);
    assert_eq!((r.attrs.size, r.attrs.nlink), (2, 3));
    let s = fx.lookup(d, "link").unwrap();
    assert_eq!((s.attrs.ftype, s.attrs.size), (FileType::Symlink, 8));
    assert_eq!(fx.store.readlink(l).unwrap(), b"../a.txt");
    assert_eq!(fx.store.readlink(f), Err(FsError::Invalid));
    assert_eq!(fx.store.parent(d).unwrap().fid, root);
    assert_eq!(fx.store.parent(root).unwrap().fid, root);

    assert_eq!(fx.lookup(root, "nope"), Err(FsError::NotFound));
    assert_eq!(fx.lookup(f, "x"), Err(FsError::NotDir));
    assert_eq!(
        fx.store.readdir(f, 0, 10, false).map(|_| ()),
        Err(FsError::NotDir)
    );
    assert_eq!(fx.store.read(d, 0, 10).map(|_| ()), Err(FsError::IsDir));
    let stale = Fid {
        unique: f.unique + 1,
        ..f
    };
    assert_eq!(fx.store.getattr(stale), Err(FsError::Stale));
    let gone = Fid {
        vnode: 999_999,
        ..f
    };
    assert_eq!(fx.store.getattr(gone), Err(FsError::Stale));
    let other = Fid {
        volume: codetta_wire::VolumeId(42),
        ..f
    };
    assert_eq!(fx.store.getattr(other), Err(FsError::UnknownVolume));

    // Duplicates and bad fids.
    let (op, _) = fx.g.mkdir_op(root, "sub");
    assert_eq!(fx.one(op), Err(FsError::Exists));
    let op = Op::Create {
        dir: root,
        name: name("dup-fid"),
        fid: f,
        new: NewObject {
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        how: CreateHow::Guarded,
    };
    // A create of an fid that already exists here was applied before (resolution
    // brought the object first): answered with the fid, nothing changes.
    assert_eq!(fx.one(op), Ok(Some(f)));
    assert_eq!(fx.lookup(root, "dup-fid"), Err(FsError::NotFound));
    let op = Op::Create {
        dir: root,
        name: name("wrong-volume"),
        fid: Fid {
            volume: codetta_wire::VolumeId(9),
            ..fx.g.fid()
        },
        new: NewObject {
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        how: CreateHow::Guarded,
    };
    assert_eq!(fx.one(op), Err(FsError::Invalid));
    let long = Op::Symlink {
        dir: root,
        name: name("long"),
        fid: fx.g.fid(),
        new: NewObject {
            mode: 0o777,
            uid: 0,
            gid: 0,
        },
        target: vec![b'x'; 4097],
    };
    assert_eq!(fx.one(long), Err(FsError::Invalid));
    let (op, _) = fx.g.create_op(f, "in-a-file", CreateHow::Guarded);
    assert_eq!(fx.one(op), Err(FsError::NotDir));
}

#[test]
fn everything_survives_reopening() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let f = fx.create(d, "f");
    fx.write(f, 70_000, b"persisted");
    let before = (fx.state(root), fx.state(d), fx.state(f));
    let fx = fx.reopened(super::super::StoreOptions::default());
    assert_eq!((fx.state(root), fx.state(d), fx.state(f)), before);
    assert_eq!(fx.lookup(d, "f").unwrap().fid, f);
    assert_eq!(&fx.read_all(f)[70_000..], b"persisted");
    assert_eq!(fx.store.volume_by_name("vol").unwrap(), fx.vol);
    assert_eq!(fx.store.list_volumes().unwrap(), vec![fx.vol.clone()]);
    assert_eq!(
        fx.store.claim_incarnation(fx.g.incarnation),
        Err(FsError::Exists),
        "incarnations are never reused"
    );
}

#[test]
fn readdir_pages_10k_entries_and_ignores_inserts_between_pages() {
    let mut fx = Fx::new();
    let root = fx.root();
    let dir = fx.mkdir(root, "big");
    for chunk in 0..10 {
        let ops = (0..1000)
            .map(|i| {
                (
                    fx.g.create_op(
                        dir,
                        &format!("file-{:05}", chunk * 1000 + i),
                        CreateHow::Guarded,
                    )
                    .0,
                    Vec::new(),
                )
            })
            .collect();
        assert!(fx.batch(ops).iter().all(|o| matches!(o, Ok(Some(_)))));
    }
    let st = fx.state(dir);
    assert_eq!((st.attrs.size, st.attrs.nlink), (10_000, 2));

    let listed = all_names(&fx, dir, 100);
    assert_eq!(listed.len(), 10_000);
    assert!(
        listed.windows(2).all(|w| w[0].0 < w[1].0),
        "strictly increasing cookies"
    );
    let names: BTreeSet<_> = listed.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(names.len(), 10_000);
    assert!(listed.iter().all(|(c, n)| *c == name(n).cookie()));

    // A listing in progress: insert between pages; no entry is lost or repeated.
    let (_, first, eof) = fx.store.readdir(dir, 0, 100, true).unwrap();
    assert!(!eof);
    assert!(
        first
            .iter()
            .all(|e| e.state.as_ref().is_some_and(|s| s.fid == e.fid))
    );
    for i in 0..50 {
        let (op, _) =
            fx.g.create_op(dir, &format!("late-{i}"), CreateHow::Guarded);
        assert!(fx.one(op).is_ok());
    }
    let mut seen: Vec<String> = first.iter().map(|e| e.name.to_string()).collect();
    let mut cookie = first.last().unwrap().cookie;
    loop {
        let (_, entries, eof) = fx.store.readdir(dir, cookie, 100, false).unwrap();
        for e in &entries {
            seen.push(e.name.to_string());
            cookie = e.cookie;
        }
        if eof {
            break;
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry listed twice");
    assert!(names.is_subset(&unique), "every original entry listed");

    // Resuming after a restart with the same cookie gives the same page.
    let (_, page, _) = fx.store.readdir(dir, listed[499].0, 100, false).unwrap();
    let fx = fx.reopened(super::super::StoreOptions::default());
    let (_, again, _) = fx.store.readdir(dir, listed[499].0, 100, false).unwrap();
    assert_eq!(page, again);
    let (_, none, eof) = fx.store.readdir(dir, u64::MAX, 100, false).unwrap();
    assert!(none.is_empty() && eof);
}

#[test]
fn exclusive_guarded_and_unchecked_create() {
    let mut fx = Fx::new();
    let root = fx.root();
    let (op, fid) = fx.g.create_op(root, "lock", CreateHow::Exclusive([1; 8]));
    assert_eq!(fx.one(op), Ok(Some(fid)));
    // A resend of the same exclusive create (as a new record) finds its own file.
    let (op, _) = fx.g.create_op(root, "lock", CreateHow::Exclusive([1; 8]));
    assert_eq!(fx.one(op), Ok(Some(fid)));
    let (op, _) = fx.g.create_op(root, "lock", CreateHow::Exclusive([2; 8]));
    assert_eq!(fx.one(op), Err(FsError::Exists));
    let (op, _) = fx.g.create_op(root, "lock", CreateHow::Guarded);
    assert_eq!(fx.one(op), Err(FsError::Exists));

    fx.write(fid, 0, b"data");
    let (op, _) =
        fx.g.create_op(root, "lock", CreateHow::Unchecked { truncate: false });
    assert_eq!(fx.one(op), Ok(Some(fid)));
    assert_eq!(fx.state(fid).attrs.size, 4);
    let before = fx.state(fid);
    let (op, _) =
        fx.g.create_op(root, "lock", CreateHow::Unchecked { truncate: true });
    assert_eq!(fx.one(op), Ok(Some(fid)));
    let after = fx.state(fid);
    assert_eq!(after.attrs.size, 0);
    assert_ne!(after.tag, before.tag);
    assert_eq!(
        fx.store.storage_stats().unwrap().chunks,
        0,
        "truncation freed the chunk"
    );

    fx.mkdir(root, "dir");
    let (op, _) =
        fx.g.create_op(root, "dir", CreateHow::Unchecked { truncate: false });
    assert_eq!(fx.one(op), Err(FsError::Exists));
}

#[test]
fn remove_and_rmdir() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let f = fx.create(d, "f");
    fx.write(f, 0, &[7u8; 100_000]);
    let rm = |fx: &Fx, dir: Fid, n: &str| fx.rm_op(dir, n);
    let rmdir = |fx: &Fx, dir: Fid, n: &str| fx.rmdir_op(dir, n);
    assert_eq!(fx.one(rm(&fx, root, "d")), Err(FsError::IsDir));
    assert_eq!(fx.one(rmdir(&fx, root, "d")), Err(FsError::NotEmpty));
    assert_eq!(fx.one(rmdir(&fx, d, "f")), Err(FsError::NotDir));
    assert_eq!(fx.one(rm(&fx, root, "missing")), Err(FsError::NotFound));
    assert_eq!(fx.one(rmdir(&fx, root, "missing")), Err(FsError::NotFound));
    assert_eq!(fx.one(rm(&fx, f, "x")), Err(FsError::NotDir));

    let files = fx.store.space().unwrap().files;
    assert_eq!(fx.one(rm(&fx, d, "f")), Ok(None));
    assert_eq!(fx.store.getattr(f), Err(FsError::Stale));
    assert_eq!(fx.store.space().unwrap().files, files - 1);
    let stats = fx.store.storage_stats().unwrap();
    assert_eq!(
        (stats.chunks, stats.chunk_bytes),
        (0, 0),
        "blocks and chunks freed"
    );
    assert_eq!(fx.state(d).attrs.size, 0);
    assert_eq!(fx.one(rmdir(&fx, root, "d")), Ok(None));
    assert_eq!(fx.store.getattr(d), Err(FsError::Stale));
    let r = fx.state(root);
    assert_eq!((r.attrs.size, r.attrs.nlink), (0, 2));
    assert_eq!(fx.store.space().unwrap().files, 1, "only the root is left");
}

#[test]
fn rename_cases() {
    let mut fx = Fx::new();
    let root = fx.root();
    let a = fx.mkdir(root, "a");
    let b = fx.mkdir(root, "b");
    let f1 = fx.create(a, "f1");
    let f2 = fx.create(a, "f2");
    fx.write(f2, 0, b"old target");

    // File over file in the same directory: the target is replaced and freed.
    assert_eq!(rename(&mut fx, a, "f1", a, "f2"), Ok(None));
    assert_eq!(fx.lookup(a, "f2").unwrap().fid, f1);
    assert_eq!(fx.lookup(a, "f1"), Err(FsError::NotFound));
    assert_eq!(fx.store.getattr(f2), Err(FsError::Stale));
    assert_eq!(fx.store.storage_stats().unwrap().chunks, 0);
    assert_eq!(fx.state(a).attrs.size, 1);

    // Onto itself: nothing changes.
    let before = fx.state(a);
    assert_eq!(rename(&mut fx, a, "f2", a, "f2"), Ok(None));
    assert_eq!(fx.state(a), before);

    // Across directories, moving a directory updates both parents and `..`.
    let sub = fx.mkdir(a, "sub");
    let inner = fx.mkdir(sub, "inner");
    let (va, vb) = (fx.state(a), fx.state(b));
    assert_eq!(rename(&mut fx, a, "sub", b, "moved"), Ok(None));
    assert_eq!(fx.lookup(b, "moved").unwrap().fid, sub);
    assert_eq!(fx.store.parent(sub).unwrap().fid, b);
    let (na, nb) = (fx.state(a), fx.state(b));
    assert_eq!((na.attrs.nlink, nb.attrs.nlink), (2, 3));
    assert_eq!((na.attrs.size, nb.attrs.size), (1, 1));
    assert_ne!(na.tag, va.tag);
    assert_ne!(nb.tag, vb.tag);
    assert!(na.version.total() > va.version.total() && nb.version.total() > vb.version.total());

    // Into its own subtree, or into itself.
    assert_eq!(
        rename(&mut fx, b, "moved", inner, "x"),
        Err(FsError::Invalid)
    );
    assert_eq!(rename(&mut fx, b, "moved", sub, "x"), Err(FsError::Invalid));

    // Type mismatches and a non-empty target directory.
    let e = fx.mkdir(root, "empty");
    assert_eq!(
        rename(&mut fx, root, "empty", a, "f2"),
        Err(FsError::NotDir)
    );
    assert_eq!(rename(&mut fx, a, "f2", root, "empty"), Err(FsError::IsDir));
    assert_eq!(
        rename(&mut fx, root, "empty", b, "moved"),
        Err(FsError::Exists)
    );
    assert_eq!(
        rename(&mut fx, root, "missing", b, "x"),
        Err(FsError::NotFound)
    );

    // Directory over an empty directory.
    assert_eq!(rename(&mut fx, b, "moved", root, "empty"), Ok(None));
    assert_eq!(fx.lookup(root, "empty").unwrap().fid, sub);
    assert_eq!(fx.store.getattr(e), Err(FsError::Stale));
    assert_eq!(fx.store.parent(sub).unwrap().fid, root);
    assert_eq!(fx.state(b).attrs.nlink, 2);
    assert_eq!(fx.lookup(sub, "inner").unwrap().fid, inner);

    // Across volumes is refused.
    let other = fx
        .store
        .create_volume("other", super::super::testutil::T0)
        .unwrap();
    assert_eq!(
        rename(&mut fx, a, "f2", other.root, "x"),
        Err(FsError::Invalid)
    );
}

/// LINK gives a file further names: one object (one fid, one set of blocks), nlink
/// names, each an entry of its directory; a write through one name reads through the
/// others; REMOVE of one name keeps the object until its last name goes.
#[test]
fn hard_links_share_one_object_until_the_last_name_goes() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let f = fx.create(root, "f");
    fx.write(f, 0, b"shared bytes");
    let before = fx.state(f);
    assert_eq!(fx.link(f, d, "g"), Ok(None));
    assert_eq!(fx.link(f, root, "a"), Ok(None));
    let after = fx.state(f);
    assert_eq!(after.attrs.nlink, 3);
    assert_ne!(after.tag, before.tag, "the names are replicated state");
    assert_eq!(after.attrs.ctime, fx.g.time_of_last());
    for (dir, n) in [(root, "f"), (d, "g"), (root, "a")] {
        assert_eq!(fx.lookup(dir, n).unwrap().fid, f, "{n}");
    }
    assert_eq!(fx.state(d).attrs.size, 1);
    assert_eq!(fx.state(root).attrs.nlink, 3, "a link is no subdirectory");
    check_consistency(&fx.store);

    // Removing names: the object and its data stay until the last.
    let rm = fx.rm_op(root, "f");
    assert_eq!(fx.one(rm), Ok(None));
    assert_eq!(fx.state(f).attrs.nlink, 2);
    assert_eq!(fx.read_all(f), b"shared bytes");
    let rm = fx.rm_op(d, "g");
    assert_eq!(fx.one(rm), Ok(None));
    assert_eq!(fx.state(f).attrs.nlink, 1);
    assert_eq!(fx.lookup(root, "a").unwrap().fid, f);
    check_consistency(&fx.store);
    let rm = fx.rm_op(root, "a");
    assert_eq!(fx.one(rm), Ok(None));
    assert_eq!(fx.store.getattr(f), Err(FsError::Stale));
    check_consistency(&fx.store);
}

/// What LINK refuses: a directory, a taken name, another volume, a gone object, a
/// non-directory as the directory; a name already leading to the object is done.
#[test]
fn link_refusals() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let f = fx.create(root, "f");
    let other = fx.create(root, "other");
    assert_eq!(fx.link(d, root, "d2"), Err(FsError::IsDir));
    assert_eq!(fx.link(f, root, "other"), Err(FsError::Exists));
    assert_eq!(fx.link(f, root, "f"), Ok(None), "already this name");
    assert_eq!(fx.state(f).attrs.nlink, 1);
    assert_eq!(fx.link(f, other, "x"), Err(FsError::NotDir));
    let vol2 = fx
        .store
        .create_volume("second", super::super::testutil::T0)
        .unwrap();
    let elsewhere = Fid {
        volume: vol2.id,
        ..f
    };
    assert_eq!(fx.link(elsewhere, root, "x"), Err(FsError::CrossDevice));
    let rm = fx.rm_op(root, "other");
    assert_eq!(fx.one(rm), Ok(None));
    assert_eq!(fx.link(other, root, "back"), Err(FsError::Stale));
    check_consistency(&fx.store);
}

/// RENAME and links: a name moves alone (the object keeps its others); a rename over a
/// name of a linked file takes only that name; a rename between two names of one file
/// does nothing (POSIX).
#[test]
fn rename_moves_one_name_of_a_linked_file() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let f = fx.create(root, "f");
    assert_eq!(fx.link(f, root, "f2"), Ok(None));
    assert_eq!(rename(&mut fx, root, "f2", d, "moved"), Ok(None));
    assert_eq!(fx.lookup(d, "moved").unwrap().fid, f);
    assert_eq!(fx.lookup(root, "f").unwrap().fid, f);
    assert_eq!(fx.lookup(root, "f2"), Err(FsError::NotFound));
    assert_eq!(fx.state(f).attrs.nlink, 2);
    check_consistency(&fx.store);

    // Between two names of one file: nothing changes.
    let tag = fx.state(f).tag;
    assert_eq!(rename(&mut fx, root, "f", d, "moved"), Ok(None));
    assert_eq!(fx.state(f).tag, tag);
    assert_eq!(fx.lookup(root, "f").unwrap().fid, f);

    // Over one name of a linked file: that file keeps its other name.
    let g = fx.create(root, "g");
    assert_eq!(rename(&mut fx, root, "g", root, "f"), Ok(None));
    assert_eq!(fx.lookup(root, "f").unwrap().fid, g);
    assert_eq!(fx.state(f).attrs.nlink, 1);
    assert_eq!(fx.lookup(d, "moved").unwrap().fid, f);
    check_consistency(&fx.store);
}
