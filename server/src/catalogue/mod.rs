//! The catalogue (rule 13): servers, volumes with their replica groups by replica id, the
//! root volume. Every server holds it as the state machine of a Raft group of all servers
//! (openraft), so a change commits on a majority and every server applies the same
//! changes in the same order.
//!
//! This module has the pure state machine ([`state`]), the Raft types ([`raft`]), the
//! Raft log and state kept in redb ([`storage`]), and a node that proposes changes and
//! forwards them to the leader ([`node`]). The network under it is a trait
//! ([`node::CatalogueTransport`]): [`quic`] between servers (over the server's peer
//! links, which the simulation carries), direct calls in tests. The daemon starts a node
//! on every server; each server's replicas follow it ([`crate::volumes`]).

mod legacy;
pub mod node;
pub mod quic;
pub mod raft;
pub mod state;
pub mod storage;

pub use node::{Catalogue, CatalogueError, CatalogueTransport, ElectionTimeout};
pub use quic::QuicTransport;
pub use raft::{CatalogueNode, Membership, node_id};
pub use state::{CatalogueState, Change, Outcome, Refusal, ServerEntry, VolumeEntry};

/// Decodes `bytes` as every body the catalogue reads (see
/// [`crate::fuzzing::catalogue_bodies`]).
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    use crate::decode_check::{postcard_decodes, postcard_round_trip};
    postcard_round_trip::<Change>(bytes);
    postcard_round_trip::<Membership>(bytes);
    postcard_round_trip::<CatalogueState>(bytes);
    postcard_decodes::<raft::RaftMessage>(bytes);
    postcard_decodes::<openraft::Entry<raft::CatalogueRaft>>(bytes);
    postcard_decodes::<openraft::Vote<u64>>(bytes);
    postcard_decodes::<openraft::LogId<u64>>(bytes);
    storage::fuzz_snapshot(bytes);
}
