//! READDIR and READDIRPLUS: entries after a cookie, fetched from the server a page at a
//! time as the front end takes them. A mount point in the listing shows as the root
//! directory of the volume it mounts, with that root's fileid and attributes, as LOOKUP
//! shows it.

use super::err;
use super::handle::EXPORT_ROOT;
use crate::volume_client::VolumeClient;
use crate::volumes::Volumes;
use codetta_wire::{Attrs, Fid, FileType, Name};
use nfs3_types::nfs3::nfsstat3;
use std::collections::VecDeque;
use std::sync::Arc;

/// Entries fetched per server call.
const PAGE: u32 = 512;

/// One entry as the export shows it.
pub struct Entry {
    pub name: Name,
    pub cookie: u64,
    pub fid: Fid,
    pub attrs: Option<Attrs>,
}

/// Walks a directory after a cookie, one server page at a time.
pub struct DirPager {
    volume_client: Arc<VolumeClient>,
    volumes: Arc<Volumes>,
    dir: Fid,
    /// The current root volume's root (shown as the export's root).
    root: Fid,
    cookie: u64,
    buffered: VecDeque<Entry>,
    eof: bool,
}

impl DirPager {
    pub(super) fn new(
        volume_client: Arc<VolumeClient>,
        volumes: Arc<Volumes>,
        dir: Fid,
        root: Fid,
        cookie: u64,
    ) -> DirPager {
        DirPager {
            volume_client,
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
    async fn fill(&mut self) -> Result<(), nfsstat3> {
        let (entries, eof) = self
            .volume_client
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
                    .follow(&self.volume_client, self.dir, &entry.fid)
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
        // A page with nothing in it ends the listing (never ask for it again).
        self.eof |= self.buffered.is_empty();
        Ok(())
    }

    /// The next entry, or `None` at the end of the directory.
    pub async fn next(&mut self) -> Result<Option<Entry>, nfsstat3> {
        if self.buffered.is_empty() && !self.eof {
            self.fill().await?;
        }
        let entry = self.buffered.pop_front();
        if let Some(e) = &entry {
            self.cookie = e.cookie;
        }
        Ok(entry)
    }
}
