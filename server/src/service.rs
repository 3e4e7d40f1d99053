//! The server's request handler: checks the caller's role, decodes the request, runs it
//! against the store on the blocking pool, and encodes the reply.

use crate::callbacks::{ConnId, SessionKey, VOID_AFTER};
use crate::catalogue::{Catalogue, QuicTransport};
use crate::pacing::Pacer;
use crate::peers::Peers;
use crate::resolver::Resolver;
use crate::resolver::group::members_of;
use crate::store::Store;
use bytes::Bytes;
use codetta_certs::Role;
use codetta_transport::{Peer, Service};
use codetta_wire::frame::MAX_DATA;
use codetta_wire::message::{
    CatalogueCall, MAX_SHIPPED_STATES, ObjectState, ReplyBody, ResolveSummary, ServerStatus,
    VolumeStatus,
};
use codetta_wire::{Fid, Frame, FsError, MAX_READ, Reply, Request, VolumeId};
use std::sync::Arc;

/// Most entries one READDIR returns (keeps the reply header bounded).
const MAX_DIR_PAGE: u32 = 4096;
/// Most block-map entries in one reply.
const MAX_BLOCK_MAP: u32 = 4096;
/// Most changes in one reply.
const MAX_CHANGES: u32 = 4096;

/// Adds `b`'s counts to `a`.
pub fn add_summary(a: &mut ResolveSummary, b: &ResolveSummary) {
    a.objects += b.objects;
    a.installs += b.installs;
    a.merges += b.merges;
    a.conflicts += b.conflicts;
    a.bytes_shipped += b.bytes_shipped;
    a.unsettled += b.unsettled;
    a.volume_compares += b.volume_compares;
}

/// Whether a peer with `role` may make `request`.
pub fn role_allows(role: Role, request: &Request) -> bool {
    match request {
        Request::Hello => true,
        Request::Status => role == Role::Admin || role == Role::Client,
        Request::Catalogue(CatalogueCall::Raft(_)) => role == Role::Server,
        Request::Catalogue(CatalogueCall::Read) => true,
        Request::Catalogue(_) => role == Role::Admin || role == Role::Server,
        // Servers forward an admin call to a member (a drain runs on a remaining replica).
        Request::Volume(_) => role == Role::Admin || role == Role::Server,
        Request::Cluster(_) => role == Role::Admin,
        // The envelope is opened before roles are checked: what it carries is.
        Request::InVolume { .. } => false,
        Request::View { .. }
        | Request::Lease { .. }
        | Request::Forget { .. }
        | Request::VolumeDigests { .. }
        | Request::BucketObjects { .. }
        | Request::Release { .. }
        | Request::BlockDigests { .. }
        | Request::BlockMap { .. }
        | Request::MissingChunks { .. }
        | Request::GetChunks { .. }
        | Request::InstallBlocks { .. }
        | Request::InstallMeta { .. }
        | Request::InstallVersion { .. }
        | Request::InstallDelete { .. }
        | Request::Changes { .. } => role == Role::Server,
        // Resolution peers list directories too.
        Request::ReadDir { .. } => role == Role::Client || role == Role::Server,
        Request::NewIncarnation
        | Request::ClaimIncarnation { .. }
        | Request::VolumeByName { .. }
        | Request::VolumeById { .. }
        | Request::RootVolume
        | Request::GetAttr { .. }
        | Request::Lookup { .. }
        | Request::Parent { .. }
        | Request::Read { .. }
        | Request::Resolve { .. }
        | Request::ReadLink { .. }
        | Request::Ship { .. }
        | Request::Promises { .. }
        | Request::FsStat { .. } => role == Role::Client,
    }
}

