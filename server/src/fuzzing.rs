//! Entry points for the fuzz targets in `fuzz/` (not an API): the decoders of what the
//! server reads back from its own files and from other servers' catalogue calls, fed
//! arbitrary bytes as a damaged file or a hostile peer would. A decode never panics, and a
//! value that decodes encodes to bytes that decode to the same value.

/// Every record type the store persists, decoded from `bytes` as its table would.
pub fn store_records(bytes: &[u8]) {
    crate::store::fuzz_records(bytes);
}

/// Every body the catalogue decodes: proposed changes, membership changes, Raft messages,
/// log entries, votes and the persisted state machine.
pub fn catalogue_bodies(bytes: &[u8]) {
    crate::catalogue::fuzz_bodies(bytes);
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
