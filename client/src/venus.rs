//! Venus, the client's core: allocates fids and update ids, appends every mutation to the
//! modify log (group-committed), ships the log to the server in sequenced batches, and
//! answers reads with the client's own unshipped updates on top of server state.
//!
//! Answer rules (rule 1): `submit` returns once the record is durable in the log (enough
//! for an UNSTABLE WRITE); `submit_and_wait` returns once the server has applied it (every
//! namespace and attribute change, FILE_SYNC WRITE); `flush` waits for every record that
//! touches an object (COMMIT).

use crate::error::ClientError;
use crate::link::ServerLink;
use crate::log::{ClientState, LoggedRecord, ModifyLog};
use crate::tracker::Tracker;
use bytes::{Bytes, BytesMut};
use codetta_wire::message::{DirEntry, ObjectState, ReplyBody, SpaceInfo};
use codetta_wire::update::Op;
use codetta_wire::{
    Attrs, Fid, FsError, Name, RecordOutcome, Request, Time, UpdateId, UpdateRecord, VolumeId,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// Most records in one shipped batch.
const MAX_BATCH_RECORDS: usize = 1024;
/// Most write bytes in one shipped batch (below the frame's data limit).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Most submissions group-committed to the log at once.
const MAX_APPEND_GROUP: usize = 256;
/// Units of the log-capacity semaphore.
const CAPACITY_UNIT: u64 = 4096;

struct Submission {
    op: Op,
    data: Bytes,
    permit: OwnedSemaphorePermit,
    waiter: Option<oneshot::Sender<RecordOutcome>>,
    done: oneshot::Sender<Result<u64, ClientError>>,
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
    /// Batches the server applied (each one redb transaction there).
    pub batches: AtomicU64,
}

impl std::fmt::Display for UpdateStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "{} records ({} writes) in {} log commits and {} server batches",
            get(&self.records),
            get(&self.writes),
            get(&self.log_commits),
            get(&self.batches)
        )
    }
}

