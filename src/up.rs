//! `codetta up`: a whole local cluster from one command. First run creates the CA, the
//! certificates, the configurations and the root volume under DIR; later runs serve the
//! same files under the same handles.

use codetta_cluster::{Layout, LocalCluster, default_dir};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the cluster keeps everything (default: $XDG_DATA_HOME/codetta or ~/.local/share/codetta).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Port of the NFSv3 endpoint on 127.0.0.1 (NFS and MOUNT).
    #[arg(long, default_value_t = 12049)]
    nfs_port: u16,
    /// Port of the server's QUIC endpoint on 127.0.0.1.
    #[arg(long, default_value_t = 7410)]
    server_port: u16,
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(default_dir);
    let layout = Layout::prepare(&dir, args.server_port, args.nfs_port)?;
    let cluster = LocalCluster::start_with(layout).await?;
    let port = cluster.nfs_port();
    println!("Codetta is up: 1 server, client daemon serving NFSv3 on 127.0.0.1:{port}");
    println!("cluster directory: {}", dir.display());
    println!(
        "Linux: sudo mkdir -p /mnt/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolock,hard 127.0.0.1:/ /mnt/codetta"
    );
    println!(
        "macOS: mkdir -p ~/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolocks,locallocks 127.0.0.1:/ ~/codetta"
    );
    println!("Stop with Ctrl-C (unmount first).");
    wait_for_signal().await?;
    println!("stopping");
    cluster.shutdown().await;
    Ok(())
}
