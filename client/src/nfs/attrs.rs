//! Conversions between Codetta attributes and NFSv3 attributes.

use codetta_wire::{Attrs, Fid, FileType, SetAttrs, Time};
use nfs3_server::nfs3_types::nfs3::{
    Nfs3Option, fattr3, ftype3, nfstime3, sattr3, set_atime, set_mtime, specdata3,
};

fn nfs_time(t: Time) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.secs.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nanos,
    }
}

fn our_time(t: nfstime3) -> Time {
    Time {
        secs: i64::from(t.seconds),
        nanos: t.nseconds.min(999_999_999),
    }
}

/// NFS attributes of `fid`: one fsid per volume, fileid = vnode (unique within a volume).
pub fn fattr(fid: &Fid, a: &Attrs) -> fattr3 {
    let type_ = match a.ftype {
        FileType::Regular => ftype3::NF3REG,
        FileType::Directory => ftype3::NF3DIR,
        FileType::Symlink => ftype3::NF3LNK,
    };
    fattr3 {
        type_,
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size.div_ceil(4096) * 4096,
        rdev: specdata3::default(),
        fsid: u64::from(fid.volume.0),
        fileid: fid.vnode,
        atime: nfs_time(a.atime),
        mtime: nfs_time(a.mtime),
        ctime: nfs_time(a.ctime),
    }
}

/// A SETATTR's changes; "server time" is this client's clock (servers never stamp times).
pub fn set_attrs(s: &sattr3) -> SetAttrs {
    let now = Time::now();
    let opt = |o: &Nfs3Option<u32>| match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    };
    SetAttrs {
        mode: opt(&s.mode).map(|m| m & 0o7777),
        uid: opt(&s.uid),
        gid: opt(&s.gid),
        size: match s.size {
            Nfs3Option::Some(v) => Some(v),
            Nfs3Option::None => None,
        },
        atime: match s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => Some(now),
            set_atime::SET_TO_CLIENT_TIME(t) => Some(our_time(t)),
        },
        mtime: match s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => Some(now),
            set_mtime::SET_TO_CLIENT_TIME(t) => Some(our_time(t)),
        },
    }
}
