//! Administrative calls made with an admin certificate.

use anyhow::Context;
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_wire::message::{ReplyBody, VolumeCall, VolumeInfo};
use codetta_wire::{Frame, FsError, Request};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `admin.toml`: how the admin tool reaches a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The server admin calls go to.
    pub server_name: String,
    pub server_addr: SocketAddr,
    /// Every server of the cluster, for `codetta status` (optional).
    #[serde(default)]
    pub servers: Vec<codetta_transport::ServerEntry>,
    /// The client daemon's data directory, whose `status.json` `codetta status` reads
    /// (optional).
    #[serde(default)]
    pub client_dir: Option<PathBuf>,
}

/// The default admin configuration written by `codetta up`.
pub fn default_admin_path() -> PathBuf {
    crate::layout::default_dir().join("admin.toml")
}

/// Reads an admin configuration.
pub fn load(path: &Path) -> anyhow::Result<AdminConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (run `codetta up` first, or pass --admin)",
            path.display()
        )
    })?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One admin call to the configured server (answered within a minute).
pub async fn call(config: &AdminConfig, request: &Request) -> anyhow::Result<ReplyBody> {
    call_within(config, request, Duration::from_secs(60)).await
}

/// One admin call that may take up to `deadline` (a drain before a replica leaves).
pub async fn call_within(
    config: &AdminConfig,
    request: &Request,
    deadline: Duration,
) -> anyhow::Result<ReplyBody> {
    let identity = Identity::load(&config.ca, &config.cert, &config.key)
        .context("loading the admin certificate")?;
    let endpoint = codetta_transport::client_endpoint(&identity)?;
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        codetta_transport::connect(
            &endpoint,
            config.server_addr,
            &config.server_name,
            &identity,
        ),
    )
    .await
    .with_context(|| format!("no answer from {} within 5 s", config.server_addr))??;
    let frame = Frame::request(request, Bytes::new())?;
    let reply = codetta_transport::call(&conn, &frame, deadline).await?;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(reply.decode_reply()??)
}

/// Creates `name` with a replica on each of `replicas` unless it exists; returns its
/// description.
pub async fn ensure_volume(
    config: &AdminConfig,
    name: &str,
    replicas: &[String],
) -> anyhow::Result<VolumeInfo> {
    // Right after the servers start, the catalogue may have no leader yet, or not list
    // every server: retry those for a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match try_ensure_volume(config, name, replicas).await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline && settling(&e) => {
                tracing::debug!("volume {name}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `e` is one a cluster that just started gives (no leader, servers not yet listed).
fn settling(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<FsError>(),
        Some(FsError::Refused(_) | FsError::Unavailable(_) | FsError::Storage(_))
    ) || e.downcast_ref::<FsError>().is_none()
}

async fn try_ensure_volume(
    config: &AdminConfig,
    name: &str,
    replicas: &[String],
) -> anyhow::Result<VolumeInfo> {
    if let ReplyBody::Volumes(list) = call(config, &Request::Volume(VolumeCall::List)).await?
        && let Some(v) = list.into_iter().find(|v| v.name == name)
    {
        return Ok(v);
    }
    match call(
        config,
        &Request::Volume(VolumeCall::Create {
            name: name.to_string(),
            replicas: replicas.to_vec(),
        }),
    )
    .await?
    {
        ReplyBody::Volume(v) => Ok(v),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}
