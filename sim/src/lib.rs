//! A deterministic simulation of replication: no sockets, no sleeps, one seeded random
//! scheduler. It drives the production state machines — the client's write-all
//! bookkeeping ([`Shipping`]), the server's store ([`Store::ship`], views, installs) and
//! resolution ([`Resolver`], [`heal::follow`]) — with messages passed in memory, and injects
//! the faults a real cluster sees: lost requests and lost replies, partitions between
//! clients and servers and between servers, server crashes (the store is closed and
//! reopened from disk) and client crashes between the phases (the shipping state and its
//! second phases are lost; the durable log is not).
//!
//! An [`Oracle`] records every acknowledged operation. At the end every link heals, every
//! process comes back, the clients ship what their logs still hold and the servers heal to
//! a fixpoint; then every acknowledged create is still there (under its name or a
//! conflict name) unless a delete was applied, no acknowledged delete comes back except
//! under a conflict name, every acknowledged write's data is still somewhere unless a
//! later update replaced it, no directory is its own ancestor, and all replicas are equal.

mod check;
mod client_ops;
pub mod interleave;
mod replica;
mod shipping;

use codetta_client::chains::Chains;
use codetta_client::replicate::Shipping;
use codetta_server::clock::SystemClock;
use codetta_server::heal;
use codetta_server::resolver::Resolver;
use codetta_server::store::{Store, StoreOptions};
use codetta_server::volatile::Volatile;
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::update::{Follows, Op, UpdateRecord};
use codetta_wire::{Fid, Incarnation, Name, ReplicaId, Time, UpdateId, VolumeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use replica::SimReplica;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub seed: u64,
    pub replicas: usize,
    pub clients: usize,
    /// Client operations before the final heal.
    pub ops: usize,
    /// Entries each server's change sequence keeps: short in half the runs, so that
    /// servers fall behind the trimmed sequence and compare whole volumes (rule 12).
    pub changes_kept: Option<u64>,
}

impl SimConfig {
    /// A run derived from `seed` alone: 3-5 replicas, 2-3 clients.
    pub fn from_seed(seed: u64, ops: usize) -> SimConfig {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        SimConfig {
            seed,
            replicas: rng.random_range(3..=5),
            clients: rng.random_range(2..=3),
            ops,
            changes_kept: rng.random_bool(0.5).then(|| rng.random_range(4..=32)),
        }
    }
}

