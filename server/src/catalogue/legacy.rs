//! Layouts of the catalogue's applied state that older servers wrote: read once (at open,
//! or in a snapshot from a server not yet upgraded) and turned into today's. postcard is
//! not self-describing, so a field added at the end needs the layout without it.

use super::state::{CatalogueState, ServerEntry, VolumeEntry};
use codetta_wire::VolumeId;
use serde::Deserialize;
use std::collections::BTreeMap;

/// [`CatalogueState`] before it listed departed replicas (ALPN `codetta/6` and earlier).
#[derive(Deserialize)]
pub(super) struct StateWithoutDeparted {
    epoch: u64,
    servers: BTreeMap<String, ServerEntry>,
    volumes: BTreeMap<u32, VolumeEntry>,
    root_volume: Option<VolumeId>,
    revoked: BTreeMap<String, String>,
}

impl From<StateWithoutDeparted> for CatalogueState {
    /// No departed replicas: the servers' own stores still list those they saw leave.
    fn from(old: StateWithoutDeparted) -> CatalogueState {
        CatalogueState {
            epoch: old.epoch,
            servers: old.servers,
            volumes: old.volumes,
            root_volume: old.root_volume,
            revoked: old.revoked,
            departed: BTreeMap::new(),
        }
    }
}

/// Decodes `bytes` as `New` or, when they end exactly where `New`'s added fields would
/// begin, as the older layout `Old` (turned into `New` by `upgrade`). Bytes that fail in
/// any other way (a damaged or cut-short added field among them) are an error, not an
/// older layout.
pub(super) fn decode_or_older<New, Old>(
    bytes: &[u8],
    upgrade: impl FnOnce(Old) -> New,
) -> Result<New, postcard::Error>
where
    New: serde::de::DeserializeOwned,
    Old: serde::de::DeserializeOwned,
{
    match postcard::from_bytes::<New>(bytes) {
        Err(postcard::Error::DeserializeUnexpectedEnd) => match postcard::take_from_bytes(bytes) {
            Ok((old, [])) => Ok(upgrade(old)),
            _ => Err(postcard::Error::DeserializeUnexpectedEnd),
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::catalogue::CatalogueError;

    type Reply = Result<CatalogueState, CatalogueError>;
    type OlderReply = Result<StateWithoutDeparted, CatalogueError>;

    fn read(bytes: &[u8]) -> Result<Reply, postcard::Error> {
        decode_or_older(bytes, |old: OlderReply| old.map(Into::into))
    }

    /// A read forwarded to a leader not yet upgraded: its answer is today's without the
    /// departed list (an empty map is one byte), and reads as today's with none.
    #[test]
    fn a_read_answered_by_an_older_leader_is_understood() {
        let state = CatalogueState {
            epoch: 9,
            ..CatalogueState::default()
        };
        let mut bytes = postcard::to_allocvec(&Reply::Ok(state.clone())).unwrap();
        assert_eq!(read(&bytes).unwrap(), Ok(state.clone()));
        assert_eq!(bytes.pop(), Some(0));
        assert_eq!(read(&bytes).unwrap(), Ok(state));
        let refused = Reply::Err(CatalogueError::NoLeader("no majority".into()));
        let bytes = postcard::to_allocvec(&refused).unwrap();
        assert_eq!(read(&bytes).unwrap(), refused);
        assert!(read(&[]).is_err());
    }
}
