//! File contents: fixed blocks of [`BLOCK_SIZE`] pointing at content-addressed chunks.
//!
//! A file's block `i` covers bytes `[i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)`. Its row in
//! `blocks` names the chunk (blake3 hash) holding the block's first `len` bytes; the rest of
//! the block up to EOF reads as zeros, and a block with no row is a hole. So a write near
//! 10 GiB into an empty file stores one block, and truncation never has to write zeros.
//! Invariant: no block holds bytes at or past the file size.
//!
//! Chunks are deduplicated by hash and reference-counted (`chunk_refs` counts block rows);
//! a chunk whose count drops to zero is deleted in the same transaction, so space comes back
//! as soon as the update commits. Chunks are verified on every read: a chunk whose bytes no
//! longer hash to its key is reported as [`FsError::Corrupt`], never returned.
//!
//! Write amplification: a piece covering a whole block, or a block from its start through
//! the end of the data it had, is stored as is; any other partial write reads the old block,
//! overlays the new bytes and stores the merged block as a new chunk. A random 4 KiB write
//! into a large file therefore stores one 64 KiB chunk: 16x the bytes written (plus redb's
//! copy-on-write pages). The later fix is extents (a block as a list of smaller chunks) or
//! delta records; this module is where either goes.

use super::StoreError;
use super::codec::{self, BlockRef, ChunkEntry};
use super::tables::{self, BlockKey, CHUNK_HEAD_MAX, ChunkKey};
use super::tags::block_member;
use codetta_wire::tag::SetDigest;
use codetta_wire::update::write_pieces;
use codetta_wire::{BLOCK_SIZE, FsError};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};
use std::borrow::Cow;

/// Block size as a `usize` (64 KiB fits every platform we build for).
const BS: usize = BLOCK_SIZE as usize;

/// A block's new content, decided before anything is written.
#[derive(Debug)]
pub(crate) struct BlockWrite<'d> {
    pub index: u64,
    pub bytes: Cow<'d, [u8]>,
    /// The blake3 of `bytes` when already known (the write's piece, checked).
    pub hash: Option<[u8; 32]>,
}

/// All block changes of one update to one file.
#[derive(Debug)]
pub(crate) struct BlockPlan<'d> {
    /// Drop every block at or past this file size (the last kept one is trimmed by `writes`).
    pub truncate_to: Option<u64>,
    pub writes: Vec<BlockWrite<'d>>,
}

/// Reads a block row.
pub(crate) fn block_ref(
    blocks: &impl ReadableTable<BlockKey, &'static [u8]>,
    key: BlockKey,
) -> Result<Option<BlockRef>, StoreError> {
    match blocks.get(key)? {
        Some(g) => Ok(Some(codec::decode("blocks", g.value())?)),
        None => Ok(None),
    }
}

/// The chunk tables: the index by hash and the bytes by id. `I` and `D` are redb tables
/// of a read or a write transaction.
pub(crate) struct Chunks<I, D> {
    pub index: I,
    pub heads: D,
    pub tails: D,
    /// Sum of the lengths of all stored chunks (each counted once); kept in `meta` and
    /// current only in a write transaction.
    pub bytes: u64,
    /// The id the next new chunk gets, read from `heads` when first needed.
    next_id: Option<u64>,
}

/// The chunk tables of a read transaction.
pub(crate) type ReadChunks =
    Chunks<ReadOnlyTable<ChunkKey, &'static [u8]>, ReadOnlyTable<u64, &'static [u8]>>;
/// The chunk tables of a write transaction.
pub(crate) type WriteChunks<'txn> =
    Chunks<Table<'txn, ChunkKey, &'static [u8]>, Table<'txn, u64, &'static [u8]>>;

impl ReadChunks {
    pub(crate) fn open(txn: &ReadTransaction) -> Result<ReadChunks, StoreError> {
        Ok(Chunks {
            index: txn.open_table(tables::CHUNK_INDEX)?,
            heads: txn.open_table(tables::CHUNK_HEADS)?,
            tails: txn.open_table(tables::CHUNK_TAILS)?,
            bytes: 0,
            next_id: None,
        })
    }
}

