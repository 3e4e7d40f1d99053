//! Resolution on three stores in this process (no sockets): each case brings replicas
//! apart the way a partition or a crash does, resolves, and checks that every replica ends
//! with equal vectors and tags and that nothing acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{LocalReplica, Resolver};
use crate::clock::{Clock, ManualClock};
use crate::collect::{CollectPolicy, CollectSummary, collect};
use crate::store::testutil::{Gen, T0, check_consistency, name};
use crate::store::{Store, StoreOptions};
use codetta_wire::message::{ReplicaMember, ResolveSummary, VolumeInfo};
use codetta_wire::replica::{BlockEntry, ViewBody};
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
        clock,
    }
}

impl Trio {
    /// Applies `ops` (with `data`) on the stores in `to`, as one batch each.
    pub(super) fn apply(&mut self, to: &[usize], ops: Vec<Op>, data: &[u8]) {
        let records: Vec<UpdateRecord> = ops.into_iter().map(|op| self.g.rec(op)).collect();
        for &i in to {
            let out = self.stores[i]
                .ship(&records, data, 1, &[])
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
                .ship(&records, data, 1, &[])
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
        t.stores[2].release(&[f], r.holder).unwrap();
        t.stores[2].lease(&[f], 99, 60_000).unwrap();
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
        t.stores[i].lease(&[f], 98, 60_000).unwrap();
        t.stores[i].release(&[f], 98).unwrap();
    }
    t.stores[2].release(&[f], 99).unwrap();
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
        t.stores[2].lease(&[f], 99, 1),
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
    t.stores[2].lease(&[f], 99, 60_000).unwrap();
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!((s.unsettled, s.installs), (1, 0), "{s:?}");
    assert!(t.stores[2].view(f).unwrap().meta().is_none());
    // Nothing of the refused attempt stays leased on the others.
    t.stores[0].lease(&[f], 98, 60_000).unwrap();
    t.stores[0].release(&[f], 98).unwrap();
    // Once the holder lets go, resolution goes through, and releases its own leases.
    t.stores[2].release(&[f], 99).unwrap();
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], f);
    for store in &t.stores {
        store.lease(&[f], 97, 1).unwrap();
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

impl Trio {
    fn collect(&self, coordinator: usize, reachable: &[usize], horizon_ms: u64) -> CollectSummary {
        let members = self.members(reachable);
        let policy = CollectPolicy {
            min_age_ms: 0,
            horizon_ms,
        };
        futures::executor::block_on(collect(
            &self.stores[coordinator],
            &members,
            self.vol.id,
            policy,
            self.clock.wall_ms(),
        ))
        .unwrap()
    }
}

#[test]
fn a_collected_tombstone_refuses_a_late_create() {
    let mut t = trio();
    let root = t.vol.root;
    let (c0, keep) = t.g.create_op(root, "keep", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c0], &[]);
    // Replica 2 misses the create and the remove of f, and gets the tombstone by
    // resolution; the create record is still on its way to it from the client's log.
    let (op, _) = t.g.create_op(root, "f", CreateHow::Guarded);
    let create = t.g.rec(op);
    let Op::Create { fid: f, .. } = create.op else {
        unreachable!()
    };
    for i in [0, 1] {
        t.stores[i]
            .ship(std::slice::from_ref(&create), &[], 1, &[])
            .unwrap();
    }
    t.apply(
        &[0, 1],
        vec![Op::Remove {
            dir: root,
            name: name("f"),
            fid: f,
        }],
        &[],
    );
    t.resolve(&[0, 1, 2], &[f]);
    assert!(matches!(
        t.stores[2].view(f).unwrap().body,
        ViewBody::Deleted(_)
    ));
    // Collected on all three: nothing left of it (no marker either: nobody was missing).
    let s = t.collect(0, &[0, 1, 2], u64::MAX);
    assert_eq!((s.collected, s.waiting), (1, 0), "{s:?}");
    for store in &t.stores {
        assert_eq!(store.view(f).unwrap().body, ViewBody::Absent);
        assert!(!store.object_fids(t.vol.id).unwrap().contains(&f));
    }
    // The late create is refused: the file does not come back.
    let out = t.stores[2].ship(&[create], &[], 1, &[]).unwrap().outcomes;
    assert_eq!(out, vec![Err(FsError::Stale)]);
    assert_eq!(t.stores[2].view(f).unwrap().body, ViewBody::Absent);
    // The other replicas' queued entries go quietly; the untouched file stays.
    assert_eq!(
        t.collect(1, &[1, 0, 2], u64::MAX),
        CollectSummary::default()
    );
    for store in &t.stores {
        assert!(store.view(keep).unwrap().is_live());
    }
}

