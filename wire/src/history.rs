//! Update histories and the comparison of two replicas of one object (rule 5).
//!
//! Every object keeps the ids of the last [`HISTORY_LEN`] updates that changed it (each
//! client's newest kept longest: a replica reads its next record's predecessor there), each with
//! the replicas whose counters its version vector already holds for that update (its own at
//! the first phase, the others as the second phase, COP2, tells them). The counted sets let
//! a late COP2 and a resolution merge meet without counting one update twice.
//!
//! Each entry also says whether the update was its client's record *on* this object (the
//! record's `Op::object`, or the file a rename replaces a name of: a link of its client's
//! chain of records on the object: `chained`) and how far back the state is known to hold that chain (`from`): a replica
//! applies a client's record only over that client's previous record on the object (rule
//! 2), so a state with update (I, s) applied over (I, p) holds every chained update of
//! incarnation I on the object from p's `from` to s. Rule 5 uses that to see chained
//! updates a history forgot: without it, a replica that had an update only from
//! resolution, then eight of its own, looked as if it lacked the first. An update that
//! only touched the object (an entry of a directory, or a rename over one of a file's names
//! recorded before `codetta/6`) is never inferred this way: no chain passes through it.

use crate::ids::{ReplicaId, UpdateId};
use crate::replica::AppliedRun;
use crate::tag::ContentTag;
use crate::version::{VersionVector, VvOrdering};
use serde::{Deserialize, Serialize};

/// How many update ids an object remembers.
pub const HISTORY_LEN: usize = 8;

/// One remembered update.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistEntry {
    /// The update's id.
    pub id: UpdateId,
    /// Replicas whose counter in the object's vector includes this update.
    pub counted: Vec<ReplicaId>,
    /// The state holds every chained update of `id.incarnation` on the object with a
    /// sequence number from `from` to `id.seq` (`id.seq` alone when nothing more is known).
    pub from: u64,
    /// The update was its client's record on this object (a link of the client's chain).
    pub chained: bool,
}

impl HistEntry {
    /// True when the state this entry belongs to holds update `id` by this entry's span.
    fn covers(&self, id: UpdateId) -> bool {
        self.id.incarnation == id.incarnation && self.from <= id.seq && id.seq <= self.id.seq
    }
}