impl<'txn> WriteChunks<'txn> {
    /// Opens the chunk tables of `txn`; `bytes` is the stored total from `meta`.
    pub(crate) fn open(txn: &'txn WriteTransaction, bytes: u64) -> Result<Self, StoreError> {
        Ok(Chunks {
            index: txn.open_table(tables::CHUNK_INDEX)?,
            heads: txn.open_table(tables::CHUNK_HEADS)?,
            tails: txn.open_table(tables::CHUNK_TAILS)?,
            bytes,
            next_id: None,
        })
    }
}

impl<I, D> Chunks<I, D>
where
    I: ReadableTable<ChunkKey, &'static [u8]>,
    D: ReadableTable<u64, &'static [u8]>,
{
    /// The index row of the chunk `hash`, if it is stored.
    pub(crate) fn entry(&self, hash: &[u8; 32]) -> Result<Option<ChunkEntry>, StoreError> {
        match self.index.get(hash)? {
            Some(g) => Ok(Some(codec::decode("chunk_index", g.value())?)),
            None => Ok(None),
        }
    }

    /// Reads and verifies the chunk a block row names.
    pub(crate) fn read(&self, r: &BlockRef) -> Result<Vec<u8>, StoreError> {
        if r.len as usize > BS {
            // A damaged row must not size an allocation.
            return Err(StoreError::Fs(FsError::Corrupt));
        }
        let mut bytes = vec![0u8; r.len as usize];
        self.read_into(r, &mut bytes)?;
        Ok(bytes)
    }

    /// Reads the chunk a block row names into `out` (exactly its length), and verifies it
    /// there: a chunk that does not hash to its key is `Corrupt`, and `out` must not be used.
    pub(crate) fn read_into(&self, r: &BlockRef, out: &mut [u8]) -> Result<(), StoreError> {
        let corrupt = || StoreError::Fs(FsError::Corrupt);
        let entry = self.entry(&r.hash)?.ok_or_else(corrupt)?;
        if entry.len != r.len || out.len() != r.len as usize {
            return Err(corrupt());
        }
        let mut filled = {
            let head = self.heads.get(entry.id)?.ok_or_else(corrupt)?;
            copy_body(head.value(), out).ok_or_else(corrupt)?
        };
        if filled < out.len() {
            let tail = self.tails.get(entry.id)?.ok_or_else(corrupt)?;
            let rest = out.get_mut(filled..).ok_or_else(corrupt)?;
            filled += copy_body(tail.value(), rest).ok_or_else(corrupt)?;
        }
        if filled != out.len() || blake3::hash(out).as_bytes() != &r.hash {
            tracing::error!(chunk = %blake3::Hash::from_bytes(r.hash), "chunk failed its checksum");
            return Err(corrupt());
        }
        Ok(())
    }
}

/// Copies the body of a chunk value (after its version byte) to the start of `out`;
/// `None` if the version is unknown or the body is longer than `out`.
fn copy_body(value: &[u8], out: &mut [u8]) -> Option<usize> {
    match value.split_first() {
        Some((&codec::FORMAT_VERSION, body)) => {
            out.get_mut(..body.len())?.copy_from_slice(body);
            Some(body.len())
        }
        _ => None,
    }
}

