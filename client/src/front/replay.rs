//! The duplicate-request cache: the reply to a call that changes something, kept a while
//! so that the same call sent again (the kernel resends after a reconnection, with the
//! same xid) gets the reply the first one got instead of being carried out twice (a
//! second REMOVE would answer NOENT to a remove that happened).
//!
//! A call is the same when its caller's address, xid, program, procedure and a checksum
//! of its credential and arguments are. While the first is being carried out, a resend is dropped (the
//! first's reply answers it, or the client resends again and finds it here). Bounded in
//! entries and in age; pure (time is passed in).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most replies kept.
pub const MAX_ENTRIES: usize = 4096;
/// How long a reply is kept.
pub const KEEP: Duration = Duration::from_secs(120);

/// What identifies one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub from: IpAddr,
    pub xid: u32,
    pub prog: u32,
    pub proc: u32,
    pub checksum: [u8; 16],
}

impl CallKey {
    /// The key of a call from `from` whose credential and arguments are `parts` (hashed
    /// together: a call of another user with the same xid and arguments is another call).
    pub fn new(from: IpAddr, xid: u32, prog: u32, proc: u32, parts: &[&[u8]]) -> CallKey {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let hash = hasher.finalize();
        let mut checksum = [0u8; 16];
        checksum.copy_from_slice(&hash.as_bytes()[..16]);
        CallKey {
            from,
            xid,
            prog,
            proc,
            checksum,
        }
    }
}

/// Whether a call is to be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// New: carry it out, then [`ReplayCache::finish`].
    New,
    /// The same call is being carried out: send nothing.
    InProgress,
    /// Carried out before: send this reply again.
    Done(Vec<Bytes>),
}

#[derive(Debug)]
enum Entry {
    InProgress,
    Done(Vec<Bytes>),
}

/// Replies of calls that change something, by call.
#[derive(Debug, Default)]
pub struct ReplayCache {
    entries: HashMap<CallKey, (Entry, Instant)>,
    order: VecDeque<(CallKey, Instant)>,
}

impl ReplayCache {
    /// Looks `key` up at `now`; a new call is marked in progress.
    pub fn begin(&mut self, key: CallKey, now: Instant) -> Seen {
        self.expire(now);
        if let Some((entry, _)) = self.entries.get(&key) {
            return match entry {
                Entry::InProgress => Seen::InProgress,
                Entry::Done(reply) => Seen::Done(reply.clone()),
            };
        }
        self.entries.insert(key, (Entry::InProgress, now));
        self.order.push_back((key, now));
        // `order` may hold keys already gone (abandoned calls): bounded too.
        while self.entries.len() > MAX_ENTRIES || self.order.len() > 2 * MAX_ENTRIES {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&old);
            }
        }
        Seen::New
    }

    /// Keeps the reply of a call [`ReplayCache::begin`] found new.
    pub fn finish(&mut self, key: CallKey, reply: Vec<Bytes>) {
        if let Some((entry, _)) = self.entries.get_mut(&key) {
            *entry = Entry::Done(reply);
        }
    }

    /// Forgets a call that ended without a reply worth repeating.
    pub fn abandon(&mut self, key: &CallKey) {
        self.entries.remove(key);
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front().copied() {
            if now.duration_since(at) < KEEP {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32, args: &[u8]) -> CallKey {
        CallKey::new(
            IpAddr::from([127, 0, 0, 1]),
            xid,
            100_003,
            12,
            &[b"uid 0", args],
        )
    }

    #[test]
    fn a_resend_gets_the_first_reply_and_a_new_call_is_new() {
        let mut cache = ReplayCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.begin(key(1, b"rm a"), t0), Seen::New);
        assert_eq!(cache.begin(key(1, b"rm a"), t0), Seen::InProgress);
        let reply = vec![Bytes::from_static(b"ok")];
        cache.finish(key(1, b"rm a"), reply.clone());
        assert_eq!(cache.begin(key(1, b"rm a"), t0), Seen::Done(reply));
        // The same xid with other arguments (another client behind the same address).
        assert_eq!(cache.begin(key(1, b"rm b"), t0), Seen::New);
        assert_eq!(cache.begin(key(2, b"rm a"), t0), Seen::New);
    }

    #[test]
    fn bounded_in_age_and_entries() {
        let mut cache = ReplayCache::default();
        let t0 = Instant::now();
        cache.begin(key(1, b"x"), t0);
        cache.finish(key(1, b"x"), Vec::new());
        assert_eq!(
            cache.begin(key(1, b"x"), t0 + KEEP + Duration::from_secs(1)),
            Seen::New
        );
        for xid in 0..(MAX_ENTRIES as u32 + 100) {
            cache.begin(key(xid + 10, b"y"), t0 + KEEP * 3);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // Abandoned calls leave no trail.
        let mut churn = ReplayCache::default();
        for xid in 0..(3 * MAX_ENTRIES as u32) {
            churn.begin(key(xid, b"z"), t0);
            churn.abandon(&key(xid, b"z"));
        }
        assert!(churn.order.len() <= 2 * MAX_ENTRIES);
        let other_user = CallKey::new(
            IpAddr::from([127, 0, 0, 1]),
            1,
            100_003,
            12,
            &[b"uid 7", b"rm a"],
        );
        assert_ne!(
            other_user,
            key(1, b"rm a"),
            "another credential, another call"
        );
        let mut abandoned = ReplayCache::default();
        abandoned.begin(key(5, b"z"), t0);
        abandoned.abandon(&key(5, b"z"));
        assert!(abandoned.is_empty());
    }
}
