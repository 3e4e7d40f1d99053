//! The operations clients make: one random create, write, rename, remove, link or setattr
//! of a running client at a time, logged before it is shipped.

use super::{NAMES, World, name, pick, token};
use codetta_wire::update::{CreateHow, NewObject, Op};
use codetta_wire::{Fid, FileType, SetAttrs};
use rand::Rng;

impl World {
    /// Logs one random operation of a random running client; false if none was made.
    pub(crate) fn client_op(&mut self) -> bool {
        let c = self.rng.random_range(0..self.clients.len());
        if self.clients[c].shipping.is_none() {
            return false;
        }
        let Some(store) = self.read_store(c) else {
            return false;
        };
        let dirs = self.clients[c].dirs.clone();
        let dir = dirs[self.rng.random_range(0..dirs.len())];
        let entries = match store.readdir(dir, 0, 100, true) {
            Ok((_, entries, _)) => entries,
            Err(_) => {
                self.clients[c]
                    .dirs
                    .retain(|d| *d != dir || *d == Fid::root(self.vol.id));
                return false;
            }
        };
        let new = NewObject {
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let n = name(self.rng.random_range(0..NAMES.len()));
        let kind = self.rng.random_range(0..100);
        let (op, data) = match kind {
            0..=2 => {
                // A FIFO or a device node: a name and attributes, replicated like any object.
                let fid = self.alloc_fid(c);
                let kind = if self.rng.random_bool(0.5) {
                    FileType::Fifo
                } else {
                    FileType::CharDevice {
                        major: 1,
                        minor: self.rng.random_range(0..8),
                    }
                };
                (
                    Op::Mknod {
                        dir,
                        name: n,
                        fid,
                        new,
                        kind,
                    },
                    Vec::new(),
                )
            }
            3..=24 => {
                let fid = self.alloc_fid(c);
                self.clients[c].files.push(fid);
                let how = if self.rng.random_bool(0.7) {
                    CreateHow::Guarded
                } else {
                    CreateHow::Unchecked { truncate: false }
                };
                (
                    Op::Create {
                        dir,
                        name: n,
                        fid,
                        new,
                        how,
                    },
                    Vec::new(),
                )
            }
            25..=34 => {
                let fid = self.alloc_fid(c);
                self.clients[c].dirs.push(fid);
                (
                    Op::Mkdir {
                        dir,
                        name: n,
                        fid,
                        new,
                    },
                    Vec::new(),
                )
            }
            35..=59 => {
                let files: Vec<Fid> = entries
                    .iter()
                    .filter(|e| {
                        e.state
                            .as_ref()
                            .is_some_and(|s| s.attrs.ftype == FileType::Regular)
                    })
                    .map(|e| e.fid)
                    .chain(self.clients[c].files.iter().copied())
                    .collect();
                if files.is_empty() {
                    return false;
                }
                let fid = files[self.rng.random_range(0..files.len())];
                let seq = self.clients[c].next_seq;
                let mut data = token(c, seq).to_vec();
                if self.rng.random_bool(0.2) {
                    let extra = self.rng.random_range(1..150_000);
                    let mut filler = vec![0u8; extra];
                    self.rng.fill(&mut filler[..]);
                    data.extend_from_slice(&filler);
                }
                let op = Op::Write {
                    fid,
                    offset: 0,
                    len: u32::try_from(data.len()).unwrap_or(0),
                    hashes: codetta_wire::update::piece_hashes(0, &data),
                };
                (op, data)
            }
            60..=74 => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let is_dir = e
                    .state
                    .as_ref()
                    .is_some_and(|s| s.attrs.ftype == FileType::Directory);
                let op = if is_dir {
                    Op::Rmdir {
                        dir,
                        name: e.name.clone(),
                        fid: e.fid,
                    }
                } else {
                    Op::Remove {
                        dir,
                        name: e.name.clone(),
                        fid: e.fid,
                    }
                };
                (op, Vec::new())
            }
            75..=89 => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let to_dir = dirs[self.rng.random_range(0..dirs.len())];
                let replaces = store.lookup(to_dir, &n).ok().map(|s| s.fid);
                (
                    Op::Rename {
                        from_dir: dir,
                        from_name: e.name.clone(),
                        to_dir,
                        to_name: n,
                        fid: e.fid,
                        replaces,
                    },
                    Vec::new(),
                )
            }
            90..=94 => {
                // A further name for a non-directory, in any directory this client knows.
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                if e.state
                    .as_ref()
                    .is_none_or(|s| s.attrs.ftype == FileType::Directory)
                {
                    return false;
                }
                let to_dir = dirs[self.rng.random_range(0..dirs.len())];
                self.oracle.linked.insert(e.fid);
                (
                    Op::Link {
                        dir: to_dir,
                        name: n,
                        fid: e.fid,
                    },
                    Vec::new(),
                )
            }
            _ => {
                let Some(e) = pick(&mut self.rng, &entries) else {
                    return false;
                };
                let set = SetAttrs {
                    mode: Some(self.rng.random_range(0o600..=0o777)),
                    ..SetAttrs::default()
                };
                (Op::SetAttr { fid: e.fid, set }, Vec::new())
            }
        };
        self.record(c, op, data);
        true
    }
}
