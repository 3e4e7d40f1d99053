//! Brings a store written by an earlier format up to [`super::STORE_FORMAT`], in place, when
//! it is opened: 2 -> 3 moves chunks under sequential ids, 3 -> 4 re-keys directory
//! entries under cookies below 2^63, 4 -> 5 gives every object record its (empty) list of
//! further names (hard links), 5 -> 6 gives every history entry of object records and
//! tombstones its span (`HistEntry::from`, the update alone).
//!
//! Each step moves data in batches, one durable transaction per batch that both writes the
//! new rows and deletes the old ones, so a crash at any point leaves every item in exactly
//! one place and the next open carries on where this one stopped. The format number changes
//! in the transaction that finishes the step.

use super::content::WriteChunks;
use super::tables;
use super::{R, StoreError, codec, put_meta_u64};
use redb::{Database, ReadableTable, ReadableTableMetadata};

/// Chunks moved per transaction (at most 16 MiB of chunk bytes).
const CHUNKS_PER_BATCH: usize = 256;

/// Format 2's chunk tables, keyed by the chunk's hash.
pub(super) mod v2 {
    use redb::TableDefinition;

    /// Hash -> version byte + the head of the chunk.
    pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
    /// Hash -> version byte + the rest of a chunk longer than its head.
    pub(crate) const CHUNK_TAILS: TableDefinition<&[u8; 32], &[u8]> =
        TableDefinition::new("chunk_tails");
    /// Hash -> reference count (codec u64).
    pub(crate) const CHUNK_REFS: TableDefinition<&[u8; 32], &[u8]> =
        TableDefinition::new("chunk_refs");
}

/// Directory entries looked at per transaction.
const ENTRIES_PER_BATCH: usize = 4096;

/// Upgrades the store in `db` from format `found`, step by step; formats it cannot upgrade
/// are refused.
pub(super) fn upgrade(db: &Database, found: u64) -> R<()> {
    match found {
        2 => {
            chunks_by_id(db)?;
            cookies_below_2_63(db)?;
            names_in_records(db)?;
            spans_in_histories(db)
        }
        3 => {
            cookies_below_2_63(db)?;
            names_in_records(db)?;
            spans_in_histories(db)
        }
        4 => {
            names_in_records(db)?;
            spans_in_histories(db)
        }
        5 => spans_in_histories(db),
        _ => Err(StoreError::Format {
            found,
            supported: super::STORE_FORMAT,
        }),
    }
}