#[test]
fn past_the_horizon_an_absent_replicas_live_copy_returns_as_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, g) = t.g.create_op(root, "g", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // Replica 2 is away while g is removed.
    t.apply(
        &[0, 1],
        vec![Op::Remove {
            dir: root,
            name: name("g"),
            fid: g,
        }],
        &[],
    );
    // Within the horizon the tombstone waits for replica 2.
    let s = t.collect(0, &[0, 1], u64::MAX);
    assert_eq!((s.collected, s.waiting), (0, 1), "{s:?}");
    assert!(matches!(
        t.stores[0].view(g).unwrap().body,
        ViewBody::Deleted(_)
    ));
    // Past it, the reachable replicas collect it.
    let s = t.collect(0, &[0, 1], 0);
    assert_eq!(s.collected, 1, "{s:?}");
    assert_eq!(t.stores[1].view(g).unwrap().body, ViewBody::Forgotten);
    // Replica 2 returns with g live: nobody can tell what the delete had seen, so g
    // comes back under a conflict name rather than as plain g.
    let s = t.resolve(&[2, 0, 1], &[g]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    // Live again everywhere, so the markers went.
    assert!(t.stores[1].view(g).unwrap().is_live());
    t.assert_equal(&[0, 1, 2], g);
    let meta = t.stores[0].view(g).unwrap();
    let name = &meta.meta().unwrap().placement.name;
    assert!(
        String::from_utf8_lossy(name).starts_with("g.conflict-"),
        "{:?}",
        String::from_utf8_lossy(name)
    );
    assert!(t.fid_of(1, root, "g").is_none());
}

#[test]
fn missed_creates_renames_and_deletes_follow_the_directory() {
    let mut t = trio();
    let root = t.vol.root;
    let (m1, d1) = t.g.mkdir_op(root, "d1");
    let (m2, d2) = t.g.mkdir_op(root, "d2");
    let (c, f) = t.g.create_op(d1, "f", CreateHow::Guarded);
    let (c2, gone) = t.g.create_op(d1, "gone", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![m1, m2, c, c2], &[]);
    // Replica 2 is away for a new subtree, a rename across directories and a delete.
    let (m3, d3) = t.g.mkdir_op(d2, "d3");
    let (c3, g) = t.g.create_op(d3, "g", CreateHow::Guarded);
    let rename = Op::Rename {
        from_dir: d1,
        from_name: name("f"),
        to_dir: d3,
        to_name: name("f2"),
        fid: f,
        replaces: None,
    };
    let rm = Op::Remove {
        dir: d1,
        name: name("gone"),
        fid: gone,
    };
    t.apply(
        &[0, 1],
        vec![m3, c3, Gen::write_op(g, 0, b"g"), rename, rm],
        b"g",
    );
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!(s.unsettled, 0, "{s:?} {changed:?}");
    for fid in [root, d1, d2, d3, f, g] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    assert_eq!(t.fid_of(2, d3, "f2"), Some(f));
    assert_eq!(t.fid_of(2, d1, "f"), None);
    assert_eq!(
        t.stores[2].getattr(gone),
        Err(FsError::Stale),
        "a delete stays a delete"
    );
    assert_eq!(t.read(2, g), b"g");
}

#[test]
fn a_file_updated_on_one_side_and_deleted_on_the_other_comes_back_as_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, Gen::write_op(f, 0, b"v1")], b"v1");
    // Partition: {0} deletes, {1, 2} update.
    let rm = Op::Remove {
        dir: root,
        name: name("f"),
        fid: f,
    };
    t.apply(&[0], vec![rm], &[]);
    let mut other = Gen::new(t.vol.id, Incarnation(4));
    t.apply_as(&mut other, &[1, 2], vec![Gen::write_op(f, 0, b"v2")], b"v2");
    let s = t.resolve(&[0, 1, 2], &[root]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    assert!(s.conflicts >= 1);
    for i in 0..3 {
        assert_eq!(t.read(i, f), b"v2", "the update survives on {i}");
        assert_eq!(t.fid_of(i, root, "f"), None);
        let (_, entries, _) = t.stores[i].readdir(root, 0, 10, false).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(
            entries[0].name.to_string().starts_with("f.conflict-"),
            "{:?}",
            entries[0].name
        );
    }
    t.assert_equal(&[0, 1, 2], f);
    t.assert_equal(&[0, 1, 2], root);
}

