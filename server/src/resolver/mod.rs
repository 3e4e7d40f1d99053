//! Server-to-server resolution (rule 6): one server coordinates, gathers every reachable
//! replica's view of an object, decides ([`decide()`]) and installs the outcome, shipping
//! only the chunks a replica lacks. Directories are resolved entry by entry: the children
//! whose entries differ are resolved first (each one carries its own placement, so a
//! rename resolves as a unit with the object it moves), then the directory's attributes.
//!
//! The coordinator reaches replicas through [`ReplicaAccess`]: its own store directly,
//! the others over QUIC ([`remote`]), or in-memory stores in the simulation. An install is
//! conditional on the version the coordinator saw, so a client update racing a resolution
//! makes the coordinator gather again rather than overwrite it.

pub mod access;
mod aside;
#[cfg(test)]
mod crash_tests;
pub mod decide;
pub mod group;
#[cfg(test)]
mod install_tests;
#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
mod peer_error_tests;
mod pieces;
pub mod remote;
#[cfg(test)]
mod resend_tests;
#[cfg(test)]
mod tests;

use crate::clock::{SharedClock, SystemClock};
use crate::conflict::{conflict_fid, conflict_name, to_conflict_names};
use crate::pacing::Pacer;
use crate::peer_error::{PeerError, PeerResult};
pub use access::{LocalReplica, ReplicaAccess};
use codetta_wire::message::ResolveSummary;
use codetta_wire::replica::{Placement, ReplicaView, ViewBody};
use codetta_wire::{Fid, FileType, FsError, ReplicaId, VersionVector};
pub use decide::{Decision, decide};
use pieces::PieceSource;
use std::collections::{BTreeMap, BTreeSet};

/// How deep resolution follows objects that must be settled first (parents, names held by
/// other objects, children of a directory).
const MAX_DEPTH: usize = 64;
/// How often one object is gathered again after a race before it is left for later.
const MAX_ATTEMPTS: usize = 4;
/// Entries read per directory page while comparing directories.
const DIR_PAGE: u32 = 4096;
/// Most chunk bytes in one install request.
const MAX_INSTALL_BYTES: usize = 16 << 20;

/// Resolves objects of one volume across the replicas in `members`.
pub struct Resolver<'a, R: ReplicaAccess> {
    members: &'a [R],
    coordinator: ReplicaId,
    pub summary: ResolveSummary,
    /// Objects settled in this run (not resolved twice).
    settled: BTreeSet<Fid>,
    /// Objects being resolved, outermost first: one blocked on another of these is a
    /// cycle (two objects claiming one name, or directories placed inside each other).
    in_progress: Vec<Fid>,
    /// When set, every decision is written here (for the simulation's traces).
    pub decisions: Option<Vec<String>>,
    /// This coordinator's lease token.
    holder: u64,
    /// When each object this coordinator holds was last leased (renewed during long
    /// installs), in milliseconds of `clock`'s monotonic time.
    leased_at: BTreeMap<Fid, u64>,
    /// The coordinator's clock (leases are renewed by its time).
    clock: SharedClock,
    /// When set, pauses after each piece of data installed while clients update here.
    pub pacer: Option<Pacer>,
    /// Fault injection for tests: a wait before each piece of file data (see
    /// [`Pacer::set_install_delay`]); zero otherwise.
    pub install_delay: std::time::Duration,
}

/// How long a resolution lease lasts: longer than resolving one object normally takes. A
/// coordinator renews the leases it holds once a third of this has passed, checked before
/// each attempt and each piece of file data it installs; one that outlives its lease is
/// still kept honest by the conditional installs.
pub const LEASE_MS: u32 = 30_000;

/// Why one attempt stopped.
enum Step {
    Done,
    /// Another object must be settled first.
    Blocked(Fid),
    /// Something changed under us: gather again.
    Again,
}

fn transient(e: &PeerError) -> bool {
    e.retry_helps()
}