/// Serves the Codetta protocol from one store (cheap to clone: handlers run on the
/// blocking pool with their own handle).
#[derive(Clone)]
pub struct ServerService {
    store: Arc<Store>,
    name: Arc<str>,
    peers: Arc<Peers>,
    /// What resolution coordinated here has done since start.
    resolved: Arc<std::sync::Mutex<ResolveSummary>>,
    /// This server's catalogue node (set once the daemon started it).
    catalogue: Arc<std::sync::OnceLock<Arc<Catalogue<QuicTransport>>>>,
    /// The catalogue epoch this server's replicas have caught up with.
    reconciled: Arc<tokio::sync::watch::Sender<u64>>,
    /// Paces the resolutions this server's healing coordinates while clients update it
    /// (a resolution a client asks for is not paced).
    pacer: Pacer,
}

/// How long a call carrying a newer epoch than this server has applied waits for it.
const EPOCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A catalogue answer, encoded for the wire.
fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, FsError> {
    postcard::to_allocvec(value).map_err(|e| FsError::Storage(e.to_string()))
}

impl ServerService {
    pub fn new(store: Arc<Store>, name: &str, peers: Arc<Peers>) -> ServerService {
        ServerService {
            store,
            name: name.into(),
            peers,
            resolved: Arc::default(),
            catalogue: Arc::default(),
            reconciled: Arc::new(tokio::sync::watch::Sender::new(0)),
            pacer: Pacer::default(),
        }
    }

    /// Healing coordinated here pauses `pause` times each piece's time while clients
    /// update this server (see [`crate::pacing`]).
    pub fn set_heal_pause(&self, pause: f64) {
        self.pacer.set_pause(pause);
    }

    /// The pacer of the healing coordinated here.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Records that this server's replicas follow the catalogue up to `epoch`.
    pub fn note_reconciled(&self, epoch: u64) {
        self.reconciled.send_if_modified(|e| {
            let newer = epoch > *e;
            *e = (*e).max(epoch);
            newer
        });
    }