/// The last updates of an object, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct History {
    entries: Vec<HistEntry>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `replica` applied update `id` (and counted it in its own slot).
    pub fn record(&mut self, id: UpdateId, replica: ReplicaId) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            if !e.counted.contains(&replica) {
                e.counted.push(replica);
                e.counted.sort();
            }
            return;
        }
        self.entries.push(HistEntry {
            id,
            counted: vec![replica],
            from: id.seq,
            chained: false,
        });
        cut(&mut self.entries);
    }

    /// Update `id`, remembered here, was its client's record on this object, applied over
    /// a state holding every chained update of its incarnation on the object from `from`
    /// on (its predecessor's span; `None`: no predecessor known): the entry is chained and
    /// its span reaches back that far.
    pub fn chain(&mut self, id: UpdateId, from: Option<u64>) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.chained = true;
            if let Some(from) = from {
                e.from = e.from.min(from);
            }
        }
    }

    /// Where the span of remembered update `id` begins (see [`HistEntry::from`]).
    pub fn span_start(&self, id: UpdateId) -> Option<u64> {
        self.entries.iter().find(|e| e.id == id).map(|e| e.from)
    }

    /// True if the state holds chained update `id` as far as the entries tell: it is
    /// remembered, or lies in the span of a later update of the same incarnation. (For an
    /// update not chained on the object, only [`History::contains`] tells.)
    pub fn includes(&self, id: UpdateId) -> bool {
        self.entries.iter().any(|e| e.covers(id))
    }

    /// COP2: marks `replica`'s counter as including update `id`. True if the caller must now
    /// bump that counter (the update is remembered and was not yet counted for `replica`).
    pub fn count(&mut self, id: UpdateId, replica: ReplicaId) -> bool {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(e) if !e.counted.contains(&replica) => {
                e.counted.push(replica);
                e.counted.sort();
                true
            }
            _ => false,
        }
    }

    /// The most recent update, if any.
    pub fn latest(&self) -> Option<UpdateId> {
        self.entries.last().map(|e| e.id)
    }

    /// True if update `id` is remembered.
    pub fn contains(&self, id: UpdateId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// True if no update is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The remembered updates, oldest first.
    pub fn entries(&self) -> &[HistEntry] {
        &self.entries
    }

    /// True if every update remembered here is also remembered by `other`.
    pub fn is_subset_of(&self, other: &History) -> bool {
        self.entries.iter().all(|e| other.contains(e.id))
    }

    /// Combines two histories of replicas being made equal: the union of their updates
    /// (counted sets united), ordered by update id when neither contains the other, and cut
    /// to [`HISTORY_LEN`] (see `cut`). The result does not depend on the argument order.
    pub fn merge(&mut self, other: &History) {
        let same_ids = other.is_subset_of(self) && self.is_subset_of(other);
        let same_order = self
            .entries
            .iter()
            .map(|e| e.id)
            .eq(other.entries.iter().map(|e| e.id));
        let mut merged = if same_ids && !same_order {
            // The same updates applied in different orders: a canonical order.
            let mut all = self.entries.clone();
            all.sort_by_key(|e| e.id);
            all
        } else if other.is_subset_of(self) {
            self.entries.clone()
        } else if self.is_subset_of(other) {
            other.entries.clone()
        } else {
            let mut all = self.entries.clone();
            all.extend(
                other
                    .entries
                    .iter()
                    .filter(|e| !self.contains(e.id))
                    .cloned(),
            );
            all.sort_by_key(|e| e.id);
            all
        };
        for e in merged.iter_mut() {
            for src in self.entries.iter().chain(&other.entries) {
                if src.id == e.id {
                    e.counted.extend(&src.counted);
                    // Merged histories belong to a state that holds both (rule 5 found it
                    // holds everything either held): either span is true of it.
                    e.from = e.from.min(src.from);
                    e.chained |= src.chained;
                }
            }
            e.counted.sort();
            e.counted.dedup();
        }
        cut(&mut merged);
        self.entries = merged;
    }
}

/// Cuts `entries` to [`HISTORY_LEN`], oldest first, but keeping each incarnation's newest
/// entry while it can: a client's next record on the object names that one as its
/// predecessor, and a replica tells from it whether its state holds it (rule 2). Cut by
/// recency alone, a merge (ordered by update id) dropped one client's entries first, and a
/// shared file's writer found its predecessor forgotten everywhere.
fn cut(entries: &mut Vec<HistEntry>) {
    while entries.len() > HISTORY_LEN {
        let superseded = entries.iter().position(|e| {
            entries
                .iter()
                .any(|later| later.id.incarnation == e.id.incarnation && later.id.seq > e.id.seq)
        });
        entries.remove(superseded.unwrap_or(0));
    }
}

/// What one replica of an object says about its version.
#[derive(Debug, Clone, Copy)]
pub struct VersionView<'a> {
    /// The replica's version vector.
    pub vector: &'a VersionVector,
    /// The replica's update history.
    pub history: &'a History,
    /// The replica's content tag.
    pub tag: &'a ContentTag,
    /// Which client records this replica applied (see [`crate::replica::ReplicaView`]).
    pub applied: &'a [AppliedRun],
}

