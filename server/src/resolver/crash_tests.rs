//! Resolution's installs under crashes at every I/O: replica A missed a run of batches that
//! replica B took; B coordinates resolution while A's disk (a `CrashDisk`) fails at its Nth
//! write, resize or sync and loses power. Reopened, A must be consistent, must claim no
//! version it does not hold whole (an object whose version equals B's and carries no
//! installing mark reads B's bytes), and a later resolution must bring it to B's state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{LocalReplica, Resolver};
use crate::clock::{ManualClock, SharedClock};
use crate::store::testutil::{Gen, T0, check_consistency, fid_in};
use crate::store::{Store, StoreOptions};
use crate::volatile::Volatile;
use codetta_testkit::CrashDisk;
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::update::{CreateHow, UpdateRecord};
use codetta_wire::{Fid, FileType, Incarnation, ReplicaId, VolumeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

const A: ReplicaId = ReplicaId(70);
const B: ReplicaId = ReplicaId(71);

fn clock() -> SharedClock {
    ManualClock::new(1_800_000_000_000)
}

fn volume() -> VolumeInfo {
    let id = VolumeId(7);
    VolumeInfo {
        id,
        name: "vol".into(),
        root: Fid::root(id),
        vsg: [A, B]
            .into_iter()
            .map(|replica| ReplicaMember {
                replica,
                server: format!("s{}", replica.0),
            })
            .collect(),
        epoch: 0,
        addrs: Vec::new(),
    }
}

/// A shipped batch: its records and their data.
type Batch = (Vec<UpdateRecord>, Vec<u8>);

/// Batches: the first `shared` go to both replicas, the rest to B only.
fn batches(seed: u64) -> (Vec<Batch>, usize) {
    let scratch = tempfile::tempdir().unwrap();
    let store = Store::open(&scratch.path().join("s.redb"), StoreOptions::default()).unwrap();
    store.create_replica(&volume(), B, T0).unwrap();
    let mut g = Gen::new(VolumeId(7), Incarnation(5));
    let mut rng = StdRng::seed_from_u64(seed);
    let root = volume().root;
    let names = ["a", "b", "c", "d"];
    let mut out = Vec::new();
    for _ in 0..12 {
        let n = names[rng.random_range(0..names.len())];
        let (records, data) = if rng.random_bool(0.4) {
            let (op, _) = g.create_op(root, n, CreateHow::Unchecked { truncate: false });
            (vec![g.rec(op)], Vec::new())
        } else {
            let fid = fid_in(&store, root, n);
            let len = rng.random_range(1..200_000);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // In one of three block groups: a file's changes then install in several
            // pieces, each its own transaction.
            let offset =
                [0, 17 << 20, 33 << 20][rng.random_range(0..3)] + rng.random_range(0..300_000);
            (vec![g.rec(Gen::write_op(fid, offset, &bytes))], bytes)
        };
        store
            .ship(&crate::store::Shipment::new(&records, &data, 1, &[]))
            .unwrap();
        out.push((records, data));
    }
    (out, 4)
}

/// Replica `id` on `disk`, given `batches` (`None` once the disk failed).
fn replica(id: ReplicaId, disk: &CrashDisk, batches: &[Batch]) -> Option<Arc<Store>> {
    let store = Store::open_with_backend(disk.clone(), StoreOptions::default(), clock()).ok()?;
    store.create_replica(&volume(), id, T0).ok()?;
    for (records, data) in batches {
        store
            .ship(&crate::store::Shipment::new(records, data, 1, &[]))
            .ok()?;
    }
    Some(Arc::new(store))
}

/// B resolves every object of the volume with A.
fn resolve_all(a: &Arc<Store>, b: &Arc<Store>) -> u64 {
    let members = vec![
        LocalReplica::new(b.clone(), Volatile::new(clock()), B, "s71"),
        LocalReplica::new(a.clone(), Volatile::new(clock()), A, "s70"),
    ];
    let mut r = Resolver::new(&members, B);
    let fids = b.object_fids(VolumeId(7)).unwrap();
    futures::executor::block_on(async {
        for fid in fids {
            r.resolve(fid).await;
        }
    });
    r.summary.unsettled
}

/// The whole content of file `fid` (read `MAX_READ` at a time), if it reads.
fn whole_file(store: &Store, fid: Fid) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (_, data, eof) = store
            .read(fid, out.len() as u64, codetta_wire::MAX_READ)
            .ok()?;
        out.extend_from_slice(&data);
        if eof {
            return Some(out);
        }
    }
}

