//! The catalogue's Raft log, vote and applied state, kept durably in their own redb file
//! (`catalogue.redb` beside the server's store). Every write commits with an fsync before
//! Raft is told it is done; redb calls run on tokio's blocking pool.

// openraft's traits fix the error type (`StorageError`, over 200 bytes); the helpers here
// return it too rather than converting at every call.
#![allow(clippy::result_large_err)]

use super::raft::{CatalogueNode, CatalogueRaft};
use super::state::{CatalogueState, Outcome};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Log index -> postcard entry.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// `vote`, `committed`, `last_purged`, `applied` -> postcard values.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

type SResult<T> = Result<T, StorageError<u64>>;

fn read_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::read(AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

/// Decodes `bytes` as a persisted state machine (what a snapshot install reads).
pub(super) fn fuzz_snapshot(bytes: &[u8]) {
    let _ = Applied::decode(bytes);
}

/// What the state machine has applied, persisted as one value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last: Option<LogId<u64>>,
    membership: StoredMembership<u64, CatalogueNode>,
    state: CatalogueState,
}

/// [`Applied`] as servers before the departed list wrote it.
#[derive(Deserialize)]
struct AppliedWithoutDeparted {
    last: Option<LogId<u64>>,
    membership: StoredMembership<u64, CatalogueNode>,
    state: super::legacy::StateWithoutDeparted,
}

impl Applied {
    /// Decodes `bytes` in today's layout or the layout before the departed list (a store
    /// written by an older server, a snapshot from one).
    fn decode(bytes: &[u8]) -> Result<Applied, postcard::Error> {
        super::legacy::decode_or_older(bytes, |old: AppliedWithoutDeparted| Applied {
            last: old.last,
            membership: old.membership,
            state: old.state.into(),
        })
    }
}

/// The catalogue's storage: the log side and the state-machine side share one file.
#[derive(Clone)]
pub struct CatalogueStorage {
    db: Arc<Database>,
    applied: Arc<Mutex<Applied>>,
    /// The applied state, published after every change for readers on hot paths.
    published: Arc<tokio::sync::watch::Sender<Arc<CatalogueState>>>,
}

impl CatalogueStorage {
    /// Opens (or creates) `path` and loads what was applied.
    pub fn open(path: &Path) -> anyhow::Result<CatalogueStorage> {
        CatalogueStorage::on(Database::create(path)?)
    }

    /// Opens (or creates) the catalogue on `backend`: a disk that fails or loses power in
    /// the crash tests and the simulation.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend + 'static,
    ) -> anyhow::Result<CatalogueStorage> {
        CatalogueStorage::on(Database::builder().create_with_backend(backend)?)
    }

    fn on(db: Database) -> anyhow::Result<CatalogueStorage> {
        {
            let txn = db.begin_write()?;
            txn.open_table(LOG)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let applied = get_meta_bytes(&db, "applied")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map(|bytes| Applied::decode(&bytes))
            .transpose()
            .map_err(|e| anyhow::anyhow!("the catalogue's applied state: {e}"))?
            .unwrap_or_default();
        let published = tokio::sync::watch::Sender::new(Arc::new(applied.state.clone()));
        Ok(CatalogueStorage {
            db: Arc::new(db),
            applied: Arc::new(Mutex::new(applied)),
            published: Arc::new(published),
        })
    }

    /// The applied state, cheaply (shared, not copied).
    pub fn current(&self) -> Arc<CatalogueState> {
        self.published.borrow().clone()
    }

    /// Tells of every applied change: the receiver sees the latest state.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<CatalogueState>> {
        self.published.subscribe()
    }

    fn publish(&self, state: &CatalogueState) {
        self.published.send_replace(Arc::new(state.clone()));
    }

    /// The catalogue as this server has applied it.
    pub fn state(&self) -> CatalogueState {
        // A panic elsewhere while holding the lock leaves the last applied state intact
        // (every update replaces it whole): read it rather than pretend it is empty.
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .state
            .clone()
    }

    /// Waits (up to `limit`) until this handle is the last one open on the database: Raft's
    /// workers drop theirs shortly after it shuts down.
    pub async fn last_handle(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while Arc::strong_count(&self.db) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> SResult<T> + Send + 'static,
    ) -> SResult<T> {
        let db = self.db.clone();
        codetta_transport::off_thread(move || f(&db))
            .await
            .map_err(write_err)?
    }

    fn lock(&self) -> SResult<std::sync::MutexGuard<'_, Applied>> {
        self.applied
            .lock()
            .map_err(|_| read_err("catalogue state poisoned"))
    }
}

