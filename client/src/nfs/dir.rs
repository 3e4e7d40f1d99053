//! READDIR and READDIRPLUS: pages fetched from the server as nfs3_server pulls entries.

use super::attrs::fattr;
use super::err;
use super::handle::FidHandle;
use crate::venus::Venus;
use codetta_wire::Fid;
use codetta_wire::message::DirEntry as WireEntry;
use nfs3_server::nfs3_types::nfs3::filename3;
use nfs3_server::vfs::{DirEntry, DirEntryPlus, NextResult, ReadDirIterator, ReadDirPlusIterator};
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries fetched per server call.
const PAGE: u32 = 512;

/// Walks a directory after a cookie, one server page at a time.
pub struct DirPager {
    venus: Arc<Venus>,
    dir: Fid,
    cookie: u64,
    plus: bool,
    buffered: VecDeque<WireEntry>,
    eof: bool,
}

impl DirPager {
    pub fn new(venus: Arc<Venus>, dir: Fid, cookie: u64, plus: bool) -> DirPager {
        DirPager {
            venus,
            dir,
            cookie,
            plus,
            buffered: VecDeque::new(),
            eof: false,
        }
    }

    async fn next_entry(&mut self) -> NextResult<WireEntry> {
        if self.buffered.is_empty() && !self.eof {
            match self
                .venus
                .readdir(&self.dir, self.cookie, PAGE, self.plus)
                .await
            {
                Ok((entries, eof)) => {
                    self.eof = eof;
                    self.buffered.extend(entries);
                }
                Err(e) => return NextResult::Err(err(e)),
            }
        }
        match self.buffered.pop_front() {
            Some(entry) => {
                self.cookie = entry.cookie;
                NextResult::Ok(entry)
            }
            None => NextResult::Eof,
        }
    }
}

impl ReadDirIterator for DirPager {
    async fn next(&mut self) -> NextResult<DirEntry> {
        match self.next_entry().await {
            NextResult::Ok(e) => NextResult::Ok(DirEntry {
                fileid: e.fid.vnode,
                name: filename3::from(e.name.as_bytes().to_vec()),
                cookie: e.cookie,
            }),
            NextResult::Eof => NextResult::Eof,
            NextResult::Err(s) => NextResult::Err(s),
        }
    }
}

impl ReadDirPlusIterator<FidHandle> for DirPager {
    async fn next(&mut self) -> NextResult<DirEntryPlus<FidHandle>> {
        match self.next_entry().await {
            NextResult::Ok(e) => NextResult::Ok(DirEntryPlus {
                fileid: e.fid.vnode,
                name: filename3::from(e.name.as_bytes().to_vec()),
                cookie: e.cookie,
                name_attributes: e.state.as_ref().map(|s| fattr(&e.fid, &s.attrs)),
                name_handle: Some(FidHandle::new(e.fid)),
            }),
            NextResult::Eof => NextResult::Eof,
            NextResult::Err(s) => NextResult::Err(s),
        }
    }
}
