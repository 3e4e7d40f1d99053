//! The server's request handler: decodes a request, checks the caller's role and epoch
//! (as [`crate::requests`] classifies it), runs it where its class says and encodes the
//! reply.

use crate::callbacks::{Callbacks, ConnId, SessionKey, VOID_AFTER};
use crate::context::ServerContext;
use crate::requests::{Path, classify};
use crate::store::Store;
use bytes::Bytes;
use codetta_transport::{Peer, Service};
use codetta_wire::frame::MAX_DATA;
use codetta_wire::message::{
    CatalogueCall, MAX_SHIPPED_STATES, ObjectState, ReplyBody, ServerStatus, VolumeStatus,
};
use codetta_wire::{Fid, Frame, FsError, MAX_READ, Reply, Request, VolumeId};
use std::sync::Arc;

/// Most entries one READDIR returns (keeps the reply header bounded).
const MAX_DIR_PAGE: u32 = 4096;
/// Most block-map entries in one reply.
const MAX_BLOCK_MAP: u32 = 4096;
/// Most changes in one reply.
const MAX_CHANGES: u32 = 4096;

/// Serves the Codetta protocol: decodes a request, checks the caller's role and epoch,
/// runs it against the [`ServerContext`] and encodes the reply (cheap to clone: handlers
/// run on the blocking pool with their own handle).
#[derive(Clone)]
pub struct ServerService {
    ctx: ServerContext,
}

/// A request that reached a dispatch its class does not send it to (a bug here, not the
/// caller's).
fn misrouted() -> FsError {
    FsError::Internal("a request sent down the wrong path".into())
}

/// A catalogue answer, encoded for the wire.
fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, FsError> {
    postcard::to_allocvec(value).map_err(|e| FsError::Internal(format!("encoding an answer: {e}")))
}

impl ServerService {
    /// The service over `ctx`.
    pub fn new(ctx: ServerContext) -> ServerService {
        ServerService { ctx }
    }

    /// What the service serves from.
    pub fn context(&self) -> &ServerContext {
        &self.ctx
    }

    /// This server's status: volumes, conflicts, cursors, resolution totals, space.
    pub fn status(&self) -> Result<ServerStatus, FsError> {
        let mut volumes = Vec::new();
        for info in self.ctx.store().list_volumes()? {
            let (_, replica) = self.ctx.store().volume_info(info.id)?;
            let (conflicts, changes) = self.ctx.store().conflicts_and_changes(info.id)?;
            let mut cursors = Vec::new();
            for m in info.vsg.iter().filter(|m| m.replica != replica) {
                cursors.push((
                    m.server.clone(),
                    self.ctx.store().peer_cursor(info.id, m.replica)?,
                ));
            }
            volumes.push(VolumeStatus {
                info,
                replica,
                conflicts,
                changes,
                cursors,
            });
        }
        Ok(ServerStatus {
            server: self.ctx.name().to_string(),
            volumes,
            resolution: self.ctx.resolution_totals(),
            space: self.ctx.store().space()?,
        })
    }

    async fn catalogue_call(&self, call: CatalogueCall) -> Reply {
        let catalogue = self.ctx.running_catalogue()?;
        let bytes = match call {
            CatalogueCall::Raft(message) => catalogue
                .handle_raft(&message)
                .await
                .map_err(FsError::Malformed)?,
            CatalogueCall::Read => encode(&catalogue.read().await)?,
            CatalogueCall::Propose(change) => {
                let change: crate::catalogue::Change = postcard::from_bytes(&change)
                    .map_err(|e| FsError::Malformed(format!("catalogue change: {e}")))?;
                encode(&catalogue.propose(change).await)?
            }
            CatalogueCall::Members(change) => {
                let change: crate::catalogue::Membership = postcard::from_bytes(&change)
                    .map_err(|e| FsError::Malformed(format!("membership change: {e}")))?;
                encode(&catalogue.change_members(change).await)?
            }
        };
        Ok(ReplyBody::Catalogue(bytes))
    }

    /// The volume `pick` finds in the catalogue this server applied, with its servers'
    /// addresses.
    fn find_volume(
        &self,
        pick: impl FnOnce(&crate::catalogue::CatalogueState) -> Option<&crate::catalogue::VolumeEntry>,
    ) -> Result<codetta_wire::message::VolumeInfo, FsError> {
        let catalogue = self.ctx.running_catalogue()?;
        let state = catalogue.current();
        let entry = pick(&state).ok_or(FsError::UnknownVolume)?;
        Ok(state.volume_info(entry))
    }

