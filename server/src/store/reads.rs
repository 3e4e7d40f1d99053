//! What clients read from a replica: attributes, names, directory pages, file data and
//! symlink targets, each from one read transaction.

use super::codec::{Dirent, Vnode};
use super::tables::{self};
use super::{R, Store, StoreError, content, get_entry, load_vnode, object_state};
use super::{apply, codec, resolve};
use codetta_wire::MAX_READ;
use codetta_wire::message::{DirEntry, ObjectState};
use codetta_wire::{Fid, FileType, FsError, Incarnation, Name, VolumeId};
use redb::{ReadTransaction, ReadableTableMetadata};

impl Store {
    pub(super) fn load(&self, txn: &ReadTransaction, fid: Fid) -> R<Vnode> {
        let vnodes = txn.open_table(tables::VNODES)?;
        let volumes = txn.open_table(tables::VOLUMES)?;
        load_vnode(&vnodes, &volumes, fid)
    }

    /// The state of `fid`.
    pub fn getattr(&self, fid: Fid) -> Result<ObjectState, FsError> {
        let txn = self.read_txn()?;
        let v = self.load(&txn, fid)?;
        Ok(object_state(fid, &v))
    }

    /// The states of those of `fids` that are live, read in one transaction.
    pub fn states(&self, fids: &[Fid]) -> Result<Vec<ObjectState>, FsError> {
        let txn = self.read_txn()?;
        Ok(fids
            .iter()
            .filter_map(|fid| self.load(&txn, *fid).ok().map(|v| object_state(*fid, &v)))
            .collect())
    }

    /// The state of the object `name` in directory `dir`.
    pub fn lookup(&self, dir: Fid, name: &Name) -> Result<ObjectState, FsError> {
        let txn = self.read_txn()?;
        let d = self.load(&txn, dir)?;
        if d.ftype != FileType::Directory {
            return Err(FsError::NotDir);
        }
        let dirents = txn.open_table(tables::DIRENTS).map_err(StoreError::from)?;
        let e = get_entry(&dirents, dir, name)?.ok_or(FsError::NotFound)?;
        let child = self.load(&txn, e.fid).map_err(|e| match e {
            // A dangling entry is damage, not a stale handle of the caller's.
            StoreError::Fs(FsError::Stale) => FsError::from(StoreError::Inconsistent(format!(
                "entry {name} of {dir} names a missing object"
            ))),
            other => other.into(),
        })?;
        Ok(object_state(e.fid, &child))
    }

    /// The update history of `fid` (rule 5).
    pub fn history(&self, fid: Fid) -> Result<codetta_wire::History, FsError> {
        let txn = self.read_txn()?;
        Ok(self.load(&txn, fid)?.history)
    }

    /// How many applied records still wait for their second phase (COP2).
    pub fn pending_cop2(&self) -> Result<u64, FsError> {
        let txn = self.read_txn()?;
        let t = txn
            .open_table(tables::COP2_PENDING)
            .map_err(StoreError::from)?;
        Ok(t.len().map_err(StoreError::from)?)
    }

    /// How many records of `incarnation` in `volume` this replica never saw (it was away
    /// while the others applied them and the client trimmed them).
    pub fn missed_records(
        &self,
        incarnation: Incarnation,
        volume: VolumeId,
    ) -> Result<u64, FsError> {
        let txn = self.read_txn()?;
        let t = txn.open_table(tables::APPLIED).map_err(StoreError::from)?;
        match t.get((incarnation.0, volume.0)).map_err(StoreError::from)? {
            Some(g) => Ok(codec::decode::<apply::AppliedRec>("applied", g.value())?.missed),
            None => Ok(0),
        }
    }

