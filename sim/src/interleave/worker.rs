//! A worker: seeded operations in a directory of its own through its client's real
//! per-volume client, called as the NFS layer calls it (a lookup before a change of a
//! name, write-all records answered once complete), and one in ten a whole-file write to
//! one of the files every worker shares (concurrent writers: each write is logged with
//! its times). Every operation is recorded as
//! acknowledged or not in the worker's [`DirModel`]; one that waits past [`OP_LIMIT`]
//! (its daemon killed under it, every server gone) counts as unanswered.

use bytes::Bytes;
use codetta_client::error::ClientError;
use codetta_client::volume_client::VolumeClient;
use codetta_testkit::dir_model::{DirModel, Op as PlanOp};
use codetta_testkit::dir_plan::{Planner, describe};
use codetta_testkit::shared_files::{SharedWrite, shared_content};
use codetta_wire::update::{CreateHow, NewObject, Op, piece_hashes};
use codetta_wire::{Fid, FsError, Name, SetAttrs};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long one operation may take before the worker gives up on it.
const OP_LIMIT: Duration = Duration::from_secs(30);
/// The largest write a worker makes.
const LARGEST_WRITE: usize = 96 << 10;

/// One worker's record and where it works.
pub(crate) struct Worker {
    pub(crate) label: String,
    /// The client (by index) it works through.
    pub(crate) client: usize,
    pub(crate) dir: Fid,
    planner: Planner,
    pub(crate) model: DirModel,
    /// Each name in use and the file it names, as this worker made them.
    fids: BTreeMap<String, Fid>,
    /// The files every worker writes whole, and the record of those writes.
    shared: Vec<Fid>,
    shared_log: SharedLog,
    shared_seq: u64,
    /// Every operation with its virtual time and outcome.
    pub(crate) history: Vec<String>,
    pub(crate) acked: u64,
    pub(crate) unanswered: u64,
}

/// Every write to the shared files, from every worker.
pub(crate) type SharedLog = Arc<Mutex<Vec<SharedWrite>>>;

fn name(n: &str) -> Result<Name, ClientError> {
    Name::new(n).map_err(|e| ClientError::Protocol(format!("bad name {n}: {e}")))
}

impl Worker {
    /// A worker in `dir` through client `client`, its choices drawn from `seed`.
    pub(crate) fn new(
        label: String,
        client: usize,
        dir: Fid,
        seed: u64,
        shared: Vec<Fid>,
        shared_log: SharedLog,
    ) -> Worker {
        Worker {
            label,
            client,
            dir,
            shared,
            shared_log,
            shared_seq: 0,
            planner: Planner::new(seed, LARGEST_WRITE),
            model: DirModel::default(),
            fids: BTreeMap::new(),
            history: Vec::new(),
            acked: 0,
            unanswered: 0,
        }
    }

