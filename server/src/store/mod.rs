//! The server's storage: every volume replica it holds, in one redb database file.
//!
//! What must hold:
//! - **One transaction per batch.** [`Store::apply_batch`] applies a client's sequenced
//!   records in one write transaction and commits it durably once (group commit). Either
//!   the whole batch commits or nothing of it does.
//! - **At most once** (replication rule 3). The highest sequence number applied per
//!   (client incarnation, volume) is stored in the same transaction as the updates; a resent
//!   record is answered, not applied again.
//! - **Replicated state is a pure function of the records.** Fids and times come from the
//!   records; the server's clock never enters replicated state, so two replicas that applied
//!   the same records have equal attributes and content tags (rule 5).
//! - **Never return bad data.** Chunks are verified against their hash on every read.
//!
//! Layout: `tables` declares every table (the byte-level formats are in its and `codec`'s
//! docs), `content` blocks and chunks, `namespace` directory operations, `tags` content
//! tags, `apply` the batch driver.
//!
//! Durability: every write transaction commits with redb's default `Durability::Immediate`
//! (fsync before `commit` returns). After an I/O error at commit (a full disk, say) redb
//! refuses further transactions until the database is reopened; the caller sees
//! `FsError::NoSpace` or `FsError::Storage` and must reopen the store.

mod apply;
mod codec;
pub mod collect;
mod content;
mod digests;
mod group;
mod install;
mod migrate;
mod namespace;
mod plan;
mod reads;
mod resolve;
use crate::clock::{SharedClock, SystemClock};
pub use apply::{Shipment, Shipped};
pub use digests::MAX_BUCKET_OBJECTS;
pub use resolve::{ChangePage, MAX_CHUNKS_PER_CALL};
mod lookup;
mod tables;
mod tags;
mod write_tables;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
pub(crate) mod testutil;

use codec::{Dirent, Vnode, VolumeRec};
use codetta_wire::message::{ObjectState, ReplicaMember, SpaceInfo, VolumeInfo};
use codetta_wire::tag::SetDigest;
use codetta_wire::{
    Attrs, Fid, FileType, FsError, Incarnation, Name, ReplicaId, Time, VersionVector, VolumeId,
};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::{Path, PathBuf};
use tables::{DirentKey, VnodeKey};
use thiserror::Error;

/// Longest symlink target in bytes.
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// Largest client incarnation: client vnodes (incarnation << 32 | counter) stay below
/// 2^63, leaving the upper half of the vnode space to objects resolution makes.
pub const MAX_INCARNATION: u32 = (1 << 31) - 1;

/// Longest volume name in bytes.
pub const MAX_VOLUME_NAME: usize = 255;

/// Decodes `bytes` as every persisted record type (see [`crate::fuzzing::store_records`]).
pub(crate) fn fuzz_records(bytes: &[u8]) {
    use crate::decode_check::round_trip;
    fn check<T>(table: &'static str, bytes: &[u8])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + PartialEq,
    {
        round_trip(
            bytes,
            |b| codec::decode::<T>(table, b),
            |v| codec::encode(v).unwrap_or_default(),
        );
    }
    check::<codec::Vnode>("vnodes", bytes);
    check::<codec::Tombstone>("tombstones", bytes);
    check::<codec::Dirent>("dirents", bytes);
    check::<codec::BlockRef>("blocks", bytes);
    check::<codec::ChunkEntry>("chunk_index", bytes);
    check::<codec::VolumeRec>("volumes", bytes);
    check::<codec::Gaps>("applied_gaps", bytes);
    check::<apply::AppliedRec>("applied", bytes);
    check::<u64>("gc_floors", bytes);
    check::<u32>("collected", bytes);
    check::<String>("departed", bytes);
    migrate::fuzz_old_records(bytes);
}

/// The objects a write changed: whoever holds promises on them must hear of it (the
/// store keeps no promises; see [`crate::volatile`]).
pub type Changed = Vec<Fid>;

/// How a store is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Capacity for file contents in bytes: a write that could take the stored chunk bytes
    /// past it is answered [`FsError::NoSpace`]. `None`: limited by the file system only.
    pub capacity_bytes: Option<u64>,
    /// redb's page cache in bytes; `None`: [`DEFAULT_CACHE_BYTES`]. (redb's own default,
    /// 1 GiB, is what a server's resident memory would grow to under a large write.)
    pub cache_bytes: Option<usize>,
    /// Entries each volume's change sequence keeps; `None`: `write_tables::MAX_CHANGES_KEPT`. A
    /// peer further behind compares the whole volume instead (rule 12).
    pub changes_kept: Option<u64>,
}

