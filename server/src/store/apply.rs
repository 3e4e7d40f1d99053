//! Applying a batch of update records: one write transaction, one durable commit.
//!
//! Each record is first *planned* against the transaction's current state by code that can
//! only read (a [`Planner`] borrows the tables immutably), then the plan is *executed*. A
//! record that fails planning has changed nothing; its error is its answer and it still
//! counts as applied. A write that could take the store past its configured capacity is
//! refused that way (NOSPC as its own answer). A failure while executing, a storage error
//! anywhere, a capacity overrun found after the batch (a safety net) or a failed commit
//! aborts the whole transaction: nothing of the batch persists, including the
//! applied-sequence rows, the service answers the batch with the error, and the client
//! ships it again later. Never is a record counted applied that was not.

use super::codec::{self, Dirent, Tombstone, Vnode, VolumeRec};
use super::content::{self, BlockPlan, WriteChunks};
use super::tables::{self, BlockKey, DirentKey, VnodeKey};
use super::{R, Store, StoreError, get_entry, load_vnode, meta_u64, put_meta_u64};
use codetta_wire::update::{Cop2, Op, RecordOutcome, UpdateRecord};
use codetta_wire::{Fid, FileType, FsError, Name, ReplicaId, SetAttrs, Time, UpdateId};
use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Entries of a volume's change sequence kept (older ones are trimmed).
pub const MAX_CHANGES_KEPT: u64 = 1 << 20;
/// How often (in entries) the change sequence is trimmed.
const TRIM_EVERY: u64 = 4096;

/// How many recent outcomes are kept per (incarnation, volume), so that a resent record is
/// answered exactly as it was the first time (a guarded create that failed must not look
/// like a success on resend). Older resends get the best answer the current state gives.
/// Successes before the batch's `log_start` are dropped (the best answer rebuilds them):
/// the row is rewritten with every batch, so it stays a few entries long.
const RECENT_OUTCOMES: usize = 256;

/// The `applied` row of one (incarnation, volume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedRec {
    /// Highest sequence number applied; the next acceptable one is `seq + 1`.
    pub seq: u64,
    /// Outcomes of the last [`RECENT_OUTCOMES`] records, oldest first.
    pub recent: VecDeque<(u64, RecordOutcome)>,
    /// Records this replica never saw: the client had trimmed them (applied by the other
    /// replicas) before this one came back. Its objects they touched are stale.
    pub missed: u64,
}

/// What a shipped batch did: per record, its outcome and the digest of what it changed
/// as it was before (see `ReplyBody::Shipped`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shipped {
    pub outcomes: Vec<RecordOutcome>,
    pub priors: Vec<u64>,
    /// The objects the batch changed (promises on them are to be broken).
    pub changed: Vec<Fid>,
}

/// Why planning a record stopped.
pub(crate) enum Fail {
    /// The record's answer: nothing was changed.
    Answer(FsError),
    /// The storage failed: abort the batch.
    Abort(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        match e {
            StoreError::Db(_) => Fail::Abort(e),
            other => Fail::Answer(other.into()),
        }
    }
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Fail {
        Fail::Answer(e)
    }
}

/// Everything one record will change, decided before anything is written.
#[derive(Debug, Default)]
pub(crate) struct Plan<'d> {
    /// The record's answer when it succeeds.
    pub answer: Option<Fid>,
    /// Directory entries removed, then added.
    pub unlink: Vec<(Fid, Name)>,
    pub link: Vec<(Fid, Name, Dirent)>,
    /// Objects removed with their blocks (their records as stamped by the removal, for the
    /// tombstones).
    pub delete: Vec<(Fid, Vnode)>,
    /// Block changes of one file (its record must be in `put`, whose digest they update).
    pub blocks: Option<(Fid, BlockPlan<'d>)>,
    /// Object records written last (new or changed).
    pub put: Vec<(Fid, Vnode)>,
    /// How many of `put` are new objects.
    pub created: u64,
}

impl Plan<'_> {
    /// A plan that changes nothing and answers `fid`.
    pub(crate) fn answer_only(fid: Option<Fid>) -> Self {
        Self::answer(fid)
    }

    fn answer(fid: Option<Fid>) -> Self {
        Plan {
            answer: fid,
            ..Plan::default()
        }
    }
}

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
    /// sequence (directories whose entries resolution edits): promises on them break too.
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

    /// Writes a plan. Every error here aborts the batch.
    fn execute(&mut self, plan: Plan<'_>) -> R<()> {
        let Plan {
            answer: _,
            unlink,
            link,
            delete,
            blocks,
            mut put,
            created,
        } = plan;
        for (dir, name) in &unlink {
            self.dirents
                .remove((dir.volume.0, dir.vnode, name.cookie(), name.as_bytes()))?;
        }
        for (dir, name, entry) in &link {
            self.dirents.insert(
                (dir.volume.0, dir.vnode, name.cookie(), name.as_bytes()),
                codec::encode(entry)?.as_slice(),
            )?;
        }
        for (fid, v) in &delete {
            let key = (fid.volume.0, fid.vnode);
            content::drop_blocks(&mut self.blocks, &mut self.chunks, key, 0, None)?;
            self.installing.remove(key)?;
            if self.vnodes.remove(key)?.is_some() {
                self.vnode_count = self.vnode_count.saturating_sub(1);
            }
            let tomb = Tombstone {
                unique: v.unique,
                ftype: v.ftype,
                version: v.version.clone(),
                history: v.history.clone(),
                parent: v.parent,
                name: v.name.clone(),
            };
            super::collect::bury(
                &mut self.tombstones,
                &mut self.gc_queue,
                key,
                &tomb,
                Some(self.now_ms),
            )?;
        }
        if let Some((fid, block_plan)) = &blocks {
            let (_, file) = put
                .iter_mut()
                .find(|(f, _)| f == fid)
                .ok_or_else(|| FsError::Internal("block plan without its file".into()))?;
            let key = (fid.volume.0, fid.vnode);
            content::apply_blocks(
                &mut self.blocks,
                &mut self.chunks,
                key,
                block_plan,
                &mut file.digest,
            )?;
        }
        self.vnode_count += created;
        for (fid, v) in &put {
            self.vnodes
                .insert((fid.volume.0, fid.vnode), codec::encode(v)?.as_slice())?;
        }
        Ok(())
    }
}

