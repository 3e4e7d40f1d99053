//! The caller's AUTH_SYS credential for the call being served.
//!
//! nfs3_server hands the credential only to `authorize`, which runs in the same tokio task
//! as the rest of that call (it spawns one task per RPC). We remember it under the task id
//! and look it up from the file-system methods. The map is bounded: the oldest entries
//! (long-finished calls) are dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::task::Id;

/// Most credentials remembered at once (far more than calls in flight).
const MAX_ENTRIES: usize = 16_384;

/// Who makes a call: uid, primary gid and supplementary gids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Caller {
    /// AUTH_NONE callers are treated as nobody.
    pub fn nobody() -> Caller {
        Caller {
            uid: 65534,
            gid: 65534,
            gids: Vec::new(),
        }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// Credentials by task.
#[derive(Default)]
pub struct CallerTable {
    inner: Mutex<(HashMap<Id, Caller>, VecDeque<Id>)>,
}

impl CallerTable {
    /// Remembers the caller of the current task.
    pub fn set(&self, caller: Caller) {
        let Some(id) = tokio::task::try_id() else {
            return;
        };
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(id, caller).is_none() {
            order.push_back(id);
        }
        while order.len() > MAX_ENTRIES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// The caller of the current task (nobody if unknown).
    pub fn current(&self) -> Caller {
        let Some(id) = tokio::task::try_id() else {
            return Caller::nobody();
        };
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(&id).cloned().unwrap_or_else(Caller::nobody)
    }
}
