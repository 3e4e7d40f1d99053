//! The store's part of replication, on three stores fed the way a client feeds its AVSG:
//! the first phase stamps own counters and histories, the second phase (COP2) counts the
//! other appliers, a replica that missed an update ends dominated, and one that comes back
//! after its records were trimmed continues from the client's log start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::testutil::{Gen, T0, name};
use super::{Shipment, Store, StoreOptions};
use codetta_wire::history::{Relation, VersionView, relate};
use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::update::{Cop2, CreateHow, Follows, Op, UpdateRecord};
use codetta_wire::{Fid, FsError, Incarnation, ReplicaId, SetAttrs, VolumeId};
use tempfile::TempDir;

/// A record's predecessor on its object alone.
fn on(object: Option<u64>) -> Follows {
    Follows {
        object,
        replaced: None,
    }
}

struct Group {
    _dirs: Vec<TempDir>,
    stores: Vec<Store>,
    vol: VolumeInfo,
    g: Gen,
}

fn group(n: usize) -> Group {
    let dirs: Vec<TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(&d.path().join("s.redb"), StoreOptions::default()).unwrap())
        .collect();
    let id = VolumeId(77);
    let vol = VolumeInfo {
        id,
        name: "v".into(),
        root: Fid::root(id),
        vsg: (0..n)
            .map(|i| ReplicaMember {
                replica: ReplicaId(100 + i as u64),
                server: format!("s{i}"),
            })
            .collect(),
        epoch: 0,
        addrs: Vec::new(),
    };
    for (i, s) in stores.iter().enumerate() {
        s.create_replica(&vol, vol.vsg[i].replica, T0).unwrap();
    }
    let g = Gen::new(id, Incarnation(5));
    Group {
        _dirs: dirs,
        stores,
        vol,
        g,
    }
}

impl Group {
    fn replica(&self, i: usize) -> ReplicaId {
        self.vol.vsg[i].replica
    }

    /// Ships `records` to the stores in `to` with `cop2`; every store must apply the batch.
    fn ship(
        &self,
        to: &[usize],
        records: &[UpdateRecord],
        data: &[u8],
        log_start: u64,
        cop2: &[Cop2],
    ) {
        for &i in to {
            let shipment = Shipment {
                records,
                data,
                log_start,
                cop2,
                follows: &[],
            };
            let out = self.stores[i].ship(&shipment).unwrap().outcomes;
            assert!(out.iter().all(Result::is_ok), "store {i}: {out:?}");
        }
    }

    fn cop2(&self, first: u64, last: u64, by: &[usize]) -> Cop2 {
        Cop2 {
            incarnation: self.g.incarnation,
            volume: self.vol.id,
            first,
            last,
            applied_by: by.iter().map(|i| self.replica(*i)).collect(),
        }
    }

    fn relation(&self, a: usize, b: usize, fid: Fid) -> Relation {
        let va = self.stores[a].getattr(fid).unwrap();
        let vb = self.stores[b].getattr(fid).unwrap();
        let ha = self.stores[a].history(fid).unwrap();
        let hb = self.stores[b].history(fid).unwrap();
        relate(
            VersionView {
                vector: &va.version,
                history: &ha,
                tag: &va.tag,
                applied: &self.stores[a].view(fid).unwrap().applied,
            },
            VersionView {
                vector: &vb.version,
                history: &hb,
                tag: &vb.tag,
                applied: &self.stores[b].view(fid).unwrap().applied,
            },
        )
    }
}

