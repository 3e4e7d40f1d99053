//! What replicas tell each other about one object during resolution (rule 6): its version,
//! history and content tag, and enough of its replicated state to install it elsewhere.

use crate::attrs::{FileType, Time};
use crate::history::History;
use crate::ids::Fid;
use crate::tag::ContentTag;
use crate::version::VersionVector;
use serde::{Deserialize, Serialize};

/// Where an object is: its directory and its name there (the root: itself and an empty
/// name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// The directory holding the name (the root's own fid for the root).
    pub parent: Fid,
    /// The entry name's bytes (empty for the root).
    pub name: Vec<u8>,
}

/// The replicated attributes of a live object (directory sizes and link counts are not
/// here: they follow from the entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The kind of object.
    pub ftype: FileType,
    /// Permission bits (including setuid/setgid/sticky), without the type bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// File: bytes; symlink: target length; directory: ignored on install.
    pub size: u64,
    /// Last access time.
    pub atime: Time,
    /// Last modification time.
    pub mtime: Time,
    /// Last change time.
    pub ctime: Time,
    /// The object's (first) name.
    pub placement: Placement,
    /// Symlink target.
    pub target: Vec<u8>,
    /// EXCLUSIVE create verifier.
    pub verifier: Option<[u8; 8]>,
    /// A non-directory's further names (hard links), ascending by (parent vnode, name),
    /// each after `placement`: the object has `1 + links.len()` names.
    pub links: Vec<Placement>,
}

impl ObjectMeta {
    /// Every name of the object: `placement`, then `links`.
    pub fn placements(&self) -> impl Iterator<Item = &Placement> {
        std::iter::once(&self.placement).chain(&self.links)
    }
}

/// What one replica holds of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewBody {
    /// Never seen here (a missed create).
    Absent,
    /// Removed here; the tombstone keeps where it was.
    Deleted(Placement),
    /// Live here, with these attributes.
    Live(ObjectMeta),
    /// Removed and its tombstone collected (rule 8): not here, and a create of it would be
    /// refused. A live version elsewhere can only come back as a conflict.
    Forgotten,
}

/// One replica's account of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// The object.
    pub fid: Fid,
    /// This replica's version vector of the object.
    pub version: VersionVector,
    /// This replica's update history of the object.
    pub history: History,
    /// This replica's content tag ([`deleted_tag`] when deleted or forgotten, [`ABSENT_TAG`]
    /// when absent).
    pub tag: ContentTag,
    /// Whether the object is absent, deleted, live or forgotten here.
    pub body: ViewBody,
    /// For the client incarnations in the history: which of their records this replica
    /// applied (rule 5: its state includes those updates, remembered or not).
    pub applied: Vec<AppliedRun>,
    /// Resolution was installing another state here (attributes or blocks in, version not
    /// yet) when the view was taken: the state is a mixture that no update made, so it is
    /// never installed elsewhere nor kept as a version; the replica receives the decided
    /// state (rule 4).
    pub installing: bool,
}

/// The records of one client incarnation a replica applied: every sequence number from
/// `floor` to `high` except those in `gaps` (records it missed while away, or refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRun {
    /// The client incarnation.
    pub incarnation: crate::ids::Incarnation,
    /// The lowest sequence number of the run.
    pub floor: u64,
    /// The highest sequence number applied.
    pub high: u64,
    /// Inclusive ranges, ascending.
    pub gaps: Vec<(u64, u64)>,
}

impl AppliedRun {
    /// True when record `seq` was applied.
    pub fn has(&self, seq: u64) -> bool {
        self.floor <= seq
            && seq <= self.high
            && !self.gaps.iter().any(|(a, b)| *a <= seq && seq <= *b)
    }
}

impl ReplicaView {
    /// True when the object is live on this replica.
    pub fn is_live(&self) -> bool {
        matches!(self.body, ViewBody::Live(_))
    }

    /// The attributes of a live object; `None` otherwise.
    pub fn meta(&self) -> Option<&ObjectMeta> {
        match &self.body {
            ViewBody::Live(m) => Some(m),
            _ => None,
        }
    }

    /// Where the object is (live) or was (deleted).
    pub fn placement(&self) -> Option<&Placement> {
        match &self.body {
            ViewBody::Live(m) => Some(&m.placement),
            ViewBody::Deleted(p) => Some(p),
            ViewBody::Absent | ViewBody::Forgotten => None,
        }
    }

    /// The parts of this view rule 5 compares (see [`crate::history::relate`]).
    pub fn version_view(&self) -> crate::history::VersionView<'_> {
        crate::history::VersionView {
            vector: &self.version,
            history: &self.history,
            tag: &self.tag,
            applied: &self.applied,
        }
    }

    /// True when two replicas need nothing from each other for this object: equal tags
    /// and vectors, or neither live and one of them collected (a tombstone not yet
    /// collected everywhere).
    pub fn agrees_with(&self, other: &ReplicaView) -> bool {
        let collected = |v: &ReplicaView| matches!(v.body, ViewBody::Forgotten);
        (self.tag == other.tag && self.version == other.version)
            || (!self.is_live() && !other.is_live() && (collected(self) || collected(other)))
    }
}

/// The tag every replica gives a deleted object (deleted states are all alike).
pub fn deleted_tag(fid: Fid) -> ContentTag {
    let mut h = blake3::Hasher::new();
    h.update(b"codetta-deleted-v1");
    h.update(&fid.to_bytes());
    ContentTag(*h.finalize().as_bytes())
}

/// Buckets of a volume's digest tree (rule 12): objects fall into one by their fid.
pub const DIGEST_BUCKETS: usize = 4096;

/// The bucket of the volume digest tree holding `fid`.
pub fn digest_bucket(fid: Fid) -> u16 {
    let h = blake3::hash(&fid.to_bytes());
    let b = h.as_bytes();
    (u16::from_le_bytes([b[0], b[1]]) as usize % DIGEST_BUCKETS) as u16
}

/// The digest of one live object's replicated state in the volume digest tree: its fid,
/// tag and version (so that unmerged vectors show too).
pub fn object_digest(fid: Fid, tag: &ContentTag, version: &VersionVector) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"codetta-object-v1");
    h.update(&fid.to_bytes());
    h.update(&tag.0);
    for (replica, count) in version.iter() {
        h.update(&replica.0.to_le_bytes());
        h.update(&count.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// The tag of an object a replica has never seen.
pub const ABSENT_TAG: ContentTag = ContentTag([0; 32]);

/// One block of a file: index, chunk hash and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Block number: the block starts at byte `index *` [`crate::BLOCK_SIZE`].
    pub index: u64,
    /// The blake3 hash of the chunk holding the block's bytes.
    pub hash: [u8; 32],
    /// Bytes the chunk holds (the rest of the block up to the file's end reads as zeros).
    pub len: u32,
}

/// Blocks per group in [`crate::Request::BlockDigests`]: a 256 MiB file has 16 groups.
pub const BLOCK_GROUP: u64 = 256;
