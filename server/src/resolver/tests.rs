//! Resolution on three stores in this process (no sockets): each case brings replicas
//! apart the way a partition or a crash does, resolves, and checks that every replica ends
//! with equal vectors and tags and that nothing acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{LocalReplica, Resolver};
use crate::clock::{Clock, ManualClock};
use crate::store::testutil::{Gen, T0, check_consistency, name};
use crate::store::{Store, StoreOptions};
use crate::volatile::Volatile;
use codetta_wire::message::{ReplicaMember, ResolveSummary, VolumeInfo};
use codetta_wire::replica::BlockEntry;
use codetta_wire::update::{CreateHow, Op, UpdateRecord};
use codetta_wire::{Fid, FsError, Incarnation, ReplicaId, VolumeId};
use std::sync::Arc;
use tempfile::TempDir;

pub(super) struct Trio {
    pub(super) dirs: Vec<TempDir>,
    pub(super) stores: Vec<Arc<Store>>,
    pub(super) vol: VolumeInfo,
    pub(super) g: Gen,
    /// The clock of every store and of the resolvers the tests make.
    pub(super) clock: Arc<ManualClock>,
    /// Each store's promises and leases.
    pub(super) volatiles: Vec<Arc<Volatile>>,
}

pub(super) fn trio() -> Trio {
    trio_with(StoreOptions::default())
}

fn trio_with(options: StoreOptions) -> Trio {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let clock = ManualClock::new(1_800_000_000_000);
    let stores: Vec<Arc<Store>> = dirs
        .iter()
        .map(|d| {
            let path = d.path().join("s.redb");
            Arc::new(Store::open_with_clock(&path, options.clone(), clock.clone()).unwrap())
        })
        .collect();
    let id = VolumeId(42);
    let vol = VolumeInfo {
        id,
        name: "v".into(),
        root: Fid::root(id),
        vsg: (0..3)
            .map(|i| ReplicaMember {
                replica: ReplicaId(10 + i),
                server: format!("s{i}"),
            })
            .collect(),
        epoch: 0,
        addrs: Vec::new(),
    };
    for (i, s) in stores.iter().enumerate() {
        s.create_replica(&vol, vol.vsg[i].replica, T0).unwrap();
    }
    Trio {
        dirs,
        stores,
        vol,
        g: Gen::new(id, Incarnation(3)),
        volatiles: (0..3).map(|_| Volatile::new(clock.clone())).collect(),
        clock,
    }
}

impl Trio {
    /// Applies `ops` (with `data`) on the stores in `to`, as one batch each.
    pub(super) fn apply(&mut self, to: &[usize], ops: Vec<Op>, data: &[u8]) {
        let records: Vec<UpdateRecord> = ops.into_iter().map(|op| self.g.rec(op)).collect();
        for &i in to {
            let out = self.stores[i]
                .ship(&crate::store::Shipment::new(&records, data, 1, &[]))
                .unwrap()
                .outcomes;
            assert!(out.iter().all(Result::is_ok), "store {i}: {out:?}");
        }
    }

    /// Like `apply` but with a second client (its own incarnation), for concurrent updates.
    pub(super) fn apply_as(&self, g: &mut Gen, to: &[usize], ops: Vec<Op>, data: &[u8]) {
        let records: Vec<UpdateRecord> = ops.into_iter().map(|op| g.rec(op)).collect();
        for &i in to {
            let out = self.stores[i]
                .ship(&crate::store::Shipment::new(&records, data, 1, &[]))
                .unwrap()
                .outcomes;
            assert!(out.iter().all(Result::is_ok), "store {i}: {out:?}");
        }
    }

    pub(super) fn members(&self, reachable: &[usize]) -> Vec<LocalReplica> {
        reachable
            .iter()
            .map(|&i| {
                LocalReplica::new(
                    self.stores[i].clone(),
                    self.volatiles[i].clone(),
                    self.vol.vsg[i].replica,
                    &format!("s{i}"),
                )
            })
            .collect()
    }

    /// Resolves `fids` with store `reachable[0]` coordinating.
    pub(super) fn resolve(&self, reachable: &[usize], fids: &[Fid]) -> ResolveSummary {
        let members = self.members(reachable);
        let me = members[0].replica_id();
        let mut r = Resolver::new(&members, me).with_clock(self.clock.clone());
        futures::executor::block_on(async {
            for f in fids {
                r.resolve(*f).await;
            }
        });
        r.summary
    }

