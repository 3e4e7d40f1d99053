//! The replicas of one volume as this server reaches them: its own store directly, the
//! others through their servers.

use super::access::{DirPage, LocalReplica, ObjectPage, ReplicaAccess};
use super::remote::RemoteReplica;
use crate::peer_error::PeerResult;
use crate::peers::Peers;
use crate::store::{ChangePage, Store};
use crate::volatile::Volatile;
use bytes::Bytes;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::{Fid, History, ReplicaId, VersionVector, VolumeId};
use std::sync::Arc;

/// A replica here or on a peer.
#[derive(Clone)]
pub enum GroupReplica {
    Local(LocalReplica),
    Remote(RemoteReplica),
}

/// Every replica of `volume` (this server's first) and this server's replica id.
pub fn members_of(
    store: &Arc<Store>,
    volatile: &Arc<Volatile>,
    peers: &Arc<Peers>,
    self_name: &str,
    volume: VolumeId,
) -> PeerResult<(Vec<GroupReplica>, ReplicaId)> {
    let (info, me) = store.volume_info(volume)?;
    let mut members = vec![GroupReplica::Local(LocalReplica::blocking(
        store.clone(),
        volatile.clone(),
        me,
        self_name,
    ))];
    for m in info.vsg.iter().filter(|m| m.replica != me) {
        members.push(GroupReplica::Remote(RemoteReplica::new(
            peers.clone(),
            &m.server,
            m.replica,
        )));
    }
    Ok((members, me))
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            GroupReplica::Local($r) => $e,
            GroupReplica::Remote($r) => $e,
        }
    };
}

impl ReplicaAccess for GroupReplica {
    fn replica(&self) -> ReplicaId {
        each!(self, r => r.replica())
    }

    fn name(&self) -> &str {
        each!(self, r => r.name())
    }

    async fn view(&self, fid: Fid) -> PeerResult<ReplicaView> {
        each!(self, r => r.view(fid).await)
    }

    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> PeerResult<()> {
        each!(self, r => r.lease(fids, holder, ttl_ms).await)
    }

    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        each!(self, r => r.release(fids, holder).await)
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        each!(self, r => r.forget(fid, drop, mark).await)
    }

    async fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> PeerResult<ChangePage> {
        each!(self, r => r.changes(volume, since, max, older_than_ms).await)
    }

    async fn volume_digests(&self, volume: VolumeId) -> PeerResult<Vec<[u8; 32]>> {
        each!(self, r => r.volume_digests(volume).await)
    }

    async fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> PeerResult<ObjectPage> {
        each!(self, r => r.bucket_objects(volume, buckets, after).await)
    }

    async fn list(&self, dir: Fid, cookie: u64, max: u32) -> PeerResult<DirPage> {
        each!(self, r => r.list(dir, cookie, max).await)
    }

    async fn block_digests(&self, fid: Fid) -> PeerResult<Vec<[u8; 32]>> {
        each!(self, r => r.block_digests(fid).await)
    }

    async fn block_map(&self, fid: Fid, first: u64, count: u32) -> PeerResult<Vec<BlockEntry>> {
        each!(self, r => r.block_map(fid, first, count).await)
    }

    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<[u8; 32]>> {
        each!(self, r => r.missing_chunks(hashes).await)
    }

    async fn chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<Bytes>> {
        each!(self, r => r.chunks(hashes).await)
    }

    async fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> PeerResult<()> {
        each!(self, r => r.install_blocks(fid, expect, blocks, chunks).await)
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        each!(self, r => r.install_meta(fid, expect, meta).await)
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        each!(self, r => r.install_version(fid, expect, version, history).await)
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        each!(self, r => r.install_delete(fid, expect, version, history, placement).await)
    }
}
