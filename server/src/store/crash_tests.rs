//! The store under crashes at every I/O: a seeded workload of batches is applied on a
//! `CrashDisk` that fails at its Nth write, resize or sync and then loses power (unsynced
//! writes kept, lost or torn). Reopened from what the disk kept, the store must hold every
//! batch it acknowledged, the batch it was applying either whole or not at all, and
//! applied sequences that agree with the data: shipping every batch again (as a client
//! whose log still holds them does) answers each record as the uncrashed store did and
//! ends in the uncrashed store's state.
//!
//! `CODETTA_CRASH_SEEDS=N` runs N seeds (CI runs 2); every crash point of each is tried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::testutil::{Gen, T0, check_consistency, fid_in, name};
use super::{Store, StoreOptions};
use crate::clock::ManualClock;
use codetta_testkit::CrashDisk;
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::update::{CreateHow, Op, RecordOutcome, UpdateRecord};
use codetta_wire::{Fid, Incarnation, ReplicaId, SetAttrs, VolumeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One shipped batch: its records and their data.
#[derive(Debug, Clone)]
struct Batch {
    records: Vec<UpdateRecord>,
    data: Vec<u8>,
}

/// What the uncrashed store did: the batches, each one's answers, and the volume's digests
/// before the first batch and after each.
struct Reference {
    batches: Vec<Batch>,
    answers: Vec<Vec<RecordOutcome>>,
    digests: Vec<Vec<[u8; 32]>>,
}

const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn clock() -> crate::clock::SharedClock {
    ManualClock::new(1_800_000_000_000)
}

/// Opens a store on `disk` and makes the volume every run uses (the same ids each time).
fn set_up(disk: &CrashDisk) -> Result<(Store, VolumeInfo), String> {
    let store = Store::open_with_backend(disk.clone(), StoreOptions::default(), clock())
        .map_err(|e| e.to_string())?;
    let id = VolumeId(7);
    let vol = VolumeInfo {
        id,
        name: "vol".into(),
        root: Fid::root(id),
        vsg: vec![ReplicaMember {
            replica: ReplicaId(70),
            server: "s".into(),
        }],
        epoch: 0,
        addrs: Vec::new(),
    };
    let vol = store
        .create_replica(&vol, ReplicaId(70), T0)
        .map_err(|e| e.to_string())?;
    store
        .claim_incarnation(Incarnation(5))
        .map_err(|e| e.to_string())?;
    Ok((store, vol))
}

/// Makes `count` batches of random creates, writes, directories, renames, removes and
/// truncations, applying each to `store` as it goes (later ones name what earlier ones made).
fn reference(seed: u64, count: usize) -> Reference {
    let disk = CrashDisk::failing_at(None);
    let (store, vol) = set_up(&disk).unwrap();
    let mut g = Gen::new(vol.id, Incarnation(5));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut dirs: Vec<Fid> = vec![vol.root];
    let mut out = Reference {
        batches: Vec::new(),
        answers: Vec::new(),
        digests: vec![store.volume_digests(vol.id).unwrap()],
    };
    for _ in 0..count {
        let mut records = Vec::new();
        let mut data = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let dir = dirs[rng.random_range(0..dirs.len())];
            let n = NAMES[rng.random_range(0..NAMES.len())];
            let op = match rng.random_range(0..10) {
                0..=2 => g.create_op(dir, n, CreateHow::Guarded).0,
                3..=5 => {
                    let fid = fid_in(&store, dir, n);
                    let len = rng.random_range(1..70_000);
                    let offset = rng.random_range(0..200_000);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    let op = Gen::write_op(fid, offset, &bytes);
                    data.extend_from_slice(&bytes);
                    op
                }
                6 => {
                    let (op, fid) = g.mkdir_op(dir, n);
                    dirs.push(fid);
                    op
                }
                7 => {
                    let to = dirs[rng.random_range(0..dirs.len())];
                    let m = NAMES[rng.random_range(0..NAMES.len())];
                    super::testutil::rename_in(&store, dir, n, to, m)
                }
                8 => Op::Remove {
                    dir,
                    name: name(n),
                    fid: fid_in(&store, dir, n),
                },
                _ => Op::SetAttr {
                    fid: fid_in(&store, dir, n),
                    set: SetAttrs {
                        size: Some(rng.random_range(0..100_000)),
                        ..SetAttrs::default()
                    },
                },
            };
            records.push(g.rec(op));
        }
        let batch = Batch { records, data };
        let answers = store
            .ship(&crate::store::Shipment::new(
                &batch.records,
                &batch.data,
                1,
                &[],
            ))
            .expect("the uncrashed store takes every batch")
            .outcomes;
        out.batches.push(batch);
        out.answers.push(answers);
        out.digests.push(store.volume_digests(vol.id).unwrap());
    }
    check_consistency(&store);
    out
}

