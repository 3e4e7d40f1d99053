//! Errors a server reports for a request or an update record.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A file-system level failure, as sent on the wire. The client maps each to an NFS status.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FsError {
    /// No entry of that name (or no such chunk).
    #[error("no such file or directory")]
    NotFound,
    /// The name is taken, or what the call would make already exists.
    #[error("file exists")]
    Exists,
    /// The call needs a directory and the object is not one.
    #[error("not a directory")]
    NotDir,
    /// The call needs a non-directory and the object is a directory.
    #[error("is a directory")]
    IsDir,
    /// The directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// The name is not a valid entry name.
    #[error("invalid name")]
    BadName,
    /// The name is longer than [`crate::name::MAX_NAME_LEN`] bytes.
    #[error("name too long")]
    NameTooLong,
    /// The server's store is full (its configured capacity or its disk).
    #[error("no space left on the server")]
    NoSpace,
    /// The fid names no object here: it is gone, or its uniquifier differs.
    #[error("object no longer exists")]
    Stale,
    /// Permission denied.
    #[error("permission denied")]
    Access,
    /// An argument this call does not accept.
    #[error("invalid argument")]
    Invalid,
    /// The volume is unknown (not held here, or not in the catalogue; or no root volume is set).
    #[error("unknown volume")]
    UnknownVolume,
    /// The caller's certificate role may not make this call.
    #[error("the peer's certificate role may not make this call")]
    WrongRole,
    /// The request could not be decoded or makes no sense; the text says why.
    #[error("the request is malformed: {0}")]
    Malformed(String),
    /// Not applied: an earlier record of the same client incarnation has not been applied here.
    #[error("a record was skipped: an earlier one from this client is missing")]
    OutOfOrder,
    /// The server's store failed; the text says how.
    #[error("server storage failure: {0}")]
    Storage(String),
    /// A stored chunk no longer matches its hash; its bytes are not returned.
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
    StaleEpoch {
        /// The volume's catalogue epoch on the answering server.
        current: u64,
    },
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
