//! Directory operations (RFC 1813 / POSIX semantics), planned without writing.
//!
//! A directory's record keeps its entry count (its `size`), its subdirectory count (nlink =
//! 2 + subdirs), its parent (for `..` and for refusing a rename into its own subtree) and
//! the [`SetDigest`](codetta_wire::tag::SetDigest) of its entries, each updated by the op
//! that changes it. Entries live in `dirents` under (volume, dir, cookie, name).
//!
//! Cookies are 63-bit hashes of names (`Name::cookie`), so two names of one directory can
//! share a cookie (probability about n^2 / 2^64: 5e-8 for a million entries). Both are
//! stored (the name is part of the key) and found by lookup, but a READDIR page that ends
//! between them skips the second, since the next page starts after the cookie.

use super::codec::{Dirent, Place, Vnode};
use super::content::BlockPlan;
use super::plan::{Fail, Plan, Planner};
use super::tags::entry_member;
use super::{MAX_SYMLINK_TARGET, new_vnode};
use codetta_wire::update::{CreateHow, NewObject};
use codetta_wire::{Fid, FileType, FsError, Name};

/// Longest parent chain walked before the tree is declared damaged.
const MAX_DEPTH: usize = 1 << 20;

impl Planner<'_, '_> {
    /// A new object's fid must be in the directory's volume and unused.
    fn check_new_fid(&self, dir: Fid, fid: Fid) -> Result<(), Fail> {
        if fid.volume != dir.volume || fid.vnode == 0 {
            return Err(FsError::Invalid.into());
        }
        if self.t_vnode_exists(fid)? {
            return Err(FsError::Exists.into());
        }
        Ok(())
    }

