//! Which replica a read goes to (rule 4: read-one, validate-all), decided from the states
//! every AVSG member gave for the object. No I/O.
//!
//! A read must never return bytes no acknowledged write put there, nor an older state than
//! the replicas the client can reach hold: data comes from a member whose state includes
//! every other member's, and when none does, resolution settles the object first. Nor an
//! older state than this client's own acknowledged updates: a member that missed one of
//! them ([`crate::missed`]) is never the source, even alone in the AVSG.

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
/// group order, never choosing a member in `stale` (one that missed this client's own
/// update of the object, see [`still_stale`]).
pub(crate) fn read_source(states: &[(usize, Option<ObjectState>)], stale: &[usize]) -> ReadSource {
    let Some((_, Some(first))) = states.first() else {
        return ReadSource::Resolve;
    };
    if states
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.tag == first.tag))
    {
        return if states.iter().any(|(m, _)| stale.contains(m)) {
            ReadSource::Resolve
        } else {
            ReadSource::Any
        };
    }
    states
        .iter()
        .filter(|(m, _)| !stale.contains(m))
        .find(|(m, s)| s.as_ref().is_some_and(|s| includes_all(*m, s, states)))
        .map_or(ReadSource::Resolve, |(m, _)| ReadSource::From(*m))
}

/// Of the `marked` members (each missed one of this client's updates of the object), those
/// still stale: every one whose state does not hold everything a member that is not marked
/// holds (the same state, or a dominating version). The others caught up (resolution
/// brought them the update). When all `group` members answered
/// with one state, none is stale: each of this client's updates was applied by one of them,
/// and resolution has merged what they held (every member marked, each for an update
/// another applied, would otherwise stay so).
pub(crate) fn still_stale(
    states: &[(usize, Option<ObjectState>)],
    marked: &[usize],
    group: usize,
) -> Vec<usize> {
    let first = states.first().and_then(|(_, s)| s.as_ref()).map(|s| s.tag);
    if states.len() >= group
        && first.is_some()
        && states
            .iter()
            .all(|(_, s)| s.as_ref().map(|s| s.tag) == first)
    {
        return Vec::new();
    }
    let fresh: Vec<&ObjectState> = states
        .iter()
        .filter(|(m, _)| !marked.contains(m))
        .filter_map(|(_, s)| s.as_ref())
        .collect();
    marked
        .iter()
        .copied()
        .filter(|m| {
            !states.iter().any(|(other, s)| {
                other == m
                    && s.as_ref()
                        .is_some_and(|s| fresh.iter().any(|f| holds_all_of(s, f)))
            })
        })
        .collect()
}

/// True when `state` holds everything `other` does: the same state, or a version that
/// dominates its.
fn holds_all_of(state: &ObjectState, other: &ObjectState) -> bool {
    state.tag == other.tag || state.version.compare(&other.version) == VvOrdering::Dominates
}

/// True when `state` (member `m`'s) includes every other member's: the same state, or a
/// version that dominates theirs (equal versions with different states are a conflict).
/// A member that lacks the object may have deleted it: nobody includes that.
fn includes_all(m: usize, state: &ObjectState, states: &[(usize, Option<ObjectState>)]) -> bool {
    states.iter().all(|(other, s)| match s {
        _ if *other == m => true,
        Some(s) => holds_all_of(state, s),
        None => false,
    })
}

