//! Callback promises (rule 15): which client sessions fetched which objects, the breaks
//! owed to them when an object changes, and the channel that delivers the breaks.
//!
//! A client daemon opens a session per volume and connection with [`Callbacks::poll`] (the
//! `Promises` call, kept outstanding). While it lives, that connection's reads of an object
//! leave a promise, registered *before* the read so that no change can slip between the
//! state read and the promise. A change breaks every promise on the object: the break is
//! queued for the session and the change's caller may wait ([`Callbacks::wait_acked`])
//! until the session acknowledges it (the client then no longer answers from its cache).
//! A session that does not acknowledge within [`BREAK_WAIT`] is voided: the client, whose
//! lease ([`LEASE`], shorter) has lapsed by then, learns on its next poll that its session
//! is gone ("fresh") and drops everything it cached.

use codetta_wire::{Fid, VolumeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

pub use codetta_wire::message::{
    CALLBACK_BREAK_WAIT as BREAK_WAIT, CALLBACK_HEARTBEAT as HEARTBEAT, CALLBACK_LEASE as LEASE,
};
/// Most promises one session holds; past it every promise of the session is broken at
/// once (a reset) and the client starts over.
pub const MAX_PROMISES: usize = 250_000;
/// Most breaks one poll answer lists; past it the answer is a reset.
pub const MAX_BREAKS_PER_ANSWER: usize = 4096;

/// A QUIC connection, as the server numbers it.
pub type ConnId = u64;

/// A client session: one connection, one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub conn: ConnId,
    pub volume: VolumeId,
}

/// What a poll answers (see `ReplyBody::Breaks`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollAnswer {
    pub fresh: bool,
    pub reset: bool,
    pub seq: u64,
    pub fids: Vec<Fid>,
}

/// A break some session owes an acknowledgement for: the change waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    session: SessionKey,
    token: u64,
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    Promised,
    /// Broken by break number `n`, not yet acknowledged.
    Breaking(u64),
}

#[derive(Debug, Default)]
struct Session {
    token: u64,
    /// The objects it holds (promised or breaking).
    holds: HashSet<Fid>,
    /// Breaks not yet acknowledged, in order (`None`: a reset).
    pending: VecDeque<(u64, Option<Fid>)>,
    /// The last break number given out.
    last: u64,
    acked: u64,
}

#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<SessionKey, Session>,
    holders: HashMap<Fid, HashMap<SessionKey, Holding>>,
    /// Connections whose end is watched (their sessions go with them).
    watched: HashSet<ConnId>,
}

/// The promise table of one server (in memory: a restart voids every promise, and clients
/// learn it from their next poll).
#[derive(Debug)]
pub struct Callbacks {
    table: Mutex<Table>,
    /// Bumped on every queued break, acknowledgement and voided session.
    changed: watch::Sender<u64>,
}

impl Default for Callbacks {
    fn default() -> Self {
        Callbacks {
            table: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }
}

impl Table {
    fn unhold(&mut self, key: SessionKey, fid: Fid) {
        if let Some(h) = self.holders.get_mut(&fid) {
            h.remove(&key);
            if h.is_empty() {
                self.holders.remove(&fid);
            }
        }
    }

    fn remove_session(&mut self, key: SessionKey) {
        if let Some(s) = self.sessions.remove(&key) {
            for fid in s.holds {
                self.unhold(key, fid);
            }
        }
    }

    /// Queues a break of `fid` for `key` (or returns the one already queued).
    fn queue_break(&mut self, key: SessionKey, fid: Fid) -> Option<Ticket> {
        let holding = self.holders.get_mut(&fid)?.get_mut(&key)?;
        let session = self.sessions.get_mut(&key)?;
        let seq = match *holding {
            Holding::Breaking(n) => n,
            Holding::Promised => {
                session.last += 1;
                session.pending.push_back((session.last, Some(fid)));
                *holding = Holding::Breaking(session.last);
                session.last
            }
        };
        Some(Ticket {
            session: key,
            token: session.token,
            seq,
        })
    }

    /// Breaks every promise of `key` with one reset.
    fn reset(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.last += 1;
        let seq = session.last;
        session.pending.push_back((seq, None));
        for fid in &session.holds {
            if let Some(h) = self.holders.get_mut(fid).and_then(|h| h.get_mut(&key)) {
                *h = Holding::Breaking(seq);
            }
        }
    }