/// Read-only view used to plan one record.
pub(crate) struct Planner<'a, 'txn> {
    pub t: &'a WriteTables<'txn>,
    /// This server's replica of the record's volume: the vector key every change bumps.
    pub replica: ReplicaId,
    /// The record's update id: every object it changes remembers it.
    pub id: UpdateId,
    /// The record's time: every time the update sets.
    pub time: Time,
    /// The configured capacity in stored chunk bytes, if any.
    pub capacity: Option<u64>,
}

impl Planner<'_, '_> {
    pub(crate) fn load(&self, fid: Fid) -> Result<Vnode, Fail> {
        Ok(load_vnode(&self.t.vnodes, &self.t.volumes, fid)?)
    }

    pub(crate) fn load_dir(&self, fid: Fid) -> Result<Vnode, Fail> {
        let v = self.load(fid)?;
        if v.ftype != FileType::Directory {
            return Err(FsError::NotDir.into());
        }
        Ok(v)
    }

    pub(crate) fn entry(&self, dir: Fid, name: &Name) -> Result<Option<Dirent>, Fail> {
        Ok(get_entry(&self.t.dirents, dir, name)?)
    }

    /// Marks `v` changed by this update: ctime (and mtime if `data`), then [`Self::stamp`].
    pub(crate) fn touch(&self, v: &mut Vnode, data: bool) {
        v.ctime = self.time;
        if data {
            v.mtime = self.time;
        }
        self.stamp(v);
    }

    /// The first phase of rule 2 on one object: this replica's counter goes up and the
    /// update joins the object's history (counted for this replica only, until COP2).
    pub(crate) fn stamp(&self, v: &mut Vnode) {
        v.version.bump(self.replica);
        v.history.record(self.id, self.replica);
    }

    /// Plans a SETATTR.
    fn setattr(&self, fid: Fid, set: &SetAttrs) -> Result<Plan<'static>, Fail> {
        let mut v = self.load(fid)?;
        let mut plan = Plan::answer(None);
        if let Some(size) = set.size {
            match v.ftype {
                FileType::Regular => {}
                FileType::Directory => return Err(FsError::IsDir.into()),
                _ => return Err(FsError::Invalid.into()),
            }
            if let Some(blocks) = content::plan_resize(
                &self.t.blocks,
                &self.t.chunks,
                (fid.volume.0, fid.vnode),
                v.size,
                size,
            )? {
                plan.blocks = Some((fid, blocks));
            }
            if size != v.size {
                v.mtime = self.time;
            }
            v.size = size;
        }
        if let Some(mode) = set.mode {
            v.mode = mode & 0o7777;
        }
        if let Some(uid) = set.uid {
            v.uid = uid;
        }
        if let Some(gid) = set.gid {
            v.gid = gid;
        }
        if let Some(atime) = set.atime {
            v.atime = atime;
        }
        self.touch(&mut v, false);
        if let Some(mtime) = set.mtime {
            v.mtime = mtime;
        }
        plan.put.push((fid, v));
        Ok(plan)
    }

    /// Plans a WRITE of `data` (its pieces checked against `hashes`) at `offset`.
    fn write<'d>(
        &self,
        fid: Fid,
        offset: u64,
        data: &'d [u8],
        hashes: &[[u8; 32]],
    ) -> Result<Plan<'d>, Fail> {
        let mut v = self.load(fid)?;
        match v.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(FsError::IsDir.into()),
            _ => return Err(FsError::Invalid.into()),
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::Invalid)?;
        let writes = content::plan_write(
            &self.t.blocks,
            &self.t.chunks,
            (fid.volume.0, fid.vnode),
            offset,
            data,
            hashes,
        )?;
        if !data.is_empty() {
            v.size = v.size.max(end);
        }
        self.touch(&mut v, true);
        Ok(Plan {
            blocks: Some((
                fid,
                BlockPlan {
                    truncate_to: None,
                    writes,
                },
            )),
            put: vec![(fid, v)],
            ..Plan::default()
        })
    }

    /// Refuses an update of a file resolution is installing here (rule 4): its state is a
    /// mixture until the install ends, and the update would be counted in a version whose
    /// content the install then replaces (lost, if no other replica applied it). The
    /// client's other replicas answer, or the caller retries once the install is over.
    fn whole(&self, fid: Fid) -> Result<(), Fail> {
        let key = (fid.volume.0, fid.vnode);
        if self
            .t
            .installing
            .get(key)
            .map_err(StoreError::from)?
            .is_some()
        {
            return Err(FsError::Incomplete.into());
        }
        Ok(())
    }

    /// Plans any record.
    fn plan<'d>(&self, op: &Op, data: &'d [u8]) -> Result<Plan<'d>, Fail> {
        match op {
            Op::Write { fid, .. }
            | Op::SetAttr { fid, .. }
            | Op::Rename { fid, .. }
            | Op::Link { fid, .. } => {
                self.whole(*fid)?;
            }
            _ => {}
        }
        match op {
            Op::Create {
                dir,
                name,
                fid,
                new,
                how,
            } => self.create(*dir, name, *fid, new, *how),
            Op::Mkdir {
                dir,
                name,
                fid,
                new,
            } => self.mkdir(*dir, name, *fid, new),
            Op::Symlink {
                dir,
                name,
                fid,
                new,
                target,
            } => self.symlink(*dir, name, *fid, new, target),
            Op::Mknod {
                dir,
                name,
                fid,
                new,
                kind,
            } => self.mknod(*dir, name, *fid, new, *kind),
            Op::Link { dir, name, fid } => self.link(*dir, name, *fid),
            Op::Remove { dir, name, fid } => self.remove(*dir, name, *fid),
            Op::Rmdir { dir, name, fid } => self.rmdir(*dir, name, *fid),
            Op::Rename {
                from_dir,
                from_name,
                to_dir,
                to_name,
                fid,
                replaces,
            } => self.rename(*from_dir, from_name, *to_dir, to_name, *fid, *replaces),
            Op::SetAttr { fid, set } => self.setattr(*fid, set),
            Op::Write {
                fid,
                offset,
                hashes,
                ..
            } => {
                self.check_capacity(*offset, data.len())?;
                self.write(*fid, *offset, data, hashes)
            }
        }
    }
}

