//! A link to one server: a cached connection, made on first use and again after it dies,
//! and calls that each finish within a deadline (rule 14: fail fast).

use crate::Carrier;
use crate::error::TransportError;
use crate::framing::call;
use codetta_certs::Identity;
use codetta_wire::Frame;
use quinn::Endpoint;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A server's node name (its certificate name) and address, as configuration files list
/// them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerEntry {
    pub name: String,
    pub addr: SocketAddr,
}

/// How a caller makes its link to a server (QUIC in the daemons, carried in the
/// simulation).
pub type MakeLink = Box<dyn Fn(&ServerEntry) -> Link + Send + Sync>;

/// One server as a caller sees it. Cheap to share; calls may run concurrently on the one
/// connection (each on its own stream).
pub struct Link {
    name: String,
    addr: SocketAddr,
    route: Route,
    deadline: Duration,
}

/// How a link's calls travel.
enum Route {
    Quic(QuicRoute),
    Carried(Arc<dyn Carrier>),
}

/// A QUIC connection to the server, made on first use and again after it dies.
struct QuicRoute {
    identity: Arc<Identity>,
    endpoint: Endpoint,
    conn: Mutex<Option<quinn::Connection>>,
    /// When the last connection attempt failed: for [`RECONNECT_BACKOFF`] after it, calls
    /// fail at once instead of each waiting out a connect deadline on a dead server.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Connections made so far: state tied to one connection (callback promises) holds
    /// only while this stays the same.
    generation: std::sync::atomic::AtomicU64,
}

/// How long after a failed connection attempt calls fail without trying again.
pub(crate) const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

impl Link {
    /// A link to the server `name` at `addr` over `endpoint`; nothing is sent until the
    /// first call.
    pub fn new(
        server: &ServerEntry,
        identity: Arc<Identity>,
        endpoint: Endpoint,
        deadline: Duration,
    ) -> Link {
        Link {
            name: server.name.clone(),
            addr: server.addr,
            route: Route::Quic(QuicRoute {
                identity,
                endpoint,
                conn: Mutex::new(None),
                failed_at: std::sync::Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
            deadline,
        }
    }

    /// A link whose calls `carrier` takes (the simulation's network) instead of QUIC.
    pub fn carried(server: &ServerEntry, carrier: Arc<dyn Carrier>, deadline: Duration) -> Link {
        Link {
            name: server.name.clone(),
            addr: server.addr,
            route: Route::Carried(carrier),
            deadline,
        }
    }

    /// Which connection calls go on now (it goes up with every new connection).
    pub fn generation(&self) -> u64 {
        match &self.route {
            Route::Quic(q) => q.generation.load(std::sync::atomic::Ordering::Acquire),
            Route::Carried(c) => c.generation(),
        }
    }

    /// The server's node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Sends `request` and waits for the reply frame, connecting first if needed; the
    /// connection and the exchange each get the deadline. A connection found dead is
    /// dropped so that the next call reconnects.
    pub async fn call(&self, request: &Frame) -> Result<Frame, TransportError> {
        self.call_within(request, self.deadline).await
    }

    /// [`Link::call`] with its own deadline for the exchange: longer for large transfers,
    /// shorter for probes (connecting gets the shorter of it and the link's).
    pub async fn call_within(
        &self,
        request: &Frame,
        deadline: Duration,
    ) -> Result<Frame, TransportError> {
        match &self.route {
            Route::Quic(q) => {
                let connect_within = deadline.min(self.deadline);
                q.call(&self.name, self.addr, request, connect_within, deadline)
                    .await
            }
            Route::Carried(c) => c.call(request.clone(), deadline).await,
        }
    }

    /// Closes the connection (the endpoint stays with its owner).
    pub async fn close(&self) {
        match &self.route {
            Route::Quic(q) => {
                if let Some(conn) = q.conn.lock().await.take() {
                    conn.close(0u32.into(), b"closing");
                }
            }
            Route::Carried(c) => c.close(),
        }
    }
}

impl QuicRoute {
    /// The cached connection, or a new one made within `deadline`.
    async fn connection(
        &self,
        name: &str,
        addr: SocketAddr,
        deadline: Duration,
    ) -> Result<quinn::Connection, TransportError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.close_reason().is_none()
        {
            return Ok(conn.clone());
        }
        let recent_failure = self
            .failed_at
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF);
        if recent_failure {
            return Err(TransportError::RecentlyFailed);
        }
        let connect = crate::connect(&self.endpoint, addr, name, &self.identity);
        let result = match tokio::time::timeout(deadline, connect).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(deadline)),
        };
        if let Ok(mut f) = self.failed_at.lock() {
            *f = if result.is_err() {
                Some(std::time::Instant::now())
            } else {
                None
            };
        }
        let conn = result?;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// One exchange on the connection (made first if needed). A connection found dead is
    /// dropped so that the next call reconnects.
    async fn call(
        &self,
        name: &str,
        addr: SocketAddr,
        request: &Frame,
        connect_within: Duration,
        deadline: Duration,
    ) -> Result<Frame, TransportError> {
        let conn = self.connection(name, addr, connect_within).await?;
        match call(&conn, request, deadline).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                if conn.close_reason().is_some() {
                    let mut guard = self.conn.lock().await;
                    if guard
                        .as_ref()
                        .is_some_and(|c| c.stable_id() == conn.stable_id())
                    {
                        *guard = None;
                    }
                }
                Err(e)
            }
        }
    }
}
