//! Persisted value formats: one version byte, then a postcard body.
//!
//! Each record type here is stored in exactly one table (see [`super::tables`]). Postcard
//! encodes integers as varints, structs as their fields in order, `Option` as a 0/1 byte and
//! sequences with a varint length; the golden-byte tests below pin the formats, including
//! the serde layout of the wire types they embed (`Fid`, `Time`, `VersionVector`, ...).

use super::StoreError;
use codetta_wire::message::ReplicaMember;
use codetta_wire::tag::SetDigest;
use codetta_wire::{Fid, FileType, History, ReplicaId, Time, VersionVector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The format version of every value written by this build (also `meta/format`).
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Encodes `value` as the version byte followed by its postcard body.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(value, vec![FORMAT_VERSION]).map_err(|e| StoreError::Decode {
        table: "(encode)",
        reason: e.to_string(),
    })
}

/// Decodes a value of `table`; a wrong version byte or trailing bytes are errors.
pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let bad = |reason: String| StoreError::Decode { table, reason };
    let Some((&version, body)) = bytes.split_first() else {
        return Err(bad("empty value".into()));
    };
    if version != FORMAT_VERSION {
        return Err(bad(format!("value format version {version}")));
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Records of one client a replica did not apply (missed while away, or refused), as
/// inclusive ranges, ascending; what lies below `floor` is no longer known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Gaps {
    pub floor: u64,
    pub gaps: Vec<(u64, u64)>,
}

/// Most ranges [`Gaps`] keeps: older ones raise the floor.
pub(crate) const MAX_GAPS: usize = 32;

impl Gaps {
    /// Adds the records `from..=to`.
    pub(crate) fn add(&mut self, from: u64, to: u64) {
        match self.gaps.last_mut() {
            Some((_, end)) if end.saturating_add(1) >= from => *end = (*end).max(to),
            _ => self.gaps.push((from, to)),
        }
        while self.gaps.len() > MAX_GAPS {
            let (_, end) = self.gaps.remove(0);
            self.floor = self.floor.max(end + 1);
        }
    }
}

/// A volume this server holds a replica of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VolumeRec {
    pub name: String,
    /// This server's replica of the volume: the key it bumps in version vectors.
    pub replica: ReplicaId,
    pub root: Fid,
    /// Every replica of the volume (this one included) and the server holding it.
    pub vsg: Vec<ReplicaMember>,
    /// The catalogue epoch `vsg` is from.
    pub epoch: u64,
}

impl VolumeRec {
    /// The volume's summary as the wire carries it.
    pub(crate) fn info(self, id: codetta_wire::VolumeId) -> codetta_wire::message::VolumeInfo {
        codetta_wire::message::VolumeInfo {
            id,
            name: self.name,
            root: self.root,
            vsg: self.vsg,
            epoch: self.epoch,
            addrs: Vec::new(),
        }
    }
}

/// One file-system object: attributes, version, and what its content tag is made of.
///
/// `digest` is the [`SetDigest`] of the object's members (blocks of a file, entries of a
/// directory), kept current by every update so the tag never needs a reread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Vnode {
    pub unique: u32,
    pub ftype: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// File: bytes. Symlink: target length. Directory: number of entries.
    pub size: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub version: VersionVector,
    /// The last updates that changed the object (rule 5).
    pub history: History,
    pub digest: SetDigest,
    /// Where the object is: its directory's vnode (the root names itself) and its name
    /// there (empty for the root). Part of the replicated state, so a rename resolves as
    /// a unit with the object it moves.
    pub parent: u64,
    pub name: Vec<u8>,
    /// Directory: how many entries are directories (nlink = 2 + subdirs).
    pub subdirs: u64,
    /// Symlink: the target bytes.
    pub target: Vec<u8>,
    /// Regular file made by an EXCLUSIVE create: its verifier, to recognise a resend.
    pub verifier: Option<[u8; 8]>,
    /// A non-directory's further names (hard links) as (directory vnode, name), ascending,
    /// each after (`parent`, `name`): the least name is always the first, so replicas that
    /// applied the same records hold the same record. Empty for a directory.
    pub links: Vec<(u64, Vec<u8>)>,
}

/// One name of an object: (directory vnode, name bytes).
pub(crate) type Place = (u64, Vec<u8>);

impl Vnode {
    /// Every name of the object, least first.
    pub(crate) fn places(&self) -> Vec<Place> {
        let mut all = Vec::with_capacity(1 + self.links.len());
        all.push((self.parent, self.name.clone()));
        all.extend(self.links.iter().cloned());
        all
    }

    /// How many names the object has (a non-directory's nlink).
    pub(crate) fn name_count(&self) -> usize {
        1 + self.links.len()
    }

    /// Gives the object exactly the names `places` (at least one; repeats count once): the
    /// least becomes (`parent`, `name`), the others `links`.
    pub(crate) fn set_places(&mut self, mut places: Vec<Place>) {
        places.sort();
        places.dedup();
        let mut rest = places.into_iter();
        if let Some((parent, name)) = rest.next() {
            self.parent = parent;
            self.name = name;
        }
        self.links = rest.collect();
    }

    /// Adds the name `place`.
    pub(crate) fn add_place(&mut self, place: Place) {
        let mut all = self.places();
        all.push(place);
        self.set_places(all);
    }