/// What happened in a run (for the test's output).
#[derive(Debug, Default, Clone)]
pub struct SimReport {
    pub events: u64,
    pub acked: u64,
    pub faults: u64,
    pub conflicts: u64,
    /// Whole-volume comparisons servers ran after falling behind a trimmed sequence.
    pub volume_compares: u64,
    /// Tombstones collected.
    pub collected: u64,
    pub objects: usize,
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const TOKEN_LEN: usize = 16;

/// The names used (few, so that clients collide).
fn name(i: usize) -> Name {
    Name::new(NAMES[i % NAMES.len()]).unwrap_or_else(|_| unreachable_name())
}

fn unreachable_name() -> Name {
    // NAMES are all valid; this is never reached.
    Name::new("x").unwrap_or_else(|_| std::process::abort())
}

/// One server: its store while it runs.
struct Server {
    dir: tempfile::TempDir,
    store: Option<Arc<Store>>,
    /// Its leases (in memory: a restart ends them).
    volatile: Arc<Volatile>,
    replica: ReplicaId,
    changes_kept: Option<u64>,
}

impl Server {
    fn open(&mut self) -> anyhow::Result<()> {
        let options = StoreOptions {
            changes_kept: self.changes_kept,
            ..StoreOptions::default()
        };
        let store = Store::open(&self.dir.path().join("s.redb"), options)?;
        self.volatile = Volatile::new(store.clock().clone());
        self.store = Some(Arc::new(store));
        Ok(())
    }
}

/// A client: its durable log, and the write-all state while it runs.
struct Client {
    incarnation: Incarnation,
    next_vnode: u64,
    next_seq: u64,
    /// Records not yet complete, oldest first (the modify log: survives a crash).
    log: VecDeque<(UpdateRecord, Vec<u8>)>,
    shipping: Option<Shipping>,
    /// Each object's newest record and each logged record's predecessor on its object, as
    /// the daemon keeps them (in memory: rebuilt from the log after a crash).
    chains: Chains,
    follows: HashMap<u64, Follows>,
    /// Per object, the newest record some replica applied (the daemon's chain file:
    /// survives a crash).
    applied_newest: HashMap<Fid, u64>,
    /// Objects this client knows of (it picks targets among them).
    dirs: Vec<Fid>,
    files: Vec<Fid>,
}

impl Client {
    /// The chains a restarted daemon rebuilds from the records its log still holds.
    fn rechain(&mut self) {
        self.chains = Chains::default();
        self.follows.clear();
        let front = self.log.front().map_or(self.next_seq, |(r, _)| r.id.seq);
        let mut seeds: Vec<(u64, Fid)> = self
            .applied_newest
            .iter()
            .filter(|(_, seq)| **seq < front)
            .map(|(fid, seq)| (*seq, *fid))
            .collect();
        seeds.sort();
        for (seq, fid) in seeds {
            self.chains.link(fid, self.incarnation, seq);
        }
        for (r, _) in &self.log {
            let follows = self.chains.link_record(&r.op, r.id.incarnation, r.id.seq);
            self.follows.insert(r.id.seq, follows);
        }
    }
}

/// Acknowledged operations and what replicas applied.
#[derive(Default)]
pub struct Oracle {
    acked_creates: BTreeSet<Fid>,
    acked_deletes: BTreeSet<Fid>,
    /// (fid, token, step acknowledged)
    acked_writes: Vec<(Fid, [u8; TOKEN_LEN], u64)>,
    /// Deletes some replica applied.
    applied_deletes: BTreeSet<Fid>,
    /// Per (replica, fid), the order numbers at which it applied a write or truncation.
    applied_writes: BTreeMap<(usize, Fid), Vec<u64>>,
    /// Per write token, where and when (order number) it was applied.
    token_applied: BTreeMap<[u8; TOKEN_LEN], Vec<(usize, u64)>>,
    /// Counts applications (orders them).
    applications: u64,
    /// Objects a client renamed away from a conflict name (a user settling a conflict).
    renamed_from_conflict: BTreeSet<Fid>,
    /// Whether a client removed (or renamed over) some conflict copy: a version a user
    /// chose to drop, so a write whose data only that copy held may be gone.
    copy_removed: bool,
    /// Objects some client gave a further name: a remove of one of their names is not
    /// their deletion, and a user may have named a resurrected one.
    linked: BTreeSet<Fid>,
    acked: u64,
}
/// The simulated world.
pub struct World {
    rng: StdRng,
    /// Randomness used inside replica calls (shared with [`SimReplica`]).
    call_rng: Arc<Mutex<StdRng>>,
    servers: Vec<Server>,
    clients: Vec<Client>,
    vol: VolumeInfo,
    /// reach[c][s]: client c reaches server s.
    client_links: Vec<Vec<bool>>,
    /// peer_links[a][b]: server a reaches server b.
    peer_links: Vec<Vec<bool>>,
    oracle: Oracle,
    /// Objects whose replicas answered differently, to resolve.
    to_resolve: Vec<Fid>,
    step: u64,
    /// Message loss probability while faults are on.
    loss: f64,
    report: SimReport,
    /// What happened, one line per event (kept for failure reports).
    trace: Vec<String>,
}

impl World {
    /// Builds the cluster: one volume replicated on every server, no client records yet.
    pub fn new(config: SimConfig) -> anyhow::Result<World> {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let mut rng = StdRng::seed_from_u64(config.seed);
        let id = VolumeId(7);
        let vsg: Vec<ReplicaMember> = (0..config.replicas)
            .map(|i| ReplicaMember {
                replica: ReplicaId(1000 + i as u64),
                server: format!("s{i}"),
            })
            .collect();
        let vol = VolumeInfo {
            id,
            name: "sim".into(),
            root: Fid::root(id),
            vsg: vsg.clone(),
            epoch: 0,
            addrs: Vec::new(),
        };
        let mut servers = Vec::new();
        for m in &vsg {
            let mut s = Server {
                dir: tempfile::tempdir_in(&base)?,
                store: None,
                volatile: Volatile::new(SystemClock::shared()),
                replica: m.replica,
                changes_kept: config.changes_kept,
            };
            s.open()?;
            if let Some(store) = &s.store {
                store
                    .create_replica(&vol, m.replica, Time { secs: 1, nanos: 0 })
                    .map_err(|e| anyhow::anyhow!("create replica: {e}"))?;
            }
            servers.push(s);
        }
        let replicas: Vec<ReplicaId> = vsg.iter().map(|m| m.replica).collect();
        let clients = (0..config.clients)
            .map(|c| {
                let incarnation = Incarnation(100 + c as u32);
                Client {
                    incarnation,
                    next_vnode: 1,
                    next_seq: 1,
                    log: VecDeque::new(),
                    shipping: Some(Shipping::new(incarnation, id, &replicas, 1, 1)),
                    chains: Chains::default(),
                    applied_newest: HashMap::new(),
                    follows: HashMap::new(),
                    dirs: vec![Fid::root(id)],
                    files: Vec::new(),
                }
            })
            .collect();
        let call_rng = Arc::new(Mutex::new(StdRng::seed_from_u64(rng.random())));
        Ok(World {
            rng,
            call_rng,
            client_links: vec![vec![true; config.replicas]; config.clients],
            peer_links: vec![vec![true; config.replicas]; config.replicas],
            servers,
            clients,
            vol,
            oracle: Oracle::default(),
            to_resolve: Vec::new(),
            step: 0,
            loss: 0.05,
            report: SimReport::default(),
            trace: Vec::new(),
        })
    }

