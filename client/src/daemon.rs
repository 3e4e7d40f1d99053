//! The client daemon: modify log, server link, VolumeClient and the NFSv3 endpoint, run until
//! asked to stop.

use crate::config::ClientConfig;
use crate::front::nfs::WriteVerifier;
use crate::front::port::{self, PortLimits};
use crate::front::service::FrontEnd;
use crate::link::LinkPool;
use crate::nfs::{CodettaFs, MAX_IO};
use crate::volume_client::{VolumeClient, VolumeClientOptions};
use crate::volumes::Volumes;
use anyhow::Context;
use codetta_certs::Identity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A running client daemon.
pub struct ClientDaemon {
    pub nfs_addr: SocketAddr,
    /// The root volume's VolumeClient as the daemon started (for tests and status).
    pub root_volume: Arc<VolumeClient>,
    /// Every volume served.
    pub volumes: Arc<Volumes>,
    task: tokio::task::JoinHandle<()>,
}

impl ClientDaemon {
    /// Starts the daemon: waits (while `shutdown` is not set) until a server answers, then
    /// binds the NFS endpoint.
    pub async fn start(
        config: &ClientConfig,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<ClientDaemon> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let identity = Identity::load(&config.ca, &config.cert, &config.key)
            .context("loading the client's certificate")?;
        if config.servers.is_empty() {
            anyhow::bail!("no server configured");
        }
        let endpoint = codetta_transport::client_endpoint(&identity)
            .context("opening the client's QUIC endpoint")?;
        let identity = Arc::new(identity);
        let links = Arc::new(LinkPool::new(
            &config.servers,
            identity,
            endpoint,
            config.call_deadline(),
            config.jukebox_window(),
        ));
        let options = VolumeClientOptions {
            log_max_bytes: config.log_max_bytes,
            min_copies: config.min_copies,
            cache: crate::cache::CacheLimits {
                data_bytes: usize::try_from(config.cache_mib << 20).unwrap_or(usize::MAX),
                ..crate::cache::CacheLimits::default()
            },
            append_delay: Duration::from_millis(config.test_append_delay_ms),
            wall_clock: codetta_wire::Time::now,
        };
        let volumes = retry_until_up(&mut shutdown, || {
            Volumes::start(
                config.data_dir.clone(),
                links.clone(),
                options,
                &config.root_volume,
            )
        })
        .await?;
        let root = volumes.root().await?;
        let volume_client = volumes.get(root.volume).await?;
        let verifier = if config.fixed_write_verifier {
            tracing::warn!("fixed write verifier: UNSTABLE writes a crash loses are not resent");
            WriteVerifier::FIXED
        } else {
            WriteVerifier::per_start()
        };
        let front = Arc::new(FrontEnd::new(CodettaFs::new(volumes.clone()), verifier));
        let listener = tokio::net::TcpListener::bind(config.nfs_listen)
            .await
            .with_context(|| format!("binding the NFS endpoint on {}", config.nfs_listen))?;
        let nfs_addr = listener.local_addr()?;
        let limits = PortLimits {
            allow_unprivileged: !config.require_privileged_port,
            ..PortLimits::for_writes_of(MAX_IO as usize)
        };
        tracing::info!(
            %nfs_addr,
            privileged_ports_only = config.require_privileged_port,
            "NFSv3 endpoint ready"
        );
        let serve_stop = shutdown.clone();
        let status_path = config.data_dir.join("status.json");
        let status_source = Arc::downgrade(&volume_client);
        let task = tokio::spawn(async move {
            let status = async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(v) = status_source.upgrade() else {
                        return;
                    };
                    if let Ok(json) = serde_json::to_vec_pretty(&v.status()) {
                        let tmp = status_path.with_extension("json.tmp");
                        if std::fs::write(&tmp, json).is_ok() {
                            let _ = std::fs::rename(&tmp, &status_path);
                        }
                    }
                }
            };
            tokio::select! {
                _ = status => {}
                _ = port::serve(listener, limits, front, serve_stop) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        });
        Ok(ClientDaemon {
            nfs_addr,
            root_volume: volume_client,
            volumes,
            task,
        })
    }

    /// Stops serving NFS and closes the server connection. Everything acknowledged is
    /// already in the modify log or on the server.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        for volume_client in self.volumes.all().await {
            volume_client.log_held(Duration::from_secs(5)).await;
            tracing::info!(volume = %volume_client.volume().name, "client update stats: {}", volume_client.stats);
            volume_client.close();
        }
        self.root_volume.close_links().await;
    }
}

async fn retry_until_up<T, F>(
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, crate::error::ClientError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e @ (crate::error::ClientError::Unavailable | crate::error::ClientError::Down)) => {
                tracing::info!("waiting for a server: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => anyhow::bail!("stopped before a server answered"),
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
