//! Content tags (replication rule 5): a blake3 digest of an object's replicated state.
//!
//! ```text
//! tag = blake3( "codetta-tag-v1"
//!               || ftype u8 (0 file, 1 dir, 2 symlink, 3 FIFO, 4 socket, 5 character
//!                  device, 6 block device) [|| major u32 || minor u32 for devices]
//!               || mode u32 || uid u32 || gid u32
//!               || size u64 || mtime (secs i64, nanos u32) || ctime (secs i64, nanos u32)
//!               || target length u32 || target bytes
//!               || parent vnode u64 || name length u32 || name bytes
//!               || SetDigest of the members (32 bytes)
//!               [|| "links" || count u32 || (parent vnode u64 || name length u32
//!                   || name bytes) for each further name, ascending]   only with hard links
//!             )                                                  all integers little-endian
//! member of a file      = block index u64 LE || chunk hash (32 bytes)
//! member of a directory = name bytes || fid (Fid::to_bytes, 16 bytes)
//! ```
//!
//! The placement (every name: parent and name) is part of the tag, so a rename, a link or
//! the removal of one of several names changes the tag of the object. An object with one
//! name hashes exactly as before hard links existed. atime, nlink (derived from the names),
//! the version, the history and the exclusive-create verifier are not part of the tag, nor
//! is anything a server chooses by itself (no server clock, no local order): two replicas
//! that applied the same records have equal tags.

use super::codec::Vnode;
use codetta_wire::{ContentTag, Fid, FileType, Name};

/// The tag of an object from its stored record (O(1): the member digest is kept current).
pub(crate) fn tag(v: &Vnode) -> ContentTag {
    let mut h = blake3::Hasher::new();
    h.update(b"codetta-tag-v1");
    let (kind, device) = match v.ftype {
        FileType::Regular => (0u8, None),
        FileType::Directory => (1, None),
        FileType::Symlink => (2, None),
        FileType::Fifo => (3, None),
        FileType::Socket => (4, None),
        FileType::CharDevice { major, minor } => (5, Some((major, minor))),
        FileType::BlockDevice { major, minor } => (6, Some((major, minor))),
    };
    h.update(&[kind]);
    if let Some((major, minor)) = device {
        h.update(&major.to_le_bytes());
        h.update(&minor.to_le_bytes());
    }
    h.update(&v.mode.to_le_bytes());
    h.update(&v.uid.to_le_bytes());
    h.update(&v.gid.to_le_bytes());
    h.update(&v.size.to_le_bytes());
    for t in [v.mtime, v.ctime] {
        h.update(&t.secs.to_le_bytes());
        h.update(&t.nanos.to_le_bytes());
    }
    let target_len = u32::try_from(v.target.len()).unwrap_or(u32::MAX);
    h.update(&target_len.to_le_bytes());
    h.update(&v.target);
    h.update(&v.parent.to_le_bytes());
    let name_len = u32::try_from(v.name.len()).unwrap_or(u32::MAX);
    h.update(&name_len.to_le_bytes());
    h.update(&v.name);
    h.update(&v.digest.to_bytes());
    if !v.links.is_empty() {
        h.update(b"links");
        let count = u32::try_from(v.links.len()).unwrap_or(u32::MAX);
        h.update(&count.to_le_bytes());
        for (parent, name) in &v.links {
            h.update(&parent.to_le_bytes());
            let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
            h.update(&len.to_le_bytes());
            h.update(name);
        }
    }
    ContentTag(*h.finalize().as_bytes())
}

/// The set member standing for block `index` holding chunk `hash`.
pub(crate) fn block_member(index: u64, hash: &[u8; 32]) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[..8].copy_from_slice(&index.to_le_bytes());
    m[8..].copy_from_slice(hash);
    m
}

/// The set member standing for the entry `name -> fid`.
pub(crate) fn entry_member(name: &Name, fid: Fid) -> Vec<u8> {
    let mut m = Vec::with_capacity(name.as_bytes().len() + Fid::ENCODED_LEN);
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&fid.to_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::new_vnode;
    use codetta_wire::{ReplicaId, Time};

    #[test]
    fn the_tag_covers_replicated_state_only() {
        let t = Time { secs: 10, nanos: 0 };
        let base = new_vnode(1, FileType::Regular, 0o644, 1, 2, t);
        let tag0 = tag(&base);
        let mut v = base.clone();
        v.atime = Time { secs: 99, nanos: 0 };
        v.version.bump(ReplicaId(3));
        v.verifier = Some([1; 8]);
        assert_eq!(tag(&v), tag0, "atime, version and verifier are not content");
        for change in [
            |v: &mut Vnode| v.mode = 0o600,
            |v: &mut Vnode| v.uid = 7,
            |v: &mut Vnode| v.size = 1,
            |v: &mut Vnode| v.mtime.nanos = 1,
            |v: &mut Vnode| v.ctime.secs = 11,
            |v: &mut Vnode| v.target = b"x".to_vec(),
            |v: &mut Vnode| v.ftype = FileType::Symlink,
            |v: &mut Vnode| v.digest.add(&block_member(0, &[0; 32])),
            |v: &mut Vnode| v.parent = 9,
            |v: &mut Vnode| v.name = b"renamed".to_vec(),
            |v: &mut Vnode| v.add_place((9, b"link".to_vec())),
        ] {
            let mut v = base.clone();
            change(&mut v);
            assert_ne!(tag(&v), tag0);
        }
        // Every kind, and every device number, is its own content.
        let kinds = [
            FileType::Fifo,
            FileType::Socket,
            FileType::CharDevice { major: 1, minor: 3 },
            FileType::CharDevice { major: 1, minor: 5 },
            FileType::CharDevice { major: 2, minor: 3 },
            FileType::BlockDevice { major: 1, minor: 3 },
        ];
        let mut tags: Vec<_> = kinds
            .iter()
            .map(|k| {
                let mut v = base.clone();
                v.ftype = *k;
                tag(&v)
            })
            .collect();
        tags.push(tag0);
        let distinct: std::collections::HashSet<_> = tags.iter().collect();
        assert_eq!(distinct.len(), kinds.len() + 1);
    }
}
