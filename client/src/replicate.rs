//! Write-all bookkeeping for one volume's replica group, with no I/O (rules 1, 2 and 14).
//!
//! The modify log's records go to every member of the AVSG in sequenced batches, one batch
//! in flight per member. A record is *complete* once every member still in the AVSG has
//! applied it and at least `min_copies` members have: then its caller is answered, it
//! leaves the log, and its second phase (COP2: which replicas applied it) is queued for
//! each of those replicas, to ride on their next batch. A member whose call fails leaves
//! the AVSG at once (the records stop waiting for it) and rejoins when a probe reaches it;
//! it then continues from the oldest record the log still holds, the server noting what it
//! missed. The caller drives this machine: the client's shipper tasks with real links, the
//! simulation with in-memory stores.

use codetta_wire::update::{Cop2, Op};
use codetta_wire::{FsError, Incarnation, RecordOutcome, ReplicaId, VolumeId};
use std::collections::VecDeque;

/// Most COP2 items kept for one member (older ones are dropped: the histories then explain
/// the vectors, at the cost of a resolution that merges them).
const MAX_COP2_OUTBOX: usize = 4096;

/// One member of the volume's replica group, as the shipper sees it.
#[derive(Debug, Clone)]
struct Member {
    replica: ReplicaId,
    in_avsg: bool,
    /// Left the group (the catalogue removed it): never back in the AVSG.
    retired: bool,
    /// Highest sequence number this member is known to have applied.
    acked: Option<u64>,
    in_flight: bool,
    cop2: VecDeque<Cop2>,
}

impl Member {
    fn new(replica: ReplicaId) -> Member {
        Member {
            replica,
            in_avsg: true,
            retired: false,
            acked: None,
            in_flight: false,
            cop2: VecDeque::new(),
        }
    }
}

/// What to send to one member next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Records `first..=last` (empty when `first > last`: a COP2-only batch).
    pub first: u64,
    pub last: u64,
    /// The oldest record the log holds (see `Request::Ship`).
    pub log_start: u64,
    pub cop2: Vec<Cop2>,
}

impl BatchPlan {
    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        usize::try_from((self.last + 1).saturating_sub(self.first)).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record that is done: its answer, and whether the replicas answered differently
/// (then they need resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub seq: u64,
    pub outcome: RecordOutcome,
    pub divergent: bool,
    /// The replicas that applied it.
    pub applied_by: Vec<ReplicaId>,
    /// Every replica's answer.
    pub answers: Vec<(ReplicaId, RecordOutcome)>,
}

/// Per-record answers so far: (member index, outcome, prior digest).
#[derive(Debug, Clone, Default)]
struct Progress {
    answers: Vec<(usize, RecordOutcome, u64)>,
}

/// The write-all state of one client incarnation and one volume.
#[derive(Debug, Clone)]
pub struct Shipping {
    incarnation: Incarnation,
    volume: VolumeId,
    members: Vec<Member>,
    min_copies: usize,
    /// Sequence number of `pending[0]`: the oldest record not yet complete.
    front: u64,
    pending: VecDeque<Progress>,
}

impl Shipping {
    /// A group of `members` (all in the AVSG at first, nothing known applied), with records
    /// from `front` on to ship.
    pub fn new(
        incarnation: Incarnation,
        volume: VolumeId,
        members: &[ReplicaId],
        min_copies: usize,
        front: u64,
    ) -> Shipping {
        Shipping {
            incarnation,
            volume,
            members: members.iter().map(|r| Member::new(*r)).collect(),
            min_copies: min_copies.max(1),
            front,
            pending: VecDeque::new(),
        }
    }

    /// Number of members in the group.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The replica id of member `m`.
    pub fn replica(&self, m: usize) -> Option<ReplicaId> {
        self.members.get(m).map(|x| x.replica)
    }

    /// Whether member `m` is in the AVSG.
    pub fn in_avsg(&self, m: usize) -> bool {
        self.members.get(m).is_some_and(|x| x.in_avsg)
    }

