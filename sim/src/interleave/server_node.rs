//! One simulated server: the real store, service, healing and collection, reached through
//! the simulated network. A crash ends every task of it wherever it waits and drops the
//! store; a restart opens the store again from its file.

use super::clock::SimClock;
use super::net::Net;
use codetta_certs::Role;
use codetta_server::collect::CollectPolicy;
use codetta_server::context::ServerContext;
use codetta_server::peers::Peers;
use codetta_server::service::ServerService;
use codetta_server::store::{Store, StoreOptions};
use codetta_transport::{Link, ServerEntry};
use codetta_wire::Time;
use codetta_wire::message::VolumeInfo;
use std::path::PathBuf;
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
    path: PathBuf,
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
    /// A server `name` keeping its store in `dir`, one of `all`.
    pub(crate) fn new(name: &str, dir: &std::path::Path, all: &[ServerEntry]) -> ServerNode {
        ServerNode {
            name: name.to_string(),
            path: dir.join(format!("{name}.redb")),
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
        Store::open_with_clock(&self.path, options, clock)
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
        let maker_net = net.clone();
        let me = self.name.clone();
        let make: codetta_server::peers::MakeLink = Box::new(move |entry: &ServerEntry| {
            Link::carried(
                entry,
                maker_net.carrier(&me, Role::Server, &entry.name),
                PEER_DEADLINE,
            )
        });
        let peers = Arc::new(Peers::making(&self.others, make));
        let ctx = ServerContext::new(store.clone(), &self.name, peers);
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

    /// Kills the server: every task ends where it waits, nothing is flushed.
    pub(crate) fn crash(&mut self, net: &Net) {
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
