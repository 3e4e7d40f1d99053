//! The one error type of the transport layer.

use codetta_certs::{CertError, Role};
use codetta_wire::FrameError;
use std::time::Duration;
use thiserror::Error;

/// Why a transport operation failed. Callers mostly branch on [`TransportError::is_malformed`]
/// (the peer sent bytes that are not one valid frame) versus everything else (the path or the
/// peer is gone, or too slow).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no async runtime to drive the endpoint")]
    NoRuntime,
    #[error("endpoint configuration: {0}")]
    Config(#[from] quinn::ConfigError),
    #[error("TLS configuration has no QUIC initial cipher suite")]
    NoInitialCipherSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("cannot start a connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream already closed")]
    ClosedStream(#[from] quinn::ClosedStream),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A connection to the peer failed moments ago: calls fail at once until the back-off
    /// has passed, rather than each waiting out its own connection attempt.
    #[error("a connection failed moments ago; the next attempt comes after the back-off")]
    RecentlyFailed,
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the stream ended {missing} bytes before the frame did")]
    Truncated { missing: usize },
    #[error("the stream continues after the frame")]
    TrailingBytes,
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    #[error("the peer's certificate says {actual}, expected {expected}")]
    WrongPeerRole { expected: Role, actual: Role },
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
}

impl TransportError {
    /// Whether the peer sent bytes that are not exactly one valid frame (as opposed to a
    /// failed path, a timeout or a configuration problem).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            TransportError::Frame(_)
                | TransportError::Truncated { .. }
                | TransportError::TrailingBytes
        )
    }
}
