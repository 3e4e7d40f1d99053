//! READDIR and READDIRPLUS: pages fetched from the server as nfs3_server pulls entries. A
//! mount point in the listing shows as the root directory of the volume it mounts, with
//! that root's fileid and attributes, as LOOKUP shows it.

use super::attrs::{fattr, fileid};
use super::err;
use super::handle::{EXPORT_ROOT, FidHandle};
use crate::venus::Venus;
use crate::volumes::Volumes;
use codetta_wire::{Attrs, Fid, FileType, Name};
use nfs3_server::nfs3_types::nfs3::filename3;
use nfs3_server::vfs::{DirEntry, DirEntryPlus, NextResult, ReadDirIterator, ReadDirPlusIterator};
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries fetched per server call.
const PAGE: u32 = 512;

/// One entry as the export shows it.
struct Entry {
    name: Name,
    cookie: u64,
    fid: Fid,
    attrs: Option<Attrs>,
}

/// Walks a directory after a cookie, one server page at a time.
pub struct DirPager {
    venus: Arc<Venus>,
    volumes: Arc<Volumes>,
    dir: Fid,
    /// The current root volume's root (shown as the export's root).
    root: Fid,
    cookie: u64,
    buffered: VecDeque<Entry>,
    eof: bool,
}

impl DirPager {
    pub fn new(
        venus: Arc<Venus>,
        volumes: Arc<Volumes>,
        dir: Fid,
        root: Fid,
        cookie: u64,
        _plus: bool,
    ) -> DirPager {
        DirPager {
            venus,
            volumes,
            dir,
            root,
            cookie,
            buffered: VecDeque::new(),
            eof: false,
        }
    }

    /// Attributes are always fetched: they tell which entries are symlinks, and so
    /// possibly mount points.
    async fn fill(&mut self) -> Result<(), nfs3_server::nfs3_types::nfs3::nfsstat3> {
        let (entries, eof) = self
            .venus
            .readdir(&self.dir, self.cookie, PAGE, true)
            .await
            .map_err(err)?;
        self.eof = eof;
        for e in entries {
            let mut entry = Entry {
                name: e.name,
                cookie: e.cookie,
                fid: e.fid,
                attrs: e.state.map(|s| s.attrs),
            };
            if entry
                .attrs
                .as_ref()
                .is_some_and(|a| a.ftype == FileType::Symlink)
                && let Some(root) = self
                    .volumes
                    .follow(&self.venus, self.dir, &entry.fid)
                    .await
                    .map_err(err)?
            {
                let mounted = self.volumes.get(root.volume).await.map_err(err)?;
                entry.attrs = Some(mounted.getattr(&root).await.map_err(err)?);
                entry.fid = root;
            }
            if entry.fid == self.root {
                entry.fid = EXPORT_ROOT;
            }
            self.buffered.push_back(entry);
        }
        Ok(())
    }

    async fn next_entry(&mut self) -> NextResult<Entry> {
        if self.buffered.is_empty()
            && !self.eof
            && let Err(status) = self.fill().await
        {
            return NextResult::Err(status);
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
                fileid: fileid(&e.fid),
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
                fileid: fileid(&e.fid),
                name: filename3::from(e.name.as_bytes().to_vec()),
                cookie: e.cookie,
                name_attributes: e.attrs.as_ref().map(|a| fattr(&e.fid, a)),
                name_handle: Some(FidHandle::new(e.fid)),
            }),
            NextResult::Eof => NextResult::Eof,
            NextResult::Err(s) => NextResult::Err(s),
        }
    }
}