#[test]
fn concurrent_writes_keep_both_versions_and_creates_merge() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // Partition {0} / {1, 2}: both write f, each creates its own file, and both create
    // "same" (different fids, one name).
    let mut a = Gen::new(t.vol.id, Incarnation(5));
    let mut b = Gen::new(t.vol.id, Incarnation(6));
    let (ca, xa) = a.create_op(root, "only-a", CreateHow::Guarded);
    let (sa, same_a) = a.create_op(root, "same", CreateHow::Guarded);
    t.apply_as(
        &mut a,
        &[0],
        vec![Gen::write_op(f, 0, b"from a"), ca, sa],
        b"from a",
    );
    let (cb, xb) = b.create_op(root, "only-b", CreateHow::Guarded);
    let (sb, same_b) = b.create_op(root, "same", CreateHow::Guarded);
    t.apply_as(
        &mut b,
        &[1, 2],
        vec![Gen::write_op(f, 0, b"from b!"), cb, sb],
        b"from b!",
    );
    let mut changed = t.changed(0);
    changed.extend(t.changed(2));
    let s = t.resolve(&[2, 0, 1], &changed);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, f, xa, xb, same_a, same_b] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    let (_, entries, _) = t.stores[0].readdir(root, 0, 100, false).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
    // Both versions of f, both new files, both "same" files: nothing lost.
    assert_eq!(names.len(), 6, "{names:?}");
    let mut contents: Vec<Vec<u8>> = entries
        .iter()
        .filter(|e| e.name.to_string().starts_with("f"))
        .map(|e| t.read(0, e.fid))
        .collect();
    contents.sort();
    assert_eq!(contents, vec![b"from a".to_vec(), b"from b!".to_vec()]);
    assert_eq!(t.fid_of(0, root, "same"), Some(same_a.min(same_b)));
}

#[test]
fn equal_states_only_merge_vectors_and_unreachable_replicas_wait() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // No COP2 arrived: vectors differ, states are equal.
    let s = t.resolve(&[0, 1], &[f]);
    assert_eq!((s.merges, s.installs, s.bytes_shipped), (1, 0, 0));
    t.assert_equal(&[0, 1], f);
    // Replica 2 was not reached: it is left as it was and settled the next time.
    assert_ne!(
        t.stores[2].view(f).unwrap().version,
        t.stores[0].view(f).unwrap().version
    );
    t.resolve(&[0, 1, 2], &[f]);
    t.assert_equal(&[0, 1, 2], f);
}

