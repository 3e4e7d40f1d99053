//! The per-volume client core (what Coda's Venus does, for one volume): allocates fids and update
//! ids, takes every mutation into the modify log (`append`), ships the log to every member
//! of the volume's AVSG in sequenced batches and gathers their answers (`ship`, write-all
//! through [`crate::replicate`]), and reads from one member after comparing every member's
//! state, with the client's own updates on top (`read`). This module holds the shared
//! state and the start; each job lives in its own file.
//!
//! Answer rules (rule 1): `hold_write` returns at once (an UNSTABLE WRITE, held until its
//! COMMIT); `submit` once the record is in the log; `submit_and_wait` once the record is
//! complete: applied by every AVSG member that answered within the deadline and by at least
//! `min_copies` (every namespace and attribute change, FILE_SYNC WRITE); `flush` waits for
//! every record that touches an object, `commit` also for its held writes (COMMIT).

use crate::cache::{CACHE_BLOCK, Cache, CacheLimits, CacheStats};
use crate::chains::Chains;
use crate::error::ClientError;
use crate::group::Group;
use crate::landing::{Landed, Landing};
use crate::link::{LinkPool, ServerLink};
use crate::log::{ClientState, LoggedRecord, ModifyLog};
use crate::missed::Missed;
use crate::promises::{Channels, Trust};
use crate::read_source::{ReadSource, read_source, still_stale, undominated};
use crate::replicate::{BatchPlan, Completed, Shipping};
use crate::tracker::Tracker;
use crate::unstable::{HeldWrite, Unstable, apply_pending};
use bytes::Bytes;
use codetta_wire::message::{DirEntry, ObjectState, ReplyBody, SpaceInfo, VolumeInfo};
use codetta_wire::update::{Follows, Op};
use codetta_wire::{
    Attrs, Fid, FsError, MAX_READ, Name, Payload, RecordOutcome, ReplicaId, Request, Time,
    UpdateId, UpdateRecord, VolumeId,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

mod append;
mod read;
mod ship;

use append::appender;
use ship::{member_channel, member_shipper};

/// Most records in one shipped batch.
const MAX_BATCH_RECORDS: usize = 1024;
/// How far past a reader going through a file in order its bytes are fetched ahead.
const READ_AHEAD: u64 = 8 << 20;
/// Most fetches ahead under way at once (each at most [`MAX_READ`] bytes).
const READ_AHEAD_TASKS: usize = 8;
/// Most files whose reading order is tracked.
const MAX_STREAMS: usize = 1024;
/// Most write bytes in one shipped batch (below the frame's data limit).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Most submissions group-committed to the log at once.
const MAX_APPEND_GROUP: usize = 256;
/// Bytes of held UNSTABLE writes of one file that are logged and shipped without waiting
/// for its COMMIT, so a large file's data streams to the servers while it is written.
const RELEASE_RUN: usize = 4 << 20;

/// Units of the log-capacity semaphore.
const CAPACITY_UNIT: u64 = 4096;
/// How long a member's second-phase items may wait for a batch of records to ride on
/// before they are sent alone.
const COP2_ALONE_AFTER: Duration = Duration::from_millis(100);
/// First and longest pause between probes of a member out of the AVSG.
const PROBE_FIRST: Duration = Duration::from_millis(100);
const PROBE_MAX: Duration = Duration::from_millis(250);
/// Longest a probe waits for its answer. A connection attempt begun while the server was
/// down is not answered until QUIC resends its first packet (about a second later), so a
/// fresh attempt after a short wait finds a restarted server sooner: every write it misses
/// meanwhile is one resolution has to ship.
const PROBE_DEADLINE: Duration = Duration::from_millis(500);

struct Submission {
    op: Op,
    data: Bytes,
    permit: OwnedSemaphorePermit,
    waiter: Option<oneshot::Sender<RecordOutcome>>,
    done: oneshot::Sender<Result<u64, ClientError>>,
    /// The record's time when it was given before (a held write's), else the appender's.
    time: Option<Time>,
    /// A held write taken out of `VolumeClient::unstable`, by its ticket: it stops counting
    /// there once logged.
    held: Option<u64>,
}

struct Queued {
    rec: LoggedRecord,
    /// The same incarnation's previous records on the objects this record chains (see
    /// [`crate::chains`]).
    follows: Follows,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Counters of the update path, for `status` and the bench.
#[derive(Debug, Default)]
pub struct UpdateStats {
    /// WRITE records logged.
    pub writes: AtomicU64,
    /// Records logged.
    pub records: AtomicU64,
    /// Durable log commits (each holds one or more records: group commit).
    pub log_commits: AtomicU64,
    /// Batches a server applied (each one redb transaction there), summed over members.
    pub batches: AtomicU64,
    /// Records whose replicas answered differently.
    pub divergent: AtomicU64,
    /// Times a server refused a call for a stale catalogue epoch and the group was
    /// refreshed (rule 13).
    pub group_refreshes: AtomicU64,
}

impl std::fmt::Display for UpdateStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "{} records ({} writes) in {} log commits and {} server batches ({} divergent, {} group refreshes)",
            get(&self.records),
            get(&self.writes),
            get(&self.log_commits),
            get(&self.batches),
            get(&self.divergent),
            get(&self.group_refreshes)
        )
    }
}

