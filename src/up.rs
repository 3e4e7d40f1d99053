//! `codetta up`: a whole local cluster from one command: N servers as separate processes
//! (so one can be killed and restarted) and the client daemon in this process. The first
//! run creates the CA, the certificates, the configurations and the root volume (a replica
//! on every server) under DIR; later runs serve the same files under the same handles.

use anyhow::Context;
use codetta_client::ClientDaemon;
use codetta_cluster::{Layout, ServerProcs, admin, default_dir};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the cluster keeps everything (default: $XDG_DATA_HOME/codetta or ~/.local/share/codetta).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Port of the NFSv3 endpoint on 127.0.0.1 (NFS and MOUNT).
    #[arg(long, default_value_t = 12049)]
    nfs_port: u16,
    /// QUIC port of the first server on 127.0.0.1; the others use the following ports.
    #[arg(long, default_value_t = 7410)]
    server_port: u16,
    /// How many servers to run (each holds a replica of the root volume).
    #[arg(long, default_value_t = 3)]
    servers: u16,
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
    anyhow::ensure!(args.servers >= 1, "--servers must be at least 1");
    let dir = args.dir.unwrap_or_else(default_dir);
    let ports: Vec<u16> = (0..args.servers)
        .map(|i| args.server_port.checked_add(i))
        .collect::<Option<_>>()
        .context("server ports past 65535")?;
    let layout = Layout::prepare(&dir, &ports, args.nfs_port)?;
    let binary = std::env::current_exe().context("finding the codetta executable")?;
    let mut servers = ServerProcs::new(&binary, &layout);
    servers.start_all().await?;
    let root = admin::ensure_volume(&layout.admin, "root", &layout.server_names())
        .await
        .context("creating the root volume")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = ClientDaemon::start(&layout.client_config()?, stop_rx).await?;
    let port = layout.nfs_port;
    println!(
        "Codetta is up: {} servers (processes {}), root volume on {} of them, client daemon serving NFSv3 on 127.0.0.1:{port}",
        layout.servers.len(),
        (0..layout.servers.len())
            .filter_map(|i| servers.pid(i).map(|p| p.to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        root.vsg.len(),
    );
    println!(
        "cluster directory: {} (server logs: s1.log, ...)",
        dir.display()
    );
    println!(
        "Linux: sudo mkdir -p /mnt/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolock,hard 127.0.0.1:/ /mnt/codetta"
    );
    println!(
        "macOS: mkdir -p ~/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolocks,locallocks 127.0.0.1:/ ~/codetta"
    );
    println!("Stop with Ctrl-C (unmount first).");
    wait_for_signal().await?;
    println!("stopping");
    let _ = stop_tx.send(true);
    client.stop().await;
    servers.stop_all();
    Ok(())
}