/// The state a decision installs under the object's fid, with where it comes from
/// ((member, view)), and the views (by index) that receive it; `None` when nothing is
/// installed (settled, merged). A resurrected object moves to a conflict name and every
/// view receives it.
fn target_state(
    decision: &Decision,
    views: &[(usize, ReplicaView)],
) -> Option<((usize, ReplicaView), Vec<usize>)> {
    match decision {
        Decision::Install { winner, stale, .. } => Some((views[*winner].clone(), stale.clone())),
        Decision::Conflict {
            keep,
            stale,
            resurrect,
            ..
        } => {
            let (src, kept) = &views[*keep];
            let mut kept = kept.clone();
            if *resurrect && let ViewBody::Live(meta) = &mut kept.body {
                to_conflict_names(meta, &kept.tag.0);
            }
            let targets = if *resurrect {
                (0..views.len()).collect()
            } else {
                stale.clone()
            };
            Some(((*src, kept), targets))
        }
        Decision::Settled | Decision::Merge { .. } | Decision::Discard { .. } => None,
    }
}

/// Whether the replica holding `view` takes the outcome's `version` at the end of a
/// resolution: every replica that `received` the decided state, even one whose vector
/// already equals it (the version is what marks it whole, rule 4), and every other whose
/// vector differs, except one cut short in an earlier install, which keeps its version and
/// its mark until it receives a whole state.
fn takes_version(view: &ReplicaView, version: &VersionVector, received: bool) -> bool {
    received || (&view.version != version && !view.installing)
}

impl<'a, R: ReplicaAccess> Resolver<'a, R> {
    /// A resolver over `members` (every replica of the volume, reachable or not) run by
    /// the replica `coordinator`.
    pub fn new(members: &'a [R], coordinator: ReplicaId) -> Self {
        Resolver {
            members,
            coordinator,
            summary: ResolveSummary::default(),
            settled: BTreeSet::new(),
            in_progress: Vec::new(),
            decisions: None,
            holder: codetta_wire::entropy::random_u64(),
            leased_at: BTreeMap::new(),
            clock: SystemClock::shared(),
            pacer: None,
            install_delay: std::time::Duration::ZERO,
        }
    }

    /// The same resolver reading the time from `clock` (its store's, so that leases here
    /// and at the members age together).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Leases `fid` at every member that answers; false when another coordinator holds it
    /// somewhere (then nothing stays leased).
    async fn lease(&mut self, fid: Fid) -> bool {
        let now = self.clock.monotonic_ms();
        for m in self.members {
            match m.lease(&[fid], self.holder, LEASE_MS).await {
                Ok(()) => {}
                Err(PeerError::Answer(FsError::Leased(_))) => {
                    tracing::debug!(%fid, replica = %m.name(), "another coordinator holds it");
                    self.release(fid).await;
                    return false;
                }
                // An unreachable member receives no install either.
                Err(e) => tracing::debug!(%fid, replica = %m.name(), "no lease: {e}"),
            }
        }
        self.leased_at.insert(fid, now);
        true
    }

    /// Renews every lease this coordinator holds (the object being resolved and those it
    /// waits on) once a third of it has passed; `Leased` when another coordinator took one
    /// meanwhile (this one must stop installing; the object is left for later).
    async fn keep_leases(&mut self) -> PeerResult<()> {
        let third = u64::from(LEASE_MS / 3);
        let now = self.clock.monotonic_ms();
        let due: Vec<Fid> = self
            .leased_at
            .iter()
            .filter(|(_, at)| now.saturating_sub(**at) >= third)
            .map(|(fid, _)| *fid)
            .collect();
        for fid in due {
            if !self.lease(fid).await {
                tracing::warn!(%fid, "lost the resolution lease to another coordinator");
                return Err(FsError::Leased(fid).into());
            }
        }
        Ok(())
    }

    async fn release(&mut self, fid: Fid) {
        self.leased_at.remove(&fid);
        for m in self.members {
            if let Err(e) = m.release(&[fid], self.holder).await {
                tracing::debug!(%fid, replica = %m.name(), "lease not released: {e}");
            }
        }
    }

    /// Resolves `fid`; failures leave it for a later attempt (counted as unsettled).
    pub async fn resolve(&mut self, fid: Fid) {
        if !self.resolve_at(fid, 0).await {
            self.summary.unsettled += 1;
        }
    }

