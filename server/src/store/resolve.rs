//! The store's side of resolution (rule 6): views of one object for comparison, its block
//! map in digested groups, chunks, and the installs that bring a stale replica to the
//! winning state.
//!
//! Installs never bump a vector: `install_meta` and `install_blocks` change the state but
//! leave the version as it was (so a replica caught half-way stays dominated and is resolved
//! again), and `install_version` / `install_delete` set the final version. Every install
//! happens only if the object's version is still the one the coordinator saw
//! (compare-and-set: a client update in between makes the coordinator gather again, and no
//! install puts older blocks over it). Directory entries follow from their
//! children's placements: moving or creating an object edits the entries of the
//! directories involved, whose own versions are resolved on their own.

use super::codec::{self, BlockRef, Tombstone, Vnode};
use super::collect::is_collected;
use super::content::ReadChunks;
use super::lookup::{Found, find};
use super::tables::{self, VnodeKey};
use super::{R, Store, StoreError, object_state};
use crate::conflict::is_conflict_name;
use codetta_wire::message::Change;
use codetta_wire::replica::{
    ABSENT_TAG, BLOCK_GROUP, BlockEntry, ObjectMeta, Placement, ReplicaView, ViewBody, deleted_tag,
};
use codetta_wire::{BLOCK_SIZE, Fid, FsError, History, Name, VersionVector, VolumeId};
use redb::{ReadTransaction, ReadableTable};
use std::collections::hash_map::Entry;

/// A page of a volume's change sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangePage {
    /// Changed objects with their digests here, oldest first.
    pub entries: Vec<Change>,
    /// The number to ask after next time.
    pub next: u64,
    /// The oldest number still kept (older ones were trimmed); 0 when none is kept.
    pub oldest: u64,
    /// The newest number.
    pub last: u64,
}

/// Most entries of the young tail of a change sequence one `changes` call looks at.
const MAX_YOUNG_CHANGES: usize = 1 << 16;

/// Most chunks one `chunks` call returns.
pub const MAX_CHUNKS_PER_CALL: usize = 256;

/// Which records of the client incarnations in `history` this replica applied in
/// `volume` (rule 5: its state includes those updates, remembered or not).
fn applied_runs(
    txn: &ReadTransaction,
    volume: VolumeId,
    history: &History,
) -> R<Vec<codetta_wire::replica::AppliedRun>> {
    let applied = txn.open_table(tables::APPLIED)?;
    let gaps_table = txn.open_table(tables::APPLIED_GAPS)?;
    let mut out: Vec<codetta_wire::replica::AppliedRun> = Vec::new();
    for e in history.entries() {
        let incarnation = e.id.incarnation;
        if out.iter().any(|r| r.incarnation == incarnation) {
            continue;
        }
        let key = (incarnation.0, volume.0);
        if let Some(g) = applied.get(key)? {
            let rec: super::apply::AppliedRec = codec::decode("applied", g.value())?;
            let gaps: codec::Gaps = match gaps_table.get(key)? {
                Some(g) => codec::decode("applied_gaps", g.value())?,
                None => codec::Gaps::default(),
            };
            out.push(codetta_wire::replica::AppliedRun {
                incarnation,
                floor: gaps.floor.max(1),
                high: rec.seq,
                gaps: gaps.gaps,
            });
        }
    }
    Ok(out)
}

/// The fid of directory vnode `vnode` in `volume` (live or deleted), for placements.
fn dir_fid(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    tombstones: &impl ReadableTable<VnodeKey, &'static [u8]>,
    volume: VolumeId,
    vnode: u64,
) -> R<Fid> {
    let key = (volume.0, vnode);
    let unique = if let Some(g) = vnodes.get(key)? {
        codec::decode::<Vnode>("vnodes", g.value())?.unique
    } else if let Some(g) = tombstones.get(key)? {
        codec::decode::<Tombstone>("tombstones", g.value())?.unique
    } else {
        return Err(StoreError::Inconsistent(format!(
            "placement names a missing directory {vnode:x}"
        )));
    };
    Ok(Fid {
        volume,
        vnode,
        unique,
    })
}

