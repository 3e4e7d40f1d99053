//! Tests of applying batches: resends, gaps, answers kept, capacity, versions and tags.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::super::testutil::{Fx, Gen, T0, name};
use super::super::{Store, StoreOptions};
use codetta_wire::update::{CreateHow, NewObject, Op, UpdateRecord};
use codetta_wire::{Fid, FsError, SetAttrs, Time, VvOrdering};

fn records(g: &mut Gen, ops: Vec<Op>) -> Vec<UpdateRecord> {
    ops.into_iter().map(|op| g.rec(op)).collect()
}

#[test]
fn a_resent_batch_is_answered_not_reapplied() {
    let mut fx = Fx::new();
    let root = fx.root();
    let (c, f) = fx.g.create_op(root, "f", CreateHow::Guarded);
    let (m, d) = fx.g.mkdir_op(root, "d");
    let data = b"some bytes".to_vec();
    let ops = vec![c, m, Gen::write_op(f, 0, &data), fx.rm_op(root, "missing")];
    let recs = records(&mut fx.g, ops);
    let first = fx.store.apply_batch(&recs, &data);
    assert_eq!(
        first,
        vec![Ok(Some(f)), Ok(Some(d)), Ok(None), Err(FsError::NotFound)]
    );
    let states = (fx.state(root), fx.state(f), fx.state(d));
    let again = fx.store.apply_batch(&recs, &data);
    assert_eq!(again, first, "the same answers, including the error");
    assert_eq!(
        (fx.state(root), fx.state(f), fx.state(d)),
        states,
        "nothing applied twice"
    );

    // Answers survive a restart.
    let mut fx = fx.reopened(StoreOptions::default());
    assert_eq!(fx.store.apply_batch(&recs[..2], &[]), first[..2].to_vec());

    // Past the window of kept answers, a resent create is answered with the object its
    // name maps to, and other records with plain success.
    let touch = |fid| Op::SetAttr {
        fid,
        set: SetAttrs::default(),
    };
    let many = (0..super::RECENT_OUTCOMES + 10)
        .map(|_| (touch(f), Vec::new()))
        .collect();
    assert!(fx.batch(many).iter().all(|o| *o == Ok(None)));
    let states = (fx.state(root), fx.state(f), fx.state(d));
    assert_eq!(
        fx.store.apply_batch(&recs, &data),
        vec![Ok(Some(f)), Ok(Some(d)), Ok(None), Ok(None)]
    );
    assert_eq!((fx.state(root), fx.state(f), fx.state(d)), states);
}

#[test]
fn a_gap_in_sequence_numbers_is_refused() {
    let mut fx = Fx::new();
    let root = fx.root();
    let (c1, f1) = fx.g.create_op(root, "one", CreateHow::Guarded);
    let (c2, f2) = fx.g.create_op(root, "two", CreateHow::Guarded);
    let r1 = fx.g.rec(c1);
    let r2 = fx.g.rec(c2);
    assert_eq!(
        fx.store.apply_batch(std::slice::from_ref(&r2), &[]),
        vec![Err(FsError::OutOfOrder)]
    );
    assert_eq!(fx.lookup(root, "two"), Err(FsError::NotFound));
    // In one batch a gap refuses the later record only.
    let (c4, _) = fx.g.create_op(root, "four", CreateHow::Guarded);
    fx.g.seq += 1;
    let r4 = fx.g.rec(c4);
    assert_eq!(
        fx.store.apply_batch(&[r1, r2, r4], &[]),
        vec![Ok(Some(f1)), Ok(Some(f2)), Err(FsError::OutOfOrder)]
    );
    assert_eq!(fx.lookup(root, "four"), Err(FsError::NotFound));
}

#[test]
fn a_resent_guarded_create_that_failed_still_fails() {
    let mut fx = Fx::new();
    let root = fx.root();
    let theirs = fx.create(root, "index.lock");
    let (op, _) = fx.g.create_op(root, "index.lock", CreateHow::Guarded);
    let rec = fx.g.rec(op);
    let first = fx.store.apply_batch(std::slice::from_ref(&rec), &[]);
    assert_eq!(first, vec![Err(FsError::Exists)]);
    assert_eq!(fx.store.apply_batch(&[rec], &[]), first);
    assert_eq!(fx.lookup(root, "index.lock").unwrap().fid, theirs);
}

