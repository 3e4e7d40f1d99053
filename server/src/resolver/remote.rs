//! A replica on another server, reached with server-to-server requests over QUIC.

use super::access::{DirPage, ObjectPage, ReplicaAccess};
use crate::peer_error::{PeerError, PeerResult};
use crate::peers::Peers;
use crate::store::{ChangePage, MAX_BUCKET_OBJECTS};
use bytes::{Bytes, BytesMut};
use codetta_wire::message::ReplyBody;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::{Fid, FsError, History, ReplicaId, Request, VersionVector, VolumeId};
use std::sync::Arc;

/// A replica held by the peer `server`.
#[derive(Clone)]
pub struct RemoteReplica {
    peers: Arc<Peers>,
    server: String,
    replica: ReplicaId,
}

impl RemoteReplica {
    pub fn new(peers: Arc<Peers>, server: &str, replica: ReplicaId) -> RemoteReplica {
        RemoteReplica {
            peers,
            server: server.to_string(),
            replica,
        }
    }

    async fn call(&self, request: &Request, data: Bytes) -> PeerResult<(ReplyBody, Bytes)> {
        self.peers.call(&self.server, request, data).await
    }

    async fn done(&self, request: &Request, data: Bytes) -> PeerResult<()> {
        match self.call(request, data).await? {
            (ReplyBody::Done, _) => Ok(()),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }
}

fn unexpected(server: &str, body: ReplyBody) -> PeerError {
    PeerError::unexpected(server, body)
}

impl ReplicaAccess for RemoteReplica {
    fn replica(&self) -> ReplicaId {
        self.replica
    }

    fn name(&self) -> &str {
        &self.server
    }

    async fn view(&self, fid: Fid) -> PeerResult<ReplicaView> {
        match self.call(&Request::View { fid }, Bytes::new()).await? {
            (ReplyBody::View(v), _) => Ok(v),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn changes(
        &self,
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    ) -> PeerResult<ChangePage> {
        let request = Request::Changes {
            volume,
            since,
            max,
            older_than_ms,
        };
        match self.call(&request, Bytes::new()).await? {
            (
                ReplyBody::Changes {
                    entries,
                    next,
                    oldest,
                    last,
                },
                _,
            ) => Ok(ChangePage {
                entries,
                next,
                oldest,
                last,
            }),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> PeerResult<()> {
        let request = Request::Lease {
            fids: fids.to_vec(),
            holder,
            ttl_ms,
        };
        self.done(&request, Bytes::new()).await
    }

    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        self.done(&Request::Forget { fid, drop, mark }, Bytes::new())
            .await
    }

    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        let request = Request::Release {
            fids: fids.to_vec(),
            holder,
        };
        self.done(&request, Bytes::new()).await
    }

    async fn volume_digests(&self, volume: VolumeId) -> PeerResult<Vec<[u8; 32]>> {
        match self
            .call(&Request::VolumeDigests { volume }, Bytes::new())
            .await?
        {
            (ReplyBody::Digests(d), _) => Ok(d),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
    ) -> PeerResult<ObjectPage> {
        let request = Request::BucketObjects {
            volume,
            buckets: buckets.to_vec(),
            after,
            max: MAX_BUCKET_OBJECTS,
        };
        match self.call(&request, Bytes::new()).await? {
            (ReplyBody::Objects { entries, next }, _) => Ok((entries, next)),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn list(&self, dir: Fid, cookie: u64, max: u32) -> PeerResult<DirPage> {
        let request = Request::ReadDir {
            dir,
            cookie,
            max_entries: max,
            with_attrs: false,
        };
        match self.call(&request, Bytes::new()).await? {
            (ReplyBody::Dir { entries, eof, .. }, _) => Ok((
                entries
                    .into_iter()
                    .map(|e| (e.cookie, e.name.as_bytes().to_vec(), e.fid))
                    .collect(),
                eof,
            )),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn block_digests(&self, fid: Fid) -> PeerResult<Vec<[u8; 32]>> {
        match self
            .call(&Request::BlockDigests { fid }, Bytes::new())
            .await?
        {
            (ReplyBody::Digests(d), _) => Ok(d),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn block_map(&self, fid: Fid, first: u64, count: u32) -> PeerResult<Vec<BlockEntry>> {
        match self
            .call(&Request::BlockMap { fid, first, count }, Bytes::new())
            .await?
        {
            (ReplyBody::Blocks(b), _) => Ok(b),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<[u8; 32]>> {
        let request = Request::MissingChunks {
            hashes: hashes.to_vec(),
        };
        match self.call(&request, Bytes::new()).await? {
            (ReplyBody::Hashes(h), _) => Ok(h),
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<Bytes>> {
        let request = Request::GetChunks {
            hashes: hashes.to_vec(),
        };
        match self.call(&request, Bytes::new()).await? {
            (ReplyBody::Chunks(lens), data) => {
                let mut out = Vec::with_capacity(lens.len());
                let mut pos = 0usize;
                for len in lens {
                    let end = pos
                        .checked_add(len as usize)
                        .filter(|e| *e <= data.len())
                        .ok_or_else(|| PeerError::Protocol {
                            server: self.server.clone(),
                            what: "chunk data shorter than its lengths".into(),
                        })?;
                    out.push(data.slice(pos..end));
                    pos = end;
                }
                Ok(out)
            }
            (other, _) => Err(unexpected(&self.server, other)),
        }
    }

    async fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> PeerResult<()> {
        let mut data = BytesMut::with_capacity(chunks.iter().map(|(_, c)| c.len()).sum());
        let mut listed = Vec::with_capacity(chunks.len());
        for (hash, bytes) in chunks {
            data.extend_from_slice(bytes);
            listed.push((
                *hash,
                u32::try_from(bytes.len()).map_err(|_| FsError::Invalid)?,
            ));
        }
        let request = Request::InstallBlocks {
            fid,
            expect: expect.clone(),
            blocks: blocks.to_vec(),
            chunks: listed,
        };
        self.done(&request, data.freeze()).await
    }

    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        let request = Request::InstallMeta {
            fid,
            expect: expect.clone(),
            meta: meta.clone(),
        };
        self.done(&request, Bytes::new()).await
    }

    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        let request = Request::InstallVersion {
            fid,
            expect: expect.clone(),
            version: version.clone(),
            history: history.clone(),
        };
        self.done(&request, Bytes::new()).await
    }

    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        let request = Request::InstallDelete {
            fid,
            expect: expect.clone(),
            version: version.clone(),
            history: history.clone(),
            placement: placement.clone(),
        };
        self.done(&request, Bytes::new()).await
    }
}
