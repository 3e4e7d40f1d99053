//! Tests of the store as a whole: volumes, incarnations, formats, space, compaction, error
//! mapping, block splitting.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::testutil::{Fx, T0};
use super::*;

#[test]
fn volumes_have_unique_names_and_ids() {
    let fx = Fx::new();
    assert_eq!(fx.store.create_volume("vol", T0), Err(FsError::Exists));
    for bad in ["", "a\nb", &"x".repeat(256)] {
        assert_eq!(fx.store.create_volume(bad, T0), Err(FsError::Invalid));
    }
    let second = fx
        .store
        .create_volume_as("second", ReplicaId(2), T0)
        .unwrap();
    assert_ne!(second.id, fx.vol.id);
    assert_eq!(fx.store.replica_of(second.id).unwrap(), ReplicaId(2));
    // A coordinator's retry is a no-op; another volume under the id or name is refused.
    assert_eq!(
        fx.store.create_replica(&second, ReplicaId(2), T0),
        Ok(second.clone())
    );
    let mut clash = second.clone();
    clash.name = "third".into();
    assert_eq!(
        fx.store.create_replica(&clash, ReplicaId(2), T0),
        Err(FsError::Exists)
    );
    let mut not_member = second.clone();
    not_member.id = VolumeId(second.id.0 ^ 1);
    not_member.root = Fid::root(not_member.id);
    assert_eq!(
        fx.store.create_replica(&not_member, ReplicaId(9), T0),
        Err(FsError::Invalid)
    );
    assert_eq!(fx.store.volume_by_name("nope"), Err(FsError::UnknownVolume));
    assert_eq!(
        fx.store.replica_of(VolumeId(77)),
        Err(FsError::UnknownVolume)
    );
    let names: Vec<_> = fx
        .store
        .list_volumes()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    let mut expected = [(fx.vol.id, "vol"), (second.id, "second")];
    expected.sort();
    assert_eq!(
        names,
        expected
            .iter()
            .map(|(_, n)| n.to_string())
            .collect::<Vec<_>>()
    );
    let root = fx.state(second.root);
    assert_eq!(root.attrs.mode, 0o755);
    assert_eq!(
        (root.attrs.mtime, root.attrs.ctime, root.attrs.atime),
        (T0, T0, T0)
    );
    assert_eq!(
        fx.store.getattr(second.root).unwrap().tag,
        fx.state(fx.vol.root).tag
    );
}

#[test]
fn incarnations_are_never_handed_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let (a, ua) = store.new_incarnation().unwrap();
    let (b, _) = store.new_incarnation().unwrap();
    assert_ne!(a, b);
    assert_ne!((a.0, ua), (0, 0));
    assert_eq!(store.claim_incarnation(a), Err(FsError::Exists));
    assert_eq!(
        store.claim_incarnation(Incarnation(0)),
        Err(FsError::Invalid)
    );
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.claim_incarnation(b), Err(FsError::Exists), "durable");
    let other = Incarnation(a.0.wrapping_add(1).max(1));
    if other != b {
        assert_eq!(store.claim_incarnation(other), Ok(()));
    }
}

#[test]
fn an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        put_meta_u64(
            &mut txn.open_table(tables::META).unwrap(),
            tables::meta::FORMAT,
            9,
        )
        .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open(&path, StoreOptions::default()),
        Err(StoreError::Format {
            found: 9,
            supported: STORE_FORMAT
        })
    ));
}

#[test]
fn space_without_a_capacity_comes_from_the_file_system() {
    let mut fx = Fx::new();
    let f = fx.create(fx.root(), "f");
    fx.write(f, 0, &[5u8; 1000]);
    let s = fx.store.space().unwrap();
    assert_eq!((s.used_bytes, s.files), (1000, 2));
    assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes);
}

#[test]
fn compaction_gives_space_back() {
    let mut fx = Fx::new();
    let root = fx.root();
    let f = fx.create(root, "f");
    let data: Vec<u8> = (0..(8u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for (i, piece) in data.chunks(1 << 20).enumerate() {
        fx.write(f, (i as u64) << 20, piece);
    }
    let full = fx.store.storage_stats().unwrap();
    assert!(full.allocated_bytes >= 8 << 20);
    let op = fx.rm_op(root, "f");
    assert_eq!(fx.one(op), Ok(None));
    let freed = fx.store.storage_stats().unwrap();
    assert_eq!((freed.chunks, freed.chunk_bytes), (0, 0));
    assert!(
        freed.allocated_bytes < 1 << 20,
        "pages are freed in the same commit"
    );
    while fx.store.compact().unwrap() {}
    let compacted = fx.store.storage_stats().unwrap();
    assert!(
        compacted.file_bytes < full.file_bytes / 2,
        "{compacted:?} vs {full:?}"
    );
}

#[test]
fn storage_errors_map_to_wire_errors() {
    let enospc = StoreError::Db(redb::Error::Io(std::io::Error::from_raw_os_error(28)));
    assert_eq!(FsError::from(enospc), FsError::NoSpace);
    let full = StoreError::Db(redb::Error::Io(std::io::ErrorKind::StorageFull.into()));
    assert_eq!(FsError::from(full), FsError::NoSpace);
    let eio = StoreError::Db(redb::Error::Io(std::io::Error::from_raw_os_error(5)));
    assert!(matches!(FsError::from(eio), FsError::Storage(_)));
    let bad = StoreError::Decode {
        table: "vnodes",
        reason: "x".into(),
    };
    assert!(matches!(FsError::from(bad), FsError::Storage(_)));
    assert_eq!(
        FsError::from(StoreError::Fs(FsError::Stale)),
        FsError::Stale
    );
}

/// A full block is stored as a head that fits a 64 KiB redb page plus a small tail;
/// damage to either is caught.
#[test]
fn full_blocks_split_into_head_and_tail() {
    let mut fx = Fx::new();
    let f = fx.create(fx.root(), "f");
    let data: Vec<u8> = (0..65_536u32).map(|i| (i % 253) as u8).collect();
    fx.write(f, 0, &data);
    let hash = *blake3::hash(&data).as_bytes();
    let txn = fx.store.db.begin_write().unwrap();
    {
        let mut chunks = content::WriteChunks::open(&txn, 0).unwrap();
        let id = chunks.entry(&hash).unwrap().unwrap().id;
        let head = chunks.heads.get(id).unwrap().unwrap();
        assert_eq!(head.value().len(), tables::CHUNK_HEAD_MAX);
        drop(head);
        let tail = chunks.tails.get(id).unwrap().unwrap().value().to_vec();
        assert_eq!(tail.len(), 1 + 65_536 - (tables::CHUNK_HEAD_MAX - 1));
        let mut bad = tail.clone();
        bad[5] ^= 1;
        chunks.tails.insert(id, bad.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(fx.store.read(f, 0, 1).map(|_| ()), Err(FsError::Corrupt));
}
