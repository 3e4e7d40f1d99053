//! Shipping and landing (rules 1, 2, 14): one shipper per group member sends the queued
//! records in sequenced batches, the answers are gathered until the replicas agree and the
//! callers answered; members that miss deadlines leave the AVSG and are probed back; a
//! stale catalogue epoch refreshes the group.

use super::*;

impl Core {
    pub(super) fn wake_all(&self) {
        for m in self.group.all() {
            m.wake.notify_one();
        }
    }

    /// Calls member `m` with `request` in the epoch envelope. When the server says this
    /// client's group is stale, the group is refreshed and the call made again (unless the
    /// member left: then the `StaleEpoch` is the answer).
    pub(super) async fn call(
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
    pub(super) async fn refresh(
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
                    // A replica that leaves hands what only it held to one that stays, so
                    // the marks it left on the others may no longer be true, and nothing
                    // would take them away (they go when a fresh replica is seen alike).
                    outbox.missed.clear();
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
        if let Some(volume_client) = self.volume_client.get().and_then(std::sync::Weak::upgrade) {
            let mut tasks = lock(&volume_client.tasks);
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
    pub(super) fn member_failed(self: &Arc<Core>, m: usize, plan: Option<BatchPlan>) {
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
    pub(super) fn finish(
        self: &Arc<Core>,
        tracker: &mut Tracker,
        outbox: &mut Outbox,
        done: Vec<Completed>,
    ) {
        self.finish_landing(tracker, outbox, done, Vec::new());
    }

    /// [`Core::finish`], caching the states in `landed` (replies to this client's own
    /// records) if no promise behind them broke since their batches were sent.
    pub(super) fn finish_landing(
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
        // Records some replica applied: the newest on each object is remembered on disk
        // before they leave the log, so a restarted daemon still chains to them.
        let mut applied: Vec<crate::chain_file::Applied> = Vec::with_capacity(done.len());
        // And the replicas that missed them, so a restarted daemon still reads around them.
        let mut marks = Vec::new();
        let group: Vec<ReplicaId> = (0..outbox.shipping.members())
            .filter(|m| !outbox.shipping.is_retired(*m))
            .filter_map(|m| outbox.shipping.replica(m))
            .collect();
        for c in done {
            let Some(q) = outbox.queue.pop_front() else {
                tracing::error!(seq = c.seq, "completed a record the queue does not hold");
                continue;
            };
            let rec = &q.rec.record;
            debug_assert_eq!(rec.id.seq, c.seq);
            let made = outbox
                .missed
                .completed(c.seq, &rec.op, &c.applied_by, &group);
            // A member that missed it is out of the AVSG (its validations go when it
            // rejoins) or refused it; reads skip it either way (`Core::drop_stale`).
            marks.extend(made);
            if !c.answers.is_empty() && c.answers.iter().all(|(_, o)| o.is_err()) {
                // Applied nowhere: the next record on its objects follows its predecessors.
                outbox
                    .chains
                    .unlink_record(&rec.op, rec.id.incarnation, c.seq, q.follows);
            } else {
                applied.extend(
                    rec.op
                        .chained()
                        .map(|object| (object, rec.id.incarnation, c.seq)),
                );
            }
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
        tokio::spawn(codetta_transport::off_thread(move || {
            if let Err(e) = log.trim_noting(last, &applied, &marks) {
                tracing::warn!("trimming the modify log failed: {e}");
            }
        }));
        self.wake_all();
    }

    /// Asks an AVSG member to resolve `fids` (in the background).
    pub(super) fn request_resolution(self: &Arc<Core>, order: Vec<usize>, fids: Vec<Fid>) {
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
    pub(super) fn undo_then_answer(
        &self,
        undo: Op,
        waiter: Option<oneshot::Sender<RecordOutcome>>,
    ) {
        let Some(volume_client) = self.volume_client.get().and_then(std::sync::Weak::upgrade)
        else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = volume_client.submit_and_wait(undo, Bytes::new()).await {
                tracing::warn!("undoing a partial exclusive create: {e}");
            }
            if let Some(w) = waiter {
                let _ = w.send(Err(FsError::Exists));
            }
        });
    }

    /// The next batch for member `m`, cut to the byte limit, with its records and data.
    pub(super) fn next_batch(
        &self,
        m: usize,
        cop2_alone: bool,
    ) -> Option<(BatchPlan, Request, Payload)> {
        let mut outbox = lock(&self.outbox);
        let front = outbox.shipping.front();
        let mut plan = outbox.shipping.plan(m, MAX_BATCH_RECORDS, cop2_alone)?;
        let start = usize::try_from(plan.first - front).unwrap_or(usize::MAX);
        let mut records = Vec::with_capacity(plan.len());
        let mut follows = Vec::with_capacity(plan.len());
        let mut bytes = 0usize;
        let mut data = Payload::new();
        for q in outbox.queue.iter().skip(start).take(plan.len()) {
            let len = q.rec.data.len();
            if !records.is_empty() && bytes + len > MAX_BATCH_BYTES {
                break;
            }
            bytes += len;
            records.push(q.rec.record.clone());
            follows.push(q.follows);
            data.push(q.rec.data.clone());
        }
        if !plan.is_empty() {
            plan.last = plan.first + records.len() as u64 - 1;
        }
        if follows.iter().all(|f| *f == Follows::default()) {
            follows.clear();
        }
        let request = self.group.wrap(Request::Ship {
            records,
            log_start: plan.log_start,
            cop2: plan.cop2.clone(),
            follows,
        });
        Some((plan, request, data))
    }
}

/// Ships the log to member `m` in order, one batch in flight; when a call fails the member
/// leaves the AVSG and is probed until it answers again.
pub(super) fn member_shipper(
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
pub(super) async fn member_channel(core: Arc<Core>, m: usize) {
    let Some(member) = core.group.member(m) else {
        return;
    };
    let volume = core.group.info().id;
    let stop = || lock(&core.outbox).shipping.is_retired(m);
    crate::promises::run_channel(m, volume, &member.link, &core.channels, &core.cache, stop).await;
}

/// Probes member `m` (out of the AVSG) until it answers, then puts it back.
pub(super) async fn probe(core: &Arc<Core>, m: usize) {
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
