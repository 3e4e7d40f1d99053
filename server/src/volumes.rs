//! Creating a replicated volume: this server coordinates, every member creates its replica.

use crate::peers::Peers;
use crate::store::Store;
use codetta_wire::message::{ReplicaMember, ReplyBody, VolumeInfo};
use codetta_wire::{Fid, FsError, ReplicaId, Request, Time};
use std::sync::Arc;

/// Creates volume `name` with a replica on each server in `replicas` (this server alone if
/// empty): a fresh volume id, a fresh replica id per member (random 64-bit: never reused),
/// and one root time so every replica starts equal. Fails, naming the servers, unless every
/// member created its replica.
pub async fn create_volume(
    store: &Arc<Store>,
    peers: &Peers,
    self_name: &str,
    name: String,
    replicas: Vec<String>,
) -> Result<VolumeInfo, FsError> {
    let replicas = if replicas.is_empty() {
        vec![self_name.to_string()]
    } else {
        replicas
    };
    for (i, server) in replicas.iter().enumerate() {
        if replicas[..i].contains(server) {
            return Err(FsError::Malformed(format!("{server} is listed twice")));
        }
        if server != self_name && !peers.knows(server) {
            return Err(FsError::Malformed(format!(
                "{server} is not a server this one knows (not this server, not in its [[peers]])"
            )));
        }
    }
    let id = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.fresh_volume_id())
            .await
            .map_err(|e| FsError::Storage(e.to_string()))??
    };
    let vsg: Vec<ReplicaMember> = replicas
        .iter()
        .map(|server| ReplicaMember {
            replica: ReplicaId(rand::random::<u64>().max(1)),
            server: server.clone(),
        })
        .collect();
    let info = VolumeInfo {
        id,
        name,
        root: Fid::root(id),
        vsg,
    };
    let time = Time::now();
    let creations = info.vsg.iter().map(|member| {
        let info = info.clone();
        let store = store.clone();
        async move {
            let result = if member.server == self_name {
                let replica = member.replica;
                tokio::task::spawn_blocking(move || store.create_replica(&info, replica, time))
                    .await
                    .map_err(|e| FsError::Storage(e.to_string()))
                    .and_then(|r| r)
                    .map(|_| ())
            } else {
                let request = Request::CreateReplica {
                    volume: info,
                    replica: member.replica,
                    time,
                };
                match peers
                    .call(&member.server, &request, bytes::Bytes::new())
                    .await
                {
                    Ok((ReplyBody::Volume(_), _)) => Ok(()),
                    Ok((other, _)) => Err(FsError::Storage(format!("unexpected reply {other:?}"))),
                    Err(e) => Err(e),
                }
            };
            (member.server.clone(), result)
        }
    });
    let results = futures::future::join_all(creations).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(server, r)| r.as_ref().err().map(|e| format!("{server}: {e}")))
        .collect();
    if failed.is_empty() {
        tracing::info!(volume = info.id.0, name = %info.name, replicas = info.vsg.len(), "volume created");
        return Ok(info);
    }
    if results
        .iter()
        .all(|(_, r)| matches!(r, Err(FsError::Exists)))
    {
        return Err(FsError::Exists);
    }
    Err(FsError::Storage(format!(
        "volume {} not created on every server ({})",
        info.name,
        failed.join("; ")
    )))
}
