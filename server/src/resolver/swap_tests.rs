//! Names swapped between objects while a replica was away: each object's new name is held,
//! on the stale replica, by the other one. Nothing happened concurrently, so resolution must
//! settle it without a conflict copy (the interleaving simulation's seed 833 made one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::Resolver;
use super::tests::trio;
use crate::store::testutil::{Gen, check_consistency, name};
use codetta_wire::Fid;
use codetta_wire::update::{CreateHow, Op};

/// RENAME of `fid` from `a` to `b` in `dir`, over `replaces`.
fn rename(dir: Fid, a: &str, b: &str, fid: Fid, replaces: Option<Fid>) -> Op {
    Op::Rename {
        from_dir: dir,
        from_name: name(a),
        to_dir: dir,
        to_name: name(b),
        fid,
        replaces,
    }
}

/// `mv a t; mv b a; mv t b` on two replicas while the third is away.
#[test]
fn two_files_that_swapped_names_settle_without_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (ca, a) = t.g.create_op(root, "a", CreateHow::Guarded);
    let (cb, b) = t.g.create_op(root, "b", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![ca, cb, Gen::write_op(a, 0, b"A")], b"A");
    t.apply(&[0, 1, 2], vec![Gen::write_op(b, 0, b"B")], b"B");
    let swap = vec![
        rename(root, "a", "t", a, None),
        rename(root, "b", "a", b, None),
        rename(root, "t", "b", a, None),
    ];
    t.apply(&[0, 1], swap, &[]);
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for i in 0..3 {
        assert_eq!(t.fid_of(i, root, "a"), Some(b), "on {i}");
        assert_eq!(t.fid_of(i, root, "b"), Some(a), "on {i}");
        assert_eq!(t.fid_of(i, root, "t"), None, "on {i}");
        let (_, entries, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(entries.len(), 2, "no name left behind on {i}");
        assert_eq!(t.read(i, a), b"A");
        assert_eq!(t.read(i, b), b"B");
        check_consistency(&t.stores[i]);
    }
    for fid in [root, a, b] {
        t.assert_equal(&[0, 1, 2], fid);
    }
}

/// Seed 833's shape: two hard-linked files each renamed over a name of the other (which
/// keeps its other name), then one linked again: `f` = {f, r} and `g` = {l, m} become
/// `f` = {m, n} and `g` = {f}.
#[test]
fn hard_linked_files_renamed_over_each_others_names_settle_without_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (cf, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let (cg, g) = t.g.create_op(root, "l", CreateHow::Guarded);
    let link = |fid: Fid, n: &str| Op::Link {
        dir: root,
        name: name(n),
        fid,
    };
    t.apply(
        &[0, 1, 2],
        vec![
            cf,
            cg,
            link(f, "r"),
            link(g, "m"),
            Gen::write_op(f, 0, b"F"),
        ],
        b"F",
    );
    let ops = vec![
        rename(root, "r", "m", f, Some(g)),
        rename(root, "l", "f", g, Some(f)),
        link(f, "n"),
    ];
    t.apply(&[0, 1], ops, &[]);
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for i in 0..3 {
        assert_eq!(t.fid_of(i, root, "m"), Some(f), "on {i}");
        assert_eq!(t.fid_of(i, root, "n"), Some(f), "on {i}");
        assert_eq!(t.fid_of(i, root, "f"), Some(g), "on {i}");
        for gone in ["r", "l"] {
            assert_eq!(t.fid_of(i, root, gone), None, "{gone} on {i}");
        }
        let (_, entries, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(entries.len(), 3, "no name left behind on {i}");
        assert_eq!(t.stores[i].getattr(f).unwrap().attrs.nlink, 2);
        assert_eq!(t.read(i, f), b"F");
        check_consistency(&t.stores[i]);
    }
    for fid in [root, f, g] {
        t.assert_equal(&[0, 1, 2], fid);
    }
}

/// The same swap with two directories, each holding a file.
#[test]
fn two_directories_that_swapped_names_settle_without_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (ma, a) = t.g.mkdir_op(root, "a");
    let (mb, b) = t.g.mkdir_op(root, "b");
    let (cx, x) = t.g.create_op(a, "x", CreateHow::Guarded);
    let (cy, y) = t.g.create_op(b, "y", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![ma, mb, cx, cy], &[]);
    let swap = vec![
        rename(root, "a", "t", a, None),
        rename(root, "b", "a", b, None),
        rename(root, "t", "b", a, None),
    ];
    t.apply(&[0, 1], swap, &[]);
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for i in 0..3 {
        assert_eq!(t.fid_of(i, root, "a"), Some(b), "on {i}");
        assert_eq!(t.fid_of(i, root, "b"), Some(a), "on {i}");
        assert_eq!(t.fid_of(i, a, "x"), Some(x), "on {i}");
        assert_eq!(t.fid_of(i, b, "y"), Some(y), "on {i}");
        let (_, entries, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(entries.len(), 2, "no name left behind on {i}");
        check_consistency(&t.stores[i]);
    }
    for fid in [root, a, b, x, y] {
        t.assert_equal(&[0, 1, 2], fid);
    }
}

/// A coordinator cut short after it moved one file to its temporary name: that replica
/// neither serves the moved file nor passes its state on, and the next resolution settles
/// the swap without a conflict and without the temporary name.
#[test]
fn a_swap_cut_short_after_the_temporary_name_settles_later() {
    let mut t = trio();
    let root = t.vol.root;
    let (ca, a) = t.g.create_op(root, "a", CreateHow::Guarded);
    let (cb, b) = t.g.create_op(root, "b", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![ca, cb, Gen::write_op(a, 0, b"A")], b"A");
    let swap = vec![
        rename(root, "a", "t", a, None),
        rename(root, "b", "a", b, None),
        rename(root, "t", "b", a, None),
    ];
    t.apply(&[0, 1], swap, &[]);
    {
        let members = t.members(&[0, 1, 2]);
        let mut r = Resolver::new(&members, members[0].replica_id());
        let moved = futures::executor::block_on(r.untangle(b, a)).unwrap();
        assert!(moved);
    }
    assert!(t.stores[2].view(a).unwrap().installing);
    assert_eq!(t.fid_of(2, root, "a"), None, "name freed for b");
    assert!(
        t.stores[2].read(a, 0, 10).is_err(),
        "the moved file is not served"
    );
    let (_, entries, _) = t.stores[2].readdir(root, 0, 100, false).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.fid == a && e.name.to_string().contains(".moving-")),
        "{entries:?}"
    );
    let s = t.resolve(&[2, 1], &[a, b, root]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    let s = t.resolve(&[0, 1, 2], &[a, b, root]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for i in 0..3 {
        assert_eq!(t.fid_of(i, root, "a"), Some(b), "on {i}");
        assert_eq!(t.fid_of(i, root, "b"), Some(a), "on {i}");
        let (_, entries, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(
            entries.len(),
            2,
            "no temporary name left on {i}: {entries:?}"
        );
        assert_eq!(t.read(i, a), b"A");
        check_consistency(&t.stores[i]);
    }
    for fid in [root, a, b] {
        t.assert_equal(&[0, 1, 2], fid);
    }
}
