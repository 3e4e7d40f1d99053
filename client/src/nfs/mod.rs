//! The NFSv3 adapter: nfs3_server's file-system traits implemented on [`Venus`].
//!
//! What nfs3_server does for us: RPC framing, MOUNT and NFS on one TCP port, XDR, duplicate
//! request detection, handle encoding (with our fixed generation), READDIR paging by cookie.
//! What we do around it: permission checks with the caller's credential (see `creds`),
//! name validation, the error table (`status`), and every durability decision (rule 1).

mod attrs;
pub mod creds;
mod dir;
pub mod handle;
mod perm;
pub mod status;

use crate::error::ClientError;
use crate::venus::Venus;
use crate::volumes::Volumes;
use attrs::{fattr, set_attrs};
use bytes::Bytes;
use codetta_wire::message::ObjectState;
use codetta_wire::update::{CreateHow, NewObject, Op};
use codetta_wire::{Attrs, Fid, FileType, FsError, Name, SetAttrs};
use creds::{Caller, CallerTable};
use dir::DirPager;
use handle::{EXPORT_ROOT, FidHandle};
use nfs3_server::nfs3_types::nfs3::{
    FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_SYMLINK, FSINFO3resok, Nfs3Option, createverf3, fattr3,
    filename3, nfspath3, nfsstat3, nfstime3, post_op_attr, sattr3, stable_how,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::vfs::{NfsFileSystem, NfsReadFileSystem, ReadDirIterator, ReadDirPlusIterator};
use perm::{EXEC, READ, WRITE, check, check_owner, check_unlink};
use status::{name_status, nfs_status};
use std::sync::Arc;

/// Largest READ and WRITE the endpoint advertises.
const MAX_IO: u32 = 1 << 20;

fn err(e: ClientError) -> nfsstat3 {
    let status = nfs_status(&e);
    if status == nfsstat3::NFS3ERR_IO {
        tracing::warn!("NFS call failed: {e}");
    }
    status
}

fn name(filename: &filename3<'_>) -> Result<Name, nfsstat3> {
    Name::new(filename.as_ref().to_vec()).map_err(name_status)
}

/// The file system served at the export's `/`: every volume of the cluster, entered
/// from the root volume through mount points.
pub struct CodettaFs {
    volumes: Arc<Volumes>,
    callers: CallerTable,
}

impl CodettaFs {
    pub fn new(volumes: Arc<Volumes>) -> CodettaFs {
        CodettaFs {
            volumes,
            callers: CallerTable::default(),
        }
    }

    fn caller(&self) -> Caller {
        self.callers.current()
    }

    /// The object a handle's fid stands for (the export's root is the current root
    /// volume's root) and the Venus of its volume.
    async fn open(&self, fid: &Fid) -> Result<(Fid, Arc<Venus>), nfsstat3> {
        let fid = if *fid == EXPORT_ROOT {
            self.volumes.root().await.map_err(err)?
        } else {
            *fid
        };
        let venus = self.volumes.get(fid.volume).await.map_err(err)?;
        Ok((fid, venus))
    }

    /// The Venus of `fid`'s volume (`fid` a real object, not the export's root).
    async fn venus(&self, fid: &Fid) -> Result<Arc<Venus>, nfsstat3> {
        Ok(self.open(fid).await?.1)
    }

    /// The handle a real object is shown under: the current root volume's root is the
    /// export's root.
    async fn outward(&self, fid: Fid) -> FidHandle {
        match self.volumes.root().await {
            Ok(root) if root == fid => FidHandle::new(EXPORT_ROOT),
            _ => FidHandle::new(fid),
        }
    }

    async fn attrs(&self, fid: &Fid) -> Result<Attrs, nfsstat3> {
        let (real, venus) = self.open(fid).await?;
        let mut attrs = venus.getattr(&real).await.map_err(err)?;
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

    async fn fattr(&self, fid: &Fid) -> Result<fattr3, nfsstat3> {
        Ok(fattr(fid, &self.attrs(fid).await?))
    }

    /// The directory's attributes, checked to be a directory the caller may modify.
    async fn writable_dir(&self, caller: &Caller, dir: &Fid) -> Result<Attrs, nfsstat3> {
        let attrs = self.attrs(dir).await?;
        if attrs.ftype != FileType::Directory {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        check(caller, &attrs, WRITE | EXEC)?;
        Ok(attrs)
    }

    /// Owner of a new object: the caller, with the directory's group under setgid.
    fn new_object(caller: &Caller, dir: &Attrs, mode: u32) -> NewObject {
        let gid = if dir.mode & 0o2000 != 0 {
            dir.gid
        } else {
            caller.gid
        };
        NewObject {
            mode: mode & 0o7777,
            uid: caller.uid,
            gid,
        }
    }

    /// Logs a namespace or attribute change and waits until the server applied it; the
    /// fid a create resolved to, if any.
    async fn apply(&self, venus: &Venus, op: Op) -> Result<Option<Fid>, nfsstat3> {
        venus.submit_and_wait(op, Bytes::new()).await.map_err(err)
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
            .venus(dir)
            .await?
            .lookup_to_change(dir, name)
            .await
            .map_err(err)?;
        check_unlink(caller, &dir_attrs, &child.attrs)?;
        Ok(child)
    }

    /// Common start of CREATE, MKDIR and SYMLINK: the caller, a valid name, the directory
    /// (a real fid) and its attributes, checked modifiable by the caller, its volume's
    /// Venus, and a fresh fid in that volume.
    async fn prepare_new(
        &self,
        dirid: &FidHandle,
        filename: &filename3<'_>,
    ) -> Result<NewIn, nfsstat3> {
        let caller = self.caller();
        let name = name(filename)?;
        let (dir, venus) = self.open(&dirid.fid).await?;
        let dir_attrs = self.writable_dir(&caller, &dir).await?;
        let fid = venus.alloc_fid(dir.volume).map_err(err)?;
        Ok(NewIn {
            caller,
            name,
            dir,
            dir_attrs,
            venus,
            fid,
        })
    }

    async fn setattr_checked(
        &self,
        caller: &Caller,
        fid: &Fid,
        set: SetAttrs,
    ) -> Result<(), nfsstat3> {
        if set.is_empty() {
            return Ok(());
        }
        let (fid, venus) = self.open(fid).await?;
        let fid = &fid;
        let attrs = self.attrs(fid).await?;
        if set.mode.is_some() || set.uid.is_some_and(|u| u != attrs.uid) {
            check_owner(caller, &attrs)?;
        }
        if set.uid.is_some_and(|u| u != attrs.uid) && caller.uid != 0 {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        if let Some(gid) = set.gid.filter(|g| *g != attrs.gid) {
            check_owner(caller, &attrs)?;
            if caller.uid != 0 && !caller.in_group(gid) {
                return Err(nfsstat3::NFS3ERR_PERM);
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            // Setting times to "now" needs write permission; to a given value, ownership.
            if check_owner(caller, &attrs).is_err() {
                check(caller, &attrs, WRITE)?;
            }
        }
        if set.size.is_some() {
            match attrs.ftype {
                FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
                FileType::Symlink => return Err(nfsstat3::NFS3ERR_INVAL),
                FileType::Regular => check(caller, &attrs, WRITE)?,
            }
            venus.track_attrs(fid).await.map_err(err)?;
        }
        let op = Op::SetAttr { fid: *fid, set };
        self.apply(&venus, op).await?;
        Ok(())
    }
}

/// Where a new object goes: see [`CodettaFs::prepare_new`].
struct NewIn {
    caller: Caller,
    name: Name,
    dir: Fid,
    dir_attrs: Attrs,
    venus: Arc<Venus>,
    fid: Fid,
}

impl NfsReadFileSystem for CodettaFs {
    type Handle = FidHandle;

    fn root_dir(&self) -> FidHandle {
        FidHandle::new(EXPORT_ROOT)
    }

    fn authorize(&self, auth: Option<&auth_unix>) -> bool {
        let caller = match auth {
            Some(a) => Caller {
                uid: a.uid,
                gid: a.gid,
                gids: a.gids.clone(),
            },
            None => Caller::nobody(),
        };
        self.callers.set(caller);
        true
    }

    async fn lookup(
        &self,
        dirid: &FidHandle,
        filename: &filename3<'_>,
    ) -> Result<FidHandle, nfsstat3> {
        let caller = self.caller();
        let dir = self.attrs(&dirid.fid).await?;
        if dir.ftype != FileType::Directory {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        check(&caller, &dir, EXEC)?;
        let (real, venus) = self.open(&dirid.fid).await?;
        match filename.as_ref() {
            b"." => return Ok(*dirid),
            b".." => {
                if dirid.fid == EXPORT_ROOT {
                    return Ok(*dirid);
                }
                if real.vnode == Fid::ROOT_VNODE {
                    // A volume's root: `..` is where it was entered from.
                    let above = self.volumes.mounted_at(real.volume).unwrap_or(EXPORT_ROOT);
                    return Ok(self.outward(above).await);
                }
                let parent = venus.parent(&real).await.map_err(err)?;
                return Ok(self.outward(parent).await);
            }
            _ => {}
        }
        let name = name(filename)?;
        let state = venus.lookup(&real, &name).await.map_err(err)?;
        if state.attrs.ftype == FileType::Symlink
            && let Some(root) = self
                .volumes
                .follow(&venus, real, &state.fid)
                .await
                .map_err(err)?
        {
            return Ok(self.outward(root).await);
        }
        Ok(self.outward(state.fid).await)
    }

    async fn getattr(&self, id: &FidHandle) -> Result<fattr3, nfsstat3> {
        self.fattr(&id.fid).await
    }

    async fn read(
        &self,
        id: &FidHandle,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let caller = self.caller();
        let attrs = self.attrs(&id.fid).await?;
        match attrs.ftype {
            FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
            FileType::Symlink => return Err(nfsstat3::NFS3ERR_INVAL),
            FileType::Regular => {}
        }
        if !perm::allowed(&caller, &attrs, READ) {
            check(&caller, &attrs, EXEC)?;
        }
        let (fid, venus) = self.open(&id.fid).await?;
        let (_, data, eof) = venus
            .read(&fid, offset, count.min(MAX_IO))
            .await
            .map_err(err)?;
        // Without a copy when the bytes are the read's own (assembled from cached blocks).
        Ok((Vec::from(data), eof))
    }

    async fn readdir(
        &self,
        dirid: &FidHandle,
        cookie: u64,
    ) -> Result<impl ReadDirIterator, nfsstat3> {
        self.open_dir(dirid, cookie, false).await
    }

    async fn readdirplus(
        &self,
        dirid: &FidHandle,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<FidHandle>, nfsstat3> {
        self.open_dir(dirid, cookie, true).await
    }

    async fn readlink(&self, id: &FidHandle) -> Result<nfspath3<'_>, nfsstat3> {
        let attrs = self.attrs(&id.fid).await?;
        if attrs.ftype != FileType::Symlink {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let (fid, venus) = self.open(&id.fid).await?;
        let target = self.volumes.target(&venus, &fid).await.map_err(err)?;
        Ok(nfspath3::from(target))
    }

    async fn fsinfo(&self, root: &FidHandle) -> Result<FSINFO3resok, nfsstat3> {
        let attrs = self.fattr(&root.fid).await?;
        Ok(FSINFO3resok {
            obj_attributes: post_op_attr::Some(attrs),
            rtmax: MAX_IO,
            rtpref: MAX_IO,
            rtmult: 4096,
            wtmax: MAX_IO,
            wtpref: MAX_IO,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: u64::MAX >> 1,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
        })
    }
}

impl CodettaFs {
    async fn open_dir(
        &self,
        dirid: &FidHandle,
        cookie: u64,
        plus: bool,
    ) -> Result<DirPager, nfsstat3> {
        let caller = self.caller();
        let attrs = self.attrs(&dirid.fid).await?;
        if attrs.ftype != FileType::Directory {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        check(&caller, &attrs, READ)?;
        let (dir, venus) = self.open(&dirid.fid).await?;
        let root = self.volumes.root().await.map_err(err)?;
        Ok(DirPager::new(
            venus,
            self.volumes.clone(),
            dir,
            root,
            cookie,
            plus,
        ))
    }
}

impl NfsFileSystem for CodettaFs {
    async fn setattr(&self, id: &FidHandle, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let caller = self.caller();
        self.setattr_checked(&caller, &id.fid, set_attrs(&setattr))
            .await?;
        self.fattr(&id.fid).await
    }

    async fn write(
        &self,
        id: &FidHandle,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        let caller = self.caller();
        let len = u32::try_from(data.len()).map_err(|_| nfsstat3::NFS3ERR_INVAL)?;
        if offset
            .checked_add(u64::from(len))
            .is_none_or(|end| end > u64::MAX >> 1)
        {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let (fid, venus) = self.open(&id.fid).await?;
        let attrs = venus.track_attrs(&fid).await.map_err(err)?;
        match attrs.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
            FileType::Symlink => return Err(nfsstat3::NFS3ERR_INVAL),
        }
        check(&caller, &attrs, WRITE)?;
        let op = Op::Write {
            fid,
            offset,
            len,
            hashes: codetta_wire::update::piece_hashes(offset, data),
        };
        let data = Bytes::copy_from_slice(data);
        let achieved = if stable == stable_how::UNSTABLE {
            venus.submit(op, data).await.map_err(err)?;
            stable_how::UNSTABLE
        } else {
            venus.submit_and_wait(op, data).await.map_err(err)?;
            stable_how::FILE_SYNC
        };
        Ok((self.fattr(&id.fid).await?, achieved))
    }

    async fn create(
        &self,
        dirid: &FidHandle,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> Result<(FidHandle, fattr3), nfsstat3> {
        let NewIn {
            caller,
            name,
            dir,
            dir_attrs,
            venus,
            fid,
        } = self.prepare_new(dirid, filename).await?;
        let mode = match attr.mode {
            Nfs3Option::Some(m) => m,
            Nfs3Option::None => 0o644,
        };
        let truncate = matches!(attr.size, Nfs3Option::Some(0));
        let op = Op::Create {
            dir,
            name,
            fid,
            new: Self::new_object(&caller, &dir_attrs, mode),
            how: CreateHow::Unchecked { truncate },
        };
        let created = self.apply(&venus, op).await?.unwrap_or(fid);
        let mut rest = set_attrs(&attr);
        rest.mode = None;
        if truncate {
            rest.size = None;
        }
        if created == fid {
            rest.uid = rest.uid.filter(|u| *u != caller.uid);
        }
        self.setattr_checked(&caller, &created, rest).await?;
        Ok((FidHandle::new(created), self.fattr(&created).await?))
    }

    async fn create_exclusive(
        &self,
        dirid: &FidHandle,
        filename: &filename3<'_>,
        createverf: createverf3,
    ) -> Result<FidHandle, nfsstat3> {
        let NewIn {
            caller,
            name,
            dir,
            dir_attrs,
            venus,
            fid,
        } = self.prepare_new(dirid, filename).await?;
        let op = Op::Create {
            dir,
            name,
            fid,
            new: Self::new_object(&caller, &dir_attrs, 0o600),
            how: CreateHow::Exclusive(createverf.0),
        };
        let created = self.apply(&venus, op).await?.unwrap_or(fid);
        Ok(FidHandle::new(created))
    }

    async fn mkdir(
        &self,
        dirid: &FidHandle,
        dirname: &filename3<'_>,
    ) -> Result<(FidHandle, fattr3), nfsstat3> {
        let NewIn {
            caller,
            name,
            dir,
            dir_attrs,
            venus,
            fid,
        } = self.prepare_new(dirid, dirname).await?;
        // nfs3_server 0.11 does not pass MKDIR's mode: new directories get 0755.
        let mut new = Self::new_object(&caller, &dir_attrs, 0o755);
        new.mode |= dir_attrs.mode & 0o2000;
        let op = Op::Mkdir {
            dir,
            name,
            fid,
            new,
        };
        self.apply(&venus, op).await?;
        Ok((FidHandle::new(fid), self.fattr(&fid).await?))
    }

    async fn remove(&self, dirid: &FidHandle, filename: &filename3<'_>) -> Result<(), nfsstat3> {
        let caller = self.caller();
        let name = name(filename)?;
        let (dir, venus) = self.open(&dirid.fid).await?;
        let child = self.unlinkable(&caller, &dir, &name).await?;
        // nfs3_server routes REMOVE and RMDIR to this one method.
        let op = if child.attrs.ftype == FileType::Directory {
            Op::Rmdir {
                dir,
                name,
                fid: child.fid,
            }
        } else {
            Op::Remove {
                dir,
                name,
                fid: child.fid,
            }
        };
        self.apply(&venus, op).await?;
        Ok(())
    }

    async fn rename<'a>(
        &self,
        from_dirid: &FidHandle,
        from_filename: &filename3<'a>,
        to_dirid: &FidHandle,
        to_filename: &filename3<'a>,
    ) -> Result<(), nfsstat3> {
        let caller = self.caller();
        let from_name = name(from_filename)?;
        let to_name = name(to_filename)?;
        let (from_dir, venus) = self.open(&from_dirid.fid).await?;
        let (to_dir_fid, _) = self.open(&to_dirid.fid).await?;
        if from_dir.volume != to_dir_fid.volume {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        let moved = self.unlinkable(&caller, &from_dir, &from_name).await?;
        let to_dir = self.writable_dir(&caller, &to_dir_fid).await?;
        // An existing target is replaced, so it must be removable too; only "absent" is
        // fine to ignore here.
        let replaces = match venus.lookup_to_change(&to_dir_fid, &to_name).await {
            Ok(target) => {
                check_unlink(&caller, &to_dir, &target.attrs)?;
                Some(target.fid)
            }
            Err(ClientError::Fs(FsError::NotFound)) => None,
            Err(e) => return Err(err(e)),
        };
        let op = Op::Rename {
            from_dir,
            from_name,
            to_dir: to_dir_fid,
            to_name,
            fid: moved.fid,
            replaces,
        };
        self.apply(&venus, op).await?;
        Ok(())
    }

    async fn symlink<'a>(
        &self,
        dirid: &FidHandle,
        linkname: &filename3<'a>,
        symlink: &nfspath3<'a>,
        attr: &sattr3,
    ) -> Result<(FidHandle, fattr3), nfsstat3> {
        let target = symlink.as_ref().to_vec();
        if target.is_empty() || target.len() > 4096 {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let NewIn {
            caller,
            name,
            dir,
            dir_attrs,
            venus,
            fid,
        } = self.prepare_new(dirid, linkname).await?;
        let mode = match attr.mode {
            Nfs3Option::Some(m) => m,
            Nfs3Option::None => 0o777,
        };
        let op = Op::Symlink {
            dir,
            name,
            fid,
            new: Self::new_object(&caller, &dir_attrs, mode),
            target,
        };
        self.apply(&venus, op).await?;
        Ok((FidHandle::new(fid), self.fattr(&fid).await?))
    }

    async fn commit(&self, id: &FidHandle, _offset: u64, _count: u32) -> Result<(), nfsstat3> {
        let (fid, venus) = self.open(&id.fid).await?;
        venus.commit(&fid).await.map_err(err)
    }
}
