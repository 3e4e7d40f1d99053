//! The newest record each object had applied by some replica, kept beside the modify log so
//! that a restarted daemon's first record on an object still names its predecessor
//! ([`crate::chains`]). Without it that record went out unchained and could land on a
//! replica that had missed the previous one, making a version nobody wrote (the fault
//! matrix found this with daemon SIGKILLs: 3 runs in 10).
//!
//! A record is noted here once its shipping completed with some replica applying it, and
//! before it is trimmed from the log; records still in the log are chained from the log
//! itself. So a restarted daemon takes, per object, the newest entry older than the first
//! record its log still holds, then links the log's records on top.
//!
//! Format: `volume-ID.chain`, fixed entries of [`ENTRY_LEN`] bytes: `[fid, 16 bytes]
//! [incarnation u32 LE][seq u64 LE][first 8 bytes of the blake3 of the 28 before]`, appended
//! through the page cache like the log's segments (they survive the daemon's death). Read
//! back up to the first torn or corrupt entry; the file is cut there. Once superseded
//! entries outnumber the live ones it is rewritten whole (a new file renamed over it), and
//! then holds only records already trimmed from the log.
//!
//! After a machine crash the page cache may have lost entries anywhere, and a record naming
//! an older predecessor than its true one would let a replica that missed the newer one
//! apply it, and claim (by the record's span, rule 5) to hold what it lacks. So the file
//! is trusted only within one boot: after a reboot it starts empty (records go out naming
//! no predecessor until the next of each object). Where the boot cannot be told, every
//! note is synced.

use crate::chains::{Chains, MAX_CHAINED_OBJECTS};
#[cfg(test)]
use crate::entry_file::SLACK;
use crate::entry_file::{CHECK_LEN, EntryFile};
use crate::error::ClientError;
use codetta_wire::{Fid, Incarnation};
use std::path::Path;

const BODY_LEN: usize = Fid::ENCODED_LEN + 4 + 8;
/// Bytes per entry.
pub const ENTRY_LEN: usize = BODY_LEN + CHECK_LEN;
/// A record some replica applied: its object, incarnation and sequence number.
pub type Applied = (Fid, Incarnation, u64);

fn body(object: Fid, incarnation: Incarnation, seq: u64) -> [u8; BODY_LEN] {
    let mut out = [0u8; BODY_LEN];
    out[..Fid::ENCODED_LEN].copy_from_slice(&object.to_bytes());
    out[Fid::ENCODED_LEN..Fid::ENCODED_LEN + 4].copy_from_slice(&incarnation.0.to_le_bytes());
    out[Fid::ENCODED_LEN + 4..].copy_from_slice(&seq.to_le_bytes());
    out
}

fn parse(body: &[u8]) -> Option<Applied> {
    let (fid, rest) = body.split_at_checked(Fid::ENCODED_LEN)?;
    let (inc, seq) = rest.split_at_checked(4)?;
    Some((
        Fid::from_bytes(fid)?,
        Incarnation(u32::from_le_bytes(inc.try_into().ok()?)),
        u64::from_le_bytes(seq.try_into().ok()?),
    ))
}

/// Links `seq` unless `chains` already holds a later record of `inc` on `object` (trims,
/// and so notes, of two completions may run in either order).
fn link_if_newer(chains: &mut Chains, object: Fid, inc: Incarnation, seq: u64) {
    match chains.newest(&object) {
        Some((i, s)) if i == inc && s >= seq => {}
        _ => {
            chains.link(object, inc, seq);
        }
    }
}

/// The chain file of one volume's log.
pub struct ChainFile {
    file: EntryFile,
    /// The live entries (bounded like the daemon's chains).
    live: Chains,
}

impl ChainFile {
    /// Opens (or creates) the file at `path` and returns it with, per object, the newest
    /// entry for a record before `front` (the first record the log still holds), least
    /// recently written first. `rebooted`: the machine restarted since the file was
    /// written, and it is emptied. `sync_each`: every note is synced.
    pub fn open(
        path: &Path,
        front: u64,
        rebooted: bool,
        sync_each: bool,
    ) -> Result<(ChainFile, Vec<Applied>), ClientError> {
        if rebooted {
            tracing::warn!(
                file = %path.display(),
                "the machine restarted since the chain file was written: it starts empty"
            );
        }
        let (file, bodies) = EntryFile::open(path, "chain file", BODY_LEN, rebooted, sync_each)?;
        let mut live = Chains::with_capacity(MAX_CHAINED_OBJECTS);
        let mut before_front = Chains::with_capacity(MAX_CHAINED_OBJECTS);
        for (object, inc, seq) in bodies.iter().filter_map(|b| parse(b)) {
            link_if_newer(&mut live, object, inc, seq);
            if seq < front {
                link_if_newer(&mut before_front, object, inc, seq);
            }
        }
        let seeds = before_front.entries().collect();
        Ok((ChainFile { file, live }, seeds))
    }