#[test]
fn a_replica_that_missed_an_update_is_dominated_and_cop2_equalises_the_rest() {
    let mut grp = group(3);
    let root = grp.vol.root;
    let (create, f) = grp.g.create_op(root, "f", CreateHow::Guarded);
    let b1 = vec![grp.g.rec(create)];
    grp.ship(&[0, 1, 2], &b1, &[], 1, &[]);
    // Before COP2 each replica counted only itself: the vectors look concurrent, the tags
    // are equal, so the replicas are the same.
    assert_eq!(grp.relation(0, 1, f), Relation::Same);
    assert_ne!(
        grp.stores[0].getattr(f).unwrap().version,
        grp.stores[1].getattr(f).unwrap().version
    );

    // Second batch reaches 0 and 1 only; it carries the first batch's COP2 to them.
    let data = b"hello".to_vec();
    let b2 = vec![grp.g.rec(Gen::write_op(f, 0, &data))];
    let c1 = grp.cop2(1, 1, &[0, 1, 2]);
    grp.ship(&[0, 1], &b2, &data, 1, std::slice::from_ref(&c1));
    // The third batch's COP2 tells 0 and 1 that only they applied the write.
    let b3 = vec![grp.g.rec(Op::SetAttr {
        fid: root,
        set: codetta_wire::SetAttrs {
            mode: Some(0o700),
            ..Default::default()
        },
    })];
    grp.ship(&[0, 1], &b3, &[], 1, &[grp.cop2(2, 2, &[0, 1])]);

    let v0 = grp.stores[0].getattr(f).unwrap();
    let v1 = grp.stores[1].getattr(f).unwrap();
    assert_eq!(
        v0.version, v1.version,
        "COP2 made the appliers' vectors equal"
    );
    assert_eq!(v0.tag, v1.tag);
    assert_eq!(v0.version.get(grp.replica(0)), 2);
    assert_eq!(
        v0.version.get(grp.replica(2)),
        1,
        "2 counted for the create only"
    );
    // Replica 2 missed the write: dominated, never equal.
    assert_eq!(grp.relation(0, 2, f), Relation::Newer);
    assert_eq!(grp.relation(2, 0, f), Relation::Older);
    // A COP2 that arrives twice counts nothing twice.
    grp.ship(&[0], &[], &[], 1, &[grp.cop2(2, 2, &[0, 1])]);
    assert_eq!(grp.stores[0].getattr(f).unwrap().version, v0.version);
    for s in &grp.stores[..2] {
        assert_eq!(s.pending_cop2().unwrap(), 1, "only b3 awaits its COP2");
    }
}

#[test]
fn a_returning_replica_continues_from_the_log_start_and_stays_dominated() {
    let mut grp = group(2);
    let root = grp.vol.root;
    let (create, f) = grp.g.create_op(root, "f", CreateHow::Guarded);
    let b1 = vec![grp.g.rec(create)];
    grp.ship(&[0, 1], &b1, &[], 1, &[]);
    // Records 2 and 3 reach replica 0 only and are trimmed from the client's log.
    let b2 = vec![
        grp.g.rec(Gen::write_op(f, 0, b"ab")),
        grp.g.rec(Gen::write_op(f, 2, b"cd")),
    ];
    grp.ship(&[0], &b2, b"abcd", 1, &[grp.cop2(1, 1, &[0, 1])]);
    // Record 4 goes to both; the log now starts at 4. Replica 1 skips 2..3.
    let b3 = vec![grp.g.rec(Gen::write_op(f, 4, b"ef"))];
    let without_start = grp.stores[1]
        .ship(&crate::store::Shipment::new(&b3, b"ef", 1, &[]))
        .unwrap()
        .outcomes;
    assert_eq!(
        without_start,
        vec![Err(FsError::OutOfOrder)],
        "a gap is refused"
    );
    grp.ship(&[0, 1], &b3, b"ef", 4, &[grp.cop2(2, 3, &[0])]);
    assert_eq!(
        grp.stores[1]
            .missed_records(grp.g.incarnation, grp.vol.id)
            .unwrap(),
        2
    );
    assert_eq!(grp.relation(0, 1, f), Relation::Newer);
    // A resend of record 4 is answered, not applied again.
    let again = grp.stores[1]
        .ship(&crate::store::Shipment::new(&b3, b"ef", 4, &[]))
        .unwrap()
        .outcomes;
    assert_eq!(again, vec![Ok(None)]);
}