fn block_entries(
    blocks: &impl ReadableTable<(u32, u64, u64), &'static [u8]>,
    fid: Fid,
    first: u64,
    last: u64,
) -> R<Vec<BlockEntry>> {
    let mut out = Vec::new();
    for item in blocks.range((fid.volume.0, fid.vnode, first)..=(fid.volume.0, fid.vnode, last))? {
        let (k, v) = item?;
        let r: BlockRef = codec::decode("blocks", v.value())?;
        out.push(BlockEntry {
            index: k.value().2,
            hash: r.hash,
            len: r.len,
        });
    }
    Ok(out)
}

/// The path of object `v` from the volume root ("/a/b"), following parents.
fn path_of(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    volume: VolumeId,
    v: &Vnode,
) -> R<String> {
    let mut parts = vec![String::from_utf8_lossy(&v.name).into_owned()];
    let mut cur = v.parent;
    for _ in 0..4096 {
        if cur == Fid::ROOT_VNODE {
            break;
        }
        let Some(g) = vnodes.get((volume.0, cur))? else {
            break;
        };
        let p: Vnode = codec::decode("vnodes", g.value())?;
        parts.push(String::from_utf8_lossy(&p.name).into_owned());
        cur = p.parent;
    }
    parts.reverse();
    Ok(format!("/{}", parts.join("/")))
}

/// True while resolution is installing file `fid` here (see [`tables::INSTALLING`]).
pub(super) fn is_installing(txn: &ReadTransaction, fid: Fid) -> R<bool> {
    let marks = txn.open_table(tables::INSTALLING)?;
    Ok(marks.get((fid.volume.0, fid.vnode))?.is_some())
}

pub(super) fn name_of(bytes: &[u8]) -> R<Name> {
    Name::new(bytes).map_err(|e| StoreError::Inconsistent(format!("stored name: {e}")))
}

impl Store {
    fn view_in(&self, txn: &ReadTransaction, fid: Fid) -> R<ReplicaView> {
        let vnodes = txn.open_table(tables::VNODES)?;
        let tombstones = txn.open_table(tables::TOMBSTONES)?;
        let volumes = txn.open_table(tables::VOLUMES)?;
        if volumes.get(fid.volume.0)?.is_none() {
            return Err(FsError::UnknownVolume.into());
        }
        let mut view = match find(&vnodes, &tombstones, fid)? {
            Found::Live(v) => {
                let parent = dir_fid(&vnodes, &tombstones, fid.volume, v.parent)?;
                let links = v
                    .links
                    .iter()
                    .map(|(dir, name)| {
                        Ok(Placement {
                            parent: dir_fid(&vnodes, &tombstones, fid.volume, *dir)?,
                            name: name.clone(),
                        })
                    })
                    .collect::<R<Vec<_>>>()?;
                let state = object_state(fid, &v);
                ReplicaView {
                    fid,
                    version: v.version.clone(),
                    history: v.history.clone(),
                    tag: state.tag,
                    applied: Vec::new(),
                    installing: is_installing(txn, fid)?,
                    body: ViewBody::Live(ObjectMeta {
                        ftype: v.ftype,
                        mode: v.mode,
                        uid: v.uid,
                        gid: v.gid,
                        size: v.size,
                        atime: v.atime,
                        mtime: v.mtime,
                        ctime: v.ctime,
                        placement: Placement {
                            parent,
                            name: v.name,
                        },
                        target: v.target,
                        verifier: v.verifier,
                        links,
                    }),
                }
            }
            Found::Dead(t) => ReplicaView {
                fid,
                version: t.version,
                history: t.history,
                tag: deleted_tag(fid),
                applied: Vec::new(),
                installing: false,
                body: ViewBody::Deleted(Placement {
                    // The directory may be collected by now: then the root stands for it.
                    parent: if vnodes.get((fid.volume.0, t.parent))?.is_some()
                        || tombstones.get((fid.volume.0, t.parent))?.is_some()
                    {
                        dir_fid(&vnodes, &tombstones, fid.volume, t.parent)?
                    } else {
                        Fid::root(fid.volume)
                    },
                    name: t.name,
                }),
            },
            Found::Nothing if is_collected(&txn.open_table(tables::COLLECTED)?, fid)? => {
                ReplicaView {
                    fid,
                    version: VersionVector::new(),
                    history: History::new(),
                    tag: deleted_tag(fid),
                    applied: Vec::new(),
                    installing: false,
                    body: ViewBody::Forgotten,
                }
            }
            Found::Nothing => ReplicaView {
                fid,
                version: VersionVector::new(),
                history: History::new(),
                tag: ABSENT_TAG,
                applied: Vec::new(),
                installing: false,
                body: ViewBody::Absent,
            },
        };
        view.applied = applied_runs(txn, fid.volume, &view.history)?;
        Ok(view)
    }

