//! What resolution does with one object, as a pure function of the replicas' views (rule
//! 6: any coordinator decides the same).
//!
//! Views with equal tags hold the same state and form a class. A class that is newer than
//! every other class (rule 5: vectors, or histories when the vectors look concurrent) wins
//! and is installed on the rest. Otherwise the classes nobody supersedes are concurrent:
//! one of them is kept under the object's name (the one with the most updates, then the
//! greatest tag), the other live ones become conflict copies beside it (rule 10), and a
//! delete that raced an update loses: the object comes back under a conflict name (rule 8).
//! Every replica ends with the merged version, so it dominates what each had.

use crate::conflict::is_conflict_name;
use codetta_wire::history::{Relation, VersionView, relate};
use codetta_wire::replica::AppliedRun;
use codetta_wire::replica::{ReplicaView, ViewBody};
use codetta_wire::{ContentTag, FileType, History, ReplicaId, UpdateId, VersionVector};

/// What to do with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every view has the same state and version.
    Settled,
    /// Same state everywhere, different versions: everyone gets `version`.
    Merge {
        version: VersionVector,
        history: History,
    },
    /// The state of view `winner` goes to every view in `stale`; everyone ends with
    /// `version`.
    Install {
        winner: usize,
        stale: Vec<usize>,
        version: VersionVector,
        history: History,
    },
    /// An object resolution began installing that no replica holds whole any more (a
    /// delete collected everywhere else, or a conflict copy whose source state moved on and
    /// is copied under another name): deleted on `targets`, where it is half made, with
    /// `version` (a new update of the coordinator's).
    Discard {
        targets: Vec<usize>,
        version: VersionVector,
        history: History,
    },
    /// Concurrent updates: view `keep`'s state stays under the object's fid and goes to
    /// `stale`; the states of `copies` become new objects beside it under conflict names.
    /// `resurrect`: the kept state raced a delete, so the object moves to a conflict name.
    Conflict {
        keep: usize,
        stale: Vec<usize>,
        copies: Vec<usize>,
        resurrect: bool,
        version: VersionVector,
        history: History,
    },
}

/// Views with one tag: their indexes, merged vector and history.
struct Class {
    tag: ContentTag,
    members: Vec<usize>,
    version: VersionVector,
    history: History,
    /// Client records the members applied (equal states: what one member has, all have).
    applied: Vec<AppliedRun>,
}

impl Class {
    fn view(&self) -> VersionView<'_> {
        VersionView {
            vector: &self.version,
            history: &self.history,
            tag: &self.tag,
            applied: &self.applied,
        }
    }
}

/// The classes no other class supersedes, where `a` supersedes `b` when `a` is newer than
/// `b`, directly or through others, and `b` is not newer than `a` in the same way.
fn unsuperseded(classes: &[Class]) -> Vec<usize> {
    let n = classes.len();
    let mut newer: Vec<Vec<bool>> = (0..n)
        .map(|a| {
            (0..n)
                .map(|b| a != b && relate(classes[a].view(), classes[b].view()) == Relation::Newer)
                .collect()
        })
        .collect();
    for k in 0..n {
        for a in 0..n {
            for b in 0..n {
                if newer[a][k] && newer[k][b] {
                    newer[a][b] = true;
                }
            }
        }
    }
    (0..n)
        .filter(|&c| (0..n).all(|d| !newer[d][c] || newer[c][d]))
        .collect()
}

/// The merge of `views`' vectors and histories: what every outcome's version includes.
pub(crate) fn merged<'v>(
    views: impl IntoIterator<Item = &'v ReplicaView>,
) -> (VersionVector, History) {
    let mut version = VersionVector::new();
    let mut history = History::new();
    for v in views {
        version.merge(&v.version);
        history.merge(&v.history);
    }
    (version, history)
}

