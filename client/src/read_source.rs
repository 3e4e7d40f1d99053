//! Which replica a read goes to (rule 4: read-one, validate-all), decided from the states
//! every AVSG member gave for the object. No I/O.
//!
//! A read must never return bytes no acknowledged write put there, nor an older state than
//! the replicas the client can reach hold: data comes from a member whose state includes
//! every other member's, and when none does, resolution settles the object first.

use codetta_wire::message::ObjectState;
use codetta_wire::version::VvOrdering;

/// Where reads of one object go, after its states on the AVSG were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSource {
    /// Every member holds the same state: any of them, in group order.
    Any,
    /// Member `m` holds a state that includes every other's (the others are merely behind,
    /// e.g. being filled or resolved): read from it while the others catch up.
    From(usize),
    /// No member holds everything (concurrent states, or some member lacks the object):
    /// resolve before reading.
    Resolve,
}

/// Decides [`ReadSource`] from `(member, its state; None: it lacks the object)`, members in
/// group order.
pub(crate) fn read_source(states: &[(usize, Option<ObjectState>)]) -> ReadSource {
    let Some((_, Some(first))) = states.first() else {
        return ReadSource::Resolve;
    };
    if states
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.tag == first.tag))
    {
        return ReadSource::Any;
    }
    states
        .iter()
        .find(|(m, s)| s.as_ref().is_some_and(|s| includes_all(*m, s, states)))
        .map_or(ReadSource::Resolve, |(m, _)| ReadSource::From(*m))
}

/// True when `state` (member `m`'s) includes every other member's: the same state, or a
/// version that dominates theirs (equal versions with different states are a conflict).
/// A member that lacks the object may have deleted it: nobody includes that.
fn includes_all(m: usize, state: &ObjectState, states: &[(usize, Option<ObjectState>)]) -> bool {
    states.iter().all(|(other, s)| match s {
        _ if *other == m => true,
        Some(s) if s.tag == state.tag => true,
        Some(s) => state.version.compare(&s.version) == VvOrdering::Dominates,
        None => false,
    })
}

/// The last resort once resolution could not settle the object in time (another
/// coordinator is still installing it, say): the first member holding the object whose
/// state no other member's dominates. `None` when no member holds it.
pub(crate) fn undominated(states: &[(usize, Option<ObjectState>)]) -> Option<usize> {
    states
        .iter()
        .find(|(m, s)| {
            s.as_ref().is_some_and(|s| {
                states.iter().all(|(other, o)| match o {
                    Some(o) if other != m => {
                        s.version.compare(&o.version) != VvOrdering::DominatedBy
                    }
                    _ => true,
                })
            })
        })
        .map(|(m, _)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::{Attrs, ContentTag, Fid, ReplicaId, Time, VersionVector, VolumeId};

    fn state(tag: u8, counts: &[(u64, u64)]) -> Option<ObjectState> {
        let mut version = VersionVector::new();
        for (r, n) in counts {
            version.set(ReplicaId(*r), *n);
        }
        Some(ObjectState {
            fid: Fid::root(VolumeId(2)),
            attrs: Attrs {
                ftype: codetta_wire::FileType::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime: Time::default(),
                mtime: Time::default(),
                ctime: Time::default(),
            },
            version,
            tag: ContentTag([tag; 32]),
        })
    }

    #[test]
    fn reads_go_to_a_member_that_has_everything() {
        let newest = state(1, &[(1, 5), (2, 5)]);
        let behind = state(2, &[(1, 2), (2, 2)]);
        let other = state(3, &[(1, 6), (2, 4)]);
        let same = |s: &Option<ObjectState>| (0..3).map(|m| (m, s.clone())).collect::<Vec<_>>();
        assert_eq!(read_source(&same(&newest)), ReadSource::Any);
        // The first member is ahead of a member being filled: read from it.
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, behind.clone())]),
            ReadSource::From(0)
        );
        assert_eq!(
            read_source(&[
                (0, newest.clone()),
                (1, newest.clone()),
                (2, behind.clone())
            ]),
            ReadSource::From(0)
        );
        // The first member is behind (a server back from a crash, being resolved): read
        // from the first one that has everything, never from the stale one.
        assert_eq!(
            read_source(&[
                (0, behind.clone()),
                (1, newest.clone()),
                (2, newest.clone())
            ]),
            ReadSource::From(1)
        );
        assert_eq!(
            read_source(&[(0, behind.clone()), (3, newest.clone())]),
            ReadSource::From(3)
        );
        // Concurrent, or some member lacks the object: resolve first.
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, other.clone())]),
            ReadSource::Resolve
        );
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, None)]),
            ReadSource::Resolve
        );
        assert_eq!(
            read_source(&[(0, None), (1, newest.clone())]),
            ReadSource::Resolve
        );
        assert_eq!(read_source(&[]), ReadSource::Resolve);
        // Equal versions with different states are a conflict.
        let twin = state(9, &[(1, 5), (2, 5)]);
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, twin)]),
            ReadSource::Resolve
        );
        // Last resort: the first holder nobody dominates.
        assert_eq!(
            undominated(&[(0, None), (1, behind.clone()), (2, newest.clone())]),
            Some(2)
        );
        assert_eq!(
            undominated(&[(0, newest.clone()), (1, other.clone())]),
            Some(0)
        );
        assert_eq!(undominated(&[(0, None), (1, None)]), None);
    }
}
