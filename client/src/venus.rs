//! Venus, the client's core: allocates fids and update ids, appends every mutation to the
//! modify log (group-committed), ships the log to every member of the volume's AVSG in
//! sequenced batches (write-all, [`crate::replicate`]), reads from one member, and answers
//! reads with the client's own unshipped updates on top of server state.
//!
//! Answer rules (rule 1): `submit` returns once the record is durable in the log (enough
//! for an UNSTABLE WRITE); `submit_and_wait` returns once the record is complete: applied by
//! every AVSG member that answered within the deadline and by at least `min_copies` (every
//! namespace and attribute change, FILE_SYNC WRITE); `flush` waits for every record that
//! touches an object (COMMIT).

use crate::cache::{CACHE_BLOCK, Cache, CacheLimits, CacheStats};
use crate::error::ClientError;
use crate::group::Group;
use crate::landing::{Landed, Landing};
use crate::link::{LinkPool, ServerLink};
use crate::log::{ClientState, LoggedRecord, ModifyLog};
use crate::promises::{Channels, Trust};
use crate::read_source::{ReadSource, read_source, undominated};
use crate::replicate::{BatchPlan, Completed, Shipping};
use crate::tracker::Tracker;
use crate::unstable::{HeldWrite, Unstable};
use bytes::Bytes;
use codetta_wire::message::{DirEntry, ObjectState, ReplyBody, SpaceInfo, VolumeInfo};
use codetta_wire::update::Op;
use codetta_wire::{
    Attrs, Fid, FsError, Name, Payload, RecordOutcome, Request, Time, UpdateId, UpdateRecord,
    VolumeId,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// Most records in one shipped batch.
const MAX_BATCH_RECORDS: usize = 1024;
/// Most bytes one READ asks a server for (the server's own limit).
const MAX_READ: u32 = 1 << 20;
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
    /// A held write taken out of `Venus::unstable`: it stops counting there once logged.
    held: bool,
}

struct Queued {
    rec: LoggedRecord,
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
pub struct VenusOptions {
    /// Bound on the modify log's unshipped bytes.
    pub log_max_bytes: u64,
    /// Copies a record needs before its caller is answered (rule 1; default 1).
    pub min_copies: usize,
    /// How big the cache may grow.
    pub cache: CacheLimits,
}

/// The log's records from the oldest incomplete one on, with the write-all state.
/// Invariant: `queue[i]` has sequence number `shipping.front() + i`.
struct Outbox {
    queue: VecDeque<Queued>,
    shipping: Shipping,
    /// The states batch replies carried, until every member has answered alike.
    landing: Landing<FillStamp>,
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

/// Every AVSG member's answer about one object (see `Venus::compare`).
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
    /// The Venus owning this core, for work that logs records (undoing exclusive creates).
    venus: std::sync::OnceLock<std::sync::Weak<Venus>>,
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

/// A file being read in order.
#[derive(Debug, Default)]
struct ReadStream {
    next: u64,
    ahead: u64,
}

/// The client core shared by the NFS adapter and the background tasks.
pub struct Venus {
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

impl Venus {
    /// Opens the log of `volume` (one log per volume: each numbers its records densely),
    /// obtains an incarnation if it has none, and starts the appender and one shipper per
    /// group member. Records left in the log by a previous run are shipped first.
    pub async fn start(
        log: Arc<ModifyLog>,
        pool: Arc<LinkPool>,
        volume: VolumeInfo,
        options: VenusOptions,
    ) -> Result<Arc<Venus>, ClientError> {
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
        for rec in pending {
            // After a restart nobody waits: every record is as good as answered early.
            tracker.logged(rec.record.id.seq, &rec.record.op, rec.record.time, true);
            shipping.logged(rec.record.id.seq);
            queue.push_back(Queued { rec, _permit: None });
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
            }),
            acked: acked_tx,
            stats: stats.clone(),
            epoch: AtomicU64::new(0),
            validated: Mutex::new(HashMap::new()),
            venus: std::sync::OnceLock::new(),
            cache: Mutex::new(Cache::new(options.cache)),
            channels: Channels::default(),
            streams: Mutex::new(HashMap::new()),
            arriving: Mutex::new(Vec::new()),
            read_ahead_slots: Arc::new(Semaphore::new(READ_AHEAD_TASKS)),
        });
        let venus = Arc::new(Venus {
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
            clock: Mutex::new(RecordClock {
                last: Time::default(),
            }),
            overlay_fetch: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            stats,
        });
        let _ = core.venus.set(Arc::downgrade(&venus));
        let mut tasks = vec![tokio::spawn(appender(
            Arc::downgrade(&venus),
            submit_rx,
            identity.next_seq,
        ))];
        for m in 0..core.group.all().len() {
            tasks.push(tokio::spawn(member_shipper(core.clone(), m)));
            tasks.push(tokio::spawn(member_channel(core.clone(), m)));
        }
        lock(&venus.tasks).extend(tasks);
        Ok(venus)
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
    async fn enqueue(
        &self,
        op: Op,
        data: Bytes,
        waiter: Option<oneshot::Sender<RecordOutcome>>,
    ) -> Result<u64, ClientError> {
        // Held writes of the objects this changes are logged first, in order.
        for fid in crate::cache::touched(&op) {
            self.release_held(&fid);
        }
        let permit = self.log_capacity(data.len()).await?;
        let (done_tx, done_rx) = oneshot::channel();
        self.submit_tx
            .send(Submission {
                op,
                data,
                permit,
                waiter,
                done: done_tx,
                time: None,
                held: false,
            })
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
        done_rx
            .await
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?
    }