    /// Gathers the views of `fid` from every member that answers: (member, view).
    async fn gather(&self, fid: Fid) -> Vec<(usize, ReplicaView)> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            match m.view(fid).await {
                Ok(v) => out.push((i, v)),
                Err(e) => tracing::debug!(replica = %m.name(), %fid, "no view: {e}"),
            }
        }
        out
    }

    /// True once `fid` is settled on every member that answered.
    fn resolve_at(
        &mut self,
        fid: Fid,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            if self.settled.contains(&fid) {
                return true;
            }
            if depth > MAX_DEPTH {
                tracing::warn!(%fid, "resolution too deep; left for later");
                return false;
            }
            if !self.lease(fid).await {
                return false;
            }
            self.in_progress.push(fid);
            let done = self.attempts(fid, depth).await;
            self.in_progress.pop();
            self.release(fid).await;
            if done {
                self.settled.insert(fid);
            }
            done
        })
    }

    async fn attempts(&mut self, fid: Fid, depth: usize) -> bool {
        for _ in 0..MAX_ATTEMPTS {
            if let Err(e) = self.keep_leases().await {
                tracing::debug!(%fid, "resolution stopped: {e}");
                return false;
            }
            match self.attempt(fid, depth).await {
                Ok(Step::Done) => return true,
                Ok(Step::Blocked(other)) if other == fid || self.in_progress.contains(&other) => {
                    // A cycle: the greater of the two steps aside, deterministically.
                    let aside = fid.max(other);
                    if let Err(e) = self.step_aside(aside, other).await {
                        tracing::debug!(%fid, "could not settle a placement conflict: {e}");
                        return false;
                    }
                }
                Ok(Step::Blocked(other)) => {
                    if !self.resolve_at(other, depth + 1).await {
                        tracing::debug!(%fid, blocked_on = %other, "resolution blocked");
                        return false;
                    }
                }
                Ok(Step::Again) => {}
                Err(e) => {
                    tracing::debug!(%fid, "resolution failed: {e}");
                    return false;
                }
            }
        }
        false
    }

    async fn attempt(&mut self, fid: Fid, depth: usize) -> PeerResult<Step> {
        let views = self.gather(fid).await;
        if views.is_empty() {
            return Err(PeerError::Unreachable {
                server: "every replica".into(),
                reason: "no replica answered".into(),
            });
        }
        let is_dir = views
            .iter()
            .any(|(_, v)| v.meta().is_some_and(|m| m.ftype == FileType::Directory));
        let tags_differ = views.iter().any(|(_, v)| v.tag != views[0].1.tag);
        if is_dir && tags_differ {
            // The directory is placed first (created or moved where the winner has it, no
            // version yet), so that its children have somewhere to go; then every child
            // whose entry differs is settled; then the directory is compared again.
            let only: Vec<ReplicaView> = views.iter().map(|(_, v)| v.clone()).collect();
            let decision = decide(&only, self.coordinator);
            if let Some((winner, stale)) = target_state(&decision, &views)
                && winner.1.is_live()
            {
                // A resurrected directory takes its new name and final version on the
                // replica that kept it first (as in `execute`), so a placement cut short
                // never looks older than the delete it overrides.
                let mut first = None;
                if let Decision::Conflict {
                    keep,
                    resurrect: true,
                    version,
                    history,
                    ..
                } = &decision
                {
                    let (src, own) = &views[*keep];
                    let placed = async {
                        self.install_state(fid, *src, &winner.1, *src, own).await?;
                        self.members[*src]
                            .install_version(fid, &own.version, version, history)
                            .await
                    };
                    match placed.await {
                        Ok(()) => first = Some(*src),
                        Err(PeerError::Answer(FsError::Blocked(other))) => {
                            return Ok(Step::Blocked(other));
                        }
                        Err(e) if transient(&e) => return Ok(Step::Again),
                        Err(e) => return Err(e),
                    }
                }
                for s in stale {
                    let (dst, view) = &views[s];
                    if Some(*dst) == first {
                        continue;
                    }
                    match self
                        .install_state(fid, winner.0, &winner.1, *dst, view)
                        .await
                    {
                        Ok(()) => {}
                        Err(PeerError::Answer(FsError::Blocked(other))) => {
                            return Ok(Step::Blocked(other));
                        }
                        Err(e) if transient(&e) => return Ok(Step::Again),
                        Err(e) => return Err(e),
                    }
                }
            }
            for child in self.differing_children(fid, &views).await? {
                // A child being resolved already is what led here (its parent was
                // missing somewhere): it continues once this directory is placed.
                if child != fid && !self.in_progress.contains(&child) {
                    self.resolve_at(child, depth + 1).await;
                }
            }
        }
        let views = if is_dir && tags_differ {
            self.gather(fid).await
        } else {
            views
        };
        self.summary.objects += 1;
        let only: Vec<ReplicaView> = views.iter().map(|(_, v)| v.clone()).collect();
        let decision = decide(&only, self.coordinator);
        if let Some(log) = self.decisions.as_mut() {
            let who: Vec<String> = views
                .iter()
                .map(|(i, v)| {
                    format!(
                        "{}:{}/{:?}/{:?}",
                        self.members[*i].name(),
                        match &v.body {
                            ViewBody::Live(m) =>
                                String::from_utf8_lossy(&m.placement.name).into_owned(),
                            ViewBody::Deleted(_) => "deleted".into(),
                            ViewBody::Absent => "absent".into(),
                            ViewBody::Forgotten => "forgotten".into(),
                        },
                        v.version,
                        v.history
                            .entries()
                            .iter()
                            .map(|e| e.id.seq)
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            log.push(format!("{fid}: {} => {decision:?}", who.join(" ")));
        }
        let result = self.execute(fid, &views, decision).await;
        match result {
            Ok(step) => Ok(step),
            Err(PeerError::Answer(FsError::Blocked(other))) => Ok(Step::Blocked(other)),
            Err(e) if transient(&e) => {
                tracing::debug!(%fid, "resolution raced ({e}); gathering again");
                Ok(Step::Again)
            }
            Err(e) => Err(e),
        }
    }

    /// Children of directory `dir` whose entries differ between the live views.
    async fn differing_children(
        &self,
        dir: Fid,
        views: &[(usize, ReplicaView)],
    ) -> PeerResult<Vec<Fid>> {
        let mut listings: Vec<BTreeMap<Vec<u8>, Fid>> = Vec::new();
        for (i, v) in views {
            if !v.is_live() {
                listings.push(BTreeMap::new());
                continue;
            }
            let mut entries = BTreeMap::new();
            let mut cookie = 0;
            loop {
                let (page, eof) = self.members[*i].list(dir, cookie, DIR_PAGE).await?;
                for (c, name, fid) in &page {
                    cookie = *c;
                    entries.insert(name.clone(), *fid);
                }
                if eof || page.is_empty() {
                    break;
                }
            }
            listings.push(entries);
        }
        let mut names: BTreeSet<&Vec<u8>> = BTreeSet::new();
        for l in &listings {
            names.extend(l.keys());
        }
        let mut children = BTreeSet::new();
        for name in names {
            let fids: Vec<Option<&Fid>> = listings.iter().map(|l| l.get(name)).collect();
            if fids.iter().any(|f| *f != fids[0]) {
                children.extend(fids.into_iter().flatten().copied());
            }
        }
        Ok(children.into_iter().collect())
    }

    async fn execute(
        &mut self,
        fid: Fid,
        views: &[(usize, ReplicaView)],
        decision: Decision,
    ) -> PeerResult<Step> {
        match decision {
            Decision::Settled => Ok(Step::Done),
            Decision::Discard {
                targets,
                version,
                history,
            } => {
                tracing::warn!(%fid, "half installed here and held whole nowhere: deleted");
                for t in targets {
                    let (i, v) = &views[t];
                    let Some(placement) = v.placement() else {
                        continue;
                    };
                    self.members[*i]
                        .install_delete(fid, &v.version, &version, &history, placement)
                        .await?;
                }
                Ok(Step::Done)
            }
            Decision::Merge { version, history } => {
                self.summary.merges += 1;
                for (i, v) in views {
                    if takes_version(v, &version, false) {
                        self.members[*i]
                            .install_version(fid, &v.version, &version, &history)
                            .await?;
                    }
                }
                Ok(Step::Done)
            }
            Decision::Install {
                winner,
                stale,
                version,
                history,
            } => {
                let (src, winner_view) = &views[winner];
                let mut installed = Vec::new();
                for s in &stale {
                    let (dst, view) = &views[*s];
                    tracing::debug!(
                        %fid,
                        from = %self.members[*src].name(),
                        to = %self.members[*dst].name(),
                        winner = ?(&winner_view.version, update_ids(winner_view)),
                        replaced = ?(&view.version, update_ids(view)),
                        "installing the newer state"
                    );
                    self.install_state(fid, *src, winner_view, *dst, view)
                        .await?;
                    installed.push(*dst);
                }
                if !installed.is_empty() {
                    self.source_unchanged(*src, fid, &winner_view.version)
                        .await?;
                }
                for (i, v) in views {
                    if takes_version(v, &version, installed.contains(i)) {
                        self.members[*i]
                            .install_version(fid, &v.version, &version, &history)
                            .await?;
                    }
                }
                Ok(Step::Done)
            }
            Decision::Conflict {
                keep,
                stale,
                copies,
                resurrect,
                version,
                history,
            } => {
                if !copies.is_empty() || resurrect {
                    self.summary.conflicts += 1;
                    tracing::warn!(%fid, copies = copies.len(), resurrect, "conflict: keeping every version");
                    for (i, v) in views {
                        tracing::debug!(
                            %fid,
                            replica = %self.members[*i].name(),
                            version = ?v.version,
                            history = ?update_ids(v),
                            "a view in conflict"
                        );
                    }
                }
                for c in &copies {
                    self.make_copy(fid, views, *c).await?;
                }
                let decision = Decision::Conflict {
                    keep,
                    stale,
                    copies,
                    resurrect,
                    version: version.clone(),
                    history: history.clone(),
                };
                let mut done_first = None;
                let mut installed = Vec::new();
                if let Some(((src, kept), targets)) = target_state(&decision, views) {
                    // The version the source holds while the others copy from it.
                    let mut source_version = kept.version.clone();
                    if resurrect {
                        // The replica that kept the update takes the resurrected state and
                        // its final version first: a resurrection cut short then never
                        // looks older than the delete it overrides.
                        let (_, own) = &views[keep];
                        self.install_state(fid, src, &kept, src, own).await?;
                        self.members[src]
                            .install_version(fid, &own.version, &version, &history)
                            .await?;
                        done_first = Some(src);
                        source_version = version.clone();
                    }
                    for s in targets {
                        let (dst, view) = &views[s];
                        if Some(*dst) != done_first {
                            self.install_state(fid, src, &kept, *dst, view).await?;
                            installed.push(*dst);
                        }
                    }
                    if !installed.is_empty() {
                        self.source_unchanged(src, fid, &source_version).await?;
                    }
                }
                for (i, v) in views {
                    if takes_version(v, &version, installed.contains(i)) && Some(*i) != done_first {
                        self.members[*i]
                            .install_version(fid, &v.version, &version, &history)
                            .await?;
                    }
                }
                Ok(Step::Done)
            }
        }
    }

    /// Creates the conflict copy of view `c` of `fid` on every member that answered.
    async fn make_copy(
        &mut self,
        fid: Fid,
        views: &[(usize, ReplicaView)],
        c: usize,
    ) -> PeerResult<()> {
        let (src, loser) = &views[c];
        let Some(meta) = loser.meta() else {
            return Ok(());
        };
        let copy = conflict_fid(fid, &loser.tag.0);
        let mut copy_meta = meta.clone();
        // Named after the copy's own fid (a moved-aside object is named after its state),
        // so the two kinds of conflict name never collide.
        copy_meta.placement = Placement {
            parent: meta.placement.parent,
            name: conflict_name(
                &meta.placement.name,
                blake3::hash(&copy.to_bytes()).as_bytes(),
            ),
        };
        copy_meta.links = Vec::new();
        copy_meta.verifier = None;
        for (dst, _) in views {
            let existing = self.members[*dst].view(copy).await?;
            // A copy made before is an object of its own by now (clients may have changed
            // or removed it): only a missing or half-made one (no version yet) is made.
            match existing.body {
                ViewBody::Deleted(_) => continue,
                ViewBody::Live(_) if !existing.version.is_empty() => continue,
                _ => {}
            }
            self.members[*dst]
                .install_meta(copy, &existing.version, &copy_meta)
                .await?;
            if copy_meta.ftype == FileType::Regular {
                self.sync_blocks(fid, *src, (copy, &existing.version), *dst)
                    .await?;
                self.source_unchanged(*src, fid, &loser.version).await?;
            }
            self.members[*dst]
                .install_version(copy, &existing.version, &loser.version, &loser.history)
                .await?;
        }
        Ok(())
    }

    /// Confirms that member `src` still holds `fid` at `version` after others copied from
    /// it: a state copied while a client changed it there is a mixture of two states, and
    /// no version may claim it (rule 4). `VersionChanged` (gather again) otherwise; the
    /// copies stay marked as being installed until then.
    async fn source_unchanged(
        &self,
        src: usize,
        fid: Fid,
        version: &VersionVector,
    ) -> PeerResult<()> {
        let now = self.members[src].view(fid).await?;
        if &now.version != version {
            return Err(FsError::VersionChanged.into());
        }
        Ok(())
    }

    /// Brings member `dst` (holding `view`) to the state of `winner` (held by `src`), but
    /// not its version: that comes last, for every member at once.
    async fn install_state(
        &mut self,
        fid: Fid,
        src: usize,
        winner: &ReplicaView,
        dst: usize,
        view: &ReplicaView,
    ) -> PeerResult<()> {
        self.summary.installs += 1;
        match &winner.body {
            ViewBody::Live(meta) => {
                if view.meta() != Some(meta) || view.tag != winner.tag {
                    self.members[dst]
                        .install_meta(fid, &view.version, meta)
                        .await?;
                }
                if meta.ftype == FileType::Regular && src != dst {
                    self.sync_blocks(fid, src, (fid, &view.version), dst)
                        .await?;
                }
                Ok(())
            }
            ViewBody::Deleted(placement) => {
                self.members[dst]
                    .install_delete(
                        fid,
                        &view.version,
                        &winner.version,
                        &winner.history,
                        placement,
                    )
                    .await
            }
            ViewBody::Absent | ViewBody::Forgotten => Ok(()),
        }
    }

    /// Makes `dst_fid`'s blocks on `dst` equal to `src_fid`'s on `src`, shipping only the
    /// chunks `dst` lacks: block groups are compared by digest, then block by block. Each
    /// piece installs only if `dst_fid` there is still at version `expect`, so a refusal
    /// (`VersionChanged`) can come after earlier pieces went in (the version is left alone
    /// until the end: the replica stays dominated). The next piece is planned and fetched
    /// from `src` while the current one installs; the leases held are renewed before each
    /// piece, and healing pauses after each one while clients update here.
    async fn sync_blocks(
        &mut self,
        src_fid: Fid,
        src: usize,
        (dst_fid, expect): (Fid, &VersionVector),
        dst: usize,
    ) -> PeerResult<()> {
        let members = self.members;
        let d = &members[dst];
        let mut source = PieceSource::new(&members[src], src_fid, d, dst_fid).await?;
        let mut next = source.next().await?;
        while let Some(piece) = next {
            if !self.install_delay.is_zero() {
                tokio::time::sleep(self.install_delay).await;
            }
            self.keep_leases().await?;
            // The real time the work takes (tokio's clock, paused in tests and the
            // simulation, sees none of it).
            let began = std::time::Instant::now();
            self.summary.bytes_shipped += piece.chunk_bytes();
            let (installed, following) = futures::join!(
                d.install_blocks(dst_fid, expect, &piece.blocks, &piece.chunks),
                source.next()
            );
            installed?;
            next = following?;
            // After the last piece too: healing resolves file after file, and the pause is
            // what leaves the clients their share between them.
            if let Some(pacer) = &self.pacer {
                pacer.after(began.elapsed()).await;
            }
        }
        Ok(())
    }
}

/// The update ids a view's history remembers, (incarnation, seq), oldest first: for logs.
fn update_ids(view: &ReplicaView) -> Vec<(u32, u64)> {
    view.history
        .entries()
        .iter()
        .map(|e| (e.id.incarnation.0, e.id.seq))
        .collect()
}
