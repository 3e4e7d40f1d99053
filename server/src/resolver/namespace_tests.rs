//! Resolution of names and deletes: tombstones collected past a horizon, conflicts kept,
//! moves and subtrees settled, drains, anti-entropy, hard links across partitions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::tests::{Trio, trio};
use crate::clock::Clock;
use crate::collect::{CollectPolicy, CollectSummary, collect, may_still_hold};
use crate::store::testutil::{Gen, T0, check_consistency, name};
use codetta_wire::replica::ViewBody;
use codetta_wire::update::{CreateHow, Op};
use codetta_wire::{Fid, FsError, Incarnation};

/// REMOVE of `n` in `dir`, naming `fid`.
fn remove(dir: Fid, n: &str, fid: Fid) -> Op {
    Op::Remove {
        dir,
        name: name(n),
        fid,
    }
}

/// File `g` in the root, made on every replica and removed while replica 2 was away:
/// replica 2 still holds it live.
fn g_removed_while_2_away(t: &mut Trio) -> Fid {
    let root = t.vol.root;
    let (c, g) = t.g.create_op(root, "g", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    t.apply(&[0, 1], vec![remove(root, "g", g)], &[]);
    g
}

impl Trio {
    fn collect(&self, coordinator: usize, reachable: &[usize], horizon_ms: u64) -> CollectSummary {
        self.collect_with(coordinator, reachable, &[], horizon_ms)
    }

    /// As `collect`, with `departed` the replicas that left the group.
    fn collect_with(
        &self,
        coordinator: usize,
        reachable: &[usize],
        departed: &[usize],
        horizon_ms: u64,
    ) -> CollectSummary {
        let members = self.members(reachable);
        let departed = self.members(departed);
        let policy = CollectPolicy {
            min_age_ms: 0,
            horizon_ms,
        };
        futures::executor::block_on(collect(
            &self.stores[coordinator],
            &members,
            &departed,
            self.vol.id,
            policy,
            self.clock.wall_ms(),
        ))
        .unwrap()
    }
}

#[test]
fn a_collected_tombstone_refuses_a_late_create() {
    let mut t = trio();
    let root = t.vol.root;
    let (c0, keep) = t.g.create_op(root, "keep", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c0], &[]);
    // Replica 2 misses the create and the remove of f, and gets the tombstone by
    // resolution; the create record is still on its way to it from the client's log.
    let (op, _) = t.g.create_op(root, "f", CreateHow::Guarded);
    let create = t.g.rec(op);
    let Op::Create { fid: f, .. } = create.op else {
        unreachable!()
    };
    for i in [0, 1] {
        t.stores[i]
            .ship(&crate::store::Shipment::new(
                std::slice::from_ref(&create),
                &[],
                1,
                &[],
            ))
            .unwrap();
    }
    t.apply(&[0, 1], vec![remove(root, "f", f)], &[]);
    t.resolve(&[0, 1, 2], &[f]);
    assert!(matches!(
        t.stores[2].view(f).unwrap().body,
        ViewBody::Deleted(_)
    ));
    // Collected on all three: nothing left of it (no marker either: nobody was missing).
    let s = t.collect(0, &[0, 1, 2], u64::MAX);
    assert_eq!((s.collected, s.waiting), (1, 0), "{s:?}");
    for store in &t.stores {
        assert_eq!(store.view(f).unwrap().body, ViewBody::Absent);
        assert!(!store.object_fids(t.vol.id).unwrap().contains(&f));
    }
    // The late create is refused: the file does not come back.
    let out = t.stores[2]
        .ship(&crate::store::Shipment::new(&[create], &[], 1, &[]))
        .unwrap()
        .outcomes;
    assert_eq!(out, vec![Err(FsError::Stale)]);
    assert_eq!(t.stores[2].view(f).unwrap().body, ViewBody::Absent);
    // The other replicas' queued entries go quietly; the untouched file stays.
    assert_eq!(
        t.collect(1, &[1, 0, 2], u64::MAX),
        CollectSummary::default()
    );
    for store in &t.stores {
        assert!(store.view(keep).unwrap().is_live());
    }
}