    /// This replica's view of `fid`: live, deleted (a tombstone) or absent.
    pub fn view(&self, fid: Fid) -> Result<ReplicaView, FsError> {
        let txn = self.read_txn()?;
        Ok(self.view_in(&txn, fid)?)
    }

    /// Digests of `fid`'s block map in groups of [`BLOCK_GROUP`] blocks, group 0 first, up
    /// to the group holding the file's last byte (a group with no blocks has the digest of
    /// nothing). Equal digests mean equal blocks.
    pub fn block_digests(&self, fid: Fid) -> Result<Vec<[u8; 32]>, FsError> {
        let txn = self.read_txn()?;
        let v = self.load(&txn, fid)?;
        let groups = v.size.div_ceil(BLOCK_SIZE).div_ceil(BLOCK_GROUP);
        let blocks = txn.open_table(tables::BLOCKS).map_err(StoreError::from)?;
        let mut hashers: Vec<blake3::Hasher> = (0..groups).map(|_| blake3::Hasher::new()).collect();
        let range = (fid.volume.0, fid.vnode, 0)..=(fid.volume.0, fid.vnode, u64::MAX);
        for item in blocks.range(range).map_err(StoreError::from)? {
            let (k, val) = item.map_err(StoreError::from)?;
            let index = k.value().2;
            let r: BlockRef = codec::decode("blocks", val.value())?;
            if let Some(h) = hashers.get_mut((index / BLOCK_GROUP) as usize) {
                h.update(&index.to_le_bytes());
                h.update(&r.hash);
                h.update(&r.len.to_le_bytes());
            }
        }
        Ok(hashers.iter().map(|h| *h.finalize().as_bytes()).collect())
    }

    /// Up to `count` blocks of `fid` from index `first` on.
    pub fn block_map(&self, fid: Fid, first: u64, count: u32) -> Result<Vec<BlockEntry>, FsError> {
        let txn = self.read_txn()?;
        self.load(&txn, fid)?;
        let blocks = txn.open_table(tables::BLOCKS).map_err(StoreError::from)?;
        let last = first.saturating_add(u64::from(count.max(1)) - 1);
        Ok(block_entries(&blocks, fid, first, last)?)
    }

