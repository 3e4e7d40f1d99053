//! Healing without a client (rule 12): every server numbers the changes it makes to each
//! volume; every second it asks each peer "what changed since N" and resolves the objects
//! whose replicas differ, with itself coordinating. A server back from a crash catches up
//! this way on its own. Recent changes wait a couple of seconds (the client's second phase
//! usually settles them first), and the cursor into each peer's sequence is stored, so a
//! restart does not compare everything again.

use crate::resolver::group::members_of;
use crate::resolver::{ReplicaAccess, Resolver};
use crate::service::{ServerService, add_summary};
use crate::store::Store;
use codetta_wire::message::{ReplicaMember, ResolveSummary};
use codetta_wire::{Fid, FsError, ReplicaId, VolumeId};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

/// Whether resolvers record their decisions (set by the simulation for its traces).
pub fn record_decisions() -> bool {
    RECORD_DECISIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns recording of decisions on or off for every resolver healing starts.
pub fn set_record_decisions(on: bool) {
    RECORD_DECISIONS.store(on, std::sync::atomic::Ordering::Relaxed);
}

static RECORD_DECISIONS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Changes younger than this are left for the next round.
pub const SETTLE_MS: u32 = 2000;
/// Changes read per request.
const PAGE: u32 = 1024;

/// Runs a healing round every `interval` until `stop` is set.
pub async fn run(service: ServerService, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // A round that meets a dying peer may take a while: stopping must not wait for it.
        let round = tokio::select! {
            r = heal_round(&service) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match round {
            Ok(s) if s.objects > 0 => tracing::info!(
                objects = s.objects,
                installs = s.installs,
                merges = s.merges,
                conflicts = s.conflicts,
                bytes = s.bytes_shipped,
                unsettled = s.unsettled,
                "healed"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!("healing round: {e}"),
        }
    }
}

/// One pass over every replicated volume and every peer.
pub async fn heal_round(service: &ServerService) -> Result<ResolveSummary, FsError> {
    let store = service.store().clone();
    let volumes = tokio::task::spawn_blocking(move || store.list_volumes())
        .await
        .map_err(|e| FsError::Storage(e.to_string()))??;
    let mut total = ResolveSummary::default();
    for vol in volumes.iter().filter(|v| v.vsg.len() > 1) {
        let (members, me) = members_of(service.store(), service.peers(), service.name(), vol.id)?;
        for peer in vol.vsg.iter().filter(|m| m.replica != me) {
            let s = pull(service, &members, me, vol.id, peer).await;
            add_summary(&mut total, &s);
        }
    }
    Ok(total)
}

/// Follows `peer`'s change sequence of `volume` from the stored cursor.
async fn pull<R: ReplicaAccess>(
    service: &ServerService,
    members: &[R],
    me: ReplicaId,
    volume: VolumeId,
    peer: &ReplicaMember,
) -> ResolveSummary {
    follow(
        service.store(),
        members,
        me,
        volume,
        peer.replica,
        SETTLE_MS,
        &|r| service.note_resolution(&r.summary),
    )
    .await
}

/// Reads the change sequence of replica `peer` (one of `members`) of `volume` from where
/// `store` (the replica `me`) got to, resolves every object whose replicas differ, and
/// moves the stored cursor past what is settled. Changes younger than `older_than_ms` are
/// left for later. `note` sees each resolver as it finishes.
pub async fn follow<R: ReplicaAccess>(
    store: &Store,
    members: &[R],
    me: ReplicaId,
    volume: VolumeId,
    peer: ReplicaId,
    older_than_ms: u32,
    note: &(dyn Fn(&Resolver<'_, R>) + Sync),
) -> ResolveSummary {
    let mut total = ResolveSummary::default();
    let Ok(mut cursor) = store.peer_cursor(volume, peer) else {
        return total;
    };
    let Some(peer_member) = members.iter().find(|m| m.replica() == peer) else {
        return total;
    };
    let own = members.iter().find(|m| m.replica() == me);
    loop {
        let Ok((entries, next, oldest)) = peer_member
            .changes(volume, cursor, PAGE, older_than_ms)
            .await
        else {
            return total;
        };
        if entries.is_empty() {
            return total;
        }
        if cursor > 0 && oldest > cursor + 1 {
            tracing::warn!(
                server = %peer_member.name(),
                missed = oldest - cursor - 1,
                "a peer's change sequence was trimmed past this server's cursor; comparing what remains"
            );
        }
        let fids: BTreeSet<Fid> = entries.iter().map(|(_, f)| *f).collect();
        let mut unsettled = false;
        for fid in fids {
            if let Some(own) = own
                && let (Ok(a), Ok(b)) = (own.view(fid).await, peer_member.view(fid).await)
                && a.tag == b.tag
                && a.version == b.version
            {
                continue;
            }
            let mut resolver = Resolver::new(members, me);
            resolver.decisions = record_decisions().then(Vec::new);
            resolver.resolve(fid).await;
            add_summary(&mut total, &resolver.summary);
            note(&resolver);
            // The cursor moves on only once this replica and the peer agree (a view lost on
            // the way must not let a difference slip past).
            let peer_view = peer_member.view(fid).await;
            if peer_view.is_err() {
                // The peer went away: the rest of the page waits for the next round.
                return total;
            }
            let agreed = match own {
                Some(own) => matches!(
                    (own.view(fid).await, peer_view),
                    (Ok(a), Ok(b)) if a.tag == b.tag && a.version == b.version
                ),
                None => resolver.summary.unsettled == 0,
            };
            unsettled |= resolver.summary.unsettled > 0 || !agreed;
        }
        if unsettled {
            return total;
        }
        cursor = next;
        if store.set_peer_cursor(volume, peer, cursor).is_err() {
            return total;
        }
    }
}
