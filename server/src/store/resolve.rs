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

use super::apply::WriteTables;
use super::codec::{self, BlockRef, Dirent, Place, Tombstone, Vnode};
use super::collect::is_collected;
use super::content::{self, ReadChunks};
use super::tables::{self, VnodeKey};
use super::tags::entry_member;
use super::{R, Store, StoreError, get_entry, new_vnode, object_state};
use crate::conflict::is_conflict_name;
use codetta_wire::message::Change;
use codetta_wire::replica::{
    ABSENT_TAG, BLOCK_GROUP, BlockEntry, ObjectMeta, Placement, ReplicaView, ViewBody, deleted_tag,
};
use codetta_wire::{BLOCK_SIZE, Fid, FileType, FsError, History, Name, VersionVector, VolumeId};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
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

/// What a key holds: a live object, a tombstone, or nothing.
pub(super) enum Found {
    Live(Vnode),
    Dead(Tombstone),
    Nothing,
}

pub(super) fn find(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    tombstones: &impl ReadableTable<VnodeKey, &'static [u8]>,
    fid: Fid,
) -> R<Found> {
    let key = (fid.volume.0, fid.vnode);
    if let Some(g) = vnodes.get(key)? {
        let v: Vnode = codec::decode("vnodes", g.value())?;
        return Ok(if v.unique == fid.unique {
            Found::Live(v)
        } else {
            Found::Nothing
        });
    }
    if let Some(g) = tombstones.get(key)? {
        let t: Tombstone = codec::decode("tombstones", g.value())?;
        return Ok(if t.unique == fid.unique {
            Found::Dead(t)
        } else {
            Found::Nothing
        });
    }
    Ok(Found::Nothing)
}

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

