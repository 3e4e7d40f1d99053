//! How a coordinator reaches one replica of a volume during resolution.

use crate::peer_error::{PeerError, PeerResult};
use crate::store::{ChangePage, Changed, MAX_BUCKET_OBJECTS, Store};
use crate::volatile::Volatile;
use bytes::Bytes;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::{Fid, FsError, History, ReplicaId, VersionVector, VolumeId};
use std::future::Future;
use std::sync::Arc;

/// Live objects with their state digests, and the vnode to continue after (`None`: done).
pub type ObjectPage = (Vec<(Fid, [u8; 32])>, Option<u64>);

/// One page of directory entries: (cookie, name, fid) each, and whether it is the last.
pub type DirPage = (Vec<(u64, Vec<u8>, Fid)>, bool);

/// One replica, as the resolver calls it. Every method is one request; a failure says
/// whether the replica answered or why it did not ([`PeerError`]).
pub trait ReplicaAccess: Send + Sync {
    /// The replica id.
    fn replica(&self) -> ReplicaId;
    /// The server holding it, for logs.
    fn name(&self) -> &str;
    fn view(&self, fid: Fid) -> impl Future<Output = PeerResult<ReplicaView>> + Send;
    /// Leases `fids` to the coordinator `holder` for `ttl_ms` (rule 6).
    fn lease(
        &self,
        fids: &[Fid],
        holder: u64,
        ttl_ms: u32,
    ) -> impl Future<Output = PeerResult<()>> + Send;
    /// One round of collecting `fid`'s tombstone (rule 8; see [`Store::forget`]).
    fn forget(
        &self,
        fid: Fid,
        drop: bool,
        mark: bool,
    ) -> impl Future<Output = PeerResult<()>> + Send;
    /// Ends `holder`'s leases on `fids`.
    fn release(&self, fids: &[Fid], holder: u64) -> impl Future<Output = PeerResult<()>> + Send;
    /// This replica's changed objects after change number `since` (rule 12).
    fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> impl Future<Output = PeerResult<ChangePage>> + Send;
    /// The bucket digests of the volume's objects, live and deleted (rule 12).
    fn volume_digests(
        &self,
        volume: VolumeId,
    ) -> impl Future<Output = PeerResult<Vec<[u8; 32]>>> + Send;
    /// Live objects in `buckets` after vnode `after`: (fid, digest), and where to go on.
    fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> impl Future<Output = PeerResult<ObjectPage>> + Send;
    /// One page of directory entries after `cookie`: (cookie, name, fid), and eof.
    fn list(
        &self,
        dir: Fid,
        cookie: u64,
        max: u32,
    ) -> impl Future<Output = PeerResult<DirPage>> + Send;
    fn block_digests(&self, fid: Fid) -> impl Future<Output = PeerResult<Vec<[u8; 32]>>> + Send;
    fn block_map(
        &self,
        fid: Fid,
        first: u64,
        count: u32,
    ) -> impl Future<Output = PeerResult<Vec<BlockEntry>>> + Send;
    fn missing_chunks(
        &self,
        hashes: &[[u8; 32]],
    ) -> impl Future<Output = PeerResult<Vec<[u8; 32]>>> + Send;
    fn chunks(&self, hashes: &[[u8; 32]]) -> impl Future<Output = PeerResult<Vec<Bytes>>> + Send;
    fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> impl Future<Output = PeerResult<()>> + Send;
    fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> impl Future<Output = PeerResult<()>> + Send;
    fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> impl Future<Output = PeerResult<()>> + Send;
    fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> impl Future<Output = PeerResult<()>> + Send;
}

/// A replica in a store this process holds. Calls run inline: use it from blocking
/// contexts or tests; the server's async side wraps it in `spawn_blocking` via
/// [`LocalReplica::blocking`].
#[derive(Clone)]
pub struct LocalReplica {
    store: Arc<Store>,
    volatile: Arc<Volatile>,
    replica: ReplicaId,
    name: String,
    blocking: bool,
}

