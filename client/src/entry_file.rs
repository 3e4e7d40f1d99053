//! An append-only file of fixed-length entries kept beside a modify log (the chain file, the
//! marks file): each entry is a body and the first [`CHECK_LEN`] bytes of its blake3,
//! appended through the page cache like the log's segments (they survive the daemon's
//! death), read back up to the first torn or corrupt entry (the file is cut there), and
//! rewritten whole (a new file renamed over it) when its owner compacts it.

use crate::error::ClientError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of checksum after each body.
pub const CHECK_LEN: usize = 8;

/// Entries written beyond twice the live ones before a file is rewritten.
pub const SLACK: usize = 1 << 12;

/// One file of entries with `body_len`-byte bodies.
pub struct EntryFile {
    path: PathBuf,
    file: File,
    /// What the file is, for errors and warnings.
    what: &'static str,
    body_len: usize,
    /// Entries in the file.
    written: usize,
    /// Sync every append (the boot cannot be told apart from the daemon's restart).
    sync_each: bool,
}

impl EntryFile {
    /// Opens (or creates) the file of `what` at `path` and returns it with the bodies of
    /// its good entries, in order. `emptied`: the file is emptied first.
    pub fn open(
        path: &Path,
        what: &'static str,
        body_len: usize,
        emptied: bool,
        sync_each: bool,
    ) -> Result<(EntryFile, Vec<Vec<u8>>), ClientError> {
        let storage = |e: std::io::Error| ClientError::Storage(format!("{what}: {e}"));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(storage)?;
        if emptied {
            file.set_len(0).map_err(storage)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(storage)?;
        let mut bodies = Vec::new();
        for chunk in bytes.chunks(body_len + CHECK_LEN) {
            if chunk.len() != body_len + CHECK_LEN {
                break;
            }
            let (body, sum) = chunk.split_at(body_len);
            if blake3::hash(body).as_bytes()[..CHECK_LEN] != *sum {
                break;
            }
            bodies.push(body.to_vec());
        }
        let good_len = (bodies.len() * (body_len + CHECK_LEN)) as u64;
        if good_len < bytes.len() as u64 {
            tracing::warn!(
                file = %path.display(),
                kept = bodies.len(),
                "the {what} had a torn or corrupt tail; cut there"
            );
            file.set_len(good_len).map_err(storage)?;
        }
        let written = bodies.len();
        Ok((
            EntryFile {
                path: path.to_path_buf(),
                file,
                what,
                body_len,
                written,
                sync_each,
            },
            bodies,
        ))
    }

    fn storage(&self, e: std::io::Error) -> ClientError {
        ClientError::Storage(format!("{}: {e}", self.what))
    }

    fn encode<'a>(&self, bodies: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, usize) {
        let mut buf = Vec::new();
        let mut n = 0;
        for body in bodies {
            debug_assert_eq!(body.len(), self.body_len);
            buf.extend_from_slice(body);
            buf.extend_from_slice(&blake3::hash(body).as_bytes()[..CHECK_LEN]);
            n += 1;
        }
        (buf, n)
    }

    /// Appends these entries with one write.
    pub fn append<'a>(
        &mut self,
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), ClientError> {
        let (buf, n) = self.encode(bodies);
        if n == 0 {
            return Ok(());
        }
        self.file.write_all(&buf).map_err(|e| self.storage(e))?;
        if self.sync_each {
            self.file.sync_data().map_err(|e| self.storage(e))?;
        }
        self.written += n;
        Ok(())
    }

    /// Replaces the whole file with these entries (a new file renamed over it).
    pub fn rewrite<'a>(
        &mut self,
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), ClientError> {
        let (buf, n) = self.encode(bodies);
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let mut out = File::create(&tmp).map_err(|e| self.storage(e))?;
        out.write_all(&buf).map_err(|e| self.storage(e))?;
        if self.sync_each {
            out.sync_data().map_err(|e| self.storage(e))?;
        }
        drop(out);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.storage(e))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.storage(e))?;
        self.written = n;
        Ok(())
    }

    /// Rewrites the file with `live()`'s entries once superseded ones outnumber the
    /// `live_count` live ones (by [`SLACK`] beyond twice as many).
    pub fn compact<B: AsRef<[u8]>>(
        &mut self,
        live_count: usize,
        live: impl FnOnce() -> Vec<B>,
    ) -> Result<(), ClientError> {
        if self.written <= 2 * live_count + SLACK {
            return Ok(());
        }
        let bodies = live();
        self.rewrite(bodies.iter().map(|b| b.as_ref()))
    }

    /// Entries in the file.
    pub fn written(&self) -> usize {
        self.written
    }
}