impl VersionView<'_> {
    /// True when this replica's state includes update `id`: it remembers it (or a later
    /// update of the same client on the object that was applied over it), or it applied
    /// that record.
    fn has(&self, entry: &HistEntry) -> bool {
        let id = entry.id;
        self.history.contains(id)
            || (entry.chained && self.history.includes(id))
            || self
                .applied
                .iter()
                .any(|r| r.incarnation == id.incarnation && r.has(id.seq))
    }

    /// True when this replica has every update `other` remembers.
    fn has_all_of(&self, other: &VersionView<'_>) -> bool {
        other.history.entries().iter().all(|e| self.has(e))
    }

    /// True when this replica has every update `other` remembers after the last one both
    /// remember (all of them when none is shared).
    fn has_what_followed(&self, other: &VersionView<'_>) -> bool {
        let entries = other.history.entries();
        let shared = entries
            .iter()
            .rposition(|e| self.history.contains(e.id))
            .map_or(0, |i| i + 1);
        entries.iter().skip(shared).all(|e| self.has(e))
    }

    /// This replica's vector with the second phases it is owed: for each update both
    /// replicas remember, a replica `other` counted for it and this one did not yet gets
    /// its counter bumped, as that COP2 will do when it arrives ([`History::count`]). Two
    /// replicas that applied the same last update, each told of nobody else yet, otherwise
    /// look concurrent, and a delete after it looked as if it raced it.
    fn vector_with_owed_counts(&self, other: &VersionView<'_>) -> VersionVector {
        let mut vector = self.vector.clone();
        for mine in self.history.entries() {
            let Some(theirs) = other.history.entries().iter().find(|e| e.id == mine.id) else {
                continue;
            };
            for replica in theirs.counted.iter().filter(|r| !mine.counted.contains(r)) {
                vector.bump(*replica);
            }
        }
        vector
    }
}

/// How replica `a` of an object relates to replica `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Equal replicated state (equal tags): merge the vectors, ship nothing.
    Same,
    /// `a` has everything `b` has and more: install `a` on `b`.
    Newer,
    /// `b` has everything `a` has and more.
    Older,
    /// Each has an update the other lacks (or equal vectors with different states).
    Conflict,
}

