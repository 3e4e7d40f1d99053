//! What a worker does next in its own directory: seeded choices among creates, writes
//! (FILE_SYNC, or UNSTABLE pieces and a COMMIT), truncations, mode changes, renames (onto
//! new names or over other files), removes and hard links, over the names the
//! [`DirModel`] says are in use.

use crate::dir_model::{DirModel, Op};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A worker's seeded choice of operations.
pub struct Planner {
    rng: StdRng,
    /// The largest write (one in eight writes is between 64 KiB and this).
    largest: usize,
}

impl Planner {
    /// Choices drawn from `seed`; writes up to `largest` bytes.
    pub fn new(seed: u64, largest: usize) -> Planner {
        Planner {
            rng: StdRng::seed_from_u64(seed),
            largest: largest.max(64 << 10),
        }
    }

    /// The generator, for the worker's other choices.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    fn pick(&mut self, live: &[String]) -> String {
        live[self.rng.random_range(0..live.len())].clone()
    }

    fn data(&mut self) -> Vec<u8> {
        let len = if self.rng.random_range(0..100) < 12 {
            self.rng.random_range(64 << 10..=self.largest)
        } else {
            self.rng.random_range(1..=16 << 10)
        };
        let mut d = vec![0u8; len];
        self.rng.fill_bytes(&mut d);
        d
    }

    fn offset(&mut self, size: u64, len: usize) -> u64 {
        const MAX_FILE: u64 = 3 << 20;
        if size + len as u64 > MAX_FILE {
            return self.rng.random_range(0..=size.saturating_sub(len as u64));
        }
        match self.rng.random_range(0..10) {
            0 => size + self.rng.random_range(0..64 << 10), // a hole before it
            1..=3 => size,                                  // appending
            _ => self.rng.random_range(0..=size),
        }
    }

    /// The next operation, from the seeded generator and the names in use.
    pub fn plan(&mut self, model: &mut DirModel) -> Op {
        let live = model.live();
        let r = self.rng.random_range(0..100);
        if live.len() < 3 || r < 18 {
            return Op::Create {
                name: model.fresh_name("f"),
            };
        }
        let name = self.pick(&live);
        match r {
            18..=59 => {
                let stable = r < 50;
                let count = if stable {
                    1
                } else {
                    self.rng.random_range(2..=4)
                };
                let mut size = model.size(&name);
                let mut pieces = Vec::new();
                for _ in 0..count {
                    let data = self.data();
                    let offset = self.offset(size, data.len());
                    size = size.max(offset + data.len() as u64);
                    pieces.push((offset, data));
                }
                Op::Write {
                    name,
                    pieces,
                    stable,
                }
            }
            60..=64 => {
                let size = model.size(&name);
                Op::Truncate {
                    size: self.rng.random_range(0..=size + (8 << 10)),
                    name,
                }
            }
            65..=69 => Op::Chmod {
                mode: [0o600, 0o640, 0o644, 0o755][self.rng.random_range(0..4)],
                name,
            },
            70..=81 => {
                let over: Vec<String> = live
                    .iter()
                    .filter(|n| !model.same_file(n, &name))
                    .cloned()
                    .collect();
                let to = if !over.is_empty() && self.rng.random_range(0..3) == 0 {
                    self.pick(&over)
                } else {
                    model.fresh_name("r")
                };
                Op::Rename { from: name, to }
            }
            82..=91 => Op::Remove { name },
            _ => Op::Link {
                name,
                new: model.fresh_name("l"),
            },
        }
    }
}

/// `op` in a line, without its data.
pub fn describe(op: &Op) -> String {
    match op {
        Op::Create { name } => format!("create {name}"),
        Op::Write {
            name,
            pieces,
            stable,
        } => {
            let at: Vec<String> = pieces
                .iter()
                .map(|(o, d)| format!("{o}+{}", d.len()))
                .collect();
            let how = if *stable {
                "FILE_SYNC"
            } else {
                "UNSTABLE+COMMIT"
            };
            format!("write {name} {} {how}", at.join(","))
        }
        Op::Truncate { name, size } => format!("truncate {name} to {size}"),
        Op::Chmod { name, mode } => format!("chmod {name} {mode:o}"),
        Op::Rename { from, to } => format!("rename {from} -> {to}"),
        Op::Remove { name } => format!("remove {name}"),
        Op::Link { name, new } => format!("link {name} as {new}"),
    }
}
