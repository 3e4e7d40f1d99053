//! The interleaving simulation: the real per-volume client and the real server service,
//! healing and collection, all on one thread under tokio's paused clock, talking through a
//! simulated network. Every await point is a place where another client's call, a
//! server's healing or a fault may come in between; the seed decides latencies, losses,
//! partitions, crashes of server processes, power losses of server machines (the store
//! on a [`codetta_testkit::CrashDisk`]), crashes of client daemons, steps of a server's
//! wall clock,
//! and every worker's operations.
//!
//! After the faults stop, every node comes back, the clients ship what their logs hold and
//! the servers heal. Then a fresh client per server, cut off from the others, reads every
//! worker's directory and the shared files back from that replica alone: every replica
//! must show the same, and what it shows must meet [`codetta_testkit::dir_check`]'s rules
//! against the workers' records (no acknowledged operation lost, conflicts only as
//! versions a file had) and [`codetta_testkit::shared_files`]' rules against every write
//! to the shared files (every version one some write made, the last write kept when it
//! followed every other).

mod check;
mod client_node;
mod clock;
mod faults;
mod group;
mod net;
mod server_node;
mod worker;

use client_node::ClientNode;
use codetta_client::volume_client::VolumeClient;
use codetta_testkit::shared_files::shared_content;
use codetta_transport::ServerEntry;
use codetta_wire::message::VolumeInfo;
use codetta_wire::update::{CreateHow, NewObject, Op, piece_hashes};
use codetta_wire::{Fid, Name, VolumeId};
use net::Net;
use server_node::ServerNode;
use std::sync::Arc;
use tokio::sync::watch;
use worker::{SharedLog, Worker};

/// Files every worker writes whole.
const SHARED_FILES: usize = 3;

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    pub seed: u64,
    pub servers: usize,
    pub clients: usize,
    pub workers_per_client: usize,
    /// Virtual seconds of work under faults.
    pub fault_secs: u64,
}

impl LiveConfig {
    /// The usual shape: 3 servers, 2 clients with 2 workers each, 20 virtual seconds.
    pub fn from_seed(seed: u64) -> LiveConfig {
        LiveConfig {
            seed,
            servers: 3,
            clients: 2,
            workers_per_client: 2,
            fault_secs: 20,
        }
    }
}

/// What one run did and found.
#[derive(Debug, Default)]
pub struct LiveReport {
    pub acked: u64,
    pub unanswered: u64,
    /// Server processes killed, and server machines that lost power (unsynced writes
    /// lost or torn).
    pub server_crashes: u64,
    pub power_losses: u64,
    /// Power losses that found writes not yet synced (lost or torn).
    pub torn_power_losses: u64,
    pub client_crashes: u64,
    pub partitions: u64,
    /// Partitions that left one server with one client alone (counted in `partitions`).
    pub islands: u64,
    /// Steps of one server's wall clock (up to a minute either way).
    pub clock_steps: u64,
    /// Replicas removed from the volume's group (each drained first), replicas added
    /// back, and changes not confirmed (refused: a drain that could not finish, no
    /// majority; or unanswered: the server the call went to was killed).
    pub replicas_removed: u64,
    pub replicas_added: u64,
    pub group_changes_refused: u64,
    /// Why group changes were not confirmed (the first few).
    pub why_refused: Vec<String>,
    /// Calls the network delivered to a handler.
    pub delivered: u64,
    /// Names compared with the record, and bytes read back (on every replica).
    pub names: u64,
    pub bytes: u64,
    /// Conflict copies in the workers' directories (one writer each: each is reported).
    pub own_conflicts: Vec<String>,
    /// Writes to the shared files, those acknowledged, and the conflict copies of the
    /// shared files (concurrent writers: expected).
    pub shared_writes: u64,
    pub shared_acked: u64,
    pub shared_conflicts: usize,
    pub failures: Vec<String>,
    /// A digest of every worker's history, the calls delivered and what each replica
    /// showed: two runs of one seed must give the same.
    pub trace: String,
    /// The virtual time the run took, in ms.
    pub virtual_ms: u64,
}

