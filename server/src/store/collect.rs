//! Collecting tombstones (rule 8). A tombstone can go once no replica holds the object
//! live, but a create record still travelling in some client's log could then bring the
//! object back. So each replica keeps, per client incarnation, the highest vnode counter
//! it has collected (its *floor*): a create of a fid at or below the floor that is not here
//! is refused like a create of a tombstoned one.
//!
//! When a tombstone is collected past the GC horizon without some replica, the others keep
//! a small marker (`collected`: the fid's key and uniquifier) and report the fid as
//! `Forgotten`, so that a live version still held by the absent replica comes back as a
//! conflict, never by plain merge. The marker goes once that replica collects the fid too
//! or brings it back.
//!
//! A lower counter of the same incarnation can be refused safely: records of one
//! incarnation reach each replica in order, so a create older than a collected one was
//! applied somewhere already, and resolution brings it here.
//!
//! Every new tombstone is queued by time; the server's collector (`crate::collect`) takes
//! the old ones and runs the two rounds of `forget` over the group.

use super::codec::{self, Tombstone};
use super::{R, Store, StoreError, tables};
use codetta_wire::{Fid, FsError, VolumeId};
use redb::ReadableTable;

/// The client incarnation and counter a fid's vnode was allocated from; `None` for vnodes
/// no client allocates (the root, resolution's conflict copies).
pub(crate) fn client_counter(fid: Fid) -> Option<(u32, u64)> {
    let incarnation = fid.vnode >> 32;
    if incarnation == 0 || fid.vnode & crate::conflict::CONFLICT_VNODE_BIT != 0 {
        return None;
    }
    Some((incarnation as u32, fid.vnode & 0xffff_ffff))
}

/// True when `fid` is at or below its incarnation's floor: collected here, or older than
/// something collected. Creates of such a fid are refused.
pub(crate) fn is_forgotten(
    floors: &impl ReadableTable<(u32, u32), &'static [u8]>,
    fid: Fid,
) -> R<bool> {
    let Some((incarnation, counter)) = client_counter(fid) else {
        return Ok(false);
    };
    Ok(match floors.get((fid.volume.0, incarnation))? {
        Some(g) => counter <= codec::decode::<u64>("gc_floors", g.value())?,
        None => false,
    })
}

/// Stores a tombstone; a new one (made at `fresh`, wall milliseconds) is queued for
/// collection.
pub(crate) fn bury(
    tombstones: &mut redb::Table<'_, (u32, u64), &'static [u8]>,
    gc_queue: &mut redb::Table<'_, (u32, u64, u64), &'static [u8]>,
    key: (u32, u64),
    tomb: &Tombstone,
    fresh: Option<u64>,
) -> R<()> {
    tombstones.insert(key, codec::encode(tomb)?.as_slice())?;
    if let Some(made_ms) = fresh {
        gc_queue.insert(
            (key.0, made_ms, key.1),
            codec::encode(&tomb.unique)?.as_slice(),
        )?;
    }
    Ok(())
}

/// True when `fid` was collected here without some replica (past the horizon).
pub(crate) fn is_collected(
    collected: &impl ReadableTable<(u32, u64), &'static [u8]>,
    fid: Fid,
) -> R<bool> {
    Ok(match collected.get((fid.volume.0, fid.vnode))? {
        Some(g) => codec::decode::<u32>("collected", g.value())? == fid.unique,
        None => false,
    })
}

/// One queued tombstone: when it was made here, its fid, and whether it is still here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcCandidate {
    pub made_ms: u64,
    pub fid: Fid,
    pub present: bool,
}

impl Store {
    /// Up to `max` queued tombstones of `volume` made at least `min_age_ms` ago, oldest
    /// first.
    pub fn gc_candidates(
        &self,
        volume: VolumeId,
        min_age_ms: u64,
        max: usize,
    ) -> Result<Vec<GcCandidate>, FsError> {
        let cutoff = self.clock().wall_ms().saturating_sub(min_age_ms);
        let txn = self.read_txn()?;
        let queue = txn.open_table(tables::GC_QUEUE).map_err(StoreError::from)?;
        let tombstones = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        let mut out = Vec::new();
        for item in queue
            .range((volume.0, 0, 0)..=(volume.0, cutoff, u64::MAX))
            .map_err(StoreError::from)?
        {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(StoreError::from)?;
            let (_, made_ms, vnode) = k.value();
            let unique: u32 = codec::decode("gc_queue", v.value())?;
            let present = match tombstones
                .get((volume.0, vnode))
                .map_err(StoreError::from)?
            {
                Some(g) => codec::decode::<Tombstone>("tombstones", g.value())?.unique == unique,
                None => false,
            };
            out.push(GcCandidate {
                made_ms,
                fid: Fid {
                    volume,
                    vnode,
                    unique,
                },
                present,
            });
        }
        Ok(out)
    }

    /// Takes candidates off the collection queue.
    pub fn gc_dequeue(&self, done: &[GcCandidate]) -> Result<(), FsError> {
        self.write(|t| {
            for c in done {
                t.gc_queue
                    .remove((c.fid.volume.0, c.made_ms, c.fid.vnode))?;
            }
            Ok(())
        })
    }

    /// One round of collecting `fid`'s tombstone: raises the floor so that a create of
    /// it is refused from now on, and with `drop` removes the tombstone, leaving a marker
    /// when `mark` (collected without some replica) and removing any marker otherwise.
    /// `Exists` when the object is live here (resolution's business first).
    pub fn forget(&self, fid: Fid, drop: bool, mark: bool) -> Result<(), FsError> {
        if fid.vnode == Fid::ROOT_VNODE {
            return Err(FsError::Invalid);
        }
        self.write(|t| {
            let key = (fid.volume.0, fid.vnode);
            t.require_volume(fid.volume)?;
            if t.vnodes.get(key)?.is_some() {
                return Err(FsError::Exists.into());
            }
            if let Some((incarnation, counter)) = client_counter(fid) {
                let floor_key = (fid.volume.0, incarnation);
                let floor = match t.gc_floors.get(floor_key)? {
                    Some(g) => codec::decode::<u64>("gc_floors", g.value())?,
                    None => 0,
                };
                if counter > floor {
                    t.gc_floors
                        .insert(floor_key, codec::encode(&counter)?.as_slice())?;
                }
            }
            if drop {
                let same = match t.tombstones.get(key)? {
                    Some(g) => {
                        codec::decode::<Tombstone>("tombstones", g.value())?.unique == fid.unique
                    }
                    None => false,
                };
                if same {
                    t.tombstones.remove(key)?;
                }
                if mark {
                    t.collected
                        .insert(key, codec::encode(&fid.unique)?.as_slice())?;
                } else {
                    t.collected.remove(key)?;
                }
            }
            Ok(())
        })
    }
}