/// Crashes at I/O `crash_at`, powers off keeping unsynced writes as `power_seed` picks,
/// reopens and checks. `Ok(false)` when the run ended before reaching that I/O.
fn crash_once(r: &Reference, crash_at: u64, power_seed: u64) -> Result<bool, String> {
    let disk = CrashDisk::failing_at(Some(crash_at));
    // Batches the store acknowledged before the disk failed.
    let mut acknowledged = 0;
    let mut set_up_done = false;
    if let Ok((store, _)) = set_up(&disk) {
        set_up_done = true;
        for batch in &r.batches {
            if store
                .ship(&crate::store::Shipment::new(
                    &batch.records,
                    &batch.data,
                    1,
                    &[],
                ))
                .is_err()
            {
                break;
            }
            acknowledged += 1;
            if disk.failed() {
                // Answered although the disk failed after its commit: it must be whole.
                break;
            }
        }
        drop(store);
    }
    if !disk.failed() {
        return Ok(false);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.redb");
    std::fs::write(&path, disk.after_power_loss(power_seed)).unwrap();
    let store = match Store::open_with_clock(&path, StoreOptions::default(), clock()) {
        Ok(store) => store,
        // A store that crashed while it was being made (before its volume existed) has
        // nothing acknowledged to lose; redb may refuse a file it never finished.
        Err(_) if !set_up_done => return Ok(true),
        Err(e) => return Err(format!("reopening after a crash at I/O {crash_at}: {e}")),
    };
    let volumes = store.list_volumes().map_err(|e| e.to_string())?;
    let Some(vol) = volumes.first().cloned() else {
        // Only a crash before the volume's creation was acknowledged may lose it.
        return if !set_up_done {
            Ok(true)
        } else {
            Err(format!("crash at I/O {crash_at}: the volume is gone"))
        };
    };
    check_consistency(&store);
    // Every acknowledged batch, and the one in flight whole or not at all.
    let now = store.volume_digests(vol.id).map_err(|e| e.to_string())?;
    let whole = (acknowledged..=acknowledged + 1)
        .filter(|k| *k < r.digests.len())
        .find(|k| r.digests[*k] == now);
    let Some(held) = whole else {
        return Err(format!(
            "crash at I/O {crash_at} (power seed {power_seed}): {acknowledged} batches \
             acknowledged, the state matches neither that nor one more"
        ));
    };
    // Applied sequences agree with the data: every batch shipped again gets the first
    // answers, and the end state is the uncrashed store's.
    for (k, batch) in r.batches.iter().enumerate() {
        let answers = store
            .ship(&crate::store::Shipment::new(
                &batch.records,
                &batch.data,
                1,
                &[],
            ))
            .map_err(|e| format!("crash at I/O {crash_at}: batch {k} shipped again: {e}"))?
            .outcomes;
        if answers != r.answers[k] {
            return Err(format!(
                "crash at I/O {crash_at} (power seed {power_seed}, {held} batches held): \
                 batch {k} shipped again answered {answers:?}, first {:?}",
                r.answers[k]
            ));
        }
    }
    let end = store.volume_digests(vol.id).map_err(|e| e.to_string())?;
    if Some(&end) != r.digests.last() {
        return Err(format!(
            "crash at I/O {crash_at}: after shipping everything again the state differs"
        ));
    }
    check_consistency(&store);
    Ok(true)
}

/// Every crash point of `seed`'s workload; the number of points tried.
fn every_crash_point(seed: u64, batches: usize) -> u64 {
    let r = reference(seed, batches);
    let mut tried = 0;
    for crash_at in 1.. {
        match crash_once(&r, crash_at, seed ^ crash_at) {
            Ok(true) => tried += 1,
            Ok(false) => break,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    tried
}

#[test]
fn every_acknowledged_batch_survives_a_crash_at_every_io() {
    let seeds: u64 = std::env::var("CODETTA_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut points = 0;
    for seed in 0..seeds {
        points += every_crash_point(seed, 24);
    }
    eprintln!("crash points tried: {points} over {seeds} seeds, 0 lost");
    assert!(points > 100, "too few crash points: {points}");
}
