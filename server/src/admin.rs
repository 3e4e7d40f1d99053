//! Volume administration (`codetta volume ...`): every change is a catalogue change
//! committed on a majority through the leader (rule 13); this server only prepares it
//! (fresh ids, the drain before a replica leaves) and reports the outcome.

use crate::catalogue::{
    Catalogue, CatalogueError, CatalogueNode, CatalogueState, Change, Membership, QuicTransport,
    ServerEntry,
};
use crate::context::ServerContext;
use crate::peer_error::PeerError;
use crate::resolver::ReplicaAccess;
use codetta_wire::message::{
    ClusterCall, ClusterInfo, ReplicaMember, ReplyBody, VolumeCall, VolumeInfo,
};
use codetta_wire::{Fid, FsError, ReplicaId, Reply, Request, Time, VolumeId};
use std::sync::Arc;
use std::time::Duration;

/// How long a new replica may take to appear on its server before the call returns anyway.
const READY_WAIT: Duration = Duration::from_secs(10);
/// Objects named in a refusal (the count says how many more).
const LISTED: usize = 20;

fn refused(e: impl std::fmt::Display) -> FsError {
    FsError::Refused(e.to_string())
}

/// Runs one volume administration call.
pub async fn volume_call(ctx: &ServerContext, call: VolumeCall) -> Reply {
    let catalogue = ctx.running_catalogue()?.clone();
    match call {
        VolumeCall::List => {
            let state = read(&catalogue).await?;
            Ok(ReplyBody::Volumes(
                state
                    .volumes
                    .values()
                    .map(|v| state.volume_info(v))
                    .collect(),
            ))
        }
        VolumeCall::Info { name } => {
            let state = read(&catalogue).await?;
            let entry = state
                .volume(&name)
                .ok_or_else(|| refused(format!("no volume named {name:?}")))?;
            Ok(ReplyBody::Volume(state.volume_info(entry)))
        }
        VolumeCall::Create { name, replicas } => create(ctx, &catalogue, name, replicas)
            .await
            .map(ReplyBody::Volume),
        VolumeCall::Remove { name } => {
            propose(&catalogue, Change::RemoveVolume { name }).await?;
            Ok(ReplyBody::Done)
        }
        VolumeCall::AddReplica { name, server } => {
            let member = ReplicaMember {
                replica: fresh_replica(&*read(&catalogue).await?),
                server,
            };
            let epoch = propose(
                &catalogue,
                Change::AddReplica {
                    volume: name.clone(),
                    member: member.clone(),
                },
            )
            .await?;
            let info = info_at(&catalogue, &name, epoch).await?;
            wait_ready(ctx, &info, &[member.server]).await;
            Ok(ReplyBody::Volume(info))
        }
        VolumeCall::RemoveReplica {
            name,
            server,
            force,
        } => remove_replica(ctx, &catalogue, name, server, force).await,
        VolumeCall::SetRoot { name } => {
            propose(&catalogue, Change::SetRoot { volume: name }).await?;
            Ok(ReplyBody::Done)
        }
    }
}

/// Runs one cluster administration call.
pub async fn cluster_call(ctx: &ServerContext, call: ClusterCall) -> Reply {
    let catalogue = ctx.running_catalogue()?.clone();
    match call {
        ClusterCall::List => {
            let state = read(&catalogue).await?;
            let voters: Vec<String> = catalogue.voters().into_iter().map(|n| n.name).collect();
            Ok(ReplyBody::Cluster(ClusterInfo {
                epoch: state.epoch,
                servers: state
                    .servers
                    .values()
                    .map(|s| (s.name.clone(), s.addr.clone(), voters.contains(&s.name)))
                    .collect(),
                root_volume: state
                    .root_volume
                    .and_then(|id| state.volumes.get(&id.0))
                    .map(|v| v.name.clone()),
                revoked: state
                    .revoked
                    .iter()
                    .map(|(f, n)| (f.clone(), n.clone()))
                    .collect(),
            }))
        }
        ClusterCall::AddServer { name, addr } => {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(refused(format!("{addr:?} is not an address (IP:PORT)")));
            }
            // It votes first (and receives the catalogue), then it may hold replicas.
            catalogue
                .change_members(Membership::Join(CatalogueNode {
                    name: name.clone(),
                    addr: addr.clone(),
                }))
                .await
                .map_err(refused)?;
            propose(&catalogue, Change::AddServer(ServerEntry { name, addr })).await?;
            Ok(ReplyBody::Done)
        }
        ClusterCall::RemoveServer { name } => {
            // Refused while it holds replicas; then it stops voting.
            propose(&catalogue, Change::RemoveServer { name: name.clone() }).await?;
            catalogue
                .change_members(Membership::Leave(name))
                .await
                .map_err(refused)?;
            Ok(ReplyBody::Done)
        }
        ClusterCall::Revoke { fingerprint, note } => {
            propose(&catalogue, Change::Revoke { fingerprint, note }).await?;
            Ok(ReplyBody::Done)
        }
    }
}

async fn read(catalogue: &Catalogue<QuicTransport>) -> Result<Arc<CatalogueState>, FsError> {
    catalogue.read().await.map(Arc::new).map_err(refused)
}

