//! The workload: workers, each on its own NFS connection to one client daemon, running
//! seeded operations (creates, FILE_SYNC and UNSTABLE+COMMIT writes, truncates, chmods,
//! renames, removes, links) in a directory of their own, and whole-file writes to a few
//! files every worker shares; each result is recorded as acknowledged or not.

use crate::support::nfs::{Fh, Nfs, mode};
use codetta_testkit::dir_model::{DirModel, Op};
use codetta_testkit::dir_plan::{Planner, describe};
use codetta_testkit::shared_files::{SharedWrite, shared_content};
use nfs3_client::nfs3_types::nfs3::{Nfs3Option, sattr3, stable_how};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one NFS call may take before the worker gives up on it (unacknowledged): past
/// the client daemon's JUKEBOX window, so a call the daemon still answers is seen answered.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Every write to the shared files, from every worker.
pub(crate) type SharedLog = Arc<Mutex<Vec<SharedWrite>>>;

/// Time since the first call in this process: the one zero of every worker's shared
/// writes.
fn since_zero() -> Duration {
    static ZERO: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ZERO.get_or_init(Instant::now).elapsed()
}

/// One worker: its connection, its directory and the record of what it did there.
pub(crate) struct Worker {
    pub name: String,
    port: u16,
    planner: Planner,
    nfs: Option<Nfs>,
    dir: Fh,
    handles: BTreeMap<String, Fh>,
    shared: Vec<Fh>,
    shared_log: SharedLog,
    shared_seq: u64,
    pub model: DirModel,
    /// Operations not run because no connection could be made.
    pub skipped: u64,
    /// Every operation with its time and outcome, for a failure's post-mortem.
    pub history: Vec<String>,
    /// The last failure an NFS call reported (a status, or the call's time limit).
    last_error: String,
    started: Instant,
}

impl Worker {
    pub(crate) fn new(
        name: String,
        port: u16,
        seed: u64,
        dir: Fh,
        shared: Vec<Fh>,
        shared_log: SharedLog,
    ) -> Worker {
        Worker {
            name,
            port,
            planner: Planner::new(seed, 1 << 20),
            nfs: None,
            dir,
            handles: BTreeMap::new(),
            shared,
            shared_log,
            shared_seq: 0,
            model: DirModel::default(),
            skipped: 0,
            history: Vec::new(),
            last_error: String::new(),
            started: Instant::now(),
        }
    }

    /// Runs operations until `stop` is set; returns the worker with its record.
    pub(crate) async fn run(mut self, stop: Arc<AtomicBool>) -> Worker {
        self.started = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if self.nfs.is_none() {
                match tokio::time::timeout(Duration::from_secs(5), Nfs::connect(self.port)).await {
                    Ok(Ok(nfs)) => self.nfs = Some(nfs),
                    _ => {
                        self.skipped += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            if self.planner.rng().random_range(0..100) < 10 {
                let began = self.started.elapsed().as_secs_f64();
                let (file, acked) = self.shared_write().await;
                let outcome = if acked {
                    "ok"
                } else {
                    self.last_error.as_str()
                };
                self.history.push(format!(
                    "{began:7.2} shared write {} to s{file} -> {outcome}",
                    self.shared_seq
                ));
            } else {
                let op = self.planner.plan(&mut self.model);
                let began = self.started.elapsed().as_secs_f64();
                let acked = self.execute(&op).await;
                let outcome = if acked {
                    "ok"
                } else {
                    self.last_error.as_str()
                };
                self.history
                    .push(format!("{began:7.2} {} -> {outcome}", describe(&op)));
                self.model.settle(&op, acked);
            }
        }
        self.nfs = None;
        self
    }

    /// Runs one NFS call under [`CALL_LIMIT`]; any failure drops the connection (a
    /// daemon killed under it leaves it dead; a late reply must not answer a later call).
    async fn call<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Nfs) -> Result<T, nfs3_client::nfs3_types::nfs3::nfsstat3>,
    ) -> Option<T> {
        let nfs = self.nfs.as_mut()?;
        match tokio::time::timeout(CALL_LIMIT, f(nfs)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(status)) => {
                self.last_error = format!("{status:?}");
                self.nfs = None;
                None
            }
            Err(_) => {
                self.last_error = format!("no answer within {CALL_LIMIT:?}");
                self.nfs = None;
                None
            }
        }
    }
}