impl Planner<'_, '_> {
    /// A write that could take the store past its capacity is refused with NOSPC as its
    /// own answer (it counts as applied, so the records after it go through), judged by
    /// the worst case: every block it touches stored as a new full chunk.
    fn check_capacity(&self, offset: u64, len: usize) -> Result<(), Fail> {
        let Some(cap) = self.capacity else {
            return Ok(());
        };
        let block = codetta_wire::BLOCK_SIZE;
        let first = offset / block;
        let last = offset.saturating_add(len as u64).div_ceil(block);
        let worst = last.saturating_sub(first).saturating_mul(block);
        if self.t.chunks.bytes.saturating_add(worst) > cap {
            return Err(Fail::Answer(FsError::NoSpace));
        }
        Ok(())
    }
}

/// Counts update `id` for each of `others` that has not been counted yet; true if the
/// version changed.
fn count_cop2(
    version: &mut codetta_wire::VersionVector,
    history: &mut codetta_wire::History,
    id: UpdateId,
    others: &[ReplicaId],
) -> bool {
    let mut changed = false;
    for r in others {
        if history.count(id, *r) {
            version.bump(*r);
            changed = true;
        }
    }
    changed
}

/// The state of one batch: tables plus per-batch caches written back before commit.
struct Batch<'txn> {
    t: WriteTables<'txn>,
    capacity: Option<u64>,
    volumes: BTreeMap<u32, Option<VolumeRec>>,
    applied: BTreeMap<(u32, u32), AppliedRec>,
}

