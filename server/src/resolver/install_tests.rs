//! A replica between the first and the last step of an install (rule 4): its state is a
//! mixture no update made (attributes or some blocks of the state it receives, its old
//! version), so it must not serve that state, take client updates on it, or pass it on to
//! other replicas, whether the coordinator is still at work, lost its lease, or died.
//! Each case stops a coordinator at the step in question by running the steps by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::decide::{Decision, decide};
use super::tests::{Trio, payload, trio};
use super::{PieceSource, ReplicaAccess, Resolver};
use crate::store::testutil::Gen;
use crate::store::{Store, StoreOptions};
use codetta_wire::replica::{ReplicaView, ViewBody};
use codetta_wire::update::{CreateHow, Op, UpdateRecord};
use codetta_wire::{Fid, FsError, Incarnation, VersionVector};
use std::sync::Arc;

const MIB: usize = 1 << 20;

impl Trio {
    /// Applies `ops` on every store in `to` and returns each store's answers.
    fn answers(
        &mut self,
        to: &[usize],
        ops: Vec<Op>,
        data: &[u8],
    ) -> Vec<Vec<Result<(), FsError>>> {
        let records: Vec<UpdateRecord> = ops.into_iter().map(|op| self.g.rec(op)).collect();
        // Replicas that missed earlier records skip them, as after a partition.
        let log_start = records.first().map_or(1, |r| r.id.seq);
        to.iter()
            .map(|&i| {
                let out = self.stores[i]
                    .ship(&crate::store::Shipment::new(&records, data, log_start, &[]))
                    .unwrap();
                out.outcomes.into_iter().map(|o| o.map(|_| ())).collect()
            })
            .collect()
    }

    /// Store `i` after a crash: closed and opened again from its file.
    fn reopen(&mut self, i: usize) {
        let path = self.dirs[i].path().join("s.redb");
        let old = std::mem::replace(
            &mut self.stores[i],
            Arc::new(
                Store::open(
                    &self.dirs[i].path().join("other.redb"),
                    StoreOptions::default(),
                )
                .unwrap(),
            ),
        );
        drop(match Arc::try_unwrap(old) {
            Ok(store) => store,
            Err(_) => panic!("no other handle on the store"),
        });
        self.stores[i] = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
    }

