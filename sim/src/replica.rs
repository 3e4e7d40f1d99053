//! A replica as one server (or the final checker) reaches it in one step: unreachable,
//! crashed, or through a link that may lose the request or the reply.

use codetta_server::peer_error::{PeerError, PeerResult};
use codetta_server::resolver::ReplicaAccess;
use codetta_server::store::{ChangePage, Store};
use codetta_server::volatile::Volatile;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::{Fid, FsError, History, ReplicaId, VersionVector, VolumeId};
use rand::Rng;
use rand::rngs::StdRng;
use std::sync::{Arc, Mutex};

/// A replica as one server (or the final checker) reaches it in this step: unreachable,
/// crashed, or through a link that may lose the request or the reply.
pub(crate) struct SimReplica {
    pub(crate) store: Option<Arc<Store>>,
    pub(crate) volatile: Arc<Volatile>,
    pub(crate) replica: ReplicaId,
    pub(crate) name: String,
    pub(crate) reachable: bool,
    pub(crate) loss: f64,
    pub(crate) rng: Arc<Mutex<StdRng>>,
}

impl SimReplica {
    pub(crate) fn lost(&self) -> bool {
        self.loss > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.loss))
                .unwrap_or(false)
    }

    /// Runs `f` on the store unless the request is lost; a lost reply after the work is
    /// done is reported as a failure too.
    pub(crate) fn call<T>(&self, f: impl FnOnce(&Store) -> Result<T, FsError>) -> PeerResult<T> {
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

    pub(crate) fn down(&self) -> PeerError {
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
        self.call(|_| self.volatile.lease(fids, holder, ttl_ms))
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        self.call(|s| s.forget(fid, drop, mark))
    }

    /// Releases are never lost here: the simulation runs one resolution at a time and has
    /// no clock to let a stranded lease expire.
    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        match &self.store {
            Some(_) if self.reachable => Ok(self.volatile.release(fids, holder)?),
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
            s.install_blocks(fid, expect, blocks, &refs).map(drop)
        })
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        self.call(|s| s.install_meta(fid, expect, meta).map(drop))
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        self.call(|s| s.install_version(fid, expect, version, history).map(drop))
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        self.call(|s| {
            s.install_delete(fid, expect, version, history, placement)
                .map(drop)
        })
    }
}