    /// The parent directory of directory `dir` (the root is its own parent), for `..`.
    pub fn parent(&self, dir: Fid) -> Result<ObjectState, FsError> {
        let txn = self.read_txn()?;
        let d = self.load(&txn, dir)?;
        if d.ftype != FileType::Directory {
            return Err(FsError::NotDir);
        }
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        let g = vnodes
            .get((dir.volume.0, d.parent))
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::Inconsistent(format!("parent of {dir} is missing")))?;
        let p: Vnode = codec::decode("vnodes", g.value())?;
        let fid = Fid {
            volume: dir.volume,
            vnode: d.parent,
            unique: p.unique,
        };
        Ok(object_state(fid, &p))
    }

    /// Up to `max_entries` entries of `dir` whose cookie is greater than `cookie` (0 = from
    /// the start), in cookie order; `eof` when none follow. Cookies are [`Name::cookie`], so
    /// a listing resumes correctly after concurrent inserts, restarts and on other replicas.
    pub fn readdir(
        &self,
        dir: Fid,
        cookie: u64,
        max_entries: u32,
        with_attrs: bool,
    ) -> Result<(ObjectState, Vec<DirEntry>, bool), FsError> {
        let txn = self.read_txn()?;
        let d = self.load(&txn, dir)?;
        if d.ftype != FileType::Directory {
            return Err(FsError::NotDir);
        }
        let state = object_state(dir, &d);
        let Some(first) = cookie.checked_add(1) else {
            return Ok((state, Vec::new(), true));
        };
        let dirents = txn.open_table(tables::DIRENTS).map_err(StoreError::from)?;
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        let last_name = [0xFFu8; codetta_wire::name::MAX_NAME_LEN + 1];
        let start: (u32, u64, u64, &[u8]) = (dir.volume.0, dir.vnode, first, &[]);
        let end: (u32, u64, u64, &[u8]) = (dir.volume.0, dir.vnode, u64::MAX, &last_name);
        let mut range = dirents.range(start..=end).map_err(StoreError::from)?;
        let mut entries = Vec::new();
        let mut eof = true;
        for item in range.by_ref() {
            if entries.len() >= max_entries as usize {
                eof = false;
                break;
            }
            let (k, v) = item.map_err(StoreError::from)?;
            let (_, _, cookie, name) = k.value();
            let name = Name::new(name).map_err(|e| {
                StoreError::Inconsistent(format!("stored entry name in {dir}: {e}"))
            })?;
            let e: Dirent = codec::decode("dirents", v.value())?;
            let state = if with_attrs {
                match vnodes
                    .get((e.fid.volume.0, e.fid.vnode))
                    .map_err(StoreError::from)?
                {
                    Some(g) => {
                        let child: Vnode = codec::decode("vnodes", g.value())?;
                        (child.unique == e.fid.unique).then(|| object_state(e.fid, &child))
                    }
                    None => None,
                }
            } else {
                None
            };
            entries.push(DirEntry {
                name,
                cookie,
                fid: e.fid,
                state,
            });
        }
        Ok((state, entries, eof))
    }

    /// Up to `count` bytes of file `fid` from `offset` (at most [`MAX_READ`]); holes read as
    /// zeros. `eof` when the bytes returned reach the end of the file.
    pub fn read(
        &self,
        fid: Fid,
        offset: u64,
        count: u32,
    ) -> Result<(ObjectState, Vec<u8>, bool), FsError> {
        let txn = self.read_txn()?;
        let v = self.load(&txn, fid)?;
        match v.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid),
        }
        if resolve::is_installing(&txn, fid)? {
            // Attributes or some blocks of another state are in, its version not yet: these
            // bytes are no state any update made (rule 4).
            return Err(FsError::Incomplete);
        }
        let state = object_state(fid, &v);
        if offset >= v.size {
            return Ok((state, Vec::new(), true));
        }
        let end = offset
            .saturating_add(u64::from(count.min(MAX_READ)))
            .min(v.size);
        let blocks = txn.open_table(tables::BLOCKS).map_err(StoreError::from)?;
        let chunks = content::ReadChunks::open(&txn)?;
        let data = content::read_range(
            &blocks,
            &chunks,
            (fid.volume.0, fid.vnode),
            offset,
            (end - offset) as usize,
        )?;
        Ok((state, data, end == v.size))
    }

    /// The target of symlink `fid` (`Invalid` for other objects).
    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, FsError> {
        let txn = self.read_txn()?;
        let v = self.load(&txn, fid)?;
        if v.ftype != FileType::Symlink {
            return Err(FsError::Invalid);
        }
        Ok(v.target)
    }
}