    /// Runs operations until the virtual time `until_ms`, each through the client that
    /// `client` holds at its start (none while the daemon is down: the worker waits).
    pub(crate) async fn run(
        mut self,
        client: watch::Receiver<Option<Arc<VolumeClient>>>,
        until_ms: u64,
    ) -> Worker {
        while super::clock::elapsed_ms() < until_ms {
            let current = client.borrow().clone();
            let Some(vc) = current else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if !self.shared.is_empty() && self.planner.rng().random_range(0..100) < 10 {
                self.shared_write(&vc).await;
            } else {
                self.own_op(&vc).await;
            }
            let pause = self.planner.rng().random_range(0..20);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        self
    }

    /// One operation in the worker's own directory, recorded.
    async fn own_op(&mut self, vc: &VolumeClient) {
        let op = self.planner.plan(&mut self.model);
        let began = super::clock::elapsed_ms();
        let outcome = tokio::time::timeout(OP_LIMIT, self.execute(vc, &op)).await;
        let acked = self.note(began, &describe(&op), outcome);
        self.model.settle(&op, acked);
    }

    /// Replaces one shared file whole (FILE_SYNC), and logs the write with its times.
    async fn shared_write(&mut self, vc: &VolumeClient) {
        let file = self.planner.rng().random_range(0..self.shared.len());
        self.shared_seq += 1;
        let data = Bytes::from(shared_content(
            &self.label,
            self.shared_seq,
            self.planner.rng(),
        ));
        let fid = self.shared[file];
        let began = super::clock::elapsed_ms();
        let write = async {
            let len = u32::try_from(data.len())
                .map_err(|_| ClientError::Protocol("write too long".into()))?;
            let op = Op::Write {
                fid,
                offset: 0,
                len,
                hashes: piece_hashes(0, &data),
            };
            vc.submit_and_wait(op, data.clone()).await.map(|_| ())
        };
        let outcome = tokio::time::timeout(OP_LIMIT, write).await;
        let what = format!("shared write {} to s{file}", self.shared_seq);
        let acked = self.note(began, &what, outcome);
        let record = SharedWrite {
            file,
            who: self.label.clone(),
            seq: self.shared_seq,
            hash: *blake3::hash(&data).as_bytes(),
            started: Duration::from_millis(began),
            ended: Duration::from_millis(super::clock::elapsed_ms()),
            acked,
        };
        self.shared_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// Counts and records an operation's outcome; whether it was acknowledged.
    fn note(
        &mut self,
        began: u64,
        what: &str,
        outcome: Result<Result<(), ClientError>, tokio::time::error::Elapsed>,
    ) -> bool {
        let (acked, said) = match outcome {
            Ok(Ok(())) => (true, "ok".to_string()),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (false, format!("no answer within {OP_LIMIT:?}")),
        };
        if acked {
            self.acked += 1;
        } else {
            self.unanswered += 1;
        }
        self.history.push(format!("{began:>8} ms {what} -> {said}"));
        acked
    }

    /// Runs `op` as the NFS layer would.
    async fn execute(&mut self, vc: &VolumeClient, op: &PlanOp) -> Result<(), ClientError> {
        let dir = self.dir;
        match op {
            PlanOp::Create { name: n } => {
                let fid = vc.alloc_fid(dir.volume)?;
                let created = vc
                    .submit_and_wait(
                        Op::Create {
                            dir,
                            name: name(n)?,
                            fid,
                            new: NewObject {
                                mode: 0o644,
                                uid: 0,
                                gid: 0,
                            },
                            how: CreateHow::Unchecked { truncate: false },
                        },
                        Bytes::new(),
                    )
                    .await?;
                self.fids.insert(n.clone(), created.unwrap_or(fid));
            }
            PlanOp::Write {
                name: n,
                pieces,
                stable,
            } => {
                let fid = self.fid(n)?;
                for (offset, data) in pieces {
                    let data = Bytes::from(data.clone());
                    if *stable {
                        let len = u32::try_from(data.len())
                            .map_err(|_| ClientError::Protocol("write too long".into()))?;
                        let op = Op::Write {
                            fid,
                            offset: *offset,
                            len,
                            hashes: piece_hashes(*offset, &data),
                        };
                        vc.submit_and_wait(op, data).await?;
                    } else {
                        vc.hold_write(fid, *offset, data).await?;
                    }
                }
                if !*stable {
                    vc.commit(&fid).await?;
                }
            }
            PlanOp::Truncate { name: n, size } => {
                let set = SetAttrs {
                    size: Some(*size),
                    ..SetAttrs::default()
                };
                self.setattr(vc, n, set).await?;
            }
            PlanOp::Chmod { name: n, mode } => {
                let set = SetAttrs {
                    mode: Some(*mode),
                    ..SetAttrs::default()
                };
                self.setattr(vc, n, set).await?;
            }
            PlanOp::Rename { from, to } => {
                let moved = vc.lookup_to_change(&dir, &name(from)?).await?;
                let replaces = match vc.lookup_to_change(&dir, &name(to)?).await {
                    Ok(target) => Some(target.fid),
                    Err(ClientError::Fs(FsError::NotFound)) => None,
                    Err(e) => return Err(e),
                };
                let op = Op::Rename {
                    from_dir: dir,
                    from_name: name(from)?,
                    to_dir: dir,
                    to_name: name(to)?,
                    fid: moved.fid,
                    replaces,
                };
                vc.submit_and_wait(op, Bytes::new()).await?;
                self.fids.remove(from);
                self.fids.insert(to.clone(), moved.fid);
            }
            PlanOp::Remove { name: n } => {
                let child = vc.lookup_to_change(&dir, &name(n)?).await?;
                let op = Op::Remove {
                    dir,
                    name: name(n)?,
                    fid: child.fid,
                };
                vc.submit_and_wait(op, Bytes::new()).await?;
                self.fids.remove(n);
            }
            PlanOp::Link { name: n, new } => {
                let fid = self.fid(n)?;
                match vc.lookup_to_change(&dir, &name(new)?).await {
                    Ok(_) => return Err(ClientError::Fs(FsError::Exists)),
                    Err(ClientError::Fs(FsError::NotFound)) => {}
                    Err(e) => return Err(e),
                }
                let op = Op::Link {
                    dir,
                    name: name(new)?,
                    fid,
                };
                vc.submit_and_wait(op, Bytes::new()).await?;
                self.fids.insert(new.clone(), fid);
            }
        }
        Ok(())
    }

    fn fid(&self, n: &str) -> Result<Fid, ClientError> {
        self.fids
            .get(n)
            .copied()
            .ok_or_else(|| ClientError::Protocol(format!("{n} was never made here")))
    }

    async fn setattr(&self, vc: &VolumeClient, n: &str, set: SetAttrs) -> Result<(), ClientError> {
        let fid = self.fid(n)?;
        vc.submit_and_wait(Op::SetAttr { fid, set }, Bytes::new())
            .await?;
        Ok(())
    }
}
