//! The modify log (rule 11): every mutation is appended here before it is shipped or
//! answered. It is both the shipping queue and the crash-recovery record. It also keeps
//! the client's identity (incarnation, uniquifier) and its counters.
//!
//! Format, per volume:
//! - `volume-ID.redb`, table `state`: name (str) -> u64: `incarnation`, `unique`, and the
//!   reserved high-water marks `next_vnode` and `next_seq` (durable; raised 4,096 at a time
//!   before any record uses a number past them, so no number is handed out twice even
//!   after a crash), `boot` (a hash of the machine's boot id when the log was opened).
//! - `volume-ID.log/`: the records, in append-only segments written through the page cache
//!   (see `crate::segments` for why that is enough).
//! - Logs written before the segments kept records in the redb table `records`; they are
//!   moved into a segment (and synced) when such a log is opened.
//! - `volume-ID.chain`: the newest applied record per object (see `crate::chain_file`).
//! - `volume-ID.missed`: the replicas that missed this client's updates, per object (see
//!   `crate::marks_file`).

use crate::chain_file::{Applied, ChainFile};
use crate::error::ClientError;
use crate::marks_file::MarksFile;
use crate::missed::Mark;
use crate::segments::Segments;
use bytes::Bytes;
use codetta_wire::{Incarnation, UpdateRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Mutex;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("state");
const RECORD_FORMAT: u8 = 1;
/// Numbers reserved at a time in the durable high-water marks.
const RESERVE: u64 = 4096;

/// The client's durable identity and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientState {
    pub incarnation: Incarnation,
    pub unique: u32,
    /// Next vnode counter within the incarnation.
    pub next_vnode: u64,
    /// Next update sequence number.
    pub next_seq: u64,
}

/// A logged record with its write data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRecord {
    pub record: UpdateRecord,
    pub data: Bytes,
}

impl LoggedRecord {
    /// Bytes this record occupies in the log and in the shipping queue (approximately).
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 128
    }
}

/// The modify log.
pub struct ModifyLog {
    /// `None` once closed: the file lock is released even while tasks still hold the log.
    db: std::sync::RwLock<Option<Database>>,
    segments: Segments,
    counters: Mutex<Counters>,
    /// The records the log held when opened, less those trimmed since.
    recovered: Mutex<Vec<LoggedRecord>>,
    chain: Mutex<ChainFile>,
    /// What the chain file held for records before the log's front when opened.
    chain_seeds: Vec<Applied>,
    marks: Mutex<MarksFile>,
    /// What the marks file held when opened.
    mark_seeds: Vec<Mark>,
}

/// The durable high-water marks and the numbers actually used.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    reserved_vnode: u64,
    reserved_seq: u64,
    next_vnode: u64,
    next_seq: u64,
}

