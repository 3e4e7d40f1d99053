//! Systems under test: a Codetta cluster, the NFS layer alone, the local disk.

use codetta_cluster::LocalCluster;
use nfs3_server::memfs::{MemFs, MemFsConfig};
use nfs3_server::tcp::{NFSTcp, NFSTcpListener};

/// A Codetta cluster of `replicas` servers (the root volume replicated on each) in `dir`,
/// in this process.
pub async fn codetta(dir: &std::path::Path, replicas: usize) -> anyhow::Result<LocalCluster> {
    LocalCluster::start(dir, replicas).await
}

/// nfs3_server's in-memory file system behind the same endpoint code: the NFS layer's
/// ceiling. Returns its port; it serves until the runtime ends.
pub async fn nfs_layer_alone() -> anyhow::Result<u16> {
    let fs = MemFs::new(MemFsConfig::default()).map_err(|e| anyhow::anyhow!("memfs: {e:?}"))?;
    let listener = NFSTcpListener::bind("127.0.0.1:0", fs).await?;
    let port = listener.get_listen_port();
    tokio::spawn(async move {
        let _ = listener.handle_forever().await;
    });
    Ok(port)
}