/// Runs one seed on a fresh paused-clock runtime on this thread.
pub fn run(config: LiveConfig) -> anyhow::Result<LiveReport> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    // Which ready branch a `select!` takes (openraft's, the client's) is drawn from the
    // runtime's generator: seeded, when tokio's unstable API is built in (the
    // workspace's `.cargo/config.toml` does).
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(
        &config.seed.to_le_bytes(),
    ));
    #[cfg(not(tokio_unstable))]
    eprintln!(
        "built without --cfg tokio_unstable (RUSTFLAGS replaces .cargo/config.toml's): \
         seed {} may not replay exactly",
        config.seed
    );
    let runtime = builder.build()?;
    runtime.block_on(async {
        codetta_transport::run_blocking_inline();
        codetta_wire::entropy::seed_this_thread(config.seed);
        clock::start_run();
        World::new(config)?.run().await
    })
}

const VOLUME: VolumeId = VolumeId(7);
const VOLUME_NAME: &str = "sim";

struct World {
    config: LiveConfig,
    net: Net,
    _dir: tempfile::TempDir,
    servers: Vec<ServerNode>,
    clients: Vec<ClientNode>,
    /// What each client's workers work through (none while its daemon is down).
    handles: Vec<watch::Sender<Option<Arc<VolumeClient>>>>,
    volume: VolumeInfo,
    entries: Vec<ServerEntry>,
    report: LiveReport,
    /// What the replicas showed at the read-back, digested (part of the trace).
    views_digest: blake3::Hasher,
    /// Replicas removed and added as faults.
    group: group::GroupChanges,
}