    /// Runs `config.ops` client operations interleaved with shipping, healing and faults,
    /// then heals everything and checks the oracle. `Err` describes a violated property.
    fn note(&mut self, line: String) {
        self.trace.push(format!("{:>6} {line}", self.step));
    }

    /// The trace lines that mention `what`.
    /// The trace lines that mention `fid`, by name or inside a debug-printed `Fid`.
    fn history_of_fid(&self, fid: Fid) -> String {
        let (name, raw) = (
            fid.to_string(),
            format!("vnode: {}, unique: {} }}", fid.vnode, fid.unique),
        );
        self.trace
            .iter()
            .filter(|l| l.contains(&name) || l.contains(&raw))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn run(mut self, ops: usize) -> anyhow::Result<SimReport> {
        heal::set_record_decisions(true);
        let mut done = 0;
        while done < ops {
            self.step += 1;
            let roll = self.rng.random_range(0..100);
            match roll {
                0..=34 => {
                    if self.client_op() {
                        done += 1;
                    }
                }
                35..=69 => self.ship_some(),
                70..=74 => self.probe_some(),
                75..=82 => self.heal_some(0.0)?,
                83..=84 => self.collect_some(),
                85..=87 => self.resolve_queued(),
                88..=94 => self.toggle_link(),
                95..=97 => self.crash_or_restart_server()?,
                _ => self.crash_or_restart_client(),
            }
        }
        self.report.events = self.step;
        self.settle()?;
        self.check()?;
        self.report.acked = self.oracle.acked;
        Ok(self.report)
    }

    fn replica_view_from(&self, from: Option<usize>, s: usize, loss: f64) -> SimReplica {
        let reachable = match from {
            Some(a) => self.peer_links[a][s] || a == s,
            None => true,
        };
        SimReplica {
            store: self.servers[s].store.clone(),
            volatile: self.servers[s].volatile.clone(),
            replica: self.servers[s].replica,
            name: format!("s{s}"),
            reachable,
            loss: if from == Some(s) { 0.0 } else { loss },
            rng: self.call_rng.clone(),
        }
    }

    /// The members as server `s` reaches them, `s` first.
    fn members_from(&self, s: usize, loss: f64) -> Vec<SimReplica> {
        let mut order: Vec<usize> = vec![s];
        order.extend((0..self.servers.len()).filter(|x| *x != s));
        order
            .into_iter()
            .map(|x| self.replica_view_from(Some(s), x, loss))
            .collect()
    }

    fn up_servers(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|s| self.servers[*s].store.is_some())
            .collect()
    }