    /// Requests that wait on other servers run here, on the async side.
    async fn execute_async(&self, peer: &Peer, request: Request, data: Bytes) -> Reply {
        match request {
            Request::Volume(call) => crate::admin::volume_call(&self.ctx, call).await,
            Request::Cluster(call) => crate::admin::cluster_call(&self.ctx, call).await,
            Request::Resolve { fids } => self.ctx.resolve(fids).await.map(ReplyBody::Resolved),
            Request::Catalogue(call) => self.catalogue_call(call).await,
            Request::Promises {
                volume,
                session,
                ack,
                acked_session,
            } => {
                self.promises(peer, volume, session, ack, acked_session)
                    .await
            }
            Request::Ship {
                records,
                log_start,
                cop2,
                follows,
            } => {
                let shipment = OwnedShipment {
                    records,
                    data,
                    log_start,
                    cop2,
                    follows,
                };
                self.ship(peer.connection_id, shipment).await
            }
            _ => Err(misrouted()),
        }
    }

    fn execute(&self, request: Request, data: Bytes) -> (Reply, Bytes) {
        let store = self.ctx.store();
        let volatile = self.ctx.volatile();
        // A resolution install: the clients holding promises on what changed hear of it.
        let installed = |changed: crate::store::Changed| {
            volatile.changed(&changed);
            ReplyBody::Done
        };
        let reply =
            match request {
                Request::Hello => Ok(ReplyBody::Hello {
                    server: self.ctx.name().to_string(),
                }),
                Request::NewIncarnation => {
                    store
                        .new_incarnation()
                        .map(|(incarnation, unique)| ReplyBody::Incarnation {
                            incarnation,
                            unique,
                        })
                }
                Request::ClaimIncarnation { incarnation } => store
                    .claim_incarnation(incarnation)
                    .map(|()| ReplyBody::Hello {
                        server: self.ctx.name().to_string(),
                    }),
                Request::VolumeByName { name } => {
                    self.find_volume(|s| s.volume(&name)).map(ReplyBody::Volume)
                }
                Request::VolumeById { id } => self
                    .find_volume(|s| s.volumes.get(&id.0))
                    .map(ReplyBody::Volume),
                Request::RootVolume => self
                    .find_volume(|s| s.root_volume.and_then(|id| s.volumes.get(&id.0)))
                    .map(ReplyBody::Volume),
                Request::Volume(_)
                | Request::Cluster(_)
                | Request::Resolve { .. }
                | Request::Catalogue(_)
                | Request::Promises { .. }
                | Request::InVolume { .. } => Err(misrouted()),
                Request::View { fid } => store.view(fid).map(ReplyBody::View),
                Request::Lease {
                    fids,
                    holder,
                    ttl_ms,
                } => volatile
                    .lease(&fids, holder, ttl_ms)
                    .map(|()| ReplyBody::Done),
                Request::Forget { fid, drop, mark } => {
                    store.forget(fid, drop, mark).map(|()| ReplyBody::Done)
                }
                Request::Release { fids, holder } => {
                    volatile.release(&fids, holder).map(|()| ReplyBody::Done)
                }
                Request::Status => self.status().map(ReplyBody::Status),
                Request::BlockDigests { fid } => store.block_digests(fid).map(ReplyBody::Digests),
                Request::BlockMap { fid, first, count } => store
                    .block_map(fid, first, count.min(MAX_BLOCK_MAP))
                    .map(ReplyBody::Blocks),
                Request::MissingChunks { hashes } => {
                    store.missing_chunks(&hashes).map(ReplyBody::Hashes)
                }
                Request::GetChunks { hashes } => match store.chunks(&hashes) {
                    Ok(chunks) => {
                        let lens = chunks.iter().map(|c| c.len() as u32).collect();
                        let total = chunks.iter().map(Vec::len).sum();
                        let mut out = bytes::BytesMut::with_capacity(total);
                        for c in &chunks {
                            out.extend_from_slice(c);
                        }
                        return (Ok(ReplyBody::Chunks(lens)), out.freeze());
                    }
                    Err(e) => Err(e),
                },
                Request::InstallBlocks {
                    fid,
                    expect,
                    blocks,
                    chunks,
                } => {
                    let mut pieces = Vec::with_capacity(chunks.len());
                    let mut rest = &data[..];
                    for (hash, len) in &chunks {
                        let Some((piece, after)) = rest.split_at_checked(*len as usize) else {
                            return (
                                Err(FsError::Malformed("chunk lengths past the data".into())),
                                Bytes::new(),
                            );
                        };
                        pieces.push((*hash, piece));
                        rest = after;
                    }
                    store
                        .install_blocks(fid, &expect, &blocks, &pieces)
                        .map(installed)
                }
                Request::InstallMeta { fid, expect, meta } => {
                    store.install_meta(fid, &expect, &meta).map(installed)
                }
                Request::InstallVersion {
                    fid,
                    expect,
                    version,
                    history,
                } => store
                    .install_version(fid, &expect, &version, &history)
                    .map(installed),
                Request::InstallDelete {
                    fid,
                    expect,
                    version,
                    history,
                    placement,
                } => store
                    .install_delete(fid, &expect, &version, &history, &placement)
                    .map(installed),
                Request::Changes {
                    volume,
                    since,
                    max,
                    older_than_ms,
                } => store
                    .changes(
                        volume,
                        since,
                        max.min(MAX_CHANGES),
                        u64::from(older_than_ms),
                    )
                    .map(|p| ReplyBody::Changes {
                        entries: p.entries,
                        next: p.next,
                        oldest: p.oldest,
                        last: p.last,
                    }),
                Request::VolumeDigests { volume } => {
                    store.volume_digests(volume).map(ReplyBody::Digests)
                }
                Request::BucketObjects {
                    volume,
                    buckets,
                    after,
                    max,
                } => store
                    .bucket_objects(volume, &buckets, after, max)
                    .map(|(entries, next)| ReplyBody::Objects { entries, next }),
                Request::GetAttr { fid } => store.getattr(fid).map(ReplyBody::State),
                Request::Lookup { dir, name } => store.lookup(dir, &name).map(ReplyBody::State),
                Request::Parent { dir } => store.parent(dir).map(ReplyBody::State),
                Request::ReadDir {
                    dir,
                    cookie,
                    max_entries,
                    with_attrs,
                } => store
                    .readdir(dir, cookie, max_entries.min(MAX_DIR_PAGE), with_attrs)
                    .map(|(dir, entries, eof)| ReplyBody::Dir { dir, entries, eof }),
                Request::Read { fid, offset, count } => {
                    match store.read(fid, offset, count.min(MAX_READ).min(MAX_DATA)) {
                        Ok((state, bytes, eof)) => {
                            return (Ok(ReplyBody::Data { state, eof }), Bytes::from(bytes));
                        }
                        Err(e) => Err(e),
                    }
                }
                Request::ReadLink { fid } => {
                    store.readlink(fid).map(|target| ReplyBody::Link { target })
                }
                Request::Ship { .. } => Err(misrouted()),
                Request::FsStat { .. } => store.space().map(ReplyBody::Space),
            };
        (reply, Bytes::new())
    }
}

