//! A cluster whose servers and client daemon run as tasks of this process.

use crate::admin;
use crate::layout::Layout;
use anyhow::Context;
use codetta_client::ClientDaemon;
use codetta_server::ServerDaemon;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// Servers and one client daemon in this process, over real QUIC and a real NFS port.
pub struct LocalCluster {
    pub layout: Layout,
    servers: Vec<Option<ServerDaemon>>,
    client: Option<ClientDaemon>,
    stop: Option<watch::Sender<bool>>,
}

impl LocalCluster {
    /// Prepares `dir` for `servers` servers on free ports, starts them, makes sure the root
    /// volume exists with a replica on each, and starts the client daemon.
    pub async fn start(dir: &Path, servers: usize) -> anyhow::Result<LocalCluster> {
        Self::start_with(Layout::prepare_on_free_ports(dir, servers)?).await
    }

    /// Starts a cluster on an already prepared layout.
    pub async fn start_with(layout: Layout) -> anyhow::Result<LocalCluster> {
        let mut cluster = LocalCluster {
            servers: layout.servers.iter().map(|_| None).collect(),
            layout,
            client: None,
            stop: None,
        };
        for i in 0..cluster.servers.len() {
            cluster.start_server(i).await?;
        }
        admin::ensure_volume(
            &cluster.layout.admin,
            "root",
            &cluster.layout.server_names(),
        )
        .await
        .context("creating the root volume")?;
        cluster.start_client().await?;
        Ok(cluster)
    }

    /// Starts server `i`; retries for a while if the previous in-process endpoint's UDP
    /// socket is still being released (quinn drops it when its last connection is gone).
    pub async fn start_server(&mut self, i: usize) -> anyhow::Result<()> {
        let config = self.layout.server_config(i)?;
        let mut attempts = 0;
        loop {
            match ServerDaemon::start(&config).await {
                Ok(server) => {
                    self.servers[i] = Some(server);
                    return Ok(());
                }
                Err(e) if attempts < 50 && format!("{e:#}").contains("in use") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops server `i` (if running).
    pub async fn stop_server(&mut self, i: usize) {
        if let Some(server) = self.servers.get_mut(i).and_then(Option::take) {
            server.stop().await;
        }
    }

    pub async fn start_client(&mut self) -> anyhow::Result<()> {
        let (tx, rx) = watch::channel(false);
        let config = self.layout.client_config()?;
        self.client = Some(ClientDaemon::start(&config, rx).await?);
        self.stop = Some(tx);
        Ok(())
    }

    pub async fn stop_client(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
    }

    /// The NFS endpoint's port on 127.0.0.1.
    pub fn nfs_port(&self) -> u16 {
        self.layout.nfs_port
    }

    /// The running client daemon, if any.
    pub fn client(&self) -> Option<&ClientDaemon> {
        self.client.as_ref()
    }

    /// Stops the client daemon, then the servers.
    pub async fn shutdown(mut self) {
        self.stop_client().await;
        for i in 0..self.servers.len() {
            self.stop_server(i).await;
        }
    }
}