impl Batch<'_> {
    fn volume(&mut self, id: u32) -> R<Option<VolumeRec>> {
        if let Some(v) = self.volumes.get(&id) {
            return Ok(v.clone());
        }
        let rec = match self.t.volumes.get(id)? {
            Some(g) => Some(codec::decode::<VolumeRec>("volumes", g.value())?),
            None => None,
        };
        self.volumes.insert(id, rec.clone());
        Ok(rec)
    }

    /// Records that the records `from..=to` of a client were not applied here.
    fn note_gap(&mut self, key: (u32, u32), from: u64, to: u64) -> R<()> {
        let mut gaps: codec::Gaps = match self.t.gaps.get(key)? {
            Some(g) => codec::decode("applied_gaps", g.value())?,
            None => codec::Gaps::default(),
        };
        gaps.add(from, to);
        self.t.gaps.insert(key, codec::encode(&gaps)?.as_slice())?;
        Ok(())
    }

    fn applied(&mut self, key: (u32, u32)) -> R<&mut AppliedRec> {
        if !self.applied.contains_key(&key) {
            let rec = match self.t.applied.get(key)? {
                Some(g) => codec::decode("applied", g.value())?,
                None => AppliedRec::default(),
            };
            self.applied.insert(key, rec);
        }
        self.applied
            .get_mut(&key)
            .ok_or_else(|| StoreError::Fs(FsError::Internal("applied cache".into())))
    }

    /// The answer to a record applied before: its stored outcome, or for an older create
    /// the object its name maps to now.
    fn resend_answer(&mut self, key: (u32, u32), record: &UpdateRecord) -> R<RecordOutcome> {
        let seq = record.id.seq;
        let rec = self.applied(key)?;
        if let Some((_, outcome)) = rec.recent.iter().find(|(s, _)| *s == seq) {
            return Ok(outcome.clone());
        }
        let (dir, name) = match &record.op {
            Op::Create { dir, name, .. }
            | Op::Mkdir { dir, name, .. }
            | Op::Symlink { dir, name, .. }
            | Op::Mknod { dir, name, .. } => (*dir, name),
            _ => return Ok(Ok(None)),
        };
        match get_entry(&self.t.dirents, dir, name) {
            Ok(entry) => Ok(Ok(entry.map(|e| e.fid))),
            Err(e @ StoreError::Db(_)) => Err(e),
            Err(_) => Ok(Ok(None)),
        }
    }

    /// Applies one record (or answers it without applying). `Err` aborts the batch.
    /// The digest of what `fids` are here now (versions and tags; absent ones count as
    /// absent), sorted by fid: two replicas with equal digests hold them identically.
    fn prior_digest(&self, fids: &mut [Fid]) -> R<u64> {
        fids.sort();
        let mut h = blake3::Hasher::new();
        for fid in fids.iter() {
            h.update(&fid.to_bytes());
            match self.t.vnodes.get((fid.volume.0, fid.vnode))? {
                Some(g) => {
                    let v: Vnode = codec::decode("vnodes", g.value())?;
                    h.update(&postcard::to_allocvec(&v.version).unwrap_or_default());
                    h.update(&super::tags::tag(&v).0);
                }
                None => {
                    h.update(b"absent");
                }
            }
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(&h.finalize().as_bytes()[..8]);
        Ok(u64::from_le_bytes(out).max(1))
    }

    fn apply(
        &mut self,
        record: &UpdateRecord,
        data: &[u8],
        log_start: u64,
    ) -> R<(RecordOutcome, u64)> {
        let volume = record.op.target().volume;
        let Some(vol) = self.volume(volume.0)? else {
            return Ok((Err(FsError::UnknownVolume), 0));
        };
        let key = (record.id.incarnation.0, volume.0);
        let seq = record.id.seq;
        let mut last = self.applied(key)?.seq;
        if seq <= last {
            return Ok((self.resend_answer(key, record)?, 0));
        }
        if seq > last + 1 && log_start > last + 1 && seq >= log_start {
            // The client no longer holds the records in between: the other replicas applied
            // them while this one was away. Go on from there; this replica is now stale
            // (dominated vectors) for what they touched, and resolution repairs it.
            let missed = log_start - 1 - last;
            tracing::warn!(
                incarnation = key.0,
                volume = key.1,
                missed,
                "records missed while away; continuing after them"
            );
            let rec = self.applied(key)?;
            rec.missed += missed;
            rec.seq = log_start - 1;
            last = rec.seq;
            self.note_gap(key, last + 1 - missed, last)?;
        }
        if seq != last + 1 {
            return Ok((Err(FsError::OutOfOrder), 0));
        }
        let planner = Planner {
            t: &self.t,
            replica: vol.replica,
            id: record.id,
            time: record.time,
            capacity: self.capacity,
        };
        let mut prior = 0;
        let outcome = match planner.plan(&record.op, data) {
            Ok(plan) => {
                let answer = plan.answer;
                let mut stamped: Vec<Fid> = plan
                    .put
                    .iter()
                    .map(|(f, _)| *f)
                    .chain(plan.delete.iter().map(|(f, _)| *f))
                    .collect();
                if vol.vsg.len() > 1 && !stamped.is_empty() {
                    prior = self.prior_digest(&mut stamped)?;
                    self.t
                        .cop2
                        .insert((volume.0, key.0, seq), codec::encode(&stamped)?.as_slice())?;
                }
                self.t.execute(plan)?;
                for fid in stamped {
                    self.t.note_change(fid)?;
                }
                Ok(answer)
            }
            Err(Fail::Answer(e)) => {
                tracing::debug!(?record.id, error = %e, "record refused");
                self.note_gap(key, seq, seq)?;
                Err(e)
            }
            Err(Fail::Abort(e)) => return Err(e),
        };
        let rec = self.applied(key)?;
        rec.seq = seq;
        rec.recent.push_back((seq, outcome.clone()));
        // Kept: every answer from `log_start` on (the client's log holds those records and
        // resends them over a new connection), and failures before it (a restarted client
        // resends from its durable log, which may reach further back, and a failure must
        // not look like a success then; a success is rebuilt from the current state).
        rec.recent.retain(|(s, o)| *s >= log_start || o.is_err());
        while rec.recent.len() > RECENT_OUTCOMES {
            rec.recent.pop_front();
        }
        Ok((outcome, prior))
    }

    /// Applies a second phase: each listed replica applied the records `first..=last`, so
    /// their counters go up in the vectors of the objects those records stamped here (once
    /// per update and replica: the history's counted sets). Pending rows up to `last` are
    /// dropped, including older ones whose COP2 never came (the vectors then differ only in
    /// ways the histories explain).
    fn cop2(&mut self, item: &Cop2) -> R<()> {
        let Some(vol) = self.volume(item.volume.0)? else {
            return Ok(());
        };
        let others: Vec<ReplicaId> = item
            .applied_by
            .iter()
            .copied()
            .filter(|r| *r != vol.replica && vol.vsg.iter().any(|m| m.replica == *r))
            .collect();
        let lo = (item.volume.0, item.incarnation.0, 0);
        let hi = (item.volume.0, item.incarnation.0, item.last);
        let mut rows = Vec::new();
        for row in self.t.cop2.range(lo..=hi)? {
            let (k, v) = row?;
            let fids: Vec<Fid> = codec::decode("cop2_pending", v.value())?;
            rows.push((k.value().2, fids));
        }
        for (seq, fids) in rows {
            self.t
                .cop2
                .remove((item.volume.0, item.incarnation.0, seq))?;
            if seq < item.first || others.is_empty() {
                continue;
            }
            let id = UpdateId {
                incarnation: item.incarnation,
                seq,
            };
            for fid in fids {
                let key = (fid.volume.0, fid.vnode);
                let live: Option<Vnode> = match self.t.vnodes.get(key)? {
                    Some(g) => Some(codec::decode("vnodes", g.value())?),
                    None => None,
                };
                if let Some(mut v) = live {
                    if v.unique == fid.unique
                        && count_cop2(&mut v.version, &mut v.history, id, &others)
                    {
                        self.t.vnodes.insert(key, codec::encode(&v)?.as_slice())?;
                    }
                    continue;
                }
                let dead: Option<Tombstone> = match self.t.tombstones.get(key)? {
                    Some(g) => Some(codec::decode("tombstones", g.value())?),
                    None => None,
                };
                if let Some(mut t) = dead
                    && t.unique == fid.unique
                    && count_cop2(&mut t.version, &mut t.history, id, &others)
                {
                    self.t
                        .tombstones
                        .insert(key, codec::encode(&t)?.as_slice())?;
                }
            }
        }
        Ok(())
    }

    fn save(&mut self) -> R<()> {
        for (key, rec) in &self.applied {
            self.t
                .applied
                .insert(*key, codec::encode(rec)?.as_slice())?;
        }
        self.t.save_counters()
    }
}