    /// Takes the acknowledgement of breaks up to `ack` (clamped to what was given out).
    fn acknowledge(&mut self, key: SessionKey, ack: u64) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let ack = ack.min(session.last);
        if ack <= session.acked {
            return;
        }
        session.acked = ack;
        let mut done = Vec::new();
        while let Some((seq, fid)) = session.pending.front().copied() {
            if seq > ack {
                break;
            }
            session.pending.pop_front();
            match fid {
                Some(fid) => done.push(fid),
                None => done.extend(session.holds.iter().copied()),
            }
        }
        for fid in done {
            let finished = self
                .holders
                .get(&fid)
                .and_then(|h| h.get(&key))
                .is_some_and(|h| matches!(h, Holding::Breaking(n) if *n <= ack));
            if finished {
                self.unhold(key, fid);
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.holds.remove(&fid);
                }
            }
        }
    }

    fn answer(&self, key: SessionKey) -> Option<PollAnswer> {
        let session = self.sessions.get(&key)?;
        let mut answer = PollAnswer::default();
        if session.pending.len() > MAX_BREAKS_PER_ANSWER {
            // Too many to list: the client drops everything (an answer renews its lease,
            // so it must carry every break owed).
            answer.reset = true;
            answer.seq = session.last;
            return Some(answer);
        }
        for (seq, fid) in &session.pending {
            answer.seq = *seq;
            match fid {
                Some(fid) => answer.fids.push(*fid),
                None => answer.reset = true,
            }
        }
        Some(answer)
    }
}