    // ------------------------------------------------------------ client side ---

    fn record(&mut self, c: usize, op: Op, data: Vec<u8>) {
        let step = self.step;
        let client = &mut self.clients[c];
        let seq = client.next_seq;
        client.next_seq += 1;
        let record = UpdateRecord {
            id: UpdateId {
                incarnation: client.incarnation,
                seq,
            },
            time: Time {
                secs: 1_000 + i64::try_from(step).unwrap_or(i64::MAX),
                nanos: u32::try_from(c).unwrap_or(0),
            },
            op,
        };
        let follows = client
            .chains
            .link_record(&record.op, record.id.incarnation, seq);
        client.follows.insert(seq, follows);
        client.log.push_back((record, data));
        if let Some(sh) = client.shipping.as_mut() {
            sh.logged(seq);
        }
    }

    fn alloc_fid(&mut self, c: usize) -> Fid {
        let client = &mut self.clients[c];
        let vnode = (u64::from(client.incarnation.0) << 32) | client.next_vnode;
        client.next_vnode += 1;
        Fid {
            volume: self.vol.id,
            vnode,
            unique: 5,
        }
    }

    /// A store the client can read from now (a reachable, running server).
    fn read_store(&mut self, c: usize) -> Option<Arc<Store>> {
        let choices: Vec<usize> = (0..self.servers.len())
            .filter(|s| self.client_links[c][*s] && self.servers[*s].store.is_some())
            .collect();
        if choices.is_empty() {
            return None;
        }
        let s = choices[self.rng.random_range(0..choices.len())];
        self.servers[s].store.clone()
    }

    fn probe_some(&mut self) {
        let c = self.rng.random_range(0..self.clients.len());
        let m = self.rng.random_range(0..self.servers.len());
        let ok = self.client_links[c][m] && self.servers[m].store.is_some();
        if let Some(sh) = self.clients[c].shipping.as_mut()
            && ok
            && !sh.in_avsg(m)
        {
            sh.rejoined(m);
        }
    }

    // ------------------------------------------------------------ server side ---

    /// A random running server follows a random peer's change sequence (rule 12).
    fn heal_some(&mut self, loss_override: f64) -> anyhow::Result<()> {
        let up = self.up_servers();
        if up.is_empty() {
            return Ok(());
        }
        let s = up[self.rng.random_range(0..up.len())];
        let p = self.rng.random_range(0..self.servers.len());
        if p == s {
            return Ok(());
        }
        let loss = if loss_override > 0.0 {
            loss_override
        } else {
            self.loss
        };
        let (summary, decisions) = self.follow(s, p, loss);
        self.report.conflicts += summary.conflicts;
        self.report.volume_compares += summary.volume_compares;
        for d in decisions {
            self.note(format!("s{s} decided {d}"));
        }
        Ok(())
    }

    fn follow(
        &self,
        s: usize,
        p: usize,
        loss: f64,
    ) -> (codetta_wire::message::ResolveSummary, Vec<String>) {
        let Some(store) = self.servers[s].store.clone() else {
            return Default::default();
        };
        let members = self.members_from(s, loss);
        let me = self.servers[s].replica;
        let peer = self.servers[p].replica;
        let lines = Mutex::new(Vec::new());
        let summary = futures::executor::block_on(heal::follow(
            &store,
            &members,
            me,
            self.vol.id,
            peer,
            0,
            heal::Hooks {
                note: &|r| {
                    if let (Some(d), Ok(mut l)) = (&r.decisions, lines.lock()) {
                        l.extend(d.iter().cloned());
                    }
                },
                pacer: None,
                clock: None,
            },
        ));
        (summary, lines.into_inner().unwrap_or_default())
    }

    /// A running server collects its old tombstones (rule 8); sometimes past the GC
    /// horizon, so that replicas it cannot reach are left behind.
    fn collect_some(&mut self) {
        let up = self.up_servers();
        if up.is_empty() {
            return;
        }
        let s = up[self.rng.random_range(0..up.len())];
        let horizon = if self.rng.random_bool(0.3) {
            0
        } else {
            u64::MAX
        };
        let loss = self.loss;
        self.collect_at(s, horizon, loss);
    }