    /// Replaces the name `old` by `new` (`new` is added if `old` is not a name of it).
    pub(crate) fn replace_place(&mut self, old: &Place, new: Place) {
        let mut all: Vec<Place> = self.places().into_iter().filter(|p| p != old).collect();
        all.push(new);
        self.set_places(all);
    }

    /// Drops the name `place`, unless it is the only one.
    pub(crate) fn remove_place(&mut self, place: &Place) {
        let all: Vec<Place> = self.places().into_iter().filter(|p| p != place).collect();
        if !all.is_empty() {
            self.set_places(all);
        }
    }
}

/// What remains of a removed object (rule 8): its version (which the delete bumped), its
/// history, and where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub unique: u32,
    pub ftype: FileType,
    pub version: VersionVector,
    pub history: History,
    pub parent: u64,
    pub name: Vec<u8>,
}

/// The value of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dirent {
    pub fid: Fid,
    pub ftype: FileType,
}

/// One stored block of a file: the chunk holding bytes `[0, len)` of the block. Bytes from
/// `len` to the end of the block (or of the file) read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRef {
    pub hash: [u8; 32],
    pub len: u32,
}

/// A chunk's row in the index: the id its bytes are stored under, their length, and how
/// many block rows name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkEntry {
    pub id: u64,
    pub len: u32,
    pub refs: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use codetta_wire::VolumeId;

    #[test]
    fn values_round_trip_and_reject_garbage() {
        let b = BlockRef {
            hash: [7; 32],
            len: 65536,
        };
        let bytes = encode(&b).unwrap();
        assert_eq!(decode::<BlockRef>("blocks", &bytes).unwrap(), b);
        assert!(decode::<BlockRef>("blocks", &[]).is_err());
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert!(decode::<BlockRef>("blocks", &wrong_version).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<BlockRef>("blocks", &trailing).is_err());
        assert!(decode::<BlockRef>("blocks", &bytes[..10]).is_err());
    }

    /// Pins the byte-level formats: a change here is a format change and needs a new
    /// version byte and a migration.
    #[test]
    fn golden_bytes() {
        let mut hash = [0u8; 32];
        hash[0] = 0xAB;
        let b = BlockRef { hash, len: 300 };
        let mut expected = vec![1, 0xAB];
        expected.extend([0u8; 31]);
        expected.extend([0xAC, 0x02]);
        assert_eq!(encode(&b).unwrap(), expected);

        let d = Dirent {
            fid: Fid {
                volume: VolumeId(1),
                vnode: 2,
                unique: 3,
            },
            ftype: FileType::Directory,
        };
        assert_eq!(encode(&d).unwrap(), vec![1, 1, 2, 3, 1]);

        let c = ChunkEntry {
            id: 300,
            len: 65_536,
            refs: 2,
        };
        assert_eq!(
            encode(&c).unwrap(),
            vec![1, 0xAC, 0x02, 0x80, 0x80, 0x04, 2]
        );

        let mut g = Gaps::default();
        g.add(5, 5);
        g.add(6, 9);
        g.add(300, 300);
        assert_eq!(g.gaps, vec![(5, 9), (300, 300)], "adjacent gaps merge");
        assert_eq!(
            encode(&g).unwrap(),
            vec![1, 0, 2, 5, 9, 0xAC, 0x02, 0xAC, 0x02]
        );
        for i in 0..MAX_GAPS as u64 {
            g.add(1000 + 2 * i, 1000 + 2 * i);
        }
        assert_eq!(g.gaps.len(), MAX_GAPS);
        assert_eq!(g.floor, 301, "the oldest gaps fall below the floor");

        let mut version = VersionVector::new();
        version.bump(ReplicaId(5));
        let v = Vnode {
            unique: 9,
            ftype: FileType::Symlink,
            mode: 0o777,
            uid: 1,
            gid: 2,
            size: 1,
            atime: Time { secs: 1, nanos: 2 },
            mtime: Time { secs: -1, nanos: 0 },
            ctime: Time { secs: 3, nanos: 4 },
            version,
            history: History::new(),
            digest: SetDigest([1, 0, 0, 0]),
            parent: 4,
            name: b"n".to_vec(),
            subdirs: 0,
            target: b"x".to_vec(),
            verifier: Some([8; 8]),
            links: vec![(5, b"m".to_vec())],
        };
        let expected: Vec<u8> = [
            &[1u8, 9, 2, 0xFF, 0x03, 1, 2, 1][..],
            &[2, 2, 1, 0, 6, 4][..],
            &[1, 5, 1][..],
            &[0][..],
            &[1, 0, 0, 0][..],
            &[4, 1, b'n', 0, 1, b'x', 1, 8, 8, 8, 8, 8, 8, 8, 8][..],
            &[1, 5, 1, b'm'][..],
        ]
        .concat();
        assert_eq!(encode(&v).unwrap(), expected);

        let vol = VolumeRec {
            name: "v".into(),
            replica: ReplicaId(1),
            root: Fid::root(VolumeId(1)),
            vsg: vec![ReplicaMember {
                replica: ReplicaId(1),
                server: "s".into(),
            }],
            epoch: 7,
        };
        assert_eq!(
            encode(&vol).unwrap(),
            vec![1, 1, b'v', 1, 1, 1, 1, 1, 1, 1, b's', 7]
        );
    }
}