/// File f made on both replicas (record 1), then written (record 2) on replica 0 only,
/// leaving the client's log.
fn write_replica_1_misses(grp: &mut Group) -> Fid {
    let (create, f) = grp.g.create_op(grp.vol.root, "f", CreateHow::Guarded);
    let b1 = vec![grp.g.rec(create)];
    grp.ship(&[0, 1], &b1, &[], 1, &[]);
    let b2 = vec![grp.g.rec(Gen::write_op(f, 0, b"ab"))];
    grp.ship(&[0], &b2, b"ab", 1, &[grp.cop2(1, 1, &[0, 1])]);
    f
}

/// The fault matrix's finding: a write acknowledged by one replica, the next by another
/// that missed the first, made a version of the file nobody wrote (and, beside the first
/// replica's, a conflict). A record names its predecessor on its object; a replica that
/// did not apply that one refuses it.
#[test]
fn a_record_whose_predecessor_a_replica_missed_is_refused_there() {
    let mut grp = group(2);
    let root = grp.vol.root;
    let f = write_replica_1_misses(&mut grp);
    // Record 3 writes f again, after record 2.
    let b3 = vec![grp.g.rec(Gen::write_op(f, 2, b"cd"))];
    let follows = [on(Some(2))];
    let shipment = Shipment::new(&b3, b"cd", 3, &[]).following(&follows);
    assert_eq!(
        grp.stores[0].ship(&shipment).unwrap().outcomes,
        vec![Ok(None)]
    );
    assert_eq!(
        grp.stores[1].ship(&shipment).unwrap().outcomes,
        vec![Err(FsError::Diverged)],
        "replica 1 missed record 2: record 3 would write over the wrong state"
    );
    assert_eq!(
        grp.stores[1].read(f, 0, 10).unwrap().1,
        b"".to_vec(),
        "nothing applied"
    );
    // Record 4 follows the refused record 3: refused too (a gap now).
    let b4 = vec![grp.g.rec(Gen::write_op(f, 4, b"ef"))];
    let follows = [on(Some(3))];
    let shipment = Shipment::new(&b4, b"ef", 3, &[]).following(&follows);
    assert_eq!(
        grp.stores[0].ship(&shipment).unwrap().outcomes,
        vec![Ok(None)]
    );
    assert_eq!(
        grp.stores[1].ship(&shipment).unwrap().outcomes,
        vec![Err(FsError::Diverged)]
    );
    // Replica 1 stays merely stale: dominated, never concurrent.
    assert_eq!(grp.relation(0, 1, f), Relation::Newer);
    // A record naming no predecessor is applied as before (records of another object, or
    // a client that no longer remembers).
    let (create_g, g) = grp.g.create_op(root, "g", CreateHow::Guarded);
    let b5 = vec![grp.g.rec(create_g)];
    let follows = [on(None)];
    let shipment = Shipment::new(&b5, &[], 3, &[]).following(&follows);
    assert_eq!(
        grp.stores[1].ship(&shipment).unwrap().outcomes,
        vec![Ok(Some(g))]
    );
}

