//! Systems under test: the local disk, an NFS layer alone (nfs3_server's in-memory file
//! system in its own process: an outside reference), Codetta's own front end over a file
//! system in memory (`front_alone`, its own process), Codetta clusters started as
//! processes (servers and client daemon), and endpoints or mounts named by the user.

use crate::files::Access;
use crate::procstat::Watched;
use anyhow::Context;
use codetta_cluster::{Proc, ProcCluster};
use nfs3_server::memfs::{MemFs, MemFsConfig};
use nfs3_server::tcp::{NFSTcp, NFSTcpListener};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The client cache the bench's clusters run with (the default is 256 MiB; the full
/// profile's sequential files are 1 GiB).
pub const BENCH_CLIENT_CACHE: &str = "cache_mib = 2048";

/// A system named on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemSpec {
    LocalDisk,
    NfsLayer,
    /// Codetta's front end with a file system in memory behind it.
    FrontAlone,
    Codetta {
        replicas: usize,
    },
    /// Another NFSv3 endpoint (`--target NAME=host:port`).
    Target {
        name: String,
        addr: SocketAddr,
    },
    /// A directory where an NFS export is mounted (`--mount NAME=PATH`).
    Mount {
        name: String,
        path: PathBuf,
    },
}

impl SystemSpec {
    pub fn name(&self) -> String {
        match self {
            SystemSpec::LocalDisk => "local disk".into(),
            SystemSpec::NfsLayer => "NFS layer alone".into(),
            SystemSpec::FrontAlone => "front end alone".into(),
            SystemSpec::Codetta { replicas: 1 } => "codetta 1 replica".into(),
            SystemSpec::Codetta { replicas } => format!("codetta {replicas} replicas"),
            SystemSpec::Target { name, .. } | SystemSpec::Mount { name, .. } => name.clone(),
        }
    }

    /// Parses `NAME=host:port` for `--target`.
    pub fn parse_target(arg: &str) -> anyhow::Result<SystemSpec> {
        let (name, addr) = arg
            .split_once('=')
            .with_context(|| format!("{arg:?}: expected NAME=host:port"))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .with_context(|| format!("{addr:?}: not a host:port"))?
            .next()
            .with_context(|| format!("{addr:?} resolves to no address"))?;
        Ok(SystemSpec::Target {
            name: name.to_string(),
            addr,
        })
    }

    /// Parses `NAME=PATH` for `--mount`.
    pub fn parse_mount(arg: &str) -> anyhow::Result<SystemSpec> {
        let (name, path) = arg
            .split_once('=')
            .with_context(|| format!("{arg:?}: expected NAME=PATH"))?;
        anyhow::ensure!(Path::new(path).is_dir(), "{path}: not a directory");
        Ok(SystemSpec::Mount {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// What keeps a started system alive.
enum Holder {
    Cluster(Box<ProcCluster>),
    Memfs(Proc),
    None,
}

/// A system ready for workloads.
pub struct System {
    pub spec: SystemSpec,
    pub access: Access,
    /// Its processes (the bench itself included: it is the NFS client or does the system
    /// calls), for CPU time, disk bytes and peak memory.
    pub watched: Vec<Watched>,
    holder: Holder,
    _dir: Option<tempfile::TempDir>,
}

fn bench_process() -> Watched {
    Watched {
        name: "bench".into(),
        pid: std::process::id(),
        server: None,
    }
}

/// Waits until something accepts TCP connections on `port`.
async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    anyhow::bail!("nothing listens on port {port}")
}

impl System {
    /// Starts `spec` with its files under `scratch`; `binary` is the `codetta` executable.
    pub async fn start(spec: &SystemSpec, binary: &Path, scratch: &Path) -> anyhow::Result<System> {
        let mut watched = vec![bench_process()];
        let (access, holder, dir) = match spec {
            SystemSpec::LocalDisk => {
                let dir = tempfile::tempdir_in(scratch)?;
                (
                    Access::Path(dir.path().to_path_buf()),
                    Holder::None,
                    Some(dir),
                )
            }
            SystemSpec::NfsLayer | SystemSpec::FrontAlone => {
                let dir = tempfile::tempdir_in(scratch)?;
                let port = codetta_cluster::free_port()?;
                let (command, process) = match spec {
                    SystemSpec::NfsLayer => ("bench-memfs", "memfs"),
                    _ => ("bench-front", "front"),
                };
                let proc = Proc::spawn(
                    binary,
                    &[command, "--port", &port.to_string()],
                    &dir.path().join(format!("{process}.log")),
                )?;
                wait_for_port(port).await?;
                watched.push(Watched {
                    name: process.into(),
                    pid: proc.pid(),
                    server: None,
                });
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                (Access::Nfs(addr), Holder::Memfs(proc), Some(dir))
            }
            SystemSpec::Codetta { replicas } => {
                let dir = tempfile::tempdir_in(scratch)?;
                // A client cache that holds the files the reads go through again.
                let cluster = ProcCluster::start_with_client(
                    binary,
                    dir.path(),
                    *replicas,
                    &[],
                    &[BENCH_CLIENT_CACHE],
                )
                .await?;
                watched.push(Watched {
                    name: "client".into(),
                    pid: cluster.client_pid().unwrap_or(0),
                    server: None,
                });
                for i in 0..*replicas {
                    watched.push(Watched {
                        name: format!("s{}", i + 1),
                        pid: cluster.servers.pid(i).unwrap_or(0),
                        server: Some(i),
                    });
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], cluster.layout.nfs_port));
                (
                    Access::Nfs(addr),
                    Holder::Cluster(Box::new(cluster)),
                    Some(dir),
                )
            }
            SystemSpec::Target { addr, .. } => (Access::Nfs(*addr), Holder::None, None),
            SystemSpec::Mount { path, .. } => (Access::Path(path.clone()), Holder::None, None),
        };
        Ok(System {
            spec: spec.clone(),
            access,
            watched,
            holder,
            _dir: dir,
        })
    }

    pub fn name(&self) -> String {
        self.spec.name()
    }

    /// The Codetta cluster behind this system, if it is one the harness started.
    pub fn cluster(&mut self) -> Option<&mut ProcCluster> {
        match &mut self.holder {
            Holder::Cluster(c) => Some(c),
            _ => None,
        }
    }

    /// Updates the watched process ids (after a server restart).
    pub fn rewatch(&mut self) {
        let Holder::Cluster(c) = &self.holder else {
            return;
        };
        for w in &mut self.watched {
            if let Some(i) = w.server {
                w.pid = c.servers.pid(i).unwrap_or(0);
            }
        }
    }

    /// Stops the system's processes.
    pub fn stop(&mut self) {
        match std::mem::replace(&mut self.holder, Holder::None) {
            Holder::Cluster(mut c) => c.stop(),
            Holder::Memfs(mut p) => p.terminate(std::time::Duration::from_secs(2)),
            Holder::None => {}
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves nfs3_server's in-memory file system on 127.0.0.1:`port` until the process ends
/// (`codetta bench-memfs`, the NFS layer's ceiling).
pub async fn serve_memfs(port: u16) -> anyhow::Result<()> {
    let fs = MemFs::new(MemFsConfig::default()).map_err(|e| anyhow::anyhow!("memfs: {e:?}"))?;
    let listener = NFSTcpListener::bind(&format!("127.0.0.1:{port}"), fs).await?;
    listener.handle_forever().await?;
    Ok(())
}