    pub(super) fn fid_of(&self, i: usize, dir: Fid, n: &str) -> Option<Fid> {
        self.stores[i].lookup(dir, &name(n)).ok().map(|s| s.fid)
    }

    /// Every replica in `which` holds the same object `fid`: same tag, same vector.
    pub(super) fn assert_equal(&self, which: &[usize], fid: Fid) {
        let views: Vec<_> = which
            .iter()
            .map(|&i| self.stores[i].view(fid).unwrap())
            .collect();
        for v in &views[1..] {
            assert_eq!(v.tag, views[0].tag, "{fid}: tags differ: {views:#?}");
            assert_eq!(
                v.version, views[0].version,
                "{fid}: versions differ: {views:#?}"
            );
        }
        for &i in which {
            check_consistency(&self.stores[i]);
        }
    }

    pub(super) fn read(&self, i: usize, fid: Fid) -> Vec<u8> {
        let size = self.stores[i].getattr(fid).unwrap().attrs.size;
        let (_, data, _) = self.stores[i].read(fid, 0, size as u32).unwrap();
        data
    }
}

impl LocalReplica {
    pub(super) fn replica_id(&self) -> ReplicaId {
        use super::ReplicaAccess;
        self.replica()
    }
}

/// `len` bytes that do not repeat (so no two blocks deduplicate).
pub(super) fn payload(seed: u8, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_keyed(&[seed; 32])
        .finalize_xof()
        .fill(&mut out);
    out
}

impl Trio {
    /// A file `n` of `len` bytes (seed 1) written on all three replicas.
    pub(super) fn file_on_all(&mut self, n: &str, len: usize) -> (Fid, Vec<u8>) {
        let (c, f) = self.g.create_op(self.vol.root, n, CreateHow::Guarded);
        let base = payload(1, len);
        self.apply(&[0, 1, 2], vec![c, Gen::write_op(f, 0, &base)], &base);
        (f, base)
    }

    /// A write of `len` bytes (from `seed`) at `offset` that replica 2 misses.
    pub(super) fn missed_by_2(&mut self, f: Fid, seed: u8, offset: u64, len: usize) {
        let change = payload(seed, len);
        self.apply(&[0, 1], vec![Gen::write_op(f, offset, &change)], &change);
    }
}

impl Trio {
    /// Every object store `i` lists in its change sequence: what anti-entropy visits.
    pub(super) fn changed(&self, i: usize) -> Vec<Fid> {
        let page = self.stores[i].changes(self.vol.id, 0, 100_000, 0).unwrap();
        let mut fids: Vec<Fid> = page.entries.into_iter().map(|c| c.fid).collect();
        fids.sort();
        fids.dedup();
        fids
    }
}

#[test]
fn a_replica_that_missed_writes_gets_only_the_changed_chunks() {
    let mut t = trio();
    let (f, _) = t.file_on_all("big", 4 << 20);
    // Replica 2 misses a 128 KiB change in the middle.
    t.missed_by_2(f, 9, 1 << 20, 128 << 10);
    let s = t.resolve(&[0, 1, 2], &[f]);
    t.assert_equal(&[0, 1, 2], f);
    assert_eq!(t.read(2, f), t.read(0, f));
    assert_eq!(
        s.bytes_shipped,
        128 << 10,
        "only the changed chunks travel: {s:?}"
    );
    assert_eq!(s.unsettled, 0);
    // Resolving again finds nothing to do.
    let again = t.resolve(&[2, 0, 1], &[f]);
    assert_eq!((again.installs, again.bytes_shipped), (0, 0));
}

/// Replica 2 misses two 1 MiB writes to `f`, in two block groups (two pieces: a pause
/// can only come between them); a resolver paced by `pacer` settles them. Returns the time
/// the resolution took on tokio's clock.
async fn heal_change(
    t: &mut Trio,
    f: Fid,
    seed: u8,
    pacer: &crate::pacing::Pacer,
) -> std::time::Duration {
    t.missed_by_2(f, seed, 0, 1 << 20);
    t.missed_by_2(f, seed.wrapping_add(100), 16 << 20, 1 << 20);
    let members = t.members(&[0, 1, 2]);
    let mut r = Resolver::new(&members, members[0].replica_id()).with_clock(t.clock.clone());
    r.pacer = Some(pacer.clone());
    let began = tokio::time::Instant::now();
    r.resolve(f).await;
    assert_eq!(r.summary.bytes_shipped, 2 << 20);
    began.elapsed()
}