/// Reads `[offset, offset + count)` of a file of `size` bytes; holes read as zeros.
/// The caller has clamped the range to the file size.
pub(crate) fn read_range(
    blocks: &impl ReadableTable<BlockKey, &'static [u8]>,
    chunks: &Chunks<
        impl ReadableTable<ChunkKey, &'static [u8]>,
        impl ReadableTable<u64, &'static [u8]>,
    >,
    (volume, vnode): (u32, u64),
    offset: u64,
    count: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![0u8; count];
    if count == 0 {
        return Ok(out);
    }
    let end = offset + count as u64;
    let first = offset / BLOCK_SIZE;
    let last = (end - 1) / BLOCK_SIZE;
    for item in blocks.range((volume, vnode, first)..=(volume, vnode, last))? {
        let (key, value) = item?;
        let index = key.value().2;
        let r: BlockRef = codec::decode("blocks", value.value())?;
        let block_start = index * BLOCK_SIZE;
        let block_end = block_start.saturating_add(u64::from(r.len));
        if block_start >= offset && block_end <= end {
            // The whole chunk is wanted: read it straight into place.
            let at = (block_start - offset) as usize;
            let dst = out
                .get_mut(at..at + r.len as usize)
                .ok_or(StoreError::Fs(FsError::Corrupt))?;
            chunks.read_into(&r, dst)?;
            continue;
        }
        let data = chunks.read(&r)?;
        // Overlap of [block_start, block_end) with [offset, end), in file offsets.
        let from = block_start.max(offset);
        let to = block_end.min(end);
        if from >= to {
            continue;
        }
        let src = &data[(from - block_start) as usize..(to - block_start) as usize];
        out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(src);
    }
    Ok(out)
}

/// Decides the block contents after writing `bytes` at `offset` (already checked not to
/// overflow). Reads, and verifies, only the blocks that are partly overwritten.
pub(crate) fn plan_write<'d>(
    blocks: &impl ReadableTable<BlockKey, &'static [u8]>,
    chunks: &Chunks<
        impl ReadableTable<ChunkKey, &'static [u8]>,
        impl ReadableTable<u64, &'static [u8]>,
    >,
    (volume, vnode): (u32, u64),
    offset: u64,
    bytes: &'d [u8],
    hashes: &[[u8; 32]],
) -> Result<Vec<BlockWrite<'d>>, StoreError> {
    let mismatch = || {
        StoreError::Fs(FsError::Malformed(
            "write data does not match its hashes".into(),
        ))
    };
    let mut writes = Vec::new();
    let mut hashes = hashes.iter();
    for range in write_pieces(offset, bytes.len()) {
        let piece = &bytes[range.clone()];
        let hash = *blake3::hash(piece).as_bytes();
        if hashes.next() != Some(&hash) {
            return Err(mismatch());
        }
        let pos = offset + range.start as u64;
        let index = pos / BLOCK_SIZE;
        let s = (pos % BLOCK_SIZE) as usize;
        let e = s + piece.len();
        let old = block_ref(blocks, (volume, vnode, index))?;
        let old_len = old.map_or(0, |r| r.len as usize);
        let write = if s == 0 && e >= old_len {
            BlockWrite {
                index,
                bytes: Cow::Borrowed(piece),
                hash: Some(hash),
            }
        } else {
            let mut merged = match &old {
                Some(r) => chunks.read(r)?,
                None => Vec::new(),
            };
            merged.resize(old_len.max(e), 0);
            merged[s..e].copy_from_slice(piece);
            BlockWrite {
                index,
                bytes: Cow::Owned(merged),
                hash: None,
            }
        };
        writes.push(write);
    }
    if hashes.next().is_some() {
        return Err(mismatch());
    }
    Ok(writes)
}

/// Decides the block changes of resizing a file from `size` to `new_size`. Extending
/// changes no block (the new range is a hole); shrinking drops whole blocks past the end
/// and trims the block that holds the new end.
pub(crate) fn plan_resize(
    blocks: &impl ReadableTable<BlockKey, &'static [u8]>,
    chunks: &Chunks<
        impl ReadableTable<ChunkKey, &'static [u8]>,
        impl ReadableTable<u64, &'static [u8]>,
    >,
    (volume, vnode): (u32, u64),
    size: u64,
    new_size: u64,
) -> Result<Option<BlockPlan<'static>>, StoreError> {
    if new_size >= size {
        return Ok(None);
    }
    let mut writes = Vec::new();
    let keep = (new_size % BLOCK_SIZE) as usize;
    if keep != 0 {
        let index = new_size / BLOCK_SIZE;
        if let Some(r) = block_ref(blocks, (volume, vnode, index))?
            && r.len as usize > keep
        {
            let mut data = chunks.read(&r)?;
            data.truncate(keep);
            writes.push(BlockWrite {
                index,
                bytes: Cow::Owned(data),
                hash: None,
            });
        }
    }
    Ok(Some(BlockPlan {
        truncate_to: Some(new_size),
        writes,
    }))
}