    /// The hashes among `hashes` whose chunks this store does not hold.
    pub fn missing_chunks(&self, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, FsError> {
        let txn = self.read_txn()?;
        let index = txn
            .open_table(tables::CHUNK_INDEX)
            .map_err(StoreError::from)?;
        let mut out = Vec::new();
        for h in hashes {
            if index.get(h).map_err(StoreError::from)?.is_none() && !out.contains(h) {
                out.push(*h);
            }
        }
        Ok(out)
    }

    /// The bytes of each chunk in `hashes` (verified), at most [`MAX_CHUNKS_PER_CALL`].
    pub fn chunks(&self, hashes: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, FsError> {
        if hashes.len() > MAX_CHUNKS_PER_CALL {
            return Err(FsError::Malformed(format!(
                "more than {MAX_CHUNKS_PER_CALL} chunks asked"
            )));
        }
        let txn = self.read_txn()?;
        let chunks = ReadChunks::open(&txn)?;
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            let entry = chunks.entry(h)?.ok_or(FsError::NotFound)?;
            out.push(chunks.read(&BlockRef {
                hash: *h,
                len: entry.len,
            })?);
        }
        Ok(out)
    }

    /// Changed objects of `volume` after change number `since`: at most `max` (change
    /// number, fid) pairs, the number to ask after next, and the oldest number kept.
    /// Only entries at least `older_than_ms` old are returned (recent ones wait, so that
    /// the client's second phase lands before anyone compares), and none of an object that
    /// also has a younger entry (it is still changing; `next` still moves past them). An
    /// entry stamped after the clock's now was stamped before the wall clock stepped back:
    /// it counts as old (waiting for the clock to catch up stalled healing for as long as
    /// the step, an hour for an hour, found by the fault matrix's clock steps).
    pub fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u64,
    ) -> Result<ChangePage, FsError> {
        let now = self.clock().wall_ms();
        let cutoff = now.saturating_sub(older_than_ms);
        let young = |when: u64| when > cutoff && when <= now;
        let txn = self.read_txn()?;
        let t = txn.open_table(tables::CHANGES).map_err(StoreError::from)?;
        let range = (volume.0, 0)..=(volume.0, u64::MAX);
        let oldest = match t.range(range.clone()).map_err(StoreError::from)?.next() {
            Some(item) => item.map_err(StoreError::from)?.0.value().1,
            None => 0,
        };
        let last = match t
            .range(range.clone())
            .map_err(StoreError::from)?
            .next_back()
        {
            Some(item) => item.map_err(StoreError::from)?.0.value().1,
            None => 0,
        };
        let decode = |v: &[u8]| -> Result<(Fid, u64), StoreError> {
            let bad = || StoreError::Inconsistent("bad change entry".into());
            let (fid, when) = v.split_at_checked(Fid::ENCODED_LEN).ok_or_else(bad)?;
            let fid = Fid::from_bytes(fid).ok_or_else(bad)?;
            Ok((fid, u64::from_le_bytes(when.try_into().map_err(|_| bad())?)))
        };
        // The young tail (changes within `older_than_ms`), read from the end: objects still
        // changing. Their older entries are left out of the page (the young one comes in a
        // later page), so an object being written is compared only once it has been quiet.
        // (Past MAX_YOUNG_CHANGES the rest of the tail is not looked at: such objects are
        // merely compared early.)
        let mut changing = std::collections::BTreeSet::new();
        for item in t
            .range(range.clone())
            .map_err(StoreError::from)?
            .rev()
            .take(MAX_YOUNG_CHANGES)
        {
            let (_, v) = item.map_err(StoreError::from)?;
            let (fid, when) = decode(v.value())?;
            if when <= cutoff {
                break;
            }
            if young(when) {
                changing.insert(fid);
            }
        }
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        let tombstones = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        // An object changed many times appears as often in the page: one digest each.
        let mut digests = std::collections::HashMap::new();
        let mut entries = Vec::new();
        let mut next = since;
        let from = (volume.0, since.saturating_add(1));
        for item in t
            .range(from..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
        {
            if entries.len() >= max as usize {
                break;
            }
            let (k, v) = item.map_err(StoreError::from)?;
            let (fid, when) = decode(v.value())?;
            if young(when) {
                break;
            }
            next = k.value().1;
            if !changing.contains(&fid) {
                let digest = match digests.entry(fid) {
                    Entry::Occupied(known) => *known.get(),
                    Entry::Vacant(slot) => {
                        *slot.insert(super::digests::digest_of(&vnodes, &tombstones, fid)?)
                    }
                };
                entries.push(Change {
                    seq: next,
                    fid,
                    digest,
                });
            }
        }
        Ok(ChangePage {
            entries,
            next,
            oldest,
            last,
        })
    }

    /// Objects of `volume` under a conflict name that resolution put there (still live and
    /// still so named), with their paths, and the last number of the change sequence.
    pub fn conflicts_and_changes(
        &self,
        volume: VolumeId,
    ) -> Result<(Vec<codetta_wire::message::ConflictEntry>, u64), FsError> {
        let txn = self.read_txn()?;
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        let tombstones = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        let marks = txn
            .open_table(tables::CONFLICTS)
            .map_err(StoreError::from)?;
        let mut conflicts = Vec::new();
        for item in marks
            .range((volume.0, 0)..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
        {
            let (k, _) = item.map_err(StoreError::from)?;
            let vnode = k.value().1;
            let Some(g) = vnodes.get((volume.0, vnode)).map_err(StoreError::from)? else {
                continue;
            };
            let v: Vnode = codec::decode("vnodes", g.value())?;
            if !is_conflict_name(&v.name) {
                continue;
            }
            conflicts.push(codetta_wire::message::ConflictEntry {
                fid: Fid {
                    volume,
                    vnode,
                    unique: v.unique,
                },
                parent: dir_fid(&vnodes, &tombstones, volume, v.parent)?,
                path: path_of(&vnodes, volume, &v)?,
            });
        }
        let changes = txn.open_table(tables::CHANGES).map_err(StoreError::from)?;
        let last = match changes
            .range((volume.0, 0)..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
            .next_back()
        {
            Some(item) => item.map_err(StoreError::from)?.0.value().1,
            None => 0,
        };
        Ok((conflicts, last))
    }

    /// Every object of `volume` this replica knows, live or deleted (for checks and the
    /// simulation; a full scan).
    pub fn object_fids(&self, volume: VolumeId) -> Result<Vec<Fid>, FsError> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        for item in vnodes
            .range((volume.0, 0)..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
        {
            let (k, v) = item.map_err(StoreError::from)?;
            let v: Vnode = codec::decode("vnodes", v.value())?;
            out.push(Fid {
                volume,
                vnode: k.value().1,
                unique: v.unique,
            });
        }
        let tombstones = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        for item in tombstones
            .range((volume.0, 0)..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
        {
            let (k, v) = item.map_err(StoreError::from)?;
            let t: Tombstone = codec::decode("tombstones", v.value())?;
            out.push(Fid {
                volume,
                vnode: k.value().1,
                unique: t.unique,
            });
        }
        Ok(out)
    }

    /// Where this server got to in `peer`'s change sequence of `volume`.
    pub fn peer_cursor(
        &self,
        volume: VolumeId,
        peer: codetta_wire::ReplicaId,
    ) -> Result<u64, FsError> {
        let txn = self.read_txn()?;
        let t = txn
            .open_table(tables::PEER_CURSORS)
            .map_err(StoreError::from)?;
        match t.get((volume.0, peer.0)).map_err(StoreError::from)? {
            Some(g) => Ok(codec::decode("peer_cursors", g.value())?),
            None => Ok(0),
        }
    }

    /// Records where this server got to in `peer`'s change sequence of `volume`.
    pub fn set_peer_cursor(
        &self,
        volume: VolumeId,
        peer: codetta_wire::ReplicaId,
        cursor: u64,
    ) -> Result<(), FsError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        {
            let mut t = txn
                .open_table(tables::PEER_CURSORS)
                .map_err(StoreError::from)?;
            t.insert((volume.0, peer.0), codec::encode(&cursor)?.as_slice())
                .map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }
}