/// Healing pauses after each piece it installs while clients update the coordinator, and
/// not otherwise (time is tokio's paused clock: only the pauses move it).
#[tokio::test(start_paused = true)]
async fn healing_pauses_between_pieces_only_while_clients_update() {
    let mut t = trio();
    let (f, _) = t.file_on_all("big", 17 << 20);
    let pacer = crate::pacing::Pacer::new(1.0);
    let quiet = heal_change(&mut t, f, 11, &pacer).await;
    assert_eq!(quiet, std::time::Duration::ZERO, "no client: no pause");
    pacer.note_client_update();
    let busy = heal_change(&mut t, f, 12, &pacer).await;
    assert!(
        busy > std::time::Duration::ZERO,
        "clients updating: a pause"
    );
    t.assert_equal(&[0, 1, 2], f);
    assert_eq!(t.read(2, f), t.read(0, f));
}

#[test]
fn changes_in_several_block_groups_are_all_installed() {
    let mut t = trio();
    // Three block groups of 16 MiB.
    let (f, _) = t.file_on_all("bigger", 40 << 20);
    // Replica 2 misses a change in the first and the third group, and an extension.
    for (seed, offset) in [(2u8, 1u64 << 20), (3, 33 << 20), (4, 48 << 20)] {
        t.missed_by_2(f, seed, offset, 1 << 20);
    }
    let s = t.resolve(&[0, 1, 2], &[f]);
    t.assert_equal(&[0, 1, 2], f);
    assert_eq!(t.read(2, f), t.read(0, f));
    assert_eq!(s.bytes_shipped, 3 << 20, "only the changed chunks: {s:?}");
    assert_eq!(s.unsettled, 0);
}

/// Two blocks swap their content (the source's file has block 0's chunk at block 1 and
/// the reverse); the destination holds both chunks once each. Installed without shipping
/// either, every block takes its new chunk before any old one is released: neither is
/// dropped halfway (that was `Blocked` on the file itself, which set it aside under a
/// conflict name).
#[test]
fn swapped_blocks_install_from_the_chunks_already_held() {
    let mut t = trio();
    let (f, base) = t.file_on_all("swap", 128 << 10);
    let held = t.stores[2].block_map(f, 0, 2).unwrap();
    assert_eq!(held.len(), 2);
    let swapped: Vec<(u64, Option<BlockEntry>)> = vec![
        (
            0,
            Some(BlockEntry {
                index: 0,
                ..held[1]
            }),
        ),
        (
            1,
            Some(BlockEntry {
                index: 1,
                ..held[0]
            }),
        ),
    ];
    let version = t.stores[2].view(f).unwrap().version;
    t.stores[2]
        .install_blocks(f, &version, &swapped, &[])
        .unwrap();
    // Not served until the install's version says the state is whole (rule 4).
    assert_eq!(t.stores[2].read(f, 0, 1), Err(FsError::Incomplete));
    let history = t.stores[2].view(f).unwrap().history;
    t.stores[2]
        .install_version(f, &version, &version, &history)
        .unwrap();
    let mut want = base[64 << 10..].to_vec();
    want.extend_from_slice(&base[..64 << 10]);
    assert_eq!(t.read(2, f), want);
    check_consistency(&t.stores[2]);
}

/// An install naming a chunk the destination no longer holds and does not ship (released
/// since the plan) is refused as `VersionChanged` (the coordinator gathers again), and a
/// held chunk named with the wrong length is `Malformed`; neither changes anything.
#[test]
fn an_install_of_a_chunk_gone_since_the_plan_changes_nothing() {
    let mut t = trio();
    let (f, base) = t.file_on_all("gone", 128 << 10);
    let view = t.stores[2].view(f).unwrap();
    let held = t.stores[2].block_map(f, 0, 2).unwrap();
    let gone = BlockEntry {
        hash: *blake3::hash(b"released since").as_bytes(),
        ..held[0]
    };
    let install = |blocks: Vec<(u64, Option<BlockEntry>)>| {
        t.stores[2].install_blocks(f, &view.version, &blocks, &[])
    };
    assert_eq!(
        install(vec![
            (
                1,
                Some(BlockEntry {
                    index: 1,
                    ..held[0]
                })
            ),
            (0, Some(gone))
        ]),
        Err(FsError::VersionChanged)
    );
    let wrong_len = BlockEntry {
        len: held[1].len - 1,
        ..held[1]
    };
    assert!(matches!(
        install(vec![(0, Some(wrong_len))]),
        Err(FsError::Malformed(_))
    ));
    assert_eq!(t.read(2, f), base);
    assert_eq!(t.stores[2].view(f).unwrap().tag, view.tag);
    check_consistency(&t.stores[2]);
}