    fn collect_at(&mut self, s: usize, horizon_ms: u64, loss: f64) {
        let Some(store) = self.servers[s].store.clone() else {
            return;
        };
        let members = self.members_from(s, loss);
        let policy = codetta_server::collect::CollectPolicy {
            min_age_ms: 0,
            horizon_ms,
        };
        let now = u64::MAX / 2;
        match futures::executor::block_on(codetta_server::collect::collect(
            &store,
            &members,
            &[],
            self.vol.id,
            policy,
            now,
        )) {
            Ok(sum) if sum.collected > 0 => {
                self.report.collected += sum.collected;
                self.note(format!(
                    "s{s} collected {} tombstones (horizon {horizon_ms})",
                    sum.collected
                ));
            }
            Ok(_) => {}
            Err(e) => self.note(format!("s{s} collection failed: {e}")),
        }
    }

    /// A running server resolves the objects clients found divergent.
    fn resolve_queued(&mut self) {
        let up = self.up_servers();
        if up.is_empty() || self.to_resolve.is_empty() {
            return;
        }
        let s = up[self.rng.random_range(0..up.len())];
        let fids: Vec<Fid> = std::mem::take(&mut self.to_resolve);
        let list: Vec<String> = fids.iter().map(|f| f.to_string()).collect();
        self.note(format!("s{s} resolves {}", list.join(" ")));
        let members = self.members_from(s, self.loss);
        let mut r = Resolver::new(&members, self.servers[s].replica);
        r.decisions = Some(Vec::new());
        futures::executor::block_on(async {
            for f in fids {
                r.resolve(f).await;
            }
        });
        self.report.conflicts += r.summary.conflicts;
        for d in r.decisions.take().unwrap_or_default() {
            self.note(format!("s{s} decided {d}"));
        }
    }

    // ------------------------------------------------------------------ faults ---

    fn toggle_link(&mut self) {
        self.report.faults += 1;
        if self.rng.random_bool(0.5) {
            let c = self.rng.random_range(0..self.clients.len());
            let s = self.rng.random_range(0..self.servers.len());
            self.client_links[c][s] = !self.client_links[c][s];
        } else {
            let a = self.rng.random_range(0..self.servers.len());
            let b = self.rng.random_range(0..self.servers.len());
            if a != b {
                let v = !self.peer_links[a][b];
                self.peer_links[a][b] = v;
                self.peer_links[b][a] = v;
            }
        }
    }

    fn crash_or_restart_server(&mut self) -> anyhow::Result<()> {
        self.report.faults += 1;
        let s = self.rng.random_range(0..self.servers.len());
        if self.servers[s].store.is_some() {
            self.servers[s].store = None;
        } else {
            self.servers[s].open()?;
        }
        Ok(())
    }

    fn crash_or_restart_client(&mut self) {
        self.report.faults += 1;
        let c = self.rng.random_range(0..self.clients.len());
        let replicas: Vec<ReplicaId> = self.servers.iter().map(|s| s.replica).collect();
        let client = &mut self.clients[c];
        if client.shipping.is_some() {
            // A crash between the phases: what was shipped stays shipped, what was only in
            // memory (who applied what, the second phases, the chains) is gone; the log
            // survives.
            client.shipping = None;
            client.rechain();
        } else {
            let front = client
                .log
                .front()
                .map_or(client.next_seq, |(r, _)| r.id.seq);
            let mut sh = Shipping::new(client.incarnation, self.vol.id, &replicas, 1, front);
            for (r, _) in &client.log {
                sh.logged(r.id.seq);
            }
            client.shipping = Some(sh);
        }
    }

    // ------------------------------------------------------------- the end ---

