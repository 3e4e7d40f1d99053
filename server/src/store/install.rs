//! What resolution writes into a replica: blocks, attributes and names, versions and
//! deletes, each conditional on the version the coordinator saw (rules 4 and 6), and the
//! name bookkeeping they share.

use super::apply::WriteTables;
use super::codec::{self, BlockRef, Dirent, Place, Tombstone, Vnode};
use super::content::{self};
use super::lookup::{Found, find};
use super::resolve::name_of;
use super::tags::{self, entry_member};
use super::{Changed, R, Store, StoreError, get_entry, new_vnode};
use crate::conflict::is_conflict_name;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement};
use codetta_wire::{BLOCK_SIZE, Fid, FileType, FsError, History, Name, VersionVector};
use redb::{ReadableTable, WriteTransaction};

impl Store {
    /// Runs `f` in a write transaction committed durably if it succeeds, with the objects
    /// it changed (whose promises the caller breaks: the store keeps none).
    #[must_use = "the promises on what changed must be broken"]
    pub(crate) fn write_changing<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> R<T>,
    ) -> Result<(T, Changed), FsError> {
        let txn: WriteTransaction = self.db.begin_write().map_err(StoreError::from)?;
        let result = (|| -> R<(T, Changed)> {
            let mut t = self.write_tables(&txn)?;
            let out = f(&mut t)?;
            t.save_counters()?;
            Ok((out, t.noted.union(&t.touched).copied().collect()))
        })();
        match result {
            Ok(done) => {
                txn.commit().map_err(StoreError::from)?;
                Ok(done)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e.into())
            }
        }
    }

    /// [`Store::write_changing`] for an install of `fid`: refused (`UnknownVolume`) when
    /// this store no longer holds the volume. A replica retired while a coordinator still
    /// counted it (a drain's group change committed mid-resolution) took installs on its
    /// purged store; a missing parent there looked like a placement cycle, and the
    /// coordinator moved an acknowledged file to a conflict name on the replicas that stay
    /// (the interleaving simulation's seed 481).
    fn write_install<T>(
        &self,
        fid: Fid,
        f: impl FnOnce(&mut WriteTables<'_>) -> R<T>,
    ) -> Result<(T, Changed), FsError> {
        self.write_changing(|t| {
            t.require_volume(fid.volume)?;
            f(t)
        })
    }

    /// [`Store::write_changing`] for bookkeeping that changes no object a client reads.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> R<T>,
    ) -> Result<T, FsError> {
        let (out, changed) = self.write_changing(f)?;
        debug_assert!(changed.is_empty(), "bookkeeping changed {changed:?}");
        Ok(out)
    }

    /// Sets blocks of the live file `fid` if its version is still `expect`: `Some` installs
    /// the chunk (from `chunks`, or already held here), `None` removes the block. The
    /// version is left alone.
    #[must_use = "the promises on what changed must be broken"]
    pub fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], &[u8])],
    ) -> Result<Changed, FsError> {
        for (hash, bytes) in chunks {
            if blake3::hash(bytes).as_bytes() != hash {
                return Err(FsError::Malformed(
                    "shipped chunk does not match its hash".into(),
                ));
            }
        }
        self.write_install(fid, |t| {
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
            t.touched.insert(fid);
            Ok(())
        })
        .map(|((), changed)| changed)
    }

    /// Makes `fid` live with `meta` if its version is still `expect`: created (empty
    /// version) if absent, brought back (keeping the tombstone's version) if deleted, moved
    /// if its placement differs. A missing or non-directory parent, or a name held by
    /// another object, is `Blocked` on that object.
    #[must_use = "the promises on what changed must be broken"]
    pub fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> Result<Changed, FsError> {
        self.write_install(fid, |t| {
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
                    let before = tags::tag(&v);
                    (v, Some((places, before)))
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
                let new_places =
                    t.place_names(fid, meta, old_places.as_ref().map(|(p, _)| p.as_slice()))?;
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
            // Until its version is in, an object this install made here or changed holds
            // a state no version names: a file's new attributes over blocks still to come
            // (a write that kept the size moves only the mtime), or new names or
            // attributes under the old version. Cut short, such a replica compared with
            // one that missed the same updates looked like another version of them (the
            // interleaving simulation's seeds 189 and 535: a conflict copy where one
            // client wrote), and old bytes were served under new attributes. Directories
            // are placed before their entries are settled and compared again after: not
            // marked. A coordinator renaming its own source completes it first (version
            // included), so some replica always stays whole.
            let partial = meta.ftype != FileType::Directory
                && old_places
                    .as_ref()
                    .is_none_or(|(_, before)| *before != tags::tag(&v));
            if partial {
                t.installing.insert(key, [].as_slice())?;
            }
            t.vnodes.insert(key, codec::encode(&v)?.as_slice())?;
            t.note_change(fid)?;
            Ok(())
        })
        .map(|((), changed)| changed)
    }

    /// Sets `fid`'s version and history (live or deleted) if its version is still `expect`.
    #[must_use = "the promises on what changed must be broken"]
    pub fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> Result<Changed, FsError> {
        self.write_install(fid, |t| {
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
        .map(|((), changed)| changed)
    }

    /// Deletes `fid` (leaving a tombstone with `version`, `history` and `placement`) if its
    /// version is still `expect`. A directory that still has entries here is `Blocked` on
    /// one of them.
    #[must_use = "the promises on what changed must be broken"]
    pub fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> Result<Changed, FsError> {
        if fid.vnode == Fid::ROOT_VNODE {
            return Err(FsError::Invalid);
        }
        self.write_install(fid, |t| {
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
        .map(|((), changed)| changed)
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
