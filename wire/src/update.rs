//! Update records: every mutation, named by an update id, with fids and times assigned by
//! the client. The client's modify log holds these; servers apply each at most once.

use crate::attrs::{FileType, SetAttrs, Time};
use crate::error::FsError;
use crate::ids::{Fid, Incarnation, ReplicaId, UpdateId, VolumeId};
use crate::name::Name;
use serde::{Deserialize, Serialize};

/// Owner and permission bits of a new object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewObject {
    /// Permission bits (including setuid/setgid/sticky), without the type bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

/// How CREATE treats an existing name (RFC 1813 `createmode3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateHow {
    /// An existing regular file is reused (and truncated if the record says so).
    Unchecked {
        /// An existing file is cut to zero bytes.
        truncate: bool,
    },
    /// An existing name is an error.
    Guarded,
    /// An existing name is an error unless it was made by the same verifier (a resend).
    Exclusive([u8; 8]),
}

/// One mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Creates regular file `fid` named `name` in `dir`; `how` says what an existing name does.
    Create {
        /// The directory the entry goes in.
        dir: Fid,
        /// The new entry's name.
        name: Name,
        /// The fid the client assigned the new file (an existing file may be used instead).
        fid: Fid,
        /// Its owner and permission bits.
        new: NewObject,
        /// What to do when the name is taken.
        how: CreateHow,
    },
    /// Makes the empty directory `fid` named `name` in `dir`.
    Mkdir {
        /// The directory the entry goes in.
        dir: Fid,
        /// The new entry's name.
        name: Name,
        /// The fid the client assigned the new object.
        fid: Fid,
        /// Its owner and permission bits.
        new: NewObject,
    },
    /// Makes the symbolic link `fid` named `name` in `dir`, pointing at `target`.
    Symlink {
        /// The directory the entry goes in.
        dir: Fid,
        /// The new entry's name.
        name: Name,
        /// The fid the client assigned the new object.
        fid: Fid,
        /// Its owner and permission bits.
        new: NewObject,
        /// The link's target path, as bytes.
        target: Vec<u8>,
    },
    /// Removes the non-directory `fid` named `name` in `dir`. A replica where the name
    /// leads elsewhere refuses with `Diverged` (rule 6: a remove needs name -> fid to match).
    Remove {
        /// The directory holding the name.
        dir: Fid,
        /// The name to remove.
        name: Name,
        /// The object the client saw under the name.
        fid: Fid,
    },
    /// Removes the empty directory `fid` named `name` in `dir` (same matching rule).
    Rmdir {
        /// The directory holding the name.
        dir: Fid,
        /// The name to remove.
        name: Name,
        /// The directory the client saw under the name.
        fid: Fid,
    },
    /// Moves `fid` from `from_dir/from_name` to `to_dir/to_name`, replacing the compatible
    /// target `replaces` (`None`: the client saw no target). A replica where either name
    /// leads elsewhere refuses with `Diverged`.
    Rename {
        /// The directory the name leaves.
        from_dir: Fid,
        /// The name it leaves.
        from_name: Name,
        /// The directory the name goes to.
        to_dir: Fid,
        /// The name it gets there.
        to_name: Name,
        /// The object moved.
        fid: Fid,
        /// The object the move replaces under the target name (`None`: the client saw none).
        replaces: Option<Fid>,
    },
    /// Changes the attributes of `fid` as `set` says.
    SetAttr {
        /// The object changed.
        fid: Fid,
        /// The attributes to change.
        set: SetAttrs,
    },
    /// Writes `len` bytes at `offset`. The bytes travel in the frame's data section, in
    /// record order; `hashes` are the blake3 digests of their pieces ([`write_pieces`]),
    /// checked by the server, which keys a whole block's chunk by its piece's hash: one
    /// hashing pass over the data on each side.
    Write {
        /// The file written.
        fid: Fid,
        /// Byte offset in the file of the first byte written.
        offset: u64,
        /// Bytes written.
        len: u32,
        /// The blake3 digest of each piece of the data, in order.
        hashes: Vec<[u8; 32]>,
    },
    /// Makes a FIFO, a socket's name or a device node (`kind` must be special). Last, so
    /// that records of the other kinds keep their encoding.
    Mknod {
        /// The directory the entry goes in.
        dir: Fid,
        /// The new entry's name.
        name: Name,
        /// The fid the client assigned the new object.
        fid: Fid,
        /// Its owner and permission bits.
        new: NewObject,
        /// The kind of object: FIFO, socket, or character or block device.
        kind: FileType,
    },
    /// Gives the non-directory `fid` a further name `name` in `dir` (a hard link): one
    /// object, several entries, `nlink` of them. After `Mknod`, so that records of the
    /// other kinds keep their encoding.
    Link {
        /// The directory the new name goes in.
        dir: Fid,
        /// The new name.
        name: Name,
        /// The existing object that gets the name.
        fid: Fid,
    },
}

/// The pieces of a write of `len` bytes at file offset `offset`: ranges of its data split
/// where a block of [`crate::BLOCK_SIZE`] starts, in order (none for an empty write; one
/// for a write that would pass the largest offset, which servers refuse).
pub fn write_pieces(offset: u64, len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let block = crate::BLOCK_SIZE;
    let overflows = offset.checked_add(len as u64).is_none();
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= len {
            return None;
        }
        let pos = offset.wrapping_add(at as u64);
        let room = if overflows {
            len - at
        } else {
            usize::try_from(block - pos % block)
                .unwrap_or(usize::MAX)
                .min(len - at)
        };
        let piece = at..at + room;
        at += room;
        Some(piece)
    })
}

