//! Checks a decoder of untrusted bytes the way the fuzz targets need it: whatever it
//! accepts encodes to bytes it decodes to the same value (a decode that panics is caught by
//! the fuzzer itself). Used by the store's and the catalogue's fuzz entry points.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

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
