//! The volume digest tree (rule 12): after a long absence, when a peer's change sequence no
//! longer reaches back far enough, two replicas compare whole volumes. Each live object
//! has a digest of its fid, tag and version; objects fall into [`DIGEST_BUCKETS`] buckets by
//! fid, and a bucket's digest combines its objects' digests (XOR, so the order of the scan
//! does not matter). Replicas compare the bucket digests, then list only the objects of the
//! buckets that differ. Tombstones are in the tree too (with the tag of a deleted object),
//! so a replica that missed a delete, or holds a different vector for it, shows.

use super::codec::{self, Tombstone, Vnode};
use super::lookup::{Found, find};
use super::tables::VnodeKey;
use super::{R, Store, StoreError, tables, tags};
use codetta_wire::replica::{DIGEST_BUCKETS, deleted_tag, digest_bucket, object_digest};
use codetta_wire::{Fid, FsError, VolumeId};
use redb::ReadableTable;

/// Most objects one [`Store::bucket_objects`] call returns.
pub const MAX_BUCKET_OBJECTS: u32 = 4096;

/// One table's objects of `volume` from vnode `from` on, in vnode order: (fid, digest)
/// each, passed to `f` until it returns false.
fn scan(
    txn: &redb::ReadTransaction,
    volume: VolumeId,
    from: u64,
    mut f: impl FnMut(Fid, [u8; 32]) -> bool,
    tombstones: bool,
) -> Result<(), FsError> {
    let range = (volume.0, from)..=(volume.0, u64::MAX);
    if tombstones {
        let t = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        for item in t.range(range).map_err(StoreError::from)? {
            let (k, v) = item.map_err(StoreError::from)?;
            let t: Tombstone = codec::decode("tombstones", v.value())?;
            let fid = Fid {
                volume,
                vnode: k.value().1,
                unique: t.unique,
            };
            if !f(fid, dead_digest(fid, &t)) {
                break;
            }
        }
    } else {
        let t = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        for item in t.range(range).map_err(StoreError::from)? {
            let (k, v) = item.map_err(StoreError::from)?;
            let v: Vnode = codec::decode("vnodes", v.value())?;
            let fid = Fid {
                volume,
                vnode: k.value().1,
                unique: v.unique,
            };
            if !f(fid, live_digest(fid, &v)) {
                break;
            }
        }
    }
    Ok(())
}

/// The digest of `fid` here (live or deleted), `None` when this replica holds nothing for
/// it.
pub(super) fn digest_of(
    vnodes: &impl ReadableTable<VnodeKey, &'static [u8]>,
    tombstones: &impl ReadableTable<VnodeKey, &'static [u8]>,
    fid: Fid,
) -> R<Option<[u8; 32]>> {
    Ok(match find(vnodes, tombstones, fid)? {
        Found::Live(v) => Some(live_digest(fid, &v)),
        Found::Dead(t) => Some(dead_digest(fid, &t)),
        Found::Nothing => None,
    })
}

/// A live object's digest: fid, tag and version (what `ReplicaView::agrees_with` compares).
fn live_digest(fid: Fid, v: &Vnode) -> [u8; 32] {
    object_digest(fid, &tags::tag(v), &v.version)
}

/// A deleted object's digest: fid, the tag every replica gives a deleted object, version.
fn dead_digest(fid: Fid, t: &Tombstone) -> [u8; 32] {
    object_digest(fid, &deleted_tag(fid), &t.version)
}

impl Store {
    /// The digest of each of `fids` here, in order (`None` for an object this replica
    /// holds nothing of), read in one transaction.
    pub fn object_digests(&self, fids: &[Fid]) -> Result<Vec<Option<[u8; 32]>>, FsError> {
        let txn = self.read_txn()?;
        let vnodes = txn.open_table(tables::VNODES).map_err(StoreError::from)?;
        let tombstones = txn
            .open_table(tables::TOMBSTONES)
            .map_err(StoreError::from)?;
        let mut out = Vec::with_capacity(fids.len());
        for fid in fids {
            out.push(digest_of(&vnodes, &tombstones, *fid)?);
        }
        Ok(out)
    }

