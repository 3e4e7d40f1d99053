//! The client's link to one server: a transport [`Link`] (cached connection, every call
//! under a deadline) plus how long the server has been unreachable, so that callers can
//! choose JUKEBOX or IO.

use crate::config::ServerEntry;
use crate::error::ClientError;
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_transport::{Link, MakeLink};
use codetta_wire::message::ReplyBody;
use codetta_wire::{Frame, Payload, Request};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A connection to one server, with reachability bookkeeping.
pub struct ServerLink {
    link: Link,
    unreachable_since: Mutex<Option<Instant>>,
    jukebox_window: Duration,
}

impl ServerLink {
    /// A link to `server` over `endpoint`; no connection is made until the first call.
    pub fn new(
        server: &ServerEntry,
        identity: Arc<Identity>,
        endpoint: quinn::Endpoint,
        deadline: Duration,
        jukebox_window: Duration,
    ) -> ServerLink {
        ServerLink::over(
            Link::new(server, identity, endpoint, deadline),
            jukebox_window,
        )
    }

    /// A link over any transport link (the simulation's carried ones).
    pub fn over(link: Link, jukebox_window: Duration) -> ServerLink {
        ServerLink {
            link,
            unreachable_since: Mutex::new(None),
            jukebox_window,
        }
    }

    /// The server's node name.
    pub fn server_name(&self) -> &str {
        self.link.name()
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.link.deadline()
    }

    /// Marks the server unreachable and returns the error a caller should see.
    fn unreachable(&self) -> ClientError {
        let Ok(mut since) = self.unreachable_since.lock() else {
            return ClientError::Unavailable;
        };
        let first = *since.get_or_insert_with(Instant::now);
        if first.elapsed() > self.jukebox_window {
            ClientError::Down
        } else {
            ClientError::Unavailable
        }
    }

    /// The error for a call that waited in vain while the link is in its current state:
    /// JUKEBOX-worthy at first, IO once the server has been gone past the window.
    pub fn outage_error(&self) -> ClientError {
        if self.down_too_long() {
            ClientError::Down
        } else {
            ClientError::Unavailable
        }
    }

    /// True once the server has been unreachable for longer than the JUKEBOX window.
    pub fn down_too_long(&self) -> bool {
        let since = self.unreachable_since.lock().ok().and_then(|g| *g);
        since.is_some_and(|first| first.elapsed() > self.jukebox_window)
    }

    fn reached(&self) {
        if let Ok(mut since) = self.unreachable_since.lock()
            && since.take().is_some()
        {
            tracing::info!(server = %self.link.name(), "server reachable again");
        }
    }

    /// Sends one request and waits for its reply, within the deadline. A transport
    /// failure is `Unavailable` (or `Down` past the window); a server's refusal is `Fs`.
    /// Which connection calls go on now (see [`Link::generation`]).
    pub fn generation(&self) -> u64 {
        self.link.generation()
    }

    pub async fn call(
        &self,
        request: &Request,
        data: impl Into<Payload>,
    ) -> Result<(ReplyBody, Bytes), ClientError> {
        self.call_within(request, data, self.link.deadline()).await
    }

    /// [`ServerLink::call`] with its own deadline for the exchange (a resolution can take
    /// as long as shipping what a replica missed).
    pub async fn call_within(
        &self,
        request: &Request,
        data: impl Into<Payload>,
        deadline: Duration,
    ) -> Result<(ReplyBody, Bytes), ClientError> {
        let frame =
            Frame::request(request, data).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let reply = match self.link.call_within(&frame, deadline).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(server = %self.link.name(), "call failed: {e}");
                return Err(self.unreachable());
            }
        };
        self.reached();
        let body = reply
            .decode_reply()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((body?, reply.data.into_contiguous()))
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.link.close().await;
    }
}

/// The client's links, by server name: those configured, and those the catalogue names
/// (a volume's group may include servers the configuration does not list: a client
/// pointed at one server learns the others' addresses from it).
pub struct LinkPool {
    make: MakeLink,
    jukebox_window: Duration,
    links: Mutex<Vec<Arc<ServerLink>>>,
}

impl LinkPool {
    /// A pool holding a link to each configured server.
    pub fn new(
        configured: &[ServerEntry],
        identity: Arc<Identity>,
        endpoint: quinn::Endpoint,
        deadline: Duration,
        jukebox_window: Duration,
    ) -> LinkPool {
        let make: MakeLink =
            Box::new(move |server| Link::new(server, identity.clone(), endpoint.clone(), deadline));
        LinkPool::making(configured, make, jukebox_window)
    }

    /// A pool whose links `make` makes (the simulation's carried ones).
    pub fn making(
        configured: &[ServerEntry],
        make: MakeLink,
        jukebox_window: Duration,
    ) -> LinkPool {
        let pool = LinkPool {
            make,
            jukebox_window,
            links: Mutex::new(Vec::new()),
        };
        for server in configured {
            pool.add(server);
        }
        pool
    }

    fn add(&self, server: &ServerEntry) -> Arc<ServerLink> {
        let link = Arc::new(ServerLink::over((self.make)(server), self.jukebox_window));
        if let Ok(mut links) = self.links.lock() {
            links.push(link.clone());
        }
        link
    }

    /// Every link, configured ones first.
    pub fn all(&self) -> Vec<Arc<ServerLink>> {
        self.links.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The link to `name`, made from `addr` ("host:port") if there is none yet.
    pub fn get(&self, name: &str, addr: Option<&str>) -> Result<Arc<ServerLink>, ClientError> {
        if let Some(link) = self.all().into_iter().find(|l| l.server_name() == name) {
            return Ok(link);
        }
        let addr = addr
            .ok_or_else(|| ClientError::Storage(format!("no address known for server {name}")))?;
        let addr = addr.parse().map_err(|e| {
            ClientError::Protocol(format!("server {name} has a bad address {addr:?}: {e}"))
        })?;
        Ok(self.add(&ServerEntry {
            name: name.to_string(),
            addr,
        }))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        for link in self.all() {
            link.close().await;
        }
    }
}
