//! What a replica holds under a fid: the object's record, its tombstone, or nothing (the
//! vnode number empty or holding another object).

use super::R;
use super::codec::{self, Tombstone, Vnode};
use super::tables::VnodeKey;
use codetta_wire::Fid;
use redb::ReadableTable;

/// What a key holds: a live object, a tombstone, or nothing.
pub(super) enum Found {
    Live(Vnode),
    Dead(Tombstone),
    Nothing,
}

/// What `vnodes` and `tombstones` hold under `fid`.
pub(super) fn find(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    tombstones: &impl ReadableTable<VnodeKey, &'static [u8]>,
    fid: Fid,
) -> R<Found> {
    let key = (fid.volume.0, fid.vnode);
    if let Some(g) = vnodes.get(key)? {
        let v: Vnode = codec::decode("vnodes", g.value())?;
        return Ok(if v.unique == fid.unique {
            Found::Live(v)
        } else {
            Found::Nothing
        });
    }
    if let Some(g) = tombstones.get(key)? {
        let t: Tombstone = codec::decode("tombstones", g.value())?;
        return Ok(if t.unique == fid.unique {
            Found::Dead(t)
        } else {
            Found::Nothing
        });
    }
    Ok(Found::Nothing)
}