/// A client write that lands after the coordinator gathered is not overwritten by the
/// older blocks the coordinator ships: the install is refused and it gathers again.
#[test]
fn blocks_are_not_installed_over_a_version_the_coordinator_did_not_see() {
    let mut t = trio();
    let (f, base) = t.file_on_all("raced", 128 << 10);
    let seen = t.stores[2].view(f).unwrap().version;
    let held = t.stores[0].block_map(f, 0, 1).unwrap();
    // A client writes to every replica after the coordinator gathered.
    let change = payload(9, 4096);
    t.apply(&[0, 1, 2], vec![Gen::write_op(f, 0, &change)], &change);
    let before = t.read(2, f);
    // The coordinator ships block 0 as it was when it gathered.
    let stale = vec![(0, Some(held[0]))];
    let shipped = [(held[0].hash, &base[..64 << 10])];
    assert_eq!(
        t.stores[2].install_blocks(f, &seen, &stale, &shipped),
        Err(FsError::VersionChanged)
    );
    assert_eq!(t.read(2, f), before, "the client's write stays");
    assert_eq!(&before[..4096], &change[..]);
    check_consistency(&t.stores[2]);
}

/// A file of three block groups that replica 2 missed a change in each of: resolving it
/// installs three pieces.
fn three_pieces_missed_by_2(t: &mut Trio, n: &str) -> Fid {
    let (f, _) = t.file_on_all(n, 40 << 20);
    for (seed, offset) in [(2u8, 1u64 << 20), (3, 17 << 20), (4, 33 << 20)] {
        t.missed_by_2(f, seed, offset, 1 << 20);
    }
    f
}

/// Lets more than a third of a lease's length pass, on the coordinator and the stores.
fn age_leases(t: &Trio) {
    t.clock.advance(std::time::Duration::from_secs(20));
}

/// A coordinator whose lease ran out and was taken by another one stops before its next
/// piece, and leaves nothing leased; a later resolution finishes the job.
#[test]
fn a_coordinator_that_lost_its_lease_installs_no_more() {
    let mut t = trio();
    let f = three_pieces_missed_by_2(&mut t, "long");
    let members = t.members(&[0, 1, 2]);
    let mut r = Resolver::new(&members, members[0].replica_id()).with_clock(t.clock.clone());
    let before = t.stores[2].view(f).unwrap();
    futures::executor::block_on(async {
        assert!(r.lease(f).await);
        // Its lease lapsed at replica 2 and another coordinator took the object there.
        age_leases(&t);
        t.volatiles[2].release(&[f], r.holder).unwrap();
        t.volatiles[2].lease(&[f], 99, 60_000).unwrap();
        let outcome = r.sync_blocks(f, 0, (f, &before.version), 2).await;
        assert_eq!(outcome, Err(FsError::Leased(f).into()));
    });
    assert_eq!(r.summary.bytes_shipped, 0);
    assert_eq!(
        t.stores[2].view(f).unwrap().tag,
        before.tag,
        "nothing installed"
    );
    // It let go of its 30 s leases on the others.
    for i in [0, 1] {
        t.volatiles[i].lease(&[f], 98, 60_000).unwrap();
        t.volatiles[i].release(&[f], 98).unwrap();
    }
    t.volatiles[2].release(&[f], 99).unwrap();
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
}

/// A coordinator renews the leases it holds during a long install once a third of them has
/// passed (not before), so nobody else can take the object meanwhile.
#[test]
fn leases_are_renewed_once_a_third_has_passed() {
    let mut t = trio();
    let f = three_pieces_missed_by_2(&mut t, "renewed");
    let members = t.members(&[0, 1, 2]);
    let mut r = Resolver::new(&members, members[0].replica_id()).with_clock(t.clock.clone());
    futures::executor::block_on(async {
        assert!(r.lease(f).await);
        let first = r.leased_at[&f];
        let seen = t.stores[2].view(f).unwrap().version;
        r.sync_blocks(f, 0, (f, &seen), 2).await.unwrap();
        assert_eq!(r.leased_at[&f], first, "fresh: not renewed");
        assert_eq!(r.summary.bytes_shipped, 3 << 20);

        t.missed_by_2(f, 5, 2 << 20, 1 << 20);
        age_leases(&t);
        let aged = r.leased_at[&f];
        let seen = t.stores[2].view(f).unwrap().version;
        r.sync_blocks(f, 0, (f, &seen), 2).await.unwrap();
        assert!(r.leased_at[&f] > aged, "renewed");
    });
    assert_eq!(
        t.volatiles[2].lease(&[f], 99, 1),
        Err(FsError::Leased(f)),
        "still held"
    );
}

