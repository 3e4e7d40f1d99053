//! What the NFS procedures ask of a file system: one trait, so the same front end serves
//! Codetta ([`CodettaFs`]) and, in the bench, an in-memory file system (the front end's own
//! cost, with nothing behind it). Objects are fids, attributes Codetta's; every check a
//! call needs (permissions, names, types) is the backend's, as are the statuses.

use crate::nfs::creds::Caller;
use crate::nfs::dir::{DirPager, Entry};
use crate::nfs::{CodettaFs, Place, Stability};
use bytes::Bytes;
use codetta_oncrpc::nfs3 as args;
use codetta_wire::message::SpaceInfo;
use codetta_wire::{Attrs, Fid, FileType};
use nfs3_types::nfs3::nfsstat3;
use std::future::Future;

/// A result the procedures turn into a reply.
pub type Res<T> = Result<T, nfsstat3>;

/// A directory's entries after a cookie, one at a time.
pub trait DirPages: Send {
    /// The next entry, or `None` at the end of the directory.
    fn next(&mut self) -> impl Future<Output = Res<Option<Entry>>> + Send;
}

/// The file system behind the NFS procedures (see `front::nfs` for what each call
/// answers with it).
pub trait Backend: Send + Sync + 'static {
    type Pager: DirPages;

    fn getattr(&self, fid: &Fid) -> impl Future<Output = Res<Attrs>> + Send;
    /// SETATTR; `guard` is the ctime the caller expects. The attributes after.
    fn setattr(
        &self,
        caller: &Caller,
        fid: &Fid,
        set: &args::SetAttrs,
        guard: Option<(u32, u32)>,
    ) -> impl Future<Output = Res<Attrs>> + Send;
    fn lookup(
        &self,
        caller: &Caller,
        dir: &Fid,
        name: &[u8],
    ) -> impl Future<Output = Res<Fid>> + Send;
    /// The parent of `dir` for a listing's `..` (may be remembered rather than asked).
    fn listed_parent(&self, dir: &Fid) -> impl Future<Output = Res<Fid>> + Send;
    /// ACCESS: the bits of `asked` granted, and the object's attributes.
    fn access(
        &self,
        caller: &Caller,
        fid: &Fid,
        asked: u32,
    ) -> impl Future<Output = Res<(u32, Attrs)>> + Send;
    fn readlink(&self, fid: &Fid) -> impl Future<Output = Res<(Vec<u8>, Attrs)>> + Send;
    /// READ: the bytes (in pieces, written to the caller as they are), whether they reach
    /// the end of the file, the attributes.
    fn read(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> impl Future<Output = Res<(Vec<Bytes>, bool, Attrs)>> + Send;
    /// WRITE: the attributes after, and how the data was kept.
    fn write(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        data: Bytes,
        how: Stability,
    ) -> impl Future<Output = Res<(Attrs, Stability)>> + Send;
    fn create(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        how: &args::CreateHow,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send;
    fn mkdir(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send;
    fn symlink(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
        target: &[u8],
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send;
    fn mknod(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        kind: FileType,
        attrs: &args::SetAttrs,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send;
    /// LINK: the file's attributes after.
    fn link(
        &self,
        caller: &Caller,
        fid: &Fid,
        place: &Place<'_>,
    ) -> impl Future<Output = Res<Attrs>> + Send;
    /// REMOVE (`directory` false) or RMDIR.
    fn remove(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        directory: bool,
    ) -> impl Future<Output = Res<()>> + Send;
    fn rename(
        &self,
        caller: &Caller,
        from: &Place<'_>,
        to: &Place<'_>,
    ) -> impl Future<Output = Res<()>> + Send;
    /// READDIR and READDIRPLUS: the entries after `cookie`, and the directory's attributes.
    fn open_dir(
        &self,
        caller: &Caller,
        dir: &Fid,
        cookie: u64,
    ) -> impl Future<Output = Res<(Self::Pager, Attrs)>> + Send;
    fn fsstat(&self, fid: &Fid) -> impl Future<Output = Res<(SpaceInfo, Attrs)>> + Send;
    /// COMMIT: everything written to `fid` is durable; its attributes after.
    fn commit(&self, fid: &Fid) -> impl Future<Output = Res<Attrs>> + Send;
}

impl DirPages for DirPager {
    fn next(&mut self) -> impl Future<Output = Res<Option<Entry>>> + Send {
        DirPager::next(self)
    }
}

impl Backend for CodettaFs {
    type Pager = DirPager;

    fn getattr(&self, fid: &Fid) -> impl Future<Output = Res<Attrs>> + Send {
        CodettaFs::getattr(self, fid)
    }
    fn setattr(
        &self,
        caller: &Caller,
        fid: &Fid,
        set: &args::SetAttrs,
        guard: Option<(u32, u32)>,
    ) -> impl Future<Output = Res<Attrs>> + Send {
        CodettaFs::setattr(self, caller, fid, set, guard)
    }
    fn lookup(
        &self,
        caller: &Caller,
        dir: &Fid,
        name: &[u8],
    ) -> impl Future<Output = Res<Fid>> + Send {
        CodettaFs::lookup(self, caller, dir, name)
    }
    fn listed_parent(&self, dir: &Fid) -> impl Future<Output = Res<Fid>> + Send {
        CodettaFs::listed_parent(self, dir)
    }
    fn access(
        &self,
        caller: &Caller,
        fid: &Fid,
        asked: u32,
    ) -> impl Future<Output = Res<(u32, Attrs)>> + Send {
        CodettaFs::access(self, caller, fid, asked)
    }
    fn readlink(&self, fid: &Fid) -> impl Future<Output = Res<(Vec<u8>, Attrs)>> + Send {
        CodettaFs::readlink(self, fid)
    }
    fn read(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> impl Future<Output = Res<(Vec<Bytes>, bool, Attrs)>> + Send {
        CodettaFs::read(self, caller, fid, offset, count)
    }
    fn write(
        &self,
        caller: &Caller,
        fid: &Fid,
        offset: u64,
        data: Bytes,
        how: Stability,
    ) -> impl Future<Output = Res<(Attrs, Stability)>> + Send {
        CodettaFs::write(self, caller, fid, offset, data, how)
    }
    fn create(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        how: &args::CreateHow,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send {
        CodettaFs::create(self, caller, place, how)
    }
    fn mkdir(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send {
        CodettaFs::mkdir(self, caller, place, attrs)
    }
    fn symlink(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        attrs: &args::SetAttrs,
        target: &[u8],
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send {
        CodettaFs::symlink(self, caller, place, attrs, target)
    }
    fn mknod(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        kind: FileType,
        attrs: &args::SetAttrs,
    ) -> impl Future<Output = Res<(Fid, Attrs)>> + Send {
        CodettaFs::mknod(self, caller, place, kind, attrs)
    }
    fn link(
        &self,
        caller: &Caller,
        fid: &Fid,
        place: &Place<'_>,
    ) -> impl Future<Output = Res<Attrs>> + Send {
        CodettaFs::link(self, caller, fid, place)
    }
    fn remove(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        directory: bool,
    ) -> impl Future<Output = Res<()>> + Send {
        CodettaFs::remove(self, caller, place, directory)
    }
    fn rename(
        &self,
        caller: &Caller,
        from: &Place<'_>,
        to: &Place<'_>,
    ) -> impl Future<Output = Res<()>> + Send {
        CodettaFs::rename(self, caller, from, to)
    }
    fn open_dir(
        &self,
        caller: &Caller,
        dir: &Fid,
        cookie: u64,
    ) -> impl Future<Output = Res<(DirPager, Attrs)>> + Send {
        CodettaFs::open_dir(self, caller, dir, cookie)
    }
    fn fsstat(&self, fid: &Fid) -> impl Future<Output = Res<(SpaceInfo, Attrs)>> + Send {
        CodettaFs::fsstat(self, fid)
    }
    fn commit(&self, fid: &Fid) -> impl Future<Output = Res<Attrs>> + Send {
        CodettaFs::commit(self, fid)
    }
}