#[test]
fn past_the_horizon_an_absent_replicas_live_copy_returns_as_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let g = g_removed_while_2_away(&mut t);
    // Within the horizon the tombstone waits for replica 2.
    let s = t.collect(0, &[0, 1], u64::MAX);
    assert_eq!((s.collected, s.waiting), (0, 1), "{s:?}");
    assert!(matches!(
        t.stores[0].view(g).unwrap().body,
        ViewBody::Deleted(_)
    ));
    // Past it, the reachable replicas collect it.
    let s = t.collect(0, &[0, 1], 0);
    assert_eq!(s.collected, 1, "{s:?}");
    assert_eq!(t.stores[1].view(g).unwrap().body, ViewBody::Forgotten);
    // Replica 2 returns with g live: nobody can tell what the delete had seen, so g
    // comes back under a conflict name rather than as plain g.
    let s = t.resolve(&[2, 0, 1], &[g]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    // Live again everywhere, so the markers went.
    assert!(t.stores[1].view(g).unwrap().is_live());
    t.assert_equal(&[0, 1, 2], g);
    let meta = t.stores[0].view(g).unwrap();
    let name = &meta.meta().unwrap().placement.name;
    assert!(
        String::from_utf8_lossy(name).starts_with("g.conflict-"),
        "{:?}",
        String::from_utf8_lossy(name)
    );
    assert!(t.fid_of(1, root, "g").is_none());
}

/// Found by the interleaving simulation (seed 242): a replica removed from the group
/// while it still held a file the others had removed; they collected the tombstone
/// without it (no longer a member), and its hand-over then brought the file back as live.
#[test]
fn a_departed_replicas_stale_copy_meets_the_tombstone_not_an_absence() {
    let mut t = trio();
    let root = t.vol.root;
    let g = g_removed_while_2_away(&mut t);
    // Replica 2 then leaves the group.
    let stay: Vec<_> = t.vol.vsg[..2].to_vec();
    for i in [0, 1] {
        assert!(t.stores[i].set_group(t.vol.id, &stay, 1).unwrap());
        assert_eq!(
            t.stores[i].departed(t.vol.id).unwrap(),
            vec![t.vol.vsg[2].clone()]
        );
    }
    // While the departed replica holds g live, the tombstone stays.
    let s = t.collect_with(0, &[0, 1], &[2], u64::MAX);
    assert_eq!((s.collected, s.waiting), (0, 1), "{s:?}");
    // Its hand-over meets the tombstone: g stays deleted, there too.
    t.resolve(&[2, 0], &[g]);
    assert!(matches!(
        t.stores[2].view(g).unwrap().body,
        ViewBody::Deleted(_)
    ));
    assert!(t.fid_of(0, root, "g").is_none());
    let s = t.collect_with(0, &[0, 1], &[2], u64::MAX);
    assert_eq!(s.collected, 1, "{s:?}");
    // Retired on its server, it no longer holds anything (and is then forgotten).
    let departed = t.members(&[2]);
    assert!(futures::executor::block_on(may_still_hold(
        &departed[0],
        t.vol.id
    )));
    t.stores[2].retire_replica(t.vol.id).unwrap();
    assert!(!futures::executor::block_on(may_still_hold(
        &departed[0],
        t.vol.id
    )));
    // A server back in the group (with a new replica) is no longer departed.
    let mut back = stay.clone();
    back.push(codetta_wire::message::ReplicaMember {
        replica: codetta_wire::ReplicaId(99),
        server: t.vol.vsg[2].server.clone(),
    });
    assert!(t.stores[1].set_group(t.vol.id, &back, 2).unwrap());
    assert!(t.stores[1].departed(t.vol.id).unwrap().is_empty());
    // It leaves again: departed again; a replica's own retirement takes the list with it.
    assert!(t.stores[1].set_group(t.vol.id, &stay, 3).unwrap());
    assert!(!t.stores[1].departed(t.vol.id).unwrap().is_empty());
    t.stores[1].retire_replica(t.vol.id).unwrap();
    assert!(t.stores[1].departed(t.vol.id).unwrap().is_empty());
}