#[test]
fn a_leased_object_is_left_to_its_coordinator() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1], vec![c], &[]);
    // Another coordinator holds the lease on replica 2: this one installs nothing.
    t.volatiles[2].lease(&[f], 99, 60_000).unwrap();
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!((s.unsettled, s.installs), (1, 0), "{s:?}");
    assert!(t.stores[2].view(f).unwrap().meta().is_none());
    // Nothing of the refused attempt stays leased on the others.
    t.volatiles[0].lease(&[f], 98, 60_000).unwrap();
    t.volatiles[0].release(&[f], 98).unwrap();
    // Once the holder lets go, resolution goes through, and releases its own leases.
    t.volatiles[2].release(&[f], 99).unwrap();
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    for volatile in &t.volatiles {
        volatile.lease(&[f], 97, 1).unwrap();
    }
}

#[test]
fn a_replica_behind_a_trimmed_sequence_compares_the_whole_volume() {
    let mut t = trio_with(StoreOptions {
        changes_kept: Some(8),
        ..StoreOptions::default()
    });
    let root = t.vol.root;
    let (c, gone) = t.g.create_op(root, "gone", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // Replica 2 misses 40 creates, a write and a delete: far more than the 8 changes the
    // others keep.
    let mut ops = Vec::new();
    let mut fids = vec![gone];
    for i in 0..40 {
        let (c, f) = t.g.create_op(root, &format!("f{i}"), CreateHow::Guarded);
        ops.push(c);
        fids.push(f);
    }
    ops.push(Gen::write_op(fids[1], 0, b"data"));
    ops.push(Op::Remove {
        dir: root,
        name: name("gone"),
        fid: gone,
    });
    t.apply(&[0, 1], ops, b"data");
    let before = t.stores[2].volume_digests(t.vol.id).unwrap();
    assert_ne!(before, t.stores[0].volume_digests(t.vol.id).unwrap());

    let members = t.members(&[2, 0, 1]);
    let me = t.vol.vsg[2].replica;
    let peer = t.vol.vsg[0].replica;
    let follow = || {
        futures::executor::block_on(crate::heal::follow(
            &t.stores[2],
            &members,
            me,
            t.vol.id,
            peer,
            0,
            crate::heal::Hooks::none(),
        ))
    };
    let s = follow();
    assert_eq!((s.volume_compares, s.unsettled), (1, 0), "{s:?}");
    for f in fids.iter().copied().chain([root]) {
        t.assert_equal(&[0, 1, 2], f);
    }
    assert!(t.stores[2].view(gone).unwrap().meta().is_none());
    assert_eq!(
        t.stores[2].volume_digests(t.vol.id).unwrap(),
        t.stores[0].volume_digests(t.vol.id).unwrap()
    );
    // The cursor went to the peer's newest change: the next round has nothing to do.
    let again = follow();
    assert_eq!((again.volume_compares, again.objects), (0, 0), "{again:?}");
}

/// A server whose wall clock steps back (NTP, or the fault matrix's libfaketime) holds
/// change entries stamped "in the future": they count as old, or healing would wait for
/// the clock to catch up (an hour for an hour's step).
#[test]
fn changes_stamped_before_the_clock_stepped_back_are_not_held_as_young() {
    let mut t = trio();
    let (f, _) = t.file_on_all("f", 10);
    let settle = 5_000;
    let page = t.stores[0].changes(t.vol.id, 0, 1000, settle).unwrap();
    assert!(page.entries.is_empty(), "just made: held back");
    let now = t.clock.wall_ms();
    t.clock.set_wall(now - 3_600_000);
    let page = t.stores[0].changes(t.vol.id, 0, 1000, settle).unwrap();
    assert!(
        page.entries.iter().any(|c| c.fid == f),
        "stamped an hour ahead of the stepped clock: old"
    );
    // What changes after the step is young again.
    let (g, _) = t.file_on_all("g", 10);
    let page = t.stores[0].changes(t.vol.id, 0, 1000, settle).unwrap();
    assert!(
        page.entries.iter().all(|c| c.fid != g),
        "new changes are held back"
    );
}
