//! This server's replicas follow the catalogue (rule 13): for every volume whose group
//! names this server it holds a replica with the catalogue's replica id and group; a
//! replica the catalogue no longer gives it is retired and deleted in short transactions.
//! Nothing else creates or removes replicas.

use crate::catalogue::CatalogueState;
use crate::context::ServerContext;
use codetta_wire::FsError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Objects deleted per transaction when a retired replica is purged.
const PURGE_STEP: usize = 512;
/// Purge transactions per reconciliation pass (the next pass goes on).
const PURGE_STEPS_PER_PASS: usize = 64;

/// Reconciles this server's replicas with each catalogue it applies, until `stop`.
pub async fn run(ctx: ServerContext, mut stop: watch::Receiver<bool>) {
    let Some(catalogue) = ctx.catalogue().cloned() else {
        return;
    };
    let mut changes = catalogue.subscribe();
    loop {
        let state = changes.borrow_and_update().clone();
        let again = match reconcile(&ctx, state.clone()).await {
            Ok(more) => {
                ctx.note_reconciled(state.epoch);
                more
            }
            Err(e) => {
                tracing::warn!("following the catalogue: {e}");
                true
            }
        };
        let pause = if again {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How long a replica leaving this server may take to hand over what it holds.
const FINAL_DRAIN: Duration = Duration::from_secs(120);

/// The replicas the catalogue no longer gives this server, each drained into a replica
/// that stays: the catalogue already refuses client calls to them, so this settles every
/// update they acknowledged before they left (rule 13: nothing acknowledged is lost with a
/// removed replica). Returns the ones ready to retire, and whether some must wait (a
/// remaining replica unreachable: the data stays here, unserved, until it can be handed
/// over). A volume removed from the catalogue is not drained.
async fn leave(
    ctx: &ServerContext,
    state: &CatalogueState,
) -> Result<(Vec<codetta_wire::VolumeId>, bool), FsError> {
    let store = ctx.store().clone();
    let me = ctx.name().to_string();
    let locals = codetta_transport::off_thread(move || -> Result<Vec<_>, FsError> {
        let mut out = Vec::new();
        for local in store.list_volumes()? {
            let (_, replica) = store.volume_info(local.id)?;
            out.push((local, replica));
        }
        Ok(out)
    })
    .await
    .map_err(|e| FsError::Internal(format!("store task: {e}")))??;
    // A catalogue older than what this store already followed (catalogue.redb lost or
    // replaced while server.redb stayed) must not read as "every replica removed".
    let newest_local = locals.iter().map(|(v, _)| v.epoch).max().unwrap_or(0);
    if state.epoch < newest_local || state.epoch == 0 {
        if newest_local > 0 {
            tracing::warn!(
                catalogue = state.epoch,
                replicas = newest_local,
                "the catalogue here is older than the replicas; retiring nothing until it catches up"
            );
        }
        return Ok((Vec::new(), false));
    }
    let mut ready = Vec::new();
    let mut waiting = false;
    for (local, replica) in locals {
        let entry = state.volumes.get(&local.id.0);
        let stays =
            entry.is_some_and(|e| e.vsg.iter().any(|m| m.server == me && m.replica == replica));
        if stays || (entry.is_none() && local.epoch == 0) {
            continue;
        }
        let Some(entry) = entry else {
            ready.push(local.id);
            continue;
        };
        let (members, mine) = ctx.members(local.id)?;
        let remaining: Vec<_> = entry
            .vsg
            .iter()
            .map(|m| m.replica)
            .filter(|r| *r != mine)
            .collect();
        let mut handed = remaining.is_empty();
        for peer in remaining {
            if !members
                .iter()
                .any(|m| crate::resolver::ReplicaAccess::replica(m) == peer)
            {
                continue;
            }
            let drained = tokio::time::timeout(
                FINAL_DRAIN,
                crate::heal::drain(&members, mine, local.id, peer),
            )
            .await;
            if let Ok(Ok((summary, left))) = drained {
                ctx.note_resolution(&summary);
                if left.is_empty() {
                    handed = true;
                    break;
                }
            }
        }
        if handed {
            tracing::info!(volume = %local.name, "replica left the group; handed over what it held");
            ready.push(local.id);
        } else {
            tracing::warn!(volume = %local.name, "replica left the group but could not hand over what it holds yet; keeping it");
            waiting = true;
        }
    }
    Ok((ready, waiting))
}

/// One pass: `Ok(true)` when work is left (a purge under way).
async fn reconcile(ctx: &ServerContext, state: Arc<CatalogueState>) -> Result<bool, FsError> {
    let store = ctx.store().clone();
    let me = ctx.name().to_string();
    for server in state.servers.values().filter(|s| s.name != me) {
        ctx.peers().ensure(&server.name, &server.addr);
    }
    // Replicas leaving this server first hand what they hold to one that stays.
    let (leaving, drained_more) = leave(ctx, &state).await?;
    for volume in leaving {
        let store = store.clone();
        codetta_transport::off_thread(move || store.retire_replica(volume))
            .await
            .map_err(|e| FsError::Internal(format!("store task: {e}")))??;
    }
    codetta_transport::off_thread(move || {
        let mut more = drained_more;
        // Group changes of the replicas that stay (those that leave are `leave`'s).
        for local in store.list_volumes()? {
            let (_, replica) = store.volume_info(local.id)?;
            if let Some(e) = state.volumes.get(&local.id.0)
                && e.vsg.iter().any(|m| m.server == me && m.replica == replica)
                && e.epoch > local.epoch
            {
                store.set_group_knowing(local.id, &e.vsg, e.epoch, state.departed(local.id))?;
                tracing::info!(volume = %e.name, epoch = e.epoch, members = e.vsg.len(), "group changed");
            }
        }
        let purging = store.purging()?;
        for volume in &purging {
            let mut steps = 0;
            while store.purge_step(*volume, PURGE_STEP)? {
                steps += 1;
                if steps == PURGE_STEPS_PER_PASS {
                    more = true;
                    break;
                }
            }
        }
        let still_purging = store.purging()?;
        for entry in state.volumes.values() {
            let Some(member) = entry.vsg.iter().find(|m| m.server == me) else {
                continue;
            };
            if still_purging.contains(&entry.id) {
                more = true;
                continue;
            }
            if store.volume_info(entry.id).is_ok() {
                continue;
            }
            let info = state.volume_info(entry);
            store.create_replica_knowing(
                &info,
                member.replica,
                entry.created,
                state.departed(entry.id),
            )?;
        }
        Ok(more)
    })
    .await
    .map_err(|e| FsError::Internal(format!("store task: {e}")))?
}
