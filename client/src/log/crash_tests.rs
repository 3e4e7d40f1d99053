//! The modify log's identity and counters under crashes at every I/O of its redb file:
//! the file is on a `CrashDisk` that fails at its Nth write, resize or sync and then loses
//! power (unsynced writes kept, lost or torn). Reopened, the log must still have the
//! identity it acknowledged, and numbers to continue from past every vnode and sequence
//! number an acknowledged append used: no number is handed out twice after a crash.
//! (The records themselves are in segment files that survive a process crash in the page
//! cache; a machine's restart drops them by design, see `crate::segments`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{ClientState, LoggedRecord, ModifyLog};
use bytes::Bytes;
use codetta_testkit::CrashDisk;
use codetta_wire::update::Op;
use codetta_wire::{Fid, Incarnation, SetAttrs, Time, UpdateId, UpdateRecord, VolumeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const IDENTITY: ClientState = ClientState {
    incarnation: Incarnation(9),
    unique: 3,
    next_vnode: 1,
    next_seq: 1,
};

fn record(seq: u64, vnode: u64) -> LoggedRecord {
    let fid = Fid {
        volume: VolumeId(1),
        vnode,
        unique: 3,
    };
    LoggedRecord {
        record: UpdateRecord {
            id: UpdateId {
                incarnation: IDENTITY.incarnation,
                seq,
            },
            time: Time::default(),
            op: Op::SetAttr {
                fid,
                set: SetAttrs::default(),
            },
        },
        data: Bytes::new(),
    }
}

/// Runs the workload of `seed` with the disk failing at I/O `crash_at`, then reopens and
/// checks. `false` once the workload ends before that I/O.
fn crash_once(seed: u64, crash_at: u64) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume-1.redb");
    let disk = CrashDisk::failing_at(Some(crash_at));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut identity = false;
    // The numbers acknowledged appends used (the next ones after them).
    let (mut used_vnode, mut used_seq) = (1, 1);
    if let Ok(log) = ModifyLog::open_with_backend(&path, disk.clone())
        && log.set_state(IDENTITY).is_ok()
    {
        identity = true;
        let (mut vnode, mut seq) = (1u64, 1u64);
        for _ in 0..40 {
            let records: Vec<LoggedRecord> = (0..rng.random_range(1..4))
                .map(|_| {
                    vnode += rng.random_range(0..1500);
                    seq += 1;
                    record(seq - 1, vnode)
                })
                .collect();
            if log.append(&records, vnode + 1, seq).is_err() {
                break;
            }
            (used_vnode, used_seq) = (vnode + 1, seq);
        }
        log.close();
    }
    if !disk.failed() {
        return false;
    }
    std::fs::write(&path, disk.after_power_loss(seed ^ crash_at)).unwrap();
    let log = match ModifyLog::open(&path) {
        Ok(log) => log,
        // Crashed while the log was being made: nothing was acknowledged.
        Err(e) => {
            assert!(
                !identity,
                "crash at I/O {crash_at}: the log does not open: {e}"
            );
            return true;
        }
    };
    match log.state().unwrap() {
        Some(state) => {
            assert_eq!(
                (state.incarnation, state.unique),
                (IDENTITY.incarnation, IDENTITY.unique)
            );
            assert!(
                state.next_vnode >= used_vnode && state.next_seq >= used_seq,
                "crash at I/O {crash_at} (seed {seed}): continues from vnode {} and seq {}, \
                 but vnode {} and seq {} were used",
                state.next_vnode,
                state.next_seq,
                used_vnode - 1,
                used_seq - 1
            );
        }
        None => assert!(!identity, "crash at I/O {crash_at}: the identity is gone"),
    }
    true
}

#[test]
fn no_number_is_handed_out_twice_after_a_crash_at_any_io() {
    let mut points = 0;
    for seed in 0..3 {
        for crash_at in 1.. {
            if !crash_once(seed, crash_at) {
                break;
            }
            points += 1;
        }
    }
    eprintln!("modify log crash points tried: {points}, 0 numbers reused");
    assert!(points > 20, "too few crash points: {points}");
}