    /// The digest of every bucket of `volume`'s objects.
    pub fn volume_digests(&self, volume: VolumeId) -> Result<Vec<[u8; 32]>, FsError> {
        let txn = self.read_txn()?;
        let volumes = txn.open_table(tables::VOLUMES).map_err(StoreError::from)?;
        if volumes.get(volume.0).map_err(StoreError::from)?.is_none() {
            return Err(FsError::UnknownVolume);
        }
        let mut buckets = vec![[0u8; 32]; DIGEST_BUCKETS];
        for tombstones in [false, true] {
            scan(
                &txn,
                volume,
                0,
                |fid, digest| {
                    let bucket = &mut buckets[usize::from(digest_bucket(fid))];
                    for (b, d) in bucket.iter_mut().zip(digest) {
                        *b ^= d;
                    }
                    true
                },
                tombstones,
            )?;
        }
        Ok(buckets)
    }

    /// The objects of `volume` in `buckets`, in vnode order after vnode `after`, at most
    /// `max` (capped at [`MAX_BUCKET_OBJECTS`]): (fid, digest) each, and the vnode to
    /// continue after, `None` at the end.
    #[allow(clippy::type_complexity)]
    pub fn bucket_objects(
        &self,
        volume: VolumeId,
        buckets: &[u16],
        after: u64,
        max: u32,
    ) -> Result<(Vec<(Fid, [u8; 32])>, Option<u64>), FsError> {
        let mut wanted = vec![false; DIGEST_BUCKETS];
        for b in buckets {
            *wanted.get_mut(usize::from(*b)).ok_or(FsError::Invalid)? = true;
        }
        let max = max.clamp(1, MAX_BUCKET_OBJECTS) as usize;
        let Some(from) = after.checked_add(1) else {
            return Ok((Vec::new(), None));
        };
        let txn = self.read_txn()?;
        // Up to `max` from each table, merged in vnode order: past the first `max` of the
        // merge, either table may have skipped objects, so the page ends there.
        let mut out = Vec::new();
        let mut full = false;
        for tombstones in [false, true] {
            let mut taken = 0;
            scan(
                &txn,
                volume,
                from,
                |fid, digest| {
                    if !wanted[usize::from(digest_bucket(fid))] {
                        return true;
                    }
                    out.push((fid, digest));
                    taken += 1;
                    taken < max
                },
                tombstones,
            )?;
            full |= taken >= max;
        }
        out.sort_by_key(|(fid, _)| fid.vnode);
        if out.len() > max || full {
            out.truncate(max);
            let next = out.last().map(|(fid, _)| fid.vnode);
            return Ok((out, next));
        }
        Ok((out, None))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::store::testutil::Fx;
    use codetta_wire::FsError;
    use codetta_wire::replica::DIGEST_BUCKETS;

    #[test]
    fn pages_list_every_object_once_in_vnode_order() {
        let mut fx = Fx::new();
        let root = fx.root();
        let mut made = vec![root];
        for i in 0..20 {
            made.push(fx.create(root, &format!("f{i}")));
        }
        let gone = made.pop().unwrap();
        let rm = fx.rm_op(root, "f19");
        assert!(fx.one(rm).is_ok());
        made.push(gone);
        let all: Vec<u16> = (0..DIGEST_BUCKETS as u16).collect();
        let (mut seen, mut after) = (Vec::new(), 0);
        loop {
            let (page, next) = fx.store.bucket_objects(fx.vol.id, &all, after, 3).unwrap();
            assert!(page.len() <= 3);
            seen.extend(page.into_iter().map(|(f, _)| f));
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        made.sort_by_key(|f| f.vnode);
        assert_eq!(seen, made, "live objects and the tombstone, each once");
        assert_eq!(
            fx.store
                .bucket_objects(fx.vol.id, &[DIGEST_BUCKETS as u16], 0, 3),
            Err(FsError::Invalid)
        );
    }
}
