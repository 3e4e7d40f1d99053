//! Administrative calls made with an admin certificate.

use anyhow::Context;
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_wire::message::{ReplyBody, VolumeInfo};
use codetta_wire::{Frame, Request};
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

/// One admin call to the configured server.
pub async fn call(config: &AdminConfig, request: &Request) -> anyhow::Result<ReplyBody> {
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
    let reply = codetta_transport::call(&conn, &frame, Duration::from_secs(10)).await?;
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
    if let ReplyBody::Volumes(list) = call(config, &Request::ListVolumes).await?
        && let Some(v) = list.into_iter().find(|v| v.name == name)
    {
        return Ok(v);
    }
    match call(
        config,
        &Request::CreateVolume {
            name: name.to_string(),
            replicas: replicas.to_vec(),
        },
    )
    .await?
    {
        ReplyBody::Volume(v) => Ok(v),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}