fn name_of(bytes: &[u8]) -> R<Name> {
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
    /// also has a younger entry (it is still changing; `next` still moves past them).
    pub fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u64,
    ) -> Result<ChangePage, FsError> {
        let cutoff = self.clock().wall_ms().saturating_sub(older_than_ms);
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
        let mut young = std::collections::BTreeSet::new();
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
            young.insert(fid);
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
            if when > cutoff {
                break;
            }
            next = k.value().1;
            if !young.contains(&fid) {
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

    /// Runs `f` in a write transaction committed durably if it succeeds.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> R<T>,
    ) -> Result<T, FsError> {
        let txn: WriteTransaction = self.db.begin_write().map_err(StoreError::from)?;
        let result = (|| -> R<(T, Vec<Fid>)> {
            let mut t = self.write_tables(&txn)?;
            let out = f(&mut t)?;
            t.save_counters()?;
            Ok((out, t.noted.union(&t.touched).copied().collect()))
        })();
        match result {
            Ok((out, changed)) => {
                txn.commit().map_err(StoreError::from)?;
                // Resolution edits: clients holding promises on what changed hear of it
                // (nobody waits for their acknowledgement).
                self.callbacks.break_fids(&changed, None);
                Ok(out)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e.into())
            }
        }
    }

    /// Sets blocks of the live file `fid` if its version is still `expect`: `Some` installs
    /// the chunk (from `chunks`, or already held here), `None` removes the block. The
    /// version is left alone.
    pub fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], &[u8])],
    ) -> Result<(), FsError> {
        for (hash, bytes) in chunks {
            if blake3::hash(bytes).as_bytes() != hash {
                return Err(FsError::Malformed(
                    "shipped chunk does not match its hash".into(),
                ));
            }
        }
        self.write(|t| {
            let key = (fid.volume.0, fid.vnode);
            // Deleted or gone since the coordinator looked: it gathers again.
            let Found::Live(mut v) = find(&t.vnodes, &t.tombstones, fid)? else {
                return Err(FsError::VersionChanged.into());
            };
            if &v.version != expect {
                return Err(FsError::VersionChanged.into());
            }
            if v.ftype != FileType::Regular {
                return Err(FsError::Invalid.into());
            }
            // Every new block takes its chunk before any old one lets go of its own, so that
            // content moving between blocks of this install (two blocks swapped) is never
            // dropped halfway.
            let mut released = Vec::new();
            for (index, entry) in blocks {
                let old = content::block_ref(&t.blocks, (key.0, key.1, *index))?;
                if let Some(e) = entry {
                    if old.is_some_and(|o| o.hash == e.hash && o.len == e.len) {
                        continue;
                    }
                    if e.len as u64 > BLOCK_SIZE {
                        return Err(FsError::Malformed("chunk length".into()).into());
                    }
                    let len = match chunks.iter().find(|(h, _)| *h == e.hash) {
                        Some((_, bytes)) => {
                            t.chunks.retain(&e.hash, bytes)?;
                            bytes.len()
                        }
                        // Held here: a reference more, nothing read. Held when the
                        // coordinator asked and gone since (another install released it):
                        // the coordinator gathers again.
                        None => match t.chunks.retain_held(&e.hash)? {
                            Some(len) => len as usize,
                            None => return Err(FsError::VersionChanged.into()),
                        },
                    };
                    if len != e.len as usize {
                        return Err(FsError::Malformed("chunk length".into()).into());
                    }
                    t.blocks.insert(
                        (key.0, key.1, *index),
                        codec::encode(&BlockRef {
                            hash: e.hash,
                            len: e.len,
                        })?
                        .as_slice(),
                    )?;
                    v.digest.add(&super::tags::block_member(*index, &e.hash));
                } else if old.is_some() {
                    t.blocks.remove((key.0, key.1, *index))?;
                }
                if let Some(o) = old {
                    released.push((*index, o.hash));
                }
            }
            for (index, hash) in released {
                t.chunks.release(&hash)?;
                v.digest.remove(&super::tags::block_member(index, &hash));
            }
            t.vnodes.insert(key, codec::encode(&v)?.as_slice())?;
            t.installing.insert(key, [].as_slice())?;
            Ok(())
        })?;
        self.callbacks.break_fids(&[fid], None);
        Ok(())
    }

    /// Makes `fid` live with `meta` if its version is still `expect`: created (empty
    /// version) if absent, brought back (keeping the tombstone's version) if deleted, moved
    /// if its placement differs. A missing or non-directory parent, or a name held by
    /// another object, is `Blocked` on that object.
    pub fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> Result<(), FsError> {
        self.write(|t| {
            let key = (fid.volume.0, fid.vnode);
            let found = find(&t.vnodes, &t.tombstones, fid)?;
            let (mut v, old_places) = match found {
                Found::Live(v) => {
                    if &v.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    if v.ftype != meta.ftype {
                        return Err(FsError::Invalid.into());
                    }
                    let places = v.places();
                    (v, Some(places))
                }
                Found::Dead(tomb) => {
                    if &tomb.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    t.tombstones.remove(key)?;
                    let mut v = new_vnode(
                        fid.unique, meta.ftype, meta.mode, meta.uid, meta.gid, meta.ctime,
                    );
                    v.version = tomb.version;
                    v.history = tomb.history;
                    t.vnode_count += 1;
                    (v, None)
                }
                Found::Nothing => {
                    if !expect.is_empty() {
                        return Err(FsError::VersionChanged.into());
                    }
                    if t.vnodes.get(key)?.is_some() || t.tombstones.get(key)?.is_some() {
                        // The vnode number holds another object: fids are never reused.
                        return Err(StoreError::Inconsistent(format!(
                            "vnode of {fid} holds another object"
                        )));
                    }
                    t.vnode_count += 1;
                    // A collected object brought back (by a replica that was away).
                    t.collected.remove(key)?;
                    (
                        new_vnode(
                            fid.unique, meta.ftype, meta.mode, meta.uid, meta.gid, meta.ctime,
                        ),
                        None,
                    )
                }
            };
            let is_root = fid.vnode == Fid::ROOT_VNODE;
            if is_root {
                v.set_places(vec![(Fid::ROOT_VNODE, Vec::new())]);
            } else {
                let new_places = t.place_names(fid, meta, old_places.as_deref())?;
                v.set_places(new_places);
            }
            v.mode = meta.mode & 0o7777;
            v.uid = meta.uid;
            v.gid = meta.gid;
            v.atime = meta.atime;
            v.mtime = meta.mtime;
            v.ctime = meta.ctime;
            v.target = meta.target.clone();
            v.verifier = meta.verifier;
            // Made here by this install (blocks follow), or resized: until its blocks and
            // version are in, the data is not whole. (A rename or attribute change alone
            // leaves the data as it was: a coordinator renames its own source so.)
            let partial =
                meta.ftype == FileType::Regular && (old_places.is_none() || meta.size != v.size);
            match meta.ftype {
                FileType::Regular => {
                    if meta.size < v.size
                        && let Some(plan) =
                            content::plan_resize(&t.blocks, &t.chunks, key, v.size, meta.size)?
                    {
                        content::apply_blocks(
                            &mut t.blocks,
                            &mut t.chunks,
                            key,
                            &plan,
                            &mut v.digest,
                        )?;
                    }
                    v.size = meta.size;
                }
                FileType::Symlink => v.size = meta.target.len() as u64,
                FileType::Directory => {}
                _ => v.size = 0,
            }
            if is_conflict_name(&v.name) {
                t.conflicts.insert(key, [].as_slice())?;
            }
            if partial {
                t.installing.insert(key, [].as_slice())?;
            }
            t.vnodes.insert(key, codec::encode(&v)?.as_slice())?;
            t.note_change(fid)?;
            Ok(())
        })
    }

    /// Sets `fid`'s version and history (live or deleted) if its version is still `expect`.
    pub fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> Result<(), FsError> {
        self.write(|t| {
            let key = (fid.volume.0, fid.vnode);
            match find(&t.vnodes, &t.tombstones, fid)? {
                Found::Live(mut v) => {
                    if &v.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    v.version = version.clone();
                    v.history = history.clone();
                    t.vnodes.insert(key, codec::encode(&v)?.as_slice())?;
                    // The version says the state is whole now: its data may be served.
                    t.installing.remove(key)?;
                }
                Found::Dead(mut tomb) => {
                    if &tomb.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    tomb.version = version.clone();
                    tomb.history = history.clone();
                    t.tombstones.insert(key, codec::encode(&tomb)?.as_slice())?;
                }
                Found::Nothing => return Err(FsError::VersionChanged.into()),
            }
            Ok(())
        })
    }

    /// Deletes `fid` (leaving a tombstone with `version`, `history` and `placement`) if its
    /// version is still `expect`. A directory that still has entries here is `Blocked` on
    /// one of them.
    pub fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> Result<(), FsError> {
        if fid.vnode == Fid::ROOT_VNODE {
            return Err(FsError::Invalid);
        }
        self.write(|t| {
            let key = (fid.volume.0, fid.vnode);
            let (ftype, current, fresh) = match find(&t.vnodes, &t.tombstones, fid)? {
                Found::Live(v) => {
                    if &v.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    if v.ftype == FileType::Directory
                        && let Some(child) = t.first_entry(fid)?
                    {
                        return Err(FsError::Blocked(child).into());
                    }
                    for (dir, name) in v.places() {
                        let parent = Fid {
                            volume: fid.volume,
                            vnode: dir,
                            unique: 0,
                        };
                        t.unlink_entry(parent, &name_of(&name)?, fid)?;
                    }
                    content::drop_blocks(&mut t.blocks, &mut t.chunks, key, 0, None)?;
                    t.installing.remove(key)?;
                    t.vnodes.remove(key)?;
                    t.vnode_count = t.vnode_count.saturating_sub(1);
                    (v.ftype, true, true)
                }
                Found::Dead(tomb) => {
                    if &tomb.version != expect {
                        return Err(FsError::VersionChanged.into());
                    }
                    (tomb.ftype, false, false)
                }
                Found::Nothing => {
                    if !expect.is_empty() {
                        return Err(FsError::VersionChanged.into());
                    }
                    (FileType::Regular, false, true)
                }
            };
            let tomb = Tombstone {
                unique: fid.unique,
                ftype,
                version: version.clone(),
                history: history.clone(),
                parent: placement.parent.vnode,
                name: placement.name.clone(),
            };
            super::collect::bury(
                &mut t.tombstones,
                &mut t.gc_queue,
                key,
                &tomb,
                fresh.then_some(t.now_ms),
            )?;
            t.collected.remove(key)?;
            if current {
                t.note_change(fid)?;
            }
            Ok(())
        })
    }
}

