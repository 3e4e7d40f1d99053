//! A disk for crash tests: a redb storage backend in memory that fails at a chosen I/O and
//! then loses power. What reads see is every write so far; what survives the power loss is
//! the image as of the last completed sync plus, for each write since, nothing, all of it or
//! a torn part of it (whole 512-byte sectors, in any order: a disk may reorder writes between
//! barriers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::sync::{Arc, Mutex};

/// A write or a resize not yet covered by a sync.
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct State {
    /// What reads see.
    current: Vec<u8>,
    /// What a power loss keeps for sure: the image at the last completed sync.
    synced: Vec<u8>,
    /// Writes and resizes since that sync, in order.
    pending: Vec<Pending>,
    /// I/O operations (writes, resizes, syncs) so far.
    ops: u64,
    /// The operation that fails (1-based); it and everything after it fail.
    fail_at: Option<u64>,
    failed: bool,
}

/// The disk; clones share it (redb owns one, the test keeps another).
#[derive(Debug, Clone, Default)]
pub struct CrashDisk(Arc<Mutex<State>>);

impl CrashDisk {
    /// A disk whose `fail_at`-th write, resize or sync fails (`None`: none does).
    pub fn failing_at(fail_at: Option<u64>) -> CrashDisk {
        let disk = CrashDisk::default();
        disk.0.lock().unwrap().fail_at = fail_at;
        disk
    }

    /// A disk holding `image`, all of it synced: what a crash left, mounted again.
    pub fn holding(image: Vec<u8>) -> CrashDisk {
        let disk = CrashDisk::default();
        {
            let mut state = disk.0.lock().unwrap();
            state.current = image.clone();
            state.synced = image;
        }
        disk
    }

    /// The image as reads see it now: what survives a crash of the process alone (the
    /// operating system keeps every write it was given).
    pub fn image(&self) -> Vec<u8> {
        self.0.lock().unwrap().current.clone()
    }

    /// Makes the `n`-th write, resize or sync from now fail, and every one after it (a
    /// disk that dies in the middle of what the store is doing).
    pub fn fail_after(&self, n: u64) {
        let mut state = self.0.lock().unwrap();
        state.fail_at = Some(state.ops + n.max(1));
    }

    /// No failure is coming any more (one that happened stays).
    pub fn disarm(&self) {
        self.0.lock().unwrap().fail_at = None;
    }

    /// Writes and resizes not yet covered by a sync (what a power loss now may lose).
    pub fn unsynced(&self) -> usize {
        self.0.lock().unwrap().pending.len()
    }

    /// Write, resize and sync operations so far (crash points are counted in them).
    pub fn ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    /// Whether the injected failure happened.
    pub fn failed(&self) -> bool {
        self.0.lock().unwrap().failed
    }

    /// The image a power loss leaves now, the unsynced writes chosen by `seed`.
    pub fn after_power_loss(&self, seed: u64) -> Vec<u8> {
        let state = self.0.lock().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut image = state.synced.clone();
        for pending in &state.pending {
            match pending {
                Pending::SetLen(len) => {
                    if rng.random_bool(0.5) {
                        image.resize(*len as usize, 0);
                    }
                }
                Pending::Write { offset, data } => {
                    let sectors = data.len().div_ceil(512);
                    // Each sector of the write lands or not (a torn write keeps some).
                    let mode = rng.random_range(0..3);
                    for s in 0..sectors {
                        let lands = match mode {
                            0 => false,
                            1 => true,
                            _ => rng.random_bool(0.5),
                        };
                        if !lands {
                            continue;
                        }
                        let from = s * 512;
                        let to = (from + 512).min(data.len());
                        let at = *offset as usize + from;
                        if image.len() < at + (to - from) {
                            image.resize(at + (to - from), 0);
                        }
                        image[at..at + (to - from)].copy_from_slice(&data[from..to]);
                    }
                }
            }
        }
        image
    }

    fn step(state: &mut State) -> io::Result<()> {
        if state.failed {
            return Err(io::Error::other("the disk is gone (injected crash)"));
        }
        state.ops += 1;
        if state.fail_at == Some(state.ops) {
            state.failed = true;
            return Err(io::Error::other("injected I/O failure"));
        }
        Ok(())
    }
}

impl redb::StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.0.lock().unwrap();
        if state.failed {
            return Err(io::Error::other("the disk is gone (injected crash)"));
        }
        let from = usize::try_from(offset).map_err(io::Error::other)?;
        let source = state
            .current
            .get(from..from + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        CrashDisk::step(&mut state)?;
        state.current.resize(len as usize, 0);
        state.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        CrashDisk::step(&mut state)?;
        // The synced image catches up by the writes since the last sync (not a copy of
        // the whole image: a disk of many megabytes syncs often).
        let pending = std::mem::take(&mut state.pending);
        for p in pending {
            match p {
                Pending::SetLen(len) => state.synced.resize(len as usize, 0),
                Pending::Write { offset, data } => {
                    // A write lands inside the image as it was then (`write` checks), and
                    // the resizes before it are replayed first.
                    let at = offset as usize;
                    debug_assert!(at + data.len() <= state.synced.len());
                    state.synced[at..at + data.len()].copy_from_slice(&data);
                }
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        CrashDisk::step(&mut state)?;
        let at = offset as usize;
        let target = state
            .current
            .get_mut(at..at + data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "write past the end"))?;
        target.copy_from_slice(data);
        state.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn a_power_loss_keeps_what_was_synced_and_some_of_what_was_not() {
        let disk = CrashDisk::failing_at(Some(5));
        disk.set_len(4096).unwrap();
        disk.write(0, &[1; 1024]).unwrap();
        disk.sync_data().unwrap();
        disk.write(1024, &[2; 1024]).unwrap();
        assert!(
            disk.write(2048, &[3; 1024]).is_err(),
            "the fifth operation fails"
        );
        assert!(disk.failed());
        assert!(disk.sync_data().is_err(), "and everything after it");
        let mut kept_some = false;
        let mut lost_some = false;
        for seed in 0..64 {
            let image = disk.after_power_loss(seed);
            assert_eq!(&image[..1024], &[1; 1024][..], "synced");
            assert!(image[2048..3072].iter().all(|b| *b == 0), "never written");
            let second = &image[1024..2048];
            kept_some |= second.contains(&2);
            lost_some |= second.contains(&0);
        }
        assert!(kept_some && lost_some);
    }
}