/// The interleaving simulation's seeds 390 and 295: a rename over one of a file's names is
/// a link of that file's chain too. A replica that missed the client's previous record on
/// the file refuses the rename (it would take the name away from a state without that
/// record); a record on the file after the rename names the rename, so a replica that
/// missed the rename refuses it (it would change a state that still has the name).
#[test]
fn a_rename_over_a_files_name_is_a_link_of_that_files_chain() {
    let mut grp = group(2);
    let root = grp.vol.root;
    // One record, shipped to store `i` with its predecessors on its object and on the
    // object it replaces.
    let ship = |grp: &Group,
                i: usize,
                rec: &UpdateRecord,
                data: &[u8],
                on: Option<u64>,
                replaced: Option<u64>| {
        let follows = [Follows {
            object: on,
            replaced,
        }];
        let shipment =
            Shipment::new(std::slice::from_ref(rec), data, rec.id.seq, &[]).following(&follows);
        grp.stores[i].ship(&shipment).unwrap().outcomes
    };
    // f, also named g (records 1 and 2); then a chmod of f (record 3) replica 1 misses.
    let (create, f) = grp.g.create_op(root, "f", CreateHow::Guarded);
    let b1 = vec![grp.g.rec(create)];
    grp.ship(&[0, 1], &b1, &[], 1, &[]);
    let link = Op::Link {
        dir: root,
        name: name("g"),
        fid: f,
    };
    let b2 = vec![grp.g.rec(link)];
    grp.ship(&[0, 1], &b2, &[], 2, &[]);
    let chmod = Op::SetAttr {
        fid: f,
        set: SetAttrs {
            mode: Some(0o600),
            ..SetAttrs::default()
        },
    };
    let b3 = vec![grp.g.rec(chmod)];
    grp.ship(&[0], &b3, &[], 3, &[]);
    let (create_h, h) = grp.g.create_op(root, "h", CreateHow::Guarded);
    let r4 = grp.g.rec(create_h);
    for i in [0, 1] {
        assert!(ship(&grp, i, &r4, &[], None, None)[0].is_ok(), "store {i}");
    }
    // Record 5: h renamed over g, f's other name; its predecessor on f is the chmod.
    let rename = Op::Rename {
        from_dir: root,
        from_name: name("h"),
        to_dir: root,
        to_name: name("g"),
        fid: h,
        replaces: Some(f),
    };
    let r5 = grp.g.rec(rename);
    assert_eq!(ship(&grp, 0, &r5, &[], Some(4), Some(3)), vec![Ok(None)]);
    assert_eq!(
        ship(&grp, 1, &r5, &[], Some(4), Some(3)),
        vec![Err(FsError::Diverged)],
        "replica 1 missed the chmod: the rename would take g from a state without it"
    );
    assert_eq!(grp.stores[1].lookup(root, &name("g")).unwrap().fid, f);
    // On replica 0 the rename is a link of f's chain, its span reaching back to the chmod.
    let history = grp.stores[0].history(f).unwrap();
    let renamed = history.entries().last().unwrap();
    assert!(renamed.chained && renamed.from <= 3, "{renamed:?}");
    // Record 6 writes f after the rename, naming it: replica 1 never applied the rename.
    let r6 = grp.g.rec(Gen::write_op(f, 0, b"xy"));
    assert_eq!(ship(&grp, 0, &r6, b"xy", Some(5), None), vec![Ok(None)]);
    assert_eq!(
        ship(&grp, 1, &r6, b"xy", Some(5), None),
        vec![Err(FsError::Diverged)]
    );
}

/// The fault matrix's finding (seed 13008): a replica that missed a write, then refused
/// more than 32 scattered records of the same client, no longer had the write among its
/// gaps (the oldest went below the floor) and applied the next write over the state
/// without it: a version of the file nobody wrote. Below the floor the object's history
/// decides.
#[test]
fn a_predecessor_missed_before_the_gaps_floor_is_still_missed() {
    let mut grp = group(2);
    let root = grp.vol.root;
    let f = write_replica_1_misses(&mut grp);
    // Then 40 records it refuses (a remove of a name that is not there), each between
    // two it applies: 40 separate gaps.
    for i in 0..40 {
        let (c, _) = grp.g.create_op(root, &format!("x{i}"), CreateHow::Guarded);
        let refused = Op::Remove {
            dir: root,
            name: name("nope"),
            fid: f,
        };
        let b = vec![grp.g.rec(c), grp.g.rec(refused)];
        let shipment = Shipment::new(&b, &[], b[0].id.seq, &[]);
        let out = grp.stores[1].ship(&shipment).unwrap().outcomes;
        assert!(out[0].is_ok() && out[1].is_err(), "{out:?}");
    }
    let b = vec![grp.g.rec(Gen::write_op(f, 2, b"cd"))];
    let follows = [on(Some(2))];
    let shipment = Shipment::new(&b, b"cd", b[0].id.seq, &[]).following(&follows);
    assert_eq!(
        grp.stores[1].ship(&shipment).unwrap().outcomes,
        vec![Err(FsError::Diverged)],
        "replica 1 missed record 2, however long ago"
    );
    assert_eq!(grp.stores[1].read(f, 0, 10).unwrap().1, b"".to_vec());
    // Replica 0 holds it: applied there.
    let shipment = Shipment::new(&b, b"cd", b[0].id.seq, &[]).following(&follows);
    assert_eq!(
        grp.stores[0].ship(&shipment).unwrap().outcomes,
        vec![Ok(None)]
    );
}

