//! The catalogue's Raft type configuration and the messages Raft nodes exchange.

use super::state::{Change, Outcome};
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A Raft node: a server, by the name its certificate carries and its QUIC address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueNode {
    pub name: String,
    pub addr: String,
}

/// A server's Raft node id: a function of its name, the same everywhere.
pub fn node_id(name: &str) -> u64 {
    let h = blake3::hash(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    // Raft ids are compared and printed; keep them readable and never zero.
    u64::from_le_bytes(b) >> 1 | 1
}

openraft::declare_raft_types!(
    /// The catalogue's Raft types.
    pub CatalogueRaft:
        D = Change,
        R = Outcome,
        NodeId = u64,
        Node = CatalogueNode,
        Entry = openraft::Entry<CatalogueRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<CatalogueRaft>,
);

/// A change of who votes in the catalogue's Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Membership {
    /// The server joins: a learner first (it receives the log), then a voter.
    Join(CatalogueNode),
    /// The server named leaves the voters.
    Leave(String),
}

/// One Raft message from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftMessage {
    Append(openraft::raft::AppendEntriesRequest<CatalogueRaft>),
    Vote(openraft::raft::VoteRequest<u64>),
    Snapshot(openraft::raft::InstallSnapshotRequest<CatalogueRaft>),
}