/// An identifier of the machine's current boot: the log's records in the page cache are
/// trusted only within one boot. `None` where the system does not tell.
fn boot_id() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .or_else(|| {
            let out = std::process::Command::new("sysctl")
                .args(["-n", "kern.boottime"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })?;
    let h = blake3::hash(text.trim().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    Some(u64::from_le_bytes(b) >> 1)
}

/// The most record bytes [`ModifyLog::try_append_quick`] writes.
const QUICK_APPEND_BYTES: u64 = 64 << 10;

fn storage<E: std::fmt::Display>(e: E) -> ClientError {
    ClientError::Storage(e.to_string())
}

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
fn encode(rec: &LoggedRecord) -> Result<Vec<u8>, ClientError> {
    let header = crate::legacy::encode_v1(&rec.record, &rec.data);
    let header_len = u32::try_from(header.len()).map_err(storage)?;
    let mut out = Vec::with_capacity(5 + header.len() + rec.data.len());
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&rec.data);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<LoggedRecord, ClientError> {
    let bad = || ClientError::Storage("corrupt modify-log record".into());
    if bytes.first() != Some(&RECORD_FORMAT) {
        return Err(bad());
    }
    let len_bytes: [u8; 4] = bytes
        .get(1..5)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let header_len = u32::from_le_bytes(len_bytes) as usize;
    let header = bytes.get(5..5 + header_len).ok_or_else(bad)?;
    let data = Bytes::copy_from_slice(&bytes[5 + header_len..]);
    let record = crate::legacy::decode_v1(header, &data).ok_or_else(bad)?;
    if data.len() != record.op.data_len() {
        return Err(bad());
    }
    Ok(LoggedRecord { record, data })
}

impl ModifyLog {
    /// Opens (or creates) the log at `path` (its records in `path` with extension `log`).
    pub fn open(path: &Path) -> Result<ModifyLog, ClientError> {
        let db = Database::builder()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(storage)?;
        Self::with_database(db, path)
    }

    /// The log with its identity and counters on `backend` instead of the file at `path`
    /// (the crash tests inject failures through it); the records stay beside `path`.
    pub fn open_with_backend(
        path: &Path,
        backend: impl redb::StorageBackend,
    ) -> Result<ModifyLog, ClientError> {
        let db = Database::builder()
            .set_cache_size(16 << 20)
            .create_with_backend(backend)
            .map_err(storage)?;
        Self::with_database(db, path)
    }

    fn with_database(db: Database, path: &Path) -> Result<ModifyLog, ClientError> {
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(RECORDS).map_err(storage)?;
        txn.open_table(STATE).map_err(storage)?;
        txn.commit().map_err(storage)?;
        let boot = boot_id();
        let (segments, mut recovered) =
            Segments::open(&path.with_extension("log"), boot.is_none())?;
        // Records of a log written before the segments move into one, durably.
        let old = Self::read_old_records(&db)?;
        if !old.is_empty() {
            // A segment holding exactly the old records is a migration that died before the
            // old table was cleared: it was synced, so only the clearing is left.
            if recovered != old {
                ensure_storage(
                    recovered.is_empty(),
                    "a modify log with different records in both formats",
                )?;
                segments.append(&old)?;
                segments.sync()?;
            }
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(RECORDS)
                .map_err(storage)?
                .retain(|_, _| false)
                .map_err(storage)?;
            txn.commit().map_err(storage)?;
            recovered = old;
        }
        let stored_boot = Self::read_u64(&db, "boot")?;
        if let (Some(stored), Some(now)) = (stored_boot, boot)
            && stored != now
            && !recovered.is_empty()
        {
            // The machine restarted: the page cache may have lost any part of the
            // segments, including records the servers hold. Nothing in the log was
            // promised (see `segments`), and numbers continue past the reserved marks.
            tracing::warn!(
                records = recovered.len(),
                "the machine restarted since the modify log was written: its unshipped records are dropped"
            );
            if let Some(last) = recovered.last() {
                segments.trim(last.record.id.seq)?;
            }
            recovered.clear();
        }
        if let Some(now) = boot
            && stored_boot != Some(now)
        {
            let txn = db.begin_write().map_err(storage)?;
            txn.open_table(STATE)
                .map_err(storage)?
                .insert("boot", now)
                .map_err(storage)?;
            txn.commit().map_err(storage)?;
        }
        let reserved_vnode = Self::read_u64(&db, "next_vnode")?.unwrap_or(1);
        let reserved_seq = Self::read_u64(&db, "next_seq")?.unwrap_or(1);
        let next_seq = recovered
            .last()
            .map_or(reserved_seq, |r| r.record.id.seq + 1);
        let front = recovered.first().map_or(next_seq, |r| r.record.id.seq);
        let rebooted = matches!((stored_boot, boot), (Some(stored), Some(now)) if stored != now);
        let (chain, chain_seeds) = ChainFile::open(
            &path.with_extension("chain"),
            front,
            rebooted,
            segments.syncs_each(),
        )?;
        let (marks, mark_seeds) =
            MarksFile::open(&path.with_extension("missed"), segments.syncs_each())?;
        Ok(ModifyLog {
            db: std::sync::RwLock::new(Some(db)),
            segments,
            counters: Mutex::new(Counters {
                reserved_vnode,
                reserved_seq,
                next_vnode: reserved_vnode,
                next_seq,
            }),
            recovered: Mutex::new(recovered),
            chain: Mutex::new(chain),
            chain_seeds,
            marks: Mutex::new(marks),
            mark_seeds,
        })
    }

    fn read_u64(db: &Database, key: &str) -> Result<Option<u64>, ClientError> {
        let txn = db.begin_read().map_err(storage)?;
        let table = txn.open_table(STATE).map_err(storage)?;
        Ok(table.get(key).map_err(storage)?.map(|v| v.value()))
    }

    fn read_old_records(db: &Database) -> Result<Vec<LoggedRecord>, ClientError> {
        let txn = db.begin_read().map_err(storage)?;
        let table = txn.open_table(RECORDS).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (seq, value) = item.map_err(storage)?;
            match decode(value.value()) {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    // As a torn segment entry: the rest waits in vain behind a gap.
                    tracing::warn!(
                        seq = seq.value(),
                        kept = out.len(),
                        "modify log record of the former format is corrupt ({e}); it and the rest are dropped"
                    );
                    break;
                }
            }
        }
        Ok(out)
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the log; later calls fail with a storage error. The marks are lowered to
    /// the numbers actually used, so a clean restart leaves no gap in the sequence.
    pub fn close(&self) {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = guard.as_ref() {
            let c = *self.counters();
            if let Err(e) = Self::write_marks(db, c.next_vnode, c.next_seq) {
                tracing::warn!("saving the modify log's counters: {e}");
            }
        }
        self.segments.close();
        guard.take();
    }

    /// Closes the log as a killed process leaves it: nothing more is written (the marks
    /// stay where the last append put them). For the simulation's daemon crashes.
    pub fn abandon(&self) {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        self.segments.close();
        guard.take();
    }

    fn write_marks(db: &Database, vnode: u64, seq: u64) -> Result<(), ClientError> {
        let txn = db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(STATE).map_err(storage)?;
            table.insert("next_vnode", vnode).map_err(storage)?;
            table.insert("next_seq", seq).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(ClientError::Storage("the modify log is closed".into())),
        }
    }

    /// The stored identity, if the client has one yet, with the numbers to continue from.
    pub fn state(&self) -> Result<Option<ClientState>, ClientError> {
        let stored = self.with_db(Self::read_identity)?;
        let c = *self.counters();
        Ok(stored.map(|(incarnation, unique)| ClientState {
            incarnation,
            unique,
            next_vnode: c.next_vnode,
            next_seq: c.next_seq,
        }))
    }

    fn read_identity(db: &Database) -> Result<Option<(Incarnation, u32)>, ClientError> {
        let (Some(incarnation), Some(unique)) = (
            Self::read_u64(db, "incarnation")?,
            Self::read_u64(db, "unique")?,
        ) else {
            return Ok(None);
        };
        Ok(Some((
            Incarnation(u32::try_from(incarnation).map_err(storage)?),
            u32::try_from(unique).map_err(storage)?,
        )))
    }

    /// Stores a fresh identity (a new incarnation restarts both counters).
    pub fn set_state(&self, state: ClientState) -> Result<(), ClientError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            {
                let mut table = txn.open_table(STATE).map_err(storage)?;
                table
                    .insert("incarnation", u64::from(state.incarnation.0))
                    .map_err(storage)?;
                table
                    .insert("unique", u64::from(state.unique))
                    .map_err(storage)?;
                table
                    .insert("next_vnode", state.next_vnode)
                    .map_err(storage)?;
                table.insert("next_seq", state.next_seq).map_err(storage)?;
            }
            txn.commit().map_err(storage)
        })?;
        *self.counters() = Counters {
            reserved_vnode: state.next_vnode,
            reserved_seq: state.next_seq,
            next_vnode: state.next_vnode,
            next_seq: state.next_seq,
        };
        Ok(())
    }

    /// Appends records like [`ModifyLog::append`] when that is only a small write into the
    /// page cache (at most 64 KiB, no durable mark to raise, no sync) and nothing else holds
    /// the segments: cheap enough for an async worker. `None` when it wrote nothing: append
    /// from a blocking thread instead.
    pub fn try_append_quick(
        &self,
        records: &[LoggedRecord],
        next_vnode: u64,
        next_seq: u64,
    ) -> Option<Result<(), ClientError>> {
        let bytes: u64 = records.iter().map(LoggedRecord::size).sum();
        if bytes > QUICK_APPEND_BYTES
            || !self.marks_cover(next_vnode, next_seq)
            || self.segments.syncs_each()
        {
            return None;
        }
        self.write_group(records, next_vnode, next_seq, false)
    }

    /// Appends records (one write into the page cache; see `crate::segments`). The
    /// numbers they use, and vnodes below `next_vnode`, are first covered by the durable
    /// marks.
    pub fn append(
        &self,
        records: &[LoggedRecord],
        next_vnode: u64,
        next_seq: u64,
    ) -> Result<(), ClientError> {
        if !self.marks_cover(next_vnode, next_seq) {
            let c = *self.counters();
            let vnode = next_vnode.max(c.reserved_vnode) + RESERVE;
            let seq = next_seq.max(c.reserved_seq) + RESERVE;
            self.with_db(|db| Self::write_marks(db, vnode, seq))?;
            let mut c = self.counters();
            c.reserved_vnode = vnode;
            c.reserved_seq = seq;
        }
        self.write_group(records, next_vnode, next_seq, true)
            .unwrap_or(Ok(()))
    }

    /// Whether the durable marks already cover numbers up to these.
    fn marks_cover(&self, next_vnode: u64, next_seq: u64) -> bool {
        let c = *self.counters();
        next_vnode <= c.reserved_vnode && next_seq <= c.reserved_seq
    }

    /// Writes a group to the segments (waiting for them, or `None` if they are held when
    /// `wait` is false) and moves the counters past it. The counters move while the log is
    /// held open, so `close` cannot lower the marks below a group written just before it.
    fn write_group(
        &self,
        records: &[LoggedRecord],
        next_vnode: u64,
        next_seq: u64,
        wait: bool,
    ) -> Option<Result<(), ClientError>> {
        let written = self.with_db(|_| {
            let written = match wait {
                true => Some(self.segments.append(records)),
                false => self.segments.try_append(records),
            };
            if let Some(Ok(())) = written {
                let mut c = self.counters();
                c.next_vnode = c.next_vnode.max(next_vnode);
                c.next_seq = c.next_seq.max(next_seq);
            }
            Ok(written)
        });
        written.unwrap_or_else(|e| Some(Err(e)))
    }

    /// The records the log held when it was opened, less those trimmed since, in
    /// sequence order.
    pub fn pending(&self) -> Result<Vec<LoggedRecord>, ClientError> {
        self.with_db(|_| Ok(()))?;
        Ok(self
            .recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    /// Drops records up to and including `seq`: every server that needed them applied
    /// them. If the daemon dies before the segment is gone, they are shipped again and the
    /// servers acknowledge them without applying them twice (rule 3).
    pub fn trim(&self, seq: u64) -> Result<(), ClientError> {
        self.trim_noting(seq, &[], &[])
    }

    /// [`ModifyLog::trim`], first noting in the chain file the records among them that
    /// some replica applied (object, incarnation, sequence; in sequence order), and in the
    /// marks file the replicas that missed them.
    pub fn trim_noting(
        &self,
        seq: u64,
        applied: &[Applied],
        marks: &[Mark],
    ) -> Result<(), ClientError> {
        if !marks.is_empty() {
            let mut file = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            self.with_db(|_| file.note(marks))?;
        }
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        self.with_db(|_| chain.note(applied))?;
        self.with_db(|_| self.segments.trim(seq))?;
        self.recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| r.record.id.seq > seq);
        // Every noted record is trimmed now (trims come in sequence order, each after
        // its records are noted, under this lock).
        self.with_db(|_| chain.compact_if_large())
    }

    /// Per object, the newest record before the log's front that some replica applied,
    /// as the chain file held it when the log was opened (least recently written first).
    pub fn chain_seeds(&self) -> &[Applied] {
        &self.chain_seeds
    }

    /// The replicas that missed this client's updates, as the marks file held them when
    /// the log was opened (oldest first).
    pub fn mark_seeds(&self) -> &[Mark] {
        &self.mark_seeds
    }
}

