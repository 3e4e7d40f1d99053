//! Layouts of the catalogue's applied state that older servers wrote: read once (at open,
//! or in a snapshot from a server not yet upgraded) and turned into today's. postcard is
//! not self-describing, so a field added at the end needs the layout without it.

use super::state::{CatalogueState, ServerEntry, VolumeEntry};
use codetta_wire::VolumeId;
use serde::Deserialize;
use std::collections::BTreeMap;

/// [`CatalogueState`] before it listed departed replicas (ALPN `codetta/6` and earlier).
#[derive(Deserialize)]
pub(super) struct StateWithoutDeparted {
    epoch: u64,
    servers: BTreeMap<String, ServerEntry>,
    volumes: BTreeMap<u32, VolumeEntry>,
    root_volume: Option<VolumeId>,
    revoked: BTreeMap<String, String>,
}

impl From<StateWithoutDeparted> for CatalogueState {
    /// No departed replicas: the servers' own stores still list those they saw leave.
    fn from(old: StateWithoutDeparted) -> CatalogueState {
        CatalogueState {
            epoch: old.epoch,
            servers: old.servers,
            volumes: old.volumes,
            root_volume: old.root_volume,
            revoked: old.revoked,
            departed: BTreeMap::new(),
        }
    }
}
