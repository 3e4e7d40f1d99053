//! Name cycles that are not conflicts: objects that swapped names while a replica was away
//! (`mv a t; mv b a; mv t b`, or hard links renamed over each other's names). On that
//! replica each object's decided name is held by the other, so each install is blocked on
//! the other one. One client did it all in sequence; a conflict copy would be wrong.

use super::access::ReplicaAccess;
use super::{Resolver, decide, target_state};
use crate::peer_error::PeerResult;
use codetta_wire::Fid;
use codetta_wire::replica::{ReplicaView, ViewBody};

/// A name in a directory: (directory's vnode, name).
type Place = (u64, Vec<u8>);

/// What a temporary name contains (never a conflict name: nothing is in conflict).
const MOVING_MARK: &str = ".moving-";

impl<R: ReplicaAccess> Resolver<'_, R> {
    /// Frees the names `fid`'s decided state wants that `holder` holds on a replica only
    /// in a state it is leaving: there `holder` moves to temporary names, `fid` can then be
    /// installed, and `holder`'s own resolution gives it its decided names. The moved
    /// state keeps its version, which the decided one supersedes, so it is never kept or
    /// installed elsewhere (a file is also marked as being installed: not served). Only
    /// names `holder`'s decided state (installed from a whole replica) does not want are
    /// moved; when there are none (a name both decided states want: rule 7) this returns
    /// `false` and the caller steps one aside.
    pub(super) async fn untangle(&mut self, fid: Fid, holder: Fid) -> PeerResult<bool> {
        if holder == fid {
            return Ok(false);
        }
        let Some(wanted) = self.decided_places(fid).await else {
            return Ok(false);
        };
        let views = self.gather(holder).await;
        let only: Vec<ReplicaView> = views.iter().map(|(_, v)| v.clone()).collect();
        let decision = decide(&only, self.coordinator);
        let Some(((_, winner), stale)) = target_state(&decision, &views) else {
            return Ok(false);
        };
        if !matches!(decision, super::Decision::Install { .. }) {
            return Ok(false);
        }
        let ViewBody::Live(keeps) = &winner.body else {
            return Ok(false);
        };
        let keeps: Vec<Place> = keeps.placements().map(place).collect();
        let mut moved = false;
        for s in stale {
            let (dst, view) = &views[s];
            let ViewBody::Live(meta) = &view.body else {
                continue;
            };
            let mut meta = meta.clone();
            let mut contested = false;
            for p in std::iter::once(&mut meta.placement).chain(meta.links.iter_mut()) {
                let here = place(p);
                if wanted.contains(&here) && !keeps.contains(&here) {
                    p.name = moving_name(&p.name, holder);
                    contested = true;
                }
            }
            if contested {
                tracing::debug!(%fid, %holder, replica = %self.members[*dst].name(),
                    "names swapped: the holder moves to a temporary name");
                self.members[*dst]
                    .install_meta(holder, &view.version, &meta)
                    .await?;
                moved = true;
            }
        }
        Ok(moved)
    }

    /// The names `fid`'s decided state (installed from a whole replica) has; `None` when
    /// nothing live is installed.
    async fn decided_places(&mut self, fid: Fid) -> Option<Vec<Place>> {
        let views = self.gather(fid).await;
        let only: Vec<ReplicaView> = views.iter().map(|(_, v)| v.clone()).collect();
        let decision = decide(&only, self.coordinator);
        let ((_, winner), _) = target_state(&decision, &views)?;
        let ViewBody::Live(meta) = &winner.body else {
            return None;
        };
        Some(meta.placements().map(place).collect())
    }
}

fn place(p: &codetta_wire::replica::Placement) -> Place {
    (p.parent.vnode, p.name.clone())
}

/// The temporary name of `holder` in place of `original`: the same on every coordinator
/// (a move cut short and done again finds the name already its own), cut so the whole fits
/// 255 bytes.
fn moving_name(original: &[u8], holder: Fid) -> Vec<u8> {
    let hash = blake3::hash(&holder.to_bytes());
    let h = hash.as_bytes();
    let suffix = format!(
        "{MOVING_MARK}{:02x}{:02x}{:02x}{:02x}",
        h[0], h[1], h[2], h[3]
    );
    let keep = original
        .len()
        .min(codetta_wire::name::MAX_NAME_LEN - suffix.len());
    let mut name = original[..keep].to_vec();
    name.extend_from_slice(suffix.as_bytes());
    name
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use codetta_wire::VolumeId;

    #[test]
    fn a_moving_name_fits_and_is_the_same_each_time() {
        let fid = Fid {
            volume: VolumeId(7),
            vnode: 42,
            unique: 9,
        };
        let long = vec![b'x'; 255];
        let n = moving_name(&long, fid);
        assert_eq!(n.len(), 255);
        assert_eq!(n, moving_name(&long, fid));
        assert!(!crate::conflict::is_conflict_name(&n));
        let short = moving_name(b"a", fid);
        assert!(short.starts_with(b"a.moving-"), "{short:?}");
    }
}