/// A replica added after another left learns of it from the catalogue (a store records
/// only the departures it sees). Replica 2 misses the remove of g and leaves; server s1
/// leaves and comes back with a new replica, which gets g's tombstone by resolution and
/// coordinates its collection. Knowing of replica 2, it waits while 2 holds g live, and
/// 2's hand-over then meets the tombstone. Without the list it collected the tombstone on
/// both members, and the hand-over brought g back as a live file.
#[test]
fn a_replica_added_after_a_departure_waits_for_it_too() {
    let mut t = trio();
    let root = t.vol.root;
    let g = g_removed_while_2_away(&mut t);
    // Replica 2 leaves (the catalogue lists it as departed), then s1's replica.
    let mut catalogue_departed = vec![t.vol.vsg[2].clone()];
    assert!(t.stores[0].set_group(t.vol.id, &t.vol.vsg[..2], 1).unwrap());
    assert!(t.stores[0].set_group(t.vol.id, &t.vol.vsg[..1], 2).unwrap());
    t.stores[1].retire_replica(t.vol.id).unwrap();
    while t.stores[1].purge_step(t.vol.id, 1000).unwrap() {}
    // s1 comes back with replica 98 (and is no longer departed).
    let mut group = t.vol.vsg[..2].to_vec();
    group[1].replica = codetta_wire::ReplicaId(98);
    assert!(t.stores[0].set_group(t.vol.id, &group, 4).unwrap());
    assert_eq!(t.stores[0].departed(t.vol.id).unwrap(), catalogue_departed);
    catalogue_departed.push(t.vol.vsg[1].clone());
    let info = codetta_wire::message::VolumeInfo {
        vsg: group.clone(),
        epoch: 4,
        ..t.vol.clone()
    };
    t.stores[1]
        .create_replica_knowing(&info, group[1].replica, T0, &catalogue_departed)
        .unwrap();
    assert_eq!(
        t.stores[1].departed(t.vol.id).unwrap(),
        t.stores[0].departed(t.vol.id).unwrap(),
        "s2 as its elder lists it; s1, a member again, not"
    );
    let replica = |i: usize, id: codetta_wire::ReplicaId| {
        super::LocalReplica::new(
            t.stores[i].clone(),
            t.volatiles[i].clone(),
            id,
            &format!("s{i}"),
        )
    };
    let members = [replica(1, group[1].replica), replica(0, group[0].replica)];
    // The new replica gets the tombstone (and queues it for collection).
    futures::executor::block_on(async {
        let mut r = super::Resolver::new(&members, group[1].replica).with_clock(t.clock.clone());
        r.resolve(g).await;
    });
    assert!(matches!(
        t.stores[1].view(g).unwrap().body,
        ViewBody::Deleted(_)
    ));
    // It collects with the departed replicas its store lists, as `collect_pass` does.
    let departed: Vec<_> = t.stores[1]
        .departed(t.vol.id)
        .unwrap()
        .iter()
        .map(|m| replica(2, m.replica))
        .collect();
    let policy = CollectPolicy {
        min_age_ms: 0,
        horizon_ms: u64::MAX,
    };
    let s = futures::executor::block_on(collect(
        &t.stores[1],
        &members,
        &departed,
        t.vol.id,
        policy,
        t.clock.wall_ms(),
    ))
    .unwrap();
    assert_eq!((s.collected, s.waiting), (0, 1), "{s:?}");
    // Replica 2's hand-over meets the tombstone: g stays deleted.
    t.resolve(&[2, 0], &[g]);
    assert!(t.fid_of(0, root, "g").is_none());
    assert!(t.fid_of(1, root, "g").is_none());
    assert!(matches!(
        t.stores[2].view(g).unwrap().body,
        ViewBody::Deleted(_)
    ));
}

