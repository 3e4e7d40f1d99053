//! Version vectors: one update counter per replica id.

use crate::ids::ReplicaId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VvOrdering {
    /// Both have seen exactly the same updates.
    Equal,
    /// `self` has seen everything `other` has, and more.
    Dominates,
    /// `other` has seen everything `self` has, and more.
    DominatedBy,
    /// Each has seen an update the other has not.
    Concurrent,
}

/// A version vector keyed by replica id (any group size; a missing entry is zero).
///
/// Laws (property-tested): `compare` is antisymmetric (`a.compare(b)` is the mirror of
/// `b.compare(a)`); `merge` is commutative, associative and idempotent and yields the least
/// upper bound: `a.merge(b)` dominates or equals both `a` and `b`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    counters: BTreeMap<ReplicaId, u64>,
}

impl VersionVector {
    /// An empty vector: no update counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `replica` (zero if absent).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.counters.get(&replica).copied().unwrap_or(0)
    }

    /// Records one more update applied at `replica`.
    pub fn bump(&mut self, replica: ReplicaId) {
        *self.counters.entry(replica).or_insert(0) += 1;
    }

    /// Sets the counter of `replica`; zero removes the entry.
    pub fn set(&mut self, replica: ReplicaId, value: u64) {
        if value == 0 {
            self.counters.remove(&replica);
        } else {
            self.counters.insert(replica, value);
        }
    }

    /// True if no update has been counted.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Sum of all counters: the number of updates this vector has seen.
    pub fn total(&self) -> u64 {
        self.counters.values().sum()
    }

    /// Iterates the non-zero counters in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counters.iter().map(|(r, c)| (*r, *c))
    }

    /// Four-way comparison.
    pub fn compare(&self, other: &VersionVector) -> VvOrdering {
        let mut greater = false;
        let mut less = false;
        let keys = self.counters.keys().chain(other.counters.keys());
        for replica in keys {
            match self.get(*replica).cmp(&other.get(*replica)) {
                Ordering::Greater => greater = true,
                Ordering::Less => less = true,
                Ordering::Equal => {}
            }
        }
        match (greater, less) {
            (false, false) => VvOrdering::Equal,
            (true, false) => VvOrdering::Dominates,
            (false, true) => VvOrdering::DominatedBy,
            (true, true) => VvOrdering::Concurrent,
        }
    }

    /// The pointwise maximum of `self` and `other`, stored in `self`.
    pub fn merge(&mut self, other: &VersionVector) {
        for (replica, count) in other.iter() {
            let entry = self.counters.entry(replica).or_insert(0);
            *entry = (*entry).max(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv_strategy() -> impl Strategy<Value = VersionVector> {
        proptest::collection::btree_map(0u64..5, 0u64..4, 0..5).prop_map(|m| {
            let mut vv = VersionVector::new();
            for (r, c) in m {
                vv.set(ReplicaId(r), c);
            }
            vv
        })
    }

    /// The naive model: compare pointwise over a fixed universe of replicas.
    fn model_compare(a: &VersionVector, b: &VersionVector) -> VvOrdering {
        let ge = (0..5).all(|r| a.get(ReplicaId(r)) >= b.get(ReplicaId(r)));
        let le = (0..5).all(|r| a.get(ReplicaId(r)) <= b.get(ReplicaId(r)));
        match (ge, le) {
            (true, true) => VvOrdering::Equal,
            (true, false) => VvOrdering::Dominates,
            (false, true) => VvOrdering::DominatedBy,
            (false, false) => VvOrdering::Concurrent,
        }
    }

    fn mirror(o: VvOrdering) -> VvOrdering {
        match o {
            VvOrdering::Dominates => VvOrdering::DominatedBy,
            VvOrdering::DominatedBy => VvOrdering::Dominates,
            other => other,
        }
    }

    proptest! {
        #[test]
        fn compare_matches_model(a in vv_strategy(), b in vv_strategy()) {
            prop_assert_eq!(a.compare(&b), model_compare(&a, &b));
            prop_assert_eq!(a.compare(&b), mirror(b.compare(&a)));
        }

        #[test]
        fn merge_laws(a in vv_strategy(), b in vv_strategy(), c in vv_strategy()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            let mut ab_c = ab.clone(); ab_c.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut a_bc = a.clone(); a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);
            let mut aa = a.clone(); aa.merge(&a);
            prop_assert_eq!(&aa, &a);
            prop_assert!(matches!(ab.compare(&a), VvOrdering::Equal | VvOrdering::Dominates));
            prop_assert!(matches!(ab.compare(&b), VvOrdering::Equal | VvOrdering::Dominates));
        }

        #[test]
        fn bump_dominates(a in vv_strategy(), r in 0u64..5) {
            let mut b = a.clone();
            b.bump(ReplicaId(r));
            prop_assert_eq!(b.compare(&a), VvOrdering::Dominates);
        }
    }

    #[test]
    fn zero_entries_are_absent() {
        let mut a = VersionVector::new();
        a.set(ReplicaId(1), 0);
        assert_eq!(a, VersionVector::new());
        assert_eq!(a.compare(&VersionVector::new()), VvOrdering::Equal);
    }
}