/// What every crash point of one seed starts from: the batches, A as it was before
/// resolution, and the I/O count of A's disk then (crash points count from there). B is
/// made afresh for each point: resolution writes to it too (it merges vectors).
struct Scene {
    batches: Vec<Batch>,
    shared: usize,
    before: Arc<Store>,
    base: u64,
}

impl Scene {
    fn new(seed: u64) -> Scene {
        let (batches, shared) = batches(seed);
        let counting = CrashDisk::failing_at(None);
        let before = replica(A, &counting, &batches[..shared]).unwrap();
        let base = counting.ops();
        Scene {
            batches,
            shared,
            before,
            base,
        }
    }
}

/// Crash at I/O `crash_at` of A during resolution; `false` once resolution needs fewer.
fn crash_once(scene: &Scene, seed: u64, crash_at: u64) -> bool {
    let Scene {
        batches,
        shared,
        before,
        base,
    } = scene;
    // B in memory (a disk that never fails): only A's disk is under test.
    let b = &replica(B, &CrashDisk::failing_at(None), batches).unwrap();
    let disk = CrashDisk::failing_at(Some(base + crash_at));
    let a = replica(A, &disk, &batches[..*shared]).expect("set-up before the crash");
    resolve_all(&a, b);
    drop(a);
    if !disk.failed() {
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.redb");
    std::fs::write(&path, disk.after_power_loss(seed ^ crash_at)).unwrap();
    let a = Arc::new(Store::open_with_clock(&path, StoreOptions::default(), clock()).unwrap());
    check_consistency(&a);
    // No version claimed that is not held whole: a file A serves (no installing mark) has
    // the bytes of the replica whose version it carries, B's or its own from before.
    for fid in b.object_fids(VolumeId(7)).unwrap() {
        let Ok(va) = a.view(fid) else { continue };
        if va.installing || va.meta().is_none_or(|m| m.ftype != FileType::Regular) {
            continue;
        }
        let from = if b.view(fid).is_ok_and(|vb| vb.version == va.version) {
            b
        } else if before.view(fid).is_ok_and(|v0| v0.version == va.version) {
            before
        } else {
            panic!(
                "crash at install I/O {crash_at} (seed {seed}): {fid} has a version neither replica had"
            );
        };
        let (mine, theirs) = (whole_file(&a, fid), whole_file(from, fid));
        assert!(
            mine == theirs,
            "crash at install I/O {crash_at} (seed {seed}): {fid} serves bytes its version does \
             not name ({:?} bytes, the version's {:?})",
            mine.map(|d| d.len()),
            theirs.map(|d| d.len())
        );
    }
    // A later resolution finishes the job.
    assert_eq!(resolve_all(&a, b), 0, "crash at install I/O {crash_at}");
    assert!(
        a.volume_digests(VolumeId(7)).unwrap() == b.volume_digests(VolumeId(7)).unwrap(),
        "crash at install I/O {crash_at} (seed {seed}): not converged"
    );
    check_consistency(&a);
    true
}

#[test]
fn installs_cut_by_a_crash_claim_nothing_and_resolve_again() {
    let mut points = 0;
    for seed in 1..=3 {
        let scene = Scene::new(seed);
        for crash_at in 1.. {
            if !crash_once(&scene, seed, crash_at) {
                break;
            }
            points += 1;
        }
    }
    eprintln!("install crash points tried: {points}");
    assert!(points > 10, "too few crash points: {points}");
}
