//! Test fixture: a store in a temporary directory and a generator of update records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{Store, StoreOptions};
use codetta_wire::message::{ObjectState, VolumeInfo};
use codetta_wire::update::{CreateHow, NewObject, Op, RecordOutcome, UpdateRecord};
use codetta_wire::{Fid, FsError, Incarnation, Name, SetAttrs, Time, UpdateId, VolumeId};
use tempfile::TempDir;

/// The time every fixture volume is created at.
pub(crate) const T0: Time = Time {
    secs: 1_000_000,
    nanos: 0,
};

pub(crate) fn name(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

/// Makes records the way a client would: dense sequence numbers, fids from a counter,
/// times from the sequence number (so they are deterministic).
#[derive(Debug, Clone)]
pub(crate) struct Gen {
    pub volume: VolumeId,
    pub incarnation: Incarnation,
    pub seq: u64,
    pub next_vnode: u64,
    pub unique: u32,
}

impl Gen {
    pub(crate) fn new(volume: VolumeId, incarnation: Incarnation) -> Gen {
        Gen {
            volume,
            incarnation,
            seq: 0,
            next_vnode: 0,
            unique: 77,
        }
    }

    pub(crate) fn fid(&mut self) -> Fid {
        self.next_vnode += 1;
        Fid {
            volume: self.volume,
            vnode: (u64::from(self.incarnation.0) << 32) | self.next_vnode,
            unique: self.unique,
        }
    }

    pub(crate) fn rec(&mut self, op: Op) -> UpdateRecord {
        self.seq += 1;
        UpdateRecord {
            id: UpdateId {
                incarnation: self.incarnation,
                seq: self.seq,
            },
            time: self.time_of_last(),
            op,
        }
    }

    /// The time of the last record made (every record gets its own second).
    pub(crate) fn time_of_last(&self) -> Time {
        Time {
            secs: T0.secs + i64::try_from(self.seq).unwrap(),
            nanos: 0,
        }
    }

    pub(crate) fn create_op(&mut self, dir: Fid, n: &str, how: CreateHow) -> (Op, Fid) {
        let fid = self.fid();
        let op = Op::Create {
            dir,
            name: name(n),
            fid,
            new: NewObject {
                mode: 0o644,
                uid: 1000,
                gid: 1000,
            },
            how,
        };
        (op, fid)
    }

    pub(crate) fn mkdir_op(&mut self, dir: Fid, n: &str) -> (Op, Fid) {
        let fid = self.fid();
        let op = Op::Mkdir {
            dir,
            name: name(n),
            fid,
            new: NewObject {
                mode: 0o755,
                uid: 1000,
                gid: 1000,
            },
        };
        (op, fid)
    }

    pub(crate) fn write_op(fid: Fid, offset: u64, data: &[u8]) -> Op {
        Op::Write {
            fid,
            offset,
            len: u32::try_from(data.len()).unwrap(),
            hashes: codetta_wire::update::piece_hashes(offset, data),
        }
    }
}

/// The fid `n` names in `dir` of `store`, or one no object has.
pub(crate) fn fid_in(store: &Store, dir: Fid, n: &str) -> Fid {
    store.lookup(dir, &name(n)).map(|s| s.fid).unwrap_or(Fid {
        volume: dir.volume,
        vnode: u64::MAX,
        unique: 1,
    })
}

/// A RENAME as a client would send it after looking both names up in `store`.
pub(crate) fn rename_in(store: &Store, from: Fid, a: &str, to: Fid, b: &str) -> Op {
    Op::Rename {
        from_dir: from,
        from_name: name(a),
        to_dir: to,
        to_name: name(b),
        fid: fid_in(store, from, a),
        replaces: store.lookup(to, &name(b)).ok().map(|s| s.fid),
    }
}

/// A store with one volume and a record generator for it.
pub(crate) struct Fx {
    pub dir: TempDir,
    pub store: Store,
    pub vol: VolumeInfo,
    pub g: Gen,
}

impl Fx {
    pub(crate) fn new() -> Fx {
        Fx::with_options(StoreOptions::default())
    }

    pub(crate) fn with_options(options: StoreOptions) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb"), options).unwrap();
        let vol = store.create_volume("vol", T0).unwrap();
        let (inc, _) = store.new_incarnation().unwrap();
        let g = Gen::new(vol.id, inc);
        Fx { dir, store, vol, g }
    }

    pub(crate) fn root(&self) -> Fid {
        self.vol.root
    }

    /// Closes and reopens the database (as after a restart).
    pub(crate) fn reopened(self, options: StoreOptions) -> Fx {
        let Fx { dir, store, vol, g } = self;
        let path = store.path().to_path_buf();
        drop(store);
        let store = Store::open(&path, options).unwrap();
        Fx { dir, store, vol, g }
    }

    /// Applies records (with their write data) as one batch.
    pub(crate) fn batch(&mut self, items: Vec<(Op, Vec<u8>)>) -> Vec<RecordOutcome> {
        let mut records = Vec::new();
        let mut data = Vec::new();
        for (op, bytes) in items {
            records.push(self.g.rec(op));
            data.extend_from_slice(&bytes);
        }
        self.store.apply_batch(&records, &data)
    }

    /// Applies one record.
    pub(crate) fn one(&mut self, op: Op) -> RecordOutcome {
        self.one_with(op, Vec::new())
    }

    pub(crate) fn one_with(&mut self, op: Op, data: Vec<u8>) -> RecordOutcome {
        self.batch(vec![(op, data)]).pop().unwrap()
    }

    /// The fid `n` names in `dir` now, or a fid no object has (for tests of missing names).
    pub(crate) fn fid_of(&self, dir: Fid, n: &str) -> Fid {
        fid_in(&self.store, dir, n)
    }

    /// REMOVE of whatever `n` names in `dir` now.
    pub(crate) fn rm_op(&self, dir: Fid, n: &str) -> Op {
        Op::Remove {
            dir,
            name: name(n),
            fid: self.fid_of(dir, n),
        }
    }

    /// RMDIR of whatever `n` names in `dir` now.
    pub(crate) fn rmdir_op(&self, dir: Fid, n: &str) -> Op {
        Op::Rmdir {
            dir,
            name: name(n),
            fid: self.fid_of(dir, n),
        }
    }

    /// LINK of `fid` as `n` in `dir`.
    pub(crate) fn link(&mut self, fid: Fid, dir: Fid, n: &str) -> RecordOutcome {
        self.one(Op::Link {
            dir,
            name: name(n),
            fid,
        })
    }

    /// RENAME of whatever `a` names in `from` now, over whatever `b` names in `to`.
    pub(crate) fn rename_op(&self, from: Fid, a: &str, to: Fid, b: &str) -> Op {
        rename_in(&self.store, from, a, to, b)
    }

    pub(crate) fn create(&mut self, dir: Fid, n: &str) -> Fid {
        let (op, fid) = self.g.create_op(dir, n, CreateHow::Guarded);
        assert_eq!(self.one(op), Ok(Some(fid)), "create {n}");
        fid
    }

    pub(crate) fn mkdir(&mut self, dir: Fid, n: &str) -> Fid {
        let (op, fid) = self.g.mkdir_op(dir, n);
        assert_eq!(self.one(op), Ok(Some(fid)), "mkdir {n}");
        fid
    }

    pub(crate) fn write(&mut self, fid: Fid, offset: u64, data: &[u8]) {
        let op = Gen::write_op(fid, offset, data);
        assert_eq!(self.one_with(op, data.to_vec()), Ok(None));
    }

    pub(crate) fn truncate(&mut self, fid: Fid, size: u64) {
        let set = SetAttrs {
            size: Some(size),
            ..SetAttrs::default()
        };
        assert_eq!(self.one(Op::SetAttr { fid, set }), Ok(None));
    }

    pub(crate) fn read_all(&self, fid: Fid) -> Vec<u8> {
        let size = self.store.getattr(fid).unwrap().attrs.size;
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let (_, bytes, eof) = self.store.read(fid, out.len() as u64, 1 << 20).unwrap();
            out.extend_from_slice(&bytes);
            if eof {
                break;
            }
        }
        assert_eq!(out.len() as u64, size);
        out
    }

    pub(crate) fn state(&self, fid: Fid) -> ObjectState {
        self.store.getattr(fid).unwrap()
    }

    pub(crate) fn lookup(&self, dir: Fid, n: &str) -> Result<ObjectState, FsError> {
        self.store.lookup(dir, &name(n))
    }
}