/// Format 5's records: histories without spans.
pub(super) mod v5 {
    use codetta_wire::tag::SetDigest;
    use codetta_wire::{FileType, ReplicaId, Time, UpdateId, VersionVector};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct HistEntry {
        pub id: UpdateId,
        pub counted: Vec<ReplicaId>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct History {
        pub entries: Vec<HistEntry>,
    }

    impl From<History> for codetta_wire::History {
        fn from(h: History) -> Self {
            let mut out = codetta_wire::History::new();
            for e in h.entries {
                for r in e.counted {
                    out.record(e.id, r);
                }
            }
            out
        }
    }

    impl From<&codetta_wire::History> for History {
        fn from(h: &codetta_wire::History) -> Self {
            History {
                entries: h
                    .entries()
                    .iter()
                    .map(|e| HistEntry {
                        id: e.id,
                        counted: e.counted.clone(),
                    })
                    .collect(),
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Vnode {
        pub unique: u32,
        pub ftype: FileType,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime: Time,
        pub mtime: Time,
        pub ctime: Time,
        pub version: VersionVector,
        pub history: History,
        pub digest: SetDigest,
        pub parent: u64,
        pub name: Vec<u8>,
        pub subdirs: u64,
        pub target: Vec<u8>,
        pub verifier: Option<[u8; 8]>,
        pub links: Vec<(u64, Vec<u8>)>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Tombstone {
        pub unique: u32,
        pub ftype: FileType,
        pub version: VersionVector,
        pub history: History,
        pub parent: u64,
        pub name: Vec<u8>,
    }

    impl From<Vnode> for super::codec::Vnode {
        fn from(v: Vnode) -> Self {
            super::codec::Vnode {
                unique: v.unique,
                ftype: v.ftype,
                mode: v.mode,
                uid: v.uid,
                gid: v.gid,
                size: v.size,
                atime: v.atime,
                mtime: v.mtime,
                ctime: v.ctime,
                version: v.version,
                history: v.history.into(),
                digest: v.digest,
                parent: v.parent,
                name: v.name,
                subdirs: v.subdirs,
                target: v.target,
                verifier: v.verifier,
                links: v.links,
            }
        }
    }

    impl From<Tombstone> for super::codec::Tombstone {
        fn from(t: Tombstone) -> Self {
            super::codec::Tombstone {
                unique: t.unique,
                ftype: t.ftype,
                version: t.version,
                history: t.history.into(),
                parent: t.parent,
                name: t.name,
            }
        }
    }
}

/// Format 4's object record: format 5's without `links`.
pub(super) mod v4 {
    use super::v5::History;
    use codetta_wire::tag::SetDigest;
    use codetta_wire::{FileType, Time, VersionVector};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Vnode {
        pub unique: u32,
        pub ftype: FileType,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime: Time,
        pub mtime: Time,
        pub ctime: Time,
        pub version: VersionVector,
        pub history: History,
        pub digest: SetDigest,
        pub parent: u64,
        pub name: Vec<u8>,
        pub subdirs: u64,
        pub target: Vec<u8>,
        pub verifier: Option<[u8; 8]>,
    }

    impl From<Vnode> for super::v5::Vnode {
        fn from(v: Vnode) -> Self {
            super::v5::Vnode {
                unique: v.unique,
                ftype: v.ftype,
                mode: v.mode,
                uid: v.uid,
                gid: v.gid,
                size: v.size,
                atime: v.atime,
                mtime: v.mtime,
                ctime: v.ctime,
                version: v.version,
                history: v.history,
                digest: v.digest,
                parent: v.parent,
                name: v.name,
                subdirs: v.subdirs,
                target: v.target,
                verifier: v.verifier,
                links: Vec::new(),
            }
        }
    }
}

/// Object records rewritten per transaction.
const VNODES_PER_BATCH: usize = 4096;

/// Format 4 -> 5: every object record is written again with an empty `links` list. A
/// record of either format decodes only as its own (format 5 has one more field at the
/// end), so a scan started over after a crash passes over the records already rewritten.
/// A record that decodes as neither is left as it is and reported where it is read.
fn names_in_records(db: &Database) -> R<()> {
    use std::ops::Bound;
    let mut after: Option<(u32, u64)> = None;
    let mut rewritten = 0u64;
    loop {
        let txn = db.begin_write()?;
        let finished = {
            let mut vnodes = txn.open_table(tables::VNODES)?;
            let mut old = Vec::new();
            let mut scanned = 0;
            {
                let range = match after {
                    Some(from) => {
                        vnodes.range::<(u32, u64)>((Bound::Excluded(from), Bound::Unbounded))?
                    }
                    None => vnodes.range::<(u32, u64)>(..)?,
                };
                for item in range.take(VNODES_PER_BATCH) {
                    let (k, v) = item?;
                    scanned += 1;
                    after = Some(k.value());
                    if codec::decode::<v5::Vnode>("vnodes", v.value()).is_err()
                        && let Ok(record) = codec::decode::<v4::Vnode>("vnodes", v.value())
                    {
                        old.push((k.value(), v5::Vnode::from(record)));
                    }
                }
            }
            for (key, record) in &old {
                vnodes.insert(*key, codec::encode(record)?.as_slice())?;
            }
            rewritten += old.len() as u64;
            scanned < VNODES_PER_BATCH
        };
        if finished {
            put_meta_u64(&mut txn.open_table(tables::META)?, tables::meta::FORMAT, 5)?;
            txn.commit()?;
            tracing::info!(objects = rewritten, "store upgraded to format 5");
            return Ok(());
        }
        txn.commit()?;
    }
}

/// Where [`spans_in_histories`] has got to: (phase, key last rewritten), kept in META in
/// the transaction of each batch, so that a step started over after a crash goes on after
/// it (a record of format 6 may also decode as one of format 5: the scan cannot tell).
const SPANS_CURSOR: &str = "upgrade_spans_cursor";

/// Format 5 -> 6: every object record (phase 0), then every tombstone (phase 1), written
/// again with spans in its history, a batch per transaction.
fn spans_in_histories(db: &Database) -> R<()> {
    use std::ops::Bound;
    let mut rewritten = 0u64;
    loop {
        let txn = db.begin_write()?;
        let mut meta = txn.open_table(tables::META)?;
        let (phase, after): (u8, Option<(u32, u64)>) = match meta.get(SPANS_CURSOR)? {
            Some(g) => codec::decode("meta", g.value())?,
            None => (0, None),
        };
        let table = match phase {
            0 => tables::VNODES,
            _ => tables::TOMBSTONES,
        };
        let mut rows = txn.open_table(table)?;
        let mut batch = Vec::new();
        {
            let range = match after {
                Some(from) => {
                    rows.range::<(u32, u64)>((Bound::Excluded(from), Bound::Unbounded))?
                }
                None => rows.range::<(u32, u64)>(..)?,
            };
            for item in range.take(VNODES_PER_BATCH) {
                let (k, v) = item?;
                let new = match phase {
                    0 => codec::decode::<v5::Vnode>("vnodes", v.value())
                        .map(|old| codec::encode(&codec::Vnode::from(old))),
                    _ => codec::decode::<v5::Tombstone>("tombstones", v.value())
                        .map(|old| codec::encode(&codec::Tombstone::from(old))),
                };
                // A record that decodes as neither format is left as it is and reported
                // where it is read.
                batch.push((k.value(), new.ok().transpose()?));
            }
        }
        let last = batch.last().map(|(k, _)| *k);
        let full = batch.len() == VNODES_PER_BATCH;
        for (key, new) in &batch {
            if let Some(bytes) = new {
                rows.insert(*key, bytes.as_slice())?;
                rewritten += 1;
            }
        }
        drop(rows);
        match (full, last, phase) {
            (true, Some(key), _) => {
                meta.insert(SPANS_CURSOR, codec::encode(&(phase, Some(key)))?.as_slice())?;
            }
            (_, _, 0) => {
                // Object records done: tombstones from their first.
                let next: (u8, Option<(u32, u64)>) = (1, None);
                meta.insert(SPANS_CURSOR, codec::encode(&next)?.as_slice())?;
            }
            _ => {
                meta.remove(SPANS_CURSOR)?;
                put_meta_u64(&mut meta, tables::meta::FORMAT, 6)?;
                drop(meta);
                txn.commit()?;
                tracing::info!(records = rewritten, "store upgraded to format 6");
                return Ok(());
            }
        }
        drop(meta);
        txn.commit()?;
    }
}

/// Format 3 -> 4: every directory entry is keyed by its name's cookie as
/// [`codetta_wire::Name::cookie`] now makes it (63 bits, at least 3; it was 64 bits).
/// Entries are scanned in key order, a batch per transaction; one whose key holds another
/// cookie is moved under the right one (the value as it is). A moved entry met again later
/// in the scan is already right, and a scan started over after a crash finds the moved ones
/// right, so the step can stop anywhere.
fn cookies_below_2_63(db: &Database) -> R<()> {
    use std::ops::Bound;
    let mut after: Option<(u32, u64, u64, Vec<u8>)> = None;
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write()?;
        let finished = {
            let mut dirents = txn.open_table(tables::DIRENTS)?;
            let mut stale = Vec::new();
            let mut scanned = 0;
            {
                let range = match &after {
                    Some((vol, vnode, cookie, name)) => {
                        let from: (u32, u64, u64, &[u8]) = (*vol, *vnode, *cookie, name);
                        dirents.range::<(u32, u64, u64, &[u8])>((
                            Bound::Excluded(from),
                            Bound::Unbounded,
                        ))?
                    }
                    None => dirents.range::<(u32, u64, u64, &[u8])>(..)?,
                };
                for item in range.take(ENTRIES_PER_BATCH) {
                    let (k, v) = item?;
                    let (vol, vnode, cookie, name) = k.value();
                    scanned += 1;
                    after = Some((vol, vnode, cookie, name.to_vec()));
                    // A name that no longer parses keeps its key (it is reported where it
                    // is read).
                    if let Ok(parsed) = codetta_wire::Name::new(name.to_vec())
                        && parsed.cookie() != cookie
                    {
                        stale.push((vol, vnode, cookie, parsed, v.value().to_vec()));
                    }
                }
            }
            for (vol, vnode, cookie, name, value) in &stale {
                dirents.remove((*vol, *vnode, *cookie, name.as_bytes()))?;
                dirents.insert(
                    (*vol, *vnode, name.cookie(), name.as_bytes()),
                    value.as_slice(),
                )?;
            }
            moved += stale.len() as u64;
            scanned < ENTRIES_PER_BATCH
        };
        if finished {
            put_meta_u64(&mut txn.open_table(tables::META)?, tables::meta::FORMAT, 4)?;
            txn.commit()?;
            tracing::info!(entries = moved, "store upgraded to format 4");
            return Ok(());
        }
        txn.commit()?;
    }
}

/// Format 2 -> 3: every chunk moves from the tables keyed by hash to the id-keyed ones,
/// with its reference count in the index. The bytes move as they are: a damaged chunk stays
/// damaged and is reported when read.
fn chunks_by_id(db: &Database) -> R<()> {
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write()?;
        let done = {
            let mut refs = txn.open_table(v2::CHUNK_REFS)?;
            let mut heads = txn.open_table(v2::CHUNKS)?;
            let mut tails = txn.open_table(v2::CHUNK_TAILS)?;
            let mut chunks = WriteChunks::open(&txn, 0)?;
            let batch: Vec<([u8; 32], u64)> = refs
                .iter()?
                .take(CHUNKS_PER_BATCH)
                .map(|item| -> R<_> {
                    let (k, v) = item?;
                    Ok((*k.value(), codec::decode("chunk_refs", v.value())?))
                })
                .collect::<R<_>>()?;
            for (hash, count) in &batch {
                let mut bytes = Vec::new();
                for part in [heads.remove(hash)?, tails.remove(hash)?]
                    .into_iter()
                    .flatten()
                {
                    bytes.extend_from_slice(part.value().get(1..).unwrap_or_default());
                }
                chunks.insert_new(hash, &bytes, *count)?;
                refs.remove(hash)?;
            }
            moved += batch.len() as u64;
            if batch.is_empty() && !heads.is_empty()? {
                tracing::warn!(
                    left = heads.len()?,
                    "chunks without a reference count were dropped in the upgrade"
                );
            }
            batch.is_empty()
        };
        if done {
            for table in [v2::CHUNK_REFS, v2::CHUNKS, v2::CHUNK_TAILS] {
                txn.delete_table(table)?;
            }
            put_meta_u64(&mut txn.open_table(tables::META)?, tables::meta::FORMAT, 3)?;
            txn.commit()?;
            tracing::info!(chunks = moved, "store upgraded to format 3");
            return Ok(());
        }
        txn.commit()?;
        if moved.is_multiple_of(64 * CHUNKS_PER_BATCH as u64) {
            tracing::info!(chunks = moved, "upgrading the store to format 3");
        }
    }
}

/// Decodes `bytes` as the records of earlier formats a migration reads.
pub(super) fn fuzz_old_records(bytes: &[u8]) {
    let _ = codec::decode::<v4::Vnode>("vnodes", bytes);
    let _ = codec::decode::<v5::Vnode>("vnodes", bytes).map(codec::Vnode::from);
    let _ = codec::decode::<v5::Tombstone>("tombstones", bytes).map(codec::Tombstone::from);
}

#[cfg(test)]
mod tests;