impl LocalReplica {
    /// Calls run inline on the caller's thread; leases and promises are `volatile`'s.
    pub fn new(
        store: Arc<Store>,
        volatile: Arc<Volatile>,
        replica: ReplicaId,
        name: &str,
    ) -> LocalReplica {
        LocalReplica {
            store,
            volatile,
            replica,
            name: name.to_string(),
            blocking: false,
        }
    }

    /// Calls run on tokio's blocking pool.
    pub fn blocking(
        store: Arc<Store>,
        volatile: Arc<Volatile>,
        replica: ReplicaId,
        name: &str,
    ) -> LocalReplica {
        LocalReplica {
            blocking: true,
            ..LocalReplica::new(store, volatile, replica, name)
        }
    }

    /// An install's outcome; the promises on what it changed are broken.
    fn installed(&self, outcome: PeerResult<Changed>) -> PeerResult<()> {
        self.volatile.changed(&outcome?);
        Ok(())
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, FsError> + Send + 'static,
    ) -> PeerResult<T> {
        if !self.blocking {
            return Ok(f(&self.store)?);
        }
        let store = self.store.clone();
        codetta_transport::off_thread(move || f(&store))
            .await
            .map_err(|e| PeerError::Answer(FsError::Internal(format!("store task: {e}"))))?
            .map_err(PeerError::Answer)
    }
}

impl ReplicaAccess for LocalReplica {
    fn replica(&self) -> ReplicaId {
        self.replica
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn view(&self, fid: Fid) -> PeerResult<ReplicaView> {
        self.run(move |s| s.view(fid)).await
    }

    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> PeerResult<()> {
        Ok(self.volatile.lease(fids, holder, ttl_ms)?)
    }

    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        Ok(self.volatile.release(fids, holder)?)
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        self.run(move |s| s.forget(fid, drop, mark)).await
    }

    async fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> PeerResult<ChangePage> {
        self.run(move |s| s.changes(volume, since, max, u64::from(older_than_ms)))
            .await
    }

    async fn volume_digests(&self, volume: VolumeId) -> PeerResult<Vec<[u8; 32]>> {
        self.run(move |s| s.volume_digests(volume)).await
    }

    async fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> PeerResult<ObjectPage> {
        let buckets = buckets.to_vec();
        self.run(move |s| s.bucket_objects(volume, &buckets, after, MAX_BUCKET_OBJECTS))
            .await
    }

    async fn list(&self, dir: Fid, cookie: u64, max: u32) -> PeerResult<DirPage> {
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

    async fn block_digests(&self, fid: Fid) -> PeerResult<Vec<[u8; 32]>> {
        self.run(move |s| s.block_digests(fid)).await
    }

    async fn block_map(&self, fid: Fid, first: u64, count: u32) -> PeerResult<Vec<BlockEntry>> {
        self.run(move |s| s.block_map(fid, first, count)).await
    }

    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<[u8; 32]>> {
        let hashes = hashes.to_vec();
        self.run(move |s| s.missing_chunks(&hashes)).await
    }

    async fn chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<Bytes>> {
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
    ) -> PeerResult<()> {
        let expect = expect.clone();
        let blocks = blocks.to_vec();
        let chunks = chunks.to_vec();
        let outcome = self
            .run(move |s| {
                let refs: Vec<([u8; 32], &[u8])> =
                    chunks.iter().map(|(h, b)| (*h, &b[..])).collect();
                s.install_blocks(fid, &expect, &blocks, &refs)
            })
            .await;
        self.installed(outcome)
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        let (expect, meta) = (expect.clone(), meta.clone());
        let outcome = self.run(move |s| s.install_meta(fid, &expect, &meta)).await;
        self.installed(outcome)
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        let (expect, version, history) = (expect.clone(), version.clone(), history.clone());
        let outcome = self
            .run(move |s| s.install_version(fid, &expect, &version, &history))
            .await;
        self.installed(outcome)
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        let (expect, version, history, placement) = (
            expect.clone(),
            version.clone(),
            history.clone(),
            placement.clone(),
        );
        let outcome = self
            .run(move |s| s.install_delete(fid, &expect, &version, &history, &placement))
            .await;
        self.installed(outcome)
    }
}