impl Worker {
    /// Runs `op` against the endpoint: true when every call it made was answered OK.
    async fn execute(&mut self, op: &Op) -> bool {
        let dir = self.dir.clone();
        match op {
            Op::Create { name } => {
                let n = name.clone();
                let fh = self.call(async |nfs| nfs.create(&dir, &n).await).await;
                match fh {
                    Some(fh) => {
                        self.handles.insert(name.clone(), fh);
                        true
                    }
                    None => false,
                }
            }
            Op::Write {
                name,
                pieces,
                stable,
            } => {
                let Some(fh) = self.handles.get(name).cloned() else {
                    return false;
                };
                let how = if *stable {
                    stable_how::FILE_SYNC
                } else {
                    stable_how::UNSTABLE
                };
                let mut verifiers = Vec::new();
                for (offset, data) in pieces {
                    let written = self
                        .call(async |nfs| nfs.write(&fh, *offset, data, how).await)
                        .await;
                    match written {
                        Some(ok) if ok.count as usize == data.len() => verifiers.push(ok.verf.0),
                        _ => return false,
                    }
                }
                if *stable {
                    return true;
                }
                let committed = self.call(async |nfs| nfs.commit_verifier(&fh).await).await;
                committed.is_some_and(|v| verifiers.iter().all(|w| *w == v.0))
            }
            Op::Truncate { name, size } => {
                let attrs = sattr3 {
                    size: Nfs3Option::Some(*size),
                    ..sattr3::default()
                };
                self.setattr(name, attrs).await
            }
            Op::Chmod { name, mode: m } => self.setattr(name, mode(*m)).await,
            Op::Rename { from, to } => {
                let (f, t) = (from.clone(), to.clone());
                let ok = self
                    .call(async |nfs| nfs.rename(&dir, &f, &dir, &t).await)
                    .await
                    .is_some();
                if ok && let Some(fh) = self.handles.remove(from) {
                    self.handles.insert(to.clone(), fh);
                }
                ok
            }
            Op::Remove { name } => {
                let n = name.clone();
                self.call(async |nfs| nfs.remove(&dir, &n).await)
                    .await
                    .is_some()
            }
            Op::Link { name, new } => {
                let Some(fh) = self.handles.get(name).cloned() else {
                    return false;
                };
                let n = new.clone();
                let ok = self
                    .call(async |nfs| nfs.link(&fh, &dir, &n).await)
                    .await
                    .is_some();
                if ok {
                    self.handles.insert(new.clone(), fh);
                }
                ok
            }
        }
    }

    async fn setattr(&mut self, name: &str, attrs: sattr3) -> bool {
        let Some(fh) = self.handles.get(name).cloned() else {
            return false;
        };
        self.call(async |nfs| nfs.setattr(&fh, attrs).await)
            .await
            .is_some()
    }

    /// Replaces one shared file whole, and logs the write with its times; which file, and
    /// whether the write was acknowledged.
    async fn shared_write(&mut self) -> (usize, bool) {
        let file = self.planner.rng().random_range(0..self.shared.len());
        self.shared_seq += 1;
        let data = shared_content(&self.name, self.shared_seq, self.planner.rng());
        let fh = self.shared[file].clone();
        let started = since_zero();
        let acked = self
            .call(async |nfs| nfs.write(&fh, 0, &data, stable_how::FILE_SYNC).await)
            .await
            .is_some_and(|ok| ok.count as usize == data.len());
        let write = SharedWrite {
            file,
            who: self.name.clone(),
            seq: self.shared_seq,
            hash: *blake3::hash(&data).as_bytes(),
            started,
            ended: since_zero(),
            acked,
        };
        if let Ok(mut log) = self.shared_log.lock() {
            log.push(write);
        }
        (file, acked)
    }
}