/// A replica added and removed again between two groups a replica saw (its server
/// reconciled once, after both changes) is departed there too: the catalogue lists it.
#[test]
fn a_replica_that_came_and_went_unseen_is_departed_too() {
    let t = trio();
    let passing = codetta_wire::message::ReplicaMember {
        replica: codetta_wire::ReplicaId(77),
        server: "s3".into(),
    };
    let listed = [passing.clone(), t.vol.vsg[1].clone()];
    assert!(
        t.stores[0]
            .set_group_knowing(t.vol.id, &t.vol.vsg[..2], 3, &listed)
            .unwrap()
    );
    assert_eq!(
        t.stores[0].departed(t.vol.id).unwrap(),
        vec![t.vol.vsg[2].clone(), passing],
        "replica 2, seen leaving, and s3's, listed; not s1's, a member"
    );
}

#[test]
fn missed_creates_renames_and_deletes_follow_the_directory() {
    let mut t = trio();
    let root = t.vol.root;
    let (m1, d1) = t.g.mkdir_op(root, "d1");
    let (m2, d2) = t.g.mkdir_op(root, "d2");
    let (c, f) = t.g.create_op(d1, "f", CreateHow::Guarded);
    let (c2, gone) = t.g.create_op(d1, "gone", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![m1, m2, c, c2], &[]);
    // Replica 2 is away for a new subtree, a rename across directories and a delete.
    let (m3, d3) = t.g.mkdir_op(d2, "d3");
    let (c3, g) = t.g.create_op(d3, "g", CreateHow::Guarded);
    let rename = Op::Rename {
        from_dir: d1,
        from_name: name("f"),
        to_dir: d3,
        to_name: name("f2"),
        fid: f,
        replaces: None,
    };
    let rm = remove(d1, "gone", gone);
    t.apply(
        &[0, 1],
        vec![m3, c3, Gen::write_op(g, 0, b"g"), rename, rm],
        b"g",
    );
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!(s.unsettled, 0, "{s:?} {changed:?}");
    for fid in [root, d1, d2, d3, f, g] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    assert_eq!(t.fid_of(2, d3, "f2"), Some(f));
    assert_eq!(t.fid_of(2, d1, "f"), None);
    assert_eq!(
        t.stores[2].getattr(gone),
        Err(FsError::Stale),
        "a delete stays a delete"
    );
    assert_eq!(t.read(2, g), b"g");
}

#[test]
fn a_file_updated_on_one_side_and_deleted_on_the_other_comes_back_as_a_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, Gen::write_op(f, 0, b"v1")], b"v1");
    // Partition: {0} deletes, {1, 2} update.
    let rm = remove(root, "f", f);
    t.apply(&[0], vec![rm], &[]);
    let mut other = Gen::new(t.vol.id, Incarnation(4));
    t.apply_as(&mut other, &[1, 2], vec![Gen::write_op(f, 0, b"v2")], b"v2");
    let s = t.resolve(&[0, 1, 2], &[root]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    assert!(s.conflicts >= 1);
    for i in 0..3 {
        assert_eq!(t.read(i, f), b"v2", "the update survives on {i}");
        assert_eq!(t.fid_of(i, root, "f"), None);
        let (_, entries, _) = t.stores[i].readdir(root, 0, 10, false).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(
            entries[0].name.to_string().starts_with("f.conflict-"),
            "{:?}",
            entries[0].name
        );
    }
    t.assert_equal(&[0, 1, 2], f);
    t.assert_equal(&[0, 1, 2], root);
}

