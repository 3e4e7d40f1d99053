//! Errors a server reports for a request or an update record.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A file-system level failure, as sent on the wire. The client maps each to an NFS status.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid name")]
    BadName,
    #[error("name too long")]
    NameTooLong,
    #[error("no space left on the server")]
    NoSpace,
    #[error("object no longer exists")]
    Stale,
    #[error("permission denied")]
    Access,
    #[error("invalid argument")]
    Invalid,
    #[error("unknown volume")]
    UnknownVolume,
    #[error("the peer's certificate role may not make this call")]
    WrongRole,
    #[error("the request is malformed: {0}")]
    Malformed(String),
    #[error("a record was skipped: an earlier one from this client is missing")]
    OutOfOrder,
    #[error("server storage failure: {0}")]
    Storage(String),
    #[error("a stored chunk failed its checksum")]
    Corrupt,
    /// The replica's state differs from what the client saw (a name leads to another object):
    /// the replicas must be resolved before the update can go through.
    #[error("this replica differs from the client's view; it needs resolution")]
    Diverged,
    /// A resolution install found the object changed since its views were gathered.
    #[error("the object changed during resolution")]
    VersionChanged,
    /// A resolution install needs another object resolved first (a missing parent, a name
    /// held by another object, a directory that still has entries here).
    #[error("resolution must first settle {0}")]
    Blocked(crate::ids::Fid),
    /// Another coordinator holds the resolution lease on the object (rule 6).
    #[error("another server is resolving {0}")]
    Leased(crate::ids::Fid),
    /// The caller's catalogue is out of date for the volume (its replica group changed at
    /// epoch `current`): refresh and call again (rule 13).
    #[error("the volume's catalogue entry changed (now at epoch {current}); refresh it")]
    StaleEpoch { current: u64 },
    /// An administrative call was refused; the text says why.
    #[error("{0}")]
    Refused(String),
    /// Resolution is installing this object on this replica (its attributes or some of its
    /// blocks are in, its version not yet): its data is not served here until it is whole
    /// (rule 4), and a client update of it waits for the install. Another replica, or this
    /// one a little later, answers.
    #[error("this replica is still receiving the object from resolution")]
    Incomplete,
    /// A hard link to an object of another volume.
    #[error("a link cannot cross volumes")]
    CrossDevice,
    /// A hard link past the most names one object may have ([`crate::MAX_LINKS`]).
    #[error("too many links")]
    TooManyLinks,
    /// The server cannot serve this call now (its catalogue node has not started, say);
    /// another server, or this one later, can.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server failed in a way that is neither storage nor the caller's fault (a
    /// handler that panicked, a reply that does not fit a frame).
    #[error("internal server error: {0}")]
    Internal(String),
}
