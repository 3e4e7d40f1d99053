//! Identifiers: volumes, files (fids), replicas and updates.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A volume's number, unique within a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VolumeId(pub u32);

/// One server's membership in one volume's replica group; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(pub u64);

/// A client daemon's incarnation, allocated durably by a server and never reused.
///
/// It prefixes both the update ids and the vnode numbers the client allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation(pub u32);

/// A file's identity: volume, vnode and uniquifier.
///
/// Vnodes are allocated by the client (`incarnation << 32 | counter`) so every replica
/// stores the same fid; they are never reused. The uniquifier is random per incarnation,
/// so even a server restored from an old backup cannot make two files share a fid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fid {
    /// The volume holding the object.
    pub volume: VolumeId,
    /// The object's number in the volume (never reused).
    pub vnode: u64,
    /// The uniquifier: random per client incarnation (1 for a volume root).
    pub unique: u32,
}

impl Fid {
    /// The vnode number of every volume's root directory.
    pub const ROOT_VNODE: u64 = 1;

    /// The root directory of `volume`.
    pub fn root(volume: VolumeId) -> Fid {
        Fid {
            volume,
            vnode: Self::ROOT_VNODE,
            unique: 1,
        }
    }

    /// The object without its uniquifier: volume and vnode (vnodes are never reused), as
    /// callback promises and breaks name it.
    pub fn object(&self) -> Fid {
        Fid { unique: 0, ..*self }
    }

    /// Length of [`Fid::to_bytes`].
    pub const ENCODED_LEN: usize = 16;

    /// Fixed little-endian encoding, used inside NFS file handles.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0..4].copy_from_slice(&self.volume.0.to_le_bytes());
        out[4..12].copy_from_slice(&self.vnode.to_le_bytes());
        out[12..16].copy_from_slice(&self.unique.to_le_bytes());
        out
    }

    /// Inverse of [`Fid::to_bytes`]; `None` if the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Fid> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes.try_into().ok()?;
        let (vol, rest) = bytes.split_at(4);
        let (vnode, unique) = rest.split_at(8);
        Some(Fid {
            volume: VolumeId(u32::from_le_bytes(vol.try_into().ok()?)),
            vnode: u64::from_le_bytes(vnode.try_into().ok()?),
            unique: u32::from_le_bytes(unique.try_into().ok()?),
        })
    }
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}.{:x}", self.volume.0, self.vnode, self.unique)
    }
}

/// Names one mutation: the client incarnation that made it and its sequence number.
/// Servers apply each update id at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UpdateId {
    /// The client incarnation that made the update.
    pub incarnation: Incarnation,
    /// The update's sequence number within that incarnation (the client's modify log order).
    pub seq: u64,
}

/// The incarnation under which resolution's own updates (an object brought back or moved
/// aside under a conflict name) are remembered in histories: clients' are below 2^31.
pub const RESOLUTION_INCARNATION: Incarnation = Incarnation(u32::MAX);

impl UpdateId {
    /// The id of resolution's update giving `fid` the state derived from the one tagged
    /// `from`: the same on every coordinator that decides it.
    pub fn resolution(fid: Fid, from: &[u8; 32]) -> UpdateId {
        let mut h = blake3::Hasher::new();
        h.update(b"codetta-resolution-update-v1");
        h.update(&fid.to_bytes());
        h.update(from);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&h.finalize().as_bytes()[..8]);
        UpdateId {
            incarnation: RESOLUTION_INCARNATION,
            seq: u64::from_le_bytes(seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fid_bytes_round_trip() {
        let fid = Fid {
            volume: VolumeId(7),
            vnode: 0x1234_5678_9abc,
            unique: 99,
        };
        assert_eq!(Fid::from_bytes(&fid.to_bytes()), Some(fid));
        assert_eq!(Fid::from_bytes(&[0u8; 15]), None);
        assert_eq!(Fid::from_bytes(&[0u8; 17]), None);
    }
}
