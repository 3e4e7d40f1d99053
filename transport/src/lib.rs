//! Glue between quinn and the wire frames: tuned endpoints with mutual TLS, one request and
//! one reply per bidirectional stream, and a server accept loop. No file-system logic.
//!
//! Every stream carries exactly one [`Frame`](codetta_wire::Frame) each way, and each side
//! finishes its half after the frame: [`read_frame`] treats bytes after the frame as an error.

mod blocking;
mod carrier;
mod endpoint;
mod error;
mod framing;
mod link;
mod serve;
mod tuning;

pub use blocking::{BlockingLost, off_thread, run_blocking_inline};
pub use carrier::{CarriedCall, Carrier, ConnectionEnd};
pub use endpoint::{Peer, client_endpoint, connect, peer_of, server_endpoint};
pub use error::TransportError;
pub use framing::{call, read_frame, write_frame};
pub use link::{Link, MakeLink, ServerEntry};
pub use serve::{CLOSE_BAD_PEER, CLOSE_SHUTDOWN, Service, serve};
pub use tuning::{ENDPOINT_MAX_UDP_PAYLOAD, PathKind, SOCKET_BUFFER_BYTES, TransportTuning};

#[cfg(test)]
mod tests;