impl Callbacks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the end of connection `conn` must still be watched (true once per
    /// connection; the caller then calls [`Callbacks::drop_connection`] when it ends).
    pub fn watch_connection(&self, conn: ConnId) -> bool {
        self.lock().watched.insert(conn)
    }

    /// Ends every session of connection `conn` (it closed: its client learns that it lost
    /// its promises from the connection's end).
    pub fn drop_connection(&self, conn: ConnId) {
        let mut t = self.lock();
        t.watched.remove(&conn);
        let keys: Vec<SessionKey> = t
            .sessions
            .keys()
            .filter(|k| k.conn == conn)
            .copied()
            .collect();
        for key in keys {
            t.remove_session(key);
        }
        drop(t);
        self.bump();
    }

    /// The session's side of the channel: acknowledges breaks up to `ack`, then answers
    /// with the breaks after it, waiting up to [`HEARTBEAT`] for one. A session this server
    /// does not know under `token` starts afresh (`fresh`: no earlier promise holds).
    pub async fn poll(&self, key: SessionKey, token: u64, ack: u64) -> PollAnswer {
        let mut rx = self.changed.subscribe();
        {
            let mut t = self.lock();
            let known = t.sessions.get(&key).is_some_and(|s| s.token == token);
            if !known {
                t.remove_session(key);
                t.sessions.insert(
                    key,
                    Session {
                        token,
                        ..Session::default()
                    },
                );
                return PollAnswer {
                    fresh: true,
                    ..PollAnswer::default()
                };
            }
            t.acknowledge(key, ack);
        }
        self.bump();
        let deadline = tokio::time::Instant::now() + HEARTBEAT;
        loop {
            {
                let t = self.lock();
                match t.answer(key) {
                    None => {
                        return PollAnswer {
                            fresh: true,
                            ..PollAnswer::default()
                        };
                    }
                    Some(a) if !a.fids.is_empty() || a.reset => return a,
                    Some(a) => {
                        if tokio::time::Instant::now() >= deadline {
                            let last = t.sessions.get(&key).map_or(a.seq, |s| s.last);
                            return PollAnswer { seq: last, ..a };
                        }
                    }
                }
            }
            rx.borrow_and_update();
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }

    /// Registers a promise on `fid` for `key`, if that session exists (a read on a
    /// connection without a session leaves none; returns whether one was left). Call it
    /// before reading `fid`.
    pub fn promise(&self, key: SessionKey, fid: Fid) -> bool {
        let mut t = self.lock();
        let Some(session) = t.sessions.get_mut(&key) else {
            return false;
        };
        session.holds.insert(fid);
        let over = session.holds.len() > MAX_PROMISES;
        t.holders
            .entry(fid)
            .or_default()
            .insert(key, Holding::Promised);
        if over {
            t.reset(key);
            drop(t);
            self.bump();
        }
        true
    }

    /// Breaks every promise on `fids`, except those of connection `except` (the caller's
    /// own: it knows what it changed). Returns what to wait for.
    pub fn break_fids(&self, fids: &[Fid], except: Option<ConnId>) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        let mut t = self.lock();
        for fid in fids {
            let Some(holders) = t.holders.get(fid) else {
                continue;
            };
            let keys: Vec<SessionKey> = holders
                .keys()
                .filter(|k| Some(k.conn) != except)
                .copied()
                .collect();
            for key in keys {
                if let Some(ticket) = t.queue_break(key, *fid) {
                    tickets.push(ticket);
                }
            }
        }
        drop(t);
        if !tickets.is_empty() {
            self.bump();
        }
        tickets
    }

    fn outstanding(&self, tickets: &[Ticket]) -> Vec<Ticket> {
        let t = self.lock();
        tickets
            .iter()
            .filter(|k| {
                t.sessions
                    .get(&k.session)
                    .is_some_and(|s| s.token == k.token && s.acked < k.seq)
            })
            .copied()
            .collect()
    }

    /// Waits until every session in `tickets` acknowledged its break (or ended), at most
    /// `within`; sessions still behind then are voided. Returns how many were voided.
    pub async fn wait_acked(&self, tickets: Vec<Ticket>, within: Duration) -> usize {
        if tickets.is_empty() {
            return 0;
        }
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            rx.borrow_and_update();
            let left = self.outstanding(&tickets);
            if left.is_empty() {
                return 0;
            }
            if tokio::time::Instant::now() >= deadline {
                let mut t = self.lock();
                for k in &left {
                    tracing::info!(
                        conn = k.session.conn,
                        "voiding a callback session that did not acknowledge a break"
                    );
                    t.remove_session(k.session);
                }
                drop(t);
                self.bump();
                return left.len();
            }
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }

    /// Sessions and promises held (for status and tests).
    pub fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.sessions.len(), t.holders.values().map(HashMap::len).sum())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: n,
            unique: 1,
        }
    }

    fn key(conn: ConnId) -> SessionKey {
        SessionKey {
            conn,
            volume: VolumeId(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_break_reaches_the_holder_and_the_change_waits_for_its_ack() {
        let cb = std::sync::Arc::new(Callbacks::default());
        assert!(cb.poll(key(1), 7, 0).await.fresh);
        cb.promise(key(1), fid(5));
        cb.promise(key(2), fid(5)); // no session: no promise
        assert_eq!(cb.counts(), (1, 1));
        // An empty heartbeat.
        let a = cb.poll(key(1), 7, 0).await;
        assert_eq!((a.fresh, a.fids.len()), (false, 0));
        let tickets = cb.break_fids(&[fid(5), fid(6)], None);
        assert_eq!(tickets.len(), 1);
        let waiter = {
            let cb = cb.clone();
            tokio::spawn(async move { cb.wait_acked(tickets, BREAK_WAIT).await })
        };
        let a = cb.poll(key(1), 7, 0).await;
        assert_eq!((a.seq, a.fids.clone()), (1, vec![fid(5)]));
        // Acknowledged by the next poll.
        let polled = {
            let cb = cb.clone();
            tokio::spawn(async move { cb.poll(key(1), 7, 1).await })
        };
        assert_eq!(waiter.await.unwrap(), 0, "acknowledged, not voided");
        assert_eq!(cb.counts(), (1, 0));
        assert!(polled.await.unwrap().fids.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_writers_own_connection_is_not_broken() {
        let cb = Callbacks::default();
        cb.poll(key(1), 7, 0).await;
        cb.promise(key(1), fid(5));
        assert!(cb.break_fids(&[fid(5)], Some(1)).is_empty());
        assert_eq!(cb.counts(), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_session_is_voided_and_starts_fresh() {
        let cb = Callbacks::default();
        cb.poll(key(1), 7, 0).await;
        cb.promise(key(1), fid(5));
        let tickets = cb.break_fids(&[fid(5)], None);
        assert_eq!(cb.wait_acked(tickets, BREAK_WAIT).await, 1);
        assert_eq!(cb.counts(), (0, 0));
        assert!(cb.poll(key(1), 7, 1).await.fresh);
        // A repeated change while a break is unacknowledged waits for the same break.
        cb.promise(key(1), fid(5));
        let t1 = cb.break_fids(&[fid(5)], None);
        let t2 = cb.break_fids(&[fid(5)], None);
        assert_eq!(t1, t2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_token_or_a_closed_connection_ends_the_promises() {
        let cb = Callbacks::default();
        cb.poll(key(1), 7, 0).await;
        cb.promise(key(1), fid(5));
        assert!(cb.poll(key(1), 8, 0).await.fresh, "the client restarted");
        assert_eq!(cb.counts(), (1, 0));
        cb.promise(key(1), fid(5));
        cb.drop_connection(1);
        assert_eq!(cb.counts(), (0, 0));
        assert!(cb.break_fids(&[fid(5)], None).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_promises_reset_the_session() {
        let cb = Callbacks::default();
        cb.poll(key(1), 7, 0).await;
        for n in 0..=MAX_PROMISES as u64 {
            cb.promise(key(1), fid(n));
        }
        let a = cb.poll(key(1), 7, 0).await;
        assert!(a.reset);
        cb.poll(key(1), 7, a.seq).await;
        assert_eq!(cb.counts(), (1, 0));
    }
}
