//! The seam a simulation plugs into: a [`Carrier`] takes a link's calls instead of a QUIC
//! connection, and a [`ConnectionEnd`] stands for the connection a request came on. The
//! client and the server reach each other only through [`crate::Link`] and
//! [`crate::Service`], so code above them runs unchanged over either (with their blocking
//! work run inline: [`crate::off_thread`]).

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
    /// A carried connection: closed once its sender is dropped (or says `true`).
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