#[test]
fn concurrent_writes_keep_both_versions_and_creates_merge() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // Partition {0} / {1, 2}: both write f, each creates its own file, and both create
    // "same" (different fids, one name).
    let mut a = Gen::new(t.vol.id, Incarnation(5));
    let mut b = Gen::new(t.vol.id, Incarnation(6));
    let (ca, xa) = a.create_op(root, "only-a", CreateHow::Guarded);
    let (sa, same_a) = a.create_op(root, "same", CreateHow::Guarded);
    t.apply_as(
        &mut a,
        &[0],
        vec![Gen::write_op(f, 0, b"from a"), ca, sa],
        b"from a",
    );
    let (cb, xb) = b.create_op(root, "only-b", CreateHow::Guarded);
    let (sb, same_b) = b.create_op(root, "same", CreateHow::Guarded);
    t.apply_as(
        &mut b,
        &[1, 2],
        vec![Gen::write_op(f, 0, b"from b!"), cb, sb],
        b"from b!",
    );
    let mut changed = t.changed(0);
    changed.extend(t.changed(2));
    let s = t.resolve(&[2, 0, 1], &changed);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, f, xa, xb, same_a, same_b] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    let (_, entries, _) = t.stores[0].readdir(root, 0, 100, false).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
    // Both versions of f, both new files, both "same" files: nothing lost.
    assert_eq!(names.len(), 6, "{names:?}");
    let mut contents: Vec<Vec<u8>> = entries
        .iter()
        .filter(|e| e.name.to_string().starts_with("f"))
        .map(|e| t.read(0, e.fid))
        .collect();
    contents.sort();
    assert_eq!(contents, vec![b"from a".to_vec(), b"from b!".to_vec()]);
    assert_eq!(t.fid_of(0, root, "same"), Some(same_a.min(same_b)));
}

#[test]
fn equal_states_only_merge_vectors_and_unreachable_replicas_wait() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c], &[]);
    // No COP2 arrived: vectors differ, states are equal.
    let s = t.resolve(&[0, 1], &[f]);
    assert_eq!((s.merges, s.installs, s.bytes_shipped), (1, 0, 0));
    t.assert_equal(&[0, 1], f);
    // Replica 2 was not reached: it is left as it was and settled the next time.
    assert_ne!(
        t.stores[2].view(f).unwrap().version,
        t.stores[0].view(f).unwrap().version
    );
    t.resolve(&[0, 1, 2], &[f]);
    t.assert_equal(&[0, 1, 2], f);
}

#[test]
fn directories_moved_into_each_other_settle_without_a_cycle() {
    let mut t = trio();
    let root = t.vol.root;
    let (m1, d1) = t.g.mkdir_op(root, "d1");
    let (m2, d2) = t.g.mkdir_op(root, "d2");
    t.apply(&[0, 1, 2], vec![m1, m2], &[]);
    let mut a = Gen::new(t.vol.id, Incarnation(7));
    let mut b = Gen::new(t.vol.id, Incarnation(8));
    let mv = |from: Fid, n: &str, to: Fid, fid: Fid| Op::Rename {
        from_dir: from,
        from_name: name(n),
        to_dir: to,
        to_name: name(n),
        fid,
        replaces: None,
    };
    t.apply_as(&mut a, &[0], vec![mv(root, "d1", d2, d1)], &[]);
    t.apply_as(&mut b, &[1, 2], vec![mv(root, "d2", d1, d2)], &[]);
    let s = t.resolve(&[0, 1, 2], &[root, d1, d2]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, d1, d2] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    // Every directory is reachable from the root (no cycle) on every replica.
    for i in 0..3 {
        for d in [d1, d2] {
            let mut cur = d;
            let mut steps = 0;
            while cur != root {
                cur = t.stores[i].parent(cur).unwrap().fid;
                steps += 1;
                assert!(steps < 10, "cycle on replica {i}");
            }
        }
    }
}