/// A client daemon's state as `codetta status` shows it (written to `status.json` in its
/// data directory every second).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ClientStatus {
    pub volume: String,
    /// Each server of the volume's group and whether it is in the AVSG.
    pub servers: Vec<(String, bool)>,
    /// Records logged and not yet complete, and their data bytes.
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    /// Records logged since start, and how many got different answers from replicas.
    pub records: u64,
    pub divergent: u64,
    /// Calls answered from the cache under promises, and those that were not (rule 15).
    #[serde(default)]
    pub cache_hits: u64,
    #[serde(default)]
    pub cache_misses: u64,
}

/// Options of the update path.
#[derive(Debug, Clone, Copy)]
pub struct VolumeClientOptions {
    /// Bound on the modify log's unshipped bytes.
    pub log_max_bytes: u64,
    /// Copies a record needs before its caller is answered (rule 1; default 1).
    pub min_copies: usize,
    /// How big the cache may grow.
    pub cache: CacheLimits,
    /// Fault injection for tests: the appender waits this long before each append, so
    /// records stay on their way into the log for a while (zero otherwise).
    pub append_delay: Duration,
    /// Where records read the time ([`Time::now`]; the simulation's clock is virtual).
    pub wall_clock: fn() -> Time,
}

/// The log's records from the oldest incomplete one on, with the write-all state.
/// Invariant: `queue[i]` has sequence number `shipping.front() + i`.
struct Outbox {
    queue: VecDeque<Queued>,
    shipping: Shipping,
    /// The states batch replies carried, until every member has answered alike.
    landing: Landing<FillStamp>,
    /// Each object's newest logged record, which the next one on it follows.
    chains: Chains,
    /// Members that missed this client's updates, per object: never read from alone.
    missed: Missed,
}

/// Where the cache stood when a fill began: its invalidation count and the promises then
/// trusted (see [`Core::fill_start`]).
type FillStamp = (u64, Trust);

/// How long a validation of an object across the AVSG stays good (no callbacks yet:
/// another client's update that missed a replica is noticed within this).
const VALIDATION_TTL: Duration = Duration::from_secs(2);
/// How long a read waits for resolution to settle an object that no member holds whole
/// (another coordinator may be installing it) before it reads from a member nobody
/// dominates.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// Every AVSG member's answer about one object (see `VolumeClient::compare`).
struct Comparison {
    states: Vec<(usize, Option<ObjectState>)>,
    failed: Option<ClientError>,
    complete: bool,
}

/// One comparison of an object across the AVSG (rule 4).
#[derive(Debug, Clone, Copy)]
struct Validation {
    /// The AVSG epoch it was made in (a member rejoining makes it void).
    epoch: u64,
    at: Instant,
    /// Every member held the same state.
    agreed: bool,
    /// The member reads go to first (one whose state includes every other's), if not any.
    from: Option<usize>,
}
/// How long a resolution asked for by this client may take.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(60);
/// Most validations remembered.
const MAX_VALIDATIONS: usize = 100_000;