fn get_meta<T: for<'a> Deserialize<'a>>(db: &Database, key: &str) -> SResult<Option<T>> {
    let txn = db.begin_read().map_err(read_err)?;
    let t = txn.open_table(META).map_err(read_err)?;
    match t.get(key).map_err(read_err)? {
        Some(v) => Ok(Some(postcard::from_bytes(v.value()).map_err(read_err)?)),
        None => Ok(None),
    }
}

fn get_meta_bytes(db: &Database, key: &str) -> SResult<Option<Vec<u8>>> {
    let txn = db.begin_read().map_err(read_err)?;
    let t = txn.open_table(META).map_err(read_err)?;
    Ok(t.get(key).map_err(read_err)?.map(|v| v.value().to_vec()))
}

fn put_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> SResult<()> {
    let bytes = postcard::to_allocvec(value).map_err(write_err)?;
    let txn = db.begin_write().map_err(write_err)?;
    {
        let mut t = txn.open_table(META).map_err(write_err)?;
        t.insert(key, bytes.as_slice()).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)
}

impl RaftLogReader<CatalogueRaft> for CatalogueStorage {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<CatalogueRaft>>> {
        let range: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let t = txn.open_table(LOG).map_err(read_err)?;
            let mut out = Vec::new();
            for item in t.range::<u64>(range).map_err(read_err)? {
                let (_, v) = item.map_err(read_err)?;
                out.push(postcard::from_bytes(v.value()).map_err(read_err)?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<CatalogueRaft> for CatalogueStorage {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> SResult<LogState<CatalogueRaft>> {
        self.blocking(|db| {
            let purged: Option<LogId<u64>> = get_meta(db, "last_purged")?;
            let txn = db.begin_read().map_err(read_err)?;
            let t = txn.open_table(LOG).map_err(read_err)?;
            let last = match t.last().map_err(read_err)? {
                Some((_, v)) => {
                    let e: Entry<CatalogueRaft> =
                        postcard::from_bytes(v.value()).map_err(read_err)?;
                    Some(e.log_id)
                }
                None => None,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last.or(purged),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> SResult<()> {
        let vote = *vote;
        self.blocking(move |db| put_meta(db, "vote", &vote)).await
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<u64>>> {
        self.blocking(|db| get_meta(db, "vote")).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> SResult<()> {
        self.blocking(move |db| put_meta(db, "committed", &committed))
            .await
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<u64>>> {
        Ok(self
            .blocking(|db| get_meta::<Option<LogId<u64>>>(db, "committed"))
            .await?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<CatalogueRaft>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<CatalogueRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<CatalogueRaft>> = entries.into_iter().collect();
        self.blocking(move |db| {
            let written = (|| -> SResult<()> {
                let txn = db.begin_write().map_err(write_err)?;
                {
                    let mut t = txn.open_table(LOG).map_err(write_err)?;
                    for e in &entries {
                        let bytes = postcard::to_allocvec(e).map_err(write_err)?;
                        t.insert(e.log_id.index, bytes.as_slice())
                            .map_err(write_err)?;
                    }
                }
                txn.commit().map_err(write_err)
            })();
            // Raft learns the outcome only once the commit (with its fsync) is done.
            callback.log_io_completed(
                written
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
            written
        })
        .await
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> SResult<()> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut t = txn.open_table(LOG).map_err(write_err)?;
                t.retain_in(log_id.index.., |_, _| false)
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> SResult<()> {
        self.blocking(move |db| {
            let bytes = postcard::to_allocvec(&Some(log_id)).map_err(write_err)?;
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut meta = txn.open_table(META).map_err(write_err)?;
                meta.insert("last_purged", bytes.as_slice())
                    .map_err(write_err)?;
                let mut t = txn.open_table(LOG).map_err(write_err)?;
                t.retain_in(..=log_id.index, |_, _| false)
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })
        .await
    }
}

impl CatalogueStorage {
    /// The current applied state as a snapshot.
    fn snapshot_now(&self) -> SResult<Snapshot<CatalogueRaft>> {
        let applied = self.lock()?.clone();
        let bytes = postcard::to_allocvec(&applied).map_err(read_err)?;
        let meta = SnapshotMeta {
            last_log_id: applied.last,
            last_membership: applied.membership,
            snapshot_id: format!(
                "{}-{}",
                applied.last.map_or(0, |l| l.index),
                applied.state.epoch
            ),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }

    async fn persist(&self, applied: Applied) -> SResult<()> {
        self.blocking(move |db| put_meta(db, "applied", &applied))
            .await
    }
}

impl RaftSnapshotBuilder<CatalogueRaft> for CatalogueStorage {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<CatalogueRaft>> {
        self.snapshot_now()
    }
}

impl RaftStateMachine<CatalogueRaft> for CatalogueStorage {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<u64>>, StoredMembership<u64, CatalogueNode>)> {
        let a = self.lock()?;
        Ok((a.last, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<CatalogueRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (out, snapshot) = {
            let mut a = self.lock()?;
            let mut out = Vec::new();
            for e in entries {
                a.last = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => out.push(Ok(a.state.epoch)),
                    EntryPayload::Normal(change) => {
                        let outcome = a.state.apply(&change);
                        out.push(outcome);
                    }
                    EntryPayload::Membership(m) => {
                        a.membership = StoredMembership::new(Some(e.log_id), m);
                        out.push(Ok(a.state.epoch));
                    }
                }
            }
            (out, a.clone())
        };
        let state = snapshot.state.clone();
        self.persist(snapshot).await?;
        self.publish(&state);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, CatalogueNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        let applied = Applied::decode(snapshot.get_ref()).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::error(e.to_string()),
            ))
        })?;
        *self.lock()? = applied.clone();
        let state = applied.state.clone();
        self.persist(applied).await?;
        self.publish(&state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<CatalogueRaft>>> {
        Ok(Some(self.snapshot_now()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::catalogue::state::{Change, ServerEntry};
    use codetta_wire::message::ReplicaMember;
    use codetta_wire::{ReplicaId, Time, VolumeId};

    fn applied_with_a_departure() -> Applied {
        let mut state = CatalogueState::default();
        for name in ["s1", "s2"] {
            state
                .apply(&Change::AddServer(ServerEntry {
                    name: name.into(),
                    addr: format!("{name}:7000"),
                }))
                .unwrap();
        }
        let vsg = ["s1", "s2"]
            .iter()
            .enumerate()
            .map(|(i, s)| ReplicaMember {
                replica: ReplicaId(i as u64 + 1),
                server: (*s).into(),
            })
            .collect();
        state
            .apply(&Change::CreateVolume {
                id: VolumeId(7),
                name: "home".into(),
                created: Time { secs: 1, nanos: 0 },
                vsg,
            })
            .unwrap();
        state
            .apply(&Change::RemoveReplica {
                volume: "home".into(),
                server: "s2".into(),
                expect_epoch: None,
            })
            .unwrap();
        Applied {
            state,
            ..Applied::default()
        }
    }

    /// A server upgraded in place reads the applied state its older self wrote, which is
    /// today's layout without its last field (the departed list, an empty map: one byte).
    #[test]
    fn the_applied_state_an_older_server_wrote_is_read() {
        let mut applied = applied_with_a_departure();
        let bytes = postcard::to_allocvec(&applied).unwrap();
        assert_eq!(
            Applied::decode(&bytes).unwrap().state,
            applied.state,
            "today's layout"
        );
        applied.state.departed.clear();
        let mut old = postcard::to_allocvec(&applied).unwrap();
        assert_eq!(old.pop(), Some(0), "an empty map is one byte");
        assert!(postcard::from_bytes::<Applied>(&old).is_err());
        let read = Applied::decode(&old).unwrap();
        assert_eq!(read.state, applied.state);
        assert_eq!(read.state.volume("home").unwrap().vsg.len(), 1);
        assert!(Applied::decode(&old[..old.len() - 1]).is_err(), "cut short");
        // A damaged departed list is an error, not an older layout without it.
        let mut applied = applied_with_a_departure();
        applied.state.departed.get_mut(&7).unwrap()[0].server = "s2-with-a-longer-name".into();
        let new = postcard::to_allocvec(&applied).unwrap();
        assert!(
            Applied::decode(&new[..new.len() - 3]).is_err(),
            "cut in the list"
        );
    }
}
