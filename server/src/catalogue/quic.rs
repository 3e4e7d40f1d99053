//! The catalogue's transport between servers: server-role QUIC requests
//! ([`Request::Catalogue`]) over the links to the configured peers.

use super::node::{CatalogueError, CatalogueTransport};
use super::raft::{CatalogueNode, Membership};
use super::state::{CatalogueState, Change, Outcome};
use crate::peers::Peers;
use bytes::Bytes;
use codetta_wire::Request;
use codetta_wire::message::{CatalogueCall, ReplyBody};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Reaches the other servers' catalogue nodes through this server's peer links.
pub struct QuicTransport {
    peers: Arc<Peers>,
}

impl QuicTransport {
    pub fn new(peers: Arc<Peers>) -> QuicTransport {
        QuicTransport { peers }
    }

    async fn call(&self, to: &CatalogueNode, call: CatalogueCall) -> Result<Vec<u8>, String> {
        // A server added to the cluster is reached at the address its node carries.
        self.peers.ensure(&to.name, &to.addr);
        match self
            .peers
            .call(&to.name, &Request::Catalogue(call), Bytes::new())
            .await
        {
            Ok((ReplyBody::Catalogue(bytes), _)) => Ok(bytes),
            Ok((other, _)) => Err(format!("server {}: unexpected reply {other:?}", to.name)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        to: &CatalogueNode,
        call: CatalogueCall,
    ) -> Result<T, CatalogueError> {
        let bytes = self
            .call(to, call)
            .await
            .map_err(CatalogueError::NoLeader)?;
        let answer: Result<T, CatalogueError> =
            postcard::from_bytes(&bytes).map_err(|e| CatalogueError::Failed(e.to_string()))?;
        answer
    }
}

impl CatalogueTransport for QuicTransport {
    async fn raft(&self, to: &CatalogueNode, message: Vec<u8>) -> Result<Vec<u8>, String> {
        self.call(to, CatalogueCall::Raft(message)).await
    }

    async fn read(&self, to: &CatalogueNode) -> Result<CatalogueState, CatalogueError> {
        let bytes = self
            .call(to, CatalogueCall::Read)
            .await
            .map_err(CatalogueError::NoLeader)?;
        // A leader not yet upgraded answers in the layout before the departed list.
        let answer: Result<CatalogueState, CatalogueError> = super::legacy::decode_or_older(
            &bytes,
            |old: Result<super::legacy::StateWithoutDeparted, CatalogueError>| old.map(Into::into),
        )
        .map_err(|e| CatalogueError::Failed(e.to_string()))?;
        answer
    }

    async fn propose(&self, to: &CatalogueNode, change: Change) -> Result<Outcome, CatalogueError> {
        let change =
            postcard::to_allocvec(&change).map_err(|e| CatalogueError::Failed(e.to_string()))?;
        self.answer(to, CatalogueCall::Propose(change)).await
    }

    async fn members(&self, to: &CatalogueNode, change: Membership) -> Result<(), CatalogueError> {
        let change =
            postcard::to_allocvec(&change).map_err(|e| CatalogueError::Failed(e.to_string()))?;
        self.answer(to, CatalogueCall::Members(change)).await
    }
}
