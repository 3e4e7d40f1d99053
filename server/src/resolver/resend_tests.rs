//! A record a replica holds from resolution, resent by its client (rule 3 by the object's
//! state as well as by sequence). A client killed before its log was trimmed resends its
//! records from the log when it restarts; a replica that had one of them only from an
//! install has not moved its applied sequence past it, so the sequence alone would let it
//! apply the record a second time, over whatever came after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::tests::{payload, trio};
use crate::store::Shipment;
use crate::store::testutil::Gen;
use codetta_wire::Incarnation;
use codetta_wire::update::Cop2;

/// The interleaving simulation's seed 303: client A's write reached replica 0 only and
/// resolution installed it on 1 and 2; client B then wrote the file on every replica; A's
/// restarted daemon resent its write. Applied again on replica 1, A's old bytes went over
/// B's acknowledged write and the bumped counter made that state win the next resolution:
/// B's write lost. The resent record is answered as applied and changes nothing.
#[test]
fn a_record_had_from_resolution_and_resent_is_not_applied_again() {
    let mut t = trio();
    let (f, _) = t.file_on_all("f", 64);
    let a_bytes = payload(2, 64);
    let a_write = t.g.rec(Gen::write_op(f, 0, &a_bytes));
    let a_batch = [a_write];
    let ship_a = |t: &super::tests::Trio, i: usize| {
        t.stores[i]
            .ship(&Shipment::new(&a_batch, &a_bytes, 1, &[]))
            .unwrap()
            .outcomes
    };
    assert!(ship_a(&t, 0).iter().all(Result::is_ok));
    t.resolve(&[0, 1, 2], &[f]);
    for i in 0..3 {
        assert!(t.read(i, f) == a_bytes, "replica {i} has A's write");
    }
    let b_bytes = payload(3, 64);
    let mut b = Gen::new(t.vol.id, Incarnation(9));
    t.apply_as(
        &mut b,
        &[0, 1, 2],
        vec![Gen::write_op(f, 0, &b_bytes)],
        &b_bytes,
    );
    let b_applied = [Cop2 {
        incarnation: b.incarnation,
        volume: t.vol.id,
        first: 1,
        last: 1,
        applied_by: t.vol.vsg.iter().map(|m| m.replica).collect(),
    }];
    for store in &t.stores {
        store.ship(&Shipment::new(&[], &[], 1, &b_applied)).unwrap();
    }
    t.assert_equal(&[0, 1, 2], f);
    // A's daemon restarts and resends its log: replica 0 applied the record (its sequence
    // says so), replicas 1 and 2 hold it from the install.
    for i in 0..3 {
        assert_eq!(
            ship_a(&t, i),
            vec![Ok(None)],
            "replica {i} answers as applied"
        );
        assert!(t.read(i, f) == b_bytes, "replica {i} still holds B's write");
    }
    t.assert_equal(&[0, 1, 2], f);
    t.resolve(&[0, 1, 2], &[f]);
    for i in 0..3 {
        assert!(
            t.read(i, f) == b_bytes,
            "after resolution replica {i} holds B's write"
        );
    }
    // A's next record follows on from the resent one everywhere.
    let next = payload(4, 16);
    t.apply(&[0, 1, 2], vec![Gen::write_op(f, 0, &next)], &next);
}
