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

use super::codec::{self, Tombstone, Vnode, VolumeRec};
use super::content::{self};
use super::plan::{Fail, Plan, Planner};
pub(crate) use super::write_tables::WriteTables;
use super::{R, Store, StoreError, get_entry};
use codetta_wire::update::{Cop2, Follows, Op, RecordOutcome, UpdateRecord};
use codetta_wire::{Fid, FsError, ReplicaId, UpdateId};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

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

/// What a replica knows of a record's predecessor on its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Predecessor {
    /// Its state holds it (applied here, or had from resolution).
    Held,
    /// It did not apply it and has not had it from resolution: the record is refused.
    Missing,
    /// No predecessor named, or the object is not here.
    Unknown,
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

impl WriteTables<'_> {
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
    /// The gaps rows read in this batch, and whether each changed.
    gaps: BTreeMap<(u32, u32), (codec::Gaps, bool)>,
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

    /// The gaps of one (incarnation, volume), read once per batch.
    fn gaps(&mut self, key: (u32, u32)) -> R<&mut (codec::Gaps, bool)> {
        if !self.gaps.contains_key(&key) {
            let gaps = match self.t.gaps.get(key)? {
                Some(g) => codec::decode("applied_gaps", g.value())?,
                None => codec::Gaps::default(),
            };
            self.gaps.insert(key, (gaps, false));
        }
        self.gaps
            .get_mut(&key)
            .ok_or_else(|| StoreError::Fs(FsError::Internal("gaps cache".into())))
    }

    /// Records that the records `from..=to` of a client were not applied here.
    fn note_gap(&mut self, key: (u32, u32), from: u64, to: u64) -> R<()> {
        let (gaps, changed) = self.gaps(key)?;
        gaps.add(from, to);
        *changed = true;
        Ok(())
    }

    /// What this replica knows of record `before` of `record`'s incarnation, the previous
    /// one on `record`'s object. It lacks it when it did not apply it (a gap: missed while
    /// away, or refused) and has not had it from resolution either (the object's history
    /// does not include it): applying `record` on top would make a state no client wrote
    /// (rule 2). An object missing here lets the record fail as it would anyway.
    fn predecessor(
        &mut self,
        key: (u32, u32),
        record: &UpdateRecord,
        object: Fid,
        before: u64,
    ) -> R<Predecessor> {
        let (gaps, _) = self.gaps(key)?;
        // Below the floor the gaps no longer tell whether it was applied here: the
        // object's history must (taken as applied, a record missed before 32 later gaps
        // was applied over the wrong state: the fault matrix found such a version).
        let missed = before < gaps.floor
            || gaps
                .gaps
                .iter()
                .any(|(from, to)| (*from..=*to).contains(&before));
        if !missed {
            return Ok(Predecessor::Held);
        }
        let id = UpdateId {
            incarnation: record.id.incarnation,
            seq: before,
        };
        match super::load_vnode(&self.t.vnodes, &self.t.volumes, object) {
            Ok(v) if v.history.includes(id) => Ok(Predecessor::Held),
            Ok(_) => Ok(Predecessor::Missing),
            // Not here (gone, or never made here): the record's own checks decide.
            Err(StoreError::Fs(_)) => Ok(Predecessor::Unknown),
            // A damaged store is an error, not a missing object.
            Err(e) => Err(e),
        }
    }

    /// True when `object`'s state here already holds `record` (had from resolution). An
    /// object not here (made by this record, or gone) holds nothing; a damaged store is
    /// an error.
    fn holds_already(&self, record: &UpdateRecord, object: Fid) -> R<bool> {
        match super::load_vnode(&self.t.vnodes, &self.t.volumes, object) {
            Ok(v) => Ok(v.history.includes(record.id)),
            Err(StoreError::Fs(_)) => Ok(false),
            Err(e) => Err(e),
        }
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
        follows: Follows,
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
        // A record applied to a state older than the one its client wrote it over would
        // make a version nobody wrote: refused, as a record the replica cannot apply.
        let object = record.op.object();
        let predecessor = match follows.object {
            Some(before) => self.predecessor(key, record, object, before)?,
            None => Predecessor::Unknown,
        };
        let replaced = record.op.replaced();
        let replaced_predecessor = match (replaced, follows.replaced) {
            (Some(r), Some(before)) => self.predecessor(key, record, r, before)?,
            _ => Predecessor::Unknown,
        };
        let planner = Planner {
            t: &self.t,
            replica: vol.replica,
            id: record.id,
            time: record.time,
            capacity: self.capacity,
        };
        let mut prior = 0;
        // Rule 3 by the object's state as well as by sequence: a record this replica holds
        // already, from resolution (its object's history has it, or a span covers it), is
        // answered and never applied again. Applied again, a whole-file write resent by a
        // restarted client went over another client's later write, and the bumped counter
        // then won resolution (the interleaving simulation's seed 303: an acknowledged
        // write lost).
        if self.holds_already(record, object)? {
            // Noted as a gap all the same: this replica holds the record's object as
            // resolution left it, not what the record did to other objects (a directory an
            // install edited keeps no history of it), so records chained on those ask
            // their history rather than take it as applied.
            self.note_gap(key, seq, seq)?;
            let answer = self.resend_answer(key, record)?;
            self.note_answer(key, seq, &answer, log_start)?;
            return Ok((answer, 0));
        }
        let planned = if predecessor == Predecessor::Missing
            || replaced_predecessor == Predecessor::Missing
        {
            Err(Fail::Answer(FsError::Diverged))
        } else {
            planner.plan(&record.op, data)
        };
        let outcome = match planned {
            Ok(mut plan) => {
                let held = follows.object.filter(|_| predecessor == Predecessor::Held);
                plan.chain(object, record.id, held);
                if let Some(r) = replaced {
                    let held = follows
                        .replaced
                        .filter(|_| replaced_predecessor == Predecessor::Held);
                    plan.chain(r, record.id, held);
                }
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
        self.note_answer(key, seq, &outcome, log_start)?;
        Ok((outcome, prior))
    }

    /// Notes that record `seq` of `key` was answered with `outcome`: the applied sequence
    /// moves to it, and the answer is kept for resends.
    fn note_answer(
        &mut self,
        key: (u32, u32),
        seq: u64,
        outcome: &RecordOutcome,
        log_start: u64,
    ) -> R<()> {
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
        Ok(())
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
        for (key, (gaps, changed)) in &self.gaps {
            if *changed {
                self.t.gaps.insert(*key, codec::encode(gaps)?.as_slice())?;
            }
        }
        self.t.save_counters()
    }
}

/// What a client ships in one batch (see [`Request::Ship`](codetta_wire::Request::Ship)).
pub struct Shipment<'a> {
    /// The records, in sequence order.
    pub records: &'a [UpdateRecord],
    /// Their write data, in record order.
    pub data: &'a [u8],
    /// The lowest sequence number the client's log still holds (0: not said).
    pub log_start: u64,
    /// Second phases of earlier records.
    pub cop2: &'a [Cop2],
    /// Per record (or empty), its predecessors from the same incarnation.
    pub follows: &'a [Follows],
}

