//! Content tags: blake3 digests of an object's replicated state, kept incrementally.

use serde::{Deserialize, Serialize};

/// A 32-byte blake3 digest of an object's canonical replicated state.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct ContentTag(pub [u8; 32]);

/// An order-independent digest of a set of members (a directory's entries, a file's
/// blocks): the lane-wise wrapping sum of each member's blake3 hash.
///
/// Adding and removing a member are O(1), so tags stay current on every update without
/// rereading the object. Equal sets give equal sums on every replica, whatever the order
/// the members arrived in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetDigest(pub [u64; 4]);

impl SetDigest {
    fn lanes(member: &[u8]) -> [u64; 4] {
        let hash = blake3::hash(member);
        let mut lanes = [0u64; 4];
        for (lane, bytes) in lanes.iter_mut().zip(hash.as_bytes().chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *lane = u64::from_le_bytes(word);
        }
        lanes
    }

    /// Adds one member.
    pub fn add(&mut self, member: &[u8]) {
        for (sum, lane) in self.0.iter_mut().zip(Self::lanes(member)) {
            *sum = sum.wrapping_add(lane);
        }
    }

    /// Removes a member that was added before.
    pub fn remove(&mut self, member: &[u8]) {
        for (sum, lane) in self.0.iter_mut().zip(Self::lanes(member)) {
            *sum = sum.wrapping_sub(lane);
        }
    }

    /// Little-endian bytes, for hashing into a tag.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, lane) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_digest_is_order_independent_and_invertible() {
        let mut a = SetDigest::default();
        a.add(b"x");
        a.add(b"y");
        let mut b = SetDigest::default();
        b.add(b"y");
        b.add(b"z");
        b.add(b"x");
        b.remove(b"z");
        assert_eq!(a, b);
        a.remove(b"x");
        a.remove(b"y");
        assert_eq!(a, SetDigest::default());
    }
}