impl ServerService {
    /// A client session's callback channel on this connection.
    async fn promises(
        &self,
        peer: &Peer,
        volume: VolumeId,
        session: u64,
        ack: u64,
        acked_session: u64,
    ) -> Reply {
        self.ctx.store().volume_info(volume)?;
        let callbacks = self.ctx.volatile().callbacks().clone();
        let conn = peer.connection_id;
        if callbacks.watch_connection(conn) {
            let connection = peer.connection.clone();
            let callbacks = callbacks.clone();
            tokio::spawn(async move {
                connection.closed().await;
                // The client may not have seen the end yet: its promises stay (and changes
                // wait for them as for a silent session) until its lease has surely lapsed.
                tokio::time::sleep(VOID_AFTER).await;
                callbacks.drop_connection(conn);
            });
        }
        let answer = callbacks
            .poll(SessionKey { conn, volume }, session, ack, acked_session)
            .await?;
        Ok(ReplyBody::Breaks {
            fresh: answer.fresh,
            reset: answer.reset,
            seq: answer.seq,
            fids: answer.fids,
            session: answer.session,
        })
    }

    /// Applies a client's batch, then breaks the promises other clients hold on what it
    /// changed and waits for them to acknowledge (close-to-open: once the writer's COMMIT
    /// returns, no other client answers from a cache that predates it).
    async fn ship(&self, conn: ConnId, shipment: OwnedShipment) -> Reply {
        // Healing pauses for clients from the moment their batch arrives (it may wait
        // behind healing's installs) until it is answered.
        let _updating = self.ctx.pacer().client_batch();
        // Promises given before a restart are not known here, but a client may still
        // trust them until its lease lapses: no change is answered before then.
        let grace = VOID_AFTER
            .checked_sub(self.ctx.volatile().uptime())
            .map(|left| tokio::time::Instant::now() + left);
        let store = self.ctx.store().clone();
        let callbacks = self.ctx.volatile().callbacks().clone();
        let (shipped, states) = codetta_transport::off_thread(move || {
            let shipped = store.ship(&crate::store::Shipment {
                records: &shipment.records,
                data: &shipment.data,
                log_start: shipment.log_start,
                cop2: &shipment.cop2,
                follows: &shipment.follows,
            })?;
            let states = promised_states(&store, &callbacks, conn, &shipped.changed);
            Ok::<_, FsError>((shipped, states))
        })
        .await
        .map_err(|e| FsError::Internal(format!("handler failed: {e}")))??;
        let callbacks = self.ctx.volatile().callbacks();
        let tickets = callbacks.break_fids(&shipped.changed, Some(conn));
        callbacks.wait_acked(tickets).await;
        if let Some(until) = grace {
            tokio::time::sleep_until(until).await;
        }
        Ok(ReplyBody::Shipped {
            outcomes: shipped.outcomes,
            priors: shipped.priors,
            states,
        })
    }
}

