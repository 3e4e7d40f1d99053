//! Codetta's NFS front end with nothing behind it: the daemon's own port, calls and
//! procedures (`codetta_client::front`) over a file system held in memory, in its own
//! process (`codetta bench-front`). Beside nfs3_server's in-memory file system
//! (`bench-memfs`) it shows what the front end itself costs; against Codetta it shows
//! what everything behind the front end costs.
//!
//! The file system is the least one the procedures need: no permission checks (the bench
//! is every object's owner), data in one buffer per file, one lock.

use bytes::Bytes;
use codetta_client::front::backend::{Backend, DirPages, Res};
use codetta_client::front::nfs::WriteVerifier;
use codetta_client::front::port::{self, PortLimits};
use codetta_client::front::service::FrontEnd;
use codetta_client::nfs::attrs::set_attrs;
use codetta_client::nfs::creds::Caller;
use codetta_client::nfs::dir::Entry;
use codetta_client::nfs::handle::EXPORT_ROOT;
use codetta_client::nfs::{MAX_IO, Place, Stability};
use codetta_oncrpc::nfs3 as args;
use codetta_wire::message::SpaceInfo;
use codetta_wire::{Attrs, Fid, FileType, Name, Time, VolumeId};
use nfs3_types::nfs3::nfsstat3;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// One object: its attributes, parent (directories) and what it holds.
struct Node {
    attrs: Attrs,
    parent: Fid,
    body: Body,
}

enum Body {
    File(Vec<u8>),
    /// (cookie, name) -> object: listed in cookie order, resumed after a cookie.
    Dir(BTreeMap<(u64, Vec<u8>), Fid>),
    Symlink(Vec<u8>),
    Special,
}

/// Largest file the in-memory file system holds (FBIG past it): its files live in memory,
/// and a peer's offset must not make it allocate more.
const MAX_FILE: u64 = 4 << 30;

struct Tree {
    nodes: HashMap<Fid, Node>,
    next: u64,
}

/// A file system in memory behind the front end.
#[derive(Clone)]
pub struct MemoryBackend {
    tree: Arc<Mutex<Tree>>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            EXPORT_ROOT,
            Node {
                attrs: attrs(FileType::Directory, 0o777, 0, 0),
                parent: EXPORT_ROOT,
                body: Body::Dir(BTreeMap::new()),
            },
        );
        MemoryBackend {
            tree: Arc::new(Mutex::new(Tree { nodes, next: 2 })),
        }
    }
}

fn attrs(ftype: FileType, mode: u32, uid: u32, gid: u32) -> Attrs {
    let now = Time::now();
    Attrs {
        ftype,
        mode: mode & 0o7777,
        uid,
        gid,
        size: 0,
        nlink: if ftype == FileType::Directory { 2 } else { 1 },
        atime: now,
        mtime: now,
        ctime: now,
    }
}