impl WriteChunks<'_> {
    /// A fresh id: one past the highest stored.
    fn fresh_id(&mut self) -> Result<u64, StoreError> {
        let id = match self.next_id {
            Some(id) => id,
            None => match self.heads.last()? {
                Some((k, _)) => k.value() + 1,
                None => 1,
            },
        };
        self.next_id = Some(id + 1);
        Ok(id)
    }

    /// Adds a reference to the chunk `hash` of `bytes`, storing it if it is new.
    pub(crate) fn retain(&mut self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        if self.retain_held(hash)?.is_none() {
            self.insert_new(hash, bytes, 1)?;
            self.bytes += bytes.len() as u64;
        }
        Ok(())
    }

    /// Adds a reference to the chunk `hash` if it is stored (without reading it), and
    /// returns its length; `None` if it is not stored.
    pub(crate) fn retain_held(&mut self, hash: &[u8; 32]) -> Result<Option<u32>, StoreError> {
        let Some(e) = self.entry(hash)? else {
            return Ok(None);
        };
        let entry = ChunkEntry {
            refs: e.refs + 1,
            ..e
        };
        self.index.insert(hash, codec::encode(&entry)?.as_slice())?;
        Ok(Some(e.len))
    }

    /// Stores the chunk `hash` of `bytes`, not stored yet, under a fresh id with `refs`
    /// references (the byte total is the caller's to keep).
    pub(crate) fn insert_new(
        &mut self,
        hash: &[u8; 32],
        bytes: &[u8],
        refs: u64,
    ) -> Result<(), StoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| FsError::Invalid)?;
        let id = self.fresh_id()?;
        let split = bytes.len().min(CHUNK_HEAD_MAX - 1);
        put_versioned(&mut self.heads, id, &bytes[..split])?;
        if split < bytes.len() {
            put_versioned(&mut self.tails, id, &bytes[split..])?;
        }
        let entry = ChunkEntry { id, len, refs };
        self.index.insert(hash, codec::encode(&entry)?.as_slice())?;
        Ok(())
    }

    /// Drops a reference to the chunk `hash`, deleting it at zero.
    pub(crate) fn release(&mut self, hash: &[u8; 32]) -> Result<(), StoreError> {
        let Some(entry) = self.entry(hash)? else {
            tracing::warn!(chunk = %blake3::Hash::from_bytes(*hash), "released a chunk that is not stored");
            return Ok(());
        };
        if entry.refs <= 1 {
            self.index.remove(hash)?;
            self.heads.remove(entry.id)?;
            self.tails.remove(entry.id)?;
            self.bytes = self.bytes.saturating_sub(u64::from(entry.len));
        } else {
            let entry = ChunkEntry {
                refs: entry.refs - 1,
                ..entry
            };
            self.index.insert(hash, codec::encode(&entry)?.as_slice())?;
        }
        Ok(())
    }
}

/// Stores `bytes` under `id` behind the format's version byte, written straight into the
/// value's place in the table (no intermediate buffer).
fn put_versioned(
    table: &mut Table<'_, u64, &'static [u8]>,
    id: u64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut slot = table.insert_reserve(id, bytes.len() + 1)?;
    let out: &mut [u8] = slot.as_mut();
    out[0] = codec::FORMAT_VERSION;
    out[1..].copy_from_slice(bytes);
    Ok(())
}