    /// The share of the log's capacity a record with `bytes` of data takes, waited for up
    /// to the per-call deadline (then `LogFull`: the caller gets JUKEBOX).
    async fn log_capacity(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ClientError> {
        let units = u32::try_from((bytes as u64 + 128).div_ceil(CAPACITY_UNIT)).unwrap_or(u32::MAX);
        tokio::time::timeout(
            self.deadline(),
            self.capacity.clone().acquire_many_owned(units),
        )
        .await
        .map_err(|_| ClientError::LogFull)?
        .map_err(|_| ClientError::LogFull)
    }

    /// Holds an UNSTABLE write of `data` at `offset` in memory (RFC 1813: it is made
    /// durable by the COMMIT that follows, and the write verifier changes at each start so
    /// a lost one is sent again). It takes its share of the log's capacity now; past the
    /// held limit, the files that waited longest are logged.
    pub async fn hold_write(&self, fid: Fid, offset: u64, data: Bytes) -> Result<(), ClientError> {
        let permit = self.log_capacity(data.len()).await?;
        let hashes = codetta_wire::update::piece_hashes(offset, &data);
        let time = lock(&self.clock).next();
        let mut unstable = lock(&self.unstable);
        unstable.add(
            fid,
            HeldWrite {
                offset,
                data,
                time,
                hashes,
                permit,
            },
        );
        // A run worth a batch ships now, overlapping the writes that follow.
        if unstable.file_bytes(&fid) >= RELEASE_RUN {
            let writes = unstable.take(&fid);
            self.send_held(fid, writes);
        }
        while let Some((oldest, writes)) = unstable.take_oldest() {
            self.send_held(oldest, writes);
        }
        Ok(())
    }

    /// Sends `fid`'s held writes to the appender (the caller holds the `unstable` lock);
    /// what each one's logging came to.
    fn send_held(
        &self,
        fid: Fid,
        writes: Vec<HeldWrite<OwnedSemaphorePermit>>,
    ) -> Vec<oneshot::Receiver<Result<u64, ClientError>>> {
        let mut logged = Vec::with_capacity(writes.len());
        for w in writes {
            let (done, rx) = oneshot::channel();
            let op = Op::Write {
                fid,
                offset: w.offset,
                len: u32::try_from(w.data.len()).unwrap_or(u32::MAX),
                hashes: w.hashes,
            };
            let sent = self.submit_tx.send(Submission {
                op,
                data: w.data,
                permit: w.permit,
                waiter: None,
                done,
                time: Some(w.time),
                held: true,
            });
            if sent.is_ok() {
                logged.push(rx);
            }
        }
        logged
    }

    /// Sends `fid`'s held writes to be logged, without waiting.
    fn release_held(&self, fid: &Fid) -> Vec<oneshot::Receiver<Result<u64, ClientError>>> {
        let mut unstable = lock(&self.unstable);
        if !unstable.holds(fid) {
            return Vec::new();
        }
        let writes = unstable.take(fid);
        self.send_held(*fid, writes)
    }

    /// Logs `fid`'s held writes and waits until they are in the log (the tracker then
    /// knows them: reads wait for them, attributes include them).
    async fn settle_held(&self, fid: &Fid) -> Result<(), ClientError> {
        for logged in self.release_held(fid) {
            logged
                .await
                .map_err(|_| ClientError::Storage("client is shutting down".into()))??;
        }
        Ok(())
    }

    /// Logs every held write (a daemon stopping in order keeps them; the kernel would
    /// send them again anyway, the verifier being new at the next start). Waits at most
    /// `within` for the log.
    pub async fn log_held(&self, within: Duration) {
        let logged: Vec<_> = {
            let mut unstable = lock(&self.unstable);
            let files = unstable.take_all();
            files
                .into_iter()
                .flat_map(|(fid, writes)| self.send_held(fid, writes))
                .collect()
        };
        let all = futures::future::join_all(logged);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("held writes not all logged before the stop");
        }
    }

    /// `attrs` of `fid` with its held writes.
    fn with_held(&self, fid: &Fid, mut attrs: Attrs) -> Attrs {
        lock(&self.unstable).overlay(fid, &mut attrs);
        attrs
    }

    /// Logs a mutation durably and returns without waiting for the server.
    pub async fn submit(&self, op: Op, data: Bytes) -> Result<u64, ClientError> {
        self.enqueue(op, data, None).await
    }

    /// Logs a mutation and waits until the server has applied it.
    pub async fn submit_and_wait(&self, op: Op, data: Bytes) -> Result<Option<Fid>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(op, data, Some(tx)).await?;
        match tokio::time::timeout(self.completion_wait(), rx).await {
            Ok(Ok(outcome)) => Ok(outcome?),
            Ok(Err(_)) => Err(ClientError::Storage("client is shutting down".into())),
            Err(_) => Err(self.waiting_error()),
        }
    }

    /// How long a caller waits for its record to complete: long enough for a member that
    /// misses the per-call deadline to leave the AVSG and the record to complete without
    /// it (rule 14), so that a single dead server costs one slow call, not a JUKEBOX.
    fn completion_wait(&self) -> Duration {
        self.deadline() * 2 + Duration::from_millis(500)
    }

    /// The error for a call that waited in vain: IO once every member has been gone past
    /// the JUKEBOX window, JUKEBOX before.
    fn waiting_error(&self) -> ClientError {
        if self.core.group.all().iter().all(|m| m.link.down_too_long()) {
            ClientError::Down
        } else {
            ClientError::Unavailable
        }
    }

