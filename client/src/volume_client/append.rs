//! Appending: every update enters here. Records are handed to the appender task, which
//! group-commits them to the modify log and queues them for shipping; UNSTABLE writes are
//! held in memory first (`crate::unstable`) and handed over at the moments rule 1 names;
//! callers wait as their call's promise requires (`submit`, `submit_and_wait`, `flush`,
//! `commit`).

use super::*;

impl VolumeClient {
    pub(super) async fn enqueue(
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
                held: None,
            })
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
        done_rx
            .await
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?
    }

    /// The share of the log's capacity a record with `bytes` of data takes, waited for up
    /// to the per-call deadline (then `LogFull`: the caller gets JUKEBOX).
    pub(super) async fn log_capacity(
        &self,
        bytes: usize,
    ) -> Result<OwnedSemaphorePermit, ClientError> {
        tokio::time::timeout(
            self.deadline(),
            self.capacity
                .clone()
                .acquire_many_owned(capacity_units(bytes)),
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
        let cost = capacity_units(data.len()) as usize * CAPACITY_UNIT as usize;
        {
            // Room first: held writes never hold more than the limit of the log's capacity,
            // so the rest of it is there for what the log must take to free them.
            let mut unstable = lock(&self.unstable);
            while let Some((oldest, writes)) = unstable.take_oldest(cost) {
                self.send_held(oldest, writes);
            }
        }
        let permit = self.log_capacity(data.len()).await?;
        let hashes = codetta_wire::update::piece_hashes(offset, &data);
        let mut unstable = lock(&self.unstable);
        // The time is taken under the held-write lock, so a file's held writes are in time
        // order as they are in log order.
        let time = lock(&self.clock).next();
        unstable.add(
            fid,
            HeldWrite {
                offset,
                data,
                time,
                hashes,
                cost,
                permit,
            },
        );
        // A run worth a batch ships now, overlapping the writes that follow.
        if unstable.file_bytes(&fid) >= RELEASE_RUN {
            let writes = unstable.take(&fid);
            self.send_held(fid, writes);
        }
        while let Some((oldest, writes)) = unstable.take_oldest(0) {
            self.send_held(oldest, writes);
        }
        Ok(())
    }

    /// Sends `fid`'s held writes to the appender (the caller holds the `unstable` lock);
    /// what each one's logging came to.
    pub(super) fn send_held(
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
            let ticket = self.held_sent.fetch_add(1, Ordering::Relaxed) + 1;
            let sent = self.submit_tx.send(Submission {
                op,
                data: w.data,
                permit: w.permit,
                waiter: None,
                done,
                time: Some(w.time),
                held: Some(ticket),
            });
            match sent {
                Ok(()) => logged.push(rx),
                // Shutting down: it will never be logged; stop counting it.
                Err(_) => raise_watermark(&self.held_logged, ticket),
            }
        }
        logged
    }

    /// Sends `fid`'s held writes to be logged, without waiting.
    pub(super) fn release_held(
        &self,
        fid: &Fid,
    ) -> Vec<oneshot::Receiver<Result<u64, ClientError>>> {
        let mut unstable = lock(&self.unstable);
        if !unstable.holds(fid) {
            return Vec::new();
        }
        let writes = unstable.take(fid);
        self.send_held(*fid, writes)
    }

    /// Logs `fid`'s held writes and waits until they, and those sent to the log earlier (a
    /// run, or the oldest past the limit), are in the log: the tracker then knows them, so
    /// a READ waits for them and a COMMIT for their shipping. A write the log failed to take
    /// is reported by the COMMIT (`Tracker::sticky`).
    pub(super) async fn settle_held(&self, fid: &Fid) -> Result<(), ClientError> {
        for logged in self.release_held(fid) {
            logged
                .await
                .map_err(|_| ClientError::Storage("client is shutting down".into()))??;
        }
        // Every held write sent before now is logged once the log's watermark reaches the
        // last one sent (the appender logs in the order they were sent); writes sent later
        // do not move the target, so a writer going on cannot keep this waiting.
        let target = self.held_sent.load(Ordering::Relaxed);
        let mut watermark = self.held_logged.subscribe();
        tokio::time::timeout(self.completion_wait(), watermark.wait_for(|w| *w >= target))
            .await
            .map_err(|_| self.waiting_error())?
            .map_err(|_| ClientError::Storage("client is shutting down".into()))?;
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
    pub(super) fn completion_wait(&self) -> Duration {
        self.deadline() * 2 + Duration::from_millis(500)
    }

    /// The error for a call that waited in vain: IO once every member has been gone past
    /// the JUKEBOX window, JUKEBOX before.
    pub(super) fn waiting_error(&self) -> ClientError {
        if self.core.group.all().iter().all(|m| m.link.down_too_long()) {
            ClientError::Down
        } else {
            ClientError::Unavailable
        }
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
}

/// Group-commits submissions into the log, assigning sequence numbers and times in order.
pub(super) async fn appender(
    volume_client: std::sync::Weak<VolumeClient>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    mut next_seq: u64,
) {
    while let Some(first) = rx.recv().await {
        let Some(volume_client) = volume_client.upgrade() else {
            break;
        };
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
        let incarnation = volume_client.identity.incarnation;
        let records: Vec<LoggedRecord> = group
            .iter()
            .enumerate()
            .map(|(i, s)| LoggedRecord {
                record: UpdateRecord {
                    id: UpdateId {
                        incarnation,
                        seq: next_seq + i as u64,
                    },
                    time: s.time.unwrap_or_else(|| lock(&volume_client.clock).next()),
                    op: s.op.clone(),
                },
                data: s.data.clone(),
            })
            .collect();
        let new_next_seq = next_seq + records.len() as u64;
        if !volume_client.append_delay.is_zero() {
            tokio::time::sleep(volume_client.append_delay).await;
        }
        let next_vnode = volume_client.next_vnode.load(Ordering::Relaxed);
        let log = volume_client.core.log.clone();
        // A small group (a create, a 4 KiB write) is written from here: a trip to a
        // blocking thread and back cost more than the write.
        let result = match log.try_append_quick(&records, next_vnode, new_next_seq) {
            Some(result) => result,
            None => {
                let to_log = records.clone();
                codetta_transport::off_thread(move || log.append(&to_log, next_vnode, new_next_seq))
                    .await
                    .unwrap_or_else(|e| Err(ClientError::Storage(format!("log task failed: {e}"))))
            }
        };
        match result {
            Ok(()) => {
                next_seq = new_next_seq;
                let stats = &volume_client.stats;
                stats.log_commits.fetch_add(1, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                let writes = records
                    .iter()
                    .filter(|r| matches!(r.record.op, Op::Write { .. }))
                    .count();
                stats.writes.fetch_add(writes as u64, Ordering::Relaxed);
                let core = &volume_client.core;
                let mut held = Vec::new();
                {
                    // Lock order everywhere: tracker, then outbox.
                    let mut tracker = lock(&core.tracker);
                    let mut outbox = lock(&core.outbox);
                    let mut cache = lock(&core.cache);
                    for (s, rec) in group.into_iter().zip(records) {
                        if let Some(ticket) = s.held {
                            held.push((rec.record.op.target(), ticket));
                        }
                        cache.own_op(&rec.record.op, None, &[]);
                        let seq = rec.record.id.seq;
                        tracker.logged(seq, &rec.record.op, rec.record.time, s.waiter.is_none());
                        if let Some(waiter) = s.waiter {
                            tracker.waiters.insert(seq, waiter);
                        }
                        outbox.shipping.logged(seq);
                        let id = rec.record.id;
                        let follows =
                            outbox
                                .chains
                                .link_record(&rec.record.op, id.incarnation, seq);
                        outbox.queue.push_back(Queued {
                            rec,
                            follows,
                            _permit: Some(s.permit),
                        });
                        let _ = s.done.send(Ok(seq));
                    }
                }
                // The tracker knows them now: they stop counting as held.
                if let Some(last) = held.iter().map(|(_, t)| *t).max() {
                    let mut unstable = lock(&volume_client.unstable);
                    for (fid, _) in &held {
                        unstable.logged(fid);
                    }
                    drop(unstable);
                    raise_watermark(&volume_client.held_logged, last);
                }
                core.wake_all();
            }
            Err(e) => {
                tracing::error!("modify log append failed: {e}");
                let mut last = None;
                {
                    let mut tracker = lock(&volume_client.core.tracker);
                    let mut unstable = lock(&volume_client.unstable);
                    for s in group {
                        if let Some(ticket) = s.held {
                            // Answered already: the file's COMMIT reports the failure.
                            let fid = s.op.target();
                            unstable.logged(&fid);
                            tracker
                                .sticky
                                .entry(fid)
                                .or_insert_with(|| FsError::Storage(e.to_string()));
                            last = last.max(Some(ticket));
                        }
                        let _ = s.done.send(Err(e.clone()));
                    }
                }
                if let Some(last) = last {
                    raise_watermark(&volume_client.held_logged, last);
                }
            }
        }
    }
}

/// Log capacity units a record with `bytes` of data takes.
fn capacity_units(bytes: usize) -> u32 {
    u32::try_from((bytes as u64 + 128).div_ceil(CAPACITY_UNIT)).unwrap_or(u32::MAX)
}

/// Moves the held-write watermark up to `ticket` (never down).
fn raise_watermark(watermark: &watch::Sender<u64>, ticket: u64) {
    watermark.send_if_modified(|w| {
        let moved = ticket > *w;
        *w = (*w).max(ticket);
        moved
    });
}
