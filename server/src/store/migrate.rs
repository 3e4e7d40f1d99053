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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testutil::{Fx, check_consistency};
    use super::super::{StoreOptions, meta_u64, tables};
    use super::*;
    use codetta_wire::update::Op;
    use redb::ReadableDatabase;

    /// Writes every object record as format 4 did (without `links`; none may have any).
    fn downgrade_vnodes(db: &Database, format: u64) {
        let txn = db.begin_write().unwrap();
        {
            let mut vnodes = txn.open_table(tables::VNODES).unwrap();
            let all: Vec<((u32, u64), codec::Vnode)> = vnodes
                .iter()
                .unwrap()
                .map(|i| {
                    let (k, v) = i.unwrap();
                    (k.value(), codec::decode("vnodes", v.value()).unwrap())
                })
                .collect();
            for (key, v) in all {
                assert!(v.links.is_empty());
                let old = v4::Vnode {
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
                    history: v5::History::from(&v.history),
                    digest: v.digest,
                    parent: v.parent,
                    name: v.name,
                    subdirs: v.subdirs,
                    target: v.target,
                    verifier: v.verifier,
                };
                vnodes
                    .insert(key, codec::encode(&old).unwrap().as_slice())
                    .unwrap();
            }
            downgrade_tombstones(&txn);
            put_meta_u64(
                &mut txn.open_table(tables::META).unwrap(),
                tables::meta::FORMAT,
                format,
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }

    /// Writes every object record and tombstone as format 5 did (histories without spans),
    /// then the tombstones too, as every format before 6 kept them.
    fn downgrade_to_5(db: &Database) {
        let txn = db.begin_write().unwrap();
        {
            let mut vnodes = txn.open_table(tables::VNODES).unwrap();
            let all: Vec<((u32, u64), codec::Vnode)> = vnodes
                .iter()
                .unwrap()
                .map(|i| {
                    let (k, v) = i.unwrap();
                    (k.value(), codec::decode("vnodes", v.value()).unwrap())
                })
                .collect();
            for (key, v) in all {
                let old = v5::Vnode {
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
                    history: v5::History::from(&v.history),
                    digest: v.digest,
                    parent: v.parent,
                    name: v.name,
                    subdirs: v.subdirs,
                    target: v.target,
                    verifier: v.verifier,
                    links: v.links,
                };
                vnodes
                    .insert(key, codec::encode(&old).unwrap().as_slice())
                    .unwrap();
            }
            downgrade_tombstones(&txn);
            put_meta_u64(
                &mut txn.open_table(tables::META).unwrap(),
                tables::meta::FORMAT,
                5,
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }

    fn downgrade_tombstones(txn: &redb::WriteTransaction) {
        let mut tombs = txn.open_table(tables::TOMBSTONES).unwrap();
        let all: Vec<((u32, u64), codec::Tombstone)> = tombs
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.value(), codec::decode("tombstones", v.value()).unwrap())
            })
            .collect();
        for (key, t) in all {
            let old = v5::Tombstone {
                unique: t.unique,
                ftype: t.ftype,
                version: t.version,
                history: v5::History::from(&t.history),
                parent: t.parent,
                name: t.name,
            };
            tombs
                .insert(key, codec::encode(&old).unwrap().as_slice())
                .unwrap();
        }
    }

    /// A format-5 store with more objects and tombstones than one batch rewrites opens as
    /// format 6, every object and tombstone as it was; a crash part-way (simulated by a
    /// cursor left in META) goes on after it.
    #[test]
    fn a_format_5_store_gets_spans_in_its_histories() {
        let mut fx = Fx::new();
        let root = fx.root();
        let d = fx.mkdir(root, "d");
        let mut fids = vec![root, d];
        for i in 0..VNODES_PER_BATCH + 300 {
            let f = fx.create(d, &format!("f{i}"));
            if i % 1000 == 0 {
                fx.write(f, 0, format!("data {i}").as_bytes());
            }
            fids.push(f);
        }
        let names: Vec<String> = (0..VNODES_PER_BATCH + 10)
            .map(|i| format!("g{i}"))
            .collect();
        for chunk in names.chunks(512) {
            let mut creates = Vec::new();
            let mut removes = Vec::new();
            for n in chunk {
                let (op, fid) =
                    fx.g.create_op(root, n, codetta_wire::update::CreateHow::Guarded);
                creates.push((op, Vec::new()));
                removes.push((
                    Op::Remove {
                        dir: root,
                        name: codetta_wire::Name::new(n.as_bytes()).unwrap(),
                        fid,
                    },
                    Vec::new(),
                ));
            }
            assert!(fx.batch(creates).iter().all(|o| o.is_ok()));
            assert!(fx.batch(removes).iter().all(|o| o.is_ok()));
        }
        let tombs = |fx: &Fx| -> Vec<codec::Tombstone> {
            let txn = fx.store.db.begin_read().unwrap();
            let t = txn.open_table(tables::TOMBSTONES).unwrap();
            t.iter()
                .unwrap()
                .map(|i| codec::decode("tombstones", i.unwrap().1.value()).unwrap())
                .collect()
        };
        let before: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
        let buried = tombs(&fx);
        assert!(buried.len() > VNODES_PER_BATCH);
        downgrade_to_5(&fx.store.db);
        // A crash after the first 100 object records were rewritten: they are of format 6
        // and the cursor names the last of them.
        {
            let txn = fx.store.db.begin_write().unwrap();
            {
                let mut vnodes = txn.open_table(tables::VNODES).unwrap();
                let first: Vec<((u32, u64), v5::Vnode)> = vnodes
                    .iter()
                    .unwrap()
                    .take(100)
                    .map(|i| {
                        let (k, v) = i.unwrap();
                        (k.value(), codec::decode("vnodes", v.value()).unwrap())
                    })
                    .collect();
                let last = first.last().unwrap().0;
                for (key, old) in first {
                    let new = codec::encode(&codec::Vnode::from(old)).unwrap();
                    vnodes.insert(key, new.as_slice()).unwrap();
                }
                let cursor: (u8, Option<(u32, u64)>) = (0, Some(last));
                txn.open_table(tables::META)
                    .unwrap()
                    .insert(SPANS_CURSOR, codec::encode(&cursor).unwrap().as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let mut fx = fx.reopened(StoreOptions::default());
        assert_eq!(format_of(&fx), Some(6));
        let after: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
        assert_eq!(after, before);
        // What format 5 could not keep is gone: spans and chained marks.
        let unspanned: Vec<codec::Tombstone> = buried
            .into_iter()
            .map(|mut t| {
                t.history = v5::History::from(&t.history).into();
                t
            })
            .collect();
        assert_eq!(tombs(&fx), unspanned);
        check_consistency(&fx.store);
        fx.write(fids[2], 0, b"after");
        check_consistency(&fx.store);
    }

    fn format_of(fx: &Fx) -> Option<u64> {
        let txn = fx.store.db.begin_read().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        meta_u64(&meta, tables::meta::FORMAT).unwrap()
    }

    /// A format-4 store with more objects than one batch rewrites opens as format 5: every
    /// object reads as before, with the same version and content tag (an object with one
    /// name hashes as it did), and takes a hard link afterwards.
    #[test]
    fn a_format_4_store_gets_names_in_its_records() {
        let mut fx = Fx::new();
        let root = fx.root();
        let d = fx.mkdir(root, "d");
        let mut fids = vec![root, d];
        for i in 0..VNODES_PER_BATCH + 300 {
            let f = fx.create(d, &format!("f{i}"));
            if i % 1000 == 0 {
                fx.write(f, 0, format!("data {i}").as_bytes());
            }
            fids.push(f);
        }
        let before: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
        downgrade_vnodes(&fx.store.db, 4);
        let mut fx = fx.reopened(StoreOptions::default());
        assert_eq!(format_of(&fx), Some(super::super::STORE_FORMAT));
        let after: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
        assert_eq!(after, before);
        check_consistency(&fx.store);
        fx.link(fids[2], root, "again").unwrap();
        assert_eq!(fx.state(fids[2]).attrs.nlink, 2);
        check_consistency(&fx.store);
    }

    /// Turns a format-3 store back into format 2 (the inverse of the upgrade).
    fn downgrade(db: &Database) {
        let txn = db.begin_write().unwrap();
        {
            let mut chunks = WriteChunks::open(&txn, 0).unwrap();
            let mut refs = txn.open_table(v2::CHUNK_REFS).unwrap();
            let mut heads = txn.open_table(v2::CHUNKS).unwrap();
            let mut tails = txn.open_table(v2::CHUNK_TAILS).unwrap();
            for item in chunks.index.iter().unwrap() {
                let (k, v) = item.unwrap();
                let e: codec::ChunkEntry = codec::decode("chunk_index", v.value()).unwrap();
                let hash = k.value();
                refs.insert(hash, codec::encode(&e.refs).unwrap().as_slice())
                    .unwrap();
                heads
                    .insert(hash, chunks.heads.get(e.id).unwrap().unwrap().value())
                    .unwrap();
                if let Some(t) = chunks.tails.get(e.id).unwrap() {
                    tails.insert(hash, t.value()).unwrap();
                }
            }
            chunks.index.retain(|_, _| false).unwrap();
            chunks.heads.retain(|_, _| false).unwrap();
            chunks.tails.retain(|_, _| false).unwrap();
            put_meta_u64(
                &mut txn.open_table(tables::META).unwrap(),
                tables::meta::FORMAT,
                2,
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }

    /// A store of format 2 with more chunks than one batch moves, some shared and some
    /// split into a head and a tail, opens as format 3 with every byte and count intact.
    #[test]
    fn a_format_2_store_is_upgraded_in_place() {
        let mut fx = Fx::new();
        let root = fx.root();
        let mut files = Vec::new();
        for i in 0..(CHUNKS_PER_BATCH + 40) {
            let f = fx.create(root, &format!("f{i}"));
            fx.write(f, 0, format!("small file {i}").as_bytes());
            files.push(f);
        }
        let big: Vec<u8> = (0..3 * 65_536u32).map(|i| (i % 251) as u8).collect();
        for name in ["big1", "big2"] {
            let f = fx.create(root, name);
            fx.write(f, 0, &big);
            files.push(f);
        }
        let before: Vec<Vec<u8>> = files.iter().map(|f| fx.read_all(*f)).collect();
        let stats = fx.store.storage_stats().unwrap();
        downgrade_vnodes(&fx.store.db, 4);
        downgrade(&fx.store.db);

        let fx = fx.reopened(StoreOptions::default());
        let after: Vec<Vec<u8>> = files.iter().map(|f| fx.read_all(*f)).collect();
        assert_eq!(after, before);
        let upgraded = fx.store.storage_stats().unwrap();
        assert_eq!(
            (upgraded.chunks, upgraded.chunk_bytes),
            (stats.chunks, stats.chunk_bytes)
        );
        check_consistency(&fx.store);
        let txn = fx.store.db.begin_read().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        assert_eq!(
            meta_u64(&meta, tables::meta::FORMAT).unwrap(),
            Some(super::super::STORE_FORMAT)
        );
        assert!(
            txn.open_table(v2::CHUNK_REFS).is_err(),
            "old tables are gone"
        );
        drop((meta, txn));

        // Writing after the upgrade hands out ids past the moved ones.
        let mut fx = fx;
        let f = fx.create(root, "new");
        fx.write(f, 0, b"after the upgrade");
        assert_eq!(fx.read_all(f), b"after the upgrade");
        assert_eq!(fx.read_all(files[0]), before[0]);
        check_consistency(&fx.store);
    }

    /// The cookie of format 3 and before: 64 bits of the name's hash.
    fn old_cookie(name: &[u8]) -> u64 {
        let hash = blake3::hash(name);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_be_bytes(first).max(1)
    }

    /// Turns every entry's key back into format 3's cookie.
    fn downgrade_cookies(db: &Database) {
        let txn = db.begin_write().unwrap();
        {
            let mut dirents = txn.open_table(tables::DIRENTS).unwrap();
            let all: Vec<_> = dirents
                .iter()
                .unwrap()
                .map(|i| {
                    let (k, v) = i.unwrap();
                    let (vol, vnode, cookie, name) = k.value();
                    (vol, vnode, cookie, name.to_vec(), v.value().to_vec())
                })
                .collect();
            for (vol, vnode, cookie, name, value) in all {
                dirents
                    .remove((vol, vnode, cookie, name.as_slice()))
                    .unwrap();
                dirents
                    .insert(
                        (vol, vnode, old_cookie(&name), name.as_slice()),
                        value.as_slice(),
                    )
                    .unwrap();
            }
            put_meta_u64(
                &mut txn.open_table(tables::META).unwrap(),
                tables::meta::FORMAT,
                3,
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }

    /// A format-3 store with directories larger than a batch opens as format 4 with every
    /// entry under its new cookie, listed and looked up as before.
    #[test]
    fn a_format_3_store_gets_cookies_below_2_pow_63() {
        let mut fx = Fx::new();
        let root = fx.root();
        let big = fx.mkdir(root, "big");
        let names: Vec<String> = (0..ENTRIES_PER_BATCH + 500)
            .map(|i| format!("n{i}"))
            .collect();
        for n in &names {
            fx.create(big, n);
        }
        let list = |fx: &Fx| {
            let mut out = Vec::new();
            let mut cookie = 0;
            loop {
                let (_, entries, eof) = fx.store.readdir(big, cookie, 1000, false).unwrap();
                for e in entries {
                    assert!(e.cookie < 1 << 63 && e.cookie >= 3, "cookie {}", e.cookie);
                    cookie = e.cookie;
                    out.push(e.name.to_string());
                }
                if eof {
                    out.sort();
                    return out;
                }
            }
        };
        let before = list(&fx);
        assert_eq!(before.len(), names.len());
        downgrade_vnodes(&fx.store.db, 4);
        downgrade_cookies(&fx.store.db);
        let fx = fx.reopened(StoreOptions::default());
        assert_eq!(list(&fx), before);
        assert!(fx.lookup(big, "n7").is_ok());
        check_consistency(&fx.store);
        assert_eq!(format_of(&fx), Some(super::super::STORE_FORMAT));
    }
}