impl Store {
    /// Applies a batch of records from one client log in one transaction, committed
    /// durably once. `data` holds the bytes of the batch's writes, concatenated in record
    /// order. Returns one outcome per record, in order.
    ///
    /// Per record: a sequence number at or below the last applied one (for its incarnation
    /// and volume) is answered as it was the first time and not applied again; one more
    /// than the last is applied (or refused with its error, which also counts as applied);
    /// anything further ahead is `OutOfOrder` and not applied. If the batch as a whole
    /// fails (storage error, capacity exceeded, commit failed, `data` of the wrong length)
    /// every record gets that error and nothing is applied.
    pub fn apply_batch(&self, records: &[UpdateRecord], data: &[u8]) -> Vec<RecordOutcome> {
        match self.ship(records, data, 0, &[]) {
            Ok(shipped) => shipped.outcomes,
            Err(e) => vec![Err(e); records.len()],
        }
    }

    /// Like [`Store::apply_batch_or_refuse`], with the rest of a client's shipment: the
    /// second phases (`cop2`) of earlier records are applied first, in the same
    /// transaction, and a replica whose last applied record is before `log_start - 1`
    /// continues from there (see [`Request::Ship`](codetta_wire::Request::Ship)).
    pub fn ship(
        &self,
        records: &[UpdateRecord],
        data: &[u8],
        log_start: u64,
        cop2: &[Cop2],
    ) -> Result<Shipped, FsError> {
        self.try_apply_batch(records, data, log_start, cop2)
            .map_err(|e| {
                let e = FsError::from(e);
                tracing::warn!(records = records.len(), error = %e, "batch not applied");
                e
            })
    }

    /// Like [`Store::apply_batch`], but a batch that was not applied at all is an `Err`:
    /// the client keeps its records and ships them again later.
    pub fn apply_batch_or_refuse(
        &self,
        records: &[UpdateRecord],
        data: &[u8],
    ) -> Result<Vec<RecordOutcome>, FsError> {
        self.ship(records, data, 0, &[]).map(|s| s.outcomes)
    }