/// Applies a block plan to the file `(volume, vnode)`, keeping its member `digest` current.
pub(crate) fn apply_blocks(
    blocks: &mut Table<'_, BlockKey, &'static [u8]>,
    chunks: &mut WriteChunks<'_>,
    (volume, vnode): (u32, u64),
    plan: &BlockPlan<'_>,
    digest: &mut SetDigest,
) -> Result<(), StoreError> {
    if let Some(size) = plan.truncate_to {
        let first_dropped = size.div_ceil(BLOCK_SIZE);
        drop_blocks(blocks, chunks, (volume, vnode), first_dropped, Some(digest))?;
    }
    for w in &plan.writes {
        let hash = match w.hash {
            Some(h) => h,
            None => *blake3::hash(&w.bytes).as_bytes(),
        };
        let len = u32::try_from(w.bytes.len())
            .ok()
            .filter(|l| *l as usize <= BS)
            .ok_or_else(|| StoreError::Fs(FsError::Invalid))?;
        let key = (volume, vnode, w.index);
        let old = block_ref(blocks, key)?;
        if old.is_some_and(|o| o.hash == hash && o.len == len) {
            continue;
        }
        chunks.retain(&hash, &w.bytes)?;
        if let Some(o) = old {
            chunks.release(&o.hash)?;
            digest.remove(&block_member(w.index, &o.hash));
        }
        blocks.insert(key, codec::encode(&BlockRef { hash, len })?.as_slice())?;
        digest.add(&block_member(w.index, &hash));
    }
    Ok(())
}

