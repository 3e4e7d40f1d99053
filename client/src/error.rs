//! Errors of the client daemon's core, before they are mapped to NFS statuses.

use codetta_wire::FsError;
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with a file-system error.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// No server answered within the deadline, for a short while so far: retry later.
    #[error("server unreachable, retry later")]
    Unavailable,
    /// No server has answered for longer than the JUKEBOX window.
    #[error("server unreachable for too long")]
    Down,
    /// The modify log is full; retry later.
    #[error("modify log full")]
    LogFull,
    /// The client's own storage failed.
    #[error("client storage: {0}")]
    Storage(String),
    /// The server broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A WRITE answered early (UNSTABLE, from the log) that every replica refused, as
    /// COMMIT reports it (once). Never a status that asks for a retry: the kernel would
    /// retry the COMMIT, not the write, and the data would be gone without a word.
    #[error("an earlier write of this file was refused: {0}")]
    WriteRefused(FsError),
}
