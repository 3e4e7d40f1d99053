//! The upgrades of `super` on stores written by each earlier format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::super::testutil::{Fx, check_consistency};
use super::super::{StoreOptions, meta_u64, tables};
use super::*;
use codetta_wire::update::Op;
use redb::ReadableDatabase;

/// Writes every object record as format 4 did (without `links`; none may have any).
fn downgrade_vnodes(db: &Database, format: u64) {
    let txn = db.begin_write().unwrap();
    {
        let mut vnodes = txn.open_table(tables::VNODES).unwrap();
        let all: Vec<((u32, u64), codec::Vnode)> = vnodes
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.value(), codec::decode("vnodes", v.value()).unwrap())
            })
            .collect();
        for (key, v) in all {
            assert!(v.links.is_empty());
            let old = v4::Vnode {
                unique: v.unique,
                ftype: v.ftype,
                mode: v.mode,
                uid: v.uid,
                gid: v.gid,
                size: v.size,
                atime: v.atime,
                mtime: v.mtime,
                ctime: v.ctime,
                version: v.version,
                history: v5::History::from(&v.history),
                digest: v.digest,
                parent: v.parent,
                name: v.name,
                subdirs: v.subdirs,
                target: v.target,
                verifier: v.verifier,
            };
            vnodes
                .insert(key, codec::encode(&old).unwrap().as_slice())
                .unwrap();
        }
        downgrade_tombstones(&txn);
        put_meta_u64(
            &mut txn.open_table(tables::META).unwrap(),
            tables::meta::FORMAT,
            format,
        )
        .unwrap();
    }
    txn.commit().unwrap();
}

/// Writes every object record and tombstone as format 5 did (histories without spans),
/// then the tombstones too, as every format before 6 kept them.
fn downgrade_to_5(db: &Database) {
    let txn = db.begin_write().unwrap();
    {
        let mut vnodes = txn.open_table(tables::VNODES).unwrap();
        let all: Vec<((u32, u64), codec::Vnode)> = vnodes
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.value(), codec::decode("vnodes", v.value()).unwrap())
            })
            .collect();
        for (key, v) in all {
            let old = v5::Vnode {
                unique: v.unique,
                ftype: v.ftype,
                mode: v.mode,
                uid: v.uid,
                gid: v.gid,
                size: v.size,
                atime: v.atime,
                mtime: v.mtime,
                ctime: v.ctime,
                version: v.version,
                history: v5::History::from(&v.history),
                digest: v.digest,
                parent: v.parent,
                name: v.name,
                subdirs: v.subdirs,
                target: v.target,
                verifier: v.verifier,
                links: v.links,
            };
            vnodes
                .insert(key, codec::encode(&old).unwrap().as_slice())
                .unwrap();
        }
        downgrade_tombstones(&txn);
        put_meta_u64(
            &mut txn.open_table(tables::META).unwrap(),
            tables::meta::FORMAT,
            5,
        )
        .unwrap();
    }
    txn.commit().unwrap();
}

fn downgrade_tombstones(txn: &redb::WriteTransaction) {
    let mut tombs = txn.open_table(tables::TOMBSTONES).unwrap();
    let all: Vec<((u32, u64), codec::Tombstone)> = tombs
        .iter()
        .unwrap()
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.value(), codec::decode("tombstones", v.value()).unwrap())
        })
        .collect();
    for (key, t) in all {
        let old = v5::Tombstone {
            unique: t.unique,
            ftype: t.ftype,
            version: t.version,
            history: v5::History::from(&t.history),
            parent: t.parent,
            name: t.name,
        };
        tombs
            .insert(key, codec::encode(&old).unwrap().as_slice())
            .unwrap();
    }
}