/// A storage error unless `ok`.
fn ensure_storage(ok: bool, what: &str) -> Result<(), ClientError> {
    if ok {
        Ok(())
    } else {
        Err(ClientError::Storage(what.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use codetta_wire::update::Op;
    use codetta_wire::{Fid, SetAttrs, Time, UpdateId, VolumeId};

    fn rec(seq: u64, data: &'static [u8]) -> LoggedRecord {
        let fid = Fid {
            volume: VolumeId(1),
            vnode: 5,
            unique: 1,
        };
        let op = if data.is_empty() {
            Op::SetAttr {
                fid,
                set: SetAttrs::default(),
            }
        } else {
            Op::Write {
                fid,
                offset: 0,
                len: data.len() as u32,
                hashes: codetta_wire::update::piece_hashes(0, data),
            }
        };
        LoggedRecord {
            record: UpdateRecord {
                id: UpdateId {
                    incarnation: Incarnation(1),
                    seq,
                },
                time: Time::default(),
                op,
            },
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn append_reopen_trim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.redb");
        {
            let log = ModifyLog::open(&path).unwrap();
            assert_eq!(log.state().unwrap(), None);
            log.set_state(ClientState {
                incarnation: Incarnation(3),
                unique: 9,
                next_vnode: 1,
                next_seq: 1,
            })
            .unwrap();
            log.append(&[rec(1, b"hello"), rec(2, b""), rec(3, b"x")], 7, 4)
                .unwrap();
        }
        let log = ModifyLog::open(&path).unwrap();
        let state = log.state().unwrap().unwrap();
        // Numbers continue after the records held; vnodes after the reserved mark.
        assert_eq!(state.next_seq, 4);
        assert!(state.next_vnode >= 7);
        let pending = log.pending().unwrap();
        assert_eq!(pending, vec![rec(1, b"hello"), rec(2, b""), rec(3, b"x")]);
        log.trim(2).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(3, b"x")]);
    }

    /// A path for a log in a directory removed when the guard drops.
    fn temp_log() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        (dir, path)
    }

    fn fresh(path: &Path) -> ModifyLog {
        let log = ModifyLog::open(path).unwrap();
        log.set_state(ClientState {
            incarnation: Incarnation(3),
            unique: 9,
            next_vnode: 1,
            next_seq: 1,
        })
        .unwrap();
        log
    }

    fn segment_files(path: &Path) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(path.with_extension("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_crash_keeps_appended_records_and_never_reuses_a_number() {
        let (_dir, path) = temp_log();
        {
            let log = fresh(&path);
            log.append(&[rec(1, b"a"), rec(2, b"b")], 50, 3).unwrap();
            // Dropped without close: the daemon died.
        }
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"a"), rec(2, b"b")]);
        let state = log.state().unwrap().unwrap();
        assert_eq!(state.next_seq, 3, "numbers follow the records held");
        assert!(state.next_vnode >= 50, "vnodes past every one handed out");
        // Every record trimmed: the segments are deleted, and after a crash numbers
        // continue past the reserved mark (a gap the servers accept).
        log.trim(2).unwrap();
        assert!(segment_files(&path).is_empty());
        drop(log);
        let log = ModifyLog::open(&path).unwrap();
        assert!(log.pending().unwrap().is_empty());
        assert!(log.state().unwrap().unwrap().next_seq >= 3);
    }

    #[test]
    fn a_clean_close_leaves_no_gap() {
        let (_dir, path) = temp_log();
        let log = fresh(&path);
        log.append(&[rec(1, b"a")], 5, 2).unwrap();
        log.trim(1).unwrap();
        log.close();
        drop(log);
        let state = ModifyLog::open(&path).unwrap().state().unwrap().unwrap();
        assert_eq!((state.next_vnode, state.next_seq), (5, 2));
    }

    #[test]
    fn a_torn_tail_keeps_the_records_before_it() {
        let (_dir, path) = temp_log();
        {
            let log = fresh(&path);
            log.append(&[rec(1, b"one"), rec(2, b"two")], 1, 3).unwrap();
            log.append(&[rec(3, b"three")], 1, 4).unwrap();
        }
        let seg = segment_files(&path).pop().unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 2).unwrap();
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"one"), rec(2, b"two")]);
        assert_eq!(log.state().unwrap().unwrap().next_seq, 3);
    }

    #[test]
    fn records_from_before_a_reboot_are_dropped() {
        let (_dir, path) = temp_log();
        {
            let log = fresh(&path);
            log.append(&[rec(1, b"a")], 1, 2).unwrap();
            // As if the log had been written during another boot.
            log.with_db(|db| {
                let txn = db.begin_write().map_err(storage)?;
                txn.open_table(STATE)
                    .map_err(storage)?
                    .insert("boot", 12345)
                    .map_err(storage)?;
                txn.commit().map_err(storage)
            })
            .unwrap();
        }
        if boot_id().is_none() {
            return;
        }
        let log = ModifyLog::open(&path).unwrap();
        assert!(log.pending().unwrap().is_empty());
        assert!(log.state().unwrap().unwrap().next_seq >= 2);
    }

    #[test]
    fn small_groups_are_appended_quickly_and_the_rest_left_to_append() {
        static BIG: [u8; 100 << 10] = [7; 100 << 10];
        let (_dir, path) = temp_log();
        let log = fresh(&path);
        log.append(&[rec(1, b"a")], 1, 2).unwrap();
        assert!(matches!(
            log.try_append_quick(&[rec(2, b"b")], 1, 3),
            Some(Ok(()))
        ));
        // Too large for an async worker, or past the durable marks: left to `append`.
        assert!(log.try_append_quick(&[rec(3, &BIG)], 1, 4).is_none());
        assert!(log.try_append_quick(&[rec(3, b"c")], 1, 1 << 40).is_none());
        log.close();
        drop(log);
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"a"), rec(2, b"b")]);
    }

    #[test]
    fn segment_entries_of_the_former_format_are_read_back() {
        let (_dir, path) = temp_log();
        let log = fresh(&path);
        let recs = [rec(1, b"old data"), rec(2, b"")];
        log.append(&recs, 1, 3).unwrap();
        log.close();
        drop(log);
        // The daemon before piece hashes wrote the same records.
        let files = segment_files(&path);
        assert_eq!(files.len(), 1);
        let old: Vec<u8> = recs.iter().flat_map(crate::segments::entry_v1).collect();
        std::fs::write(&files[0], old).unwrap();
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), recs.to_vec());
    }

    #[test]
    fn records_of_the_former_format_move_into_a_segment() {
        let (_dir, path) = temp_log();
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(RECORDS).unwrap();
                for r in [rec(1, b"old"), rec(2, b"")] {
                    t.insert(r.record.id.seq, encode(&r).unwrap().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"old"), rec(2, b"")]);
        drop(log);
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"old"), rec(2, b"")]);
        assert_eq!(segment_files(&path).len(), 1);
        // A migration that died after syncing the segment but before clearing the table.
        log.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            {
                let mut t = txn.open_table(RECORDS).map_err(storage)?;
                for r in [rec(1, b"old"), rec(2, b"")] {
                    t.insert(r.record.id.seq, encode(&r)?.as_slice())
                        .map_err(storage)?;
                }
            }
            txn.commit().map_err(storage)
        })
        .unwrap();
        drop(log);
        let log = ModifyLog::open(&path).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(1, b"old"), rec(2, b"")]);
        assert_eq!(segment_files(&path).len(), 1);
    }
}
