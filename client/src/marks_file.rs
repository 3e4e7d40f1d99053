//! The replicas that missed this client's updates ([`crate::missed`]), kept beside the
//! modify log so that a restarted daemon still never reads its own acknowledged update as
//! undone from one of them.
//!
//! Format: `volume-ID.missed`, fixed entries ([`crate::entry_file`]) with 32-byte bodies
//! `[replica u64 LE][fid, 16 bytes][seq u64 LE]`, noted as completed batches leave the log
//! (before the trim). A mark a replica later lost (it caught up) is not written down: read
//! back, it holds until that replica is next seen holding a fresh replica's state, which
//! only costs reads waiting while it is the one replica reachable. Rewritten from the live
//! marks once superseded entries outnumber them. Unlike the chain file it is kept across a
//! reboot: a mark kept too long only makes reads wait, a mark lost would let one through.

use crate::entry_file::EntryFile;
#[cfg(test)]
use crate::entry_file::SLACK;
use crate::error::ClientError;
use crate::missed::{MAX_MARKS, Mark, Missed};
use codetta_wire::{Fid, ReplicaId};
use std::path::Path;

const BODY_LEN: usize = 8 + Fid::ENCODED_LEN + 8;

fn body((replica, fid, seq): Mark) -> [u8; BODY_LEN] {
    let mut out = [0u8; BODY_LEN];
    out[..8].copy_from_slice(&replica.0.to_le_bytes());
    out[8..8 + Fid::ENCODED_LEN].copy_from_slice(&fid.to_bytes());
    out[8 + Fid::ENCODED_LEN..].copy_from_slice(&seq.to_le_bytes());
    out
}

fn parse(body: &[u8]) -> Option<Mark> {
    let (replica, rest) = body.split_at_checked(8)?;
    let (fid, seq) = rest.split_at_checked(Fid::ENCODED_LEN)?;
    Some((
        ReplicaId(u64::from_le_bytes(replica.try_into().ok()?)),
        Fid::from_bytes(fid)?,
        u64::from_le_bytes(seq.try_into().ok()?),
    ))
}

/// The marks file of one volume's log.
pub struct MarksFile {
    file: EntryFile,
    /// The marks written (bounded like the daemon's).
    live: Missed,
}

impl MarksFile {
    /// Opens (or creates) the file at `path` and returns it with the marks it holds, oldest
    /// first. `sync_each`: every note is synced.
    pub fn open(path: &Path, sync_each: bool) -> Result<(MarksFile, Vec<Mark>), ClientError> {
        let (file, bodies) = EntryFile::open(path, "marks file", BODY_LEN, false, sync_each)?;
        let mut live = Missed::with_capacity(MAX_MARKS);
        for (replica, fid, seq) in bodies.iter().filter_map(|b| parse(b)) {
            live.mark(replica, fid, seq);
        }
        let marks = live.entries().collect();
        Ok((MarksFile { file, live }, marks))
    }

    /// Notes these marks with one write, and rewrites the file once superseded entries
    /// outnumber the live ones.
    pub fn note(&mut self, marks: &[Mark]) -> Result<(), ClientError> {
        let bodies: Vec<[u8; BODY_LEN]> = marks
            .iter()
            .map(|m| {
                self.live.mark(m.0, m.1, m.2);
                body(*m)
            })
            .collect();
        self.file.append(bodies.iter().map(|b| b.as_slice()))?;
        let live = &self.live;
        self.file
            .compact(live.len(), || live.entries().map(body).collect())
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

    const R: ReplicaId = ReplicaId(7);

    #[test]
    fn marks_come_back_after_a_restart_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.missed");
        {
            let (mut f, marks) = MarksFile::open(&path, false).unwrap();
            assert!(marks.is_empty());
            f.note(&[(R, fid(1), 3), (R, fid(2), 4)]).unwrap();
            f.note(&[(R, fid(1), 9)]).unwrap();
        }
        let (_, marks) = MarksFile::open(&path, false).unwrap();
        assert_eq!(marks, vec![(R, fid(2), 4), (R, fid(1), 9)]);
        // The last entry torn: the two before it hold.
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        let (mut f, marks) = MarksFile::open(&path, false).unwrap();
        assert_eq!(marks, vec![(R, fid(1), 3), (R, fid(2), 4)]);
        assert_eq!(f.written(), 2);
        f.note(&[(R, fid(5), 10)]).unwrap();
        drop(f);
        let (_, marks) = MarksFile::open(&path, false).unwrap();
        assert_eq!(marks.len(), 3);
    }

    #[test]
    fn superseded_marks_are_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.missed");
        let (mut f, _) = MarksFile::open(&path, false).unwrap();
        for seq in 0..3 * SLACK as u64 {
            f.note(&[(R, fid(seq % 3), seq)]).unwrap();
        }
        assert!(f.written() <= 2 * 3 + SLACK + 1, "{}", f.written());
        drop(f);
        let (_, marks) = MarksFile::open(&path, false).unwrap();
        let n = 3 * SLACK as u64;
        assert_eq!(
            marks,
            vec![
                (R, fid((n - 3) % 3), n - 3),
                (R, fid((n - 2) % 3), n - 2),
                (R, fid((n - 1) % 3), n - 1)
            ]
        );
    }
}
