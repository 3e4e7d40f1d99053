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

use codetta_client::replicate::{Completed, Shipping, exclusive_undo};
use codetta_server::heal;
use codetta_server::peer_error::{PeerError, PeerResult};
use codetta_server::resolver::{ReplicaAccess, Resolver};
use codetta_server::store::{ChangePage, Store, StoreOptions};
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView, ViewBody};
use codetta_wire::update::{CreateHow, NewObject, Op, UpdateRecord};
use codetta_wire::{
    Fid, FileType, FsError, History, Incarnation, Name, RecordOutcome, ReplicaId, SetAttrs, Time,
    UpdateId, VersionVector, VolumeId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Objects this client knows of (it picks targets among them).
    dirs: Vec<Fid>,
    files: Vec<Fid>,
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

/// A replica as one server (or the final checker) reaches it in this step: unreachable,
/// crashed, or through a link that may lose the request or the reply.
struct SimReplica {
    store: Option<Arc<Store>>,
    replica: ReplicaId,
    name: String,
    reachable: bool,
    loss: f64,
    rng: Arc<Mutex<StdRng>>,
}

impl SimReplica {
    fn lost(&self) -> bool {
        self.loss > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.loss))
                .unwrap_or(false)
    }

    /// Runs `f` on the store unless the request is lost; a lost reply after the work is
    /// done is reported as a failure too.
    fn call<T>(&self, f: impl FnOnce(&Store) -> Result<T, FsError>) -> PeerResult<T> {
        let lost = || PeerError::Timeout {
            server: self.name.clone(),
            after: std::time::Duration::ZERO,
        };
        let store = match &self.store {
            Some(store) if self.reachable => store,
            _ => return Err(self.down()),
        };
        if self.lost() {
            return Err(lost());
        }
        let out = f(store)?;
        if self.lost() {
            return Err(lost());
        }
        Ok(out)
    }

    fn down(&self) -> PeerError {
        PeerError::Unreachable {
            server: self.name.clone(),
            reason: "cut off or stopped".into(),
        }
    }
}

impl ReplicaAccess for SimReplica {
    fn replica(&self) -> ReplicaId {
        self.replica
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn view(&self, fid: Fid) -> PeerResult<ReplicaView> {
        self.call(|s| s.view(fid))
    }

    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> PeerResult<()> {
        self.call(|s| s.lease(fids, holder, ttl_ms))
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        self.call(|s| s.forget(fid, drop, mark))
    }

    /// Releases are never lost here: the simulation runs one resolution at a time and has
    /// no clock to let a stranded lease expire.
    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        match &self.store {
            Some(s) if self.reachable => Ok(s.release(fids, holder)?),
            _ => Err(self.down()),
        }
    }

    async fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> PeerResult<ChangePage> {
        self.call(|s| s.changes(volume, since, max, u64::from(older_than_ms)))
    }

    async fn volume_digests(&self, volume: VolumeId) -> PeerResult<Vec<[u8; 32]>> {
        self.call(|s| s.volume_digests(volume))
    }

    async fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> PeerResult<codetta_server::resolver::access::ObjectPage> {
        // Small pages, so that paging is exercised.
        self.call(|s| s.bucket_objects(volume, buckets, after, 7))
    }

    async fn list(
        &self,
        dir: Fid,
        cookie: u64,
        max: u32,
    ) -> PeerResult<codetta_server::resolver::access::DirPage> {
        self.call(|s| {
            let (_, entries, eof) = s.readdir(dir, cookie, max, false)?;
            Ok((
                entries
                    .into_iter()
                    .map(|e| (e.cookie, e.name.as_bytes().to_vec(), e.fid))
                    .collect(),
                eof,
            ))
        })
    }

    async fn block_digests(&self, fid: Fid) -> PeerResult<Vec<[u8; 32]>> {
        self.call(|s| s.block_digests(fid))
    }

    async fn block_map(&self, fid: Fid, first: u64, count: u32) -> PeerResult<Vec<BlockEntry>> {
        self.call(|s| s.block_map(fid, first, count))
    }

    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<[u8; 32]>> {
        self.call(|s| s.missing_chunks(hashes))
    }

    async fn chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<bytes::Bytes>> {
        let chunks = self.call(|s| s.chunks(hashes))?;
        Ok(chunks.into_iter().map(bytes::Bytes::from).collect())
    }

