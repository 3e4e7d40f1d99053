//! The file system as NFSv3 calls see it, on [`VolumeClient`]: every check a call needs before it
//! reaches the modify log or a server (permissions with the caller's credential, names,
//! object types), the error table (`status`), and every durability decision (rule 1).
//! Calls come from the front end (`crate::front`), which decodes and encodes them; here
//! objects are fids and attributes are Codetta's.

pub mod attrs;
pub mod creds;
pub mod dir;
pub mod handle;
pub mod perm;
pub mod status;

use crate::error::ClientError;
use crate::volume_client::VolumeClient;
use crate::volumes::Volumes;
use attrs::{nfs_time, set_attrs, times_now};
use bytes::Bytes;
use codetta_oncrpc::nfs3 as args;
use codetta_wire::message::{ObjectState, SpaceInfo};
use codetta_wire::update::{CreateHow, Op};
use codetta_wire::{Attrs, Fid, FileType, FsError, Name, SetAttrs};
use creds::Caller;
use dir::DirPager;
use handle::EXPORT_ROOT;
use nfs3_types::nfs3::nfsstat3;
use status::{name_status, nfs_status};
use std::sync::Arc;

/// Largest READ and WRITE the endpoint advertises.
pub const MAX_IO: u32 = 1 << 20;
/// Longest name in a directory (as the servers allow).
pub const MAX_NAME_LEN: u32 = 255;
/// Longest symbolic link target.
pub const MAX_TARGET_LEN: usize = 4096;

pub(crate) fn err(e: ClientError) -> nfsstat3 {
    let status = nfs_status(&e);
    if status == nfsstat3::NFS3ERR_IO {
        tracing::warn!("NFS call failed: {e}");
    }
    status
}

fn name(bytes: &[u8]) -> Result<Name, nfsstat3> {
    Name::new(bytes.to_vec()).map_err(name_status)
}

/// How a WRITE is to be kept before it is answered (`stable_how`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stability {
    /// Held in memory until COMMIT (or logged and shipped behind): answered at once.
    Unstable,
    /// On the servers (rule 1) before the answer.
    Stable,
}

/// The file system served at the export's `/`: every volume of the cluster, entered
/// from the root volume through mount points.
pub struct CodettaFs {
    volumes: Arc<Volumes>,
    /// Parents of directories met by LOOKUP: the `..` entry of a listing takes its fileid
    /// from here instead of asking a server for every listing. A hint (another client's
    /// rename may leave it behind until the entry is met again); LOOKUP of `..` always asks.
    parents: std::sync::Mutex<std::collections::HashMap<Fid, Fid>>,
}

/// Most parents remembered (the map is emptied when it fills).
const MAX_PARENTS: usize = 65_536;

impl CodettaFs {
    pub fn new(volumes: Arc<Volumes>) -> CodettaFs {
        CodettaFs {
            volumes,
            parents: Default::default(),
        }
    }

