//! Expiring resolution leases (rule 6): a coordinator leases an object at every replica
//! before it gathers and installs, so two coordinators do not resolve one object at once
//! (which would make the same decision twice and could leave a redundant conflict copy).
//!
//! Leases live in memory only: after a restart nothing is leased, which is safe because
//! every install is also conditional on the version the coordinator saw. A lease that
//! outlives its coordinator (crashed, cut off) simply expires.

use codetta_wire::{Fid, FsError};
use std::collections::HashMap;

/// Most leases held at once: a coordinator asking beyond it is told to come back later.
pub const MAX_LEASES: usize = 1 << 16;

/// Leases by object: the holder's token and when the lease ends (milliseconds on the
/// caller's clock).
#[derive(Debug, Default)]
pub struct LeaseTable {
    held: HashMap<Fid, (u64, u64)>,
}

impl LeaseTable {
    /// Leases every object in `fids` to `holder` until `now_ms + ttl_ms`, or none of them:
    /// `Leased` when another holder's lease on one of them has not ended. A holder asking
    /// again extends its lease.
    pub fn acquire(
        &mut self,
        fids: &[Fid],
        holder: u64,
        now_ms: u64,
        ttl_ms: u32,
    ) -> Result<(), FsError> {
        for fid in fids {
            if let Some(&(other, until)) = self.held.get(fid)
                && other != holder
                && until > now_ms
            {
                return Err(FsError::Leased(*fid));
            }
        }
        if self.held.len() + fids.len() > MAX_LEASES {
            self.held.retain(|_, (_, until)| *until > now_ms);
            if self.held.len() + fids.len() > MAX_LEASES {
                return Err(FsError::Leased(fids[0]));
            }
        }
        let until = now_ms.saturating_add(u64::from(ttl_ms));
        for fid in fids {
            self.held.insert(*fid, (holder, until));
        }
        Ok(())
    }

    /// Ends `holder`'s leases on `fids` (others' leases are left alone).
    pub fn release(&mut self, fids: &[Fid], holder: u64) {
        for fid in fids {
            if self.held.get(fid).is_some_and(|(h, _)| *h == holder) {
                self.held.remove(fid);
            }
        }
    }

    /// Leases held, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codetta_wire::VolumeId;

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: n,
            unique: 1,
        }
    }

    #[test]
    fn a_lease_excludes_other_holders_until_it_ends() {
        let mut t = LeaseTable::default();
        t.acquire(&[fid(2)], 7, 1000, 500).unwrap();
        assert_eq!(
            t.acquire(&[fid(3), fid(2)], 8, 1200, 500),
            Err(FsError::Leased(fid(2)))
        );
        // Nothing of a refused request is held.
        t.acquire(&[fid(3)], 9, 1200, 500).unwrap();
        // The holder extends its own lease; others get it once it ended.
        t.acquire(&[fid(2)], 7, 1400, 500).unwrap();
        assert!(t.acquire(&[fid(2)], 8, 1800, 500).is_err());
        t.acquire(&[fid(2)], 8, 1900, 500).unwrap();
    }

    #[test]
    fn release_frees_only_the_holders_leases() {
        let mut t = LeaseTable::default();
        t.acquire(&[fid(2)], 7, 0, 10_000).unwrap();
        t.release(&[fid(2)], 8);
        assert!(t.acquire(&[fid(2)], 8, 1, 10_000).is_err());
        t.release(&[fid(2)], 7);
        t.acquire(&[fid(2)], 8, 1, 10_000).unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = LeaseTable::default();
        let fids: Vec<Fid> = (0..MAX_LEASES as u64).map(fid).collect();
        t.acquire(&fids, 1, 0, 100).unwrap();
        assert!(t.acquire(&[fid(u64::MAX)], 2, 50, 100).is_err());
        // Expired leases are swept to make room.
        t.acquire(&[fid(u64::MAX)], 2, 100, 100).unwrap();
        assert_eq!(t.len(), 1);
    }
}
