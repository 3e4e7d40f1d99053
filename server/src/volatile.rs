//! What a server keeps beside its store, in memory only: the promises it gave clients
//! (rule 15) and the resolution leases (rule 6). Both end with the process, and both are
//! safe to lose: a restarted server answers no batch until every promise it may have given
//! has lapsed ([`crate::callbacks::VOID_AFTER`]), and every install is conditional on the
//! version its coordinator saw. The store itself only reports what a write changed.

use crate::callbacks::Callbacks;
use crate::clock::SharedClock;
use crate::leases::LeaseTable;
use codetta_wire::{Fid, FsError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most objects one lease request names.
pub const MAX_LEASE_FIDS: usize = 1024;
/// Longest lease a coordinator may ask for.
pub const MAX_LEASE_MS: u32 = 120_000;

/// A server's promises and leases, and when it started.
#[derive(Debug)]
pub struct Volatile {
    callbacks: Arc<Callbacks>,
    leases: Mutex<LeaseTable>,
    clock: SharedClock,
    started_ms: u64,
}

impl Volatile {
    /// Nothing promised, nothing leased, started now on `clock`.
    pub fn new(clock: SharedClock) -> Arc<Volatile> {
        Arc::new(Volatile {
            callbacks: Arc::default(),
            leases: Mutex::new(LeaseTable::default()),
            started_ms: clock.monotonic_ms(),
            clock,
        })
    }

    /// How long ago this server started.
    pub fn uptime(&self) -> Duration {
        Duration::from_millis(self.clock.monotonic_ms().saturating_sub(self.started_ms))
    }

    /// The promises given to clients (rule 15).
    pub fn callbacks(&self) -> &Arc<Callbacks> {
        &self.callbacks
    }

    /// Tells the clients holding promises on `changed` (an edit no client made: nobody
    /// waits for their acknowledgement).
    pub fn changed(&self, changed: &[Fid]) {
        if !changed.is_empty() {
            self.callbacks.break_fids(changed, None);
        }
    }

    /// Leases `fids` to the resolution coordinator `holder` for `ttl_ms` (all or none).
    pub fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> Result<(), FsError> {
        if fids.is_empty() || fids.len() > MAX_LEASE_FIDS {
            return Err(FsError::Invalid);
        }
        let now = self.clock.monotonic_ms();
        self.leases
            .lock()
            .map_err(|_| FsError::Internal("lease table poisoned".into()))?
            .acquire(fids, holder, now, ttl_ms.min(MAX_LEASE_MS))
    }

    /// Ends `holder`'s leases on `fids`.
    pub fn release(&self, fids: &[Fid], holder: u64) -> Result<(), FsError> {
        if fids.len() > MAX_LEASE_FIDS {
            return Err(FsError::Invalid);
        }
        self.leases
            .lock()
            .map_err(|_| FsError::Internal("lease table poisoned".into()))?
            .release(fids, holder);
        Ok(())
    }
}
