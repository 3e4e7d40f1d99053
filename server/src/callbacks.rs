//! Callback promises (rule 15): which client sessions fetched which objects, the breaks
//! owed to them when an object changes, and the channel that delivers the breaks.
//!
//! A client daemon opens a session per volume and connection with [`Callbacks::poll`] (the
//! `Promises` call, kept outstanding). While it lives, that connection's reads of an object
//! leave a promise, registered *before* the read so that no change can slip between the
//! state read and the promise. A change breaks every promise on the object: the break is
//! queued for the session and the change's caller may wait ([`Callbacks::wait_acked`])
//! until the session acknowledges it (the client then no longer answers from its cache).
//!
//! A client trusts its promises for [`LEASE`] after *sending* a poll that was answered. A
//! session that owes an acknowledgement is voided only once [`VOID_AFTER`] (more than the
//! lease) has passed since its last poll *arrived*: by then the client has stopped
//! answering from its cache. It learns on its next poll that its session is gone
//! ("fresh") and drops everything it cached. Objects are named by volume and vnode (vnodes
//! are never reused), so a break matches a promise whatever uniquifier the caller had.

use codetta_wire::{Fid, FsError, VolumeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub use codetta_wire::message::{
    CALLBACK_HEARTBEAT as HEARTBEAT, CALLBACK_LEASE as LEASE, CALLBACK_VOID_AFTER as VOID_AFTER,
};
/// Most promises one session holds; past it every promise of the session is broken at
/// once (a reset) and the client starts over.
pub const MAX_PROMISES: usize = 250_000;
/// Promises a session may hold before optional ones are no longer left
/// ([`Callbacks::promise_if_room`]).
pub const OPTIONAL_PROMISES: usize = MAX_PROMISES / 4 * 3;
/// Most breaks one poll answer lists; past it the answer is a reset.
pub const MAX_BREAKS_PER_ANSWER: usize = 4096;
/// Longest a change waits for a client that keeps polling without acknowledging (a
/// misbehaving one); it is voided then.
pub const MAX_BREAK_WAIT: Duration = Duration::from_secs(10);

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
    /// The session's number (its acknowledgements name it).
    pub session: u64,
}

/// A break some session owes an acknowledgement for: the change waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    key: SessionKey,
    session: u64,
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    Promised,
    /// Broken by break number `n`, not yet acknowledged.
    Breaking(u64),
}

#[derive(Debug)]
struct Session {
    /// Unique among this server's sessions (a session made again under the same key
    /// gets a new one, so old acknowledgements and tickets do not apply to it).
    id: u64,
    token: u64,
    /// The objects it holds (promised or breaking).
    holds: HashSet<Fid>,
    /// Breaks not yet acknowledged, in order (`None`: a reset).
    pending: VecDeque<(u64, Option<Fid>)>,
    /// The last break number given out.
    last: u64,
    acked: u64,
    /// When its last poll arrived.
    polled_at: Instant,
    /// A reset is queued and not yet acknowledged.
    resetting: bool,
}

