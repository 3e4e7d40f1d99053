//! Planning one update record: what it will change, decided by code that can only read
//! the transaction's tables (a [`Planner`] borrows them immutably). A record that fails
//! planning has changed nothing; its error is its answer.

use super::codec::{Dirent, Vnode};
use super::content::{self, BlockPlan};
use super::write_tables::WriteTables;
use super::{StoreError, get_entry, load_vnode};
use codetta_wire::update::Op;
use codetta_wire::{Fid, FileType, FsError, Name, ReplicaId, SetAttrs, Time, UpdateId};
use redb::ReadableTable;

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
    /// Update `id` is its client's record on `object` (`Op::object`, or the file a rename
    /// replaces a name of: `Op::chained`), applied over the same
    /// client's update `before` when the object's state holds it (`None`: none named, or
    /// not known): the new history entry is chained, and its span reaches back as far as
    /// `before`'s (or to `before`, when the history no longer remembers it). See
    /// [`codetta_wire::History`].
    pub(crate) fn chain(&mut self, object: Fid, id: UpdateId, before: Option<u64>) {
        let changed = self.put.iter_mut().chain(self.delete.iter_mut());
        for (_, v) in changed.filter(|(f, _)| *f == object) {
            let from = before.map(|b| {
                let prev = UpdateId { seq: b, ..id };
                v.history.span_start(prev).unwrap_or(b)
            });
            v.history.chain(id, from);
        }
    }

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
    pub(crate) fn plan<'d>(&self, op: &Op, data: &'d [u8]) -> Result<Plan<'d>, Fail> {
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
