//! The modify log's records on disk: append-only segment files written through the page
//! cache, never fsynced.
//!
//! Why no fsync: the client daemon answers from its log only UNSTABLE WRITEs; everything
//! else is answered once the servers have applied it durably. An UNSTABLE WRITE must survive
//! the daemon's death (the kernel will not resend it: the write verifier is fixed), and a
//! write(2) into the page cache does. It need not survive the machine's: the kernel NFS
//! client on the same machine loses its own unstable pages then too, and no COMMIT has
//! promised them. So an UNSTABLE WRITE costs a copy into the page cache, not a disk
//! round trip, and a segment whose records all reached the servers is deleted, usually
//! before the kernel ever writes it back: the data path does not touch this disk.
//!
//! Entry format: `[0xC8][u32 LE header length][u32 LE data length][8-byte blake3 of the two
//! lengths and the header][postcard UpdateRecord][data]`. A WRITE's data is checked against
//! the hashes of its pieces its record carries when the log is read back (entries of magic
//! 0xC7, one hash for all the data, are read by `crate::legacy`). Segment files are named by the
//! first sequence number they hold (`SEQ.seg`, 20 digits) and rotated at 64 MiB.
//!
//! After a machine crash, the page cache may have lost any part of any segment: the log is
//! read back up to the first missing, torn or corrupt record, and the rest is dropped.
//! Nothing dropped was promised: a record still in the log was either an unanswered call or
//! an UNSTABLE WRITE with no COMMIT answered yet.