/// A format-5 store with more objects and tombstones than one batch rewrites opens as
/// format 6, every object and tombstone as it was; a crash part-way (simulated by a
/// cursor left in META) goes on after it.
#[test]
fn a_format_5_store_gets_spans_in_its_histories() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let mut fids = vec![root, d];
    for i in 0..VNODES_PER_BATCH + 300 {
        let f = fx.create(d, &format!("f{i}"));
        if i % 1000 == 0 {
            fx.write(f, 0, format!("data {i}").as_bytes());
        }
        fids.push(f);
    }
    let names: Vec<String> = (0..VNODES_PER_BATCH + 10)
        .map(|i| format!("g{i}"))
        .collect();
    for chunk in names.chunks(512) {
        let mut creates = Vec::new();
        let mut removes = Vec::new();
        for n in chunk {
            let (op, fid) =
                fx.g.create_op(root, n, codetta_wire::update::CreateHow::Guarded);
            creates.push((op, Vec::new()));
            removes.push((
                Op::Remove {
                    dir: root,
                    name: codetta_wire::Name::new(n.as_bytes()).unwrap(),
                    fid,
                },
                Vec::new(),
            ));
        }
        assert!(fx.batch(creates).iter().all(|o| o.is_ok()));
        assert!(fx.batch(removes).iter().all(|o| o.is_ok()));
    }
    let tombs = |fx: &Fx| -> Vec<codec::Tombstone> {
        let txn = fx.store.db.begin_read().unwrap();
        let t = txn.open_table(tables::TOMBSTONES).unwrap();
        t.iter()
            .unwrap()
            .map(|i| codec::decode("tombstones", i.unwrap().1.value()).unwrap())
            .collect()
    };
    let before: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
    let buried = tombs(&fx);
    assert!(buried.len() > VNODES_PER_BATCH);
    downgrade_to_5(&fx.store.db);
    // A crash after the first 100 object records were rewritten: they are of format 6
    // and the cursor names the last of them. One of them is left in format 5 on purpose:
    // the resumed rewrite must not touch it (it goes on after the cursor).
    let planted: ((u32, u64), Vec<u8>);
    {
        let txn = fx.store.db.begin_write().unwrap();
        {
            let mut vnodes = txn.open_table(tables::VNODES).unwrap();
            let first: Vec<((u32, u64), Vec<u8>)> = vnodes
                .iter()
                .unwrap()
                .take(100)
                .map(|i| {
                    let (k, v) = i.unwrap();
                    (k.value(), v.value().to_vec())
                })
                .collect();
            let last = first.last().unwrap().0;
            planted = first[50].clone();
            for (key, bytes) in first.into_iter().filter(|(k, _)| *k != planted.0) {
                let old: v5::Vnode = codec::decode("vnodes", &bytes).unwrap();
                let new = codec::encode(&codec::Vnode::from(old)).unwrap();
                vnodes.insert(key, new.as_slice()).unwrap();
            }
            let cursor: (u8, Option<(u32, u64)>) = (0, Some(last));
            txn.open_table(tables::META)
                .unwrap()
                .insert(SPANS_CURSOR, codec::encode(&cursor).unwrap().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let mut fx = fx.reopened(StoreOptions::default());
    assert_eq!(format_of(&fx), Some(6));
    {
        let txn = fx.store.db.begin_write().unwrap();
        {
            let mut vnodes = txn.open_table(tables::VNODES).unwrap();
            let now = vnodes.get(planted.0).unwrap().unwrap().value().to_vec();
            assert_eq!(
                now, planted.1,
                "a record before the cursor was rewritten again"
            );
            // Now finish it by hand, as the crashed run had.
            let old: v5::Vnode = codec::decode("vnodes", &now).unwrap();
            let new = codec::encode(&codec::Vnode::from(old)).unwrap();
            vnodes.insert(planted.0, new.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let after: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
    assert_eq!(after, before);
    // What format 5 could not keep is gone: spans and chained marks.
    let unspanned: Vec<codec::Tombstone> = buried
        .into_iter()
        .map(|mut t| {
            t.history = v5::History::from(&t.history).into();
            t
        })
        .collect();
    assert_eq!(tombs(&fx), unspanned);
    check_consistency(&fx.store);
    fx.write(fids[2], 0, b"after");
    check_consistency(&fx.store);
}

fn format_of(fx: &Fx) -> Option<u64> {
    let txn = fx.store.db.begin_read().unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    meta_u64(&meta, tables::meta::FORMAT).unwrap()
}

/// A format-4 store with more objects than one batch rewrites opens as format 5: every
/// object reads as before, with the same version and content tag (an object with one
/// name hashes as it did), and takes a hard link afterwards.
#[test]
fn a_format_4_store_gets_names_in_its_records() {
    let mut fx = Fx::new();
    let root = fx.root();
    let d = fx.mkdir(root, "d");
    let mut fids = vec![root, d];
    for i in 0..VNODES_PER_BATCH + 300 {
        let f = fx.create(d, &format!("f{i}"));
        if i % 1000 == 0 {
            fx.write(f, 0, format!("data {i}").as_bytes());
        }
        fids.push(f);
    }
    let before: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
    downgrade_vnodes(&fx.store.db, 4);
    let mut fx = fx.reopened(StoreOptions::default());
    assert_eq!(format_of(&fx), Some(super::super::STORE_FORMAT));
    let after: Vec<_> = fids.iter().map(|f| fx.state(*f)).collect();
    assert_eq!(after, before);
    check_consistency(&fx.store);
    fx.link(fids[2], root, "again").unwrap();
    assert_eq!(fx.state(fids[2]).attrs.nlink, 2);
    check_consistency(&fx.store);
}

/// Turns a format-3 store back into format 2 (the inverse of the upgrade).
fn downgrade(db: &Database) {
    let txn = db.begin_write().unwrap();
    {
        let mut chunks = WriteChunks::open(&txn, 0).unwrap();
        let mut refs = txn.open_table(v2::CHUNK_REFS).unwrap();
        let mut heads = txn.open_table(v2::CHUNKS).unwrap();
        let mut tails = txn.open_table(v2::CHUNK_TAILS).unwrap();
        for item in chunks.index.iter().unwrap() {
            let (k, v) = item.unwrap();
            let e: codec::ChunkEntry = codec::decode("chunk_index", v.value()).unwrap();
            let hash = k.value();
            refs.insert(hash, codec::encode(&e.refs).unwrap().as_slice())
                .unwrap();
            heads
                .insert(hash, chunks.heads.get(e.id).unwrap().unwrap().value())
                .unwrap();
            if let Some(t) = chunks.tails.get(e.id).unwrap() {
                tails.insert(hash, t.value()).unwrap();
            }
        }
        chunks.index.retain(|_, _| false).unwrap();
        chunks.heads.retain(|_, _| false).unwrap();
        chunks.tails.retain(|_, _| false).unwrap();
        put_meta_u64(
            &mut txn.open_table(tables::META).unwrap(),
            tables::meta::FORMAT,
            2,
        )
        .unwrap();
    }
    txn.commit().unwrap();
}

/// A store of format 2 with more chunks than one batch moves, some shared and some
/// split into a head and a tail, opens as format 3 with every byte and count intact.
#[test]
fn a_format_2_store_is_upgraded_in_place() {
    let mut fx = Fx::new();
    let root = fx.root();
    let mut files = Vec::new();
    for i in 0..(CHUNKS_PER_BATCH + 40) {
        let f = fx.create(root, &format!("f{i}"));
        fx.write(f, 0, format!("small file {i}").as_bytes());
        files.push(f);
    }
    let big: Vec<u8> = (0..3 * 65_536u32).map(|i| (i % 251) as u8).collect();
    for name in ["big1", "big2"] {
        let f = fx.create(root, name);
        fx.write(f, 0, &big);
        files.push(f);
    }
    let before: Vec<Vec<u8>> = files.iter().map(|f| fx.read_all(*f)).collect();
    let stats = fx.store.storage_stats().unwrap();
    downgrade_vnodes(&fx.store.db, 4);
    downgrade(&fx.store.db);

    let fx = fx.reopened(StoreOptions::default());
    let after: Vec<Vec<u8>> = files.iter().map(|f| fx.read_all(*f)).collect();
    assert_eq!(after, before);
    let upgraded = fx.store.storage_stats().unwrap();
    assert_eq!(
        (upgraded.chunks, upgraded.chunk_bytes),
        (stats.chunks, stats.chunk_bytes)
    );
    check_consistency(&fx.store);
    let txn = fx.store.db.begin_read().unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    assert_eq!(
        meta_u64(&meta, tables::meta::FORMAT).unwrap(),
        Some(super::super::STORE_FORMAT)
    );
    assert!(
        txn.open_table(v2::CHUNK_REFS).is_err(),
        "old tables are gone"
    );
    drop((meta, txn));

    // Writing after the upgrade hands out ids past the moved ones.
    let mut fx = fx;
    let f = fx.create(root, "new");
    fx.write(f, 0, b"after the upgrade");
    assert_eq!(fx.read_all(f), b"after the upgrade");
    assert_eq!(fx.read_all(files[0]), before[0]);
    check_consistency(&fx.store);
}

/// The cookie of format 3 and before: 64 bits of the name's hash.
fn old_cookie(name: &[u8]) -> u64 {
    let hash = blake3::hash(name);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(first).max(1)
}

/// Turns every entry's key back into format 3's cookie.
fn downgrade_cookies(db: &Database) {
    let txn = db.begin_write().unwrap();
    {
        let mut dirents = txn.open_table(tables::DIRENTS).unwrap();
        let all: Vec<_> = dirents
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                let (vol, vnode, cookie, name) = k.value();
                (vol, vnode, cookie, name.to_vec(), v.value().to_vec())
            })
            .collect();
        for (vol, vnode, cookie, name, value) in all {
            dirents
                .remove((vol, vnode, cookie, name.as_slice()))
                .unwrap();
            dirents
                .insert(
                    (vol, vnode, old_cookie(&name), name.as_slice()),
                    value.as_slice(),
                )
                .unwrap();
        }
        put_meta_u64(
            &mut txn.open_table(tables::META).unwrap(),
            tables::meta::FORMAT,
            3,
        )
        .unwrap();
    }
    txn.commit().unwrap();
}

/// A format-3 store with directories larger than a batch opens as format 4 with every
/// entry under its new cookie, listed and looked up as before.
#[test]
fn a_format_3_store_gets_cookies_below_2_pow_63() {
    let mut fx = Fx::new();
    let root = fx.root();
    let big = fx.mkdir(root, "big");
    let names: Vec<String> = (0..ENTRIES_PER_BATCH + 500)
        .map(|i| format!("n{i}"))
        .collect();
    for n in &names {
        fx.create(big, n);
    }
    let list = |fx: &Fx| {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let (_, entries, eof) = fx.store.readdir(big, cookie, 1000, false).unwrap();
            for e in entries {
                assert!(e.cookie < 1 << 63 && e.cookie >= 3, "cookie {}", e.cookie);
                cookie = e.cookie;
                out.push(e.name.to_string());
            }
            if eof {
                out.sort();
                return out;
            }
        }
    };
    let before = list(&fx);
    assert_eq!(before.len(), names.len());
    downgrade_vnodes(&fx.store.db, 4);
    downgrade_cookies(&fx.store.db);
    let fx = fx.reopened(StoreOptions::default());
    assert_eq!(list(&fx), before);
    assert!(fx.lookup(big, "n7").is_ok());
    check_consistency(&fx.store);
    assert_eq!(format_of(&fx), Some(super::super::STORE_FORMAT));
}
