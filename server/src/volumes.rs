//! This server's replicas follow the catalogue (rule 13): for every volume whose group
//! names this server it holds a replica with the catalogue's replica id and group; a
//! replica the catalogue no longer gives it is retired and deleted in short transactions.
//! Nothing else creates or removes replicas.

use crate::catalogue::{CatalogueState, VolumeEntry};
use crate::service::ServerService;
use codetta_wire::FsError;
use codetta_wire::message::VolumeInfo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Objects deleted per transaction when a retired replica is purged.
const PURGE_STEP: usize = 512;
/// Purge transactions per reconciliation pass (the next pass goes on).
const PURGE_STEPS_PER_PASS: usize = 64;

/// The volume as clients and replicas see it, with the servers' addresses.
pub fn volume_info(state: &CatalogueState, entry: &VolumeEntry) -> VolumeInfo {
    VolumeInfo {
        id: entry.id,
        name: entry.name.clone(),
        root: entry.root,
        vsg: entry.vsg.clone(),
        epoch: entry.epoch,
        addrs: entry
            .vsg
            .iter()
            .filter_map(|m| {
                state
                    .servers
                    .get(&m.server)
                    .map(|s| (s.name.clone(), s.addr.clone()))
            })
            .collect(),
    }
}

/// Reconciles this server's replicas with each catalogue it applies, until `stop`.
pub async fn run(service: ServerService, mut stop: watch::Receiver<bool>) {
    let Some(catalogue) = service.catalogue().cloned() else {
        return;
    };
    let mut changes = catalogue.subscribe();
    loop {
        let state = changes.borrow_and_update().clone();
        let again = match reconcile(&service, state.clone()).await {
            Ok(more) => {
                service.note_reconciled(state.epoch);
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

/// One pass: `Ok(true)` when work is left (a purge under way).
async fn reconcile(service: &ServerService, state: Arc<CatalogueState>) -> Result<bool, FsError> {
    let store = service.store().clone();
    let me = service.name().to_string();
    for server in state.servers.values().filter(|s| s.name != me) {
        service.peers().ensure(&server.name, &server.addr);
    }
    tokio::task::spawn_blocking(move || {
        let mut more = false;
        let newest_local = store
            .list_volumes()?
            .iter()
            .map(|v| v.epoch)
            .max()
            .unwrap_or(0);
        // A catalogue older than what this store already followed (catalogue.redb lost or
        // replaced while server.redb stayed): retire nothing until it has caught up.
        let may_retire = state.epoch >= newest_local && state.epoch > 0;
        for local in store.list_volumes()? {
            let (_, replica) = store.volume_info(local.id)?;
            let entry = state.volumes.get(&local.id.0);
            let keep = entry
                .is_some_and(|e| e.vsg.iter().any(|m| m.server == me && m.replica == replica));
            match entry {
                Some(e) if keep => {
                    if e.epoch > local.epoch {
                        store.set_group(local.id, &e.vsg, e.epoch)?;
                        tracing::info!(volume = %e.name, epoch = e.epoch, members = e.vsg.len(), "group changed");
                    }
                }
                None if local.epoch == 0 => {
                    // Made outside the catalogue (tests driving a store directly): not ours
                    // to remove.
                }
                _ if may_retire => store.retire_replica(local.id)?,
                _ => {
                    tracing::warn!(
                        volume = %local.name,
                        catalogue = state.epoch,
                        replica = local.epoch,
                        "the catalogue here is older than this replica; waiting for it to catch up"
                    );
                }
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
            let info = volume_info(&state, entry);
            store.create_replica(&info, member.replica, entry.created)?;
        }
        Ok(more)
    })
    .await
    .map_err(|e| FsError::Storage(e.to_string()))?
}