    /// A create of `fid` that this replica has seen the effect of already: the object is
    /// here (resolution brought it before the record came) — answered with the fid and
    /// nothing changed — or it was made and removed again (a tombstone, or one collected
    /// since) — `Stale`, and it must not come back.
    fn already_made(&self, fid: Fid) -> Result<Option<Plan<'static>>, Fail> {
        use redb::ReadableTable;
        let key = (fid.volume.0, fid.vnode);
        let live: Option<Vnode> = match self.t.vnodes.get(key).map_err(super::StoreError::from)? {
            Some(g) => Some(super::codec::decode("vnodes", g.value())?),
            None => None,
        };
        if let Some(v) = live {
            if v.unique != fid.unique {
                return Err(FsError::Invalid.into());
            }
            return Ok(Some(Plan::answer_only(Some(fid))));
        }
        if self
            .t
            .tombstones
            .get(key)
            .map_err(super::StoreError::from)?
            .is_some()
            || super::collect::is_forgotten(&self.t.gc_floors, fid)?
        {
            return Err(FsError::Stale.into());
        }
        Ok(None)
    }

    fn t_vnode_exists(&self, fid: Fid) -> Result<bool, Fail> {
        use redb::ReadableTable;
        Ok(self
            .t
            .vnodes
            .get((fid.volume.0, fid.vnode))
            .map_err(super::StoreError::from)?
            .is_some())
    }

    /// Plans adding `name -> fid` (a new object `child`) to directory `dir`.
    fn plan_insert(
        &self,
        dir: Fid,
        mut d: Vnode,
        name: &Name,
        fid: Fid,
        mut child: Vnode,
    ) -> Plan<'static> {
        let ftype = child.ftype;
        d.size += 1;
        if ftype == FileType::Directory {
            d.subdirs += 1;
        }
        d.digest.add(&entry_member(name, fid));
        self.touch(&mut d, true);
        child.parent = dir.vnode;
        child.name = name.as_bytes().to_vec();
        self.stamp(&mut child);
        Plan {
            answer: Some(fid),
            link: vec![(dir, name.clone(), Dirent { fid, ftype })],
            put: vec![(dir, d), (fid, child)],
            created: 1,
            ..Plan::default()
        }
    }

    /// CREATE of a regular file.
    pub(crate) fn create(
        &self,
        dir: Fid,
        name: &Name,
        fid: Fid,
        new: &NewObject,
        how: CreateHow,
    ) -> Result<Plan<'static>, Fail> {
        let d = self.load_dir(dir)?;
        if let Some(done) = self.already_made(fid)? {
            return Ok(done);
        }
        if let Some(existing) = self.entry(dir, name)? {
            return self.create_existing(existing, how);
        }
        self.check_new_fid(dir, fid)?;
        let mut child = new_vnode(
            fid.unique,
            FileType::Regular,
            new.mode,
            new.uid,
            new.gid,
            self.time,
        );
        if let CreateHow::Exclusive(verifier) = how {
            child.verifier = Some(verifier);
        }
        Ok(self.plan_insert(dir, d, name, fid, child))
    }

    /// CREATE where the name is taken.
    fn create_existing(&self, existing: Dirent, how: CreateHow) -> Result<Plan<'static>, Fail> {
        if existing.ftype != FileType::Regular {
            return Err(FsError::Exists.into());
        }
        match how {
            CreateHow::Guarded => Err(FsError::Exists.into()),
            CreateHow::Exclusive(verifier) => {
                let f = self.load(existing.fid)?;
                if f.verifier == Some(verifier) {
                    Ok(Plan {
                        answer: Some(existing.fid),
                        ..Plan::default()
                    })
                } else {
                    Err(FsError::Exists.into())
                }
            }
            CreateHow::Unchecked { truncate: false } => Ok(Plan {
                answer: Some(existing.fid),
                ..Plan::default()
            }),
            CreateHow::Unchecked { truncate: true } => {
                let mut f = self.load(existing.fid)?;
                f.size = 0;
                self.touch(&mut f, true);
                Ok(Plan {
                    answer: Some(existing.fid),
                    blocks: Some((
                        existing.fid,
                        BlockPlan {
                            truncate_to: Some(0),
                            writes: Vec::new(),
                        },
                    )),
                    put: vec![(existing.fid, f)],
                    ..Plan::default()
                })
            }
        }
    }

    /// What MKDIR, SYMLINK and MKNOD check before they make `fid` as `name` in `dir`: a
    /// resent record is answered as before (`Some`), a taken name is `Exists`, the fid must
    /// be a new one.
    fn new_child(&self, dir: Fid, name: &Name, fid: Fid) -> Result<Option<Plan<'static>>, Fail> {
        if let Some(done) = self.already_made(fid)? {
            return Ok(Some(done));
        }
        if self.entry(dir, name)?.is_some() {
            return Err(FsError::Exists.into());
        }
        self.check_new_fid(dir, fid)?;
        Ok(None)
    }

    /// MKDIR.
    pub(crate) fn mkdir(
        &self,
        dir: Fid,
        name: &Name,
        fid: Fid,
        new: &NewObject,
    ) -> Result<Plan<'static>, Fail> {
        let d = self.load_dir(dir)?;
        if let Some(done) = self.new_child(dir, name, fid)? {
            return Ok(done);
        }
        let child = new_vnode(
            fid.unique,
            FileType::Directory,
            new.mode,
            new.uid,
            new.gid,
            self.time,
        );
        Ok(self.plan_insert(dir, d, name, fid, child))
    }

    /// SYMLINK: the target (1..=4096 bytes) is stored in the object's record.
    pub(crate) fn symlink(
        &self,
        dir: Fid,
        name: &Name,
        fid: Fid,
        new: &NewObject,
        target: &[u8],
    ) -> Result<Plan<'static>, Fail> {
        let d = self.load_dir(dir)?;
        if target.is_empty() || target.len() > MAX_SYMLINK_TARGET {
            return Err(FsError::Invalid.into());
        }
        if let Some(done) = self.new_child(dir, name, fid)? {
            return Ok(done);
        }
        let mut child = new_vnode(
            fid.unique,
            FileType::Symlink,
            new.mode,
            new.uid,
            new.gid,
            self.time,
        );
        child.target = target.to_vec();
        child.size = target.len() as u64;
        Ok(self.plan_insert(dir, d, name, fid, child))
    }

    /// MKNOD: a FIFO, a socket's name or a device node (the device number is in its
    /// type); nothing but its name and attributes.
    pub(crate) fn mknod(
        &self,
        dir: Fid,
        name: &Name,
        fid: Fid,
        new: &NewObject,
        kind: FileType,
    ) -> Result<Plan<'static>, Fail> {
        let d = self.load_dir(dir)?;
        if !kind.is_special() {
            return Err(FsError::Invalid.into());
        }
        if let Some(done) = self.new_child(dir, name, fid)? {
            return Ok(done);
        }
        let child = new_vnode(fid.unique, kind, new.mode, new.uid, new.gid, self.time);
        Ok(self.plan_insert(dir, d, name, fid, child))
    }

    /// An object this update removes, stamped by it: its tombstone carries that version.
    fn doomed(&self, fid: Fid) -> Result<(Fid, Vnode), Fail> {
        let mut v = self.load(fid)?;
        self.stamp(&mut v);
        Ok((fid, v))
    }

    /// Removes `name -> entry` from directory record `d`.
    fn drop_entry(&self, d: &mut Vnode, name: &Name, entry: Dirent) {
        d.size = d.size.saturating_sub(1);
        if entry.ftype == FileType::Directory {
            d.subdirs = d.subdirs.saturating_sub(1);
        }
        d.digest.remove(&entry_member(name, entry.fid));
    }

    /// The entry `name` of `dir`, which must lead to `fid` (rule 6): another object there
    /// means this replica and the client's view differ.
    fn expected_entry(&self, dir: Fid, name: &Name, fid: Fid) -> Result<Dirent, Fail> {
        let entry = self.entry(dir, name)?.ok_or(FsError::NotFound)?;
        if entry.fid != fid {
            return Err(FsError::Diverged.into());
        }
        Ok(entry)
    }

    /// REMOVE of a non-directory's name: the object goes (its blocks freed, a tombstone
    /// left) with its last name, and otherwise keeps its other names.
    pub(crate) fn remove(&self, dir: Fid, name: &Name, fid: Fid) -> Result<Plan<'static>, Fail> {
        let mut d = self.load_dir(dir)?;
        let entry = self.expected_entry(dir, name, fid)?;
        if entry.ftype == FileType::Directory {
            return Err(FsError::IsDir.into());
        }
        self.drop_entry(&mut d, name, entry);
        self.touch(&mut d, true);
        let mut plan = Plan {
            unlink: vec![(dir, name.clone())],
            put: vec![(dir, d)],
            ..Plan::default()
        };
        self.unname(&mut plan, entry.fid, (dir.vnode, name.as_bytes().to_vec()))?;
        Ok(plan)
    }

    /// Takes the name `place` from `fid` in `plan` (its entry is already dropped): the
    /// object is deleted with its last name, or keeps the others with a new ctime.
    fn unname(&self, plan: &mut Plan<'static>, fid: Fid, place: Place) -> Result<(), Fail> {
        let mut v = self.load(fid)?;
        if v.name_count() > 1 {
            v.remove_place(&place);
            self.touch(&mut v, false);
            plan.put.push((fid, v));
        } else {
            plan.delete.push(self.doomed(fid)?);
        }
        Ok(())
    }

    /// LINK: gives the non-directory `fid` the further name `name` in `dir`. A name that
    /// already leads to `fid` (resolution brought the link first) is answered as done.
    pub(crate) fn link(&self, dir: Fid, name: &Name, fid: Fid) -> Result<Plan<'static>, Fail> {
        if fid.volume != dir.volume {
            return Err(FsError::CrossDevice.into());
        }
        let mut d = self.load_dir(dir)?;
        let mut v = self.load(fid)?;
        if v.ftype == FileType::Directory {
            return Err(FsError::IsDir.into());
        }
        if let Some(existing) = self.entry(dir, name)? {
            if existing.fid == fid {
                return Ok(Plan::answer_only(None));
            }
            return Err(FsError::Exists.into());
        }
        if v.name_count() >= codetta_wire::MAX_LINKS as usize {
            return Err(FsError::TooManyLinks.into());
        }
        d.size += 1;
        d.digest.add(&entry_member(name, fid));
        self.touch(&mut d, true);
        v.add_place((dir.vnode, name.as_bytes().to_vec()));
        self.touch(&mut v, false);
        let ftype = v.ftype;
        Ok(Plan {
            link: vec![(dir, name.clone(), Dirent { fid, ftype })],
            put: vec![(dir, d), (fid, v)],
            ..Plan::default()
        })
    }

    /// RMDIR of an empty directory.
    pub(crate) fn rmdir(&self, dir: Fid, name: &Name, fid: Fid) -> Result<Plan<'static>, Fail> {
        let mut d = self.load_dir(dir)?;
        let entry = self.expected_entry(dir, name, fid)?;
        if entry.ftype != FileType::Directory {
            return Err(FsError::NotDir.into());
        }
        if self.load(entry.fid)?.size > 0 {
            return Err(FsError::NotEmpty.into());
        }
        self.drop_entry(&mut d, name, entry);
        self.touch(&mut d, true);
        Ok(Plan {
            unlink: vec![(dir, name.clone())],
            delete: vec![self.doomed(entry.fid)?],
            put: vec![(dir, d)],
            ..Plan::default()
        })
    }

    /// True if directory vnode `ancestor` is `dir` or on the parent chain above it.
    fn is_ancestor(&self, ancestor: u64, dir: Fid) -> Result<bool, Fail> {
        let mut cur = dir.vnode;
        for _ in 0..MAX_DEPTH {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == Fid::ROOT_VNODE {
                return Ok(false);
            }
            use redb::ReadableTable;
            let g = self
                .t
                .vnodes
                .get((dir.volume.0, cur))
                .map_err(super::StoreError::from)?
                .ok_or_else(|| {
                    super::StoreError::Inconsistent(format!(
                        "directory {cur:x} has a missing parent"
                    ))
                })?;
            let v: Vnode = super::codec::decode("vnodes", g.value())?;
            cur = v.parent;
        }
        Err(super::StoreError::Inconsistent(format!(
            "parent chain above {dir} does not reach the root"
        ))
        .into())
    }

    /// RENAME: moves `from_dir/from_name` to `to_dir/to_name`, replacing a compatible target
    /// (a file by a non-directory, an empty directory by a directory).
    pub(crate) fn rename(
        &self,
        from_dir: Fid,
        from_name: &Name,
        to_dir: Fid,
        to_name: &Name,
        fid: Fid,
        replaces: Option<Fid>,
    ) -> Result<Plan<'static>, Fail> {
        if from_dir.volume != to_dir.volume {
            return Err(FsError::Invalid.into());
        }
        let same_dir = from_dir == to_dir;
        let mut fd = self.load_dir(from_dir)?;
        let mut td = if same_dir {
            None
        } else {
            Some(self.load_dir(to_dir)?)
        };
        let src = self.expected_entry(from_dir, from_name, fid)?;
        if same_dir && from_name == to_name {
            return Ok(Plan::default());
        }
        let is_dir = src.ftype == FileType::Directory;
        if is_dir && self.is_ancestor(src.fid.vnode, to_dir)? {
            return Err(FsError::Invalid.into());
        }
        let mut moved = self.load(src.fid)?;
        let mut plan = Plan::default();
        let target = self.entry(to_dir, to_name)?;
        if target.map(|t| t.fid) != replaces {
            return Err(FsError::Diverged.into());
        }
        if let Some(target) = target {
            if target.fid == src.fid {
                // Two names of one file (the client saw it so): nothing to do (POSIX).
                return Ok(Plan::default());
            }
            match (is_dir, target.ftype == FileType::Directory) {
                (true, false) => return Err(FsError::NotDir.into()),
                (false, true) => return Err(FsError::IsDir.into()),
                (true, true) if self.load(target.fid)?.size > 0 => {
                    return Err(FsError::Exists.into());
                }
                _ => {}
            }
            self.drop_entry(td.as_mut().unwrap_or(&mut fd), to_name, target);
            plan.unlink.push((to_dir, to_name.clone()));
            self.unname(
                &mut plan,
                target.fid,
                (to_dir.vnode, to_name.as_bytes().to_vec()),
            )?;
        }
        self.drop_entry(&mut fd, from_name, src);
        plan.unlink.push((from_dir, from_name.clone()));

        let dest = td.as_mut().unwrap_or(&mut fd);
        dest.size += 1;
        if is_dir {
            dest.subdirs += 1;
        }
        dest.digest.add(&entry_member(to_name, src.fid));
        plan.link.push((to_dir, to_name.clone(), src));

        moved.replace_place(
            &(from_dir.vnode, from_name.as_bytes().to_vec()),
            (to_dir.vnode, to_name.as_bytes().to_vec()),
        );
        self.touch(&mut moved, false);
        self.touch(&mut fd, true);
        plan.put.push((from_dir, fd));
        if let Some(mut td) = td {
            self.touch(&mut td, true);
            plan.put.push((to_dir, td));
        }
        plan.put.push((src.fid, moved));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