/// Commits `change`: its epoch, or a clear refusal (no majority, or the catalogue's
/// reason).
async fn propose(catalogue: &Catalogue<QuicTransport>, change: Change) -> Result<u64, FsError> {
    match catalogue.propose(change).await {
        Ok(Ok(epoch)) => Ok(epoch),
        Ok(Err(refusal)) => Err(refused(refusal)),
        Err(e @ CatalogueError::NoLeader(_)) => Err(refused(e)),
        Err(e) => Err(refused(e)),
    }
}

/// A replica id no volume uses (random 64-bit, never 0).
fn fresh_replica(state: &CatalogueState) -> ReplicaId {
    loop {
        let id = ReplicaId(codetta_wire::entropy::random_u64().max(1));
        if !state
            .volumes
            .values()
            .any(|v| v.vsg.iter().any(|m| m.replica == id))
        {
            return id;
        }
    }
}

/// A volume id no volume uses (0 and 1 are never used).
fn fresh_volume(state: &CatalogueState) -> VolumeId {
    loop {
        let id = codetta_wire::entropy::random_u32();
        if id > 1 && !state.volumes.contains_key(&id) {
            return VolumeId(id);
        }
    }
}

/// The volume `name` once this server's catalogue has applied `epoch`.
async fn info_at(
    catalogue: &Catalogue<QuicTransport>,
    name: &str,
    epoch: u64,
) -> Result<VolumeInfo, FsError> {
    let mut changes = catalogue.subscribe();
    let state = tokio::time::timeout(READY_WAIT, changes.wait_for(|s| s.epoch >= epoch))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|s| s.clone());
    let state = match state {
        Some(s) => s,
        None => read(catalogue).await?,
    };
    let entry = state
        .volume(name)
        .ok_or_else(|| refused(format!("no volume named {name:?}")))?;
    Ok(state.volume_info(entry))
}

async fn create(
    ctx: &ServerContext,
    catalogue: &Catalogue<QuicTransport>,
    name: String,
    replicas: Vec<String>,
) -> Result<VolumeInfo, FsError> {
    let replicas = if replicas.is_empty() {
        vec![ctx.name().to_string()]
    } else {
        replicas
    };
    for (i, server) in replicas.iter().enumerate() {
        if replicas[..i].contains(server) {
            return Err(refused(format!("{server} is listed twice")));
        }
    }
    let state = read(catalogue).await?;
    let mut vsg: Vec<ReplicaMember> = Vec::with_capacity(replicas.len());
    for server in &replicas {
        let mut replica = fresh_replica(&state);
        while vsg.iter().any(|m| m.replica == replica) {
            replica = fresh_replica(&state);
        }
        vsg.push(ReplicaMember {
            replica,
            server: server.clone(),
        });
    }
    let epoch = propose(
        catalogue,
        Change::CreateVolume {
            id: fresh_volume(&state),
            name: name.clone(),
            // The only time a server stamps: its store's clock, which the simulation sets.
            created: Time::from_unix_ms(ctx.store().clock().wall_ms()),
            vsg,
        },
    )
    .await?;
    let info = info_at(catalogue, &name, epoch).await?;
    wait_ready(ctx, &info, &replicas).await;
    tracing::info!(volume = info.id.0, name = %info.name, replicas = info.vsg.len(), "volume created");
    Ok(info)
}

