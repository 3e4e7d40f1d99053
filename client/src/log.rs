//! The modify log (rule 11): every mutation is appended here, durably, before it is shipped
//! or answered. It is both the shipping queue and the crash-recovery record. It also keeps
//! the client's identity (incarnation, uniquifier) and its counters.
//!
//! Format (one redb file per volume, `volume-ID.redb`):
//! - table `records`: seq (u64) -> `[1][u32 LE header length][postcard UpdateRecord][data]`
//! - table `state`: name (str) -> u64: `incarnation`, `unique`, `next_vnode`, `next_seq`

use crate::error::ClientError;
use bytes::Bytes;
use codetta_wire::{Incarnation, UpdateRecord};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("state");
const RECORD_FORMAT: u8 = 1;

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

/// The durable modify log.
pub struct ModifyLog {
    /// `None` once closed: the file lock is released even while tasks still hold the log.
    db: std::sync::RwLock<Option<Database>>,
}

fn storage<E: std::fmt::Display>(e: E) -> ClientError {
    ClientError::Storage(e.to_string())
}

fn encode(rec: &LoggedRecord) -> Result<Vec<u8>, ClientError> {
    let header = postcard::to_allocvec(&rec.record).map_err(storage)?;
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
    let record: UpdateRecord = postcard::from_bytes(header).map_err(|_| bad())?;
    let data = Bytes::copy_from_slice(&bytes[5 + header_len..]);
    if data.len() != record.op.data_len() {
        return Err(bad());
    }
    Ok(LoggedRecord { record, data })
}

impl ModifyLog {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<ModifyLog, ClientError> {
        let db = Database::builder()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(RECORDS).map_err(storage)?;
        txn.open_table(STATE).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(ModifyLog {
            db: std::sync::RwLock::new(Some(db)),
        })
    }

    /// Closes the database; later calls fail with a storage error.
    pub fn close(&self) {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        guard.take();
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

    /// The stored identity, if the client has one yet.
    pub fn state(&self) -> Result<Option<ClientState>, ClientError> {
        self.with_db(Self::read_state)
    }

    fn read_state(db: &Database) -> Result<Option<ClientState>, ClientError> {
        let txn = db.begin_read().map_err(storage)?;
        let table = txn.open_table(STATE).map_err(storage)?;
        let get = |k: &str| -> Result<Option<u64>, ClientError> {
            Ok(table.get(k).map_err(storage)?.map(|v| v.value()))
        };
        let (Some(incarnation), Some(unique)) = (get("incarnation")?, get("unique")?) else {
            return Ok(None);
        };
        Ok(Some(ClientState {
            incarnation: Incarnation(u32::try_from(incarnation).map_err(storage)?),
            unique: u32::try_from(unique).map_err(storage)?,
            next_vnode: get("next_vnode")?.unwrap_or(1),
            next_seq: get("next_seq")?.unwrap_or(1),
        }))
    }

    /// Stores a fresh identity (a new incarnation restarts both counters).
    pub fn set_state(&self, state: ClientState) -> Result<(), ClientError> {
        self.with_db(|db| Self::write_state(db, state))
    }

    fn write_state(db: &Database, state: ClientState) -> Result<(), ClientError> {
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
    }

    /// Appends records durably in one transaction (group commit), with the counters that
    /// must survive alongside them.
    pub fn append(
        &self,
        records: &[LoggedRecord],
        next_vnode: u64,
        next_seq: u64,
    ) -> Result<(), ClientError> {
        self.with_db(|db| Self::append_in(db, records, next_vnode, next_seq))
    }

    fn append_in(
        db: &Database,
        records: &[LoggedRecord],
        next_vnode: u64,
        next_seq: u64,
    ) -> Result<(), ClientError> {
        let txn = db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(storage)?;
            for rec in records {
                table
                    .insert(rec.record.id.seq, encode(rec)?.as_slice())
                    .map_err(storage)?;
            }
            let mut state = txn.open_table(STATE).map_err(storage)?;
            state.insert("next_vnode", next_vnode).map_err(storage)?;
            state.insert("next_seq", next_seq).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    /// Every record not yet trimmed, in sequence order.
    pub fn pending(&self) -> Result<Vec<LoggedRecord>, ClientError> {
        self.with_db(Self::read_pending)
    }

    fn read_pending(db: &Database) -> Result<Vec<LoggedRecord>, ClientError> {
        let txn = db.begin_read().map_err(storage)?;
        let table = txn.open_table(RECORDS).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (_, value) = item.map_err(storage)?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    /// Drops records up to and including `seq`: the server has applied them.
    ///
    /// Not made durable on its own: if the daemon dies first, the records are shipped again
    /// and the server acknowledges them without applying them twice (rule 3).
    pub fn trim(&self, seq: u64) -> Result<(), ClientError> {
        self.with_db(|db| Self::trim_in(db, seq))
    }

    fn trim_in(db: &Database, seq: u64) -> Result<(), ClientError> {
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(storage)?;
            table.retain_in(..=seq, |_, _| false).map_err(storage)?;
        }
        txn.commit().map_err(storage)
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
                hash: *blake3::hash(data).as_bytes(),
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
        assert_eq!((state.next_vnode, state.next_seq), (7, 4));
        let pending = log.pending().unwrap();
        assert_eq!(pending, vec![rec(1, b"hello"), rec(2, b""), rec(3, b"x")]);
        log.trim(2).unwrap();
        assert_eq!(log.pending().unwrap(), vec![rec(3, b"x")]);
    }
}
