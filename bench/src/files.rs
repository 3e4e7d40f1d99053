//! The file operations a workload issues, on an NFSv3 endpoint (the userspace client, one
//! request in flight per connection) or on a local or mounted directory (system calls).

use crate::nfs::{Fh, Nfs};
use anyhow::Context;
use nfs3_client::nfs3_types::nfs3::{Nfs3Option, nfsstat3, sattr3, stable_how};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// How a lane reaches the system under test.
#[derive(Debug, Clone)]
pub enum Access {
    /// An NFSv3 endpoint (NFS and MOUNT on one port).
    Nfs(std::net::SocketAddr),
    /// A directory: the local disk, or where an NFS export is mounted.
    Path(PathBuf),
}

/// File operations, as a client program issues them.
#[allow(async_fn_in_trait)]
pub trait Files {
    type Dir: Clone;
    type File: Clone;
    fn root(&self) -> Self::Dir;
    async fn mkdir(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<Self::Dir>;
    async fn lookup_dir(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<Self::Dir>;
    /// Creates (or truncates) a file.
    async fn create(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<Self::File>;
    async fn open(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<Self::File>;
    /// A write the server may keep unstable until [`Files::commit`].
    async fn write(&mut self, file: &Self::File, offset: u64, data: &[u8]) -> anyhow::Result<()>;
    /// Sets the file's size (SETATTR, ftruncate).
    async fn set_len(&mut self, file: &Self::File, len: u64) -> anyhow::Result<()>;
    /// Everything written to `file` made durable (NFS COMMIT, fsync).
    async fn commit(&mut self, file: &Self::File) -> anyhow::Result<()>;
    /// Reads up to `len` bytes at `offset` into `buf`; the bytes read.
    async fn read(
        &mut self,
        file: &Self::File,
        offset: u64,
        buf: &mut Vec<u8>,
        len: usize,
    ) -> anyhow::Result<usize>;
    /// `stat` of a name: LOOKUP then GETATTR.
    async fn stat(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<()>;
    /// Every entry of a directory with its attributes (READDIRPLUS); how many.
    async fn list(&mut self, dir: &Self::Dir) -> anyhow::Result<Vec<String>>;
    async fn remove(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<()>;
    async fn rmdir(&mut self, dir: &Self::Dir, name: &str) -> anyhow::Result<()>;
    /// Bytes carried to and from the endpoint so far (0 for a directory).
    fn traffic(&self) -> u64;
}

pub(crate) fn nfs_err(op: &str, name: &str) -> impl FnOnce(nfsstat3) -> anyhow::Error {
    move |e| anyhow::anyhow!("{op} {name:?}: {e:?}")
}

impl Files for Nfs {
    type Dir = Fh;
    type File = Fh;

    fn root(&self) -> Fh {
        self.root.clone()
    }

    async fn mkdir(&mut self, dir: &Fh, name: &str) -> anyhow::Result<Fh> {
        Nfs::mkdir(self, dir, name)
            .await
            .map_err(nfs_err("MKDIR", name))
    }

    async fn lookup_dir(&mut self, dir: &Fh, name: &str) -> anyhow::Result<Fh> {
        self.lookup(dir, name)
            .await
            .map_err(nfs_err("LOOKUP", name))
    }

    async fn create(&mut self, dir: &Fh, name: &str) -> anyhow::Result<Fh> {
        Nfs::create(self, dir, name)
            .await
            .map_err(nfs_err("CREATE", name))
    }

    async fn open(&mut self, dir: &Fh, name: &str) -> anyhow::Result<Fh> {
        self.lookup(dir, name)
            .await
            .map_err(nfs_err("LOOKUP", name))
    }

    async fn write(&mut self, file: &Fh, offset: u64, data: &[u8]) -> anyhow::Result<()> {
        let ok = Nfs::write(self, file, offset, data, stable_how::UNSTABLE)
            .await
            .map_err(nfs_err("WRITE", ""))?;
        anyhow::ensure!(
            ok.count as usize == data.len(),
            "short WRITE: {} of {} bytes (the endpoint's wtmax is smaller)",
            ok.count,
            data.len()
        );
        Ok(())
    }

    async fn set_len(&mut self, file: &Fh, len: u64) -> anyhow::Result<()> {
        let attrs = sattr3 {
            size: Nfs3Option::Some(len),
            ..sattr3::default()
        };
        self.setattr(file, attrs)
            .await
            .map_err(nfs_err("SETATTR", ""))
    }

    /// A COMMIT answered JUKEBOX (the writes still on their way to the servers) is sent
    /// again, as the kernel's client does.
    async fn commit(&mut self, file: &Fh) -> anyhow::Result<()> {
        patiently!(Nfs::commit(self, file).await).map_err(nfs_err("COMMIT", ""))
    }

    async fn read(
        &mut self,
        file: &Fh,
        offset: u64,
        buf: &mut Vec<u8>,
        len: usize,
    ) -> anyhow::Result<usize> {
        let count = u32::try_from(len).context("read size")?;
        let (data, _) = Nfs::read(self, file, offset, count)
            .await
            .map_err(nfs_err("READ", ""))?;
        let n = data.len();
        *buf = data;
        Ok(n)
    }

    async fn stat(&mut self, dir: &Fh, name: &str) -> anyhow::Result<()> {
        let fh = self
            .lookup(dir, name)
            .await
            .map_err(nfs_err("LOOKUP", name))?;
        self.getattr(&fh).await.map_err(nfs_err("GETATTR", name))?;
        Ok(())
    }

    async fn list(&mut self, dir: &Fh) -> anyhow::Result<Vec<String>> {
        Nfs::list(self, dir)
            .await
            .map_err(nfs_err("READDIRPLUS", ""))
    }

    async fn remove(&mut self, dir: &Fh, name: &str) -> anyhow::Result<()> {
        Nfs::remove(self, dir, name)
            .await
            .map_err(nfs_err("REMOVE", name))
    }

    async fn rmdir(&mut self, dir: &Fh, name: &str) -> anyhow::Result<()> {
        Nfs::rmdir(self, dir, name)
            .await
            .map_err(nfs_err("RMDIR", name))
    }

    fn traffic(&self) -> u64 {
        Nfs::traffic(self)
    }
}

/// A directory used with system calls (blocking: each lane runs on its own thread).
pub struct Local {
    root: PathBuf,
}

impl Local {
    pub fn new(root: PathBuf) -> Local {
        Local { root }
    }
}

/// An open local file and its path.
pub type LocalFile = Arc<std::fs::File>;

impl Files for Local {
    type Dir = PathBuf;
    type File = LocalFile;

    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    async fn mkdir(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(path)
    }

    async fn lookup_dir(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<PathBuf> {
        Ok(dir.join(name))
    }

    async fn create(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<LocalFile> {
        let path = dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Arc::new(f))
    }

    async fn open(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<LocalFile> {
        let path = dir.join(name);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        Ok(Arc::new(f))
    }

    async fn write(&mut self, file: &LocalFile, offset: u64, data: &[u8]) -> anyhow::Result<()> {
        file.write_all_at(data, offset).context("pwrite")
    }

    async fn set_len(&mut self, file: &LocalFile, len: u64) -> anyhow::Result<()> {
        file.set_len(len).context("ftruncate")
    }

    async fn commit(&mut self, file: &LocalFile) -> anyhow::Result<()> {
        file.sync_all().context("fsync")
    }

    async fn read(
        &mut self,
        file: &LocalFile,
        offset: u64,
        buf: &mut Vec<u8>,
        len: usize,
    ) -> anyhow::Result<usize> {
        buf.resize(len, 0);
        let mut done = 0;
        while done < len {
            let n = file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    async fn stat(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        Ok(())
    }

    async fn list(&mut self, dir: &PathBuf) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("readdir {}", dir.display()))? {
            let e = e?;
            // READDIRPLUS returns attributes too.
            e.metadata()?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    async fn remove(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))
    }

    async fn rmdir(&mut self, dir: &PathBuf, name: &str) -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::remove_dir(&path).with_context(|| format!("rmdir {}", path.display()))
    }

    fn traffic(&self) -> u64 {
        0
    }
}