#[test]
fn directories_moved_into_each_other_settle_without_a_cycle() {
    let mut t = trio();
    let root = t.vol.root;
    let (m1, d1) = t.g.mkdir_op(root, "d1");
    let (m2, d2) = t.g.mkdir_op(root, "d2");
    t.apply(&[0, 1, 2], vec![m1, m2], &[]);
    let mut a = Gen::new(t.vol.id, Incarnation(7));
    let mut b = Gen::new(t.vol.id, Incarnation(8));
    let mv = |from: Fid, n: &str, to: Fid, fid: Fid| Op::Rename {
        from_dir: from,
        from_name: name(n),
        to_dir: to,
        to_name: name(n),
        fid,
        replaces: None,
    };
    t.apply_as(&mut a, &[0], vec![mv(root, "d1", d2, d1)], &[]);
    t.apply_as(&mut b, &[1, 2], vec![mv(root, "d2", d1, d2)], &[]);
    let s = t.resolve(&[0, 1, 2], &[root, d1, d2]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, d1, d2] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    // Every directory is reachable from the root (no cycle) on every replica.
    for i in 0..3 {
        for d in [d1, d2] {
            let mut cur = d;
            let mut steps = 0;
            while cur != root {
                cur = t.stores[i].parent(cur).unwrap().fid;
                steps += 1;
                assert!(steps < 10, "cycle on replica {i}");
            }
        }
    }
}

#[test]
fn a_missed_subtree_resolved_from_its_deepest_file_needs_no_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (m, top) = t.g.mkdir_op(root, "top");
    t.apply(&[0, 1, 2], vec![m], &[]);
    // Replica 2 misses a subtree made inside `top`.
    let (m1, a) = t.g.mkdir_op(top, "a");
    let (m2, b) = t.g.mkdir_op(a, "b");
    let (c, f) = t.g.create_op(b, "f", CreateHow::Guarded);
    let (c2, g) = t.g.create_op(a, "g", CreateHow::Guarded);
    t.apply(
        &[0, 1],
        vec![m1, m2, c, Gen::write_op(f, 0, b"deep"), c2],
        b"deep",
    );
    // A client reading f first asks for f alone; its parents come with it.
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    assert_eq!(t.read(2, f), b"deep");
    let s = t.resolve(&[0, 1, 2], &[root, top, a, b, g]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for fid in [root, top, a, b, f, g] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    assert_eq!(t.fid_of(2, a, "g"), Some(g));
}

#[test]
fn a_drain_copies_what_only_the_leaving_replica_holds_and_names_what_it_could_not() {
    let mut t = trio();
    let root = t.vol.root;
    // Replica 2 (leaving) alone holds two new files.
    let (c1, kept) = t.g.create_op(root, "kept", CreateHow::Guarded);
    let (c2, stuck) = t.g.create_op(root, "stuck", CreateHow::Guarded);
    t.apply(&[2], vec![c1, c2], &[]);
    // Another coordinator holds `stuck` on replica 0 (the one draining): it is left.
    t.stores[0].lease(&[stuck], 99, 60_000).unwrap();
    let members = t.members(&[0, 1, 2]);
    let (me, leaving) = (t.vol.vsg[0].replica, t.vol.vsg[2].replica);
    let (_, left) =
        futures::executor::block_on(crate::heal::drain(&members, me, t.vol.id, leaving)).unwrap();
    assert!(left.contains(&stuck), "{left:?}");
    assert!(!left.contains(&kept), "{left:?}");
    t.assert_equal(&[0, 2], kept);
    let theirs = t.stores[2].view(stuck).unwrap();
    let mine = t.stores[0].view(stuck).unwrap();
    assert!(
        !crate::heal::covered(&theirs, &mine),
        "only replica 2 has it"
    );
    // Once the other coordinator lets go, a drain copies it too and nothing is left.
    t.stores[0].release(&[stuck], 99).unwrap();
    let (_, left) =
        futures::executor::block_on(crate::heal::drain(&members, me, t.vol.id, leaving)).unwrap();
    assert!(left.is_empty(), "{left:?}");
    let mine = t.stores[0].view(stuck).unwrap();
    assert!(crate::heal::covered(
        &t.stores[2].view(stuck).unwrap(),
        &mine
    ));
}

