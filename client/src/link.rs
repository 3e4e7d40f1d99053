//! The client's QUIC link to a server: one connection, re-established on demand, every
//! call under a deadline (rule 14: fail fast), and a record of how long the server has
//! been unreachable so callers can choose JUKEBOX or IO.

use crate::config::ServerEntry;
use crate::error::ClientError;
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_wire::message::ReplyBody;
use codetta_wire::{Frame, Request};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A connection to one server, with reachability bookkeeping.
pub struct ServerLink {
    server: ServerEntry,
    identity: Identity,
    endpoint: quinn::Endpoint,
    conn: Mutex<Option<quinn::Connection>>,
    unreachable_since: std::sync::Mutex<Option<Instant>>,
    deadline: Duration,
    jukebox_window: Duration,
}

impl ServerLink {
    /// A link to `server`; no connection is made until the first call.
    pub fn new(
        server: ServerEntry,
        identity: Identity,
        deadline: Duration,
        jukebox_window: Duration,
    ) -> Result<ServerLink, ClientError> {
        let endpoint = codetta_transport::client_endpoint(&identity)
            .map_err(|e| ClientError::Storage(format!("QUIC endpoint: {e}")))?;
        Ok(ServerLink {
            server,
            identity,
            endpoint,
            conn: Mutex::new(None),
            unreachable_since: std::sync::Mutex::new(None),
            deadline,
            jukebox_window,
        })
    }

    /// The server's node name.
    pub fn server_name(&self) -> &str {
        &self.server.name
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn connection(&self) -> Result<quinn::Connection, ClientError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.close_reason().is_none()
        {
            return Ok(conn.clone());
        }
        let connect = codetta_transport::connect(
            &self.endpoint,
            self.server.addr,
            &self.server.name,
            &self.identity,
        );
        let conn = tokio::time::timeout(self.deadline, connect)
            .await
            .map_err(|_| self.unreachable())?
            .map_err(|e| {
                tracing::debug!(server = %self.server.name, "connect failed: {e}");
                self.unreachable()
            })?;
        *guard = Some(conn.clone());
        Ok(conn)
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
        let since = self.unreachable_since.lock().ok().and_then(|g| *g);
        match since {
            Some(first) if first.elapsed() > self.jukebox_window => ClientError::Down,
            _ => ClientError::Unavailable,
        }
    }

    fn reached(&self) {
        if let Ok(mut since) = self.unreachable_since.lock()
            && since.take().is_some()
        {
            tracing::info!(server = %self.server.name, "server reachable again");
        }
    }

    /// Sends one request and waits for its reply, within the deadline.
    pub async fn call(
        &self,
        request: &Request,
        data: Bytes,
    ) -> Result<(ReplyBody, Bytes), ClientError> {
        let frame =
            Frame::request(request, data).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let conn = self.connection().await?;
        let reply = match codetta_transport::call(&conn, &frame, self.deadline).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(server = %self.server.name, "call failed: {e}");
                // A call that timed out on a live connection may be a slow server; a dead
                // connection is dropped so the next call reconnects.
                if conn.close_reason().is_some() {
                    let mut guard = self.conn.lock().await;
                    if guard
                        .as_ref()
                        .is_some_and(|c| c.stable_id() == conn.stable_id())
                    {
                        *guard = None;
                    }
                }
                return Err(self.unreachable());
            }
        };
        self.reached();
        let body = reply
            .decode_reply()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((body?, reply.data))
    }

    /// Closes the connection and the endpoint.
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            conn.close(0u32.into(), b"client shutting down");
        }
        self.endpoint.wait_idle().await;
    }
}
