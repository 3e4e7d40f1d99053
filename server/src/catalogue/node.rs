//! One server's catalogue node: its Raft instance over [`CatalogueStorage`], the network
//! it reaches the others through, and the calls the rest of the server makes: propose a
//! change (forwarded to the leader when this node is not it), read the catalogue.

use super::raft::{CatalogueNode, CatalogueRaft, Membership, RaftMessage, node_id};
use super::state::{CatalogueState, Change, Outcome};
use super::storage::CatalogueStorage;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, Raft};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// How catalogue nodes reach each other: QUIC between servers, channels in tests.
pub trait CatalogueTransport: Send + Sync + 'static {
    /// Delivers an encoded [`RaftMessage`] to `to` and returns its encoded answer.
    fn raft(
        &self,
        to: &CatalogueNode,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
    /// Asks `to` (the leader) for the catalogue.
    fn read(
        &self,
        to: &CatalogueNode,
    ) -> impl Future<Output = Result<CatalogueState, CatalogueError>> + Send;
    /// Asks `to` (the leader) to propose `change`.
    fn propose(
        &self,
        to: &CatalogueNode,
        change: Change,
    ) -> impl Future<Output = Result<Outcome, CatalogueError>> + Send;
    /// Asks `to` (the leader) to change the group's members.
    fn members(
        &self,
        to: &CatalogueNode,
        change: Membership,
    ) -> impl Future<Output = Result<(), CatalogueError>> + Send;
}

/// Why a catalogue call failed (a refused change is an [`Outcome`], not this).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum CatalogueError {
    /// No leader is known, or none is reachable: no majority.
    #[error("the catalogue has no reachable leader (no majority): {0}")]
    NoLeader(String),
    #[error("catalogue: {0}")]
    Failed(String),
}

/// The network Raft runs over.
struct Network<T> {
    transport: Arc<T>,
}

struct Connection<T> {
    transport: Arc<T>,
    target: u64,
    node: CatalogueNode,
}

impl<T: CatalogueTransport> RaftNetworkFactory<CatalogueRaft> for Network<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: u64, node: &CatalogueNode) -> Connection<T> {
        Connection {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
        }
    }
}