use crate::error::ClientError;
use crate::log::LoggedRecord;
use bytes::Bytes;
use codetta_wire::UpdateRecord;
use codetta_wire::update::Op;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The first byte of an entry (0xC7, [`crate::legacy::ENTRY_MAGIC_V1`], before a WRITE
/// carried the hashes of its pieces).
const ENTRY_MAGIC: u8 = 0xC8;
const ENTRY_HEAD: usize = 1 + 4 + 4 + 8;
/// A segment is closed once it holds this much.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The largest record header accepted when reading back.
const MAX_HEADER: usize = 64 << 10;

fn storage<E: std::fmt::Display>(e: E) -> ClientError {
    ClientError::Storage(e.to_string())
}

/// One segment file: the sequence numbers it holds.
#[derive(Debug)]
struct Segment {
    last: u64,
    path: PathBuf,
}

struct Active {
    file: File,
    len: u64,
}

struct Inner {
    /// Set when a failed append could not be cut back: every later append fails rather
    /// than write after torn bytes.
    broken: bool,
    /// Oldest first; the last one is the active one when `active` is set.
    segments: VecDeque<Segment>,
    active: Option<Active>,
    /// Records up to here reached every server that needed them.
    trimmed: u64,
}

/// The segment files of one volume's log.
pub(crate) struct Segments {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Sync every append: where the machine's boot cannot be told apart from the daemon's
    /// restart, the page cache cannot be trusted across restarts.
    sync_each: bool,
}

/// `rec` as an entry of the former format (tests of the upgrade).
#[cfg(test)]
pub(crate) fn entry_v1(rec: &LoggedRecord) -> Vec<u8> {
    let header = crate::legacy::encode_v1(&rec.record, &rec.data);
    let mut out =
        entry_head(crate::legacy::ENTRY_MAGIC_V1, &header, rec.data.len()).unwrap_or_default();
    out.extend_from_slice(&rec.data);
    out
}

/// An entry's head: `magic`, the lengths, their checksum with `header`, then `header`.
fn entry_head(magic: u8, header: &[u8], data_len: usize) -> Result<Vec<u8>, ClientError> {
    let header_len = u32::try_from(header.len()).map_err(storage)?;
    let data_len = u32::try_from(data_len).map_err(storage)?;
    let mut lens = [0u8; 8];
    lens[..4].copy_from_slice(&header_len.to_le_bytes());
    lens[4..].copy_from_slice(&data_len.to_le_bytes());
    let mut head = Vec::with_capacity(ENTRY_HEAD + header.len());
    head.push(magic);
    head.extend_from_slice(&lens);
    head.extend_from_slice(&checksum(&lens, header));
    head.extend_from_slice(header);
    Ok(head)
}

fn checksum(lens: &[u8; 8], header: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(lens);
    h.update(header);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Writes every slice, however many calls it takes.
fn write_all_vectored(file: &mut File, slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    let mut slices = slices;
    while !slices.is_empty() {
        let n = file.write_vectored(slices)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "the modify log segment took no bytes",
            ));
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Reads the entries of one segment until its end or the first bad entry.
fn read_segment(path: &Path) -> Result<Vec<LoggedRecord>, ClientError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| storage(format!("reading {}: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + ENTRY_HEAD) {
        let former = head[0] == crate::legacy::ENTRY_MAGIC_V1;
        if head[0] != ENTRY_MAGIC && !former {
            break;
        }
        let mut lens = [0u8; 8];
        lens.copy_from_slice(&head[1..9]);
        let header_len = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let data_len = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
        if header_len > MAX_HEADER {
            break;
        }
        let body = at + ENTRY_HEAD;
        let Some(header) = bytes.get(body..body + header_len) else {
            break;
        };
        if checksum(&lens, header) != head[9..17] {
            break;
        }
        let Some(data) = bytes.get(body + header_len..body + header_len + data_len) else {
            break;
        };
        let decoded = match former {
            true => crate::legacy::decode_v1(header, data),
            false => postcard::from_bytes::<UpdateRecord>(header).ok(),
        };
        let Some(record) = decoded else {
            break;
        };
        let intact = match &record.op {
            // A former entry's data was checked against its old hash as it was decoded.
            Op::Write { .. } if former => true,
            Op::Write {
                offset,
                hashes,
                len,
                ..
            } => {
                *len as usize == data_len
                    && codetta_wire::update::piece_hashes(*offset, data) == *hashes
            }
            op => op.data_len() == data_len,
        };
        if !intact {
            break;
        }
        out.push(LoggedRecord {
            record,
            data: Bytes::copy_from_slice(data),
        });
        at = body + header_len + data_len;
    }
    if at < bytes.len() {
        tracing::warn!(
            segment = %path.display(),
            kept = out.len(),
            dropped_bytes = bytes.len() - at,
            "modify log segment ends in a torn or corrupt entry (a machine crash); the rest is dropped"
        );
    }
    Ok(out)
}

impl Segments {
    /// Opens the segments in `dir` (created if missing) and reads back every record they
    /// hold, in sequence order, up to the first gap.
    pub(crate) fn open(
        dir: &Path,
        sync_each: bool,
    ) -> Result<(Segments, Vec<LoggedRecord>), ClientError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(storage)? {
            let path = entry.map_err(storage)?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok());
            match first {
                Some(first) => files.push((first, path)),
                None => tracing::warn!(file = %path.display(), "not a modify-log segment; ignored"),
            }
        }
        files.sort();
        let mut records: Vec<LoggedRecord> = Vec::new();
        let mut segments = VecDeque::new();
        let mut broken = false;
        for (_, path) in files {
            let held = if broken {
                Vec::new()
            } else {
                read_segment(&path)?
            };
            // Contiguous with what came before, or the log stops here.
            let contiguous = match (records.last(), held.first()) {
                (Some(prev), Some(next)) => next.record.id.seq == prev.record.id.seq + 1,
                _ => true,
            };
            if broken || !contiguous || held.is_empty() {
                broken |= !held.is_empty();
                std::fs::remove_file(&path).map_err(storage)?;
                continue;
            }
            let start = held[0].record.id.seq;
            let kept = held
                .iter()
                .zip(start..)
                .take_while(|(r, seq)| r.record.id.seq == *seq)
                .count();
            broken |= kept < held.len();
            let last = held[kept - 1].record.id.seq;
            records.extend(held.into_iter().take(kept));
            segments.push_back(Segment { last, path });
        }
        if broken {
            tracing::warn!(
                kept = records.len(),
                "the modify log had a gap (a machine crash); records after it were dropped"
            );
        }
        let segments = Segments {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                broken: false,
                segments,
                active: None,
                trimmed: 0,
            }),
            sync_each,
        };
        Ok((segments, records))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every append is synced (the boot could not be told).
    pub(crate) fn syncs_each(&self) -> bool {
        self.sync_each
    }

    /// Appends `records` (consecutive sequence numbers) with one write.
    pub(crate) fn append(&self, records: &[LoggedRecord]) -> Result<(), ClientError> {
        self.append_when(records, |s| Some(s.lock()))
            .unwrap_or(Ok(()))
    }

    /// Like [`Segments::append`], but writes nothing and returns `None` when another
    /// thread holds the segments (a trim deleting files), instead of waiting for it.
    pub(crate) fn try_append(&self, records: &[LoggedRecord]) -> Option<Result<(), ClientError>> {
        self.append_when(records, |s| match s.inner.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
    }

    fn append_when<'s>(
        &'s self,
        records: &[LoggedRecord],
        acquire: impl FnOnce(&'s Self) -> Option<std::sync::MutexGuard<'s, Inner>>,
    ) -> Option<Result<(), ClientError>> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Some(Ok(()));
        };
        let (first, last) = (first.record.id.seq, last.record.id.seq);
        let heads = match encode_heads(records) {
            Ok(heads) => heads,
            Err(e) => return Some(Err(e)),
        };
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(records.len() * 2);
        let mut total = 0u64;
        for (head, rec) in heads.iter().zip(records) {
            slices.push(IoSlice::new(head));
            total += head.len() as u64;
            if !rec.data.is_empty() {
                slices.push(IoSlice::new(&rec.data));
                total += rec.data.len() as u64;
            }
        }
        let mut inner = acquire(self)?;
        Some(self.write_group(&mut inner, (first, last), &mut slices, total))
    }

    /// Writes one group's `slices` (`total` bytes, records `first..=last`) to the active
    /// segment, starting a new one when it is full.
    fn write_group(
        &self,
        inner: &mut Inner,
        (first, last): (u64, u64),
        slices: &mut [IoSlice<'_>],
        total: u64,
    ) -> Result<(), ClientError> {
        if inner.broken {
            return Err(storage(
                "the modify log could not cut back a failed append; restart the daemon",
            ));
        }
        if inner.active.as_ref().is_none_or(|a| a.len >= SEGMENT_BYTES) {
            let path = self.dir.join(segment_name(first));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| storage(format!("creating {}: {e}", path.display())))?;
            inner.segments.push_back(Segment {
                last: first.saturating_sub(1),
                path,
            });
            inner.active = Some(Active { file, len: 0 });
        }
        let Some(active) = inner.active.as_mut() else {
            return Err(storage("no active segment"));
        };
        let written = write_all_vectored(&mut active.file, slices).and_then(|()| {
            if self.sync_each {
                active.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Cut off whatever part of the group reached the file: the same numbers are
            // written again by the next append, and a torn entry must not sit before them.
            if active.file.set_len(active.len).is_err() {
                inner.broken = true;
            }
            return Err(storage(e));
        }
        active.len += total;
        if let Some(seg) = inner.segments.back_mut() {
            seg.last = last;
        }
        Ok(())
    }

    /// Records up to `seq` reached the servers: deletes every segment holding only such
    /// records (the active one too: the next append starts a new one).
    pub(crate) fn trim(&self, seq: u64) -> Result<(), ClientError> {
        let mut inner = self.lock();
        inner.trimmed = inner.trimmed.max(seq);
        while let Some(seg) = inner.segments.front() {
            if seg.last > inner.trimmed {
                break;
            }
            // Forgotten only once gone: a segment left behind would end the log there at
            // the next start.
            std::fs::remove_file(&seg.path)
                .map_err(|e| storage(format!("removing {}: {e}", seg.path.display())))?;
            if inner.segments.len() == 1 {
                inner.active = None;
            }
            inner.segments.pop_front();
        }
        Ok(())
    }

    /// Forces every segment to disk (before records move out of the old redb table).
    pub(crate) fn sync(&self) -> Result<(), ClientError> {
        let inner = self.lock();
        if let Some(a) = &inner.active {
            a.file.sync_all().map_err(storage)?;
        }
        Ok(())
    }

    /// Closes the active segment's file.
    pub(crate) fn close(&self) {
        self.lock().active = None;
    }
}

/// Each record's entry head (see [`entry_head`]).
fn encode_heads(records: &[LoggedRecord]) -> Result<Vec<Vec<u8>>, ClientError> {
    records
        .iter()
        .map(|rec| {
            let header = postcard::to_allocvec(&rec.record).map_err(storage)?;
            entry_head(ENTRY_MAGIC, &header, rec.data.len())
        })
        .collect()
}