#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<SessionKey, Session>,
    holders: HashMap<Fid, HashMap<SessionKey, Holding>>,
    /// Connections whose end is watched (their sessions go with them).
    watched: HashSet<ConnId>,
    /// Sessions made so far.
    made: u64,
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

    fn new_session(&mut self, key: SessionKey, token: u64, now: Instant) -> u64 {
        self.remove_session(key);
        self.made += 1;
        let id = self.made;
        self.sessions.insert(
            key,
            Session {
                id,
                token,
                holds: HashSet::new(),
                pending: VecDeque::new(),
                last: 0,
                acked: 0,
                polled_at: now,
                resetting: false,
            },
        );
        id
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
            key,
            session: session.id,
            seq,
        })
    }

    /// Breaks every promise of `key` with one reset (none if one is already under way).
    fn reset(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if session.resetting {
            return;
        }
        session.resetting = true;
        session.last += 1;
        let seq = session.last;
        session.pending.push_back((seq, None));
        for fid in &session.holds {
            if let Some(h) = self.holders.get_mut(fid).and_then(|h| h.get_mut(&key)) {
                *h = Holding::Breaking(seq);
            }
        }
    }

    /// Takes the acknowledgement of breaks up to `ack` of session number `id`.
    fn acknowledge(&mut self, key: SessionKey, id: u64, ack: u64) {
        let Some(session) = self.sessions.get_mut(&key).filter(|s| s.id == id) else {
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
                None => {
                    session.resetting = false;
                    done.extend(session.holds.iter().copied());
                }
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

    /// What a poll of session `id` answers now (`None`: the session is gone).
    fn answer(&self, key: SessionKey, id: u64) -> Option<PollAnswer> {
        let session = self.sessions.get(&key).filter(|s| s.id == id)?;
        let mut answer = PollAnswer {
            session: id,
            seq: session.acked,
            ..PollAnswer::default()
        };
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
    /// connection; the caller then calls [`Callbacks::drop_connection`] once its client
    /// surely noticed the end).
    pub fn watch_connection(&self, conn: ConnId) -> bool {
        self.lock().watched.insert(conn)
    }

    /// Ends every session of connection `conn`.
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

    /// The session's side of the channel: acknowledges breaks up to `ack` of session
    /// number `acked_session`, then answers with the breaks owed, waiting up to
    /// [`HEARTBEAT`] for one. A session this server does not know under `token` starts
    /// afresh (`fresh`: no earlier promise holds); one still polled under another token
    /// within [`VOID_AFTER`] (another channel on the same connection) is not taken over.
    pub async fn poll(
        &self,
        key: SessionKey,
        token: u64,
        ack: u64,
        acked_session: u64,
    ) -> Result<PollAnswer, FsError> {
        let mut rx = self.changed.subscribe();
        let now = Instant::now();
        let id = {
            let mut t = self.lock();
            match t.sessions.get_mut(&key) {
                Some(s) if s.token == token => {
                    s.polled_at = now;
                    let id = s.id;
                    let before = s.acked;
                    t.acknowledge(key, acked_session, ack);
                    let advanced = t.sessions.get(&key).is_some_and(|s| s.acked > before);
                    drop(t);
                    if advanced {
                        self.bump();
                    }
                    id
                }
                Some(s) if now < s.polled_at + VOID_AFTER => {
                    return Err(FsError::Refused(
                        "another callback channel holds this session".into(),
                    ));
                }
                _ => {
                    let id = t.new_session(key, token, now);
                    return Ok(PollAnswer {
                        fresh: true,
                        session: id,
                        ..PollAnswer::default()
                    });
                }
            }
        };
        let deadline = now + HEARTBEAT;
        loop {
            rx.borrow_and_update();
            let answer = self.lock().answer(key, id);
            match answer {
                None => {
                    // Voided meanwhile: the client starts again (its next poll makes a
                    // new session).
                    return Ok(PollAnswer {
                        fresh: true,
                        ..PollAnswer::default()
                    });
                }
                Some(a) if !a.fids.is_empty() || a.reset || Instant::now() >= deadline => {
                    return Ok(a);
                }
                Some(_) => {}
            }
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }

    /// Like [`Callbacks::promise`], for promises a client can do without (the states of
    /// what its own batch changed): none is left once the session holds
    /// [`OPTIONAL_PROMISES`], so a client that only writes never reaches
    /// [`MAX_PROMISES`] and the reset that empties its cache.
    pub fn promise_if_room(&self, key: SessionKey, fid: Fid) -> bool {
        self.promise_within(key, fid, OPTIONAL_PROMISES)
    }

    /// Registers a promise on `fid` for `key`, if that session exists (a read on a
    /// connection without a session leaves none; returns whether one was left). Call it
    /// before reading `fid`.
    pub fn promise(&self, key: SessionKey, fid: Fid) -> bool {
        self.promise_within(key, fid, usize::MAX)
    }

    /// A promise on `fid` for `key`, unless the session already holds `room` others.
    /// Past [`MAX_PROMISES`] the session is reset.
    fn promise_within(&self, key: SessionKey, fid: Fid, room: usize) -> bool {
        let fid = fid.object();
        let mut t = self.lock();
        let Some(session) = t.sessions.get_mut(&key) else {
            return false;
        };
        if session.holds.len() >= room && !session.holds.contains(&fid) {
            return false;
        }
        session.holds.insert(fid);
        let over = session.holds.len() > MAX_PROMISES && !session.resetting;
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

    /// Takes back `key`'s promise on `fid` if it is only a promise (a break owed stays):
    /// for an object found gone right after it was promised, which no change will break.
    pub fn withdraw(&self, key: SessionKey, fid: Fid) {
        let fid = fid.object();
        let mut t = self.lock();
        let promised = t
            .holders
            .get(&fid)
            .and_then(|h| h.get(&key))
            .is_some_and(|h| *h == Holding::Promised);
        if promised {
            t.unhold(key, fid);
            if let Some(s) = t.sessions.get_mut(&key) {
                s.holds.remove(&fid);
            }
        }
    }

    /// Breaks every promise on `fids`, except those of connection `except` (the caller's
    /// own: it knows what it changed). Returns what to wait for.
    pub fn break_fids(&self, fids: &[Fid], except: Option<ConnId>) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        let mut t = self.lock();
        for fid in fids {
            let fid = fid.object();
            let Some(holders) = t.holders.get(&fid) else {
                continue;
            };
            let keys: Vec<SessionKey> = holders
                .keys()
                .filter(|k| Some(k.conn) != except)
                .copied()
                .collect();
            for key in keys {
                if let Some(ticket) = t.queue_break(key, fid) {
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

    /// Waits until every session in `tickets` acknowledged its break or ended. A session
    /// that owes one is voided once [`VOID_AFTER`] has passed since its last poll arrived
    /// (its client stopped trusting its promises before that), or after
    /// [`MAX_BREAK_WAIT`] whatever it does. Returns how many were voided.
    pub async fn wait_acked(&self, tickets: Vec<Ticket>) -> usize {
        if tickets.is_empty() {
            return 0;
        }
        let mut rx = self.changed.subscribe();
        let cap = Instant::now() + MAX_BREAK_WAIT;
        let mut voided = 0;
        loop {
            rx.borrow_and_update();
            let now = Instant::now();
            let mut wake = cap;
            let mut owed = false;
            {
                let mut t = self.lock();
                for k in &tickets {
                    let Some(s) = t.sessions.get(&k.key).filter(|s| s.id == k.session) else {
                        continue;
                    };
                    if s.acked >= k.seq {
                        continue;
                    }
                    let silent_until = s.polled_at + VOID_AFTER;
                    if now >= silent_until || now >= cap {
                        tracing::info!(
                            conn = k.key.conn,
                            "voiding a callback session that did not acknowledge a break"
                        );
                        t.remove_session(k.key);
                        voided += 1;
                    } else {
                        owed = true;
                        wake = wake.min(silent_until);
                    }
                }
            }
            if !owed {
                if voided > 0 {
                    self.bump();
                }
                return voided;
            }
            let _ = tokio::time::timeout_at(wake, rx.changed()).await;
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
    use std::sync::Arc;

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

    /// Opens a session; returns its number.
    async fn open(cb: &Callbacks, conn: ConnId, token: u64) -> u64 {
        let a = cb.poll(key(conn), token, 0, 0).await.unwrap();
        assert!(a.fresh);
        a.session
    }

    #[tokio::test(start_paused = true)]
    async fn a_break_reaches_the_holder_and_the_change_waits_for_its_ack() {
        let cb = Arc::new(Callbacks::default());
        let id = open(&cb, 1, 7).await;
        cb.promise(key(1), fid(5));
        assert!(!cb.promise(key(2), fid(5)), "no session: no promise");
        assert_eq!(cb.counts(), (1, 1));
        // An empty heartbeat.
        let a = cb.poll(key(1), 7, 0, id).await.unwrap();
        assert_eq!((a.fresh, a.fids.len()), (false, 0));
        // A break names the object whatever uniquifier the writer had.
        let other_unique = Fid {
            unique: 9,
            ..fid(5)
        };
        let tickets = cb.break_fids(&[other_unique, fid(6)], None);
        assert_eq!(tickets.len(), 1);
        let waiter = {
            let cb = cb.clone();
            tokio::spawn(async move { cb.wait_acked(tickets).await })
        };
        let a = cb.poll(key(1), 7, 0, id).await.unwrap();
        assert_eq!((a.seq, a.fids.clone()), (1, vec![fid(5).object()]));
        // Acknowledged by the next poll.
        let polled = {
            let cb = cb.clone();
            tokio::spawn(async move { cb.poll(key(1), 7, 1, id).await })
        };
        assert_eq!(waiter.await.unwrap(), 0, "acknowledged, not voided");
        assert_eq!(cb.counts(), (1, 0));
        assert!(polled.await.unwrap().unwrap().fids.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_writers_own_connection_is_not_broken() {
        let cb = Callbacks::default();
        open(&cb, 1, 7).await;
        cb.promise(key(1), fid(5));
        assert!(cb.break_fids(&[fid(5)], Some(1)).is_empty());
        assert_eq!(cb.counts(), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_promise_is_withdrawn_but_an_owed_break_stays() {
        let cb = Callbacks::default();
        open(&cb, 1, 7).await;
        cb.promise(key(1), fid(5));
        cb.promise(key(1), fid(6));
        cb.withdraw(key(1), fid(5));
        assert_eq!(cb.counts(), (1, 1));
        assert!(
            cb.break_fids(&[fid(5)], None).is_empty(),
            "nothing left to break"
        );
        let tickets = cb.break_fids(&[fid(6)], None);
        assert_eq!(tickets.len(), 1);
        cb.withdraw(key(1), fid(6));
        assert_eq!(cb.counts(), (1, 1), "the break is still owed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_session_is_voided_only_after_its_lease_surely_lapsed() {
        let cb = Arc::new(Callbacks::default());
        let id = open(&cb, 1, 7).await;
        cb.promise(key(1), fid(5));
        cb.promise(key(1), fid(6));
        let start = Instant::now();
        let tickets = cb.break_fids(&[fid(5)], None);
        // The client keeps polling (slowly) without having seen the break: each poll
        // moves the void further out.
        let waiter = {
            let cb = cb.clone();
            tokio::spawn(async move { cb.wait_acked(tickets).await })
        };
        tokio::time::sleep(Duration::from_millis(900)).await;
        cb.poll(key(1), 7, 0, 999).await.unwrap(); // a stale session number acks nothing
        assert!(!waiter.is_finished());
        assert_eq!(waiter.await.unwrap(), 1);
        assert!(Instant::now() - start >= Duration::from_millis(900) + VOID_AFTER);
        assert_eq!(cb.counts(), (0, 0));
        // The client learns it and starts a new session; old acknowledgements and tickets
        // do not apply to it.
        let again = cb.poll(key(1), 7, 1, id).await.unwrap();
        assert!(again.fresh && again.session != id);
        cb.promise(key(1), fid(5));
        let t1 = cb.break_fids(&[fid(5)], None);
        let t2 = cb.break_fids(&[fid(5)], None);
        assert_eq!(t1, t2, "a repeated change waits for the same break");
        let late = cb.poll(key(1), 7, 5, id).await.unwrap();
        assert_eq!(
            late.fids,
            vec![fid(5).object()],
            "a late ack of the old session"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn another_channel_does_not_take_over_a_live_session() {
        let cb = Callbacks::default();
        open(&cb, 1, 7).await;
        assert!(cb.poll(key(1), 8, 0, 0).await.is_err());
        tokio::time::sleep(VOID_AFTER).await;
        assert!(
            cb.poll(key(1), 8, 0, 0).await.unwrap().fresh,
            "once it went quiet"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connection_ends_the_promises() {
        let cb = Callbacks::default();
        open(&cb, 1, 7).await;
        cb.promise(key(1), fid(5));
        cb.drop_connection(1);
        assert_eq!(cb.counts(), (0, 0));
        assert!(cb.break_fids(&[fid(5)], None).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_s_optional_promises_stop_short_of_a_reset() {
        let cb = Callbacks::default();
        let id = open(&cb, 1, 7).await;
        for n in 0..MAX_PROMISES as u64 + 10 {
            cb.promise_if_room(key(1), fid(n));
        }
        assert_eq!(cb.counts(), (1, OPTIONAL_PROMISES));
        // One already held is still promised; a read's promise is still left.
        assert!(cb.promise_if_room(key(1), fid(3)));
        assert!(!cb.promise_if_room(key(1), fid(MAX_PROMISES as u64 + 20)));
        assert!(cb.promise(key(1), fid(MAX_PROMISES as u64 + 20)));
        let a = cb.poll(key(1), 7, 0, id).await.unwrap();
        assert!(!a.reset);
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_promises_reset_the_session_once() {
        let cb = Callbacks::default();
        let id = open(&cb, 1, 7).await;
        for n in 0..=MAX_PROMISES as u64 + 10 {
            cb.promise(key(1), fid(n));
        }
        let a = cb.poll(key(1), 7, 0, id).await.unwrap();
        assert!(a.reset);
        assert_eq!(a.seq, 1, "one reset, not one per promise past the limit");
        cb.poll(key(1), 7, a.seq, id).await.unwrap();
        // What was promised after the reset was queued still holds.
        assert_eq!(cb.counts(), (1, 10));
    }
}