    /// Read-one (rule 4): sends `request` to the member the object's last validation chose
    /// (one whose state includes every other's), else to the first AVSG member (the
    /// group's order is the preference), moving on when one is unreachable (it then leaves
    /// the AVSG) or is still receiving the object from resolution (`Incomplete`: its data
    /// is not whole there). Any other refusal is the answer.
    async fn read_call(&self, request: &Request) -> Result<(ReplyBody, Bytes), ClientError> {
        let target = request.read_target();
        let mut incomplete = None;
        // A refresh of the group (a stale epoch) starts the round again.
        'rounds: for _ in 0..3 {
            let mut order = {
                let outbox = lock(&self.core.outbox);
                let avsg = outbox.shipping.avsg();
                if avsg.is_empty() {
                    (0..outbox.shipping.members())
                        .filter(|m| !outbox.shipping.is_retired(*m))
                        .collect()
                } else {
                    avsg
                }
            };
            if let Some(from) = target.and_then(|fid| self.core.read_from(&fid))
                && let Some(at) = order.iter().position(|m| *m == from)
            {
                order[..=at].rotate_right(1);
            }
            for m in order {
                match self.core.call(m, request, None).await {
                    Ok(reply) => return Ok(reply),
                    Err(ClientError::Fs(FsError::StaleEpoch { .. })) => continue 'rounds,
                    Err(e @ ClientError::Fs(FsError::Incomplete)) => {
                        // Validated before the install began there: compare again next
                        // time, and have it finished.
                        if let Some(fid) = target {
                            lock(&self.core.validated).remove(&fid);
                            if incomplete.is_none() {
                                self.core.request_resolution(vec![m], vec![fid]);
                            }
                        }
                        incomplete = Some(e);
                    }
                    Err(e @ (ClientError::Fs(_) | ClientError::Protocol(_))) => return Err(e),
                    Err(_) => self.core.member_failed(m, None),
                }
            }
            break;
        }
        Err(incomplete.unwrap_or_else(|| self.waiting_error()))
    }

    /// Waits until every logged record that touches `fid` is applied by the server.
    pub async fn flush(&self, fid: &Fid) -> Result<(), ClientError> {
        let Some(target) = lock(&self.core.tracker).barrier(fid) else {
            return Ok(());
        };
        let mut acked = self.acked.clone();
        tokio::time::timeout(self.completion_wait(), acked.wait_for(|a| *a >= target))
            .await
            .map_err(|_| self.waiting_error())?
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
        Ok(())
    }

    /// COMMIT: flushes `fid` and reports the first failure of its unwaited updates.
    pub async fn commit(&self, fid: &Fid) -> Result<(), ClientError> {
        self.settle_held(fid).await?;
        self.flush(fid).await?;
        match lock(&self.core.tracker).sticky.remove(fid) {
            Some(e) => Err(ClientError::WriteRefused(e)),
            None => Ok(()),
        }
    }

    /// Makes sure `fid`'s predicted attributes are tracked before a write or setattr is
    /// logged, so GETATTR can answer from them while the records are unshipped.
    pub async fn track_attrs(&self, fid: &Fid) -> Result<Attrs, ClientError> {
        if let Some(attrs) = lock(&self.core.tracker).overlay(fid) {
            return Ok(attrs);
        }
        let _guard = self.overlay_fetch.lock().await;
        if let Some(attrs) = lock(&self.core.tracker).overlay(fid) {
            return Ok(attrs);
        }
        self.flush(fid).await?;
        let state = self.fetch_attrs(fid).await?;
        let mut tracker = lock(&self.core.tracker);
        let entry = tracker.fids.entry(*fid).or_default();
        // Records logged after the fetch started are applied on top by the appender only
        // when an overlay exists, so only install ours if no record slipped in meanwhile.
        if entry.overlay.is_none() && entry.last_seq <= *self.acked.borrow() {
            entry.overlay = Some(state.attrs.clone());
        }
        Ok(entry.overlay.clone().unwrap_or(state.attrs))
    }

    /// Validate-all (rule 4): before `fid` is read from one replica, every AVSG member's
    /// version and tag are compared. Reads go to a member whose state includes every
    /// other's ([`read_source`]); when no member's does, a server is asked to resolve the
    /// object and the states are compared again, for up to [`SETTLE_WAIT`] (another
    /// coordinator may be installing it), and then reads go to a member no other member's
    /// state dominates. Each comparison leaves a promise on every member (rule 15): while
    /// they hold, the state is cached and nothing is asked again. Without trusted promises
    /// a validation holds for [`VALIDATION_TTL`] and until a member rejoins the AVSG.
    /// Returns the state of the member reads go to, when it is at hand. `for_data`: the
    /// object's data is about to be read, so it is compared (and cached) even if it was
    /// a moment ago, for its blocks can be kept only under a cached state.
    async fn validate(
        &self,
        fid: &Fid,
        for_data: bool,
    ) -> Result<Option<ObjectState>, ClientError> {
        let core = &self.core;
        if let Some(state) = core.cached_state(fid) {
            return Ok(Some(state));
        }
        let fill = core.fill_start();
        let epoch = core.epoch.load(Ordering::Relaxed);
        // Validated a moment ago (the object changes often, e.g. a directory this client
        // creates in): reads go to the member chosen then, without a promise on every
        // member.
        let recent = core.validation(fid).map(|v| v.agreed);
        // A data read compares again (its blocks are kept only under a cached state),
        // unless the replicas differed a moment ago (resolution is under way).
        let compare_again = for_data && fill.is_some() && recent == Some(true);
        if (fill.is_none() && core.group.all().len() < 2) || (recent.is_some() && !compare_again) {
            return Ok(None);
        }
        let settle_by = Instant::now() + SETTLE_WAIT;
        let mut pause = Duration::from_millis(20);
        let mut asked = false;
        let (mut states, complete, source) = loop {
            let Comparison {
                states,
                failed,
                complete,
            } = self.compare(fid).await;
            if states.iter().all(|(_, s)| s.is_none()) {
                // Every member refused (e.g. the object is gone): that is the answer.
                return Err(failed.unwrap_or_else(|| self.waiting_error()));
            }
            match read_source(&states) {
                ReadSource::Resolve if Instant::now() < settle_by => {
                    if asked {
                        // Another coordinator holds the object (its lease refused ours):
                        // give it a moment.
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(250));
                    } else {
                        tracing::info!(%fid, "replicas differ; resolving before the read");
                    }
                    asked = true;
                    self.resolve_now(*fid).await;
                }
                ReadSource::Resolve => {
                    let from = undominated(&states);
                    tracing::warn!(%fid, ?from, "replicas still differ; reading from one nobody dominates");
                    break (
                        states,
                        complete,
                        from.map_or(ReadSource::Any, ReadSource::From),
                    );
                }
                source => break (states, complete, source),
            }
        };
        // Cached only when every member answered with the same state.
        let agree =
            source == ReadSource::Any && complete && states.iter().all(|(_, s)| s.is_some());
        let from = match source {
            ReadSource::From(m) => {
                // The others are merely behind: let a server bring them up meanwhile.
                core.request_resolution(states.iter().map(|(m, _)| *m).collect(), vec![*fid]);
                Some(m)
            }
            _ => None,
        };
        {
            let mut validated = lock(&core.validated);
            if validated.len() >= MAX_VALIDATIONS {
                validated.clear();
            }
            validated.insert(
                *fid,
                Validation {
                    epoch,
                    at: Instant::now(),
                    agreed: agree,
                    from,
                },
            );
        }
        if !agree {
            return Ok(None);
        }
        let state = states.swap_remove(0).1;
        if let (Some(state), Some((since, trust))) = (&state, fill)
            && core.trusted_still(&trust)
        {
            lock(&core.cache).put_state(since, state.clone());
        }
        Ok(state)
    }

    /// Every AVSG member's state of `fid`: (member, its state; None: it lacks the object),
    /// for the members that answered about the object, the first refusal among them, and
    /// whether every member answered so. A member that does not answer leaves the AVSG; one
    /// that refuses for another reason (its replica is leaving, say) is left out.
    async fn compare(&self, fid: &Fid) -> Comparison {
        let core = &self.core;
        let avsg = lock(&core.outbox).shipping.avsg();
        let request = Request::GetAttr { fid: *fid };
        let calls = avsg.iter().map(|m| core.call(*m, &request, None));
        let replies = futures::future::join_all(calls).await;
        let mut out = Comparison {
            states: Vec::new(),
            failed: None,
            complete: true,
        };
        for (m, reply) in avsg.iter().zip(replies) {
            match reply {
                Ok((ReplyBody::State(s), _)) => out.states.push((*m, Some(s))),
                // A replica that lacks the object differs from one that has it.
                Ok(_) => out.states.push((*m, None)),
                Err(e @ ClientError::Fs(FsError::NotFound | FsError::Stale)) => {
                    out.states.push((*m, None));
                    out.failed.get_or_insert(e);
                }
                Err(e @ ClientError::Fs(_)) => {
                    out.complete = false;
                    out.failed.get_or_insert(e);
                }
                Err(_) => {
                    out.complete = false;
                    core.member_failed(*m, None);
                }
            }
        }
        out
    }

    /// Asks AVSG members, in order, to resolve `fid`, and waits for the first answer.
    async fn resolve_now(&self, fid: Fid) {
        let request = Request::Resolve { fids: vec![fid] };
        let avsg = lock(&self.core.outbox).shipping.avsg();
        for m in avsg {
            if let Ok((ReplyBody::Resolved(s), _)) =
                self.core.call(m, &request, Some(RESOLVE_DEADLINE)).await
            {
                tracing::debug!(%fid, ?s, "resolved before a read");
                return;
            }
        }
    }

    /// Waits for this client's early-answered records on `fid`, then validates it.
    async fn prepare_read(
        &self,
        fid: &Fid,
        for_data: bool,
    ) -> Result<Option<ObjectState>, ClientError> {
        self.flush(fid).await?;
        self.validate(fid, for_data).await
    }

    async fn fetch_attrs(&self, fid: &Fid) -> Result<ObjectState, ClientError> {
        if let Some(state) = self.validate(fid, false).await? {
            return Ok(state);
        }
        match self.read_call(&Request::GetAttr { fid: *fid }).await?.0 {
            ReplyBody::State(state) => Ok(state),
            other => Err(unexpected(other)),
        }
    }

    /// Attributes of `fid`: predicted from unshipped records, cached under promises, or
    /// the server's.
    pub async fn getattr(&self, fid: &Fid) -> Result<Attrs, ClientError> {
        let overlay = lock(&self.core.tracker).overlay(fid);
        if let Some(attrs) = overlay {
            return Ok(self.with_held(fid, attrs));
        }
        self.flush(fid).await?;
        let attrs = self.fetch_attrs(fid).await?.attrs;
        Ok(self.with_held(fid, attrs))
    }

    fn with_overlay(&self, mut state: ObjectState) -> ObjectState {
        let overlay = lock(&self.core.tracker).overlay(&state.fid);
        if let Some(attrs) = overlay {
            state.attrs = attrs;
        }
        state.attrs = self.with_held(&state.fid, state.attrs);
        state
    }

    /// Looks `name` up in `dir` before changing it (REMOVE, RMDIR, RENAME): from the cache
    /// if it is there, else from the member reads go to only (the directory is about to
    /// change, so nothing would stay cached).
    pub async fn lookup_to_change(
        &self,
        dir: &Fid,
        name: &Name,
    ) -> Result<ObjectState, ClientError> {
        self.lookup_with(dir, name, false).await
    }

    /// Looks `name` up in `dir`: from the cache when `dir` is promised and the name (and
    /// its object) are cached, else from the server, caching what the name leads to.
    pub async fn lookup(&self, dir: &Fid, name: &Name) -> Result<ObjectState, ClientError> {
        self.lookup_with(dir, name, true).await
    }

    async fn lookup_with(
        &self,
        dir: &Fid,
        name: &Name,
        to_cache: bool,
    ) -> Result<ObjectState, ClientError> {
        self.prepare_read(dir, false).await?;
        let core = &self.core;
        if core.trust().is_some() {
            let hit = {
                let mut cache = lock(&core.cache);
                match cache.name(dir, name) {
                    Some(None) => Some(Err(ClientError::Fs(FsError::NotFound))),
                    Some(Some(child)) => cache.state(&child).map(Ok),
                    None => None,
                }
            };
            if let Some(hit) = hit {
                return hit.map(|s| self.with_overlay(s));
            }
        }
        let request = Request::Lookup {
            dir: *dir,
            name: name.clone(),
        };
        let Some((since, trust)) = core.fill_start().filter(|_| to_cache) else {
            return match self.read_call(&request).await?.0 {
                ReplyBody::State(state) => Ok(self.with_overlay(state)),
                other => Err(unexpected(other)),
            };
        };
        // Under promises, every AVSG member is asked (each leaves a promise on the name's
        // object too): when they agree, the name and the object's state are cached, and
        // the GETATTR that usually follows is answered locally.
        let avsg = lock(&core.outbox).shipping.avsg();
        let calls = avsg.iter().map(|m| core.call(*m, &request, None));
        let replies = futures::future::join_all(calls).await;
        let mut answers = Vec::with_capacity(avsg.len());
        let mut first = None;
        let from = core.read_from(dir);
        for (m, reply) in avsg.iter().zip(replies) {
            let answer = match reply {
                Ok((ReplyBody::State(state), _)) => Ok(state),
                Ok((other, _)) => return Err(unexpected(other)),
                Err(ClientError::Fs(e)) => Err(e),
                Err(_) => {
                    core.member_failed(*m, None);
                    continue;
                }
            };
            // The answer that counts is the member the directory's reads go to (rule 4).
            if first.is_none() || from == Some(*m) {
                first = Some(answer.clone());
            }
            answers.push(answer);
        }
        let Some(first) = first else {
            return Err(self.waiting_error());
        };
        let agree = answers.len() == avsg.len()
            && answers.iter().all(|a| match (a, &first) {
                (Ok(a), Ok(f)) => a.fid == f.fid && a.tag == f.tag,
                (Err(a), Err(f)) => a == f,
                _ => false,
            });
        if agree && core.trusted_still(&trust) {
            let mut cache = lock(&core.cache);
            match &first {
                Ok(state) => {
                    cache.put_state(since, state.clone());
                    cache.put_name(since, dir, name, Some(state.fid));
                }
                Err(FsError::NotFound) => cache.put_name(since, dir, name, None),
                Err(_) => {}
            }
        }
        match first {
            Ok(state) => Ok(self.with_overlay(state)),
            Err(e) => Err(ClientError::Fs(e)),
        }
    }

    /// The directory containing `dir`.
    pub async fn parent(&self, dir: &Fid) -> Result<Fid, ClientError> {
        match self.read_call(&Request::Parent { dir: *dir }).await?.0 {
            ReplyBody::State(state) => Ok(state.fid),
            other => Err(unexpected(other)),
        }
    }

    /// One page of `dir`'s entries after `cookie`.
    pub async fn readdir(
        &self,
        dir: &Fid,
        cookie: u64,
        max_entries: u32,
        with_attrs: bool,
    ) -> Result<(Vec<DirEntry>, bool), ClientError> {
        self.prepare_read(dir, false).await?;
        let request = Request::ReadDir {
            dir: *dir,
            cookie,
            max_entries,
            with_attrs,
        };
        match self.read_call(&request).await?.0 {
            ReplyBody::Dir { entries, eof, .. } => {
                let entries = entries
                    .into_iter()
                    .map(|mut e| {
                        e.state = e.state.map(|s| self.with_overlay(s));
                        e
                    })
                    .collect();
                Ok((entries, eof))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Reads up to `count` bytes at `offset`, after this client's own writes to `fid`:
    /// from the cache when `fid` is promised and its blocks are cached (or being fetched
    /// ahead); else from the server, whole cache blocks at a time, keeping them. A reader
    /// going through a file in order gets the next [`READ_AHEAD`] bytes fetched ahead.
    /// The bytes come as pieces (slices of cached blocks or of the server's reply), in
    /// order, never copied into one buffer.
    pub async fn read(
        &self,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> Result<(Attrs, Vec<Bytes>, bool), ClientError> {
        self.settle_held(fid).await?;
        let core = &self.core;
        let cached = self.prepare_read(fid, true).await?;
        if let Some(state) = &cached
            && core.trust().is_some()
        {
            let hit = cached_read(&mut lock(&core.cache), state, offset, count);
            if let Some(hit) = hit {
                self.read_ahead(state, offset, count);
                return Ok(hit);
            }
            if let Some(mut arriving) = core.arriving(fid, offset) {
                let _ =
                    tokio::time::timeout(self.deadline(), arriving.wait_for(|done| *done)).await;
                // Promises may have broken meanwhile: only the state cached now counts.
                if let Some(state) = core.cached_state(fid) {
                    let hit = cached_read(&mut lock(&core.cache), &state, offset, count);
                    if let Some(hit) = hit {
                        self.read_ahead(&state, offset, count);
                        return Ok(hit);
                    }
                }
            }
        }
        // Whole blocks around the range (a 1 MiB read at an aligned offset is 16 blocks).
        let start = offset - offset % CACHE_BLOCK;
        let end = offset
            .saturating_add(u64::from(count))
            .div_ceil(CACHE_BLOCK)
            .saturating_mul(CACHE_BLOCK);
        let aligned = core.trust().is_some() && end - start <= u64::from(MAX_READ);
        if !aligned {
            let request = Request::Read {
                fid: *fid,
                offset,
                count,
            };
            return match self.read_call(&request).await? {
                (ReplyBody::Data { state, eof }, data) => Ok((state.attrs, vec![data], eof)),
                (other, _) => Err(unexpected(other)),
            };
        }
        let (state, data, eof) = self.fetch_blocks(fid, start, (end - start) as u32).await?;
        let skip = ((offset - start) as usize).min(data.len());
        let take = (data.len() - skip).min(count as usize);
        let eof = eof && skip + take == data.len();
        self.read_ahead(&state, offset, count);
        Ok((state.attrs, vec![data.slice(skip..skip + take)], eof))
    }

    /// Reads `count` bytes at the block-aligned `start` from the server and keeps the
    /// blocks, if promises held throughout.
    async fn fetch_blocks(
        &self,
        fid: &Fid,
        start: u64,
        count: u32,
    ) -> Result<(ObjectState, Bytes, bool), ClientError> {
        let core = &self.core;
        let fill = core.fill_start();
        let request = Request::Read {
            fid: *fid,
            offset: start,
            count,
        };
        let (state, data, eof) = match self.read_call(&request).await? {
            (ReplyBody::Data { state, eof }, data) => (state, data, eof),
            (other, _) => return Err(unexpected(other)),
        };
        if let Some((since, trust)) = fill
            && start.is_multiple_of(CACHE_BLOCK)
            && core.trusted_still(&trust)
        {
            let mut cache = lock(&core.cache);
            let mut at = 0usize;
            let mut index = start / CACHE_BLOCK;
            while at < data.len() {
                let len = (data.len() - at).min(CACHE_BLOCK as usize);
                // A short block is kept only when it is the file's last.
                if len as u64 == CACHE_BLOCK || eof {
                    cache.put_block(since, fid, &state.tag, index, data.slice(at..at + len));
                }
                at += len;
                index += 1;
            }
        }
        Ok((state, data, eof))
    }

    /// After a read of `count` bytes at `offset` of the file in `state`: if the reader goes
    /// through the file in order, fetches up to [`READ_AHEAD`] bytes past it in the
    /// background (at most [`READ_AHEAD_TASKS`] fetches at once across the volume).
    fn read_ahead(&self, state: &ObjectState, offset: u64, count: u32) {
        let core = &self.core;
        let end = offset.saturating_add(u64::from(count));
        let fid = state.fid;
        let (from, to) = {
            let mut streams = lock(&core.streams);
            if streams.len() >= MAX_STREAMS && !streams.contains_key(&fid) {
                streams.clear();
            }
            let s = streams.entry(fid).or_default();
            let in_order = offset == s.next;
            s.next = end;
            if !in_order {
                s.ahead = 0;
                return;
            }
            let to = end.saturating_add(READ_AHEAD).min(state.attrs.size);
            // Whole blocks only: a fetch is cut into blocks from where it starts.
            let from = s.ahead.max(end);
            let from = from - from % CACHE_BLOCK;
            if from >= to || from.saturating_sub(end) > READ_AHEAD / 2 {
                // Far enough ahead already; fetch again once half the window is read.
                return;
            }
            s.ahead = to.div_ceil(CACHE_BLOCK).saturating_mul(CACHE_BLOCK);
            (from, to)
        };
        let Some(venus) = core.venus.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let mut at = from;
        while at < to {
            let len = (to - at).min(u64::from(MAX_READ));
            let len = len.div_ceil(CACHE_BLOCK) * CACHE_BLOCK;
            let (first, last) = (at / CACHE_BLOCK, (at + len - 1) / CACHE_BLOCK);
            if lock(&core.cache).has_blocks(&fid, first, last) {
                at += len;
                continue;
            }
            let Ok(permit) = core.read_ahead_slots.clone().try_acquire_owned() else {
                // Busy: the reader fetches the rest itself.
                lock(&core.streams).entry(fid).or_default().ahead = at;
                return;
            };
            let done = core.fetching(fid, at, at + len);
            let venus = venus.clone();
            tokio::spawn(async move {
                if let Err(e) = venus.fetch_blocks(&fid, at, len as u32).await {
                    tracing::debug!(%fid, "read ahead: {e}");
                }
                venus.core.fetched(&fid, at);
                let _ = done.send(true);
                drop(permit);
            });
            at += len;
        }
    }

    /// A symlink's target.
    pub async fn readlink(&self, fid: &Fid) -> Result<Vec<u8>, ClientError> {
        self.prepare_read(fid, false).await?;
        match self.read_call(&Request::ReadLink { fid: *fid }).await?.0 {
            ReplyBody::Link { target } => Ok(target),
            other => Err(unexpected(other)),
        }
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
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.core.log.close();
    }

    /// Closes the connections to the group's servers.
    pub async fn close_links(&self) {
        for m in self.core.group.all() {
            m.link.close().await;
        }
    }
}

/// `count` bytes at `offset` of the file in `state`, if every block of the range is cached:
/// slices of the cached blocks, in order (no copy).
fn cached_read(
    cache: &mut Cache,
    state: &ObjectState,
    offset: u64,
    count: u32,
) -> Option<(Attrs, Vec<Bytes>, bool)> {
    let size = state.attrs.size;
    let end = offset.saturating_add(u64::from(count)).min(size);
    if offset >= end {
        return Some((state.attrs.clone(), Vec::new(), offset >= size));
    }
    let first = offset / CACHE_BLOCK;
    let last = (end - 1) / CACHE_BLOCK;
    let mut pieces = Vec::with_capacity((last - first + 1) as usize);
    for index in first..=last {
        let block = cache.block(&state.fid, &state.tag, index)?;
        let base = index * CACHE_BLOCK;
        let from = (offset.max(base) - base) as usize;
        let to = (end.min(base + CACHE_BLOCK) - base) as usize;
        if to > block.len() {
            return None;
        }
        pieces.push(block.slice(from..to));
    }
    Some((state.attrs.clone(), pieces, end == size))
}

/// A clock that never repeats or goes back, so every update changes mtime.
struct RecordClock {
    last: Time,
}

impl RecordClock {
    fn next(&mut self) -> Time {
        let now = Time::now();
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

/// Group-commits submissions into the log, assigning sequence numbers and times in order.
async fn appender(
    venus: std::sync::Weak<Venus>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    mut next_seq: u64,
) {
    while let Some(first) = rx.recv().await {
        let Some(venus) = venus.upgrade() else { break };
        let mut group = vec![first];
        let mut bytes = group[0].data.len();
        while group.len() < MAX_APPEND_GROUP && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(s) => {
                    bytes += s.data.len();
                    group.push(s);
                }
                Err(_) => break,
            }
        }
        let incarnation = venus.identity.incarnation;
        let records: Vec<LoggedRecord> = group
            .iter()
            .enumerate()
            .map(|(i, s)| LoggedRecord {
                record: UpdateRecord {
                    id: UpdateId {
                        incarnation,
                        seq: next_seq + i as u64,
                    },
                    time: s.time.unwrap_or_else(|| lock(&venus.clock).next()),
                    op: s.op.clone(),
                },
                data: s.data.clone(),
            })
            .collect();
        let new_next_seq = next_seq + records.len() as u64;
        let next_vnode = venus.next_vnode.load(Ordering::Relaxed);
        let log = venus.core.log.clone();
        // A small group (a create, a 4 KiB write) is written from here: a trip to a
        // blocking thread and back cost more than the write.
        let result = match log.try_append_quick(&records, next_vnode, new_next_seq) {
            Some(result) => result,
            None => {
                let to_log = records.clone();
                tokio::task::spawn_blocking(move || log.append(&to_log, next_vnode, new_next_seq))
                    .await
                    .unwrap_or_else(|e| Err(ClientError::Storage(format!("log task failed: {e}"))))
            }
        };
        match result {
            Ok(()) => {
                next_seq = new_next_seq;
                let stats = &venus.stats;
                stats.log_commits.fetch_add(1, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                let writes = records
                    .iter()
                    .filter(|r| matches!(r.record.op, Op::Write { .. }))
                    .count();
                stats.writes.fetch_add(writes as u64, Ordering::Relaxed);
                let core = &venus.core;
                let mut held = Vec::new();
                {
                    // Lock order everywhere: tracker, then outbox.
                    let mut tracker = lock(&core.tracker);
                    let mut outbox = lock(&core.outbox);
                    let mut cache = lock(&core.cache);
                    for (s, rec) in group.into_iter().zip(records) {
                        if s.held {
                            held.push(rec.record.op.target());
                        }
                        cache.own_op(&rec.record.op, None, &[]);
                        let seq = rec.record.id.seq;
                        tracker.logged(seq, &rec.record.op, rec.record.time, s.waiter.is_none());
                        if let Some(waiter) = s.waiter {
                            tracker.waiters.insert(seq, waiter);
                        }
                        outbox.shipping.logged(seq);
                        outbox.queue.push_back(Queued {
                            rec,
                            _permit: Some(s.permit),
                        });
                        let _ = s.done.send(Ok(seq));
                    }
                }
                // The tracker knows them now: they stop counting as held.
                let mut unstable = lock(&venus.unstable);
                for fid in held {
                    unstable.logged(&fid);
                }
                drop(unstable);
                core.wake_all();
            }
            Err(e) => {
                tracing::error!("modify log append failed: {e}");
                let mut unstable = lock(&venus.unstable);
                for s in group {
                    if s.held {
                        unstable.logged(&s.op.target());
                    }
                    let _ = s.done.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Core {
    /// The connections every AVSG member's promises hold on, if they all hold now.
    fn trust(&self) -> Option<Trust> {
        let avsg = lock(&self.outbox).shipping.avsg();
        self.trust_of(avsg)
    }

    /// The connections the promises of `avsg` hold on, if they all hold now.
    fn trust_of(&self, avsg: Vec<usize>) -> Option<Trust> {
        self.channels.trusted(
            avsg.into_iter()
                .filter_map(|m| self.group.member(m).map(|x| (m, x.link.generation()))),
        )
    }

    /// Whether promises still hold on the same connections as `before`.
    fn trusted_still(&self, before: &Trust) -> bool {
        self.trust().as_ref() == Some(before)
    }

    /// `fid`'s last comparison across the AVSG, while it holds: made in this AVSG epoch,
    /// less than [`VALIDATION_TTL`] ago.
    fn validation(&self, fid: &Fid) -> Option<Validation> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        lock(&self.validated)
            .get(fid)
            .filter(|v| v.epoch == epoch && v.at.elapsed() < VALIDATION_TTL)
            .copied()
    }

    /// The member `fid`'s reads go to first, while its last validation holds (rule 4).
    fn read_from(&self, fid: &Fid) -> Option<usize> {
        self.validation(fid).and_then(|v| v.from)
    }

    /// `fid`'s cached state, while promises hold.
    fn cached_state(&self, fid: &Fid) -> Option<ObjectState> {
        self.trust()?;
        lock(&self.cache).state(fid)
    }

    /// A fetch of `fid`'s bytes `from..to` is starting: readers of that range wait for it.
    fn fetching(&self, fid: Fid, from: u64, to: u64) -> watch::Sender<bool> {
        let (tx, done) = watch::channel(false);
        lock(&self.arriving).push(Arriving {
            fid,
            from,
            to,
            done,
        });
        tx
    }

    /// The fetch of `fid` that started at `from` is over.
    fn fetched(&self, fid: &Fid, from: u64) {
        lock(&self.arriving).retain(|a| !(a.fid == *fid && a.from == from));
    }

    /// The fetch bringing `fid`'s byte `offset`, if one is under way.
    fn arriving(&self, fid: &Fid, offset: u64) -> Option<watch::Receiver<bool>> {
        lock(&self.arriving)
            .iter()
            .find(|a| a.fid == *fid && (a.from..a.to).contains(&offset))
            .map(|a| a.done.clone())
    }

    /// Where a fill starts: the cache's invalidations so far and the promises' connections
    /// (`None`: promises do not hold, nothing fetched now may be cached).
    fn fill_start(&self) -> Option<FillStamp> {
        let since = lock(&self.cache).snapshot();
        Some((since, self.trust()?))
    }

    fn wake_all(&self) {
        for m in self.group.all() {
            m.wake.notify_one();
        }
    }

    /// Calls member `m` with `request` in the epoch envelope. When the server says this
    /// client's group is stale, the group is refreshed and the call made again (unless the
    /// member left: then the `StaleEpoch` is the answer).
    async fn call(
        self: &Arc<Core>,
        m: usize,
        request: &Request,
        deadline: Option<Duration>,
    ) -> Result<(ReplyBody, Bytes), ClientError> {
        let mut attempt = 0;
        loop {
            let link = self
                .group
                .member(m)
                .ok_or_else(|| ClientError::Protocol(format!("no group member {m}")))?
                .link
                .clone();
            let wrapped = self.group.wrap(request.clone());
            let deadline = deadline.unwrap_or_else(|| link.deadline());
            match link.call_within(&wrapped, Bytes::new(), deadline).await {
                Err(ClientError::Fs(FsError::StaleEpoch { current })) if attempt < 2 => {
                    attempt += 1;
                    self.refresh(current, &link).await?;
                    if lock(&self.outbox).shipping.is_retired(m) {
                        return Err(ClientError::Fs(FsError::StaleEpoch { current }));
                    }
                }
                other => return other,
            }
        }
    }

    /// Brings the group up to catalogue epoch `at_least` (told by `from`): members that
    /// joined get a shipper and every record still in the log; members that left are
    /// retired, and records stop waiting for them (rule 13).
    async fn refresh(
        self: &Arc<Core>,
        at_least: u64,
        from: &Arc<ServerLink>,
    ) -> Result<(), ClientError> {
        let _one = self.group.refresh_lock().await;
        let Some(info) = self.group.fetch(at_least, Some(from)).await? else {
            return Ok(());
        };
        self.stats.group_refreshes.fetch_add(1, Ordering::Relaxed);
        // Every link first: nothing changes unless the whole new group can be adopted.
        let links = info
            .vsg
            .iter()
            .map(|x| self.group.link_to(&info, &x.server))
            .collect::<Result<Vec<_>, _>>()?;
        let mut joined = Vec::new();
        {
            let mut tracker = lock(&self.tracker);
            let mut outbox = lock(&self.outbox);
            let n = outbox.shipping.members();
            for m in 0..n {
                let stays = outbox
                    .shipping
                    .replica(m)
                    .is_some_and(|r| info.vsg.iter().any(|x| x.replica == r));
                if !stays && !outbox.shipping.is_retired(m) {
                    tracing::info!(
                        server = self.group.server_name(m),
                        "server left the volume's group"
                    );
                    let done = outbox.shipping.retire(m);
                    self.finish(&mut tracker, &mut outbox, done);
                }
            }
            for (x, link) in info.vsg.iter().zip(links) {
                let known = (0..n).any(|m| {
                    outbox.shipping.replica(m) == Some(x.replica) && !outbox.shipping.is_retired(m)
                });
                if known {
                    continue;
                }
                let m = outbox.shipping.join(x.replica);
                let index = self.group.push(link);
                debug_assert_eq!(m, index, "group and shipping index members alike");
                tracing::info!(server = %x.server, "server joined the volume's group");
                joined.push(m);
            }
            self.group.set_info(info);
        }
        // Joiners may be stale: validate objects again before reads.
        self.epoch.fetch_add(1, Ordering::Relaxed);
        lock(&self.cache).clear();
        if let Some(venus) = self.venus.get().and_then(std::sync::Weak::upgrade) {
            let mut tasks = lock(&venus.tasks);
            for m in joined {
                tasks.push(tokio::spawn(member_shipper(self.clone(), m)));
                tasks.push(tokio::spawn(member_channel(self.clone(), m)));
            }
        }
        self.wake_all();
        Ok(())
    }

    /// Member `m` failed a call: it leaves the AVSG; records that no longer wait for it
    /// complete.
    fn member_failed(self: &Arc<Core>, m: usize, plan: Option<BatchPlan>) {
        let mut tracker = lock(&self.tracker);
        let mut outbox = lock(&self.outbox);
        if outbox.shipping.in_avsg(m) {
            tracing::warn!(server = self.group.server_name(m), "server left the AVSG");
        }
        let done = outbox.shipping.failed(m, plan);
        self.finish(&mut tracker, &mut outbox, done);
        // Its shipper probes it back into the AVSG: wake it even if no record waits (a
        // read may have found it gone while the shipper idled).
        if let Some(member) = self.group.member(m) {
            member.wake.notify_one();
        }
    }

    /// Answers complete records, drops them from the queue and the log, and wakes the
    /// shippers (new COP2 items may be queued). Called with both locks held.
    fn finish(self: &Arc<Core>, tracker: &mut Tracker, outbox: &mut Outbox, done: Vec<Completed>) {
        self.finish_landing(tracker, outbox, done, Vec::new());
    }

    /// [`Core::finish`], caching the states in `landed` (replies to this client's own
    /// records) if no promise behind them broke since their batches were sent.
    fn finish_landing(
        self: &Arc<Core>,
        tracker: &mut Tracker,
        outbox: &mut Outbox,
        done: Vec<Completed>,
        landed: Vec<Landed<FillStamp>>,
    ) {
        let trust = if landed.is_empty() {
            None
        } else {
            self.trust_of(outbox.shipping.avsg())
        };
        {
            // This client's own change: servers keep its promises (it knows what it
            // changed), so it forgets what the records touched before anyone is answered,
            // keeping only the states the replicas answered them with. One lock throughout,
            // so that no break slips between the check and the keeping.
            let mut cache = lock(&self.cache);
            let keep: Vec<ObjectState> = landed
                .into_iter()
                .filter(|l| {
                    l.stamps.iter().all(|(since, t)| {
                        Some(t) == trust.as_ref() && cache.unbroken(*since, &l.state.fid)
                    })
                })
                .map(|l| l.state)
                .collect();
            let named: Vec<Fid> = keep.iter().map(|s| s.fid).collect();
            for (c, q) in done.iter().zip(&outbox.queue) {
                let alike = !c.divergent && c.answers.iter().all(|(_, o)| *o == c.outcome);
                let applied = match &c.outcome {
                    Ok(created) if alike => Some(*created),
                    _ => None,
                };
                cache.own_op(&q.rec.record.op, applied, &named);
                for (_, outcome) in &c.answers {
                    if let Ok(Some(fid)) = outcome {
                        cache.invalidate(fid);
                    }
                }
            }
            let now = cache.snapshot();
            for state in keep {
                cache.put_state(now, state);
            }
        }
        let Some(last) = done.last().map(|c| c.seq) else {
            return;
        };
        for c in done {
            let Some(q) = outbox.queue.pop_front() else {
                tracing::error!(seq = c.seq, "completed a record the queue does not hold");
                continue;
            };
            let rec = &q.rec.record;
            debug_assert_eq!(rec.id.seq, c.seq);
            let diverged = c.answers.iter().any(|(_, o)| *o == Err(FsError::Diverged));
            if c.divergent || diverged {
                self.stats.divergent.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(seq = c.seq, op = ?rec.op, "replicas answered a record differently");
                let mut fids = crate::tracker::affected(&rec.op);
                fids.extend(
                    c.answers
                        .iter()
                        .filter_map(|(_, o)| o.clone().ok().flatten()),
                );
                // The outbox is locked here: pass the AVSG rather than lock it again.
                self.request_resolution(outbox.shipping.avsg(), fids);
            }
            if let Err(FsError::OutOfOrder) = &c.outcome {
                tracing::error!(seq = c.seq, "a server reports a gap before this record");
            }
            if let Some(undo) = crate::replicate::exclusive_undo(&rec.op, &c.answers) {
                // Rule 9: an exclusive create some replica refused is undone where it was
                // made, and its caller hears EEXIST once the undo is logged and applied.
                let waiter = tracker.waiters.remove(&c.seq);
                tracker.applied(c.seq, &rec.op, Err(FsError::Exists), last);
                self.undo_then_answer(undo, waiter);
                continue;
            }
            tracker.applied(c.seq, &rec.op, c.outcome, last);
        }
        self.acked.send_replace(last);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = log.trim(last) {
                tracing::warn!("trimming the modify log failed: {e}");
            }
        });
        self.wake_all();
    }

    /// Asks an AVSG member to resolve `fids` (in the background).
    fn request_resolution(self: &Arc<Core>, order: Vec<usize>, fids: Vec<Fid>) {
        if self.group.all().len() < 2 || fids.is_empty() {
            return;
        }
        let request = Request::Resolve { fids };
        let core = self.clone();
        tokio::spawn(async move {
            for m in order {
                match core.call(m, &request, Some(RESOLVE_DEADLINE)).await {
                    Ok((ReplyBody::Resolved(s), _)) => {
                        tracing::info!(member = m, ?s, "resolved");
                        return;
                    }
                    Ok(_) => return,
                    Err(e) => tracing::debug!(member = m, "resolve: {e}"),
                }
            }
        });
    }

    /// Logs `undo` and, once it is complete, answers `waiter` with EEXIST.
    fn undo_then_answer(&self, undo: Op, waiter: Option<oneshot::Sender<RecordOutcome>>) {
        let Some(venus) = self.venus.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = venus.submit_and_wait(undo, Bytes::new()).await {
                tracing::warn!("undoing a partial exclusive create: {e}");
            }
            if let Some(w) = waiter {
                let _ = w.send(Err(FsError::Exists));
            }
        });
    }

    /// The next batch for member `m`, cut to the byte limit, with its records and data.
    fn next_batch(&self, m: usize, cop2_alone: bool) -> Option<(BatchPlan, Request, Payload)> {
        let mut outbox = lock(&self.outbox);
        let front = outbox.shipping.front();
        let mut plan = outbox.shipping.plan(m, MAX_BATCH_RECORDS, cop2_alone)?;
        let start = usize::try_from(plan.first - front).unwrap_or(usize::MAX);
        let mut records = Vec::with_capacity(plan.len());
        let mut bytes = 0usize;
        let mut data = Payload::new();
        for q in outbox.queue.iter().skip(start).take(plan.len()) {
            let len = q.rec.data.len();
            if !records.is_empty() && bytes + len > MAX_BATCH_BYTES {
                break;
            }
            bytes += len;
            records.push(q.rec.record.clone());
            data.push(q.rec.data.clone());
        }
        if !plan.is_empty() {
            plan.last = plan.first + records.len() as u64 - 1;
        }
        let request = self.group.wrap(Request::Ship {
            records,
            log_start: plan.log_start,
            cop2: plan.cop2.clone(),
        });
        Some((plan, request, data))
    }
}

/// Ships the log to member `m` in order, one batch in flight; when a call fails the member
/// leaves the AVSG and is probed until it answers again.
fn member_shipper(
    core: Arc<Core>,
    m: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    // Boxed: a shipper refreshing the group may start shippers for members that joined.
    Box::pin(async move {
        let Some(member) = core.group.member(m) else {
            return;
        };
        let link = member.link.clone();
        let mut cop2_alone = false;
        loop {
            if lock(&core.outbox).shipping.is_retired(m) {
                return;
            }
            let Some((plan, request, data)) = core.next_batch(m, cop2_alone) else {
                if !lock(&core.outbox).shipping.in_avsg(m) {
                    probe(&core, m).await;
                    continue;
                }
                let has_cop2 = lock(&core.outbox).shipping.has_cop2(m);
                if has_cop2 {
                    cop2_alone = tokio::time::timeout(COP2_ALONE_AFTER, member.wake.notified())
                        .await
                        .is_err();
                } else {
                    cop2_alone = false;
                    member.wake.notified().await;
                }
                continue;
            };
            cop2_alone = false;
            let count = plan.len();
            let stamp = core.fill_start();
            match link.call(&request, data).await {
                Ok((
                    ReplyBody::Shipped {
                        outcomes,
                        priors,
                        states,
                    },
                    _,
                )) if outcomes.len() == count => {
                    core.stats.batches.fetch_add(1, Ordering::Relaxed);
                    let mut tracker = lock(&core.tracker);
                    let mut outbox = lock(&core.outbox);
                    let done = outbox.shipping.applied(m, &plan, &outcomes, &priors);
                    let landed = match &stamp {
                        Some(stamp) if !states.is_empty() => {
                            let avsg = outbox.shipping.avsg();
                            let last_record =
                                |fid: &Fid| tracker.fids.get(fid).map_or(0, |f| f.last_seq);
                            outbox
                                .landing
                                .offer(m, plan.last, stamp, states, &avsg, last_record)
                        }
                        _ => Vec::new(),
                    };
                    core.finish_landing(&mut tracker, &mut outbox, done, landed);
                }
                Ok((other, _)) => {
                    tracing::error!(
                        server = link.server_name(),
                        "answered a batch with {other:?}"
                    );
                    core.member_failed(m, Some(plan));
                }
                Err(ClientError::Fs(FsError::StaleEpoch { current })) => {
                    // Nothing was applied: the same records go again once the group is current
                    // (to this member if it is still one).
                    lock(&core.outbox).shipping.returned(m, plan);
                    if let Err(e) = core.refresh(current, &link).await {
                        tracing::warn!("refreshing the volume's group: {e}");
                        tokio::time::sleep(PROBE_FIRST).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(server = link.server_name(), "batch not applied: {e}");
                    core.member_failed(m, Some(plan));
                }
            }
        }
    })
}

/// Runs member `m`'s callback channel while the member is in the group.
async fn member_channel(core: Arc<Core>, m: usize) {
    let Some(member) = core.group.member(m) else {
        return;
    };
    let volume = core.group.info().id;
    let stop = || lock(&core.outbox).shipping.is_retired(m);
    crate::promises::run_channel(m, volume, &member.link, &core.channels, &core.cache, stop).await;
}

/// Probes member `m` (out of the AVSG) until it answers, then puts it back.
async fn probe(core: &Arc<Core>, m: usize) {
    let Some(member) = core.group.member(m) else {
        return;
    };
    let link = &member.link;
    let mut pause = PROBE_FIRST;
    loop {
        tokio::time::sleep(pause).await;
        let deadline = PROBE_DEADLINE.min(link.deadline());
        let answered = core.call(m, &Request::Hello, Some(deadline)).await;
        if lock(&core.outbox).shipping.is_retired(m) {
            return;
        }
        if answered.is_ok() {
            // It may have missed updates: what was cached without its promises goes as it
            // rejoins (under the outbox lock, which trust checks take: a fill that began
            // before fails its check), and objects are validated again before reads.
            core.epoch.fetch_add(1, Ordering::Relaxed);
            {
                let mut outbox = lock(&core.outbox);
                outbox.shipping.rejoined(m);
                lock(&core.cache).clear();
            }
            tracing::info!(server = link.server_name(), "server back in the AVSG");
            return;
        }
        pause = (pause * 2).min(PROBE_MAX);
    }
}