/// The last resort once resolution could not settle the object in time (another
/// coordinator is still installing it, say): the first member holding the object whose
/// state no other member's dominates, not in `stale`. `None` when no such member holds it.
pub(crate) fn undominated(
    states: &[(usize, Option<ObjectState>)],
    stale: &[usize],
) -> Option<usize> {
    states
        .iter()
        .filter(|(m, _)| !stale.contains(m))
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
        assert_eq!(read_source(&same(&newest), &[]), ReadSource::Any);
        // The first member is ahead of a member being filled: read from it.
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, behind.clone())], &[]),
            ReadSource::From(0)
        );
        assert_eq!(
            read_source(
                &[
                    (0, newest.clone()),
                    (1, newest.clone()),
                    (2, behind.clone())
                ],
                &[]
            ),
            ReadSource::From(0)
        );
        // The first member is behind (a server back from a crash, being resolved): read
        // from the first one that has everything, never from the stale one.
        assert_eq!(
            read_source(
                &[
                    (0, behind.clone()),
                    (1, newest.clone()),
                    (2, newest.clone())
                ],
                &[]
            ),
            ReadSource::From(1)
        );
        assert_eq!(
            read_source(&[(0, behind.clone()), (3, newest.clone())], &[]),
            ReadSource::From(3)
        );
        // Concurrent, or some member lacks the object: resolve first.
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, other.clone())], &[]),
            ReadSource::Resolve
        );
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, None)], &[]),
            ReadSource::Resolve
        );
        assert_eq!(
            read_source(&[(0, None), (1, newest.clone())], &[]),
            ReadSource::Resolve
        );
        assert_eq!(read_source(&[], &[]), ReadSource::Resolve);
        // Equal versions with different states are a conflict.
        let twin = state(9, &[(1, 5), (2, 5)]);
        assert_eq!(
            read_source(&[(0, newest.clone()), (1, twin)], &[]),
            ReadSource::Resolve
        );
        // Last resort: the first holder nobody dominates.
        assert_eq!(
            undominated(&[(0, None), (1, behind.clone()), (2, newest.clone())], &[]),
            Some(2)
        );
        assert_eq!(
            undominated(&[(0, newest.clone()), (1, other.clone())], &[]),
            Some(0)
        );
        assert_eq!(undominated(&[(0, None), (1, None)], &[]), None);
    }

    /// The fault matrix's case: member 0 missed this client's rename (it was away), the
    /// others applied it. Member 0 alone, or member 0 equal to nobody fresh, is never read
    /// from; once it holds a fresh member's state it caught up.
    #[test]
    fn a_member_that_missed_this_clients_update_is_never_the_source() {
        let old = state(1, &[(1, 5), (2, 5)]);
        let new = state(2, &[(1, 5), (2, 6), (3, 6)]);
        // Alone in the AVSG, or all alike: still not the source.
        assert_eq!(read_source(&[(0, old.clone())], &[0]), ReadSource::Resolve);
        assert_eq!(undominated(&[(0, old.clone())], &[0]), None);
        // A member given as stale is never the source, whatever its state (`still_stale`
        // decides which are: below, one ahead of a fresh member is not).
        let ahead = state(3, &[(1, 9), (2, 9), (3, 9)]);
        assert_eq!(
            read_source(&[(0, ahead.clone()), (1, new.clone())], &[0]),
            ReadSource::Resolve
        );
        assert_eq!(
            undominated(&[(0, ahead.clone()), (1, new.clone())], &[0]),
            None
        );
        assert_eq!(
            read_source(&[(0, old.clone()), (1, new.clone())], &[0]),
            ReadSource::From(1)
        );
        // Caught up: it holds the fresh member's state.
        let states = [(0, new.clone()), (1, new.clone()), (2, old.clone())];
        assert_eq!(still_stale(&states, &[0], 3), Vec::<usize>::new());
        assert_eq!(still_stale(&states, &[0, 2], 3), vec![2]);
        // Ahead of a fresh member (it holds what that one holds, and more): caught up.
        let ahead = state(4, &[(1, 9), (2, 9), (3, 9)]);
        assert_eq!(
            still_stale(&[(0, ahead), (1, new.clone())], &[0], 3),
            Vec::<usize>::new()
        );
        // With nobody fresh to compare with, a marked member stays marked...
        assert_eq!(still_stale(&[(0, new.clone())], &[0], 3), vec![0]);
        assert_eq!(
            still_stale(&[(0, None), (1, new.clone())], &[0], 3),
            vec![0]
        );
        let two = [(0, new.clone()), (1, new.clone())];
        assert_eq!(still_stale(&two, &[0, 1], 3), vec![0, 1]);
        // ...unless the whole group holds one state: each marked for an update another
        // applied, and resolution merged them.
        let all = [(0, new.clone()), (1, new.clone()), (2, new)];
        assert_eq!(still_stale(&all, &[0, 1, 2], 3), Vec::<usize>::new());
    }
}