/// The page cache a store gets unless configured otherwise.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Failures of the storage layer. Callers over the wire see them as [`FsError`] (see the
/// `From` impl): a full disk is `NoSpace`, anything else storage-level is `Storage`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed (I/O, corruption detected by redb, a poisoned transaction, ...).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored value did not decode: the file is damaged or from an unknown format.
    #[error("undecodable {table} value: {reason}")]
    Decode { table: &'static str, reason: String },
    /// The database was written by a format this build does not read.
    #[error("database format version {found} is not supported (this build reads {supported})")]
    Format { found: u64, supported: u64 },
    /// The stored data contradicts itself (an entry naming a missing object, a parent
    /// chain that does not reach the root): the file is damaged.
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
    /// The file system under the store failed (statvfs, stat).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A file-system level answer (not found, exists, stale, ...).
    #[error(transparent)]
    Fs(#[from] FsError),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// True for an I/O error that means the disk is full.
fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> FsError {
        match e {
            StoreError::Fs(e) => e,
            StoreError::Db(redb::Error::Io(io)) if is_no_space(&io) => FsError::NoSpace,
            StoreError::Io { source, .. } if is_no_space(&source) => FsError::NoSpace,
            other => FsError::Storage(other.to_string()),
        }
    }
}

/// Space figures beyond [`SpaceInfo`], for `status` and for measuring amplification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageStats {
    /// Size of the database file.
    pub file_bytes: u64,
    /// Bytes of redb pages in use.
    pub allocated_bytes: u64,
    /// Bytes inside allocated pages that hold nothing (reclaimable by compaction).
    pub fragmented_bytes: u64,
    /// Logical bytes of all distinct stored chunks.
    pub chunk_bytes: u64,
    /// Number of distinct stored chunks.
    pub chunks: u64,
}

