//! Entry points for the fuzz targets in `fuzz/` (not an API): the decoders of what the
//! server reads back from its own files and from other servers' catalogue calls, fed
//! arbitrary bytes as a damaged file or a hostile peer would. A decode never panics, and a
//! value that decodes encodes to bytes that decode to the same value.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Every record type the store persists, decoded from `bytes` as its table would.
pub fn store_records(bytes: &[u8]) {
    crate::store::fuzz_records(bytes);
}

/// Every body the catalogue decodes: proposed changes, membership changes, Raft messages,
/// log entries, votes and the persisted state machine.
pub fn catalogue_bodies(bytes: &[u8]) {
    crate::catalogue::fuzz_bodies(bytes);
}

/// Decodes `bytes` with `decode`; what decodes must survive `encode` and `decode` again.
pub(crate) fn round_trip<T, E: Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) where
    T: Debug + PartialEq,
{
    if let Ok(value) = decode(bytes) {
        let again = encode(&value);
        match decode(&again) {
            Ok(back) if back == value => {}
            other => panic!("{value:?} encoded to {again:?}, which decodes to {other:?}"),
        }
    }
}

/// [`round_trip`] with postcard.
pub(crate) fn postcard_round_trip<T>(bytes: &[u8])
where
    T: Serialize + DeserializeOwned + Debug + PartialEq,
{
    round_trip(
        bytes,
        |b| postcard::from_bytes::<T>(b),
        |v| postcard::to_allocvec(v).unwrap_or_default(),
    );
}

/// Decodes `bytes` with postcard for a type without equality: only that it does not panic.
pub(crate) fn postcard_decodes<T: DeserializeOwned>(bytes: &[u8]) {
    let _ = postcard::from_bytes::<T>(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry points take what they are meant to take: real records and bodies pass,
    /// and so do a few kinds of garbage.
    #[test]
    fn real_records_and_garbage_go_through() {
        for bytes in [
            &[][..],
            &[0],
            &[1, 2, 3],
            &[0xff; 64],
            &[1, 0, 0, 0, 0, 0, 0, 0],
        ] {
            store_records(bytes);
            catalogue_bodies(bytes);
        }
        let change = crate::catalogue::Change::SetRoot {
            volume: "root".into(),
        };
        catalogue_bodies(&postcard::to_allocvec(&change).unwrap_or_default());
    }
}