    async fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], bytes::Bytes)],
    ) -> PeerResult<()> {
        self.call(|s| {
            let refs: Vec<([u8; 32], &[u8])> = chunks.iter().map(|(h, b)| (*h, &b[..])).collect();
            s.install_blocks(fid, expect, blocks, &refs)
        })
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        self.call(|s| s.install_meta(fid, expect, meta))
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        self.call(|s| s.install_version(fid, expect, version, history))
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        self.call(|s| s.install_delete(fid, expect, version, history, placement))
    }
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

    /// Logs one random operation of a random running client; false if none was made.
    fn client_op(&mut self) -> bool {
        let c = self.rng.random_range(0..self.clients.len());
        if self.clients[c].shipping.is_none() {
            return false;
        }
        let Some(store) = self.read_store(c) else {
            return false;
        };
        let dirs = self.clients[c].dirs.clone();
        let dir = dirs[self.rng.random_range(0..dirs.len())];
        let entries = match store.readdir(dir, 0, 100, true) {
            Ok((_, entries, _)) => entries,
            Err(_) => {
                self.clients[c]
                    .dirs
                    .retain(|d| *d != dir || *d == Fid::root(self.vol.id));
                return false;
            }
        };
        let new = NewObject {
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let n = name(self.rng.random_range(0..NAMES.len()));
        let kind = self.rng.random_range(0..100);
        let (op, data) = match kind {
            0..=2 => {
                // A FIFO or a device node: a name and attributes, replicated like any object.
                let fid = self.alloc_fid(c);
                let kind = if self.rng.random_bool(0.5) {
                    FileType::Fifo
                } else {
                    FileType::CharDevice {
                        major: 1,
                        minor: self.rng.random_range(0..8),
                    }
                };
                (
                    Op::Mknod {
                        dir,
                        name: n,
                        fid,
                        new,
                        kind,
                    },
                    Vec::new(),
                )
            }
            3..=24 => {
                let fid = self.alloc_fid(c);
                self.clients[c].files.push(fid);
                let how = if self.rng.random_bool(0.7) {
                    CreateHow::Guarded
                } else {
                    CreateHow::Unchecked { truncate: false }
                };
                (
                    Op::Create {
                        dir,
                        name: n,
                        fid,
                        new,
                        how,
                    },
                    Vec::new(),
                )
            }
            25..=34 => {
                let fid = self.alloc_fid(c);
                self.clients[c].dirs.push(fid);
                (
                    Op::Mkdir {
                        dir,
                        name: n,
                        fid,
                        new,
                    },
                    Vec::new(),
                )
            }
            35..=59 => {
                let files: Vec<Fid> = entries
                    .iter()
                    .filter(|e| {
                        e.state
                            .as_ref()
                            .is_some_and(|s| s.attrs.ftype == FileType::Regular)
                    })
                    .map(|e| e.fid)
                    .chain(self.clients[c].files.iter().copied())
                    .collect();
                if files.is_empty() {
                    return false;
                }
                let fid = files[self.rng.random_range(0..files.len())];
                let seq = self.clients[c].next_seq;
                let mut data = token(c, seq).to_vec();
                if self.rng.random_bool(0.2) {
                    let extra = self.rng.random_range(1..150_000);
                    let mut filler = vec![0u8; extra];
                    self.rng.fill(&mut filler[..]);
                    data.extend_from_slice(&filler);
                }
                let op = Op::Write {
                    fid,
                    offset: 0,
                    len: u32::try_from(data.len()).unwrap_or(0),
                    hashes: codetta_wire::update::piece_hashes(0, &data),
                };
                (op, data)
            }
            60..=74 => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let is_dir = e
                    .state
                    .as_ref()
                    .is_some_and(|s| s.attrs.ftype == FileType::Directory);
                let op = if is_dir {
                    Op::Rmdir {
                        dir,
                        name: e.name.clone(),
                        fid: e.fid,
                    }
                } else {
                    Op::Remove {
                        dir,
                        name: e.name.clone(),
                        fid: e.fid,
                    }
                };
                (op, Vec::new())
            }
            75..=89 => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let to_dir = dirs[self.rng.random_range(0..dirs.len())];
                let replaces = store.lookup(to_dir, &n).ok().map(|s| s.fid);
                (
                    Op::Rename {
                        from_dir: dir,
                        from_name: e.name.clone(),
                        to_dir,
                        to_name: n,
                        fid: e.fid,
                        replaces,
                    },
                    Vec::new(),
                )
            }
            90..=94 => {
                // A further name for a non-directory, in any directory this client knows.
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                if e.state
                    .as_ref()
                    .is_none_or(|s| s.attrs.ftype == FileType::Directory)
                {
                    return false;
                }
                let to_dir = dirs[self.rng.random_range(0..dirs.len())];
                self.oracle.linked.insert(e.fid);
                (
                    Op::Link {
                        dir: to_dir,
                        name: n,
                        fid: e.fid,
                    },
                    Vec::new(),
                )
            }
            _ => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let set = SetAttrs {
                    mode: Some(self.rng.random_range(0o600..=0o777)),
                    ..SetAttrs::default()
                };
                (Op::SetAttr { fid: e.fid, set }, Vec::new())
            }
        };
        self.record(c, op, data);
        true
    }

    /// One batch from a random client to a random member.
    fn ship_some(&mut self) {
        let c = self.rng.random_range(0..self.clients.len());
        let m = self.rng.random_range(0..self.servers.len());
        let loss = self.loss;
        self.ship(c, m, loss);
    }

    fn ship(&mut self, c: usize, m: usize, loss: f64) {
        // Every delivery is its own moment (the oracle orders applies after acks).
        self.step += 1;
        let Some(sh) = self.clients[c].shipping.as_mut() else {
            return;
        };
        let max = 1 + (self.step % 8) as usize;
        let Some(plan) = sh.plan(m, max, true) else {
            return;
        };
        let front = sh.front();
        let reachable = self.client_links[c][m];
        let store = self.servers[m].store.clone();
        let lost_request = self.rng.random_bool(loss);
        let lost_reply = self.rng.random_bool(loss);
        let (records, data): (Vec<UpdateRecord>, Vec<u8>) = {
            let client = &self.clients[c];
            let start = usize::try_from(plan.first.saturating_sub(front)).unwrap_or(0);
            let mut data = Vec::new();
            let records = client
                .log
                .iter()
                .skip(start)
                .take(plan.len())
                .map(|(r, d)| {
                    data.extend_from_slice(d);
                    r.clone()
                })
                .collect();
            (records, data)
        };
        let outcome = match (&store, reachable && !lost_request) {
            (Some(store), true) => store.ship(&records, &data, plan.log_start, &plan.cop2).ok(),
            _ => None,
        };
        if let Some(shipped) = &outcome {
            for (r, o) in records.iter().zip(&shipped.outcomes) {
                self.note(format!(
                    "c{c} s{m} applied {}:{} {} -> {o:?}",
                    r.id.incarnation.0,
                    r.id.seq,
                    show(&r.op)
                ));
                self.note_applied(m, r, o);
            }
        }
        let done = {
            let Some(sh) = self.clients[c].shipping.as_mut() else {
                return;
            };
            match outcome {
                Some(s) if !lost_reply => sh.applied(m, &plan, &s.outcomes, &s.priors),
                _ => {
                    self.report.faults += 1;
                    sh.failed(m, Some(plan))
                }
            }
        };
        self.complete(c, done);
    }

    /// A replica applied `record` with `outcome`.
    fn note_applied(&mut self, replica: usize, record: &UpdateRecord, outcome: &RecordOutcome) {
        if outcome.is_err() {
            return;
        }
        self.oracle.applications += 1;
        let step = self.oracle.applications;
        match &record.op {
            Op::Remove { fid, name, .. } | Op::Rmdir { fid, name, .. } => {
                self.oracle.applied_deletes.insert(*fid);
                if name.to_string().contains(".conflict-") {
                    self.oracle.copy_removed = true;
                }
            }
            Op::Rename {
                replaces,
                fid,
                from_name,
                ..
            } => {
                if let Some(r) = replaces
                    && r != fid
                {
                    self.oracle.applied_deletes.insert(*r);
                }
                if from_name.to_string().contains(".conflict-") {
                    self.oracle.renamed_from_conflict.insert(*fid);
                }
            }
            Op::Write { fid, .. } => {
                self.oracle
                    .applied_writes
                    .entry((replica, *fid))
                    .or_default()
                    .push(step);
                if let Some((_, data)) = self
                    .clients
                    .iter()
                    .flat_map(|c| c.log.iter())
                    .find(|(r, _)| r.id == record.id)
                {
                    let mut t = [0u8; TOKEN_LEN];
                    t.copy_from_slice(&data[..TOKEN_LEN]);
                    self.oracle
                        .token_applied
                        .entry(t)
                        .or_default()
                        .push((replica, step));
                }
            }
            Op::SetAttr { fid, set } if set.size.is_some() => {
                self.oracle
                    .applied_writes
                    .entry((replica, *fid))
                    .or_default()
                    .push(step);
            }
            Op::Create {
                how: CreateHow::Unchecked { truncate: true },
                ..
            } => {}
            _ => {}
        }
    }

    /// Records completed by client `c`: acknowledged (the oracle notes them), dropped from
    /// its log; exclusive creates some replica refused are undone (rule 9).
    fn complete(&mut self, c: usize, done: Vec<Completed>) {
        for d in done {
            let Some((record, data)) = self.clients[c].log.pop_front() else {
                continue;
            };
            self.note(format!(
                "c{c} complete {}:{} {} -> {:?} answers {:?}",
                record.id.incarnation.0,
                record.id.seq,
                show(&record.op),
                d.outcome,
                d.answers
            ));
            debug_assert_eq!(record.id.seq, d.seq);
            if d.divergent || d.answers.iter().any(|(_, o)| *o == Err(FsError::Diverged)) {
                self.to_resolve
                    .extend(codetta_client::tracker::affected(&record.op));
                if let Op::Remove { fid, .. } | Op::Rmdir { fid, .. } | Op::Rename { fid, .. } =
                    &record.op
                {
                    self.to_resolve.push(*fid);
                }
            }
            if let Some(undo) = exclusive_undo(&record.op, &d.answers) {
                self.record(c, undo, Vec::new());
                continue;
            }
            let Ok(answer) = d.outcome else {
                continue;
            };
            self.oracle.acked += 1;
            match &record.op {
                Op::Create { fid, .. }
                | Op::Mkdir { fid, .. }
                | Op::Symlink { fid, .. }
                | Op::Mknod { fid, .. } => {
                    if answer == Some(*fid) {
                        self.oracle.acked_creates.insert(*fid);
                    }
                }
                Op::Remove { fid, .. } | Op::Rmdir { fid, .. } => {
                    if !self.oracle.linked.contains(fid) {
                        self.oracle.acked_deletes.insert(*fid);
                    }
                }
                Op::Rename { fid, replaces, .. } => {
                    if let Some(r) = replaces
                        && r != fid
                        && !self.oracle.linked.contains(r)
                    {
                        self.oracle.acked_deletes.insert(*r);
                    }
                }
                Op::Write { fid, .. } => {
                    let mut t = [0u8; TOKEN_LEN];
                    t.copy_from_slice(&data[..TOKEN_LEN]);
                    self.oracle
                        .acked_writes
                        .push((*fid, t, self.oracle.applications));
                }
                Op::SetAttr { .. } | Op::Link { .. } => {}
            }
        }
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
            // memory (who applied what, the second phases) is gone; the log survives.
            client.shipping = None;
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

    /// The oracle's properties and replica equality.
    fn check(&mut self) -> anyhow::Result<()> {
        // `CODETTA_SIM_GREP=TEXT`: the trace lines containing TEXT (a fid, an op), to follow
        // an object the failure message does not name.
        if let Ok(f) = std::env::var("CODETTA_SIM_GREP") {
            for l in self.trace.iter().filter(|l| l.contains(&f)) {
                eprintln!("DBG {l}");
            }
        }
        let stores: Vec<Arc<Store>> = self
            .servers
            .iter()
            .filter_map(|s| s.store.clone())
            .collect();
        let vol = self.vol.id;
        let mut fids = BTreeSet::new();
        for s in &stores {
            fids.extend(s.object_fids(vol).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        self.report.objects = fids.len();
        // All replicas equal.
        for fid in &fids {
            let views: Vec<ReplicaView> = stores
                .iter()
                .map(|s| s.view(*fid))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for v in &views[1..] {
                anyhow::ensure!(
                    v.tag == views[0].tag && v.version == views[0].version,
                    "replicas differ on {fid}: {}\n{}",
                    views
                        .iter()
                        .map(|v| format!("{:?}/{:?}", v.body, v.version))
                        .collect::<Vec<_>>()
                        .join("\n  "),
                    self.history_of_fid(*fid)
                );
            }
        }
        let s0 = &stores[0];
        let live = |fid: &Fid| matches!(s0.view(*fid).map(|v| v.body), Ok(ViewBody::Live(_)));
        // No directory cycle: every live object reaches the root.
        for fid in &fids {
            let mut cur = *fid;
            let mut hops = 0;
            while let Ok(v) = s0.view(cur) {
                let ViewBody::Live(m) = v.body else { break };
                if cur == Fid::root(vol) {
                    break;
                }
                cur = m.placement.parent;
                hops += 1;
                anyhow::ensure!(hops < 10_000, "{fid} is inside a directory cycle");
            }
        }
        // Every name of a live object is an entry leading to it, and every entry is one of
        // the names of the object it leads to.
        for fid in &fids {
            let Ok(ViewBody::Live(m)) = s0.view(*fid).map(|v| v.body) else {
                continue;
            };
            if *fid != Fid::root(vol) {
                for p in m.placements() {
                    let n = Name::new(p.name.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let found = s0.lookup(p.parent, &n).map(|s| s.fid);
                    anyhow::ensure!(
                        found == Ok(*fid),
                        "{fid} is named {}/{n} but that leads to {found:?}",
                        p.parent
                    );
                }
            }
            if m.ftype == FileType::Directory {
                let (_, entries, _) = s0
                    .readdir(*fid, 0, u32::MAX, false)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for e in entries {
                    let named = matches!(
                        s0.view(e.fid).map(|v| v.body),
                        Ok(ViewBody::Live(c)) if c.placements().any(|p| p.parent == *fid
                            && p.name == e.name.as_bytes())
                    );
                    anyhow::ensure!(named, "entry {fid}/{} is not a name of {}", e.name, e.fid);
                }
            }
        }
        // Acknowledged creates survive unless a delete was applied.
        for fid in &self.oracle.acked_creates {
            anyhow::ensure!(
                live(fid) || self.oracle.applied_deletes.contains(fid),
                "acknowledged create of {fid} lost"
            );
        }
        // Acknowledged deletes stay deleted, except under a conflict name.
        for fid in &self.oracle.acked_deletes {
            if let Ok(v) = s0.view(*fid)
                && let ViewBody::Live(m) = &v.body
            {
                let n = String::from_utf8_lossy(&m.placement.name).to_string();
                anyhow::ensure!(
                    n.contains(".conflict-")
                        || self.oracle.renamed_from_conflict.contains(fid)
                        || self.oracle.linked.contains(fid),
                    "deleted {fid} came back as {n:?}\n{}",
                    self.history_of_fid(*fid)
                );
            }
        }
        // Acknowledged writes: their data is somewhere unless replaced or deleted later.
        let mut tokens = BTreeSet::new();
        for fid in &fids {
            if let Ok(v) = s0.view(*fid)
                && let ViewBody::Live(m) = &v.body
                && m.ftype == FileType::Regular
                && m.size >= TOKEN_LEN as u64
                && let Ok((_, data, _)) = s0.read(*fid, 0, TOKEN_LEN as u32)
            {
                let mut t = [0u8; TOKEN_LEN];
                t.copy_from_slice(&data);
                tokens.insert(t);
            }
        }
        for (fid, t, acked_at) in &self.oracle.acked_writes {
            // Replaced: a later write to the file was applied where this one had been, or
            // anywhere after this one was acknowledged (by then it was on the whole AVSG).
            let on_top = self.oracle.token_applied.get(t).is_some_and(|places| {
                places.iter().any(|(r, o)| {
                    self.oracle
                        .applied_writes
                        .get(&(*r, *fid))
                        .is_some_and(|orders| orders.iter().any(|x| x > o))
                })
            });
            let after_ack = self
                .oracle
                .applied_writes
                .iter()
                .any(|((_, f), orders)| f == fid && orders.iter().any(|x| x > acked_at));
            let replaced = on_top || after_ack;
            let deleted = self.oracle.applied_deletes.contains(fid);
            anyhow::ensure!(
                tokens.contains(t) || replaced || deleted || self.oracle.copy_removed,
                "acknowledged write to {fid} lost (token {t:?})\n{}",
                self.history_of_fid(*fid)
            );
        }
        Ok(())
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