#[test]
fn a_missed_subtree_resolved_from_its_deepest_file_needs_no_conflict() {
    let mut t = trio();
    let root = t.vol.root;
    let (m, top) = t.g.mkdir_op(root, "top");
    t.apply(&[0, 1, 2], vec![m], &[]);
    // Replica 2 misses a subtree made inside `top`.
    let (m1, a) = t.g.mkdir_op(top, "a");
    let (m2, b) = t.g.mkdir_op(a, "b");
    let (c, f) = t.g.create_op(b, "f", CreateHow::Guarded);
    let (c2, g) = t.g.create_op(a, "g", CreateHow::Guarded);
    t.apply(
        &[0, 1],
        vec![m1, m2, c, Gen::write_op(f, 0, b"deep"), c2],
        b"deep",
    );
    // A client reading f first asks for f alone; its parents come with it.
    let s = t.resolve(&[0, 1, 2], &[f]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    assert_eq!(t.read(2, f), b"deep");
    let s = t.resolve(&[0, 1, 2], &[root, top, a, b, g]);
    assert_eq!((s.unsettled, s.conflicts), (0, 0), "{s:?}");
    for fid in [root, top, a, b, f, g] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    assert_eq!(t.fid_of(2, a, "g"), Some(g));
}

#[test]
fn a_drain_copies_what_only_the_leaving_replica_holds_and_names_what_it_could_not() {
    let mut t = trio();
    let root = t.vol.root;
    // Replica 2 (leaving) alone holds two new files.
    let (c1, kept) = t.g.create_op(root, "kept", CreateHow::Guarded);
    let (c2, stuck) = t.g.create_op(root, "stuck", CreateHow::Guarded);
    t.apply(&[2], vec![c1, c2], &[]);
    // Another coordinator holds `stuck` on replica 0 (the one draining): it is left.
    t.volatiles[0].lease(&[stuck], 99, 60_000).unwrap();
    let members = t.members(&[0, 1, 2]);
    let (me, leaving) = (t.vol.vsg[0].replica, t.vol.vsg[2].replica);
    let (_, left) =
        futures::executor::block_on(crate::heal::drain(&members, me, t.vol.id, leaving)).unwrap();
    assert!(left.contains(&stuck), "{left:?}");
    assert!(!left.contains(&kept), "{left:?}");
    t.assert_equal(&[0, 2], kept);
    let theirs = t.stores[2].view(stuck).unwrap();
    let mine = t.stores[0].view(stuck).unwrap();
    assert!(
        !crate::heal::covered(&theirs, &mine),
        "only replica 2 has it"
    );
    // Once the other coordinator lets go, a drain copies it too and nothing is left.
    t.volatiles[0].release(&[stuck], 99).unwrap();
    let (_, left) =
        futures::executor::block_on(crate::heal::drain(&members, me, t.vol.id, leaving)).unwrap();
    assert!(left.is_empty(), "{left:?}");
    let mine = t.stores[0].view(stuck).unwrap();
    assert!(crate::heal::covered(
        &t.stores[2].view(stuck).unwrap(),
        &mine
    ));
}

#[test]
fn anti_entropy_passes_over_changes_the_replicas_agree_on() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let (c2, g) = t.g.create_op(root, "g", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, c2], &[]);
    let page = |t: &Trio| t.stores[1].changes(t.vol.id, 0, 1024, 0).unwrap().entries;
    // No COP2 yet: each replica counted only itself, so every object differs.
    let before = crate::heal::differing(&t.stores[0], true, &page(&t));
    assert_eq!(before, [root, f, g].into_iter().collect());
    t.resolve(&[0, 1, 2], &[root, f, g]);
    // Merged: nothing left to look at, without asking the peer for a view.
    assert!(crate::heal::differing(&t.stores[0], true, &page(&t)).is_empty());
    // A write replica 0 missed differs again; so does an object it never saw.
    t.apply(&[1], vec![Gen::write_op(f, 0, b"new")], b"new");
    let (c3, h) = t.g.create_op(root, "h", CreateHow::Guarded);
    t.apply(&[1], vec![c3], &[]);
    let after = crate::heal::differing(&t.stores[0], true, &page(&t));
    assert_eq!(after, [root, f, h].into_iter().collect());
    // Without a replica here, every object is compared.
    assert_eq!(
        crate::heal::differing(&t.stores[0], false, &page(&t)).len(),
        4
    );
}