#[test]
fn anti_entropy_passes_over_changes_the_replicas_agree_on() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let (c2, g) = t.g.create_op(root, "g", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, c2], &[]);
    let page = |t: &Trio| t.stores[1].changes(t.vol.id, 0, 1024, 0).unwrap().entries;
    // No COP2 yet: each replica counted only itself, so every object differs.
    let before = crate::heal::differing(&t.stores[0], true, &page(&t));
    assert_eq!(before, [root, f, g].into_iter().collect());
    t.resolve(&[0, 1, 2], &[root, f, g]);
    // Merged: nothing left to look at, without asking the peer for a view.
    assert!(crate::heal::differing(&t.stores[0], true, &page(&t)).is_empty());
    // A write replica 0 missed differs again; so does an object it never saw.
    t.apply(&[1], vec![Gen::write_op(f, 0, b"new")], b"new");
    let (c3, h) = t.g.create_op(root, "h", CreateHow::Guarded);
    t.apply(&[1], vec![c3], &[]);
    let after = crate::heal::differing(&t.stores[0], true, &page(&t));
    assert_eq!(after, [root, f, h].into_iter().collect());
    // Without a replica here, every object is compared.
    assert_eq!(
        crate::heal::differing(&t.stores[0], false, &page(&t)).len(),
        4
    );
}

/// A hard link made and a name removed while replica 2 was away reach it through the
/// directories: the same names, one object, its data shared.
#[test]
fn links_made_and_names_removed_in_a_partition_follow_the_directories() {
    let mut t = trio();
    let root = t.vol.root;
    let (m, d) = t.g.mkdir_op(root, "d");
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let (c2, h) = t.g.create_op(root, "h", CreateHow::Guarded);
    let link_h = Op::Link {
        dir: d,
        name: name("h2"),
        fid: h,
    };
    t.apply(
        &[0, 1, 2],
        vec![m, c, c2, link_h, Gen::write_op(f, 0, b"data")],
        b"data",
    );
    // Replica 2 is away: f gets two more names, h loses one.
    let ops = vec![
        Op::Link {
            dir: d,
            name: name("g"),
            fid: f,
        },
        Op::Link {
            dir: root,
            name: name("f3"),
            fid: f,
        },
        Op::Remove {
            dir: root,
            name: name("h"),
            fid: h,
        },
    ];
    t.apply(&[0, 1], ops, &[]);
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, d, f, h] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    for i in 0..3 {
        assert_eq!(t.fid_of(i, d, "g"), Some(f));
        assert_eq!(t.fid_of(i, root, "f3"), Some(f));
        assert_eq!(t.fid_of(i, root, "h"), None);
        assert_eq!(t.fid_of(i, d, "h2"), Some(h));
        assert_eq!(t.stores[i].getattr(f).unwrap().attrs.nlink, 3);
        assert_eq!(t.stores[i].getattr(h).unwrap().attrs.nlink, 1);
        assert_eq!(t.read(i, f), b"data");
        check_consistency(&t.stores[i]);
    }
}

/// Two partitions give one file different new names: a file's names are part of its state,
/// so these are concurrent updates of it (rule 7): one version keeps the object and its
/// names, the other is kept as a conflict copy beside its first name. The replicas
/// converge, every name leads to an object, and no data is lost.
#[test]
fn concurrent_links_in_two_partitions_converge() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, Gen::write_op(f, 0, b"v")], b"v");
    let link = |n: &str| Op::Link {
        dir: root,
        name: name(n),
        fid: f,
    };
    t.apply(&[0], vec![link("x")], &[]);
    let mut other = Gen::new(t.vol.id, Incarnation(4));
    t.apply_as(&mut other, &[1, 2], vec![link("y")], &[]);
    let s = t.resolve(&[0, 1, 2], &[root, f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], root);
    t.assert_equal(&[0, 1, 2], f);
    let (_, entries, _) = t.stores[0].readdir(root, 0, 100, false).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
    for i in 0..3 {
        check_consistency(&t.stores[i]);
        let (_, here, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(here.len(), entries.len());
        for e in &here {
            assert_eq!(t.read(i, e.fid), b"v", "{} on {i}", e.name);
        }
    }
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n == "f"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "x") != names.iter().any(|n| n == "y"),
        "one version's new name: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("f.conflict-")),
        "the other version as a copy: {names:?}"
    );
    assert!(s.conflicts >= 1);
}