/// Waits (up to [`READY_WAIT`]) until each of `servers` serves `info` at its epoch, so a
/// client that starts right away finds its replica.
async fn wait_ready(ctx: &ServerContext, info: &VolumeInfo, servers: &[String]) {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    for server in servers {
        loop {
            let ready = if server == ctx.name() {
                ctx.check_epoch(info.id, info.epoch).await.is_ok()
                    && ctx.store().volume_info(info.id).is_ok()
            } else {
                let probe = Request::in_volume(info.id, info.epoch, &Request::Hello);
                ctx.peers()
                    .call(server, &probe, bytes::Bytes::new())
                    .await
                    .is_ok()
            };
            if ready {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%server, volume = %info.name, "replica not ready yet; it follows the catalogue when it can");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Removes `server`'s replica of `name`. Unless `force`, the replica is first drained
/// into a remaining one, and the removal is refused while anything only it holds could not
/// be copied, or while it cannot be reached to find out.
async fn remove_replica(
    ctx: &ServerContext,
    catalogue: &Catalogue<QuicTransport>,
    name: String,
    server: String,
    force: bool,
) -> Reply {
    let state = read(catalogue).await?;
    let entry = state
        .volume(&name)
        .ok_or_else(|| refused(format!("no volume named {name:?}")))?;
    let leaving = entry
        .vsg
        .iter()
        .find(|m| m.server == server)
        .ok_or_else(|| refused(format!("server {server:?} holds no replica of {name:?}")))?
        .clone();
    if entry.vsg.len() == 1 {
        return Err(refused("a volume keeps at least one replica"));
    }
    let remaining = entry
        .vsg
        .iter()
        .any(|m| m.server == ctx.name() && m.server != server);
    if !force {
        if !remaining {
            // Drain from a server that stays: forward the whole call to one that answers.
            let call = Request::Volume(VolumeCall::RemoveReplica {
                name,
                server: server.clone(),
                force,
            });
            let mut last = refused("no remaining replica's server answered");
            for to in entry.vsg.iter().filter(|m| m.server != server) {
                match ctx
                    .peers()
                    .call_within(&to.server, &call, DRAIN_DEADLINE + Duration::from_secs(10))
                    .await
                {
                    Ok((body, _)) => return Ok(body),
                    // That server's own refusal is the answer; a server that cannot
                    // answer (unreachable, slow, failing) lets the next try.
                    Err(PeerError::Answer(e))
                        if !matches!(
                            e,
                            FsError::Storage(_) | FsError::Unavailable(_) | FsError::Internal(_)
                        ) =>
                    {
                        return Err(e);
                    }
                    Err(e) => last = e.into(),
                }
            }
            return Err(last);
        }
        drain(ctx, entry.id, &leaving).await?;
    }
    propose(
        catalogue,
        Change::RemoveReplica {
            volume: name,
            server,
            expect_epoch: Some(entry.epoch),
        },
    )
    .await?;
    Ok(ReplyBody::Done)
}

/// How long a drain keeps trying to reach the leaving replica before it refuses.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(10);

/// Comparisons a drain makes before it names what is still different.
const DRAIN_PASSES: usize = 10;

/// Longest a drain may take before the removal is refused.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(300);

/// Copies what only `leaving` holds into this server's replica; refuses, naming them, if
/// some objects could not be settled, or if `leaving` cannot be compared.
async fn drain(
    ctx: &ServerContext,
    volume: VolumeId,
    leaving: &ReplicaMember,
) -> Result<(), FsError> {
    let (members, me) = ctx.members(volume)?;
    // Objects another coordinator is resolving right now (a replica that just came back
    // heals too) are left for later by this pass: compare again until nothing differs or
    // a few passes changed nothing.
    let passes = async {
        let mut total = codetta_wire::message::ResolveSummary::default();
        let mut left = Vec::new();
        let started = tokio::time::Instant::now();
        for pass in 0..DRAIN_PASSES {
            let summary;
            (summary, left) = loop {
                match crate::heal::drain(&members, me, volume, leaving.replica).await {
                    Ok(done) => break done,
                    // A server that just came back may miss the first calls (a dead
                    // connection is noticed and made again): try for a little while.
                    Err(e) if started.elapsed() < UNREACHABLE_GRACE => {
                        tracing::debug!(server = %leaving.server, "drain: {e}; trying again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            total.add(&summary);
            if left.is_empty() {
                break;
            }
            if pass + 1 < DRAIN_PASSES {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok::<_, FsError>((total, left))
    };
    let result = tokio::time::timeout(DRAIN_DEADLINE, passes).await;
    let left = match result {
        Ok(Ok((summary, left))) => {
            tracing::info!(server = %leaving.server, ?summary, left = left.len(), "drained");
            ctx.note_resolution(&summary);
            left
        }
        Ok(Err(e)) => {
            return Err(refused(format!(
                "{} cannot be drained ({e}): it may hold the only copy of acknowledged \
                 updates; bring it back, or remove it with --force",
                leaving.server
            )));
        }
        Err(_) => {
            return Err(refused(format!(
                "draining {} took longer than {} s; try again, or remove it with --force",
                leaving.server,
                DRAIN_DEADLINE.as_secs()
            )));
        }
    };
    let Some(peer) = members.iter().find(|m| m.replica() == leaving.replica) else {
        return Err(FsError::Invalid);
    };
    let Some(own) = members.iter().find(|m| m.replica() == me) else {
        return Err(FsError::Invalid);
    };
    let mut lost = Vec::new();
    for fid in &left {
        let (Ok(theirs), Ok(mine)) = (peer.view(*fid).await, own.view(*fid).await) else {
            lost.push(*fid);
            continue;
        };
        if !crate::heal::covered(&theirs, &mine) {
            lost.push(*fid);
        }
    }
    if lost.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    for fid in lost.iter().take(LISTED) {
        names.push(path_on(peer, *fid).await);
    }
    let more = lost.len().saturating_sub(LISTED);
    Err(refused(format!(
        "{} holds the only copy of {} object(s) that could not be copied: {}{}; \
         removing it would lose them (--force removes it anyway)",
        leaving.server,
        lost.len(),
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

/// The object's path on `replica` (by its placements), for messages.
async fn path_on<R: ReplicaAccess>(replica: &R, fid: Fid) -> String {
    let mut parts = Vec::new();
    let mut at = fid;
    for _ in 0..64 {
        let Ok(view) = replica.view(at).await else {
            break;
        };
        let Some(placement) = view.placement() else {
            break;
        };
        if placement.parent == at {
            break;
        }
        parts.push(String::from_utf8_lossy(&placement.name).into_owned());
        at = placement.parent;
        if at == Fid::root(fid.volume) {
            break;
        }
    }
    parts.reverse();
    format!("/{} ({fid})", parts.join("/"))
}
