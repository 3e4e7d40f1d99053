//! Which group members missed this client's own updates, per object: a member that did not
//! apply a record (it was out of the AVSG, or refused it) is stale for every object the
//! record changed, and reads of those objects must not be served from it alone. Without
//! this, a client whose AVSG shrank to such a member read its own acknowledged update as
//! undone (found by the fault matrix: a rename over a name, then a lookup of the name from
//! the one replica that had missed the rename, so the next remove took the old file).
//!
//! A mark goes when the member is seen holding the same state as a member that is not
//! marked (resolution brought it up). Kept in memory, bounded: the oldest marks go first,
//! and a restarted daemon starts with none.

use codetta_wire::update::Op;
use codetta_wire::{Fid, ReplicaId};
use std::collections::{HashMap, VecDeque};

/// Marks kept at most.
pub const MAX_MARKS: usize = 1 << 16;

/// A replica that missed this client's record `seq`, which changed object `fid`.
pub type Mark = (ReplicaId, Fid, u64);

/// Per (replica, object): this client's newest record on the object the replica did not
/// apply. Replicas, not group member indices: a volume's group can change order.
#[derive(Debug)]
pub struct Missed {
    marks: HashMap<(ReplicaId, Fid), u64>,
    /// Marks in the order they were made (entries of removed or renewed marks skipped).
    order: VecDeque<(ReplicaId, Fid, u64)>,
    cap: usize,
}

impl Default for Missed {
    fn default() -> Self {
        Missed::with_capacity(MAX_MARKS)
    }
}

impl Missed {
    /// Keeps at most `cap` marks.
    pub fn with_capacity(cap: usize) -> Missed {
        Missed {
            marks: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Record `seq` (`op`) completed, applied by the replicas in `applied` and not by the
    /// others of `group`: the others are stale for every object it changed. Returns the
    /// marks made (none when no replica applied it: it changed nothing).
    pub fn completed(
        &mut self,
        seq: u64,
        op: &Op,
        applied: &[ReplicaId],
        group: &[ReplicaId],
    ) -> Vec<Mark> {
        if applied.is_empty() {
            return Vec::new();
        }
        let missed_by: Vec<ReplicaId> = group
            .iter()
            .copied()
            .filter(|r| !applied.contains(r))
            .collect();
        if missed_by.is_empty() {
            return Vec::new();
        }
        let fids = changed(op);
        let mut made = Vec::with_capacity(missed_by.len() * fids.len());
        for r in missed_by {
            for fid in &fids {
                self.mark(r, *fid, seq);
                made.push((r, *fid, seq));
            }
        }
        made
    }

    /// Marks `replica` stale for `fid` as of record `seq` (also as the marks file is read
    /// back).
    pub fn mark(&mut self, replica: ReplicaId, fid: Fid, seq: u64) {
        self.marks.insert((replica, fid), seq);
        self.order.push_back((replica, fid, seq));
        while self.marks.len() > self.cap {
            let Some((m, f, s)) = self.order.pop_front() else {
                break;
            };
            if self.marks.get(&(m, f)) == Some(&s) {
                self.marks.remove(&(m, f));
            }
        }
        // Superseded entries are dropped once they outnumber the live ones.
        if self.order.len() > 2 * self.marks.len() + 1024 {
            let marks = &self.marks;
            self.order
                .retain(|(m, f, s)| marks.get(&(*m, *f)) == Some(s));
        }
    }

    /// True when `replica` missed one of this client's updates of `fid`.
    pub fn is_marked(&self, replica: ReplicaId, fid: &Fid) -> bool {
        !self.marks.is_empty() && self.marks.contains_key(&(replica, *fid))
    }

    /// `replica` was seen holding the state of a replica that holds this client's updates.
    pub fn caught_up(&mut self, replica: ReplicaId, fid: &Fid) {
        self.marks.remove(&(replica, *fid));
    }

    /// The live marks, oldest first (to rewrite the marks file).
    pub fn entries(&self) -> impl Iterator<Item = Mark> + '_ {
        self.order
            .iter()
            .filter(|(r, f, s)| self.marks.get(&(*r, *f)) == Some(s))
            .copied()
    }

    /// Forgets every mark (a replica left the group: see `Core::refresh`).
    pub fn clear(&mut self) {
        self.marks.clear();
        self.order.clear();
    }

    /// Marks held.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// True when no member is marked for anything.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

/// Every object `op` changes: its directories, and the objects it makes, names, moves,
/// removes or replaces.
pub fn changed(op: &Op) -> Vec<Fid> {
    let mut fids = crate::tracker::affected(op);
    if let Op::Rename { fid, replaces, .. } = op {
        fids.push(*fid);
        fids.extend(*replaces);
    }
    fids.dedup();
    fids
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use codetta_wire::{Name, VolumeId};

    fn fid(vnode: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode,
            unique: 1,
        }
    }

    const R0: ReplicaId = ReplicaId(10);
    const R1: ReplicaId = ReplicaId(11);
    const R2: ReplicaId = ReplicaId(12);

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes().to_vec()).expect("name")
    }

    /// The fault matrix's case: a rename over a name, applied by members 1 and 2 while
    /// member 0 was away, leaves member 0 stale for both directories' object, the moved
    /// file and the file it replaced, and for nothing else.
    #[test]
    fn members_that_missed_a_rename_are_stale_for_everything_it_changed() {
        let mut missed = Missed::default();
        let (dir, moved, replaced) = (fid(1), fid(2), fid(3));
        let rename = Op::Rename {
            from_dir: dir,
            from_name: name("l205"),
            to_dir: dir,
            to_name: name("r93"),
            fid: moved,
            replaces: Some(replaced),
        };
        let group = [R0, R1, R2];
        let made = missed.completed(8320, &rename, &[R1, R2], &group);
        assert_eq!(made.len(), 3);
        for f in [dir, moved, replaced] {
            assert!(missed.is_marked(R0, &f), "{f}");
            assert!(!missed.is_marked(R1, &f) && !missed.is_marked(R2, &f));
        }
        assert!(!missed.is_marked(R0, &fid(4)));
        missed.caught_up(R0, &dir);
        assert!(!missed.is_marked(R0, &dir));
        assert!(missed.is_marked(R0, &moved));
        // Applied nowhere: it changed nothing, so nobody is stale for it.
        let write = Op::Write {
            fid: fid(9),
            offset: 0,
            len: 0,
            hashes: Vec::new(),
        };
        assert!(missed.completed(8321, &write, &[], &group).is_empty());
        assert!(!missed.is_marked(R0, &fid(9)));
    }

    #[test]
    fn the_oldest_marks_go_first_past_the_bound() {
        let mut missed = Missed::with_capacity(4);
        for v in 0..10 {
            let write = Op::Write {
                fid: fid(v),
                offset: 0,
                len: 0,
                hashes: Vec::new(),
            };
            missed.completed(v, &write, &[R1], &[R0, R1]);
            // Renewing a mark keeps the bound too.
            missed.completed(v + 100, &write, &[R1], &[R0, R1]);
        }
        assert_eq!(missed.len(), 4);
        assert!(missed.is_marked(R0, &fid(9)) && missed.is_marked(R0, &fid(6)));
        assert!(!missed.is_marked(R0, &fid(5)));
        assert!(missed.order.len() <= 2 * 4 + 1024);
        let live: Vec<u64> = missed.entries().map(|(_, _, s)| s).collect();
        assert_eq!(live, vec![106, 107, 108, 109]);
    }
}