    /// Notes that some replica applied each of these records (in sequence order), with one
    /// write.
    pub fn note(&mut self, applied: &[Applied]) -> Result<(), ClientError> {
        let bodies: Vec<[u8; BODY_LEN]> = applied
            .iter()
            .map(|(object, inc, seq)| {
                link_if_newer(&mut self.live, *object, *inc, *seq);
                body(*object, *inc, *seq)
            })
            .collect();
        self.file.append(bodies.iter().map(|b| b.as_slice()))
    }

    /// Rewrites the file with only its live entries once superseded ones outnumber them.
    /// Call only when every noted record has been trimmed from the log (an entry a record
    /// still in the log superseded is then no longer needed).
    pub fn compact_if_large(&mut self) -> Result<(), ClientError> {
        let live = &self.live;
        self.file.compact(live.len(), || {
            live.entries()
                .map(|(object, inc, seq)| body(object, inc, seq))
                .collect()
        })
    }

    /// Entries in the file (tests).
    pub fn written(&self) -> usize {
        self.file.written()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use codetta_wire::VolumeId;

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(2),
            vnode: n,
            unique: 3,
        }
    }

    const INC: Incarnation = Incarnation(5);

    #[test]
    fn a_reopened_file_gives_each_objects_newest_record_before_the_logs_front() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.chain");
        {
            let (mut f, seeds) = ChainFile::open(&path, 1, false, false).unwrap();
            assert!(seeds.is_empty());
            f.note(&[(fid(1), INC, 3), (fid(2), INC, 4)]).unwrap();
            f.note(&[(fid(1), INC, 7), (fid(1), INC, 9)]).unwrap();
        }
        // Record 9 was noted but the daemon died before trimming it: the log still holds
        // it (from 8 on) and links it itself, after record 7.
        let (_, seeds) = ChainFile::open(&path, 8, false, false).unwrap();
        assert_eq!(seeds, vec![(fid(2), INC, 4), (fid(1), INC, 7)]);
        let (mut f, seeds) = ChainFile::open(&path, 10, false, false).unwrap();
        assert_eq!(seeds, vec![(fid(2), INC, 4), (fid(1), INC, 9)]);
        // A completion noted late does not take an object back to an older record.
        f.note(&[(fid(1), INC, 12)]).unwrap();
        f.note(&[(fid(1), INC, 11)]).unwrap();
        drop(f);
        let (_, seeds) = ChainFile::open(&path, 20, false, false).unwrap();
        assert_eq!(seeds, vec![(fid(2), INC, 4), (fid(1), INC, 12)]);
        // After a reboot nothing is trusted.
        let (_, seeds) = ChainFile::open(&path, 20, true, false).unwrap();
        assert!(seeds.is_empty());
        let (_, seeds) = ChainFile::open(&path, 20, false, false).unwrap();
        assert!(seeds.is_empty(), "emptied");
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_go_on_after_the_good_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.chain");
        {
            let (mut f, _) = ChainFile::open(&path, 1, false, false).unwrap();
            f.note(&[(fid(1), INC, 3), (fid(2), INC, 4)]).unwrap();
        }
        // The second entry torn, then garbage.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(ENTRY_LEN + 11);
        bytes.extend_from_slice(&[0xAB; 50]);
        std::fs::write(&path, &bytes).unwrap();
        {
            let (mut f, seeds) = ChainFile::open(&path, 100, false, false).unwrap();
            assert_eq!(seeds, vec![(fid(1), INC, 3)]);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), ENTRY_LEN as u64);
            f.note(&[(fid(3), INC, 8)]).unwrap();
        }
        let (_, seeds) = ChainFile::open(&path, 100, false, false).unwrap();
        assert_eq!(seeds, vec![(fid(1), INC, 3), (fid(3), INC, 8)]);
    }

    #[test]
    fn superseded_entries_are_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.chain");
        let (mut f, _) = ChainFile::open(&path, 1, false, false).unwrap();
        let mut seq = 0;
        for _ in 0..3 * SLACK {
            seq += 1;
            f.note(&[(fid(seq % 3), INC, seq)]).unwrap();
        }
        f.compact_if_large().unwrap();
        assert_eq!(f.written(), 3);
        f.note(&[(fid(7), INC, seq + 1)]).unwrap();
        drop(f);
        let (_, seeds) = ChainFile::open(&path, u64::MAX, false, false).unwrap();
        assert_eq!(
            seeds,
            vec![
                (fid((seq - 2) % 3), INC, seq - 2),
                (fid((seq - 1) % 3), INC, seq - 1),
                (fid(seq % 3), INC, seq),
                (fid(7), INC, seq + 1),
            ]
        );
    }
}