    fn parents(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Fid, Fid>> {
        self.parents.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_parent(&self, dir: Fid, parent: Fid) {
        let mut parents = self.parents();
        if parents.len() >= MAX_PARENTS {
            parents.clear();
        }
        parents.insert(dir, parent);
    }

    /// The parent a listing's `..` shows: the one last met, or the server's.
    pub async fn listed_parent(&self, dir: &Fid) -> Result<Fid, nfsstat3> {
        if let Some(parent) = self.parents().get(dir) {
            return Ok(*parent);
        }
        self.parent_of(dir).await
    }

    /// The object a fid stands for (the export's root is the current root volume's
    /// root) and the VolumeClient of its volume.
    async fn open(&self, fid: &Fid) -> Result<(Fid, Arc<VolumeClient>), nfsstat3> {
        let fid = if *fid == EXPORT_ROOT {
            self.volumes.root().await.map_err(err)?
        } else {
            *fid
        };
        let volume_client = self.volumes.get(fid.volume).await.map_err(err)?;
        Ok((fid, volume_client))
    }

    /// The VolumeClient of `fid`'s volume.
    async fn volume_client(&self, fid: &Fid) -> Result<Arc<VolumeClient>, nfsstat3> {
        Ok(self.open(fid).await?.1)
    }

    /// The fid a real object is shown under: the current root volume's root is the
    /// export's root.
    async fn outward(&self, fid: Fid) -> Fid {
        match self.volumes.root().await {
            Ok(root) if root == fid => EXPORT_ROOT,
            _ => fid,
        }
    }

    /// An object's attributes.
    pub async fn getattr(&self, fid: &Fid) -> Result<Attrs, nfsstat3> {
        let (real, volume_client) = self.open(fid).await?;
        let mut attrs = volume_client.getattr(&real).await.map_err(err)?;
        if *fid == EXPORT_ROOT {
            // A switch of root volumes shows as a change of the root directory.
            let switched = self.volumes.root_switched();
            if (switched.secs, switched.nanos) > (attrs.mtime.secs, attrs.mtime.nanos) {
                attrs.mtime = switched;
                attrs.ctime = switched;
            }
        }
        Ok(attrs)
    }

    /// The directory's attributes, checked to be a directory the caller may modify.
    async fn writable_dir(&self, caller: &Caller, dir: &Fid) -> Result<Attrs, nfsstat3> {
        let attrs = self.getattr(dir).await?;
        perm::may_create_in(caller, &attrs)?;
        Ok(attrs)
    }

    /// Logs a namespace or attribute change and waits until the server applied it; the
    /// fid a create resolved to, if any.
    async fn apply(&self, volume_client: &VolumeClient, op: Op) -> Result<Option<Fid>, nfsstat3> {
        volume_client
            .submit_and_wait(op, Bytes::new())
            .await
            .map_err(err)
    }

    /// The entry `name` of `dir`, checked removable by `caller` (write and search on the
    /// directory, the sticky-bit rule): the start of REMOVE, RMDIR and RENAME.
    async fn unlinkable(
        &self,
        caller: &Caller,
        dir: &Fid,
        name: &Name,
    ) -> Result<ObjectState, nfsstat3> {
        let dir_attrs = self.writable_dir(caller, dir).await?;
        let child = self
            .volume_client(dir)
            .await?
            .lookup_to_change(dir, name)
            .await
            .map_err(err)?;
        perm::may_unlink(caller, &dir_attrs, &child.attrs)?;
        Ok(child)
    }

    /// Common start of CREATE, MKDIR and SYMLINK: a valid name, the directory (a real
    /// fid) and its attributes, checked modifiable by the caller, its volume's VolumeClient, and
    /// a fresh fid in that volume.
    async fn prepare_new(&self, caller: &Caller, place: &Place<'_>) -> Result<NewIn, nfsstat3> {
        let name = name(place.name)?;
        let (dir, volume_client) = self.open(&place.dir).await?;
        let dir_attrs = self.writable_dir(caller, &dir).await?;
        let fid = volume_client.alloc_fid(dir.volume).map_err(err)?;
        Ok(NewIn {
            name,
            dir,
            dir_attrs,
            volume_client,
            fid,
        })
    }

    /// SETATTR: each change checked against the caller, then applied; the attributes
    /// after. `guard` is the ctime the caller expects (`NOT_SYNC` when it differs).
    pub async fn setattr(
        &self,
        caller: &Caller,
        fid: &Fid,
        set: &args::SetAttrs,
        guard: Option<(u32, u32)>,
    ) -> Result<Attrs, nfsstat3> {
        if let Some((secs, nsecs)) = guard {
            let ctime = nfs_time(self.getattr(fid).await?.ctime);
            if (ctime.seconds, ctime.nseconds) != (secs, nsecs) {
                return Err(nfsstat3::NFS3ERR_NOT_SYNC);
            }
        }
        self.setattr_checked(caller, fid, set_attrs(set), times_now(set))
            .await?;
        self.getattr(fid).await
    }

    /// A SETATTR as `perm::setattr` decides it, applied when anything changes.
    async fn setattr_checked(
        &self,
        caller: &Caller,
        fid: &Fid,
        asked: SetAttrs,
        times_now: bool,
    ) -> Result<(), nfsstat3> {
        if asked.is_empty() {
            return Ok(());
        }
        let (fid, volume_client) = self.open(fid).await?;
        let attrs = self.getattr(&fid).await?;
        let set = perm::setattr(caller, &attrs, &asked, times_now)?;
        if set.is_empty() {
            return Ok(());
        }
        if set.size.is_some() {
            volume_client.track_attrs(&fid).await.map_err(err)?;
        }
        self.apply(&volume_client, Op::SetAttr { fid, set }).await?;
        Ok(())
    }

    /// LOOKUP: the fid `name` stands for in `dir` (`.` and `..` included; a mount point is
    /// the root of the volume it mounts).
    pub async fn lookup(
        &self,
        caller: &Caller,
        dir: &Fid,
        name_bytes: &[u8],
    ) -> Result<Fid, nfsstat3> {
        perm::may_lookup(caller, &self.getattr(dir).await?)?;
        let (real, volume_client) = self.open(dir).await?;
        match name_bytes {
            b"." => return Ok(*dir),
            b".." => return self.parent_of(dir).await,
            _ => {}
        }
        let name = name(name_bytes)?;
        let state = volume_client.lookup(&real, &name).await.map_err(err)?;
        if state.attrs.ftype == FileType::Symlink
            && let Some(root) = self
                .volumes
                .follow(&volume_client, real, &state.fid)
                .await
                .map_err(err)?
        {
            return Ok(self.outward(root).await);
        }
        let found = self.outward(state.fid).await;
        if state.attrs.ftype == FileType::Directory {
            self.remember_parent(found, *dir);
        }
        Ok(found)
    }

    /// The directory `..` of `dir` leads to: the export's root is its own parent, a
    /// volume's root the directory it was entered from.
    pub async fn parent_of(&self, dir: &Fid) -> Result<Fid, nfsstat3> {
        if *dir == EXPORT_ROOT {
            return Ok(*dir);
        }
        let (real, volume_client) = self.open(dir).await?;
        if real.vnode == Fid::ROOT_VNODE {
            let above = self.volumes.mounted_at(real.volume).unwrap_or(EXPORT_ROOT);
            return Ok(self.outward(above).await);
        }
        let parent = self
            .outward(volume_client.parent(&real).await.map_err(err)?)
            .await;
        self.remember_parent(*dir, parent);
        Ok(parent)
    }

    /// ACCESS: which of the `asked` ACCESS3 bits the caller holds, and the attributes.
    pub async fn access(
        &self,
        caller: &Caller,
        fid: &Fid,
        asked: u32,
    ) -> Result<(u32, Attrs), nfsstat3> {
        let attrs = self.getattr(fid).await?;
        Ok((perm::access(caller, &attrs, asked), attrs))
    }

    /// READ: up to `count` bytes at `offset` (whether they reach the end), and the
    /// attributes they were read under.
    pub async fn read(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<Bytes>, bool, Attrs), nfsstat3> {
        let attrs = self.getattr(fid).await?;
        match attrs.ftype {
            FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
            FileType::Regular => {}
            _ => return Err(nfsstat3::NFS3ERR_INVAL),
        }
        perm::may_read(caller, &attrs)?;
        let (real, volume_client) = self.open(fid).await?;
        let (attrs, data, eof) = volume_client
            .read(&real, offset, count.min(MAX_IO))
            .await
            .map_err(err)?;
        Ok((data, eof, attrs))
    }

    /// WRITE: `data` at `offset`, kept as `how` asks; the attributes after and how it
    /// was kept.
    pub async fn write(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        data: Bytes,
        how: Stability,
    ) -> Result<(Attrs, Stability), nfsstat3> {
        let len = u32::try_from(data.len()).map_err(|_| nfsstat3::NFS3ERR_INVAL)?;
        if offset
            .checked_add(u64::from(len))
            .is_none_or(|end| end > u64::MAX >> 1)
        {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let (real, volume_client) = self.open(fid).await?;
        let attrs = volume_client.track_attrs(&real).await.map_err(err)?;
        match attrs.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
            _ => return Err(nfsstat3::NFS3ERR_INVAL),
        }
        perm::may_write(caller, &attrs)?;
        // A write drops the file's privileges (setuid, setgid): a record right behind it.
        let dropped = perm::after_write(caller, &attrs).map(|mode| Op::SetAttr {
            fid: real,
            set: SetAttrs {
                mode: Some(mode),
                ..SetAttrs::default()
            },
        });
        if how == Stability::Unstable && dropped.is_none() {
            // Held in memory until COMMIT (the verifier changes at each start).
            volume_client
                .hold_write(real, offset, data)
                .await
                .map_err(err)?;
            return Ok((self.getattr(fid).await?, how));
        }
        let op = Op::Write {
            fid: real,
            offset,
            len,
            hashes: codetta_wire::update::piece_hashes(offset, &data),
        };
        let ops = std::iter::once((op, data)).chain(dropped.map(|op| (op, Bytes::new())));
        for (op, data) in ops {
            match how {
                Stability::Unstable => {
                    volume_client.submit(op, data).await.map_err(err)?;
                }
                Stability::Stable => {
                    volume_client.submit_and_wait(op, data).await.map_err(err)?;
                }
            }
        }
        Ok((self.getattr(fid).await?, how))
    }

    /// CREATE: a regular file `place.name` in `place.dir`; the file (an existing one for
    /// UNCHECKED and for a resent EXCLUSIVE) and its attributes.
    pub async fn create(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        how: &args::CreateHow,
    ) -> Result<(Fid, Attrs), nfsstat3> {
        let NewIn {
            name,
            dir,
            dir_attrs,
            volume_client,
            fid,
        } = self.prepare_new(caller, place).await?;
        // An existing file UNCHECKED reuses is truncated by the checked SETATTR below (write
        // permission, privileges dropped), never by the create record itself.
        let (mode, how, attrs) = match how {
            args::CreateHow::Unchecked(a) => (
                a.mode.unwrap_or(0o644),
                CreateHow::Unchecked { truncate: false },
                Some(a),
            ),
            args::CreateHow::Guarded(a) => (a.mode.unwrap_or(0o644), CreateHow::Guarded, Some(a)),
            args::CreateHow::Exclusive(verf) => (0o600, CreateHow::Exclusive(*verf), None),
        };
        let op = Op::Create {
            dir,
            name,
            fid,
            new: perm::new_object(caller, &dir_attrs, mode, false),
            how,
        };
        let created = self.apply(&volume_client, op).await?.unwrap_or(fid);
        if let Some(attrs) = attrs {
            // What the create itself did not set: the mode and owner went with it.
            let mut rest = set_attrs(attrs);
            rest.mode = None;
            if created == fid {
                // A new file is empty and the caller's already.
                rest.size = rest.size.filter(|s| *s != 0);
                rest.uid = rest.uid.filter(|u| *u != caller.uid);
            }
            self.setattr_checked(caller, &created, rest, times_now(attrs))
                .await?;
        }
        Ok((created, self.getattr(&created).await?))
    }

    /// MKDIR: a directory with the caller's mode (the parent's setgid inherited).
    pub async fn mkdir(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
    ) -> Result<(Fid, Attrs), nfsstat3> {
        let mode = attrs.mode.unwrap_or(0o755);
        self.make(caller, place, mode, true, |dir, name, fid, new| Op::Mkdir {
            dir,
            name,
            fid,
            new,
        })
        .await
    }

    /// SYMLINK: a symbolic link to `target`.
    pub async fn symlink(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
        target: &[u8],
    ) -> Result<(Fid, Attrs), nfsstat3> {
        if target.is_empty() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        if target.len() > MAX_TARGET_LEN {
            return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
        }
        let mode = attrs.mode.unwrap_or(0o777);
        let target = target.to_vec();
        self.make(caller, place, mode, false, |dir, name, fid, new| {
            Op::Symlink {
                dir,
                name,
                fid,
                new,
                target,
            }
        })
        .await
    }

    /// MKNOD: a FIFO, a socket's name or a device node (`perm::may_mknod`).
    pub async fn mknod(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        kind: FileType,
        attrs: &args::SetAttrs,
    ) -> Result<(Fid, Attrs), nfsstat3> {
        if !kind.is_special() {
            return Err(nfsstat3::NFS3ERR_BADTYPE);
        }
        perm::may_mknod(caller, kind)?;
        let mode = attrs.mode.unwrap_or(0o644);
        self.make(caller, place, mode, false, |dir, name, fid, new| {
            Op::Mknod {
                dir,
                name,
                fid,
                new,
                kind,
            }
        })
        .await
    }

    /// MKDIR, SYMLINK and MKNOD: a new object of the caller's with `mode` (owner and group
    /// as `perm::new_object` decides), made by the record `op` builds, and its attributes.
    async fn make(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        mode: u32,
        is_dir: bool,
        op: impl FnOnce(Fid, Name, Fid, codetta_wire::update::NewObject) -> Op,
    ) -> Result<(Fid, Attrs), nfsstat3> {
        let NewIn {
            name,
            dir,
            dir_attrs,
            volume_client,
            fid,
        } = self.prepare_new(caller, place).await?;
        let new = perm::new_object(caller, &dir_attrs, mode, is_dir);
        self.apply(&volume_client, op(dir, name, fid, new)).await?;
        Ok((fid, self.getattr(&fid).await?))
    }

    /// READLINK: a symbolic link's target (a mount point's shows the volume it mounts).
    pub async fn readlink(&self, fid: &Fid) -> Result<(Vec<u8>, Attrs), nfsstat3> {
        let attrs = self.getattr(fid).await?;
        if attrs.ftype != FileType::Symlink {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let (real, volume_client) = self.open(fid).await?;
        let target = self
            .volumes
            .target(&volume_client, &real)
            .await
            .map_err(err)?;
        Ok((target, attrs))
    }

    /// LINK: the non-directory `fid` gets the further name `place` in its volume (write
    /// and search permission on the directory, as for a create; XDEV across volumes).
    /// The file's attributes after (nlink counts the new name).
    pub async fn link(
        &self,
        caller: &Caller,
        fid: &Fid,
        place: &Place<'_>,
    ) -> Result<Attrs, nfsstat3> {
        let name = name(place.name)?;
        let (file, _) = self.open(fid).await?;
        let (dir, volume_client) = self.open(&place.dir).await?;
        if file.volume != dir.volume {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        if self.getattr(&file).await?.ftype == FileType::Directory {
            // As Linux's vfs_link: a directory has one name.
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        self.writable_dir(caller, &dir).await?;
        match volume_client.lookup_to_change(&dir, &name).await {
            Ok(_) => return Err(nfsstat3::NFS3ERR_EXIST),
            Err(ClientError::Fs(FsError::NotFound)) => {}
            Err(e) => return Err(err(e)),
        }
        self.apply(
            &volume_client,
            Op::Link {
                dir,
                name,
                fid: file,
            },
        )
        .await?;
        self.getattr(&file).await
    }

    /// REMOVE (`directory` false) or RMDIR (true) of `place.name`.
    pub async fn remove(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        directory: bool,
    ) -> Result<(), nfsstat3> {
        let name = name(place.name)?;
        let (dir, volume_client) = self.open(&place.dir).await?;
        let child = self.unlinkable(caller, &dir, &name).await?;
        let is_dir = child.attrs.ftype == FileType::Directory;
        let op = match (directory, is_dir) {
            (false, false) => Op::Remove {
                dir,
                name,
                fid: child.fid,
            },
            (true, true) => {
                self.parents().remove(&child.fid);
                Op::Rmdir {
                    dir,
                    name,
                    fid: child.fid,
                }
            }
            (false, true) => return Err(nfsstat3::NFS3ERR_ISDIR),
            (true, false) => return Err(nfsstat3::NFS3ERR_NOTDIR),
        };
        self.apply(&volume_client, op).await?;
        Ok(())
    }

    /// RENAME within one volume (XDEV across volumes).
    pub async fn rename(
        &self,
        caller: &Caller,
        from: &Place<'_>,
        to: &Place<'_>,
    ) -> Result<(), nfsstat3> {
        let from_name = name(from.name)?;
        let to_name = name(to.name)?;
        let (from_dir, volume_client) = self.open(&from.dir).await?;
        let (to_dir_fid, _) = self.open(&to.dir).await?;
        if from_dir.volume != to_dir_fid.volume {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        let moved = self.unlinkable(caller, &from_dir, &from_name).await?;
        let to_dir = self.writable_dir(caller, &to_dir_fid).await?;
        // An existing target is replaced, so it must be removable too; only "absent" is
        // fine to ignore here.
        let replaces = match volume_client.lookup_to_change(&to_dir_fid, &to_name).await {
            Ok(target) => {
                perm::may_unlink(caller, &to_dir, &target.attrs)?;
                Some(target.fid)
            }
            Err(ClientError::Fs(FsError::NotFound)) => None,
            Err(e) => return Err(err(e)),
        };
        if moved.attrs.ftype == FileType::Directory {
            // Its `..` changes: the moved directory must be writable too (as Linux has it).
            if from_dir != to_dir_fid {
                perm::may_write(caller, &moved.attrs)?;
            }
            self.parents().remove(&moved.fid);
        }
        let op = Op::Rename {
            from_dir,
            from_name,
            to_dir: to_dir_fid,
            to_name,
            fid: moved.fid,
            replaces,
        };
        self.apply(&volume_client, op).await?;
        Ok(())
    }

    /// READDIR and READDIRPLUS: the directory's entries after `cookie`, checked readable
    /// by the caller, and the directory's attributes.
    pub async fn open_dir(
        &self,
        caller: &Caller,
        dir: &Fid,
        cookie: u64,
    ) -> Result<(DirPager, Attrs), nfsstat3> {
        let attrs = self.getattr(dir).await?;
        perm::may_list(caller, &attrs)?;
        let (real, volume_client) = self.open(dir).await?;
        let root = self.volumes.root().await.map_err(err)?;
        let pager = DirPager::new(volume_client, self.volumes.clone(), real, root, cookie);
        Ok((pager, attrs))
    }

    /// FSSTAT: the space of the store holding `fid`'s volume, as the replica it is read
    /// from reports it (its configured capacity, or its disk), and `fid`'s attributes.
    pub async fn fsstat(&self, fid: &Fid) -> Result<(SpaceInfo, Attrs), nfsstat3> {
        let attrs = self.getattr(fid).await?;
        let (real, volume_client) = self.open(fid).await?;
        let space = volume_client.space(real.volume).await.map_err(err)?;
        Ok((space, attrs))
    }

    /// COMMIT: everything written to `fid` is on the servers (rule 1).
    pub async fn commit(&self, fid: &Fid) -> Result<Attrs, nfsstat3> {
        let (real, volume_client) = self.open(fid).await?;
        volume_client.commit(&real).await.map_err(err)?;
        self.getattr(fid).await
    }
}

/// A name in a directory, as a call names it.
pub struct Place<'a> {
    pub dir: Fid,
    pub name: &'a [u8],
}

/// Where a new object goes: see [`CodettaFs::prepare_new`].
struct NewIn {
    name: Name,
    dir: Fid,
    dir_attrs: Attrs,
    volume_client: Arc<VolumeClient>,
    fid: Fid,
}
