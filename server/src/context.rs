//! What every part of a running server shares: its store, its name, its links to the other
//! servers, its catalogue node, how far its replicas follow the catalogue, its healing pacer
//! and its resolution totals. The request handler, administration, healing, collection and
//! volume reconciliation all work through it, so none of them imports another.

use crate::catalogue::{Catalogue, QuicTransport};
use crate::pacing::Pacer;
use crate::peer_error::PeerResult;
use crate::peers::Peers;
use crate::resolver::Resolver;
use crate::resolver::group::{GroupReplica, members_of};
use crate::store::Store;
use crate::volatile::Volatile;
use codetta_wire::message::ResolveSummary;
use codetta_wire::{Fid, FsError, ReplicaId, VolumeId};
use std::sync::Arc;

/// A running server's shared state (cheap to clone: every field is shared).
#[derive(Clone)]
pub struct ServerContext {
    store: Arc<Store>,
    /// Promises and leases (kept beside the store, in memory).
    volatile: Arc<Volatile>,
    name: Arc<str>,
    peers: Arc<Peers>,
    /// What resolution coordinated here has done since start.
    resolved: Arc<std::sync::Mutex<ResolveSummary>>,
    /// This server's catalogue node (set once the daemon started it).
    catalogue: Arc<std::sync::OnceLock<Arc<Catalogue<QuicTransport>>>>,
    /// The catalogue epoch this server's replicas have caught up with.
    reconciled: Arc<tokio::sync::watch::Sender<u64>>,
    /// Paces the resolutions this server's healing coordinates while clients update it
    /// (a resolution a client asks for is not paced).
    pacer: Pacer,
}

/// How long a call carrying a newer epoch than this server has applied waits for it.
const EPOCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl ServerContext {
    /// A server named `name` serving `store`, reaching the others through `peers`.
    pub fn new(store: Arc<Store>, name: &str, peers: Arc<Peers>) -> ServerContext {
        ServerContext {
            volatile: Volatile::new(store.clock().clone()),
            store,
            name: name.into(),
            peers,
            resolved: Arc::default(),
            catalogue: Arc::default(),
            reconciled: Arc::new(tokio::sync::watch::Sender::new(0)),
            pacer: Pacer::default(),
        }
    }

    /// Healing coordinated here pauses `pause` times each piece's time while clients
    /// update this server (see [`crate::pacing`]).
    pub fn set_heal_pause(&self, pause: f64) {
        self.pacer.set_pause(pause);
    }

    /// The pacer of the healing coordinated here.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Records that this server's replicas follow the catalogue up to `epoch`.
    pub fn note_reconciled(&self, epoch: u64) {
        self.reconciled.send_if_modified(|e| {
            let newer = epoch > *e;
            *e = (*e).max(epoch);
            newer
        });
    }

    /// Waits (a little) until this server's replicas follow the catalogue at `epoch`.
    pub async fn reconciled_to(&self, epoch: u64) -> bool {
        let mut rx = self.reconciled.subscribe();
        tokio::time::timeout(EPOCH_WAIT, rx.wait_for(|e| *e >= epoch))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether a client call made at catalogue `epoch` may go to this server's replica of
    /// `volume`: `StaleEpoch` when the volume's group changed since (the client refreshes),
    /// `UnknownVolume` when the catalogue has no such volume here.
    pub async fn check_epoch(&self, volume: VolumeId, epoch: u64) -> Result<(), FsError> {
        let Some(catalogue) = self.catalogue.get() else {
            return Ok(());
        };
        if *self.reconciled.borrow() < epoch {
            self.reconciled_to(epoch).await;
        }
        let state = catalogue.current();
        let Some(entry) = state.volumes.get(&volume.0) else {
            return Err(FsError::UnknownVolume);
        };
        // Still behind the caller (or the caller names an epoch the volume never had):
        // not served on a group this server cannot confirm; the caller retries.
        if epoch != entry.epoch && *self.reconciled.borrow() < epoch {
            return Err(FsError::StaleEpoch {
                current: entry.epoch,
            });
        }
        if epoch < entry.epoch {
            return Err(FsError::StaleEpoch {
                current: entry.epoch,
            });
        }
        if !entry.vsg.iter().any(|m| *m.server == *self.name) {
            return Err(FsError::UnknownVolume);
        }
        Ok(())
    }

    /// The replicas this server keeps.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The promises and leases this server holds beside its store.
    pub fn volatile(&self) -> &Arc<Volatile> {
        &self.volatile
    }

    /// Every replica of `volume` (this server's first) and this server's replica id.
    pub fn members(&self, volume: VolumeId) -> PeerResult<(Vec<GroupReplica>, ReplicaId)> {
        members_of(&self.store, &self.volatile, &self.peers, &self.name, volume)
    }

    /// Links to the other servers.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// This server's node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds to the resolution totals.
    pub fn note_resolution(&self, s: &ResolveSummary) {
        if let Ok(mut total) = self.resolved.lock() {
            total.add(s);
        }
    }

    /// Makes `catalogue` this server's catalogue node.
    pub fn set_catalogue(&self, catalogue: Arc<Catalogue<QuicTransport>>) {
        let _ = self.catalogue.set(catalogue);
    }

    /// This server's catalogue node, once started.
    pub fn catalogue(&self) -> Option<&Arc<Catalogue<QuicTransport>>> {
        self.catalogue.get()
    }

    /// This server's catalogue node, or `Unavailable` while it has not started.
    pub fn running_catalogue(&self) -> Result<&Arc<Catalogue<QuicTransport>>, FsError> {
        self.catalogue
            .get()
            .ok_or_else(|| FsError::Unavailable("the catalogue is not running here".into()))
    }

    /// Resolution totals since start.
    pub fn resolution_totals(&self) -> ResolveSummary {
        self.resolved.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Resolves `fids` with this server coordinating (grouped by volume).
    pub async fn resolve(&self, fids: Vec<Fid>) -> Result<ResolveSummary, FsError> {
        let mut summary = ResolveSummary::default();
        let mut by_volume: std::collections::BTreeMap<_, Vec<Fid>> = Default::default();
        for fid in fids {
            by_volume.entry(fid.volume).or_default().push(fid);
        }
        for (volume, fids) in by_volume {
            let (members, me) = self.members(volume)?;
            // A client waits for this one: it is not paced.
            let mut resolver = Resolver::new(&members, me).with_clock(self.store.clock().clone());
            resolver.install_delay = self.pacer.install_delay();
            for fid in fids {
                resolver.resolve(fid).await;
            }
            summary.add(&resolver.summary);
        }
        self.note_resolution(&summary);
        Ok(summary)
    }
}