/// A client's shipment as it arrived (see [`Request::Ship`]).
struct OwnedShipment {
    records: Vec<codetta_wire::UpdateRecord>,
    data: Bytes,
    log_start: u64,
    cop2: Vec<codetta_wire::update::Cop2>,
    follows: Vec<codetta_wire::update::Follows>,
}

/// The states of (at most [`MAX_SHIPPED_STATES`]) objects a batch changed, each promised
/// first to the writer's session on `conn` (rule 15: registered before the state is read,
/// so no later change slips past it); without a session there are none. The writer then
/// caches what it changed without asking. An object found removed has its promise
/// withdrawn (nothing would ever break it).
fn promised_states(
    store: &Store,
    callbacks: &Callbacks,
    conn: ConnId,
    changed: &[Fid],
) -> Vec<ObjectState> {
    let key = |fid: &Fid| SessionKey {
        conn,
        volume: fid.volume,
    };
    let promised: Vec<Fid> = changed
        .iter()
        .take(MAX_SHIPPED_STATES)
        .filter(|fid| callbacks.promise_if_room(key(fid), **fid))
        .copied()
        .collect();
    if promised.is_empty() {
        return Vec::new();
    }
    let states = store.states(&promised).unwrap_or_else(|e| {
        tracing::warn!("reading the states a batch changed: {e}");
        Vec::new()
    });
    for fid in promised
        .iter()
        .filter(|f| !states.iter().any(|s| s.fid == **f))
    {
        callbacks.withdraw(key(fid), *fid);
    }
    states
}

/// A request's data as one buffer, taken out of the frame so that the parts it arrived in
/// are not held beside the joined copy while the request runs.
fn take_data(request: &mut Frame) -> Bytes {
    std::mem::take(&mut request.data).into_contiguous()
}

fn reply_frame(reply: &Reply, data: Bytes) -> Frame {
    Frame::reply(reply, data).unwrap_or_else(|e| {
        tracing::error!("reply does not fit a frame: {e}");
        Frame::reply(
            &Err(FsError::Internal("reply too large".into())),
            Bytes::new(),
        )
        .unwrap_or_else(|_| Frame {
            kind: codetta_wire::FrameKind::Reply,
            header: Bytes::new(),
            data: codetta_wire::Payload::new(),
        })
    })
}