#[test]
fn removes_and_renames_need_the_name_to_lead_to_the_expected_object() {
    let mut grp = group(1);
    let root = grp.vol.root;
    let (c, f) = grp.g.create_op(root, "f", CreateHow::Guarded);
    let (c2, other) = grp.g.create_op(root, "g", CreateHow::Guarded);
    let b = vec![grp.g.rec(c), grp.g.rec(c2)];
    grp.ship(&[0], &b, &[], 1, &[]);
    let wrong = grp.g.rec(Op::Remove {
        dir: root,
        name: name("f"),
        fid: other,
    });
    assert_eq!(
        grp.stores[0]
            .ship(&crate::store::Shipment::new(&[wrong], &[], 1, &[]))
            .unwrap()
            .outcomes,
        vec![Err(FsError::Diverged)]
    );
    // A rename over a target the client did not see is refused the same way.
    let over_unseen = grp.g.rec(Op::Rename {
        from_dir: root,
        from_name: name("f"),
        to_dir: root,
        to_name: name("g"),
        fid: f,
        replaces: None,
    });
    assert_eq!(
        grp.stores[0]
            .ship(&crate::store::Shipment::new(&[over_unseen], &[], 1, &[]))
            .unwrap()
            .outcomes,
        vec![Err(FsError::Diverged)]
    );
    let over_seen = grp.g.rec(Op::Rename {
        from_dir: root,
        from_name: name("f"),
        to_dir: root,
        to_name: name("g"),
        fid: f,
        replaces: Some(other),
    });
    assert_eq!(
        grp.stores[0]
            .ship(&crate::store::Shipment::new(&[over_seen], &[], 1, &[]))
            .unwrap()
            .outcomes,
        vec![Ok(None)]
    );
    let moved = grp.stores[0].lookup(root, &name("g")).unwrap();
    assert_eq!(moved.fid, f);
    assert_eq!(grp.stores[0].getattr(other), Err(FsError::Stale));
}

/// Each record applied over its predecessor extends that one's span (rule 5 sees what the
/// history forgot): after eleven chained writes the history remembers eight, and its
/// newest entry's span still reaches back to the create.
#[test]
fn chained_records_leave_spans_reaching_back_to_the_first() {
    let mut grp = group(1);
    let root = grp.vol.root;
    let (create, f) = grp.g.create_op(root, "f", CreateHow::Guarded);
    let b1 = vec![grp.g.rec(create)];
    grp.ship(&[0], &b1, &[], 1, &[]);
    let mut before = b1[0].id;
    let mut first_write = None;
    for i in 0..11u64 {
        let b = vec![grp.g.rec(Gen::write_op(f, i, b"x"))];
        first_write.get_or_insert(b[0].id);
        let follows = [on(Some(before.seq))];
        let shipment = Shipment::new(&b, b"x", 1, &[]).following(&follows);
        assert_eq!(
            grp.stores[0].ship(&shipment).unwrap().outcomes,
            vec![Ok(None)]
        );
        before = b[0].id;
    }
    let h = grp.stores[0].history(f).unwrap();
    let first_write = first_write.unwrap();
    assert!(!h.contains(first_write), "forgotten by the history");
    assert!(
        h.includes(first_write),
        "but inside the newest update's span"
    );
    assert_eq!(h.span_start(before), Some(b1[0].id.seq));
    // A record naming no predecessor starts a span of its own.
    let b = vec![grp.g.rec(Gen::write_op(f, 0, b"y"))];
    grp.ship(&[0], &b, b"y", 1, &[]);
    let h = grp.stores[0].history(f).unwrap();
    assert_eq!(h.span_start(b[0].id), Some(b[0].id.seq));
}