/// Decides what resolution does with `views` (one per reachable replica). `coordinator`
/// is the replica deciding: a resurrection (a new state no replica had) is counted as its
/// update.
///
/// A replica that collected the object's tombstone (`Forgotten`) no longer knows what the
/// delete had seen, so a live version held elsewhere (a replica away past the GC horizon)
/// comes back under a conflict name, never by plain merge (rule 8); with nothing live
/// anywhere there is nothing to do (the remaining tombstones are collected in turn).
///
/// A replica an install was cut short on (`installing`: attributes or some blocks of
/// another state in, its version not yet) holds a mixture no update made: its state is
/// never installed elsewhere, kept, or copied; it receives the state decided among the
/// whole replicas, and its version counts in the outcome (what it held before the install
/// was older than what it was receiving, or was copied aside before it began). With no
/// whole replica among the views there is nothing to install: the object stays unserved
/// there until one answers.
pub fn decide(views: &[ReplicaView], coordinator: ReplicaId) -> Decision {
    let whole: Vec<usize> = (0..views.len()).filter(|&i| !views[i].installing).collect();
    if whole.len() == views.len() {
        return decide_whole(views, &[], coordinator);
    }
    let Some(&first) = whole.first() else {
        return Decision::Settled;
    };
    let partial: Vec<usize> = (0..views.len()).filter(|&i| views[i].installing).collect();
    let extra: Vec<&ReplicaView> = partial.iter().map(|&i| &views[i]).collect();
    let sub: Vec<ReplicaView> = whole.iter().map(|&i| views[i].clone()).collect();
    let at = |list: Vec<usize>| -> Vec<usize> { list.into_iter().map(|i| whole[i]).collect() };
    let with_partial = |list: Vec<usize>| -> Vec<usize> {
        let mut out = at(list);
        out.extend(partial.iter().copied());
        out
    };
    // Only a state (live or deleted) can replace a mixture: a replica that lacks the object
    // says nothing about it, and the mixture then stays unserved where it is.
    let holds_state = |i: usize| matches!(views[i].body, ViewBody::Live(_) | ViewBody::Deleted(_));
    match decide_whole(&sub, &extra, coordinator) {
        // The whole views agree: their state (live, or a delete) replaces the mixture.
        Decision::Settled | Decision::Merge { .. } => {
            let (mut version, mut history) = merged(views);
            if let Some(&winner) = whole.iter().find(|&&i| holds_state(i)) {
                return Decision::Install {
                    winner,
                    stale: partial.clone(),
                    version,
                    history,
                };
            }
            // No whole view holds the object. Collected elsewhere (a delete everyone
            // applied), or a half-made conflict copy (its source state moved on and is
            // copied under the new state's name): the mixture goes. Otherwise its source
            // may only be away: it stays, unserved, until that replica answers.
            let collected = whole
                .iter()
                .any(|&i| matches!(views[i].body, ViewBody::Forgotten));
            if !collected && views[first].fid.vnode & crate::conflict::CONFLICT_VNODE_BIT == 0 {
                return Decision::Settled;
            }
            version.bump(coordinator);
            history.record(
                UpdateId::resolution(views[first].fid, &views[partial[0]].tag.0),
                coordinator,
            );
            Decision::Discard {
                targets: partial.clone(),
                version,
                history,
            }
        }
        Decision::Install {
            winner,
            stale,
            version,
            history,
        } => Decision::Install {
            winner: whole[winner],
            stale: if holds_state(whole[winner]) {
                with_partial(stale)
            } else {
                at(stale)
            },
            version,
            history,
        },
        Decision::Conflict {
            keep,
            stale,
            copies,
            resurrect,
            version,
            history,
        } => Decision::Conflict {
            keep: whole[keep],
            stale: with_partial(stale),
            copies: at(copies),
            resurrect,
            version,
            history,
        },
        // (Only `decide` discards.)
        d @ Decision::Discard { .. } => d,
    }
}

