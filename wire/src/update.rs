//! Update records: every mutation, named by an update id, with fids and times assigned by
//! the client. The client's modify log holds these; servers apply each at most once.

use crate::attrs::{SetAttrs, Time};
use crate::error::FsError;
use crate::ids::{Fid, UpdateId};
use crate::name::Name;
use serde::{Deserialize, Serialize};

/// Owner and permission bits of a new object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewObject {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// How CREATE treats an existing name (RFC 1813 `createmode3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateHow {
    /// An existing regular file is reused (and truncated if the record says so).
    Unchecked { truncate: bool },
    /// An existing name is an error.
    Guarded,
    /// An existing name is an error unless it was made by the same verifier (a resend).
    Exclusive([u8; 8]),
}

/// One mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Create {
        dir: Fid,
        name: Name,
        fid: Fid,
        new: NewObject,
        how: CreateHow,
    },
    Mkdir {
        dir: Fid,
        name: Name,
        fid: Fid,
        new: NewObject,
    },
    Symlink {
        dir: Fid,
        name: Name,
        fid: Fid,
        new: NewObject,
        target: Vec<u8>,
    },
    /// Removes a non-directory.
    Remove {
        dir: Fid,
        name: Name,
    },
    /// Removes an empty directory.
    Rmdir {
        dir: Fid,
        name: Name,
    },
    /// Moves `from_dir/from_name` to `to_dir/to_name`, replacing a compatible target.
    Rename {
        from_dir: Fid,
        from_name: Name,
        to_dir: Fid,
        to_name: Name,
    },
    SetAttr {
        fid: Fid,
        set: SetAttrs,
    },
    /// Writes `len` bytes at `offset`. The bytes travel in the frame's data section, in
    /// record order; `hash` is their blake3 digest, checked by the server.
    Write {
        fid: Fid,
        offset: u64,
        len: u32,
        hash: [u8; 32],
    },
}

impl Op {
    /// The object whose data or attributes this op changes, or the directory it edits.
    pub fn target(&self) -> Fid {
        match self {
            Op::Create { dir, .. }
            | Op::Mkdir { dir, .. }
            | Op::Symlink { dir, .. }
            | Op::Remove { dir, .. }
            | Op::Rmdir { dir, .. } => *dir,
            Op::Rename { from_dir, .. } => *from_dir,
            Op::SetAttr { fid, .. } | Op::Write { fid, .. } => *fid,
        }
    }

    /// Bytes of data that travel with this op.
    pub fn data_len(&self) -> usize {
        match self {
            Op::Write { len, .. } => *len as usize,
            _ => 0,
        }
    }
}

/// A mutation as logged and shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub id: UpdateId,
    /// The client's clock when the call was made: becomes mtime/ctime on every replica.
    pub time: Time,
    pub op: Op,
}

/// What a server did with one record: `Ok` carries the fid a create resolved to (an
/// existing file for an unchecked or resent exclusive create), or `None`.
pub type RecordOutcome = Result<Option<Fid>, FsError>;