impl<'a> Shipment<'a> {
    /// Records with the log start and second phases, no predecessors.
    pub fn new(
        records: &'a [UpdateRecord],
        data: &'a [u8],
        log_start: u64,
        cop2: &'a [Cop2],
    ) -> Shipment<'a> {
        Shipment {
            records,
            data,
            log_start,
            cop2,
            follows: &[],
        }
    }

    /// The same shipment with each record's predecessors.
    pub fn following(self, follows: &'a [Follows]) -> Shipment<'a> {
        Shipment { follows, ..self }
    }

    /// Records alone: no log start, second phases or predecessors.
    pub fn plain(records: &'a [UpdateRecord], data: &'a [u8]) -> Shipment<'a> {
        Shipment {
            records,
            data,
            log_start: 0,
            cop2: &[],
            follows: &[],
        }
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
        match self.ship(&Shipment::plain(records, data)) {
            Ok(shipped) => shipped.outcomes,
            Err(e) => vec![Err(e); records.len()],
        }
    }

    /// Like [`Store::apply_batch_or_refuse`], with the rest of a client's shipment: the
    /// second phases (`cop2`) of earlier records are applied first, in the same
    /// transaction, a replica whose last applied record is before `log_start - 1`
    /// continues from there, and a record whose predecessor on its object (`follows`) this
    /// replica did not apply is refused (see [`Request::Ship`](codetta_wire::Request::Ship)).
    pub fn ship(&self, shipment: &Shipment) -> Result<Shipped, FsError> {
        self.try_apply_batch(shipment).map_err(|e| {
            let e = FsError::from(e);
            tracing::warn!(
                records = shipment.records.len(),
                error = %e,
                "batch not applied"
            );
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
        self.ship(&Shipment::plain(records, data))
            .map(|s| s.outcomes)
    }

    fn try_apply_batch(&self, shipment: &Shipment) -> R<Shipped> {
        let &Shipment {
            records,
            data,
            log_start,
            cop2,
            follows,
        } = shipment;
        if !follows.is_empty() && follows.len() != records.len() {
            return Err(FsError::Malformed(format!(
                "{} predecessors for {} records",
                follows.len(),
                records.len()
            ))
            .into());
        }
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
                gaps: BTreeMap::new(),
            };
            for item in cop2 {
                batch.cop2(item)?;
            }
            let mut shipped = Shipped::default();
            for (i, (record, bytes)) in records.iter().zip(slices).enumerate() {
                let follows = follows.get(i).copied().unwrap_or_default();
                let (outcome, prior) = batch.apply(record, bytes, log_start, follows)?;
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
mod tests;

#[cfg(test)]
mod random_ops;
