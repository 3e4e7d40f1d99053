//! Property tests: random operations keep the store's invariants and give two stores the
//! same answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::super::testutil::{Gen, T0, check_consistency, fid_in, name, rename_in};
use super::super::{Store, StoreOptions};
use codetta_wire::update::{CreateHow, NewObject, Op, UpdateRecord};
use codetta_wire::{Fid, SetAttrs};
use proptest::prelude::*;

/// An op in terms of indexes into the fids made so far, so shrinking stays meaningful.
#[derive(Debug, Clone)]
enum Act {
    Create(usize, u8, u8),
    Mkdir(usize, u8),
    Symlink(usize, u8),
    Remove(usize, u8),
    Rmdir(usize, u8),
    Rename(usize, u8, usize, u8),
    Write(usize, u32, u16, u8),
    Resize(usize, u32),
}

fn act() -> impl Strategy<Value = Act> {
    let i = 0usize..12;
    let n = 0u8..4;
    prop_oneof![
        (i.clone(), n.clone(), 0u8..4).prop_map(|(d, n, h)| Act::Create(d, n, h)),
        (i.clone(), n.clone()).prop_map(|(d, n)| Act::Mkdir(d, n)),
        (i.clone(), n.clone()).prop_map(|(d, n)| Act::Symlink(d, n)),
        (i.clone(), n.clone()).prop_map(|(d, n)| Act::Remove(d, n)),
        (i.clone(), n.clone()).prop_map(|(d, n)| Act::Rmdir(d, n)),
        (i.clone(), n.clone(), i.clone(), n.clone())
            .prop_map(|(a, x, b, y)| Act::Rename(a, x, b, y)),
        (i.clone(), 0u32..200_000, any::<u16>(), any::<u8>())
            .prop_map(|(f, o, l, s)| Act::Write(f, o, l, s)),
        (i, 0u32..200_000).prop_map(|(f, s)| Act::Resize(f, s)),
    ]
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// The op for `act`; removes and renames name the objects `store` holds now (as a
/// client that looked them up would), which later records of a batch may change.
fn to_op(store: &Store, g: &mut Gen, fids: &mut Vec<Fid>, act: &Act, data: &mut Vec<u8>) -> Op {
    let known = fids.clone();
    let pick = |i: usize| known[i % known.len()];
    let nm = |n: u8| name(NAMES[n as usize % 4]);
    let new = NewObject {
        mode: 0o755,
        uid: 1,
        gid: 1,
    };
    match *act {
        Act::Create(d, n, h) => {
            let fid = g.fid();
            fids.push(fid);
            let how = match h {
                0 => CreateHow::Guarded,
                1 => CreateHow::Exclusive([h; 8]),
                2 => CreateHow::Unchecked { truncate: true },
                _ => CreateHow::Unchecked { truncate: false },
            };
            Op::Create {
                dir: pick(d),
                name: nm(n),
                fid,
                new,
                how,
            }
        }
        Act::Mkdir(d, n) => {
            let fid = g.fid();
            fids.push(fid);
            Op::Mkdir {
                dir: pick(d),
                name: nm(n),
                fid,
                new,
            }
        }
        Act::Symlink(d, n) => {
            let fid = g.fid();
            fids.push(fid);
            Op::Symlink {
                dir: pick(d),
                name: nm(n),
                fid,
                new,
                target: b"t".to_vec(),
            }
        }
        Act::Remove(d, n) => Op::Remove {
            dir: pick(d),
            name: nm(n),
            fid: fid_in(store, pick(d), NAMES[n as usize % 4]),
        },
        Act::Rmdir(d, n) => Op::Rmdir {
            dir: pick(d),
            name: nm(n),
            fid: fid_in(store, pick(d), NAMES[n as usize % 4]),
        },
        Act::Rename(a, x, b, y) => rename_in(
            store,
            pick(a),
            NAMES[x as usize % 4],
            pick(b),
            NAMES[y as usize % 4],
        ),
        Act::Write(f, off, len, seed) => {
            let bytes = vec![seed; usize::from(len) % 70_000];
            let op = Gen::write_op(pick(f), u64::from(off), &bytes);
            data.extend_from_slice(&bytes);
            op
        }
        Act::Resize(f, size) => Op::SetAttr {
            fid: pick(f),
            set: SetAttrs {
                size: Some(u64::from(size)),
                ..SetAttrs::default()
            },
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// Random (often invalid) operations never panic, keep every invariant, and give
    /// two stores the same state.
    #[test]
    fn random_operations_keep_invariants_and_agree(acts in proptest::collection::vec(act(), 1..40), per_batch in 1usize..8) {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let stores: Vec<Store> = dirs
            .iter()
            .map(|d| Store::open(&d.path().join("s.redb"), StoreOptions::default()).unwrap())
            .collect();
        let vol = stores[0].create_volume("v", T0).unwrap();
        stores[1].create_replica(&vol, vol.vsg[0].replica, T0).unwrap();
        let mut g = Gen::new(vol.id, codetta_wire::Incarnation(1));
        let mut fids = vec![vol.root];
        for group in acts.chunks(per_batch) {
            let mut data = Vec::new();
            let records: Vec<UpdateRecord> = group
                .iter()
                .map(|a| {
                    let op = to_op(&stores[0], &mut g, &mut fids, a, &mut data);
                    g.rec(op)
                })
                .collect();
            let a = stores[0].apply_batch(&records, &data);
            let b = stores[1].apply_batch(&records, &data);
            prop_assert_eq!(&a, &b);
            prop_assert!(a.iter().all(|o| !matches!(o, Err(codetta_wire::FsError::Storage(_) | codetta_wire::FsError::OutOfOrder))), "{:?}", a);
            check_consistency(&stores[0]);
        }
        for fid in &fids {
            prop_assert_eq!(stores[0].getattr(*fid), stores[1].getattr(*fid));
        }
    }
}