/// The storage of one server: volumes, objects, contents, applied-update records.
///
/// `Store` is `Send + Sync`; reads run concurrently, writes are serialised by redb.
pub struct Store {
    db: Database,
    path: PathBuf,
    options: StoreOptions,
    /// Where the ages of changes and tombstones read the time.
    clock: SharedClock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

type R<T> = Result<T, StoreError>;

/// The layout of the whole store (tables and value shapes); a store of another format is
/// refused at open, unless [`migrate`] knows how to bring it here. 2: volumes keep the
/// catalogue epoch of their group. 3: chunks are stored under sequential ids, found by hash
/// through an index. 4: directory entries are keyed by cookies below 2^63. 5: object
/// records list every name of the object (hard links).
const STORE_FORMAT: u64 = 6;

fn meta_u64(meta: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> R<Option<u64>> {
    match meta.get(key)? {
        Some(g) => Ok(Some(codec::decode("meta", g.value())?)),
        None => Ok(None),
    }
}

fn put_meta_u64(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    v: u64,
) -> R<()> {
    meta.insert(key, codec::encode(&v)?.as_slice())?;
    Ok(())
}

/// Loads the object `fid`: `Stale` if it is gone or its uniquifier differs,
/// `UnknownVolume` if the volume is not held here.
pub(crate) fn load_vnode(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    volumes: &impl ReadableTable<u32, &'static [u8]>,
    fid: Fid,
) -> R<Vnode> {
    match vnodes.get((fid.volume.0, fid.vnode))? {
        Some(g) => {
            let v: Vnode = codec::decode("vnodes", g.value())?;
            if v.unique == fid.unique {
                Ok(v)
            } else {
                Err(FsError::Stale.into())
            }
        }
        None if volumes.get(fid.volume.0)?.is_none() => Err(FsError::UnknownVolume.into()),
        None => Err(FsError::Stale.into()),
    }
}

/// Looks up `name` in directory `dir` (a point get: the cookie is a function of the name).
pub(crate) fn get_entry(
    dirents: &impl ReadableTable<DirentKey, &'static [u8]>,
    dir: Fid,
    name: &Name,
) -> R<Option<Dirent>> {
    match dirents.get((dir.volume.0, dir.vnode, name.cookie(), name.as_bytes()))? {
        Some(g) => Ok(Some(codec::decode("dirents", g.value())?)),
        None => Ok(None),
    }
}

/// The attributes clients see, derived from the stored record.
fn attrs(v: &Vnode) -> Attrs {
    Attrs {
        ftype: v.ftype,
        mode: v.mode,
        uid: v.uid,
        gid: v.gid,
        size: v.size,
        nlink: match v.ftype {
            FileType::Directory => u32::try_from(v.subdirs.saturating_add(2)).unwrap_or(u32::MAX),
            _ => u32::try_from(v.name_count()).unwrap_or(u32::MAX),
        },
        atime: v.atime,
        mtime: v.mtime,
        ctime: v.ctime,
    }
}

/// The replicated state of `fid` as this replica holds it.
pub(crate) fn object_state(fid: Fid, v: &Vnode) -> ObjectState {
    ObjectState {
        fid,
        attrs: attrs(v),
        version: v.version.clone(),
        tag: tags::tag(v),
    }
}

/// The record of a new object, with every field a function of the update.
pub(crate) fn new_vnode(
    unique: u32,
    ftype: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    now: Time,
) -> Vnode {
    Vnode {
        unique,
        ftype,
        mode: mode & 0o7777,
        uid,
        gid,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        version: VersionVector::new(),
        history: codetta_wire::History::new(),
        digest: SetDigest::default(),
        parent: 0,
        name: Vec::new(),
        subdirs: 0,
        target: Vec::new(),
        verifier: None,
        links: Vec::new(),
    }
}

impl Store {
    /// Opens the store at `path`, creating the database and its tables if needed, on the
    /// machine's clocks.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with_clock(path, options, SystemClock::shared())
    }

    /// [`Store::open`] reading the time from `clock` (the ages of changes and tombstones).
    pub fn open_with_clock(
        path: &Path,
        options: StoreOptions,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES))
            .create(path)?;
        Store::from_database(db, path, options, clock)
    }

    /// A store on `backend` instead of a file: the crash tests inject failures and torn
    /// writes through it. Space figures then come from the current directory's file system.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        options: StoreOptions,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES))
            .create_with_backend(backend)?;
        Store::from_database(db, Path::new(""), options, clock)
    }

    /// Brings `db` to this build's format, makes every table and wraps it.
    fn from_database(
        db: Database,
        path: &Path,
        options: StoreOptions,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        let found = {
            let txn = db.begin_write()?;
            let found = meta_u64(&txn.open_table(tables::META)?, tables::meta::FORMAT)?;
            txn.abort()?;
            found
        };
        match found {
            Some(found) if found != STORE_FORMAT => migrate::upgrade(&db, found)?,
            _ => {}
        }
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(tables::META)?;
            if meta_u64(&meta, tables::meta::FORMAT)?.is_none() {
                put_meta_u64(&mut meta, tables::meta::FORMAT, STORE_FORMAT)?;
            }
            txn.open_table(tables::VOLUMES)?;
            txn.open_table(tables::VOLUME_NAMES)?;
            txn.open_table(tables::VNODES)?;
            txn.open_table(tables::DIRENTS)?;
            txn.open_table(tables::BLOCKS)?;
            txn.open_table(tables::CHUNK_INDEX)?;
            txn.open_table(tables::CHUNK_HEADS)?;
            txn.open_table(tables::CHUNK_TAILS)?;
            txn.open_table(tables::APPLIED)?;
            txn.open_table(tables::INCARNATIONS)?;
            txn.open_table(tables::COP2_PENDING)?;
            txn.open_table(tables::TOMBSTONES)?;
            txn.open_table(tables::CHANGES)?;
            txn.open_table(tables::PEER_CURSORS)?;
            txn.open_table(tables::CONFLICTS)?;
            txn.open_table(tables::GC_QUEUE)?;
            txn.open_table(tables::GC_FLOORS)?;
            txn.open_table(tables::COLLECTED)?;
            txn.open_table(tables::APPLIED_GAPS)?;
            txn.open_table(tables::PURGING)?;
            txn.open_table(tables::INSTALLING)?;
            txn.open_table(tables::DEPARTED)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
            options,
            clock,
        })
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn changes_kept(&self) -> u64 {
        self.options
            .changes_kept
            .unwrap_or(write_tables::MAX_CHANGES_KEPT)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_txn(&self) -> R<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    /// A volume id not held here, chosen at random (the coordinator of a volume creation
    /// proposes it; every member refuses an id it already holds).
    pub fn fresh_volume_id(&self) -> Result<VolumeId, FsError> {
        let txn = self.read_txn()?;
        let volumes = txn.open_table(tables::VOLUMES).map_err(StoreError::from)?;
        loop {
            let id = codetta_wire::entropy::random_u32();
            if id > 1 && volumes.get(id).map_err(StoreError::from)?.is_none() {
                return Ok(VolumeId(id));
            }
        }
    }

    /// Creates this server's replica `replica` of `volume` with an empty root directory
    /// (mode 0755, owner 0:0, every time `now`): every member of the group gets the same
    /// root, so their tags agree from the start. Creating the same replica again is a no-op
    /// (a coordinator's retry); a different volume with the name or id is `Exists`.
    pub fn create_replica(
        &self,
        volume: &VolumeInfo,
        replica: ReplicaId,
        now: Time,
    ) -> Result<VolumeInfo, FsError> {
        self.create_replica_knowing(volume, replica, now, &[])
    }

    /// [`Store::create_replica`] for a replica added to a group that others left before:
    /// `departed` (the catalogue's list) are noted with it, in the same transaction, so
    /// its tombstones wait for them as its elders' do (`tables::DEPARTED`). Members of
    /// the group among them are skipped.
    pub fn create_replica_knowing(
        &self,
        volume: &VolumeInfo,
        replica: ReplicaId,
        now: Time,
        departed: &[ReplicaMember],
    ) -> Result<VolumeInfo, FsError> {
        let name = volume.name.as_str();
        if name.is_empty() || name.len() > MAX_VOLUME_NAME || name.chars().any(char::is_control) {
            return Err(FsError::Invalid);
        }
        if volume.root != Fid::root(volume.id)
            || !volume.vsg.iter().any(|m| m.replica == replica)
            || replica.0 == 0
        {
            return Err(FsError::Invalid);
        }
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let created = (|| -> R<bool> {
            let mut names = txn.open_table(tables::VOLUME_NAMES)?;
            let mut volumes = txn.open_table(tables::VOLUMES)?;
            if let Some(g) = volumes.get(volume.id.0)? {
                let rec: VolumeRec = codec::decode("volumes", g.value())?;
                if rec.name == name && rec.replica == replica {
                    return Ok(false);
                }
                return Err(FsError::Exists.into());
            }
            if names.get(name)?.is_some() {
                return Err(FsError::Exists.into());
            }
            let mut meta = txn.open_table(tables::META)?;
            let vnode_count = meta_u64(&meta, tables::meta::VNODES)?.unwrap_or(0);
            put_meta_u64(&mut meta, tables::meta::VNODES, vnode_count + 1)?;
            let rec = VolumeRec {
                name: name.to_owned(),
                replica,
                root: volume.root,
                vsg: volume.vsg.clone(),
                epoch: volume.epoch,
            };
            volumes.insert(volume.id.0, codec::encode(&rec)?.as_slice())?;
            names.insert(name, codec::encode(&volume.id.0)?.as_slice())?;
            let mut departures = txn.open_table(tables::DEPARTED)?;
            for gone in departed
                .iter()
                .filter(|d| !volume.vsg.iter().any(|m| m.server == d.server))
            {
                departures.insert(
                    (volume.id.0, gone.replica.0),
                    codec::encode(&gone.server)?.as_slice(),
                )?;
            }
            let mut dir = new_vnode(volume.root.unique, FileType::Directory, 0o755, 0, 0, now);
            dir.parent = Fid::ROOT_VNODE;
            txn.open_table(tables::VNODES)?.insert(
                (volume.id.0, volume.root.vnode),
                codec::encode(&dir)?.as_slice(),
            )?;
            Ok(true)
        })();
        match created {
            Ok(created) => {
                txn.commit().map_err(StoreError::from)?;
                if created {
                    tracing::info!(
                        volume = volume.id.0,
                        name,
                        replica = replica.0,
                        "replica created"
                    );
                }
                Ok(volume.clone())
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e.into())
            }
        }
    }

    fn volume_rec(&self, txn: &ReadTransaction, id: VolumeId) -> R<VolumeRec> {
        let volumes = txn.open_table(tables::VOLUMES)?;
        match volumes.get(id.0)? {
            Some(g) => codec::decode("volumes", g.value()),
            None => Err(FsError::UnknownVolume.into()),
        }
    }

    /// The volume called `name`, or `UnknownVolume`.
    pub fn volume_by_name(&self, name: &str) -> Result<VolumeInfo, FsError> {
        let txn = self.read_txn()?;
        let names = txn
            .open_table(tables::VOLUME_NAMES)
            .map_err(StoreError::from)?;
        let id: u32 = match names.get(name).map_err(StoreError::from)? {
            Some(g) => codec::decode("volume_names", g.value())?,
            None => return Err(FsError::UnknownVolume),
        };
        Ok(self.volume_rec(&txn, VolumeId(id))?.info(VolumeId(id)))
    }

    /// The volume `id` and this server's replica of it.
    pub fn volume_info(&self, id: VolumeId) -> Result<(VolumeInfo, ReplicaId), FsError> {
        let txn = self.read_txn()?;
        let rec = self.volume_rec(&txn, id)?;
        let replica = rec.replica;
        Ok((rec.info(id), replica))
    }

    /// This server's replica id for `volume`: the key its updates bump in version vectors.
    pub fn replica_of(&self, volume: VolumeId) -> Result<ReplicaId, FsError> {
        let txn = self.read_txn()?;
        Ok(self.volume_rec(&txn, volume)?.replica)
    }

    /// Every volume held here, by id.
    pub fn list_volumes(&self) -> Result<Vec<VolumeInfo>, FsError> {
        let txn = self.read_txn()?;
        let volumes = txn.open_table(tables::VOLUMES).map_err(StoreError::from)?;
        let mut out = Vec::new();
        for item in volumes.range::<u32>(..).map_err(StoreError::from)? {
            let (k, v) = item.map_err(StoreError::from)?;
            let rec: VolumeRec = codec::decode("volumes", v.value())?;
            out.push(rec.info(VolumeId(k.value())));
        }
        Ok(out)
    }

    /// Allocates a client incarnation (random, non-zero, never handed out or claimed here
    /// before; recorded durably) and a random non-zero uniquifier for its fids. The client
    /// then claims it on the other servers ([`Store::claim_incarnation`]).
    pub fn new_incarnation(&self) -> Result<(Incarnation, u32), FsError> {
        loop {
            let n = codetta_wire::entropy::random_u32() & MAX_INCARNATION;
            if n == 0 {
                continue;
            }
            match self.claim_incarnation(Incarnation(n)) {
                Ok(()) => return Ok((Incarnation(n), codetta_wire::entropy::random_u32().max(1))),
                Err(FsError::Exists) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Records `incarnation` as taken; `Exists` if it already was.
    pub fn claim_incarnation(&self, incarnation: Incarnation) -> Result<(), FsError> {
        if incarnation.0 == 0 || incarnation.0 > MAX_INCARNATION {
            return Err(FsError::Invalid);
        }
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let claimed = (|| -> R<()> {
            let mut t = txn.open_table(tables::INCARNATIONS)?;
            if t.get(incarnation.0)?.is_some() {
                return Err(FsError::Exists.into());
            }
            t.insert(incarnation.0, [].as_slice())?;
            Ok(())
        })();
        match claimed {
            Ok(()) => Ok(txn.commit().map_err(StoreError::from)?),
            Err(e) => {
                let _ = txn.abort();
                Err(e.into())
            }
        }
    }

    /// Space figures. `used_bytes` is the logical size of the stored chunks (deduplicated),
    /// `files` the number of objects. With a configured capacity, `total` is it and `free`
    /// what is left of it; otherwise both come from the file system holding the database
    /// (statvfs: its size and the space available to us), so `used + free` need not equal
    /// `total` (other files share the disk).
    pub fn space(&self) -> Result<SpaceInfo, FsError> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(tables::META).map_err(StoreError::from)?;
        let used = meta_u64(&meta, tables::meta::CHUNK_BYTES)?.unwrap_or(0);
        let files = meta_u64(&meta, tables::meta::VNODES)?.unwrap_or(0);
        let (total, free) = match self.options.capacity_bytes {
            Some(cap) => (cap, cap.saturating_sub(used)),
            None => {
                let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty());
                let st = rustix::fs::statvfs(dir.unwrap_or(Path::new("."))).map_err(|e| {
                    StoreError::Io {
                        what: "statvfs".into(),
                        source: e.into(),
                    }
                })?;
                (
                    st.f_blocks.saturating_mul(st.f_frsize),
                    st.f_bavail.saturating_mul(st.f_frsize),
                )
            }
        };
        Ok(SpaceInfo {
            total_bytes: total,
            free_bytes: free,
            used_bytes: used,
            files,
        })
    }

    /// Database-level space figures (takes the write lock briefly: redb reports page
    /// statistics from a write transaction).
    pub fn storage_stats(&self) -> Result<StorageStats, FsError> {
        let file_bytes = std::fs::metadata(&self.path)
            .map_err(|source| StoreError::Io {
                what: format!("stat {}", self.path.display()),
                source,
            })?
            .len();
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let stats = (|| -> R<StorageStats> {
            let s = txn.stats()?;
            let meta = txn.open_table(tables::META)?;
            let index = txn.open_table(tables::CHUNK_INDEX)?;
            Ok(StorageStats {
                file_bytes,
                allocated_bytes: s.allocated_pages().saturating_mul(s.page_size() as u64),
                fragmented_bytes: s.fragmented_bytes(),
                chunk_bytes: meta_u64(&meta, tables::meta::CHUNK_BYTES)?.unwrap_or(0),
                chunks: index.len()?,
            })
        })();
        let _ = txn.abort();
        Ok(stats?)
    }

    /// Compacts the database file so freed pages go back to the file system. Returns
    /// whether anything was compacted. Needs exclusive access (no live transactions).
    pub fn compact(&mut self) -> Result<bool, FsError> {
        Ok(self.db.compact().map_err(StoreError::from)?)
    }
}

#[cfg(test)]
mod tests;
