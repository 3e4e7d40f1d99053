//! One simulated client daemon: the real modify log on disk and the real per-volume
//! client, its links carried by the simulated network. A crash stops its tasks wherever
//! they wait and closes its log; a restart opens the log again and ships what it holds.

use super::clock::client_wall;
use super::net::Net;
use codetta_certs::Role;
use codetta_client::cache::CacheLimits;
use codetta_client::link::LinkPool;
use codetta_client::log::ModifyLog;
use codetta_client::volume_client::{VolumeClient, VolumeClientOptions};
use codetta_transport::ServerEntry;
use codetta_wire::message::VolumeInfo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A client's call deadline and JUKEBOX window (the daemon's defaults).
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(2);
const JUKEBOX_WINDOW: Duration = Duration::from_secs(30);

/// A client daemon and, while it runs, its per-volume client.
pub(crate) struct ClientNode {
    pub(crate) name: String,
    dir: PathBuf,
    servers: Vec<ServerEntry>,
    pub(crate) running: Option<Arc<VolumeClient>>,
}

impl ClientNode {
    /// A client `name` keeping its log in `dir`, configured with `servers`.
    pub(crate) fn new(name: &str, dir: PathBuf, servers: &[ServerEntry]) -> ClientNode {
        ClientNode {
            name: name.to_string(),
            dir,
            servers: servers.to_vec(),
            running: None,
        }
    }

    /// Starts the daemon's per-volume client for `volume` (records a previous run left
    /// in the log are shipped first).
    pub(crate) async fn start(&mut self, net: &Net, volume: &VolumeInfo) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let log = ModifyLog::open(&self.dir.join(format!("volume-{}.redb", volume.id.0)))
            .map_err(|e| anyhow::anyhow!("opening the log of {}: {e}", self.name))?;
        net.begin_life(&self.name);
        let make = net.link_maker(&self.name, Role::Client, CALL_DEADLINE);
        let pool = Arc::new(LinkPool::making(&self.servers, make, JUKEBOX_WINDOW));
        let options = VolumeClientOptions {
            log_max_bytes: 64 << 20,
            min_copies: 1,
            cache: CacheLimits::default(),
            append_delay: Duration::ZERO,
            wall_clock: client_wall,
        };
        let vc = VolumeClient::start(Arc::new(log), pool, volume.clone(), options)
            .await
            .map_err(|e| anyhow::anyhow!("starting the client {}: {e}", self.name))?;
        self.running = Some(vc);
        Ok(())
    }

    /// Kills the daemon: its tasks end where they wait, its log is left as it stands, and
    /// what its leftover tasks send goes nowhere.
    pub(crate) fn crash(&mut self, net: &Net) {
        if let Some(vc) = self.running.take() {
            vc.abandon();
        }
        net.begin_life(&self.name);
    }
}
