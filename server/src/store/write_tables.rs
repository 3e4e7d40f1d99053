//! The tables of one write transaction, opened together, with what every writer of the
//! store keeps per transaction: the counters in `meta`, the change sequence (rule 12) and
//! the transaction's time.

use super::content::WriteChunks;
use super::tables::{self, BlockKey, DirentKey, VnodeKey};
use super::{R, Store, meta_u64, put_meta_u64};
use codetta_wire::Fid;
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::BTreeMap;

/// Entries of a volume's change sequence kept (older ones are trimmed).
pub(super) const MAX_CHANGES_KEPT: u64 = 1 << 20;
/// How often (in entries) the change sequence is trimmed.
const TRIM_EVERY: u64 = 4096;

/// The tables of one write transaction.
pub(crate) struct WriteTables<'txn> {
    pub meta: Table<'txn, &'static str, &'static [u8]>,
    pub volumes: Table<'txn, u32, &'static [u8]>,
    pub vnodes: Table<'txn, VnodeKey, &'static [u8]>,
    pub dirents: Table<'txn, DirentKey, &'static [u8]>,
    pub blocks: Table<'txn, BlockKey, &'static [u8]>,
    pub chunks: WriteChunks<'txn>,
    pub applied: Table<'txn, (u32, u32), &'static [u8]>,
    pub cop2: Table<'txn, (u32, u32, u64), &'static [u8]>,
    pub tombstones: Table<'txn, VnodeKey, &'static [u8]>,
    pub changes: Table<'txn, (u32, u64), &'static [u8]>,
    pub conflicts: Table<'txn, VnodeKey, &'static [u8]>,
    pub gc_queue: Table<'txn, (u32, u64, u64), &'static [u8]>,
    pub gc_floors: Table<'txn, (u32, u32), &'static [u8]>,
    pub collected: Table<'txn, VnodeKey, &'static [u8]>,
    pub gaps: Table<'txn, (u32, u32), &'static [u8]>,
    pub installing: Table<'txn, VnodeKey, &'static [u8]>,
    /// Number of vnodes in all volumes (kept in `meta`).
    pub vnode_count: u64,
    /// Per volume, the next change number (read once per transaction), and the fids
    /// already noted in this transaction (one entry each is enough: they share its time).
    next_change: BTreeMap<u32, u64>,
    pub(crate) noted: std::collections::BTreeSet<Fid>,
    /// Objects changed in this transaction without an entry of their own in the change
    /// sequence (directories whose entries resolution edits, a file whose blocks it
    /// installs): promises on them break too.
    pub(crate) touched: std::collections::BTreeSet<Fid>,
    changes_kept: u64,
    /// The wall time of this transaction (milliseconds since the Unix epoch), stamped on
    /// its change entries and new tombstones.
    pub(crate) now_ms: u64,
}

impl Store {
    /// Every table of `txn`, writing with this store's settings and the time now.
    pub(crate) fn write_tables<'txn>(&self, txn: &'txn WriteTransaction) -> R<WriteTables<'txn>> {
        WriteTables::open(txn, self.changes_kept(), self.clock().wall_ms())
    }
}

impl<'txn> WriteTables<'txn> {
    /// `UnknownVolume` unless this store holds a replica of `volume` (one retired is gone
    /// from `volumes` at once, its objects purged afterwards).
    pub(crate) fn require_volume(&self, volume: codetta_wire::VolumeId) -> R<()> {
        if self.volumes.get(volume.0)?.is_none() {
            return Err(codetta_wire::FsError::UnknownVolume.into());
        }
        Ok(())
    }

    /// Opens every table; the change sequence keeps `changes_kept` entries per volume, and
    /// what this transaction writes is stamped `now_ms`.
    pub(crate) fn open(txn: &'txn WriteTransaction, changes_kept: u64, now_ms: u64) -> R<Self> {
        let meta = txn.open_table(tables::META)?;
        let chunk_bytes = meta_u64(&meta, tables::meta::CHUNK_BYTES)?.unwrap_or(0);
        let vnode_count = meta_u64(&meta, tables::meta::VNODES)?.unwrap_or(0);
        Ok(WriteTables {
            meta,
            volumes: txn.open_table(tables::VOLUMES)?,
            vnodes: txn.open_table(tables::VNODES)?,
            dirents: txn.open_table(tables::DIRENTS)?,
            blocks: txn.open_table(tables::BLOCKS)?,
            chunks: WriteChunks::open(txn, chunk_bytes)?,
            applied: txn.open_table(tables::APPLIED)?,
            cop2: txn.open_table(tables::COP2_PENDING)?,
            tombstones: txn.open_table(tables::TOMBSTONES)?,
            changes: txn.open_table(tables::CHANGES)?,
            conflicts: txn.open_table(tables::CONFLICTS)?,
            gc_queue: txn.open_table(tables::GC_QUEUE)?,
            gc_floors: txn.open_table(tables::GC_FLOORS)?,
            collected: txn.open_table(tables::COLLECTED)?,
            gaps: txn.open_table(tables::APPLIED_GAPS)?,
            installing: txn.open_table(tables::INSTALLING)?,
            vnode_count,
            next_change: BTreeMap::new(),
            noted: std::collections::BTreeSet::new(),
            touched: std::collections::BTreeSet::new(),
            changes_kept: changes_kept.max(1),
            now_ms,
        })
    }

    pub(crate) fn save_counters(&mut self) -> R<()> {
        put_meta_u64(&mut self.meta, tables::meta::CHUNK_BYTES, self.chunks.bytes)?;
        put_meta_u64(&mut self.meta, tables::meta::VNODES, self.vnode_count)
    }

    /// Appends `fid` to its volume's change sequence (rule 12), with this server's clock
    /// (local bookkeeping, never replicated). The sequence keeps its last
    /// `changes_kept` entries ([`MAX_CHANGES_KEPT`] unless configured); a peer further
    /// behind compares whole volumes.
    pub(crate) fn note_change(&mut self, fid: Fid) -> R<()> {
        if !self.noted.insert(fid) {
            return Ok(());
        }
        let vol = fid.volume.0;
        let next = match self.next_change.get(&vol) {
            Some(n) => *n,
            None => match self.changes.range((vol, 0)..=(vol, u64::MAX))?.next_back() {
                Some(item) => item?.0.value().1 + 1,
                None => 1,
            },
        };
        self.next_change.insert(vol, next + 1);
        let mut value = [0u8; Fid::ENCODED_LEN + 8];
        value[..Fid::ENCODED_LEN].copy_from_slice(&fid.to_bytes());
        value[Fid::ENCODED_LEN..].copy_from_slice(&self.now_ms.to_le_bytes());
        self.changes.insert((vol, next), value.as_slice())?;
        let trim_every = (self.changes_kept / 256).clamp(1, TRIM_EVERY);
        if next % trim_every == 0 && next > self.changes_kept {
            let cut = next - self.changes_kept;
            self.changes
                .retain_in((vol, 0)..=(vol, cut), |_, _| false)?;
        }
        Ok(())
    }
}
