//! Reading and validation (rule 4): one member serves the data, every AVSG member's
//! version and tag are compared first; answers from the cache while promises hold (rule 15),
//! the client's own updates on top; read-ahead for readers going through a file in order.

use super::*;

impl VolumeClient {
    /// Read-one (rule 4): sends `request` to the member the object's last validation chose
    /// (one whose state includes every other's), else to the first AVSG member (the
    /// group's order is the preference), moving on when one is unreachable (it then leaves
    /// the AVSG) or is still receiving the object from resolution (`Incomplete`: its data
    /// is not whole there). Any other refusal is the answer.
    pub(super) async fn read_call(
        &self,
        request: &Request,
    ) -> Result<(ReplyBody, Bytes), ClientError> {
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
            if let Some(fid) = target {
                // Never a member that missed this client's own update of the object.
                self.core.drop_stale(&fid, &mut order);
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
    pub(super) async fn validate(
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
            let stale = core.stale_members(fid, &states);
            match read_source(&states, &stale) {
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
                    let from = undominated(&states, &stale);
                    if from.is_none() && !stale.is_empty() {
                        tracing::warn!(%fid, ?stale, "only members that missed this client's update hold it; not reading");
                        return Err(self.waiting_error());
                    }
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
    pub(super) async fn compare(&self, fid: &Fid) -> Comparison {
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
    pub(super) async fn resolve_now(&self, fid: Fid) {
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
    pub(super) async fn prepare_read(
        &self,
        fid: &Fid,
        for_data: bool,
    ) -> Result<Option<ObjectState>, ClientError> {
        self.flush(fid).await?;
        self.validate(fid, for_data).await
    }

    pub(super) async fn fetch_attrs(&self, fid: &Fid) -> Result<ObjectState, ClientError> {
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
        // Held writes first: one logged after this is in the tracker (or, applied, on the
        // server) by the time the attributes below are read, so no answered write is ever
        // missing from both.
        let pending = lock(&self.unstable).pending(fid);
        let overlay = lock(&self.core.tracker).overlay(fid);
        let mut attrs = match overlay {
            Some(attrs) => attrs,
            None => {
                self.flush(fid).await?;
                self.fetch_attrs(fid).await?.attrs
            }
        };
        apply_pending(pending, &mut attrs);
        Ok(attrs)
    }

    pub(super) fn with_overlay(&self, mut state: ObjectState) -> ObjectState {
        let pending = lock(&self.unstable).pending(&state.fid);
        let overlay = lock(&self.core.tracker).overlay(&state.fid);
        if let Some(attrs) = overlay {
            state.attrs = attrs;
        }
        apply_pending(pending, &mut state.attrs);
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

    pub(super) async fn lookup_with(
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
        let mut fresh = avsg.clone();
        core.drop_stale(dir, &mut fresh);
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
            // The answer that counts is the member the directory's reads go to (rule 4),
            // never one that missed this client's update of the directory.
            if fresh.contains(m) && (first.is_none() || from == Some(*m)) {
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
    /// going through a file in order gets the next `READ_AHEAD` bytes fetched ahead.
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
    pub(super) async fn fetch_blocks(
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
    /// through the file in order, fetches up to `READ_AHEAD` bytes past it in the
    /// background (at most [`READ_AHEAD_TASKS`] fetches at once across the volume).
    pub(super) fn read_ahead(&self, state: &ObjectState, offset: u64, count: u32) {
        let core = &self.core;
        let fid = state.fid;
        let (from, to) = {
            let mut streams = lock(&core.streams);
            if streams.len() >= MAX_STREAMS && !streams.contains_key(&fid) {
                streams.clear();
            }
            let s = streams.entry(fid).or_default();
            match s.advance(offset, count, state.attrs.size) {
                Some(range) => range,
                None => return,
            }
        };
        let Some(volume_client) = core.volume_client.get().and_then(std::sync::Weak::upgrade)
        else {
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
            let volume_client = volume_client.clone();
            tokio::spawn(async move {
                if let Err(e) = volume_client.fetch_blocks(&fid, at, len as u32).await {
                    tracing::debug!(%fid, "read ahead: {e}");
                }
                volume_client.core.fetched(&fid, at);
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
}

/// `count` bytes at `offset` of the file in `state`, if every block of the range is cached:
/// slices of the cached blocks, in order (no copy).
pub(super) fn cached_read(
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

impl Core {
    /// The connections every AVSG member's promises hold on, if they all hold now.
    pub(super) fn trust(&self) -> Option<Trust> {
        let avsg = lock(&self.outbox).shipping.avsg();
        self.trust_of(avsg)
    }

    /// The connections the promises of `avsg` hold on, if they all hold now.
    pub(super) fn trust_of(&self, avsg: Vec<usize>) -> Option<Trust> {
        self.channels.trusted(
            avsg.into_iter()
                .filter_map(|m| self.group.member(m).map(|x| (m, x.link.generation()))),
        )
    }

    /// Whether promises still hold on the same connections as `before`.
    pub(super) fn trusted_still(&self, before: &Trust) -> bool {
        self.trust().as_ref() == Some(before)
    }

    /// `fid`'s last comparison across the AVSG, while it holds: made in this AVSG epoch,
    /// less than [`VALIDATION_TTL`] ago.
    pub(super) fn validation(&self, fid: &Fid) -> Option<Validation> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        lock(&self.validated)
            .get(fid)
            .filter(|v| v.epoch == epoch && v.at.elapsed() < VALIDATION_TTL)
            .copied()
    }

    /// Takes out of `members` those that missed this client's own update of `fid`.
    pub(super) fn drop_stale(&self, fid: &Fid, members: &mut Vec<usize>) {
        let outbox = lock(&self.outbox);
        if outbox.missed.is_empty() {
            return;
        }
        members.retain(|m| {
            !outbox
                .shipping
                .replica(*m)
                .is_some_and(|r| outbox.missed.is_marked(r, fid))
        });
    }

    /// The members among `states` that missed this client's own update of `fid` and have
    /// not caught up; those that have (see `still_stale`) lose their mark.
    pub(super) fn stale_members(
        &self,
        fid: &Fid,
        states: &[(usize, Option<ObjectState>)],
    ) -> Vec<usize> {
        let mut outbox = lock(&self.outbox);
        if outbox.missed.is_empty() {
            return Vec::new();
        }
        let marked: Vec<(usize, ReplicaId)> = states
            .iter()
            .filter_map(|(m, _)| Some((*m, outbox.shipping.replica(*m)?)))
            .filter(|(_, r)| outbox.missed.is_marked(*r, fid))
            .collect();
        if marked.is_empty() {
            return Vec::new();
        }
        let members: Vec<usize> = marked.iter().map(|(m, _)| *m).collect();
        let group = (0..outbox.shipping.members())
            .filter(|m| !outbox.shipping.is_retired(*m))
            .count();
        let stale = still_stale(states, &members, group);
        for (m, r) in &marked {
            if !stale.contains(m) {
                outbox.missed.caught_up(*r, fid);
            }
        }
        stale
    }

    /// The member `fid`'s reads go to first, while its last validation holds (rule 4).
    pub(super) fn read_from(&self, fid: &Fid) -> Option<usize> {
        self.validation(fid).and_then(|v| v.from)
    }

    /// `fid`'s cached state, while promises hold.
    pub(super) fn cached_state(&self, fid: &Fid) -> Option<ObjectState> {
        self.trust()?;
        lock(&self.cache).state(fid)
    }

    /// A fetch of `fid`'s bytes `from..to` is starting: readers of that range wait for it.
    pub(super) fn fetching(&self, fid: Fid, from: u64, to: u64) -> watch::Sender<bool> {
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
    pub(super) fn fetched(&self, fid: &Fid, from: u64) {
        lock(&self.arriving).retain(|a| !(a.fid == *fid && a.from == from));
    }

    /// The fetch bringing `fid`'s byte `offset`, if one is under way.
    pub(super) fn arriving(&self, fid: &Fid, offset: u64) -> Option<watch::Receiver<bool>> {
        lock(&self.arriving)
            .iter()
            .find(|a| a.fid == *fid && (a.from..a.to).contains(&offset))
            .map(|a| a.done.clone())
    }

    /// Where a fill starts: the cache's invalidations so far and the promises' connections
    /// (`None`: promises do not hold, nothing fetched now may be cached).
    pub(super) fn fill_start(&self) -> Option<FillStamp> {
        let since = lock(&self.cache).snapshot();
        Some((since, self.trust()?))
    }
}