/// The blake3 digest of each piece of `data` written at `offset` ([`write_pieces`]).
pub fn piece_hashes(offset: u64, data: &[u8]) -> Vec<[u8; 32]> {
    write_pieces(offset, data.len())
        .map(|r| *blake3::hash(&data[r]).as_bytes())
        .collect()
}

impl Op {
    /// The object whose data or attributes this op changes, or the directory it edits.
    pub fn target(&self) -> Fid {
        match self {
            Op::Create { dir, .. }
            | Op::Mkdir { dir, .. }
            | Op::Symlink { dir, .. }
            | Op::Mknod { dir, .. }
            | Op::Link { dir, .. }
            | Op::Remove { dir, .. }
            | Op::Rmdir { dir, .. } => *dir,
            Op::Rename { from_dir, .. } => *from_dir,
            Op::SetAttr { fid, .. } | Op::Write { fid, .. } => *fid,
        }
    }

    /// The object the op makes, changes, moves, names or removes (its `fid`): what a
    /// client's records chain on ([`crate::Request::Ship`]'s `follows`).
    pub fn object(&self) -> Fid {
        match self {
            Op::Create { fid, .. }
            | Op::Mkdir { fid, .. }
            | Op::Symlink { fid, .. }
            | Op::Mknod { fid, .. }
            | Op::Link { fid, .. }
            | Op::Remove { fid, .. }
            | Op::Rmdir { fid, .. }
            | Op::Rename { fid, .. }
            | Op::SetAttr { fid, .. }
            | Op::Write { fid, .. } => *fid,
        }
    }

    /// The file a rename replaces a name of (a rename over an existing name of another
    /// object). Its client's records chain on it too ([`Follows::replaced`]).
    pub fn replaced(&self) -> Option<Fid> {
        match self {
            Op::Rename { replaces, fid, .. } => replaces.filter(|r| r != fid),
            _ => None,
        }
    }

    /// Every object this op is a link of its client's chain on: [`Op::object`], and the
    /// file it replaces a name of ([`Op::replaced`]).
    pub fn chained(&self) -> impl Iterator<Item = Fid> {
        std::iter::once(self.object()).chain(self.replaced())
    }

    /// Bytes of data that travel with this op.
    pub fn data_len(&self) -> usize {
        match self {
            Op::Write { len, .. } => *len as usize,
            _ => 0,
        }
    }
}

/// A record's predecessors ([`crate::Request::Ship`]'s `follows`): the sequence numbers of
/// the same client incarnation's previous records on the objects it chains on. A replica
/// that did not apply one of them (missed or refused it) and has not had it from
/// resolution refuses the record with `Diverged`: applied to an older state, it would make
/// a version of the object nobody ever wrote. A rename over one of a file's names chains on
/// that file too: otherwise a replica that missed the rename took a later write to the file
/// over a state still holding the name, and one that missed a change of the file took the
/// rename over a state without that change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follows {
    /// On [`Op::object`] (`None`: none known, no check).
    pub object: Option<u64>,
    /// On [`Op::replaced`], for a rename over an existing name.
    pub replaced: Option<u64>,
}

/// A mutation as logged and shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// The update's id: the client's incarnation and the record's sequence number.
    pub id: UpdateId,
    /// The client's clock when the call was made: becomes mtime/ctime on every replica.
    pub time: Time,
    /// The mutation.
    pub op: Op,
}

/// What a server did with one record: `Ok` carries the fid a create resolved to (an
/// existing file for an unchecked or resent exclusive create), or `None`.
pub type RecordOutcome = Result<Option<Fid>, FsError>;

/// The second phase of an update (rule 2): the records `first..=last` of one client
/// incarnation in `volume` were applied by exactly the replicas in `applied_by`. A replica
/// that applied them counts the others' updates in its version vectors; one that missed
/// them keeps a dominated vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cop2 {
    /// The client incarnation whose records these are.
    pub incarnation: Incarnation,
    /// The volume the records belong to.
    pub volume: VolumeId,
    /// Sequence number of the first record in the run.
    pub first: u64,
    /// Sequence number of the last record in the run (inclusive).
    pub last: u64,
    /// The replicas that applied every record of the run.
    pub applied_by: Vec<ReplicaId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BLOCK_SIZE;

    #[test]
    fn a_write_is_cut_where_blocks_start() {
        let b = BLOCK_SIZE as usize;
        let pieces = |offset: u64, len: usize| write_pieces(offset, len).collect::<Vec<_>>();
        assert_eq!(pieces(0, 0), vec![]);
        assert_eq!(pieces(0, 2 * b), vec![0..b, b..2 * b]);
        assert_eq!(pieces(10, 5), vec![0..5]);
        assert_eq!(pieces(BLOCK_SIZE - 3, 10), vec![0..3, 3..10]);
        assert_eq!(pieces(BLOCK_SIZE, b + 1), vec![0..b, b..b + 1]);
        // A write past the largest offset is one piece (servers refuse it).
        assert_eq!(pieces(u64::MAX - 1, 10), vec![0..10]);
        let data: Vec<u8> = (0..3 * b).map(|i| (i % 7) as u8).collect();
        let hashes = piece_hashes(100, &data);
        assert_eq!(hashes.len(), 4);
        assert_eq!(
            hashes[1],
            *blake3::hash(&data[b - 100..2 * b - 100]).as_bytes()
        );
    }
}