/// Removes every block of `(volume, vnode)` from index `first` on, releasing their chunks.
pub(crate) fn drop_blocks(
    blocks: &mut Table<'_, BlockKey, &'static [u8]>,
    chunks: &mut WriteChunks<'_>,
    (volume, vnode): (u32, u64),
    first: u64,
    mut digest: Option<&mut SetDigest>,
) -> Result<(), StoreError> {
    let mut dropped = Vec::new();
    for item in blocks.range((volume, vnode, first)..=(volume, vnode, u64::MAX))? {
        let (key, value) = item?;
        let r: BlockRef = codec::decode("blocks", value.value())?;
        dropped.push((key.value().2, r));
    }
    for (index, r) in dropped {
        blocks.remove((volume, vnode, index))?;
        chunks.release(&r.hash)?;
        if let Some(d) = digest.as_deref_mut() {
            d.remove(&block_member(index, &r.hash));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testutil::{Fx, Gen};
    use super::super::{StoreOptions, tables};
    use super::BS;
    use codetta_wire::update::Op;
    use codetta_wire::{FsError, SetAttrs};
    use proptest::prelude::*;

    /// Pseudo-random bytes without a period (so distinct blocks never deduplicate).
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn holes_overwrites_partial_blocks_and_resizing() {
        let mut fx = Fx::new();
        let f = fx.create(fx.root(), "f");
        let mut model = vec![0u8; 0];
        let put = |fx: &mut Fx, model: &mut Vec<u8>, off: usize, data: &[u8]| {
            fx.write(f, off as u64, data);
            if model.len() < off + data.len() {
                model.resize(off + data.len(), 0);
            }
            model[off..off + data.len()].copy_from_slice(data);
            assert_eq!(fx.read_all(f), *model);
        };
        put(&mut fx, &mut model, 0, b"hello");
        put(&mut fx, &mut model, 3 * BS + 100, b"world"); // a hole of ~3 blocks
        assert_eq!(
            fx.store.storage_stats().unwrap().chunks,
            2,
            "the hole is not stored"
        );
        put(&mut fx, &mut model, 2, &pattern(2 * BS, 1)); // spans blocks, partial at both ends
        put(&mut fx, &mut model, BS - 10, &pattern(20, 2)); // straddles a block boundary
        put(&mut fx, &mut model, 0, &pattern(BS, 3)); // a whole block

        // Reads at odd offsets, past EOF, and of a hole.
        let (_, bytes, eof) = fx.store.read(f, 5, 10).unwrap();
        assert_eq!((bytes.as_slice(), eof), (&model[5..15], false));
        let size = model.len() as u64;
        let (_, bytes, eof) = fx.store.read(f, size - 3, 100).unwrap();
        assert_eq!((bytes.as_slice(), eof), (&model[model.len() - 3..], true));
        let (_, bytes, eof) = fx.store.read(f, size + 10, 100).unwrap();
        assert!(bytes.is_empty() && eof);

        // Truncate into the middle of a block, then extend: the cut bytes read as zeros.
        fx.truncate(f, (BS + 7) as u64);
        model.truncate(BS + 7);
        assert_eq!(fx.read_all(f), model);
        fx.truncate(f, (3 * BS) as u64);
        model.resize(3 * BS, 0);
        assert_eq!(fx.read_all(f), model);
        fx.truncate(f, 0);
        assert_eq!(fx.read_all(f), Vec::<u8>::new());
        let stats = fx.store.storage_stats().unwrap();
        assert_eq!((stats.chunks, stats.chunk_bytes), (0, 0));
    }

    #[test]
    fn writes_refuse_directories_symlinks_and_bad_data() {
        let mut fx = Fx::new();
        let root = fx.root();
        let d = fx.mkdir(root, "d");
        let f = fx.create(root, "f");
        let w = |fid, data: &[u8]| (Gen::write_op(fid, 0, data), data.to_vec());
        assert_eq!(fx.batch(vec![w(d, b"x")]), vec![Err(FsError::IsDir)]);
        let set = SetAttrs {
            size: Some(1),
            ..SetAttrs::default()
        };
        assert_eq!(fx.one(Op::SetAttr { fid: d, set }), Err(FsError::IsDir));
        let mut op = Gen::write_op(f, 0, b"abc");
        if let Op::Write { hashes, .. } = &mut op {
            hashes[0][0] ^= 1;
        }
        assert!(matches!(
            fx.one_with(op, b"abc".to_vec()),
            Err(FsError::Malformed(_))
        ));
        // One hash too many, or too few, is as bad as a wrong one.
        for change in [
            |h: &mut Vec<[u8; 32]>| h.push([0; 32]),
            |h: &mut Vec<[u8; 32]>| h.clear(),
        ] {
            let mut op = Gen::write_op(f, 0, b"abc");
            if let Op::Write { hashes, .. } = &mut op {
                change(hashes);
            }
            assert!(matches!(
                fx.one_with(op, b"abc".to_vec()),
                Err(FsError::Malformed(_))
            ));
        }
        let op = Gen::write_op(f, u64::MAX - 1, b"abc");
        assert_eq!(fx.one_with(op, b"abc".to_vec()), Err(FsError::Invalid));
        assert_eq!(fx.state(f).attrs.size, 0);
    }

    #[test]
    fn sparse_write_near_10_gib() {
        let mut fx = Fx::new();
        let f = fx.create(fx.root(), "sparse");
        let offset = 10 * (1u64 << 30) - 5;
        let data = pattern(200_000, 9);
        fx.write(f, offset, &data);
        let st = fx.state(f);
        assert_eq!(st.attrs.size, offset + data.len() as u64);
        let (_, back, eof) = fx.store.read(f, offset, data.len() as u32).unwrap();
        assert_eq!((back, eof), (data.clone(), true));
        let (_, zeros, eof) = fx.store.read(f, 5 << 30, 1 << 20).unwrap();
        assert!(!eof && zeros.len() == 1 << 20 && zeros.iter().all(|b| *b == 0));
        let stats = fx.store.storage_stats().unwrap();
        assert_eq!(stats.chunks, 5, "only the written blocks are stored");
        assert!(stats.chunk_bytes <= 4 * BS as u64 + 200_000);
        fx.truncate(f, offset + 1);
        let (_, back, eof) = fx.store.read(f, offset, 10).unwrap();
        assert_eq!((back.as_slice(), eof), (&data[..1], true));
    }

    #[test]
    fn equal_content_is_stored_once_and_freed_with_its_last_reference() {
        let mut fx = Fx::new();
        let root = fx.root();
        let a = fx.create(root, "a");
        let b = fx.create(root, "b");
        let data = pattern(BS, 4);
        fx.write(a, 0, &data);
        fx.write(b, 0, &data);
        fx.write(b, BS as u64, &data); // the same chunk at another block of b
        let stats = fx.store.storage_stats().unwrap();
        assert_eq!((stats.chunks, stats.chunk_bytes), (1, BS as u64));
        assert_eq!(fx.store.space().unwrap().used_bytes, BS as u64);
        let rm = fx.rm_op(root, "a");
        assert_eq!(fx.one(rm), Ok(None));
        assert_eq!(fx.store.storage_stats().unwrap().chunks, 1);
        assert_eq!(fx.read_all(b), [data.clone(), data].concat());
        let rm = fx.rm_op(root, "b");
        assert_eq!(fx.one(rm), Ok(None));
        let stats = fx.store.storage_stats().unwrap();
        assert_eq!((stats.chunks, stats.chunk_bytes), (0, 0));
    }

    #[test]
    fn a_corrupt_chunk_is_reported_not_returned() {
        let mut fx = Fx::new();
        let f = fx.create(fx.root(), "f");
        let data = pattern(BS, 5);
        fx.write(f, 0, &data);
        let hash = *blake3::hash(&data).as_bytes();
        {
            let txn = fx.store.db.begin_write().unwrap();
            {
                let mut chunks = super::WriteChunks::open(&txn, 0).unwrap();
                let id = chunks.entry(&hash).unwrap().unwrap().id;
                let mut bad = vec![super::super::codec::FORMAT_VERSION];
                bad.extend_from_slice(&data[..tables::CHUNK_HEAD_MAX - 1]);
                bad[1000] ^= 0x40;
                chunks.heads.insert(id, bad.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        assert_eq!(fx.store.read(f, 0, 10).map(|_| ()), Err(FsError::Corrupt));
        // A partial overwrite must read the block: it is refused, and nothing changes.
        let before = fx.state(f);
        let op = Gen::write_op(f, 10, b"xyz");
        assert_eq!(fx.one_with(op, b"xyz".to_vec()), Err(FsError::Corrupt));
        assert_eq!(fx.state(f), before);
        // A whole-block overwrite replaces the bad chunk.
        fx.write(f, 0, &pattern(BS, 6));
        assert_eq!(fx.read_all(f), pattern(BS, 6));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write(u64, Vec<u8>),
        Resize(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        let max = 5 * BS as u64;
        prop_oneof![
            3 => (0..max, 1usize..(2 * BS + 10), any::<u8>())
                .prop_map(|(off, len, seed)| Step::Write(off, pattern(len, seed))),
            1 => (0..max).prop_map(Step::Resize),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn random_writes_and_resizes_match_a_vec(steps in proptest::collection::vec(step(), 1..12), split in 1usize..4) {
            let mut fx = Fx::new();
            let f = fx.create(fx.root(), "f");
            let mut model: Vec<u8> = Vec::new();
            let mut batch = Vec::new();
            for (i, s) in steps.iter().enumerate() {
                match s {
                    Step::Write(off, data) => {
                        let off = *off as usize;
                        if model.len() < off + data.len() {
                            model.resize(off + data.len(), 0);
                        }
                        model[off..off + data.len()].copy_from_slice(data);
                        batch.push((Gen::write_op(f, off as u64, data), data.clone()));
                    }
                    Step::Resize(size) => {
                        model.resize(*size as usize, 0);
                        let set = SetAttrs { size: Some(*size), ..SetAttrs::default() };
                        batch.push((Op::SetAttr { fid: f, set }, Vec::new()));
                    }
                }
                if i % split == 0 {
                    let outcomes = fx.batch(std::mem::take(&mut batch));
                    prop_assert!(outcomes.iter().all(|o| *o == Ok(None)));
                }
            }
            let outcomes = fx.batch(batch);
            prop_assert!(outcomes.iter().all(|o| *o == Ok(None)));
            prop_assert_eq!(fx.read_all(f), model);
        }
    }

    /// Measures space and write amplification. Heavy: run with
    /// `cargo test -p codetta-server --release -- --ignored measure_amplification --nocapture`.
    #[test]
    #[ignore]
    fn measure_amplification() {
        fn io_counter(key: &str) -> u64 {
            std::fs::read_to_string("/proc/self/io")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().parse().ok()))
                        .flatten()
                })
                .unwrap_or(0)
        }
        let written_bytes = || io_counter("write_bytes: ");
        let wchar = || io_counter("wchar: ");
        let mut fx = Fx::with_options(StoreOptions::default());
        let f = fx.create(fx.root(), "big");
        let mib = 1usize << 20;
        let total = 1024 * mib;
        let io0 = written_bytes();
        let wchar0 = wchar();
        let t0 = std::time::Instant::now();
        for i in 0..(total / mib) {
            // One batch per MiB: 16 whole blocks.
            let mut data = pattern(mib, i as u8);
            for (k, block) in data.chunks_mut(BS).enumerate() {
                block[..8].copy_from_slice(&((i * 16 + k) as u64).to_le_bytes());
            }
            fx.write(f, (i * mib) as u64, &data);
        }
        let secs = t0.elapsed().as_secs_f64();
        let s = fx.store.storage_stats().unwrap();
        println!(
            "sequential {} MiB in 1 MiB batches: {:.0} MiB/s; chunk bytes {:.3}x; redb pages {:.3}x; file {:.3}x; disk writes {:.3}x; write(2) bytes {:.3}x",
            total / mib,
            (total / mib) as f64 / secs,
            s.chunk_bytes as f64 / total as f64,
            s.allocated_bytes as f64 / total as f64,
            s.file_bytes as f64 / total as f64,
            (written_bytes() - io0) as f64 / total as f64,
            (wchar() - wchar0) as f64 / total as f64,
        );

        let n = 256u64;
        let before = fx.store.storage_stats().unwrap();
        let io0 = written_bytes();
        let t0 = std::time::Instant::now();
        let mut x = 12345u64;
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = (x >> 20) % (total as u64 / 4096) * 4096;
            fx.write(f, off, &pattern(4096, (x >> 8) as u8));
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = fx.store.storage_stats().unwrap();
        println!(
            "random 4 KiB writes, one per batch: {:.0} writes/s; new chunk bytes per write {:.1} KiB ({:.1}x); disk writes per write {:.1} KiB ({:.1}x); chunk bytes after {:.3}x of the file",
            n as f64 / secs,
            (after.chunk_bytes as f64 - before.chunk_bytes as f64 + (n * BS as u64) as f64)
                / n as f64
                / 1024.0,
            (after.chunk_bytes as f64 - before.chunk_bytes as f64 + (n * BS as u64) as f64)
                / n as f64
                / 4096.0,
            (written_bytes() - io0) as f64 / n as f64 / 1024.0,
            (written_bytes() - io0) as f64 / n as f64 / 4096.0,
            after.chunk_bytes as f64 / total as f64,
        );

        let small = Fx::with_options(StoreOptions::default());
        let mut small = small;
        let root = small.root();
        let files = 512;
        for i in 0..files {
            let fid = small.create(root, &format!("s{i}"));
            small.write(fid, 0, &pattern(4096, i as u8));
        }
        let s = small.store.storage_stats().unwrap();
        println!(
            "{files} files of 4 KiB: redb pages {:.2}x the data",
            s.allocated_bytes as f64 / (files * 4096) as f64
        );
        let io0 = written_bytes();
        let t0 = std::time::Instant::now();
        for i in 0..256 {
            small.create(root, &format!("empty{i}"));
        }
        println!(
            "256 creates, one per batch: {:.0} commits/s, {:.1} KiB written to disk per commit",
            256.0 / t0.elapsed().as_secs_f64(),
            (written_bytes() - io0) as f64 / 256.0 / 1024.0
        );
    }
}