#[test]
fn answers_are_kept_for_records_the_client_holds_and_for_failures() {
    let mut fx = Fx::new();
    let root = fx.root();
    let theirs = fx.create(root, "taken");
    // A guarded create that fails, then successes; the client trims each record once
    // answered, so every batch says it holds only that one.
    let (op, _) = fx.g.create_op(root, "taken", CreateHow::Guarded);
    let failed = fx.g.rec(op);
    let ship = |fx: &mut Fx, rec: &UpdateRecord, log_start: u64| {
        let shipped = fx.store.ship(&crate::store::Shipment::new(
            std::slice::from_ref(rec),
            &[],
            log_start,
            &[],
        ));
        shipped.unwrap().outcomes
    };
    assert_eq!(
        ship(&mut fx, &failed, failed.id.seq),
        vec![Err(FsError::Exists)]
    );
    let mut shipped = Vec::new();
    for i in 0..20 {
        let (op, fid) = fx.g.create_op(root, &format!("f{i}"), CreateHow::Guarded);
        let rec = fx.g.rec(op);
        assert_eq!(ship(&mut fx, &rec, rec.id.seq), vec![Ok(Some(fid))]);
        shipped.push((rec, fid));
    }
    let (rec, _) = shipped.last().unwrap().clone();
    let (first, first_fid) = shipped[0].clone();
    let txn = fx.store.read_txn().unwrap();
    let t = txn.open_table(super::super::tables::APPLIED).unwrap();
    let key = (rec.id.incarnation.0, root.volume.0);
    let row: super::AppliedRec =
        super::codec::decode("applied", t.get(key).unwrap().unwrap().value()).unwrap();
    let kept: Vec<u64> = row.recent.iter().map(|(s, _)| *s).collect();
    assert_eq!(kept, vec![failed.id.seq, rec.id.seq]);
    drop((t, txn));
    // A restarted client resends from further back: the failure is still a failure,
    // a success is answered from the current state.
    let log_start = failed.id.seq;
    assert_eq!(
        ship(&mut fx, &failed, log_start),
        vec![Err(FsError::Exists)]
    );
    assert_eq!(ship(&mut fx, &first, log_start), vec![Ok(Some(first_fid))]);
    assert_eq!(fx.lookup(root, "taken").unwrap().fid, theirs);
}

#[test]
fn a_write_over_capacity_is_refused_alone_and_leaves_nothing_behind() {
    let cap = 100_000;
    let mut fx = Fx::with_options(StoreOptions {
        capacity_bytes: Some(cap),
        ..StoreOptions::default()
    });
    let root = fx.root();
    let a = fx.create(root, "a");
    fx.write(a, 0, &[1u8; 65_536]);
    let space = fx.store.space().unwrap();
    assert_eq!(
        (space.total_bytes, space.used_bytes, space.free_bytes),
        (cap, 65_536, cap - 65_536)
    );

    // The create goes through; the write that could pass the capacity is refused on its
    // own, counts as answered, and changes nothing.
    let (c, b) = fx.g.create_op(root, "b", CreateHow::Guarded);
    let data = vec![2u8; 65_536];
    let recs = records(&mut fx.g, vec![c, Gen::write_op(b, 0, &data)]);
    let out = fx.store.apply_batch(&recs, &data);
    assert_eq!(out, vec![Ok(Some(b)), Err(FsError::NoSpace)]);
    assert_eq!(fx.state(b).attrs.size, 0);
    assert_eq!(fx.store.space().unwrap().used_bytes, 65_536);
    assert_eq!(fx.store.storage_stats().unwrap().chunks, 1);
    // A resend gets the same answers without applying anything.
    assert_eq!(fx.store.apply_batch(&recs, &data), out);

    // Removing a frees its chunk; the same write then fits.
    let rm = fx.rm_op(root, "a");
    let rm = fx.g.rec(rm);
    assert_eq!(fx.store.apply_batch(&[rm], &[]), vec![Ok(None)]);
    assert_eq!(fx.store.space().unwrap().used_bytes, 0);
    let w = fx.g.rec(Gen::write_op(b, 0, &data));
    assert_eq!(fx.store.apply_batch(&[w], &data), vec![Ok(None)]);
    assert_eq!(fx.read_all(b), data);
}

#[test]
fn data_of_the_wrong_length_refuses_the_batch() {
    let mut fx = Fx::new();
    let root = fx.root();
    let (c, f) = fx.g.create_op(root, "f", CreateHow::Guarded);
    let recs = records(&mut fx.g, vec![c, Gen::write_op(f, 0, b"abc")]);
    for data in [&b"ab"[..], &b"abcd"[..]] {
        let out = fx.store.apply_batch(&recs, data);
        assert!(out.iter().all(|o| matches!(o, Err(FsError::Malformed(_)))));
    }
    assert_eq!(fx.lookup(root, "f"), Err(FsError::NotFound));
    assert_eq!(
        fx.store.apply_batch(&recs, b"abc"),
        vec![Ok(Some(f)), Ok(None)]
    );
    assert!(fx.store.apply_batch(&[], &[]).is_empty());
}