/// What the appender, the member shippers and the calls share.
struct Core {
    log: Arc<ModifyLog>,
    /// The volume's group: one member per replica, in group order (joiners appended).
    group: Group,
    tracker: Mutex<Tracker>,
    outbox: Mutex<Outbox>,
    /// Every record up to this one is complete.
    acked: watch::Sender<u64>,
    stats: Arc<UpdateStats>,
    /// Goes up whenever a member rejoins the AVSG (it may be stale: validate again).
    epoch: AtomicU64,
    /// Objects compared across the AVSG, and where their reads go.
    validated: Mutex<HashMap<Fid, Validation>>,
    /// The VolumeClient owning this core, for work that logs records (undoing exclusive creates).
    volume_client: std::sync::OnceLock<std::sync::Weak<VolumeClient>>,
    /// What was fetched under callback promises (rule 15). Lock order: after the tracker
    /// and the outbox.
    cache: Mutex<Cache>,
    /// The callback channel of each member.
    channels: Channels,
    /// Files read in order: where the next read is expected, how far ahead is fetched.
    streams: Mutex<HashMap<Fid, ReadStream>>,
    /// Fetches ahead under way.
    arriving: Mutex<Vec<Arriving>>,
    /// Bounds the fetches ahead under way.
    read_ahead_slots: Arc<Semaphore>,
}

/// A fetch ahead under way: `fid`'s bytes `from..to`, and when it is over.
struct Arriving {
    fid: Fid,
    from: u64,
    to: u64,
    done: watch::Receiver<bool>,
}

/// One reader's progress through a file: where its next in-order read starts, and how far
/// read-ahead has fetched (or is fetching).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ReadStream {
    next: u64,
    ahead: u64,
}

impl ReadStream {
    /// Notes a read of `count` bytes at `offset` of a file of `size` bytes, and returns the
    /// range to fetch ahead, whole blocks from where read-ahead stands to `READ_AHEAD`
    /// past the read: `None` when the read was not in order (which starts over) or when
    /// read-ahead is more than half a window ahead already.
    fn advance(&mut self, offset: u64, count: u32, size: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(u64::from(count));
        let in_order = offset == self.next;
        self.next = end;
        if !in_order {
            self.ahead = 0;
            return None;
        }
        let to = end.saturating_add(READ_AHEAD).min(size);
        // Whole blocks only: a fetch is cut into blocks from where it starts.
        let from = self.ahead.max(end);
        let from = from - from % CACHE_BLOCK;
        if from >= to || from.saturating_sub(end) > READ_AHEAD / 2 {
            // Far enough ahead already; fetch again once half the window is read.
            return None;
        }
        self.ahead = to.div_ceil(CACHE_BLOCK).saturating_mul(CACHE_BLOCK);
        Some((from, to))
    }
}

/// The client core shared by the NFS adapter and the background tasks.
pub struct VolumeClient {
    core: Arc<Core>,
    identity: ClientState,
    /// The volume's root (it never changes).
    root: Fid,
    next_vnode: AtomicU64,
    /// Unbounded: every submission holds its share of `capacity`, which bounds them.
    submit_tx: mpsc::UnboundedSender<Submission>,
    acked: watch::Receiver<u64>,
    capacity: Arc<Semaphore>,
    /// UNSTABLE writes not yet logged (at most half the log's capacity); taken out and
    /// sent to the appender under this lock, so a file's writes are logged in order and
    /// before any later update of it.
    unstable: Mutex<Unstable<OwnedSemaphorePermit>>,
    /// See [`VolumeClientOptions::append_delay`].
    append_delay: Duration,
    /// Tickets of held writes sent to the appender (the last one handed out)...
    held_sent: AtomicU64,
    /// ...and of those it has logged (the highest; it logs them in the order sent): a
    /// COMMIT or READ waits for the writes sent before it.
    held_logged: watch::Sender<u64>,
    /// Every record's time: never repeats, never goes back.
    clock: Mutex<RecordClock>,
    /// Serialises first fetches of overlay bases so concurrent writers agree on one.
    overlay_fetch: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: Arc<UpdateStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unexpected(body: ReplyBody) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {body:?}"))
}