fn temp_base() -> std::path::PathBuf {
    if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

impl World {
    fn new(config: LiveConfig) -> anyhow::Result<World> {
        let dir = tempfile::tempdir_in(temp_base())?;
        let entries: Vec<ServerEntry> = (0..config.servers)
            .map(|i| ServerEntry {
                name: format!("s{i}"),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            })
            .collect();
        // What the clients start with: the catalogue makes the volume at the run's start.
        let volume = VolumeInfo {
            id: VOLUME,
            name: VOLUME_NAME.into(),
            root: Fid::root(VOLUME),
            vsg: Vec::new(),
            epoch: 0,
            addrs: Vec::new(),
        };
        let servers = (0..entries.len())
            .map(|i| ServerNode::new(i, &entries))
            .collect();
        let clients = (0..config.clients)
            .map(|c| ClientNode::new(&format!("c{c}"), dir.path().join(format!("c{c}")), &entries))
            .collect();
        let handles = (0..config.clients)
            .map(|_| watch::Sender::new(None))
            .collect();
        Ok(World {
            net: Net::new(config.seed),
            config,
            _dir: dir,
            servers,
            clients,
            handles,
            volume,
            entries,
            report: LiveReport::default(),
            views_digest: blake3::Hasher::new(),
            group: group::GroupChanges::default(),
        })
    }

    async fn run(mut self) -> anyhow::Result<LiveReport> {
        for s in &mut self.servers {
            s.start(&self.net).await?;
        }
        self.volume = self.create_volume().await?;
        for c in 0..self.clients.len() {
            self.clients[c].start(&self.net, &self.volume).await?;
            self.handles[c].send_replace(self.clients[c].running.clone());
        }
        let (workers, shared_dir, initial, log) = self.make_workers().await?;
        let until = clock::elapsed_ms() + self.config.fault_secs * 1000;
        let mut running = Vec::new();
        for w in workers {
            let rx = self.handles[w.client].subscribe();
            running.push(tokio::spawn(w.run(rx, until)));
        }
        self.faults(until).await;
        self.calm().await?;
        let mut workers = Vec::new();
        for r in running {
            workers.push(r.await?);
        }
        self.settle().await;
        let writes = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.check(&workers, shared_dir, &initial, &writes).await?;
        let mut trace = std::mem::take(&mut self.views_digest);
        trace.update(&self.net.delivered().to_le_bytes());
        // `CODETTA_LIVE_GREP=TEXT`: the workers' operations whose line holds TEXT (a name
        // a failure gives), to follow it.
        let grep = std::env::var("CODETTA_LIVE_GREP").ok();
        for w in &workers {
            for line in w
                .history
                .iter()
                .filter(|l| grep.as_ref().is_some_and(|g| l.contains(g.as_str())))
            {
                eprintln!("{}: {line}", w.label);
            }
            self.report.acked += w.acked;
            self.report.unanswered += w.unanswered;
            for line in &w.history {
                trace.update(line.as_bytes());
            }
        }
        self.report.trace = trace.finalize().to_hex()[..16].to_string();
        self.report.delivered = self.net.delivered();
        self.report.virtual_ms = clock::elapsed_ms();
        for c in &mut self.clients {
            c.crash(&self.net);
        }
        for s in &mut self.servers {
            s.crash(&self.net);
        }
        Ok(self.report)
    }

    /// Makes `name` in `dir` (a directory when `dir_mode`, else an empty file) through
    /// `vc`, while nothing fails.
    async fn make(vc: &VolumeClient, dir: Fid, name: &str, is_dir: bool) -> anyhow::Result<Fid> {
        let fid = vc.alloc_fid(VOLUME)?;
        let name_ = Name::new(name)?;
        let op = if is_dir {
            Op::Mkdir {
                dir,
                name: name_,
                fid,
                new: NewObject {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                },
            }
        } else {
            Op::Create {
                dir,
                name: name_,
                fid,
                new: NewObject {
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                how: CreateHow::Guarded,
            }
        };
        vc.submit_and_wait(op, bytes::Bytes::new())
            .await
            .map_err(|e| anyhow::anyhow!("making {name}: {e}"))?;
        Ok(fid)
    }

    /// The shared files (with their first contents) and each worker's directory, made
    /// while nothing fails.
    async fn make_workers(
        &mut self,
    ) -> anyhow::Result<(Vec<Worker>, Fid, Vec<[u8; 32]>, SharedLog)> {
        let Some(first) = self.clients.first().and_then(|c| c.running.clone()) else {
            anyhow::bail!("no client is running");
        };
        let root = self.volume.root;
        let shared_dir = Self::make(&first, root, "shared", true).await?;
        let mut shared = Vec::new();
        let mut initial = Vec::new();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(self.config.seed);
        for i in 0..SHARED_FILES {
            let fid = Self::make(&first, shared_dir, &format!("s{i}"), false).await?;
            let data = bytes::Bytes::from(shared_content("set-up", i as u64, &mut rng));
            let op = Op::Write {
                fid,
                offset: 0,
                len: u32::try_from(data.len())?,
                hashes: piece_hashes(0, &data),
            };
            initial.push(*blake3::hash(&data).as_bytes());
            first
                .submit_and_wait(op, data)
                .await
                .map_err(|e| anyhow::anyhow!("writing s{i}: {e}"))?;
            shared.push(fid);
        }
        let log = SharedLog::default();
        let mut workers = Vec::new();
        for c in 0..self.config.clients {
            let Some(vc) = self.clients[c].running.clone() else {
                anyhow::bail!("client {c} is not running");
            };
            for w in 0..self.config.workers_per_client {
                let label = format!("w{c}-{w}");
                let fid = Self::make(&vc, root, &label, true).await?;
                let seed = self.config.seed.wrapping_mul(1_000_003) ^ (c * 100 + w) as u64;
                workers.push(Worker::new(
                    label,
                    c,
                    fid,
                    seed,
                    shared.clone(),
                    log.clone(),
                ));
            }
        }
        Ok((workers, shared_dir, initial, log))
    }
}