    /// Heals every link, restarts everything, ships every log empty and heals to a
    /// fixpoint.
    fn settle(&mut self) -> anyhow::Result<()> {
        for row in self
            .client_links
            .iter_mut()
            .chain(self.peer_links.iter_mut())
        {
            row.iter_mut().for_each(|l| *l = true);
        }
        for s in 0..self.servers.len() {
            if self.servers[s].store.is_none() {
                self.servers[s].open()?;
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].shipping.is_none() {
                self.crash_or_restart_client_at(c);
            }
            for m in 0..self.servers.len() {
                if let Some(sh) = self.clients[c].shipping.as_mut() {
                    sh.rejoined(m);
                }
            }
        }
        for _ in 0..100_000 {
            if self.clients.iter().all(|c| c.log.is_empty()) {
                break;
            }
            for c in 0..self.clients.len() {
                for m in 0..self.servers.len() {
                    self.ship(c, m, 0.0);
                }
            }
        }
        anyhow::ensure!(
            self.clients.iter().all(|c| c.log.is_empty()),
            "client logs did not drain"
        );
        self.resolve_queued();
        for round in 0..30 {
            let mut changed = 0;
            for s in 0..self.servers.len() {
                for p in 0..self.servers.len() {
                    if s != p {
                        let (sum, decisions) = self.follow(s, p, 0.0);
                        for d in decisions {
                            self.note(format!("s{s} decided {d}"));
                        }
                        self.report.conflicts += sum.conflicts;
                        changed += sum.installs + sum.merges + sum.unsettled + sum.conflicts;
                    }
                }
            }
            if changed == 0 {
                // Every tombstone goes once all replicas are reached.
                for s in 0..self.servers.len() {
                    self.collect_at(s, u64::MAX, 0.0);
                }
                return Ok(());
            }
            if round == 29 {
                self.print_grepped();
                let tail: Vec<String> = self.trace.iter().rev().take(12).rev().cloned().collect();
                anyhow::bail!(
                    "healing did not reach a fixpoint; last decisions:\n{}",
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    fn crash_or_restart_client_at(&mut self, c: usize) {
        let replicas: Vec<ReplicaId> = self.servers.iter().map(|s| s.replica).collect();
        let client = &mut self.clients[c];
        let front = client
            .log
            .front()
            .map_or(client.next_seq, |(r, _)| r.id.seq);
        let mut sh = Shipping::new(client.incarnation, self.vol.id, &replicas, 1, front);
        for (r, _) in &client.log {
            sh.logged(r.id.seq);
        }
        client.shipping = Some(sh);
    }
}

/// An op in a line of the trace, fids as `volume.vnode.unique`.
fn show(op: &Op) -> String {
    match op {
        Op::Create {
            dir,
            name,
            fid,
            how,
            ..
        } => format!("create {dir}/{name} = {fid} {how:?}"),
        Op::Mkdir { dir, name, fid, .. } => format!("mkdir {dir}/{name} = {fid}"),
        Op::Symlink { dir, name, fid, .. } => format!("symlink {dir}/{name} = {fid}"),
        Op::Mknod {
            dir,
            name,
            fid,
            kind,
            ..
        } => format!("mknod {dir}/{name} = {fid} {kind:?}"),
        Op::Remove { dir, name, fid } => format!("remove {dir}/{name} = {fid}"),
        Op::Rmdir { dir, name, fid } => format!("rmdir {dir}/{name} = {fid}"),
        Op::Rename {
            from_dir,
            from_name,
            to_dir,
            to_name,
            fid,
            replaces,
        } => {
            format!("rename {from_dir}/{from_name} = {fid} -> {to_dir}/{to_name} over {replaces:?}")
        }
        Op::SetAttr { fid, .. } => format!("setattr {fid}"),
        Op::Write { fid, len, .. } => format!("write {fid} {len}"),
        Op::Link { dir, name, fid } => format!("link {dir}/{name} = {fid}"),
    }
}

fn token(c: usize, seq: u64) -> [u8; TOKEN_LEN] {
    let mut t = [0u8; TOKEN_LEN];
    t[0] = b'T';
    t[1] = u8::try_from(c).unwrap_or(255);
    t[2..10].copy_from_slice(&seq.to_le_bytes());
    t
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[rng.random_range(0..items.len())].clone())
    }
}

/// Runs one seed end to end.
pub fn run_seed(seed: u64, ops: usize) -> anyhow::Result<SimReport> {
    let config = SimConfig::from_seed(seed, ops);
    World::new(config)?.run(ops)
}
