//! The tombstone collector (rule 8). Each server takes the tombstones it made at least
//! `min_age` ago, oldest first, and collects each in two rounds over the volume's group:
//! first every replica raises its floor (refusing creates of the fid from then on) or
//! answers that the object is live there; then, when no replica holds it live, every
//! replica drops its tombstone. A tombstone waits while a replica is unreachable, until
//! the GC horizon: then the reachable replicas collect it, and the absent replica's live
//! version, if it has one, comes back as a conflict when it returns.
//!
//! Replicas that left the group (rule 13) take part too until they are gone from their
//! server (or it left the cluster): a leaving replica hands what it holds over after it
//! left, and a stale live copy there must meet the tombstone, not an absence that would
//! take it back as live. One that cannot be reached is waited for like a member.

use crate::context::ServerContext;
use crate::peer_error::PeerError;
use crate::resolver::ReplicaAccess;
use crate::resolver::group::GroupReplica;
use crate::resolver::remote::RemoteReplica;
use crate::store::Store;
use crate::store::collect::GcCandidate;
use codetta_wire::{Fid, FsError, VolumeId};
use std::time::Duration;
use tokio::sync::watch;

/// Tombstones looked at per volume and pass.
const PAGE: usize = 1024;

/// When tombstones go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectPolicy {
    /// A tombstone younger than this stays (the delete may still be settling).
    pub min_age_ms: u64,
    /// Past this age a tombstone goes even if some replica is unreachable.
    pub horizon_ms: u64,
}

/// What a pass did with one volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectSummary {
    /// Tombstones collected on every replica reached.
    pub collected: u64,
    /// Tombstones left for a later pass (a replica unreachable, the object live somewhere).
    pub waiting: u64,
}

/// One pass over `volume`'s old tombstones held by `store`, across `members` (the
/// replicas of the volume this server can call, itself included; a replica of the group
/// missing from them counts as unreachable) and `departed` (replicas that left the group
/// and may still hold what they had: reached like members).
pub async fn collect<R: ReplicaAccess>(
    store: &Store,
    members: &[R],
    departed: &[R],
    volume: VolumeId,
    policy: CollectPolicy,
    now_ms: u64,
) -> Result<CollectSummary, FsError> {
    let candidates = store.gc_candidates(volume, policy.min_age_ms, PAGE)?;
    // A replica of the group that is not among `members` is as good as unreachable.
    let (info, _) = store.volume_info(volume)?;
    let all_listed = info
        .vsg
        .iter()
        .all(|v| members.iter().any(|m| m.replica() == v.replica));
    let mut summary = CollectSummary::default();
    let mut done: Vec<GcCandidate> = Vec::new();
    for (n, c) in candidates.iter().enumerate() {
        if !c.present {
            // Brought back, or collected already (another replica coordinated).
            done.push(*c);
            continue;
        }
        let past_horizon = now_ms.saturating_sub(c.made_ms) >= policy.horizon_ms;
        let mut reached = Vec::new();
        let mut live = false;
        let mut missing = !all_listed;
        for m in members.iter().chain(departed) {
            match m.forget(c.fid, false, false).await {
                Ok(()) => reached.push(m),
                Err(PeerError::Answer(FsError::Exists)) => {
                    live = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(fid = %c.fid, replica = %m.name(), "not collected: {e}");
                    missing = true;
                }
            }
        }
        if live {
            // Resolution settles it first; it stays queued.
            summary.waiting += 1;
            continue;
        }
        if missing && !past_horizon {
            // Younger tombstones would wait for the same replica.
            summary.waiting += (candidates.len() - n) as u64;
            break;
        }
        let mut all = true;
        for m in reached {
            if let Err(e) = m.forget(c.fid, true, missing).await {
                tracing::debug!(fid = %c.fid, replica = %m.name(), "tombstone kept: {e}");
                all = false;
            }
        }
        if all {
            summary.collected += 1;
            done.push(*c);
        } else {
            summary.waiting += 1;
        }
    }
    store.gc_dequeue(&done)?;
    Ok(summary)
}

/// Runs a collection pass over every volume every `interval` until `stop` is set.
pub async fn run(
    ctx: ServerContext,
    interval: Duration,
    policy: CollectPolicy,
    stop: watch::Receiver<bool>,
) {
    crate::periodic::every(interval, stop, || async {
        match collect_pass(&ctx, policy).await {
            Ok(s) if s.collected > 0 => {
                tracing::info!(
                    collected = s.collected,
                    waiting = s.waiting,
                    "tombstones collected"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("tombstone collection: {e}"),
        }
    })
    .await;
}

/// Whether `replica`, which left `volume`'s group, may still hold what it had: until its
/// server answers that it no longer has the volume (handed over and retired). One that
/// cannot be reached may.
pub async fn may_still_hold<R: ReplicaAccess>(replica: &R, volume: VolumeId) -> bool {
    !matches!(
        replica.view(Fid::root(volume)).await,
        Err(PeerError::Answer(FsError::UnknownVolume))
    )
}

/// The replicas that left `volume`'s group and may still hold what they had; the others
/// (see [`may_still_hold`], and those whose server left the cluster) are forgotten. One that
/// cannot be reached stays: tombstones wait for it as for an unreachable member until
/// their horizon, and are then collected with markers, so a live copy it hands over later
/// comes back as a conflict.
async fn departed_replicas(
    ctx: &ServerContext,
    volume: VolumeId,
) -> Result<Vec<GroupReplica>, FsError> {
    let catalogue = ctx
        .catalogue()
        .map(|c| c.current())
        .filter(|state| state.epoch > 0);
    let mut out = Vec::new();
    for member in ctx.store().departed(volume)? {
        let replica = RemoteReplica::new(ctx.peers().clone(), &member.server, member.replica);
        let decommissioned = catalogue
            .as_ref()
            .is_some_and(|state| !state.servers.contains_key(&member.server));
        if decommissioned || !may_still_hold(&replica, volume).await {
            tracing::info!(server = %member.server, volume = volume.0, "a replica that left the group is gone");
            ctx.store().forget_departed(volume, member.replica)?;
            continue;
        }
        out.push(GroupReplica::Remote(replica));
    }
    Ok(out)
}

/// One pass over every volume this server holds.
pub async fn collect_pass(
    ctx: &ServerContext,
    policy: CollectPolicy,
) -> Result<CollectSummary, FsError> {
    let store = ctx.store().clone();
    let volumes = codetta_transport::off_thread(move || store.list_volumes())
        .await
        .map_err(|e| FsError::Internal(format!("store task: {e}")))??;
    let mut total = CollectSummary::default();
    for vol in &volumes {
        let (members, _) = ctx.members(vol.id)?;
        let now_ms = ctx.store().clock().wall_ms();
        let departed = departed_replicas(ctx, vol.id).await?;
        let s = collect(ctx.store(), &members, &departed, vol.id, policy, now_ms).await?;
        total.collected += s.collected;
        total.waiting += s.waiting;
    }
    Ok(total)
}