#[test]
fn unknown_volume_and_cross_volume_fids() {
    let mut fx = Fx::new();
    let mut g = Gen::new(codetta_wire::VolumeId(99), fx.g.incarnation);
    let ghost = Fid::root(codetta_wire::VolumeId(99));
    let (op, _) = g.create_op(ghost, "x", CreateHow::Guarded);
    let rec = g.rec(op);
    assert_eq!(
        fx.store.apply_batch(&[rec], &[]),
        vec![Err(FsError::UnknownVolume)]
    );
    // The client's sequence for the real volume is untouched.
    let f = fx.create(fx.root(), "ok");
    assert_eq!(fx.lookup(fx.root(), "ok").unwrap().fid, f);
}

/// Every change bumps the changed objects' vectors by this replica and changes their
/// tags; reading does not.
#[test]
fn versions_and_tags_follow_every_change() {
    let mut fx = Fx::new();
    let root = fx.root();
    let replica = fx.store.replica_of(fx.vol.id).unwrap();
    let r0 = fx.state(root);
    let f = fx.create(root, "f");
    let r1 = fx.state(root);
    assert_eq!(r1.version.compare(&r0.version), VvOrdering::Dominates);
    assert_eq!(r1.version.get(replica), r0.version.get(replica) + 1);
    assert_ne!(r1.tag, r0.tag);
    let f0 = fx.state(f);
    assert_eq!(f0.version.get(replica), 1);

    let mut last = f0;
    let changes: [fn(&mut Fx, Fid); 5] = [
        |fx, f| fx.write(f, 0, b"abc"),
        |fx, f| fx.write(f, 1, b"X"),
        |fx, f| fx.truncate(f, 100_000),
        |fx, f| fx.truncate(f, 2),
        |fx, f| {
            let set = SetAttrs {
                mode: Some(0o600),
                ..SetAttrs::default()
            };
            assert_eq!(fx.one(Op::SetAttr { fid: f, set }), Ok(None));
        },
    ];
    for change in changes {
        change(&mut fx, f);
        let now = fx.state(f);
        assert_eq!(now.version.compare(&last.version), VvOrdering::Dominates);
        assert_ne!(now.tag, last.tag);
        last = now;
    }
    assert_eq!(
        fx.state(root).version,
        r1.version,
        "file changes leave the directory alone"
    );
    let _ = fx.store.read(f, 0, 10).unwrap();
    assert_eq!(fx.state(f), last, "reading changes nothing");
}

/// Two stores that apply the same records hold equal replicated state.
#[test]
fn the_same_records_give_the_same_tags_on_two_stores() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(&d.path().join("s.redb"), StoreOptions::default()).unwrap())
        .collect();
    let vol = stores[0].create_volume("vol", T0).unwrap();
    let replica = vol.vsg[0].replica;
    let vols = [
        vol.clone(),
        stores[1].create_replica(&vol, replica, T0).unwrap(),
    ];
    assert_eq!(vols[0], vols[1]);
    let root = vols[0].root;
    let mut g = Gen::new(vols[0].id, codetta_wire::Incarnation(7));
    let mut batches: Vec<(Vec<UpdateRecord>, Vec<u8>)> = Vec::new();
    let (c1, f1) = g.create_op(root, "f1", CreateHow::Exclusive([3; 8]));
    let (m1, d1) = g.mkdir_op(root, "d1");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    batches.push((
        records(&mut g, vec![c1, m1, Gen::write_op(f1, 10, &big)]),
        big.clone(),
    ));
    let (c2, f2) = g.create_op(d1, "f2", CreateHow::Unchecked { truncate: false });
    let sym = Op::Symlink {
        dir: d1,
        name: name("s"),
        fid: g.fid(),
        new: NewObject {
            mode: 0o777,
            uid: 0,
            gid: 0,
        },
        target: b"f2".to_vec(),
    };
    let ops = vec![
        c2,
        sym,
        Gen::write_op(f2, 70_000, b"tail"),
        Op::Rename {
            from_dir: root,
            from_name: name("f1"),
            to_dir: d1,
            to_name: name("renamed"),
            fid: f1,
            replaces: None,
        },
        Op::SetAttr {
            fid: f2,
            set: SetAttrs {
                size: Some(65_540),
                mtime: Some(Time { secs: 42, nanos: 1 }),
                ..SetAttrs::default()
            },
        },
    ];
    batches.push((records(&mut g, ops), b"tail".to_vec()));
    for s in &stores {
        for (recs, data) in &batches {
            assert!(s.apply_batch(recs, data).iter().all(Result::is_ok));
        }
    }
    let all = [root, f1, d1, f2];
    for fid in all {
        let (a, b) = (
            stores[0].getattr(fid).unwrap(),
            stores[1].getattr(fid).unwrap(),
        );
        assert_eq!(a, b, "{fid}");
    }
    let (_, la, _) = stores[0].readdir(d1, 0, 100, true).unwrap();
    let (_, lb, _) = stores[1].readdir(d1, 0, 100, true).unwrap();
    assert_eq!(la, lb);
    assert_eq!(la.len(), 3);
}
