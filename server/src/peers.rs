//! The other servers of the cluster, as this server calls them (server-to-server requests
//! travel with this server's own certificate, whose role says `server`).

use crate::peer_error::{PeerError, PeerResult};
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_transport::{Link, MakeLink, ServerEntry};
use codetta_wire::message::ReplyBody;
use codetta_wire::{Frame, Request};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Links to the other servers, by node name: the configured peers, and the servers the
/// catalogue names (a server added to the cluster later).
pub struct Peers {
    /// How to make a link (none: a store without peers, in tests).
    maker: Option<MakeLink>,
    links: RwLock<BTreeMap<String, Arc<Link>>>,
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
        let make: MakeLink =
            Box::new(move |p| Link::new(p, identity.clone(), endpoint.clone(), deadline));
        Ok(Peers::making(peers, make))
    }

    /// Links to `peers` that `make` makes (the simulation's carried ones).
    pub fn making(peers: &[ServerEntry], make: MakeLink) -> Peers {
        let links = peers
            .iter()
            .map(|p| (p.name.clone(), Arc::new(make(p))))
            .collect();
        Peers {
            maker: Some(make),
            links: RwLock::new(links),
        }
    }

    /// No peers (a single server).
    pub fn none() -> Peers {
        Peers {
            maker: None,
            links: RwLock::new(BTreeMap::new()),
        }
    }

    /// Whether `name` is a peer this server has a link to.
    pub fn knows(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Link>>> {
        self.links.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a link to `name` at `addr` ("host:port") unless there is one (a configured
    /// peer keeps its configured address).
    pub fn ensure(&self, name: &str, addr: &str) {
        if self.knows(name) {
            return;
        }
        let Some(make) = &self.maker else {
            return;
        };
        let Ok(addr) = addr.parse() else {
            tracing::warn!(server = name, addr, "not a socket address; no link made");
            return;
        };
        let entry = ServerEntry {
            name: name.to_string(),
            addr,
        };
        let link = Arc::new(make(&entry));
        let mut links = self.links.write().unwrap_or_else(|p| p.into_inner());
        links.entry(name.to_string()).or_insert(link);
        tracing::info!(server = name, %addr, "link to a server the catalogue names");
    }

    /// Calls peer `name`: its answer, or why there is none.
    pub async fn call(
        &self,
        name: &str,
        request: &Request,
        data: Bytes,
    ) -> PeerResult<(ReplyBody, Bytes)> {
        self.call_with(name, request, data, None).await
    }

    /// Calls peer `name` with a longer deadline than the usual one (a call that waits on
    /// work, such as a drain).
    pub async fn call_within(
        &self,
        name: &str,
        request: &Request,
        deadline: std::time::Duration,
    ) -> PeerResult<(ReplyBody, Bytes)> {
        self.call_with(name, request, Bytes::new(), Some(deadline))
            .await
    }

    async fn call_with(
        &self,
        name: &str,
        request: &Request,
        data: Bytes,
        deadline: Option<std::time::Duration>,
    ) -> PeerResult<(ReplyBody, Bytes)> {
        let link = self
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PeerError::Unreachable {
                server: name.to_string(),
                reason: "no link to a server of that name".into(),
            })?;
        let frame = Frame::request(request, data).map_err(|e| PeerError::Protocol {
            server: name.to_string(),
            what: format!("the request does not fit a frame: {e}"),
        })?;
        let reply = match deadline {
            Some(d) => link.call_within(&frame, d).await,
            None => link.call(&frame).await,
        }
        .map_err(|e| PeerError::from_transport(name, &e))?;
        let body = reply.decode_reply().map_err(|e| PeerError::Protocol {
            server: name.to_string(),
            what: format!("undecodable reply: {e}"),
        })??;
        Ok((body, reply.data.into_contiguous()))
    }
}
