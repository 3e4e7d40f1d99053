//! Brings a store written by an earlier format up to [`super::STORE_FORMAT`], in place, when
//! it is opened.
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

/// Upgrades the store in `db` from format `found`; formats it cannot upgrade are refused.
pub(super) fn upgrade(db: &Database, found: u64) -> R<()> {
    match found {
        2 => chunks_by_id(db),
        _ => Err(StoreError::Format {
            found,
            supported: super::STORE_FORMAT,
        }),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testutil::{Fx, check_consistency};
    use super::super::{StoreOptions, meta_u64, tables};
    use super::*;
    use redb::ReadableDatabase;

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
        assert_eq!(meta_u64(&meta, tables::meta::FORMAT).unwrap(), Some(3));
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
}