/// [`decide`] among views that each hold a state an update made; `extra` are views whose
/// versions and histories count in the outcome but whose states do not.
fn decide_whole(views: &[ReplicaView], extra: &[&ReplicaView], coordinator: ReplicaId) -> Decision {
    let held: Vec<usize> = (0..views.len())
        .filter(|&i| !matches!(views[i].body, ViewBody::Forgotten))
        .collect();
    if held.len() == views.len() {
        return decide_held(views, extra, coordinator);
    }
    if held.iter().all(|&i| !views[i].is_live()) {
        return Decision::Settled;
    }
    let rest: Vec<ReplicaView> = held.iter().map(|&i| views[i].clone()).collect();
    let (mut version, mut history) = merged(views.iter().chain(extra.iter().copied()));
    let (keep, copies) = match decide_held(&rest, extra, coordinator) {
        Decision::Settled | Decision::Merge { .. } | Decision::Discard { .. } => (0, Vec::new()),
        Decision::Install { winner, .. } => (winner, Vec::new()),
        Decision::Conflict { keep, copies, .. } => (keep, copies),
    };
    if !rest[keep].is_live() {
        // A delete supersedes every live version still held: the replicas holding
        // something get it; the collected ones need nothing.
        return Decision::Install {
            winner: held[keep],
            stale: held.iter().copied().filter(|&i| i != held[keep]).collect(),
            version,
            history,
        };
    }
    version.bump(coordinator);
    history.record(
        UpdateId::resolution(rest[keep].fid, &rest[keep].tag.0),
        coordinator,
    );
    Decision::Conflict {
        keep: held[keep],
        stale: (0..views.len()).filter(|&i| i != held[keep]).collect(),
        copies: copies.into_iter().map(|c| held[c]).collect(),
        resurrect: true,
        version,
        history,
    }
}

