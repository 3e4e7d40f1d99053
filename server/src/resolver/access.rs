//! How a coordinator reaches one replica of a volume during resolution.

use crate::store::{ChangePage, MAX_BUCKET_OBJECTS, Store};
use bytes::Bytes;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::{Fid, FsError, History, ReplicaId, VersionVector, VolumeId};
use std::future::Future;
use std::sync::Arc;

/// Live objects with their state digests, and the vnode to continue after (`None`: done).
pub type ObjectPage = (Vec<(Fid, [u8; 32])>, Option<u64>);

/// One page of directory entries: (cookie, name, fid) each, and whether it is the last.
pub type DirPage = (Vec<(u64, Vec<u8>, Fid)>, bool);

/// One replica, as the resolver calls it. Every method is one request; errors from an
/// unreachable replica are `Storage`.
pub trait ReplicaAccess: Send + Sync {
    /// The replica id.
    fn replica(&self) -> ReplicaId;
    /// The server holding it, for logs.
    fn name(&self) -> &str;
    fn view(&self, fid: Fid) -> impl Future<Output = Result<ReplicaView, FsError>> + Send;
    /// Leases `fids` to the coordinator `holder` for `ttl_ms` (rule 6).
    fn lease(
        &self,
        fids: &[Fid],
        holder: u64,
        ttl_ms: u32,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    /// One round of collecting `fid`'s tombstone (rule 8; see [`Store::forget`]).
    fn forget(
        &self,
        fid: Fid,
        drop: bool,
        mark: bool,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    /// Ends `holder`'s leases on `fids`.
    fn release(
        &self,
        fids: &[Fid],
        holder: u64,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    /// This replica's changed objects after change number `since` (rule 12).
    fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> impl Future<Output = Result<ChangePage, FsError>> + Send;
    /// The bucket digests of the volume's objects, live and deleted (rule 12).
    fn volume_digests(
        &self,
        volume: VolumeId,
    ) -> impl Future<Output = Result<Vec<[u8; 32]>, FsError>> + Send;
    /// Live objects in `buckets` after vnode `after`: (fid, digest), and where to go on.
    fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> impl Future<Output = Result<ObjectPage, FsError>> + Send;
    /// One page of directory entries after `cookie`: (cookie, name, fid), and eof.
    fn list(
        &self,
        dir: Fid,
        cookie: u64,
        max: u32,
    ) -> impl Future<Output = Result<DirPage, FsError>> + Send;
    fn block_digests(
        &self,
        fid: Fid,
    ) -> impl Future<Output = Result<Vec<[u8; 32]>, FsError>> + Send;
    fn block_map(
        &self,
        fid: Fid,
        first: u64,
        count: u32,
    ) -> impl Future<Output = Result<Vec<BlockEntry>, FsError>> + Send;
    fn missing_chunks(
        &self,
        hashes: &[[u8; 32]],
    ) -> impl Future<Output = Result<Vec<[u8; 32]>, FsError>> + Send;
    fn chunks(
        &self,
        hashes: &[[u8; 32]],
    ) -> impl Future<Output = Result<Vec<Bytes>, FsError>> + Send;
    fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
    fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> impl Future<Output = Result<(), FsError>> + Send;
}

/// A replica in a store this process holds. Calls run inline: use it from blocking
/// contexts or tests; the server's async side wraps it in `spawn_blocking` via
/// [`LocalReplica::blocking`].
#[derive(Clone)]
pub struct LocalReplica {
    store: Arc<Store>,
    replica: ReplicaId,
    name: String,
    blocking: bool,
}

impl LocalReplica {
    /// Calls run inline on the caller's thread.
    pub fn new(store: Arc<Store>, replica: ReplicaId, name: &str) -> LocalReplica {
        LocalReplica {
            store,
            replica,
            name: name.to_string(),
            blocking: false,
        }
    }

    /// Calls run on tokio's blocking pool.
    pub fn blocking(store: Arc<Store>, replica: ReplicaId, name: &str) -> LocalReplica {
        LocalReplica {
            blocking: true,
            ..LocalReplica::new(store, replica, name)
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, FsError> + Send + 'static,
    ) -> Result<T, FsError> {
        if !self.blocking {
            return f(&self.store);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| FsError::Storage(format!("store task: {e}")))?
    }
}

impl ReplicaAccess for LocalReplica {
    fn replica(&self) -> ReplicaId {
        self.replica
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn view(&self, fid: Fid) -> Result<ReplicaView, FsError> {
        self.run(move |s| s.view(fid)).await
    }

    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> Result<(), FsError> {
        self.store.lease(fids, holder, ttl_ms)
    }

    async fn release(&self, fids: &[Fid], holder: u64) -> Result<(), FsError> {
        self.store.release(fids, holder)
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> Result<(), FsError> {
        self.run(move |s| s.forget(fid, drop, mark)).await
    }

    async fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> Result<ChangePage, FsError> {
        self.run(move |s| s.changes(volume, since, max, u64::from(older_than_ms)))
            .await
    }

    async fn volume_digests(&self, volume: VolumeId) -> Result<Vec<[u8; 32]>, FsError> {
        self.run(move |s| s.volume_digests(volume)).await
    }

    async fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> Result<ObjectPage, FsError> {
        let buckets = buckets.to_vec();
        self.run(move |s| s.bucket_objects(volume, &buckets, after, MAX_BUCKET_OBJECTS))
            .await
    }

    async fn list(&self, dir: Fid, cookie: u64, max: u32) -> Result<DirPage, FsError> {
        self.run(move |s| {
            let (_, entries, eof) = s.readdir(dir, cookie, max, false)?;
            Ok((
                entries
                    .into_iter()
                    .map(|e| (e.cookie, e.name.as_bytes().to_vec(), e.fid))
                    .collect(),
                eof,
            ))
        })
        .await
    }

    async fn block_digests(&self, fid: Fid) -> Result<Vec<[u8; 32]>, FsError> {
        self.run(move |s| s.block_digests(fid)).await
    }

    async fn block_map(
        &self,
        fid: Fid,
        first: u64,
        count: u32,
    ) -> Result<Vec<BlockEntry>, FsError> {
        self.run(move |s| s.block_map(fid, first, count)).await
    }

    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, FsError> {
        let hashes = hashes.to_vec();
        self.run(move |s| s.missing_chunks(&hashes)).await
    }

    async fn chunks(&self, hashes: &[[u8; 32]]) -> Result<Vec<Bytes>, FsError> {
        let hashes = hashes.to_vec();
        let chunks = self.run(move |s| s.chunks(&hashes)).await?;
        Ok(chunks.into_iter().map(Bytes::from).collect())
    }

    async fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> Result<(), FsError> {
        let expect = expect.clone();
        let blocks = blocks.to_vec();
        let chunks = chunks.to_vec();
        self.run(move |s| {
            let refs: Vec<([u8; 32], &[u8])> = chunks.iter().map(|(h, b)| (*h, &b[..])).collect();
            s.install_blocks(fid, &expect, &blocks, &refs)
        })
        .await
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> Result<(), FsError> {
        let (expect, meta) = (expect.clone(), meta.clone());
        self.run(move |s| s.install_meta(fid, &expect, &meta)).await
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> Result<(), FsError> {
        let (expect, version, history) = (expect.clone(), version.clone(), history.clone());
        self.run(move |s| s.install_version(fid, &expect, &version, &history))
            .await
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> Result<(), FsError> {
        let (expect, version, history, placement) = (
            expect.clone(),
            version.clone(),
            history.clone(),
            placement.clone(),
        );
        self.run(move |s| s.install_delete(fid, &expect, &version, &history, &placement))
            .await
    }
}
