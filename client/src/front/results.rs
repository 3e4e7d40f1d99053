//! The XDR of NFSv3 results (RFC 1813): attributes, the optional attributes and handles
//! that follow most statuses, and weak cache consistency data. Written into the reply
//! behind the RPC header; nothing here reads what a peer sent.

use crate::nfs::attrs::fattr;
use crate::nfs::handle;
use codetta_oncrpc::XdrWriter;
use codetta_wire::{Attrs, Fid};
use nfs3_types::nfs3::{fattr3, nfsstat3};

/// Bytes of an encoded `fattr3`.
pub const FATTR_LEN: usize = 84;
/// Bytes of a `post_op_attr` with attributes.
pub const POST_OP_ATTR_LEN: usize = 4 + FATTR_LEN;
/// Bytes of a `post_op_fh3` with a handle.
pub const POST_OP_FH_LEN: usize = 4 + 4 + handle::HANDLE_LEN;

pub fn status(w: &mut XdrWriter, s: nfsstat3) {
    w.u32(s as u32);
}

pub fn fattr3(w: &mut XdrWriter, a: &fattr3) {
    w.u32(a.type_ as u32)
        .u32(a.mode)
        .u32(a.nlink)
        .u32(a.uid)
        .u32(a.gid)
        .u64(a.size)
        .u64(a.used)
        .u32(a.rdev.specdata1)
        .u32(a.rdev.specdata2)
        .u64(a.fsid)
        .u64(a.fileid);
    for t in [a.atime, a.mtime, a.ctime] {
        w.u32(t.seconds).u32(t.nseconds);
    }
}

/// `post_op_attr`: the object's attributes when known.
pub fn post_op_attr(w: &mut XdrWriter, object: Option<(&Fid, &Attrs)>) {
    match object {
        Some((fid, attrs)) => {
            w.bool(true);
            fattr3(w, &fattr(fid, attrs));
        }
        None => {
            w.bool(false);
        }
    }
}

/// `wcc_data` with no attributes before (the client then treats its cache as possibly
/// stale, which is always safe) and the attributes after when known.
pub fn wcc_data(w: &mut XdrWriter, after: Option<(&Fid, &Attrs)>) {
    w.bool(false);
    post_op_attr(w, after);
}

/// `nfs_fh3`: an object's handle.
pub fn handle(w: &mut XdrWriter, fid: &Fid) {
    w.opaque(&handle::encode(fid));
}

/// `post_op_fh3` with the handle.
pub fn post_op_fh(w: &mut XdrWriter, fid: &Fid) {
    w.bool(true);
    handle(w, fid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::{FileType, Time, VolumeId};

    #[test]
    fn lengths_match_what_is_written() {
        let fid = Fid {
            volume: VolumeId(2),
            vnode: 9,
            unique: 1,
        };
        let attrs = Attrs {
            ftype: FileType::Regular,
            mode: 0o644,
            uid: 1,
            gid: 2,
            size: 3,
            nlink: 1,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
        };
        let mut w = XdrWriter::new();
        post_op_attr(&mut w, Some((&fid, &attrs)));
        assert_eq!(w.len(), POST_OP_ATTR_LEN);
        let mut w = XdrWriter::new();
        post_op_fh(&mut w, &fid);
        assert_eq!(w.len(), POST_OP_FH_LEN);
    }
}
