//! Healing without a client (rule 12): every server numbers the changes it makes to each
//! volume; every second it asks each peer "what changed since N" and resolves the objects
//! whose replicas differ, with itself coordinating. A server back from a crash catches up
//! this way on its own. Recent changes wait a couple of seconds (the client's second phase
//! usually settles them first), and the cursor into each peer's sequence is stored, so a
//! restart does not compare everything again.

use crate::resolver::group::members_of;
use crate::resolver::{ReplicaAccess, Resolver};
use crate::service::{ServerService, add_summary};
use bytes::Bytes;
use codetta_wire::message::{ReplyBody, ResolveSummary};
use codetta_wire::{Fid, FsError, Request};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

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
        match heal_round(&service).await {
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
    me: codetta_wire::ReplicaId,
    volume: codetta_wire::VolumeId,
    peer: &codetta_wire::message::ReplicaMember,
) -> ResolveSummary {
    let mut total = ResolveSummary::default();
    let store = service.store();
    let Ok(mut cursor) = store.peer_cursor(volume, peer.replica) else {
        return total;
    };
    let Some(peer_member) = members.iter().find(|m| m.replica() == peer.replica) else {
        return total;
    };
    let own = members.iter().find(|m| m.replica() == me);
    loop {
        let request = Request::Changes {
            volume,
            since: cursor,
            max: PAGE,
            older_than_ms: SETTLE_MS,
        };
        let (entries, next, oldest) = match service
            .peers()
            .call(&peer.server, &request, Bytes::new())
            .await
        {
            Ok((
                ReplyBody::Changes {
                    entries,
                    next,
                    oldest,
                },
                _,
            )) => (entries, next, oldest),
            Ok(_) | Err(_) => return total,
        };
        if entries.is_empty() {
            return total;
        }
        if cursor > 0 && oldest > cursor + 1 {
            tracing::warn!(
                server = %peer.server,
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
            resolver.resolve(fid).await;
            add_summary(&mut total, &resolver.summary);
            service.note_resolution(&resolver.summary);
            unsettled |= resolver.summary.unsettled > 0;
        }
        if unsettled {
            return total;
        }
        cursor = next;
        if store.set_peer_cursor(volume, peer.replica, cursor).is_err() {
            return total;
        }
    }
}
