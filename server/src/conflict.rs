//! Conflict names and ids (rules 7, 8 and 10): how resolution names the versions it keeps
//! beside an object, and the fids of conflict copies. Every coordinator derives them from
//! the object and the state alone, so they are the same wherever a conflict is settled.

use codetta_wire::Fid;
use codetta_wire::replica::ObjectMeta;

/// What every conflict name contains.
pub const CONFLICT_MARK: &[u8] = b".conflict-";

/// The vnode bit of objects made by resolution (conflict copies): client vnodes are below.
pub const CONFLICT_VNODE_BIT: u64 = 1 << 63;

/// Whether `name` is one resolution gave a conflicting version.
pub fn is_conflict_name(name: &[u8]) -> bool {
    name.windows(CONFLICT_MARK.len())
        .any(|w| w == CONFLICT_MARK)
}

/// `name` without the conflict suffixes resolution added (`.conflict-` and 8 hex digits,
/// any number of times), so that a conflict over a conflict copy is named after the
/// original, not nested.
fn without_conflict_suffix(mut name: &[u8]) -> &[u8] {
    let tail = CONFLICT_MARK.len() + 8;
    while name.len() > tail {
        let (head, suffix) = name.split_at(name.len() - tail);
        let hex = suffix
            .get(CONFLICT_MARK.len()..)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !(suffix.starts_with(CONFLICT_MARK) && hex) {
            break;
        }
        name = head;
    }
    name
}

/// The name of a conflict copy: the original name (without earlier conflict suffixes),
/// `.conflict-`, and 8 hex digits of the copy's content tag, the original cut so the whole
/// fits 255 bytes.
pub fn conflict_name(original: &[u8], tag: &[u8; 32]) -> Vec<u8> {
    let original = without_conflict_suffix(original);
    let suffix = format!(
        "{}{:02x}{:02x}{:02x}{:02x}",
        String::from_utf8_lossy(CONFLICT_MARK),
        tag[0],
        tag[1],
        tag[2],
        tag[3]
    );
    let keep = original
        .len()
        .min(codetta_wire::name::MAX_NAME_LEN - suffix.len());
    let mut name = original[..keep].to_vec();
    name.extend_from_slice(suffix.as_bytes());
    name
}

/// Gives every name of an object (its placement and its hard links) the conflict name of
/// the state tagged `tag`, each in its own directory: which of several names was contested
/// is not known where this is decided, and moving them all keeps every one reachable.
pub fn to_conflict_names(meta: &mut ObjectMeta, tag: &[u8; 32]) {
    meta.placement.name = conflict_name(&meta.placement.name, tag);
    for link in &mut meta.links {
        link.name = conflict_name(&link.name, tag);
    }
}

/// The fid of the conflict copy of `fid` holding the state tagged `tag`: the same on
/// every coordinator.
pub fn conflict_fid(fid: Fid, tag: &[u8; 32]) -> Fid {
    let mut h = blake3::Hasher::new();
    h.update(b"codetta-conflict-v1");
    h.update(&fid.to_bytes());
    h.update(tag);
    let bytes = h.finalize();
    let mut vnode = [0u8; 8];
    vnode.copy_from_slice(&bytes.as_bytes()[..8]);
    Fid {
        volume: fid.volume,
        vnode: u64::from_le_bytes(vnode) | CONFLICT_VNODE_BIT,
        unique: fid.unique,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_do_not_nest() {
        let t = [0xabu8; 32];
        assert_eq!(conflict_name(b"a", &t), b"a.conflict-abababab".to_vec());
        assert_eq!(
            conflict_name(b"a.conflict-0e0f705d.conflict-e4fc2bcb", &t),
            b"a.conflict-abababab".to_vec()
        );
        // Only a real suffix is taken off, and never the whole name.
        assert_eq!(
            conflict_name(b"a.conflict-xyz", &t),
            b"a.conflict-xyz.conflict-abababab".to_vec()
        );
        assert_eq!(
            conflict_name(b".conflict-01234567", &t),
            b".conflict-01234567.conflict-abababab".to_vec()
        );
        assert!(is_conflict_name(b"a.conflict-abababab"));
        assert!(!is_conflict_name(b"a.conflic"));
    }

    #[test]
    fn conflict_copies_have_the_conflict_bit_and_differ_by_state() {
        let fid = Fid {
            volume: codetta_wire::VolumeId(3),
            vnode: 9,
            unique: 4,
        };
        let (a, b) = (conflict_fid(fid, &[1; 32]), conflict_fid(fid, &[2; 32]));
        assert_ne!(a, b);
        assert_eq!(a, conflict_fid(fid, &[1; 32]));
        assert!(a.vnode & CONFLICT_VNODE_BIT != 0 && b.vnode & CONFLICT_VNODE_BIT != 0);
        assert_eq!((a.volume, a.unique), (fid.volume, fid.unique));
    }
}