fn name(bytes: &[u8]) -> Res<Name> {
    Name::new(bytes.to_vec()).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

fn key(n: &Name) -> (u64, Vec<u8>) {
    (n.cookie(), n.as_bytes().to_vec())
}

impl Tree {
    fn node(&self, fid: &Fid) -> Res<&Node> {
        self.nodes.get(fid).ok_or(nfsstat3::NFS3ERR_STALE)
    }

    fn node_mut(&mut self, fid: &Fid) -> Res<&mut Node> {
        self.nodes.get_mut(fid).ok_or(nfsstat3::NFS3ERR_STALE)
    }

    fn entries(&self, dir: &Fid) -> Res<&BTreeMap<(u64, Vec<u8>), Fid>> {
        match &self.node(dir)?.body {
            Body::Dir(e) => Ok(e),
            _ => Err(nfsstat3::NFS3ERR_NOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: &Fid) -> Res<&mut BTreeMap<(u64, Vec<u8>), Fid>> {
        let node = self.node_mut(dir)?;
        node.attrs.mtime = Time::now();
        node.attrs.ctime = node.attrs.mtime;
        match &mut node.body {
            Body::Dir(e) => Ok(e),
            _ => Err(nfsstat3::NFS3ERR_NOTDIR),
        }
    }

    fn lookup(&self, dir: &Fid, n: &Name) -> Res<Fid> {
        self.entries(dir)?
            .get(&key(n))
            .copied()
            .ok_or(nfsstat3::NFS3ERR_NOENT)
    }

    /// A new object `n` in `dir`.
    fn make(&mut self, dir: &Fid, n: &[u8], mut a: Attrs, body: Body) -> Res<(Fid, Attrs)> {
        let n = name(n)?;
        if self.entries(dir)?.contains_key(&key(&n)) {
            return Err(nfsstat3::NFS3ERR_EXIST);
        }
        let fid = Fid {
            volume: VolumeId(1),
            vnode: self.next,
            unique: 1,
        };
        self.next += 1;
        if let Body::Symlink(t) = &body {
            a.size = t.len() as u64;
        }
        let is_dir = a.ftype == FileType::Directory;
        self.entries_mut(dir)?.insert(key(&n), fid);
        if is_dir {
            self.node_mut(dir)?.attrs.nlink += 1;
        }
        self.nodes.insert(
            fid,
            Node {
                attrs: a.clone(),
                parent: *dir,
                body,
            },
        );
        Ok((fid, a))
    }

    /// Takes the name `n` from `dir`; the object goes with its last name.
    fn unlink(&mut self, dir: &Fid, n: &Name) -> Res<()> {
        let fid = self.lookup(dir, n)?;
        self.entries_mut(dir)?.remove(&key(n));
        let node = self.node_mut(&fid)?;
        if node.attrs.ftype == FileType::Directory {
            self.nodes.remove(&fid);
            self.node_mut(dir)?.attrs.nlink -= 1;
            return Ok(());
        }
        node.attrs.nlink -= 1;
        if node.attrs.nlink == 0 {
            self.nodes.remove(&fid);
        }
        Ok(())
    }
}

impl MemoryBackend {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn made(
        &self,
        place: &Place<'_>,
        caller: &Caller,
        set: &args::SetAttrs,
        kind: FileType,
        body: Body,
    ) -> Res<(Fid, Attrs)> {
        let a = attrs(kind, set.mode.unwrap_or(0o644), caller.uid, caller.gid);
        self.tree().make(&place.dir, place.name, a, body)
    }
}

/// The entries of a directory after a cookie, taken a page at a time under the lock.
pub struct MemoryPager {
    tree: Arc<Mutex<Tree>>,
    dir: Fid,
    cookie: (u64, Vec<u8>),
    page: std::collections::VecDeque<Entry>,
    eof: bool,
}

impl DirPages for MemoryPager {
    async fn next(&mut self) -> Res<Option<Entry>> {
        if self.page.is_empty() && !self.eof {
            let tree = self.tree.lock().unwrap_or_else(|p| p.into_inner());
            let entries = tree.entries(&self.dir)?;
            let after = (
                std::ops::Bound::Excluded(self.cookie.clone()),
                std::ops::Bound::Unbounded,
            );
            for ((cookie, n), fid) in entries.range(after).take(512) {
                self.cookie = (*cookie, n.clone());
                self.page.push_back(Entry {
                    name: name(n)?,
                    cookie: *cookie,
                    fid: *fid,
                    attrs: tree.nodes.get(fid).map(|node| node.attrs.clone()),
                });
            }
            self.eof = self.page.is_empty();
        }
        Ok(self.page.pop_front())
    }
}

impl Backend for MemoryBackend {
    type Pager = MemoryPager;

    async fn getattr(&self, fid: &Fid) -> Res<Attrs> {
        Ok(self.tree().node(fid)?.attrs.clone())
    }

    async fn setattr(
        &self,
        _caller: &Caller,
        fid: &Fid,
        set: &args::SetAttrs,
        _guard: Option<(u32, u32)>,
    ) -> Res<Attrs> {
        let set = set_attrs(set);
        let mut tree = self.tree();
        let node = tree.node_mut(fid)?;
        let a = &mut node.attrs;
        if let Some(mode) = set.mode {
            a.mode = mode;
        }
        if let Some(uid) = set.uid {
            a.uid = uid;
        }
        if let Some(gid) = set.gid {
            a.gid = gid;
        }
        if let Some(size) = set.size {
            let Body::File(data) = &mut node.body else {
                return Err(nfsstat3::NFS3ERR_INVAL);
            };
            data.resize(
                usize::try_from(size).map_err(|_| nfsstat3::NFS3ERR_FBIG)?,
                0,
            );
            a.size = size;
        }
        if let Some(t) = set.atime {
            a.atime = t;
        }
        if let Some(t) = set.mtime {
            a.mtime = t;
        }
        a.ctime = Time::now();
        Ok(a.clone())
    }

    async fn lookup(&self, _caller: &Caller, dir: &Fid, n: &[u8]) -> Res<Fid> {
        let tree = self.tree();
        match n {
            b"." => Ok(*dir),
            b".." => Ok(tree.node(dir)?.parent),
            _ => tree.lookup(dir, &name(n)?),
        }
    }

    async fn listed_parent(&self, dir: &Fid) -> Res<Fid> {
        Ok(self.tree().node(dir)?.parent)
    }

    async fn access(&self, _caller: &Caller, fid: &Fid, asked: u32) -> Res<(u32, Attrs)> {
        Ok((asked, self.tree().node(fid)?.attrs.clone()))
    }

    async fn readlink(&self, fid: &Fid) -> Res<(Vec<u8>, Attrs)> {
        let tree = self.tree();
        let node = tree.node(fid)?;
        match &node.body {
            Body::Symlink(t) => Ok((t.clone(), node.attrs.clone())),
            _ => Err(nfsstat3::NFS3ERR_INVAL),
        }
    }

    async fn read(
        &self,
        _caller: &Caller,
        fid: &Fid,
        offset: u64,
        count: u32,
    ) -> Res<(Vec<Bytes>, bool, Attrs)> {
        let tree = self.tree();
        let node = tree.node(fid)?;
        let Body::File(data) = &node.body else {
            return Err(nfsstat3::NFS3ERR_INVAL);
        };
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let to = from
            .saturating_add(count.min(MAX_IO) as usize)
            .min(data.len());
        let bytes = Bytes::copy_from_slice(&data[from..to]);
        Ok((vec![bytes], to == data.len(), node.attrs.clone()))
    }

    async fn write(
        &self,
        _caller: &Caller,
        fid: &Fid,
        offset: u64,
        bytes: Bytes,
        how: Stability,
    ) -> Res<(Attrs, Stability)> {
        let mut tree = self.tree();
        let node = tree.node_mut(fid)?;
        let Body::File(data) = &mut node.body else {
            return Err(nfsstat3::NFS3ERR_INVAL);
        };
        let end = offset.saturating_add(bytes.len() as u64);
        if end > MAX_FILE {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let (at, end) = (offset as usize, end as usize);
        if data.len() < end {
            data.resize(end, 0);
        }
        data[at..end].copy_from_slice(&bytes);
        node.attrs.size = data.len() as u64;
        node.attrs.mtime = Time::now();
        node.attrs.ctime = node.attrs.mtime;
        Ok((node.attrs.clone(), how))
    }

    async fn create(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        how: &args::CreateHow,
    ) -> Res<(Fid, Attrs)> {
        let set = match how {
            args::CreateHow::Unchecked(s) | args::CreateHow::Guarded(s) => *s,
            args::CreateHow::Exclusive(_) => args::SetAttrs {
                mode: None,
                uid: None,
                gid: None,
                size: None,
                atime: args::SetTime::DontChange,
                mtime: args::SetTime::DontChange,
            },
        };
        if let args::CreateHow::Unchecked(_) = how {
            let existing = self.tree().lookup(&place.dir, &name(place.name)?).ok();
            if let Some(fid) = existing {
                return Ok((fid, self.getattr(&fid).await?));
            }
        }
        self.made(
            place,
            caller,
            &set,
            FileType::Regular,
            Body::File(Vec::new()),
        )
    }

    async fn mkdir(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        set: &args::SetAttrs,
    ) -> Res<(Fid, Attrs)> {
        self.made(
            place,
            caller,
            set,
            FileType::Directory,
            Body::Dir(BTreeMap::new()),
        )
    }

    async fn symlink(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        set: &args::SetAttrs,
        target: &[u8],
    ) -> Res<(Fid, Attrs)> {
        self.made(
            place,
            caller,
            set,
            FileType::Symlink,
            Body::Symlink(target.to_vec()),
        )
    }

    async fn mknod(
        &self,
        caller: &Caller,
        place: &Place<'_>,
        kind: FileType,
        set: &args::SetAttrs,
    ) -> Res<(Fid, Attrs)> {
        self.made(place, caller, set, kind, Body::Special)
    }

    async fn link(&self, _caller: &Caller, fid: &Fid, place: &Place<'_>) -> Res<Attrs> {
        let n = name(place.name)?;
        let mut tree = self.tree();
        if tree.node(fid)?.attrs.ftype == FileType::Directory {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        if tree.entries(&place.dir)?.contains_key(&key(&n)) {
            return Err(nfsstat3::NFS3ERR_EXIST);
        }
        tree.entries_mut(&place.dir)?.insert(key(&n), *fid);
        let node = tree.node_mut(fid)?;
        node.attrs.nlink += 1;
        Ok(node.attrs.clone())
    }

    async fn remove(&self, _caller: &Caller, place: &Place<'_>, directory: bool) -> Res<()> {
        let n = name(place.name)?;
        let mut tree = self.tree();
        let fid = tree.lookup(&place.dir, &n)?;
        let node = tree.node(&fid)?;
        match (directory, &node.body) {
            (true, Body::Dir(e)) if !e.is_empty() => return Err(nfsstat3::NFS3ERR_NOTEMPTY),
            (true, Body::Dir(_)) => {}
            (true, _) => return Err(nfsstat3::NFS3ERR_NOTDIR),
            (false, Body::Dir(_)) => return Err(nfsstat3::NFS3ERR_ISDIR),
            (false, _) => {}
        }
        tree.unlink(&place.dir, &n)
    }

    async fn rename(&self, _caller: &Caller, from: &Place<'_>, to: &Place<'_>) -> Res<()> {
        let (a, b) = (name(from.name)?, name(to.name)?);
        let mut tree = self.tree();
        let fid = tree.lookup(&from.dir, &a)?;
        if let Ok(there) = tree.lookup(&to.dir, &b) {
            if there == fid {
                return Ok(());
            }
            tree.unlink(&to.dir, &b)?;
        }
        tree.entries_mut(&from.dir)?.remove(&key(&a));
        tree.entries_mut(&to.dir)?.insert(key(&b), fid);
        let node = tree.node_mut(&fid)?;
        if node.attrs.ftype == FileType::Directory {
            node.parent = to.dir;
        }
        node.attrs.ctime = Time::now();
        Ok(())
    }

    async fn open_dir(
        &self,
        _caller: &Caller,
        dir: &Fid,
        cookie: u64,
    ) -> Res<(MemoryPager, Attrs)> {
        let dir_attrs = self.getattr(dir).await?;
        Ok((
            MemoryPager {
                tree: self.tree.clone(),
                dir: *dir,
                // After every name of `cookie` (cookies are the names' hashes).
                cookie: (cookie, vec![0xFF; 256]),
                page: std::collections::VecDeque::new(),
                eof: false,
            },
            dir_attrs,
        ))
    }

    async fn fsstat(&self, fid: &Fid) -> Res<(SpaceInfo, Attrs)> {
        let tree = self.tree();
        let used: u64 = tree
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum();
        let total = 1 << 40;
        Ok((
            SpaceInfo {
                total_bytes: total,
                free_bytes: total - used.min(total),
                used_bytes: used,
                files: tree.nodes.len() as u64,
            },
            tree.node(fid)?.attrs.clone(),
        ))
    }

    async fn commit(&self, fid: &Fid) -> Res<Attrs> {
        self.getattr(fid).await
    }
}

/// Serves the front end over [`MemoryBackend`] on 127.0.0.1:`port` from any source port
/// until the process ends (`codetta bench-front`).
pub async fn serve_front_alone(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let front = Arc::new(FrontEnd::new(
        MemoryBackend::default(),
        WriteVerifier::per_start(),
    ));
    let limits = PortLimits {
        allow_unprivileged: true,
        ..PortLimits::for_writes_of(MAX_IO as usize)
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    port::serve(listener, limits, front, stop).await;
    Ok(())
}
