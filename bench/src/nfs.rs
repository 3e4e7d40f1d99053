//! A userspace NFSv3 client (over nfs3_client) for tests and workloads: no mount, no root.
//!
//! Every call returns the NFS status on failure; an RPC-level failure (connection lost,
//! garbage reply) is logged and reported as `NFS3ERR_IO`.

use nfs3_client::io::{AsyncRead, AsyncWrite};
use nfs3_client::net::Connector;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type Fh = nfs_fh3;
pub type Res<T> = Result<T, nfsstat3>;

/// One mounted connection with a fixed AUTH_SYS credential.
pub struct Nfs {
    conn: Nfs3Connection<CountedTcp>,
    pub root: Fh,
    traffic: Arc<AtomicU64>,
}

/// A TCP connection (no Nagle delay, as kernel clients run) that counts the bytes it
/// carries both ways, so the bench can tell the NFS traffic from the rest of the loopback
/// traffic.
pub struct CountedTcp {
    stream: TcpStream,
    traffic: Arc<AtomicU64>,
}

impl AsyncRead for CountedTcp {
    async fn async_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf).await?;
        self.traffic.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// nfs3_client's own version loops for ever, spinning, once the server closes the
    /// connection (a read of 0 bytes is taken as progress): a call to a daemon that was
    /// killed never returned. The end of the stream is an error here.
    async fn async_read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.stream.read_exact(buf).await?;
        self.traffic.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl AsyncWrite for CountedTcp {
    async fn async_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.stream.write(buf).await?;
        self.traffic.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Makes [`CountedTcp`] connections adding to one counter.
struct CountingConnector(Arc<AtomicU64>);

impl CountingConnector {
    fn counted(&self, stream: TcpStream) -> std::io::Result<CountedTcp> {
        stream.set_nodelay(true)?;
        Ok(CountedTcp {
            stream,
            traffic: self.0.clone(),
        })
    }
}

impl Connector for CountingConnector {
    type Connection = CountedTcp;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<CountedTcp> {
        self.counted(TcpStream::connect(addr).await?)
    }

    /// From source port `port` (nfs3_client tries ports below 1024 in turn; binding one
    /// needs root).
    async fn connect_with_port(&self, addr: SocketAddr, port: u16) -> std::io::Result<CountedTcp> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        self.counted(socket.connect(addr).await?)
    }
}

fn dirop<'a>(dir: &Fh, name: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3(Opaque::borrowed(name.as_bytes())),
    }
}

fn fh_of(obj: post_op_fh3) -> Res<Fh> {
    match obj {
        Nfs3Option::Some(fh) => Ok(fh),
        Nfs3Option::None => Err(nfsstat3::NFS3ERR_SERVERFAULT),
    }
}

/// Flattens an RPC result into the NFS status.
fn flat<T, E>(r: Result<Nfs3Result<T, E>, nfs3_client::RpcError>) -> Res<T> {
    match r {
        Ok(Nfs3Result::Ok(ok)) => Ok(ok),
        Ok(Nfs3Result::Err((status, _))) => Err(status),
        Err(e) => {
            tracing::warn!("NFS RPC failed: {e}");
            Err(nfsstat3::NFS3ERR_IO)
        }
    }
}

macro_rules! ok {
    ($e:expr) => {
        flat($e)
    };
}

/// `.` and `..`, which listings start with and the helpers here leave out.
fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

pub fn mode(m: u32) -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(m),
        ..sattr3::default()
    }
}

impl Nfs {
    /// Mounts `/` of the endpoint on 127.0.0.1:`port` as root.
    pub async fn connect(port: u16) -> anyhow::Result<Nfs> {
        Self::connect_as(port, 0, 0).await
    }

