//! Placement conflicts (rule 7): an object whose name another claims, or a directory that
//! would be placed inside itself, moves to a conflict name as a new update of the
//! coordinator.

use super::access::ReplicaAccess;
use super::{Resolver, decide};
use crate::conflict::to_conflict_names;
use crate::peer_error::PeerResult;
use codetta_wire::Fid;
use codetta_wire::replica::{ReplicaView, ViewBody};

impl<R: ReplicaAccess> Resolver<'_, R> {
    /// Settles a placement conflict (rule 7) by moving `fid` to a conflict name: beside
    /// where it is, or at the volume root when its placement would put a directory inside
    /// itself (`blocker` is its own intended parent). The move is a new update of the
    /// coordinator, installed on every member that answers.
    pub(super) async fn step_aside(&mut self, fid: Fid, blocker: Fid) -> PeerResult<()> {
        let views = self.gather(fid).await;
        // Never a state an install was cut short in (rule 4).
        let Some((src, chosen)) = views
            .iter()
            .filter(|(_, v)| v.is_live() && !v.installing)
            .max_by_key(|(_, v)| (v.version.total(), v.tag.0))
            .cloned()
        else {
            return Ok(());
        };
        let mut moved = chosen.clone();
        let ViewBody::Live(meta) = &mut moved.body else {
            return Ok(());
        };
        // Every name in the blocker moves to the root: a hard link left there blocks the
        // move again, for ever (the simulation found an object and a directory holding one
        // of its links each waiting on the other, a new conflict name each round). The
        // install orders the names and merges repeats (`Vnode::set_places`).
        let root = Fid::root(fid.volume);
        for p in std::iter::once(&mut meta.placement).chain(meta.links.iter_mut()) {
            if p.parent == blocker {
                p.parent = root;
            }
        }
        to_conflict_names(meta, &chosen.tag.0);
        self.summary.conflicts += 1;
        tracing::warn!(%fid, "placement conflict: moved to a conflict name");
        let (mut version, mut history) = decide::merged(views.iter().map(|(_, v)| v));
        version.bump(self.coordinator);
        history.record(
            codetta_wire::UpdateId::resolution(fid, &chosen.tag.0),
            self.coordinator,
        );
        // The source takes its new name and final version first (its version checked by
        // the install, as `source_unchanged` would): a move cut short then leaves it whole,
        // and the others, marked as being installed, receive it from there.
        self.install_state(fid, src, &moved, src, &chosen).await?;
        self.members[src]
            .install_version(fid, &chosen.version, &version, &history)
            .await?;
        let others: Vec<&(usize, ReplicaView)> = views.iter().filter(|(i, _)| *i != src).collect();
        for (dst, view) in &others {
            self.install_state(fid, src, &moved, *dst, view).await?;
        }
        if !others.is_empty() {
            self.source_unchanged(src, fid, &version).await?;
        }
        for (i, v) in others {
            self.members[*i]
                .install_version(fid, &v.version, &version, &history)
                .await?;
        }
        Ok(())
    }
}