impl Service for ServerService {
    async fn handle(&self, peer: Arc<Peer>, mut request: Frame) -> Frame {
        let decoded = match request.decode_request() {
            Ok(r) => r,
            Err(e) => return reply_frame(&Err(FsError::Malformed(e.to_string())), Bytes::new()),
        };
        if let Some(catalogue) = self.ctx.catalogue()
            && let Some(note) = catalogue.current().revoked.get(&peer.fingerprint)
        {
            tracing::warn!(peer = %peer.name, %note, "refused a revoked certificate");
            return reply_frame(
                &Err(FsError::Refused(format!(
                    "the certificate of {} was revoked ({note})",
                    peer.name
                ))),
                Bytes::new(),
            );
        }
        let (envelope, decoded) = match decoded.open_envelope() {
            Ok(opened) => opened,
            Err(e) => return reply_frame(&Err(FsError::Malformed(e)), Bytes::new()),
        };
        let class = classify(&decoded);
        if !class.allows(peer.role) {
            tracing::warn!(peer = %peer.name, role = %peer.role, "refused {:?}", std::mem::discriminant(&decoded));
            return reply_frame(&Err(FsError::WrongRole), Bytes::new());
        }
        if class.needs_epoch && envelope.is_none() {
            return reply_frame(
                &Err(FsError::Malformed(
                    "a batch must carry the catalogue epoch (InVolume)".into(),
                )),
                Bytes::new(),
            );
        }
        if let Some((volume, epoch)) = envelope
            && let Err(e) = self.ctx.check_epoch(volume, epoch).await
        {
            return reply_frame(&Err(e), Bytes::new());
        }
        if class.path == Path::Async {
            let reply = self
                .execute_async(&peer, decoded, take_data(&mut request))
                .await;
            return reply_frame(&reply, Bytes::new());
        }
        let conn = peer.connection_id;
        let mut promised = false;
        if let Some(fid) = class.promise {
            let key = SessionKey {
                conn,
                volume: fid.volume,
            };
            promised = self.ctx.volatile().callbacks().promise(key, fid);
        }
        let lookup = matches!(decoded, Request::Lookup { .. });
        let inline = class.path == Path::Inline;
        let this = self.clone();
        let data = take_data(&mut request);
        let work = move || {
            let (reply, data) = this.execute(decoded, data);
            match reply {
                // The name's object gets a promise too, and its state is read again after
                // it (the first reading may predate the promise).
                Ok(ReplyBody::State(found)) if lookup && promised => {
                    let key = SessionKey {
                        conn,
                        volume: found.fid.volume,
                    };
                    this.ctx.volatile().callbacks().promise(key, found.fid);
                    (
                        this.ctx.store().getattr(found.fid).map(ReplyBody::State),
                        data,
                    )
                }
                other => (other, data),
            }
        };
        let result = if inline {
            Ok(work())
        } else {
            codetta_transport::off_thread(work).await
        };
        match result {
            Ok((reply, data)) => reply_frame(&reply, data),
            Err(e) => reply_frame(
                &Err(FsError::Internal(format!("handler failed: {e}"))),
                Bytes::new(),
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A server restarted less than VOID_AFTER ago answers a batch only once VOID_AFTER has
    /// passed since it started: a client may still trust, until its lease lapses, a
    /// promise this server gave before the restart and no longer knows of.
    #[tokio::test]
    async fn a_batch_right_after_a_restart_waits_out_the_promises_given_before() {
        use crate::store::StoreOptions;
        use crate::store::testutil::Fx;
        use codetta_certs::Role;
        use codetta_wire::update::CreateHow;
        let ca = tempfile::tempdir().unwrap();
        codetta_certs::init_ca(ca.path()).unwrap();
        let node = codetta_certs::issue(ca.path(), Role::Server, "s1", ca.path()).unwrap();
        let identity = codetta_certs::Identity::load(
            &ca.path().join(codetta_certs::CA_CERT_FILE),
            &node.cert,
            &node.key,
        )
        .unwrap();
        let peers = Arc::new(
            crate::peers::Peers::new(&identity, &[], std::time::Duration::from_secs(2)).unwrap(),
        );
        // The store reopened: the server has just restarted.
        let Fx {
            dir: _dir,
            store,
            vol,
            mut g,
        } = Fx::new().reopened(StoreOptions::default());
        let store = Arc::new(store);
        let ctx = ServerContext::new(store.clone(), "s1", peers);
        let volatile = ctx.volatile().clone();
        let service = ServerService::new(ctx);
        assert!(
            volatile.uptime() < VOID_AFTER,
            "the test needs a fresh start"
        );
        let (op, _) = g.create_op(vol.root, "f", CreateHow::Guarded);
        let reply = service
            .ship(
                1,
                OwnedShipment {
                    records: vec![g.rec(op)],
                    data: Bytes::new(),
                    log_start: 1,
                    cop2: Vec::new(),
                    follows: Vec::new(),
                },
            )
            .await;
        assert!(matches!(reply, Ok(ReplyBody::Shipped { .. })), "{reply:?}");
        assert!(
            volatile.uptime() >= VOID_AFTER,
            "answered {:?} after the restart, within the grace",
            volatile.uptime()
        );
    }
}
