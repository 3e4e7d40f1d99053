//! The last record a client incarnation logged on each object, so that every record can
//! name its predecessor on its object when it is shipped (`Request::Ship`'s `follows`): a
//! replica that missed or refused the predecessor refuses the record rather than apply it
//! to an older state, which would make a version of the file nobody wrote (found by the
//! fault matrix: a write acknowledged by one set of replicas, the next by a disjoint one).
//!
//! Kept in memory, bounded. A restarted daemon starts from the newest record each object
//! had applied somewhere (kept on disk by [`crate::chain_file`]) and chains the records its
//! log still holds on top; an object evicted here is shipped without a predecessor (no
//! check).

use codetta_wire::update::{Follows, Op};
use codetta_wire::{Fid, Incarnation};
use std::collections::{HashMap, VecDeque};

/// Objects remembered at most.
pub const MAX_CHAINED_OBJECTS: usize = 1 << 16;

/// Records refused everywhere remembered at most (until the records queued behind them
/// have completed, they may still name them).
const MAX_REFUSED: usize = 1 << 12;

/// Per object, the newest record logged on it.
#[derive(Debug)]
pub struct Chains {
    newest: HashMap<Fid, (Incarnation, u64)>,
    /// Records every replica refused, with the record each followed: a record refused
    /// behind another refused one (a batch refused whole, a full disk) hands its object
    /// back past both.
    refused: HashMap<(Fid, u64), Option<u64>>,
    refused_order: VecDeque<(Fid, u64)>,
    /// Objects in the order their newest record was logged (stale entries skipped), for
    /// eviction.
    order: VecDeque<(Fid, u64)>,
    cap: usize,
}

impl Default for Chains {
    fn default() -> Self {
        Chains::with_capacity(MAX_CHAINED_OBJECTS)
    }
}