impl<T: CatalogueTransport> Connection<T> {
    async fn call<R: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        message: RaftMessage,
    ) -> Result<R, RPCError<u64, CatalogueNode, RaftError<u64, E>>> {
        let bytes = postcard::to_allocvec(&message)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .raft(&self.node, bytes)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let decoded: Result<R, RaftError<u64, E>> =
            postcard::from_bytes(&answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: CatalogueTransport> RaftNetwork<CatalogueRaft> for Connection<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<CatalogueRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, CatalogueNode, RaftError<u64>>> {
        self.call(RaftMessage::Append(rpc)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<CatalogueRaft>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, CatalogueNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RaftMessage::Snapshot(rpc)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, CatalogueNode, RaftError<u64>>> {
        self.call(RaftMessage::Vote(rpc)).await
    }
}

/// Runs `attempt` again while it finds no leader (an election under way: a restarted
/// server often starts one); the caller bounds the wait.
async fn until_led<T, F, Fut>(mut attempt: F) -> Result<T, CatalogueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CatalogueError>>,
{
    loop {
        match attempt().await {
            Err(CatalogueError::NoLeader(e)) => {
                tracing::debug!("catalogue: waiting for a leader ({e})");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Longest a proposal or a linearizable read waits for a majority.
pub const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// How long a follower waits without hearing from a leader before it stands: a random
/// time in `min_ms..max_ms` (openraft draws it from an unseeded generator, so a
/// deterministic simulation gives each node a range of one value, each a different one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimeout {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Default for ElectionTimeout {
    /// 1 to 2 s: four to eight heartbeats (250 ms) missed.
    fn default() -> ElectionTimeout {
        ElectionTimeout {
            min_ms: 1000,
            max_ms: 2000,
        }
    }
}

/// This server's catalogue node.
pub struct Catalogue<T: CatalogueTransport> {
    raft: Raft<CatalogueRaft>,
    storage: CatalogueStorage,
    transport: Arc<T>,
    me: CatalogueNode,
}

impl<T: CatalogueTransport> Catalogue<T> {
    /// Starts the node `me` with its Raft state in `path` (created if new).
    pub async fn start(
        me: CatalogueNode,
        path: &Path,
        transport: Arc<T>,
    ) -> anyhow::Result<Catalogue<T>> {
        let storage = CatalogueStorage::open(path)?;
        Catalogue::start_on(me, storage, transport, ElectionTimeout::default()).await
    }

    /// Starts the node `me` on `storage`, its elections timing out within `timeout`.
    pub async fn start_on(
        me: CatalogueNode,
        storage: CatalogueStorage,
        transport: Arc<T>,
        timeout: ElectionTimeout,
    ) -> anyhow::Result<Catalogue<T>> {
        let config = Config {
            cluster_name: "codetta-catalogue".into(),
            heartbeat_interval: 250,
            election_timeout_min: timeout.min_ms,
            election_timeout_max: timeout.max_ms,
            install_snapshot_timeout: 5000,
            // A snapshot chunk travels in one request header (at most 4 MiB).
            snapshot_max_chunk_size: 1 << 20,
            ..Config::default()
        }
        .validate()?;
        let raft = Raft::new(
            node_id(&me.name),
            Arc::new(config),
            Network {
                transport: transport.clone(),
            },
            storage.clone(),
            storage.clone(),
        )
        .await?;
        Ok(Catalogue {
            raft,
            storage,
            transport,
            me,
        })
    }

    /// Makes `members` (this node among them) the first voters, once; later calls do
    /// nothing.
    pub async fn initialize(&self, members: &[CatalogueNode]) -> anyhow::Result<()> {
        let nodes: BTreeMap<u64, CatalogueNode> = members
            .iter()
            .map(|m| (node_id(&m.name), m.clone()))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("initializing the catalogue: {e}")),
        }
    }

    /// The leader to forward to when `forward` (from a refused call) names another node.
    fn leader_elsewhere<'a>(
        &self,
        forward: Option<&'a openraft::error::ForwardToLeader<u64, CatalogueNode>>,
    ) -> Option<&'a CatalogueNode> {
        forward
            .and_then(|f| f.leader_node.as_ref())
            .filter(|leader| leader.name != self.me.name)
    }

    /// Commits `change` on a majority (through the leader) and returns what it did. A
    /// change not committed within [`COMMIT_WAIT`] is reported as such (a leader cut off
    /// from the majority never commits it; the majority's next leader discards it).
    pub async fn propose(&self, change: Change) -> Result<Outcome, CatalogueError> {
        let attempts = until_led(|| self.propose_here(change.clone()));
        match tokio::time::timeout(COMMIT_WAIT, attempts).await {
            Ok(answer) => answer,
            Err(_) => Err(CatalogueError::NoLeader(format!(
                "the change was not confirmed within {} s: no majority of servers is \
                 reachable from here. Unless it reached a leader just before, it has not taken \
                 effect (check with `codetta volume list` or `codetta cluster list`)",
                COMMIT_WAIT.as_secs()
            ))),
        }
    }

    async fn propose_here(&self, change: Change) -> Result<Outcome, CatalogueError> {
        match self.raft.client_write(change.clone()).await {
            Ok(written) => Ok(written.data),
            Err(e) => match self.leader_elsewhere(e.forward_to_leader()) {
                Some(leader) => self.transport.propose(leader, change).await,
                None if e.forward_to_leader().is_some() => {
                    Err(CatalogueError::NoLeader(e.to_string()))
                }
                None => Err(CatalogueError::Failed(e.to_string())),
            },
        }
    }

    /// Changes who votes (through the leader): a joining server becomes a learner, is sent
    /// the log, then becomes a voter; a leaving one stops voting. Doing it again is a no-op.
    pub async fn change_members(&self, change: Membership) -> Result<(), CatalogueError> {
        // A learner catching up on a long log may take a while.
        let attempts = until_led(|| self.members_here(change.clone()));
        match tokio::time::timeout(COMMIT_WAIT * 4, attempts).await {
            Ok(answer) => answer,
            Err(_) => Err(CatalogueError::NoLeader(
                "the membership change did not commit in time (no majority reachable, or the \
                 new server does not answer)"
                    .into(),
            )),
        }
    }

    async fn members_here(&self, change: Membership) -> Result<(), CatalogueError> {
        use openraft::ChangeMembers;
        let voters: std::collections::BTreeSet<u64> = self
            .voters()
            .into_iter()
            .map(|n| node_id(&n.name))
            .collect();
        let result = match &change {
            Membership::Join(node) => {
                let id = node_id(&node.name);
                if voters.contains(&id) {
                    return Ok(());
                }
                match self.raft.add_learner(id, node.clone(), true).await {
                    Ok(_) => self
                        .raft
                        .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            Membership::Leave(name) => {
                let id = node_id(name);
                if !voters.contains(&id) {
                    return Ok(());
                }
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters([id].into()), false)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => match self.leader_elsewhere(e.forward_to_leader()) {
                Some(leader) => self.transport.members(leader, change).await,
                None if e.forward_to_leader().is_some() => {
                    Err(CatalogueError::NoLeader(e.to_string()))
                }
                None => Err(CatalogueError::Failed(e.to_string())),
            },
        }
    }

    /// The voters of the group as this node knows them.
    pub fn voters(&self) -> Vec<CatalogueNode> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).cloned())
            .collect()
    }

    /// Answers a Raft message from another node (the encoded reply).
    pub async fn handle_raft(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let message: RaftMessage = postcard::from_bytes(message).map_err(|e| e.to_string())?;
        let encoded = match message {
            RaftMessage::Append(r) => postcard::to_allocvec(&self.raft.append_entries(r).await),
            RaftMessage::Vote(r) => postcard::to_allocvec(&self.raft.vote(r).await),
            RaftMessage::Snapshot(r) => postcard::to_allocvec(&self.raft.install_snapshot(r).await),
        };
        encoded.map_err(|e| e.to_string())
    }

    /// The catalogue as this node has applied it (possibly behind the leader).
    pub fn local(&self) -> CatalogueState {
        self.storage.state()
    }

    /// The applied catalogue, shared (for per-request checks).
    pub fn current(&self) -> Arc<CatalogueState> {
        self.storage.current()
    }

    /// Sees every change this node applies.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<CatalogueState>> {
        self.storage.subscribe()
    }

    /// The catalogue with every change committed before this call: the leader's, once it
    /// has confirmed it still leads (a follower asks the leader).
    pub async fn read(&self) -> Result<CatalogueState, CatalogueError> {
        match tokio::time::timeout(COMMIT_WAIT, until_led(|| self.read_here())).await {
            Ok(answer) => answer,
            Err(_) => Err(CatalogueError::NoLeader(format!(
                "no leader confirmed the catalogue within {} s (no majority of servers reachable)",
                COMMIT_WAIT.as_secs()
            ))),
        }
    }

    async fn read_here(&self) -> Result<CatalogueState, CatalogueError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(self.local()),
            Err(e) => match self.leader_elsewhere(e.forward_to_leader()) {
                Some(leader) => self.transport.read(leader).await,
                None => Err(CatalogueError::NoLeader(e.to_string())),
            },
        }
    }

    /// This node.
    pub fn me(&self) -> &CatalogueNode {
        &self.me
    }

    /// The leader this node knows of.
    pub async fn leader(&self) -> Option<u64> {
        self.raft.current_leader().await
    }

    /// Stops the node; once it returns, dropping this `Catalogue` (its last reference)
    /// closes the database.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("catalogue shutdown: {e}");
        }
        if !self
            .storage
            .last_handle(std::time::Duration::from_secs(5))
            .await
        {
            tracing::warn!("the catalogue's Raft workers still hold its database");
        }
    }
}

#[cfg(test)]
mod tests;