/// The client core shared by the NFS adapter and the background tasks.
pub struct Venus {
    log: Arc<ModifyLog>,
    link: Arc<ServerLink>,
    identity: ClientState,
    next_vnode: AtomicU64,
    submit_tx: mpsc::Sender<Submission>,
    tracker: Arc<Mutex<Tracker>>,
    acked: watch::Receiver<u64>,
    capacity: Arc<Semaphore>,
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

impl Venus {
    /// Opens the log, obtains an incarnation if this client has none, and starts the
    /// appender and the shipper. Records left in the log by a previous run are shipped first.
    pub async fn start(
        log: Arc<ModifyLog>,
        link: Arc<ServerLink>,
        log_max_bytes: u64,
    ) -> Result<Arc<Venus>, ClientError> {
        let identity = match log.state()? {
            Some(state) => state,
            None => {
                let (body, _) = link.call(&Request::NewIncarnation, Bytes::new()).await?;
                let ReplyBody::Incarnation {
                    incarnation,
                    unique,
                } = body
                else {
                    return Err(unexpected(body));
                };
                let state = ClientState {
                    incarnation,
                    unique,
                    next_vnode: 1,
                    next_seq: 1,
                };
                log.set_state(state)?;
                state
            }
        };
        let pending = log.pending()?;
        let first_pending = pending.first().map(|r| r.record.id.seq);
        let acked_start = first_pending.unwrap_or(identity.next_seq).saturating_sub(1);
        let (acked_tx, acked_rx) = watch::channel(acked_start);
        let mut tracker = Tracker::default();
        let mut queue = VecDeque::new();
        for rec in pending {
            // After a restart nobody waits: every record is as good as answered early.
            tracker.logged(rec.record.id.seq, &rec.record.op, rec.record.time, true);
            queue.push_back(Queued { rec, _permit: None });
        }
        let tracker = Arc::new(Mutex::new(tracker));
        let queue = Arc::new((Mutex::new(queue), Notify::new()));
        let units = usize::try_from((log_max_bytes / CAPACITY_UNIT).max(1)).unwrap_or(usize::MAX);
        let (submit_tx, submit_rx) = mpsc::channel(1024);
        let venus = Arc::new(Venus {
            log: log.clone(),
            link: link.clone(),
            identity,
            next_vnode: AtomicU64::new(identity.next_vnode),
            submit_tx,
            tracker: tracker.clone(),
            acked: acked_rx,
            capacity: Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS))),
            overlay_fetch: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            stats: Arc::new(UpdateStats::default()),
        });
        let appender = tokio::spawn(appender(
            Arc::downgrade(&venus),
            submit_rx,
            identity.next_seq,
            queue.clone(),
        ));
        let shipper = tokio::spawn(shipper(
            link,
            log,
            tracker,
            queue,
            acked_tx,
            venus.stats.clone(),
        ));
        lock(&venus.tasks).extend([appender, shipper]);
        Ok(venus)
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.link.deadline()
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
        let units =
            u32::try_from((data.len() as u64 + 128).div_ceil(CAPACITY_UNIT)).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(
            self.deadline(),
            self.capacity.clone().acquire_many_owned(units),
        )
        .await
        .map_err(|_| ClientError::LogFull)?
        .map_err(|_| ClientError::LogFull)?;
        let (done_tx, done_rx) = oneshot::channel();
        self.submit_tx
            .send(Submission {
                op,
                data,
                permit,
                waiter,
                done: done_tx,
            })
            .await
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
        done_rx
            .await
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?
    }

    /// Logs a mutation durably and returns without waiting for the server.
    pub async fn submit(&self, op: Op, data: Bytes) -> Result<u64, ClientError> {
        self.enqueue(op, data, None).await
    }

    /// Logs a mutation and waits until the server has applied it.
    pub async fn submit_and_wait(&self, op: Op, data: Bytes) -> Result<Option<Fid>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(op, data, Some(tx)).await?;
        match tokio::time::timeout(self.deadline(), rx).await {
            Ok(Ok(outcome)) => Ok(outcome?),
            Ok(Err(_)) => Err(ClientError::Storage("client is shutting down".into())),
            Err(_) => Err(self.waiting_error()),
        }
    }

    fn waiting_error(&self) -> ClientError {
        self.link.outage_error()
    }

    /// Waits until every logged record that touches `fid` is applied by the server.
    pub async fn flush(&self, fid: &Fid) -> Result<(), ClientError> {
        let Some(target) = lock(&self.tracker).barrier(fid) else {
            return Ok(());
        };
        let mut acked = self.acked.clone();
        tokio::time::timeout(self.deadline(), acked.wait_for(|a| *a >= target))
            .await
            .map_err(|_| self.waiting_error())?
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
        Ok(())
    }

    /// COMMIT: flushes `fid` and reports the first failure of its unwaited updates.
    pub async fn commit(&self, fid: &Fid) -> Result<(), ClientError> {
        self.flush(fid).await?;
        match lock(&self.tracker).sticky.remove(fid) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Makes sure `fid`'s predicted attributes are tracked before a write or setattr is
    /// logged, so GETATTR can answer from them while the records are unshipped.
    pub async fn track_attrs(&self, fid: &Fid) -> Result<Attrs, ClientError> {
        if let Some(attrs) = lock(&self.tracker).overlay(fid) {
            return Ok(attrs);
        }
        let _guard = self.overlay_fetch.lock().await;
        if let Some(attrs) = lock(&self.tracker).overlay(fid) {
            return Ok(attrs);
        }
        self.flush(fid).await?;
        let state = self.fetch_attrs(fid).await?;
        let mut tracker = lock(&self.tracker);
        let entry = tracker.fids.entry(*fid).or_default();
        // Records logged after the fetch started are applied on top by the appender only
        // when an overlay exists, so only install ours if no record slipped in meanwhile.
        if entry.overlay.is_none() && entry.last_seq <= *self.acked.borrow() {
            entry.overlay = Some(state.attrs.clone());
        }
        Ok(entry.overlay.clone().unwrap_or(state.attrs))
    }

    async fn fetch_attrs(&self, fid: &Fid) -> Result<ObjectState, ClientError> {
        match self
            .link
            .call(&Request::GetAttr { fid: *fid }, Bytes::new())
            .await?
            .0
        {
            ReplyBody::State(state) => Ok(state),
            other => Err(unexpected(other)),
        }
    }

    /// Attributes of `fid`: predicted from unshipped records, or the server's.
    pub async fn getattr(&self, fid: &Fid) -> Result<Attrs, ClientError> {
        if let Some(attrs) = lock(&self.tracker).overlay(fid) {
            return Ok(attrs);
        }
        self.flush(fid).await?;
        Ok(self.fetch_attrs(fid).await?.attrs)
    }

    fn with_overlay(&self, mut state: ObjectState) -> ObjectState {
        if let Some(attrs) = lock(&self.tracker).overlay(&state.fid) {
            state.attrs = attrs;
        }
        state
    }

    /// Looks `name` up in `dir`.
    pub async fn lookup(&self, dir: &Fid, name: &Name) -> Result<ObjectState, ClientError> {
        self.flush(dir).await?;
        let request = Request::Lookup {
            dir: *dir,
            name: name.clone(),
        };
        match self.link.call(&request, Bytes::new()).await?.0 {
            ReplyBody::State(state) => Ok(self.with_overlay(state)),
            other => Err(unexpected(other)),
        }
    }

    /// The directory containing `dir`.
    pub async fn parent(&self, dir: &Fid) -> Result<Fid, ClientError> {
        match self
            .link
            .call(&Request::Parent { dir: *dir }, Bytes::new())
            .await?
            .0
        {
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
        self.flush(dir).await?;
        let request = Request::ReadDir {
            dir: *dir,
            cookie,
            max_entries,
            with_attrs,
        };
        match self.link.call(&request, Bytes::new()).await?.0 {
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

    /// Reads up to `count` bytes at `offset`, after this client's own writes to `fid`.
    pub async fn read(
        &self,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> Result<(Attrs, Bytes, bool), ClientError> {
        self.flush(fid).await?;
        let request = Request::Read {
            fid: *fid,
            offset,
            count,
        };
        match self.link.call(&request, Bytes::new()).await? {
            (ReplyBody::Data { state, eof }, data) => Ok((state.attrs, data, eof)),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// A symlink's target.
    pub async fn readlink(&self, fid: &Fid) -> Result<Vec<u8>, ClientError> {
        self.flush(fid).await?;
        match self
            .link
            .call(&Request::ReadLink { fid: *fid }, Bytes::new())
            .await?
            .0
        {
            ReplyBody::Link { target } => Ok(target),
            other => Err(unexpected(other)),
        }
    }

    /// The root fid of the volume called `name`.
    pub async fn volume_root(&self, name: &str) -> Result<Fid, ClientError> {
        let request = Request::VolumeByName {
            name: name.to_string(),
        };
        match self.link.call(&request, Bytes::new()).await?.0 {
            ReplyBody::Volume(info) => Ok(info.root),
            other => Err(unexpected(other)),
        }
    }

    /// Space figures of the server holding `volume`.
    pub async fn space(&self, volume: VolumeId) -> Result<SpaceInfo, ClientError> {
        match self
            .link
            .call(&Request::FsStat { volume }, Bytes::new())
            .await?
            .0
        {
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
        self.log.close();
    }
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
    mut rx: mpsc::Receiver<Submission>,
    mut next_seq: u64,
    queue: Arc<(Mutex<VecDeque<Queued>>, Notify)>,
) {
    let mut clock = RecordClock {
        last: Time::default(),
    };
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
                    time: clock.next(),
                    op: s.op.clone(),
                },
                data: s.data.clone(),
            })
            .collect();
        let new_next_seq = next_seq + records.len() as u64;
        let next_vnode = venus.next_vnode.load(Ordering::Relaxed);
        let log = venus.log.clone();
        let to_log = records.clone();
        let result =
            tokio::task::spawn_blocking(move || log.append(&to_log, next_vnode, new_next_seq))
                .await
                .unwrap_or_else(|e| Err(ClientError::Storage(format!("log task failed: {e}"))));
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
                let (queue_lock, notify) = &*queue;
                // Lock order everywhere: tracker, then queue.
                let mut tracker = lock(&venus.tracker);
                let mut q = lock(queue_lock);
                for (s, rec) in group.into_iter().zip(records) {
                    let seq = rec.record.id.seq;
                    tracker.logged(seq, &rec.record.op, rec.record.time, s.waiter.is_none());
                    if let Some(waiter) = s.waiter {
                        tracker.waiters.insert(seq, waiter);
                    }
                    q.push_back(Queued {
                        rec,
                        _permit: Some(s.permit),
                    });
                    let _ = s.done.send(Ok(seq));
                }
                notify.notify_one();
            }
            Err(e) => {
                tracing::error!("modify log append failed: {e}");
                for s in group {
                    let _ = s.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Ships the log in order, one batch in flight, retrying until the server applies it.
async fn shipper(
    link: Arc<ServerLink>,
    log: Arc<ModifyLog>,
    tracker: Arc<Mutex<Tracker>>,
    queue: Arc<(Mutex<VecDeque<Queued>>, Notify)>,
    acked: watch::Sender<u64>,
    stats: Arc<UpdateStats>,
) {
    let (queue_lock, notify) = &*queue;
    let mut backoff = Duration::from_millis(50);
    loop {
        let batch: Vec<LoggedRecord> = {
            let q = lock(queue_lock);
            let mut bytes = 0;
            q.iter()
                .take(MAX_BATCH_RECORDS)
                .take_while(|e| {
                    bytes += e.rec.data.len();
                    bytes <= MAX_BATCH_BYTES || e.rec.data.len() == bytes
                })
                .map(|e| e.rec.clone())
                .collect()
        };
        if batch.is_empty() {
            if acked.is_closed() {
                return;
            }
            notify.notified().await;
            continue;
        }
        let mut data = BytesMut::with_capacity(batch.iter().map(|r| r.data.len()).sum());
        for rec in &batch {
            data.extend_from_slice(&rec.data);
        }
        let request = Request::Ship {
            records: batch.iter().map(|r| r.record.clone()).collect(),
        };
        let outcomes = match link.call(&request, data.freeze()).await {
            Ok((ReplyBody::Shipped { outcomes }, _)) if outcomes.len() == batch.len() => outcomes,
            Ok((other, _)) => {
                tracing::error!("server answered a batch with {other:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(ClientError::Fs(e)) => {
                tracing::warn!("the server did not apply a batch, will retry: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::debug!("shipping failed, will retry: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let last = batch.last().map(|r| r.record.id.seq).unwrap_or(0);
        {
            // Lock order everywhere: tracker, then queue.
            let mut t = lock(&tracker);
            let mut q = lock(queue_lock);
            for (rec, outcome) in batch.iter().zip(outcomes) {
                if let Err(FsError::OutOfOrder) = &outcome {
                    tracing::error!(
                        seq = rec.record.id.seq,
                        "server reports a gap before this record"
                    );
                }
                q.pop_front();
                t.applied(rec.record.id.seq, &rec.record.op, outcome, last);
            }
            acked.send_replace(last);
        }
        let log = log.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.trim(last)).await {
            tracing::warn!("trimming the modify log failed: {e}");
        }
    }
}