    /// Members in the AVSG, by index.
    pub fn avsg(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|m| self.in_avsg(*m))
            .collect()
    }

    /// The oldest record not yet complete (the next sequence number if none is pending).
    pub fn front(&self) -> u64 {
        self.front
    }

    /// Records not yet complete.
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }

    /// One past the newest logged record.
    fn end(&self) -> u64 {
        self.front + self.pending.len() as u64
    }

    /// Notes that record `seq` (the next one) is in the log.
    pub fn logged(&mut self, seq: u64) {
        debug_assert_eq!(seq, self.end(), "records are logged in order");
        self.pending.push_back(Progress::default());
    }

    /// Whether member `m` has second-phase items waiting.
    pub fn has_cop2(&self, m: usize) -> bool {
        self.members.get(m).is_some_and(|x| !x.cop2.is_empty())
    }

    /// The next batch for member `m`: up to `max_records` records it has not applied yet
    /// plus its queued COP2 items (sent without records only if `cop2_alone`); `None` if it
    /// is out of the AVSG, has a batch in flight or has nothing to receive. Marks the batch
    /// in flight.
    pub fn plan(&mut self, m: usize, max_records: usize, cop2_alone: bool) -> Option<BatchPlan> {
        let front = self.front;
        let end = self.end();
        let member = self.members.get_mut(m)?;
        if !member.in_avsg || member.in_flight {
            return None;
        }
        let first = member.acked.map_or(front, |a| (a + 1).max(front));
        let last = (first + max_records as u64).min(end).saturating_sub(1);
        let has_records = first < end && max_records > 0;
        if !has_records && (member.cop2.is_empty() || !cop2_alone) {
            return None;
        }
        member.in_flight = true;
        Some(BatchPlan {
            first,
            last: if has_records { last } else { first - 1 },
            log_start: front,
            cop2: member.cop2.drain(..).collect(),
        })
    }

    /// Member `m` applied `plan`, answering `outcomes` and `priors` (one each per record;
    /// see `ReplyBody::Shipped`). Returns the records now complete, oldest first.
    pub fn applied(
        &mut self,
        m: usize,
        plan: &BatchPlan,
        outcomes: &[RecordOutcome],
        priors: &[u64],
    ) -> Vec<Completed> {
        let front = self.front;
        let Some(member) = self.members.get_mut(m) else {
            return Vec::new();
        };
        member.in_flight = false;
        // A member that left the group while this batch was in flight stays out.
        member.in_avsg = !member.retired;
        if !plan.is_empty() {
            member.acked = Some(member.acked.map_or(plan.last, |a| a.max(plan.last)));
        }
        for (i, outcome) in outcomes.iter().enumerate() {
            let seq = plan.first + i as u64;
            if seq < front {
                continue;
            }
            if let Some(p) = self.pending.get_mut((seq - front) as usize)
                && !p.answers.iter().any(|(who, _, _)| *who == m)
            {
                let prior = priors.get(i).copied().unwrap_or(0);
                p.answers.push((m, outcome.clone(), prior));
            }
        }
        self.complete()
    }

    /// A call to member `m` failed (or missed its deadline): it leaves the AVSG, and its
    /// COP2 items return to its queue so that they reach it later. Returns the records that
    /// no longer wait for it.
    pub fn failed(&mut self, m: usize, plan: Option<BatchPlan>) -> Vec<Completed> {
        if let Some(member) = self.members.get_mut(m) {
            member.in_flight = false;
            member.in_avsg = false;
            if let Some(plan) = plan {
                for item in plan.cop2.into_iter().rev() {
                    member.cop2.push_front(item);
                }
                while member.cop2.len() > MAX_COP2_OUTBOX {
                    member.cop2.pop_front();
                }
            }
        }
        self.complete()
    }

    /// A probe reached member `m`: it is back in the AVSG (unless it left the group).
    pub fn rejoined(&mut self, m: usize) {
        if let Some(member) = self.members.get_mut(m) {
            member.in_avsg = !member.retired;
        }
    }

    /// Member `m` sent `plan` back unapplied (it refused the batch whole, e.g. for a stale
    /// catalogue epoch): it stays in the AVSG and gets the same records again.
    pub fn returned(&mut self, m: usize, plan: BatchPlan) {
        if let Some(member) = self.members.get_mut(m) {
            member.in_flight = false;
            for item in plan.cop2.into_iter().rev() {
                member.cop2.push_front(item);
            }
            while member.cop2.len() > MAX_COP2_OUTBOX {
                member.cop2.pop_front();
            }
        }
    }

    /// A replica joined the group (rule 13): it gets every record from the oldest one
    /// still in the log on (it missed the earlier ones; resolution fills it). Returns its
    /// member index (indexes never change).
    pub fn join(&mut self, replica: ReplicaId) -> usize {
        self.members.push(Member::new(replica));
        self.members.len() - 1
    }

    /// Member `m` left the group: records stop waiting for it, for good. Returns the
    /// records that no longer wait for it.
    pub fn retire(&mut self, m: usize) -> Vec<Completed> {
        if let Some(member) = self.members.get_mut(m) {
            member.retired = true;
            member.in_avsg = false;
            member.in_flight = false;
            member.cop2.clear();
        }
        self.complete()
    }

    /// Whether member `m` left the group.
    pub fn is_retired(&self, m: usize) -> bool {
        self.members.get(m).is_none_or(|x| x.retired)
    }

    /// Pops every complete record off the front.
    fn complete(&mut self) -> Vec<Completed> {
        let mut done = Vec::new();
        let avsg = self.avsg();
        while let Some(p) = self.pending.front() {
            let seq = self.front;
            let all_answered = !avsg.is_empty()
                && avsg
                    .iter()
                    .all(|m| self.members[*m].acked.is_some_and(|a| a >= seq));
            // Copies on members that left the group do not count, and a group that shrank
            // below `min_copies` asks for what it has.
            let live = self.members.iter().filter(|m| !m.retired).count();
            let copies = p
                .answers
                .iter()
                .filter(|(m, _, _)| !self.members[*m].retired)
                .count();
            if !all_answered || copies < self.min_copies.min(live.max(1)) {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.front += 1;
            done.push(self.finish(seq, p));
        }
        done
    }

    /// The answer of a complete record and the COP2 items it leaves for its appliers.
    ///
    /// Only replicas that applied the record to identical objects (equal prior digests)
    /// count each other: they went from one state to the same next state. A replica that
    /// applied it to a different state is not counted by the others, so no vector ever
    /// claims an update it does not reflect; resolution merges them later.
    fn finish(&mut self, seq: u64, mut p: Progress) -> Completed {
        p.answers.sort_by_key(|(m, _, _)| *m);
        let plain: Vec<(usize, RecordOutcome)> =
            p.answers.iter().map(|(m, o, _)| (*m, o.clone())).collect();
        let outcome = preferred(&plain);
        let divergent = plain.iter().any(|(_, o)| *o != plain[0].1);
        let appliers: Vec<(usize, u64)> = p
            .answers
            .iter()
            .filter(|(_, o, prior)| counts_as_applied(o) && *prior != 0)
            .map(|(m, _, prior)| (*m, *prior))
            .collect();
        // The largest group with one prior (ties: the one holding the first member).
        let mut best: Vec<usize> = Vec::new();
        for (_, prior) in &appliers {
            let group: Vec<usize> = appliers
                .iter()
                .filter(|(_, p)| p == prior)
                .map(|(m, _)| *m)
                .collect();
            if group.len() > best.len() {
                best = group;
            }
        }
        let counted: Vec<ReplicaId> = best.iter().map(|m| self.members[*m].replica).collect();
        let applied_by: Vec<ReplicaId> = plain
            .iter()
            .filter(|(_, o)| counts_as_applied(o))
            .map(|(m, _)| self.members[*m].replica)
            .collect();
        if counted.len() > 1 {
            for m in &best {
                let (incarnation, volume) = (self.incarnation, self.volume);
                let outbox = &mut self.members[*m].cop2;
                match outbox.back_mut() {
                    Some(last) if last.applied_by == counted && last.last + 1 == seq => {
                        last.last = seq;
                    }
                    _ => {
                        outbox.push_back(Cop2 {
                            incarnation,
                            volume,
                            first: seq,
                            last: seq,
                            applied_by: counted.clone(),
                        });
                        if outbox.len() > MAX_COP2_OUTBOX {
                            outbox.pop_front();
                        }
                    }
                }
            }
        }
        let answers = plain
            .iter()
            .map(|(m, o)| (self.members[*m].replica, o.clone()))
            .collect();
        Completed {
            seq,
            outcome,
            divergent,
            applied_by,
            answers,
        }
    }
}