    fn try_apply_batch(
        &self,
        records: &[UpdateRecord],
        data: &[u8],
        log_start: u64,
        cop2: &[Cop2],
    ) -> R<Shipped> {
        let mut slices = Vec::with_capacity(records.len());
        let mut pos = 0usize;
        for r in records {
            let end = pos
                .checked_add(r.op.data_len())
                .filter(|end| *end <= data.len())
                .ok_or_else(|| FsError::Malformed("data section shorter than the writes".into()))?;
            slices.push(&data[pos..end]);
            pos = end;
        }
        if pos != data.len() {
            return Err(FsError::Malformed("data section longer than the writes".into()).into());
        }
        if records.is_empty() && cop2.is_empty() {
            return Ok(Shipped::default());
        }
        let txn = self.db.begin_write()?;
        let result = (|| -> R<Shipped> {
            let t = self.write_tables(&txn)?;
            let before = t.chunks.bytes;
            let mut batch = Batch {
                t,
                capacity: self.options.capacity_bytes,
                volumes: BTreeMap::new(),
                applied: BTreeMap::new(),
            };
            for item in cop2 {
                batch.cop2(item)?;
            }
            let mut shipped = Shipped::default();
            for (record, bytes) in records.iter().zip(slices) {
                let (outcome, prior) = batch.apply(record, bytes, log_start)?;
                shipped.outcomes.push(outcome);
                shipped.priors.push(prior);
            }
            let after = batch.t.chunks.bytes;
            if let Some(cap) = self.options.capacity_bytes
                && after > cap
                && after > before
            {
                tracing::warn!(
                    capacity = cap,
                    would_store = after,
                    "batch refused: capacity exceeded"
                );
                return Err(FsError::NoSpace.into());
            }
            batch.save()?;
            shipped.changed = batch.t.noted.union(&batch.t.touched).copied().collect();
            Ok(shipped)
        })();
        match result {
            Ok(shipped) => {
                txn.commit()?;
                Ok(shipped)
            }
            Err(e) => {
                if let Err(abort) = txn.abort() {
                    tracing::warn!(error = %abort, "aborting a write transaction failed");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testutil::{Fx, Gen, T0, name};
    use super::super::{Store, StoreOptions};
    use codetta_wire::update::{CreateHow, NewObject, Op, UpdateRecord};
    use codetta_wire::{Fid, FsError, SetAttrs, Time, VvOrdering};

    fn records(g: &mut Gen, ops: Vec<Op>) -> Vec<UpdateRecord> {
        ops.into_iter().map(|op| g.rec(op)).collect()
    }

    #[test]
    fn a_resent_batch_is_answered_not_reapplied() {
        let mut fx = Fx::new();
        let root = fx.root();
        let (c, f) = fx.g.create_op(root, "f", CreateHow::Guarded);
        let (m, d) = fx.g.mkdir_op(root, "d");
        let data = b"some bytes".to_vec();
        let ops = vec![c, m, Gen::write_op(f, 0, &data), fx.rm_op(root, "missing")];
        let recs = records(&mut fx.g, ops);
        let first = fx.store.apply_batch(&recs, &data);
        assert_eq!(
            first,
            vec![Ok(Some(f)), Ok(Some(d)), Ok(None), Err(FsError::NotFound)]
        );
        let states = (fx.state(root), fx.state(f), fx.state(d));
        let again = fx.store.apply_batch(&recs, &data);
        assert_eq!(again, first, "the same answers, including the error");
        assert_eq!(
            (fx.state(root), fx.state(f), fx.state(d)),
            states,
            "nothing applied twice"
        );

        // Answers survive a restart.
        let mut fx = fx.reopened(StoreOptions::default());
        assert_eq!(fx.store.apply_batch(&recs[..2], &[]), first[..2].to_vec());

        // Past the window of kept answers, a resent create is answered with the object its
        // name maps to, and other records with plain success.
        let touch = |fid| Op::SetAttr {
            fid,
            set: SetAttrs::default(),
        };
        let many = (0..super::RECENT_OUTCOMES + 10)
            .map(|_| (touch(f), Vec::new()))
            .collect();
        assert!(fx.batch(many).iter().all(|o| *o == Ok(None)));
        let states = (fx.state(root), fx.state(f), fx.state(d));
        assert_eq!(
            fx.store.apply_batch(&recs, &data),
            vec![Ok(Some(f)), Ok(Some(d)), Ok(None), Ok(None)]
        );
        assert_eq!((fx.state(root), fx.state(f), fx.state(d)), states);
    }

    #[test]
    fn a_gap_in_sequence_numbers_is_refused() {
        let mut fx = Fx::new();
        let root = fx.root();
        let (c1, f1) = fx.g.create_op(root, "one", CreateHow::Guarded);
        let (c2, f2) = fx.g.create_op(root, "two", CreateHow::Guarded);
        let r1 = fx.g.rec(c1);
        let r2 = fx.g.rec(c2);
        assert_eq!(
            fx.store.apply_batch(std::slice::from_ref(&r2), &[]),
            vec![Err(FsError::OutOfOrder)]
        );
        assert_eq!(fx.lookup(root, "two"), Err(FsError::NotFound));
        // In one batch a gap refuses the later record only.
        let (c4, _) = fx.g.create_op(root, "four", CreateHow::Guarded);
        fx.g.seq += 1;
        let r4 = fx.g.rec(c4);
        assert_eq!(
            fx.store.apply_batch(&[r1, r2, r4], &[]),
            vec![Ok(Some(f1)), Ok(Some(f2)), Err(FsError::OutOfOrder)]
        );
        assert_eq!(fx.lookup(root, "four"), Err(FsError::NotFound));
    }

    #[test]
    fn a_resent_guarded_create_that_failed_still_fails() {
        let mut fx = Fx::new();
        let root = fx.root();
        let theirs = fx.create(root, "index.lock");
        let (op, _) = fx.g.create_op(root, "index.lock", CreateHow::Guarded);
        let rec = fx.g.rec(op);
        let first = fx.store.apply_batch(std::slice::from_ref(&rec), &[]);
        assert_eq!(first, vec![Err(FsError::Exists)]);
        assert_eq!(fx.store.apply_batch(&[rec], &[]), first);
        assert_eq!(fx.lookup(root, "index.lock").unwrap().fid, theirs);
    }

    #[test]
    fn answers_are_kept_for_records_the_client_holds_and_for_failures() {
        let mut fx = Fx::new();
        let root = fx.root();
        let theirs = fx.create(root, "taken");
        // A guarded create that fails, then successes; the client trims each record once
        // answered, so every batch says it holds only that one.
        let (op, _) = fx.g.create_op(root, "taken", CreateHow::Guarded);
        let failed = fx.g.rec(op);
        let ship = |fx: &mut Fx, rec: &UpdateRecord, log_start: u64| {
            let shipped = fx
                .store
                .ship(std::slice::from_ref(rec), &[], log_start, &[]);
            shipped.unwrap().outcomes
        };
        assert_eq!(
            ship(&mut fx, &failed, failed.id.seq),
            vec![Err(FsError::Exists)]
        );
        let mut shipped = Vec::new();
        for i in 0..20 {
            let (op, fid) = fx.g.create_op(root, &format!("f{i}"), CreateHow::Guarded);
            let rec = fx.g.rec(op);
            assert_eq!(ship(&mut fx, &rec, rec.id.seq), vec![Ok(Some(fid))]);
            shipped.push((rec, fid));
        }
        let (rec, _) = shipped.last().unwrap().clone();
        let (first, first_fid) = shipped[0].clone();
        let txn = fx.store.read_txn().unwrap();
        let t = txn.open_table(super::tables::APPLIED).unwrap();
        let key = (rec.id.incarnation.0, root.volume.0);
        let row: super::AppliedRec =
            super::codec::decode("applied", t.get(key).unwrap().unwrap().value()).unwrap();
        let kept: Vec<u64> = row.recent.iter().map(|(s, _)| *s).collect();
        assert_eq!(kept, vec![failed.id.seq, rec.id.seq]);
        drop((t, txn));
        // A restarted client resends from further back: the failure is still a failure,
        // a success is answered from the current state.
        let log_start = failed.id.seq;
        assert_eq!(
            ship(&mut fx, &failed, log_start),
            vec![Err(FsError::Exists)]
        );
        assert_eq!(ship(&mut fx, &first, log_start), vec![Ok(Some(first_fid))]);
        assert_eq!(fx.lookup(root, "taken").unwrap().fid, theirs);
    }

    #[test]
    fn a_write_over_capacity_is_refused_alone_and_leaves_nothing_behind() {
        let cap = 100_000;
        let mut fx = Fx::with_options(StoreOptions {
            capacity_bytes: Some(cap),
            ..StoreOptions::default()
        });
        let root = fx.root();
        let a = fx.create(root, "a");
        fx.write(a, 0, &[1u8; 65_536]);
        let space = fx.store.space().unwrap();
        assert_eq!(
            (space.total_bytes, space.used_bytes, space.free_bytes),
            (cap, 65_536, cap - 65_536)
        );

        // The create goes through; the write that could pass the capacity is refused on its
        // own, counts as answered, and changes nothing.
        let (c, b) = fx.g.create_op(root, "b", CreateHow::Guarded);
        let data = vec![2u8; 65_536];
        let recs = records(&mut fx.g, vec![c, Gen::write_op(b, 0, &data)]);
        let out = fx.store.apply_batch(&recs, &data);
        assert_eq!(out, vec![Ok(Some(b)), Err(FsError::NoSpace)]);
        assert_eq!(fx.state(b).attrs.size, 0);
        assert_eq!(fx.store.space().unwrap().used_bytes, 65_536);
        assert_eq!(fx.store.storage_stats().unwrap().chunks, 1);
        // A resend gets the same answers without applying anything.
        assert_eq!(fx.store.apply_batch(&recs, &data), out);

        // Removing a frees its chunk; the same write then fits.
        let rm = fx.rm_op(root, "a");
        let rm = fx.g.rec(rm);
        assert_eq!(fx.store.apply_batch(&[rm], &[]), vec![Ok(None)]);
        assert_eq!(fx.store.space().unwrap().used_bytes, 0);
        let w = fx.g.rec(Gen::write_op(b, 0, &data));
        assert_eq!(fx.store.apply_batch(&[w], &data), vec![Ok(None)]);
        assert_eq!(fx.read_all(b), data);
    }

    #[test]
    fn data_of_the_wrong_length_refuses_the_batch() {
        let mut fx = Fx::new();
        let root = fx.root();
        let (c, f) = fx.g.create_op(root, "f", CreateHow::Guarded);
        let recs = records(&mut fx.g, vec![c, Gen::write_op(f, 0, b"abc")]);
        for data in [&b"ab"[..], &b"abcd"[..]] {
            let out = fx.store.apply_batch(&recs, data);
            assert!(out.iter().all(|o| matches!(o, Err(FsError::Malformed(_)))));
        }
        assert_eq!(fx.lookup(root, "f"), Err(FsError::NotFound));
        assert_eq!(
            fx.store.apply_batch(&recs, b"abc"),
            vec![Ok(Some(f)), Ok(None)]
        );
        assert!(fx.store.apply_batch(&[], &[]).is_empty());
    }

    #[test]
    fn unknown_volume_and_cross_volume_fids() {
        let mut fx = Fx::new();
        let mut g = Gen::new(codetta_wire::VolumeId(99), fx.g.incarnation);
        let ghost = Fid::root(codetta_wire::VolumeId(99));
        let (op, _) = g.create_op(ghost, "x", CreateHow::Guarded);
        let rec = g.rec(op);
        assert_eq!(
            fx.store.apply_batch(&[rec], &[]),
            vec![Err(FsError::UnknownVolume)]
        );
        // The client's sequence for the real volume is untouched.
        let f = fx.create(fx.root(), "ok");
        assert_eq!(fx.lookup(fx.root(), "ok").unwrap().fid, f);
    }

    /// Every change bumps the changed objects' vectors by this replica and changes their
    /// tags; reading does not.
    #[test]
    fn versions_and_tags_follow_every_change() {
        let mut fx = Fx::new();
        let root = fx.root();
        let replica = fx.store.replica_of(fx.vol.id).unwrap();
        let r0 = fx.state(root);
        let f = fx.create(root, "f");
        let r1 = fx.state(root);
        assert_eq!(r1.version.compare(&r0.version), VvOrdering::Dominates);
        assert_eq!(r1.version.get(replica), r0.version.get(replica) + 1);
        assert_ne!(r1.tag, r0.tag);
        let f0 = fx.state(f);
        assert_eq!(f0.version.get(replica), 1);

        let mut last = f0;
        let changes: [fn(&mut Fx, Fid); 5] = [
            |fx, f| fx.write(f, 0, b"abc"),
            |fx, f| fx.write(f, 1, b"X"),
            |fx, f| fx.truncate(f, 100_000),
            |fx, f| fx.truncate(f, 2),
            |fx, f| {
                let set = SetAttrs {
                    mode: Some(0o600),
                    ..SetAttrs::default()
                };
                assert_eq!(fx.one(Op::SetAttr { fid: f, set }), Ok(None));
            },
        ];
        for change in changes {
            change(&mut fx, f);
            let now = fx.state(f);
            assert_eq!(now.version.compare(&last.version), VvOrdering::Dominates);
            assert_ne!(now.tag, last.tag);
            last = now;
        }
        assert_eq!(
            fx.state(root).version,
            r1.version,
            "file changes leave the directory alone"
        );
        let _ = fx.store.read(f, 0, 10).unwrap();
        assert_eq!(fx.state(f), last, "reading changes nothing");
    }

    /// Two stores that apply the same records hold equal replicated state.
    #[test]
    fn the_same_records_give_the_same_tags_on_two_stores() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let stores: Vec<Store> = dirs
            .iter()
            .map(|d| Store::open(&d.path().join("s.redb"), StoreOptions::default()).unwrap())
            .collect();
        let vol = stores[0].create_volume("vol", T0).unwrap();
        let replica = vol.vsg[0].replica;
        let vols = [
            vol.clone(),
            stores[1].create_replica(&vol, replica, T0).unwrap(),
        ];
        assert_eq!(vols[0], vols[1]);
        let root = vols[0].root;
        let mut g = Gen::new(vols[0].id, codetta_wire::Incarnation(7));
        let mut batches: Vec<(Vec<UpdateRecord>, Vec<u8>)> = Vec::new();
        let (c1, f1) = g.create_op(root, "f1", CreateHow::Exclusive([3; 8]));
        let (m1, d1) = g.mkdir_op(root, "d1");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        batches.push((
            records(&mut g, vec![c1, m1, Gen::write_op(f1, 10, &big)]),
            big.clone(),
        ));
        let (c2, f2) = g.create_op(d1, "f2", CreateHow::Unchecked { truncate: false });
        let sym = Op::Symlink {
            dir: d1,
            name: name("s"),
            fid: g.fid(),
            new: NewObject {
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
            target: b"f2".to_vec(),
        };
        let ops = vec![
            c2,
            sym,
            Gen::write_op(f2, 70_000, b"tail"),
            Op::Rename {
                from_dir: root,
                from_name: name("f1"),
                to_dir: d1,
                to_name: name("renamed"),
                fid: f1,
                replaces: None,
            },
            Op::SetAttr {
                fid: f2,
                set: SetAttrs {
                    size: Some(65_540),
                    mtime: Some(Time { secs: 42, nanos: 1 }),
                    ..SetAttrs::default()
                },
            },
        ];
        batches.push((records(&mut g, ops), b"tail".to_vec()));
        for s in &stores {
            for (recs, data) in &batches {
                assert!(s.apply_batch(recs, data).iter().all(Result::is_ok));
            }
        }
        let all = [root, f1, d1, f2];
        for fid in all {
            let (a, b) = (
                stores[0].getattr(fid).unwrap(),
                stores[1].getattr(fid).unwrap(),
            );
            assert_eq!(a, b, "{fid}");
        }
        let (_, la, _) = stores[0].readdir(d1, 0, 100, true).unwrap();
        let (_, lb, _) = stores[1].readdir(d1, 0, 100, true).unwrap();
        assert_eq!(la, lb);
        assert_eq!(la.len(), 3);
    }
}

#[cfg(test)]
mod random_ops {
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
}
