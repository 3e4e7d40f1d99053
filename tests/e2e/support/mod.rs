//! Test support: a local cluster (in-process or as separate processes) laid out exactly as
//! `codetta up` lays it out, and a userspace NFSv3 client over the real endpoint.

#![allow(dead_code)]

pub mod nfs;

use codetta::admin::{self, AdminConfig};
use codetta_client::{ClientConfig, ClientDaemon};
use codetta_server::{ServerConfig, ServerDaemon};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::watch;

/// A free UDP+TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Paths and configurations of one cluster directory.
pub struct Layout {
    pub dir: PathBuf,
    pub server_toml: PathBuf,
    pub client_toml: PathBuf,
    pub admin: AdminConfig,
    pub nfs_port: u16,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        let server_port = free_port();
        let nfs_port = free_port();
        let (server_toml, client_toml, admin) =
            codetta::up::prepare(dir, server_port, nfs_port).expect("prepare cluster dir");
        Layout {
            dir: dir.to_path_buf(),
            server_toml,
            client_toml,
            admin,
            nfs_port,
        }
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig::load(&self.server_toml).expect("server config")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::load(&self.client_toml).expect("client config")
    }
}

/// Server and client daemon running as tasks of the test's runtime.
pub struct Cluster {
    pub layout: Layout,
    _tmp: Option<tempfile::TempDir>,
    pub server: Option<ServerDaemon>,
    pub client: Option<ClientDaemon>,
    stop: Option<watch::Sender<bool>>,
}

impl Cluster {
    /// A fresh cluster with a root volume, in a temporary directory.
    pub async fn start() -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(tmp.path());
        let mut cluster = Cluster {
            layout,
            _tmp: Some(tmp),
            server: None,
            client: None,
            stop: None,
        };
        cluster.start_server().await;
        admin::ensure_volume(&cluster.layout.admin, "root")
            .await
            .expect("root volume");
        cluster.start_client().await;
        cluster
    }

    /// Starts the server; retries for a while if the previous in-process endpoint's UDP
    /// socket is still being released (quinn drops it when its last connection is gone).
    pub async fn start_server(&mut self) {
        let config = self.layout.server_config();
        let mut attempts = 0;
        loop {
            match ServerDaemon::start(&config).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(e) if attempts < 50 && format!("{e:#}").contains("in use") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("server starts: {e:#}"),
            }
        }
    }

    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    pub async fn start_client(&mut self) {
        let (tx, rx) = watch::channel(false);
        let config = self.layout.client_config();
        self.client = Some(
            ClientDaemon::start(&config, rx)
                .await
                .expect("client starts"),
        );
        self.stop = Some(tx);
    }

    pub async fn stop_client(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(c) = self.client.take() {
            c.stop().await;
        }
    }

    pub fn nfs_port(&self) -> u16 {
        self.layout.nfs_port
    }

    pub async fn nfs(&self) -> nfs::Nfs {
        nfs::Nfs::connect(self.nfs_port()).await
    }

    pub async fn shutdown(mut self) {
        self.stop_client().await;
        self.stop_server().await;
    }
}

/// A daemon running as a separate `codetta` process (for SIGKILL tests).
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_codetta"))
            .args(args)
            .env("CODETTA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn codetta");
        Proc { child }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `port` accepts TCP connections.
pub async fn wait_for_tcp(port: u16) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port}");
}