/// A hard link made and a name removed while replica 2 was away reach it through the
/// directories: the same names, one object, its data shared.
#[test]
fn links_made_and_names_removed_in_a_partition_follow_the_directories() {
    let mut t = trio();
    let root = t.vol.root;
    let (m, d) = t.g.mkdir_op(root, "d");
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    let (c2, h) = t.g.create_op(root, "h", CreateHow::Guarded);
    let link_h = Op::Link {
        dir: d,
        name: name("h2"),
        fid: h,
    };
    t.apply(
        &[0, 1, 2],
        vec![m, c, c2, link_h, Gen::write_op(f, 0, b"data")],
        b"data",
    );
    // Replica 2 is away: f gets two more names, h loses one.
    let ops = vec![
        Op::Link {
            dir: d,
            name: name("g"),
            fid: f,
        },
        Op::Link {
            dir: root,
            name: name("f3"),
            fid: f,
        },
        remove(root, "h", h),
    ];
    t.apply(&[0, 1], ops, &[]);
    let changed = t.changed(1);
    let s = t.resolve(&[1, 2, 0], &changed);
    assert_eq!(s.unsettled, 0, "{s:?}");
    for fid in [root, d, f, h] {
        t.assert_equal(&[0, 1, 2], fid);
    }
    for i in 0..3 {
        assert_eq!(t.fid_of(i, d, "g"), Some(f));
        assert_eq!(t.fid_of(i, root, "f3"), Some(f));
        assert_eq!(t.fid_of(i, root, "h"), None);
        assert_eq!(t.fid_of(i, d, "h2"), Some(h));
        assert_eq!(t.stores[i].getattr(f).unwrap().attrs.nlink, 3);
        assert_eq!(t.stores[i].getattr(h).unwrap().attrs.nlink, 1);
        assert_eq!(t.read(i, f), b"data");
        check_consistency(&t.stores[i]);
    }
}

/// Two partitions give one file different new names: a file's names are part of its state,
/// so these are concurrent updates of it (rule 7): one version keeps the object and its
/// names, the other is kept as a conflict copy beside its first name. The replicas
/// converge, every name leads to an object, and no data is lost.
#[test]
fn concurrent_links_in_two_partitions_converge() {
    let mut t = trio();
    let root = t.vol.root;
    let (c, f) = t.g.create_op(root, "f", CreateHow::Guarded);
    t.apply(&[0, 1, 2], vec![c, Gen::write_op(f, 0, b"v")], b"v");
    let link = |n: &str| Op::Link {
        dir: root,
        name: name(n),
        fid: f,
    };
    t.apply(&[0], vec![link("x")], &[]);
    let mut other = Gen::new(t.vol.id, Incarnation(4));
    t.apply_as(&mut other, &[1, 2], vec![link("y")], &[]);
    let s = t.resolve(&[0, 1, 2], &[root, f]);
    assert_eq!(s.unsettled, 0, "{s:?}");
    t.assert_equal(&[0, 1, 2], root);
    t.assert_equal(&[0, 1, 2], f);
    let (_, entries, _) = t.stores[0].readdir(root, 0, 100, false).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
    for i in 0..3 {
        check_consistency(&t.stores[i]);
        let (_, here, _) = t.stores[i].readdir(root, 0, 100, false).unwrap();
        assert_eq!(here.len(), entries.len());
        for e in &here {
            assert_eq!(t.read(i, e.fid), b"v", "{} on {i}", e.name);
        }
    }
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n == "f"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "x") != names.iter().any(|n| n == "y"),
        "one version's new name: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("f.conflict-")),
        "the other version as a copy: {names:?}"
    );
    assert!(s.conflicts >= 1);
}