/// Calls `links` in order until one answers; a refusal (`Fs`) is an answer.
pub(crate) async fn first_answer(
    links: &[Arc<ServerLink>],
    request: &Request,
) -> Result<(usize, ReplyBody), ClientError> {
    let mut last = ClientError::Unavailable;
    for (i, link) in links.iter().enumerate() {
        match link.call(request, Bytes::new()).await {
            Ok((body, _)) => return Ok((i, body)),
            Err(e @ ClientError::Fs(_)) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A fresh incarnation from the first server that answers, claimed on every other server
/// that answers (so no server hands it out again); a collision draws another.
async fn new_identity(links: &[Arc<ServerLink>]) -> Result<ClientState, ClientError> {
    'draw: loop {
        let (from, body) = first_answer(links, &Request::NewIncarnation).await?;
        let ReplyBody::Incarnation {
            incarnation,
            unique,
        } = body
        else {
            return Err(unexpected(body));
        };
        for (i, link) in links.iter().enumerate() {
            if i == from {
                continue;
            }
            match link
                .call(&Request::ClaimIncarnation { incarnation }, Bytes::new())
                .await
            {
                Ok(_) => {}
                Err(ClientError::Fs(FsError::Exists)) => {
                    tracing::warn!(
                        incarnation = incarnation.0,
                        "incarnation taken elsewhere; drawing another"
                    );
                    continue 'draw;
                }
                Err(e) => {
                    tracing::debug!(
                        server = link.server_name(),
                        "incarnation not claimed there: {e}"
                    );
                }
            }
        }
        return Ok(ClientState {
            incarnation,
            unique,
            next_vnode: 1,
            next_seq: 1,
        });
    }
}

impl VolumeClient {
    /// Opens the log of `volume` (one log per volume: each numbers its records densely),
    /// obtains an incarnation if it has none, and starts the appender and one shipper per
    /// group member. Records left in the log by a previous run are shipped first.
    pub async fn start(
        log: Arc<ModifyLog>,
        pool: Arc<LinkPool>,
        volume: VolumeInfo,
        options: VolumeClientOptions,
    ) -> Result<Arc<VolumeClient>, ClientError> {
        let servers = pool.all();
        let identity = match log.state()? {
            Some(state) => state,
            None => {
                let state = new_identity(&servers).await?;
                log.set_state(state)?;
                state
            }
        };
        let root = volume.root;
        let group = Group::new(pool, volume.clone())?;
        let pending = log.pending()?;
        let front = pending
            .first()
            .map(|r| r.record.id.seq)
            .unwrap_or(identity.next_seq);
        let replicas: Vec<_> = volume.vsg.iter().map(|m| m.replica).collect();
        let mut shipping = Shipping::new(
            identity.incarnation,
            volume.id,
            &replicas,
            options.min_copies,
            front,
        );
        let (acked_tx, acked_rx) = watch::channel(front.saturating_sub(1));
        let mut tracker = Tracker::default();
        let mut queue = VecDeque::new();
        let mut chains = Chains::default();
        // The newest record each object had applied before the log's front, then the
        // records the log still holds.
        for (object, inc, seq) in log.chain_seeds() {
            if *inc == identity.incarnation {
                chains.link(*object, *inc, *seq);
            }
        }
        let mut missed = Missed::default();
        for (replica, fid, seq) in log.mark_seeds() {
            missed.mark(*replica, *fid, *seq);
        }
        for rec in pending {
            // After a restart nobody waits: every record is as good as answered early.
            let id = rec.record.id;
            tracker.logged(id.seq, &rec.record.op, rec.record.time, true);
            shipping.logged(id.seq);
            let follows = chains.link_record(&rec.record.op, id.incarnation, id.seq);
            queue.push_back(Queued {
                rec,
                follows,
                _permit: None,
            });
        }
        let units =
            usize::try_from((options.log_max_bytes / CAPACITY_UNIT).max(1)).unwrap_or(usize::MAX);
        let (submit_tx, submit_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(UpdateStats::default());
        let core = Arc::new(Core {
            log: log.clone(),
            group,
            tracker: Mutex::new(tracker),
            outbox: Mutex::new(Outbox {
                queue,
                shipping,
                landing: Landing::default(),
                chains,
                missed,
            }),
            acked: acked_tx,
            stats: stats.clone(),
            epoch: AtomicU64::new(0),
            validated: Mutex::new(HashMap::new()),
            volume_client: std::sync::OnceLock::new(),
            cache: Mutex::new(Cache::new(options.cache)),
            channels: Channels::default(),
            streams: Mutex::new(HashMap::new()),
            arriving: Mutex::new(Vec::new()),
            read_ahead_slots: Arc::new(Semaphore::new(READ_AHEAD_TASKS)),
        });
        let volume_client = Arc::new(VolumeClient {
            core: core.clone(),
            identity,
            root,
            next_vnode: AtomicU64::new(identity.next_vnode),
            submit_tx,
            acked: acked_rx,
            capacity: Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS))),
            unstable: Mutex::new(Unstable::new(
                usize::try_from(options.log_max_bytes / 2).unwrap_or(usize::MAX),
            )),
            append_delay: options.append_delay,
            held_sent: AtomicU64::new(0),
            held_logged: watch::Sender::new(0),
            clock: Mutex::new(RecordClock {
                last: Time::default(),
                wall: options.wall_clock,
            }),
            overlay_fetch: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            stats,
        });
        let _ = core.volume_client.set(Arc::downgrade(&volume_client));
        let mut tasks = vec![tokio::spawn(appender(
            Arc::downgrade(&volume_client),
            submit_rx,
            identity.next_seq,
        ))];
        for m in 0..core.group.all().len() {
            tasks.push(tokio::spawn(member_shipper(core.clone(), m)));
            tasks.push(tokio::spawn(member_channel(core.clone(), m)));
        }
        lock(&volume_client.tasks).extend(tasks);
        Ok(volume_client)
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.core
            .group
            .member(0)
            .map_or(Duration::from_secs(2), |m| m.link.deadline())
    }

    /// The volume this client serves, as of the newest catalogue epoch it has.
    pub fn volume(&self) -> VolumeInfo {
        self.core.group.info()
    }

    /// Servers of the volume's group in the AVSG now, by name.
    pub fn avsg(&self) -> Vec<String> {
        let outbox = lock(&self.core.outbox);
        outbox
            .shipping
            .avsg()
            .into_iter()
            .filter_map(|m| self.core.group.member(m))
            .map(|m| m.link.server_name().to_string())
            .collect()
    }

    /// Records logged but not yet complete.
    pub fn backlog(&self) -> usize {
        lock(&self.core.outbox).shipping.backlog()
    }

    /// What `codetta status` shows of this client.
    pub fn status(&self) -> ClientStatus {
        let cache = self.cache_stats();
        let outbox = lock(&self.core.outbox);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStatus {
            volume: self.core.group.info().name,
            servers: self
                .core
                .group
                .all()
                .iter()
                .enumerate()
                .filter(|(m, _)| !outbox.shipping.is_retired(*m))
                .map(|(m, x)| (x.link.server_name().to_string(), outbox.shipping.in_avsg(m)))
                .collect(),
            backlog_records: outbox.shipping.backlog() as u64,
            backlog_bytes: outbox.queue.iter().map(|q| q.rec.data.len() as u64).sum(),
            records: get(&self.stats.records),
            divergent: get(&self.stats.divergent),
            cache_hits: cache.hits,
            cache_misses: cache.misses,
        }
    }

    /// Allocates a fid for a new object in `volume` (vnode = incarnation << 32 | counter).
    pub fn alloc_fid(&self, volume: VolumeId) -> Result<Fid, ClientError> {
        let counter = self.next_vnode.fetch_add(1, Ordering::Relaxed);
        if counter >= 1 << 32 {
            return Err(ClientError::Storage(
                "this incarnation's vnode space is exhausted; restart the client with a fresh data directory".into(),
            ));
        }
        Ok(Fid {
            volume,
            vnode: (u64::from(self.identity.incarnation.0) << 32) | counter,
            unique: self.identity.unique,
        })
    }
    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        lock(&self.core.cache).stats
    }

    /// The root fid of the volume this client serves.
    pub fn root(&self) -> Fid {
        self.root
    }

    /// Space figures of the server holding `volume`.
    pub async fn space(&self, volume: VolumeId) -> Result<SpaceInfo, ClientError> {
        match self.read_call(&Request::FsStat { volume }).await?.0 {
            ReplyBody::Space(space) => Ok(space),
            other => Err(unexpected(other)),
        }
    }

    /// Stops the background tasks and closes the modify log (releasing its file lock).
    /// Everything acknowledged is already durable in the log or on the server.
    pub fn close(&self) {
        self.stop_tasks();
        self.core.log.close();
    }

    /// Stops as a killed daemon does: the tasks end where they wait and the log is left
    /// as it stands (no clean close). For the simulation.
    pub fn abandon(&self) {
        self.stop_tasks();
        self.core.log.abandon();
    }

    fn stop_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Closes the connections to the group's servers.
    pub async fn close_links(&self) {
        for m in self.core.group.all() {
            m.link.close().await;
        }
    }
}