impl Chains {
    /// Remembers at most `cap` objects (the least recently written go first).
    pub fn with_capacity(cap: usize) -> Chains {
        Chains {
            newest: HashMap::new(),
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Record `seq` of `incarnation` is now the newest on `object`; returns the one it
    /// follows there, if the same incarnation logged it.
    pub fn link(&mut self, object: Fid, incarnation: Incarnation, seq: u64) -> Option<u64> {
        let before = self.newest.insert(object, (incarnation, seq));
        self.order.push_back((object, seq));
        self.evict();
        before
            .filter(|(inc, _)| *inc == incarnation)
            .map(|(_, s)| s)
    }

    /// Record `seq` of `incarnation` (`op`) is now the newest on every object it chains on
    /// ([`Op::chained`]); returns what it follows on each.
    pub fn link_record(&mut self, op: &Op, incarnation: Incarnation, seq: u64) -> Follows {
        Follows {
            object: self.link(op.object(), incarnation, seq),
            replaced: op.replaced().and_then(|r| self.link(r, incarnation, seq)),
        }
    }

    /// Record `seq` (`op`, shipped with `follows`) was refused by every replica that
    /// answered: [`Chains::unlink`] on each object it chains.
    pub fn unlink_record(&mut self, op: &Op, incarnation: Incarnation, seq: u64, follows: Follows) {
        self.unlink(op.object(), incarnation, seq, follows.object);
        if let Some(r) = op.replaced() {
            self.unlink(r, incarnation, seq, follows.replaced);
        }
    }

    /// Record `seq` on `object`, which followed `follows`, was refused by every replica
    /// that answered: it changed nothing, so the newest record on the object before it
    /// that was not refused everywhere is the newest again (when `seq` was the newest).
    pub fn unlink(
        &mut self,
        object: Fid,
        incarnation: Incarnation,
        seq: u64,
        follows: Option<u64>,
    ) {
        let mut before = follows;
        let mut hops = 0;
        while let Some(b) = before
            && let Some(earlier) = self.refused.get(&(object, b))
            && hops < MAX_REFUSED
        {
            before = *earlier;
            hops += 1;
        }
        if self.newest.get(&object) == Some(&(incarnation, seq)) {
            match before {
                Some(b) => {
                    self.newest.insert(object, (incarnation, b));
                    // Its entry in `order` may be gone (superseded ones are dropped):
                    // without one it would never be evicted.
                    self.order.push_back((object, b));
                }
                None => {
                    self.newest.remove(&object);
                }
            }
            return;
        }
        // Records queued behind this one may still name it.
        self.refused.insert((object, seq), before);
        self.refused_order.push_back((object, seq));
        while self.refused_order.len() > MAX_REFUSED {
            if let Some(old) = self.refused_order.pop_front() {
                self.refused.remove(&old);
            }
        }
    }

    /// The newest record remembered on `object`.
    pub fn newest(&self, object: &Fid) -> Option<(Incarnation, u64)> {
        self.newest.get(object).copied()
    }

    /// The remembered objects with their newest record, least recently written first.
    pub fn entries(&self) -> impl Iterator<Item = (Fid, Incarnation, u64)> + '_ {
        self.order.iter().filter_map(|(object, seq)| {
            let (inc, newest) = self.newest.get(object)?;
            (newest == seq).then_some((*object, *inc, *seq))
        })
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// Whether no object is remembered.
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }

    fn evict(&mut self) {
        while self.newest.len() > self.cap {
            let Some((object, seq)) = self.order.pop_front() else {
                break;
            };
            if self.newest.get(&object).is_some_and(|(_, s)| *s == seq) {
                self.newest.remove(&object);
            }
        }
        // Entries superseded by later records only take room: drop them once they
        // outnumber the live ones.
        if self.order.len() > 2 * self.cap {
            let newest = &self.newest;
            self.order
                .retain(|(object, seq)| newest.get(object).is_some_and(|(_, s)| s == seq));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use codetta_wire::{Name, VolumeId};

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: n,
            unique: 1,
        }
    }

    #[test]
    fn each_record_follows_the_last_one_on_its_object() {
        let mut c = Chains::default();
        let inc = Incarnation(7);
        assert_eq!(c.link(fid(1), inc, 1), None);
        assert_eq!(c.link(fid(2), inc, 2), None);
        assert_eq!(c.link(fid(1), inc, 3), Some(1));
        assert_eq!(c.link(fid(1), inc, 4), Some(3));
        // Another incarnation's records are not this one's predecessors.
        assert_eq!(c.link(fid(2), Incarnation(8), 1), None);
    }

    /// A rename over one of a file's names chains on the file too: it follows the file's
    /// last record, and the file's next record follows it; refused everywhere, it gives
    /// both chains back.
    #[test]
    fn a_rename_over_a_name_is_a_link_of_the_replaced_files_chain() {
        let mut c = Chains::default();
        let inc = Incarnation(7);
        let (dir, moved, replaced) = (fid(9), fid(1), fid(2));
        c.link(moved, inc, 1);
        c.link(replaced, inc, 2);
        let rename = Op::Rename {
            from_dir: dir,
            from_name: Name::new(b"a").expect("a name"),
            to_dir: dir,
            to_name: Name::new(b"b").expect("a name"),
            fid: moved,
            replaces: Some(replaced),
        };
        let follows = c.link_record(&rename, inc, 3);
        assert_eq!(
            follows,
            Follows {
                object: Some(1),
                replaced: Some(2)
            }
        );
        assert_eq!(c.newest(&replaced), Some((inc, 3)));
        c.unlink_record(&rename, inc, 3, follows);
        assert_eq!(c.newest(&moved), Some((inc, 1)));
        assert_eq!(c.newest(&replaced), Some((inc, 2)));
        assert_eq!(rename.chained().collect::<Vec<_>>(), vec![moved, replaced]);
    }

    #[test]
    fn a_record_refused_everywhere_gives_the_chain_back_to_its_predecessor() {
        let mut c = Chains::default();
        let inc = Incarnation(7);
        c.link(fid(1), inc, 1);
        c.link(fid(1), inc, 2);
        c.unlink(fid(1), inc, 2, Some(1));
        assert_eq!(c.link(fid(1), inc, 3), Some(1));
        // A later record already took over: unlinking an older one changes nothing.
        c.unlink(fid(1), inc, 1, None);
        assert_eq!(c.link(fid(1), inc, 4), Some(3));
        c.unlink(fid(1), inc, 4, None);
        assert_eq!(c.link(fid(1), inc, 5), None);
    }

    /// A COMMIT's writes refused whole (a full disk): each completes refused in turn, the
    /// first while it is not the newest.
    #[test]
    fn a_run_of_refused_records_hands_the_object_back_past_all_of_them() {
        let mut c = Chains::default();
        let inc = Incarnation(7);
        c.link(fid(1), inc, 1);
        let f2 = c.link(fid(1), inc, 2);
        let f3 = c.link(fid(1), inc, 3);
        let f4 = c.link(fid(1), inc, 4);
        c.unlink(fid(1), inc, 2, f2);
        c.unlink(fid(1), inc, 3, f3);
        c.unlink(fid(1), inc, 4, f4);
        assert_eq!(
            c.link(fid(1), inc, 5),
            Some(1),
            "record 1 is the last applied"
        );
    }

    /// An object handed back to an older record after its superseded entries were dropped
    /// is still evicted in turn: the chains stay bounded.
    #[test]
    fn an_object_handed_back_is_still_evicted() {
        let mut c = Chains::with_capacity(2);
        let inc = Incarnation(1);
        // Record 13 is the last link: the superseded entries were dropped just then.
        for seq in 1..=13 {
            c.link(fid(1), inc, seq);
        }
        c.unlink(fid(1), inc, 13, Some(12));
        for n in 2..50 {
            c.link(fid(n), inc, 100 + n);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.link(fid(1), inc, 500), None, "object 1 was forgotten");
    }

    #[test]
    fn the_least_recently_written_objects_are_forgotten_first() {
        let mut c = Chains::with_capacity(2);
        let inc = Incarnation(1);
        c.link(fid(1), inc, 1);
        c.link(fid(2), inc, 2);
        c.link(fid(1), inc, 3);
        c.link(fid(3), inc, 4);
        assert_eq!(c.len(), 2);
        assert_eq!(c.link(fid(2), inc, 5), None, "object 2 was forgotten");
        assert_eq!(c.link(fid(1), inc, 6), None, "then object 1");
        for seq in 7..100 {
            c.link(fid(3), inc, seq);
        }
        assert!(c.order.len() <= 4 + 1, "superseded entries are dropped");
    }
}