/// Rule 5. Equal tags mean equal state. Otherwise vectors decide. When they are equal or
/// look concurrent, first the second phases each is owed for updates both remember are
/// credited (as if they had arrived): if one then dominates and holds every update the
/// other remembers after the last one both remember, it is newer. (The credit alone is not
/// trusted: a history that forgot an update and had it back from a merge lists fewer
/// counters for it than its vector holds, and the credit would count one twice.) Else the
/// updates decide (a second phase that has not arrived for an update one of them forgot, or
/// never will: a replica that died right after applying a record is credited with it by
/// nobody else): a replica whose remembered updates the other has (remembers them, or
/// applied those records: histories keep only the last few, applied runs say the rest) is
/// merely stale.
pub fn relate(a: VersionView<'_>, b: VersionView<'_>) -> Relation {
    if a.tag == b.tag {
        return Relation::Same;
    }
    match a.vector.compare(b.vector) {
        VvOrdering::Dominates => return Relation::Newer,
        VvOrdering::DominatedBy => return Relation::Older,
        VvOrdering::Equal | VvOrdering::Concurrent => {}
    }
    let (a_vector, b_vector) = (a.vector_with_owed_counts(&b), b.vector_with_owed_counts(&a));
    match a_vector.compare(&b_vector) {
        VvOrdering::Dominates if a.has_what_followed(&b) => return Relation::Newer,
        VvOrdering::DominatedBy if b.has_what_followed(&a) => return Relation::Older,
        _ => {}
    }
    match (a.has_all_of(&b), b.has_all_of(&a)) {
        (true, false) => Relation::Newer,
        (false, true) => Relation::Older,
        _ => Relation::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Incarnation;

    fn u(seq: u64) -> UpdateId {
        UpdateId {
            incarnation: Incarnation(1),
            seq,
        }
    }

    fn vv(counts: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for (r, c) in counts {
            v.set(ReplicaId(*r), *c);
        }
        v
    }

    fn hist(seqs: &[u64], by: u64) -> History {
        let mut h = History::new();
        for s in seqs {
            h.record(u(*s), ReplicaId(by));
        }
        h
    }

    fn rel(a: (&VersionVector, &History, u8), b: (&VersionVector, &History, u8)) -> Relation {
        relate(
            VersionView {
                vector: a.0,
                history: a.1,
                tag: &ContentTag([a.2; 32]),
                applied: &[],
            },
            VersionView {
                vector: b.0,
                history: b.1,
                tag: &ContentTag([b.2; 32]),
                applied: &[],
            },
        )
    }

    /// A replica that applied record 64 and died before its answer reached the client: it
    /// counted itself, nobody else did, so the vectors look concurrent; the others, who went
    /// on to record 256, applied 64 too though their histories forgot it.
    #[test]
    fn an_update_the_other_applied_and_forgot_is_merely_stale() {
        let mut dead = History::new();
        dead.record(u(63), ReplicaId(1));
        dead.record(u(64), ReplicaId(1));
        let mut alive = History::new();
        for s in 249..=256 {
            alive.record(u(s), ReplicaId(2));
        }
        let (old, new) = (vv(&[(1, 64), (2, 63)]), vv(&[(1, 63), (2, 256)]));
        let view = |v, h, t, g| VersionView {
            vector: v,
            history: h,
            tag: t,
            applied: g,
        };
        let (ta, tb) = (ContentTag([1; 32]), ContentTag([2; 32]));
        let run = |gaps: Vec<(u64, u64)>| AppliedRun {
            incarnation: Incarnation(1),
            floor: 1,
            high: 256,
            gaps,
        };
        let ran = &[run(vec![])];
        assert_eq!(
            relate(view(&new, &alive, &tb, ran), view(&old, &dead, &ta, &[])),
            Relation::Newer
        );
        // Had the other replica missed or refused record 64, the dead one's update would
        // be its own: conflict. Nothing known is the same.
        let refused = [run(vec![(60, 70)])];
        for applied in [&refused[..], &[]] {
            assert_eq!(
                relate(
                    view(&new, &alive, &tb, applied),
                    view(&old, &dead, &ta, &[])
                ),
                Relation::Conflict
            );
        }
        // Equal vectors, different states: the updates decide too.
        let before = hist(&[1], 1);
        let after = hist(&[1, 2], 2);
        assert_eq!(
            relate(view(&old, &after, &tb, &[]), view(&old, &before, &ta, &[])),
            Relation::Newer
        );
    }

    /// The fault matrix's false conflict: replica B had updates 1414 and 1451 of a file only
    /// from resolution, then applied 1466.. itself, each over the one before; its history
    /// forgot 1414 and 1451. Replica A stopped at 1511. B holds everything A holds.
    #[test]
    fn updates_applied_over_their_predecessors_hold_what_the_history_forgot() {
        // Each update applied over the one before it.
        let chain = |h: &mut History, seqs: &[u64], by: u64| {
            for s in seqs {
                let before = h.latest();
                h.record(u(*s), ReplicaId(by));
                let from = before.map(|b| h.span_start(b).unwrap_or(b.seq));
                h.chain(u(*s), from);
            }
        };
        let mut a = History::new();
        chain(&mut a, &[1414, 1451, 1466, 1480, 1490, 1500, 1505, 1511], 1);
        let mut b = History::new();
        b.merge(&a);
        chain(&mut b, &[1520, 1530, 1535, 1540, 1544, 1547, 1549, 1550], 2);
        assert!(!b.contains(u(1414)) && b.includes(u(1414)));
        let (va, vb) = (vv(&[(1, 9), (2, 1)]), vv(&[(1, 8), (2, 9)]));
        assert_eq!(rel((&vb, &b, 2), (&va, &a, 1)), Relation::Newer);
        // Without the spans (updates applied with no known predecessor) it is a conflict.
        let mut plain = History::new();
        plain.merge(&a);
        for s in [1520, 1530, 1535, 1540, 1544, 1547, 1549, 1550] {
            plain.record(u(s), ReplicaId(2));
        }
        assert_eq!(rel((&vb, &plain, 2), (&va, &a, 1)), Relation::Conflict);
        // An update of the same client that only touched the file (recorded unchained), not
        // chained on it, is not inferred from a span.
        let mut touched = a.clone();
        touched.record(u(1512), ReplicaId(1));
        assert_eq!(
            rel((&vb, &b, 2), (&vv(&[(1, 10)]), &touched, 1)),
            Relation::Conflict
        );
        // A span never reaches another incarnation's updates.
        let other = UpdateId {
            incarnation: Incarnation(2),
            seq: 1500,
        };
        assert!(!b.includes(other));
    }

    /// The interleaving simulation's seed 259: replicas A and B both applied update 7, and
    /// neither heard of the other's (its COP2 was lost with the client). A then applied
    /// more, the last of them a delete, and forgot B's older updates 5 and 6 (it had them
    /// from resolution). Compared as they stand, B's counter 2 is ahead for update 7 alone;
    /// A holds everything B holds.
    #[test]
    fn a_second_phase_both_still_await_does_not_make_a_conflict() {
        let mut b = hist(&[5, 6], 2);
        let mut a = b.clone();
        b.record(u(7), ReplicaId(2));
        a.record(u(7), ReplicaId(1));
        for s in 8..=14 {
            a.record(u(s), ReplicaId(1));
        }
        assert!(!a.contains(u(5)) && !a.includes(u(5)));
        let (va, vb) = (vv(&[(1, 8), (2, 2)]), vv(&[(2, 3)]));
        assert_eq!(va.compare(&vb), VvOrdering::Concurrent);
        assert_eq!(rel((&va, &a, 1), (&vb, &b, 2)), Relation::Newer);
        assert_eq!(rel((&vb, &b, 2), (&va, &a, 1)), Relation::Older);
        // An update of B's after 7 that A lacks is still a conflict: only the counts of
        // updates both remember are credited.
        b.record(u(20), ReplicaId(2));
        let vb = vv(&[(2, 4)]);
        assert_eq!(rel((&va, &a, 1), (&vb, &b, 2)), Relation::Conflict);
        // Nor when A's vector already holds B's count of 7 though its entry does not say so
        // (a history that forgot 7 and had it back from a merge): credited once more, A
        // would dominate and B's update 20 would be lost. A lacks 20, which followed 7.
        let va = vv(&[(1, 8), (2, 3)]);
        assert_eq!(rel((&va, &a, 1), (&vb, &b, 2)), Relation::Conflict);
        assert_eq!(rel((&vb, &b, 2), (&va, &a, 1)), Relation::Conflict);
    }

    /// The fault matrix's case: one client's write of a shared file, then many of
    /// another's; merged (ordered by update id) or recorded, the first client's newest
    /// entry stays, so a replica still tells its next record's predecessor held.
    #[test]
    fn each_clients_newest_entry_outlives_the_others_older_ones() {
        let other = |seq| UpdateId {
            incarnation: Incarnation(9),
            seq,
        };
        let mut h = History::new();
        h.record(u(5), ReplicaId(1));
        for s in 0..20 {
            h.record(other(s), ReplicaId(1));
        }
        assert_eq!(h.entries().len(), HISTORY_LEN);
        assert!(h.contains(u(5)) && h.contains(other(19)) && !h.contains(other(12)));
        let mut a = History::new();
        a.record(u(4), ReplicaId(1));
        a.record(u(5), ReplicaId(1));
        let mut b = History::new();
        for s in 0..8 {
            b.record(other(s), ReplicaId(2));
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.entries().len(), HISTORY_LEN);
        assert!(ab.contains(u(5)) && !ab.contains(u(4)), "{ab:?}");
        assert!(ab.contains(other(7)) && !ab.contains(other(0)));
    }

    #[test]
    fn history_is_bounded_and_counts_once() {
        let mut h = History::new();
        for s in 0..20 {
            h.record(u(s), ReplicaId(1));
        }
        assert_eq!(h.entries().len(), HISTORY_LEN);
        assert_eq!(h.latest(), Some(u(19)));
        assert!(!h.contains(u(11)) && h.contains(u(12)));
        assert!(h.count(u(19), ReplicaId(2)));
        assert!(
            !h.count(u(19), ReplicaId(2)),
            "a second COP2 counts nothing"
        );
        assert!(!h.count(u(19), ReplicaId(1)), "the applier counted itself");
        assert!(
            !h.count(u(3), ReplicaId(2)),
            "forgotten updates are not counted"
        );
    }

    #[test]
    fn merge_unites_counted_sets_in_either_order() {
        let a = hist(&[1, 2], 1);
        let b = hist(&[1, 2, 3], 2);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.entries()[0].counted, vec![ReplicaId(1), ReplicaId(2)]);
        assert_eq!(ab.entries()[2].counted, vec![ReplicaId(2)]);
        let c = hist(&[1, 5], 3);
        let mut ac = a.clone();
        ac.merge(&c);
        let mut ca = c.clone();
        ca.merge(&a);
        assert_eq!(ac, ca, "concurrent histories merge the same either way");
        assert_eq!(ac.latest(), Some(u(5)));
    }

    fn hist_strategy() -> impl proptest::strategy::Strategy<Value = History> {
        use proptest::prelude::*;
        proptest::collection::vec((0u64..12, 0u64..3), 0..12).prop_map(|items| {
            let mut h = History::new();
            for (seq, r) in items {
                h.record(u(seq), ReplicaId(r));
            }
            h
        })
    }

    proptest::proptest! {
        /// Merging histories is order-independent and idempotent, keeps at most
        /// HISTORY_LEN entries, and a history merged with one it contains is unchanged in
        /// its ids.
        #[test]
        fn merge_laws(a in hist_strategy(), b in hist_strategy()) {
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            proptest::prop_assert_eq!(&ab, &ba);
            let mut aa = a.clone();
            aa.merge(&a);
            proptest::prop_assert_eq!(&aa, &a);
            proptest::prop_assert!(ab.entries().len() <= HISTORY_LEN);
        }

        /// `relate` is antisymmetric: what `a` is to `b`, `b` is the mirror of to `a`.
        #[test]
        fn relate_is_antisymmetric(a in hist_strategy(), b in hist_strategy(), ta in 0u8..3, tb in 0u8..3, ca in 0u64..3, cb in 0u64..3) {
            let va = vv(&[(1, ca)]);
            let vb = vv(&[(2, cb)]);
            let ab = rel((&va, &a, ta), (&vb, &b, tb));
            let ba = rel((&vb, &b, tb), (&va, &a, ta));
            let mirror = match ab {
                Relation::Newer => Relation::Older,
                Relation::Older => Relation::Newer,
                other => other,
            };
            proptest::prop_assert_eq!(ba, mirror);
        }
    }

    #[test]
    fn relations() {
        let h12 = hist(&[1, 2], 1);
        let h1 = hist(&[1], 1);
        let h13 = hist(&[1, 3], 2);
        // Equal tags: same state whatever the vectors say.
        assert_eq!(
            rel((&vv(&[(1, 1)]), &h1, 7), (&vv(&[(2, 1)]), &h1, 7)),
            Relation::Same
        );
        // Vectors decide when ordered.
        let big = vv(&[(1, 2), (2, 2)]);
        let small = vv(&[(1, 1), (2, 1)]);
        assert_eq!(rel((&big, &h12, 1), (&small, &h1, 2)), Relation::Newer);
        assert_eq!(rel((&small, &h1, 2), (&big, &h12, 1)), Relation::Older);
        // Equal vectors, different states: a conflict.
        assert_eq!(rel((&big, &h12, 1), (&big, &h12, 2)), Relation::Conflict);
        // Concurrent-looking vectors (COP2 not arrived): the history shows who is stale.
        let a = vv(&[(1, 2)]);
        let b = vv(&[(2, 1)]);
        assert_eq!(rel((&a, &h12, 1), (&b, &h1, 2)), Relation::Newer);
        assert_eq!(rel((&b, &h1, 2), (&a, &h12, 1)), Relation::Older);
        // A replica that missed update 1 but applied 2 is not newer than one that has both.
        let missed = hist(&[2], 1);
        assert_eq!(rel((&a, &missed, 1), (&b, &h12, 2)), Relation::Older);
        // Truly concurrent updates (each replica applied 1 and one more).
        let b2 = vv(&[(2, 2)]);
        assert_eq!(rel((&a, &h12, 1), (&b2, &h13, 2)), Relation::Conflict);
    }
}