/// Checks every cross-table invariant of the store by scanning the raw tables: reference
/// counts, stored totals, digests, entry counts, and that no block lies past its file's end.
pub(crate) fn check_consistency(store: &Store) {
    use super::codec::{BlockRef, ChunkEntry, Dirent, Vnode, decode};
    use super::tables;
    use super::tags::{block_member, entry_member};
    use codetta_wire::tag::SetDigest;
    use codetta_wire::{BLOCK_SIZE, FileType};
    use redb::{ReadableDatabase, ReadableTableMetadata};
    use std::collections::BTreeMap;

    let txn = store.db.begin_read().unwrap();
    let vnodes = txn.open_table(tables::VNODES).unwrap();
    let dirents = txn.open_table(tables::DIRENTS).unwrap();
    let blocks = txn.open_table(tables::BLOCKS).unwrap();
    let index = txn.open_table(tables::CHUNK_INDEX).unwrap();
    let heads = txn.open_table(tables::CHUNK_HEADS).unwrap();
    let tails = txn.open_table(tables::CHUNK_TAILS).unwrap();
    let meta = txn.open_table(tables::META).unwrap();

    let mut objects: BTreeMap<(u32, u64), Vnode> = BTreeMap::new();
    for item in vnodes.range::<(u32, u64)>(..).unwrap() {
        let (k, v) = item.unwrap();
        objects.insert(k.value(), decode("vnodes", v.value()).unwrap());
    }
    let mut digests: BTreeMap<(u32, u64), SetDigest> = BTreeMap::new();
    let mut names: BTreeMap<(u32, u64), Vec<super::codec::Place>> = BTreeMap::new();
    let mut counts: BTreeMap<(u32, u64), (u64, u64)> = BTreeMap::new();
    for item in dirents.range::<(u32, u64, u64, &[u8])>(..).unwrap() {
        let (k, v) = item.unwrap();
        let (vol, dir, cookie, name) = k.value();
        let name = Name::new(name).unwrap();
        assert_eq!(cookie, name.cookie());
        let e: Dirent = decode("dirents", v.value()).unwrap();
        let child = objects
            .get(&(vol, e.fid.vnode))
            .expect("entry names an object");
        assert_eq!((child.unique, child.ftype), (e.fid.unique, e.ftype));
        if e.ftype == FileType::Directory {
            assert_eq!(
                child.parent, dir,
                "a directory's parent is the one listing it"
            );
        }
        digests
            .entry((vol, dir))
            .or_default()
            .add(&entry_member(&name, e.fid));
        names
            .entry((vol, e.fid.vnode))
            .or_default()
            .push((dir, name.as_bytes().to_vec()));
        let c = counts.entry((vol, dir)).or_default();
        c.0 += 1;
        c.1 += u64::from(e.ftype == FileType::Directory);
    }
    let mut uses: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut lens: BTreeMap<[u8; 32], u32> = BTreeMap::new();
    for item in blocks.range::<(u32, u64, u64)>(..).unwrap() {
        let (k, v) = item.unwrap();
        let (vol, vnode, index) = k.value();
        let r: BlockRef = decode("blocks", v.value()).unwrap();
        let file = objects.get(&(vol, vnode)).expect("block of an object");
        assert_eq!(file.ftype, FileType::Regular);
        assert!(
            index * BLOCK_SIZE + u64::from(r.len) <= file.size,
            "no block past EOF"
        );
        digests
            .entry((vol, vnode))
            .or_default()
            .add(&block_member(index, &r.hash));
        *uses.entry(r.hash).or_default() += 1;
        lens.insert(r.hash, r.len);
    }
    for (key, v) in &objects {
        let digest = digests.get(key).copied().unwrap_or_default();
        assert_eq!(v.digest, digest, "digest of {key:?}");
        let places = v.places();
        assert!(places.windows(2).all(|w| w[0] < w[1]), "names in order");
        if key.1 != Fid::ROOT_VNODE {
            let mut listed = names.get(key).cloned().unwrap_or_default();
            listed.sort();
            assert_eq!(places, listed, "the names of {key:?} are its entries");
        }
        if v.ftype == FileType::Directory {
            assert!(v.links.is_empty(), "a directory has one name");
        }
        if v.ftype == FileType::Directory {
            let (n, d) = counts.get(key).copied().unwrap_or_default();
            assert_eq!((v.size, v.subdirs), (n, d), "counts of {key:?}");
        }
    }
    let mut stored = 0u64;
    let mut ids = std::collections::BTreeSet::new();
    for item in index.range::<&[u8; 32]>(..).unwrap() {
        let (k, v) = item.unwrap();
        let hash = *k.value();
        let e: ChunkEntry = decode("chunk_index", v.value()).unwrap();
        assert_eq!(Some(&e.refs), uses.get(&hash), "refcount");
        assert_eq!(e.len, lens[&hash], "length");
        assert!(ids.insert(e.id), "one chunk per id");
        assert!(heads.get(e.id).unwrap().is_some());
        stored += u64::from(e.len);
    }
    assert_eq!(index.len().unwrap(), heads.len().unwrap());
    for item in tails.range::<u64>(..).unwrap() {
        assert!(
            ids.contains(&item.unwrap().0.value()),
            "no tail without its chunk"
        );
    }
    assert_eq!(uses.len() as u64, index.len().unwrap());
    let total = |key: &str| -> u64 {
        meta.get(key)
            .unwrap()
            .map_or(0, |g| decode("meta", g.value()).unwrap())
    };
    assert_eq!(total(tables::meta::CHUNK_BYTES), stored);
    assert_eq!(total(tables::meta::VNODES), objects.len() as u64);
}

impl Store {
    /// A single-replica volume as `create_volume` used to make: replica 1 on server "s".
    pub(crate) fn create_volume(&self, name: &str, now: Time) -> Result<VolumeInfo, FsError> {
        self.create_volume_as(name, codetta_wire::ReplicaId(1), now)
    }

    /// A volume whose group is `replica` alone, with a fresh id.
    pub(crate) fn create_volume_as(
        &self,
        name: &str,
        replica: codetta_wire::ReplicaId,
        now: Time,
    ) -> Result<VolumeInfo, FsError> {
        let id = self.fresh_volume_id()?;
        let info = VolumeInfo {
            id,
            name: name.to_string(),
            root: Fid::root(id),
            vsg: vec![codetta_wire::message::ReplicaMember {
                replica,
                server: "s".into(),
            }],
            epoch: 0,
            addrs: Vec::new(),
        };
        self.create_replica(&info, replica, now)
    }
}