    /// Replica `i`'s bytes of `fid`, whole, or why it refused.
    fn read_whole(&self, i: usize, fid: Fid) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        loop {
            let (_, data, eof) = self.stores[i].read(fid, out.len() as u64, MIB as u32)?;
            out.extend_from_slice(&data);
            if eof || data.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Every replica's bytes of `fid`, or why it refused.
    fn read_each(&self, fid: Fid) -> Vec<Result<Vec<u8>, FsError>> {
        (0..3).map(|i| self.read_whole(i, fid)).collect()
    }
}

/// The first piece of `src`'s blocks of `fid` installed on `dst`, as a coordinator does
/// before it is cut short (`dst` at version `expect`).
async fn first_piece<R: ReplicaAccess>(src: &R, dst: &R, fid: Fid, expect: &VersionVector) {
    let mut pieces = PieceSource::new(src, fid, dst, fid).await.unwrap();
    let piece = pieces.next().await.unwrap().expect("a piece to install");
    dst.install_blocks(fid, expect, &piece.blocks, &piece.chunks)
        .await
        .unwrap();
}

/// The views `r` gathers of `fid` and what it decides from them, as a coordinator does
/// before it installs anything.
async fn gathered(
    r: &Resolver<'_, crate::resolver::LocalReplica>,
    fid: Fid,
) -> (Vec<(usize, ReplicaView)>, Decision) {
    let views = r.gather(fid).await;
    let only: Vec<ReplicaView> = views.iter().map(|(_, v)| v.clone()).collect();
    let decision = decide(&only, r.coordinator);
    (views, decision)
}

fn live_meta(view: &ReplicaView) -> codetta_wire::replica::ObjectMeta {
    match &view.body {
        ViewBody::Live(m) => m.clone(),
        other => panic!("not live: {other:?}"),
    }
}

/// A file replica 2 never had (a replica being filled, or back from a crash) is created
/// there by its attributes first, then its blocks in pieces: until its version is in, it
/// reads as `Incomplete`, also after a crash between the pieces, and a client write to it
/// there is refused (the other replicas take it). The next resolution makes it whole.
#[test]
fn a_file_being_installed_is_not_served_until_its_version_is_in() {
    let mut t = trio();
    let (c, f) = t.g.create_op(t.vol.root, "new", CreateHow::Guarded);
    let base = payload(1, 40 * MIB);
    t.apply(&[0, 1], vec![c, Gen::write_op(f, 0, &base)], &base);
    {
        let members = t.members(&[0, 1, 2]);
        let r = Resolver::new(&members, members[0].replica_id());
        futures::executor::block_on(async {
            let views = r.gather(f).await;
            let meta = live_meta(&views[0].1);
            let none = VersionVector::new();
            members[2].install_meta(f, &none, &meta).await.unwrap();
            assert_eq!(t.stores[2].read(f, 0, 4096), Err(FsError::Incomplete));
            first_piece(&members[0], &members[2], f, &none).await;
        });
    }
    assert_eq!(t.stores[2].read(f, 0, 4096), Err(FsError::Incomplete));
    assert!(t.stores[2].view(f).unwrap().installing);
    t.reopen(2);
    assert_eq!(
        t.stores[2].read(f, 0, 4096),
        Err(FsError::Incomplete),
        "the mark survives a crash between the pieces"
    );
    // A client writes while replica 2 still holds a mixture: refused there only.
    let change = payload(7, 4096);
    let answers = t.answers(&[0, 1, 2], vec![Gen::write_op(f, 4096, &change)], &change);
    assert_eq!(
        answers,
        vec![vec![Ok(())], vec![Ok(())], vec![Err(FsError::Incomplete)]]
    );
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    let mut want = base.clone();
    want[4096..8192].copy_from_slice(&change);
    for (i, got) in t.read_each(f).into_iter().enumerate() {
        assert!(got.as_deref() == Ok(&want[..]), "replica {i} reads wrong");
    }
    assert!(!t.stores[2].view(f).unwrap().installing);
}

/// Replicas 1 and 2 missed an overwrite that kept the file's size; a coordinator
/// installed replica 0's attributes (its mtime) on replica 2 and was cut short before the
/// blocks. Replica 2 holds old bytes under the new mtime: marked as being installed, it is
/// not served, and resolving it with replica 1 alone (replica 0 away) makes no conflict of
/// it: the interleaving simulation's seed 189 kept it as a version beside replica 1's, as
/// the same updates with another state.
#[test]
fn an_install_cut_short_after_a_same_size_overwrites_attributes_is_not_served() {
    let mut t = trio();
    let (f, base) = t.file_on_all("f", 4 * MIB);
    let change = payload(9, 4096);
    t.apply(&[0], vec![Gen::write_op(f, MIB as u64, &change)], &change);
    {
        let members = t.members(&[0, 1, 2]);
        let r = Resolver::new(&members, members[0].replica_id());
        futures::executor::block_on(async {
            let (views, _) = gathered(&r, f).await;
            let newer = live_meta(&views[0].1);
            assert_eq!(newer.size, base.len() as u64, "the size is kept");
            members[2]
                .install_meta(f, &views[2].1.version, &newer)
                .await
                .unwrap();
        });
    }
    assert!(t.stores[2].view(f).unwrap().installing);
    assert_eq!(t.stores[2].read(f, 0, 4096), Err(FsError::Incomplete));
    let s = t.resolve(&[1, 2], &[f]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    let s = t.resolve(&[0, 1, 2], &[f, t.vol.root]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    let mut want = base.clone();
    want[MIB..MIB + 4096].copy_from_slice(&change);
    for (i, got) in t.read_each(f).into_iter().enumerate() {
        assert!(got.as_deref() == Ok(&want[..]), "replica {i} reads wrong");
    }
}

/// Replicas 1 and 2 missed a hard link of a file (a change of its names and ctime, not
/// of its data or mtime); a coordinator installed replica 0's names on replica 2 and was
/// cut short before the version. Marked as being installed, replica 2's state is not
/// taken for another version of the same updates when it is resolved with replica 1 alone
/// (the interleaving simulation's seed 535 made a conflict copy of it).
#[test]
fn an_install_cut_short_after_a_links_names_makes_no_conflict() {
    let mut t = trio();
    let (f, _) = t.file_on_all("f", 4096);
    let link = Op::Link {
        dir: t.vol.root,
        name: crate::store::testutil::name("g"),
        fid: f,
    };
    t.apply(&[0], vec![link], &[]);
    {
        let members = t.members(&[0, 1, 2]);
        let r = Resolver::new(&members, members[0].replica_id());
        futures::executor::block_on(async {
            let (views, _) = gathered(&r, f).await;
            let newer = live_meta(&views[0].1);
            assert_eq!(newer.links.len(), 1, "two names");
            members[2]
                .install_meta(f, &views[2].1.version, &newer)
                .await
                .unwrap();
        });
    }
    assert!(t.stores[2].view(f).unwrap().installing);
    let s = t.resolve(&[1, 2], &[f]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    let s = t.resolve(&[0, 1, 2], &[f, t.vol.root]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    for i in 0..3 {
        assert_eq!(t.fid_of(i, t.vol.root, "g"), Some(f), "replica {i}");
    }
}

/// A replica retired while a coordinator still counts it (a drain's group change
/// committed during a resolution) refuses installs as an unknown volume. Before, its
/// purged objects made a new file's install there blocked on its missing directory, which
/// the coordinator, resolving that directory, took for a placement cycle: it moved the
/// acknowledged file to a conflict name on the replicas that stay (the interleaving
/// simulation's seed 481: the file's name read back absent).
#[test]
fn a_retired_replica_refuses_installs() {
    let mut t = trio();
    let (c, f) = t.g.create_op(t.vol.root, "f", CreateHow::Guarded);
    t.apply(&[0, 1], vec![c], &[]);
    t.stores[2].retire_replica(t.vol.id).unwrap();
    while t.stores[2].purge_step(t.vol.id, 1000).unwrap() {}
    let members = t.members(&[0, 1, 2]);
    futures::executor::block_on(async {
        let meta = live_meta(&members[0].view(f).await.unwrap());
        let none = VersionVector::new();
        let refused = members[2].install_meta(f, &none, &meta).await;
        assert!(
            matches!(refused, Err(ref e) if e.to_string().contains("unknown volume")),
            "{refused:?}"
        );
    });
    let none = VersionVector::new();
    let answer = t.stores[2].install_version(f, &none, &none, &Default::default());
    assert_eq!(answer.map(|_| ()), Err(FsError::UnknownVolume));
    // The file stays where it was made on the replicas of the group.
    let s = t.resolve(&[0, 1], &[f, t.vol.root]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    assert_eq!(t.fid_of(0, t.vol.root, "f"), Some(f));
}

/// Replicas 0 and 1,2 wrote a file concurrently; a coordinator made the conflict copy of
/// replica 0's version, then was cut short installing the kept version over it (one piece
/// of three in). The next resolution neither keeps that mixture nor copies it: the file is
/// the kept version everywhere and the one copy holds replica 0's bytes.
#[test]
fn an_install_cut_short_on_a_conflict_loser_makes_no_copy_of_the_mixture() {
    let mut t = trio();
    let (f, _) = t.file_on_all("f", 40 * MIB);
    let mut a = Gen::new(t.vol.id, Incarnation(5));
    let mut b = Gen::new(t.vol.id, Incarnation(6));
    let offsets = [MIB as u64, 17 * MIB as u64, 33 * MIB as u64];
    for (client, to, seed) in [(&mut a, &[0][..], 5u8), (&mut b, &[1, 2][..], 6u8)] {
        let data = payload(seed, MIB);
        let ops = offsets
            .iter()
            .map(|o| Gen::write_op(f, *o, &data))
            .collect();
        let all: Vec<u8> = (0..3).flat_map(|_| data.iter().copied()).collect();
        t.apply_as(client, to, ops, &all);
    }
    let (from_a, from_b) = (t.read_whole(0, f).unwrap(), t.read_whole(1, f).unwrap());
    {
        let members = t.members(&[1, 0, 2]);
        let mut r = Resolver::new(&members, members[0].replica_id());
        futures::executor::block_on(async {
            let (views, decision) = gathered(&r, f).await;
            let Decision::Conflict { keep, copies, .. } = decision else {
                panic!("a conflict");
            };
            assert_eq!(views[keep].0, 0, "replicas 1 and 2 hold the kept version");
            assert_eq!(copies.len(), 1);
            r.make_copy(f, &views, copies[0]).await.unwrap();
            let (_, loser) = &views[copies[0]];
            let kept = live_meta(&views[keep].1);
            members[1]
                .install_meta(f, &loser.version, &kept)
                .await
                .unwrap();
            first_piece(&members[0], &members[1], f, &loser.version).await;
        });
    }
    assert_eq!(t.stores[0].read(f, 0, 4096), Err(FsError::Incomplete));
    let s = t.resolve(&[0, 1, 2], &[f, t.vol.root]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    t.assert_equal(&[0, 1, 2], t.vol.root);
    let (_, entries, _) = t.stores[2].readdir(t.vol.root, 0, 100, false).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names.len(), 2, "the file and one copy: {names:?}");
    for e in &entries {
        let want = if e.fid == f { &from_b } else { &from_a };
        for (i, got) in t.read_each(e.fid).into_iter().enumerate() {
            assert!(got.as_deref() == Ok(&want[..]), "{} on replica {i}", e.name);
        }
    }
}

/// A client writes to the source while the coordinator copies from it (replica 2 could
/// not be reached by that client): the destination holds part of the old state and part
/// of the new, so it gets no version (and stays unserved) until a later attempt copies a
/// state that held still.
#[test]
fn a_state_copied_while_the_source_changed_gets_no_version() {
    let mut t = trio();
    let (f, base) = t.file_on_all("f", 4 * MIB);
    t.missed_by_2(f, 2, 0, 4096);
    let change = payload(3, 4096);
    // Replica 2 first: it would take its version before anyone else.
    let members = t.members(&[2, 0, 1]);
    let mut r = Resolver::new(&members, members[0].replica_id());
    futures::executor::block_on(async {
        let (views, decision) = gathered(&r, f).await;
        assert!(
            matches!(decision, Decision::Install { winner: 1, .. }),
            "{decision:?}"
        );
        // The write lands on the source after the views were gathered, before the copy.
        let g = &mut t.g;
        let record = g.rec(Gen::write_op(f, MIB as u64, &change));
        for i in [0, 1] {
            let out = t.stores[i]
                .ship(&crate::store::Shipment::new(
                    std::slice::from_ref(&record),
                    &change,
                    1,
                    &[],
                ))
                .unwrap();
            assert!(out.outcomes[0].is_ok());
        }
        assert_eq!(
            r.execute(f, &views, decision).await.err(),
            Some(FsError::VersionChanged.into())
        );
    });
    assert_eq!(t.stores[2].read(f, 0, 4096), Err(FsError::Incomplete));
    drop(members);
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    let mut want = base;
    want[..4096].copy_from_slice(&payload(2, 4096));
    want[MIB..MIB + 4096].copy_from_slice(&change);
    assert!(t.read_whole(2, f).unwrap() == want, "replica 2 reads wrong");
}

/// The installs' version check (rule 6). Replica 2 missed a write; a coordinator gathered
/// the views and decided to install replicas 0 and 1's state on 2. Before it does, another
/// client, which reaches replica 2 alone, writes the file there: replica 2 is that write's
/// only holder. The install must find the version moved and stop (it would otherwise
/// overwrite an acknowledged write nobody else has); the next resolution keeps both
/// versions, so every replica serves the write, in the file or in its conflict copy.
#[test]
fn an_install_over_a_state_a_client_changed_after_the_views_stops() {
    let mut t = trio();
    let (f, mut lones) = t.file_on_all("f", 4 * MIB);
    t.missed_by_2(f, 2, 0, 4096);
    let missed = t.read_whole(0, f).unwrap();
    let change = payload(3, 4096);
    lones[2 * MIB..2 * MIB + 4096].copy_from_slice(&change);
    let mut lone = Gen::new(t.vol.id, Incarnation(7));
    let members = t.members(&[0, 1, 2]);
    let mut r = Resolver::new(&members, members[0].replica_id());
    futures::executor::block_on(async {
        let (views, decision) = gathered(&r, f).await;
        assert!(
            matches!(&decision, Decision::Install { stale, .. } if stale == &[2]),
            "{decision:?}"
        );
        t.apply_as(
            &mut lone,
            &[2],
            vec![Gen::write_op(f, 2 * MIB as u64, &change)],
            &change,
        );
        assert_eq!(
            r.execute(f, &views, decision).await.err(),
            Some(FsError::VersionChanged.into())
        );
    });
    drop(members);
    let s = t.resolve(&[0, 1, 2], &[f, t.vol.root]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    t.assert_equal(&[0, 1, 2], t.vol.root);
    let (_, entries, _) = t.stores[0].readdir(t.vol.root, 0, 100, false).unwrap();
    assert_eq!(
        entries.len(),
        2,
        "the file and one conflict copy: {entries:?}"
    );
    let copy = entries.iter().find(|e| e.fid != f).unwrap().fid;
    let mut want = vec![missed, lones];
    want.sort();
    for i in 0..3 {
        let mut got = vec![t.read_whole(i, f).unwrap(), t.read_whole(i, copy).unwrap()];
        got.sort();
        assert!(got == want, "replica {i} lost a version");
    }
}
/// A placement conflict moves its source first: new conflict names (`install_meta`, which
/// marks the file) and then its version. Cut short between the two on the only replica
/// that holds the file whole, no replica holds it whole any more: `decide` finds no
/// whole view, the file is served nowhere and its old name stays taken for ever (the replication simulation's seeds 3 and 60845 reached it under
/// another schedule, session 23).
/// Expected once fixed: after resolution the file reads whole under some name.
#[test]
#[ignore = "known defect (session 23): a placement conflict cut short on its only whole holder"]
fn a_placement_conflict_cut_short_on_its_only_whole_holder_is_served_again() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let data = payload(7, 4096);
    t.apply(&[0], vec![c, Gen::write_op(f, 0, &data)], &data);
    {
        let members = t.members(&[0, 1, 2]);
        let r = Resolver::new(&members, members[0].replica_id());
        futures::executor::block_on(async {
            let (views, _) = gathered(&r, f).await;
            let mut moved = live_meta(&views[0].1);
            crate::conflict::to_conflict_names(&mut moved, &views[0].1.tag.0);
            members[0]
                .install_meta(f, &views[0].1.version, &moved)
                .await
                .unwrap();
        });
    }
    assert!(t.stores[0].view(f).unwrap().installing, "the move marks it");
    let s = t.resolve(&[0, 1, 2], &[f, root]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    let served: Vec<bool> = t
        .read_each(f)
        .iter()
        .map(|r| r.as_ref().is_ok_and(|d| d == &data))
        .collect();
    assert!(
        served.contains(&true),
        "served nowhere: {:?}",
        t.read_each(f)
    );
}
