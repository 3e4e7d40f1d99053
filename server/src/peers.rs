//! The other servers of the cluster, as this server calls them (server-to-server requests
//! travel with this server's own certificate, whose role says `server`).

use bytes::Bytes;
use codetta_certs::Identity;
use codetta_transport::{Link, ServerEntry};
use codetta_wire::message::ReplyBody;
use codetta_wire::{Frame, FsError, Request};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Links to every configured peer, by node name.
pub struct Peers {
    links: BTreeMap<String, Arc<Link>>,
}

impl Peers {
    /// Links to `peers` over one client endpoint carrying `identity`.
    pub fn new(
        identity: &Identity,
        peers: &[ServerEntry],
        deadline: Duration,
    ) -> anyhow::Result<Peers> {
        let endpoint = codetta_transport::client_endpoint(identity)?;
        let identity = Arc::new(identity.clone());
        let links = peers
            .iter()
            .map(|p| {
                let link = Link::new(p, identity.clone(), endpoint.clone(), deadline);
                (p.name.clone(), Arc::new(link))
            })
            .collect();
        Ok(Peers { links })
    }

    /// No peers (a single server).
    pub fn none() -> Peers {
        Peers {
            links: BTreeMap::new(),
        }
    }

    /// Whether `name` is a configured peer.
    pub fn knows(&self, name: &str) -> bool {
        self.links.contains_key(name)
    }

    /// Calls peer `name`. Transport failures are `Storage` errors naming the peer.
    pub async fn call(
        &self,
        name: &str,
        request: &Request,
        data: Bytes,
    ) -> Result<(ReplyBody, Bytes), FsError> {
        self.call_with(name, request, data, None).await
    }

    /// Calls peer `name` with a longer deadline than the usual one (a call that waits on
    /// work, such as a drain).
    pub async fn call_within(
        &self,
        name: &str,
        request: &Request,
        deadline: std::time::Duration,
    ) -> Result<(ReplyBody, Bytes), FsError> {
        self.call_with(name, request, Bytes::new(), Some(deadline))
            .await
    }

    async fn call_with(
        &self,
        name: &str,
        request: &Request,
        data: Bytes,
        deadline: Option<std::time::Duration>,
    ) -> Result<(ReplyBody, Bytes), FsError> {
        let link = self
            .links
            .get(name)
            .ok_or_else(|| FsError::Malformed(format!("unknown server {name:?}")))?;
        let frame = Frame::request(request, data).map_err(|e| FsError::Malformed(e.to_string()))?;
        let reply = match deadline {
            Some(d) => link.call_within(&frame, d).await,
            None => link.call(&frame).await,
        }
        .map_err(|e| FsError::Storage(format!("server {name}: {e}")))?;
        let body = reply
            .decode_reply()
            .map_err(|e| FsError::Storage(format!("server {name}: {e}")))??;
        Ok((body, reply.data))
    }
}
