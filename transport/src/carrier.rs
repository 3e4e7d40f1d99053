//! The seam a simulation plugs into: a [`Carrier`] takes a link's calls instead of a QUIC
//! connection, and a [`ConnectionEnd`] stands for the connection a request came on. The
//! client and the server reach each other only through [`crate::Link`] and
//! [`crate::Service`], so code above them runs unchanged over either.

use crate::TransportError;
use codetta_wire::Frame;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// A call under way on a carrier.
pub type CarriedCall = Pin<Box<dyn Future<Output = Result<Frame, TransportError>> + Send>>;

/// Takes a link's calls to one server by some other means than QUIC (the simulation's
/// in-memory network). It must answer within `deadline` or fail with
/// [`TransportError::Timeout`], as a QUIC link does.
pub trait Carrier: Send + Sync + 'static {
    /// Sends `request` and waits for the reply.
    fn call(&self, request: Frame, deadline: Duration) -> CarriedCall;
    /// Which connection calls go on now (see [`crate::Link::generation`]).
    fn generation(&self) -> u64;
    /// Ends the current connection (the next call makes another).
    fn close(&self);
}

/// The connection a request came on, as the server sees it: its end ends state kept per
/// connection (callback sessions).
#[derive(Debug, Clone)]
pub enum ConnectionEnd {
    Quic(quinn::Connection),
    /// A carried connection: closed once the sender says `true` or is dropped.
    Carried(watch::Receiver<bool>),
}

impl ConnectionEnd {
    /// Returns once the connection has ended.
    pub async fn closed(&self) {
        match self {
            ConnectionEnd::Quic(conn) => {
                conn.closed().await;
            }
            ConnectionEnd::Carried(closed) => {
                let mut closed = closed.clone();
                let _ = closed.wait_for(|c| *c).await;
            }
        }
    }
}

thread_local! {
    /// Whether [`off_thread`] runs its work on the calling thread (set by a simulation
    /// that needs every step on one thread, in an order its seed decides).
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes [`off_thread`] run work inline on this thread from now on.
pub fn run_blocking_inline() {
    INLINE.with(|i| i.set(true));
}

/// Blocking work (a database transaction) that could not finish: it panicked or its task
/// was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("blocking work did not finish: {0}")]
pub struct BlockingLost(String);

/// Runs blocking `work` on tokio's blocking pool, or inline where
/// [`run_blocking_inline`] was called on this thread.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BlockingLost> {
    if INLINE.with(|i| i.get()) {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlockingLost(e.to_string()))
}
