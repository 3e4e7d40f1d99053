//! One simulated server: the real store, service, healing and collection, reached through
//! the simulated network. The store is on a [`CrashDisk`]. A crash ends every task of the
//! server wherever it waits; a process crash keeps every write the store made, a power
//! loss only what it synced (and, of the writes since, nothing, all or torn parts, as the
//! seed says). A restart opens the store again from what is left. Each server runs its
//! catalogue node (openraft, its log on a disk of its own that loses power with the
//! store's) and follows it: replicas are created, change group and leave as the catalogue
//! says.

use super::clock::SimClock;
use super::net::Net;
use codetta_certs::Role;
use codetta_server::catalogue::storage::CatalogueStorage;
use codetta_server::catalogue::{
    Catalogue, CatalogueNode, CatalogueState, ElectionTimeout, QuicTransport,
};
use codetta_server::collect::CollectPolicy;
use codetta_server::context::ServerContext;
use codetta_server::peers::Peers;
use codetta_server::service::ServerService;
use codetta_server::store::{Store, StoreOptions};
use codetta_testkit::CrashDisk;
use codetta_transport::ServerEntry;
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
    /// Its place among the servers (its elections' timeout follows from it).
    index: usize,
    disk: CrashDisk,
    /// The catalogue's Raft log and state.
    catalogue_disk: CrashDisk,
    pub(crate) clock: Arc<SimClock>,
    running: Option<Running>,
    /// Every server's name and (unused) address, for the peer links.
    others: Vec<ServerEntry>,
}

struct Running {
    store: Arc<Store>,
    catalogue: Arc<Catalogue<QuicTransport>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerNode {
    /// A server `name` with empty disks, `all[index]`.
    pub(crate) fn new(index: usize, all: &[ServerEntry]) -> ServerNode {
        let name = all[index].name.clone();
        ServerNode {
            index,
            disk: CrashDisk::default(),
            catalogue_disk: CrashDisk::default(),
            clock: Arc::new(SimClock::default()),
            running: None,
            others: all.iter().filter(|e| e.name != name).cloned().collect(),
            name,
        }
    }

    /// The catalogue node of a server named `name`.
    pub(crate) fn catalogue_node(name: &str) -> CatalogueNode {
        CatalogueNode {
            name: name.to_string(),
            addr: "127.0.0.1:1".to_string(),
        }
    }

    /// The running catalogue node.
    pub(crate) fn catalogue(&self) -> Option<&Arc<Catalogue<QuicTransport>>> {
        self.running.as_ref().map(|r| &r.catalogue)
    }

    /// The catalogue as this server has applied it, while it runs.
    pub(crate) fn catalogue_state(&self) -> Option<Arc<CatalogueState>> {
        self.catalogue().map(|c| c.current())
    }

    /// Whether the store holds a replica of `volume` at catalogue epoch `epoch` or later.
    pub(crate) fn follows(&self, volume: codetta_wire::VolumeId, epoch: u64) -> bool {
        self.running.as_ref().is_some_and(|r| {
            r.store
                .list_volumes()
                .is_ok_and(|v| v.iter().any(|l| l.id == volume && l.epoch >= epoch))
        })
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

    /// Starts the server (its store and catalogue opened again after a crash).
    pub(crate) async fn start(&mut self, net: &Net) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let store = Arc::new(self.open_store()?);
        let storage = CatalogueStorage::open_with_backend(self.catalogue_disk.clone())
            .map_err(|e| anyhow::anyhow!("opening the catalogue of {}: {e:#}", self.name))?;
        net.begin_life(&self.name);
        let make = net.link_maker(&self.name, Role::Server, PEER_DEADLINE);
        let peers = Arc::new(Peers::making(&self.others, make));
        // openraft draws each election's timeout from an unseeded generator: each server
        // gets a range of one value instead, a different one each.
        let min_ms = 1000 + 300 * self.index as u64;
        let timeout = ElectionTimeout {
            min_ms,
            max_ms: min_ms + 1,
        };
        let catalogue = Catalogue::start_on(
            Self::catalogue_node(&self.name),
            storage,
            Arc::new(QuicTransport::new(peers.clone())),
            timeout,
        )
        .await
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("starting the catalogue of {}: {e:#}", self.name))?;
        let ctx = ServerContext::new(store.clone(), &self.name, peers);
        ctx.set_catalogue(catalogue.clone());
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
                stop_rx.clone(),
            )),
            tokio::spawn(codetta_server::volumes::run(ctx.clone(), stop_rx)),
        ];
        net.serve(&self.name, Arc::new(ServerService::new(ctx)));
        self.running = Some(Running {
            store,
            catalogue,
            stop,
            tasks,
        });
        Ok(())
    }

    /// Kills the server's process: every task ends where it waits; the disk keeps every
    /// write the store made (the operating system had them).
    pub(crate) fn crash(&mut self, net: &Net) {
        // The images as the kill found them, before anything the dying tasks do.
        let image = self.disk.image();
        let catalogue = self.catalogue_disk.image();
        self.stop(net);
        self.disk = CrashDisk::holding(image);
        self.catalogue_disk = CrashDisk::holding(catalogue);
    }

    /// The server's machine loses power: as [`ServerNode::crash`], and the disk keeps
    /// only what was synced, with the writes since chosen by `seed`. How many writes were
    /// not synced.
    pub(crate) fn lose_power(&mut self, net: &Net, seed: u64) -> usize {
        let unsynced = self.disk.unsynced() + self.catalogue_disk.unsynced();
        let image = self.disk.after_power_loss(seed);
        let catalogue = self.catalogue_disk.after_power_loss(seed.rotate_left(17));
        self.stop(net);
        self.disk = CrashDisk::holding(image);
        self.catalogue_disk = CrashDisk::holding(catalogue);
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
            // openraft's own tasks are not ours to abort: stop them (what they still
            // write goes to the old disk, what they send goes nowhere).
            let catalogue = running.catalogue;
            tokio::spawn(async move { catalogue.shutdown().await });
        }
    }
}
