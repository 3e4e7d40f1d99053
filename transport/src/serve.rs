//! The server side: accept connections, identify peers, one task per request stream.

use crate::{Peer, TransportError, peer_of, read_frame, write_frame};
use bytes::Bytes;
use codetta_wire::{Frame, FrameKind, FsError};
use quinn::VarInt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Application close code: the endpoint is shutting down.
pub const CLOSE_SHUTDOWN: VarInt = VarInt::from_u32(0);
/// Application close code: the peer's certificate carries no usable role (or the wrong one).
pub const CLOSE_BAD_PEER: VarInt = VarInt::from_u32(1);

/// How long [`serve`] waits for in-flight requests after shutdown before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long [`serve`] waits for close frames to be delivered after closing the endpoint.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// What a server does with one request. `handle` must always produce a reply frame (errors
/// travel inside it as [`FsError`]); `peer` is the CA-verified identity of the caller, for
/// role checks.
pub trait Service: Send + Sync + 'static {
    fn handle(&self, peer: Arc<Peer>, request: Frame) -> impl Future<Output = Frame> + Send;
}

/// Serves `endpoint` until `shutdown` becomes `true` (or its sender is dropped), then closes
/// the endpoint, lets in-flight requests finish for a bounded grace period, and returns.
///
/// Each connection's peer is read from its certificate; a certificate without exactly one
/// valid role closes the connection ([`CLOSE_BAD_PEER`]) before any request is read. Each
/// bidirectional stream is one request: a stream that is not exactly one request frame gets a
/// reply carrying [`FsError::Malformed`], and the connection keeps serving. Concurrent streams
/// per connection are bounded by the transport's `max_concurrent_bidi_streams`.
pub async fn serve(
    endpoint: quinn::Endpoint,
    service: Arc<impl Service>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let span = tracing::debug_span!("conn", remote = %incoming.remote_address());
                connections.spawn(serve_connection(incoming, service.clone()).instrument(span));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::debug!("transport shutting down");
    endpoint.close(CLOSE_SHUTDOWN, b"shutting down");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "abandoning requests still running after the grace period"
        );
        connections.shutdown().await;
    }
    let _ = tokio::time::timeout(IDLE_WAIT, endpoint.wait_idle()).await;
}

async fn serve_connection(incoming: quinn::Incoming, service: Arc<impl Service>) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(%e, "handshake failed");
            return;
        }
    };
    let peer = match peer_of(&conn) {
        Ok(peer) => Arc::new(peer),
        Err(e) => {
            tracing::warn!(%e, "refusing peer");
            conn.close(CLOSE_BAD_PEER, b"certificate without a valid role");
            return;
        }
    };
    tracing::debug!(role = %peer.role, name = %peer.name, "peer connected");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(send, recv, peer.clone(), service.clone()));
                }
                Err(e) => {
                    tracing::debug!(%e, "connection ended");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    // Let running handlers finish: cancelling one midway could leave its work half done.
    while streams.join_next().await.is_some() {}
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Arc<Peer>,
    service: Arc<impl Service>,
) {
    let reply = match read_frame(&mut recv).await {
        Ok(frame) if frame.kind == FrameKind::Request => service.handle(peer, frame).await,
        Ok(_) => malformed("expected a request frame".to_owned()),
        Err(e) if e.is_malformed() => malformed(e.to_string()),
        Err(e) => {
            tracing::debug!(%e, "stream failed before a request arrived");
            return;
        }
    };
    drop(recv);
    if let Err(e) = send_reply(&mut send, &reply).await {
        tracing::debug!(%e, "could not send the reply");
    }
}

async fn send_reply(send: &mut quinn::SendStream, reply: &Frame) -> Result<(), TransportError> {
    write_frame(send, reply).await?;
    send.finish()?;
    Ok(())
}

fn malformed(message: String) -> Frame {
    tracing::debug!(%message, "malformed request");
    Frame::reply(&Err(FsError::Malformed(message)), Bytes::new()).unwrap_or_else(|e| {
        // Unreachable in practice: a short error message always fits in a frame.
        tracing::error!(%e, "cannot encode a Malformed reply");
        Frame {
            kind: FrameKind::Reply,
            header: Bytes::new(),
            data: codetta_wire::Payload::new(),
        }
    })
}
