//! Records logged before a WRITE carried the hashes of its pieces (log segment entries with
//! magic [`ENTRY_MAGIC_V1`], and the redb records of the format before segments). Every
//! other op is encoded as now; a WRITE carried one blake3 of all its data. Such a record is
//! read back as today's WRITE, its pieces hashed from the logged data, once the data
//! matches the old hash: an upgrade ships what the old daemon left in its log.

use codetta_wire::update::{Op, piece_hashes};
use codetta_wire::{Fid, Time, UpdateId, UpdateRecord};

/// The first byte of a log segment entry written in this format.
pub(crate) const ENTRY_MAGIC_V1: u8 = 0xC7;

/// The index of `Op::Write` among `Op`'s variants (postcard encodes it as a varint).
const WRITE_VARIANT: u32 = 7;

/// Decodes a record header of the former format with its `data`; `None` when it is not
/// one, or its data does not match.
pub(crate) fn decode_v1(header: &[u8], data: &[u8]) -> Option<UpdateRecord> {
    let (_, rest) = postcard::take_from_bytes::<UpdateId>(header).ok()?;
    let (_, rest) = postcard::take_from_bytes::<Time>(rest).ok()?;
    let (variant, _) = postcard::take_from_bytes::<u32>(rest).ok()?;
    if variant != WRITE_VARIANT {
        return postcard::from_bytes::<UpdateRecord>(header).ok();
    }
    let (old, rest) = postcard::take_from_bytes::<WriteV1>(header).ok()?;
    if !rest.is_empty()
        || old.variant != WRITE_VARIANT
        || old.len as usize != data.len()
        || blake3::hash(data).as_bytes() != &old.hash
    {
        return None;
    }
    Some(UpdateRecord {
        id: old.id,
        time: old.time,
        op: Op::Write {
            fid: old.fid,
            offset: old.offset,
            len: old.len,
            hashes: piece_hashes(old.offset, data),
        },
    })
}

/// A WRITE record as the former format laid it out.
#[derive(serde::Serialize, serde::Deserialize)]
struct WriteV1 {
    id: UpdateId,
    time: Time,
    variant: u32,
    fid: Fid,
    offset: u64,
    len: u32,
    hash: [u8; 32],
}

/// The header the former format gave `record` (tests of the upgrade).
#[cfg(test)]
pub(crate) fn encode_v1(record: &UpdateRecord, data: &[u8]) -> Vec<u8> {
    match &record.op {
        Op::Write {
            fid, offset, len, ..
        } => postcard::to_allocvec(&WriteV1 {
            id: record.id,
            time: record.time,
            variant: WRITE_VARIANT,
            fid: *fid,
            offset: *offset,
            len: *len,
            hash: *blake3::hash(data).as_bytes(),
        }),
        _ => postcard::to_allocvec(record),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::update::{CreateHow, NewObject};
    use codetta_wire::{Incarnation, Name, VolumeId};

    fn record(op: Op) -> UpdateRecord {
        UpdateRecord {
            id: UpdateId {
                incarnation: Incarnation(4),
                seq: 9,
            },
            time: Time { secs: 5, nanos: 6 },
            op,
        }
    }

    #[test]
    fn former_records_read_as_todays() {
        let fid = Fid {
            volume: VolumeId(3),
            vnode: 8,
            unique: 2,
        };
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let offset = 70_000;
        let write = record(Op::Write {
            fid,
            offset,
            len: data.len() as u32,
            hashes: piece_hashes(offset, &data),
        });
        let old = encode_v1(&write, &data);
        assert_ne!(old, postcard::to_allocvec(&write).unwrap_or_default());
        assert_eq!(decode_v1(&old, &data), Some(write));
        // Data that does not match the old hash is refused.
        let mut bad = data.clone();
        bad[5] ^= 1;
        assert_eq!(decode_v1(&old, &bad), None);
        // Other ops are laid out as now.
        let create = record(Op::Create {
            dir: fid,
            name: Name::new("f").unwrap_or_else(|e| panic!("{e}")),
            fid,
            new: NewObject {
                mode: 0o644,
                uid: 1,
                gid: 1,
            },
            how: CreateHow::Guarded,
        });
        assert_eq!(decode_v1(&encode_v1(&create, &[]), &[]), Some(create));
    }
}