/// A clock that never repeats or goes back, so every update changes mtime.
struct RecordClock {
    last: Time,
    wall: fn() -> Time,
}

impl RecordClock {
    fn next(&mut self) -> Time {
        self.next_after((self.wall)())
    }

    /// The next time given the wall clock's `now`: `now` if it is later than the last one
    /// handed out, else one nanosecond after the last.
    fn next_after(&mut self, now: Time) -> Time {
        self.last = if now > self.last {
            now
        } else if self.last.nanos < 999_999_999 {
            Time {
                secs: self.last.secs,
                nanos: self.last.nanos + 1,
            }
        } else {
            Time {
                secs: self.last.secs + 1,
                nanos: 0,
            }
        };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64, nanos: u32) -> Time {
        Time { secs, nanos }
    }

    /// Read-ahead starts with the second in-order read, keeps a window of `READ_AHEAD`
    /// ahead of the reader in whole blocks, fetches again only once half of it is read,
    /// stops at the end of the file, and starts over after a seek.
    #[test]
    fn read_ahead_follows_a_reader_in_order() {
        let mut s = ReadStream::default();
        let size = 64 << 20;
        assert_eq!(s.advance(0, 4096, size), Some((0, 4096 + READ_AHEAD)));
        assert_eq!(s.ahead % CACHE_BLOCK, 0, "whole blocks");
        // Within the first half of the window: nothing more to fetch.
        assert_eq!(s.advance(4096, 1 << 20, size), None);
        // Past half the window: the next part is fetched from where read-ahead stands.
        let at = READ_AHEAD / 2 + CACHE_BLOCK;
        let mut later = ReadStream { next: at, ..s };
        assert_eq!(
            later.advance(at, 4096, size),
            Some((READ_AHEAD + CACHE_BLOCK, at + 4096 + READ_AHEAD)),
            "from where read-ahead stands"
        );
        // A seek starts over; the next in-order read fetches again.
        assert_eq!(s.advance(32 << 20, 4096, size), None);
        assert_eq!(s.ahead, 0);
        assert!(s.advance((32 << 20) + 4096, 4096, size).is_some());
        // Near the end of the file the window stops at its size.
        let mut tail = ReadStream::default();
        assert_eq!(tail.advance(0, 4096, 10_000), Some((0, 10_000)));
        assert_eq!(tail.advance(4096, 4096, 10_000), None, "all fetched");
    }

    /// Record times follow the wall clock while it moves forward, and never repeat or go
    /// back when it stands still or steps back.
    #[test]
    fn record_times_never_repeat_or_go_back() {
        let mut clock = RecordClock {
            last: t(0, 0),
            wall: Time::now,
        };
        assert_eq!(clock.next_after(t(10, 5)), t(10, 5));
        assert_eq!(clock.next_after(t(10, 5)), t(10, 6), "a repeated reading");
        assert_eq!(
            clock.next_after(t(9, 0)),
            t(10, 7),
            "the clock stepped back"
        );
        assert_eq!(clock.next_after(t(11, 0)), t(11, 0));
        let mut edge = RecordClock {
            last: t(5, 999_999_999),
            wall: Time::now,
        };
        assert_eq!(
            edge.next_after(t(5, 0)),
            t(6, 0),
            "nanoseconds carry into seconds"
        );
        assert!(clock.next() > t(11, 0));
    }
}
