//! Requests and replies. Each travels as one [`crate::Frame`] on its own QUIC stream.

use crate::attrs::Attrs;
use crate::error::FsError;
use crate::ids::{Fid, Incarnation, VolumeId};
use crate::name::Name;
use crate::tag::ContentTag;
use crate::update::{RecordOutcome, UpdateRecord};
use crate::version::VersionVector;
use serde::{Deserialize, Serialize};

/// A call from a client daemon (or an admin tool) to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness and identity.
    Hello,
    /// Allocates a fresh client incarnation (durably; never reused).
    NewIncarnation,
    /// Finds a volume by name.
    VolumeByName {
        name: String,
    },
    /// Creates a volume with a replica on this server (admin role).
    CreateVolume {
        name: String,
    },
    /// Lists the volumes this server holds (admin role).
    ListVolumes,
    GetAttr {
        fid: Fid,
    },
    Lookup {
        dir: Fid,
        name: Name,
    },
    /// The directory containing `dir` (a root is its own parent): LOOKUP of `..`.
    Parent {
        dir: Fid,
    },
    /// Entries after `cookie` (0 = from the start), at most `max_entries` of them.
    ReadDir {
        dir: Fid,
        cookie: u64,
        max_entries: u32,
        with_attrs: bool,
    },
    /// Up to `count` bytes at `offset`; the bytes come back in the data section.
    Read {
        fid: Fid,
        offset: u64,
        count: u32,
    },
    ReadLink {
        fid: Fid,
    },
    /// A sequenced batch from the client's modify log; write data in the data section.
    Ship {
        records: Vec<UpdateRecord>,
    },
    FsStat {
        volume: VolumeId,
    },
}

/// An object's replicated state as one replica holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    pub fid: Fid,
    pub attrs: Attrs,
    pub version: VersionVector,
    pub tag: ContentTag,
}

/// One directory entry in a READDIR reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: Name,
    pub cookie: u64,
    pub fid: Fid,
    pub state: Option<ObjectState>,
}

/// Summary of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub id: VolumeId,
    pub name: String,
    pub root: Fid,
}

/// Space figures of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub used_bytes: u64,
    pub files: u64,
}

/// A successful reply; errors travel as [`FsError`] in [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    Hello {
        server: String,
    },
    Incarnation {
        incarnation: Incarnation,
        unique: u32,
    },
    Volume(VolumeInfo),
    Volumes(Vec<VolumeInfo>),
    State(ObjectState),
    Dir {
        dir: ObjectState,
        entries: Vec<DirEntry>,
        eof: bool,
    },
    /// The bytes are in the frame's data section.
    Data {
        state: ObjectState,
        eof: bool,
    },
    Link {
        target: Vec<u8>,
    },
    Shipped {
        outcomes: Vec<RecordOutcome>,
    },
    Space(SpaceInfo),
}

/// What a server answers.
pub type Reply = Result<ReplyBody, FsError>;