    /// Waits (a little) until this server's replicas follow the catalogue at `epoch`.
    pub async fn reconciled_to(&self, epoch: u64) -> bool {
        let mut rx = self.reconciled.subscribe();
        tokio::time::timeout(EPOCH_WAIT, rx.wait_for(|e| *e >= epoch))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether a client call made at catalogue `epoch` may go to this server's replica of
    /// `volume`: `StaleEpoch` when the volume's group changed since (the client refreshes),
    /// `UnknownVolume` when the catalogue has no such volume here.
    pub async fn check_epoch(&self, volume: VolumeId, epoch: u64) -> Result<(), FsError> {
        let Some(catalogue) = self.catalogue.get() else {
            return Ok(());
        };
        if *self.reconciled.borrow() < epoch {
            self.reconciled_to(epoch).await;
        }
        let state = catalogue.current();
        let Some(entry) = state.volumes.get(&volume.0) else {
            return Err(FsError::UnknownVolume);
        };
        // Still behind the caller (or the caller names an epoch the volume never had):
        // not served on a group this server cannot confirm; the caller retries.
        if epoch != entry.epoch && *self.reconciled.borrow() < epoch {
            return Err(FsError::StaleEpoch {
                current: entry.epoch,
            });
        }
        if epoch < entry.epoch {
            return Err(FsError::StaleEpoch {
                current: entry.epoch,
            });
        }
        if !entry.vsg.iter().any(|m| *m.server == *self.name) {
            return Err(FsError::UnknownVolume);
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds to the resolution totals.
    pub fn note_resolution(&self, s: &ResolveSummary) {
        if let Ok(mut total) = self.resolved.lock() {
            add_summary(&mut total, s);
        }
    }

    /// This server's status: volumes, conflicts, cursors, resolution totals, space.
    pub fn status(&self) -> Result<ServerStatus, FsError> {
        let mut volumes = Vec::new();
        for info in self.store.list_volumes()? {
            let (_, replica) = self.store.volume_info(info.id)?;
            let (conflicts, changes) = self.store.conflicts_and_changes(info.id)?;
            let mut cursors = Vec::new();
            for m in info.vsg.iter().filter(|m| m.replica != replica) {
                cursors.push((
                    m.server.clone(),
                    self.store.peer_cursor(info.id, m.replica)?,
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
            server: self.name.to_string(),
            volumes,
            resolution: self.resolution_totals(),
            space: self.store.space()?,
        })
    }

    /// Makes `catalogue` this server's catalogue node.
    pub fn set_catalogue(&self, catalogue: Arc<Catalogue<QuicTransport>>) {
        let _ = self.catalogue.set(catalogue);
    }

    /// This server's catalogue node, once started.
    pub fn catalogue(&self) -> Option<&Arc<Catalogue<QuicTransport>>> {
        self.catalogue.get()
    }

    async fn catalogue_call(&self, call: CatalogueCall) -> Reply {
        let catalogue = self
            .catalogue
            .get()
            .ok_or_else(|| FsError::Storage("the catalogue is not running here".into()))?;
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
        let catalogue = self
            .catalogue
            .get()
            .ok_or_else(|| FsError::Storage("the catalogue is not running here".into()))?;
        let state = catalogue.current();
        let entry = pick(&state).ok_or(FsError::UnknownVolume)?;
        Ok(crate::volumes::volume_info(&state, entry))
    }

    /// Resolution totals since start.
    pub fn resolution_totals(&self) -> ResolveSummary {
        self.resolved.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Requests that wait on other servers run here, on the async side.
    async fn execute_async(&self, peer: &Peer, request: Request, data: Bytes) -> Reply {
        match request {
            Request::Volume(call) => crate::admin::volume_call(self, call).await,
            Request::Cluster(call) => crate::admin::cluster_call(self, call).await,
            Request::Resolve { fids } => self.resolve(fids).await.map(ReplyBody::Resolved),
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
            } => {
                self.ship(peer.connection_id, records, data, log_start, cop2)
                    .await
            }
            _ => Err(FsError::Storage("not on this path".into())),
        }
    }

    /// Resolves `fids` with this server coordinating (grouped by volume).
    pub async fn resolve(&self, fids: Vec<Fid>) -> Result<ResolveSummary, FsError> {
        let mut summary = ResolveSummary::default();
        let mut by_volume: std::collections::BTreeMap<_, Vec<Fid>> = Default::default();
        for fid in fids {
            by_volume.entry(fid.volume).or_default().push(fid);
        }
        for (volume, fids) in by_volume {
            let (members, me) = members_of(&self.store, &self.peers, &self.name, volume)?;
            // A client waits for this one: it is not paced.
            let mut resolver = Resolver::new(&members, me);
            resolver.install_delay = self.pacer.install_delay();
            for fid in fids {
                resolver.resolve(fid).await;
            }
            add_summary(&mut summary, &resolver.summary);
        }
        self.note_resolution(&summary);
        Ok(summary)
    }

    fn execute(&self, request: Request, data: Bytes) -> (Reply, Bytes) {
        let store = &self.store;
        let reply =
            match request {
                Request::Hello => Ok(ReplyBody::Hello {
                    server: self.name.to_string(),
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
                        server: self.name.to_string(),
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
                | Request::InVolume { .. } => Err(FsError::Storage("not on this path".into())),
                Request::View { fid } => store.view(fid).map(ReplyBody::View),
                Request::Lease {
                    fids,
                    holder,
                    ttl_ms,
                } => store.lease(&fids, holder, ttl_ms).map(|()| ReplyBody::Done),
                Request::Forget { fid, drop, mark } => {
                    store.forget(fid, drop, mark).map(|()| ReplyBody::Done)
                }
                Request::Release { fids, holder } => {
                    store.release(&fids, holder).map(|()| ReplyBody::Done)
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
                    let mut pos = 0usize;
                    for (hash, len) in &chunks {
                        let end = pos + *len as usize;
                        pieces.push((*hash, &data[pos..end]));
                        pos = end;
                    }
                    store
                        .install_blocks(fid, &expect, &blocks, &pieces)
                        .map(|()| ReplyBody::Done)
                }
                Request::InstallMeta { fid, expect, meta } => store
                    .install_meta(fid, &expect, &meta)
                    .map(|()| ReplyBody::Done),
                Request::InstallVersion {
                    fid,
                    expect,
                    version,
                    history,
                } => store
                    .install_version(fid, &expect, &version, &history)
                    .map(|()| ReplyBody::Done),
                Request::InstallDelete {
                    fid,
                    expect,
                    version,
                    history,
                    placement,
                } => store
                    .install_delete(fid, &expect, &version, &history, &placement)
                    .map(|()| ReplyBody::Done),
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
                Request::Ship { .. } => Err(FsError::Storage("not on this path".into())),
                Request::FsStat { .. } => store.space().map(ReplyBody::Space),
            };
        (reply, Bytes::new())
    }
}

/// The object a read leaves a promise on for the caller's session (rule 15), if any.
fn promised_by(request: &Request) -> Option<Fid> {
    match request {
        Request::GetAttr { fid } | Request::Read { fid, .. } | Request::ReadLink { fid } => {
            Some(*fid)
        }
        Request::Lookup { dir, .. } | Request::ReadDir { dir, .. } => Some(*dir),
        _ => None,
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
        self.store.volume_info(volume)?;
        let callbacks = self.store.callbacks().clone();
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
    async fn ship(
        &self,
        conn: ConnId,
        records: Vec<codetta_wire::UpdateRecord>,
        data: Bytes,
        log_start: u64,
        cop2: Vec<codetta_wire::update::Cop2>,
    ) -> Reply {
        // Healing pauses for clients from the moment their batch arrives (it may wait
        // behind healing's installs) until it is answered.
        let _updating = self.pacer.client_batch();
        // Promises given before a restart are not known here, but a client may still
        // trust them until its lease lapses: no change is answered before then.
        let grace = VOID_AFTER
            .checked_sub(self.store.uptime())
            .map(|left| tokio::time::Instant::now() + left);
        let store = self.store.clone();
        let (shipped, states) = tokio::task::spawn_blocking(move || {
            let shipped = store.ship(&records, &data, log_start, &cop2)?;
            let states = promised_states(&store, conn, &shipped.changed);
            Ok::<_, FsError>((shipped, states))
        })
        .await
        .map_err(|e| FsError::Storage(format!("handler failed: {e}")))??;
        let callbacks = self.store.callbacks();
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

/// The states of (at most [`MAX_SHIPPED_STATES`]) objects a batch changed, each promised
/// first to the writer's session on `conn` (rule 15: registered before the state is read,
/// so no later change slips past it); without a session there are none. The writer then
/// caches what it changed without asking. An object found removed has its promise
/// withdrawn (nothing would ever break it).
fn promised_states(store: &Store, conn: ConnId, changed: &[Fid]) -> Vec<ObjectState> {
    let callbacks = store.callbacks();
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
            &Err(FsError::Storage("reply too large".into())),
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
        if let Some(catalogue) = self.catalogue.get()
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
        if !role_allows(peer.role, &decoded) {
            tracing::warn!(peer = %peer.name, role = %peer.role, "refused {:?}", std::mem::discriminant(&decoded));
            return reply_frame(&Err(FsError::WrongRole), Bytes::new());
        }
        if let Some((volume, epoch)) = envelope
            && let Err(e) = self.check_epoch(volume, epoch).await
        {
            return reply_frame(&Err(e), Bytes::new());
        }
        let decoded = match decoded {
            Request::Ship { .. } if envelope.is_none() => {
                return reply_frame(
                    &Err(FsError::Malformed(
                        "a batch must carry the catalogue epoch (InVolume)".into(),
                    )),
                    Bytes::new(),
                );
            }
            other => other,
        };
        let decoded = match decoded {
            Request::Volume(_)
            | Request::Cluster(_)
            | Request::Resolve { .. }
            | Request::Catalogue(_)
            | Request::Promises { .. }
            | Request::Ship { .. } => {
                let reply = self
                    .execute_async(&peer, decoded, take_data(&mut request))
                    .await;
                return reply_frame(&reply, Bytes::new());
            }
            other => other,
        };
        let conn = peer.connection_id;
        let mut promised = false;
        if let Some(fid) = promised_by(&decoded) {
            let key = SessionKey {
                conn,
                volume: fid.volume,
            };
            promised = self.store.callbacks().promise(key, fid);
        }
        let lookup = matches!(decoded, Request::Lookup { .. });
        let inline = answers_inline(&decoded);
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
                    this.store.callbacks().promise(key, found.fid);
                    (this.store.getattr(found.fid).map(ReplyBody::State), data)
                }
                other => (other, data),
            }
        };
        let result = if inline {
            Ok(work())
        } else {
            tokio::task::spawn_blocking(work).await
        };
        match result {
            Ok((reply, data)) => reply_frame(&reply, data),
            Err(e) => reply_frame(
                &Err(FsError::Storage(format!("handler failed: {e}"))),
                Bytes::new(),
            ),
        }
    }
}

/// Calls answered on the async worker itself: a read of one object's row takes
/// microseconds, less than handing it to a blocking thread and back (two thread wake-ups,
/// which cost more than the read on this kind of machine). Everything that reads file data,
/// lists a directory or writes goes to a blocking thread.
fn answers_inline(request: &Request) -> bool {
    matches!(
        request,
        Request::Hello
            | Request::GetAttr { .. }
            | Request::Lookup { .. }
            | Request::ReadLink { .. }
            | Request::View { .. }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codetta_wire::{Fid, VolumeId};

    #[test]
    fn roles_gate_calls() {
        let read = Request::GetAttr {
            fid: Fid::root(VolumeId(1)),
        };
        let admin = Request::Volume(codetta_wire::message::VolumeCall::List);
        assert!(role_allows(Role::Client, &read));
        assert!(!role_allows(Role::Server, &read));
        assert!(!role_allows(Role::Admin, &read));
        assert!(role_allows(Role::Admin, &admin));
        assert!(!role_allows(Role::Client, &admin));
        // A server forwards an admin call to a member (a drain runs on one that stays).
        assert!(role_allows(Role::Server, &admin));
        // An envelope is opened first (one level) and what it carries is checked.
        let wrapped = Request::in_volume(VolumeId(1), 1, &read);
        let (envelope, inner) = wrapped.clone().open_envelope().unwrap();
        assert_eq!((envelope, &inner), (Some((VolumeId(1), 1)), &read));
        assert!(
            !role_allows(Role::Client, &wrapped),
            "never checked unopened"
        );
        let nested = Request::in_volume(VolumeId(1), 1, &wrapped);
        assert!(nested.open_envelope().is_err(), "envelopes do not nest");
        assert!(role_allows(Role::Server, &Request::Hello));
    }

    /// A server restarted less than VOID_AFTER ago answers a batch only once VOID_AFTER has
    /// passed since it started: a client may still trust, until its lease lapses, a
    /// promise this server gave before the restart and no longer knows of.
    #[tokio::test]
    async fn a_batch_right_after_a_restart_waits_out_the_promises_given_before() {
        use crate::store::StoreOptions;
        use crate::store::testutil::Fx;
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
        let peers =
            Arc::new(Peers::new(&identity, &[], std::time::Duration::from_secs(2)).unwrap());
        // The store reopened: the server has just restarted.
        let Fx {
            dir: _dir,
            store,
            vol,
            mut g,
        } = Fx::new().reopened(StoreOptions::default());
        let store = Arc::new(store);
        let service = ServerService::new(store.clone(), "s1", peers);
        assert!(store.uptime() < VOID_AFTER, "the test needs a fresh start");
        let (op, _) = g.create_op(vol.root, "f", CreateHow::Guarded);
        let reply = service
            .ship(1, vec![g.rec(op)], Bytes::new(), 1, Vec::new())
            .await;
        assert!(matches!(reply, Ok(ReplyBody::Shipped { .. })), "{reply:?}");
        assert!(
            store.uptime() >= VOID_AFTER,
            "answered {:?} after the restart, within the grace",
            store.uptime()
        );
    }
}
