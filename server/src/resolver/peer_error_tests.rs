//! What the resolver does with each kind of peer failure: an install that fails once on one
//! replica, with every kind of [`PeerError`], over real stores.

#![allow(clippy::unwrap_used)]

use super::access::{DirPage, ObjectPage};
use super::tests::{Trio, trio};
use super::{LocalReplica, ReplicaAccess, Resolver};
use crate::peer_error::{PeerError, PeerResult};
use crate::store::ChangePage;
use bytes::Bytes;
use codetta_wire::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use codetta_wire::update::CreateHow;
use codetta_wire::{Fid, FsError, History, ReplicaId, VersionVector, VolumeId};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A local replica whose next install fails with a set error, counting the views it gives.
struct Faulty {
    inner: LocalReplica,
    fail_next_install: Mutex<Option<PeerError>>,
    views: AtomicUsize,
}

impl Faulty {
    fn new(inner: LocalReplica, fault: Option<PeerError>) -> Faulty {
        Faulty {
            inner,
            fail_next_install: Mutex::new(fault),
            views: AtomicUsize::new(0),
        }
    }

    fn fault(&self) -> PeerResult<()> {
        match self.fail_next_install.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl ReplicaAccess for Faulty {
    fn replica(&self) -> ReplicaId {
        self.inner.replica()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn view(&self, fid: Fid) -> PeerResult<ReplicaView> {
        self.views.fetch_add(1, Ordering::SeqCst);
        self.inner.view(fid).await
    }
    async fn lease(&self, fids: &[Fid], holder: u64, ttl_ms: u32) -> PeerResult<()> {
        self.inner.lease(fids, holder, ttl_ms).await
    }
    async fn forget(&self, fid: Fid, drop: bool, mark: bool) -> PeerResult<()> {
        self.inner.forget(fid, drop, mark).await
    }
    async fn release(&self, fids: &[Fid], holder: u64) -> PeerResult<()> {
        self.inner.release(fids, holder).await
    }
    async fn changes(&self, v: VolumeId, since: u64, max: u32, age: u32) -> PeerResult<ChangePage> {
        self.inner.changes(v, since, max, age).await
    }
    async fn volume_digests(&self, volume: VolumeId) -> PeerResult<Vec<[u8; 32]>> {
        self.inner.volume_digests(volume).await
    }
    async fn bucket_objects(&self, v: VolumeId, b: &[u16], after: u64) -> PeerResult<ObjectPage> {
        self.inner.bucket_objects(v, b, after).await
    }
    async fn list(&self, dir: Fid, cookie: u64, max: u32) -> PeerResult<DirPage> {
        self.inner.list(dir, cookie, max).await
    }
    async fn block_digests(&self, fid: Fid) -> PeerResult<Vec<[u8; 32]>> {
        self.inner.block_digests(fid).await
    }
    async fn block_map(&self, fid: Fid, first: u64, count: u32) -> PeerResult<Vec<BlockEntry>> {
        self.inner.block_map(fid, first, count).await
    }
    async fn missing_chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<[u8; 32]>> {
        self.inner.missing_chunks(hashes).await
    }
    async fn chunks(&self, hashes: &[[u8; 32]]) -> PeerResult<Vec<Bytes>> {
        self.inner.chunks(hashes).await
    }
    async fn install_blocks(
        &self,
        fid: Fid,
        expect: &VersionVector,
        blocks: &[(u64, Option<BlockEntry>)],
        chunks: &[([u8; 32], Bytes)],
    ) -> PeerResult<()> {
        self.fault()?;
        self.inner.install_blocks(fid, expect, blocks, chunks).await
    }
    async fn install_meta(
        &self,
        fid: Fid,
        expect: &VersionVector,
        meta: &ObjectMeta,
    ) -> PeerResult<()> {
        self.fault()?;
        self.inner.install_meta(fid, expect, meta).await
    }
    async fn install_version(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
    ) -> PeerResult<()> {
        self.fault()?;
        self.inner
            .install_version(fid, expect, version, history)
            .await
    }
    async fn install_delete(
        &self,
        fid: Fid,
        expect: &VersionVector,
        version: &VersionVector,
        history: &History,
        placement: &Placement,
    ) -> PeerResult<()> {
        self.fault()?;
        self.inner
            .install_delete(fid, expect, version, history, placement)
            .await
    }
}

/// What one resolution did when replica 2, which missed a file, failed its first install
/// with `fault`: (objects left unsettled, views replica 2 gave).
fn resolve_with_a_failed_install(fault: PeerError) -> (Trio, Fid, u64, usize) {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1], vec![c], &[]);
    let members: Vec<Faulty> = t
        .members(&[0, 1, 2])
        .into_iter()
        .enumerate()
        .map(|(i, m)| Faulty::new(m, (i == 2).then(|| fault.clone())))
        .collect();
    let mut r = Resolver::new(&members, members[0].replica()).with_clock(t.clock.clone());
    futures::executor::block_on(r.resolve(f));
    let views = members[2].views.load(Ordering::SeqCst);
    let unsettled = r.summary.unsettled;
    drop(r);
    drop(members);
    (t, f, unsettled, views)
}

fn unreachable() -> PeerError {
    PeerError::Unreachable {
        server: "s2".into(),
        reason: "connection lost".into(),
    }
}

/// An unreachable or slow replica, or a version that moved, is worth gathering again: the
/// second attempt installs and every replica ends equal.
#[test]
fn failures_a_retry_can_change_are_retried_and_the_object_settles() {
    let timeout = PeerError::Timeout {
        server: "s2".into(),
        after: Duration::from_secs(2),
    };
    let moved = PeerError::Answer(FsError::VersionChanged);
    for fault in [unreachable(), timeout, moved] {
        let (t, f, unsettled, views) = resolve_with_a_failed_install(fault.clone());
        assert_eq!(unsettled, 0, "{fault}");
        assert_eq!(views, 2, "{fault}: gathered again once");
        t.assert_equal(&[0, 1, 2], f);
    }
}

/// A replica that broke the protocol, or whose storage fails, would answer the same again:
/// the object is left for a later round after one attempt, replica 2 still without it.
#[test]
fn failures_a_retry_cannot_change_give_up_at_once() {
    let protocol = PeerError::unexpected("s2", "Hello");
    let storage = PeerError::Answer(FsError::Storage("disk failed".into()));
    let corrupt = PeerError::Answer(FsError::Corrupt);
    for fault in [protocol, storage, corrupt] {
        let (t, f, unsettled, views) = resolve_with_a_failed_install(fault.clone());
        assert_eq!(unsettled, 1, "{fault}: left for later");
        assert_eq!(views, 1, "{fault}: not gathered again");
        assert!(t.stores[2].view(f).unwrap().meta().is_none(), "{fault}");
        // A later round, the fault gone, settles it.
        let s = t.resolve(&[0, 1, 2], &[f]);
        assert_eq!(s.unsettled, 0, "{s:?}");
        t.assert_equal(&[0, 1, 2], f);
    }
}

/// Another coordinator's lease is its answer, not a failure: the object is left to it.
#[test]
fn a_lease_held_elsewhere_leaves_the_object_to_its_holder() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1], vec![c], &[]);
    t.volatiles[1].lease(&[f], 77, 60_000).unwrap();
    let members: Vec<Faulty> = t
        .members(&[0, 1, 2])
        .into_iter()
        .map(|m| Faulty::new(m, None))
        .collect();
    let mut r = Resolver::new(&members, members[0].replica()).with_clock(t.clock.clone());
    futures::executor::block_on(r.resolve(f));
    assert_eq!(r.summary.unsettled, 1);
    assert_eq!(
        members[2].views.load(Ordering::SeqCst),
        0,
        "nothing gathered"
    );
}
