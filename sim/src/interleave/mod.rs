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

mod client_node;
mod clock;
mod net;
mod server_node;
mod worker;

use client_node::ClientNode;
use codetta_client::volume_client::VolumeClient;
use codetta_testkit::dir_check::{Found, Report, compare_dir};
use codetta_testkit::dir_model::State;
use codetta_testkit::shared_files::{SharedWrite, compare_shared, shared_content};
use codetta_transport::ServerEntry;
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::update::{CreateHow, NewObject, Op, piece_hashes};
use codetta_wire::{Fid, MAX_READ, Name, ReplicaId, VolumeId};
use net::{Net, Weather};
use server_node::ServerNode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
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
    pub client_crashes: u64,
    pub partitions: u64,
    /// Steps of one server's wall clock (up to a minute either way).
    pub clock_steps: u64,
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
    /// A digest of every worker's history: two runs of one seed must give the same.
    pub trace: String,
    /// The virtual time the run took, in ms.
    pub virtual_ms: u64,
}

/// Runs one seed on a fresh paused-clock runtime on this thread.
pub fn run(config: LiveConfig) -> anyhow::Result<LiveReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        codetta_transport::run_blocking_inline();
        clock::start_run();
        World::new(config)?.run().await
    })
}

const VOLUME: VolumeId = VolumeId(7);

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
        let volume = VolumeInfo {
            id: VOLUME,
            name: "sim".into(),
            root: Fid::root(VOLUME),
            vsg: entries
                .iter()
                .enumerate()
                .map(|(i, e)| ReplicaMember {
                    replica: ReplicaId(1000 + i as u64),
                    server: e.name.clone(),
                })
                .collect(),
            epoch: 0,
            addrs: Vec::new(),
        };
        let servers = entries
            .iter()
            .map(|e| ServerNode::new(&e.name, &entries))
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
        })
    }

    async fn run(mut self) -> anyhow::Result<LiveReport> {
        for (i, s) in self.servers.iter_mut().enumerate() {
            s.create_replica(&self.volume, i)?;
            s.start(&self.net)?;
        }
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
        let mut trace = blake3::Hasher::new();
        for w in &workers {
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
            c.crash();
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

    /// Seeded faults until the virtual time `until`.
    async fn faults(&mut self, until: u64) {
        while clock::elapsed_ms() < until {
            let pause = 200 + self.net.draw(1800);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            match self.net.draw(100) {
                0..=9 => {
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    if self.servers[s].is_up() {
                        self.servers[s].crash(&self.net);
                        self.report.server_crashes += 1;
                    }
                }
                10..=14 => {
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    if self.servers[s].is_up() {
                        let seed = self.net.draw(u64::MAX);
                        self.servers[s].lose_power(&self.net, seed);
                        self.report.power_losses += 1;
                    }
                }
                15..=34 => {
                    for s in &mut self.servers {
                        if !s.is_up() {
                            // A store an aborted task still holds opens on a later try.
                            let _ = s.start(&self.net);
                        }
                    }
                }
                35..=44 => {
                    let c = self.net.draw(self.clients.len() as u64) as usize;
                    if self.clients[c].running.is_some() {
                        self.handles[c].send_replace(None);
                        self.clients[c].crash();
                        self.report.client_crashes += 1;
                    }
                }
                45..=59 => self.restart_clients().await,
                60..=74 => {
                    let a = self.node_name(self.net.draw(100));
                    let b = format!("s{}", self.net.draw(self.servers.len() as u64));
                    if a != b {
                        self.net.cut(&a, &b);
                        self.report.partitions += 1;
                    }
                }
                75..=89 => self.net.heal_all(),
                90..=94 => {
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    let by = i64::try_from(self.net.draw(120_000)).unwrap_or(0) - 60_000;
                    self.servers[s].clock.step(by);
                    self.report.clock_steps += 1;
                }
                _ => {
                    let loss = self.net.draw(6) as f64 / 100.0;
                    let latency = Duration::from_millis(1 + self.net.draw(30));
                    self.net.set_weather(Weather { loss, latency });
                }
            }
        }
    }

    /// A node's name from a draw: a client or a server.
    fn node_name(&self, draw: u64) -> String {
        let n = (self.clients.len() + self.servers.len()) as u64;
        let i = (draw % n) as usize;
        if i < self.clients.len() {
            self.clients[i].name.clone()
        } else {
            self.servers[i - self.clients.len()].name.clone()
        }
    }

    async fn restart_clients(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].running.is_none()
                && self.clients[c].start(&self.net, &self.volume).await.is_ok()
            {
                self.handles[c].send_replace(self.clients[c].running.clone());
            }
        }
    }

    /// Faults end: links heal, the weather calms, every node comes back.
    async fn calm(&mut self) -> anyhow::Result<()> {
        self.net.heal_all();
        self.net.set_weather(Weather {
            loss: 0.0,
            latency: Duration::from_millis(2),
        });
        for _ in 0..50 {
            for s in &mut self.servers {
                if !s.is_up() {
                    let _ = s.start(&self.net);
                }
            }
            self.restart_clients().await;
            let all = self.servers.iter().all(ServerNode::is_up)
                && self.clients.iter().all(|c| c.running.is_some());
            if all {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the nodes did not all come back")
    }

    /// Waits until every client shipped its log, then lets healing run.
    async fn settle(&mut self) {
        for _ in 0..600 {
            let backlog: usize = self
                .clients
                .iter()
                .filter_map(|c| c.running.as_ref())
                .map(|vc| vc.backlog())
                .sum();
            if backlog == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }

    /// Reads every worker's directory from each replica alone and compares.
    async fn check(
        &mut self,
        workers: &[Worker],
        shared_dir: Fid,
        initial: &[[u8; 32]],
        writes: &[SharedWrite],
    ) -> anyhow::Result<()> {
        let mut labels: Vec<String> = workers.iter().map(|w| w.label.clone()).collect();
        labels.push("shared".to_string());
        let mut dirs: Vec<Fid> = workers.iter().map(|w| w.dir).collect();
        dirs.push(shared_dir);
        let mut first: Option<(String, Vec<BTreeMap<String, Found>>)> = None;
        for s in 0..self.servers.len() {
            let server = self.entries[s].name.clone();
            let name = format!("check-{server}");
            for other in &self.entries {
                if other.name != server {
                    self.net.cut(&name, &other.name);
                }
            }
            let mut checker = ClientNode::new(&name, self._dir.path().join(&name), &self.entries);
            checker.start(&self.net, &self.volume).await?;
            let Some(vc) = checker.running.clone() else {
                anyhow::bail!("the checker did not start");
            };
            let mut views = Vec::new();
            for (dir, label) in dirs.iter().zip(&labels) {
                let found = self.read_dir(&vc, *dir, label).await;
                views.push(found);
            }
            checker.crash();
            match &first {
                None => first = Some((server, views)),
                Some((first_server, first_views)) => {
                    for (label, (a, b)) in labels.iter().zip(first_views.iter().zip(&views)) {
                        let differ = differences(a, b);
                        if !differ.is_empty() {
                            self.report.failures.push(format!(
                                "{label}: replicas differ ({first_server} against {server}): {}",
                                differ.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        if let Some((_, views)) = first {
            let mut report = Report::default();
            for (w, found) in workers.iter().zip(&views) {
                compare_dir(found, &w.model, &w.label, &mut report);
            }
            if let Some(found) = views.last() {
                compare_shared(found, initial, writes, &mut report);
            }
            self.report.shared_conflicts = report.shared_conflicts;
            self.report.shared_writes = writes.len() as u64;
            self.report.shared_acked = writes.iter().filter(|w| w.acked).count() as u64;
            self.report.names += report.names;
            self.report.own_conflicts.extend(report.own_conflicts);
            self.report.failures.extend(report.failures);
        }
        Ok(())
    }

    async fn read_dir(
        &mut self,
        vc: &VolumeClient,
        dir: Fid,
        label: &str,
    ) -> BTreeMap<String, Found> {
        let mut out = BTreeMap::new();
        let mut cookie = 0;
        loop {
            let (entries, eof) = match vc.readdir(&dir, cookie, 512, false).await {
                Ok(page) => page,
                Err(e) => {
                    self.report.failures.push(format!("{label}: listing: {e}"));
                    return out;
                }
            };
            for entry in &entries {
                match read_file(vc, &entry.fid).await {
                    Ok((mode, data)) => {
                        self.report.bytes += data.len() as u64;
                        out.insert(
                            entry.name.to_string(),
                            Found {
                                fileid: entry.fid.vnode ^ (u64::from(entry.fid.unique) << 40),
                                state: State::of(&data, mode & 0o7777),
                            },
                        );
                    }
                    Err(e) => self
                        .report
                        .failures
                        .push(format!("{label}/{}: reading: {e}", entry.name)),
                }
            }
            match entries.last() {
                Some(last) if !eof => cookie = last.cookie,
                _ => return out,
            }
        }
    }
}

/// Where two replicas' views of one directory differ (at most 10 names).
fn differences(a: &BTreeMap<String, Found>, b: &BTreeMap<String, Found>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| match (a.get(n), b.get(n)) {
            (Some(x), Some(y)) if x.state == y.state => None,
            (Some(_), Some(_)) => Some(format!("{n} holds other bytes or mode")),
            (Some(_), None) => Some(format!("{n} only on the first")),
            (None, _) => Some(format!("{n} only on the second")),
        })
        .take(10)
        .collect()
}

/// A file's mode and whole contents.
async fn read_file(
    vc: &VolumeClient,
    fid: &Fid,
) -> Result<(u32, Vec<u8>), codetta_client::error::ClientError> {
    let attrs = vc.getattr(fid).await?;
    let mut data = Vec::new();
    loop {
        let (_, chunks, eof) = vc.read(fid, data.len() as u64, MAX_READ).await?;
        let before = data.len();
        for c in chunks {
            data.extend_from_slice(&c);
        }
        if eof || data.len() == before {
            break;
        }
    }
    data.truncate(usize::try_from(attrs.size).unwrap_or(usize::MAX));
    Ok((attrs.mode, data))
}