/// [`decide_whole`] when every view still holds the object's state (none collected).
fn decide_held(views: &[ReplicaView], extra: &[&ReplicaView], coordinator: ReplicaId) -> Decision {
    let mut classes: Vec<Class> = Vec::new();
    let (mut version, mut history) = merged(views.iter().chain(extra.iter().copied()));
    for (i, v) in views.iter().enumerate() {
        match classes.iter_mut().find(|c| c.tag == v.tag) {
            Some(c) => {
                c.members.push(i);
                c.version.merge(&v.version);
                c.history.merge(&v.history);
                c.applied.extend(v.applied.iter().cloned());
            }
            None => classes.push(Class {
                tag: v.tag,
                members: vec![i],
                version: v.version.clone(),
                history: v.history.clone(),
                applied: v.applied.clone(),
            }),
        }
    }
    if classes.len() <= 1 {
        if views.iter().all(|v| v.version == version) {
            return Decision::Settled;
        }
        return Decision::Merge { version, history };
    }
    // Classes no other class supersedes. The relation is pairwise (rule 5's credits), so
    // it could in principle be cyclic: a class superseded only through a cycle it is in is
    // maximal too (its versions are kept, never installed over).
    let maximal = unsuperseded(&classes);
    let others = |keep: usize| -> Vec<usize> {
        classes
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != keep)
            .flat_map(|(_, class)| class.members.iter().copied())
            .collect()
    };
    if let [winner] = maximal[..] {
        let supersedes_all = (0..classes.len()).all(|d| {
            d == winner || relate(classes[winner].view(), classes[d].view()) == Relation::Newer
        });
        if supersedes_all {
            return Decision::Install {
                winner: classes[winner].members[0],
                stale: others(winner),
                version,
                history,
            };
        }
    }
    // Concurrent: keep the live class with the most updates (then the greatest tag); the
    // other live maximal classes become copies (files and symlinks only: directories merge
    // entry by entry, and their attributes simply follow the kept one).
    let live = |c: &Class| matches!(views[c.members[0]].body, ViewBody::Live(_));
    let rank = |c: &Class| (c.version.total(), c.tag.0);
    let keep = maximal
        .iter()
        .copied()
        .filter(|c| live(&classes[*c]))
        .max_by_key(|c| rank(&classes[*c]));
    let Some(keep) = keep else {
        // Only deletes and absences among the maximal classes: the greatest delete wins.
        let winner = maximal
            .iter()
            .copied()
            .max_by_key(|c| rank(&classes[*c]))
            .unwrap_or(0);
        return Decision::Install {
            winner: classes[winner].members[0],
            stale: others(winner),
            version,
            history,
        };
    };
    let copies: Vec<usize> = maximal
        .iter()
        .copied()
        .filter(|c| *c != keep && live(&classes[*c]))
        .filter(|c| {
            !matches!(
                views[classes[*c].members[0]].meta().map(|m| m.ftype),
                Some(FileType::Directory)
            )
        })
        .map(|c| classes[c].members[0])
        .collect();
    // A delete that raced an update loses, and the object comes back under a conflict
    // name. So does one already brought back on some replica (under a conflict name there)
    // whose kept state elsewhere still has its plain name: once resurrected it stays under
    // a conflict name until someone repairs it.
    let conflict_named = |c: &usize| {
        views[classes[*c].members[0]]
            .meta()
            .is_some_and(|m| is_conflict_name(&m.placement.name))
    };
    let resurrect = maximal
        .iter()
        .any(|c| matches!(views[classes[*c].members[0]].body, ViewBody::Deleted(_)))
        || (maximal.iter().any(conflict_named) && !conflict_named(&keep));
    if resurrect {
        // A new update of the coordinator's, remembered in the history too: a concurrent
        // client update that extended the old history must not make it look merely stale.
        version.bump(coordinator);
        let kept = &views[classes[keep].members[0]];
        history.record(UpdateId::resolution(kept.fid, &kept.tag.0), coordinator);
    }
    Decision::Conflict {
        keep: classes[keep].members[0],
        stale: others(keep),
        copies,
        resurrect,
        version,
        history,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    use super::*;
    use codetta_wire::replica::{ABSENT_TAG, ObjectMeta, Placement, deleted_tag};
    use codetta_wire::{Fid, Incarnation, Time, UpdateId, VolumeId};

    const FID: Fid = Fid {
        volume: VolumeId(1),
        vnode: 5,
        unique: 1,
    };

    fn u(seq: u64) -> UpdateId {
        UpdateId {
            incarnation: Incarnation(1),
            seq,
        }
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            ftype: FileType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
            placement: Placement {
                parent: Fid::root(VolumeId(1)),
                name: b"f".to_vec(),
            },
            target: Vec::new(),
            verifier: None,
            links: Vec::new(),
        }
    }

    /// A live view with tag byte `t`, counters `vv` and history `h` (applied by replica 1).
    fn live(t: u8, vv: &[(u64, u64)], h: &[u64]) -> ReplicaView {
        let mut version = VersionVector::new();
        for (r, c) in vv {
            version.set(ReplicaId(*r), *c);
        }
        let mut history = History::new();
        for s in h {
            history.record(u(*s), ReplicaId(1));
        }
        ReplicaView {
            fid: FID,
            version,
            history,
            tag: ContentTag([t; 32]),
            body: ViewBody::Live(meta()),
            applied: Vec::new(),
            installing: false,
        }
    }

    fn deleted(vv: &[(u64, u64)], h: &[u64]) -> ReplicaView {
        let mut v = live(0, vv, h);
        v.tag = deleted_tag(FID);
        v.body = ViewBody::Deleted(meta().placement);
        v
    }

    fn absent() -> ReplicaView {
        ReplicaView {
            fid: FID,
            version: VersionVector::new(),
            history: History::new(),
            tag: ABSENT_TAG,
            body: ViewBody::Absent,
            applied: Vec::new(),
            installing: false,
        }
    }

    fn forgotten() -> ReplicaView {
        ReplicaView {
            tag: deleted_tag(FID),
            body: ViewBody::Forgotten,
            ..absent()
        }
    }

    const ME: ReplicaId = ReplicaId(9);

    /// A view an install was cut short on: its state is never a source, it receives the
    /// state decided among the others, and its version counts in the outcome.
    #[test]
    fn a_view_cut_short_is_never_a_source() {
        let cut = |t: u8, vv: &[(u64, u64)], h: &[u64]| ReplicaView {
            installing: true,
            ..live(t, vv, h)
        };
        let whole = live(1, &[(2, 5)], &[5]);
        // Its vector even dominates: it still only receives.
        match decide(
            &[
                cut(9, &[(1, 3), (2, 6)], &[6]),
                whole.clone(),
                whole.clone(),
            ],
            ME,
        ) {
            Decision::Install {
                winner,
                stale,
                version,
                ..
            } => {
                assert_ne!(winner, 0);
                assert_eq!(stale, vec![0]);
                assert_eq!(version.get(ReplicaId(1)), 3);
                assert_eq!(version.get(ReplicaId(2)), 6);
            }
            other => panic!("{other:?}"),
        }
        // Concurrent whole views: the cut-short one is neither kept nor copied.
        match decide(
            &[
                cut(9, &[(1, 7)], &[7]),
                live(1, &[(2, 5)], &[5]),
                live(2, &[(3, 5)], &[15]),
            ],
            ME,
        ) {
            Decision::Conflict {
                keep,
                stale,
                copies,
                ..
            } => {
                assert_ne!(keep, 0);
                assert!(stale.contains(&0), "{stale:?}");
                assert!(!copies.contains(&0), "{copies:?}");
                assert_eq!(copies.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        // Nothing whole answered, or only replicas that lack the object: nothing replaces
        // the mixture, unless it is a half-made conflict copy (it goes).
        assert_eq!(decide(&[cut(9, &[(1, 3)], &[3])], ME), Decision::Settled);
        assert_eq!(
            decide(&[cut(9, &[(1, 3)], &[3]), absent()], ME),
            Decision::Settled
        );
        let copy = |v: ReplicaView| ReplicaView {
            fid: Fid {
                vnode: FID.vnode | crate::conflict::CONFLICT_VNODE_BIT,
                ..FID
            },
            ..v
        };
        match decide(&[copy(absent()), copy(cut(9, &[], &[]))], ME) {
            Decision::Discard {
                targets, version, ..
            } => {
                assert_eq!(targets, vec![1]);
                assert_eq!(version.get(ME), 1);
            }
            other => panic!("{other:?}"),
        }
        // Deleted and collected everywhere else: the mixture goes too.
        assert!(matches!(
            decide(&[forgotten(), cut(9, &[], &[])], ME),
            Decision::Discard { .. }
        ));
        // A delete among the whole views replaces it.
        assert!(matches!(
            decide(&[cut(9, &[(1, 1)], &[1]), deleted(&[(1, 2)], &[2])], ME),
            Decision::Install { winner: 1, .. }
        ));
    }

    #[test]
    fn a_live_version_against_a_collected_tombstone_comes_back_as_a_conflict() {
        // Even a version the collected delete may well have seen: nobody can tell now.
        let old = live(1, &[(1, 1)], &[1]);
        for views in [
            vec![forgotten(), old.clone(), absent()],
            vec![old.clone(), forgotten(), forgotten()],
        ] {
            let at = views.iter().position(|v| v.is_live()).unwrap();
            match decide(&views, ME) {
                Decision::Conflict {
                    keep,
                    stale,
                    resurrect: true,
                    version,
                    ..
                } => {
                    assert_eq!(keep, at);
                    assert_eq!(stale.len(), 2);
                    assert_eq!(version.get(ME), 1);
                }
                other => panic!("{other:?}"),
            }
        }
        // The resurrection is an update of its own: a client update made concurrently to
        // the old state (on a replica that never saw the delete) does not supersede it.
        let Decision::Conflict {
            version, history, ..
        } = decide(&[forgotten(), old.clone()], ME)
        else {
            panic!("resurrection expected")
        };
        let mut back = live(7, &[], &[]);
        back.version = version;
        back.history = history;
        if let ViewBody::Live(m) = &mut back.body {
            m.placement.name = b"f.conflict-01010101".to_vec();
        }
        let touched = live(8, &[(1, 1), (3, 1)], &[1, 5]);
        match decide(&[touched, back], ME) {
            Decision::Conflict {
                resurrect: true, ..
            } => {}
            other => panic!("{other:?}"),
        }
        // Nothing live: nothing to do while the other tombstones wait for collection.
        let d = deleted(&[(1, 2)], &[1, 2]);
        assert_eq!(decide(&[forgotten(), d.clone()], ME), Decision::Settled);
        assert_eq!(decide(&[absent(), forgotten()], ME), Decision::Settled);
        // A delete that supersedes the live version still wins among those holding one.
        match decide(&[forgotten(), d, old], ME) {
            Decision::Install {
                winner: 1, stale, ..
            } => assert_eq!(stale, vec![2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn equal_states_settle_or_merge() {
        let a = live(1, &[(1, 1), (2, 1)], &[1]);
        assert_eq!(decide(&[a.clone(), a.clone()], ME), Decision::Settled);
        let b = live(1, &[(2, 1)], &[1]);
        match decide(&[a.clone(), b], ME) {
            Decision::Merge { version, .. } => assert_eq!(version, a.version),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_newer_state_is_installed_on_stale_and_absent_replicas() {
        let new = live(2, &[(1, 2), (2, 2)], &[1, 2]);
        let old = live(1, &[(1, 1), (2, 1)], &[1]);
        let d = decide(&[old.clone(), new.clone(), absent(), old], ME);
        assert_eq!(
            d,
            Decision::Install {
                winner: 1,
                stale: vec![0, 3, 2],
                version: new.version.clone(),
                history: new.history.clone(),
            }
        );
        // The decision does not depend on the order of the views.
        match decide(
            &[absent(), new.clone(), live(1, &[(1, 1), (2, 1)], &[1])],
            ME,
        ) {
            Decision::Install { winner: 1, .. } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_delete_that_saw_the_last_update_wins() {
        let d = deleted(&[(1, 3)], &[1, 2]);
        let stale = live(1, &[(1, 2)], &[1]);
        match decide(&[stale, d], ME) {
            Decision::Install {
                winner: 1, stale, ..
            } => assert_eq!(stale, vec![0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_update_concurrent_with_a_delete_comes_back() {
        let d = deleted(&[(1, 2)], &[1, 2]);
        let updated = live(1, &[(2, 2)], &[1, 3]);
        match decide(&[d, updated], ME) {
            Decision::Conflict {
                keep: 1,
                resurrect: true,
                copies,
                version,
                ..
            } => {
                assert!(copies.is_empty());
                assert_eq!(version.get(ME), 1, "the resurrection is a new update");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn concurrent_updates_keep_both_deterministically() {
        let a = live(1, &[(1, 2)], &[1, 2]);
        let b = live(2, &[(2, 2)], &[1, 3]);
        let stale = live(3, &[(1, 1)], &[1]);
        let d1 = decide(&[a.clone(), b.clone(), stale.clone()], ME);
        let d2 = decide(&[b, stale, a], ME);
        match (d1, d2) {
            (
                Decision::Conflict {
                    keep: k1,
                    copies: c1,
                    stale: s1,
                    resurrect: false,
                    ..
                },
                Decision::Conflict {
                    keep: k2,
                    copies: c2,
                    ..
                },
            ) => {
                // Tag 2 ranks above tag 1 (same number of updates).
                assert_eq!((k1, c1.clone(), s1), (1, vec![0], vec![0, 2]));
                assert_eq!((k2, c2), (0, vec![2]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_object_resurrected_somewhere_stays_under_a_conflict_name() {
        // Replica 1 brought the object back as "f.conflict-..." (its version has no trace of
        // replica 2's later changes); replica 2 still has it as "f", changed concurrently.
        let mut back = live(1, &[(1, 3)], &[1, 2, 9]);
        if let ViewBody::Live(m) = &mut back.body {
            m.placement.name = b"f.conflict-0a0b0c0d".to_vec();
        }
        let plain = live(2, &[(2, 5)], &[1, 3, 4]);
        for views in [vec![back.clone(), plain.clone()], vec![plain, back]] {
            match decide(&views, ME) {
                Decision::Conflict { resurrect, .. } => {
                    assert!(resurrect, "the kept state moves to a conflict name");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