/// Whether an answer means the replica changed something (a refused record changed
/// nothing, so there is nothing to count).
fn counts_as_applied(outcome: &RecordOutcome) -> bool {
    outcome.is_ok()
}

/// The answer a caller gets when replicas differ: a success if any replica succeeded
/// (the others are stale and will be resolved), otherwise the first member's error; a
/// `Diverged` answer only if no replica gave another.
fn preferred(answers: &[(usize, RecordOutcome)]) -> RecordOutcome {
    if let Some((_, ok)) = answers.iter().find(|(_, o)| o.is_ok()) {
        return ok.clone();
    }
    answers
        .iter()
        .find(|(_, o)| *o != Err(FsError::Diverged))
        .or(answers.first())
        .map(|(_, o)| o.clone())
        .unwrap_or(Err(FsError::Diverged))
}

/// The record undoing an exclusive create (rule 9) that some replicas made and another
/// refused with EEXIST: a remove conditional on the name still leading to the new object.
pub fn exclusive_undo(op: &Op, answers: &[(codetta_wire::ReplicaId, RecordOutcome)]) -> Option<Op> {
    use codetta_wire::update::CreateHow;
    let (dir, name, fid, is_dir) = match op {
        Op::Create {
            dir,
            name,
            fid,
            how: CreateHow::Guarded | CreateHow::Exclusive(_),
            ..
        }
        | Op::Symlink { dir, name, fid, .. }
        | Op::Mknod { dir, name, fid, .. } => (*dir, name.clone(), *fid, false),
        Op::Mkdir { dir, name, fid, .. } => (*dir, name.clone(), *fid, true),
        _ => return None,
    };
    let refused = answers.iter().any(|(_, o)| *o == Err(FsError::Exists));
    let made = answers.iter().any(|(_, o)| *o == Ok(Some(fid)));
    if !(refused && made) {
        return None;
    }
    Some(if is_dir {
        Op::Rmdir { dir, name, fid }
    } else {
        Op::Remove { dir, name, fid }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use codetta_wire::Fid;

    fn group(n: u64, min_copies: usize) -> Shipping {
        let members: Vec<ReplicaId> = (1..=n).map(ReplicaId).collect();
        Shipping::new(Incarnation(9), VolumeId(3), &members, min_copies, 1)
    }

    fn ok(n: usize) -> Vec<RecordOutcome> {
        vec![Ok(None); n]
    }

    /// Equal prior digests: every replica applied the records to the same state.
    fn same(n: usize) -> Vec<u64> {
        vec![7; n]
    }

    #[test]
    fn a_record_completes_when_every_avsg_member_applied_it() {
        let mut s = group(3, 1);
        for seq in 1..=3 {
            s.logged(seq);
        }
        let p0 = s.plan(0, 10, true).unwrap();
        assert_eq!((p0.first, p0.last, p0.log_start), (1, 3, 1));
        assert!(
            s.plan(0, 10, true).is_none(),
            "one batch in flight per member"
        );
        assert!(
            s.applied(0, &p0, &ok(3), &same(3)).is_empty(),
            "1 and 2 have not answered"
        );
        let p1 = s.plan(1, 2, true).unwrap();
        assert_eq!((p1.first, p1.last), (1, 2));
        assert!(s.applied(1, &p1, &ok(2), &same(2)).is_empty());
        let p2 = s.plan(2, 10, true).unwrap();
        let done = s.applied(2, &p2, &ok(3), &same(3));
        assert_eq!(done.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            done[0].applied_by,
            vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)]
        );
        assert_eq!(s.front(), 3);
        // Member 1 still owes record 3.
        let p1 = s.plan(1, 10, true).unwrap();
        assert_eq!((p1.first, p1.last), (3, 3));
        assert_eq!(p1.cop2.len(), 1, "COP2 of 1..=2 rides along");
        assert_eq!((p1.cop2[0].first, p1.cop2[0].last), (1, 2));
        let done = s.applied(1, &p1, &ok(1), &same(1));
        assert_eq!(done.len(), 1);
        assert_eq!(s.backlog(), 0);
    }

    #[test]
    fn a_failed_member_leaves_the_avsg_and_misses_the_cop2() {
        let mut s = group(3, 1);
        s.logged(1);
        let plans: Vec<BatchPlan> = (0..3).map(|m| s.plan(m, 10, true).unwrap()).collect();
        assert!(s.applied(0, &plans[0], &ok(1), &same(1)).is_empty());
        assert!(s.applied(1, &plans[1], &ok(1), &same(1)).is_empty());
        let done = s.failed(2, Some(plans[2].clone()));
        assert_eq!(done.len(), 1, "no longer waits for the failed member");
        assert_eq!(done[0].applied_by, vec![ReplicaId(1), ReplicaId(2)]);
        assert_eq!(s.avsg(), vec![0, 1]);
        assert!(
            s.plan(2, 10, true).is_none(),
            "nothing goes to a member out of the AVSG"
        );
        // It comes back: it continues from the log's start and gets no COP2 for what it
        // did not apply.
        s.logged(2);
        s.rejoined(2);
        let p = s.plan(2, 10, true).unwrap();
        assert_eq!((p.first, p.last, p.log_start), (2, 2, 2));
        assert!(p.cop2.is_empty());
    }

    #[test]
    fn nothing_completes_with_an_empty_avsg_or_too_few_copies() {
        let mut s = group(2, 2);
        s.logged(1);
        let p0 = s.plan(0, 10, true).unwrap();
        let p1 = s.plan(1, 10, true).unwrap();
        assert!(s.failed(1, Some(p1)).is_empty());
        assert!(
            s.applied(0, &p0, &ok(1), &same(1)).is_empty(),
            "min_copies = 2"
        );
        s.rejoined(1);
        let p1 = s.plan(1, 10, true).unwrap();
        assert_eq!(s.applied(1, &p1, &ok(1), &same(1)).len(), 1);

        let mut s = group(1, 1);
        s.logged(1);
        let p = s.plan(0, 10, true).unwrap();
        assert!(
            s.failed(0, Some(p)).is_empty(),
            "no member: the record waits"
        );
        s.rejoined(0);
        let p = s.plan(0, 10, true).unwrap();
        assert_eq!(s.applied(0, &p, &ok(1), &same(1)).len(), 1);
    }

    #[test]
    fn different_answers_are_divergent_and_a_success_wins() {
        let mut s = group(2, 1);
        s.logged(1);
        let fid = Fid::root(VolumeId(3));
        let p0 = s.plan(0, 10, true).unwrap();
        let p1 = s.plan(1, 10, true).unwrap();
        s.applied(0, &p0, &[Err(FsError::Diverged)], &[0]);
        let done = s.applied(1, &p1, &[Ok(Some(fid))], &[7]);
        assert_eq!(done[0].outcome, Ok(Some(fid)));
        assert!(done[0].divergent);
        assert_eq!(done[0].applied_by, vec![ReplicaId(2)]);
    }

    #[test]
    fn an_exclusive_create_some_replica_refused_is_undone() {
        use codetta_wire::Name;
        use codetta_wire::update::{CreateHow, NewObject};
        let dir = Fid::root(VolumeId(3));
        let fid = Fid { vnode: 99, ..dir };
        let name = Name::new("lock").unwrap_or_else(|_| unreachable!());
        let create = |how| Op::Create {
            dir,
            name: name.clone(),
            fid,
            new: NewObject {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            how,
        };
        let split = [
            (ReplicaId(1), Ok(Some(fid))),
            (ReplicaId(2), Err(FsError::Exists)),
        ];
        assert_eq!(
            exclusive_undo(&create(CreateHow::Guarded), &split),
            Some(Op::Remove {
                dir,
                name: name.clone(),
                fid
            })
        );
        // Everyone agreed, or the create was not exclusive: nothing to undo.
        let agreed = [(ReplicaId(1), Ok(Some(fid))), (ReplicaId(2), Ok(Some(fid)))];
        assert_eq!(exclusive_undo(&create(CreateHow::Guarded), &agreed), None);
        let unchecked = create(CreateHow::Unchecked { truncate: false });
        assert_eq!(exclusive_undo(&unchecked, &split), None);
    }

    #[test]
    fn only_replicas_that_changed_the_same_state_count_each_other() {
        let mut s = group(3, 1);
        s.logged(1);
        let plans: Vec<BatchPlan> = (0..3).map(|m| s.plan(m, 10, true).unwrap()).collect();
        s.applied(0, &plans[0], &ok(1), &[5]);
        s.applied(1, &plans[1], &ok(1), &[5]);
        let done = s.applied(2, &plans[2], &ok(1), &[6]);
        assert_eq!(done[0].applied_by.len(), 3);
        s.logged(2);
        let p0 = s.plan(0, 10, true).unwrap();
        assert_eq!(p0.cop2[0].applied_by, vec![ReplicaId(1), ReplicaId(2)]);
        let p2 = s.plan(2, 10, true).unwrap();
        assert!(
            p2.cop2.is_empty(),
            "replica 3 changed another state: nobody counts it"
        );
    }

    #[test]
    fn cop2_items_coalesce_and_survive_a_failed_call() {
        let mut s = group(2, 1);
        for seq in 1..=3 {
            s.logged(seq);
        }
        let p = s.plan(0, 10, true).unwrap();
        s.applied(0, &p, &ok(3), &same(3));
        for _ in 1..=3 {
            let p = s.plan(1, 1, true).unwrap();
            assert_eq!(s.applied(1, &p, &ok(1), &same(1)).len(), 1);
        }
        // Member 0 has one coalesced item for 1..=3.
        let p = s.plan(0, 10, true).unwrap();
        assert!(p.is_empty(), "a COP2-only batch");
        assert_eq!(
            p.cop2.iter().map(|c| (c.first, c.last)).collect::<Vec<_>>(),
            vec![(1, 3)]
        );
        s.failed(0, Some(p));
        s.rejoined(0);
        let p = s.plan(0, 10, true).unwrap();
        assert_eq!(p.cop2.len(), 1, "requeued after the failure");
    }

    #[test]
    fn members_join_and_leave_the_group() {
        let mut s = group(3, 2);
        s.logged(1);
        let plans: Vec<BatchPlan> = (0..3).map(|m| s.plan(m, 10, true).unwrap()).collect();
        // Member 2 leaves while its batch is in flight; its late answer neither brings it
        // back nor counts as a copy.
        assert!(s.retire(2).is_empty());
        assert!(s.applied(2, &plans[2], &ok(1), &same(1)).is_empty());
        assert!(!s.in_avsg(2) && s.is_retired(2));
        assert!(
            s.applied(0, &plans[0], &ok(1), &same(1)).is_empty(),
            "one copy of two"
        );
        let done = s.applied(1, &plans[1], &ok(1), &same(1));
        assert_eq!(done.len(), 1);
        s.rejoined(2);
        assert!(!s.in_avsg(2), "a retired member never rejoins");
        // A joiner gets every record still in the log; records wait for it.
        s.logged(2);
        let m = s.join(ReplicaId(9));
        assert_eq!(m, 3);
        let p = s.plan(m, 10, true).unwrap();
        assert_eq!((p.first, p.log_start), (2, 2));
        let p0 = s.plan(0, 10, true).unwrap();
        let p1 = s.plan(1, 10, true).unwrap();
        assert!(s.applied(0, &p0, &ok(1), &same(1)).is_empty());
        assert!(
            s.applied(1, &p1, &ok(1), &same(1)).is_empty(),
            "waits for the joiner"
        );
        // A batch it sent back unapplied goes again.
        s.returned(m, p);
        let again = s.plan(m, 10, true).unwrap();
        assert_eq!(again.first, 2);
        assert_eq!(s.applied(m, &again, &ok(1), &same(1)).len(), 1);
    }

    #[test]
    fn a_group_shrunk_below_min_copies_still_completes() {
        let mut s = group(2, 2);
        s.retire(1);
        s.logged(1);
        let p0 = s.plan(0, 10, true).unwrap();
        assert_eq!(s.applied(0, &p0, &ok(1), &same(1)).len(), 1);
    }
}
