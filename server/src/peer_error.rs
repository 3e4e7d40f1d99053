//! Why a call to another replica failed, told apart by what a caller can do about it: an
//! unreachable or slow peer may answer a later call, a peer that broke the protocol will not,
//! and a replica's own answer (including this server's store, reached the same way) is
//! handled by what it says.

use codetta_transport::TransportError;
use codetta_wire::FsError;
use std::time::Duration;
use thiserror::Error;

/// A failed call to a replica.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeerError {
    /// No connection to the peer could be made or kept (down, cut off, refusing us).
    #[error("server {server} unreachable: {reason}")]
    Unreachable { server: String, reason: String },
    /// The call got no answer within its deadline.
    #[error("server {server} did not answer within {after:?}")]
    Timeout { server: String, after: Duration },
    /// The peer answered something the protocol does not allow (a reply of the wrong kind,
    /// data shorter than announced, a frame that does not decode or runs past its end).
    #[error("server {server} broke the protocol: {what}")]
    Protocol { server: String, what: String },
    /// The replica's own answer.
    #[error("{0}")]
    Answer(FsError),
}

/// What a caller of a replica gets.
pub type PeerResult<T> = Result<T, PeerError>;

impl PeerError {
    /// The failure of a call to `server` as the transport reported it.
    pub fn from_transport(server: &str, e: &TransportError) -> PeerError {
        let server = server.to_string();
        match e {
            // A link that failed moments ago is not dialled again at once: the peer is
            // as unreachable as it was then.
            TransportError::RecentlyFailed => PeerError::Unreachable {
                server,
                reason: e.to_string(),
            },
            TransportError::Timeout(after) => PeerError::Timeout {
                server,
                after: *after,
            },
            // The stream ended before its frame did: the peer went away mid-call (it
            // crashed, restarted, or dropped the call), as likely to answer later.
            TransportError::Truncated { .. } => PeerError::Unreachable {
                server,
                reason: e.to_string(),
            },
            e if e.is_malformed() => PeerError::Protocol {
                server,
                what: e.to_string(),
            },
            TransportError::WrongPeerRole { .. }
            | TransportError::NoPeerCertificate
            | TransportError::Cert(_) => PeerError::Protocol {
                server,
                what: e.to_string(),
            },
            other => PeerError::Unreachable {
                server,
                reason: other.to_string(),
            },
        }
    }

    /// A reply of a kind the request does not allow.
    pub fn unexpected(server: &str, reply: impl std::fmt::Debug) -> PeerError {
        /// Enough of the reply to tell what it was (a wrong page of 4096 entries is not
        /// worth carrying in an error).
        const SHOWN: usize = 160;
        let mut what = format!("unexpected reply {reply:?}");
        if what.len() > SHOWN {
            let cut = (0..=SHOWN)
                .rev()
                .find(|i| what.is_char_boundary(*i))
                .unwrap_or(0);
            what.truncate(cut);
            what.push_str("...");
        }
        PeerError::Protocol {
            server: server.to_string(),
            what,
        }
    }

    /// Whether calling again (after gathering the replicas' views again) can turn out
    /// differently: a peer that was unreachable or slow may be back or is left out of the
    /// next gathering, and a version that changed under an install is read afresh. A
    /// protocol violation or a replica's failing storage gives the same answer again.
    pub fn retry_helps(&self) -> bool {
        match self {
            PeerError::Unreachable { .. } | PeerError::Timeout { .. } => true,
            PeerError::Protocol { .. } => false,
            PeerError::Answer(e) => matches!(e, FsError::VersionChanged),
        }
    }

    /// The replica's own answer, if it gave one.
    pub fn answer(&self) -> Option<&FsError> {
        match self {
            PeerError::Answer(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FsError> for PeerError {
    fn from(e: FsError) -> Self {
        PeerError::Answer(e)
    }
}

/// How a failure between servers is reported to whoever asked this server: a peer's own
/// answer as it is, an unreachable or slow peer as `Unavailable` (later, or another server,
/// can do it), a protocol violation as `Internal`.
impl From<PeerError> for FsError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Answer(e) => e,
            e @ (PeerError::Unreachable { .. } | PeerError::Timeout { .. }) => {
                FsError::Unavailable(e.to_string())
            }
            e @ PeerError::Protocol { .. } => FsError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_told_apart() {
        let timeout = TransportError::Timeout(Duration::from_secs(2));
        assert!(matches!(
            PeerError::from_transport("s1", &timeout),
            PeerError::Timeout { .. }
        ));
        let backoff = TransportError::RecentlyFailed;
        assert!(matches!(
            PeerError::from_transport("s1", &backoff),
            PeerError::Unreachable { .. }
        ));
        let torn = TransportError::Truncated { missing: 3 };
        assert!(matches!(
            PeerError::from_transport("s1", &torn),
            PeerError::Unreachable { .. }
        ));
        let trailing = TransportError::TrailingBytes;
        assert!(matches!(
            PeerError::from_transport("s1", &trailing),
            PeerError::Protocol { .. }
        ));
        let refused =
            TransportError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            PeerError::from_transport("s1", &refused),
            PeerError::Unreachable { .. }
        ));
    }

    #[test]
    fn only_failures_a_second_try_can_change_are_retried() {
        let unreachable = PeerError::Unreachable {
            server: "s2".into(),
            reason: "refused".into(),
        };
        let timeout = PeerError::Timeout {
            server: "s2".into(),
            after: Duration::from_secs(1),
        };
        let protocol = PeerError::unexpected("s2", "Done");
        let long = PeerError::unexpected("s2", vec![0u8; 10_000]);
        assert!(long.to_string().len() < 300, "{long}");
        assert!(unreachable.retry_helps() && timeout.retry_helps());
        assert!(!protocol.retry_helps());
        assert!(PeerError::Answer(FsError::VersionChanged).retry_helps());
        assert!(!PeerError::Answer(FsError::Storage("disk".into())).retry_helps());
        assert!(!PeerError::Answer(FsError::Corrupt).retry_helps());
        // Reported onwards: unreachable and slow peers as unavailable, answers as they are.
        assert!(matches!(FsError::from(timeout), FsError::Unavailable(_)));
        assert!(matches!(FsError::from(protocol), FsError::Internal(_)));
        assert_eq!(
            FsError::from(PeerError::Answer(FsError::Leased(codetta_wire::Fid::root(
                codetta_wire::VolumeId(1)
            )))),
            FsError::Leased(codetta_wire::Fid::root(codetta_wire::VolumeId(1)))
        );
    }
}
