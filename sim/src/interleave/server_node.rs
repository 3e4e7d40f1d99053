//! One simulated server: the real store, service, healing and collection, reached through
//! the simulated network. The store is on a [`CrashDisk`]. A crash ends every task of the
//! server wherever it waits; a process crash keeps every write the store made, a power
//! loss only what it synced (and, of the writes since, nothing, all or torn parts, as the
//! seed says). A restart opens the store again from what is left.

use super::clock::SimClock;
use super::net::Net;
use codetta_certs::Role;
use codetta_server::collect::CollectPolicy;
use codetta_server::context::ServerContext;
use codetta_server::peers::Peers;
use codetta_server::service::ServerService;
use codetta_server::store::{Store, StoreOptions};
use codetta_testkit::CrashDisk;
use codetta_transport::ServerEntry;
use codetta_wire::Time;
use codetta_wire::message::VolumeInfo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often healing and collection run on each server.
const HEAL_EVERY: Duration = Duration::from_millis(500);
const COLLECT_EVERY: Duration = Duration::from_secs(2);
/// Deadline of a server's calls to its peers.
pub(crate) const PEER_DEADLINE: Duration = Duration::from_secs(2);

/// A server and, while it runs, its tasks.
pub(crate) struct ServerNode {
    pub(crate) name: String,
    disk: CrashDisk,
    pub(crate) clock: Arc<SimClock>,
    running: Option<Running>,
    /// Every server's name and (unused) address, for the peer links.
    others: Vec<ServerEntry>,
}

struct Running {
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerNode {
    /// A server `name` with an empty disk, one of `all`.
    pub(crate) fn new(name: &str, all: &[ServerEntry]) -> ServerNode {
        ServerNode {
            name: name.to_string(),
            disk: CrashDisk::default(),
            clock: Arc::new(SimClock::default()),
            running: None,
            others: all.iter().filter(|e| e.name != name).cloned().collect(),
        }
    }

    /// Creates this server's replica of `volume`, as replica `member` of it.
    pub(crate) fn create_replica(&self, volume: &VolumeInfo, member: usize) -> anyhow::Result<()> {
        let store = self.open_store()?;
        let replica = volume.vsg[member].replica;
        store
            .create_replica(volume, replica, Time { secs: 1, nanos: 0 })
            .map_err(|e| anyhow::anyhow!("creating a replica on {}: {e}", self.name))?;
        Ok(())
    }

    fn open_store(&self) -> anyhow::Result<Store> {
        let options = StoreOptions::default();
        let clock: Arc<dyn codetta_server::clock::Clock> = self.clock.clone();
        Store::open_with_backend(self.disk.clone(), options, clock)
            .map_err(|e| anyhow::anyhow!("opening the store of {}: {e}", self.name))
    }

    /// Whether the server runs.
    pub(crate) fn is_up(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the server (its store opened again after a crash).
    pub(crate) fn start(&mut self, net: &Net) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let store = Arc::new(self.open_store()?);
        net.begin_life(&self.name);
        let make = net.link_maker(&self.name, Role::Server, PEER_DEADLINE);
        let peers = Arc::new(Peers::making(&self.others, make));
        let ctx = ServerContext::new(store.clone(), &self.name, peers);
        // Healing's pauses follow the real time each piece of work took, which no seed
        // decides (work takes no virtual time): off here.
        ctx.set_heal_pause(0.0);
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(codetta_server::heal::run(
                ctx.clone(),
                HEAL_EVERY,
                stop_rx.clone(),
            )),
            tokio::spawn(codetta_server::collect::run(
                ctx.clone(),
                COLLECT_EVERY,
                CollectPolicy {
                    min_age_ms: 5_000,
                    horizon_ms: 600_000,
                },
                stop_rx,
            )),
        ];
        net.serve(&self.name, Arc::new(ServerService::new(ctx)));
        self.running = Some(Running { store, stop, tasks });
        Ok(())
    }

    /// Kills the server's process: every task ends where it waits; the disk keeps every
    /// write the store made (the operating system had them).
    pub(crate) fn crash(&mut self, net: &Net) {
        // The image as the kill found it, before anything the dying tasks do.
        let image = self.disk.image();
        self.stop(net);
        self.disk = CrashDisk::holding(image);
    }

    /// The server's machine loses power: as [`ServerNode::crash`], and the disk keeps
    /// only what was synced, with the writes since chosen by `seed`. How many writes were
    /// not synced.
    pub(crate) fn lose_power(&mut self, net: &Net, seed: u64) -> usize {
        let unsynced = self.disk.unsynced();
        let image = self.disk.after_power_loss(seed);
        self.stop(net);
        self.disk = CrashDisk::holding(image);
        unsynced
    }

    /// The disk fails at its `after`-th I/O from now, and at every one after.
    pub(crate) fn arm_disk_failure(&self, after: u64) {
        self.disk.fail_after(after);
    }

    /// No disk failure is coming.
    pub(crate) fn disarm_disk(&self) {
        self.disk.disarm();
    }

    /// Whether the disk has failed (the machine is due a power loss).
    pub(crate) fn disk_failed(&self) -> bool {
        self.disk.failed()
    }

    /// Ends every task of the server. The tasks may still hold the old disk until they
    /// are dropped; whatever they write there after this is lost with it.
    fn stop(&mut self, net: &Net) {
        net.crash(&self.name);
        if let Some(running) = self.running.take() {
            for t in &running.tasks {
                t.abort();
            }
            drop(running.stop);
            drop(running.store);
        }
    }
}
