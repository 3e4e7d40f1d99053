//! Conversions between Codetta attributes and NFSv3 attributes.

use codetta_oncrpc::nfs3::{self as args, SetTime};
use codetta_wire::{Attrs, Fid, FileType, SetAttrs, Time};
use nfs3_types::nfs3::{fattr3, ftype3, nfstime3, specdata3};

pub fn nfs_time(t: Time) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.secs.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nanos,
    }
}

fn our_time(secs: u32, nsecs: u32) -> Time {
    Time {
        secs: i64::from(secs),
        nanos: nsecs.min(999_999_999),
    }
}

/// The one fsid of the export: every volume (mounted through mount points, or the root)
/// shows as one file system, so `find` and `tar` cross mount points.
pub const EXPORT_FSID: u64 = 0x436f_6474;

/// The NFS fileid of `fid`, unique across every volume of the export: the vnode (unique in
/// its volume) XOR a 64-bit hash of the volume (a bijection within each volume; volumes
/// differ by their hashes).
pub fn fileid(fid: &Fid) -> u64 {
    if *fid == super::handle::EXPORT_ROOT {
        return 1;
    }
    let h = blake3::hash(&fid.volume.0.to_le_bytes());
    let mut mix = [0u8; 8];
    mix.copy_from_slice(&h.as_bytes()[..8]);
    fid.vnode ^ u64::from_le_bytes(mix)
}

/// NFS attributes of `fid`: the export's fsid, a fileid unique across volumes.
pub fn fattr(fid: &Fid, a: &Attrs) -> fattr3 {
    let (type_, rdev) = match a.ftype {
        FileType::Regular => (ftype3::NF3REG, (0, 0)),
        FileType::Directory => (ftype3::NF3DIR, (0, 0)),
        FileType::Symlink => (ftype3::NF3LNK, (0, 0)),
        FileType::Fifo => (ftype3::NF3FIFO, (0, 0)),
        FileType::Socket => (ftype3::NF3SOCK, (0, 0)),
        FileType::CharDevice { major, minor } => (ftype3::NF3CHR, (major, minor)),
        FileType::BlockDevice { major, minor } => (ftype3::NF3BLK, (major, minor)),
    };
    fattr3 {
        type_,
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size.div_ceil(4096) * 4096,
        rdev: specdata3 {
            specdata1: rdev.0,
            specdata2: rdev.1,
        },
        fsid: EXPORT_FSID,
        fileid: fileid(fid),
        atime: nfs_time(a.atime),
        mtime: nfs_time(a.mtime),
        ctime: nfs_time(a.ctime),
    }
}

/// A SETATTR's (or a create's) changes; "server time" is this client's clock (servers
/// never stamp times).
pub fn set_attrs(s: &args::SetAttrs) -> SetAttrs {
    let now = Time::now();
    let time = |t: SetTime| match t {
        SetTime::DontChange => None,
        SetTime::ServerTime => Some(now),
        SetTime::Client { secs, nsecs } => Some(our_time(secs, nsecs)),
    };
    SetAttrs {
        mode: s.mode.map(|m| m & 0o7777),
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: time(s.atime),
        mtime: time(s.mtime),
    }
}

/// Whether the times a SETATTR sets are "now" (none given as a value by the caller):
/// setting those needs only write permission.
pub fn times_now(s: &args::SetAttrs) -> bool {
    ![s.atime, s.mtime]
        .iter()
        .any(|t| matches!(t, SetTime::Client { .. }))
}