impl WriteTables<'_> {
    /// Gives `fid` the names of `meta` (its placement and links), from `old` (its names
    /// here, `None` if it is new here): the entries of names it loses are removed, those of
    /// names it gains added. A new name whose directory is missing or no directory, or that
    /// another object holds, is `Blocked` on that object, as is a directory placed under
    /// itself; then nothing changes. Returns the names.
    fn place_names(&mut self, fid: Fid, meta: &ObjectMeta, old: Option<&[Place]>) -> R<Vec<Place>> {
        let old = old.unwrap_or_default();
        // One name listed twice (conflict names can make two the same) is one name.
        let mut wanted: Vec<&Placement> = Vec::new();
        for p in meta.placements() {
            if !wanted
                .iter()
                .any(|w| w.parent.vnode == p.parent.vnode && w.name == p.name)
            {
                wanted.push(p);
            }
        }
        if meta.ftype == FileType::Directory && wanted.len() > 1 {
            return Err(FsError::Invalid.into());
        }
        let place = |p: &Placement| (p.parent.vnode, p.name.clone());
        let mut gained: Vec<&Placement> = Vec::new();
        for p in wanted.iter().copied().filter(|p| !old.contains(&place(p))) {
            let name = name_of(&p.name)?;
            match find(&self.vnodes, &self.tombstones, p.parent)? {
                Found::Live(d) if d.ftype == FileType::Directory => {}
                _ => return Err(FsError::Blocked(p.parent).into()),
            }
            match get_entry(&self.dirents, p.parent, &name)? {
                Some(e) if e.fid != fid => return Err(FsError::Blocked(e.fid).into()),
                Some(_) => {}
                None => gained.push(p),
            }
            if meta.ftype == FileType::Directory && self.is_ancestor_of(fid, p.parent)? {
                // Placing a directory under itself: a cycle (rule 7) the coordinator
                // settles by choosing one placement.
                return Err(FsError::Blocked(p.parent).into());
            }
        }
        let new: Vec<Place> = wanted.iter().map(|p| place(p)).collect();
        for (dir, name) in old.iter().filter(|p| !new.contains(p)) {
            let dir = Fid {
                volume: fid.volume,
                vnode: *dir,
                unique: 0,
            };
            self.unlink_entry(dir, &name_of(name)?, fid)?;
        }
        for p in gained {
            self.link_entry(p.parent, &name_of(&p.name)?, fid, meta.ftype)?;
        }
        Ok(new)
    }

    /// Adds `name -> child` to directory `dir` (size, subdirectory count and digest follow;
    /// the directory's version does not change: resolution edits, it does not update).
    fn link_entry(&mut self, dir: Fid, name: &Name, child: Fid, ftype: FileType) -> R<()> {
        self.touched.insert(dir);
        let key = (dir.volume.0, dir.vnode);
        let mut d: Vnode = match self.vnodes.get(key)? {
            Some(g) => codec::decode("vnodes", g.value())?,
            None => return Err(FsError::Blocked(dir).into()),
        };
        d.size += 1;
        if ftype == FileType::Directory {
            d.subdirs += 1;
        }
        d.digest.add(&entry_member(name, child));
        self.dirents.insert(
            (dir.volume.0, dir.vnode, name.cookie(), name.as_bytes()),
            codec::encode(&Dirent { fid: child, ftype })?.as_slice(),
        )?;
        self.vnodes.insert(key, codec::encode(&d)?.as_slice())?;
        Ok(())
    }

    /// Removes `name -> child` from directory vnode `dir.vnode` if that is what it holds.
    fn unlink_entry(&mut self, dir: Fid, name: &Name, child: Fid) -> R<()> {
        self.touched.insert(dir);
        let dkey = (dir.volume.0, dir.vnode, name.cookie(), name.as_bytes());
        let entry: Option<Dirent> = match self.dirents.get(dkey)? {
            Some(g) => Some(codec::decode("dirents", g.value())?),
            None => None,
        };
        let Some(entry) = entry.filter(|e| e.fid == child) else {
            return Ok(());
        };
        self.dirents.remove(dkey)?;
        let key = (dir.volume.0, dir.vnode);
        let d: Option<Vnode> = match self.vnodes.get(key)? {
            Some(g) => Some(codec::decode("vnodes", g.value())?),
            None => None,
        };
        if let Some(mut d) = d {
            d.size = d.size.saturating_sub(1);
            if entry.ftype == FileType::Directory {
                d.subdirs = d.subdirs.saturating_sub(1);
            }
            d.digest.remove(&entry_member(name, child));
            self.vnodes.insert(key, codec::encode(&d)?.as_slice())?;
        }
        Ok(())
    }

    /// Some entry of directory `dir`, if it has any.
    fn first_entry(&self, dir: Fid) -> R<Option<Fid>> {
        let last = [0xFFu8; codetta_wire::name::MAX_NAME_LEN + 1];
        let start: (u32, u64, u64, &[u8]) = (dir.volume.0, dir.vnode, 0, &[]);
        let end: (u32, u64, u64, &[u8]) = (dir.volume.0, dir.vnode, u64::MAX, &last);
        match self.dirents.range(start..=end)?.next() {
            Some(item) => {
                let (_, v) = item?;
                Ok(Some(codec::decode::<Dirent>("dirents", v.value())?.fid))
            }
            None => Ok(None),
        }
    }

    /// True if directory `dir` is `other` or an ancestor of it.
    fn is_ancestor_of(&self, dir: Fid, other: Fid) -> R<bool> {
        let mut cur = other.vnode;
        for _ in 0..(1 << 20) {
            if cur == dir.vnode {
                return Ok(true);
            }
            if cur == Fid::ROOT_VNODE {
                return Ok(false);
            }
            match self.vnodes.get((dir.volume.0, cur))? {
                Some(g) => cur = codec::decode::<Vnode>("vnodes", g.value())?.parent,
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}