    /// Mounts `/` as uid 0 for the command-line tools (`mkmount`, `repair`): from a
    /// privileged source port when this process may bind one (a daemon with its default
    /// settings takes calls only from those), from any port otherwise.
    pub async fn connect_as_root(port: u16) -> anyhow::Result<Nfs> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match Self::connect_privileged(addr, 0, 0).await {
            Ok(nfs) => Ok(nfs),
            Err(privileged) => Self::connect_to(addr, 0, 0).await.map_err(|e| {
                anyhow::anyhow!("{e} (from a privileged port: {privileged}; run as root?)")
            }),
        }
    }

    /// Mounts `/` with an AUTH_SYS credential of `uid`/`gid`.
    pub async fn connect_as(port: u16, uid: u32, gid: u32) -> anyhow::Result<Nfs> {
        Self::connect_to(SocketAddr::from(([127, 0, 0, 1], port)), uid, gid).await
    }

    /// Mounts `/` of the endpoint at `addr` (NFS and MOUNT on one port) with an AUTH_SYS
    /// credential of `uid`/`gid`.
    pub async fn connect_to(addr: SocketAddr, uid: u32, gid: u32) -> anyhow::Result<Nfs> {
        Self::connect_from(addr, uid, gid, &[], false).await
    }

    /// Mounts `/` on 127.0.0.1:`port` as `uid`, primary group `gid` and supplementary
    /// groups `gids`.
    pub async fn connect_with_groups(
        port: u16,
        uid: u32,
        gid: u32,
        gids: &[u32],
    ) -> anyhow::Result<Nfs> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self::connect_from(addr, uid, gid, gids, false).await
    }

    /// [`Nfs::connect_to`] from a privileged source port (below 1024: the process must be
    /// root), as the kernel's client connects; a daemon refusing unprivileged ports (its
    /// default) takes calls only from such connections.
    pub async fn connect_privileged(addr: SocketAddr, uid: u32, gid: u32) -> anyhow::Result<Nfs> {
        Self::connect_from(addr, uid, gid, &[], true).await
    }

    async fn connect_from(
        addr: SocketAddr,
        uid: u32,
        gid: u32,
        gids: &[u32],
        privileged: bool,
    ) -> anyhow::Result<Nfs> {
        let cred = opaque_auth::auth_unix(&auth_unix {
            stamp: 1,
            machinename: Opaque::owned(b"test".to_vec()),
            uid,
            gid,
            gids: gids.to_vec(),
        });
        let traffic = Arc::new(AtomicU64::new(0));
        let host = addr.ip().to_string();
        let conn = Nfs3ConnectionBuilder::new(CountingConnector(traffic.clone()), host, "/")
            .connect_from_privileged_port(privileged)
            .mount_port(addr.port())
            .nfs3_port(addr.port())
            .credential(cred)
            .mount()
            .await
            .map_err(|e| anyhow::anyhow!("mounting {addr}: {e}"))?;
        let root = conn.root_nfs_fh3();
        Ok(Nfs {
            conn,
            root,
            traffic,
        })
    }

    /// Bytes this connection has carried both ways (RPC records; TCP/IP headers not
    /// counted).
    pub fn traffic(&self) -> u64 {
        self.traffic.load(Ordering::Relaxed)
    }

    pub async fn getattr(&mut self, fh: &Fh) -> Res<fattr3> {
        ok!(self
            .conn
            .getattr(&GETATTR3args { object: fh.clone() })
            .await)
        .map(|r| r.obj_attributes)
    }

    pub async fn lookup(&mut self, dir: &Fh, name: &str) -> Res<Fh> {
        ok!(self
            .conn
            .lookup(&LOOKUP3args {
                what: dirop(dir, name)
            })
            .await)
        .map(|r| r.object)
    }

    pub async fn create_how(&mut self, dir: &Fh, name: &str, how: createhow3) -> Res<Fh> {
        ok!(self
            .conn
            .create(&CREATE3args {
                where_: dirop(dir, name),
                how
            })
            .await)
        .and_then(|r| fh_of(r.obj))
    }

    pub async fn create(&mut self, dir: &Fh, name: &str) -> Res<Fh> {
        self.create_how(dir, name, createhow3::UNCHECKED(mode(0o644)))
            .await
    }

    pub async fn mkdir(&mut self, dir: &Fh, name: &str) -> Res<Fh> {
        self.mkdir_mode(dir, name, 0o755).await
    }

    pub async fn mkdir_mode(&mut self, dir: &Fh, name: &str, m: u32) -> Res<Fh> {
        ok!(self
            .conn
            .mkdir(&MKDIR3args {
                where_: dirop(dir, name),
                attributes: mode(m)
            })
            .await)
        .and_then(|r| fh_of(r.obj))
    }

    /// ACCESS: which of the `asked` ACCESS3 bits the caller holds.
    pub async fn access(&mut self, fh: &Fh, asked: u32) -> Res<u32> {
        ok!(self
            .conn
            .access(&ACCESS3args {
                object: fh.clone(),
                access: asked
            })
            .await)
        .map(|r| r.access)
    }

    pub async fn symlink(&mut self, dir: &Fh, name: &str, target: &str) -> Res<Fh> {
        let args = SYMLINK3args {
            where_: dirop(dir, name),
            symlink: symlinkdata3 {
                symlink_attributes: sattr3::default(),
                symlink_data: nfspath3(Opaque::borrowed(target.as_bytes())),
            },
        };
        ok!(self.conn.symlink(&args).await).and_then(|r| fh_of(r.obj))
    }

    /// MKNOD: a FIFO, socket or device node as `what` says.
    pub async fn mknod(&mut self, dir: &Fh, name: &str, what: mknoddata3) -> Res<Fh> {
        let args = MKNOD3args {
            where_: dirop(dir, name),
            what,
        };
        ok!(self.conn.mknod(&args).await).and_then(|r| fh_of(r.obj))
    }

    pub async fn readlink(&mut self, fh: &Fh) -> Res<Vec<u8>> {
        ok!(self
            .conn
            .readlink(&READLINK3args {
                symlink: fh.clone()
            })
            .await)
        .map(|r| r.data.0.to_vec())
    }

    pub async fn write(
        &mut self,
        fh: &Fh,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Res<WRITE3resok> {
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count: u32::try_from(data.len()).map_err(|_| nfsstat3::NFS3ERR_INVAL)?,
            stable,
            data: Opaque::borrowed(data),
        };
        ok!(self.conn.write(&args).await)
    }

    pub async fn commit(&mut self, fh: &Fh) -> Res<()> {
        self.commit_verifier(fh).await.map(|_| ())
    }

    /// COMMIT of the whole file; the server's write verifier (a client sends again the
    /// UNSTABLE writes it made under another one).
    pub async fn commit_verifier(&mut self, fh: &Fh) -> Res<writeverf3> {
        ok!(self
            .conn
            .commit(&COMMIT3args {
                file: fh.clone(),
                offset: 0,
                count: 0
            })
            .await)
        .map(|r| r.verf)
    }

    pub async fn read(&mut self, fh: &Fh, offset: u64, count: u32) -> Res<(Vec<u8>, bool)> {
        ok!(self
            .conn
            .read(&READ3args {
                file: fh.clone(),
                offset,
                count
            })
            .await)
        .map(|r| (r.data.to_vec(), r.eof))
    }

    /// Reads a whole file in 1 MiB requests, feeding `sink`.
    pub async fn read_each(&mut self, fh: &Fh, mut sink: impl FnMut(&[u8])) -> Res<u64> {
        let mut offset = 0u64;
        loop {
            let (data, eof) = self.read(fh, offset, 1 << 20).await?;
            sink(&data);
            offset += data.len() as u64;
            if eof || data.is_empty() {
                return Ok(offset);
            }
        }
    }

    pub async fn read_all(&mut self, fh: &Fh) -> Res<Vec<u8>> {
        let mut out = Vec::new();
        self.read_each(fh, |d| out.extend_from_slice(d)).await?;
        Ok(out)
    }

    pub async fn setattr(&mut self, fh: &Fh, attrs: sattr3) -> Res<()> {
        let args = SETATTR3args {
            object: fh.clone(),
            new_attributes: attrs,
            guard: Nfs3Option::None,
        };
        ok!(self.conn.setattr(&args).await).map(|_| ())
    }

    pub async fn remove(&mut self, dir: &Fh, name: &str) -> Res<()> {
        ok!(self
            .conn
            .remove(&REMOVE3args {
                object: dirop(dir, name)
            })
            .await)
        .map(|_| ())
    }

    pub async fn rmdir(&mut self, dir: &Fh, name: &str) -> Res<()> {
        ok!(self
            .conn
            .rmdir(&RMDIR3args {
                object: dirop(dir, name)
            })
            .await)
        .map(|_| ())
    }

    /// LINK: `file` gets the further name `name` in `dir`; the file's link count after.
    pub async fn link(&mut self, file: &Fh, dir: &Fh, name: &str) -> Res<u32> {
        let args = LINK3args {
            file: file.clone(),
            link: dirop(dir, name),
        };
        let ok = ok!(self.conn.link(&args).await)?;
        match ok.file_attributes {
            post_op_attr::Some(a) => Ok(a.nlink),
            post_op_attr::None => Err(nfsstat3::NFS3ERR_SERVERFAULT),
        }
    }

    pub async fn rename(&mut self, from: &Fh, from_name: &str, to: &Fh, to_name: &str) -> Res<()> {
        let args = RENAME3args {
            from: dirop(from, from_name),
            to: dirop(to, to_name),
        };
        ok!(self.conn.rename(&args).await).map(|_| ())
    }

    /// Every entry name with plain READDIR pages of `count` bytes, following cookies and
    /// handing back the cookie verifier as a real client does.
    pub async fn list_plain(&mut self, dir: &Fh, count: u32) -> Res<Vec<String>> {
        let mut names = Vec::new();
        let mut cookie = 0;
        let mut cookieverf = cookieverf3::default();
        loop {
            let args = READDIR3args {
                dir: dir.clone(),
                cookie,
                cookieverf,
                count,
            };
            let ok = ok!(self.conn.readdir(&args).await)?;
            cookieverf = ok.cookieverf;
            for e in ok.reply.entries.0 {
                cookie = e.cookie;
                if !is_dot(e.name.as_ref()) {
                    names.push(String::from_utf8_lossy(e.name.as_ref()).into_owned());
                }
            }
            if ok.reply.eof {
                return Ok(names);
            }
        }
    }

    /// FSINFO of the export's root.
    /// FSSTAT of the export: (total, free, available) bytes and (total, free) objects.
    pub async fn fsstat(&mut self) -> Res<(u64, u64, u64, u64, u64)> {
        let args = FSSTAT3args {
            fsroot: self.root.clone(),
        };
        ok!(self.conn.fsstat(&args).await)
            .map(|r| (r.tbytes, r.fbytes, r.abytes, r.tfiles, r.ffiles))
    }

    pub async fn fsinfo(&mut self) -> Res<FSINFO3resok> {
        let args = FSINFO3args {
            fsroot: self.root.clone(),
        };
        ok!(self.conn.fsinfo(&args).await)
    }

    /// One plain READDIR page as the endpoint sends it (`.` and `..` included): (name,
    /// cookie, fileid) of each entry, the cookie verifier and whether it ends the listing.
    pub async fn readdir_page(
        &mut self,
        dir: &Fh,
        cookie: u64,
        verifier: [u8; 8],
        count: u32,
    ) -> Res<(Vec<(String, u64, u64)>, [u8; 8], bool)> {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf: cookieverf3(verifier),
            count,
        };
        let ok = ok!(self.conn.readdir(&args).await)?;
        let entries = ok
            .reply
            .entries
            .0
            .into_iter()
            .map(|e| {
                let name = String::from_utf8_lossy(e.name.as_ref()).into_owned();
                (name, e.cookie, e.fileid)
            })
            .collect();
        Ok((entries, ok.cookieverf.0, ok.reply.eof))
    }

    /// Every entry of a directory by READDIRPLUS (`.` and `..` left out): its name, and
    /// whether the reply carried its handle and its attributes.
    pub async fn list_with_handles(&mut self, dir: &Fh) -> Res<Vec<(String, bool, bool)>> {
        self.walk_plus(dir, |name, e| {
            let handle = matches!(e.name_handle, Nfs3Option::Some(_));
            let attrs = matches!(e.name_attributes, Nfs3Option::Some(_));
            (name, handle, attrs)
        })
        .await
    }

    /// Walks a directory by READDIRPLUS, following cookies, `.` and `..` left out: what
    /// `each` makes of every entry (given its name).
    async fn walk_plus<T>(
        &mut self,
        dir: &Fh,
        mut each: impl FnMut(String, &entryplus3<'_>) -> T,
    ) -> Res<Vec<T>> {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let args = READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf: cookieverf3::default(),
                dircount: 64 * 1024,
                maxcount: 64 * 1024,
            };
            let ok = ok!(self.conn.readdirplus(&args).await)?;
            for e in &ok.reply.entries.0 {
                cookie = e.cookie;
                if !is_dot(e.name.as_ref()) {
                    let name = String::from_utf8_lossy(e.name.as_ref()).into_owned();
                    out.push(each(name, e));
                }
            }
            if ok.reply.eof {
                return Ok(out);
            }
        }
    }

    /// One READDIRPLUS page (`.` and `..` left out).
    pub async fn readdirplus(
        &mut self,
        dir: &Fh,
        cookie: u64,
        maxcount: u32,
    ) -> Res<(Vec<(String, u64)>, bool)> {
        let args = READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: cookieverf3::default(),
            dircount: maxcount,
            maxcount,
        };
        let ok = ok!(self.conn.readdirplus(&args).await)?;
        let entries = ok
            .reply
            .entries
            .0
            .into_iter()
            .filter(|e| !is_dot(e.name.as_ref()))
            .map(|e| {
                (
                    String::from_utf8_lossy(e.name.as_ref()).into_owned(),
                    e.cookie,
                )
            })
            .collect();
        Ok((entries, ok.reply.eof))
    }

    /// The directory holding `path` ("/a/b/name", from the export's root) and the name.
    pub async fn parent_of(&mut self, path: &str) -> anyhow::Result<(Fh, String)> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((name, dirs)) = parts.split_last() else {
            anyhow::bail!("{path:?} names no file");
        };
        let mut dir = self.root.clone();
        for d in dirs {
            dir = self
                .lookup(&dir, d)
                .await
                .map_err(|e| anyhow::anyhow!("looking up {d:?} in {path}: {e:?}"))?;
        }
        Ok((dir, (*name).to_string()))
    }

    /// Every entry's name and fileid (READDIRPLUS), following cookies.
    pub async fn list_ids(&mut self, dir: &Fh) -> Res<Vec<(String, u64)>> {
        self.walk_plus(dir, |name, e| (name, e.fileid)).await
    }

    /// Every entry name but `.` and `..`, following cookies.
    pub async fn list(&mut self, dir: &Fh) -> Res<Vec<String>> {
        let mut names = Vec::new();
        let mut cookie = 0;
        loop {
            let (page, eof) = self.readdirplus(dir, cookie, 64 * 1024).await?;
            if let Some((_, last)) = page.last() {
                cookie = *last;
            }
            names.extend(
                page.into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| n != "." && n != ".."),
            );
            if eof {
                return Ok(names);
            }
        }
    }
}
